/* fuzz_rdb.c - libFuzzer target for inferkv-server's RDB loader.
 *
 * The input is a whole RDB file.  Seeds (corpus/rdb/): a small dump of
 * every type written by inferkv (small_dump() in test_persist_rdb.py),
 * one written by redis-server 7.0.15 + inferkv.so (listpack, intset,
 * quicklist, a stream with a deleted entry and a group, a vector set),
 * and the hand-made version-9 file of old encodings (old_dump(): ziplists,
 * quicklist v1, zipmap, intsets, text scores, the first stream format).
 * Whatever the bytes, the loader must either refuse them with an
 * error that names an offset, leaving nothing behind (ASan's leak check
 * sees a half-built dataset), or load them; a dataset that loaded is then
 * installed, saved again and the saved file must load back with the same
 * number of keys: what inferkv accepts it can also write.  The CRC check
 * is off (rdbchecksum no), or nearly every mutation would stop there.
 * The first input byte also picks a value type for rdb_load_value on the
 * rest, the DUMP / RESTORE path. */
#include "rdb.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int ready;

static void init_once(void) {
    if (ready) return;
    config_init_defaults();
    srv.verbosity = LL_WARNING + 1; /* silent */
    srv.now_ms = time_ms();
    persist.checksum = 0;
    char err[256];
    if (db_init_all(err, sizeof err) != OK) abort();
    ready = 1;
}

static long long key_count(kdb *dbs) {
    long long n = 0;
    for (int i = 0; i < srv.dbnum; i++) n += (long long)dict_size(dbs[i].keys);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init_once();
    char err[600];
    rdb_in in;
    rdb_load_result res;
    rdbi_init_mem(&in, data, size, 0);
    if (rdb_load_stream(&in, 0, &res, err, sizeof err) == OK) {
        long long loaded = key_count(res.dbs);
        db_array_install(res.dbs);
        dstr out = dstr_empty();
        rdb_out o;
        if (!out || rdbo_init(&o, rdbo_sink_dstr, &out, 1, 1) != OK) abort();
        rdb_save_opts opts = {0};
        opts.compress = 1;
        opts.checksum = 1;
        if (rdb_write_file(&o, &opts, err, sizeof err) != OK) abort();
        rdbo_release(&o);
        rdbi_init_mem(&in, out, dstr_len(out), 1);
        if (rdb_load_stream(&in, RDB_LOAD_KEEP_EXPIRED, &res, err, sizeof err) != OK) {
            fprintf(stderr, "a dataset inferkv loaded and saved does not load back: %s\n", err);
            abort();
        }
        if (key_count(res.dbs) != loaded) abort();
        db_array_free(res.dbs, res.ndbs);
        dstr_free(out);
        for (int i = 0; i < srv.dbnum; i++) db_flush(&srv.dbs[i]);
    } else if (!strstr(err, "at offset ")) {
        fprintf(stderr, "an error that names no offset: %s\n", err);
        abort();
    }
    if (size > 1) {
        rdbi_init_mem(&in, data + 1, size - 1, 0);
        int empty;
        kobj *o = rdb_load_value(&in, data[0] % 20, &empty);
        if (o) obj_decref(o);
    }
    return 0;
}
