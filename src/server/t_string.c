/* t_string.c - the string commands, bit operations included.
 *
 * Values that look like integers are stored as integers (objects.c), so
 * INCR on a counter neither parses nor allocates.  Every command that can
 * grow a string checks the result against proto-max-bulk-len first, as
 * Redis does, so one command cannot ask for gigabytes. */
#include "server.h"
#include "aof.h"

#include <assert.h>
#include <math.h>
#include <string.h>

static int check_size(client *c, unsigned long long size) {
    if (size > (unsigned long long)srv.proto_max_bulk_len) {
        reply_error(c, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return ERR;
    }
    return OK;
}

/* Sets key to a new string object made from bytes; replies on OOM. */
static int store_string(client *c, kdb *db, const dstr key, const char *p, size_t len, int keep_ttl) {
    kobj *o = obj_string(p, len);
    if (!o || db_set(db, key, o, keep_ttl) != OK) {
        obj_decref(o);
        reply_error(c, "ERR out of memory");
        return ERR;
    }
    return OK;
}

/* Looks a key up for reading; replies WRONGTYPE and returns ERR for
 * another type.  *out is NULL when missing. */
static int get_string(client *c, const dstr key, kobj **out) {
    kobj *o = db_lookup_read(c, key);
    if (db_check_type(c, o, OBJ_STRING)) return ERR;
    *out = o;
    return OK;
}

void get_cmd(client *c) {
    kobj *o;
    if (get_string(c, c->argv[1], &o) != OK) return;
    if (!o) reply_null(c);
    else reply_bulk_obj(c, o);
}

enum { SET_NX = 1, SET_XX = 2, SET_GET = 4, SET_KEEPTTL = 8, SET_EX = 16, SET_PX = 32,
       SET_EXAT = 64, SET_PXAT = 128, SET_PERSIST = 256 };

/* Parses SET/GETEX options from argv[first].  is_getex allows PERSIST and
 * forbids the SET-only flags. */
static int parse_set_opts(client *c, int first, int is_getex, int *flags, const dstr *expire_arg) {
    *flags = 0;
    const dstr *ea = expire_arg;
    for (int i = first; i < c->argc; i++) {
        const dstr a = c->argv[i];
        int has_next = i + 1 < c->argc;
        int f = *flags;
        int unit = 0;
        if (!is_getex && arg_is(a, "nx") && !(f & SET_XX)) *flags |= SET_NX;
        else if (!is_getex && arg_is(a, "xx") && !(f & SET_NX)) *flags |= SET_XX;
        else if (!is_getex && arg_is(a, "get")) *flags |= SET_GET;
        else if (!is_getex && arg_is(a, "keepttl") && !(f & (SET_PERSIST | SET_EX | SET_EXAT | SET_PX | SET_PXAT)))
            *flags |= SET_KEEPTTL;
        else if (is_getex && arg_is(a, "persist") && !(f & (SET_EX | SET_EXAT | SET_PX | SET_PXAT | SET_KEEPTTL)))
            *flags |= SET_PERSIST;
        else if (arg_is(a, "ex")) unit = SET_EX;
        else if (arg_is(a, "px")) unit = SET_PX;
        else if (arg_is(a, "exat")) unit = SET_EXAT;
        else if (arg_is(a, "pxat")) unit = SET_PXAT;
        else {
            reply_syntax_error(c);
            return ERR;
        }
        if (unit) {
            /* repeating the same unit is allowed (the last wins), as in Redis */
            if ((f & (SET_KEEPTTL | SET_PERSIST | SET_EX | SET_EXAT | SET_PX | SET_PXAT) & ~unit) || !has_next) {
                reply_syntax_error(c);
                return ERR;
            }
            *flags |= unit;
            *(dstr *)ea = c->argv[++i];
        }
    }
    return OK;
}

/* Turns the EX/PX/EXAT/PXAT argument into an absolute ms time. */
static int expire_ms(client *c, int flags, const dstr arg, long long *when) {
    long long v;
    if (arg_ll(c, arg, &v) != OK) return ERR;
    int secs = flags & (SET_EX | SET_EXAT);
    if (v <= 0 || (secs && v > LLONG_MAX / 1000)) goto invalid;
    if (secs) v *= 1000;
    if (flags & (SET_EX | SET_PX)) {
        if (v > LLONG_MAX - srv.now_ms) goto invalid;
        v += srv.now_ms;
    }
    *when = v;
    return OK;
invalid:
    reply_errorf(c, "ERR invalid expire time in '%s' command", c->cmd->name);
    return ERR;
}

/* SET's reply: the old value (GET: held since before the write, which let
 * go of it) or OK. */
static void reply_set(client *c, int flags, kobj *old) {
    if (!(flags & SET_GET)) reply_ok(c);
    else if (old) reply_bulk_obj(c, old);
    else reply_null(c);
}

static void set_generic(client *c, int flags, const dstr key, const dstr val, long long when) {
    kobj *old = NULL;
    if (flags & SET_GET) {
        if (get_string(c, key, &old) != OK) return;
        if (old) old->refcount++; /* the reply comes after the write, which may fail */
    }
    int found = db_lookup(c->db, key, LOOKUP_WRITE) != NULL;
    if (((flags & SET_NX) && found) || ((flags & SET_XX) && !found)) {
        if (flags & SET_GET) reply_set(c, flags, old);
        else reply_null(c);
        goto out;
    }
    /* value and deadline together, or neither: an acknowledged SET EX
     * never lacks its TTL */
    kobj *o = obj_string(val, dstr_len(val));
    int rc = !o ? ERR : (flags & SET_KEEPTTL) ? db_set(c->db, key, o, 1) : db_set_ttl(c->db, key, o, when);
    if (rc != OK) {
        obj_decref(o);
        reply_error(c, "ERR out of memory");
        goto out;
    }
    notify_keyspace_event(NOTIFY_STRING, "set", key, c->db->id);
    if (when >= 0) {
        notify_keyspace_event(NOTIFY_GENERIC, "expire", key, c->db->id);
        /* SET EX / SETEX / PSETEX: SET key value PXAT <deadline> */
        prop_replace_key("SET", key, val, dstr_len(val), "PXAT", when);
    }
    reply_set(c, flags, old);
out:
    if (old) obj_decref(old);
}

void set_cmd(client *c) {
    int flags;
    dstr exarg = NULL;
    long long when = -1;
    if (parse_set_opts(c, 3, 0, &flags, &exarg) != OK) return;
    if (exarg && expire_ms(c, flags, exarg, &when) != OK) return;
    set_generic(c, flags, c->argv[1], c->argv[2], when);
}

void setnx_cmd(client *c) {
    if (db_lookup(c->db, c->argv[1], LOOKUP_WRITE)) {
        reply_ll(c, 0);
        return;
    }
    if (store_string(c, c->db, c->argv[1], c->argv[2], dstr_len(c->argv[2]), 0) != OK) return;
    notify_keyspace_event(NOTIFY_STRING, "set", c->argv[1], c->db->id);
    reply_ll(c, 1);
}

static void setex_generic(client *c, int unit_flag) {
    long long when;
    if (expire_ms(c, unit_flag, c->argv[2], &when) != OK) return;
    set_generic(c, 0, c->argv[1], c->argv[3], when);
}

void setex_cmd(client *c) { setex_generic(c, SET_EX); }
void psetex_cmd(client *c) { setex_generic(c, SET_PX); }

void mget_cmd(client *c) {
    reply_array_len(c, c->argc - 1);
    for (int i = 1; i < c->argc; i++) {
        kobj *o = db_lookup_read(c, c->argv[i]);
        if (o && o->type == OBJ_STRING) reply_bulk_obj(c, o);
        else reply_null(c);
    }
}

/* What an MSET pair's key held before (NULL: it did not exist). */
typedef struct mset_undo {
    kobj *old;
} mset_undo;

static void mset_generic(client *c, int nx) {
    if (c->argc % 2 == 0) {
        reply_errorf(c, "ERR wrong number of arguments for '%s' command", c->cmd->name);
        return;
    }
    if (nx) {
        for (int i = 1; i < c->argc; i += 2)
            if (db_lookup(c->db, c->argv[i], LOOKUP_WRITE)) {
                reply_ll(c, 0);
                return;
            }
    }
    /* All the pairs or none.  Each key is set in turn, remembering what it
     * held; the old deadlines are dropped only once every pair is in (so
     * that undoing allocates nothing), and out of memory on any pair puts
     * back, in reverse order, every key set before it. */
    int n = (c->argc - 1) / 2, done;
    mset_undo stack[16], *u = n <= 16 ? stack : km_malloc((size_t)n * sizeof *u);
    if (!u) {
        reply_error(c, "ERR out of memory");
        return;
    }
    for (done = 0; done < n; done++) {
        const dstr key = c->argv[1 + 2 * done], val = c->argv[2 + 2 * done];
        kobj *o = obj_string(val, dstr_len(val));
        if (!o) break;
        dict_entry *de = dict_find(c->db->keys, key);
        u[done].old = de ? de->v.val : NULL;
        if (de) {
            u[done].old->refcount++;
            db_replace(c->db, de, o);
        } else if (db_add(c->db, key, o) != OK) {
            obj_decref(o);
            break;
        }
    }
    if (done < n) {
        while (done-- > 0) {
            const dstr key = c->argv[1 + 2 * done];
            if (!u[done].old) {
                db_delete(c->db, key);
            } else {
                dict_entry *de = dict_find(c->db->keys, key);
                assert(de); /* set by this loop */
                db_replace(c->db, de, u[done].old);
            }
        }
        if (u != stack) km_free(u);
        reply_error(c, "ERR out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        if (u[i].old) {
            db_remove_expire(c->db, c->argv[1 + 2 * i]);
            obj_decref(u[i].old);
        }
        notify_keyspace_event(NOTIFY_STRING, "set", c->argv[1 + 2 * i], c->db->id);
    }
    if (u != stack) km_free(u);
    if (nx) reply_ll(c, 1);
    else reply_ok(c);
}

void mset_cmd(client *c) { mset_generic(c, 0); }
void msetnx_cmd(client *c) { mset_generic(c, 1); }

void getset_cmd(client *c) { set_generic(c, SET_GET, c->argv[1], c->argv[2], -1); }

void getdel_cmd(client *c) {
    kobj *o;
    if (get_string(c, c->argv[1], &o) != OK) return;
    if (!o) {
        reply_null(c);
        return;
    }
    reply_bulk_obj(c, o);
    db_delete(c->db, c->argv[1]);
    notify_keyspace_event(NOTIFY_GENERIC, "del", c->argv[1], c->db->id);
}

void getex_cmd(client *c) {
    int flags;
    dstr exarg = NULL;
    long long when = -1;
    if (parse_set_opts(c, 2, 1, &flags, &exarg) != OK) return;
    kobj *o;
    if (get_string(c, c->argv[1], &o) != OK) return;
    if (!o) {
        reply_null(c);
        return;
    }
    if (exarg && expire_ms(c, flags, exarg, &when) != OK) return;
    const dstr key = c->argv[1];
    if (when > srv.now_ms && db_set_expire(c->db, key, when) != OK) {
        reply_error(c, "ERR out of memory"); /* the key keeps its value and deadline */
        return;
    }
    reply_bulk_obj(c, o); /* before a past deadline deletes it */
    if (when >= 0) {
        if (when <= srv.now_ms) {
            prop_replace_key("DEL", key, NULL, 0, NULL, -1);
            db_delete(c->db, key);
            notify_keyspace_event(NOTIFY_GENERIC, "del", key, c->db->id);
        } else {
            prop_replace_key("PEXPIREAT", key, NULL, 0, NULL, when);
            db_signal_modified(c->db, key);
            notify_keyspace_event(NOTIFY_GENERIC, "expire", key, c->db->id);
        }
    } else if ((flags & SET_PERSIST) && db_remove_expire(c->db, key)) {
        prop_replace_key("PERSIST", key, NULL, 0, NULL, -1);
        db_signal_modified(c->db, key);
        notify_keyspace_event(NOTIFY_GENERIC, "persist", key, c->db->id);
    }
}

/* Returns the key's entry holding a private ENC_RAW string for in-place
 * edits, or NULL (and replies) on wrong type or OOM; *missing is set when
 * the key does not exist. */
static dict_entry *raw_for_update(client *c, int *missing) {
    kobj *o = db_lookup(c->db, c->argv[1], LOOKUP_WRITE);
    *missing = !o;
    if (!o) return NULL;
    if (db_check_type(c, o, OBJ_STRING)) return NULL;
    dict_entry *de = dict_find(c->db->keys, c->argv[1]);
    if (o->enc != ENC_RAW || o->refcount > 1) {
        kobj *raw = obj_unshare_string(o);
        if (!raw) {
            reply_error(c, "ERR out of memory");
            return NULL;
        }
        if (raw != o) db_replace(c->db, de, raw);
    }
    return de;
}

void append_cmd(client *c) {
    int missing;
    const dstr add = c->argv[2];
    kobj *cur = db_lookup(c->db, c->argv[1], LOOKUP_WRITE);
    if (db_check_type(c, cur, OBJ_STRING)) return;
    if (cur && check_size(c, obj_strlen(cur) + dstr_len(add)) != OK) return;
    dict_entry *de = raw_for_update(c, &missing);
    if (missing) {
        if (store_string(c, c->db, c->argv[1], add, dstr_len(add), 0) != OK) return;
        notify_keyspace_event(NOTIFY_STRING, "append", c->argv[1], c->db->id);
        reply_ll(c, (long long)dstr_len(add));
        return;
    }
    if (!de) return;
    kobj *o = de->v.val;
    dstr n = dstr_catlen(o->ptr, add, dstr_len(add));
    if (!n) {
        reply_error(c, "ERR out of memory");
        return;
    }
    o->ptr = n;
    db_signal_modified(c->db, c->argv[1]);
    notify_keyspace_event(NOTIFY_STRING, "append", c->argv[1], c->db->id);
    reply_ll(c, (long long)dstr_len(n));
}

void strlen_cmd(client *c) {
    kobj *o;
    if (get_string(c, c->argv[1], &o) != OK) return;
    reply_ll(c, o ? (long long)obj_strlen(o) : 0);
}

static void incr_generic(client *c, long long by) {
    kobj *o = db_lookup(c->db, c->argv[1], LOOKUP_WRITE);
    if (db_check_type(c, o, OBJ_STRING)) return;
    long long v = 0;
    if (o && !obj_get_ll(o, &v)) {
        reply_not_integer(c);
        return;
    }
    if ((by < 0 && v < 0 && by < LLONG_MIN - v) || (by > 0 && v > 0 && by > LLONG_MAX - v)) {
        reply_error(c, "ERR increment or decrement would overflow");
        return;
    }
    v += by;
    kobj *n = obj_string_ll(v);
    if (!n || db_set(c->db, c->argv[1], n, 1) != OK) {
        obj_decref(n);
        reply_error(c, "ERR out of memory");
        return;
    }
    notify_keyspace_event(NOTIFY_STRING, "incrby", c->argv[1], c->db->id);
    reply_ll(c, v);
}

void incr_cmd(client *c) { incr_generic(c, 1); }
void decr_cmd(client *c) { incr_generic(c, -1); }

void incrby_cmd(client *c) {
    long long by;
    if (arg_ll(c, c->argv[2], &by) == OK) incr_generic(c, by);
}

void decrby_cmd(client *c) {
    long long by;
    if (arg_ll(c, c->argv[2], &by) != OK) return;
    if (by == LLONG_MIN) {
        reply_error(c, "ERR decrement would overflow");
        return;
    }
    incr_generic(c, -by);
}

void incrbyfloat_cmd(client *c) {
    kobj *o = db_lookup(c->db, c->argv[1], LOOKUP_WRITE);
    if (db_check_type(c, o, OBJ_STRING)) return;
    long double v = 0, by;
    if (o) {
        char buf[LL_STR_SIZE];
        size_t len;
        const char *p = obj_str(o, buf, &len);
        if (!str_to_ldouble(p, len, &v)) {
            reply_not_float(c);
            return;
        }
    }
    if (arg_ldouble(c, c->argv[2], &by) != OK) return;
    v += by;
    if (isnan(v) || isinf(v)) {
        reply_error(c, "ERR increment would produce NaN or Infinity");
        return;
    }
    char out[5200];
    int n = ldouble_to_str(out, sizeof out, v);
    if (n <= 0) {
        reply_error(c, "ERR increment would produce NaN or Infinity");
        return;
    }
    if (store_string(c, c->db, c->argv[1], out, (size_t)n, 1) != OK) return;
    /* the result, not the increment: float text must not be re-parsed */
    prop_replace_key("SET", c->argv[1], out, (size_t)n, "KEEPTTL", -1);
    notify_keyspace_event(NOTIFY_STRING, "incrbyfloat", c->argv[1], c->db->id);
    reply_bulk(c, out, (size_t)n);
}

/* Redis's GETRANGE index rules: negative counts from the end, clamped. */
static int clamp_range(long long *start, long long *end, long long len) {
    if (*start < 0 && *end < 0 && *start > *end) return 0;
    if (*start < 0) *start += len;
    if (*end < 0) *end += len;
    if (*start < 0) *start = 0;
    if (*end < 0) *end = 0;
    if (*end >= len) *end = len - 1;
    return !(*start > *end || len == 0);
}

void getrange_cmd(client *c) {
    long long start, end;
    if (arg_ll(c, c->argv[2], &start) != OK || arg_ll(c, c->argv[3], &end) != OK) return;
    kobj *o;
    if (get_string(c, c->argv[1], &o) != OK) return;
    if (!o) {
        reply_bulk(c, "", 0);
        return;
    }
    char buf[LL_STR_SIZE];
    size_t len;
    const char *p = obj_str(o, buf, &len);
    if (!clamp_range(&start, &end, (long long)len)) reply_bulk(c, "", 0);
    else reply_bulk(c, p + start, (size_t)(end - start + 1));
}

void substr_cmd(client *c) { getrange_cmd(c); }

void setrange_cmd(client *c) {
    long long off;
    const dstr val = c->argv[3];
    if (arg_ll(c, c->argv[2], &off) != OK) return;
    if (off < 0) {
        reply_error(c, "ERR offset is out of range");
        return;
    }
    kobj *o = db_lookup(c->db, c->argv[1], LOOKUP_WRITE);
    if (db_check_type(c, o, OBJ_STRING)) return;
    if (!o && dstr_len(val) == 0) {
        reply_ll(c, 0);
        return;
    }
    if (o && dstr_len(val) == 0) {
        reply_ll(c, (long long)obj_strlen(o));
        return;
    }
    if (check_size(c, (unsigned long long)off + dstr_len(val)) != OK) return;
    if (!o) {
        /* the whole value, then the key: out of memory adds nothing */
        size_t len = (size_t)off + dstr_len(val);
        dstr v = dstr_newlen(NULL, len);
        kobj *n = v ? obj_new(OBJ_STRING, ENC_RAW, v) : NULL;
        if (!n || db_add(c->db, c->argv[1], n) != OK) {
            if (n) obj_decref(n);
            else dstr_free(v);
            reply_error(c, "ERR out of memory");
            return;
        }
        memset(v, 0, (size_t)off);
        memcpy(v + off, val, dstr_len(val));
        notify_keyspace_event(NOTIFY_STRING, "setrange", c->argv[1], c->db->id);
        reply_ll(c, (long long)len);
        return;
    }
    int missing;
    dict_entry *de = raw_for_update(c, &missing);
    if (!de) return;
    kobj *s = de->v.val;
    size_t need = (size_t)off + dstr_len(val), cur = dstr_len(s->ptr);
    if (need > cur) {
        dstr n = dstr_reserve(s->ptr, need - cur);
        if (!n) {
            reply_error(c, "ERR out of memory");
            return;
        }
        memset(n + cur, 0, need - cur);
        dstr_setlen(n, need);
        s->ptr = n;
    }
    memcpy((char *)s->ptr + off, val, dstr_len(val));
    db_signal_modified(c->db, c->argv[1]);
    notify_keyspace_event(NOTIFY_STRING, "setrange", c->argv[1], c->db->id);
    reply_ll(c, (long long)dstr_len(s->ptr));
}

/* ------------------------------------------------------------------ bits */

static int bit_offset(client *c, const dstr s, unsigned long long *out) {
    long long v;
    if (!str_to_ll(s, dstr_len(s), &v) || v < 0 ||
        ((unsigned long long)v >> 3) >= (unsigned long long)srv.proto_max_bulk_len) {
        reply_error(c, "ERR bit offset is not an integer or out of range");
        return ERR;
    }
    *out = (unsigned long long)v;
    return OK;
}

void setbit_cmd(client *c) {
    unsigned long long off;
    if (bit_offset(c, c->argv[2], &off) != OK) return;
    const dstr b = c->argv[3];
    if (dstr_len(b) != 1 || (b[0] != '0' && b[0] != '1')) {
        reply_error(c, "ERR bit is not an integer or out of range");
        return;
    }
    kobj *o = db_lookup(c->db, c->argv[1], LOOKUP_WRITE);
    if (db_check_type(c, o, OBJ_STRING)) return;
    if (!o) {
        /* the whole value, then the key: out of memory adds nothing */
        size_t len = (size_t)(off >> 3) + 1;
        dstr v = dstr_newlen(NULL, len);
        kobj *n = v ? obj_new(OBJ_STRING, ENC_RAW, v) : NULL;
        if (!n || db_add(c->db, c->argv[1], n) != OK) {
            if (n) obj_decref(n);
            else dstr_free(v);
            reply_error(c, "ERR out of memory");
            return;
        }
        memset(v, 0, len);
    }
    int missing;
    dict_entry *de = raw_for_update(c, &missing);
    if (!de) return;
    kobj *s = de->v.val;
    size_t byte = (size_t)(off >> 3), cur = dstr_len(s->ptr);
    int changed = !o || byte >= cur; /* created or grown counts as a change */
    if (byte >= cur) {
        dstr n = dstr_reserve(s->ptr, byte + 1 - cur);
        if (!n) {
            reply_error(c, "ERR out of memory");
            return;
        }
        memset(n + cur, 0, byte + 1 - cur);
        dstr_setlen(n, byte + 1);
        s->ptr = n;
    }
    unsigned char *p = (unsigned char *)s->ptr + byte;
    int bit = 7 - (int)(off & 7);
    int old = (*p >> bit) & 1;
    if (b[0] == '1') *p |= (unsigned char)(1 << bit);
    else *p &= (unsigned char)~(1 << bit);
    /* Redis 7.0 neither signals nor notifies a bit set to what it was */
    if (changed || old != b[0] - '0') {
        db_signal_modified(c->db, c->argv[1]);
        notify_keyspace_event(NOTIFY_STRING, "setbit", c->argv[1], c->db->id);
    }
    reply_ll(c, old);
}

void getbit_cmd(client *c) {
    unsigned long long off;
    if (bit_offset(c, c->argv[2], &off) != OK) return;
    kobj *o;
    if (get_string(c, c->argv[1], &o) != OK) return;
    if (!o) {
        reply_ll(c, 0);
        return;
    }
    char buf[LL_STR_SIZE];
    size_t len;
    const unsigned char *p = (const unsigned char *)obj_str(o, buf, &len);
    size_t byte = (size_t)(off >> 3);
    reply_ll(c, byte < len ? (p[byte] >> (7 - (off & 7))) & 1 : 0);
}

static long long popcount(const unsigned char *p, size_t n) {
    long long bits = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        bits += __builtin_popcountll(w);
    }
    for (; i < n; i++) bits += __builtin_popcount(p[i]);
    return bits;
}

