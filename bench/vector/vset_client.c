/* vset_client.c - the pipelining client of the vector benchmark: loads a
 * dataset into a server's vector set with VADD and runs its queries with
 * VSIM, timed, and scores them against the exact ground truth.
 *
 * Why: a Python client (redis-py) spends ~10-20 us on every command, which
 * would cap VSIM at tens of thousands of queries/s whatever the server does;
 * from C with hiredis a command costs the client ~1-2 us, so the figures are
 * the server's.  Works against any server that speaks Redis 8's vector-set
 * commands (inferkv-server, redis-server with build/inferkv.so loaded).
 *
 *   vset_client load  DATA_DIR --port P --key K [--quant q8|bin|noquant]
 *                     [--window 64] [--n N] [--host 127.0.0.1]
 *       VADD K FP32 <row as little-endian float32> <row number>
 *       [NOQUANT | BIN] for every row of base.f32, in file order, with up
 *       to --window commands in flight; M and EF construction are the
 *       server's defaults (16, 200).  Prints {"inserts_per_s", ...}.
 *   vset_client query DATA_DIR --port P --key K [--ef 10,20,40,...]
 *                     [--window 64] [--min-time 0.5] [--queries N]
 *       VSIM K FP32 <query> COUNT 10 EF ef for every query, up to --window
 *       in flight, in passes over the query set until --min-time seconds
 *       (at least one pass) for each EF.  recall@10 from the first pass
 *       (element names are row numbers of base.f32) against gt.i32;
 *       qps = all queries over all passes, qps_median = the median pass,
 *       qps_best = the fastest.  With --window 1 (one query per round
 *       trip) also p50/p99 of the round-trip latency in microseconds.
 *       --truth adds TRUTH (a linear scan over the stored vectors): its
 *       recall is the ceiling the set's quantization leaves the graph.
 *   vset_client ping - --port P [--n 5000]
 *       N PINGs one at a time: the bare loopback round trip (p50/p99 us)
 *       that every window-1 query pays on top of the search.
 *
 * Dataset files: bench/vector/vecfile.py's format (16-byte header "IKVF" /
 * "IKVI", version 1, rows, cols, little-endian rows).  Prints one JSON
 * object on stdout; progress and errors on stderr; exit 1 on a broken run
 * (connection lost, error replies).
 *
 * Build (bench/bench_vector.sh does it into $build/bench/):
 *   cc -O2 bench/vector/vset_client.c -o build/bench/vset_client -lhiredis */
#include <hiredis/hiredis.h>

#include <errno.h>
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

static void die(const char *msg) {
    fprintf(stderr, "vset_client: %s\n", msg);
    exit(1);
}

