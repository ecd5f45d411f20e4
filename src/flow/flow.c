/* flow.c - a trained flow: the velocity network, its probability path, where
 * its noise comes from and how its data were standardised. A DDPM model is the
 * same network predicting noise; its sampler is the DDPM method's
 * (src/methods/ddpm.c), which this file does not call.
 *
 * Sampling draws x(0) = b(0) x0 + c(0) eps from the source, integrates
 * dx/dt = v(t, x) to the path's end time and maps the result back to data
 * units. The velocity is evaluated in chunks of rows so activations stay in
 * cache. A flow is not thread-safe: it owns one tape for its evaluations.
 * Checkpoint metadata keys are listed in fm_flow_save.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>


struct fm_flow {
    fm_flow_config cfg; /* data and source point to owned copies */
    fm_params *P;
    fm_mlp *net;                    /* arch mlp */
    fm_unet *unet;                  /* arch unet */
    fm__stdz z;                     /* the data's standardisation (z.mean NULL when off) */
    fm__workers wk;                 /* tapes and time buffers for evaluations */
    fm_dataset *src;                /* opened on first use when the source is a dataset */
    int *cond;                      /* (ncond) requested classes (K: none), NULL when unset */
    int ncond;
    double guidance;
    fm_path sched; /* the path sampling follows (fm_flow_set_schedule) */
    int has_sched;
};

int fm__is_gaussian_source(const char *spec) { return !spec || !*spec || !strcmp(spec, "gaussian"); }

/* The two methods a flow serves, as checkpoints name them. */
static const char *kind_name(fm_method m) { return m == FM_METHOD_DDPM ? "ddpm" : "fm"; }

static fm_status config_check(const fm_flow_config *c)
{
    if (c->dim < 1 || c->dim > (1 << 20)) return fm__fail(FM_ERR_ARG, "flow: data dimension %d is invalid", c->dim);
    if (c->arch < 0 || c->arch >= FM_ARCH_COUNT) return fm__fail(FM_ERR_ARG, "flow: unknown network architecture %d", (int)c->arch);
    if (c->arch == FM_ARCH_UNET && (long)c->unet.in_ch * c->unet.height * c->unet.width != c->dim)
        return fm__fail(FM_ERR_ARG, "flow: a U-Net on %d x %d x %d images does not fit %d-dimensional data (a U-Net needs "
                        "image data)", c->unet.in_ch, c->unet.height, c->unet.width, c->dim);
    if (c->method == FM_METHOD_DDPM) {
        if (!fm__is_gaussian_source(c->source))
            return fm__fail(FM_ERR_ARG, "ddpm: the source is N(0, I), not '%s'", c->source);
        return fm_ddpm_check(&c->ddpm);
    }
    if (c->method != FM_METHOD_FM)
        return fm__fail(FM_ERR_ARG, "a flow is a flow-matching or DDPM model, not method %d", (int)c->method);
    if (c->interval != 0 && c->interval != 1) return fm__fail(FM_ERR_ARG, "flow: interval must be 0 or 1");
    if (c->interval && c->predict != FM_PREDICT_V)
        return fm__fail(FM_ERR_ARG, "an average-velocity (interval) flow predicts the velocity itself (predict v)");
    if (c->predict < 0 || c->predict >= FM_PREDICT_COUNT)
        return fm__fail(FM_ERR_ARG, "flow: unknown prediction %d", (int)c->predict);
    if (c->predict != FM_PREDICT_V && fm__path_extra_noise(&c->path))
        return fm__fail(FM_ERR_ARG, "a %s prediction needs a path without extra noise: on the %s path with sigma > 0 "
                        "the velocity is not a function of x and the prediction", fm_predict_name(c->predict),
                        fm_path_name(c->path.kind));
    fm_path_coef c0;
    fm_path_coef_at(&c->path, 0.0, &c0);
    if (c->predict == FM_PREDICT_EPS && !(c0.a > 0))
        return fm__fail(FM_ERR_ARG, "a noise (eps) prediction leaves the velocity undetermined where the path has no "
                        "signal: the %s path's a_t is 0 at t = 0, where v = (x - e) / t; predict v or x1 on it, or "
                        "eps on a path with signal at t = 0 (vp, ve, subvp)", fm_path_name(c->path.kind));
    return fm_path_check(&c->path);
}

fm_flow *fm_flow_new(const fm_flow_config *cfg)
{
    if (!cfg || config_check(cfg) != FM_OK) return NULL;
    fm_flow *f = calloc(1, sizeof *f);
    if (!f) goto oom;
    f->cfg = *cfg;
    f->cfg.net.in_dim = cfg->dim + cfg->interval; /* an interval flow's MLP sees h after x */
    f->cfg.net.out_dim = cfg->dim;
    f->cfg.net.time_input = 1;
    f->cfg.unet.interval = cfg->interval;
    f->cfg.data = fm__strdup(cfg->data ? cfg->data : "");
    f->cfg.source = fm__strdup(cfg->source ? cfg->source : "gaussian");
    f->P = fm_params_new();
    if (!f->cfg.data || !f->cfg.source || !f->P) goto oom;
    if (f->cfg.arch == FM_ARCH_UNET) {
        f->unet = fm_unet_new(f->P, "net", &f->cfg.unet);
        if (f->unet) f->cfg.unet = *fm_unet_get_config(f->unet); /* time sizes resolved */
    } else {
        f->net = fm_mlp_new(f->P, "net", &f->cfg.net);
    }
    if (!f->net && !f->unet) {
        fm_flow_free(f);
        return NULL;
    }
    return f;
oom:
    fm_flow_free(f);
    fm__fail(FM_ERR_NOMEM, "out of memory creating a flow");
    return NULL;
}

