/* test_sidecar.c - persistence sidecars (sidecar.c, compiled into this
 * test, with rdb_io.c for the streaming writer under a real rdb_out):
 * round trips at the sizes where blocks and stripes begin and end; damage
 * of one, two and three blocks of a stripe, of whole blocks, spread over
 * many stripes, and by truncation, each either rebuilt byte for byte or
 * refused with the blocks named; an extended file; damaged, cut and
 * foreign sidecars ignored; damaged parity reported while the data is OK;
 * the streaming writer equal to the whole-file one byte for byte; and
 * allocation failures at every step refused cleanly.
 *
 * Most cases use 4 KiB blocks in stripes of K=4 with P=2 parity blocks,
 * so that files of a few stripes stay small. */
#include "test.h"
#include "../../src/server/crc64.c"
#include "../../src/server/rdb_io.c"
#include "../../src/server/sidecar.c"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define BS 4096u
#define K 4
#define P 2

static char dir[256];

static const char *path_in(const char *name) {
    static char bufs[4][600];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, 600, "%s/%s", dir, name);
    return b;
}

/* Deterministic bytes (xorshift) so a failure reproduces. */
static unsigned char *random_bytes(size_t n, uint64_t seed) {
    unsigned char *b = malloc(n ? n : 1);
    if (!b) abort();
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (unsigned char)(x >> 24);
    }
    return b;
}

static int put_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* The whole file (NULL if unreadable); *n its size. */
static unsigned char *get_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    if (!b || (sz > 0 && fread(b, 1, (size_t)sz, f) != (size_t)sz)) abort();
    fclose(f);
    *n = (size_t)sz;
    return b;
}

/* XORs x into the byte at off of a file. */
static void flip(const char *path, uint64_t off, unsigned char x) {
    int fd = open(path, O_RDWR);
    unsigned char c;
    if (fd < 0 || pread(fd, &c, 1, (off_t)off) != 1) abort();
    c ^= x;
    if (pwrite(fd, &c, 1, (off_t)off) != 1) abort();
    close(fd);
}

static void zero_range(const char *path, uint64_t off, size_t n) {
    unsigned char *z = calloc(1, n);
    int fd = open(path, O_RDWR);
    if (!z || fd < 0 || pwrite(fd, z, n, (off_t)off) != (ssize_t)n) abort();
    close(fd);
    free(z);
}

/* Writes data.bin of n random bytes and its sidecar; returns the bytes. */
static unsigned char *make(const char *name, size_t n, uint64_t seed) {
    unsigned char *b = random_bytes(n, seed);
    char err[256];
    if (put_file(path_in(name), b, n) != 0) abort();
    if (sidecar_write_for_file(path_in(name), NULL, BS, K, P, err, sizeof err) != 0) {
        printf("  sidecar_write_for_file: %s\n", err);
        abort();
    }
    return b;
}

/* The file equals want[0..n). */
static int same_as(const char *path, const unsigned char *want, size_t n) {
    size_t got;
    unsigned char *b = get_file(path, &got);
    int ok = b && got == n && (n == 0 || memcmp(b, want, n) == 0);
    free(b);
    return ok;
}

/* Entries in the test directory other than . and .. (a repair or a writer
 * must leave no temp file behind). */
