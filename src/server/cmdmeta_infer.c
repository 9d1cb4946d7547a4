/* cmdmeta_infer.c - COMMAND INFO entries of INFER.EMBED and INFER.RAG, by
 * hand, in cmdmeta_gen.c's form (RESP3 text cmdmeta.c renders in either
 * protocol).
 *
 * They are the INFER.* commands that name keys, so unlike the others
 * (whose rows command.c shows from its table) they carry key specs, which
 * is what cluster clients route by:
 *   INFER.EMBED ... INTO key: RW insert, the key after the keyword INTO
 *     (searched from argument 2; the command's own GETKEYS is exact);
 *   INFER.RAG: the vector set, argument 3, RO access; TEMPLATE key RO
 *     access; STREAM key RW insert; STORE key OW update (each after its
 *     keyword, searched from argument 5).
 * The chunk keys a RAG's attributes name cannot be declared: they are
 * data.  A vector set and its chunk keys share a hash tag (see
 * docs/rag.md).  Flags: write (INTO, STREAM, STORE), noscript, blocking,
 * movablekeys; ACL categories @infer @write @slow @blocking, as the
 * command table says. */
#include "server.h"

#define KS_RANGE \
    "$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n%3\r\n" \
    "$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n"
#define KS_FLAGS "%3\r\n$5\r\nflags\r\n"
#define KS_INDEX(i) \
    "$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:" i "\r\n"
#define KS_KEYWORD(wlen, w, from)                                                                    \
    "$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$7\r\nkeyword\r\n$4\r\nspec\r\n%2\r\n$7\r\nkeyword\r\n" \
    "$" wlen "\r\n" w "\r\n$9\r\nstartfrom\r\n:" from "\r\n"

#define F_INFER "~4\r\n+write\r\n+noscript\r\n+blocking\r\n+movablekeys\r\n"
#define A_INFER "~4\r\n+@infer\r\n+@write\r\n+@slow\r\n+@blocking\r\n"
#define K_RO "~2\r\n+RO\r\n+access\r\n"
#define K_INSERT "~2\r\n+RW\r\n+insert\r\n"
#define K_OW "~2\r\n+OW\r\n+update\r\n"

const cmdmeta_record cmdmeta_infer_records[] = {
    {"infer.embed",
     "*10\r\n$11\r\ninfer.embed\r\n:-3\r\n" F_INFER ":0\r\n:0\r\n:0\r\n" A_INFER "~0\r\n"
     "~1\r\n" KS_FLAGS K_INSERT KS_KEYWORD("4", "INTO", "2") KS_RANGE "~0\r\n"},
    {"infer.rag",
     "*10\r\n$9\r\ninfer.rag\r\n:-5\r\n" F_INFER ":3\r\n:3\r\n:1\r\n" A_INFER "~0\r\n"
     "~4\r\n"
     KS_FLAGS K_RO KS_INDEX("3") KS_RANGE
     KS_FLAGS K_RO KS_KEYWORD("8", "TEMPLATE", "5") KS_RANGE
     KS_FLAGS K_INSERT KS_KEYWORD("6", "STREAM", "5") KS_RANGE
     KS_FLAGS K_OW KS_KEYWORD("5", "STORE", "5") KS_RANGE
     "~0\r\n"},
};
const size_t cmdmeta_infer_count = sizeof cmdmeta_infer_records / sizeof cmdmeta_infer_records[0];
