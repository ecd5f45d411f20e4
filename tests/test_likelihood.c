/* test_likelihood.c - log-likelihoods by the change of variables: against the
 * closed form for the exact flow between two Gaussians, Hutchinson against
 * exact within its reported error, and a trained model's density integrating
 * to 1 over a grid. The same exact flow's velocity drives the stochastic
 * sampler (fm_sde_sample), whose samples must have the target's moments for
 * every noise scale.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The marginal field of the independent-coupling path from N(0, I) to
 * N(mu, S) in 2D, S = R diag(s1^2, s2^2) R^T: x_t ~ N(t mu, (1-t)^2 I + t^2 S) and
 * v_t(x) = mu + K_t (x - t mu), K_t = (t S - (1-t) I) ((1-t)^2 I + t^2 S)^-1,
 * which is symmetric (both factors are functions of S). */
typedef struct {
    double mu[2], ang, s[2];
} gauss2;

static void kmat(const gauss2 *g, double t, double K[2][2])
{
    double c = cos(g->ang), sn = sin(g->ang), kd[2];
    for (int i = 0; i < 2; i++) {
        double v = g->s[i] * g->s[i];
        kd[i] = (t * v - (1 - t)) / ((1 - t) * (1 - t) + t * t * v);
    }
    /* K = R diag(kd) R^T with R = [[c, -s], [s, c]] */
    K[0][0] = c * c * kd[0] + sn * sn * kd[1];
    K[1][1] = sn * sn * kd[0] + c * c * kd[1];
    K[0][1] = K[1][0] = c * sn * (kd[0] - kd[1]);
}

static fm_status gauss_vjp(void *ctx, double t, const float *x, int n, int d, const float *e, int k, float *v, float *u)
{
    const gauss2 *g = ctx;
    double K[2][2];
    kmat(g, t, K);
    (void)d;
    for (int i = 0; i < n; i++) {
        double y0 = x[2 * i] - t * g->mu[0], y1 = x[2 * i + 1] - t * g->mu[1];
        v[2 * i] = (float)(g->mu[0] + K[0][0] * y0 + K[0][1] * y1);
        v[2 * i + 1] = (float)(g->mu[1] + K[1][0] * y0 + K[1][1] * y1);
        for (int j = 0; j < k; j++) { /* e^T K = K e (K symmetric) */
            const float *ej = e + (size_t)j * n * 2 + 2 * i;
            float *uj = u + (size_t)j * n * 2 + 2 * i;
            uj[0] = (float)(K[0][0] * ej[0] + K[0][1] * ej[1]);
            uj[1] = (float)(K[1][0] * ej[0] + K[1][1] * ej[1]);
        }
    }
    return FM_OK;
}

static fm_status std_normal(void *ctx, const float *x0, int n, int d, double *out)
{
    (void)ctx;
    for (int i = 0; i < n; i++) {
        double ss = 0;
        for (int j = 0; j < d; j++) ss += (double)x0[i * d + j] * x0[i * d + j];
        out[i] = -0.5 * ss - 0.5 * d * log(2 * M_PI);
    }
    return FM_OK;
}

static double closed_form(const gauss2 *g, const float *x)
{
    /* log N(x; mu, S) with S^-1 = R diag(1/s^2) R^T */
    double c = cos(g->ang), sn = sin(g->ang), y0 = x[0] - g->mu[0], y1 = x[1] - g->mu[1];
    double z0 = c * y0 + sn * y1, z1 = -sn * y0 + c * y1; /* R^T y */
    return -0.5 * (z0 * z0 / (g->s[0] * g->s[0]) + z1 * z1 / (g->s[1] * g->s[1])) - log(2 * M_PI * g->s[0] * g->s[1]);
}

static fm_status gauss_field(void *ctx, double t, const float *x, float *v, size_t n)
{
    return gauss_vjp(ctx, t, x, (int)(n / 2), 2, NULL, 0, v, NULL);
}

/* Euler-Maruyama with the exact velocity of the OT path from N(0, I) to
 * N(mu, S), for G = 0, 0.5, 1, 2: the samples' mean and covariance are the
 * target's within 5 standard errors plus the scheme's O(h) bias. */