static int load_mat(const char *dir, const char *name, const char *magic, mat *m) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "vset_client: %s: %s (make it with bench/vector/gen_vectors.py)\n", path, strerror(errno));
        return -1;
    }
    unsigned char h[16];
    if (fread(h, 1, 16, f) != 16 || memcmp(h, magic, 4) != 0) {
        fprintf(stderr, "vset_client: %s: not a %s matrix file\n", path, magic);
        fclose(f);
        return -1;
    }
    uint32_t version;
    memcpy(&version, h + 4, 4); /* the host is little-endian (x86-64, arm64) */
    memcpy(&m->rows, h + 8, 4);
    memcpy(&m->cols, h + 12, 4);
    size_t bytes = (size_t)m->rows * m->cols * 4;
    m->data = version == 1 ? malloc(bytes ? bytes : 1) : NULL;
    if (!m->data || fread(m->data, 1, bytes, f) != bytes) {
        fprintf(stderr, "vset_client: %s: bad header or truncated\n", path);
        fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

/* ---- a window of commands in flight ------------------------------------ */

typedef struct conn {
    redisContext *c;
    int window;
} conn;

static void flush_out(conn *k) {
    int done = 0;
    while (!done)
        if (redisBufferWrite(k->c, &done) != REDIS_OK) die(k->c->errstr[0] ? k->c->errstr : "write failed");
}

static redisReply *get_reply(conn *k) {
    void *r = NULL;
    if (redisGetReply(k->c, &r) != REDIS_OK || !r) die(k->c->errstr[0] ? k->c->errstr : "connection lost");
    return r;
}

/* ---- load -------------------------------------------------------------- */

static int cmd_load(const char *dir, conn *k, const char *key, const char *quant, long limit) {
    mat base;
    if (load_mat(dir, "base.f32", "IKVF", &base)) return 2;
    long n = limit > 0 && limit < (long)base.rows ? limit : (long)base.rows;
    const char *qarg = !strcmp(quant, "noquant") ? "NOQUANT" : !strcmp(quant, "bin") ? "BIN" : NULL;
    size_t vbytes = (size_t)base.cols * 4;
    long sent = 0, got = 0, errors = 0;
    char name[32], first_err[256] = "";
    double t0 = now(), last = t0;
    while (got < n) {
        int appended = 0;
        while (sent < n && sent - got < k->window) {
            int nl = snprintf(name, sizeof name, "%ld", sent);
            const char *argv[6] = {"VADD", key, "FP32", (const char *)base.data + (size_t)sent * vbytes, name, qarg};
            size_t lens[6] = {4, strlen(key), 4, vbytes, (size_t)nl, qarg ? strlen(qarg) : 0};
            if (redisAppendCommandArgv(k->c, qarg ? 6 : 5, argv, lens) != REDIS_OK) die("out of memory");
            sent++;
            appended = 1;
        }
        if (appended) flush_out(k);
        redisReply *r = get_reply(k);
        if (r->type == REDIS_REPLY_ERROR) {
            if (!errors++) snprintf(first_err, sizeof first_err, "%s", r->str);
        } else if (r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
            if (!errors++) snprintf(first_err, sizeof first_err, "unexpected reply type %d", r->type);
        }
        freeReplyObject(r);
        got++;
        if (got % 20000 == 0 && now() - last > 5) {
            last = now();
            fprintf(stderr, "vset_client: %ld / %ld added (%.0f/s)\n", got, n, got / (last - t0));
        }
    }
    double t = now() - t0;
    if (errors) fprintf(stderr, "vset_client: %ld VADD errors, first: %s\n", errors, first_err);
    printf("{\"n\": %ld, \"dim\": %u, \"quant\": \"%s\", \"window\": %d, \"seconds\": %.3f, "
           "\"inserts_per_s\": %.0f, \"errors\": %ld}\n",
           n, base.cols, quant, k->window, t, n / t, errors);
    free(base.data);
    return errors ? 1 : 0;
}

/* ---- query ------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_query(const char *dir, conn *k, const char *key, const int *efs, int nef, double min_time,
                     int nq_limit, int truth) {
    mat q, gt;
    if (load_mat(dir, "queries.f32", "IKVF", &q) || load_mat(dir, "gt.i32", "IKVI", &gt)) return 2;
    if (gt.rows != q.rows || gt.cols < 10) die("queries.f32 and gt.i32 do not fit together");
    int nq = nq_limit > 0 && (uint32_t)nq_limit < q.rows ? nq_limit : (int)q.rows;
    size_t vbytes = (size_t)q.cols * 4;
    const int32_t *g = gt.data;
    double *sent_at = malloc(sizeof(double) * (size_t)nq);
    size_t lat_cap = 1 << 16, nlat = 0;
    double *lat = k->window == 1 ? malloc(sizeof(double) * lat_cap) : NULL;
    printf("{\"queries\": %d, \"dim\": %u, \"window\": %d, \"k\": 10, \"min_time\": %.2f, \"truth\": %s, "
           "\"search\": [",
           nq, q.cols, k->window, min_time, truth ? "true" : "false");
    int bad = 0;
    for (int e = 0; e < nef; e++) {
        char efs_s[16];
        int efl = snprintf(efs_s, sizeof efs_s, "%d", efs[e]);
        double passes_qps[4096];
        int passes = 0;
        long found = 0, errors = 0;
        nlat = 0;
        double t_all = 0;
        do {
            long sent = 0, got = 0;
            double t0 = now();
            while (got < nq) {
                int appended = 0;
                while (sent < nq && sent - got < k->window) {
                    const char *argv[9] = {"VSIM", key, "FP32", (const char *)q.data + (size_t)sent * vbytes,
                                           "COUNT", "10", "EF", efs_s, "TRUTH"};
                    size_t lens[9] = {4, strlen(key), 4, vbytes, 5, 2, 2, (size_t)efl, 5};
                    if (redisAppendCommandArgv(k->c, truth ? 9 : 8, argv, lens) != REDIS_OK) die("out of memory");
                    if (lat) sent_at[sent] = now();
                    sent++;
                    appended = 1;
                }
                if (appended) flush_out(k);
                redisReply *r = get_reply(k);
                if (lat) {
                    if (nlat == lat_cap) lat = realloc(lat, sizeof(double) * (lat_cap *= 2));
                    lat[nlat++] = (now() - sent_at[got]) * 1e6;
                }
                if (r->type != REDIS_REPLY_ARRAY) {
                    if (!errors++)
                        fprintf(stderr, "vset_client: VSIM answered %s\n",
                                r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
                } else if (passes == 0) {
                    const int32_t *truth = g + (size_t)got * gt.cols;
                    for (size_t i = 0; i < r->elements && i < 10; i++) {
                        redisReply *el = r->element[i];
                        if (el->type != REDIS_REPLY_STRING) continue;
                        long id = strtol(el->str, NULL, 10);
                        for (int j = 0; j < 10; j++)
                            if (truth[j] == id) {
                                found++;
                                break;
                            }
                    }
                }
                freeReplyObject(r);
                got++;
            }
            double t = now() - t0;
            t_all += t;
            if (passes < 4096) passes_qps[passes] = nq / t;
            passes++;
        } while (t_all < min_time);
        int np = passes < 4096 ? passes : 4096;
        qsort(passes_qps, (size_t)np, sizeof(double), cmp_double);
        double recall = (double)found / (10.0 * nq);
        printf("%s\n  {\"ef\": %d, \"recall\": %.4f, \"qps\": %.0f, \"qps_median\": %.0f, \"qps_best\": %.0f, "
               "\"passes\": %d, \"errors\": %ld",
               e ? "," : "", efs[e], recall, (double)passes * nq / t_all, passes_qps[np / 2], passes_qps[np - 1],
               passes, errors);
        if (lat && nlat) {
            qsort(lat, nlat, sizeof(double), cmp_double);
            printf(", \"p50_us\": %.1f, \"p99_us\": %.1f", lat[nlat / 2], lat[(size_t)(nlat * 0.99)]);
        }
        printf("}");
        fflush(stdout);
        fprintf(stderr, "vset_client: %s EF %4d recall@10 %.4f %8.0f q/s (window %d)\n", key, efs[e], recall,
                passes * nq / t_all, k->window);
        if (errors) bad = 1;
    }
    printf("\n]}\n");
    free(lat);
    free(sent_at);
    free(q.data);
    free(gt.data);
    return bad;
}

/* ---- ping: the bare round trip, for reading the window-1 figures ------ */

static int cmd_ping(conn *k, long n) {
    double *lat = malloc(sizeof(double) * (size_t)n);
    double t0 = now();
    for (long i = 0; i < n; i++) {
        double s = now();
        redisReply *r = redisCommand(k->c, "PING");
        if (!r) die(k->c->errstr[0] ? k->c->errstr : "connection lost");
        freeReplyObject(r);
        lat[i] = (now() - s) * 1e6;
    }
    double t = now() - t0;
    qsort(lat, (size_t)n, sizeof(double), cmp_double);
    printf("{\"pings\": %ld, \"per_s\": %.0f, \"p50_us\": %.1f, \"p99_us\": %.1f}\n", n, n / t, lat[n / 2],
           lat[(size_t)(n * 0.99)]);
    free(lat);
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: vset_client load DATA_DIR --port P --key K [--quant q8|bin|noquant] [--window 64] [--n N]\n"
                    "       vset_client query DATA_DIR --port P --key K [--ef 10,20,...] [--window 64]\n"
                    "                         [--min-time 0.5] [--queries N] [--truth]\n"
                    "       vset_client ping - --port P [--n 5000]          (all: [--host H])\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    const char *mode = argv[1], *dir = argv[2], *host = "127.0.0.1", *key = NULL, *quant = "q8";
    int port = 0, window = 64, nef = 0, nq = 0, efs[64], truth = 0;
    long n = 0;
    double min_time = 0.5;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--truth")) {
            truth = 1;
            continue;
        }
        if (!v) return usage();
        i++;
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--key")) key = v;
        else if (!strcmp(a, "--quant")) quant = v;
        else if (!strcmp(a, "--window")) window = atoi(v);
        else if (!strcmp(a, "--n")) n = atol(v);
        else if (!strcmp(a, "--queries")) nq = atoi(v);
        else if (!strcmp(a, "--min-time")) min_time = atof(v);
        else if (!strcmp(a, "--ef")) {
            for (const char *p = v; *p && nef < 64;) {
                efs[nef++] = atoi(p);
                p = strchr(p, ',');
                if (!p) break;
                p++;
            }
        } else return usage();
    }
    if (!strcmp(mode, "ping")) key = "-";
    if (!port || !key || window < 1 || (strcmp(quant, "q8") && strcmp(quant, "bin") && strcmp(quant, "noquant")))
        return usage();
    if (!nef) {
        int d[] = {10, 20, 40, 80, 160, 320, 640};
        for (nef = 0; nef < 7; nef++) efs[nef] = d[nef];
    }
    conn k = {redisConnect(host, port), window};
    if (!k.c || k.c->err) {
        fprintf(stderr, "vset_client: cannot connect to %s:%d: %s\n", host, port, k.c ? k.c->errstr : "out of memory");
        return 1;
    }
    int rc;
    if (!strcmp(mode, "load")) rc = cmd_load(dir, &k, key, quant, n);
    else if (!strcmp(mode, "ping")) rc = cmd_ping(&k, n > 0 ? n : 5000);
    else if (!strcmp(mode, "query")) rc = cmd_query(dir, &k, key, efs, nef, min_time, nq, truth);
    else rc = usage();
    redisFree(k.c);
    return rc;
}
