/* notify.c - keyspace notifications (the notify-keyspace-events option).
 *
 * A command that changes a key calls notify_keyspace_event() with the
 * event's class (NOTIFY_*) and name.  When the class is enabled, the event
 * is published through pub/sub as Redis does: on the keyspace channel
 * "__keyspace@<db>__:<key>" with the event name as message (K), and on the
 * keyevent channel "__keyevent@<db>__:<event>" with the key as message (E).
 * The option is kept as a bit set; its string form is parsed and printed
 * with Redis's letters and order so that CONFIG GET shows what Redis shows. */
#include "server.h"

#include <string.h>

/* 'A' is every class except key-miss and new-key, as in Redis 7.0. */
#define NOTIFY_ALL (NOTIFY_GENERIC | NOTIFY_STRING | NOTIFY_LIST | NOTIFY_SET | NOTIFY_HASH | \
                    NOTIFY_ZSET | NOTIFY_EXPIRED | NOTIFY_EVICTED | NOTIFY_STREAM | NOTIFY_MODULE)

static int notify_flags; /* 0: off (the default) */

/* The option's letters to flags; -1 on an unknown letter. */
static int flags_from_string(const char *s) {
    int flags = 0;
    for (; *s; s++) {
        switch (*s) {
        case 'A': flags |= NOTIFY_ALL; break;
        case 'g': flags |= NOTIFY_GENERIC; break;
        case '$': flags |= NOTIFY_STRING; break;
        case 'l': flags |= NOTIFY_LIST; break;
        case 's': flags |= NOTIFY_SET; break;
        case 'h': flags |= NOTIFY_HASH; break;
        case 'z': flags |= NOTIFY_ZSET; break;
        case 'x': flags |= NOTIFY_EXPIRED; break;
        case 'e': flags |= NOTIFY_EVICTED; break;
        case 'K': flags |= NOTIFY_KEYSPACE; break;
        case 'E': flags |= NOTIFY_KEYEVENT; break;
        case 't': flags |= NOTIFY_STREAM; break;
        case 'm': flags |= NOTIFY_KEY_MISS; break;
        case 'd': flags |= NOTIFY_MODULE; break;
        case 'n': flags |= NOTIFY_NEW; break;
        default: return -1;
        }
    }
    return flags;
}

int notify_config_set(const char **argv, int argc, char *err, size_t errlen) {
    /* CONFIG SET splits the value into words: "" arrives as no word */
    int flags = argc == 0 ? 0 : argc == 1 ? flags_from_string(argv[0]) : -1;
    if (flags < 0) {
        snprintf(err, errlen, "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.");
        return ERR;
    }
    notify_flags = flags;
    return OK;
}

/* Redis prints "A" for the full set and then omits 'n' (its printer keeps
 * 'n' inside the not-all branch); we print exactly the same. */
dstr notify_config_get(dstr out) {
    static const struct { int flag; char ch; } classes[] = {
        {NOTIFY_GENERIC, 'g'}, {NOTIFY_STRING, '$'}, {NOTIFY_LIST, 'l'}, {NOTIFY_SET, 's'},
        {NOTIFY_HASH, 'h'}, {NOTIFY_ZSET, 'z'}, {NOTIFY_EXPIRED, 'x'}, {NOTIFY_EVICTED, 'e'},
        {NOTIFY_STREAM, 't'}, {NOTIFY_MODULE, 'd'}, {NOTIFY_NEW, 'n'}};
    char buf[32];
    size_t n = 0;
    if ((notify_flags & NOTIFY_ALL) == NOTIFY_ALL) {
        buf[n++] = 'A';
    } else {
        for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
            if (notify_flags & classes[i].flag) buf[n++] = classes[i].ch;
    }
    if (notify_flags & NOTIFY_KEYSPACE) buf[n++] = 'K';
    if (notify_flags & NOTIFY_KEYEVENT) buf[n++] = 'E';
    if (notify_flags & NOTIFY_KEY_MISS) buf[n++] = 'm';
    return dstr_catlen(out, buf, n);
}

/* Publishes on "<prefix><db>__:<tail>"; a channel name that does not fit
 * the stack buffer is built on the heap (keys can be 512 MB). */
static void publish_on(const char *prefix, int dbid, const char *tail, size_t tlen,
                       const char *msg, size_t mlen) {
    char head[64];
    int hl = snprintf(head, sizeof head, "%s%d__:", prefix, dbid);
    if (hl < 0 || (size_t)hl >= sizeof head) return;
    char stackbuf[256];
    char *chan = stackbuf;
    size_t clen = (size_t)hl + tlen;
    if (clen > sizeof stackbuf) {
        chan = km_malloc(clen);
        if (!chan) {
            log_msg(LL_WARNING, "out of memory publishing a keyspace notification");
            return;
        }
    }
    memcpy(chan, head, (size_t)hl);
    memcpy(chan + hl, tail, tlen);
    pubsub_publish(chan, clen, msg, mlen);
    if (chan != stackbuf) km_free(chan);
}

void notify_keyspace_event(int type, const char *event, const dstr key, int dbid) {
    /* Every write raises an event (as in Redis), so the events count the
     * writes that do not touch WATCH (XGROUP, XSETID, ...): the running
     * command changed the dataset and must be propagated (propagate.c).
     * Misses, expiry and eviction are not the command's own writes. */
    if (!(type & (NOTIFY_KEY_MISS | NOTIFY_EXPIRED | NOTIFY_EVICTED))) srv.dirty_events++;
    if (!(notify_flags & type)) return;
    size_t elen = strlen(event);
    if (notify_flags & NOTIFY_KEYSPACE)
        publish_on("__keyspace@", dbid, key, dstr_len(key), event, elen);
    if (notify_flags & NOTIFY_KEYEVENT)
        publish_on("__keyevent@", dbid, event, elen, key, dstr_len(key));
}
