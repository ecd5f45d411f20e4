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

/* The marginal field of a Gaussian path x = a x1 + s e from N(0, I) to
 * N(mu, S) in 2D, S = R diag(s1^2, s2^2) R^T: x_t ~ N(a mu, a^2 S + s^2 I) and
 * v_t(x) = a' mu + K_t (x - a mu), K_t = (a a' S + s s' I) (a^2 S + s^2 I)^-1,
 * which is symmetric (both factors are functions of S). On the OT path
 * (a = t, s = 1 - t) this is the independent coupling's field. */
typedef struct {
    double mu[2], ang, s[2];
    fm_path path; /* kind 0 (ot) unless set */
} gauss2;

/* K_t, and the marginal's covariance P_t = R diag(pd) R^T when P is given. */
static void kmat(const gauss2 *g, double t, double K[2][2], double P[2][2], double *a_out)
{
    double c = cos(g->ang), sn = sin(g->ang), kd[2], pd[2], s, ds;
    fm_path_coef pc;
    fm_path_coef_at(&g->path, t, &pc);
    fm_path_noise(&g->path, t, &s, &ds);
    for (int i = 0; i < 2; i++) {
        double v = g->s[i] * g->s[i];
        pd[i] = pc.a * pc.a * v + s * s;
        kd[i] = (pc.a * pc.da * v + s * ds) / pd[i];
    }
    /* K = R diag(kd) R^T with R = [[c, -s], [s, c]] */
    K[0][0] = c * c * kd[0] + sn * sn * kd[1];
    K[1][1] = sn * sn * kd[0] + c * c * kd[1];
    K[0][1] = K[1][0] = c * sn * (kd[0] - kd[1]);
    if (P) {
        P[0][0] = c * c * pd[0] + sn * sn * pd[1];
        P[1][1] = sn * sn * pd[0] + c * c * pd[1];
        P[0][1] = P[1][0] = c * sn * (pd[0] - pd[1]);
    }
    if (a_out) *a_out = pc.a;
}

