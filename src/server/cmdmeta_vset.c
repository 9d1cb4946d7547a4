/* cmdmeta_vset.c - COMMAND INFO entries of the vector-set commands, by hand.
 *
 * cmdmeta_gen.c is captured from redis-server 7.0.15, which has no V*
 * commands, so these are written here in the same form (RESP3 text that
 * cmdmeta.c renders in either protocol) and say what Redis 8 says for its
 * vector-set module: the name as registered (upper case), the arity of its
 * command info, its flags plus "module", firstkey = lastkey = step = 1,
 * the implicit ACL categories plus @vectorset, no tips, and one key spec:
 * index 1, range lastkey 0 keystep 1 limit 0, with the access flags of what
 * each command really does (VADD RW insert, VREM RW delete, VSETATTR RW
 * update, the others RO access), the same as inferkv.so declares through
 * the module API.  Redis 8 derives "RW access update" for all of them from
 * its (1, 1, 1) key range, which tells a cluster client that VSIM writes;
 * ours let a read go to a replica.  The key spec is what cluster clients
 * route by, so it must be right even where nothing else reads it.  command.c checks at startup that each arity agrees with the
 * dispatch table and with libvcmd's (vc_commands()). */
#include "server.h"

#define KEYSPEC(kflags)                                                                                \
    "~1\r\n%3\r\n$5\r\nflags\r\n" kflags                                                                \
    "$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:1\r\n" \
    "$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n%3\r\n"                        \
    "$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n"

/* name (as a bulk header and text), arity, flags set, ACL categories set */
#define VREC(name, namelen, arity, flags, acl, kflags)                                             \
    {name, "*10\r\n$" namelen "\r\n" name "\r\n:" arity "\r\n" flags ":1\r\n:1\r\n:1\r\n" acl \
           "~0\r\n" KEYSPEC(kflags) "~0\r\n"}

#define K_INSERT "~2\r\n+RW\r\n+insert\r\n"
#define K_DELETE "~2\r\n+RW\r\n+delete\r\n"
#define K_UPDATE "~2\r\n+RW\r\n+update\r\n"
#define K_READ "~2\r\n+RO\r\n+access\r\n"

#define F_WRITE_DENYOOM "~3\r\n+write\r\n+denyoom\r\n+module\r\n"
#define F_WRITE "~2\r\n+write\r\n+module\r\n"
#define F_WRITE_FAST "~3\r\n+write\r\n+module\r\n+fast\r\n"
#define F_READ "~2\r\n+readonly\r\n+module\r\n"
#define F_READ_FAST "~3\r\n+readonly\r\n+module\r\n+fast\r\n"
#define A_WRITE_SLOW "~3\r\n+@write\r\n+@slow\r\n+@vectorset\r\n"
#define A_WRITE_FAST "~3\r\n+@write\r\n+@fast\r\n+@vectorset\r\n"
#define A_READ_SLOW "~3\r\n+@read\r\n+@slow\r\n+@vectorset\r\n"
#define A_READ_FAST "~3\r\n+@read\r\n+@fast\r\n+@vectorset\r\n"

const cmdmeta_record cmdmeta_vset_records[] = {
    VREC("VADD", "4", "-5", F_WRITE_DENYOOM, A_WRITE_SLOW, K_INSERT),
    VREC("VREM", "4", "3", F_WRITE, A_WRITE_SLOW, K_DELETE),
    VREC("VSIM", "4", "-4", F_READ, A_READ_SLOW, K_READ),
    VREC("VDIM", "4", "2", F_READ_FAST, A_READ_FAST, K_READ),
    VREC("VCARD", "5", "2", F_READ_FAST, A_READ_FAST, K_READ),
    VREC("VEMB", "4", "-3", F_READ_FAST, A_READ_FAST, K_READ),
    VREC("VLINKS", "6", "-3", F_READ_FAST, A_READ_FAST, K_READ),
    VREC("VINFO", "5", "2", F_READ_FAST, A_READ_FAST, K_READ),
    VREC("VSETATTR", "8", "4", F_WRITE_FAST, A_WRITE_FAST, K_UPDATE),
    VREC("VGETATTR", "8", "3", F_READ_FAST, A_READ_FAST, K_READ),
    VREC("VRANDMEMBER", "11", "-2", F_READ, A_READ_SLOW, K_READ),
    VREC("VISMEMBER", "9", "3", F_READ, A_READ_SLOW, K_READ),
    VREC("VRANGE", "6", "-4", F_READ, A_READ_SLOW, K_READ),
};

const size_t cmdmeta_vset_count = sizeof cmdmeta_vset_records / sizeof cmdmeta_vset_records[0];
