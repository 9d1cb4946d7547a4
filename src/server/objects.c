/* objects.c - value objects: a type tag, an encoding, an LRU stamp.
 *
 * Strings come in three encodings, chosen when created: an integer that
 * fits a long long is kept in the pointer itself (no allocation), a short
 * string is allocated in the same block as its object (one allocation, one
 * cache line), a long one in its own dstr.  Aggregates point at their own
 * structure (t_list.c, t_hash.c via dict, t_set.c, t_zset.c, stream.c,
 * libvset for vector sets). */
#include "server.h"
#include "stream.h"
#include "vset.h"

#include <stddef.h>
#include <string.h>

#define EMBSTR_MAX 44

kobj *obj_new(int type, int enc, void *ptr) {
    kobj *o = km_malloc(sizeof *o);
    if (!o) return NULL;
    o->type = (unsigned)type;
    o->enc = (unsigned)enc;
    o->lru = lru_clock_now();
    o->refcount = 1;
    o->ptr = ptr;
    return o;
}

/* An embedded string: one allocation holding the object's first eight
 * bytes (type, encoding, LRU, refcount) followed by an 8-bit dstr header
 * (len, alloc, type), the bytes and a NUL, placed where `ptr` would be.
 * Dropping the pointer is what brings "key:123 -> val:123" objects down to
 * the allocator's smallest class. */
#define EMB_OFF offsetof(kobj, ptr)

static char *emb_bytes(const kobj *o) { return (char *)o + EMB_OFF + 3; }

static kobj *obj_embstr(const char *p, size_t len) {
    size_t need = EMB_OFF + 3 + len + 1;
    /* Never smaller than the struct, so that a stray read of o->ptr stays
     * inside the block (the allocator's minimum is larger anyway). */
    kobj *o = km_malloc(need < sizeof(kobj) ? sizeof(kobj) : need);
    if (!o) return NULL;
    unsigned char *h = (unsigned char *)o + EMB_OFF;
    h[0] = (unsigned char)len; /* len */
    h[1] = (unsigned char)len; /* alloc */
    h[2] = 0;                  /* 8-bit header type */
    char *s = (char *)(h + 3);
    memcpy(s, p, len);
    s[len] = '\0';
    o->type = OBJ_STRING;
    o->enc = ENC_EMBSTR;
    o->lru = lru_clock_now();
    o->refcount = 1;
    return o;
}

kobj *obj_string_ll(long long v) {
    return obj_new(OBJ_STRING, ENC_INT, (void *)(intptr_t)v);
}

kobj *obj_string(const char *p, size_t len) {
    long long v;
    if (len <= 20 && str_to_ll(p, len, &v)) return obj_string_ll(v);
    if (len <= EMBSTR_MAX) return obj_embstr(p, len);
    dstr s = dstr_newlen(p, len);
    if (!s) return NULL;
    kobj *o = obj_new(OBJ_STRING, ENC_RAW, s);
    if (!o) dstr_free(s);
    return o;
}

kobj *obj_string_dstr(dstr s) {
    long long v;
    size_t len = dstr_len(s);
    if (len <= EMBSTR_MAX) {
        kobj *o = len <= 20 && str_to_ll(s, len, &v) ? obj_string_ll(v) : obj_embstr(s, len);
        if (o) dstr_free(s);
        return o;
    }
    kobj *o = obj_new(OBJ_STRING, ENC_RAW, s);
    return o;
}

static void free_value(kobj *o) {
    switch (o->type) {
    case OBJ_STRING:
        if (o->enc == ENC_RAW) dstr_free(o->ptr);
        break;
    case OBJ_LIST: klist_free(o->ptr); break;
    case OBJ_SET: set_free(o); break;
    case OBJ_ZSET: zset_free(o->ptr); break;
    case OBJ_HASH: hash_free(o); break;
    case OBJ_STREAM: stream_free(o->ptr); break;
    case OBJ_VSET:
        if (o->ptr) vset_free(o->ptr); /* the key's reference */
        break;
    }
}

