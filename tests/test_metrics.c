/* test_metrics.c - the assignment solver against brute force and against its
 * own optimality certificate; W2, energy distance and MMD against direct
 * formulas and known values.
 */
#include "harness.h"
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int n;
    const double *c;
} dense;

static void dense_cost(void *ctx, int i, const int *cols, int ncols, double *out)
{
    const dense *m = ctx;
    for (int k = 0; k < ncols; k++) out[k] = m->c[(size_t)i * m->n + (cols ? cols[k] : k)];
}

/* Minimum over all permutations of n <= 8. */
static double brute(const double *c, int n)
{
    int p[8];
    for (int i = 0; i < n; i++) p[i] = i;
    double best = INFINITY;
    do {
        double s = 0;
        for (int i = 0; i < n; i++) s += c[i * n + p[i]];
        if (s < best) best = s;
    } while (t_next_perm(p, n));
    return best;
}

/* A random symmetric positive definite d x d matrix: G G^T / d + 0.1 I. */
static void random_spd(fm_rng *r, int d, double *s)
{
    double *g = malloc((size_t)d * d * sizeof(double));
    for (int i = 0; i < d * d; i++) g[i] = 2 * fm_rng_uniform(r) - 1;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double v = 0;
            for (int k = 0; k < d; k++) v += g[i * d + k] * g[j * d + k];
            s[i * d + j] = v / d + (i == j ? 0.1 : 0);
        }
    free(g);
}

/* Q^T S Q for an orthogonal Q (rows of q), written into out. */
static void rotate(const double *q, const double *s, int d, double *out)
{
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double v = 0;
            for (int k = 0; k < d; k++)
                for (int l = 0; l < d; l++) v += q[k * d + i] * s[k * d + l] * q[l * d + j];
            out[i * d + j] = v;
        }
}