void fm_flow_free(fm_flow *f)
{
    if (!f) return;
    free((char *)f->cfg.data);
    free((char *)f->cfg.source);
    fm_mlp_free(f->net);
    fm_unet_free(f->unet);
    fm_params_free(f->P);
    fm__stdz_free(&f->z);
    fm__workers_free(&f->wk);
    fm_dataset_free(f->src);
    free(f->cond);
    free(f);
}

const fm_flow_config *fm_flow_get_config(const fm_flow *f) { return &f->cfg; }
fm_params *fm_flow_params(fm_flow *f) { return f->P; }
fm_mlp *fm_flow_net(fm_flow *f) { return f->net; }
fm_unet *fm_flow_unet(fm_flow *f) { return f->unet; }

void fm_flow_init(fm_flow *f, fm_rng *r)
{
    if (f->unet) fm_unet_init(f->unet, r);
    else fm_mlp_init(f->net, r);
}

/* An interval flow's MLP sees concat(t, x, h): the times (t, h) split, h after x. */
static fm_tensor *with_interval(fm_tape *tp, fm_tensor *x, fm_tensor *t, fm_tensor **t0)
{
    fm_tensor *parts[2] = {x, fm__column(tp, t, 1)};
    *t0 = fm__column(tp, t, 0);
    return fm_concat(tp, parts, 2);
}

static int times_fit(fm_tape *tp, const fm_flow *f, fm_tensor *t)
{
    if (t && t->ndim == 2 && t->shape[1] > 1 + f->cfg.interval) {
        char s1[96];
        fm__op_fail(tp, FM_ERR_SHAPE, "flow: times %s have more columns than the network's %d", fm_shape_str(t, s1, sizeof s1),
                    1 + f->cfg.interval);
        return 0;
    }
    return 1;
}

fm_tensor *fm__flow_forward_with(fm_tape *tp, fm_flow *f, fm_params *P, fm_tensor *t, fm_tensor *x, const int *labels)
{
    if (f->unet) return fm__unet_forward_with(tp, f->unet, P, t, x, labels);
    if (labels) return fm__op_fail(tp, FM_ERR_ARG, "the MLP takes no class labels (class conditioning needs the U-Net)");
    if (!f->cfg.interval || !t || !x) return fm__mlp_forward_with(tp, f->net, P, t, x);
    if (!times_fit(tp, f, t)) return NULL;
    fm_tensor *t0, *xh = with_interval(tp, x, t, &t0);
    return fm__mlp_forward_with(tp, f->net, P, t0, xh);
}

fm_tensor *fm__flow_jvp_with(fm_tape *tp, fm_flow *f, fm_params *P, fm_tensor *t, fm_tensor *x, const int *labels,
                             fm_tensor *tt, fm_tensor *tx, fm_tensor **v)
{
    if (v) *v = NULL;
    if (f->unet) return fm__unet_jvp_with(tp, f->unet, P, t, x, labels, tt, tx, v);
    if (labels) return fm__op_fail(tp, FM_ERR_ARG, "the MLP takes no class labels (class conditioning needs the U-Net)");
    if (!f->cfg.interval || !t || !x || !tx) return fm__mlp_jvp_with(tp, f->net, P, t, x, tt, tx, v);
    if (!times_fit(tp, f, t)) return NULL;
    if (tt && (tt->size != t->size || tx->shape[0] != x->shape[0]))
        return fm__op_fail(tp, FM_ERR_SHAPE, "flow_jvp: the time tangents do not fit the times");
    fm_tensor *t0, *dt0 = NULL, *xh = with_interval(tp, x, t, &t0), *dxh = NULL;
    if (tt) dxh = with_interval(tp, tx, tt, &dt0);
    else {
        fm_tensor *parts[2] = {tx, fm_tensor_2d(tp, tx->shape[0], 1)};
        dxh = fm_concat(tp, parts, 2);
    }
    return fm__mlp_jvp_with(tp, f->net, P, t0, xh, dt0, dxh, v);
}

int fm_flow_num_classes(const fm_flow *f) { return f->unet ? f->cfg.unet.num_classes : 0; }

fm_status fm_flow_set_condition(fm_flow *f, const int *labels, int n, double guidance)
{
    int K = fm_flow_num_classes(f);
    if (!labels || n == 0) {
        free(f->cond);
        f->cond = NULL;
        f->ncond = 0;
        return FM_OK;
    }
    if (!K) return fm__fail(FM_ERR_ARG, "the model is not class-conditional: it takes no labels");
    if (n < 0) return fm__fail(FM_ERR_ARG, "a condition for %d rows", n);
    if (!isfinite(guidance) || fabs(guidance) > 1e4)
        return fm__fail(FM_ERR_ARG, "guidance weight %g is not a finite number of reasonable size", guidance);
    for (int i = 0; i < n; i++)
        if (labels[i] < -1 || labels[i] >= K)
            return fm__fail(FM_ERR_ARG, "label %d (row %d) is outside 0..%d (or -1 for none)", labels[i], i, K - 1);
    int *c = malloc((size_t)n * sizeof(int));
    if (!c) return fm__fail(FM_ERR_NOMEM, "out of memory for %d labels", n);
    for (int i = 0; i < n; i++) c[i] = labels[i] < 0 ? K : labels[i];
    free(f->cond);
    f->cond = c;
    f->ncond = n;
    f->guidance = guidance;
    return FM_OK;
}

