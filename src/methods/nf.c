/* nf.c - a normalizing flow of affine couplings (RealNVP, Dinh et al. 2017):
 * exact likelihood by the change of variables, sampling by the inverse.
 *
 * Layer k maps h to h' in two parts. An optional ActNorm, y = (h + bias)
 * exp(logs) per coordinate, its bias and log-scale set from the first
 * training batch so that its output has zero mean and unit variance (Kingma
 * and Dhariwal 2018). Then an affine coupling: the coordinates i with
 * (i + k) even pass through (mask m) and condition the others,
 *     s = S tanh(snet(m y) / S),  t = tnet(m y)  (on the others only),
 *     h' = m y + (1 - m) (y exp(s) + t),
 * where snet and tnet are MLPs (--width, --depth, --act) and S bounds the
 * log-scale softly (--coupling-scale). Masks alternate, so every coordinate
 * is transformed every other layer. log|det| is sum(logs) + sum((1 - m) s),
 * and log p(x) = log N(z; 0, I) + log|det| with z the last layer's output,
 * in network units (the standardisation's log-determinant is added for data
 * units). The last layer of every coupling network starts at zero: the flow
 * starts as the identity after its ActNorms. Training minimises the mean
 * negative log-likelihood of each batch.
 */
#include "train/method.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NF_MAX_LAYERS 64

struct fm_nf {
    fm_nf_config cfg; /* data points to an owned copy */
    fm_params *P;
    fm_mlp *snet[NF_MAX_LAYERS], *tnet[NF_MAX_LAYERS];
    int an_bias[NF_MAX_LAYERS], an_logs[NF_MAX_LAYERS]; /* parameter indices, -1 without ActNorm */
    fm__stdz z;
    fm__workers wk;
};

fm_nf_config fm_nf_config_default(int dim)
{
    fm_nf_config c;
    memset(&c, 0, sizeof c);
    c.dim = dim;
    c.layers = 8;
    c.actnorm = 1;
    c.scale = 2.0;
    c.nhidden = 3;
    for (int i = 0; i < 3; i++) c.width[i] = 64;
    c.act = FM_ACT_ELU;
    return c;
}

static fm_status config_check(const fm_nf_config *c)
{
    if (c->dim < 1 || c->dim > (1 << 20)) return fm__fail(FM_ERR_ARG, "nf: data dimension %d is invalid", c->dim);
    if (c->layers < 1 || c->layers > NF_MAX_LAYERS)
        return fm__fail(FM_ERR_ARG, "nf: %d coupling layers must lie in 1..%d", c->layers, NF_MAX_LAYERS);
    if (c->actnorm != 0 && c->actnorm != 1) return fm__fail(FM_ERR_ARG, "nf: actnorm is 0 or 1, not %d", c->actnorm);
    if (!(c->scale > 0 && c->scale <= 100))
        return fm__fail(FM_ERR_ARG, "nf: the coupling's scale bound %g must lie in (0, 100]", c->scale);
    if (c->nhidden < 0 || c->nhidden > FM_MLP_MAX_LAYERS)
        return fm__fail(FM_ERR_ARG, "nf: %d hidden layers is outside 0..%d", c->nhidden, FM_MLP_MAX_LAYERS);
    return FM_OK;
}

