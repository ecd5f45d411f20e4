/* flow_common.c - the flow object (src/flow/) as the model of a method: what
 * flow matching (fm.c) and DDPM (ddpm.c) share, a time-conditioned network
 * over the data (MLP or U-Net) with its standardisation and guidance. Not a
 * method itself; methods that regress a network on (t, x_t) use it.
 */
#include "methods/flow_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Checks shared with DDPM (src/methods/ddpm.c): the networks and labels of a flow. */
fm_status fm__flow_method_check(const fm_train_config *c, int interval)
{
    if (c->flow.interval != interval)
        return fm__fail(FM_ERR_ARG, interval ? "the network must take the interval (flow.interval 1)"
                                             : "the interval input is MeanFlow's (--method meanflow)");
    if (c->flow.unet.num_classes && c->flow.arch != FM_ARCH_UNET)
        return fm__fail(FM_ERR_ARG, "class conditioning is for the U-Net of flow matching and DDPM (--arch unet)");
    return FM_OK;
}

void fm__flow_image_defaults(fm_train_config *c)
{
    c->optim.lr = 1e-3; /* a wider MLP and a gentler step than 2D's 3 x 64, 1e-2 */
    c->flow.net.act = FM_ACT_SILU;
    for (int i = 0; i < c->flow.net.nhidden; i++) c->flow.net.width[i] = 512;
}

/* The flow for training (shared with DDPM). */
fm_status fm__flow_method_build(fm_trainer *tr, const fm_train_config *c, int dim, const char *data, const char *source)
{
    fm_flow *f = NULL;
    (void)dim;
    (void)data;
    /* DDPM's network predicts noise; every other method's is a velocity */
    fm_method kind = tr->m->id == FM_METHOD_DDPM ? FM_METHOD_DDPM : FM_METHOD_FM;
    fm_status s = fm__flow_build(&c->flow, kind, tr->data, source, &f);
    if (s) return s;
    tr->obj = f;
    tr->g[0].P = fm_flow_params(f);
    tr->z = fm__flow_stdz(f);
    tr->nclasses = fm_flow_num_classes(f);
    tr->cfg.flow = *fm_flow_get_config(f);
    return FM_OK;
}

fm_status fm__flow_method_load_config(fm_train_config *c, const fm_st *st)
{
    fm_flow *f = fm_flow_load(st, 0); /* checks the weights as well as the configuration */
    if (!f) return fm_last_status();
    fm_flow_free(f);
    return fm_flow_config_load(&c->flow, st); /* its strings point into st */
}
void fm__flow_method_free(void *obj) { fm_flow_free(obj); }
void fm__flow_method_init(void *obj, fm_rng *r) { fm_flow_init(obj, r); }
fm_status fm__flow_method_save(void *obj, fm_st_writer *w) { return fm_flow_save(obj, w); }
void *fm__flow_method_load(const fm_st *st, int use_ema) { return fm_flow_load(st, use_ema); }
int fm__flow_method_dim(const void *obj) { return fm_flow_get_config(obj)->dim; }
const char *fm__flow_method_data(const void *obj) { return fm_flow_get_config(obj)->data; }
size_t fm__flow_method_size(void *obj) { return fm_params_size(fm_flow_params(obj)); }
fm_tensor *fm__flow_method_forward(fm_tape *tp, void *obj, fm_params *P, fm_tensor *t, fm_tensor *x, const int *labels)
{
    return fm__flow_forward_with(tp, obj, P, t, x, labels);
}


fm_solver_kind fm__flow_method_default_solver(const void *obj, int *steps)
{
    (void)obj;
    if (steps) *steps = 8;
    return FM_SOLVER_MIDPOINT;
}

fm_status fm__flow_method_sample(void *obj, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                                 const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx,
                                 fm_solve_stats *st)
{
    return fm_flow_sample(obj, n, x_start, r, sc, grid, ngrid, out, obs, octx, st);
}

/* ------------------------------------------------------------------ regression on a path */

static const char *const tdist_names[FM_TDIST_COUNT] = {"uniform", "logit-normal", "skewed"};
const char *fm_tdist_name(fm_tdist k) { return fm__name_of(tdist_names, FM_TDIST_COUNT, k); }

void fm__flow_draw_times(fm_trainer *tr, int B)
{
    const fm_path *path = &tr->cfg.flow.path;
    const fm_train_config *c = &tr->cfg;
    if (c->tdist.kind == FM_TDIST_UNIFORM) {
        fm_rng_uniform_fill(&tr->rtime, tr->t, (size_t)B, 0.0f, 1.0f);
    } else {
        for (int i = 0; i < B; i++) {
            double n = fm_rng_normal(&tr->rtime), u;
            if (c->tdist.kind == FM_TDIST_LOGIT_NORMAL) u = 1 / (1 + exp(-(c->tdist.loc + c->tdist.scale * n)));
            else u = fmin(fmax(1 / (1 + exp(1.2 * n - 1.2)), 1e-4), 1.0); /* EDM's log-normal noise level */
            tr->t[i] = (float)u;
        }
    }
    fm__path_times(path, tr->t, B);
}