static void sde_moments(const gauss2 *g)
{
    enum { N = 20000, STEPS = 400 };
    static float x[2 * N];
    double grid[STEPS + 1], S[2][2]; /* S = R diag(s^2) R^T */
    fm_time_grid_uniform(grid, STEPS, 0.0, 1.0);
    double c = cos(g->ang), sn = sin(g->ang), v0 = g->s[0] * g->s[0], v1 = g->s[1] * g->s[1];
    S[0][0] = c * c * v0 + sn * sn * v1, S[1][1] = sn * sn * v0 + c * c * v1, S[0][1] = S[1][0] = c * sn * (v0 - v1);
    fm_path p = fm_path_default(FM_PATH_OT);
    static const double Gs[] = {0, 0.5, 1, 2};
    for (size_t q = 0; q < sizeof Gs / sizeof Gs[0]; q++) {
        fm_rng r;
        fm_rng_seed(&r, 11 + q, FM_STREAM_NOISE);
        fm_rng_normal_fill(&r, x, 2 * N, 0.0f, 1.0f);
        fm_solve_stats st;
        fm_status s = fm_sde_sample(&p, gauss_field, (void *)g, Gs[q], grid, STEPS + 1, x, 2 * N, &r, NULL, NULL, &st);
        double m[2] = {0, 0}, C[2][2] = {{0, 0}, {0, 0}};
        for (int i = 0; i < N; i++) m[0] += x[2 * i] / (double)N, m[1] += x[2 * i + 1] / (double)N;
        for (int i = 0; i < N; i++)
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++) C[a][b] += (x[2 * i + a] - m[a]) * (x[2 * i + b] - m[b]) / (N - 1);
        double worst = 0; /* in standard errors beyond the allowance */
        for (int a = 0; a < 2; a++) {
            worst = fmax(worst, fabs(m[a] - g->mu[a]) / (sqrt(S[a][a] / N) * 5 + 0.01));
            for (int b = 0; b < 2; b++)
                worst = fmax(worst, fabs(C[a][b] - S[a][b]) / (sqrt((S[a][a] * S[b][b] + S[a][b] * S[a][b]) / N) * 5 + 0.02));
        }
        t_check(s == FM_OK && st.nfe == STEPS && worst < 1,
                "sde sampler, G = %g, exact velocity, %d steps: mean (%.3f, %.3f) for (%.3f, %.3f), cov (%.3f %.3f %.3f) for "
                "(%.3f %.3f %.3f); worst %.2f of the allowance", Gs[q], STEPS, m[0], m[1], g->mu[0], g->mu[1], C[0][0],
                C[0][1], C[1][1], S[0][0], S[0][1], S[1][1], worst);
    }
}