fm_nf *fm_nf_new(const fm_nf_config *cfg)
{
    if (!cfg || config_check(cfg)) return NULL;
    fm_nf *f = calloc(1, sizeof *f);
    if (!f) goto oom;
    f->cfg = *cfg;
    f->cfg.data = NULL;
    if (cfg->data && !(f->cfg.data = strdup(cfg->data))) goto oom;
    if (!(f->P = fm_params_new())) goto oom;
    fm_mlp_config mc = fm_mlp_config_default(cfg->dim);
    mc.time_input = 0;
    mc.nhidden = cfg->nhidden;
    memcpy(mc.width, cfg->width, sizeof mc.width);
    mc.act = cfg->act;
    char name[64];
    int s1[1] = {cfg->dim};
    for (int k = 0; k < cfg->layers; k++) {
        f->an_bias[k] = f->an_logs[k] = -1;
        if (cfg->actnorm) {
            snprintf(name, sizeof name, "nf.%d.an.bias", k);
            if ((f->an_bias[k] = fm_params_add(f->P, name, 1, s1)) < 0) goto fail;
            snprintf(name, sizeof name, "nf.%d.an.logs", k);
            if ((f->an_logs[k] = fm_params_add(f->P, name, 1, s1)) < 0) goto fail;
        }
        snprintf(name, sizeof name, "nf.%d.s", k);
        if (!(f->snet[k] = fm_mlp_new(f->P, name, &mc))) goto fail;
        snprintf(name, sizeof name, "nf.%d.t", k);
        if (!(f->tnet[k] = fm_mlp_new(f->P, name, &mc))) goto fail;
    }
    return f;
oom:
    fm__fail(FM_ERR_NOMEM, "out of memory creating a normalizing flow");
fail:
    fm_nf_free(f);
    return NULL;
}

void fm_nf_free(fm_nf *f)
{
    if (!f) return;
    free((char *)f->cfg.data);
    for (int k = 0; k < f->cfg.layers; k++) fm_mlp_free(f->snet[k]), fm_mlp_free(f->tnet[k]);
    fm_params_free(f->P);
    fm__stdz_free(&f->z);
    fm__workers_free(&f->wk);
    free(f);
}

const fm_nf_config *fm_nf_get_config(const fm_nf *f) { return &f->cfg; }
fm_params *fm_nf_params(fm_nf *f) { return f->P; }

/* The last linear layer of an MLP "prefix" (its highest-numbered weight and bias) to zero. */
static void zero_last(fm_nf *f, const char *prefix)
{
    char name[64];
    snprintf(name, sizeof name, "%s.%d.weight", prefix, 2 * f->cfg.nhidden);
    fm_tensor *w = fm_params_tensor(f->P, fm_params_find(f->P, name));
    snprintf(name, sizeof name, "%s.%d.bias", prefix, 2 * f->cfg.nhidden);
    fm_tensor *b = fm_params_tensor(f->P, fm_params_find(f->P, name));
    memset(w->data, 0, w->size * sizeof(float));
    memset(b->data, 0, b->size * sizeof(float));
}

void fm_nf_init(fm_nf *f, fm_rng *r)
{
    char name[64];
    for (int k = 0; k < f->cfg.layers; k++) {
        if (f->an_bias[k] >= 0) {
            memset(fm_params_tensor(f->P, f->an_bias[k])->data, 0, (size_t)f->cfg.dim * sizeof(float));
            memset(fm_params_tensor(f->P, f->an_logs[k])->data, 0, (size_t)f->cfg.dim * sizeof(float));
        }
        fm_mlp_init(f->snet[k], r);
        fm_mlp_init(f->tnet[k], r);
        snprintf(name, sizeof name, "nf.%d.s", k);
        zero_last(f, name);
        snprintf(name, sizeof name, "nf.%d.t", k);
        zero_last(f, name);
    }
}

/* ------------------------------------------------------------------ the layers on the tape */

/* Layer k's mask (1: passes through and conditions), (dim), on the tape. */
static fm_tensor *mask(fm_tape *tp, int d, int k, int keep)
{
    int s1[1] = {d};
    fm_tensor *m = fm_tensor_new(tp, 1, s1);
    for (int i = 0; m && i < d; i++) m->data[i] = (float)(((i + k) % 2 == 0) == keep);
    return m;
}

/* The coupling's s (bounded, masked) and t of layer k from y. */
static void coupling_st(fm_tape *tp, fm_nf *f, fm_params *P, int k, fm_tensor *y, fm_tensor *keep, fm_tensor *other,
                        fm_tensor **s, fm_tensor **t)
{
    double S = f->cfg.scale;
    fm_tensor *ym = fm_mul(tp, y, keep);
    fm_tensor *raw = fm__mlp_forward_with(tp, f->snet[k], P, NULL, ym);
    *s = fm_mul(tp, fm_scale(tp, fm_tanh(tp, fm_scale(tp, raw, (float)(1.0 / S))), (float)S), other);
    *t = fm_mul(tp, fm__mlp_forward_with(tp, f->tnet[k], P, NULL, ym), other);
}

