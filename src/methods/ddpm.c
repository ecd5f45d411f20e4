/* ddpm.c - denoising diffusion (DDPM), the baseline flow matching grew out of.
 *
 * The network predicts the noise of x_t = sqrt(abar_t) x1 + sqrt(1 - abar_t)
 * eps from (t / T, x_t), with t uniform in 1..T, by the same mean squared
 * regression as flow matching. It samples with its own two samplers, the
 * ancestral chain and DDIM (the stateless solvers of src/sample/ddpm.c over
 * the network's noise prediction), never with the ODE solvers. The model
 * object is an fm_flow whose method is FM_METHOD_DDPM.
 */
#include "methods/flow_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    float *eps;    /* (batch dim) the noise, the regression's target */
    double *abar;  /* (T + 1) */
} ddpm_state;

static void defaults(fm_train_config *c, int image)
{
    if (!image) return;
    c->optim.lr = 1e-3; /* as flow matching on images: a wider MLP and a gentler step */
    c->flow.net.act = FM_ACT_SILU;
    for (int i = 0; i < c->flow.net.nhidden; i++) c->flow.net.width[i] = 512;
}

static fm_status check(const fm_train_config *c)
{
    fm_status s = fm__train_plain_noise(c, "ddpm");
    return s ? s : fm__flow_method_check(c, 0);
}

static fm_status state_new(fm_trainer *tr)
{
    ddpm_state *st = calloc(1, sizeof *st);
    if (!st) return fm__fail(FM_ERR_NOMEM, "out of memory");
    tr->ms = st;
    const fm_ddpm_schedule *ds = &tr->cfg.flow.ddpm;
    st->eps = malloc((size_t)tr->cfg.batch * tr->cfg.flow.dim * sizeof(float));
    double *beta = malloc((size_t)(ds->T + 1) * sizeof(double));
    st->abar = malloc((size_t)(ds->T + 1) * sizeof(double));
    if (!beta || !st->abar || !st->eps) {
        free(beta);
        return fm__fail(FM_ERR_NOMEM, "out of memory for the DDPM schedule");
    }
    fm_ddpm_tables(ds, beta, st->abar);
    free(beta);
    return FM_OK;
}

static void state_free(void *ms)
{
    ddpm_state *st = ms;
    free(st->eps);
    free(st->abar);
    free(st);
}

static fm_status step(fm_trainer *tr, double *loss)
{
    ddpm_state *st = tr->ms;
    int B = tr->cfg.batch, d = tr->cfg.flow.dim, T = tr->cfg.flow.ddpm.T;
    fm_status s = fm__train_draw(tr, B);
    if (!s) s = fm_flow_source(tr->obj, &tr->rnoise, st->eps, B);
    if (s) return s;
    fm_rng_uniform_fill(&tr->rtime, tr->t, (size_t)B, 0.0f, 1.0f);
    /* t uniform in 1..T; x_t = sqrt(abar) x1 + sqrt(1 - abar) eps, target eps */
    for (int i = 0; i < B; i++) {
        int ti = 1 + (int)(tr->t[i] * T);
        if (ti > T) ti = T;
        double a = sqrt(st->abar[ti]), c = sqrt(1.0 - st->abar[ti]);
        tr->t[i] = (float)((double)ti / T);
        for (int j = 0; j < d; j++) {
            size_t k = (size_t)i * d + j;
            tr->xt[k] = (float)(a * tr->x1[k] + c * st->eps[k]);
            tr->ut[k] = st->eps[k];
        }
    }
    return fm__train_regress(tr, loss);
}

/* Its own samplers: the ancestral chain (T steps by default) and DDIM (50, or T if fewer). */
static const char *const samplers[] = {"ancestral", "ddim", NULL};

static void sampler_steps(const void *obj, int i, int *steps, int *max_steps)
{
    int T = fm_flow_get_config(obj)->ddpm.T;
    *steps = i == 0 ? T : (T < 50 ? T : 50);
    *max_steps = T;
}

/* The noise prediction: the network at t / T. */
static fm_status eps_fn(void *ctx, int t, const float *x, float *eps, int n, int d)
{
    fm_flow *f = ctx;
    (void)d;
    return fm_flow_velocity(f, (double)t / fm_flow_get_config(f)->ddpm.T, x, eps, n);
}

/* The reverse chain from x_T (x_start, or N(0, I) draws) in ngrid - 1 steps of
 * the sampler sc->sampler names (NULL: ancestral); the grid's values are not used. */
static fm_status sample(void *obj, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                        const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx, fm_solve_stats *st)
{
    fm_flow *f = obj;
    const fm_flow_config *fc = fm_flow_get_config(f);
    (void)grid;
    if (!sc || n < 1 || (!x_start && !r))
        return fm__fail(FM_ERR_ARG, "sampling needs a solver, n >= 1 (got %d) and a random stream or starting points", n);
    int steps = ngrid - 1, kind = sc->sampler ? fm_ddpm_sampler_from_name(sc->sampler) : FM_DDPM_ANCESTRAL;
    if (kind < 0) return fm__fail(FM_ERR_ARG, "a DDPM model samples with ancestral or ddim, not '%s'", sc->sampler);
    size_t total = (size_t)n * fc->dim;
    if (x_start) memcpy(out, x_start, total * sizeof(float));
    else fm_rng_normal_fill(r, out, total, 0.0f, 1.0f);
    fm__obs_data w = {f, obs, octx, NULL};
    fm_status s = fm_ddpm_sample(&fc->ddpm, eps_fn, f, (fm_ddpm_sampler)kind, steps, r, out, n, fc->dim,
                                 obs ? fm__observe_data : NULL, &w);
    free(w.tmp);
    if (st) {
        memset(st, 0, sizeof *st);
        st->nfe = st->steps = s ? 0 : steps;
    }
    if (s == FM_OK) fm_flow_to_data(f, out, n);
    return s;
}

static void describe(const fm_trainer *tr, char *buf, size_t cap)
{
    const fm_flow_config *fc = &tr->cfg.flow;
    snprintf(buf, cap, "DDPM on %s, T %d, beta %g .. %g", fc->data, fc->ddpm.T, fc->ddpm.beta_start, fc->ddpm.beta_end);
}

static const char *const options[] = {"time-embed", "T", "beta-start", "beta-end", NULL};

const fm__method fm__method_ddpm = {
    .id = FM_METHOD_DDPM,
    .name = "ddpm",
    .summary = "denoising diffusion: a noise predictor, ancestral or DDIM sampling",
    FM__FLOW_OBJECT,
    .options = options,
    .defaults = defaults,
    .check = check,
    .build = fm__flow_method_build,
    .state_new = state_new,
    .state_free = state_free,
    .step = step,
    .describe = describe,
    .load_config = fm__flow_method_load_config,
    .save = fm__flow_method_save,
    .sampling = FM_SAMPLING_OWN,
    .samplers = samplers,
    .sampler_steps = sampler_steps,
    .sample = sample,
};