/* The network on (T, X), rows i0 .. of an evaluation over n rows,
 * under the flow's condition: with guidance w other than 0 and 1 a second,
 * unconditional pass gives v_u + w (v_c - v_u). */
static fm_tensor *forward_cond(fm_tape *tp, fm_flow *f, fm_tensor *T, fm_tensor *X, int i0, int n)
{
    if (!f->cond) return fm__flow_forward_with(tp, f, f->P, T, X, NULL);
    if (n != f->ncond)
        return fm__op_fail(tp, FM_ERR_SHAPE, "the condition holds labels for %d rows; %d rows were given", f->ncond, n);
    if (f->guidance == 0.0) return fm__flow_forward_with(tp, f, f->P, T, X, NULL); /* v_u alone: one pass */
    fm_tensor *yc = fm__flow_forward_with(tp, f, f->P, T, X, f->cond + i0);
    if (!yc || f->guidance == 1.0) return yc;
    fm_tensor *yu = fm__flow_forward_with(tp, f, f->P, T, X, NULL);
    /* on the tape, for the likelihood's VJPs; rows asking for no class have
     * yc = yu and get yu exactly */
    return fm_add(tp, yu, fm_scale(tp, fm_sub(tp, yc, yu), (float)f->guidance));
}

/* The velocity at time t from the network's prediction y on (T, X): y itself,
 * or A X + B y (fm_predict_convert's line), on the tape. */
static fm_tensor *velocity_of(fm_tape *tp, fm_flow *f, double t, fm_tensor *T, fm_tensor *X, int i0, int n)
{
    fm_tensor *y = forward_cond(tp, f, T, X, i0, n);
    if (!y || f->cfg.predict == FM_PREDICT_V) return y;
    double A, B;
    fm__predict_coef(&f->cfg.path, t, f->cfg.predict, FM_PREDICT_V, &A, &B);
    return fm_add(tp, fm_scale(tp, X, (float)A), fm_scale(tp, y, (float)B));
}

fm_status fm_flow_set_standardization(fm_flow *f, const float *mean, const float *std)
{
    return fm__stdz_set(&f->z, f->cfg.dim, mean, std);
}

int fm_flow_standardized(const fm_flow *f, const float **mean, const float **std)
{
    if (mean) *mean = f->z.mean;
    if (std) *std = f->z.std;
    return f->z.mean != NULL;
}

fm__stdz *fm__flow_stdz(fm_flow *f) { return &f->z; }

void fm_flow_to_model(const fm_flow *f, float *x, int n) { fm__stdz_to_model(&f->z, x, n); }
void fm_flow_to_data(const fm_flow *f, float *x, int n) { fm__stdz_to_data(&f->z, x, n); }

/* The (m, 1) time column holding t, in the worker's buffer; (m, 2) rows (t, h) for h > 0. */
static fm_tensor *chunk_time_h(fm_tape *tp, float *tbuf, double t, double h, int m)
{
    int cols = h > 0 ? 2 : 1, ts[2] = {m, cols};
    for (int i = 0; i < m; i++) {
        tbuf[(size_t)i * cols] = (float)t;
        if (cols == 2) tbuf[(size_t)i * cols + 1] = (float)h;
    }
    return fm_tensor_wrap(tp, tbuf, 2, ts);
}

static fm_tensor *chunk_time(fm_tape *tp, float *tbuf, double t, int m) { return chunk_time_h(tp, tbuf, t, 0, m); }

typedef struct {
    fm_flow *f;
    double t, h;
    const float *x, *e;
    float *v, *u;
    int n, k;
} chunk_args;

static fm_status velocity_chunk(fm_tape *tp, float *tbuf, int i0, int m, void *ctx)
{
    const chunk_args *a = ctx;
    int d = a->f->cfg.dim, xs[2] = {m, d};
    fm_tensor *T = chunk_time_h(tp, tbuf, a->t, a->h, m);
    fm_tensor *y = velocity_of(tp, a->f, a->t, T, fm_tensor_wrap(tp, (float *)a->x + (size_t)i0 * d, 2, xs), i0, a->n);
    if (!y) return fm_tape_status(tp);
    memcpy(a->v + (size_t)i0 * d, y->data, (size_t)m * d * sizeof(float));
    return FM_OK;
}

fm_status fm_flow_velocity(fm_flow *f, double t, const float *x, float *v, int n)
{
    return fm_flow_average_velocity(f, t, 0.0, x, v, n);
}

fm_status fm_flow_average_velocity(fm_flow *f, double t, double h, const float *x, float *v, int n)
{
    if (!(h >= 0 && h <= 1e6) || (h > 0 && !f->cfg.interval))
        return fm__fail(FM_ERR_ARG, "an interval of %g: %s", h,
                        f->cfg.interval ? "it must be >= 0" : "this flow has no interval input (only its velocity, h = 0)");
    chunk_args a = {.f = f, .t = t, .h = h, .x = x, .v = v, .n = n};
    size_t row = (size_t)f->cfg.dim * sizeof(float);
    fm__chunk_out out = {v, row, 0, 1};
    return fm__run_chunks(&f->wk, f->P, n, velocity_chunk, &a, &out, 1);
}