/* Add row sums of x (rows, d) into acc. */
static void add_rows(double *acc, const fm_tensor *x, double sign)
{
    int rows = x->shape[0], d = x->shape[1];
    for (int i = 0; i < rows; i++) {
        double a = 0;
        for (int j = 0; j < d; j++) a += x->data[(size_t)i * d + j];
        acc[i] += sign * a;
    }
}

/* z = f(x) with weights P; the sum over the rows of log|det| into *ld (a
 * tensor), and per row into rowld (may be NULL; added to). */
static fm_tensor *forward_with(fm_tape *tp, fm_nf *f, fm_params *P, fm_tensor *x, fm_tensor **ld, double *rowld)
{
    int d = f->cfg.dim, rows = x ? x->shape[0] : 0;
    fm_tensor *h = x, *acc = NULL;
    for (int k = 0; k < f->cfg.layers && h; k++) {
        if (f->an_bias[k] >= 0) {
            fm_tensor *lg = fm_params_tensor(P, f->an_logs[k]);
            h = fm_mul(tp, fm_add(tp, h, fm_params_tensor(P, f->an_bias[k])), fm_exp(tp, lg));
            fm_tensor *inc = fm_scale(tp, fm_sum(tp, lg), (float)rows);
            acc = acc ? fm_add(tp, acc, inc) : inc;
            for (int i = 0; rowld && i < rows; i++)
                for (int j = 0; j < d; j++) rowld[i] += lg->data[j];
        }
        fm_tensor *keep = mask(tp, d, k, 1), *other = mask(tp, d, k, 0), *s, *t;
        coupling_st(tp, f, P, k, h, keep, other, &s, &t);
        h = fm_add(tp, fm_mul(tp, h, keep), fm_mul(tp, fm_add(tp, fm_mul(tp, h, fm_exp(tp, s)), t), other));
        fm_tensor *inc = fm_sum(tp, s);
        acc = acc ? fm_add(tp, acc, inc) : inc;
        if (rowld && s) add_rows(rowld, s, 1);
    }
    if (ld) *ld = acc;
    return h;
}

/* x = f^-1(z), layer by layer backwards (no gradient needed). */
static fm_tensor *inverse_with(fm_tape *tp, fm_nf *f, fm_tensor *z)
{
    int d = f->cfg.dim;
    fm_tensor *y = z;
    for (int k = f->cfg.layers - 1; k >= 0 && y; k--) {
        fm_tensor *keep = mask(tp, d, k, 1), *other = mask(tp, d, k, 0), *s, *t;
        coupling_st(tp, f, f->P, k, y, keep, other, &s, &t); /* from the part that passed through */
        y = fm_add(tp, fm_mul(tp, y, keep),
                   fm_mul(tp, fm_mul(tp, fm_sub(tp, y, t), fm_exp(tp, fm_scale(tp, s, -1.0f))), other));
        if (f->an_bias[k] >= 0)
            y = fm_sub(tp, fm_mul(tp, y, fm_exp(tp, fm_scale(tp, fm_params_tensor(f->P, f->an_logs[k]), -1.0f))),
                       fm_params_tensor(f->P, f->an_bias[k]));
    }
    return y;
}

/* The summed NLL of the rows of x (network units) with weights P. */
static fm_tensor *nll_sum(fm_tape *tp, fm_nf *f, fm_params *P, fm_tensor *x)
{
    fm_tensor *ld = NULL, *z = forward_with(tp, f, P, x, &ld, NULL);
    fm_tensor *sq = fm_scale(tp, fm_sum(tp, fm_mul(tp, z, z)), 0.5f);
    fm_tensor *c = sq ? fm_tensor_new(tp, sq->ndim, sq->shape) : NULL;
    if (c) c->data[0] = (float)(0.5 * f->cfg.dim * log(2 * M_PI) * x->shape[0]);
    return fm_sub(tp, fm_add(tp, sq, c), ld);
}

