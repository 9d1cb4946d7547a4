/* t_pubsub.c - publish/subscribe: SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE
 * PUNSUBSCRIBE SSUBSCRIBE SUNSUBSCRIBE PUBLISH SPUBLISH PUBSUB.
 *
 * The server keeps three registries: channel -> subscribers, pattern ->
 * subscribers and shard channel -> subscribers, each subscriber list in
 * subscription order.  Each client keeps the mirror image (its channels,
 * its patterns in subscription order, its shard channels) so that
 * unsubscribing everything, and freeing the client, costs its own
 * subscriptions and not a walk over the server's.  Messages are written
 * into the subscribers' reply chains at once, as Redis 7.0 does: a push in
 * RESP3, a plain array in RESP2.  A subscriber that does not read is cut
 * off by the pubsub output-buffer class (reply.c), so a publisher can never
 * make the server hold unbounded memory for it. */
#include "server.h"

#include <string.h>

/* Clients subscribed to one channel or pattern, in subscription order. */
typedef keyclients sublist;

struct pubsub_client {
    dict *channels; /* dstr -> NULL */
    dict *shard;    /* dstr -> NULL */
    dstr *patterns; /* in subscription order (PUNSUBSCRIBE walks it so) */
    size_t npat, patcap;
};

static const dict_type client_set_type = {dict_hash_dstr, dict_eq_dstr, dict_free_dstr, NULL};

static dict *channels_reg, *patterns_reg, *shard_reg;

enum kind { K_CHANNEL, K_PATTERN, K_SHARD };

static dict **registry(int kind) {
    return kind == K_CHANNEL ? &channels_reg : kind == K_PATTERN ? &patterns_reg : &shard_reg;
}

/* ------------------------------------------------------------ registries */

static struct pubsub_client *client_state(client *c) {
    if (c->ps) return c->ps;
    struct pubsub_client *ps = km_calloc(sizeof *ps);
    if (!ps) return NULL;
    ps->channels = dict_create(&client_set_type);
    ps->shard = dict_create(&client_set_type);
    if (!ps->channels || !ps->shard) {
        if (ps->channels) dict_release(ps->channels);
        if (ps->shard) dict_release(ps->shard);
        km_free(ps);
        return NULL;
    }
    c->ps = ps;
    return ps;
}

/* Channels + patterns: the count SUBSCRIBE/PSUBSCRIBE replies report. */
static long long global_count(const client *c) {
    return c->ps ? (long long)(dict_size(c->ps->channels) + c->ps->npat) : 0;
}

static long long shard_count(const client *c) {
    return c->ps ? (long long)dict_size(c->ps->shard) : 0;
}

size_t pubsub_client_count(const client *c, int kind) {
    if (!c->ps) return 0;
    return kind == K_CHANNEL ? dict_size(c->ps->channels)
           : kind == K_PATTERN ? c->ps->npat : dict_size(c->ps->shard);
}

static void update_flag(client *c) {
    if (global_count(c) + shard_count(c) == 0) c->flags &= ~CF_PUBSUB;
}

/* --------------------------------------------------------------- replies */

static void reply_event(client *c, const char *type, const char *name, size_t len, long long count) {
    reply_push_len(c, 3);
    reply_bulk_cstr(c, type);
    if (name) reply_bulk(c, name, len);
    else reply_null(c);
    reply_ll(c, count);
}

static long long kind_count(client *c, int kind) {
    return kind == K_SHARD ? shard_count(c) : global_count(c);
}

static const char *sub_word[] = {"subscribe", "psubscribe", "ssubscribe"};
static const char *unsub_word[] = {"unsubscribe", "punsubscribe", "sunsubscribe"};

/* ------------------------------------------------------- (un)subscribing */

