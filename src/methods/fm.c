/* fm.c - flow matching: the velocity network regressed on a probability path.
 *
 * Each step draws a batch of data x1, source points x0 (or fixed pairs, for
 * rectified flow), pairs them by the configured coupling (independent,
 * minibatch OT, Schrodinger bridge), draws t ~ U[0, t_end] and, where the path
 * has c != 0, extra noise eps; then x_t = a x1 + b x0 + c eps and the target
 * u_t = a' x1 + b' x0 + c' eps from the path's coefficients, and one optimizer
 * step on mean |v(t, x_t) - u_t|^2. Sampling integrates the learned ODE
 * (fm_flow_sample). The model object is an fm_flow (src/flow/).
 */
#include "methods/flow_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    fm__flow_batch b;           /* x0, eps and the coupling's buffers */
    float *pair0, *pair1;       /* (npairs, dim) fixed pairs (reflow), network units */
    int *plabels;               /* (npairs) their classes (a class-conditional model), else NULL */
    int npairs;
} fm_state;

static void defaults(fm_train_config *c, int image)
{
    if (image) fm__flow_image_defaults(c);
}

static fm_status check(const fm_train_config *c)
{
    fm_status s = fm__coupling_check(&c->flow.path, c->coupling);
    return s ? s : fm__flow_method_check(c, 0);
}

static fm_status state_new(fm_trainer *tr)
{
    fm_state *st = calloc(1, sizeof *st);
    if (!st) return fm__fail(FM_ERR_NOMEM, "out of memory");
    tr->ms = st;
    return fm__flow_batch_new(&st->b, tr->cfg.batch, tr->cfg.flow.dim);
}

static void state_free(void *ms)
{
    fm_state *st = ms;
    fm__flow_batch_free(&st->b);
    free(st->pair0);
    free(st->pair1);
    free(st->plabels);
    free(st);
}

static fm_status step(fm_trainer *tr, double *loss)
{
    fm_state *st = tr->ms;
    const fm_path *path = &fm_flow_get_config(tr->obj)->path;
    int B = tr->cfg.batch, d = tr->cfg.flow.dim;
    size_t n = (size_t)B * d;
    fm_status s = FM_OK;
    if (st->npairs) { /* fixed pairs (reflow), already in network units */
        for (int i = 0; i < B; i++) {
            uint32_t k = fm__rng_below(&tr->rdata, (uint32_t)st->npairs);
            memcpy(st->b.x0 + (size_t)i * d, st->pair0 + (size_t)k * d, (size_t)d * sizeof(float));
            memcpy(tr->x1 + (size_t)i * d, st->pair1 + (size_t)k * d, (size_t)d * sizeof(float));
            if (tr->labels) tr->labels[i] = st->plabels[k];
        }
        for (int i = 0; tr->labels && i < B; i++) /* dropped to "none" as fm__train_draw drops them */
            if (fm_rng_uniform(&tr->rdata) < tr->cfg.label_dropout) tr->labels[i] = tr->nclasses;
    } else {
        s = fm__flow_draw_pairs(tr, &st->b, B);
        if (s) return s;
    }
    fm__flow_draw_times(tr, B);
    int noisy = fm__path_extra_noise(path);
    if (noisy) fm_rng_normal_fill(&tr->rnoise, st->b.eps, n, 0.0f, 1.0f);
    fm__flow_targets(tr, st->b.x0, noisy ? st->b.eps : NULL, B);
    return fm__train_regress(tr, loss);
}

fm_status fm_trainer_set_pairs(fm_trainer *tr, const float *x0, const float *x1, int n)
{
    return fm_trainer_set_labeled_pairs(tr, x0, x1, NULL, n);
}