static void frechet_checks(fm_rng *r)
{
    /* 2 x 2: sqrt(A) = (A + sqrt(det A) I) / sqrt(tr A + 2 sqrt(det A)), non-commuting A, B */
    double sa[4] = {2.0, 0.7, 0.7, 1.0}, sb[4] = {0.5, -0.3, -0.3, 1.5}, ma[2] = {0.3, -1.0}, mb[2] = {1.1, 0.4};
    double got2, want2;
    fm_status s = fm_frechet_gaussians(ma, sa, mb, sb, 2, &got2);
    {
        double dA = sa[0] * sa[3] - sa[1] * sa[2], k = sqrt(sa[0] + sa[3] + 2 * sqrt(dA));
        double ra[4] = {(sa[0] + sqrt(dA)) / k, sa[1] / k, sa[2] / k, (sa[3] + sqrt(dA)) / k};
        double t[4], m[4];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) t[i * 2 + j] = sb[i * 2] * ra[j] + sb[i * 2 + 1] * ra[2 + j];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) m[i * 2 + j] = ra[i * 2] * t[j] + ra[i * 2 + 1] * t[2 + j];
        double dm = m[0] * m[3] - m[1] * m[2], tr_sqrt = sqrt(m[0] + m[3] + 2 * sqrt(dm)); /* tr sqrt(M) */
        want2 = (ma[0] - mb[0]) * (ma[0] - mb[0]) + (ma[1] - mb[1]) * (ma[1] - mb[1]) + sa[0] + sa[3] + sb[0] + sb[3] -
                2 * tr_sqrt;
    }
    double e2 = fabs(got2 - want2) / want2;
    /* diagonal, commuting: sum (sqrt a_i - sqrt b_i)^2 */
    enum { D = 5 };
    double da[D * D] = {0}, db[D * D] = {0}, mu0[D] = {0}, gotd, wantd = 0;
    for (int i = 0; i < D; i++) {
        da[i * D + i] = 0.5 + i;
        db[i * D + i] = 3.0 / (1 + i);
        wantd += pow(sqrt(da[i * D + i]) - sqrt(db[i * D + i]), 2);
    }
    fm_status sd = fm_frechet_gaussians(mu0, da, mu0, db, D, &gotd);
    double ed = fabs(gotd - wantd) / wantd;
    t_check(s == FM_OK && sd == FM_OK && e2 < 1e-12 && ed < 1e-12,
            "Frechet distance of Gaussians: 2x2 non-commuting closed form, rel err %.1e; diagonal, rel err %.1e (%.6f)", e2,
            ed, gotd);

    /* 16 dims: zero for equal Gaussians, symmetric, invariant under a common rotation */
    enum { K = 16 };
    static double A[K * K], B[K * K], QA[K * K], QB[K * K], Q[K * K], mu_a[K], mu_b[K], qa[K], qb[K];
    random_spd(r, K, A);
    random_spd(r, K, B);
    for (int i = 0; i < K; i++) mu_a[i] = fm_rng_uniform(r), mu_b[i] = fm_rng_uniform(r);
    /* Q: Gram-Schmidt of a random matrix */
    for (int i = 0; i < K * K; i++) Q[i] = 2 * fm_rng_uniform(r) - 1;
    for (int c = 0; c < K; c++) {
        for (int p = 0; p < c; p++) {
            double dot = 0;
            for (int k = 0; k < K; k++) dot += Q[k * K + c] * Q[k * K + p];
            for (int k = 0; k < K; k++) Q[k * K + c] -= dot * Q[k * K + p];
        }
        double nrm = 0;
        for (int k = 0; k < K; k++) nrm += Q[k * K + c] * Q[k * K + c];
        for (int k = 0; k < K; k++) Q[k * K + c] /= sqrt(nrm);
    }
    rotate(Q, A, K, QA);
    rotate(Q, B, K, QB);
    for (int i = 0; i < K; i++) {
        qa[i] = qb[i] = 0;
        for (int k = 0; k < K; k++) qa[i] += Q[k * K + i] * mu_a[k], qb[i] += Q[k * K + i] * mu_b[k];
    }
    double fab = NAN, fba = NAN, fq = NAN, f0 = NAN;
    int all_ok = fm_frechet_gaussians(mu_a, A, mu_b, B, K, &fab) == FM_OK &&
                 fm_frechet_gaussians(mu_b, B, mu_a, A, K, &fba) == FM_OK &&
                 fm_frechet_gaussians(qa, QA, qb, QB, K, &fq) == FM_OK &&
                 fm_frechet_gaussians(mu_a, A, mu_a, A, K, &f0) == FM_OK;
    double worst = fmax(fabs(fab - fba), fabs(fab - fq)) / fab;
    t_check(all_ok && worst < 1e-9 && f0 < 1e-12 * fab,
            "Frechet distance in 16 dims (%.4f): symmetric and rotation-invariant within %.1e, %.1e for equal Gaussians",
            fab, worst, f0);

    /* from points: the same set gives 0; a shifted copy gives |shift|^2 exactly */
    enum { N = 300, P = 8 };
    static float xa[N * P], xb[N * P];
    for (int i = 0; i < N * P; i++) xa[i] = (float)(2 * fm_rng_uniform(r) - 1) * (1 + i % P);
    double shift2 = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < P; j++) xb[i * P + j] = xa[i * P + j] + 0.25f * (j + 1);
    for (int j = 0; j < P; j++) shift2 += (double)(0.25f * (j + 1)) * (0.25f * (j + 1));
    double same, shifted;
    fm_status s1 = fm_frechet_distance(xa, N, xa, N, P, &same), s2 = fm_frechet_distance(xa, N, xb, N, P, &shifted);
    t_check(s1 == FM_OK && s2 == FM_OK && same < 1e-9 && fabs(shifted - shift2) < 1e-5 * shift2,
            "Frechet distance of points: %.1e for a set and itself, %.6f for a shifted copy (|shift|^2 = %.6f)", same,
            shifted, shift2);
    xb[5] = NAN;
    t_check(fm_frechet_distance(xa, N, xb, N, P, &same) == FM_ERR_ARG && strstr(fm_last_error(), "NaN"),
            "Frechet distance refuses a NaN: %s", fm_last_error());
    t_check(fm_frechet_distance(xa, 1, xb, N, P, &same) == FM_ERR_ARG, "one point refused: %s", fm_last_error());
}

/* Many points of many dimensions (images): fm_w2_exact computes the whole
 * cost matrix first, over threads; the answer is the on-demand one's. */
