/* score.c - score-based generative models through SDEs (Song et al. 2021).
 *
 * A forward SDE carries the data to noise with a Gaussian perturbation
 * kernel x = a x1 + s e: VE (a = 1, s = sigma_min (sigma_max / sigma_min)^tau),
 * VP (a = exp(-B(tau) / 2), s^2 = 1 - a^2, beta from beta_min to beta_max)
 * and sub-VP (the same a, s = 1 - a^2), tau = 1 - t in flowmatch's time
 * (noise at t = 0); these are the ve, vp and subvp paths (src/flow/path.c),
 * whose noising SDE fm_path_sde gives. Denoising score matching with
 * Song et al.'s weighting lambda = s^2 regresses s * score on -e, i.e. the
 * network predicts the noise e: the loss is mean |e^(t, x) - e|^2 over t
 * uniform in (0, t_end) (or --t-dist's). The score is -e^ / s.
 *
 * The model is an fm_flow that predicts eps on the SDE's path, so every
 * sampler of a flow takes it: the probability-flow ODE through every ODE
 * solver (dopri5 by default, as Song et al.'s RK45), and `nll` its
 * likelihood; the reverse-time SDE by Euler-Maruyama ("em") and the
 * predictor-corrector sampler ("pc", a Langevin corrector with snr 0.16)
 * of src/flow/sde.c.
 */
#include "methods/flow_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    float *x0; /* (batch dim) the noise e */
} score_state;

static const char *const sde_names[] = {"ve", "vp", "subvp"};
static const fm_path_kind sde_kinds[] = {FM_PATH_VE, FM_PATH_VP, FM_PATH_SUBVP};

static void defaults(fm_train_config *c, int image)
{
    c->score.sde = FM_PATH_VP;
    c->flow.predict = FM_PREDICT_EPS;
    if (!image) return;
    c->optim.lr = 1e-3; /* as flow matching and DDPM on images */
    c->flow.net.act = FM_ACT_SILU;
    for (int i = 0; i < c->flow.net.nhidden; i++) c->flow.net.width[i] = 512;
}

static int is_sde(fm_path_kind k) { return k == FM_PATH_VE || k == FM_PATH_VP || k == FM_PATH_SUBVP; }

static fm_status check(const fm_train_config *c)
{
    if (!is_sde(c->score.sde)) return fm__fail(FM_ERR_ARG, "score: the SDE must be ve, vp or subvp");
    fm_status s = fm__train_plain_noise(c, "score matching");
    return s ? s : fm__flow_method_check(c, 0);
}

/* The flow on the SDE's path (the path's sigmas and betas as configured; its
 * end time below 1, where s = 0 and the score is singular), predicting eps. */
static fm_status build(fm_trainer *tr, const fm_train_config *c, int dim, const char *data, const char *source)
{
    fm_train_config sc = *c;
    sc.flow.path.kind = c->score.sde;
    sc.flow.path.t_end = fmin(c->flow.path.t_end, 1.0 - 1e-3);
    sc.flow.predict = FM_PREDICT_EPS;
    return fm__flow_method_build(tr, &sc, dim, data, source);
}

static fm_status state_new(fm_trainer *tr)
{
    score_state *st = calloc(1, sizeof *st);
    if (!st) return fm__fail(FM_ERR_NOMEM, "out of memory");
    tr->ms = st;
    st->x0 = malloc((size_t)tr->cfg.batch * tr->cfg.flow.dim * sizeof(float));
    return st->x0 ? FM_OK : fm__fail(FM_ERR_NOMEM, "out of memory for a batch of %d", tr->cfg.batch);
}

static void state_free(void *ms)
{
    score_state *st = ms;
    free(st->x0);
    free(st);
}

static fm_status step(fm_trainer *tr, double *loss)
{
    score_state *st = tr->ms;
    int B = tr->cfg.batch;
    fm_status s = fm__train_draw(tr, B);
    if (!s) s = fm_flow_source(tr->obj, &tr->rnoise, st->x0, B);
    if (s) return s;
    fm__flow_draw_times(tr, B);
    fm__flow_targets(tr, st->x0, NULL, B); /* the target is e */
    return fm__train_regress(tr, loss);
}

static fm_status save(void *obj, fm_st_writer *w) { return fm__flow_save_as(obj, w, "score"); }

static fm_status load_config(fm_train_config *c, const fm_st *st)
{
    fm_status s = fm__flow_method_load_config(c, st);
    if (!s && !is_sde(c->flow.path.kind))
        s = fm__fail(FM_ERR_FORMAT, "a score model's path must be ve, vp or subvp, not %s", fm_path_name(c->flow.path.kind));
    if (s) return s;
    c->score.sde = c->flow.path.kind;
    return fm__flow_load_tdist(c, st);
}

static void describe(const fm_trainer *tr, char *buf, size_t cap)
{
    const fm_flow_config *fc = &tr->cfg.flow;
    const fm_path *p = &fc->path;
    if (p->kind == FM_PATH_VE)
        snprintf(buf, cap, "score matching on %s, VE SDE (sigma %g .. %g)", fc->data, p->ve_sigma_min, p->ve_sigma_max);
    else
        snprintf(buf, cap, "score matching on %s, %s SDE (beta %g .. %g)", fc->data, p->kind == FM_PATH_VP ? "VP" : "sub-VP",
                 p->beta_min, p->beta_max);
}

/* The probability-flow ODE by dopri5 unless a solver is named. */
static fm_solver_kind default_solver(const void *obj, int *steps)
{
    (void)obj;
    if (steps) *steps = 1;
    return FM_SOLVER_DOPRI5;
}

static fm_status set_sde(fm_train_config *c, const char *v)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(v, sde_names[i])) {
            c->score.sde = sde_kinds[i];
            return FM_OK;
        }
    return fm__fail(FM_ERR_ARG, "score: sde = '%s' must be ve, vp or subvp", v);
}
static void get_sde(const fm_train_config *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", is_sde(c->score.sde) ? fm_path_name(c->score.sde) : "?");
}

static const fm__setting settings[] = {
    {"sde", "KIND", "score: the forward SDE: ve, vp or subvp", set_sde, get_sde},
    FM__TDIST_SETTING,
    {NULL, NULL, NULL, NULL, NULL},
};

static const char *const options[] = {"ve-sigma-min", "ve-sigma-max", "beta-min", "beta-max", "t-end", "time-embed", NULL};

const fm__method fm__method_score = {
    .id = 6,
    .name = "score",
    .summary = "score-based model: denoising score matching on a VE, VP or sub-VP SDE; reverse SDE, PC or ODE sampling",
    FM__FLOW_OBJECT,
    .options = options,
    .settings = settings,
    .defaults = defaults,
    .check = check,
    .build = build,
    .state_new = state_new,
    .state_free = state_free,
    .step = step,
    .save_train = fm__flow_save_tdist,
    .describe = describe,
    .load_config = load_config,
    .save = save,
    .sampling = FM_SAMPLING_ODE,
    .default_solver = default_solver,
    .sample = fm__flow_method_sample,
};
