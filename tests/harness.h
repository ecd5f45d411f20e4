/* harness.h - the test runner's checks.
 *
 * Each check is one case: it prints PASS or FAIL with the largest error it saw
 * and counts toward the final "N passed, N failed". A missing fixture is a
 * failure, never a skip.
 */
#ifndef FM_TEST_HARNESS_H
#define FM_TEST_HARNESS_H

#include "flowmatch.h"

#include <stddef.h>

/* The failure message for a status or pointer result, "" on success, so a
 * PASS line never shows a stale message. */
#define T_ERR(s) ((s) != FM_OK ? fm_last_error() : "")
#define T_ERRP(p) ((p) ? "" : fm_last_error())

/* Record one case. Returns ok. */
int t_check(int ok, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Normwise relative error max|a - ref| / max|ref| (absolute if ref is all zero),
 * NaN-aware: any NaN gives infinity. */
double t_relerr(const float *a, const float *ref, size_t n);
/* One case: relerr(got, ref) <= tol; the name and error are printed. */
int t_close(const char *name, const float *got, const float *ref, size_t n, double tol);
/* Extra detail on the next line of output (indented). */
void t_note(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Load FM_FIXTURES/file; a failure is recorded as a failed case and NULL returned. */
fm_st *t_fixture(const char *file);
/* Read fixture tensor `name` of any shape into a malloc'ed float array (caller
 * frees); *n gets its size. Records a failed case and returns NULL if absent. */
float *t_read(const fm_st *st, const char *name, size_t *n);
/* The largest error seen per family, for the summary table. */
void t_family_max(const char *family, double err);

/* W2 between n samples of flow f (solver kind, `steps` uniform steps on
 * [0, t_end], source draws from `seed`) and n fresh points of dataset `data`;
 * NaN on failure. */
double t_flow_w2(fm_flow *f, const char *data, int n, fm_solver_kind kind, int steps, uint64_t seed);

/* A malloc'ed copy of n floats. */
float *t_dup(const float *p, size_t n);
/* The whole file src in a malloc'ed buffer (NULL if unreadable); *n its size. */
unsigned char *t_slurp(const char *path, size_t *n);
/* A gzip copy of src at dst through zlib; 1 on success. */
int t_gzip_copy(const char *src, const char *dst);

/* An op's refusal as one case: y is NULL, the tape's status is s and the
 * message holds n1 (and n2 unless NULL); then the tape is reset. */
void t_expect_fail(fm_tape *tp, fm_tensor *y, fm_status s, const char *what, const char *n1, const char *n2);
/* A fresh [a, b, c, d] tensor on the tape. */
fm_tensor *t_t4(fm_tape *tp, int a, int b, int c, int d);

/* A trainer from c after `iters` steps, or NULL (freed) if any step failed. */
fm_trainer *t_trained(const fm_train_config *c, int iters);

/* Step p (a permutation of 0..n-1) to the next in lexicographic order;
 * returns 0 after the last. */
int t_next_perm(int *p, int n);

/* An MNIST-like folder at dir (made if missing): ntrain training and ntest
 * test images (train-* and t10k-* IDX files) of 28 x 28 bytes, image i of
 * label i % 10, which is a bright 4 x 4 square at the label's own place
 * (a 2 x 5 grid), moved by up to a pixel along each axis, on faint noise:
 * a set a small classifier separates. 1 on success. */
int t_digit_folder(const char *dir, int ntrain, int ntest);
/* An MNIST-style pair in dir (made if missing): <prefix>-images-idx3-ubyte, n
 * images of rows x 28 bytes, and <prefix>-labels-idx1-ubyte, nlab labels.
 * 1 on success. */
int t_mnist_write(const char *dir, const char *prefix, int n, int rows, const uint8_t *im, const uint8_t *lab,
                  int nlab);

/* Path of the command-line tool under test (FM_CLI), and a scratch directory. */
const char *t_cli(void);
const char *t_tmpdir(void);
/* t_tmpdir()/name in one of a ring of 64 buffers: good for the next 63 calls. */
const char *t_path(const char *name);

#endif
