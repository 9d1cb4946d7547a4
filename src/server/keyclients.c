/* keyclients.c - a dict of key -> the clients interested in it, in the
 * order they came: WATCH's watched keys (t_multi.c) and pub/sub's
 * channels and patterns (t_pubsub.c) are both this shape, so both use it.
 * A key leaves the dict with its last client. */
#include "server.h"

#include <string.h>

static void keyclients_free(void *p) {
    keyclients *l = p;
    if (!l) return;
    km_free(l->v);
    km_free(l);
}

const dict_type keyclients_type = {dict_hash_dstr, dict_eq_dstr, dict_free_dstr, keyclients_free};

int keyclients_add(dict **reg, const dstr key, client *c) {
    if (!*reg && !(*reg = dict_create(&keyclients_type))) return ERR;
    keyclients *l = dict_fetch(*reg, key);
    if (!l) {
        dstr k = dstr_dup(key);
        l = km_calloc(sizeof *l);
        if (!k || !l || dict_add(*reg, k, l) != DICT_OK) {
            dstr_free(k);
            km_free(l);
            return ERR;
        }
    }
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 4;
        client **nv = km_realloc(l->v, ncap * sizeof *nv);
        if (!nv) {
            if (l->n == 0) dict_delete(*reg, key);
            return ERR;
        }
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = c;
    return OK;
}

void keyclients_remove(dict *reg, const dstr key, client *c) {
    keyclients *l = reg ? dict_fetch(reg, key) : NULL;
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i] != c) continue;
        memmove(l->v + i, l->v + i + 1, (l->n - i - 1) * sizeof *l->v);
        l->n--;
        break;
    }
    if (l->n == 0) dict_delete(reg, key);
}
