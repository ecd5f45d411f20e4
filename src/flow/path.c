/* path.c - probability paths: the schedule behind every flow-matching loss.
 *
 * Every path is affine in its three random inputs,
 *     x_t = a(t) x1 + b(t) x0 + c(t) eps,   x1 ~ data, x0 ~ source, eps ~ N(0, I),
 * and the regression target is its time derivative,
 *     u_t = a'(t) x1 + b'(t) x0 + c'(t) eps.
 * For the Gaussian paths of Lipman et al. a = mu_t / x1, b = sigma_t, c = 0, so
 * the target is sigma'_t x0 + mu'_t, the general formula evaluated at
 * x = psi_t(x0). Time runs from noise (t = 0) to data (t = 1).
 */
#include "internal.h"

#include <math.h>
#include <string.h>

static const char *const path_names[FM_PATH_COUNT] = {"ot",     "icfm",      "ve", "vp",   "cosine",
                                                      "poly",   "linear-vp", "sb", "subvp"};

const char *fm_path_name(fm_path_kind k) { return fm__name_of(path_names, FM_PATH_COUNT, k); }

int fm_path_from_name(const char *name) { return fm__name_index(path_names, FM_PATH_COUNT, name); }

fm_path fm_path_default(fm_path_kind k)
{
    fm_path p;
    memset(&p, 0, sizeof p);
    p.kind = k;
    p.sigma_min = 0.0;     /* ot */
    p.sigma = k == FM_PATH_SB ? 0.5 : 0.0; /* icfm, sb */
    p.ve_sigma_min = 0.01; /* ve */
    p.ve_sigma_max = 5.0;
    p.beta_min = 0.1; /* vp */
    p.beta_max = 20.0;
    p.exponent = 2.0; /* poly */
    /* Paths whose field is singular or unbounded at t = 1 stop short of it. */
    p.t_end = (k == FM_PATH_VE || k == FM_PATH_VP || k == FM_PATH_SUBVP || k == FM_PATH_LINEAR_VP) ? 1.0 - 1e-3 : 1.0;
    return p;
}

fm_status fm_path_check(const fm_path *p)
{
    if (p->kind < 0 || p->kind >= FM_PATH_COUNT) return fm__fail(FM_ERR_ARG, "unknown path kind %d", (int)p->kind);
    /* b(t) = 1 - (1 - sigma_min) t stays >= min(1, sigma_min) >= 0 on [0, 1] for
     * every sigma_min >= 0: 1 keeps the source's noise to the end (x_1 = x1 + x0),
     * above 1 it grows */
    if (!(p->sigma_min >= 0 && isfinite(p->sigma_min)))
        return fm__fail(FM_ERR_ARG, "path ot: sigma_min %g must be finite and >= 0", p->sigma_min);
    if (!(p->sigma >= 0 && isfinite(p->sigma)))
        return fm__fail(FM_ERR_ARG, "path %s: sigma %g must be finite and >= 0", path_names[p->kind], p->sigma);
    if (!(p->ve_sigma_min > 0 && p->ve_sigma_max > p->ve_sigma_min))
        return fm__fail(FM_ERR_ARG, "path ve: need 0 < sigma_min (%g) < sigma_max (%g)", p->ve_sigma_min,
                        p->ve_sigma_max);
    if (!(p->beta_min > 0 && p->beta_max >= p->beta_min))
        return fm__fail(FM_ERR_ARG, "path vp: need 0 < beta_min (%g) <= beta_max (%g)", p->beta_min, p->beta_max);
    if (!(p->exponent >= 1))
        return fm__fail(FM_ERR_ARG, "path poly: exponent %g must be >= 1 (below 1 the target is infinite at t = 0)",
                        p->exponent);
    if (!(p->t_end > 0 && p->t_end <= 1)) return fm__fail(FM_ERR_ARG, "path end time %g must lie in (0, 1]", p->t_end);
    return FM_OK;
}

