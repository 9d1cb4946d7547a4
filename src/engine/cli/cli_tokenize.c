/* cli_tokenize.c - `inferkv-cli tokenize` and `inferkv-cli detokenize`.
 *
 *   tokenize -m MODEL [-f FILE | TEXT] [--add-special] [--parse-special]
 *       prints the token ids of the text on one line, separated by spaces.
 *       --stats prints "bytes=N ids=N seconds=S" (CPU time of the tokenize
 *       call alone) instead of the ids: the benchmark's mode.
 *   tokenize -m MODEL --b64-lines FILE [flags]
 *       tokenizes each line of FILE (base64 of raw bytes) and prints one line
 *       of ids per input line: the differential test's batch mode.
 *   detokenize -m MODEL [--special] ID...
 *       writes the text of the ids to stdout, byte for byte.
 * MODEL is a GGUF file (a model or vocab-only) or a tokenizer.json.  These
 * are the shell's view of infer_tokenize / infer_detokenize, used by the
 * differential tests and for debugging prompts. */
#include "cli.h"
#include "cli_args.h"
#include "infer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes base64 s[0..n) into out (room for 3n/4 bytes); -1 if malformed. */
static long b64_decode(const char *s, size_t n, unsigned char *out) {
    long o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=') break;
        int v = b64val((unsigned char)s[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o;
}

static int tokenize_lines(const infer_vocab *v, const char *path, unsigned flags) {
    size_t len;
    char *buf = cli_read_file(path, &len);
    if (!buf) return 1;
    unsigned char *text = malloc(len + 1);
    int32_t *ids = malloc(sizeof(int32_t) * (len + 16));
    char err[512];
    int rc = 0;
    if (!text || !ids) {
        fprintf(stderr, "tokenize: out of memory\n");
        rc = 1;
    }
    for (size_t p = 0; !rc && p < len;) {
        char *nl = memchr(buf + p, '\n', len - p);
        size_t e = nl ? (size_t)(nl - buf) : len;
        long tn = b64_decode(buf + p, e - p, text);
        if (tn < 0) {
            fprintf(stderr, "tokenize: line at byte %zu is not base64\n", p);
            rc = 1;
            break;
        }
        int64_t n = infer_tokenize(v, (const char *)text, (size_t)tn, flags, ids, len + 16, err, sizeof err);
        if (n < 0 || n > (int64_t)(len + 16)) {
            fprintf(stderr, "tokenize: %s\n", n < 0 ? err : "too many ids");
            rc = 1;
            break;
        }
        for (int64_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        p = e + 1;
    }
    free(text);
    free(ids);
    free(buf);
    if (fflush(stdout) != 0) rc = 1;
    return rc;
}

static int tokenize_usage(void) {
    fprintf(stderr, "usage: inferkv-cli tokenize -m MODEL [-f FILE | TEXT] [--add-special] [--parse-special]\n");
    return 2;
}

int cli_tokenize(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *text = NULL, *lines = NULL;
    unsigned flags = 0;
    int stats = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(file = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--b64-lines")) {
            if (!(lines = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--stats")) {
            stats = 1;
        } else if (!strcmp(a, "--add-special")) {
            flags |= INFER_TOK_ADD_SPECIAL;
        } else if (!strcmp(a, "--parse-special")) {
            flags |= INFER_TOK_PARSE_SPECIAL;
        } else if (!strcmp(a, "--")) {
            if (i + 1 < argc) text = argv[++i];
            if (i + 1 < argc) return tokenize_usage();
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tokenize: unknown option %s\n", a);
            return tokenize_usage();
        } else if (text) {
            fprintf(stderr, "tokenize: more than one TEXT argument (quote the text)\n");
            return tokenize_usage();
        } else {
            text = a;
        }
    }
    if (!model || (file && text) || (lines && (file || text))) return tokenize_usage();
    if (lines) {
        char lerr[512] = "";
        infer_vocab *lv;
        if (infer_vocab_load(model, &lv, lerr, sizeof lerr) < 0) {
            fprintf(stderr, "tokenize: %s\n", lerr);
            return 1;
        }
        int lrc = tokenize_lines(lv, lines, flags);
        infer_vocab_free(lv);
        return lrc;
    }
    size_t len = 0;
    char *owned = NULL;
    if (file) {
        owned = cli_read_file(file, &len);
        if (!owned) return 1; /* cli_read_file said why */
        text = owned;
    } else {
        if (!text) text = "";
        len = strlen(text);
    }
    char err[512] = "";
    infer_vocab *v;
    if (infer_vocab_load(model, &v, err, sizeof err) < 0) {
        fprintf(stderr, "tokenize: %s\n", err);
        free(owned);
        return 1;
    }
    int rc = 1;
    size_t cap = len + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    int64_t n = ids ? infer_tokenize(v, text, len, flags, ids, cap, err, sizeof err) : -1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    if (!ids) snprintf(err, sizeof err, "out of memory");
    if (n > (int64_t)cap) { /* cannot happen (a byte gives at most one id + specials), but stay exact */
        int32_t *more = realloc(ids, (size_t)n * sizeof *ids);
        if (more) {
            ids = more;
            cap = (size_t)n;
            n = infer_tokenize(v, text, len, flags, ids, cap, err, sizeof err);
        } else {
            n = -1;
            snprintf(err, sizeof err, "out of memory");
        }
    }
    if (n < 0) {
        fprintf(stderr, "tokenize: %s\n", err);
    } else if (stats) {
        double sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        printf("bytes=%zu ids=%lld seconds=%.6f\n", len, (long long)n, sec);
        rc = fflush(stdout) == 0 ? 0 : 1;
    } else {
        for (int64_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
    free(ids);
    free(owned);
    infer_vocab_free(v);
    return rc;
}

int cli_detokenize(int argc, char **argv) {
    const char *model = NULL;
    unsigned flags = 0;
    int32_t *ids = calloc((size_t)(argc > 0 ? argc : 1), sizeof *ids);
    size_t n = 0;
    if (!ids) {
        fprintf(stderr, "detokenize: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model = cli_value(argc, argv, &i))) { free(ids); return 2; }
        } else if (!strcmp(a, "--special")) {
            flags |= INFER_DETOK_UNPARSE_SPECIAL;
        } else {
            int64_t x;
            if (cli_parse_i64("token id", a, 0, INT32_MAX, &x) < 0) { free(ids); return 1; }
            ids[n++] = (int32_t)x;
        }
    }
    if (!model) {
        fprintf(stderr, "usage: inferkv-cli detokenize -m MODEL [--special] ID...\n");
        free(ids);
        return 2;
    }
    char err[512] = "";
    infer_vocab *v;
    if (infer_vocab_load(model, &v, err, sizeof err) < 0) {
        fprintf(stderr, "detokenize: %s\n", err);
        free(ids);
        return 1;
    }
    int rc = 1;
    int64_t need = infer_detokenize(v, ids, n, flags, NULL, 0, err, sizeof err);
    char *out = need >= 0 ? malloc((size_t)need + 1) : NULL;
    if (need < 0) fprintf(stderr, "detokenize: %s\n", err);
    else if (!out) fprintf(stderr, "detokenize: out of memory\n");
    else if (infer_detokenize(v, ids, n, flags, out, (size_t)need, err, sizeof err) != need)
        fprintf(stderr, "detokenize: %s\n", err);
    else rc = fwrite(out, 1, (size_t)need, stdout) == (size_t)need && fflush(stdout) == 0 ? 0 : 1;
    free(out);
    free(ids);
    infer_vocab_free(v);
    return rc;
}

/* chat-format -m MODEL [--no-think] [--no-assistant] [-f FILE | JSON]
 * renders a JSON list of messages with the model's chat template. */
int cli_chat_format(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *json = NULL;
    unsigned flags = INFER_CHAT_ADD_ASSISTANT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(file = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--no-think")) {
            flags |= INFER_CHAT_NO_THINKING;
        } else if (!strcmp(a, "--no-assistant")) {
            flags &= ~INFER_CHAT_ADD_ASSISTANT;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "chat-format: unknown option %s\n", a);
            return 2;
        } else if (json) {
            fprintf(stderr, "chat-format: more than one JSON argument\n");
            return 2;
        } else {
            json = a;
        }
    }
    if (!model || (file && json) || (!file && !json)) {
        fprintf(stderr, "usage: inferkv-cli chat-format -m MODEL [--no-think] [--no-assistant] [-f FILE | JSON]\n");
        return 2;
    }
    size_t len;
    char *owned = NULL;
    if (file) {
        if (!(owned = cli_read_file(file, &len))) return 1;
        json = owned;
    } else {
        len = strlen(json);
    }
    char err[512] = "";
    infer_vocab *v = NULL;
    infer_chat_msg *msgs = NULL;
    size_t n = 0;
    char *out = NULL;
    int rc = 1;
    if (infer_vocab_load(model, &v, err, sizeof err) < 0 ||
        infer_chat_parse_json(json, len, &msgs, &n, err, sizeof err) < 0) {
        fprintf(stderr, "chat-format: %s\n", err);
        goto done;
    }
    int tmpl = infer_chat_template(v);
    if (tmpl == INFER_CHAT_RAW)
        fprintf(stderr, "chat-format: warning: no known chat template for this model; using raw mode\n");
    int64_t need = infer_chat_format(tmpl, msgs, n, flags, NULL, 0, err, sizeof err);
    if (need < 0 || !(out = malloc((size_t)need + 1)) ||
        infer_chat_format(tmpl, msgs, n, flags, out, (size_t)need + 1, err, sizeof err) != need) {
        fprintf(stderr, "chat-format: %s\n", need < 0 ? err : "out of memory");
        goto done;
    }
    rc = fwrite(out, 1, (size_t)need, stdout) == (size_t)need && fflush(stdout) == 0 ? 0 : 1;
done:
    free(out);
    free(msgs);
    free(owned);
    infer_vocab_free(v);
    return rc;
}