fm_tensor *fm_nf_forward(fm_tape *tp, fm_nf *f, fm_tensor *x, fm_tensor **logdet)
{
    if (!fm__op_inputs_ok(tp, "nf", &x, 1)) return NULL;
    if (x->ndim != 2 || x->shape[1] != f->cfg.dim)
        return fm__op_fail(tp, FM_ERR_SHAPE, "nf: points of shape [B, %d] expected", f->cfg.dim);
    return forward_with(tp, f, f->P, x, logdet, NULL);
}

fm_tensor *fm_nf_loss(fm_tape *tp, fm_nf *f, fm_tensor *x)
{
    if (!fm__op_inputs_ok(tp, "nf_loss", &x, 1)) return NULL;
    if (x->ndim != 2 || x->shape[1] != f->cfg.dim)
        return fm__op_fail(tp, FM_ERR_SHAPE, "nf_loss: points of shape [B, %d] expected", f->cfg.dim);
    return fm_scale(tp, nll_sum(tp, f, f->P, x), (float)(1.0 / x->shape[0]));
}

/* ------------------------------------------------------------------ evaluation in chunks */

typedef struct {
    fm_nf *f;
    const float *in; /* network units */
    float *out;
    double *logp;
} eval_args;

static fm_status logp_chunk(fm_tape *tp, float *tbuf, int i0, int m, void *ctx)
{
    eval_args *e = ctx;
    int d = e->f->cfg.dim, xs[2] = {m, d};
    (void)tbuf;
    double *lp = e->logp + i0;
    for (int i = 0; i < m; i++) lp[i] = 0;
    fm_tensor *z = forward_with(tp, e->f, e->f->P, fm_tensor_wrap(tp, (float *)e->in + (size_t)i0 * d, 2, xs), NULL, lp);
    if (!z) return fm_tape_status(tp);
    for (int i = 0; i < m; i++) {
        double sq = 0;
        for (int j = 0; j < d; j++) sq += (double)z->data[(size_t)i * d + j] * z->data[(size_t)i * d + j];
        lp[i] += -0.5 * sq - 0.5 * d * log(2 * M_PI);
    }
    if (e->out) memcpy(e->out + (size_t)i0 * d, z->data, (size_t)m * d * sizeof(float));
    return FM_OK;
}

static fm_status inverse_chunk(fm_tape *tp, float *tbuf, int i0, int m, void *ctx)
{
    eval_args *e = ctx;
    int d = e->f->cfg.dim, xs[2] = {m, d};
    (void)tbuf;
    fm_tensor *x = inverse_with(tp, e->f, fm_tensor_wrap(tp, (float *)e->in + (size_t)i0 * d, 2, xs));
    if (!x) return fm_tape_status(tp);
    memcpy(e->out + (size_t)i0 * d, x->data, (size_t)m * d * sizeof(float));
    return FM_OK;
}

/* The standardisation's log-determinant: -sum log std (0 when off). */
static double stdz_logdet(const fm_nf *f)
{
    double s = 0;
    for (int j = 0; f->z.mean && j < f->cfg.dim; j++) s -= log(f->z.std[j]);
    return s;
}

fm_status fm_nf_transform(fm_nf *f, const float *x, int n, float *z, double *logp)
{
    size_t nd = (size_t)n * f->cfg.dim;
    float *xm = malloc(nd * sizeof(float));
    double *lp = logp ? NULL : malloc((size_t)n * sizeof(double));
    if (!xm || (!logp && !lp)) {
        free(xm), free(lp);
        return fm__fail(FM_ERR_NOMEM, "out of memory for %d points", n);
    }
    memcpy(xm, x, nd * sizeof(float));
    fm__stdz_to_model(&f->z, xm, n);
    eval_args e = {f, xm, z, logp ? logp : lp};
    fm__chunk_out out[2] = {{z, (size_t)f->cfg.dim * sizeof(float), 0, z != NULL}, {e.logp, sizeof(double), 0, 1}};
    fm_status s = fm__run_chunks(&f->wk, f->P, n, logp_chunk, &e, out, 2);
    double c = stdz_logdet(f);
    for (int i = 0; logp && i < n; i++) logp[i] += c;
    free(xm), free(lp);
    return s;
}