/* Adds one subscription; 1 if new, 0 if already there, -1 on OOM. */
static int subscribe_one(client *c, int kind, const dstr name) {
    struct pubsub_client *ps = client_state(c);
    if (!ps) return -1;
    if (kind == K_PATTERN) {
        for (size_t i = 0; i < ps->npat; i++)
            if (dstr_len(ps->patterns[i]) == dstr_len(name) &&
                memcmp(ps->patterns[i], name, dstr_len(name)) == 0)
                return 0;
        if (ps->npat == ps->patcap) {
            size_t ncap = ps->patcap ? ps->patcap * 2 : 4;
            dstr *nv = km_realloc(ps->patterns, ncap * sizeof *nv);
            if (!nv) return -1;
            ps->patterns = nv;
            ps->patcap = ncap;
        }
        dstr k = dstr_dup(name);
        if (!k) return -1;
        if (keyclients_add(registry(kind), name, c) != OK) {
            dstr_free(k);
            return -1;
        }
        ps->patterns[ps->npat++] = k;
        return 1;
    }
    dict *mine = kind == K_CHANNEL ? ps->channels : ps->shard;
    if (dict_find(mine, name)) return 0;
    dstr k = dstr_dup(name);
    if (!k || dict_add(mine, k, NULL) != DICT_OK) {
        dstr_free(k);
        return -1;
    }
    if (keyclients_add(registry(kind), name, c) != OK) {
        dict_delete(mine, name);
        return -1;
    }
    return 1;
}

/* Removes one subscription; 1 if the client had it. */
static int unsubscribe_one(client *c, int kind, const dstr name) {
    struct pubsub_client *ps = c->ps;
    if (!ps) return 0;
    if (kind == K_PATTERN) {
        for (size_t i = 0; i < ps->npat; i++) {
            dstr p = ps->patterns[i];
            if (dstr_len(p) != dstr_len(name) || memcmp(p, name, dstr_len(name)) != 0) continue;
            keyclients_remove(*registry(kind), name, c);
            memmove(ps->patterns + i, ps->patterns + i + 1, (ps->npat - i - 1) * sizeof *ps->patterns);
            ps->npat--;
            dstr_free(p);
            return 1;
        }
        return 0;
    }
    dict *mine = kind == K_CHANNEL ? ps->channels : ps->shard;
    if (!dict_find(mine, name)) return 0;
    keyclients_remove(*registry(kind), name, c);
    dict_delete(mine, name);
    return 1;
}

static void subscribe_generic(client *c, int kind) {
    for (int i = 1; i < c->argc; i++) {
        int r = subscribe_one(c, kind, c->argv[i]);
        if (r < 0) {
            reply_error(c, "ERR out of memory subscribing");
            return;
        }
        c->flags |= CF_PUBSUB;
        reply_event(c, sub_word[kind], c->argv[i], dstr_len(c->argv[i]), kind_count(c, kind));
    }
}

/* Unsubscribes from every name of one kind.  Names are copied first: the
 * client's own set is what we are emptying. */
static void unsubscribe_all(client *c, int kind, int reply) {
    struct pubsub_client *ps = c->ps;
    size_t n = 0;
    if (ps) n = kind == K_PATTERN ? ps->npat : dict_size(kind == K_CHANNEL ? ps->channels : ps->shard);
    if (n == 0) {
        if (reply) reply_event(c, unsub_word[kind], NULL, 0, kind_count(c, kind));
        return;
    }
    dstr *names = km_malloc(n * sizeof *names);
    if (!names) {
        if (reply) reply_error(c, "ERR out of memory unsubscribing");
        return;
    }
    size_t got = 0;
    if (kind == K_PATTERN) {
        for (size_t i = 0; i < n; i++) names[got++] = dstr_dup(ps->patterns[i]);
    } else {
        dict_iter it;
        dict_iter_init(&it, kind == K_CHANNEL ? ps->channels : ps->shard, 1);
        for (dict_entry *e; (e = dict_next(&it)) && got < n;) names[got++] = dstr_dup(e->key);
        dict_iter_done(&it);
    }
    for (size_t i = 0; i < got; i++) {
        if (!names[i]) continue;
        unsubscribe_one(c, kind, names[i]);
        if (reply) reply_event(c, unsub_word[kind], names[i], dstr_len(names[i]), kind_count(c, kind));
        dstr_free(names[i]);
    }
    km_free(names);
}