void fm_path_coef_at(const fm_path *p, double t, fm_path_coef *c)
{
    memset(c, 0, sizeof *c);
    switch (p->kind) {
    case FM_PATH_OT: /* mu = t x1, sigma = 1 - (1 - sigma_min) t */
        c->a = t;
        c->da = 1;
        c->b = 1 - (1 - p->sigma_min) * t;
        c->db = -(1 - p->sigma_min);
        break;
    case FM_PATH_ICFM: /* x_t = t x1 + (1 - t) x0 + sigma eps */
        c->a = t;
        c->da = 1;
        c->b = 1 - t;
        c->db = -1;
        c->c = p->sigma;
        break;
    case FM_PATH_VE: { /* mu = x1, sigma = s(1 - t), s(r) = smin (smax / smin)^r */
        double L = log(p->ve_sigma_max / p->ve_sigma_min), s = p->ve_sigma_min * exp(L * (1 - t));
        c->a = 1;
        c->b = s;
        c->db = -L * s; /* d/dt s(1 - t) = -s'(1 - t) */
        break;
    }
    case FM_PATH_VP: { /* mu = alpha(1 - t) x1, sigma = sqrt(1 - alpha^2), alpha = exp(-T/2) */
        double r = 1 - t, bd = p->beta_max - p->beta_min;
        double T = p->beta_min * r + 0.5 * bd * r * r, beta = p->beta_min + bd * r;
        double al = exp(-0.5 * T), dal = 0.5 * beta * al; /* d/dt alpha(1 - t) = beta(r) alpha / 2 */
        double sg = sqrt(-expm1(-T));                     /* sqrt(1 - alpha^2), exact near r = 0 */
        c->a = al;
        c->da = dal;
        c->b = sg;
        c->db = sg > 0 ? -al * dal / sg : -INFINITY;
        break;
    }
    case FM_PATH_SUBVP: { /* mu = alpha(1 - t) x1 as vp, sigma = 1 - alpha^2 (Song et al.'s sub-VP) */
        double r = 1 - t, bd = p->beta_max - p->beta_min;
        double T = p->beta_min * r + 0.5 * bd * r * r, beta = p->beta_min + bd * r;
        double al = exp(-0.5 * T), dal = 0.5 * beta * al;
        c->a = al;
        c->da = dal;
        c->b = -expm1(-T);
        c->db = -2 * al * dal;
        break;
    }
    case FM_PATH_COSINE: /* x_t = sin(pi t / 2) x1 + cos(pi t / 2) x0 + sigma eps */
        c->a = sin(M_PI_2 * t);
        c->da = M_PI_2 * cos(M_PI_2 * t);
        c->b = cos(M_PI_2 * t);
        c->db = -M_PI_2 * sin(M_PI_2 * t);
        c->c = p->sigma;
        break;
    case FM_PATH_POLY: { /* alpha = t^n, sigma = 1 - t^n (n >= 1) */
        double n = p->exponent, tn = pow(t, n), dtn = t > 0 ? n * pow(t, n - 1) : (n == 1 ? 1.0 : 0.0);
        c->a = tn;
        c->da = dtn;
        c->b = 1 - tn;
        c->db = -dtn;
        break;
    }
    case FM_PATH_LINEAR_VP: /* alpha = t, sigma = sqrt(1 - t^2) */
        c->a = t;
        c->da = 1;
        c->b = sqrt(1 - t * t);
        c->db = c->b > 0 ? -t / c->b : -INFINITY;
        break;
    case FM_PATH_SB: { /* x_t = t x1 + (1 - t) x0 + sigma sqrt(t (1 - t)) eps */
        double q = t * (1 - t), r = q > 0 ? sqrt(q) : 0.0;
        c->a = t;
        c->da = 1;
        c->b = 1 - t;
        c->db = -1;
        c->c = p->sigma * r;
        c->dc = r > 0 ? p->sigma * (1 - 2 * t) / (2 * r) : (p->sigma > 0 ? INFINITY : 0.0);
        break;
    }
    default: FM_ASSERT(0 && "unknown path");
    }
}

int fm__path_extra_noise(const fm_path *p)
{
    return (p->kind == FM_PATH_ICFM || p->kind == FM_PATH_SB || p->kind == FM_PATH_COSINE) && p->sigma > 0;
}

void fm__path_noise_of(const fm_path_coef *c, double *s, double *ds)
{
    double sg = sqrt(c->b * c->b + c->c * c->c);
    if (s) *s = sg;
    if (ds) *ds = sg > 0 ? (c->b * c->db + c->c * c->dc) / sg : 0.0;
}

void fm_path_noise(const fm_path *p, double t, double *s, double *ds)
{
    fm_path_coef c;
    fm_path_coef_at(p, t, &c);
    fm__path_noise_of(&c, s, ds);
}

void fm_path_sde(const fm_path *p, double t, double *f, double *g2)
{
    fm_path_coef c;
    fm_path_coef_at(p, t, &c);
    double s, ds;
    fm__path_noise_of(&c, &s, &ds);
    /* d/dtau = -d/dt: f = d log a / dtau; g^2 = d s^2 / dtau - 2 f s^2 */
    double fa = c.a != 0 ? -c.da / c.a : -INFINITY;
    if (f) *f = fa;
    if (g2) *g2 = c.a != 0 ? 2 * s * (c.da * s / c.a - ds) : INFINITY;
}