fm_status fm_nf_log_prob(fm_nf *f, const float *x, int n, double *logp)
{
    return fm_nf_transform(f, x, n, NULL, logp);
}

fm_status fm_nf_inverse(fm_nf *f, const float *z, int n, float *x)
{
    eval_args e = {f, z, x, NULL};
    fm__chunk_out out = {x, (size_t)f->cfg.dim * sizeof(float), 0, 1};
    fm_status s = fm__run_chunks(&f->wk, f->P, n, inverse_chunk, &e, &out, 1);
    if (!s) fm__stdz_to_data(&f->z, x, n);
    return s;
}

/* ActNorm from data: each layer's bias and log-scale from the mean and
 * standard deviation of what enters it, for the rows of x (network units). */
static fm_status data_init(fm_nf *f, const float *x, int n)
{
    int d = f->cfg.dim, xs[2] = {n, d};
    fm_tape *tp = fm_tape_new(0);
    if (!tp) return fm__fail(FM_ERR_NOMEM, "out of memory");
    fm_tensor *h = fm_tensor_wrap(tp, (float *)x, 2, xs);
    for (int k = 0; k < f->cfg.layers && h && f->an_bias[k] >= 0; k++) {
        float *b = fm_params_tensor(f->P, f->an_bias[k])->data, *lg = fm_params_tensor(f->P, f->an_logs[k])->data;
        for (int j = 0; j < d; j++) {
            double m = 0, v = 0;
            for (int i = 0; i < n; i++) m += h->data[(size_t)i * d + j] / n;
            for (int i = 0; i < n; i++) v += (h->data[(size_t)i * d + j] - m) * (h->data[(size_t)i * d + j] - m) / n;
            b[j] = (float)-m;
            lg[j] = (float)-log(sqrt(v) + 1e-6);
        }
        /* then this layer, to see what enters the next */
        fm_tensor *lgt = fm_params_tensor(f->P, f->an_logs[k]);
        h = fm_mul(tp, fm_add(tp, h, fm_params_tensor(f->P, f->an_bias[k])), fm_exp(tp, lgt));
        fm_tensor *keep = mask(tp, d, k, 1), *other = mask(tp, d, k, 0), *s, *t;
        coupling_st(tp, f, f->P, k, h, keep, other, &s, &t);
        h = fm_add(tp, fm_mul(tp, h, keep), fm_mul(tp, fm_add(tp, fm_mul(tp, h, fm_exp(tp, s)), t), other));
    }
    fm_status s = fm_tape_status(tp);
    fm_tape_free(tp);
    return s;
}

/* ------------------------------------------------------------------ checkpoints */

static fm_status nf_save(fm_nf *f, fm_st_writer *w)
{
    const fm_nf_config *c = &f->cfg;
    fm_status s = fm__meta_put_format(w);
    if (!s) s = fm_st_writer_meta(w, "method", "nf");
    if (!s) s = fm_st_writer_meta(w, "nf.data", c->data ? c->data : "");
    if (!s) s = fm__meta_put_num(w, "nf.dim", c->dim);
    if (!s) s = fm__meta_put_num(w, "nf.layers", c->layers);
    if (!s) s = fm__meta_put_num(w, "nf.actnorm", c->actnorm);
    if (!s) s = fm__meta_put_num(w, "nf.scale", c->scale);
    if (!s) s = fm__meta_put_widths(w, "nf.widths", c->nhidden, c->width);
    if (!s) s = fm_st_writer_meta(w, "nf.act", fm_act_name(c->act));
    if (!s) s = fm__stdz_save(&f->z, w, "nf");
    if (!s) s = fm_params_save(f->P, w, NULL);
    return s;
}