static void hidim_w2(fm_rng *r)
{
    enum { N = 1100, D = 32 };
    float *a = malloc((size_t)N * D * sizeof(float)), *b = malloc((size_t)N * D * sizeof(float));
    int *match = malloc(N * sizeof(int)), *x = malloc(N * sizeof(int));
    fm_rng_normal_fill(r, a, (size_t)N * D, 0, 1);
    double shift2 = 0, w2[2] = {NAN, NAN}, w2s = NAN, total = NAN;
    for (int i = 0; i < N; i++) /* b: a shuffled copy shifted by c_k = 0.01 k */
        for (int k = 0; k < D; k++) b[(size_t)((i * 7919) % N) * D + k] = a[(size_t)i * D + k] + 0.01f * k;
    for (int k = 0; k < D; k++) shift2 += 0.0001 * k * k;
    fm_status s = fm_w2_exact(a, b, N, D, &w2s, match);
    int found = 0;
    for (int i = 0; s == FM_OK && i < N; i++) found += match[i] == (i * 7919) % N;
    t_check(s == FM_OK && fabs(w2s - sqrt(shift2)) < 1e-5 && found == N,
            "W2 of %d points in %d dimensions and their shifted, shuffled copy = %.6f (the shift %.6f); %d of %d "
            "matched to their copies",
            N, D, w2s, sqrt(shift2), found, N);
    float *noise = malloc((size_t)N * D * sizeof(float)); /* b blurred: a problem whose answer is not known */
    fm_rng_normal_fill(r, noise, (size_t)N * D, 0, 1.0f);
    for (size_t i = 0; i < (size_t)N * D; i++) b[i] += noise[i];
    free(noise);
    fm__sqdist p = {a, b, D}; /* the library's costs, computed on demand */
    s = fm_assignment(N, fm__sqdist_cost, &p, x, NULL, NULL, &total);
    for (int t = 1; t <= 2 && s == FM_OK; t++) {
        fm_set_threads(t);
        s = fm_w2_exact(a, b, N, D, &w2[t - 1], match);
        for (int i = 0; s == FM_OK && i < N; i++) s = match[i] == x[i] ? FM_OK : FM_ERR_NUMERIC;
    }
    fm_set_threads(0);
    int copies = 0;
    for (int i = 0; i < N; i++) copies += x[i] == (i * 7919) % N;
    t_note("%d of the %d points are still matched to their copies", copies, N);
    t_check(s == FM_OK && w2[0] == sqrt(total / N) && w2[1] == w2[0],
            "W2 of the same sets blurred (%d points, %d dimensions) = the on-demand assignment's, bit for bit, on 1 "
            "and 2 threads (%.9f, %.9f, %.9f)",
            N, D, sqrt(total / N), w2[0], w2[1]);
    free(a);
    free(b);
    free(match);
    free(x);
}

