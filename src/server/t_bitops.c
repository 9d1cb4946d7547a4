/* t_bitops.c - BITOP, BITFIELD and BITFIELD_RO: bitwise operations across
 * whole strings, and integers of any width (i1..i64, u1..u63) at any bit
 * offset inside one string.
 *
 * They live apart from t_string.c's SETBIT/GETBIT/BITCOUNT/BITPOS because
 * they need machinery of their own: BITOP combines several keys into a
 * fresh string, BITFIELD parses a small program of sub-operations and runs
 * it with Redis's exact overflow rules (WRAP, SAT, FAIL).  The bit layout
 * is SETBIT's: bit 0 is the most significant bit of byte 0, so a field at
 * a byte-aligned offset is big-endian.
 *
 * Both are propagated as they are written: given the same state they do
 * the same thing, so their argv replays exactly (AOF). */
#include "server.h"

#include <string.h>

/* ------------------------------------------------------------------ BITOP */

enum { BITOP_AND, BITOP_OR, BITOP_XOR, BITOP_NOT };

/* One source of BITOP: its bytes (borrowed from the key's object, or from
 * buf for an integer-encoded string) and their count. */
typedef struct bitop_src {
    const unsigned char *p;
    size_t len;
    char buf[LL_STR_SIZE];
} bitop_src;

/* Combines the sources byte by byte into out (maxlen bytes); a source
 * shorter than maxlen reads as zero bytes past its end.  Whole 64-bit
 * words are combined while every source still has data, which is where
 * nearly all the bytes of equal-length bitmaps go. */
static void bitop_compute(int op, const bitop_src *src, size_t n, unsigned char *out, size_t maxlen) {
    size_t minlen = src[0].len;
    for (size_t k = 1; k < n; k++)
        if (src[k].len < minlen) minlen = src[k].len;
    size_t j = 0;
    for (; j + 8 <= minlen; j += 8) {
        uint64_t acc, w;
        memcpy(&acc, src[0].p + j, 8);
        if (op == BITOP_NOT) acc = ~acc;
        for (size_t k = 1; k < n; k++) {
            memcpy(&w, src[k].p + j, 8);
            if (op == BITOP_AND) acc &= w;
            else if (op == BITOP_OR) acc |= w;
            else acc ^= w;
        }
        memcpy(out + j, &acc, 8);
    }
    for (; j < maxlen; j++) {
        unsigned char acc = j < src[0].len ? src[0].p[j] : 0;
        if (op == BITOP_NOT) acc = (unsigned char)~acc;
        for (size_t k = 1; k < n; k++) {
            unsigned char b = j < src[k].len ? src[k].p[j] : 0;
            if (op == BITOP_AND) acc &= b;
            else if (op == BITOP_OR) acc |= b;
            else acc ^= b;
        }
        out[j] = acc;
    }
}

/* BITOP AND|OR|XOR|NOT destkey key [key ...]
 * O(N): N is the length of the longest source string. */