/* v and the k vector-Jacobian products for rows [i0, i0 + m). */
static fm_status vjp_chunk(fm_tape *tp, float *tbuf, int i0, int m, void *ctx)
{
    const chunk_args *a = ctx;
    int d = a->f->cfg.dim, xs[2] = {m, d};
    size_t nd = (size_t)a->n * d, off = (size_t)i0 * d;
    fm_tensor *T = chunk_time(tp, tbuf, a->t, m);
    fm_tensor *X = fm_tensor_copy(tp, a->x + off, 2, xs);
    fm_tensor_requires_grad(X, 1);
    fm_tensor *y = velocity_of(tp, a->f, a->t, T, X, i0, a->n);
    if (!y) return fm_tape_status(tp);
    memcpy(a->v + off, y->data, (size_t)m * d * sizeof(float));
    fm__tape_mark mk = fm__tape_get_mark(tp); /* each pass reuses the memory of the last */
    for (int j = 0; j < a->k; j++) {
        fm_status s = fm_backward(tp, y, a->e + (size_t)j * nd + off);
        if (s) return s;
        memcpy(a->u + (size_t)j * nd + off, X->grad, (size_t)m * d * sizeof(float));
        fm__tape_rewind(tp, &mk);
    }
    return FM_OK;
}

fm_status fm_flow_vjp(void *flow, double t, const float *x, int n, int d, const float *e, int k, float *v, float *u)
{
    fm_flow *f = flow;
    if (d != f->cfg.dim) return fm__fail(FM_ERR_SHAPE, "points of dimension %d for a %d-dimensional flow", d, f->cfg.dim);
    chunk_args a = {.f = f, .t = t, .x = x, .e = e, .v = v, .u = u, .n = n, .k = k};
    size_t row = (size_t)d * sizeof(float);
    fm__chunk_out out[2] = {{v, row, 0, 1}, {u, row, (size_t)n * row, k}};
    return fm__run_chunks(&f->wk, f->P, n, vjp_chunk, &a, out, 2);
}

/* Opens a dataset source on first use, checking its dimension. */
static fm_status open_source(fm_flow *f)
{
    if (f->src || fm__is_gaussian_source(f->cfg.source)) return FM_OK;
    f->src = fm_dataset_open(f->cfg.source);
    if (!f->src) return fm__fail(FM_ERR_ARG, "source dataset: %s", fm_last_error());
    int sd = fm_dataset_dim(f->src);
    if (sd != f->cfg.dim) {
        fm_dataset_free(f->src);
        f->src = NULL;
        return fm__fail(FM_ERR_SHAPE, "source '%s' has %d dimensions, the model %d", f->cfg.source, sd, f->cfg.dim);
    }
    return FM_OK;
}

/* log p at t = 0: the source's density seen through x(0) = b(0) x0 + c(0) eps. */
static fm_status flow_logp0(void *ctx, const float *x0, int n, int d, double *out)
{
    fm_flow *f = ctx;
    fm_path_coef c;
    fm_path_coef_at(&f->cfg.path, 0.0, &c);
    if (fm__is_gaussian_source(f->cfg.source)) {
        double var = c.b * c.b + c.c * c.c;
        for (int i = 0; i < n; i++) {
            double ss = 0;
            for (int j = 0; j < d; j++) ss += (double)x0[(size_t)i * d + j] * x0[(size_t)i * d + j];
            out[i] = -0.5 * ss / var - 0.5 * d * log(2 * M_PI * var);
        }
        return FM_OK;
    }
    fm_status s = open_source(f);
    if (s) return s;
    /* x(0) = b x0 + c eps: the source scaled by b and blurred by c, i.e. x(0)/b
     * has the source's density blurred by c/b, divided by |b|^d */
    float *scaled = malloc((size_t)n * d * sizeof(float));
    if (!scaled) return fm__fail(FM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < (size_t)n * d; i++) scaled[i] = (float)(x0[i] / c.b);
    s = fm_dataset_log_density(f->src, scaled, n, c.c / c.b, out);
    free(scaled);
    if (s) return s;
    for (int i = 0; i < n; i++) out[i] -= d * log(fabs(c.b));
    return FM_OK;
}

fm_status fm_flow_log_likelihood(fm_flow *f, const float *x, int n, const fm_nll_config *c, double *logp, double *se,
                                 fm_solve_stats *st)
{
    int d = f->cfg.dim;
    if (f->cfg.method != FM_METHOD_FM)
        return fm__fail(FM_ERR_ARG, "the likelihood is for flow-matching models, not %s", kind_name(f->cfg.method));
    if (c && c->solver.sampler)
        return fm__fail(FM_ERR_ARG, "the likelihood needs an ODE solver, not the '%s' sampler", c->solver.sampler);
    /* the source's density, tried on one point before the solve */
    fm_path_coef c0;
    fm_path_coef_at(&f->cfg.path, 0.0, &c0);
    float *xm = calloc((size_t)n * d, sizeof(float));
    if (!xm) return fm__fail(FM_ERR_NOMEM, "out of memory");
    double probe;
    fm_status s = c0.b != 0 ? flow_logp0(f, xm, 1, d, &probe) : FM_ERR_ARG;
    if (s) {
        free(xm);
        return fm__fail(s, "the model's source '%s' has no density to start the likelihood from%s%s", f->cfg.source,
                        c0.b != 0 ? ": " : "", c0.b != 0 ? fm_last_error() : " (the path's b(0) is 0)");
    }
    memcpy(xm, x, (size_t)n * d * sizeof(float));
    fm_flow_to_model(f, xm, n);
    s = fm_log_likelihood(fm_flow_vjp, f, flow_logp0, f, xm, n, d, c, logp, se, st);
    free(xm);
    if (s == FM_OK && f->z.mean) { /* density of the data: divide by the standardisation's Jacobian */
        double lj = 0;
        for (int j = 0; j < d; j++) lj += log((double)f->z.std[j]);
        for (int i = 0; i < n; i++) logp[i] -= lj;
    }
    return s;
}

