/* persist_sidecar.c - rdb-sidecar: tamper evidence for the RDB and for AOF
 * base files, on top of the sidecar library (sidecar.c).
 *
 * Saving.  Beside every dump (dir/dbfilename) and every AOF base file the
 * server writes NAME.sidecar: BLAKE2b hashes of fixed-size blocks and
 * Reed-Solomon parity, computed from the bytes as they are written
 * (rdb_save_opts.observe), so no second read of the file.  A sidecar
 * describes bytes, not a name: the old sidecar is removed before a new
 * file is installed under the name and the new one is written after, so a
 * crash in between leaves no sidecar rather than a wrong one.  That is
 * done even with rdb-sidecar no, so turning the option back on never
 * finds a stale sidecar beside a newer dump.
 *
 * Loading (rdb-sidecar yes).  Before the file is read, its blocks are
 * checked against the sidecar.  Damaged blocks - flipped bits, a zeroed
 * range, a cut-off tail - are rebuilt from parity when each stripe has at
 * most as many as it has parity blocks, and the log names them; more than
 * that and the server does not start (a partial dataset is never served).
 * Where the file itself still loads whole (its CRC64 checks out) but the
 * sidecar disagrees, the file wins: the sidecar is the stale or damaged
 * one.  A sidecar that fails its own hash is ignored with a warning.
 * Redis ignores sidecars; they change nothing in how it reads our files. */
#include "rdb.h"
#include "sidecar.h"

#include <stdio.h>
#include <string.h>

int persist_sidecar_enabled = 0;

sidecar_writer *persist_sidecar_start(const char *data_path, rdb_save_opts *opts) {
    char err[256];
    if (sidecar_remove(data_path, NULL, err, sizeof err) != 0)
        log_msg(LL_WARNING, "rdb-sidecar: cannot remove the old sidecar of %s: %s", data_path, err);
    if (!persist_sidecar_enabled) return NULL;
    sidecar_writer *w = sidecar_writer_new(SIDECAR_DEFAULT_BLOCK, SIDECAR_DEFAULT_K, SIDECAR_DEFAULT_P, err,
                                           sizeof err);
    if (!w) {
        log_msg(LL_WARNING, "rdb-sidecar: %s; %s is written without a sidecar", err, data_path);
        return NULL;
    }
    opts->observe = sidecar_observe;
    opts->observe_ud = w;
    return w;
}

void persist_sidecar_finish(sidecar_writer *w, const char *data_path, int ok) {
    if (!w) return;
    char path[1100], err[256];
    snprintf(path, sizeof path, "%s%s", data_path, SIDECAR_SUFFIX);
    if (ok && sidecar_writer_finish(w, path, err, sizeof err) != 0)
        log_msg(LL_WARNING, "rdb-sidecar: cannot write %s: %s", path, err);
    sidecar_writer_free(w);
}

int persist_sidecar_check(const char *data_path, int (*loads_whole)(const char *path), char *err, size_t errlen) {
    if (!persist_sidecar_enabled) return OK;
    sidecar_report rep;
    char why[256] = "";
    sidecar_status st = sidecar_check(data_path, NULL, 0, &rep, why, sizeof why);
    switch (st) {
    case SIDECAR_OK:
        log_msg(LL_NOTICE, "rdb-sidecar: %s: %s", data_path, rep.summary);
        return OK;
    case SIDECAR_MISSING:
        log_msg(LL_NOTICE, "rdb-sidecar: %s has no sidecar: loaded unchecked", data_path);
        return OK;
    case SIDECAR_BAD_SIDECAR:
    case SIDECAR_ERROR:
        log_msg(LL_WARNING, "rdb-sidecar: the sidecar of %s is not usable (%s): ignored", data_path,
                why[0] ? why : rep.summary);
        return OK;
    default:
        break;
    }
    /* damaged blocks: unless the file is whole by its own checksum */
    if (loads_whole && loads_whole(data_path)) {
        log_msg(LL_WARNING, "rdb-sidecar: %s checks out by its own CRC but not against its sidecar (%s): the sidecar "
                            "is stale, ignored", data_path, rep.summary);
        return OK;
    }
    if (st == SIDECAR_REPAIRABLE) {
        st = sidecar_check(data_path, NULL, 1, &rep, why, sizeof why);
        if (st == SIDECAR_REPAIRED) {
            log_msg(LL_WARNING, "rdb-sidecar: %s: %s", data_path, rep.summary);
            return OK;
        }
    }
    snprintf(err, errlen, "rdb-sidecar: %s is damaged and cannot be repaired: %s%s%s", data_path, rep.summary,
             why[0] ? "; " : "", why);
    return ERR;
}