void bitop_cmd(client *c) {
    int op;
    if (arg_is(c->argv[1], "and")) op = BITOP_AND;
    else if (arg_is(c->argv[1], "or")) op = BITOP_OR;
    else if (arg_is(c->argv[1], "xor")) op = BITOP_XOR;
    else if (arg_is(c->argv[1], "not")) op = BITOP_NOT;
    else {
        reply_syntax_error(c);
        return;
    }
    if (op == BITOP_NOT && c->argc != 4) {
        reply_error(c, "ERR BITOP NOT must be called with a single source key.");
        return;
    }
    size_t n = (size_t)c->argc - 3;
    bitop_src *src = km_malloc(n * sizeof *src);
    if (!src) {
        reply_error(c, "ERR out of memory");
        return;
    }
    /* Every source is looked up (hits, misses, keymiss events) until the
     * first that is not a string, as in Redis. */
    size_t maxlen = 0;
    for (size_t k = 0; k < n; k++) {
        kobj *o = db_lookup_read(c, c->argv[3 + k]);
        if (db_check_type(c, o, OBJ_STRING)) {
            km_free(src);
            return;
        }
        src[k].p = NULL;
        src[k].len = 0;
        if (o) src[k].p = (const unsigned char *)obj_str(o, src[k].buf, &src[k].len);
        if (src[k].len > maxlen) maxlen = src[k].len;
    }
    const dstr dst = c->argv[2];
    if (maxlen == 0) {
        /* every source empty or missing: the result is the empty string,
         * which Redis stores as no key at all */
        km_free(src);
        if (db_delete(c->db, dst)) notify_keyspace_event(NOTIFY_GENERIC, "del", dst, c->db->id);
        reply_ll(c, 0);
        return;
    }
    /* The result is built apart from the sources: dst may be one of them. */
    dstr res = dstr_newlen(NULL, maxlen);
    if (!res) {
        km_free(src);
        reply_error(c, "ERR out of memory");
        return;
    }
    bitop_compute(op, src, n, (unsigned char *)res, maxlen);
    km_free(src);
    kobj *o = obj_string_dstr(res);
    if (!o) {
        dstr_free(res);
        reply_error(c, "ERR out of memory");
        return;
    }
    if (db_set(c->db, dst, o, 0) != OK) {
        obj_decref(o);
        reply_error(c, "ERR out of memory");
        return;
    }
    notify_keyspace_event(NOTIFY_STRING, "set", dst, c->db->id);
    reply_ll(c, (long long)maxlen);
}

/* --------------------------------------------------------------- BITFIELD */

enum { BF_GET, BF_SET, BF_INCRBY };
enum { BF_WRAP, BF_SAT, BF_FAIL };

typedef struct bf_op {
    uint64_t offset; /* first bit of the field */
    int64_t value;   /* SET's value or INCRBY's increment */
    int opcode, overflow, bits, is_signed;
} bf_op;

/* Reads `bits` bits (1..64) at bit offset `off` of p[0..len): bits past
 * the end read as 0. */
static uint64_t bf_read(const unsigned char *p, size_t len, uint64_t off, int bits) {
    uint64_t v = 0;
    for (int i = 0; i < bits; i++, off++) {
        uint64_t byte = off >> 3;
        unsigned bit = byte < len ? (p[byte] >> (7 - (off & 7))) & 1u : 0u;
        v = (v << 1) | bit;
    }
    return v;
}

/* Writes the low `bits` bits of v at bit offset `off` (inside p). */
static void bf_write(unsigned char *p, uint64_t off, int bits, uint64_t v) {
    for (int i = 0; i < bits; i++, off++) {
        unsigned bit = (unsigned)(v >> (bits - 1 - i)) & 1u;
        unsigned shift = 7 - (unsigned)(off & 7);
        p[off >> 3] = (unsigned char)((p[off >> 3] & ~(1u << shift)) | (bit << shift));
    }
}

/* Two's complement sign extension of a `bits`-wide field. */
static int64_t bf_sign_extend(uint64_t v, int bits) {
    if (bits < 64 && (v & ((uint64_t)1 << (bits - 1)))) v |= UINT64_MAX << bits;
    return (int64_t)v;
}

/* Whether value + incr fits an unsigned field of `bits` bits (1..63): 0
 * when it does, 1 above the maximum, -1 below zero.  On overflow *res is
 * what WRAP (modulo 2^bits) or SAT (the bound passed) stores.  SET checks
 * its value with incr 0: a negative value reads as a huge unsigned one and
 * so counts as above the maximum, as in Redis. */
static int bf_check_unsigned(uint64_t value, int64_t incr, int bits, int overflow, uint64_t *res) {
    uint64_t max = ((uint64_t)1 << bits) - 1;
    int64_t maxincr = (int64_t)(max - value), minincr = (int64_t)(0 - value);
    int dir = 0;
    if (value > max || (incr > 0 && incr > maxincr)) dir = 1;
    else if (incr < 0 && incr < minincr) dir = -1;
    if (dir == 0) return 0;
    if (overflow == BF_WRAP) *res = (value + (uint64_t)incr) & max;
    else if (overflow == BF_SAT) *res = dir > 0 ? max : 0;
    return dir;
}