fm_status fm_flow_field(void *flow, double t, const float *x, float *v, size_t n)
{
    fm_flow *f = flow;
    return fm_flow_velocity(f, t, x, v, (int)(n / (size_t)f->cfg.dim));
}

fm_status fm_flow_set_schedule(fm_flow *f, const fm_path *to)
{
    if (!to) {
        f->has_sched = 0;
        return FM_OK;
    }
    fm_status s = fm_path_check(to);
    if (s) return s;
    if (f->cfg.method != FM_METHOD_FM)
        return fm__fail(FM_ERR_ARG, "a schedule transformation needs a velocity model; a DDPM model samples with its "
                                    "own schedule");
    if (f->cfg.interval)
        return fm__fail(FM_ERR_ARG, "a schedule transformation changes an ODE's path; a MeanFlow model's jumps follow "
                                    "its own");
    if (!fm__is_gaussian_source(f->cfg.source))
        return fm__fail(FM_ERR_ARG, "a schedule transformation needs a flow from N(0, I) (this one starts from '%s')",
                        f->cfg.source);
    if (fm__schedule_singular(&f->cfg.path, to))
        return fm__fail(FM_ERR_ARG, "the time change from the %s path to the %s path grows without bound at an end "
                                    "(their signal-to-noise ratios start or end at different rates, as poly's t^n against "
                                    "ot's t): it would multiply the network's error there; sample along another path",
                        fm_path_name(f->cfg.path.kind), fm_path_name(to->kind));
    f->sched = *to;
    f->has_sched = 1;
    return FM_OK;
}

const fm_path *fm_flow_sampling_path(const fm_flow *f) { return f->has_sched ? &f->sched : &f->cfg.path; }

fm_status fm_flow_source(fm_flow *f, fm_rng *r, float *x0, int n)
{
    if (fm__is_gaussian_source(f->cfg.source)) {
        fm_rng_normal_fill(r, x0, (size_t)n * f->cfg.dim, 0.0f, 1.0f);
        return FM_OK;
    }
    fm_status s = open_source(f);
    return s ? s : fm_dataset_sample(f->src, r, x0, n);
}

/* Observer wrapper: hand the user data-space states. */
fm_status fm__observe_data(void *ctx, int k, double t, const float *x, size_t n)
{
    fm__obs_data *w = ctx;
    if (!w->f->z.mean) return w->obs(w->octx, k, t, x, n);
    if (!w->tmp && !(w->tmp = malloc(n * sizeof(float))))
        return fm__fail(FM_ERR_NOMEM, "out of memory for a state of %zu values", n);
    memcpy(w->tmp, x, n * sizeof(float));
    fm_flow_to_data(w->f, w->tmp, (int)(n / (size_t)w->f->cfg.dim));
    return w->obs(w->octx, k, t, w->tmp, n);
}

fm_status fm_flow_sample(fm_flow *f, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                         const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx, fm_solve_stats *st)
{
    int d = f->cfg.dim;
    size_t total = (size_t)n * d;
    if (!sc || n < 1 || (!x_start && !r))
        return fm__fail(FM_ERR_ARG, "sampling needs a solver, n >= 1 (got %d) and a random stream or starting points", n);
    if (f->cfg.method == FM_METHOD_DDPM)
        return fm__fail(FM_ERR_ARG, "a DDPM model samples with its own samplers (ancestral, ddim): use fm_model_sample");
    int sde = sc->sampler != NULL;
    fm_sde_config sdc = {FM_DIFFUSION_SCALED, sc->noise, 0, sc->snr};
    if (sde && !strcmp(sc->sampler, "em")) sdc.diffusion = FM_DIFFUSION_PATH;
    else if (sde && !strcmp(sc->sampler, "pc"))
        sdc.diffusion = FM_DIFFUSION_PATH, sdc.corrector_steps = sc->corrector_steps;
    else if (sde && strcmp(sc->sampler, "sde"))
        return fm__fail(FM_ERR_ARG, "a flow samples with an ODE solver (euler, midpoint, heun, heun3, rk4, dopri5) or a "
                                    "stochastic sampler (sde, em, pc), not '%s'", sc->sampler);
    if (sde && (!r || !fm__is_gaussian_source(f->cfg.source)))
        return fm__fail(FM_ERR_ARG, "the %s sampler needs a random stream and a flow from N(0, I) (its score comes from "
                                    "the Gaussian path)", sc->sampler);
    const fm_path *sp = fm_flow_sampling_path(f);
    if (sde && fm__path_extra_noise(sp))
        return fm__fail(FM_ERR_ARG, "the %s sampler reads the score from a velocity on a path x = a x1 + s e; the %s "
                        "path with sigma > 0 adds noise the velocity does not determine", sc->sampler,
                        fm_path_name(sp->kind));
    if (x_start) {
        memcpy(out, x_start, total * sizeof(float));
    } else {
        fm_status s = fm_flow_source(f, r, out, n);
        if (s) return s;
        fm_path_coef c;
        fm_path_coef_at(sp, grid[0], &c);
        if (c.b != 1.0 || c.c != 0.0) {
            /* x(t0) = a x1 + b x0 + c eps with the data term dropped: at t0 = 0 it is
             * zero for every path but ve, whose source is wide enough to hide it. */
            for (size_t i = 0; i < total; i++) out[i] = (float)(c.b * out[i] + (c.c != 0.0 ? c.c * fm_rng_normal(r) : 0.0));
        }
    }
    fm__obs_data w = {f, obs, octx, NULL};
    fm_schedule_transform tf = {&f->cfg.path, &f->sched, fm_flow_field, f};
    fm_field_fn field = f->has_sched ? fm_schedule_transform_field : fm_flow_field;
    void *fctx = f->has_sched ? (void *)&tf : f;
    fm_status s = sde ? fm_sde_sample(sp, &sdc, field, fctx, grid, ngrid, out, n, d, r,
                                      obs ? fm__observe_data : NULL, &w, st)
                      : fm_solve(sc, field, fctx, grid, ngrid, out, total, obs ? fm__observe_data : NULL, &w, st);
    free(w.tmp);
    if (s == FM_OK) fm_flow_to_data(f, out, n);
    return s;
}