fm_status fm_trainer_set_labeled_pairs(fm_trainer *tr, const float *x0, const float *x1, const int *labels, int n)
{
    if (tr->m->id != FM_METHOD_FM) return fm__fail(FM_ERR_ARG, "fixed pairs train flow-matching models only");
    if (tr->nclasses && !labels)
        return fm__fail(FM_ERR_ARG, "a class-conditional model trains on labelled pairs (fm_trainer_set_labeled_pairs)");
    if (!tr->nclasses && labels) return fm__fail(FM_ERR_ARG, "the model is not class-conditional: its pairs take no labels");
    fm_state *st = tr->ms;
    int d = tr->cfg.flow.dim;
    if (n < 1) return fm__fail(FM_ERR_ARG, "no pairs given");
    for (int i = 0; labels && i < n; i++)
        if (labels[i] < 0 || labels[i] >= tr->nclasses)
            return fm__fail(FM_ERR_ARG, "pair %d's label %d is outside 0..%d", i, labels[i], tr->nclasses - 1);
    float *a = malloc((size_t)n * d * sizeof(float)), *b = malloc((size_t)n * d * sizeof(float));
    int *l = labels ? malloc((size_t)n * sizeof(int)) : NULL;
    if (!a || !b || (labels && !l)) {
        free(a);
        free(b);
        free(l);
        return fm__fail(FM_ERR_NOMEM, "out of memory for %d pairs", n);
    }
    memcpy(a, x0, (size_t)n * d * sizeof(float));
    memcpy(b, x1, (size_t)n * d * sizeof(float));
    if (l) memcpy(l, labels, (size_t)n * sizeof(int));
    free(st->pair0);
    free(st->pair1);
    free(st->plabels);
    st->pair0 = a;
    st->pair1 = b;
    st->plabels = l;
    st->npairs = n;
    tr->coupling_label = "reflow";
    return FM_OK;
}

fm_status fm_trainer_init_from(fm_trainer *tr, fm_flow *from)
{
    fm_flow *f = fm_model_flow(tr->model);
    if (!f) return fm__fail(FM_ERR_ARG, "only a flow can start from another flow's weights");
    fm_params *P = fm_flow_params(f), *Q = fm_flow_params(from);
    if (fm_params_size(P) != fm_params_size(Q) || fm_params_count(P) != fm_params_count(Q))
        return fm__fail(FM_ERR_SHAPE, "the models differ in shape (%zu and %zu parameters)", fm_params_size(P),
                        fm_params_size(Q));
    memcpy(fm_params_data(P), fm_params_data(Q), fm_params_size(P) * sizeof(float));
    const float *mean, *sd;
    if (fm_flow_standardized(from, &mean, &sd)) {
        fm_status s = fm_flow_set_standardization(f, mean, sd);
        if (s) return s;
    }
    if (tr->ema) memcpy(fm_ema_data(tr->ema), fm_params_data(P), fm_params_size(P) * sizeof(float));
    return FM_OK;
}

static void describe(const fm_trainer *tr, char *buf, size_t cap)
{
    const fm_flow_config *fc = &tr->cfg.flow;
    snprintf(buf, cap, "flow matching %s -> %s, path %s", fc->source, fc->data, fm_path_name(fc->path.kind));
}

static const char *const options[] = {"source", "path", "coupling", "sigma-min", "sigma", "ve-sigma-min",
                                      "ve-sigma-max", "beta-min", "beta-max", "exponent", "t-end", "time-embed", NULL};

static const fm__setting settings[] = {
    {"predict", "KIND", "fm: what the network predicts: v (the velocity), eps (the noise) or x1 (the data)",
     fm__flow_set_predict, fm__flow_get_predict},
    FM__TDIST_SETTING,
    {NULL, NULL, NULL, NULL, NULL},
};

static fm_status load_config(fm_train_config *c, const fm_st *st)
{
    fm_status s = fm__flow_method_load_config(c, st);
    return s ? s : fm__flow_load_tdist(c, st);
}

const fm__method fm__method_fm = {
    .id = FM_METHOD_FM,
    .name = "fm",
    .summary = "flow matching: a velocity field regressed on a probability path",
    FM__FLOW_OBJECT,
    .options = options,
    .settings = settings,
    .defaults = defaults,
    .check = check,
    .build = fm__flow_method_build,
    .state_new = state_new,
    .state_free = state_free,
    .step = step,
    .save_train = fm__flow_save_tdist,
    .describe = describe,
    .load_config = load_config,
    .save = fm__flow_method_save,
    .sampling = FM_SAMPLING_ODE,
    .default_solver = fm__flow_method_default_solver,
    .sample = fm__flow_method_sample,
};
