/* vset-bench - libvset alone on a benchmark dataset: inserts/s (one or more
 * threads), then recall@10 and queries/s at each search EF, memory per
 * vector, and optionally the same after churn (delete a share of the
 * elements, re-add half of them).
 *
 *   vset-bench DATA_DIR [--quant q8|bin|noquant] [--m 16] [--ef-build 200]
 *              [--threads N] [--ef 10,20,40,...] [--queries N]
 *              [--churn 0.3] [--min-time S] [--json FILE] [--cache FILE]
 *
 * --cache FILE keeps the built index (vset_save): a later run with the
 * same FILE loads it instead of building, to look at queries alone.
 * DATA_DIR is what bench/vector/gen_vectors.py writes: base.f32,
 * queries.f32, gt.i32 (16-byte header "IKVF"/"IKVI", version, rows, cols,
 * then little-endian rows).  Figures measure the library only: the same
 * calls the server makes, without the network, so that the server's
 * overhead is the difference between the two.  Queries run one at a time
 * on one thread, each timed pass repeated until --min-time has passed. */
#include "vset.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct mat {
    uint32_t rows, cols;
    void *data;
} mat;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int load_mat(const char *dir, const char *name, const char *magic, mat *m) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "vset-bench: %s: %s (make it with bench/vector/gen_vectors.py)\n", path, strerror(errno));
        return -1;
    }
    unsigned char h[16];
    if (fread(h, 1, 16, f) != 16 || memcmp(h, magic, 4) != 0) {
        fprintf(stderr, "vset-bench: %s: not a %s matrix file\n", path, magic);
        fclose(f);
        return -1;
    }
    uint32_t version = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
    m->rows = (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 | (uint32_t)h[11] << 24;
    m->cols = (uint32_t)h[12] | (uint32_t)h[13] << 8 | (uint32_t)h[14] << 16 | (uint32_t)h[15] << 24;
    size_t bytes = (size_t)m->rows * m->cols * 4;
    if (version != 1 || !m->rows || !m->cols || m->cols > VSET_MAX_DIM) {
        fprintf(stderr, "vset-bench: %s: bad header\n", path);
        fclose(f);
        return -1;
    }
    m->data = malloc(bytes);
    if (!m->data || fread(m->data, 1, bytes, f) != bytes) {
        fprintf(stderr, "vset-bench: %s: truncated\n", path);
        fclose(f);
        free(m->data);
        return -1;
    }
    fclose(f);
    return 0;
}

typedef struct opts {
    const char *dir, *json, *cache;
    int quant, m, ef_build, threads, nq;
    int efs[32], nef;
    double churn, min_time;
} opts;

typedef struct insert_job {
    vset *s;
    const mat *base;
    const int *order;
    int from, to, ef;
    int failed;
} insert_job;

static void *inserter(void *a) {
    insert_job *j = a;
    char name[24], err[256];
    for (int i = j->from; i < j->to; i++) {
        int row = j->order ? j->order[i] : i;
        int n = snprintf(name, sizeof name, "%d", row);
        const float *v = (const float *)j->base->data + (size_t)row * j->base->cols;
        if (vset_add(j->s, v, name, (size_t)n, j->ef, NULL, 0, err, sizeof err) != 1) j->failed++;
    }
    return NULL;
}

static double insert_rows(vset *s, const mat *base, const int *order, int n, int threads, int ef, int *failed) {
    pthread_t th[64];
    insert_job jb[64];
    double t0 = now();
    for (int t = 0; t < threads; t++) {
        jb[t] = (insert_job){s, base, order, (int)((long)n * t / threads), (int)((long)n * (t + 1) / threads), ef, 0};
        pthread_create(&th[t], NULL, inserter, &jb[t]);
    }
    *failed = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        *failed += jb[t].failed;
    }
    return now() - t0;
}

typedef struct point {
    int ef;
    double recall, qps;
} point;