/* ------------------------------------------------------------------ path energy */

typedef struct {
    fm_flow *f;
    int n, d;
    float *x, *v; /* (n d) */
} energy_aug;

/* [x | e]: dx/dt = v(t, x), de/dt = |v(t, x)|^2 per point */
static fm_status energy_field(void *ctx, double t, const double *y, double *dy, size_t total)
{
    energy_aug *a = ctx;
    size_t nd = (size_t)a->n * a->d;
    (void)total;
    for (size_t i = 0; i < nd; i++) a->x[i] = (float)y[i];
    fm_status s = fm_flow_velocity(a->f, t, a->x, a->v, a->n);
    if (s) return s;
    for (size_t i = 0; i < nd; i++) dy[i] = a->v[i];
    for (int i = 0; i < a->n; i++) {
        double e = 0;
        for (int j = 0; j < a->d; j++) e += (double)a->v[(size_t)i * a->d + j] * a->v[(size_t)i * a->d + j];
        dy[nd + i] = e;
    }
    return FM_OK;
}

fm_status fm_flow_path_energy(fm_flow *f, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                              const double *grid, int ngrid, float *x0_out, float *x1_out, double *energy,
                              fm_solve_stats *st)
{
    if (f->cfg.method != FM_METHOD_FM)
        return fm__fail(FM_ERR_ARG, "path energy is for flow-matching models, not %s", kind_name(f->cfg.method));
    if (sc && sc->sampler) return fm__fail(FM_ERR_ARG, "path energy needs an ODE solver, not the '%s' sampler", sc->sampler);
    int d = f->cfg.dim;
    size_t nd = (size_t)n * d;
    energy_aug a = {f, n, d, malloc(nd * sizeof(float)), malloc(nd * sizeof(float))};
    double *y = malloc((nd + (size_t)n) * sizeof(double));
    fm_status s = FM_OK;
    if (!a.x || !a.v || !y) {
        s = fm__fail(FM_ERR_NOMEM, "out of memory for the path energy of %d points", n);
        goto out;
    }
    if (x_start) {
        memcpy(a.x, x_start, nd * sizeof(float));
    } else {
        if ((s = fm_flow_source(f, r, a.x, n))) goto out;
        fm_path_coef c;
        fm_path_coef_at(&f->cfg.path, grid[0], &c);
        for (size_t i = 0; i < nd; i++) a.x[i] = (float)(c.b * a.x[i] + (c.c != 0.0 ? c.c * fm_rng_normal(r) : 0.0));
    }
    if (x0_out) memcpy(x0_out, a.x, nd * sizeof(float));
    for (size_t i = 0; i < nd; i++) y[i] = a.x[i];
    memset(y + nd, 0, (size_t)n * sizeof(double));
    if ((s = fm__solve_d(sc, energy_field, &a, grid, ngrid, y, nd + (size_t)n, NULL, NULL, st))) goto out;
    double e = 0;
    for (int i = 0; i < n; i++) e += y[nd + i];
    *energy = e / n;
    if (x1_out) {
        for (size_t i = 0; i < nd; i++) x1_out[i] = (float)y[i];
        fm_flow_to_data(f, x1_out, n);
    }
out:
    free(a.x);
    free(a.v);
    free(y);
    return s;
}

fm_flow *fm_flow_clone(fm_flow *f)
{
    fm_flow *g = fm_flow_new(&f->cfg);
    if (!g) return NULL;
    memcpy(fm_params_data(g->P), fm_params_data(f->P), fm_params_size(f->P) * sizeof(float));
    if (f->z.mean && fm_flow_set_standardization(g, f->z.mean, f->z.std) != FM_OK) {
        fm_flow_free(g);
        return NULL;
    }
    return g;
}

fm_status fm_flow_make_pairs(fm_flow *f, int n, fm_rng *r, const fm_solver_config *sc, const double *grid, int ngrid,
                             float *x0, float *x1)
{
    if (f->cfg.method != FM_METHOD_FM)
        return fm__fail(FM_ERR_ARG, "reflow pairs come from flow-matching models, not %s", kind_name(f->cfg.method));
    if (sc && sc->sampler) return fm__fail(FM_ERR_ARG, "reflow pairs need an ODE solver, not the '%s' sampler", sc->sampler);
    int d = f->cfg.dim;
    size_t nd = (size_t)n * d;
    fm_status s = fm_flow_source(f, r, x0, n);
    if (s) return s;
    /* x0 stays the plain source draw, where the straight model will start;
     * this model starts, as when sampling, from b x0 + c eps */
    fm_path_coef c;
    fm_path_coef_at(&f->cfg.path, grid[0], &c);
    for (size_t i = 0; i < nd; i++) x1[i] = (float)(c.b * x0[i] + (c.c != 0.0 ? c.c * fm_rng_normal(r) : 0.0));
    return fm_solve(sc, fm_flow_field, f, grid, ngrid, x1, nd, NULL, NULL, NULL);
}