static fm_nf *nf_load(const fm_st *st, int use_ema)
{
    fm_nf_config c = fm_nf_config_default(1);
    double dim, layers, an;
    fm_status s = fm__meta_get_whole(st, "nf.dim", 1, 1 << 20, &dim);
    if (!s) s = fm__meta_get_whole(st, "nf.layers", 1, NF_MAX_LAYERS, &layers);
    if (!s) s = fm__meta_get_whole(st, "nf.actnorm", 0, 1, &an);
    if (!s) s = fm__meta_get_num(st, "nf.scale", &c.scale);
    if (!s) s = fm__meta_get_widths(st, "nf.widths", &c.nhidden, c.width);
    if (!s) s = fm__meta_get_act(st, "nf.act", &c.act);
    if (s) return NULL;
    c.dim = (int)dim;
    c.layers = (int)layers;
    c.actnorm = (int)an;
    c.data = fm_st_meta(st, "nf.data");
    fm__params_budget(fm__st_values(st), "checkpoint");
    fm_nf *f = fm_nf_new(&c);
    fm__params_budget_end();
    if (!f) return NULL;
    if (fm__params_load_model(f->P, st, use_ema, &f->z, "nf", c.dim)) {
        fm_nf_free(f);
        return NULL;
    }
    return f;
}

/* ------------------------------------------------------------------ the method */

static void defaults(fm_train_config *c, int image)
{
    c->optim.lr = 1e-3;
    if (!image) return;
    c->flow.net.act = FM_ACT_RELU;
    c->flow.net.nhidden = 2;
    for (int i = 0; i < 2; i++) c->flow.net.width[i] = 512;
}

static fm_status check(const fm_train_config *c)
{
    fm_status s = fm__train_mlp_only(c, "nf");
    if (!s) s = fm__train_plain_noise(c, "nf");
    fm_nf_config nc = fm_nf_config_default(2);
    nc.layers = c->nf.layers, nc.actnorm = c->nf.actnorm, nc.scale = c->nf.scale;
    return s ? s : config_check(&nc);
}

static fm_status build(fm_trainer *tr, const fm_train_config *c, int dim, const char *data, const char *source)
{
    (void)source;
    fm_nf_config nc = fm_nf_config_default(dim);
    nc.layers = c->nf.layers;
    nc.actnorm = c->nf.actnorm;
    nc.scale = c->nf.scale;
    nc.nhidden = c->flow.net.nhidden;
    memcpy(nc.width, c->flow.net.width, sizeof nc.width);
    nc.act = c->flow.net.act;
    nc.data = data;
    fm_nf *f = fm_nf_new(&nc);
    if (!f) return fm_last_status();
    tr->obj = f;
    tr->g[0].P = f->P;
    tr->z = &f->z;
    return FM_OK;
}

static fm_status shard(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss)
{
    int d = tr->cfg.flow.dim, xs[2] = {r1 - r0, d};
    fm_tensor *x = fm_tensor_wrap(tp, tr->x1 + (size_t)r0 * d, 2, xs);
    return fm__train_finish(tp, P, fm_scale(tp, nll_sum(tp, tr->obj, P, x), (float)(1.0 / tr->cfg.batch)), loss);
}

static fm_status step(fm_trainer *tr, double *loss)
{
    int B = tr->cfg.batch;
    fm_status s = fm__train_draw(tr, B);
    if (!s && tr->iter == 0 && tr->cfg.nf.actnorm) s = data_init(tr->obj, tr->x1, B); /* the first batch sets ActNorm */
    if (s) return s;
    double sums[3] = {NAN, 0, 0};
    s = fm__train_shards(tr, 0, NULL, shard, "negative log-likelihood", fm_trainer_lr(tr), sums);
    *loss = sums[0];
    tr->nparts = 0;
    return s ? s : fm__train_update(tr, 0, fm_trainer_lr(tr));
}

static fm_status load_config(fm_train_config *c, const fm_st *st)
{
    fm_nf *f = nf_load(st, 0);
    if (!f) return fm_last_status();
    c->flow.net.nhidden = f->cfg.nhidden;
    memcpy(c->flow.net.width, f->cfg.width, sizeof f->cfg.width);
    c->flow.net.act = f->cfg.act;
    c->nf.layers = f->cfg.layers;
    c->nf.actnorm = f->cfg.actnorm;
    c->nf.scale = f->cfg.scale;
    c->flow.data = fm_st_meta(st, "nf.data");
    fm_nf_free(f);
    return FM_OK;
}

