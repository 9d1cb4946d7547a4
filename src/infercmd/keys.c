/* keys.c - the keys of INFER.GENERATE, EMBED, RAG and ANSWER, for
 * routing in Redis Cluster and for the read/write rule.
 *
 * A cluster client sends a command to the node that owns its keys' slot,
 * and the host answers MOVED or CROSSSLOT, only when the command declares
 * its keys.  These commands find theirs by keyword (PROMPTKEY, STORE ...),
 * after options whose number varies, so two descriptions live here:
 *   - the key specs (static: what COMMAND INFO shows; a keyword search,
 *     flagged incomplete because a prompt or a STOP string may spell a
 *     keyword);
 *   - the exact finder, which walks the arguments as the commands' own
 *     parsers do (generate.c, embed.c, rag.c): what COMMAND GETKEYS and the
 *     module's getkeys-api answer.
 * inferkv-server and inferkv.so both use them, so the two front-ends
 * route alike and agree on which calls write. */
#include "infercmd.h"

#include <string.h>
#include <strings.h>

static const ic_keyspec generate_specs[] = {
    {"PROMPTKEY", 0, 2, IC_KEY_READ, 1},
    {"TOKENSKEY", 0, 2, IC_KEY_READ, 1},
    {"STREAM", 0, 3, IC_KEY_INSERT, 1},
    {"STORE", 0, 3, IC_KEY_UPDATE, 1},
};
static const ic_keyspec embed_specs[] = {
    {"INTO", 0, 2, IC_KEY_INSERT, 1},
};
static const ic_keyspec rag_specs[] = {
    {NULL, 3, 0, IC_KEY_READ, 0}, /* the vector set, always argument 3 */
    {"TEMPLATE", 0, 5, IC_KEY_READ, 1},
    {"STREAM", 0, 5, IC_KEY_INSERT, 1},
    {"STORE", 0, 5, IC_KEY_UPDATE, 1},
};
/* after "generator question CHUNKS n": searched from argument 5, where the
 * chunk texts start (a text may spell a keyword: incomplete, as all) */
static const ic_keyspec answer_specs[] = {
    {"TEMPLATE", 0, 5, IC_KEY_READ, 1},
    {"STREAM", 0, 5, IC_KEY_INSERT, 1},
    {"STORE", 0, 5, IC_KEY_UPDATE, 1},
};

int ic_keys_command(const char *name, size_t len) {
    static const struct {
        const char *name;
        int cmd;
    } names[] = {{"infer.generate", IC_KEYS_GENERATE},
                 {"infer.embed", IC_KEYS_EMBED},
                 {"infer.rag", IC_KEYS_RAG},
                 {"infer.answer", IC_KEYS_ANSWER}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == len && !strncasecmp(names[i].name, name, len)) return names[i].cmd;
    return -1;
}

const ic_keyspec *ic_keyspecs(int cmd, int *n) {
    switch (cmd) {
    case IC_KEYS_GENERATE:
        *n = (int)(sizeof generate_specs / sizeof generate_specs[0]);
        return generate_specs;
    case IC_KEYS_EMBED:
        *n = (int)(sizeof embed_specs / sizeof embed_specs[0]);
        return embed_specs;
    case IC_KEYS_RAG:
        *n = (int)(sizeof rag_specs / sizeof rag_specs[0]);
        return rag_specs;
    case IC_KEYS_ANSWER:
        *n = (int)(sizeof answer_specs / sizeof answer_specs[0]);
        return answer_specs;
    }
    *n = 0;
    return NULL;
}

/* INFER.GENERATE's options that take one value and name no key (STOP may
 * repeat; it still takes one value each time). */
