/* fuzz_vfilter.c - libFuzzer target for VSIM FILTER expressions and the
 * JSON attribute validator (src/vector/vfilter.c).
 *
 * The input is an expression, a NUL byte, then the JSON attributes to match
 * (without a NUL, all of it is the expression and the element has none).
 * Whatever the bytes: no crash, leak or sanitizer report, and these hold:
 * a compile error is one line starting the way Redis's does; a match is 0
 * or 1, the same every time; invalid JSON never matches; and the
 * expression in parentheses compiles to a filter that answers the same. */
#include "vfilter.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char PREFIX[] = "ERR syntax error in FILTER expression at position ";
static const char OOM[] = "ERR out of memory compiling the FILTER expression";

static void check_line(const char *err) {
    if (!err[0] || strchr(err, '\r') || strchr(err, '\n')) abort();
}

static void check_compile_error(const char *err) {
    check_line(err);
    if (strncmp(err, PREFIX, sizeof PREFIX - 1) != 0 && strcmp(err, OOM) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    const char *nul = memchr(s, 0, size);
    size_t elen = nul ? (size_t)(nul - s) : size;
    const char *json = nul ? nul + 1 : NULL;
    size_t jlen = nul ? size - elen - 1 : 0;
    char err[256], jerr[256];

    int valid = vjson_valid(json, jlen, jerr, sizeof jerr);
    if (!valid) check_line(jerr);

    vfilter *f = vfilter_compile(s, elen, err, sizeof err);
    if (!f) {
        check_compile_error(err);
        return 0;
    }
    int m = vfilter_match(f, json, jlen);
    if ((m != 0 && m != 1) || (m && !valid) || vfilter_match(f, json, jlen) != m) abort();
    vfilter_match(f, s, elen); /* the expression's own bytes as attributes */

    char *wrapped = malloc(elen + 2);
    if (wrapped) {
        wrapped[0] = '(';
        memcpy(wrapped + 1, s, elen);
        wrapped[elen + 1] = ')';
        vfilter *g = vfilter_compile(wrapped, elen + 2, err, sizeof err);
        if (g) {
            if (vfilter_match(g, json, jlen) != m) abort();
            vfilter_free(g);
        } else {
            check_compile_error(err);
            if (!strstr(err, "nested too deeply") && !strstr(err, "too long")) abort();
        }
        free(wrapped);
    }
    vfilter_free(f);
    return 0;
}