/* recall@10 against gt restricted to live rows (NULL: all live). */
static point measure(vset *s, const mat *q, const mat *gt, const unsigned char *live, int nq, int ef,
                     double min_time) {
    point p = {ef, 0, 0};
    vset_hit hits[10];
    const int32_t *g = gt->data;
    double found = 0;
    for (int i = 0; i < nq; i++) {
        vset_query vq = {(const float *)q->data + (size_t)i * q->cols, -1, 10, (uint32_t)ef, 0, NULL, 0, 0, 0, 0};
        int n = vset_search(s, &vq, hits);
        int truth[10], k = 0;
        for (uint32_t j = 0; j < gt->cols && k < 10; j++)
            if (!live || live[g[(size_t)i * gt->cols + j]]) truth[k++] = g[(size_t)i * gt->cols + j];
        for (int h = 0; h < n; h++) {
            size_t len;
            int row = atoi(vset_name(s, hits[h].id, &len));
            for (int j = 0; j < k; j++)
                if (truth[j] == row) {
                    found++;
                    break;
                }
        }
    }
    p.recall = found / (10.0 * nq);
    long done = 0;
    double t0 = now(), t;
    do {
        for (int i = 0; i < nq; i++) {
            vset_query vq = {(const float *)q->data + (size_t)i * q->cols, -1, 10, (uint32_t)ef, 0, NULL, 0, 0, 0, 0};
            vset_search(s, &vq, hits);
        }
        done += nq;
        t = now() - t0;
    } while (t < min_time);
    p.qps = (double)done / t;
    return p;
}

static void print_curve(const char *label, const point *pts, int n, FILE *js, int last) {
    printf("%s\n  %6s %8s %10s\n", label, "EF", "recall", "queries/s");
    for (int i = 0; i < n; i++) printf("  %6d %8.4f %10.0f\n", pts[i].ef, pts[i].recall, pts[i].qps);
    if (js) {
        fprintf(js, "  \"%s\": [", label);
        for (int i = 0; i < n; i++)
            fprintf(js, "%s{\"ef\": %d, \"recall\": %.4f, \"qps\": %.0f}", i ? ", " : "", pts[i].ef, pts[i].recall,
                    pts[i].qps);
        fprintf(js, "]%s\n", last ? "" : ",");
    }
}

static int file_write(void *ud, const void *p, size_t n) { return fwrite(p, 1, n, ud) == n ? 0 : -1; }
static int file_read(void *ud, void *p, size_t n) { return fread(p, 1, n, ud) == n ? 0 : -1; }

static int usage(void) {
    fprintf(stderr, "usage: vset-bench DATA_DIR [--quant q8|bin|noquant] [--m 16] [--ef-build 200] [--threads N]\n"
                    "                  [--ef 10,20,...] [--queries N] [--churn F] [--min-time S] [--json FILE]\n");
    return 2;
}

