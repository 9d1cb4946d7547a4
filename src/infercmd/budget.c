/* budget.c - infer-max-memory: the engine's memory budget, shared by the
 * server and the module so that both refuse the same loads with the same
 * words.
 *
 * The engine's memory (weights, KV pools, scratch: infer_mem) is not the
 * dataset's: it never counts toward used_memory or maxmemory, and without a
 * budget of its own a model loaded into a server sized close to the
 * machine's RAM would get the process killed by the kernel, dataset and
 * all.  So every load reserves its model's figures here before it
 * allocates anything big (infer_mem_estimate reads only the file's header)
 * and the reservation is checked against infer-max-memory; a load that
 * would not fit is refused with the figures.  Once loaded, the reservation
 * is set to the model's actual figures (checked again: they may only come
 * out above the estimate if the estimate is wrong), and it is given back
 * when the model is freed - for a replaced or unloaded model that is when
 * its last request in flight ends, so both count while both live.
 *
 * Loads reserve on their own threads while the main thread may free
 * models, so the figures are atomics: a reservation is one compare-and-swap
 * on the charged total, and two loads racing for the last bytes cannot
 * both get them. */
#include "infercmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The memory this process may use: the machine's RAM, or a cgroup's limit
 * when one is set below it (a container sees the host's RAM in sysconf). */
static uint64_t usable_ram(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t ram = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    static const char *const limits[] = {"/sys/fs/cgroup/memory.max",
                                         "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        FILE *fp = fopen(limits[i], "r");
        if (!fp) continue;
        unsigned long long v;
        int n = fscanf(fp, "%llu", &v); /* "max" (no limit) does not parse */
        fclose(fp);
        if (n == 1 && v > 0 && (ram == 0 || v < ram)) ram = v;
    }
    return ram;
}

uint64_t ic_default_max_memory(void) { return usable_ram() / IC_MAX_MEMORY_DIVISOR; }

int ic_parse_mem(const char *s, uint64_t *out) {
    static const struct {
        const char *suffix;
        uint64_t mul;
    } units[] = {{"kb", 1024}, {"mb", 1024 * 1024}, {"gb", 1024ULL * 1024 * 1024},
                 {"k", 1000}, {"m", 1000 * 1000}, {"g", 1000ULL * 1000 * 1000}};
    size_t len = strlen(s), digits = len;
    uint64_t mul = 1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t sl = strlen(units[i].suffix);
        if (len > sl && !strcasecmp(s + len - sl, units[i].suffix)) {
            mul = units[i].mul;
            digits = len - sl;
            break;
        }
    }
    ic_arg a = {s, digits};
    uint64_t v;
    if (ic_parse_u64(&a, &v) < 0 || v > (uint64_t)INT64_MAX / mul) return -1;
    *out = v * mul;
    return 0;
}

void ic_human_bytes(uint64_t n, char *buf, size_t cap) {
    double d = (double)n;
    if (n < 1024) snprintf(buf, cap, "%llu B", (unsigned long long)n);
    else if (n < 1024ULL * 1024) snprintf(buf, cap, "%.1f KiB", d / 1024);
    else if (n < 1024ULL * 1024 * 1024) snprintf(buf, cap, "%.1f MiB", d / (1024 * 1024));
    else snprintf(buf, cap, "%.2f GiB", d / (1024.0 * 1024 * 1024));
}

void ic_info_human(uint64_t n, char *buf, size_t cap) {
    double d = (double)n;
    if (n < 1024) snprintf(buf, cap, "%lluB", (unsigned long long)n);
    else if (n < 1024ULL * 1024) snprintf(buf, cap, "%.2fK", d / 1024);
    else if (n < 1024ULL * 1024 * 1024) snprintf(buf, cap, "%.2fM", d / (1024 * 1024));
    else snprintf(buf, cap, "%.2fG", d / (1024.0 * 1024 * 1024));
}

/* "infer-max-memory: loading 'name' needs X (weights W + KV K + scratch S),
 * F of M free (N models loaded use U; L loads in progress reserve P)".
 * The figures are read without a lock: they are for a person. */
static void refusal(ic_budget *b, uint64_t max, const char *name, const infer_mem *need, char *err,
                    size_t errlen) {
    char shown[IC_NAME_MAX], total[32], w[32], kv[32], sc[32], fr[32], mx[32], used[32], pend[32];
    uint64_t charged = atomic_load(&b->charged), loaded = atomic_load(&b->loaded);
    int models = atomic_load(&b->models), loads = atomic_load(&b->loads);
    uint64_t pending = charged > loaded ? charged - loaded : 0;
    ic_shown(name, strlen(name), shown, sizeof shown);
    ic_human_bytes(infer_mem_total(need), total, sizeof total);
    ic_human_bytes(need->weights, w, sizeof w);
    ic_human_bytes(need->kv_reserved, kv, sizeof kv);
    ic_human_bytes(need->scratch, sc, sizeof sc);
    ic_human_bytes(charged < max ? max - charged : 0, fr, sizeof fr);
    ic_human_bytes(max, mx, sizeof mx);
    ic_human_bytes(loaded, used, sizeof used);
    ic_human_bytes(pending, pend, sizeof pend);
    char who[160];
    if (models == 0) snprintf(who, sizeof who, "no model loaded");
    else snprintf(who, sizeof who, "%d model%s loaded use%s %s", models, models == 1 ? "" : "s", models == 1 ? "s" : "",
                  used);
    char loading[96] = "";
    if (loads > 0)
        snprintf(loading, sizeof loading, "; %d load%s in progress reserve%s %s", loads, loads == 1 ? "" : "s",
                 loads == 1 ? "s" : "", pend);
    snprintf(err, errlen,
             "infer-max-memory: loading '%s' needs %s (weights %s + KV %s + scratch %s), %s of %s free (%s%s)", shown,
             total, w, kv, sc, fr, mx, who, loading);
}