static int dir_entries(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static void clean_dir(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(path_in(e->d_name));
    if (d) closedir(d);
}

static uint64_t sidecar_size(uint64_t n, uint64_t bs, int k, int p) {
    uint64_t nb = (n + bs - 1) / bs, ns = (nb + (uint64_t)k - 1) / (uint64_t)k;
    return 64 + nb * 32 + ns * (uint64_t)p * 32 + 32 + ns * (uint64_t)p * bs;
}

/* Where parity block j of stripe s starts in a sidecar. */
static uint64_t parity_off(uint64_t n, uint64_t s, int j) {
    uint64_t nb = (n + BS - 1) / BS, ns = (nb + K - 1) / K;
    return 64 + nb * 32 + ns * P * 32 + 32 + (s * P + (uint64_t)j) * BS;
}

/* ---------------------------------------------------------------- tests */

/* GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D), written
 * here from the definition, independently of ISA-L. */
static unsigned char gf_mul_ref(unsigned char a, unsigned char b) {
    unsigned r = 0, x = a;
    for (; b; b >>= 1) {
        if (b & 1) r ^= x;
        x <<= 1;
        if (x & 0x100) x ^= 0x11D;
    }
    return (unsigned char)r;
}

static unsigned char gf_inv_ref(unsigned char a) {
    for (unsigned b = 1; b < 256; b++)
        if (gf_mul_ref(a, (unsigned char)b) == 1) return (unsigned char)b;
    return 0;
}

static uint64_t le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* The bytes are what docs/sidecar-format.md says, checked from the
 * definitions rather than through sidecar.c: every header field; each
 * block's hash is BLAKE2b-256 of its bytes (the short last one unpadded);
 * parity byte t of parity block j is the sum over data blocks i of
 * inv((K + j) xor i) * data_i[t] in GF(2^8), the short last stripe padded
 * with zeros; the manifest hash covers header and hash tables. */
static void test_format_matches_doc(void) {
    clean_dir();
    size_t n = K * BS + 2 * BS + 333; /* two stripes, the second of 3 blocks, the last of 333 bytes */
    unsigned char *b = make("data.bin", n, 18);
    size_t sn;
    unsigned char *sc = get_file(path_in("data.bin.sidecar"), &sn);
    CHECK(sc && sn == sidecar_size(n, BS, K, P));
    CHECK(memcmp(sc, "IKVSIDEC", 8) == 0);
    CHECK(le(sc + 8, 4) == 1 && le(sc + 12, 4) == 64);
    CHECK(le(sc + 16, 8) == n && le(sc + 24, 8) == 7 && le(sc + 32, 8) == 2);
    CHECK(le(sc + 40, 4) == BS && le(sc + 44, 2) == K && le(sc + 46, 2) == P);
    CHECK(sc[48] == 1 && sc[49] == 32 && sc[50] == 1 && sc[51] == 0);
    for (int i = 52; i < 64; i++) CHECK(sc[i] == 0);
    unsigned char h[32];
    for (size_t i = 0; i < 7; i++) {
        size_t len = i < 6 ? BS : 333;
        CHECK(blake2b(h, b + i * BS, NULL, 32, len, 0) == 0);
        CHECKF(memcmp(h, sc + 64 + i * 32, 32) == 0, "block %zu", i);
    }
    size_t ph = 64 + 7 * 32, mh = ph + 2 * P * 32, par = mh + 32;
    CHECK(blake2b(h, sc, NULL, 32, mh, 0) == 0);
    CHECK(memcmp(h, sc + mh, 32) == 0);
    for (size_t s = 0; s < 2; s++) {
        for (int j = 0; j < P; j++) {
            const unsigned char *pb = sc + par + (s * P + (size_t)j) * BS;
            CHECK(blake2b(h, pb, NULL, 32, BS, 0) == 0);
            CHECKF(memcmp(h, sc + ph + (s * P + (size_t)j) * 32, 32) == 0, "parity hash %zu/%d", s, j);
            for (size_t t = 0; t < BS; t++) {
                unsigned char v = 0;
                for (int i = 0; i < K; i++) {
                    size_t off = (s * K + (size_t)i) * BS + t;
                    unsigned char d = off < n ? b[off] : 0;
                    v ^= gf_mul_ref(gf_inv_ref((unsigned char)((K + j) ^ i)), d);
                }
                CHECKF(pb[t] == v, "stripe %zu parity %d byte %zu", s, j, t);
            }
        }
    }
    free(sc);
    free(b);
}


/* A sidecar written for a file checks OK against it, at every size where a
 * block or a stripe begins or ends, and has exactly the size the format
 * gives. */
static void test_round_trip_sizes(void) {
    const size_t sizes[] = {0, 1, BS - 1, BS, BS + 1, K * BS - 1, K * BS, K * BS + 1, 5 * K * BS + 2 * BS + 17};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        clean_dir();
        unsigned char *b = make("data.bin", n, 100 + i);
        sidecar_report rep;
        char err[256];
        sidecar_status st = sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err);
        struct stat sb;
        int have = stat(path_in("data.bin.sidecar"), &sb) == 0;
        free(b);
        CHECKF(st == SIDECAR_OK, "size %zu: %s (%s)", n, sidecar_status_name(st), rep.summary);
        CHECKF(rep.status == st && rep.bad_blocks == 0 && rep.bad_parity == 0, "size %zu", n);
        CHECKF(rep.nblocks == (n + BS - 1) / BS && rep.data_size == n && rep.file_size == n, "size %zu", n);
        CHECKF(have && (uint64_t)sb.st_size == sidecar_size(n, BS, K, P), "size %zu: sidecar of %lld bytes", n,
               (long long)sb.st_size);
        const char *want = n == 0 ? "the empty file matches its sidecar"
                           : n <= BS ? "the only block (4 KiB) matches its hash"
                                     : "match their hashes";
        CHECKF(strstr(rep.summary, want), "size %zu: %s", n, rep.summary);
        CHECKF(dir_entries() == 2, "size %zu: temp files left", n);
    }
}

/* The defaults (64 KiB blocks, K=16, P=2) over a file of several stripes
 * and a short last one: OK, then one damaged block rebuilt. */
