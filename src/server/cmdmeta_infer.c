/* cmdmeta_infer.c - COMMAND INFO entries of INFER.GENERATE, INFER.EMBED,
 * INFER.RAG and INFER.ANSWER, by hand, in cmdmeta_gen.c's form (RESP3 text cmdmeta.c
 * renders in either protocol).
 *
 * They are the INFER.* commands that name keys, so unlike the others
 * (whose rows command.c shows from its table) they carry key specs, which
 * is what cluster clients route by.  The specs are libinfercmd's
 * (ic_keyspecs in src/infercmd/keys.c), the same inferkv.so declares
 * through RedisModule_SetCommandInfo:
 *   INFER.GENERATE: PROMPTKEY key and TOKENSKEY key RO access (searched
 *     from argument 2), STREAM key RW insert and STORE key OW update
 *     (searched from argument 3);
 *   INFER.EMBED ... INTO key: RW insert (searched from argument 2);
 *   INFER.RAG: the vector set, argument 3, RO access (also its
 *     first/last/step 3/3/1); TEMPLATE key RO access, STREAM key RW
 *     insert, STORE key OW update (searched from argument 5);
 *   INFER.ANSWER: TEMPLATE, STREAM and STORE as INFER.RAG's, searched
 *     from argument 5, where its chunk texts start.
 * Every keyword spec is flagged incomplete: a prompt or a STOP string may
 * spell a keyword, so a keyword search may point at a non-key; COMMAND
 * GETKEYS (libinfercmd's exact finder) is the answer to trust, and
 * movablekeys tells clients to ask it.  The chunk keys a RAG's attributes
 * name cannot be declared: they are data (a vector set and its chunk keys
 * share a hash tag, docs/scaling.md).
 *
 * Flags: readonly, noscript, blocking, movablekeys, and no_mandatory_keys
 * for GENERATE, EMBED and ANSWER (all their keys are optional: COMMAND GETKEYS of
 * a plain prompt is an empty list, as Redis answers for such a command).
 * No static write flag:
 * a call that writes nothing (no STORE, STREAM or INTO) is a read and may
 * run on a replica; one that names a key it writes is a write
 * (infer_call_writes).  inferkv.so registers the same (its COMMAND INFO
 * adds "module", and lacks "blocking", which a 7.0 module cannot declare).
 * ACL categories @infer @read @slow @blocking, as the command table says. */
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

#define F_INFER "~4\r\n+readonly\r\n+noscript\r\n+blocking\r\n+movablekeys\r\n"
#define F_INFER_NMK "~5\r\n+readonly\r\n+noscript\r\n+blocking\r\n+no_mandatory_keys\r\n+movablekeys\r\n"
#define A_INFER "~4\r\n+@infer\r\n+@read\r\n+@slow\r\n+@blocking\r\n"
#define K_RO "~2\r\n+RO\r\n+access\r\n"
#define K_RO_INC "~3\r\n+RO\r\n+access\r\n+incomplete\r\n"
#define K_INSERT_INC "~3\r\n+RW\r\n+insert\r\n+incomplete\r\n"
#define K_OW_INC "~3\r\n+OW\r\n+update\r\n+incomplete\r\n"

const cmdmeta_record cmdmeta_infer_records[] = {
    {"infer.generate",
     "*10\r\n$14\r\ninfer.generate\r\n:-3\r\n" F_INFER_NMK ":0\r\n:0\r\n:0\r\n" A_INFER "~0\r\n"
     "~4\r\n"
     KS_FLAGS K_RO_INC KS_KEYWORD("9", "PROMPTKEY", "2") KS_RANGE
     KS_FLAGS K_RO_INC KS_KEYWORD("9", "TOKENSKEY", "2") KS_RANGE
     KS_FLAGS K_INSERT_INC KS_KEYWORD("6", "STREAM", "3") KS_RANGE
     KS_FLAGS K_OW_INC KS_KEYWORD("5", "STORE", "3") KS_RANGE
     "~0\r\n"},
    {"infer.embed",
     "*10\r\n$11\r\ninfer.embed\r\n:-3\r\n" F_INFER_NMK ":0\r\n:0\r\n:0\r\n" A_INFER "~0\r\n"
     "~1\r\n" KS_FLAGS K_INSERT_INC KS_KEYWORD("4", "INTO", "2") KS_RANGE "~0\r\n"},
    {"infer.rag",
     "*10\r\n$9\r\ninfer.rag\r\n:-5\r\n" F_INFER ":3\r\n:3\r\n:1\r\n" A_INFER "~0\r\n"
     "~4\r\n"
     KS_FLAGS K_RO KS_INDEX("3") KS_RANGE
     KS_FLAGS K_RO_INC KS_KEYWORD("8", "TEMPLATE", "5") KS_RANGE
     KS_FLAGS K_INSERT_INC KS_KEYWORD("6", "STREAM", "5") KS_RANGE
     KS_FLAGS K_OW_INC KS_KEYWORD("5", "STORE", "5") KS_RANGE
     "~0\r\n"},
    {"infer.answer",
     "*10\r\n$12\r\ninfer.answer\r\n:-5\r\n" F_INFER_NMK ":0\r\n:0\r\n:0\r\n" A_INFER "~0\r\n"
     "~3\r\n"
     KS_FLAGS K_RO_INC KS_KEYWORD("8", "TEMPLATE", "5") KS_RANGE
     KS_FLAGS K_INSERT_INC KS_KEYWORD("6", "STREAM", "5") KS_RANGE
     KS_FLAGS K_OW_INC KS_KEYWORD("5", "STORE", "5") KS_RANGE
     "~0\r\n"},
};
const size_t cmdmeta_infer_count = sizeof cmdmeta_infer_records / sizeof cmdmeta_infer_records[0];
