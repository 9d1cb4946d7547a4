/* t_keys.c - commands on keys whatever their type: DEL UNLINK EXISTS TYPE
 * RENAME RENAMENX KEYS SCAN RANDOMKEY EXPIRE* TTL PTTL EXPIRETIME
 * PEXPIRETIME PERSIST TOUCH COPY MOVE OBJECT. */
#include "server.h"
#include "aof.h"

#include <string.h>

void del_cmd(client *c) {
    long long n = 0;
    for (int i = 1; i < c->argc; i++) {
        db_expire_if_needed(c->db, c->argv[i]);
        if (!db_delete(c->db, c->argv[i])) continue;
        notify_keyspace_event(NOTIFY_GENERIC, "del", c->argv[i], c->db->id);
        n++;
    }
    reply_ll(c, n);
}

void unlink_cmd(client *c) { del_cmd(c); }

void exists_cmd(client *c) {
    long long n = 0;
    for (int i = 1; i < c->argc; i++) n += db_lookup_read_flags(c, c->argv[i], LOOKUP_NOTOUCH) != NULL;
    reply_ll(c, n);
}

void type_cmd(client *c) {
    kobj *o = db_lookup_read_flags(c, c->argv[1], LOOKUP_NOTOUCH);
    reply_status(c, o ? obj_type_name(o->type) : "none");
}

static void rename_generic(client *c, int nx) {
    kobj *o = db_lookup(c->db, c->argv[1], LOOKUP_WRITE);
    if (!o) {
        reply_error(c, "ERR no such key");
        return;
    }
    if (dict_eq_dstr(c->argv[1], c->argv[2])) {
        if (nx) reply_ll(c, 0);
        else reply_ok(c);
        return;
    }
    long long ttl = db_get_expire(c->db, c->argv[1]);
    if (nx && db_lookup(c->db, c->argv[2], LOOKUP_WRITE)) {
        reply_ll(c, 0);
        return;
    }
    /* the new name first (replacing what it held), with the deadline, all
     * or nothing; only then is the old name let go: out of memory leaves
     * both keys as they were */
    o->refcount++;
    if (db_set_ttl(c->db, c->argv[2], o, ttl) != OK) {
        o->refcount--;
        reply_error(c, "ERR out of memory");
        return;
    }
    db_delete(c->db, c->argv[1]);
    notify_keyspace_event(NOTIFY_GENERIC, "rename_from", c->argv[1], c->db->id);
    notify_keyspace_event(NOTIFY_GENERIC, "rename_to", c->argv[2], c->db->id);
    if (nx) reply_ll(c, 1);
    else reply_ok(c);
}

void rename_cmd(client *c) { rename_generic(c, 0); }
void renamenx_cmd(client *c) { rename_generic(c, 1); }

void keys_cmd(client *c) {
    const dstr pat = c->argv[1];
    int all = dstr_len(pat) == 1 && pat[0] == '*';
    void *node = reply_defer_len(c);
    long n = 0;
    dict_iter it;
    dict_iter_init(&it, c->db->keys, 1);
    for (dict_entry *e; (e = dict_next(&it));) {
        dstr k = e->key;
        if (!all && !glob_match(pat, dstr_len(pat), k, dstr_len(k), 0)) continue;
        long long when = db_get_expire(c->db, k);
        if (when >= 0 && when <= srv.now_ms) continue; /* logically gone */
        reply_bulk_dstr(c, k);
        n++;
    }
    dict_iter_done(&it);
    reply_set_deferred_array(c, node, n);
}

void scan_cmd(client *c) {
    unsigned long cursor;
    if (scan_parse_cursor(c, c->argv[1], &cursor) != OK) return;
    scan_generic(c, NULL, 2, cursor);
}

void randomkey_cmd(client *c) {
    for (int tries = 0; tries < 100 && dict_size(c->db->keys); tries++) {
        dict_entry *e = dict_random(c->db->keys);
        dstr k = dstr_dup(e->key);
        if (!k) break;
        if (db_expire_if_needed(c->db, k)) {
            dstr_free(k);
            continue;
        }
        reply_bulk_dstr(c, k);
        dstr_free(k);
        return;
    }
    reply_null(c);
}

/* ----------------------------------------------------------------- expire */

enum { EX_NX = 1, EX_XX = 2, EX_GT = 4, EX_LT = 8 };

