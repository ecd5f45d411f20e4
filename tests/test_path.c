/* test_path.c - probability paths: the training target against the
 * reference's closed forms, against the general Gaussian-path formula
 * u = sigma'/sigma (x - mu) + mu' at x = psi_t(x0), and against a central
 * finite difference of psi_t.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static double psi(const fm_path *p, double t, double x1, double x0, double e)
{
    fm_path_coef c;
    fm_path_coef_at(p, t, &c);
    return c.a * x1 + c.b * x0 + c.c * e;
}

/* Every path with parameters off their defaults. */
static int all_paths(fm_path *ps)
{
    int n = 0;
    for (int k = 0; k < FM_PATH_COUNT; k++) ps[n++] = fm_path_default((fm_path_kind)k);
    ps[n] = fm_path_default(FM_PATH_OT), ps[n++].sigma_min = 0.1;
    ps[n] = fm_path_default(FM_PATH_OT), ps[n++].sigma_min = 1.5;
    ps[n] = fm_path_default(FM_PATH_ICFM), ps[n++].sigma = 0.3;
    ps[n] = fm_path_default(FM_PATH_COSINE), ps[n++].sigma = 0.2;
    ps[n] = fm_path_default(FM_PATH_POLY), ps[n++].exponent = 3;
    ps[n] = fm_path_default(FM_PATH_SB), ps[n++].sigma = 2;
    return n;
}

/* Gaussian data N(mu, s^2 I) from N(0, I): every path's exact marginal
 * field u_t(x) = a' mu + (q'/q)(x - a mu), q^2 = a^2 s^2 + s_t^2. */
typedef struct {
    const fm_path *p;
    double mu, s;
} gauss_field;

static fm_status gauss_u(void *ctx, double t, const float *x, float *v, size_t n)
{
    const gauss_field *g = ctx;
    fm_path_coef c;
    fm_path_coef_at(g->p, t, &c);
    double sn, dsn;
    fm_path_noise(g->p, t, &sn, &dsn);
    double q = sqrt(c.a * c.a * g->s * g->s + sn * sn), dq = (c.a * c.da * g->s * g->s + sn * dsn) / q;
    for (size_t i = 0; i < n; i++) v[i] = (float)(c.da * g->mu + dq / q * (x[i] - c.a * g->mu));
    return FM_OK;
}

