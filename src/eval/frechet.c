/* frechet.c - the Frechet distance between Gaussians fitted to two feature
 * sets (the "FID" of image generators when the features come from a trained
 * classifier):
 *
 *   d^2 = |mu_a - mu_b|^2 + tr(Sa + Sb - 2 (Sa^1/2 Sb Sa^1/2)^1/2),
 *
 * the 2-Wasserstein distance between N(mu_a, Sa) and N(mu_b, Sb), squared.
 * Means and covariances (divided by n - 1) are taken in double. The matrix
 * square roots come from cyclic Jacobi eigen-decompositions of symmetric
 * matrices, which converge for any symmetric input and keep the results
 * deterministic; negative eigenvalues left by rounding count as zero.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* Eigen-decomposition of the symmetric d x d matrix a (destroyed): eigenvalues
 * in w, eigenvectors in the ROWS of vt. A rotation in the (p, q) plane
 * changes only rows and columns p and q; the rows are updated in place and
 * mirrored into the columns, so every pass reads memory along rows. */
static void jacobi_eigen(double *a, int d, double *w, double *vt)
{
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) vt[(size_t)i * d + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (int i = 0; i < d; i++) {
            diag += a[(size_t)i * d + i] * a[(size_t)i * d + i];
            for (int j = i + 1; j < d; j++) off += a[(size_t)i * d + j] * a[(size_t)i * d + j];
        }
        if (off <= 1e-30 * (diag + 1e-300)) break;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++) {
                double *ap = a + (size_t)p * d, *aq = a + (size_t)q * d, apq = ap[q];
                if (fabs(apq) < 1e-300) continue;
                double theta = (aq[q] - ap[p]) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                double app = ap[p] - t * apq, aqq = aq[q] + t * apq;
                for (int k = 0; k < d; k++) {
                    double x = ap[k], y = aq[k];
                    ap[k] = c * x - s * y;
                    aq[k] = s * x + c * y;
                }
                ap[p] = app;
                aq[q] = aqq;
                ap[q] = aq[p] = 0.0;
                for (int k = 0; k < d; k++) {
                    a[(size_t)k * d + p] = ap[k];
                    a[(size_t)k * d + q] = aq[k];
                }
                double *vp = vt + (size_t)p * d, *vq = vt + (size_t)q * d;
                for (int k = 0; k < d; k++) {
                    double x = vp[k], y = vq[k];
                    vp[k] = c * x - s * y;
                    vq[k] = s * x + c * y;
                }
            }
    }
    for (int i = 0; i < d; i++) w[i] = a[(size_t)i * d + i];
}

