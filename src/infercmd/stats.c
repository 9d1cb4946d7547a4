/* stats.c - the reply maps of INFER.STATS, INFO infer, INFER.MODELS and
 * INFER.GENERATE's RESP3 answer, as ordered field lists.
 *
 * Statistics are totals over every model, replaced and freed ones
 * included, read from the schedulers under their own locks on the main
 * thread.  One ordered list per reply feeds both front-ends, so the server
 * and the module never disagree on names, order or types. */
#include "infercmd.h"

#include <string.h>

static void ll(ic_field *f, int *i, const char *name, long long v) {
    memset(&f[*i], 0, sizeof f[*i]);
    f[*i].name = name;
    f[*i].kind = IC_F_LL;
    f[*i].ll = v;
    (*i)++;
}

static void dbl(ic_field *f, int *i, const char *name, double v) {
    memset(&f[*i], 0, sizeof f[*i]);
    f[*i].name = name;
    f[*i].kind = IC_F_DOUBLE;
    f[*i].d = v;
    (*i)++;
}

static void str(ic_field *f, int *i, const char *name, const char *v, size_t len) {
    memset(&f[*i], 0, sizeof f[*i]);
    f[*i].name = name;
    f[*i].kind = IC_F_STR;
    f[*i].s = v ? v : "";
    f[*i].slen = v ? len : 0;
    (*i)++;
}

int ic_stats(const ic_registry *r, ic_field out[IC_STATS_FIELDS]) {
    ic_totals t = r->retired;
    long long queued = 0, active = 0, kv_used = 0, kv_free = 0, kv_total = 0, kv_cached = 0;
    unsigned long long lookups = 0, hits = 0;
    double tps = 0;
    for (const ic_model *m = r->live; m; m = m->live_next) {
        if (!m->sched) continue;
        infer_sched_stats st;
        infer_sched_get_stats(m->sched, &st);
        t.submitted += st.submitted;
        t.completed += st.completed;
        t.rejected += st.rejected;
        t.cancelled += st.cancelled;
        t.timeouts += st.timeouts;
        t.errors += st.errors;
        t.prompt_tokens += st.prompt_tokens;
        t.generated_tokens += st.generated_tokens;
        queued += st.queued;
        active += st.active;
        tps += st.tokens_per_s;
        kv_used += st.kv.blocks_used;
        kv_free += st.kv.blocks_free;
        kv_total += st.kv.blocks_total;
        kv_cached += st.kv.blocks_cached;
        lookups += st.kv.prefix_lookups;
        hits += st.kv.prefix_hits;
    }
    int i = 0;
    ll(out, &i, "models", r->n);
    ll(out, &i, "in_flight", r->in_flight);
    ll(out, &i, "loads_running", r->loads_running);
    ll(out, &i, "queued", queued);
    ll(out, &i, "active", active);
    ll(out, &i, "submitted", (long long)t.submitted);
    ll(out, &i, "completed", (long long)t.completed);
    ll(out, &i, "rejected", (long long)t.rejected);
    ll(out, &i, "refused", (long long)r->refused);
    ll(out, &i, "cancelled", (long long)t.cancelled);
    ll(out, &i, "timeouts", (long long)t.timeouts);
    ll(out, &i, "errors", (long long)t.errors);
    ll(out, &i, "prompt_tokens", (long long)t.prompt_tokens);
    ll(out, &i, "generated_tokens", (long long)t.generated_tokens);
    dbl(out, &i, "tokens_per_s", tps);
    ll(out, &i, "kv_blocks_used", kv_used);
    ll(out, &i, "kv_blocks_cached", kv_cached);
    ll(out, &i, "kv_blocks_free", kv_free);
    ll(out, &i, "kv_blocks_total", kv_total);
    dbl(out, &i, "prefix_hit_rate", lookups ? (double)hits / (double)lookups : 0.0);
    return i;
}

int ic_model_fields(const ic_entry *e, ic_model_desc *d, ic_field out[IC_MODEL_FIELDS]) {
    int i = 0;
    ic_describe(e, d);
    str(out, &i, "name", d->name, strlen(d->name));
    str(out, &i, "arch", d->arch, strlen(d->arch));
    str(out, &i, "kind", d->kind, strlen(d->kind));
    ll(out, &i, "dim", d->dim);
    ll(out, &i, "parameters", d->params);
    str(out, &i, "type", d->ftype, strlen(d->ftype));
    str(out, &i, "types", d->types, d->types_len);
    ll(out, &i, "bytes", d->bytes);
    ll(out, &i, "context", d->context);
    ll(out, &i, "requests", d->requests);
    str(out, &i, "path", d->path, strlen(d->path));
    return i;
}

int ic_req_result(const ic_req *r, ic_field out[IC_RESULT_FIELDS]) {
    int i = 0;
    const char *finish = infer_finish_name(r->reason);
    str(out, &i, "text", r->text, r->len);
    ll(out, &i, "tokens", r->st.generated_tokens);
    str(out, &i, "finish", finish, strlen(finish));
    ll(out, &i, "prompt_tokens", r->st.prompt_tokens);
    ll(out, &i, "reused_tokens", r->st.reused_tokens);
    dbl(out, &i, "queue_ms", r->st.queue_ms);
    dbl(out, &i, "prefill_ms", r->st.prefill_ms);
    dbl(out, &i, "decode_ms", r->st.decode_ms);
    return i;
}
