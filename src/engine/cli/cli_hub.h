/* cli_hub.h - the Hugging Face hub's HTTP layout for `inferkv-cli pull`
 * (cli_hub.c): which repository and revision, which GGUF file of it, the
 * size and SHA-256 the hub publishes for that file, and libcurl handles set
 * up the same way for every request (token, redirects, timeouts).  The
 * download itself is cli_pull.c's. */
#ifndef INFERKV_CLI_HUB_H
#define INFERKV_CLI_HUB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <curl/curl.h>

/* Exit statuses of `inferkv-cli pull` (docs/cli.md#pull). */
enum {
    PULL_OK = 0,        /* installed, or already present and verified */
    PULL_ERR = 1,       /* network, I/O or hub error; a cut download keeps its .part */
    PULL_USAGE = 2,     /* bad arguments */
    PULL_NOTFOUND = 3,  /* repository/file not found, not accessible, or no single file matches */
    PULL_CHECKSUM = 4,  /* SHA-256 mismatch: nothing installed, .part deleted */
    PULL_NOSPACE = 5,   /* not enough free space in --dir */
};

#define HUB_NAME_MAX 200 /* longest file name pulled (".NAME.part" fits NAME_MAX) */

typedef struct {
    char endpoint[1024]; /* scheme://host[:port][/prefix], no trailing '/' */
    char owner[97], repo[97];
    char revision[256];
    const char *token; /* NULL: no Authorization header */
    int quiet;
} hub_repo;

typedef struct {
    char name[HUB_NAME_MAX + 1];
    uint64_t size;    /* valid when has_size */
    int has_size;
    char sha256[65];  /* lowercase hex, "" when the hub's tree gave none */
} hub_file;

/* Splits "owner/repo[:SELECTOR]" into r->owner, r->repo and sel (SELECTOR,
 * "" if none).  Returns 0, or -1 with a message. */
int hub_parse_spec(const char *spec, hub_repo *r, char *sel, size_t selcap);
/* Picks the file SELECTOR names from the repository's listing (a quant tag,
 * an exact .gguf name, or "" for the only .gguf) and reads its size and
 * SHA-256 from the tree listing.  Returns PULL_OK or an exit status, with a
 * message on stderr. */
int hub_resolve(const hub_repo *r, const char *sel, hub_file *f);
/* The URL that serves the file: {endpoint}/{owner}/{repo}/resolve/{rev}/{file}
 * (malloc'd), or NULL on out of memory. */
char *hub_resolve_url(const hub_repo *r, const char *file);
/* A libcurl handle for url with the settings every hub request shares;
 * *hdrs receives the header list to free after the transfer. */
CURL *hub_curl(const hub_repo *r, const char *url, struct curl_slist **hdrs);
/* Prints what an HTTP error status means for `what` and returns the exit
 * status (PULL_NOTFOUND for 401/403/404, else PULL_ERR). */
int hub_http_error(const hub_repo *r, long status, const char *what);
/* Writes s to f with bytes outside printable ASCII as \xHH (names from the
 * hub are printed through it). */
void hub_print_safe(FILE *f, const char *s);

#endif
