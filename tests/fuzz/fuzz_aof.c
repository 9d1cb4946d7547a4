/* fuzz_aof.c - libFuzzer target for inferkv-server's AOF loader.
 *
 * The input is one AOF file (an RDB preamble and/or RESP commands): it is
 * replayed into the live databases as the server does at start (a memfd
 * stands in for the file).  Whatever the bytes, the loader must either
 * refuse them with an error naming an offset or load them; a truncated
 * tail is accepted (aof-load-truncated yes) and cut.  What loaded is then
 * written out as a command-form base (aof_rewrite_commands) and that must
 * load back with the same number of keys.  Save points are off, so a
 * replayed FLUSHALL writes no dump; the loader itself refuses anything
 * that is not a write, SELECT or MULTI/EXEC.  Seeds: corpus/aof/. */
#include "aof.h"
#include "rdb.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int ready;

static void init_once(void) {
    if (ready) return;
    config_init_defaults();
    srv.verbosity = LL_WARNING + 1; /* silent */
    srv.now_ms = time_ms();
    dstr_free(srv.save_params);
    srv.save_params = NULL;
    persist.checksum = 0;
    aofcfg.load_truncated = 1;
    srv.proto_max_bulk_len = 1 << 20; /* SETRANGE / SETBIT offsets stay small */
    vset_server_init();
    char err[256];
    if (db_init_all(err, sizeof err) != OK) abort();
    commands_init();
    ready = 1;
}

static long long key_count(void) {
    long long n = 0;
    for (int i = 0; i < srv.dbnum; i++) n += (long long)dict_size(srv.dbs[i].keys);
    return n;
}

static void flush_all(void) {
    for (int i = 0; i < srv.dbnum; i++) db_flush(&srv.dbs[i]);
}

static int load_bytes(const void *data, size_t size) {
    int fd = memfd_create("fuzz-aof", 0);
    if (fd < 0) abort();
    if (size && write(fd, data, size) != (ssize_t)size) abort();
    char path[64], err[1024];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    aof_file_result res;
    int rc = aof_load_file(path, 1, 1, &res, err, sizeof err);
    close(fd);
    if (rc != OK && !strstr(err, "offset") && !strstr(err, "out of memory") && !strstr(err, "cannot")) {
        fprintf(stderr, "an AOF error that names no offset: %s\n", err);
        abort();
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init_once();
    flush_all();
    srv.now_ms = time_ms();
    if (load_bytes(data, size) == OK) {
        long long loaded = key_count();
        dstr out = dstr_empty();
        rdb_out o;
        if (!out || rdbo_init(&o, rdbo_sink_dstr, &out, 0, 0) != OK) abort();
        if (aof_rewrite_commands(&o) != OK) abort();
        rdbo_release(&o);
        flush_all();
        if (load_bytes(out, dstr_len(out)) != OK) {
            fprintf(stderr, "the rewrite of a loaded AOF does not load\n");
            abort();
        }
        if (key_count() != loaded) {
            fprintf(stderr, "the rewrite holds %lld keys, the AOF loaded %lld\n", key_count(), loaded);
            abort();
        }
        dstr_free(out);
    }
    flush_all();
    return 0;
}