static int gen_value_option(const ic_arg *a) {
    static const char *const opts[] = {"MAXTOKENS", "TEMPERATURE", "TOPK", "TOPP", "MINP",
                                       "REPEAT-PENALTY", "SEED", "STOP", "TIMEOUT"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (ic_arg_is(a, opts[i])) return 1;
    return 0;
}

/* INFER.RAG's own options with one value (TEMPLATE, a key, apart). */
static int rag_value_option(const ic_arg *a) {
    return ic_arg_is(a, "COUNT") || ic_arg_is(a, "FILTER") || ic_arg_is(a, "CONTEXTKEY-FIELD") ||
           ic_arg_is(a, "FILTER-EF") || ic_arg_is(a, "EF");
}

enum { WALK_GENERATE, WALK_RAG, WALK_ANSWER };

/* Walks the options from argument `from` the way ic_gen_option (and, for
 * WALK_RAG / WALK_ANSWER, rag.c's parse_options) does, noting the
 * positions of the last STREAM, STORE and TEMPLATE values.  Stops where
 * the parser would refuse. */
static void walk_options(const ic_arg *argv, int argc, int from, int mode, int *stream, int *store, int *tmpl) {
    int rag = mode != WALK_GENERATE;
    for (int i = from; i < argc; i++) {
        const ic_arg *a = &argv[i];
        if (ic_arg_is(a, "CHAT") || (rag && (ic_arg_is(a, "WITHSOURCES") || ic_arg_is(a, "WITHPROMPT")))) continue;
        if (i + 1 >= argc) return; /* "no value after": refused */
        if (ic_arg_is(a, "STREAM")) *stream = i + 1;
        else if (ic_arg_is(a, "STORE")) *store = i + 1;
        else if (rag && ic_arg_is(a, "TEMPLATE")) *tmpl = i + 1;
        else if (!gen_value_option(a) && !(mode == WALK_RAG && rag_value_option(a))) return; /* refused */
        i++;
    }
}

static int add(ic_key out[IC_MAX_KEYS], int n, int pos, int access) {
    if (pos <= 0 || n >= IC_MAX_KEYS) return n;
    /* insertion keeps argument order */
    int at = n;
    while (at > 0 && out[at - 1].pos > pos) {
        out[at] = out[at - 1];
        at--;
    }
    out[at].pos = pos;
    out[at].access = access;
    return n + 1;
}

int ic_keys(int cmd, const ic_arg *argv, int argc, ic_key out[IC_MAX_KEYS]) {
    int n = 0, stream = 0, store = 0, tmpl = 0;
    switch (cmd) {
    case IC_KEYS_GENERATE: {
        /* name (prompt | PROMPTKEY key | TOKENSKEY key) [options] */
        if (argc < 3) return 0;
        int from = 3;
        if (argc >= 4 && (ic_arg_is(&argv[2], "PROMPTKEY") || ic_arg_is(&argv[2], "TOKENSKEY"))) {
            n = add(out, n, 3, IC_KEY_READ);
            from = 4;
        }
        walk_options(argv, argc, from, WALK_GENERATE, &stream, &store, &tmpl);
        break;
    }
    case IC_KEYS_EMBED:
        /* model INTO key element text [options]: INTO only as the first
         * text, with the four arguments it needs (else a refusal) */
        if (argc >= 6 && ic_arg_is(&argv[2], "INTO")) n = add(out, n, 3, IC_KEY_INSERT);
        return n;
    case IC_KEYS_RAG:
        /* generator embedder vset question [options] */
        if (argc < 5) return 0;
        n = add(out, n, 3, IC_KEY_READ);
        walk_options(argv, argc, 5, WALK_RAG, &stream, &store, &tmpl);
        break;
    case IC_KEYS_ANSWER: {
        /* generator question CHUNKS n chunk... [options]: the options
         * start after the n chunks (a count the parser refuses: no keys) */
        long long nc;
        if (argc < 5 || !ic_arg_is(&argv[3], "CHUNKS") || ic_parse_ll(&argv[4], &nc) < 0 || nc < 0 ||
            nc > IC_RAG_MAX_COUNT || nc > argc - 5)
            return 0;
        walk_options(argv, argc, 5 + (int)nc, WALK_ANSWER, &stream, &store, &tmpl);
        break;
    }
    default:
        return 0;
    }
    n = add(out, n, tmpl, IC_KEY_READ);
    n = add(out, n, stream, IC_KEY_INSERT);
    n = add(out, n, store, IC_KEY_UPDATE);
    return n;
}

int ic_keys_write(int cmd, const ic_arg *argv, int argc) {
    ic_key k[IC_MAX_KEYS];
    int n = ic_keys(cmd, argv, argc, k);
    for (int i = 0; i < n; i++)
        if (k[i].access != IC_KEY_READ) return 1;
    return 0;
}

/* CRC16/XMODEM (polynomial 0x1021, initial 0), as Redis Cluster hashes
 * keys; bitwise, since a slot is computed once per refused write. */
static unsigned crc16(const char *p, size_t len) {
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)p[i] << 8;
        for (int b = 0; b < 8; b++) crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

unsigned ic_key_slot(const char *key, size_t len) {
    /* the hash tag: the bytes between the first '{' and the first '}'
     * after it, when there are any */
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(open + 1, '}', len - from);
        if (close && close > open + 1) return crc16(open + 1, (size_t)(close - open - 1)) & 16383;
    }
    return crc16(key, len) & 16383;
}