static void describe(const fm_trainer *tr, char *buf, size_t cap)
{
    const fm_train_config *c = &tr->cfg;
    snprintf(buf, cap, "a normalizing flow on %s: %d affine couplings%s", c->flow.data, c->nf.layers,
             c->nf.actnorm ? " with ActNorm" : "");
}

static void m_free(void *obj) { fm_nf_free(obj); }
static void m_init(void *obj, fm_rng *r) { fm_nf_init(obj, r); }
static fm_status m_save(void *obj, fm_st_writer *w) { return nf_save(obj, w); }
static void *m_load(const fm_st *st, int use_ema) { return nf_load(st, use_ema); }
static int m_dim(const void *obj) { return ((const fm_nf *)obj)->cfg.dim; }
static const char *m_data(const void *obj) { return ((const fm_nf *)obj)->cfg.data; }
static size_t m_size(void *obj) { return fm_params_size(((fm_nf *)obj)->P); }
static fm_status m_log_prob(void *obj, const float *x, int n, double *logp) { return fm_nf_log_prob(obj, x, n, logp); }

/* N(0, I) noise (or the given z) through the inverse. */
static fm_status sample(void *obj, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                        const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx, fm_solve_stats *st)
{
    (void)sc, (void)grid, (void)ngrid, (void)obs, (void)octx, (void)st; /* one pass: the handle counts it */
    fm_nf *f = obj;
    if (x_start) return fm_nf_inverse(f, x_start, n, out);
    float *z = malloc((size_t)n * f->cfg.dim * sizeof(float));
    if (!z) return fm__fail(FM_ERR_NOMEM, "out of memory sampling %d points", n);
    fm_rng_normal_fill(r, z, (size_t)n * f->cfg.dim, 0.0f, 1.0f);
    fm_status s = fm_nf_inverse(f, z, n, out);
    free(z);
    return s;
}

/* --flow-layers K, --actnorm 0|1, --coupling-scale S */
static fm_status set_layers(fm_train_config *c, const char *v)
{
    return fm__setting_whole("nf: flow-layers", v, 1, NF_MAX_LAYERS, &c->nf.layers);
}
static void get_layers(const fm_train_config *c, char *buf, size_t cap) { snprintf(buf, cap, "%d", c->nf.layers); }
static fm_status set_actnorm(fm_train_config *c, const char *v)
{
    if (strcmp(v, "0") && strcmp(v, "1")) return fm__fail(FM_ERR_ARG, "nf: actnorm = '%s' must be 0 or 1", v);
    c->nf.actnorm = v[0] == '1';
    return FM_OK;
}
static void get_actnorm(const fm_train_config *c, char *buf, size_t cap) { snprintf(buf, cap, "%d", c->nf.actnorm); }
static fm_status set_scale(fm_train_config *c, const char *v)
{
    return fm__setting_number("nf: coupling-scale", v, 0, 100, 1, &c->nf.scale);
}
static void get_scale(const fm_train_config *c, char *buf, size_t cap) { snprintf(buf, cap, "%g", c->nf.scale); }

static const fm__setting settings[] = {
    {"flow-layers", "K", "nf: affine coupling layers (masks alternate)", set_layers, get_layers},
    {"actnorm", "0|1", "nf: an ActNorm before each coupling, set from the first batch", set_actnorm, get_actnorm},
    {"coupling-scale", "S", "nf: bound of the coupling's log-scale, S tanh(s / S)", set_scale, get_scale},
    {NULL, NULL, NULL, NULL, NULL},
};

const fm__method fm__method_nf = {
    .id = 5,
    .name = "nf",
    .summary = "normalizing flow: affine coupling layers, exact likelihood, sampled by the inverse",
    .object = "nf",
    .stdz_key = "nf",
    .settings = settings,
    .defaults = defaults,
    .check = check,
    .build = build,
    .init = m_init,
    .step = step,
    .describe = describe,
    .load_config = load_config,
    .free = m_free,
    .save = m_save,
    .load = m_load,
    .dim = m_dim,
    .data = m_data,
    .size = m_size,
    .log_prob = m_log_prob,
    .sampling = FM_SAMPLING_DIRECT,
    .sample = sample,
};