static void snr_and_schedules(void)
{
    fm_path ps[FM_PATH_COUNT + 8];
    int np = all_paths(ps), rising = 1;
    double inv = 0;
    const char *worst = "";
    for (int k = 0; k < np; k++) {
        double prev = -1;
        for (int i = 0; i <= 1000; i++) {
            double t = ps[k].t_end * i / 1000, q = fm_path_snr(&ps[k], t);
            rising &= q > prev || (isinf(q) && isinf(prev));
            prev = q;
            if (i % 50 || !isfinite(q)) continue;
            double e = fabs(fm_path_snr_inverse(&ps[k], q) - t);
            if (e > inv) inv = e, worst = fm_path_name(ps[k].kind);
        }
    }
    t_check(rising && inv < 1e-9, "snr = a / s rises with t on %d paths, and snr_inverse recovers t (largest error %.1e, "
            "%s)", np, inv, worst);
    /* a schedule transformation carries the exact field of one path to the
     * other's: from the same start both end at the same points (k x_t) */
    const fm_path_kind from[4] = {FM_PATH_OT, FM_PATH_COSINE, FM_PATH_LINEAR_VP, FM_PATH_POLY};
    const fm_path_kind to[4] = {FM_PATH_COSINE, FM_PATH_OT, FM_PATH_POLY, FM_PATH_LINEAR_VP};
    double worst_e = 0;
    int ok = 1;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            if (from[a] == to[b]) continue;
            fm_path P = fm_path_default(from[a]), Q = fm_path_default(to[b]);
            gauss_field g = {&P, 2.0, 0.5};
            fm_schedule_transform tf = {&P, &Q, gauss_u, &g};
            float x[8] = {-1.5f, 0.3f, 0.9f, -0.2f, 2.2f, -0.7f, 0.1f, 1.4f}, y[8];
            memcpy(y, x, sizeof x);
            /* Q's end, or sooner where P's ratio ends (linear-vp stops at 0.999) */
            double r_end = fmin(Q.t_end, fm_path_snr_inverse(&Q, fm_path_snr(&P, P.t_end)));
            double t_end, k, A, Bc, gq[201], gp[201];
            fm_schedule_transform_at(&P, &Q, r_end, &t_end, &k, &A, &Bc);
            fm_time_grid_uniform(gq, 200, 0, r_end);
            fm_time_grid_uniform(gp, 200, 0, t_end);
            fm_solver_config rk = fm_solver_config_default(FM_SOLVER_RK4);
            ok &= fm_solve(&rk, gauss_u, &g, gp, 201, x, 8, NULL, NULL, NULL) == FM_OK &&
                  fm_solve(&rk, fm_schedule_transform_field, &tf, gq, 201, y, 8, NULL, NULL, NULL) == FM_OK;
            for (int i = 0; i < 8; i++) worst_e = fmax(worst_e, fabs(y[i] - k * x[i]));
        }
    t_check(ok && worst_e < 1e-4, "schedule transformation between ot, cosine, linear-vp and poly: the transformed exact "
            "field ends at k x_t of the original (largest difference %.1e)", worst_e);
    /* a flow refuses a schedule it cannot take */
    fm_flow_config fc = fm_train_config_default().flow;
    fc.dim = 2;
    fc.source = "moons";
    fm_flow *f = fm_flow_new(&fc);
    fm_path cz = fm_path_default(FM_PATH_COSINE);
    t_check(f && fm_flow_set_schedule(f, &cz) == FM_ERR_ARG && strstr(fm_last_error(), "starts from 'moons'") &&
                fm_flow_sampling_path(f) == &fm_flow_get_config(f)->path,
            "a flow from data refuses a schedule transformation: %s", fm_last_error());
    fm_flow_free(f);
}

