/* zset.h - the sorted-set structure (zset.c): a skiplist ordered by
 * (score, member) with spans for O(log n) ranks, plus a dict member ->
 * score for O(1) ZSCORE.  Both share each member string. */
#ifndef INFERKV_ZSET_H
#define INFERKV_ZSET_H

#include "core.h"

#define ZSL_MAXLEVEL 32

typedef struct zsl_node {
    dstr ele;
    double score;
    struct zsl_node *backward;
    struct zsl_level {
        struct zsl_node *forward;
        unsigned long span;
    } level[];
} zsl_node;

typedef struct zskiplist {
    zsl_node *header, *tail;
    unsigned long length;
    int level;
} zskiplist;

struct zset {
    dict *d;
    zskiplist *zsl;
};

/* A score interval; minex/maxex: exclusive bounds. */
typedef struct zrange_spec {
    double min, max;
    int minex, maxex;
} zrange_spec;

/* A lexicographic interval; NULL-free: min/max are dstr or the two
 * sentinels zlex_min / zlex_max ("-" and "+"). */
typedef struct zlex_spec {
    dstr min, max;
    int minex, maxex;
} zlex_spec;

extern dstr zlex_min_s, zlex_max_s;

/* Adds or updates; *added set when new.  ERR on OOM. */
int zset_add(struct zset *z, double score, const char *ele, size_t len, int *added);
int zset_remove(struct zset *z, const dstr ele);
int zset_score(struct zset *z, const dstr ele, double *score);
/* 0-based rank, or -1 when absent. */
long zset_rank(struct zset *z, const dstr ele, int reverse);
zsl_node *zsl_by_rank(zskiplist *zsl, unsigned long rank); /* 1-based */
zsl_node *zsl_first_in_range(zskiplist *zsl, const zrange_spec *r);
zsl_node *zsl_last_in_range(zskiplist *zsl, const zrange_spec *r);
zsl_node *zsl_first_in_lex(zskiplist *zsl, const zlex_spec *r);
zsl_node *zsl_last_in_lex(zskiplist *zsl, const zlex_spec *r);
int zsl_value_gte_min(double v, const zrange_spec *r);
int zsl_value_lte_max(double v, const zrange_spec *r);
int zsl_lex_gte_min(const dstr v, const zlex_spec *r);
int zsl_lex_lte_max(const dstr v, const zlex_spec *r);
/* 1-based rank of a node known to be in the list. */
unsigned long zsl_rank_of(zskiplist *zsl, double score, const dstr ele);

#endif
