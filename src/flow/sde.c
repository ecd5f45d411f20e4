/* sde.c - stochastic sampling of a flow on a Gaussian path.
 *
 * On a path x_t = a_t x1 + s_t e with e ~ N(0, I), the marginal p_t is the
 * data scaled by a_t and blurred by N(0, s_t^2 I), and its velocity
 * determines its score: with x1^ = E[x1 | x] and e^ = E[e | x],
 * v = a' x1^ + s' e^ and x = a x1^ + s e^, so
 *     grad log p_t(x) = -e^ / s = (a' x - a v) / (s (a s' - a' s)).
 * The SDE  dx = (v + g^2 / 2 grad log p_t) dt + g dW  has the same marginals
 * for any diffusion g (Song et al. 2021; Lipman et al.'s Gaussian paths).
 * Two choices of g: G s_t, bounded where s_t -> 0, with G = 0 the ODE; and
 * G times the path's own g of fm_path_sde, with G = 1 the reverse-time SDE of
 * a score-based model, whose drift simplifies to 2 v - (a'/a) x.
 * Euler-Maruyama over the grid (the predictor), then optionally Langevin
 * steps at the new time (the corrector; Song et al.'s predictor-corrector).
 * One normal draw per coordinate and step from the stream given, in order:
 * the same bits for any thread count.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* c at t, and k with score = k (a' x - a v): k = 1 / (s (a s' - a' s)), 0
 * where that vanishes. */
static double score_scale(const fm_path *p, double t, fm_path_coef *c)
{
    fm_path_coef_at(p, t, c);
    double s, ds;
    fm__path_noise_of(c, &s, &ds);
    double D = s * (c->a * ds - c->da * s);
    return D != 0 ? 1 / D : 0;
}

fm_status fm_sde_sample(const fm_path *p, const fm_sde_config *cf, fm_field_fn v, void *ctx, const double *grid,
                        int ngrid, float *x, int n, int d, fm_rng *r, fm_observe_fn obs, void *octx,
                        fm_solve_stats *st)
{
    if (!p || !cf || !v || !grid || ngrid < 2 || !x || !r || n < 0 || d < 1 || !(cf->noise >= 0) ||
        !isfinite(cf->noise) || cf->corrector_steps < 0 || (cf->corrector_steps && !(cf->snr > 0)))
        return fm__fail(FM_ERR_ARG, "sde: needs a path, a field, a grid of 2 or more times, a random stream, a noise "
                                    "scale G >= 0 (got %g) and, with a corrector, snr > 0", cf ? cf->noise : NAN);
    int pathg = cf->diffusion == FM_DIFFUSION_PATH;
    if (pathg)
        for (int k = 0; k < ngrid; k++) {
            fm_path_coef c;
            fm_path_coef_at(p, grid[k], &c);
            if (!(c.a > 0))
                return fm__fail(FM_ERR_ARG, "the reverse SDE needs a path whose signal a_t > 0 on the grid (path %s "
                                "has a = %g at t = %g): use the sde sampler, whose diffusion G s_t stays bounded",
                                fm_path_name(p->kind), c.a, grid[k]);
        }
    size_t N = (size_t)n * d;
    /* the state in double between steps, as fm_solve keeps it: G = 0 gives Euler's bits */
    float *vel = malloc((N ? N : 1) * sizeof(float));
    double *y = malloc((N ? N : 1) * sizeof(double)), *sc = NULL, *z = NULL;
    if (cf->corrector_steps) {
        sc = malloc((N ? N : 1) * sizeof(double));
        z = malloc((N ? N : 1) * sizeof(double));
    }
    if (!vel || !y || (cf->corrector_steps && (!sc || !z))) {
        free(vel), free(y), free(sc), free(z);
        return fm__fail(FM_ERR_NOMEM, "out of memory for %zu values", N);
    }
    for (size_t i = 0; i < N; i++) y[i] = x[i];
    fm_status s = obs ? obs(octx, 0, grid[0], x, N) : FM_OK;
    long nfe = 0;
    double G = cf->noise;
    for (int k = 0; !s && k + 1 < ngrid; k++) {
        double t = grid[k], h = grid[k + 1] - t;
        if ((s = v(ctx, t, x, vel, N))) break;
        nfe++;
        fm_path_coef c;
        double ks = score_scale(p, t, &c), g2 = 0;
        if (pathg) {
            fm_path_sde(p, t, NULL, &g2);
            g2 *= G * G;
        } else {
            double sg;
            fm__path_noise_of(&c, &sg, NULL);
            g2 = G * G * sg * sg;
        }
        /* drift = v + g^2/2 score */
        double kdrift = g2 > 0 ? 0.5 * g2 * ks : 0, sd = sqrt(g2 * fabs(h));
        for (size_t i = 0; i < N; i++) {
            double drift = vel[i];
            if (kdrift != 0) drift += kdrift * (c.da * y[i] - c.a * vel[i]);
            y[i] = y[i] + h * drift;
            if (sd > 0) y[i] += sd * fm_rng_normal(r);
            x[i] = (float)y[i];
        }
        /* Langevin corrector at the new time */
        double t1 = grid[k + 1], alpha = 1.0;
        fm_path_coef c1;
        double ks1 = cf->corrector_steps ? score_scale(p, t1, &c1) : 0;
        if (cf->corrector_steps && p->kind != FM_PATH_VE && c1.a > 0) alpha = fmin(1.0, (c.a / c1.a) * (c.a / c1.a));
        for (int j = 0; !s && j < cf->corrector_steps; j++) {
            if ((s = v(ctx, t1, x, vel, N))) break;
            nfe++;
            for (size_t i = 0; i < N; i++) sc[i] = ks1 * (c1.da * y[i] - c1.a * vel[i]);
            for (size_t i = 0; i < N; i++) z[i] = fm_rng_normal(r);
            /* the step from the batch's mean norms, as Song et al. take it: a
             * point's own |score| can vanish (near a mode), its step would not */
            double gm = 0, zm = 0;
            for (int q = 0; q < n; q++) {
                double gn = 0, zn = 0;
                const double *sq = sc + (size_t)q * d, *zq = z + (size_t)q * d;
                for (int e = 0; e < d; e++) gn += sq[e] * sq[e], zn += zq[e] * zq[e];
                gm += sqrt(gn) / n, zm += sqrt(zn) / n;
            }
            double eps = gm > 0 ? 2 * alpha * (cf->snr * zm / gm) * (cf->snr * zm / gm) : 0, w = sqrt(2 * eps);
            for (size_t i = 0; i < N; i++) {
                y[i] += eps * sc[i] + w * z[i];
                x[i] = (float)y[i];
            }
        }
        if (!s && obs) s = obs(octx, k + 1, grid[k + 1], x, N);
    }
    free(vel), free(y), free(sc), free(z);
    if (st) {
        memset(st, 0, sizeof *st);
        st->nfe = nfe;
        st->steps = ngrid - 1;
    }
    return s;
}
