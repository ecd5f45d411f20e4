/* metrics.c - sample-based distances between two point clouds: energy
 * distance and maximum mean discrepancy with a Gaussian kernel.
 *
 * Both are O(n m) sums over pairs, accumulated in double per row and then
 * added in row order, so the result does not depend on the thread count.
 * The within-sample terms leave out i = j (unbiased U-statistics).
 */
#include "internal.h"

#include <math.h>
#include <string.h>

static double dist2(const float *x, const float *y, int d)
{
    double s = 0;
    for (int k = 0; k < d; k++) {
        double t = (double)x[k] - y[k];
        s += t * t;
    }
    return s;
}

/* Mean of f(|x_i - y_j|^2) over pairs; same = 1 skips i == j (x == y). */
typedef double (*pairfn)(double d2, double param);

static double pair_mean(const float *x, int nx, const float *y, int ny, int d, int same, pairfn f, double param,
                        double *rows)
{
    int nt = fm__threads_for((double)nx * ny * d);
    (void)nt;
    FM__PARALLEL_FOR(nt)
    for (int i = 0; i < nx; i++) {
        double s = 0;
        const float *xi = x + (size_t)i * d;
        for (int j = 0; j < ny; j++)
            if (!same || j != i) s += f(dist2(xi, y + (size_t)j * d, d), param);
        rows[i] = s;
    }
    double total = 0;
    for (int i = 0; i < nx; i++) total += rows[i];
    double pairs = same ? (double)nx * (nx - 1) : (double)nx * ny;
    return total / pairs;
}

static double f_dist(double d2, double unused)
{
    (void)unused;
    return sqrt(d2);
}

static double f_gauss(double d2, double inv2h2) { return exp(-d2 * inv2h2); }

fm_status fm_energy_distance(const float *a, int na, const float *b, int nb, int d, double *out)
{
    if (na < 2 || nb < 2 || d < 1) return fm__fail(FM_ERR_ARG, "energy distance needs at least 2 points on each side");
    double *rows = malloc((size_t)(na > nb ? na : nb) * sizeof(double));
    if (!rows) return fm__fail(FM_ERR_NOMEM, "out of memory");
    double xy = pair_mean(a, na, b, nb, d, 0, f_dist, 0, rows);
    double xx = pair_mean(a, na, a, na, d, 1, f_dist, 0, rows);
    double yy = pair_mean(b, nb, b, nb, d, 1, f_dist, 0, rows);
    free(rows);
    *out = 2 * xy - xx - yy;
    return FM_OK;
}

static int cmp_double(const void *p, const void *q)
{
    double a = *(const double *)p, b = *(const double *)q;
    return a < b ? -1 : a > b;
}

/* Median distance between points of the pooled first 500 of each sample. */
static double median_distance(const float *a, int na, const float *b, int nb, int d)
{
    int ka = na < 500 ? na : 500, kb = nb < 500 ? nb : 500, k = ka + kb;
    size_t np = (size_t)k * (k - 1) / 2, o = 0;
    double *ds = malloc(np * sizeof(double));
    if (!ds) return NAN;
    for (int i = 0; i < k; i++) {
        const float *pi = i < ka ? a + (size_t)i * d : b + (size_t)(i - ka) * d;
        for (int j = i + 1; j < k; j++) {
            const float *pj = j < ka ? a + (size_t)j * d : b + (size_t)(j - ka) * d;
            ds[o++] = sqrt(dist2(pi, pj, d));
        }
    }
    qsort(ds, np, sizeof(double), cmp_double);
    double m = np % 2 ? ds[np / 2] : 0.5 * (ds[np / 2 - 1] + ds[np / 2]);
    free(ds);
    return m;
}

fm_status fm_mmd_gaussian(const float *a, int na, const float *b, int nb, int d, double bandwidth, double *mmd2,
                          double *used)
{
    if (na < 2 || nb < 2 || d < 1) return fm__fail(FM_ERR_ARG, "MMD needs at least 2 points on each side");
    double h = bandwidth > 0 ? bandwidth : median_distance(a, na, b, nb, d);
    if (isnan(h) && bandwidth <= 0) return fm__fail(FM_ERR_NOMEM, "out of memory for the median distance");
    if (!(h > 0)) return fm__fail(FM_ERR_NUMERIC, "MMD bandwidth %g is not positive (identical points?)", h);
    double *rows = malloc((size_t)(na > nb ? na : nb) * sizeof(double));
    if (!rows) return fm__fail(FM_ERR_NOMEM, "out of memory");
    double k = 1.0 / (2 * h * h);
    double xy = pair_mean(a, na, b, nb, d, 0, f_gauss, k, rows);
    double xx = pair_mean(a, na, a, na, d, 1, f_gauss, k, rows);
    double yy = pair_mean(b, nb, b, nb, d, 1, f_gauss, k, rows);
    free(rows);
    *mmd2 = xx + yy - 2 * xy;
    if (used) *used = h;
    return FM_OK;
}
