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
}
