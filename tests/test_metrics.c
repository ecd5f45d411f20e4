/* test_metrics.c - the assignment solver against brute force and against its
 * own optimality certificate; W2, energy distance and MMD against direct
 * formulas and known values.
 */
#include "harness.h"

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
}