void test_metrics(void)
{
    fm_rng r;
    fm_rng_seed(&r, 21, 0);
    /* random and tie-heavy costs against brute force */
    double worst = 0;
    int bad = 0;
    for (int trial = 0; trial < 300; trial++) {
        int n = 1 + trial % 8;
        double c[64];
        for (int i = 0; i < n * n; i++) c[i] = trial % 3 == 0 ? floor(4 * fm_rng_uniform(&r)) : fm_rng_uniform(&r);
        dense m = {n, c};
        int x[8], used[8] = {0};
        double total;
        if (fm_assignment(n, dense_cost, &m, x, NULL, NULL, &total) != FM_OK) {
            bad++;
            continue;
        }
        for (int i = 0; i < n; i++) used[x[i]]++;
        for (int i = 0; i < n; i++) bad += used[i] != 1;
        worst = fmax(worst, fabs(total - brute(c, n)));
    }
    t_check(bad == 0 && worst < 1e-12, "assignment = brute force on 300 problems n <= 8 (max |diff| %.1e)", worst);

    /* n = 400: a permutation, and the dual prices certify optimality */
    int n = 400;
    double *c = malloc((size_t)n * n * sizeof(double)), *u = malloc(n * sizeof(double)), *v = malloc(n * sizeof(double));
    int *x = malloc(n * sizeof(int)), *used = calloc(n, sizeof(int));
    for (int i = 0; i < n * n; i++) c[i] = fm_rng_uniform(&r) * 100;
    dense m = {n, c};
    double total;
    fm_status s = fm_assignment(n, dense_cost, &m, x, u, v, &total);
    double slack_min = 0, tight = 0;
    int perm = s == FM_OK;
    for (int i = 0; perm && i < n; i++) perm &= !used[x[i]]++;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double red = c[(size_t)i * n + j] - u[i] - v[j];
            slack_min = fmin(slack_min, red);
            if (j == x[i]) tight = fmax(tight, fabs(red));
        }
    double dual = 0;
    for (int i = 0; i < n; i++) dual += u[i] + v[i];
    t_check(perm && slack_min > -1e-9 && tight < 1e-9 && fabs(dual - total) < 1e-7,
            "n = 400: duals feasible (min reduced cost %.1e), tight on the assignment (%.1e), dual = primal (%.1e)",
            slack_min, tight, fabs(dual - total));
    free(c);
    free(u);
    free(v);
    free(x);
    free(used);

    /* W2 between a set and its shifted, shuffled copy is the shift */
    int np = 1000;
    float *a = malloc(2 * np * sizeof(float)), *b = malloc(2 * np * sizeof(float));
    fm_rng_normal_fill(&r, a, 2 * (size_t)np, 0, 1);
    for (int i = 0; i < np; i++) {
        int j = (i * 7919) % np; /* a permutation since gcd(7919, 1000) = 1 */
        b[2 * j] = a[2 * i] + 0.3f;
        b[2 * j + 1] = a[2 * i + 1] - 0.4f;
    }
    double w2;
    s = fm_w2_exact(a, b, np, 2, &w2, NULL);
    t_check(s == FM_OK && fabs(w2 - 0.5) < 1e-6, "W2 of a set and its copy shifted by (0.3, -0.4) = %.7f (0.5)", w2);
    s = fm_w2_exact(a, a, np, 2, &w2, NULL);
    t_check(s == FM_OK && w2 == 0, "W2 of a set with itself = %g", w2);
    /* 3-D points (the general cost path) against brute force over matchings */
    double worst3 = 0;
    for (int trial = 0; trial < 50; trial++) {
        int m3 = 2 + trial % 6;
        float p3[24], q3[24];
        fm_rng_normal_fill(&r, p3, (size_t)m3 * 3, 0, 1);
        fm_rng_normal_fill(&r, q3, (size_t)m3 * 3, 0.5f, 1);
        double cc[64];
        for (int i = 0; i < m3; i++)
            for (int j = 0; j < m3; j++) {
                double dd = 0;
                for (int k = 0; k < 3; k++) dd += pow((double)p3[3 * i + k] - q3[3 * j + k], 2);
                cc[i * m3 + j] = dd;
            }
        double w3;
        fm_w2_exact(p3, q3, m3, 3, &w3, NULL);
        worst3 = fmax(worst3, fabs(w3 - sqrt(brute(cc, m3) / m3)));
    }
    t_check(worst3 < 1e-9, "W2 of 3-D point sets = brute force (max |diff| %.1e)", worst3);
    hidim_w2(&r);

    /* energy distance and MMD against the direct double sums */
    int na = 60, nb = 45, d = 3;
    float *p = malloc((size_t)na * d * sizeof(float)), *q = malloc((size_t)nb * d * sizeof(float));
    fm_rng_normal_fill(&r, p, (size_t)na * d, 0, 1);
    fm_rng_normal_fill(&r, q, (size_t)nb * d, 0.5f, 1.5f);
    double sxy = 0, sxx = 0, syy = 0, kxy = 0, kxx = 0, kyy = 0, h = 1.3;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++) {
            double dd = 0;
            for (int k = 0; k < d; k++) dd += pow((double)p[i * d + k] - q[j * d + k], 2);
            sxy += sqrt(dd);
            kxy += exp(-dd / (2 * h * h));
        }
    for (int i = 0; i < na; i++)
        for (int j = 0; j < na; j++)
            if (i != j) {
                double dd = 0;
                for (int k = 0; k < d; k++) dd += pow((double)p[i * d + k] - p[j * d + k], 2);
                sxx += sqrt(dd);
                kxx += exp(-dd / (2 * h * h));
            }
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < nb; j++)
            if (i != j) {
                double dd = 0;
                for (int k = 0; k < d; k++) dd += pow((double)q[i * d + k] - q[j * d + k], 2);
                syy += sqrt(dd);
                kyy += exp(-dd / (2 * h * h));
            }
    double e_ref = 2 * sxy / (na * nb) - sxx / (na * (na - 1.0)) - syy / (nb * (nb - 1.0));
    double m_ref = kxx / (na * (na - 1.0)) + kyy / (nb * (nb - 1.0)) - 2 * kxy / (na * nb);
    double e, mm, used_h;
    fm_energy_distance(p, na, q, nb, d, &e);
    fm_mmd_gaussian(p, na, q, nb, d, h, &mm, &used_h);
    t_check(fabs(e - e_ref) < 1e-12 * fabs(e_ref) + 1e-14 && e > 0, "energy distance %.6f = direct sum (diff %.1e)", e,
            fabs(e - e_ref));
    t_check(fabs(mm - m_ref) < 1e-12 && used_h == h && mm > 0, "MMD^2 %.6f = direct sum (diff %.1e)", mm, fabs(mm - m_ref));
    fm_mmd_gaussian(p, na, q, nb, d, 0, &mm, &used_h);
    t_check(used_h > 0.5 && used_h < 5, "median-heuristic bandwidth %.3f", used_h);
    /* same distribution: both near zero, smaller than for different ones */
    float *p2 = malloc((size_t)na * d * sizeof(float));
    fm_rng_normal_fill(&r, p2, (size_t)na * d, 0, 1);
    double e_same, m_same;
    fm_energy_distance(p, na, p2, na, d, &e_same);
    fm_mmd_gaussian(p, na, p2, na, d, h, &m_same, NULL);
    t_check(fabs(e_same) < e && fabs(m_same) < mm, "same distribution: energy %.4f, MMD^2 %.4f (vs %.4f, %.4f)", e_same,
            m_same, e, mm);
    t_check(fm_energy_distance(p, 1, q, nb, d, &e) == FM_ERR_ARG, "energy distance of one point refused");
    free(p);
    free(p2);
    free(q);
    free(a);
    free(b);
    frechet_checks(&r);
}
