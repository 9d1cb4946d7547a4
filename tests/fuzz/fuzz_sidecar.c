/* fuzz_sidecar.c - libFuzzer target for the sidecar reader (sidecar.c,
 * compiled into this target: the checker over bytes in memory).
 *
 * The input is a whole sidecar file.  It is checked, as it is and once
 * more with its manifest hash recomputed where its header puts it (else
 * nearly every mutation would stop at that hash and the header checks,
 * the hash tables, the parity and the rebuild behind it would never see
 * hostile bytes), against a fixed data file and three damaged copies of
 * it: a flipped byte, a cut-short tail, three zeroed blocks.  Whatever the
 * bytes, the check must return one of its outcomes without a crash, a
 * leak or a sanitizer report; a repair must produce exactly the size the
 * sidecar describes, and the repaired bytes must then check OK against
 * the same sidecar.
 *
 * Seeds (corpus/sidecar/): sidecars of the fixed data file written by
 * sidecar.c with several block sizes, stripes and parity counts.  To
 * write them again: FUZZ_SIDECAR_WRITE_SEEDS=dir ./fuzz_sidecar */
#include "../../src/server/sidecar.c"

#include <stdlib.h>

#define DATA_LEN (5 * 4096 + 1234)

static unsigned char pristine[DATA_LEN];
static unsigned char flipped[DATA_LEN];
static unsigned char zeroed[DATA_LEN];

static void make_data(void) {
    uint32_t x = 12345;
    for (size_t i = 0; i < DATA_LEN; i++) {
        x = x * 1103515245u + 12345u;
        pristine[i] = (unsigned char)(x >> 16);
    }
    memcpy(flipped, pristine, DATA_LEN);
    flipped[4096 + 17] ^= 0x40;
    memcpy(zeroed, pristine, DATA_LEN);
    memset(zeroed, 0, 3 * 4096);
}

static void write_seeds(const char *dir) {
    static const struct {
        size_t bs;
        int k, p;
    } params[] = {{4096, 2, 1}, {4096, 3, 2}, {4096, 16, 2}, {4096, 1, 0}, {8192, 4, 4}, {4096, 2, 3}};
    char path[4096], err[256];
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        snprintf(path, sizeof path, "%s/bs%zu-k%d-p%d.sidecar", dir, params[i].bs, params[i].k, params[i].p);
        sidecar_writer *w = sidecar_writer_new(params[i].bs, params[i].k, params[i].p, err, sizeof err);
        if (!w) abort();
        sidecar_observe(w, pristine, DATA_LEN);
        if (sidecar_writer_finish(w, path, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            abort();
        }
        sidecar_writer_free(w);
    }
    /* and the sidecar of an empty file */
    snprintf(path, sizeof path, "%s/empty.sidecar", dir);
    sidecar_writer *w = sidecar_writer_new(4096, 16, 2, err, sizeof err);
    if (!w || sidecar_writer_finish(w, path, err, sizeof err) != 0) abort();
    sidecar_writer_free(w);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    make_data();
    const char *seeds = getenv("FUZZ_SIDECAR_WRITE_SEEDS");
    if (seeds && *seeds) {
        write_seeds(seeds);
        exit(0);
    }
    return 0;
}

typedef struct mem_out {
    unsigned char *p;
    size_t len, cap;
} mem_out;

static int mem_write(void *ud, const void *p, size_t n) {
    mem_out *o = ud;
    if (n > o->cap - o->len) {
        size_t ncap = o->cap ? o->cap : 4096;
        while (ncap - o->len < n) ncap *= 2;
        unsigned char *q = realloc(o->p, ncap);
        if (!q) return -1;
        o->p = q;
        o->cap = ncap;
    }
    memcpy(o->p + o->len, p, n);
    o->len += n;
    return 0;
}

static void check_one(const unsigned char *data, size_t dlen, const unsigned char *sc, size_t slen) {
    src d = {.fd = -1, .mem = data, .size = dlen}, s = {.fd = -1, .mem = sc, .size = slen};
    sidecar_report rep;
    char err[256];
    memset(&rep, 0, sizeof rep);
    sidecar_status st = check_sources(&d, &s, 0, NULL, NULL, &rep, err, sizeof err);
    if (st > SIDECAR_ERROR || st == SIDECAR_REPAIRED || st == SIDECAR_MISSING) abort();
    if (st == SIDECAR_OK && (rep.bad_blocks || rep.truncated || rep.extended)) abort();
    if (memchr(rep.summary, 0, sizeof rep.summary) == NULL) abort();
    if (st != SIDECAR_REPAIRABLE) return;
    mem_out o = {0};
    memset(&rep, 0, sizeof rep);
    st = check_sources(&d, &s, 1, mem_write, &o, &rep, err, sizeof err);
    if (st != SIDECAR_REPAIRED || o.len != rep.data_size) abort();
    /* what a repair wrote checks OK against the same sidecar */
    src r = {.fd = -1, .mem = o.p ? o.p : (const unsigned char *)"", .size = o.len};
    memset(&rep, 0, sizeof rep);
    if (check_sources(&r, &s, 0, NULL, NULL, &rep, err, sizeof err) != SIDECAR_OK) abort();
    free(o.p);
}

static void check_all(const unsigned char *sc, size_t slen) {
    check_one(pristine, DATA_LEN, sc, slen);
    check_one(flipped, DATA_LEN, sc, slen);
    check_one(pristine, DATA_LEN - 5000, sc, slen);
    check_one(zeroed, DATA_LEN, sc, slen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_all(data, size);
    /* again with the manifest hash made to match, where the header (taken
     * at its word, overflow aside) says it is */
    if (size < HEADER_LEN + MANIFEST_HASH_LEN) return 0;
    uint64_t nb = get64(data + 24), ns = get64(data + 32), p = get16(data + 46), ph, a, b, end;
    if (__builtin_mul_overflow(nb, (uint64_t)HASH_LEN, &a) || __builtin_mul_overflow(ns, p, &ph) ||
        __builtin_mul_overflow(ph, (uint64_t)HASH_LEN, &b) || __builtin_add_overflow(a, b, &end) ||
        __builtin_add_overflow(end, (uint64_t)HEADER_LEN, &end) || end > size - MANIFEST_HASH_LEN)
        return 0;
    unsigned char *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    hash(copy + end, copy, (size_t)end);
    check_all(copy, size);
    free(copy);
    return 0;
}