void test_likelihood(void)
{
    gauss2 g = {{1.0, -0.5}, 0.6, {0.5, 1.5}};
    sde_moments(&g);
    int n = 64;
    float x[128];
    fm_rng r;
    fm_rng_seed(&r, 4, 0);
    fm_rng_normal_fill(&r, x, 128, 0, 1);
    for (int i = 0; i < n; i++) x[2 * i] += 1.0f, x[2 * i + 1] -= 0.5f;
    double ref[64], logp[64], se[64];
    for (int i = 0; i < n; i++) ref[i] = closed_form(&g, x + 2 * i);
    static const struct {
        fm_solver_kind k;
        int steps;
    } runs[] = {{FM_SOLVER_RK4, 100}, {FM_SOLVER_DOPRI5, 1}, {FM_SOLVER_MIDPOINT, 400}};
    for (size_t q = 0; q < sizeof runs / sizeof runs[0]; q++) {
        double grid[401];
        fm_time_grid_uniform(grid, runs[q].steps, 1.0, 0.0);
        fm_nll_config c = {fm_solver_config_default(runs[q].k), grid, runs[q].steps + 1, FM_DIV_EXACT, 0, 0};
        c.solver.rtol = c.solver.atol = 1e-8;
        fm_solve_stats st;
        fm_status s = fm_log_likelihood(gauss_vjp, &g, std_normal, NULL, x, n, 2, &c, logp, se, &st);
        double worst = 0;
        for (int i = 0; i < n; i++) worst = fmax(worst, fabs(logp[i] - ref[i]));
        t_check(s == FM_OK && worst < 1e-4, "exact flow N(0,I) -> rotated N(mu, S): %s (NFE %ld) max |log p - closed form| %.1e",
                fm_solver_name(runs[q].k), st.nfe, worst);
    }
    /* Hutchinson against exact: each point within its reported error, and the
     * errors shrink like 1/sqrt(K) */
    double grid[101], ex[64];
    fm_time_grid_uniform(grid, 100, 1.0, 0.0);
    fm_nll_config c = {fm_solver_config_default(FM_SOLVER_RK4), grid, 101, FM_DIV_EXACT, 0, 0};
    fm_log_likelihood(gauss_vjp, &g, std_normal, NULL, x, n, 2, &c, ex, NULL, NULL);
    for (int kind = FM_DIV_HUTCH_RADEMACHER; kind <= FM_DIV_HUTCH_GAUSSIAN; kind++) {
        double mean_se[2];
        int outside = 0;
        for (int q = 0; q < 2; q++) {
            c.div = (fm_div_kind)kind;
            c.probes = q ? 64 : 16;
            c.seed = 7;
            fm_log_likelihood(gauss_vjp, &g, std_normal, NULL, x, n, 2, &c, logp, se, NULL);
            mean_se[q] = 0;
            for (int i = 0; i < n; i++) {
                mean_se[q] += se[i] / n;
                if (fabs(logp[i] - ex[i]) > 4 * se[i] + 1e-6) outside++;
            }
        }
        t_check(outside <= 2 && mean_se[0] > 0 && mean_se[1] < 0.7 * mean_se[0],
                "Hutchinson (%s) within 4 standard errors of exact for %d of %d points; mean error %.3f (16 probes), %.3f (64)",
                fm_div_name((fm_div_kind)kind), 2 * n - outside, 2 * n, mean_se[0], mean_se[1]);
    }

    /* a trained model's density integrates to 1 over a grid */
    fm_train_config tc = fm_train_config_default();
    tc.iters = 1500;
    tc.ema_decay = 0.99;
    fm_trainer *tr = fm_trainer_new(&tc);
    int ok = tr != NULL;
    for (int i = 0; ok && i < 1500; i++) ok = fm_trainer_step(tr, NULL) == FM_OK;
    if (!t_check(ok, "a moons model trains for the density test %s", ok ? "" : fm_last_error())) {
        fm_trainer_free(tr);
        return;
    }
    fm_flow *f = fm_trainer_flow(tr);
    fm_ema_swap(fm_trainer_ema(tr), fm_flow_params(f));
    int G = 60;
    double lo = -3.5, hi = 4.0, h = (hi - lo) / G;
    float *pts = malloc((size_t)G * G * 2 * sizeof(float));
    double *lp = malloc((size_t)G * G * sizeof(double));
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++) {
            pts[2 * (i * G + j)] = (float)(lo + (j + 0.5) * h);
            pts[2 * (i * G + j) + 1] = (float)(lo + (i + 0.5) * h);
        }
    double g2[41];
    fm_time_grid_uniform(g2, 40, 1.0, 0.0);
    fm_nll_config fc = {fm_solver_config_default(FM_SOLVER_RK4), g2, 41, FM_DIV_EXACT, 0, 0};
    fm_status s = fm_flow_log_likelihood(f, pts, G * G, &fc, lp, NULL, NULL);
    double mass = 0;
    for (int i = 0; i < G * G; i++) mass += exp(lp[i]) * h * h;
    t_check(s == FM_OK && fabs(mass - 1) < 0.01, "trained moons density integrates to %.4f over [%.1f, %.1f]^2 (%dx%d cells)",
            mass, lo, hi, G, G);
    /* and is higher on data than far from it */
    float on[2] = {0.0f, 1.0f}, off[2] = {-2.5f, -2.5f};
    double lon, loff;
    fm_flow_log_likelihood(f, on, 1, &fc, &lon, NULL, NULL);
    fm_flow_log_likelihood(f, off, 1, &fc, &loff, NULL, NULL);
    t_check(lon > loff + 5, "log p on the upper moon %.2f, at (-2.5, -2.5) %.2f", lon, loff);
    /* the same bits on any thread count, for few points (smaller chunks) and many */
    int sizes[2] = {300, 2000}, differ = 0;
    fc.div = FM_DIV_HUTCH_RADEMACHER;
    fc.probes = 3;
    for (int q = 0; q < 2; q++) {
        double *l1 = malloc((size_t)sizes[q] * 3 * sizeof(double));
        for (int th = 1; th <= 3; th++) {
            fm_set_threads(th);
            if (fm_flow_log_likelihood(f, pts, sizes[q], &fc, l1 + (size_t)(th - 1) * sizes[q], NULL, NULL)) differ++;
        }
        differ += memcmp(l1, l1 + sizes[q], (size_t)sizes[q] * sizeof(double)) != 0;
        differ += memcmp(l1, l1 + 2 * (size_t)sizes[q], (size_t)sizes[q] * sizeof(double)) != 0;
        free(l1);
    }
    fm_set_threads(0);
    t_check(differ == 0, "log p of 300 and 2000 points: identical bits on 1, 2 and 3 threads (%d differ)", differ);
    free(pts);
    free(lp);
    fm_trainer_free(tr);

    /* 8gaussians has a density: it can be a source for the likelihood */
    fm_dataset *eg = fm_dataset_open("8gaussians");
    float pt[4] = {2.0f, 0.0f, 0.0f, 0.0f};
    double ld[2];
    fm_status es = fm_dataset_log_density(eg, pt, 2, 0.0, ld);
    double want = log(1.0 / 8 / (2 * M_PI * 0.01)); /* at a centre, the other modes negligible */
    t_check(es == FM_OK && fabs(ld[0] - want) < 1e-9 && ld[1] < -100, "8gaussians log-density %.6f at a centre (%.6f)",
            ld[0], want);
    double blurred, mix = 0;
    fm_dataset_log_density(eg, pt, 1, 0.3, &blurred); /* variance 0.01 + 0.09 */
    for (int k = 0; k < 8; k++) { /* the mixture at (2, 0), every mode included */
        double dx = 2 - 2 * cos(M_PI / 4 * k), dy = -2 * sin(M_PI / 4 * k);
        mix += exp(-(dx * dx + dy * dy) / 0.2) / 8 / (2 * M_PI * 0.1);
    }
    t_check(fabs(blurred - log(mix)) < 1e-9, "8gaussians blurred by 0.3: %.9f (direct sum %.9f)", blurred, log(mix));
    fm_dataset_free(eg);
    eg = fm_dataset_open("moons");
    t_check(fm_dataset_log_density(eg, pt, 1, 0.0, ld) == FM_ERR_ARG && strstr(fm_last_error(), "no closed-form density"),
            "moons has no closed-form density: %s", fm_last_error());
    fm_dataset_free(eg);
}
