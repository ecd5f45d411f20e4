/* batch.c - one flow-matching training batch drawn outside a trainer: the
 * pairing, times, noise, points on the path and regression targets the
 * trainer regresses on, from the same pieces (fm__couple, fm__path_times,
 * fm__path_targets), for custom training loops and for checking them.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

fm_status fm_batch_draw(const fm_path *p, fm_coupling c, fm_rng *r, int n, int d, int t_given, fm_batch *b)
{
    if (!p || !r || !b || n < 1 || d < 1 || !b->x0 || !b->x1 || !b->t || !b->xt || !b->ut)
        return fm__fail(FM_ERR_ARG, "a batch needs a path, a random stream, n >= 1 (got %d), d >= 1 (got %d) and the "
                                    "arrays x0, x1, t, xt and ut", n, d);
    fm_status s = fm_path_check(p);
    if (s) return s;
    if ((s = fm__coupling_check(p, c))) return s;
    int noisy = fm__path_extra_noise(p);
    if (noisy && !b->eps)
        return fm__fail(FM_ERR_ARG, "the %s path with sigma %g adds noise: the batch needs eps", fm_path_name(p->kind),
                        p->sigma);
    for (int i = 0; t_given && i < n; i++) {
        if (!(b->t[i] >= 0 && b->t[i] <= p->t_end))
            return fm__fail(FM_ERR_ARG, "given time %d (%g) lies outside [0, %g]", i, b->t[i], p->t_end);
        fm_path_coef k;
        fm_path_coef_at(p, b->t[i], &k);
        if (!(isfinite(k.a) && isfinite(k.b) && isfinite(k.c) && isfinite(k.da) && isfinite(k.db) && isfinite(k.dc)))
            return fm__fail(FM_ERR_ARG, "given time %d (%g): the %s path's target is infinite there", i, b->t[i],
                            fm_path_name(p->kind));
    }
    s = fm__couple(c, 2 * p->sigma * p->sigma, r, b->x0, b->x1, b->y0, b->y1, n, d, NULL);
    if (s) return s;
    if (!t_given) {
        fm_rng_uniform_fill(r, b->t, (size_t)n, 0.0f, 1.0f);
        fm__path_times(p, b->t, n);
    }
    size_t nd = (size_t)n * d;
    if (noisy) fm_rng_normal_fill(r, b->eps, nd, 0.0f, 1.0f);
    else if (b->eps) memset(b->eps, 0, nd * sizeof(float));
    fm__path_targets(p, FM_PREDICT_V, b->t, b->x1, b->x0, noisy ? b->eps : NULL, b->xt, b->ut, n, d);
    return FM_OK;
}