/* Parses [start end [BYTE|BIT]] at argv[i]; *isbit set for BIT. */
static int range_unit(client *c, int i, int *isbit) {
    *isbit = 0;
    if (c->argc == i + 1) {
        if (arg_is(c->argv[i], "bit")) *isbit = 1;
        else if (!arg_is(c->argv[i], "byte")) {
            reply_syntax_error(c);
            return ERR;
        }
    } else if (c->argc > i + 1) {
        reply_syntax_error(c);
        return ERR;
    }
    return OK;
}

/* The key is looked up first, as in Redis: a missing key answers 0 and a
 * wrong type WRONGTYPE before the range is even parsed. */
void bitcount_cmd(client *c) {
    long long start = 0, end = -1;
    int isbit = 0;
    kobj *o;
    if (get_string(c, c->argv[1], &o) != OK) return;
    if (!o) {
        reply_ll(c, 0);
        return;
    }
    if (c->argc == 3) {
        reply_syntax_error(c);
        return;
    }
    if (c->argc >= 4) {
        if (arg_ll(c, c->argv[2], &start) != OK || arg_ll(c, c->argv[3], &end) != OK) return;
        if (range_unit(c, 4, &isbit) != OK) return;
    }
    char buf[LL_STR_SIZE];
    size_t len;
    const unsigned char *p = (const unsigned char *)obj_str(o, buf, &len);
    long long total = isbit ? (long long)len * 8 : (long long)len;
    if (start < 0 && end < 0 && start > end) {
        reply_ll(c, 0);
        return;
    }
    if (start < 0) start += total;
    if (end < 0) end += total;
    if (start < 0) start = 0;
    if (end < 0) end = 0;
    if (end >= total) end = total - 1;
    if (start > end || total == 0) {
        reply_ll(c, 0);
        return;
    }
    if (!isbit) {
        reply_ll(c, popcount(p + start, (size_t)(end - start + 1)));
        return;
    }
    long long n = 0;
    for (long long b = start; b <= end; b++) n += (p[b >> 3] >> (7 - (b & 7))) & 1;
    reply_ll(c, n);
}