/* ------------------------------------------------------------------ checkpoints */

fm_status fm_flow_save(fm_flow *f, fm_st_writer *w) { return fm__flow_save_as(f, w, kind_name(f->cfg.method)); }

fm_status fm__flow_save_as(fm_flow *f, fm_st_writer *w, const char *method)
{
    const fm_flow_config *c = &f->cfg;
    const fm_path *p = &c->path;
    fm_status s = fm__meta_put_format(w);
    if (!s) s = c->arch == FM_ARCH_UNET ? fm_unet_config_save(&c->unet, w) : fm_mlp_config_save(&c->net, w);
    if (!s) s = fm__meta_put_num(w, "flow.dim", c->dim);
    if (!s) s = fm_st_writer_meta(w, "flow.data", c->data);
    if (!s) s = fm_st_writer_meta(w, "flow.source", c->source);
    if (!s) s = fm_st_writer_meta(w, "method", method);
    if (!s && c->method == FM_METHOD_DDPM) s = fm__meta_put_num(w, "ddpm.T", c->ddpm.T);
    if (!s && c->method == FM_METHOD_DDPM) s = fm__meta_put_num(w, "ddpm.beta_start", c->ddpm.beta_start);
    if (!s && c->method == FM_METHOD_DDPM) s = fm__meta_put_num(w, "ddpm.beta_end", c->ddpm.beta_end);
    if (!s) s = fm_st_writer_meta(w, "path", fm_path_name(p->kind));
    if (!s) s = fm__meta_put_num(w, "path.sigma_min", p->sigma_min);
    if (!s) s = fm__meta_put_num(w, "path.sigma", p->sigma);
    if (!s) s = fm__meta_put_num(w, "path.ve_sigma_min", p->ve_sigma_min);
    if (!s) s = fm__meta_put_num(w, "path.ve_sigma_max", p->ve_sigma_max);
    if (!s) s = fm__meta_put_num(w, "path.beta_min", p->beta_min);
    if (!s) s = fm__meta_put_num(w, "path.beta_max", p->beta_max);
    if (!s) s = fm__meta_put_num(w, "path.exponent", p->exponent);
    if (!s) s = fm__meta_put_num(w, "path.t_end", p->t_end);
    if (!s && c->predict != FM_PREDICT_V) s = fm_st_writer_meta(w, "flow.predict", fm_predict_name(c->predict));
    if (!s && c->interval) s = fm__meta_put_num(w, "flow.interval", 1); /* only when set */
    if (!s) s = fm__stdz_save(&f->z, w, "flow");
    if (!s) s = fm_params_save(f->P, w, NULL);
    return s;
}