fm_status fm_frechet_gaussians(const double *mu_a, const double *sa, const double *mu_b, const double *sb, int d,
                               double *out)
{
    if (d < 1 || d > 4096) return fm__fail(FM_ERR_ARG, "frechet: dimension %d must lie in 1..4096", d);
    size_t dd = (size_t)d * d;
    double *m = malloc(4 * dd * sizeof(double) + (size_t)d * sizeof(double));
    if (!m) return fm__fail(FM_ERR_NOMEM, "out of memory for %d x %d matrices", d, d);
    double *a = m, *v = m + dd, *r = m + 2 * dd, *t = m + 3 * dd, *w = m + 4 * dd;
    for (size_t k = 0; k < dd; k++) {
        size_t kt = (k % d) * d + k / d; /* the transposed position */
        if (!isfinite(sa[k]) || !isfinite(sb[k]) || fabs(sa[k] - sa[kt]) > 1e-9 * (fabs(sa[k]) + fabs(sa[kt]) + 1e-300) ||
            fabs(sb[k] - sb[kt]) > 1e-9 * (fabs(sb[k]) + fabs(sb[kt]) + 1e-300)) {
            free(m);
            return fm__fail(FM_ERR_ARG, "frechet: covariances must be finite and symmetric (entry %zu, %zu)", k / d, k % d);
        }
        a[k] = 0.5 * (sa[k] + sa[kt]); /* r = Sa^1/2 = V diag(sqrt w) V^T, from the symmetric part */
    }
    jacobi_eigen(a, d, w, v);
    for (int k = 0; k < d; k++) w[k] = sqrt(fmax(w[k], 0));
    memset(r, 0, dd * sizeof(double)); /* r = sum_k sqrt(w_k) v_k v_k^T, v_k row k of v */
    for (int k = 0; k < d; k++) {
        const double *vk = v + (size_t)k * d;
        for (int i = 0; i < d; i++) {
            double f = w[k] * vk[i];
            for (int j = 0; j < d; j++) r[(size_t)i * d + j] += f * vk[j];
        }
    }
    /* a = r Sb r, symmetrised against rounding */
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += sb[(size_t)i * d + k] * r[(size_t)k * d + j];
            t[(size_t)i * d + j] = s;
        }
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += r[(size_t)i * d + k] * t[(size_t)k * d + j];
            a[(size_t)i * d + j] = s;
        }
    for (int i = 0; i < d; i++)
        for (int j = i + 1; j < d; j++) {
            double s = 0.5 * (a[(size_t)i * d + j] + a[(size_t)j * d + i]);
            a[(size_t)i * d + j] = a[(size_t)j * d + i] = s;
        }
    jacobi_eigen(a, d, w, v);
    double tr_sqrt = 0, tr = 0, mean2 = 0;
    for (int i = 0; i < d; i++) {
        tr_sqrt += sqrt(fmax(w[i], 0));
        tr += sa[(size_t)i * d + i] + sb[(size_t)i * d + i];
        mean2 += (mu_a[i] - mu_b[i]) * (mu_a[i] - mu_b[i]);
    }
    free(m);
    *out = fmax(mean2 + tr - 2 * tr_sqrt, 0);
    return FM_OK;
}

/* Mean and covariance (divided by n - 1) of n rows of x (n, d), in double. */
static void moments(const float *x, int n, int d, double *mu, double *s)
{
    memset(mu, 0, (size_t)d * sizeof(double));
    memset(s, 0, (size_t)d * d * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) mu[j] += x[(size_t)i * d + j];
    for (int j = 0; j < d; j++) mu[j] /= n;
    for (int i = 0; i < n; i++) {
        const float *r = x + (size_t)i * d;
        for (int j = 0; j < d; j++) {
            double cj = r[j] - mu[j];
            for (int k = j; k < d; k++) s[(size_t)j * d + k] += cj * (r[k] - mu[k]);
        }
    }
    for (int j = 0; j < d; j++)
        for (int k = j; k < d; k++) s[(size_t)k * d + j] = s[(size_t)j * d + k] /= (n - 1);
}

fm_status fm_frechet_distance(const float *a, int na, const float *b, int nb, int d, double *out)
{
    if (na < 2 || nb < 2 || d < 1 || d > 4096)
        return fm__fail(FM_ERR_ARG, "frechet: %d and %d points of dimension %d (need 2 or more each, d in 1..4096)", na,
                        nb, d);
    size_t dd = (size_t)d * d;
    double *m = malloc(2 * (dd + (size_t)d) * sizeof(double));
    if (!m) return fm__fail(FM_ERR_NOMEM, "out of memory for %d x %d covariances", d, d);
    double *mu_a = m, *mu_b = m + d, *sa = m + 2 * (size_t)d, *sb = sa + dd;
    for (size_t i = 0; i < (size_t)na * d; i++)
        if (!isfinite(a[i])) {
            free(m);
            return fm__fail(FM_ERR_ARG, "frechet: the first set holds a NaN or infinite value (row %zu)", i / d);
        }
    for (size_t i = 0; i < (size_t)nb * d; i++)
        if (!isfinite(b[i])) {
            free(m);
            return fm__fail(FM_ERR_ARG, "frechet: the second set holds a NaN or infinite value (row %zu)", i / d);
        }
    moments(a, na, d, mu_a, sa);
    moments(b, nb, d, mu_b, sb);
    fm_status s = fm_frechet_gaussians(mu_a, sa, mu_b, sb, d, out);
    free(m);
    return s;
}
