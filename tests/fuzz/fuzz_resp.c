/* fuzz_resp.c - libFuzzer target for inferkv-server's request parser.
 *
 * The input is cut into chunks (the first byte picks the chunk size) and
 * fed to the incremental parser like network reads, with the real limits,
 * both authenticated and not; inline argument splitting is fuzzed too.
 * Whatever the bytes, the parser must neither crash, nor read outside the
 * buffer (ASan), nor report consuming more than it was given. */
#include "../../src/server/resp.c"

#include <stdint.h>
#include <stdlib.h>

static void run(const uint8_t *data, size_t size, size_t step, int unauth) {
    resp_limits lim = {1024 * 1024, unauth};
    resp_parser p;
    resp_parser_init(&p);
    dstr q = dstr_empty();
    size_t pos = 0;
    char err[256];
    for (size_t off = 0; q && off < size;) {
        size_t n = size - off < step ? size - off : step;
        q = dstr_catlen(q, data + off, n);
        off += n;
        for (;;) {
            if (!q) break;
            int r = resp_parse(&p, q, dstr_len(q), &pos, &lim, err, sizeof err);
            if (pos > dstr_len(q)) abort();
            if (r == RESP_COMMAND) {
                resp_parser_reset(&p);
                continue;
            }
            if (r == RESP_EMPTY) continue;
            if (r == RESP_NEED_MORE) break;
            resp_parser_reset(&p); /* protocol error: the connection would close */
            off = size;
            break;
        }
        if (q && pos > 0) {
            dstr_consume(q, pos);
            pos = 0;
        }
    }
    resp_parser_reset(&p);
    dstr_free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    size_t step = (size_t)(data[0] % 17) + 1;
    run(data + 1, size - 1, step, 0);
    run(data + 1, size - 1, size, 1);
    dstr *argv;
    int argc = resp_split_args((const char *)data + 1, size - 1, &argv);
    if (argc >= 0) resp_free_args(argv, argc);
    return 0;
}
