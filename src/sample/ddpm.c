/* ddpm.c - the diffusion schedule and its two stateless samplers (ancestral,
 * DDIM) over a noise-prediction callback; the DDPM method that trains and
 * samples with them is src/methods/ddpm.c.
 *
 * The schedule is tabulated in double; a sampler step combines the network's
 * noise prediction with the current state in double and stores float. The
 * ancestral sampler with T steps is the reference's reverse step verbatim,
 * noise on every step (the last adds sqrt(beta_1) z); fewer steps use the
 * respaced chain whose one-step variance is 1 - abar_t / abar_prev, and
 * there the last step, whose variance is no longer small, adds no noise (the
 * DDPM paper's z = 0 at t = 1). DDIM (eta = 0) is deterministic.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

static const char *const sampler_names[FM_DDPM_SAMPLER_COUNT] = {"ancestral", "ddim"};
const char *fm_ddpm_sampler_name(fm_ddpm_sampler k) { return fm__name_of(sampler_names, FM_DDPM_SAMPLER_COUNT, k); }
int fm_ddpm_sampler_from_name(const char *name) { return fm__name_index(sampler_names, FM_DDPM_SAMPLER_COUNT, name); }

fm_ddpm_schedule fm_ddpm_schedule_default(void)
{
    fm_ddpm_schedule s = {1000, 1e-4, 0.02};
    return s;
}

fm_status fm_ddpm_check(const fm_ddpm_schedule *s)
{
    if (s->T < 1 || s->T > 100000) return fm__fail(FM_ERR_ARG, "ddpm: T = %d must lie in 1..100000", s->T);
    if (!(s->beta_start > 0 && s->beta_start <= s->beta_end && s->beta_end < 1))
        return fm__fail(FM_ERR_ARG, "ddpm: betas must satisfy 0 < beta_start (%g) <= beta_end (%g) < 1", s->beta_start,
                        s->beta_end);
    return FM_OK;
}

void fm_ddpm_tables(const fm_ddpm_schedule *s, double *beta, double *abar)
{
    beta[0] = 0.0;
    abar[0] = 1.0;
    for (int t = 1; t <= s->T; t++) {
        beta[t] = s->T > 1 ? s->beta_start + (s->beta_end - s->beta_start) * (t - 1) / (s->T - 1) : s->beta_start;
        abar[t] = abar[t - 1] * (1.0 - beta[t]);
    }
}

/* The step of sampler stage i of `steps` (i = 0 is data). */
static int stage_t(int i, int steps, int T) { return (int)lround((double)i * T / steps); }

fm_status fm_ddpm_sample(const fm_ddpm_schedule *s, fm_eps_fn f, void *fctx, fm_ddpm_sampler kind, int steps,
                         fm_rng *r, float *x, int n, int d, fm_observe_fn obs, void *octx)
{
    fm_status st = fm_ddpm_check(s);
    if (st) return st;
    if (kind != FM_DDPM_ANCESTRAL && kind != FM_DDPM_DDIM)
        return fm__fail(FM_ERR_ARG, "ddpm: unknown sampler %d (ancestral, ddim)", (int)kind);
    if (steps < 1 || steps > s->T) return fm__fail(FM_ERR_ARG, "ddpm: %d steps must lie in 1..T = %d", steps, s->T);
    if (n < 1 || d < 1) return fm__fail(FM_ERR_ARG, "ddpm: %d points of dimension %d", n, d);
    if (kind == FM_DDPM_ANCESTRAL && !r) return fm__fail(FM_ERR_ARG, "ddpm: the ancestral sampler needs a random stream");
    size_t nd = (size_t)n * d;
    double *beta = malloc((size_t)(s->T + 1) * sizeof(double)), *abar = malloc((size_t)(s->T + 1) * sizeof(double));
    float *eps = malloc(nd * sizeof(float)), *z = kind == FM_DDPM_ANCESTRAL ? malloc(nd * sizeof(float)) : NULL;
    if (!beta || !abar || !eps || (kind == FM_DDPM_ANCESTRAL && !z)) {
        st = fm__fail(FM_ERR_NOMEM, "out of memory for DDPM sampling of %d points", n);
        goto out;
    }
    fm_ddpm_tables(s, beta, abar);
    if (obs && (st = obs(octx, 0, 0.0, x, nd))) goto out;
    for (int i = steps, k = 1; i >= 1; i--, k++) {
        int t = stage_t(i, steps, s->T), tp = stage_t(i - 1, steps, s->T);
        if ((st = f(fctx, t, x, eps, n, d))) goto out;
        double ab = abar[t], abp = abar[tp];
        if (kind == FM_DDPM_ANCESTRAL) {
            double b = 1.0 - ab / abp, c1 = 1.0 / sqrt(1.0 - b), c2 = b / sqrt(1.0 - ab), sb = sqrt(b);
            if (tp > 0 || steps == s->T) fm_rng_normal_fill(r, z, nd, 0.0f, 1.0f);
            else memset(z, 0, nd * sizeof(float)); /* a respaced chain's last step adds no noise */
            for (size_t j = 0; j < nd; j++) x[j] = (float)(c1 * ((double)x[j] - c2 * eps[j]) + sb * z[j]);
        } else {
            double sa = sqrt(ab), s1 = sqrt(1.0 - ab), sap = sqrt(abp), s1p = sqrt(1.0 - abp);
            for (size_t j = 0; j < nd; j++) {
                double x0 = ((double)x[j] - s1 * eps[j]) / sa;
                x[j] = (float)(sap * x0 + s1p * eps[j]);
            }
        }
        if (obs && (st = obs(octx, k, 1.0 - (double)tp / s->T, x, nd))) goto out;
    }
out:
    free(beta);
    free(abar);
    free(eps);
    free(z);
    return st;
}