/* ------------------------------------------------------------------ a batch's targets */

void fm__path_times(const fm_path *p, float *t, int n)
{
    for (int i = 0; i < n; i++) { /* u + 2^-25 can round to 1 in float, so step back */
        float v = (float)(p->t_end * (t[i] + 0x1.0p-25));
        while ((double)v >= p->t_end) v = nextafterf(v, 0.0f);
        t[i] = v;
    }
}

void fm__path_targets(const fm_path *p, fm_predict pr, const float *t, const float *x1, const float *x0,
                      const float *eps, float *xt, float *ut, int n, int d)
{
    for (int i = 0; i < n; i++) {
        fm_path_coef c;
        fm_path_coef_at(p, t[i], &c);
        double s;
        fm__path_noise_of(&c, &s, NULL);
        for (int j = 0; j < d; j++) {
            size_t k = (size_t)i * d + j;
            double e = eps ? eps[k] : 0.0;
            xt[k] = (float)(c.a * x1[k] + c.b * x0[k] + c.c * e);
            ut[k] = pr == FM_PREDICT_X1    ? x1[k]
                    : pr == FM_PREDICT_EPS ? (float)((c.b * x0[k] + c.c * e) / s)
                                           : (float)(c.da * x1[k] + c.db * x0[k] + c.dc * e);
        }
    }
}

/* ------------------------------------------------------------------ predictions */

static const char *const predict_names[FM_PREDICT_COUNT] = {"v", "eps", "x1"};
const char *fm_predict_name(fm_predict k) { return fm__name_of(predict_names, FM_PREDICT_COUNT, k); }
int fm_predict_from_name(const char *name) { return fm__name_index(predict_names, FM_PREDICT_COUNT, name); }

/* A denominator kept at least 1e-4 in size, with its sign. */
static double floored(double q) { return fabs(q) >= 1e-4 ? q : (q < 0 ? -1e-4 : 1e-4); }

/* Each prediction is affine in (x, y): q = A x + B y. The coefficients of
 * `to` from `from` at t. */
static void convert_coef(const fm_path *p, double t, fm_predict from, fm_predict to, double *A, double *B)
{
    fm_path_coef c;
    fm_path_coef_at(p, t, &c);
    double s, ds, a = c.a, da = c.da;
    fm__path_noise_of(&c, &s, &ds);
    /* everything through (x1, e): x = a x1 + s e, v = a' x1 + s' e */
    double fa, fb; /* y = fa x1 + fb e for the `from` quantity, as a line in (x1, e) */
    double ta, tb; /* likewise for `to` */
    const double co[FM_PREDICT_COUNT][2] = {{da, ds}, {0, 1}, {1, 0}};
    fa = co[from][0], fb = co[from][1];
    ta = co[to][0], tb = co[to][1];
    /* solve [a s; fa fb] [x1; e] = [x; y]: det = a fb - s fa */
    double det = floored(a * fb - s * fa);
    /* x1 = (fb x - s y) / det, e = (a y - fa x) / det */
    *A = (ta * fb - tb * fa) / det;
    *B = (-ta * s + tb * a) / det;
}

fm_status fm_predict_convert(const fm_path *p, double t, fm_predict from, fm_predict to, const float *x,
                             const float *y, float *out, size_t n)
{
    if (!p || from < 0 || from >= FM_PREDICT_COUNT || to < 0 || to >= FM_PREDICT_COUNT || (n && (!x || !y || !out)))
        return fm__fail(FM_ERR_ARG, "predict_convert: needs a path, known predictions and the arrays");
    if (from == to) {
        if (out != y) memmove(out, y, n * sizeof(float));
        return FM_OK;
    }
    double A, B;
    convert_coef(p, t, from, to, &A, &B);
    for (size_t i = 0; i < n; i++) out[i] = (float)(A * x[i] + B * y[i]);
    return FM_OK;
}

void fm__predict_coef(const fm_path *p, double t, fm_predict from, fm_predict to, double *A, double *B)
{
    if (from == to) {
        *A = 0, *B = 1;
        return;
    }
    convert_coef(p, t, from, to, A, B);
}

/* ------------------------------------------------------------------ grids */

/* A path's signal a_t and noise scale s_t, the two sides of its ratios. */
static void signal_noise(const fm_path *p, double t, double *a, double *s)
{
    fm_path_coef c;
    fm_path_coef_at(p, t, &c);
    fm__path_noise_of(&c, s, NULL);
    *a = c.a;
}