/* The same for a signed field of `bits` bits (1..64).  The arithmetic
 * runs on uint64_t so that it is defined where int64_t would overflow;
 * the conditions are Redis's, including its 64-bit special cases. */
static int bf_check_signed(int64_t value, int64_t incr, int bits, int overflow, int64_t *res) {
    int64_t max = bits == 64 ? INT64_MAX : (int64_t)(((uint64_t)1 << (bits - 1)) - 1);
    int64_t min = -max - 1;
    int64_t maxincr = (int64_t)((uint64_t)max - (uint64_t)value);
    int64_t minincr = (int64_t)((uint64_t)min - (uint64_t)value);
    int dir = 0;
    if (value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr)) dir = 1;
    else if (value < min || (bits != 64 && incr < minincr) || (value < 0 && incr < 0 && incr < minincr)) dir = -1;
    if (dir == 0) return 0;
    if (overflow == BF_WRAP) {
        uint64_t sum = (uint64_t)value + (uint64_t)incr;
        *res = bf_sign_extend(bits < 64 ? sum & (UINT64_MAX >> (64 - bits)) : sum, bits);
    } else if (overflow == BF_SAT) {
        *res = dir > 0 ? max : min;
    }
    return dir;
}

/* A type argument: i1..i64 or u1..u63.  Read as a C string, as Redis does
 * (bytes after a NUL are ignored). */
static int bf_parse_type(client *c, const dstr s, int *is_signed, int *bits) {
    long long v;
    size_t n = strlen(s);
    if (n < 1 || (s[0] != 'i' && s[0] != 'u') || !str_to_ll(s + 1, n - 1, &v) || v < 1 ||
        v > (s[0] == 'i' ? 64 : 63)) {
        reply_error(c, "ERR Invalid bitfield type. Use something like i16 u8. "
                       "Note that u64 is not supported but i64 is.");
        return ERR;
    }
    *is_signed = s[0] == 'i';
    *bits = (int)v;
    return OK;
}

/* An offset argument: a bit offset, or #N for the N-th field of this
 * width (N * bits).  Same limit as SETBIT: the byte holding it must be
 * below proto-max-bulk-len (not checked while an AOF replays, whose
 * commands were accepted once).  #N * bits wraps as Redis's does. */
static int bf_parse_offset(client *c, const dstr s, int bits, uint64_t *off) {
    long long v;
    int hash = s[0] == '#';
    if (!str_to_ll(s + hash, dstr_len(s) - (size_t)hash, &v)) goto bad;
    if (hash) v = (long long)((unsigned long long)v * (unsigned long long)bits);
    if (v < 0 || (!srv.loading && (v >> 3) >= srv.proto_max_bulk_len)) goto bad;
    *off = (uint64_t)v;
    return OK;
bad:
    reply_error(c, "ERR bit offset is not an integer or out of range");
    return ERR;
}

/* Parses the sub-operations at argv[2..]; replies and returns NULL on the
 * first bad one.  *nops may be 0 (BITFIELD key alone answers []). */