int main(int argc, char **argv) {
    opts o = {NULL, NULL, NULL, VSET_NOQUANT, 16, 200, 1, 0, {10, 20, 40, 80, 160, 320, 640}, 7, 0, 0.5};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            o.dir = a;
            continue;
        }
        if (!v) return usage();
        i++;
        if (!strcmp(a, "--quant")) {
            o.quant = !strcmp(v, "q8") ? VSET_Q8 : !strcmp(v, "bin") ? VSET_BIN : !strcmp(v, "noquant") ? VSET_NOQUANT : -1;
            if (o.quant < 0) return usage();
        } else if (!strcmp(a, "--m")) {
            o.m = atoi(v);
        } else if (!strcmp(a, "--ef-build")) {
            o.ef_build = atoi(v);
        } else if (!strcmp(a, "--threads")) {
            o.threads = atoi(v);
            if (o.threads < 1 || o.threads > 64) return usage();
        } else if (!strcmp(a, "--queries")) {
            o.nq = atoi(v);
        } else if (!strcmp(a, "--churn")) {
            o.churn = atof(v);
        } else if (!strcmp(a, "--min-time")) {
            o.min_time = atof(v);
        } else if (!strcmp(a, "--cache")) {
            o.cache = v;
        } else if (!strcmp(a, "--json")) {
            o.json = v;
        } else if (!strcmp(a, "--ef")) {
            o.nef = 0;
            for (const char *p = v; *p && o.nef < 32;) {
                o.efs[o.nef++] = atoi(p);
                p = strchr(p, ',');
                if (!p) break;
                p++;
            }
        } else {
            return usage();
        }
    }
    if (!o.dir) return usage();
    mat base, q, gt;
    if (load_mat(o.dir, "base.f32", "IKVF", &base) || load_mat(o.dir, "queries.f32", "IKVF", &q) ||
        load_mat(o.dir, "gt.i32", "IKVI", &gt))
        return 1;
    if (q.cols != base.cols || gt.rows != q.rows || gt.cols < 10) {
        fprintf(stderr, "vset-bench: the dataset's files do not fit together\n");
        return 1;
    }
    int nq = o.nq > 0 && (uint32_t)o.nq < q.rows ? o.nq : (int)q.rows, n = (int)base.rows;
    vset_config cfg = {base.cols, 0, o.quant, o.m, 1};
    char err[256];
    vset *s = vset_new(&cfg, err, sizeof err);
    if (!s) {
        fprintf(stderr, "vset-bench: %s\n", err);
        return 1;
    }
    int failed = 0;
    double t = 0;
    FILE *cf = o.cache ? fopen(o.cache, "rb") : NULL;
    if (cf) {
        vset_free(s);
        s = vset_load(file_read, cf, err, sizeof err);
        fclose(cf);
        if (!s) {
            fprintf(stderr, "vset-bench: %s: %s\n", o.cache, err);
            return 1;
        }
        printf("loaded the index from %s\n", o.cache);
    } else {
        t = insert_rows(s, &base, NULL, n, o.threads, o.ef_build, &failed);
        if (o.cache && (cf = fopen(o.cache, "wb"))) {
            vset_save(s, file_write, cf);
            fclose(cf);
        }
    }
    double ips = t > 0 ? n / t : 0, per_vec = (double)vset_memory(s) / n;
    printf("vset-bench %s: %d x %u, %s, M %d, EF build %d, kernels %s\n", o.dir, n, base.cols,
           vset_quant_name(o.quant), o.m, o.ef_build, vset_kernels());
    printf("inserts: %.0f/s with %d thread%s (%.2f s)%s; memory %.0f B/vector\n", ips, o.threads,
           o.threads > 1 ? "s" : "", t, failed ? " FAILURES" : "", per_vec);
    point fresh[32], churned[32];
    for (int i = 0; i < o.nef; i++) fresh[i] = measure(s, &q, &gt, NULL, nq, o.efs[i], o.min_time);
    FILE *js = o.json ? fopen(o.json, "w") : NULL;
    if (js)
        fprintf(js, "{\n  \"data\": \"%s\", \"n\": %d, \"dim\": %u, \"quant\": \"%s\", \"m\": %d, \"ef_build\": %d,\n"
                    "  \"threads\": %d, \"inserts_per_s\": %.0f, \"bytes_per_vector\": %.0f, \"queries\": %d,\n"
                    "  \"kernels\": \"%s\",\n",
                o.dir, n, base.cols, vset_quant_name(o.quant), o.m, o.ef_build, o.threads, ips, per_vec, nq,
                vset_kernels());
    print_curve("fresh", fresh, o.nef, js, o.churn <= 0);
    if (o.churn > 0) {
        /* Delete a share of the rows, re-add half of those: the live set is
         * then compared with ground truth restricted to live rows. */
        unsigned char *live = malloc((size_t)n);
        int *readd = malloc(sizeof(int) * (size_t)n), nr = 0, nd = 0;
        uint64_t x = 99;
        double t0 = now();
        for (int i = 0; i < n; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            live[i] = 1;
            if ((double)(x >> 11) / 9007199254740992.0 < o.churn) {
                char name[24];
                int len = snprintf(name, sizeof name, "%d", i);
                vset_remove(s, name, (size_t)len);
                live[i] = 0;
                nd++;
                if (nd % 2 == 0) readd[nr++] = i;
            }
        }
        double td = now() - t0;
        insert_rows(s, &base, readd, nr, 1, o.ef_build, &failed);
        for (int i = 0; i < nr; i++) live[readd[i]] = 1;
        printf("churn: %d removed (%.0f/s), %d re-added\n", nd, nd / td, nr);
        if (vset_check(s, err, sizeof err)) printf("GRAPH CHECK FAILED: %s\n", err);
        for (int i = 0; i < o.nef; i++) churned[i] = measure(s, &q, &gt, live, nq, o.efs[i], o.min_time);
        print_curve("after_churn", churned, o.nef, js, 0);
        /* The same final elements built fresh: what churn should match. */
        vset *f = vset_new(&cfg, err, sizeof err);
        int *rows = malloc(sizeof(int) * (size_t)n), nl = 0;
        for (int i = 0; i < n; i++)
            if (live[i]) rows[nl++] = i;
        insert_rows(f, &base, rows, nl, o.threads, o.ef_build, &failed);
        point fr[32];
        for (int i = 0; i < o.nef; i++) fr[i] = measure(f, &q, &gt, live, nq, o.efs[i], o.min_time);
        print_curve("fresh_after_churn", fr, o.nef, js, 1);
        vset_free(f);
        free(rows);
        free(live);
        free(readd);
    }
    if (js) {
        fprintf(js, "}\n");
        fclose(js);
    }
    vset_free(s);
    free(base.data);
    free(q.data);
    free(gt.data);
    return 0;
}