/* Adds n to the charged total if it stays within max (0: no limit). */
static int take(ic_budget *b, uint64_t max, uint64_t n) {
    uint64_t cur = atomic_load(&b->charged);
    do {
        if (max && (cur > max || n > max - cur)) return -1;
    } while (!atomic_compare_exchange_weak(&b->charged, &cur, cur + n));
    return 0;
}

int ic_budget_reserve(ic_model *m, uint64_t max, const char *name, const infer_mem *need, char *err, size_t errlen) {
    uint64_t n = infer_mem_total(need);
    if (take(m->budget, max, n) < 0) {
        refusal(m->budget, max, name, need, err, errlen);
        return -1;
    }
    atomic_fetch_add(&m->budget->loads, 1);
    m->charged = n;
    m->reserved = 1;
    return 0;
}

int ic_budget_settle(ic_model *m, uint64_t max, const char *name, const infer_mem *actual, char *err,
                     size_t errlen) {
    uint64_t n = infer_mem_total(actual);
    if (n > m->charged) {
        if (take(m->budget, max, n - m->charged) < 0) {
            refusal(m->budget, max, name, actual, err, errlen);
            return -1;
        }
    } else {
        atomic_fetch_sub(&m->budget->charged, m->charged - n);
    }
    m->charged = n;
    return 0;
}

void ic_budget_commit(ic_model *m) {
    if (!m->reserved || m->counted) return;
    atomic_fetch_sub(&m->budget->loads, 1);
    atomic_fetch_add(&m->budget->models, 1);
    atomic_fetch_add(&m->budget->loaded, m->charged);
    m->counted = 1;
}

void ic_budget_release(ic_model *m) {
    if (!m->reserved) return;
    if (m->counted) {
        atomic_fetch_sub(&m->budget->models, 1);
        atomic_fetch_sub(&m->budget->loaded, m->charged);
    } else {
        atomic_fetch_sub(&m->budget->loads, 1);
    }
    atomic_fetch_sub(&m->budget->charged, m->charged);
    m->reserved = m->counted = 0;
    m->charged = 0;
}

/* ---- figures for INFO and INFER.STATS ------------------------------------- */

static void model_mem(const ic_model *m, infer_mem *out) {
    if (m->sched) infer_sched_mem(m->sched, out); /* kv_used now */
    else *out = m->mem;                          /* stopped: nothing in use */
}

void ic_mem_totals(const ic_registry *r, infer_mem *out) {
    memset(out, 0, sizeof *out);
    for (const ic_model *m = r->live; m; m = m->live_next) {
        infer_mem mm;
        model_mem(m, &mm);
        out->weights += mm.weights;
        out->kv_reserved += mm.kv_reserved;
        out->kv_used += mm.kv_used;
        out->scratch += mm.scratch;
    }
}

static void put(ic_field *f, int *i, const char *name, uint64_t v) {
    memset(&f[*i], 0, sizeof f[*i]);
    f[*i].name = name;
    f[*i].kind = IC_F_LL;
    f[*i].ll = (long long)v;
    (*i)++;
}

int ic_mem_fields(const ic_registry *r, uint64_t max, ic_field out[IC_MEM_FIELDS]) {
    infer_mem t;
    ic_mem_totals(r, &t);
    uint64_t charged = atomic_load(&r->budget.charged), loaded = atomic_load(&r->budget.loaded);
    int i = 0;
    put(out, &i, "used_memory", infer_mem_total(&t));
    put(out, &i, "max_memory", max);
    put(out, &i, "weights_bytes", t.weights);
    put(out, &i, "kv_reserved_bytes", t.kv_reserved);
    put(out, &i, "kv_used_bytes", t.kv_used);
    put(out, &i, "scratch_bytes", t.scratch);
    put(out, &i, "loading_bytes", charged > loaded ? charged - loaded : 0);
    return i;
}

/* Keeps a name from breaking an INFO line ("k:v,k=v"): only printable
 * ASCII, with the separators replaced. */
static void info_safe(const char *name, char *out, size_t cap) {
    ic_shown(name, strlen(name), out, cap);
    for (char *p = out; *p; p++)
        if (*p == ',' || *p == ':' || *p == '=' || *p == ' ') *p = '_';
}

int ic_mem_model_line(const ic_registry *r, const ic_model *m, char *buf, size_t cap) {
    const char *name = NULL;
    for (int i = 0; i < r->n && !name; i++)
        if (r->entries[i].m == m) name = r->entries[i].name;
    char shown[IC_NAME_MAX];
    info_safe(name ? name : "", shown, sizeof shown);
    infer_mem mm;
    model_mem(m, &mm);
    return snprintf(buf, cap,
                    "name=%s,replaced=%d,weights=%llu,kv_reserved=%llu,kv_used=%llu,scratch=%llu,total=%llu,"
                    "requests=%d",
                    shown, name ? 0 : 1, (unsigned long long)mm.weights, (unsigned long long)mm.kv_reserved,
                    (unsigned long long)mm.kv_used, (unsigned long long)mm.scratch,
                    (unsigned long long)infer_mem_total(&mm), m->requests);
}