static bf_op *bf_parse(client *c, int *nops, int *writes, uint64_t *highest) {
    bf_op *ops = NULL;
    int n = 0, cap = 0, overflow = BF_WRAP;
    *writes = 0;
    *highest = 0;
    for (int j = 2; j < c->argc; j++) {
        int left = c->argc - j - 1, opcode;
        const dstr sub = c->argv[j];
        if (arg_is(sub, "get") && left >= 2) opcode = BF_GET;
        else if (arg_is(sub, "set") && left >= 3) opcode = BF_SET;
        else if (arg_is(sub, "incrby") && left >= 3) opcode = BF_INCRBY;
        else if (arg_is(sub, "overflow") && left >= 1) {
            const dstr t = c->argv[++j];
            if (arg_is(t, "wrap")) overflow = BF_WRAP;
            else if (arg_is(t, "sat")) overflow = BF_SAT;
            else if (arg_is(t, "fail")) overflow = BF_FAIL;
            else {
                reply_error(c, "ERR Invalid OVERFLOW type specified");
                goto fail;
            }
            continue;
        } else {
            reply_syntax_error(c);
            goto fail;
        }
        bf_op op = {0, 0, opcode, overflow, 0, 0};
        if (bf_parse_type(c, c->argv[j + 1], &op.is_signed, &op.bits) != OK) goto fail;
        if (bf_parse_offset(c, c->argv[j + 2], op.bits, &op.offset) != OK) goto fail;
        if (opcode != BF_GET) {
            long long v;
            *writes = 1;
            if (op.offset + (uint64_t)op.bits - 1 > *highest) *highest = op.offset + (uint64_t)op.bits - 1;
            if (arg_ll(c, c->argv[j + 3], &v) != OK) goto fail;
            op.value = v;
        }
        if (n == cap) {
            int ncap = cap ? cap * 2 : 4;
            bf_op *nv = km_realloc(ops, (size_t)ncap * sizeof *nv);
            if (!nv) {
                reply_error(c, "ERR out of memory");
                goto fail;
            }
            ops = nv;
            cap = ncap;
        }
        ops[n++] = op;
        j += opcode == BF_GET ? 2 : 3;
    }
    *nops = n;
    /* a valid empty program still needs a non-NULL answer */
    if (!ops && !(ops = km_malloc(sizeof *ops))) {
        reply_error(c, "ERR out of memory");
        return NULL;
    }
    return ops;
fail:
    km_free(ops);
    return NULL;
}

/* The key's string, made a private raw string at least `bytes` long for
 * in-place writes (created when missing).  *grew: created or lengthened.
 * NULL after a reply (WRONGTYPE, OOM). */
static kobj *bf_string_for_write(client *c, size_t bytes, int *grew) {
    const dstr key = c->argv[1];
    *grew = 0;
    kobj *o = db_lookup_write(c, key);
    if (db_check_type(c, o, OBJ_STRING)) return NULL;
    if (!o) {
        dstr s = dstr_newlen(NULL, bytes); /* zero-filled */
        kobj *n = s ? obj_new(OBJ_STRING, ENC_RAW, s) : NULL;
        /* WATCH is signalled by the caller, only if a write counts */
        if (!n || db_add_unsignalled(c->db, key, n) != OK) {
            if (n) obj_decref(n);
            else dstr_free(s);
            reply_error(c, "ERR out of memory");
            return NULL;
        }
        *grew = 1;
        return n;
    }
    if (o->enc != ENC_RAW || o->refcount > 1) {
        /* Same value in another encoding: swapped in without signalling
         * WATCH, which only a real change below should touch (Redis's
         * dbUnshareStringValue does not signal either). */
        kobj *raw = obj_unshare_string(o);
        if (!raw) {
            reply_error(c, "ERR out of memory");
            return NULL;
        }
        if (raw != o) {
            dict_entry *de = dict_find(c->db->keys, key);
            de->v.val = raw;
            obj_decref(o);
            o = raw;
        }
    }
    size_t cur = dstr_len(o->ptr);
    if (bytes > cur) {
        dstr n = dstr_reserve(o->ptr, bytes - cur);
        if (!n) {
            reply_error(c, "ERR out of memory");
            return NULL;
        }
        memset(n + cur, 0, bytes - cur);
        dstr_setlen(n, bytes);
        o->ptr = n;
        *grew = 1;
    }
    return o;
}

/* Runs one SET or INCRBY on the raw string o (already long enough for
 * every field written); replies the value (old for SET, new for INCRBY)
 * or nil when OVERFLOW FAIL refused it.  1 when the field's bits changed,
 * 0 when they did not, -1 when refused. */
