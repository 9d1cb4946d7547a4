/* test.h - the unit-test harness shared by every tests/unit/test_*.c.
 *
 * A suite is a main() that calls TEST_RUN(fn) for each test function and
 * returns TEST_DONE().  A test fails on its first CHECK that does not hold;
 * the failing expression, file and line are printed.  The summary line,
 * "N passed, N failed" (plus ", N skipped"), is what tests/run_all.sh and CI
 * read, and the exit status is non-zero when anything failed.  A test that
 * cannot run here (missing ../shared data) calls TEST_SKIP with a reason. */
#ifndef INFERKV_TEST_H
#define INFERKV_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed_, test_failed_, test_skipped_;
static int test_cur_failed_, test_cur_skipped_;
static const char *test_cur_name_;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            printf("  FAIL %s: %s:%d: %s\n", test_cur_name_, __FILE__,         \
                   __LINE__, #cond);                                           \
            test_cur_failed_ = 1;                                              \
            return;                                                            \
        }                                                                      \
    } while (0)

#define CHECKF(cond, ...)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            printf("  FAIL %s: %s:%d: %s: ", test_cur_name_, __FILE__,         \
                   __LINE__, #cond);                                           \
            printf(__VA_ARGS__);                                               \
            printf("\n");                                                      \
            test_cur_failed_ = 1;                                              \
            return;                                                            \
        }                                                                      \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                     \
    CHECKF((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a),   \
           (long long)(b))
#define CHECK_NEAR(a, b, tol)                                                  \
    CHECKF(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %g)",  \
           (double)(a), (double)(b), (double)(tol))
#define CHECK_STR(a, b)                                                        \
    CHECKF(strcmp((a), (b)) == 0, "\"%s\" != \"%s\"", (a), (b))

#define TEST_SKIP(...)                                                         \
    do {                                                                       \
        printf("  SKIP %s: ", test_cur_name_);                                 \
        printf(__VA_ARGS__);                                                   \
        printf("\n");                                                          \
        test_cur_skipped_ = 1;                                                 \
        return;                                                                \
    } while (0)

#define TEST_RUN(fn)                                                           \
    do {                                                                       \
        test_cur_name_ = #fn;                                                  \
        test_cur_failed_ = test_cur_skipped_ = 0;                              \
        fn();                                                                  \
        if (test_cur_failed_)                                                  \
            test_failed_++;                                                    \
        else if (test_cur_skipped_)                                            \
            test_skipped_++;                                                   \
        else                                                                   \
            test_passed_++;                                                    \
        fflush(stdout);                                                        \
    } while (0)

#define TEST_DONE()                                                            \
    (printf("%d passed, %d failed, %d skipped\n", test_passed_, test_failed_,  \
            test_skipped_),                                                    \
     test_failed_ ? 1 : 0)

/* Where ../shared lives: $INFERKV_SHARED, else ../shared from the repo root. */
static inline const char *test_shared_dir(void) {
    const char *s = getenv("INFERKV_SHARED");
    return s && *s ? s : "../shared";
}

#endif
