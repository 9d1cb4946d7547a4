/* chat.c - chat templates as code: ChatML (Qwen2/2.5/3) and Llama 3.
 *
 * Models ship Jinja templates; interpreting Jinja would put a language
 * interpreter in every request path and make the prompt depend on a
 * template's quirks.  The few formats the engine supports are written out
 * here instead, byte for byte as their reference templates render them
 * for system/user/assistant messages (Qwen3's thinking switch and its
 * handling of earlier reasoning included; tools are not supported), and the
 * family is recognised from the special tokens the vocabulary has.  An unknown family gets RAW, never a
 * guessed template. */
#include "text/json.h"
#include "text/vocab.h"
#include "kernels/ialloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_control(const infer_vocab *v, const char *t) {
    int32_t id = vocab_find(v, t, strlen(t));
    return id >= 0 && (v->type[id] == TT_CONTROL || v->type[id] == TT_USER_DEFINED);
}

int infer_chat_template(const infer_vocab *v) {
    if (!v) return INFER_CHAT_RAW;
    if (has_control(v, "<|im_start|>") && has_control(v, "<|im_end|>")) {
        if (has_control(v, "<think>") && has_control(v, "</think>")) return INFER_CHAT_QWEN3;
        if (has_control(v, "<tool_call>") && has_control(v, "<|fim_prefix|>")) return INFER_CHAT_QWEN25;
        return INFER_CHAT_CHATML;
    }
    if (has_control(v, "<|start_header_id|>") && has_control(v, "<|end_header_id|>") && has_control(v, "<|eot_id|>"))
        return INFER_CHAT_LLAMA3;
    return INFER_CHAT_RAW;
}

const char *infer_chat_template_name(int t) {
    switch (t) {
    case INFER_CHAT_RAW: return "raw";
    case INFER_CHAT_CHATML: return "chatml";
    case INFER_CHAT_QWEN3: return "qwen3";
    case INFER_CHAT_LLAMA3: return "llama3";
    case INFER_CHAT_QWEN25: return "qwen2.5";
    }
    return "unknown";
}

typedef struct {
    char *out;
    size_t cap, n;
} sbuf;

static void put(sbuf *b, const char *s, size_t len) {
    if (b->n < b->cap) memcpy(b->out + b->n, s, len <= b->cap - b->n ? len : b->cap - b->n);
    b->n += len;
}
static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static int is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

/* Qwen3's template splits an assistant message at </think>: the reasoning
 * (between the last <think> and the first </think>, newlines trimmed) and
 * the answer (after the last </think>, leading newlines trimmed). */
static void qwen3_split(const char *c, const char **r, size_t *rl, const char **a) {
    const char *first = strstr(c, "</think>");
    *r = "";
    *rl = 0;
    *a = c;
    if (!first) return;
    const char *last = first, *p;
    while ((p = strstr(last + 8, "</think>"))) last = p;
    *a = last + 8;
    while (**a == '\n') (*a)++;
    const char *rs = c, *q;
    while ((q = strstr(rs, "<think>")) && q < first) rs = q + 7;
    const char *re = first;
    while (rs < re && *rs == '\n') rs++;
    while (re > rs && re[-1] == '\n') re--;
    *r = rs;
    *rl = (size_t)(re - rs);
}

