/* json.h - internal: a small validating JSON parser building a tree.
 *
 * Used for Hugging Face tokenizer.json files and chat message lists.  Nodes
 * live in one array and decoded strings in one arena sized by the input, so
 * a 10 MB document costs a handful of allocations.  Nesting is limited to
 * 64 levels; strings are decoded (escapes, surrogate pairs; lone
 * surrogates become U+FFFD) and are not NUL-terminated. */
#ifndef INFER_JSON_H
#define INFER_JSON_H

#include <stddef.h>
#include <stdint.h>

enum { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct {
    uint8_t type;
    uint32_t next;     /* next sibling (index); in objects a key's next is its value */
    uint32_t first;    /* arrays/objects: first child; objects alternate key, value */
    uint32_t count;    /* children (objects: pairs) */
    uint32_t off, len; /* strings: bytes in the arena */
    double num;
} jnode;

typedef struct {
    jnode *nodes; /* nodes[0] is the root */
    uint32_t n;
    char *arena;
} jdoc;

/* Parses buf[0..len) into d; 0, or -1 with a message. */
int json_parse(const char *buf, size_t len, jdoc *d, char *err, size_t errlen);
void json_free(jdoc *d);
/* Whether x is the string s. */
int json_str_is(const jdoc *d, const jnode *x, const char *s);
/* The value of key in object obj, or NULL. */
jnode *json_get(const jdoc *d, const jnode *obj, const char *key);

#endif
