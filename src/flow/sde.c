/* sde.c - stochastic sampling of a flow on a Gaussian path.
 *
 * On a path x_t = a_t x1 + b_t x0 + c_t eps with x0, eps ~ N(0, I), the
 * marginal p_t is the data blurred by N(0, s_t^2 I), s_t^2 = b_t^2 + c_t^2,
 * and its velocity determines its score: with x1^ = E[x1 | x] and
 * e^ = E[(x - a x1) / s | x], v = a' x1^ + s' e^ and x = a x1^ + s e^, so
 *     grad log p_t(x) = -e^ / s = (a' x - a v) / (s (a s' - a' s)).
 * The SDE  dx = (v + g^2 / 2 grad log p_t) dt + g dW  has the same marginals
 * for any diffusion g (Song et al. 2021, Lipman et al.'s Gaussian paths); here
 * g_t = G s_t, so the drift stays bounded where s_t -> 0 and G = 0 is the ODE.
 * Euler-Maruyama over the grid, one normal draw per coordinate and step from
 * the stream given, in order: the same bits for any thread count.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

fm_status fm_sde_sample(const fm_path *p, fm_field_fn v, void *ctx, double G, const double *grid, int ngrid, float *x,
                        size_t n, fm_rng *r, fm_observe_fn obs, void *octx, fm_solve_stats *st)
{
    if (!p || !v || !grid || ngrid < 2 || !x || !r || !(G >= 0) || !isfinite(G))
        return fm__fail(FM_ERR_ARG, "sde: needs a path, a field, a grid of 2 or more times, a random stream and a noise "
                                    "scale G >= 0 (got %g)", G);
    /* the state in double between steps, as fm_solve keeps it: G = 0 gives Euler's bits */
    float *vel = malloc((n ? n : 1) * sizeof(float));
    double *y = malloc((n ? n : 1) * sizeof(double));
    if (!vel || !y) {
        free(vel), free(y);
        return fm__fail(FM_ERR_NOMEM, "out of memory for %zu values", n);
    }
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    fm_status s = obs ? obs(octx, 0, grid[0], x, n) : FM_OK;
    long nfe = 0;
    for (int k = 0; !s && k + 1 < ngrid; k++) {
        double t = grid[k], h = grid[k + 1] - t;
        if ((s = v(ctx, t, x, vel, n))) break;
        nfe++;
        fm_path_coef c;
        fm_path_coef_at(p, t, &c);
        double sg = sqrt(c.b * c.b + c.c * c.c), dsg = sg > 0 ? (c.b * c.db + c.c * c.dc) / sg : 0;
        double D = c.a * dsg - c.da * sg, kdrift = (G > 0 && sg > 0 && D != 0) ? G * G * sg / (2 * D) : 0;
        double sd = G * sg * sqrt(fabs(h));
        for (size_t i = 0; i < n; i++) {
            double drift = vel[i];
            if (kdrift != 0) drift += kdrift * (c.da * y[i] - c.a * vel[i]);
            y[i] = y[i] + h * drift;
            if (sd > 0) y[i] += sd * fm_rng_normal(r);
            x[i] = (float)y[i];
        }
        if (obs) s = obs(octx, k + 1, grid[k + 1], x, n);
    }
    free(vel);
    free(y);
    if (st) {
        memset(st, 0, sizeof *st);
        st->nfe = nfe;
        st->steps = nfe;
    }
    return s;
}
