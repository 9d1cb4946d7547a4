/* cli_args.h - strict parsing of numeric command-line values: the whole
 * string must be a number inside [lo, hi], or the parse fails with a message
 * on stderr naming the option.  No silent defaults on bad input. */
#ifndef INFERKV_CLI_ARGS_H
#define INFERKV_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

int cli_parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out);
int cli_parse_u64(const char *opt, const char *s, uint64_t *out);
int cli_parse_float(const char *opt, const char *s, double lo, double hi, double *out);
/* Returns argv[*i + 1] and advances *i, or NULL (with a message) when the
 * option has no value. */
const char *cli_value(int argc, char **argv, int *i);
/* Reads a whole file into a NUL-terminated buffer (caller frees). */
char *cli_read_file(const char *path, size_t *len);

#endif