static void test_defaults(void) {
    clean_dir();
    size_t n = 3 * 16 * 65536 + 5 * 65536 + 123;
    unsigned char *b = random_bytes(n, 7);
    char err[256];
    CHECK(put_file(path_in("d.rdb"), b, n) == 0);
    int rc = sidecar_write_for_file(path_in("d.rdb"), NULL, SIDECAR_DEFAULT_BLOCK, SIDECAR_DEFAULT_K,
                                    SIDECAR_DEFAULT_P, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    sidecar_report rep;
    CHECK(sidecar_check(path_in("d.rdb"), NULL, 0, &rep, err, sizeof err) == SIDECAR_OK);
    CHECK(rep.block_size == 65536 && rep.k == 16 && rep.p == 2 && rep.nblocks == 54);
    flip(path_in("d.rdb"), 50 * 65536 + 999, 0x01);
    CHECK(sidecar_check(path_in("d.rdb"), NULL, 1, &rep, err, sizeof err) == SIDECAR_REPAIRED);
    CHECKF(strcmp(rep.summary, "block 50 of 54 (64 KiB each) did not match its hash; repaired from parity") == 0,
           "%s", rep.summary);
    CHECK(same_as(path_in("d.rdb"), b, n));
    free(b);
}

/* Recomputes a sidecar's manifest hash after an edit (where the header
 * says it is), so that checks behind the hash can be reached. */
static void rehash_manifest(const char *path) {
    size_t n;
    unsigned char *sc = get_file(path, &n);
    if (!sc || n < 64) abort();
    uint64_t mh = 64 + le(sc + 24, 8) * 32 + le(sc + 32, 8) * le(sc + 46, 2) * 32;
    if (mh + 32 > n || blake2b(sc + mh, sc, NULL, 32, mh, 0) != 0) abort();
    if (put_file(path, sc, n) != 0) abort();
    free(sc);
}

/* Sets the n-byte little-endian field at off of a file to v. */
static void set_field(const char *path, uint64_t off, int n, uint64_t v) {
    int fd = open(path, O_RDWR);
    unsigned char b[8];
    for (int i = 0; i < n; i++) b[i] = (unsigned char)(v >> (8 * i));
    if (fd < 0 || pwrite(fd, b, (size_t)n, (off_t)off) != n) abort();
    close(fd);
}

/* Every header field is checked on its own, behind the manifest hash: a
 * sidecar whose hash was made to match still names what is wrong. */
static void test_header_fields(void) {
    clean_dir();
    size_t n = 2 * K * BS + 7;
    unsigned char *b = make("data.bin", n, 19);
    size_t sn;
    unsigned char *good = get_file(path_in("data.bin.sidecar"), &sn);
    CHECK(good);
    const struct {
        uint64_t off;
        int len;
        uint64_t v;
        const char *why;
    } cases[] = {
        {8, 4, 2, "version 2"},          {12, 4, 72, "header length 72"}, {16, 8, n + BS, "do not fit"},
        {16, 8, UINT64_MAX, "do not fit"}, {24, 8, 8, "do not fit"},     {32, 8, 4, "do not fit"},
        {40, 4, 3000, "power of two"},   {40, 4, 8192, "do not fit"},      {40, 4, 1u << 21, "power of two"},
        {44, 2, 0, "between 1 and 64"},  {44, 2, 65, "out of range"},      {44, 2, 2, "do not fit"},
        {46, 2, 17, "out of range"},     {46, 2, 3, "different size"},     {48, 1, 2, "hash algorithm"},
        {49, 1, 64, "hash algorithm"},   {50, 1, 0, "parity code"},        {51, 1, 1, "flags"},
        {52, 1, 1, "reserved"},          {63, 1, 0x80, "reserved"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(put_file(path_in("data.bin.sidecar"), good, sn) == 0);
        set_field(path_in("data.bin.sidecar"), cases[i].off, cases[i].len, cases[i].v);
        rehash_manifest(path_in("data.bin.sidecar"));
        sidecar_report rep;
        char err[256];
        sidecar_status st = sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err);
        CHECKF(st == SIDECAR_BAD_SIDECAR && strstr(err, cases[i].why), "case %zu: %s: %s", i,
               sidecar_status_name(st), err);
    }
    /* with the hash made to match, a data size 1 byte off is believed:
     * the file then looks extended, which is reported, not "repaired" */
    CHECK(put_file(path_in("data.bin.sidecar"), good, sn) == 0);
    set_field(path_in("data.bin.sidecar"), 16, 8, n - 1);
    rehash_manifest(path_in("data.bin.sidecar"));
    sidecar_report rep;
    char err[256];
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_UNREPAIRABLE);
    CHECK(rep.extended && same_as(path_in("data.bin"), b, n));
    free(good);
    free(b);
}

/* A sidecar whose parity was altered with every hash made to match (a
 * forged or buggy sidecar): a rebuild from that parity does not reproduce
 * the block's hash, so nothing is "repaired" with wrong bytes. */
static void test_rebuilt_block_must_match(void) {
    clean_dir();
    size_t n = 2 * K * BS;
    unsigned char *b = make("data.bin", n, 20);
    const char *scp = path_in("data.bin.sidecar");
    uint64_t po = parity_off(n, 0, 0);
    flip(scp, po + 10, 0x01);
    size_t sn;
    unsigned char *sc = get_file(scp, &sn);
    CHECK(sc);
    uint64_t phash = 64 + 8 * 32; /* parity hash (0, 0) */
    CHECK(blake2b(sc + phash, sc + po, NULL, 32, BS, 0) == 0);
    CHECK(put_file(scp, sc, sn) == 0);
    free(sc);
    rehash_manifest(scp);
    sidecar_report rep;
    char err[256];
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_OK);
    flip(path_in("data.bin"), 2 * BS + 10, 0x01);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_UNREPAIRABLE);
    CHECKF(strstr(rep.summary, "its parity did not rebuild"), "%s", rep.summary);
    CHECK(!same_as(path_in("data.bin"), b, n) && dir_entries() == 2);
    free(b);
}

/* A repair that cannot write (the file size limit stops the temp file
 * half way) fails with the reason, leaves the damaged file as it was and
 * no temp file; a repair keeps the file's mode. */