fm_status fm_flow_config_load(fm_flow_config *c, const fm_st *st)
{
    memset(c, 0, sizeof *c);
    fm_status fs = fm__meta_check_format(st);
    if (fs) return fs;
    /* "model" names the network, as the architecture's own name */
    const char *model = fm_st_meta(st, "model");
    int arch = fm_arch_from_name(model);
    if (arch < 0)
        return fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'model' = '%s' is not a network (mlp, unet)",
                        model ? model : "(missing)");
    c->arch = (fm_arch)arch;
    fm_status s = c->arch == FM_ARCH_UNET ? fm_unet_config_load(&c->unet, st) : fm_mlp_config_load(&c->net, st);
    if (s) return s;
    double dim;
    if ((s = fm__meta_get_whole(st, "flow.dim", 1, 1 << 20, &dim))) return s;
    c->dim = (int)dim;
    double iv = 0;
    if (fm_st_meta(st, "flow.interval") && (s = fm__meta_get_whole(st, "flow.interval", 0, 1, &iv))) return s;
    c->interval = (int)iv;
    if (c->arch == FM_ARCH_UNET) {
        if (c->unet.interval != c->interval)
            return fm__fail(FM_ERR_FORMAT, "checkpoint's U-Net and flow disagree on the interval input");
        if ((long)c->unet.in_ch * c->unet.height * c->unet.width != c->dim)
            return fm__fail(FM_ERR_FORMAT, "checkpoint's U-Net (%d x %d x %d images) does not fit its %d-dimensional data",
                            c->unet.in_ch, c->unet.height, c->unet.width, c->dim);
    } else if (c->net.in_dim != c->dim + c->interval || c->net.out_dim != c->dim || !c->net.time_input)
        return fm__fail(FM_ERR_FORMAT, "checkpoint's network (%d -> %d) does not fit its %d-dimensional data",
                        c->net.in_dim, c->net.out_dim, c->dim);
    const char *pk = fm_st_meta(st, "path");
    int k = fm_path_from_name(pk);
    if (k < 0) return fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'path' = '%s' is not a path", pk ? pk : "(missing)");
    c->path = fm_path_default((fm_path_kind)k);
    fm_path *p = &c->path;
    if ((s = fm__meta_get_num(st, "path.sigma_min", &p->sigma_min)) || (s = fm__meta_get_num(st, "path.sigma", &p->sigma)) ||
        (s = fm__meta_get_num(st, "path.ve_sigma_min", &p->ve_sigma_min)) ||
        (s = fm__meta_get_num(st, "path.ve_sigma_max", &p->ve_sigma_max)) || (s = fm__meta_get_num(st, "path.beta_min", &p->beta_min)) ||
        (s = fm__meta_get_num(st, "path.beta_max", &p->beta_max)) || (s = fm__meta_get_num(st, "path.exponent", &p->exponent)) ||
        (s = fm__meta_get_num(st, "path.t_end", &p->t_end)))
        return s;
    if ((s = fm_path_check(p))) return s;
    const char *mk = fm_st_meta(st, "method");
    /* a velocity field, whether regressed (fm) or trained by maximum likelihood (cnf) */
    int m = !mk || !strcmp(mk, "fm") || !strcmp(mk, "cnf") || !strcmp(mk, "score") || !strcmp(mk, "meanflow")
                ? FM_METHOD_FM
            : !strcmp(mk, "ddpm")                                                     ? FM_METHOD_DDPM
                                                                                      : -1;
    if (m != FM_METHOD_FM && m != FM_METHOD_DDPM)
        return fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'method' = '%s' is not a flow-matching or DDPM model", mk);
    c->method = (fm_method)m;
    if (m == FM_METHOD_DDPM) {
        double T;
        if ((s = fm__meta_get_whole(st, "ddpm.T", 1, 100000, &T)) ||
            (s = fm__meta_get_num(st, "ddpm.beta_start", &c->ddpm.beta_start)) ||
            (s = fm__meta_get_num(st, "ddpm.beta_end", &c->ddpm.beta_end)))
            return s;
        c->ddpm.T = (int)T;
        if ((s = fm_ddpm_check(&c->ddpm))) return s;
    }
    const char *pr = fm_st_meta(st, "flow.predict");
    int pk2 = pr ? fm_predict_from_name(pr) : FM_PREDICT_V;
    if (pk2 < 0 || (pk2 != FM_PREDICT_V && m != FM_METHOD_FM))
        return fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'flow.predict' = '%s' is not v, eps or x1 of a flow", pr);
    c->predict = (fm_predict)pk2;
    c->data = fm_st_meta(st, "flow.data");
    c->source = fm_st_meta(st, "flow.source");
    if (!c->data || !c->source) return fm__fail(FM_ERR_FORMAT, "checkpoint metadata lacks 'flow.data' or 'flow.source'");
    return FM_OK;
}

fm_flow *fm_flow_load(const fm_st *st, int use_ema)
{
    fm_flow_config c;
    if (fm_flow_config_load(&c, st) != FM_OK) return NULL;
    fm__params_budget(fm__st_values(st), "checkpoint");
    fm_flow *f = fm_flow_new(&c);
    fm__params_budget_end();
    if (!f) return NULL;
    int ema = use_ema && fm_flow_has_ema(st);
    fm_status s = fm_params_load(f->P, st, ema ? "ema." : NULL);
    if (!s) s = fm__stdz_load(&f->z, st, "flow", c.dim);
    if (s) {
        fm_flow_free(f);
        return NULL;
    }
    return f;
}

/* EMA weights are saved as "ema." before every parameter's name, and every
 * network's names start with "net.". */
int fm_flow_has_ema(const fm_st *st)
{
    for (int i = 0; i < fm_st_count(st); i++)
        if (!strncmp(fm_st_entry(st, i, NULL, NULL, NULL), "ema.net.", 8)) return 1;
    return 0;
}

/* ------------------------------------------------------------------ training */

/* The class count of a class-conditional model on data: the labels' largest
 * + 1 when asked for -1, else the configured count, which must cover them. */
static fm_status classes_of(int asked, const fm_dataset *data, int *K)
{
    const uint8_t *lab = fm_dataset_labels(data);
    if (!lab) return fm__fail(FM_ERR_ARG, "class conditioning needs labelled data; '%s' has no labels", fm_dataset_spec(data));
    int k = 0;
    for (int i = 0; i < fm_dataset_rows(data); i++)
        if (lab[i] + 1 > k) k = lab[i] + 1;
    if (asked > 0 && k > asked)
        return fm__fail(FM_ERR_ARG, "the data's labels go up to %d, more than the model's %d classes", k - 1, asked);
    *K = asked < 0 ? k : asked;
    return FM_OK;
}

fm_status fm__flow_build(const fm_flow_config *cfg, fm_method method, const fm_dataset *data, const char *source,
                         fm_flow **out)
{
    fm_flow_config fc = *cfg;
    fc.method = method;
    fc.dim = fm_dataset_dim(data);
    fc.data = fm_dataset_spec(data);
    fc.source = source;
    if (cfg->unet.num_classes) {
        fm_status s = classes_of(cfg->unet.num_classes, data, &fc.unet.num_classes);
        if (s) return s;
    }
    if (fc.arch == FM_ARCH_UNET) {
        int ic, ih, iw;
        if (!fm_spec_image_shape(fc.data, &ic, &ih, &iw))
            return fm__fail(FM_ERR_ARG, "the U-Net is for image data; '%s' is not (use the MLP)", fc.data);
        if (!fc.unet.in_ch && !fc.unet.height && !fc.unet.width) { /* the data's shape unless set */
            fc.unet.in_ch = ic;
            fc.unet.height = ih;
            fc.unet.width = iw;
        }
    }
    *out = fm_flow_new(&fc);
    return *out ? FM_OK : fm_last_status();
}