static int parse_expire_flags(client *c, int *flags) {
    *flags = 0;
    for (int i = 3; i < c->argc; i++) {
        if (arg_is(c->argv[i], "nx")) *flags |= EX_NX;
        else if (arg_is(c->argv[i], "xx")) *flags |= EX_XX;
        else if (arg_is(c->argv[i], "gt")) *flags |= EX_GT;
        else if (arg_is(c->argv[i], "lt")) *flags |= EX_LT;
        else {
            reply_errorf(c, "ERR Unsupported option %s", c->argv[i]);
            return ERR;
        }
    }
    if ((*flags & EX_NX) && (*flags & (EX_XX | EX_GT | EX_LT))) {
        reply_error(c, "ERR NX and XX, GT or LT options at the same time are not compatible");
        return ERR;
    }
    if ((*flags & EX_GT) && (*flags & EX_LT)) {
        reply_error(c, "ERR GT and LT options at the same time are not compatible");
        return ERR;
    }
    return OK;
}

/* basetime_ms: 0 for absolute times; unit_ms: 1000 for seconds. */
static void expire_generic(client *c, long long basetime_ms, long long unit_ms) {
    int flags;
    long long when;
    if (parse_expire_flags(c, &flags) != OK) return;
    if (arg_ll(c, c->argv[2], &when) != OK) return;
    if (when > LLONG_MAX / unit_ms || when < LLONG_MIN / unit_ms) goto invalid;
    when *= unit_ms;
    if ((when > 0 && basetime_ms > LLONG_MAX - when) || (when < 0 && basetime_ms < LLONG_MIN - when))
        goto invalid;
    when += basetime_ms;
    kobj *o = db_lookup(c->db, c->argv[1], LOOKUP_WRITE);
    if (!o) {
        reply_ll(c, 0);
        return;
    }
    long long cur = db_get_expire(c->db, c->argv[1]);
    if (flags) {
        if ((flags & EX_NX) && cur != -1) goto no;
        if ((flags & EX_XX) && cur == -1) goto no;
        if (flags & EX_GT) {
            if (cur == -1 || when <= cur) goto no;
        }
        if ((flags & EX_LT) && cur != -1 && when >= cur) goto no;
    }
    /* A deadline already past deletes the key - except while an AOF
     * replays, where later commands in the file saw the key alive. */
    if (when <= srv.now_ms && !srv.loading) {
        prop_replace_key("DEL", c->argv[1], NULL, 0, NULL, -1);
        db_delete(c->db, c->argv[1]);
        notify_keyspace_event(NOTIFY_GENERIC, "del", c->argv[1], c->db->id);
        reply_ll(c, 1);
        return;
    }
    if (db_set_expire(c->db, c->argv[1], when) != OK) {
        reply_error(c, "ERR out of memory"); /* the key keeps the deadline it had */
        return;
    }
    prop_replace_key("PEXPIREAT", c->argv[1], NULL, 0, NULL, when); /* an absolute deadline replays alike */
    db_signal_modified(c->db, c->argv[1]);
    notify_keyspace_event(NOTIFY_GENERIC, "expire", c->argv[1], c->db->id);
    reply_ll(c, 1);
    return;
no:
    reply_ll(c, 0);
    return;
invalid:
    reply_errorf(c, "ERR invalid expire time in '%s' command", c->cmd->name);
}

void expire_cmd(client *c) { expire_generic(c, srv.now_ms, 1000); }
void pexpire_cmd(client *c) { expire_generic(c, srv.now_ms, 1); }
void expireat_cmd(client *c) { expire_generic(c, 0, 1000); }
void pexpireat_cmd(client *c) { expire_generic(c, 0, 1); }

static void ttl_generic(client *c, int ms, int absolute) {
    if (!db_lookup_read_flags(c, c->argv[1], LOOKUP_NOTOUCH)) {
        reply_ll(c, -2);
        return;
    }
    long long when = db_get_expire(c->db, c->argv[1]);
    if (when == -1) {
        reply_ll(c, -1);
        return;
    }
    long long ttl = absolute ? when : when - srv.now_ms;
    if (ttl < 0) ttl = 0;
    /* seconds round to nearest, written so that it cannot overflow */
    reply_ll(c, ms ? ttl : ttl / 1000 + (ttl % 1000 >= 500));
}

void ttl_cmd(client *c) { ttl_generic(c, 0, 0); }
void pttl_cmd(client *c) { ttl_generic(c, 1, 0); }
void expiretime_cmd(client *c) { ttl_generic(c, 0, 1); }
void pexpiretime_cmd(client *c) { ttl_generic(c, 1, 1); }

void persist_cmd(client *c) {
    if (!db_lookup(c->db, c->argv[1], LOOKUP_WRITE)) {
        reply_ll(c, 0);
        return;
    }
    if (!db_remove_expire(c->db, c->argv[1])) {
        reply_ll(c, 0);
        return;
    }
    db_signal_modified(c->db, c->argv[1]);
    notify_keyspace_event(NOTIFY_GENERIC, "persist", c->argv[1], c->db->id);
    reply_ll(c, 1);
}