static void test_repair_write_failure_and_mode(void) {
    clean_dir();
    size_t n = 4 * K * BS;
    unsigned char *b = make("data.bin", n, 21);
    flip(path_in("data.bin"), 3 * K * BS, 0x01);
    size_t n0;
    unsigned char *before = get_file(path_in("data.bin"), &n0);
    CHECK(before);
    struct rlimit old, lim;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = n / 2;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    sidecar_report rep;
    char err[256];
    sidecar_status st = sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    int unchanged = same_as(path_in("data.bin"), before, n0);
    free(before);
    CHECKF(st == SIDECAR_ERROR && strstr(err, "writing the repaired file"), "%s: %s", sidecar_status_name(st), err);
    CHECK(unchanged && dir_entries() == 2);
    CHECK(chmod(path_in("data.bin"), 0600) == 0);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_REPAIRED);
    struct stat sb;
    CHECK(stat(path_in("data.bin"), &sb) == 0 && (sb.st_mode & 07777) == 0600);
    CHECK(same_as(path_in("data.bin"), b, n));
    free(b);
}

/* One flipped bit: found and named without repair (file untouched), then
 * rebuilt byte for byte with repair, after which the file checks OK. */
static void test_one_bad_block(void) {
    clean_dir();
    size_t n = 4 * K * BS + 100;
    unsigned char *b = make("data.bin", n, 1);
    flip(path_in("data.bin"), 5 * BS + 77, 0x20);
    sidecar_report rep;
    char err[256];
    sidecar_status st = sidecar_check(path_in("data.bin"), NULL, 0, &rep, err, sizeof err);
    CHECKF(st == SIDECAR_REPAIRABLE, "%s", sidecar_status_name(st));
    CHECK(rep.bad_blocks == 1 && rep.nlisted == 1 && rep.bad[0] == 5);
    CHECK(!same_as(path_in("data.bin"), b, n)); /* not repaired when not asked */
    st = sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err);
    CHECKF(st == SIDECAR_REPAIRED, "%s", sidecar_status_name(st));
    CHECK(same_as(path_in("data.bin"), b, n));
    CHECK(dir_entries() == 2);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_OK);
    free(b);
}

/* Two damaged blocks of one stripe (P=2): rebuilt; the summary is the log
 * line the server prints. */
static void test_two_bad_blocks_one_stripe(void) {
    clean_dir();
    size_t n = 4 * K * BS + 100;
    unsigned char *b = make("data.bin", n, 2);
    flip(path_in("data.bin"), 4 * BS + 1, 0xff);
    flip(path_in("data.bin"), 6 * BS + BS - 1, 0x01);
    sidecar_report rep;
    char err[256];
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_REPAIRED);
    CHECK(rep.bad_blocks == 2 && rep.bad[0] == 4 && rep.bad[1] == 6);
    CHECKF(strcmp(rep.summary, "blocks 4, 6 of 17 (4 KiB each) did not match their hashes; repaired from parity") ==
               0,
           "%s", rep.summary);
    CHECK(same_as(path_in("data.bin"), b, n));
    free(b);
}

/* A whole block zeroed (a lost page), the short last block damaged, and
 * the first block of a file of one block: all rebuilt. */
static void test_zeroed_and_edge_blocks(void) {
    clean_dir();
    size_t n = 3 * K * BS + 2 * BS + 10; /* last stripe: 3 blocks, the last of 10 bytes */
    unsigned char *b = make("data.bin", n, 3);
    sidecar_report rep;
    char err[256];
    zero_range(path_in("data.bin"), 2 * BS, BS);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_REPAIRED);
    CHECK(rep.bad_blocks == 1 && rep.bad[0] == 2);
    CHECK(same_as(path_in("data.bin"), b, n));
    flip(path_in("data.bin"), n - 1, 0x80);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_REPAIRED);
    CHECK(rep.bad_blocks == 1 && rep.bad[0] == (n - 1) / BS);
    CHECK(same_as(path_in("data.bin"), b, n));
    free(b);
    clean_dir();
    b = make("one.bin", 100, 4);
    flip(path_in("one.bin"), 0, 0x01);
    CHECK(sidecar_check(path_in("one.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_REPAIRED);
    CHECK(same_as(path_in("one.bin"), b, 100));
    free(b);
}

/* Three damaged blocks in one stripe are more than P=2 rebuild: refused,
 * the blocks named, the file left as it was, no temp file left. */
static void test_three_bad_blocks_unrepairable(void) {
    clean_dir();
    size_t n = 4 * K * BS + 100;
    unsigned char *b = make("data.bin", n, 5);
    flip(path_in("data.bin"), 8 * BS, 1);
    flip(path_in("data.bin"), 9 * BS + 5, 2);
    flip(path_in("data.bin"), 11 * BS + 7, 4);
    size_t n0;
    unsigned char *before = get_file(path_in("data.bin"), &n0);
    sidecar_report rep;
    char err[256];
    sidecar_status st = sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err);
    int unchanged = same_as(path_in("data.bin"), before, n0);
    free(before);
    free(b);
    CHECKF(st == SIDECAR_UNREPAIRABLE, "%s", sidecar_status_name(st));
    CHECK(rep.bad_blocks == 3 && rep.nlisted == 3 && rep.bad[0] == 8 && rep.bad[1] == 9 && rep.bad[2] == 11);
    CHECK(rep.bad_stripes == 1 && rep.first_bad_stripe == 2);
    CHECKF(strstr(rep.summary, "blocks 8, 9, 11 of 17") && strstr(rep.summary, "stripe 2 has 3 damaged data") &&
               strstr(rep.summary, "unrepairable"),
           "%s", rep.summary);
    CHECK(unchanged);
    CHECK(dir_entries() == 2);
}

/* Two damaged blocks in every stripe, the short last one included: each
 * stripe is rebuilt from its own parity. */
static void test_damage_in_many_stripes(void) {
    clean_dir();
    size_t n = 6 * K * BS + 3 * BS + 1; /* 7 stripes, the last of 4 blocks, the last block of 1 byte */
    unsigned char *b = make("data.bin", n, 6);
    uint64_t nb = (n + BS - 1) / BS;
    for (uint64_t s = 0; s < 7; s++) {
        flip(path_in("data.bin"), (s * K + s % K) * BS + s, 0x10);
        uint64_t other = s * K + (s + 2) % K;
        if (other < nb) flip(path_in("data.bin"), other * BS, 0x08);
    }
    sidecar_report rep;
    char err[256];
    CHECK(sidecar_check(path_in("data.bin"), NULL, 0, &rep, err, sizeof err) == SIDECAR_REPAIRABLE);
    CHECK(rep.bad_blocks == 14 && rep.bad_stripes == 0);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_REPAIRED);
    CHECK(same_as(path_in("data.bin"), b, n));
    CHECKF(strstr(rep.summary, "and 6 more of 28"), "%s", rep.summary);
    free(b);
}

