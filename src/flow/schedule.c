/* schedule.c - sampling a velocity field along another Gaussian path than
 * the one it was trained on (a schedule transformation).
 *
 * A field u trained on path P (x_t = a_t x1 + s_t e) carries the marginals of
 * P. Path Q (abar_r, sbar_r) has the same marginals up to a time change and a
 * scale: at the t where P's signal-to-noise ratio equals Q's at r,
 *     xbar_r = k_r x_t,   k_r = sbar_r / s_t = abar_r / a_t,
 * so xbar follows the field
 *     ubar_r(x) = (k'_r / k_r) x + k_r t'_r u_t(x / k_r),
 * with t'_r from differentiating snr_P(t_r) = snr_Q(r):
 *     t'_r = (abar' sbar - abar sbar') / (k^2 (a' s - a s')).
 * k is read as abar / a where the signal dominates (a >= s) and as sbar / s
 * elsewhere, so neither ratio is 0 / 0 at a path's ends (the ot path's s = 0
 * at t = 1, a = 0 at t = 0). Where Q's ratio leaves P's range (a vp model
 * sampled from the ot path's exact 0 at r = 0) t stops at P's end and the
 * field there is an extrapolation.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

/* s = sqrt(b^2 + c^2) and its derivative, which at s = 0 (a path's data end)
 * is the one-sided -sqrt(b'^2 + c'^2) of the noise falling to 0. */
static void noise(const fm_path_coef *c, double *s, double *ds)
{
    fm__path_noise_of(c, s, ds);
    if (!(*s > 0)) *ds = -sqrt(c->db * c->db + c->dc * c->dc);
}

static void transform_at(const fm_path *from, const fm_path *to, double r, double *t_out, double *k_out, double *A,
                         double *B)
{
    fm_path_coef q, p;
    fm_path_coef_at(to, r, &q);
    double sq, dsq, s, ds;
    noise(&q, &sq, &dsq);
    double t = fm_path_snr_inverse(from, sq > 0 ? q.a / sq : INFINITY);
    fm_path_coef_at(from, t, &p);
    noise(&p, &s, &ds);
    int signal = p.a >= s;
    double k = signal ? q.a / p.a : sq / s;
    double dt = (q.da * sq - q.a * dsq) / (k * k * (p.da * s - p.a * ds));
    double dk = signal ? (q.da * p.a - q.a * p.da * dt) / (p.a * p.a) : (dsq * s - sq * ds * dt) / (s * s);
    *t_out = t;
    *k_out = k;
    *A = dk / k;
    *B = k * dt;
}

/* The transformation at r; at an end where the time change is 0 / 0 (a path
 * whose ratio starts with zero slope, poly at t = 0: the field there is
 * finite, its factors are not) it is read 1e-7 inside. */
void fm_schedule_transform_at(const fm_path *from, const fm_path *to, double r, double *t, double *k, double *A,
                              double *B)
{
    transform_at(from, to, r, t, k, A, B);
    if (!(isfinite(*k) && isfinite(*A) && isfinite(*B)))
        transform_at(from, to, r < 0.5 * to->t_end ? r + 1e-7 : r - 1e-7, t, k, A, B);
}

fm_status fm_schedule_transform_field(void *ctx, double r, const float *x, float *v, size_t n)
{
    const fm_schedule_transform *st = ctx;
    double t, k, A, B;
    fm_schedule_transform_at(st->from, st->to, r, &t, &k, &A, &B);
    if (!(isfinite(k) && k > 0 && isfinite(A) && isfinite(B)))
        return fm__fail(FM_ERR_NUMERIC, "schedule transformation from the %s path to the %s path is undefined at t = %g (a coefficient "
                        "or its slope is not finite there)",
                        fm_path_name(st->from->kind), fm_path_name(st->to->kind), r);
    float *y = malloc((n ? n : 1) * sizeof(float));
    if (!y) return fm__fail(FM_ERR_NOMEM, "out of memory for a state of %zu values", n);
    for (size_t i = 0; i < n; i++) y[i] = (float)(x[i] / k);
    fm_status s = st->v(st->ctx, t, y, v, n);
    for (size_t i = 0; s == FM_OK && i < n; i++) v[i] = (float)(A * x[i] + B * v[i]);
    free(y);
    return s;
}

/* |B| near an end of `to`'s times, 1e-6 and 1e-4 of the span inside. */
static void near_end(const fm_path *from, const fm_path *to, int last, double *b6, double *b4)
{
    double t, k, A, B, span = to->t_end;
    fm_schedule_transform_at(from, to, last ? span * (1 - 1e-6) : span * 1e-6, &t, &k, &A, &B);
    *b6 = fabs(B);
    fm_schedule_transform_at(from, to, last ? span * (1 - 1e-4) : span * 1e-4, &t, &k, &A, &B);
    *b4 = fabs(B);
}

int fm__schedule_singular(const fm_path *from, const fm_path *to)
{
    for (int last = 0; last < 2; last++) {
        double b6, b4;
        near_end(from, to, last, &b6, &b4);
        if (!isfinite(b6) || b6 > 4 * b4 + 1) return 1; /* grows without bound towards the end */
    }
    return 0;
}