static fm_status gauss_vjp(void *ctx, double t, const float *x, int n, int d, const float *e, int k, float *v, float *u)
{
    const gauss2 *g = ctx;
    double K[2][2], a, da;
    kmat(g, t, K, NULL, &a);
    fm_path_coef pc;
    fm_path_coef_at(&g->path, t, &pc);
    da = pc.da;
    (void)d;
    for (int i = 0; i < n; i++) {
        double y0 = x[2 * i] - a * g->mu[0], y1 = x[2 * i + 1] - a * g->mu[1];
        v[2 * i] = (float)(da * g->mu[0] + K[0][0] * y0 + K[0][1] * y1);
        v[2 * i + 1] = (float)(da * g->mu[1] + K[1][0] * y0 + K[1][1] * y1);
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

/* log N(x; m, P) in 2D. */
static double log_normal2(const double m[2], double P[2][2], const float *x)
{
    double y0 = x[0] - m[0], y1 = x[1] - m[1], det = P[0][0] * P[1][1] - P[0][1] * P[1][0];
    double q = (P[1][1] * y0 * y0 - 2 * P[0][1] * y0 * y1 + P[0][0] * y1 * y1) / det;
    return -0.5 * q - 0.5 * log(det) - log(2 * M_PI);
}

static double closed_form(const gauss2 *g, const float *x)
{
    double c = cos(g->ang), sn = sin(g->ang), v0 = g->s[0] * g->s[0], v1 = g->s[1] * g->s[1], S[2][2];
    S[0][0] = c * c * v0 + sn * sn * v1, S[1][1] = sn * sn * v0 + c * c * v1, S[0][1] = S[1][0] = c * sn * (v0 - v1);
    return log_normal2(g->mu, S, x);
}

static fm_status gauss_field(void *ctx, double t, const float *x, float *v, size_t n)
{
    return gauss_vjp(ctx, t, x, (int)(n / 2), 2, NULL, 0, v, NULL);
}

/* log p_t at the grid's start for the exact marginal (ctx: the gauss2 and its t0). */
typedef struct {
    const gauss2 *g;
    double t0;
} marg0;
static fm_status marginal_logp(void *ctx, const float *x0, int n, int d, double *out)
{
    const marg0 *m = ctx;
    double K[2][2], P[2][2], a;
    kmat(m->g, m->t0, K, P, &a);
    double mu[2] = {a * m->g->mu[0], a * m->g->mu[1]};
    (void)d;
    for (int i = 0; i < n; i++) out[i] = log_normal2(mu, P, x0 + 2 * i);
    return FM_OK;
}

/* Samples of the stochastic samplers with the exact velocity of path kind pk
 * from N(0, I) to N(mu, S): started from the exact marginal at t = 0, their
 * mean and covariance at the path's end are the marginal's there (the data's,
 * up to the path's s_end) within 5 standard errors plus the scheme's O(h)
 * bias. */
static void sde_moments(const gauss2 *g0, fm_path_kind pk, const char *sampler, double G)
{
    enum { N = 20000, STEPS = 400 };
    static float x[2 * N];
    gauss2 g = *g0;
    g.path = fm_path_default(pk);
    double grid[STEPS + 1], K[2][2], P0[2][2], P1[2][2], a0, a1;
    fm_time_grid_uniform(grid, STEPS, 0.0, g.path.t_end);
    kmat(&g, 0.0, K, P0, &a0);
    kmat(&g, g.path.t_end, K, P1, &a1);
    fm_rng r;
    fm_rng_seed(&r, 11 + (uint64_t)(10 * G) + 100 * (uint64_t)pk, FM_STREAM_NOISE);
    /* x(0) ~ N(a0 mu, P0): the Cholesky factor of P0 */
    double l00 = sqrt(P0[0][0]), l10 = P0[1][0] / l00, l11 = sqrt(P0[1][1] - l10 * l10);
    for (int i = 0; i < N; i++) {
        double z0 = fm_rng_normal(&r), z1 = fm_rng_normal(&r);
        x[2 * i] = (float)(a0 * g.mu[0] + l00 * z0);
        x[2 * i + 1] = (float)(a0 * g.mu[1] + l10 * z0 + l11 * z1);
    }
    fm_sde_config sc = {FM_DIFFUSION_SCALED, G, 0, 0.16};
    if (!strcmp(sampler, "em")) sc.diffusion = FM_DIFFUSION_PATH;
    if (!strcmp(sampler, "pc")) sc.diffusion = FM_DIFFUSION_PATH, sc.corrector_steps = 1;
    fm_solve_stats st;
    fm_status s = fm_sde_sample(&g.path, &sc, gauss_field, &g, grid, STEPS + 1, x, N, 2, &r, NULL, NULL, &st);
    double m[2] = {0, 0}, C[2][2] = {{0, 0}, {0, 0}}, mu[2] = {a1 * g.mu[0], a1 * g.mu[1]};
    for (int i = 0; i < N; i++) m[0] += x[2 * i] / (double)N, m[1] += x[2 * i + 1] / (double)N;
    for (int i = 0; i < N; i++)
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) C[a][b] += (x[2 * i + a] - m[a]) * (x[2 * i + b] - m[b]) / (N - 1);
    double worst = 0; /* in standard errors beyond the allowance */
    for (int a = 0; a < 2; a++) {
        worst = fmax(worst, fabs(m[a] - mu[a]) / (sqrt(P1[a][a] / N) * 5 + 0.01));
        for (int b = 0; b < 2; b++)
            worst = fmax(worst, fabs(C[a][b] - P1[a][b]) /
                                    (sqrt((P1[a][a] * P1[b][b] + P1[a][b] * P1[a][b]) / N) * 5 + 0.02));
    }
    long want_nfe = STEPS * (1 + sc.corrector_steps);
    t_check(s == FM_OK && st.nfe == want_nfe && worst < 1,
            "%s sampler on %s, G = %g, exact velocity, %d steps: mean (%.3f, %.3f) for (%.3f, %.3f), cov (%.3f %.3f %.3f) "
            "for (%.3f %.3f %.3f); worst %.2f of the allowance %s", sampler, fm_path_name(pk), G, STEPS, m[0], m[1], mu[0],
            mu[1], C[0][0], C[0][1], C[1][1], P1[0][0], P1[0][1], P1[1][1], worst, s ? fm_last_error() : "");
}

/* The noising SDE of fm_path_sde against Song et al.'s own coefficients, and
 * its kernel's mean and variance integrated numerically (dm/dtau = f m,
 * dv/dtau = 2 f v + g^2 from the data, v = s(tau = 0)^2) against the path's
 * a and s^2 at flow times down to the path's noise end. */
static void sde_kernels(void)
{
    static const fm_path_kind kinds[] = {FM_PATH_VE, FM_PATH_VP, FM_PATH_SUBVP};
    for (int q = 0; q < 3; q++) {
        fm_path p = fm_path_default(kinds[q]);
        double worst_coef = 0, worst_mom = 0;
        /* Song's f(tau), g^2(tau) with tau = 1 - t */
        for (int i = 0; i <= 20; i++) {
            double t = i / 20.0 * p.t_end, tau = 1 - t, f, g2, fs = 0, gs;
            fm_path_sde(&p, t, &f, &g2);
            double beta = p.beta_min + tau * (p.beta_max - p.beta_min);
            double B = p.beta_min * tau + 0.5 * (p.beta_max - p.beta_min) * tau * tau;
            if (kinds[q] == FM_PATH_VE) {
                double sg = p.ve_sigma_min * pow(p.ve_sigma_max / p.ve_sigma_min, tau);
                gs = 2 * sg * sg * log(p.ve_sigma_max / p.ve_sigma_min);
            } else {
                fs = -0.5 * beta;
                gs = kinds[q] == FM_PATH_VP ? beta : beta * (1 - exp(-2 * B));
            }
            worst_coef = fmax(worst_coef, fabs(f - fs) / (1 + fabs(fs)) + fabs(g2 - gs) / (1 + fabs(gs)));
        }
        /* integrate from tau = 1 - t_end to tau = 1 by RK4 */
        int M = 4000;
        double tau0 = 1 - p.t_end, h = (1 - tau0) / M, m = 1, v;
        fm_path_coef c0;
        fm_path_coef_at(&p, p.t_end, &c0);
        fm_path_noise(&p, p.t_end, &v, NULL);
        m = c0.a, v = v * v;
        for (int k = 0; k < M; k++) {
            double tau = tau0 + k * h, km[4], kv[4], mm = m, vv = v;
            for (int st = 0; st < 4; st++) {
                double tt = tau + (st == 0 ? 0 : st == 3 ? h : h / 2), f, g2;
                fm_path_sde(&p, 1 - tt, &f, &g2);
                km[st] = f * mm, kv[st] = 2 * f * vv + g2;
                double w = st == 2 ? h : h / 2;
                mm = m + w * km[st], vv = v + w * kv[st];
            }
            m += h / 6 * (km[0] + 2 * km[1] + 2 * km[2] + km[3]);
            v += h / 6 * (kv[0] + 2 * kv[1] + 2 * kv[2] + kv[3]);
            if ((k + 1) % 400 == 0) {
                double t = 1 - (tau + h), s;
                fm_path_coef c;
                fm_path_coef_at(&p, t, &c);
                fm_path_noise(&p, t, &s, NULL);
                worst_mom = fmax(worst_mom, fabs(m - c.a) / c.a + fabs(v - s * s) / (s * s));
            }
        }
        t_check(worst_coef < 1e-9 && worst_mom < 1e-6,
                "%s SDE: f and g^2 match Song et al.'s to %.1e; the kernel's mean and variance integrated along it match "
                "the path's a and s^2 to %.1e (relative)", fm_path_name(kinds[q]), worst_coef, worst_mom);
    }
}

/* The probability-flow ODE of Gaussian data under the exact score: its
 * likelihood (from the exact marginal at t = 0) equals the closed form of the
 * marginal at the path's end. */
static void pf_likelihood(const gauss2 *g0, const float *x, int n)
{
    static const fm_path_kind kinds[] = {FM_PATH_VE, FM_PATH_VP, FM_PATH_SUBVP};
    for (int q = 0; q < 3; q++) {
        gauss2 g = *g0;
        g.path = fm_path_default(kinds[q]);
        double grid[2] = {g.path.t_end, 0.0}, logp[64], K[2][2], P1[2][2], a1, worst = 0;
        fm_nll_config c = {fm_solver_config_default(FM_SOLVER_DOPRI5), grid, 2, FM_DIV_EXACT, 0, 0};
        c.solver.rtol = c.solver.atol = 1e-8;
        marg0 m0 = {&g, 0.0};
        fm_solve_stats st;
        fm_status s = fm_log_likelihood(gauss_vjp, &g, marginal_logp, &m0, x, n, 2, &c, logp, NULL, &st);
        kmat(&g, g.path.t_end, K, P1, &a1);
        double mu[2] = {a1 * g.mu[0], a1 * g.mu[1]};
        for (int i = 0; i < n; i++) worst = fmax(worst, fabs(logp[i] - log_normal2(mu, P1, x + 2 * i)));
        t_check(s == FM_OK && worst < 1e-4, "probability-flow likelihood on %s, exact score, dopri5 (NFE %ld): max |log p - "
                "closed form| %.1e", fm_path_name(kinds[q]), st.nfe, worst);
    }
}

/* Predictions convert into each other and back to the bit's neighbourhood,
 * and agree with the path's own x1 and e. */
static void predict_conversions(void)
{
    static const fm_path_kind kinds[] = {FM_PATH_OT, FM_PATH_VP, FM_PATH_VE, FM_PATH_SUBVP, FM_PATH_COSINE};
    double worst = 0, worst_def = 0;
    fm_rng r;
    fm_rng_seed(&r, 5, 0);
    enum { N = 64 };
    float x1[N], e[N], x[N], y[3][N], out[N], back[N];
    fm_rng_normal_fill(&r, x1, N, 0, 1);
    fm_rng_normal_fill(&r, e, N, 0, 1);
    for (int q = 0; q < 5; q++) {
        fm_path p = fm_path_default(kinds[q]);
        for (int it = 1; it < 10; it++) {
            double t = it / 10.0 * p.t_end, s, ds;
            fm_path_coef c;
            fm_path_coef_at(&p, t, &c);
            fm_path_noise(&p, t, &s, &ds);
            for (int i = 0; i < N; i++) {
                x[i] = (float)(c.a * x1[i] + s * e[i]);
                y[FM_PREDICT_V][i] = (float)(c.da * x1[i] + ds * e[i]);
                y[FM_PREDICT_EPS][i] = e[i];
                y[FM_PREDICT_X1][i] = x1[i];
            }
            for (int from = 0; from < 3; from++)
                for (int to = 0; to < 3; to++) {
                    fm_predict_convert(&p, t, (fm_predict)from, (fm_predict)to, x, y[from], out, N);
                    fm_predict_convert(&p, t, (fm_predict)to, (fm_predict)from, x, out, back, N);
                    for (int i = 0; i < N; i++) {
                        double scale = 1 + fabs(y[from][i]);
                        worst = fmax(worst, fabs(back[i] - y[from][i]) / scale);
                        worst_def = fmax(worst_def, fabs(out[i] - y[to][i]) / (1 + fabs(y[to][i])));
                    }
                }
        }
    }
    t_check(worst < 1e-4 && worst_def < 1e-4,
            "predictions v, eps, x1 on ot, vp, ve, subvp, cosine: each from each other to within %.1e, and round trips "
            "to within %.1e (relative)", worst_def, worst);
}

/* EDM's grid: its interior noise-to-signal ratios follow the rho schedule. */
static void edm_grid(void)
{
    double grid[11];
    fm_path p = fm_path_default(FM_PATH_OT);
    fm_status s = fm_time_grid_edm(&p, grid, 10, 0.0, 1.0, 7.0);
    double worst = 0;
    for (int i = 1; i < 10; i++) {
        double lo = pow(80, 1 / 7.0), hi = pow(0.002, 1 / 7.0), sig = pow(lo + i / 9.0 * (hi - lo), 7);
        worst = fmax(worst, fabs(grid[i] - 1 / (1 + sig)));
    }
    int mono = 1;
    for (int i = 1; i <= 10; i++) mono &= grid[i] > grid[i - 1];
    fm_path vp = fm_path_default(FM_PATH_VP);
    double g2[9];
    fm_status s2 = fm_time_grid_edm(&vp, g2, 8, 0.0, vp.t_end, 7.0);
    for (int i = 1; i <= 8; i++) mono &= g2[i] > g2[i - 1];
    t_check(s == FM_OK && s2 == FM_OK && mono && grid[0] == 0 && grid[10] == 1 && worst < 1e-12 && g2[8] == vp.t_end,
            "EDM grid (rho 7) on ot: t_i = 1 / (1 + sigma_i) to %.1e, increasing, from 0 to 1; on vp from 0 to t_end",
            worst);
}

void test_likelihood(void)
{
    gauss2 g = {{1.0, -0.5}, 0.6, {0.5, 1.5}, fm_path_default(FM_PATH_OT)};
    static const double Gs[] = {0, 0.5, 1, 2};
    for (int q = 0; q < 4; q++) sde_moments(&g, FM_PATH_OT, "sde", Gs[q]);
    static const fm_path_kind sdes[] = {FM_PATH_VE, FM_PATH_VP, FM_PATH_SUBVP};
    for (int q = 0; q < 3; q++) {
        sde_moments(&g, sdes[q], "em", 1.0);
        sde_moments(&g, sdes[q], "pc", 1.0);
        sde_moments(&g, sdes[q], "sde", 1.0);
    }
    sde_kernels();
    predict_conversions();
    edm_grid();
    int n = 64;
    float x[128];
    fm_rng r;
    fm_rng_seed(&r, 4, 0);
    fm_rng_normal_fill(&r, x, 128, 0, 1);
    for (int i = 0; i < n; i++) x[2 * i] += 1.0f, x[2 * i + 1] -= 0.5f;
    double ref[64], logp[64], se[64];
    for (int i = 0; i < n; i++) ref[i] = closed_form(&g, x + 2 * i);
    pf_likelihood(&g, x, n);
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
