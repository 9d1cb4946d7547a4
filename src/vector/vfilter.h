/* vfilter.h - internal to libvset: FILTER expressions over the JSON
 * attributes of vector-set elements (VSIM ... FILTER '.year > 1990').
 *
 * An expression is compiled once per query and then evaluated against the
 * attributes of each candidate the graph search visits, possibly from
 * several threads at once: a compiled filter is immutable and matching
 * touches no shared state.  The language is Redis 8's (see docs/vectors.md):
 * arithmetic, comparison, and/or/not, `in` (arrays and substrings),
 * strings, numbers, booleans, parentheses, selectors `.field` of the
 * top-level JSON object. */
#ifndef INFERKV_VFILTER_H
#define INFERKV_VFILTER_H

#include <stddef.h>

typedef struct vfilter vfilter;

/* Compiles expr[0..len).  NULL with a whole Redis error line in err ("ERR
 * syntax error in FILTER expression at position N: ...", no leading '-')
 * when it is malformed, or with an out-of-memory line. */
vfilter *vfilter_compile(const char *expr, size_t len, char *err, size_t errlen);

/* 1 when the attributes json[0..len) satisfy f, else 0.  json may be NULL
 * (an element without attributes).  Never fails: invalid JSON, a missing
 * field or a value of an unusable type make the element not match. */
int vfilter_match(const vfilter *f, const char *json, size_t len);

void vfilter_free(vfilter *f);

/* Whether json[0..len) is one valid JSON value (RFC 8259, UTF-8, nesting
 * bounded); 0 with a reason in err otherwise. */
int vjson_valid(const char *json, size_t len, char *err, size_t errlen);

#endif