static void unsubscribe_generic(client *c, int kind) {
    if (c->argc == 1) {
        unsubscribe_all(c, kind, 1);
    } else {
        for (int i = 1; i < c->argc; i++) {
            unsubscribe_one(c, kind, c->argv[i]);
            reply_event(c, unsub_word[kind], c->argv[i], dstr_len(c->argv[i]), kind_count(c, kind));
        }
    }
    update_flag(c);
}

void pubsub_client_release(client *c) {
    if (!c->ps) return;
    unsubscribe_all(c, K_CHANNEL, 0);
    unsubscribe_all(c, K_PATTERN, 0);
    unsubscribe_all(c, K_SHARD, 0);
    c->flags &= ~CF_PUBSUB;
    dict_release(c->ps->channels);
    dict_release(c->ps->shard);
    km_free(c->ps->patterns);
    km_free(c->ps);
    c->ps = NULL;
}

/* -------------------------------------------------------------- publishing */

static void send_message(client *c, const char *kind, const char *pat, size_t plen,
                         const char *chan, size_t clen, const char *msg, size_t mlen) {
    reply_push_len(c, pat ? 4 : 3);
    reply_bulk_cstr(c, kind);
    if (pat) reply_bulk(c, pat, plen);
    reply_bulk(c, chan, clen);
    reply_bulk(c, msg, mlen);
}

/* A subscriber freed by its output limit while we write to the list stays
 * in it until before-sleep frees it; reply_raw ignores it meanwhile. */
long long pubsub_publish(const char *chan, size_t clen, const char *msg, size_t mlen) {
    long long receivers = 0;
    if (channels_reg && dict_size(channels_reg)) {
        dstr key = dstr_newlen(chan, clen);
        sublist *l = key ? dict_fetch(channels_reg, key) : NULL;
        dstr_free(key);
        for (size_t i = 0; l && i < l->n; i++) {
            send_message(l->v[i], "message", NULL, 0, chan, clen, msg, mlen);
            receivers++;
        }
    }
    if (patterns_reg && dict_size(patterns_reg)) {
        dict_iter it;
        dict_iter_init(&it, patterns_reg, 1);
        for (dict_entry *e; (e = dict_next(&it));) {
            const dstr pat = e->key;
            if (!glob_match(pat, dstr_len(pat), chan, clen, 0)) continue;
            sublist *l = e->v.val;
            for (size_t i = 0; i < l->n; i++) {
                send_message(l->v[i], "pmessage", pat, dstr_len(pat), chan, clen, msg, mlen);
                receivers++;
            }
        }
        dict_iter_done(&it);
    }
    return receivers;
}

static long long publish_shard(const dstr chan, const dstr msg) {
    sublist *l = shard_reg ? dict_fetch(shard_reg, chan) : NULL;
    long long n = 0;
    for (size_t i = 0; l && i < l->n; i++, n++)
        send_message(l->v[i], "smessage", NULL, 0, chan, dstr_len(chan), msg, dstr_len(msg));
    return n;
}

/* -------------------------------------------------------------- commands */

void subscribe_cmd(client *c) { subscribe_generic(c, K_CHANNEL); }
void psubscribe_cmd(client *c) { subscribe_generic(c, K_PATTERN); }
/* SSUBSCRIBE shardchannel [shardchannel ...]
 * O(N) in the channels.  Inside EXEC it is refused, as Redis 7.0 refuses it
 * to any client that may not block; SUBSCRIBE and PSUBSCRIBE keep Redis's
 * old exemption for transactions. */