void bitpos_cmd(client *c) {
    const dstr b = c->argv[2];
    long long bitv;
    if (arg_ll(c, b, &bitv) != OK) return;
    if (bitv != 0 && bitv != 1) {
        reply_error(c, "ERR The bit argument must be 1 or 0.");
        return;
    }
    long long start = 0, end = -1;
    int isbit = 0, end_given = 0;
    kobj *o;
    if (get_string(c, c->argv[1], &o) != OK) return;
    if (!o) {
        reply_ll(c, bitv ? -1 : 0);
        return;
    }
    if (c->argc >= 4 && arg_ll(c, c->argv[3], &start) != OK) return;
    if (c->argc >= 5) {
        if (arg_ll(c, c->argv[4], &end) != OK) return;
        end_given = 1;
        if (range_unit(c, 5, &isbit) != OK) return;
    }
    char buf[LL_STR_SIZE];
    size_t len;
    const unsigned char *p = (const unsigned char *)obj_str(o, buf, &len);
    long long total = isbit ? (long long)len * 8 : (long long)len;
    if (start < 0) start += total;
    if (end < 0) end += total;
    if (start < 0) start = 0;
    if (end < 0) end = 0;
    if (end >= total) end = total - 1;
    if (start > end || total == 0) {
        reply_ll(c, -1);
        return;
    }
    long long first = isbit ? start : start * 8, last = isbit ? end : end * 8 + 7;
    for (long long i = first; i <= last; i++)
        if (((p[i >> 3] >> (7 - (i & 7))) & 1) == bitv) {
            reply_ll(c, i);
            return;
        }
    /* Looking for a 0 in all-ones with no explicit end: the string is
     * considered padded with zeros on the right. */
    if (bitv == 0 && !end_given) reply_ll(c, last + 1);
    else reply_ll(c, -1);
}