/* The noise-to-signal ratio s_t / a_t (infinite where a_t = 0). */
static double nsr(const fm_path *p, double t)
{
    double a, s;
    signal_noise(p, t, &a, &s);
    return a > 0 ? s / a : INFINITY;
}

fm_status fm_time_grid_edm(const fm_path *p, double *grid, int steps, double t0, double t1, double rho)
{
    if (!p || !grid || steps < 1 || !(t1 > t0) || !(rho > 0) || !isfinite(rho))
        return fm__fail(FM_ERR_ARG, "edm grid: needs steps >= 1, t0 < t1 and rho > 0 (got %d, %g, %g, %g)", steps, t0, t1,
                        rho);
    double r0 = nsr(p, t0), r1 = nsr(p, t1);
    if (!(r0 > r1)) /* not a noising path from t0 to t1: nothing to warp */
        return fm__fail(FM_ERR_ARG, "edm grid: the path's noise-to-signal ratio does not fall from t0 to t1");
    /* EDM's ratios run from 80 down to 0.002 and then to 0; a path whose ratio
     * stops above 0.002 (vp at t_end < 1) runs its rho schedule to that ratio */
    double smax = fmin(80.0, r0), smin = fmax(0.002, r1);
    int last = r1 < 0.002 ? steps - 1 : steps; /* the schedule's final index */
    if (smin >= smax) smin = r1, smax = r0, last = steps;
    double lo = pow(smax, 1 / rho), hi = pow(smin, 1 / rho);
    grid[0] = t0;
    grid[steps] = t1;
    for (int i = 1; i < steps; i++) {
        double target = pow(lo + (double)i / last * (hi - lo), rho);
        double a = t0, b = t1; /* the ratio falls in t: bisect for ratio(t) = target */
        for (int it = 0; it < 200 && b - a > 1e-15; it++) {
            double m = 0.5 * (a + b);
            if (nsr(p, m) > target) a = m;
            else b = m;
        }
        grid[i] = 0.5 * (a + b);
    }
    for (int i = 1; i <= steps; i++)
        if (!(grid[i] > grid[i - 1]))
            return fm__fail(FM_ERR_ARG, "edm grid: %d steps are too many for the ratio's range on [%g, %g]", steps, t0, t1);
    return FM_OK;
}

/* ------------------------------------------------------------------ signal-to-noise ratio */

double fm_path_snr(const fm_path *p, double t)
{
    double a, s;
    signal_noise(p, t, &a, &s);
    return s > 0 ? a / s : INFINITY;
}

/* t in [0, t_end] with snr(t) = q by bisection: the ratio rises with t on
 * every path (tests/test_path.c checks it on a fine grid). */
static double snr_bisect(const fm_path *p, double q)
{
    double lo = 0, hi = p->t_end;
    for (int it = 0; it < 200 && hi - lo > 1e-16; it++) {
        double m = 0.5 * (lo + hi);
        if (fm_path_snr(p, m) < q) lo = m;
        else hi = m;
    }
    return 0.5 * (lo + hi);
}

double fm_path_snr_inverse(const fm_path *p, double q)
{
    if (isnan(q)) return NAN;
    if (!(q > fm_path_snr(p, 0))) return 0;
    if (!(q < fm_path_snr(p, p->t_end))) return p->t_end;
    double t;
    switch (p->kind) {
    case FM_PATH_OT: t = q / (1 + (1 - p->sigma_min) * q); break; /* q = t / (1 - (1 - sigma_min) t) */
    case FM_PATH_COSINE: /* q = tan(pi t / 2) */
        if (p->sigma > 0) return snr_bisect(p, q);
        t = atan(q) / M_PI_2;
        break;
    case FM_PATH_POLY: t = pow(q / (1 + q), 1 / p->exponent); break; /* t^n = q / (1 + q) */
    case FM_PATH_LINEAR_VP: t = q / sqrt(1 + q * q); break;          /* q = t / sqrt(1 - t^2) */
    case FM_PATH_VE: /* q = 1 / s(1 - t) */
        t = 1 - log(1 / (q * p->ve_sigma_min)) / log(p->ve_sigma_max / p->ve_sigma_min);
        break;
    case FM_PATH_VP: { /* q^2 = e^-T / (1 - e^-T): T = log(1 + 1 / q^2), a quadratic in r = 1 - t */
        double T = log1p(1 / (q * q)), b = p->beta_min, d = p->beta_max - p->beta_min;
        double r = d > 0 ? (sqrt(b * b + 2 * d * T) - b) / d : T / b;
        t = 1 - r;
        break;
    }
    default: return snr_bisect(p, q); /* icfm and sb with sigma > 0, subvp */
    }
    return fmin(fmax(t, 0.0), p->t_end);
}