void ssubscribe_cmd(client *c) {
    if (c->flags & CF_IN_EXEC) {
        reply_error(c, "ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client");
        return;
    }
    subscribe_generic(c, K_SHARD);
}
void unsubscribe_cmd(client *c) { unsubscribe_generic(c, K_CHANNEL); }
void punsubscribe_cmd(client *c) { unsubscribe_generic(c, K_PATTERN); }
void sunsubscribe_cmd(client *c) { unsubscribe_generic(c, K_SHARD); }

void publish_cmd(client *c) {
    reply_ll(c, pubsub_publish(c->argv[1], dstr_len(c->argv[1]), c->argv[2], dstr_len(c->argv[2])));
}

void spublish_cmd(client *c) { reply_ll(c, publish_shard(c->argv[1], c->argv[2])); }

static void list_names(client *c, dict *reg, const dstr pattern) {
    void *node = reply_defer_len(c);
    long n = 0;
    if (reg) {
        dict_iter it;
        dict_iter_init(&it, reg, 0);
        for (dict_entry *e; (e = dict_next(&it));) {
            const dstr name = e->key;
            if (pattern && !glob_match(pattern, dstr_len(pattern), name, dstr_len(name), 0)) continue;
            reply_bulk_dstr(c, name);
            n++;
        }
        dict_iter_done(&it);
    }
    reply_set_deferred_array(c, node, n);
}

static void numsub(client *c, dict *reg) {
    reply_array_len(c, (long)(c->argc - 2) * 2);
    for (int i = 2; i < c->argc; i++) {
        sublist *l = reg ? dict_fetch(reg, c->argv[i]) : NULL;
        reply_bulk_dstr(c, c->argv[i]);
        reply_ll(c, l ? (long long)l->n : 0);
    }
}

void pubsub_cmd(client *c) {
    static const char *help[] = {
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Return the currently active shard level channels matching a <pattern> (default: '*').",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Return the number of subscribers for the specified shard level channel(s)",
        NULL};
    const dstr sub = c->argv[1];
    if (c->argc == 2 && arg_is(sub, "help")) {
        reply_help(c, "PUBSUB", help);
    } else if (arg_is(sub, "channels") && (c->argc == 2 || c->argc == 3)) {
        list_names(c, channels_reg, c->argc == 3 ? c->argv[2] : NULL);
    } else if (arg_is(sub, "numsub") && c->argc >= 2) {
        numsub(c, channels_reg);
    } else if (arg_is(sub, "numpat") && c->argc == 2) {
        reply_ll(c, patterns_reg ? (long long)dict_size(patterns_reg) : 0);
    } else if (arg_is(sub, "shardchannels") && (c->argc == 2 || c->argc == 3)) {
        list_names(c, shard_reg, c->argc == 3 ? c->argv[2] : NULL);
    } else if (arg_is(sub, "shardnumsub") && c->argc >= 2) {
        numsub(c, shard_reg);
    } else {
        reply_subcommand_syntax_error(c);
    }
}

void pubsub_totals(long long *channels, long long *patterns, long long *shard_channels) {
    *channels = channels_reg ? (long long)dict_size(channels_reg) : 0;
    *patterns = patterns_reg ? (long long)dict_size(patterns_reg) : 0;
    *shard_channels = shard_reg ? (long long)dict_size(shard_reg) : 0;
}

/* What Redis allows a RESP2 client in subscribed mode. */
int pubsub_command_allowed(const client *c, const command *cmd) {
    if (!(c->flags & CF_PUBSUB) || c->resp != 2) return 1;
    cmd_fn *p = cmd->proc;
    return p == ping_cmd || p == subscribe_cmd || p == ssubscribe_cmd || p == unsubscribe_cmd ||
           p == sunsubscribe_cmd || p == psubscribe_cmd || p == punsubscribe_cmd ||
           p == quit_cmd || p == reset_cmd;
}