void test_path(void)
{
    const double x1 = 0.7, x0 = -1.3, e = 0.4;
    static const double ts[] = {0.0, 0.1, 0.37, 0.5, 0.8, 0.95};
    for (int k = 0; k < FM_PATH_COUNT; k++) {
        fm_path p = fm_path_default((fm_path_kind)k);
        p.sigma_min = 0.05;
        p.sigma = 0.3;
        p.exponent = 3;
        double worst_fd = 0, worst_cf = 0, worst_gauss = 0;
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
            double t = ts[i] * p.t_end;
            if (k == FM_PATH_SB && t == 0) continue; /* the bridge's noise speed is infinite at its ends */
            fm_path_coef c;
            fm_path_coef_at(&p, t, &c);
            double target = c.da * x1 + c.db * x0 + c.dc * e;
            /* finite difference of psi_t: central, second-order one-sided at t = 0 */
            double h = 1e-6;
            double fd = t > h ? (psi(&p, t + h, x1, x0, e) - psi(&p, t - h, x1, x0, e)) / (2 * h)
                              : (-3 * psi(&p, t, x1, x0, e) + 4 * psi(&p, t + h, x1, x0, e) - psi(&p, t + 2 * h, x1, x0, e)) / (2 * h);
            worst_fd = fmax(worst_fd, fabs(fd - target) / fmax(1.0, fabs(target)));
            /* closed forms from the reference */
            double cf = target, x = psi(&p, t, x1, x0, e);
            switch (k) {
            case FM_PATH_OT: cf = x1 - (1 - p.sigma_min) * x0; break;
            case FM_PATH_ICFM: cf = x1 - x0; break;
            case FM_PATH_VE: {
                double L = log(p.ve_sigma_max / p.ve_sigma_min), s = p.ve_sigma_min * exp(L * (1 - t));
                cf = -(L * s) / s * (x - x1); /* -s'(1-t)/s(1-t) (x - x1) */
                break;
            }
            case FM_PATH_VP: {
                double r = 1 - t, T = p.beta_min * r + 0.5 * (p.beta_max - p.beta_min) * r * r;
                double a = exp(-T / 2), beta = p.beta_min + (p.beta_max - p.beta_min) * r, da = -beta / 2 * a;
                cf = da / (1 - a * a) * (a * x - x1); /* a'(1-t)/(1 - a(1-t)^2) (a(1-t) x - x1) */
                break;
            }
            case FM_PATH_COSINE: cf = M_PI_2 * cos(M_PI_2 * t) * x1 - M_PI_2 * sin(M_PI_2 * t) * x0; break;
            case FM_PATH_POLY: cf = 3 * t * t * x1 - 3 * t * t * x0; break;
            case FM_PATH_LINEAR_VP: cf = x1 - t / sqrt(1 - t * t) * x0; break;
            case FM_PATH_SB: cf = x1 - x0 + p.sigma * (1 - 2 * t) / (2 * sqrt(t * (1 - t))) * e; break;
            }
            worst_cf = fmax(worst_cf, fabs(cf - target) / fmax(1.0, fabs(target)));
            /* the general Gaussian formula, for the paths with c = 0 */
            if (c.c == 0 && c.b > 0) {
                double mu = c.a * x1, dmu = c.da * x1;
                double g = c.db / c.b * (x - mu) + dmu;
                worst_gauss = fmax(worst_gauss, fabs(g - target) / fmax(1.0, fabs(target)));
            }
        }
        t_check(worst_fd < 1e-8, "%-9s target = d/dt psi_t (finite diff, max rel err %.1e)", fm_path_name(p.kind), worst_fd);
        if (k == FM_PATH_SB) t_check(p.sigma == 0.3, "sb path uses sigma (set to %g)", p.sigma);
        t_check(worst_cf < 1e-12, "%-9s target = the reference's closed form (max rel err %.1e)", fm_path_name(p.kind),
                worst_cf);
        t_check(worst_gauss < 1e-12, "%-9s target = sigma'/sigma (x - mu) + mu' at psi_t (max rel err %.1e)",
                fm_path_name(p.kind), worst_gauss);
    }
    /* ends of the paths: t = 0 is the source, t = 1 the data */
    fm_path_coef c;
    fm_path p = fm_path_default(FM_PATH_OT);
    fm_path_coef_at(&p, 0, &c);
    int ok = c.a == 0 && c.b == 1;
    fm_path_coef_at(&p, 1, &c);
    ok &= c.a == 1 && c.b == 0;
    p = fm_path_default(FM_PATH_VP);
    fm_path_coef_at(&p, 0, &c);
    ok &= c.a < 0.01 && fabs(c.b - 1) < 1e-4;
    p = fm_path_default(FM_PATH_VE);
    fm_path_coef_at(&p, 0, &c);
    ok &= c.a == 1 && fabs(c.b - p.ve_sigma_max) < 1e-12;
    t_check(ok, "paths start at the source and end at the data (VE starts at N(x1, smax^2))");
    p = fm_path_default(FM_PATH_OT);
    p.sigma_min = -0.5;
    int refused = fm_path_check(&p) == FM_ERR_ARG && strstr(fm_last_error(), "sigma_min");
    p.sigma_min = INFINITY;
    refused &= fm_path_check(&p) == FM_ERR_ARG;
    p.sigma_min = 1.5; /* finite everywhere: accepted (torchcfm's target CFM takes 1 and 1.5) */
    t_check(refused && fm_path_check(&p) == FM_OK, "sigma_min below 0 or infinite refused, 1.5 accepted: %s",
            fm_last_error());
    t_check(fm_path_from_name("linear-vp") == FM_PATH_LINEAR_VP && fm_path_from_name("ddpm") < 0, "path names");
    snr_and_schedules();
}