static int bf_run_write(client *c, kobj *o, const bf_op *op) {
    unsigned char *s = (unsigned char *)o->ptr;
    uint64_t raw = bf_read(s, dstr_len(o->ptr), op->offset, op->bits);
    int over;
    if (op->is_signed) {
        int64_t old = bf_sign_extend(raw, op->bits), nv, lim = 0;
        if (op->opcode == BF_INCRBY) {
            over = bf_check_signed(old, op->value, op->bits, op->overflow, &lim);
            nv = over ? lim : (int64_t)((uint64_t)old + (uint64_t)op->value);
        } else {
            over = bf_check_signed(op->value, 0, op->bits, op->overflow, &lim);
            nv = over ? lim : op->value;
        }
        if (over && op->overflow == BF_FAIL) {
            reply_null(c);
            return -1;
        }
        reply_ll(c, op->opcode == BF_INCRBY ? nv : old);
        bf_write(s, op->offset, op->bits, (uint64_t)nv);
        return nv != old;
    }
    uint64_t old = raw, nv, lim = 0;
    if (op->opcode == BF_INCRBY) {
        over = bf_check_unsigned(old, op->value, op->bits, op->overflow, &lim);
        nv = over ? lim : old + (uint64_t)op->value;
    } else {
        over = bf_check_unsigned((uint64_t)op->value, 0, op->bits, op->overflow, &lim);
        nv = over ? lim : (uint64_t)op->value;
    }
    if (over && op->overflow == BF_FAIL) {
        reply_null(c);
        return -1;
    }
    /* u63 at most: every unsigned value fits a long long */
    reply_ll(c, (long long)(op->opcode == BF_INCRBY ? nv : old));
    bf_write(s, op->offset, op->bits, nv);
    return nv != old;
}

static void bitfield_generic(client *c, int readonly_cmd) {
    int nops, writes;
    uint64_t highest;
    bf_op *ops = bf_parse(c, &nops, &writes, &highest);
    if (!ops) return;
    kobj *o;
    int grew = 0;
    if (!writes) {
        /* GETs only: a read, and a missing key is all zeros */
        o = db_lookup_read(c, c->argv[1]);
        if (db_check_type(c, o, OBJ_STRING)) goto done;
    } else if (readonly_cmd) {
        reply_error(c, "ERR BITFIELD_RO only supports the GET subcommand");
        goto done;
    } else if (!(o = bf_string_for_write(c, (size_t)(highest >> 3) + 1, &grew))) {
        goto done;
    }
    reply_array_len(c, nops);
    long long changes = 0;
    for (int j = 0; j < nops; j++) {
        const bf_op *op = &ops[j];
        if (op->opcode == BF_GET) {
            char buf[LL_STR_SIZE];
            size_t len = 0;
            const unsigned char *p = o ? (const unsigned char *)obj_str(o, buf, &len) : NULL;
            uint64_t v = bf_read(p, len, op->offset, op->bits);
            reply_ll(c, op->is_signed ? bf_sign_extend(v, op->bits) : (long long)v);
            continue;
        }
        /* a write on a string just created or grown counts as a change
         * even when it stores zero bits over zero bits, as in Redis */
        int r = bf_run_write(c, o, op);
        if (r > 0 || (r == 0 && grew)) changes++;
    }
    if (changes) {
        db_signal_modified(c->db, c->argv[1]);
        srv.dirty += changes - 1; /* Redis counts one change per field written */
        notify_keyspace_event(NOTIFY_STRING, "setbit", c->argv[1], c->db->id);
    } else if (grew) {
        /* Created or lengthened but every write refused by OVERFLOW FAIL:
         * Redis neither signals WATCH nor notifies; the new key or length
         * must still reach the AOF, so the command counts as a change
         * there. */
        srv.dirty++;
    }
done:
    km_free(ops);
}

/* BITFIELD key [GET type offset] [SET type offset value]
 *     [INCRBY type offset increment] [OVERFLOW WRAP|SAT|FAIL] ...
 * O(1) for each subcommand specified. */
void bitfield_cmd(client *c) { bitfield_generic(c, 0); }

/* BITFIELD_RO key [GET type offset ...]
 * O(1) for each subcommand specified. */
void bitfield_ro_cmd(client *c) { bitfield_generic(c, 1); }