/* More bad blocks than the report lists: the count is exact, the list
 * holds the first SIDECAR_REPORT_MAX_BAD in order, the summary shows the
 * first few and how many more. */
static void test_many_bad_blocks_listed(void) {
    clean_dir();
    size_t n = 40 * K * BS; /* 160 blocks */
    unsigned char *b = make("data.bin", n, 22);
    for (uint64_t s = 0; s < 40; s++) {
        flip(path_in("data.bin"), (s * K + 1) * BS + 5, 0x01);
        flip(path_in("data.bin"), (s * K + 3) * BS + 9, 0x02);
    }
    sidecar_report rep;
    char err[256];
    CHECK(sidecar_check(path_in("data.bin"), NULL, 0, &rep, err, sizeof err) == SIDECAR_REPAIRABLE);
    CHECK(rep.bad_blocks == 80 && rep.nlisted == SIDECAR_REPORT_MAX_BAD);
    for (int i = 0; i < rep.nlisted; i++) CHECKF(rep.bad[i] == (uint64_t)(i / 2) * K + (i % 2 ? 3 : 1), "entry %d", i);
    CHECKF(strstr(rep.summary, "blocks 1, 3, 5, 7, 9, 11, 13, 15 and 72 more of 160 (4 KiB each)"), "%s",
           rep.summary);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_REPAIRED);
    CHECK(same_as(path_in("data.bin"), b, n));
    free(b);
}

/* A cut-short file: the missing blocks count as damaged.  Within parity it
 * is rebuilt to its full length; beyond, refused and left alone. */
static void test_truncated(void) {
    clean_dir();
    size_t n = 2 * K * BS + 3 * BS + 50; /* last stripe: 4 blocks, the last of 50 bytes */
    unsigned char *b = make("data.bin", n, 7);
    sidecar_report rep;
    char err[256];
    CHECK(truncate(path_in("data.bin"), (off_t)(n - 50 - BS / 2)) == 0); /* blocks 10 (half) and 11 */
    CHECK(sidecar_check(path_in("data.bin"), NULL, 0, &rep, err, sizeof err) == SIDECAR_REPAIRABLE);
    CHECK(rep.truncated && rep.bad_blocks == 2 && rep.bad[0] == 10 && rep.bad[1] == 11);
    CHECKF(strstr(rep.summary, "short of the"), "%s", rep.summary);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_REPAIRED);
    CHECK(same_as(path_in("data.bin"), b, n));
    /* three blocks of the last stripe gone */
    CHECK(truncate(path_in("data.bin"), (off_t)(9 * BS)) == 0);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_UNREPAIRABLE);
    CHECK(rep.truncated && rep.bad_blocks == 3 && rep.bad_stripes == 1 && rep.first_bad_stripe == 2);
    struct stat sb;
    CHECK(stat(path_in("data.bin"), &sb) == 0 && sb.st_size == 9 * BS);
    /* a one-block file emptied entirely is still within parity */
    clean_dir();
    free(b);
    b = make("one.bin", 300, 8);
    CHECK(truncate(path_in("one.bin"), 0) == 0);
    CHECK(sidecar_check(path_in("one.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_REPAIRED);
    CHECK(same_as(path_in("one.bin"), b, 300));
    free(b);
}

/* Bytes appended: reported as unrepairable (the sidecar cannot say what
 * they should be) with the intact start said so; the file is left. */
static void test_extended(void) {
    clean_dir();
    size_t n = K * BS + 10;
    unsigned char *b = make("data.bin", n, 9);
    FILE *f = fopen(path_in("data.bin"), "ab");
    CHECK(f && fwrite("tail", 1, 4, f) == 4 && fclose(f) == 0);
    sidecar_report rep;
    char err[256];
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_UNREPAIRABLE);
    CHECK(rep.extended && !rep.truncated && rep.bad_blocks == 0 && rep.file_size == n + 4);
    CHECKF(strstr(rep.summary, "4 more than") && strstr(rep.summary, "its 5 blocks"), "%s", rep.summary);
    size_t got;
    unsigned char *now = get_file(path_in("data.bin"), &got);
    CHECK(now && got == n + 4 && memcmp(now, b, n) == 0);
    free(now);
    free(b);
}

/* A damaged sidecar is never trusted: a flipped byte anywhere in the
 * manifest, a cut or lengthened file, another file's bytes, an empty file
 * all give BAD_SIDECAR with a reason, and the data file is left alone even
 * when it is damaged too. */
static void test_bad_sidecar(void) {
    clean_dir();
    size_t n = 2 * K * BS + 7;
    unsigned char *b = make("data.bin", n, 10);
    size_t sn;
    unsigned char *good = get_file(path_in("data.bin.sidecar"), &sn);
    CHECK(good);
    uint64_t manifest_end = 64 + 9 * 32 + 3 * P * 32 + 32;
    const uint64_t offs[] = {0, 7, 8, 12, 16, 24, 32, 40, 44, 46, 48, 49, 50, 51, 60, 64, 64 + 31, 64 + 9 * 32,
                             manifest_end - 32, manifest_end - 1};
    flip(path_in("data.bin"), 3, 1); /* repairable damage that must not be "repaired" from a bad sidecar */
    sidecar_report rep;
    char err[256];
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        CHECK(put_file(path_in("data.bin.sidecar"), good, sn) == 0);
        flip(path_in("data.bin.sidecar"), offs[i], 0x04);
        sidecar_status st = sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err);
        CHECKF(st == SIDECAR_BAD_SIDECAR && err[0] && strstr(rep.summary, "data.bin.sidecar ignored: "),
               "offset %llu: %s (%s)",
               (unsigned long long)offs[i], sidecar_status_name(st), rep.summary);
    }
    CHECK(put_file(path_in("data.bin.sidecar"), good, sn - 1) == 0);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_BAD_SIDECAR);
    CHECK(strstr(err, "different size"));
    unsigned char *longer = malloc(sn + 1);
    CHECK(longer);
    memcpy(longer, good, sn);
    longer[sn] = 0;
    CHECK(put_file(path_in("data.bin.sidecar"), longer, sn + 1) == 0);
    free(longer);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_BAD_SIDECAR);
    CHECK(put_file(path_in("data.bin.sidecar"), "", 0) == 0);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_BAD_SIDECAR);
    CHECK(put_file(path_in("data.bin.sidecar"), b, n) == 0);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_BAD_SIDECAR);
    CHECK(strstr(err, "magic"));
    /* the good one still works, and repairs */
    CHECK(put_file(path_in("data.bin.sidecar"), good, sn) == 0);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_REPAIRED);
    CHECK(same_as(path_in("data.bin"), b, n));
    free(good);
    free(b);
}

