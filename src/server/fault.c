/* fault.c - DEBUG ALLOC-FAIL: an allocation failure injected into one
 * command, for the sweeps under tests/fault/.
 *
 *   DEBUG ALLOC-FAIL n [ID client-id]
 *                             the n-th allocation of the next command of
 *                             this client (or of client-id: a client
 *                             inside MULTI would queue the DEBUG) returns
 *                             NULL (only that one)
 *   DEBUG ALLOC-FAIL STATUS   [fired, allocations, site]: whether the
 *                             armed failure happened during that command,
 *                             how many allocations it made up to there,
 *                             and where the failure landed as
 *                             "binary+0xoffset" (addr2line reads it)
 *
 * Why a command of its own rather than a countdown set from outside: a
 * sweep must fail exactly the allocations of the command under test, not
 * those of reading its arguments or writing the reply, so the countdown
 * runs only inside command_process's call of the handler or its queueing
 * inside MULTI (fault_enter / fault_leave), for the client that armed it.
 * The counter is process-wide, and covers libinfer's and libinfercmd's own
 * allocation seam too (infer_set_alloc_hook) while the window is open:
 * the loop's share of an INFER.* command (parsing, tokenizing, building a
 * RAG prompt) is swept with the rest; an engine thread that allocates
 * meanwhile may take the failure instead, which the sweep accepts (every
 * run is judged on its own).
 *
 * Injected failures exercise paths a hostile client should not be able to
 * reach on demand, so ALLOC-FAIL follows enable-debug-command as Redis
 * 7.0 applies it to DEBUG: "yes", or "local" for loopback and Unix-socket
 * clients; "no" (the default) refuses it. */
#include "server.h"
#include "infer.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static struct {
    uint64_t armed_client; /* the client whose next command gets it, 0: none */
    long armed_n;
    int active;            /* the countdown runs (inside the command) */
    int fired;
    long calls;
    char site[160];
} F;

/* libinfer's and libinfercmd's allocations (their own seam, infer.h)
 * counted against the same countdown as the server's. */
static int engine_hook(size_t bytes, const void *site, void *ud) {
    (void)bytes, (void)ud;
    return !km_fail_now((void *)site);
}

void fault_enter(client *c) {
    if (!F.armed_client || F.armed_client != c->id) return;
    F.armed_client = 0;
    F.active = 1;
    km_fail_after(F.armed_n);
    infer_set_alloc_hook(engine_hook, NULL);
}

void fault_leave(void) {
    if (!F.active) return;
    F.active = 0;
    infer_set_alloc_hook(NULL, NULL);
    void *site = km_fail_site();
    F.calls = km_fail_calls();
    km_fail_after(0);
    F.fired = site != NULL;
    F.site[0] = 0;
    Dl_info di;
    if (site && dladdr(site, &di) && di.dli_fname) {
        const char *base = strrchr(di.dli_fname, '/');
        snprintf(F.site, sizeof F.site, "%s+0x%lx", base ? base + 1 : di.dli_fname,
                 (unsigned long)((const char *)site - (const char *)di.dli_fbase));
    } else if (site) {
        snprintf(F.site, sizeof F.site, "%p", site);
    }
}

static int debug_allowed(client *c) {
    const char *mode = config_debug_command();
    if (!strcasecmp(mode, "yes")) return 1;
    if (!strcasecmp(mode, "local") && client_is_local(c)) return 1;
    reply_error(c, "ERR DEBUG ALLOC-FAIL not allowed. If the enable-debug-command option is set to \"local\", "
                   "you can run it from a local connection, otherwise you need to set this option in the "
                   "configuration file, and then restart the server.");
    return 0;
}

/* DEBUG ALLOC-FAIL n [ID client-id] | STATUS - O(1) */
void debug_alloc_fail(client *c) {
    if (!debug_allowed(c)) return;
    if (c->argc == 3 && arg_is(c->argv[2], "status")) {
        reply_array_len(c, 3);
        reply_ll(c, F.fired);
        reply_ll(c, F.calls);
        reply_bulk_cstr(c, F.site);
        return;
    }
    long long n, id = (long long)c->id;
    if (c->argc != 3 && !(c->argc == 5 && arg_is(c->argv[3], "id"))) {
        reply_syntax_error(c);
        return;
    }
    if (arg_ll(c, c->argv[2], &n) != OK) return;
    if (n < 1) {
        reply_error(c, "ERR DEBUG ALLOC-FAIL wants a count of 1 or more, or STATUS");
        return;
    }
    if (c->argc == 5 && (arg_ll(c, c->argv[4], &id) != OK || id < 1 || !client_by_id((uint64_t)id))) {
        if (id < 1 || !client_by_id((uint64_t)id)) reply_error(c, "ERR No such client");
        return;
    }
    F.armed_client = (uint64_t)id;
    F.armed_n = (long)n;
    F.fired = 0;
    F.calls = 0;
    F.site[0] = 0;
    reply_ok(c);
}