int64_t infer_chat_format(int tmpl, const infer_chat_msg *msgs, size_t n, unsigned flags,
                          char *out, size_t cap, char *err, size_t errlen) {
    if (tmpl < INFER_CHAT_RAW || tmpl > INFER_CHAT_QWEN25) {
        snprintf(err, errlen, "chat: unknown template %d", tmpl);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (!r || !msgs[i].content || (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant"))) {
            snprintf(err, errlen, "chat: message %zu: role must be system, user or assistant", i);
            return -1;
        }
    }
    sbuf b = {out, out ? cap : 0, 0};
    size_t last_query = n ? n - 1 : 0;
    for (size_t i = n; i-- > 0;)
        if (!strcmp(msgs[i].role, "user")) {
            last_query = i;
            break;
        }
    int chatml = tmpl == INFER_CHAT_CHATML || tmpl == INFER_CHAT_QWEN3 || tmpl == INFER_CHAT_QWEN25;
    if (tmpl == INFER_CHAT_LLAMA3) puts_(&b, "<|begin_of_text|>");
    if (tmpl == INFER_CHAT_QWEN25 && (n == 0 || strcmp(msgs[0].role, "system")))
        puts_(&b, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n");
    for (size_t i = 0; i < n; i++) {
        const char *role = msgs[i].role, *c = msgs[i].content;
        if (tmpl == INFER_CHAT_RAW) {
            if (i) puts_(&b, "\n");
            puts_(&b, c);
        } else if (chatml) {
            puts_(&b, "<|im_start|>");
            puts_(&b, role);
            puts_(&b, "\n");
            if (tmpl == INFER_CHAT_QWEN3 && !strcmp(role, "assistant")) {
                const char *r, *a;
                size_t rl;
                qwen3_split(c, &r, &rl, &a);
                if (i > last_query && (i == n - 1 || rl > 0)) {
                    puts_(&b, "<think>\n");
                    put(&b, r, rl);
                    puts_(&b, "\n</think>\n\n");
                    while (*a == '\n') a++;
                }
                puts_(&b, a);
            } else {
                puts_(&b, c);
            }
            puts_(&b, "<|im_end|>\n");
        } else { /* Llama 3: the reference template trims each content */
            size_t len = strlen(c);
            while (len && is_space(*c)) c++, len--;
            while (len && is_space(c[len - 1])) len--;
            puts_(&b, "<|start_header_id|>");
            puts_(&b, role);
            puts_(&b, "<|end_header_id|>\n\n");
            put(&b, c, len);
            puts_(&b, "<|eot_id|>");
        }
    }
    if (flags & INFER_CHAT_ADD_ASSISTANT) {
        if (chatml) {
            puts_(&b, "<|im_start|>assistant\n");
            if (tmpl == INFER_CHAT_QWEN3 && (flags & INFER_CHAT_NO_THINKING)) puts_(&b, "<think>\n\n</think>\n\n");
        } else if (tmpl == INFER_CHAT_LLAMA3) {
            puts_(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        }
    }
    if (b.n < b.cap) b.out[b.n] = 0;
    return (int64_t)b.n;
}

int infer_chat_parse_json(const char *json, size_t len, infer_chat_msg **msgs, size_t *n,
                          char *err, size_t errlen) {
    *msgs = NULL;
    *n = 0;
    jdoc d;
    if (json_parse(json, len, &d, err, errlen) < 0) return -1;
    const jnode *root = &d.nodes[0];
    int rc = -1;
    if (root->type != J_ARR) {
        snprintf(err, errlen, "chat: messages must be a JSON list");
        goto done;
    }
    size_t bytes = 0;
    uint32_t k = root->first;
    for (uint32_t i = 0; i < root->count; i++) {
        const jnode *m = &d.nodes[k];
        const jnode *r = json_get(&d, m, "role"), *c = json_get(&d, m, "content");
        if (!r || r->type != J_STR || !c || c->type != J_STR) {
            snprintf(err, errlen, "chat: message %u needs string \"role\" and \"content\"", i);
            goto done;
        }
        if (memchr(d.arena + r->off, 0, r->len) || memchr(d.arena + c->off, 0, c->len)) {
            snprintf(err, errlen, "chat: message %u contains a NUL character", i);
            goto done;
        }
        bytes += r->len + c->len + 2;
        k = m->next;
    }
    size_t head = sizeof(infer_chat_msg) * (root->count ? root->count : 1);
    char *mem = ie_malloc(head + bytes);
    if (!mem) {
        snprintf(err, errlen, "chat: out of memory");
        goto done;
    }
    infer_chat_msg *out = (infer_chat_msg *)mem;
    char *p = mem + head;
    k = root->first;
    for (uint32_t i = 0; i < root->count; i++) {
        const jnode *m = &d.nodes[k];
        const jnode *r = json_get(&d, m, "role"), *c = json_get(&d, m, "content");
        memcpy(p, d.arena + r->off, r->len);
        p[r->len] = 0;
        out[i].role = p;
        p += r->len + 1;
        memcpy(p, d.arena + c->off, c->len);
        p[c->len] = 0;
        out[i].content = p;
        p += c->len + 1;
        k = m->next;
    }
    *msgs = out;
    *n = root->count;
    rc = 0;
done:
    json_free(&d);
    return rc;
}