/* No sidecar: MISSING, nothing touched; a missing data file beside a
 * sidecar is an error, not a repair. */
static void test_missing(void) {
    clean_dir();
    sidecar_report rep;
    char err[256];
    CHECK(put_file(path_in("alone.bin"), "abc", 3) == 0);
    CHECK(sidecar_check(path_in("alone.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_MISSING);
    CHECK(strstr(rep.summary, "no sidecar"));
    CHECK(dir_entries() == 1);
    unsigned char *b = make("gone.bin", 10, 11);
    free(b);
    CHECK(unlink(path_in("gone.bin")) == 0);
    CHECK(sidecar_check(path_in("gone.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_ERROR);
    CHECK(strstr(err, "No such file"));
    CHECK(dir_entries() == 2); /* alone.bin, gone.bin.sidecar: nothing made */
    /* sidecar_remove: gone, and gone again is fine */
    b = make("x.bin", 10, 12);
    free(b);
    CHECK(sidecar_remove(path_in("x.bin"), NULL, err, sizeof err) == 0);
    CHECK(sidecar_check(path_in("x.bin"), NULL, 0, &rep, err, sizeof err) == SIDECAR_MISSING);
    CHECK(sidecar_remove(path_in("x.bin"), NULL, err, sizeof err) == 0);
}

/* Damaged parity alone: the data is OK (and said so), the damaged parity
 * blocks are counted and the summary asks for a new sidecar; with a data
 * block damaged in the same stripe the remaining parity still rebuilds it,
 * and with both parity blocks of that stripe damaged it cannot. */
static void test_parity_damage(void) {
    clean_dir();
    size_t n = 3 * K * BS + 5;
    unsigned char *b = make("data.bin", n, 13);
    sidecar_report rep;
    char err[256];
    flip(path_in("data.bin.sidecar"), parity_off(n, 1, 0) + 100, 0x40);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_OK);
    CHECK(rep.bad_parity == 1 && rep.bad_blocks == 0);
    CHECKF(strstr(rep.summary, "1 parity block in the sidecar did not match: rewrite it"), "%s", rep.summary);
    flip(path_in("data.bin"), 1 * K * BS + 2 * BS, 0x01); /* block 6, stripe 1 */
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_REPAIRED);
    CHECK(same_as(path_in("data.bin"), b, n));
    flip(path_in("data.bin.sidecar"), parity_off(n, 1, 1), 0x40);
    flip(path_in("data.bin"), 1 * K * BS + 2 * BS, 0x01);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_UNREPAIRABLE);
    CHECKF(rep.bad_parity == 2 && strstr(rep.summary, "1 damaged data and 2 damaged parity blocks"), "%s",
           rep.summary);
    /* a sidecar cut inside the parity is a sidecar of the wrong size */
    CHECK(truncate(path_in("data.bin.sidecar"), (off_t)parity_off(n, 2, 0)) == 0);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, &rep, err, sizeof err) == SIDECAR_BAD_SIDECAR);
    free(b);
}

/* Hashes only (P=0): damage is found, never repaired. */
static void test_no_parity(void) {
    clean_dir();
    size_t n = 2 * BS + 3;
    unsigned char *b = random_bytes(n, 14);
    char err[256];
    CHECK(put_file(path_in("d"), b, n) == 0);
    CHECK(sidecar_write_for_file(path_in("d"), NULL, BS, 8, 0, err, sizeof err) == 0);
    sidecar_report rep;
    CHECK(sidecar_check(path_in("d"), NULL, 1, &rep, err, sizeof err) == SIDECAR_OK);
    flip(path_in("d"), BS, 1);
    CHECK(sidecar_check(path_in("d"), NULL, 1, &rep, err, sizeof err) == SIDECAR_UNREPAIRABLE);
    CHECK(rep.bad_blocks == 1 && rep.bad[0] == 1);
    free(b);
}

/* The streaming writer fed in many small, uneven pieces writes the same
 * bytes as sidecar_write_for_file, for several parameter sets. */
static void test_streaming_equals_whole_file(void) {
    const struct {
        size_t n, bs;
        int k, p;
    } cases[] = {{0, BS, K, P},          {1, BS, K, P},       {10 * BS + 3, BS, K, P}, {K * BS, BS, K, P},
                 {70000, 8192, 3, 1},    {200000, BS, 1, 16}, {300000, 65536, 16, 2}, {50000, BS, 64, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        clean_dir();
        size_t n = cases[c].n;
        unsigned char *b = random_bytes(n, 200 + c);
        char err[256];
        CHECK(put_file(path_in("f"), b, n) == 0);
        CHECK(sidecar_write_for_file(path_in("f"), path_in("whole"), cases[c].bs, cases[c].k, cases[c].p, err,
                                     sizeof err) == 0);
        sidecar_writer *w = sidecar_writer_new(cases[c].bs, cases[c].k, cases[c].p, err, sizeof err);
        CHECK(w);
        size_t off = 0, step = 0;
        while (off < n) {
            size_t piece = (step * 7919) % 5000 + (step % 3 == 0 ? 0 : 1); /* includes empty pieces */
            if (piece > n - off) piece = n - off;
            sidecar_observe(w, b + off, piece);
            off += piece;
            step++;
        }
        CHECK(sidecar_writer_size(w) == n);
        int rc = sidecar_writer_finish(w, path_in("stream"), err, sizeof err);
        sidecar_writer_free(w);
        CHECKF(rc == 0, "%s", err);
        size_t n1, n2;
        unsigned char *x = get_file(path_in("whole"), &n1), *y = get_file(path_in("stream"), &n2);
        int same = x && y && n1 == n2 && memcmp(x, y, n1) == 0;
        free(x);
        free(y);
        free(b);
        CHECKF(same, "case %zu", c);
        sidecar_report rep;
        CHECKF(sidecar_check(path_in("f"), path_in("stream"), 0, &rep, err, sizeof err) == SIDECAR_OK, "case %zu",
               c);
    }
}

/* Hung off an rdb_out as its observer (the way the server writes an RDB
 * and its sidecar in one pass): the sidecar matches the bytes the sink got. */
static void test_rdb_out_observer(void) {
    clean_dir();
    char err[256];
    sidecar_writer *w = sidecar_writer_new(BS, K, P, err, sizeof err);
    CHECK(w);
    dstr d = dstr_empty();
    rdb_out o;
    CHECK(rdbo_init(&o, rdbo_sink_dstr, &d, 1, 1) == OK);
    o.observe = sidecar_observe;
    o.observe_ud = w;
    unsigned char *b = random_bytes(3 << 20, 15);
    for (int i = 0; i < 3000; i++) {
        rdbo_string(&o, b + (size_t)i * 1000, (size_t)(i % 997));
        rdbo_len(&o, (uint64_t)i * 7919);
    }
    rdbo_raw(&o, b, 2 << 20); /* larger than the writer's buffer */
    uint64_t crc = rdbo_crc(&o);
    rdbo_raw(&o, &crc, 8);
    CHECK(rdbo_flush(&o) == OK);
    rdbo_release(&o);
    free(b);
    CHECK(put_file(path_in("dump.rdb"), d, dstr_len(d)) == 0);
    CHECK(sidecar_writer_size(w) == dstr_len(d));
    dstr_free(d);
    int rc = sidecar_writer_finish(w, path_in("dump.rdb.sidecar"), err, sizeof err);
    sidecar_writer_free(w);
    CHECKF(rc == 0, "%s", err);
    sidecar_report rep;
    CHECK(sidecar_check(path_in("dump.rdb"), NULL, 0, &rep, err, sizeof err) == SIDECAR_OK);
    CHECK(rep.nblocks > 500);
}

/* Out-of-range parameters are refused with a reason; finish twice too. */
static void test_bad_parameters(void) {
    char err[256];
    const struct {
        size_t bs;
        int k, p;
    } bad[] = {{0, K, P}, {2048, K, P}, {5000, K, P}, {2u << 20, K, P}, {BS, 0, P}, {BS, 65, P}, {BS, K, -1},
               {BS, K, 17}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        sidecar_writer *w = sidecar_writer_new(bad[i].bs, bad[i].k, bad[i].p, err, sizeof err);
        CHECKF(!w && err[0], "case %zu", i);
    }
    clean_dir();
    sidecar_writer *w = sidecar_writer_new(SIDECAR_MAX_BLOCK, SIDECAR_MAX_K, SIDECAR_MAX_P, err, sizeof err);
    CHECK(w);
    sidecar_observe(w, "x", 1);
    CHECK(sidecar_writer_finish(w, path_in("s"), err, sizeof err) == 0);
    CHECK(sidecar_writer_finish(w, path_in("s"), err, sizeof err) == -1);
    sidecar_writer_free(w);
    /* a sidecar path in a directory that does not exist */
    w = sidecar_writer_new(BS, K, P, err, sizeof err);
    CHECK(w);
    CHECK(sidecar_writer_finish(w, path_in("no/such/dir/s"), err, sizeof err) == -1);
    CHECK(strstr(err, "No such file"));
    sidecar_writer_free(w);
}

/* Every allocation failing in turn: the writer, the finish and the check
 * fail with a reason (never crash, never leak: ASan's leak check runs this
 * too), and once allocations succeed again everything works. */
static void test_allocation_failures(void) {
    clean_dir();
    size_t n = 3 * K * BS + 9;
    unsigned char *b = make("data.bin", n, 16);
    flip(path_in("data.bin"), 2 * BS, 1);
    char err[256];
    int writer_failures = 0, check_failures = 0;
    for (long i = 1; i < 40; i++) {
        km_fail_after(i);
        err[0] = 0;
        int rc = sidecar_write_for_file(path_in("data.bin"), path_in("other.sidecar"), BS, K, P, err, sizeof err);
        km_fail_after(0);
        if (rc != 0) {
            writer_failures++;
            CHECKF(strstr(err, "out of memory") || strstr(err, "Cannot allocate"), "after %ld: %s", i, err);
        }
        sidecar_report rep;
        km_fail_after(i);
        sidecar_status st = sidecar_check(path_in("data.bin"), NULL, 0, &rep, err, sizeof err);
        km_fail_after(0);
        if (st == SIDECAR_ERROR) {
            check_failures++;
            CHECKF(strstr(err, "out of memory"), "after %ld: %s", i, err);
        } else {
            CHECKF(st == SIDECAR_REPAIRABLE, "after %ld: %s", i, sidecar_status_name(st));
        }
    }
    CHECK(writer_failures > 3 && check_failures > 3);
    CHECK(sidecar_check(path_in("data.bin"), NULL, 1, NULL, err, sizeof err) == SIDECAR_REPAIRED);
    CHECK(same_as(path_in("data.bin"), b, n));
    CHECK(dir_entries() == 3);
    free(b);
}

/* The in-memory path (what the fuzz target drives) agrees with the file
 * path, and its repaired output checks OK. */
static int mem_out(void *ud, const void *p, size_t n) {
    dstr *d = ud;
    dstr r = dstr_catlen(*d, p, n);
    if (!r) return -1;
    *d = r;
    return 0;
}

static void test_memory_sources(void) {
    clean_dir();
    size_t n = 2 * K * BS + 3 * BS;
    unsigned char *b = make("data.bin", n, 17);
    size_t sn;
    unsigned char *sc = get_file(path_in("data.bin.sidecar"), &sn);
    CHECK(sc);
    b[BS + 3] ^= 1;
    b[3 * BS + 3] ^= 1;
    src data = {.fd = -1, .mem = b, .size = n}, side = {.fd = -1, .mem = sc, .size = sn};
    sidecar_report rep;
    memset(&rep, 0, sizeof rep);
    char err[256];
    dstr out = dstr_empty();
    CHECK(check_sources(&data, &side, 1, mem_out, &out, &rep, err, sizeof err) == SIDECAR_REPAIRED);
    CHECK(rep.bad_blocks == 2 && dstr_len(out) == n);
    b[BS + 3] ^= 1;
    b[3 * BS + 3] ^= 1;
    CHECK(memcmp(out, b, n) == 0);
    dstr_free(out);
    free(sc);
    free(b);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_sidecar.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    TEST_RUN(test_round_trip_sizes);
    TEST_RUN(test_defaults);
    TEST_RUN(test_format_matches_doc);
    TEST_RUN(test_one_bad_block);
    TEST_RUN(test_two_bad_blocks_one_stripe);
    TEST_RUN(test_zeroed_and_edge_blocks);
    TEST_RUN(test_three_bad_blocks_unrepairable);
    TEST_RUN(test_damage_in_many_stripes);
    TEST_RUN(test_many_bad_blocks_listed);
    TEST_RUN(test_truncated);
    TEST_RUN(test_extended);
    TEST_RUN(test_bad_sidecar);
    TEST_RUN(test_header_fields);
    TEST_RUN(test_rebuilt_block_must_match);
    TEST_RUN(test_repair_write_failure_and_mode);
    TEST_RUN(test_missing);
    TEST_RUN(test_parity_damage);
    TEST_RUN(test_no_parity);
    TEST_RUN(test_streaming_equals_whole_file);
    TEST_RUN(test_rdb_out_observer);
    TEST_RUN(test_bad_parameters);
    TEST_RUN(test_allocation_failures);
    TEST_RUN(test_memory_sources);
    clean_dir();
    rmdir(dir);
    return TEST_DONE();
}
