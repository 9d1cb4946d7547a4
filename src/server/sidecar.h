/* sidecar.h - tamper-evident sidecars for persistence files.
 *
 * Beside a data file X (an RDB, an AOF base file) the server may write
 * X.sidecar: the file's size, a BLAKE2b-256 hash of every fixed-size block
 * of it and Reed-Solomon parity over stripes of K blocks (P parity blocks
 * each), so that a later check finds which blocks rotted on disk and
 * rebuilds up to P damaged blocks per stripe.  Its manifest (the header
 * and the hashes) carries a hash of itself: a damaged one is detected and
 * the sidecar ignored, never trusted; a damaged parity block is found by
 * its own hash and reported.  Redis ignores the file; it is an inferkv feature.  The byte
 * format is docs/sidecar-format.md.
 *
 * Writing streams: sidecar_observe() is an rdb_observe_fn, so a writer
 * hangs off rdb_save_opts.observe while the RDB is written and is
 * finished into X.sidecar afterwards.  It holds one stripe of data
 * (K * block size) plus the hashes and the parity of the stripes done so
 * far: P/K of the file's size (1/8 with the defaults) and 32 bytes per
 * block.  Checking works stripe by stripe and never loads the data file.
 *
 * Ordering (for the caller): a sidecar describes bytes, not a file name.
 * A stale sidecar beside a new data file of the same size would make the
 * new file's changed blocks look damaged, and a "repair" would bring back
 * the old bytes.  So when X is replaced, remove X.sidecar first
 * (sidecar_remove(), before the rename that installs the new X), then
 * write the new sidecar: after a crash at any point there is either no
 * sidecar (SIDECAR_MISSING) or one that matches. */
#ifndef INFERKV_SIDECAR_H
#define INFERKV_SIDECAR_H

#include <stddef.h>
#include <stdint.h>

#define SIDECAR_SUFFIX ".sidecar"            /* X -> X.sidecar */
#define SIDECAR_DEFAULT_BLOCK (64u * 1024)   /* bytes per block */
#define SIDECAR_MIN_BLOCK (4u * 1024)        /* block sizes: powers of two ... */
#define SIDECAR_MAX_BLOCK (1024u * 1024)     /* ... in [4 KiB, 1 MiB] */
#define SIDECAR_DEFAULT_K 16                 /* data blocks per stripe */
#define SIDECAR_DEFAULT_P 2                  /* parity blocks per stripe */
#define SIDECAR_MAX_K 64                     /* K in [1, 64] */
#define SIDECAR_MAX_P 16                     /* P in [0, 16]; 0: hashes only */

/* ------------------------------------------------------------- writing */

typedef struct sidecar_writer sidecar_writer;

/* A writer for a file that is about to be written; NULL with the reason
 * in err when the parameters are out of range or memory is short. */
sidecar_writer *sidecar_writer_new(size_t block_size, int k, int p, char *err, size_t errlen);
/* The next n bytes of the data file (an rdb_observe_fn: ud is the
 * writer).  An allocation failure here is remembered and reported by
 * sidecar_writer_finish. */
void sidecar_observe(void *w, const void *p, size_t n);
/* Bytes observed so far. */
uint64_t sidecar_writer_size(const sidecar_writer *w);
/* Ends the data and writes the sidecar to sidecar_path through a temp file
 * in the same directory, fsync, rename, fsync of the directory.  0, or -1
 * with the reason in err.  Call at most once; then free the writer. */
int sidecar_writer_finish(sidecar_writer *w, const char *sidecar_path, char *err, size_t errlen);
void sidecar_writer_free(sidecar_writer *w);

/* The sidecar of an existing file: reads data_path and writes
 * sidecar_path (NULL: data_path + SIDECAR_SUFFIX).  0, or -1 with err. */
int sidecar_write_for_file(const char *data_path, const char *sidecar_path, size_t block_size, int k, int p,
                           char *err, size_t errlen);

/* Removes sidecar_path (NULL: data_path + SIDECAR_SUFFIX) durably (the
 * directory is fsynced); a missing file is fine.  0, or -1 with err. */
int sidecar_remove(const char *data_path, const char *sidecar_path, char *err, size_t errlen);

/* ------------------------------------------------------------ checking */

typedef enum sidecar_status {
    SIDECAR_OK = 0,          /* every data block matches its hash */
    SIDECAR_REPAIRABLE,      /* damaged, and parity can rebuild it (repair not asked) */
    SIDECAR_REPAIRED,        /* damaged blocks rebuilt; the data file was replaced */
    SIDECAR_UNREPAIRABLE,    /* more damage in some stripe than its parity covers,
                              * or the file is longer than the sidecar says */
    SIDECAR_MISSING,         /* no sidecar file */
    SIDECAR_BAD_SIDECAR,     /* the sidecar itself is damaged or not one: ignored */
    SIDECAR_ERROR,           /* I/O error, out of memory, data file unreadable */
} sidecar_status;

#define SIDECAR_REPORT_MAX_BAD 64

typedef struct sidecar_report {
    sidecar_status status;
    uint64_t data_size;        /* bytes the sidecar describes */
    uint64_t file_size;        /* bytes the data file has */
    uint64_t nblocks;          /* data blocks the sidecar describes */
    uint32_t block_size;
    int k, p;
    uint64_t bad_blocks;       /* data blocks that did not match (or are missing) */
    int nlisted;               /* the first of them, ascending, 0-based */
    uint64_t bad[SIDECAR_REPORT_MAX_BAD];
    uint64_t bad_parity;       /* parity blocks in the sidecar that did not match */
    uint64_t bad_stripes;      /* stripes with more damage than their parity covers */
    uint64_t first_bad_stripe; /* the first of them (when bad_stripes > 0) */
    int truncated;             /* file_size < data_size */
    int extended;              /* file_size > data_size */
    char summary[320];         /* one line for the log, without a newline */
} sidecar_report;

/* Checks data_path against sidecar_path (NULL: data_path + SIDECAR_SUFFIX)
 * and, when repair is set and the damage is within parity, rewrites
 * data_path with the damaged blocks rebuilt (temp file in the same
 * directory, fsync, rename, fsync of the directory; the file's mode is
 * kept).  Returns the status, also in rep->status (rep may be NULL); err
 * gets the reason for SIDECAR_BAD_SIDECAR and SIDECAR_ERROR. */
sidecar_status sidecar_check(const char *data_path, const char *sidecar_path, int repair, sidecar_report *rep,
                             char *err, size_t errlen);

/* "ok", "repairable", "repaired", "unrepairable", "missing", "bad-sidecar",
 * "error". */
const char *sidecar_status_name(sidecar_status s);

#endif