void obj_decref(kobj *o) {
    if (!o) return;
    if (--o->refcount > 0) return;
    free_value(o);
    km_free(o);
}

void obj_free_value(void *o) { obj_decref(o); }

const char *obj_str(const kobj *o, char buf[LL_STR_SIZE], size_t *len) {
    if (o->enc == ENC_INT) {
        *len = (size_t)ll_to_str(buf, LL_STR_SIZE, (long long)(intptr_t)o->ptr);
        return buf;
    }
    if (o->enc == ENC_EMBSTR) {
        *len = (unsigned char)((const char *)o)[EMB_OFF];
        return emb_bytes(o);
    }
    *len = dstr_len(o->ptr);
    return o->ptr;
}

size_t obj_strlen(const kobj *o) {
    char buf[LL_STR_SIZE];
    size_t len;
    obj_str(o, buf, &len);
    return len;
}

dstr obj_to_dstr(const kobj *o) {
    char buf[LL_STR_SIZE];
    size_t len;
    const char *p = obj_str(o, buf, &len);
    return dstr_newlen(p, len);
}

kobj *obj_unshare_string(kobj *o) {
    if (o->enc == ENC_RAW) return o;
    dstr s = obj_to_dstr(o);
    if (!s) return NULL;
    kobj *n = obj_new(OBJ_STRING, ENC_RAW, s);
    if (!n) dstr_free(s);
    return n;
}

int obj_get_ll(const kobj *o, long long *out) {
    if (o->enc == ENC_INT) {
        *out = (long long)(intptr_t)o->ptr;
        return 1;
    }
    char buf[LL_STR_SIZE];
    size_t len;
    const char *p = obj_str(o, buf, &len);
    return str_to_ll(p, len, out);
}

const char *obj_type_name(int type) {
    static const char *names[] = {"string", "list", "set", "zset", "hash", "none", "stream", "vectorset"};
    return type >= 0 && type <= OBJ_TYPE_MAX ? names[type] : "none";
}

const char *obj_enc_name(const kobj *o) {
    switch (o->enc) {
    case ENC_RAW: return "raw";
    case ENC_INT: return "int";
    case ENC_EMBSTR: return "embstr";
    case ENC_LIST: return "quicklist";
    case ENC_HT: return "hashtable";
    case ENC_INTSET: return "intset";
    case ENC_SKIPLIST: return "skiplist";
    case ENC_PACKED: return "listpack";
    case ENC_STREAM: return "stream";
    case ENC_VSET: return "raw";
    default: return "unknown";
    }
}


size_t obj_stream_memory(const kobj *o) { return stream_memory(o->ptr); }

kobj *obj_vset(vset *s) { return obj_new(OBJ_VSET, ENC_VSET, s); }

kobj *obj_dup(const kobj *o) {
    switch (o->type) {
    case OBJ_STRING: {
        char buf[LL_STR_SIZE];
        size_t len;
        const char *p = obj_str(o, buf, &len);
        return obj_string(p, len);
    }
    case OBJ_LIST: {
        klist *l = klist_dup(o->ptr);
        if (!l) return NULL;
        kobj *n = obj_new(OBJ_LIST, ENC_LIST, l);
        if (!n) klist_free(l);
        return n;
    }
    case OBJ_SET: return set_dup(o);
    case OBJ_ZSET: {
        zset *z = zset_dup(o->ptr);
        if (!z) return NULL;
        kobj *n = obj_new(OBJ_ZSET, ENC_SKIPLIST, z);
        if (!n) zset_free(z);
        return n;
    }
    case OBJ_HASH: return hash_dup(o);
    case OBJ_STREAM: {
        stream *s = stream_dup(o->ptr);
        if (!s) return NULL;
        kobj *n = obj_new(OBJ_STREAM, ENC_STREAM, s);
        if (!n) stream_free(s);
        return n;
    }
    case OBJ_VSET: {
        /* COPY: a deep copy, so that writes to either leave the other alone */
        vset *s = vset_dup(o->ptr);
        if (!s) return NULL;
        kobj *n = obj_vset(s);
        if (!n) vset_free(s);
        return n;
    }
    }
    return NULL;
}