void touch_cmd(client *c) {
    long long n = 0;
    for (int i = 1; i < c->argc; i++) n += db_lookup_read(c, c->argv[i]) != NULL;
    reply_ll(c, n);
}

void copy_cmd(client *c) {
    kdb *dst = c->db;
    int replace = 0;
    for (int i = 3; i < c->argc; i++) {
        if (arg_is(c->argv[i], "replace")) {
            replace = 1;
        } else if (arg_is(c->argv[i], "db") && i + 1 < c->argc) {
            long long id;
            if (arg_ll_range(c, c->argv[++i], INT_MIN, INT_MAX, &id, NULL) != OK) return;
            dst = db_get((int)id);
            if (!dst) {
                reply_error(c, "ERR DB index is out of range");
                return;
            }
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    if (dst == c->db && dict_eq_dstr(c->argv[1], c->argv[2])) {
        reply_error(c, "ERR source and destination objects are the same");
        return;
    }
    kobj *o = db_lookup(c->db, c->argv[1], LOOKUP_WRITE);
    if (!o) {
        reply_ll(c, 0);
        return;
    }
    if (!replace && db_lookup(dst, c->argv[2], LOOKUP_WRITE)) {
        reply_ll(c, 0);
        return;
    }
    kobj *copy = obj_dup(o);
    long long ttl = db_get_expire(c->db, c->argv[1]);
    if (!copy || db_set_ttl(dst, c->argv[2], copy, ttl) != OK) { /* REPLACE: the old value goes only now */
        if (copy) obj_decref(copy);
        reply_error(c, "ERR out of memory");
        return;
    }
    notify_keyspace_event(NOTIFY_GENERIC, "copy_to", c->argv[2], dst->id);
    reply_ll(c, 1);
}

void move_cmd(client *c) {
    long long id;
    if (arg_ll_range(c, c->argv[2], INT_MIN, INT_MAX, &id, NULL) != OK) return;
    kdb *dst = db_get((int)id);
    if (!dst) {
        reply_error(c, "ERR DB index is out of range");
        return;
    }
    if (dst == c->db) {
        reply_error(c, "ERR source and destination objects are the same");
        return;
    }
    kobj *o = db_lookup(c->db, c->argv[1], LOOKUP_WRITE);
    if (!o || db_lookup(dst, c->argv[1], LOOKUP_WRITE)) {
        reply_ll(c, 0);
        return;
    }
    long long ttl = db_get_expire(c->db, c->argv[1]);
    o->refcount++;
    if (db_set_ttl(dst, c->argv[1], o, ttl) != OK) { /* in the target first: nothing lost on OOM */
        o->refcount--;
        reply_error(c, "ERR out of memory");
        return;
    }
    db_delete(c->db, c->argv[1]);
    notify_keyspace_event(NOTIFY_GENERIC, "move_from", c->argv[1], c->db->id);
    notify_keyspace_event(NOTIFY_GENERIC, "move_to", c->argv[1], dst->id);
    reply_ll(c, 1);
}

void object_cmd(client *c) {
    static const char *help[] = {
        "ENCODING <key>", "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.", "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>", "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.", "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.", NULL};
    const dstr sub = c->argv[1];
    if (arg_is(sub, "help")) {
        reply_help(c, "OBJECT", help);
        return;
    }
    kobj *o = db_lookup(c->db, c->argv[2], LOOKUP_NOTOUCH);
    if (!o) {
        reply_null(c);
        return;
    }
    int lfu = srv.maxmemory_policy == EVICT_ALLKEYS_LFU || srv.maxmemory_policy == EVICT_VOLATILE_LFU;
    if (arg_is(sub, "encoding")) {
        reply_bulk_cstr(c, obj_enc_name(o));
    } else if (arg_is(sub, "refcount")) {
        long long v;
        int shared = o->enc == ENC_INT && obj_get_ll(o, &v) && v >= 0 && v < 10000;
        reply_ll(c, shared ? INT_MAX : o->refcount);
    } else if (arg_is(sub, "idletime")) {
        if (lfu) {
            reply_error(c, "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note "
                           "that when switching between policies at runtime LRU and LFU data will take some "
                           "time to adjust.");
            return;
        }
        reply_ll(c, (long long)(obj_idle_ms(o) / 1000));
    } else if (arg_is(sub, "freq")) {
        if (!lfu) {
            reply_error(c, "ERR An LFU maxmemory policy is not selected, access frequency not tracked. "
                           "Please note that when switching between policies at runtime LRU and LFU data "
                           "will take some time to adjust.");
            return;
        }
        reply_ll(c, 0);
    } else {
        reply_subcommand_syntax_error(c);
    }
}