void fm__flow_targets(fm_trainer *tr, const float *x0, const float *eps, int B)
{
    fm__path_targets(&tr->cfg.flow.path, tr->cfg.flow.predict, tr->t, tr->x1, x0, eps, tr->xt, tr->ut, B,
                     tr->cfg.flow.dim);
}

fm_status fm__flow_set_tdist(fm_train_config *c, const char *v)
{
    char *end = NULL;
    if (!strcmp(v, "uniform") || !strcmp(v, "skewed")) {
        c->tdist.kind = v[0] == 'u' ? FM_TDIST_UNIFORM : FM_TDIST_SKEWED;
        return FM_OK;
    }
    if (!strncmp(v, "logit-normal", 12) && (v[12] == '\0' || v[12] == ':')) {
        double m = 0, sd = 1;
        if (v[12] == ':') {
            m = strtod(v + 13, &end);
            if (end == v + 13 || *end != ',') goto bad;
            const char *q = end + 1;
            sd = strtod(q, &end);
            if (end == q || *end) goto bad;
        }
        if (!isfinite(m) || fabs(m) > 10 || !(sd > 0) || sd > 10) goto bad;
        c->tdist.kind = FM_TDIST_LOGIT_NORMAL;
        c->tdist.loc = m;
        c->tdist.scale = sd;
        return FM_OK;
    }
bad:
    return fm__fail(FM_ERR_ARG, "t-dist = '%s' must be uniform, skewed or logit-normal[:M,S] (|M| <= 10, 0 < S <= 10)", v);
}

void fm__flow_get_tdist(const fm_train_config *c, char *buf, size_t cap)
{
    if (c->tdist.kind == FM_TDIST_LOGIT_NORMAL) snprintf(buf, cap, "logit-normal:%g,%g", c->tdist.loc, c->tdist.scale);
    else snprintf(buf, cap, "%s", fm_tdist_name(c->tdist.kind));
}

fm_status fm__flow_set_predict(fm_train_config *c, const char *v)
{
    int k = fm_predict_from_name(v);
    if (k < 0) return fm__fail(FM_ERR_ARG, "predict = '%s' must be v (the velocity), eps (the noise) or x1 (the data)", v);
    c->flow.predict = (fm_predict)k;
    return FM_OK;
}

void fm__flow_get_predict(const fm_train_config *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", fm_predict_name(c->flow.predict));
}

/* Only a non-uniform distribution is written: checkpoints of uniform runs
 * keep their bytes. */
fm_status fm__flow_save_tdist(fm_trainer *tr, fm_st_writer *w)
{
    const fm_train_config *c = &tr->cfg;
    if (c->tdist.kind == FM_TDIST_UNIFORM) return FM_OK;
    char buf[64];
    fm__flow_get_tdist(c, buf, sizeof buf);
    return fm_st_writer_meta(w, "train.t_dist", buf);
}

fm_status fm__flow_load_tdist(fm_train_config *c, const fm_st *st)
{
    const char *v = fm_st_meta(st, "train.t_dist");
    if (!v) {
        c->tdist.kind = FM_TDIST_UNIFORM;
        return FM_OK;
    }
    return fm__flow_set_tdist(c, v) ? fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'train.t_dist' = '%s' is unknown", v)
                                    : FM_OK;
}

/* ------------------------------------------------------------------ a batch of pairs */

fm_status fm__flow_batch_new(fm__flow_batch *b, int B, int d)
{
    size_t n = (size_t)B * d;
    b->x0 = malloc(n * sizeof(float));
    b->eps = malloc(n * sizeof(float));
    if (!b->x0 || !b->eps) return fm__fail(FM_ERR_NOMEM, "out of memory for a batch of %d", B);
    return FM_OK;
}

void fm__flow_batch_free(fm__flow_batch *b)
{
    free(b->x0);
    free(b->eps);
}

fm_status fm__flow_draw_pairs(fm_trainer *tr, fm__flow_batch *b, int B)
{
    fm_status s = fm__train_draw(tr, B);
    if (!s) s = fm_flow_source(tr->obj, &tr->rnoise, b->x0, B);
    if (s) return s;
    const fm_train_config *c = &tr->cfg;
    double sg = c->flow.path.sigma;
    return fm__couple(c->coupling, 2 * sg * sg, &tr->rnoise, b->x0, tr->x1, NULL, tr->labels, B, c->flow.dim,
                      &tr->unconverged);
}
