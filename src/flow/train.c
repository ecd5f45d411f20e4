/* train.c - conditional flow matching training, one step at a time.
 *
 * Each step draws a batch of data x1, source points x0, times t ~ U[0, t_end]
 * and (when the path has c != 0) extra noise, forms x_t and the target u_t
 * from the path's coefficients, and takes one optimizer step on
 * mean |v(t, x_t) - u_t|^2. Data, source, time and initialisation use separate
 * random streams of one seed, so runs repeat bit for bit. The caller drives the
 * loop and reports progress; nothing here prints.
 *
 * With several threads the batch is split into contiguous shards, one per
 * thread, each with its own tape and gradient buffer; the gradients are then
 * added in shard order. The same seed and thread count therefore give the same
 * bits; another thread count sums in another order.
 */
#include "../internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define MAX_WORKERS 16

struct fm_trainer {
    fm_train_config cfg; /* data / source point into flow's copies */
    fm_flow *flow;
    fm_dataset *data;
    fm_optim *opt;
    fm_ema *ema;
    fm_tape *tp;                   /* worker 0's tape */
    fm_tape *tps[MAX_WORKERS];     /* workers 1.. */
    fm_params *rep[MAX_WORKERS];   /* their gradient replicas */
    fm_rng rdata, rnoise, rtime;
    int64_t iter;
    float *x1, *x0, *t, *xt, *ut, *eps; /* (batch * dim) each; t (batch) */
    int *match, *pi, *pj;               /* (batch) coupling indices */
    float *scratch;                     /* (2 batch dim) for re-pairing */
    float *pair0, *pair1;               /* (npairs, dim) fixed pairs (reflow), network units */
    int npairs;
    int64_t unconverged;                /* Sinkhorn plans that missed their tolerance */
};

fm_train_config fm_train_config_default(void)
{
    fm_train_config c;
    memset(&c, 0, sizeof c);
    c.flow.net = fm_mlp_config_default(2);
    c.flow.path = fm_path_default(FM_PATH_OT);
    c.flow.dim = 2;
    c.flow.data = "moons";
    c.flow.source = "gaussian";
    c.optim = fm_optim_config_default(FM_OPTIM_ADAM);
    c.optim.lr = 1e-2;
    c.sched.kind = FM_SCHED_CONSTANT;
    c.batch = 256;
    c.iters = 10000;
    c.seed = 0;
    c.standardize = -1;
    return c;
}

void fm_trainer_free(fm_trainer *tr)
{
    if (!tr) return;
    fm_flow_free(tr->flow);
    fm_dataset_free(tr->data);
    fm_optim_free(tr->opt);
    fm_ema_free(tr->ema);
    fm_tape_free(tr->tp);
    for (int w = 0; w < MAX_WORKERS; w++) {
        fm_tape_free(tr->tps[w]);
        fm_params_free(tr->rep[w]);
    }
    free(tr->x1);
    free(tr->x0);
    free(tr->t);
    free(tr->xt);
    free(tr->ut);
    free(tr->eps);
    free(tr->match);
    free(tr->pi);
    free(tr->pj);
    free(tr->scratch);
    free(tr->pair0);
    free(tr->pair1);
    free(tr);
}

/* Column means and standard deviations (population) of a table, in double. */
static fm_status table_moments(const fm_table *t, float *mean, float *std)
{
    for (int j = 0; j < t->cols; j++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < t->rows; i++) s += t->data[(size_t)i * t->cols + j];
        double m = s / t->rows;
        for (int i = 0; i < t->rows; i++) {
            double d = t->data[(size_t)i * t->cols + j] - m;
            s2 += d * d;
        }
        double sd = sqrt(s2 / t->rows);
        if (!(sd > 0))
            return fm__fail(FM_ERR_ARG, "column %d%s%s%s of the data is constant (%g): it cannot be standardised", j + 1,
                            t->names ? " '" : "", t->names ? t->names[j] : "", t->names ? "'" : "", m);
        mean[j] = (float)m;
        std[j] = (float)sd;
    }
    return FM_OK;
}

/* Everything but the weights, the optimizer state and the streams. */
static fm_trainer *trainer_build(const fm_train_config *cfg, fm_dataset *data)
{
    fm_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) {
        fm_dataset_free(data);
        fm__fail(FM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    tr->cfg = *cfg;
    tr->data = data;
    if (cfg->batch < 1 || cfg->batch > (1 << 24)) {
        fm__fail(FM_ERR_ARG, "batch size %d is invalid", cfg->batch);
        goto fail;
    }
    if (cfg->iters < 0) {
        fm__fail(FM_ERR_ARG, "iteration count %lld is invalid", (long long)cfg->iters);
        goto fail;
    }
    if (!(cfg->clip >= 0) || !(cfg->ema_decay >= 0 && cfg->ema_decay < 1)) {
        fm__fail(FM_ERR_ARG, "clip must be >= 0 and EMA decay in [0, 1)");
        goto fail;
    }
    if (cfg->coupling < 0 || cfg->coupling >= FM_COUPLING_COUNT) {
        fm__fail(FM_ERR_ARG, "unknown coupling %d", (int)cfg->coupling);
        goto fail;
    }
    if (cfg->coupling == FM_COUPLING_SB && !(cfg->flow.path.kind == FM_PATH_SB && cfg->flow.path.sigma > 0)) {
        fm__fail(FM_ERR_ARG, "the Schrodinger-bridge coupling needs the sb path with sigma > 0 (its plan's "
                             "regularisation is 2 sigma^2)");
        goto fail;
    }
    fm_flow_config fc = cfg->flow;
    fc.dim = fm_dataset_dim(data);
    fc.data = fm_dataset_spec(data);
    if (!fm__is_gaussian_source(cfg->flow.source)) {
        fm_dataset *src = fm_dataset_open(cfg->flow.source);
        if (!src) {
            fm__fail(FM_ERR_ARG, "source: %s", fm_last_error());
            goto fail;
        }
        if (fm_dataset_dim(src) != fc.dim) {
            fm__fail(FM_ERR_SHAPE, "source '%s' has %d dimensions but the data has %d", cfg->flow.source,
                     fm_dataset_dim(src), fc.dim);
            fm_dataset_free(src);
            goto fail;
        }
        char *canon = fm__strdup(fm_dataset_spec(src));
        fm_dataset_free(src);
        fc.source = canon;
        tr->flow = fm_flow_new(&fc);
        free(canon);
    } else {
        fc.source = "gaussian";
        tr->flow = fm_flow_new(&fc);
    }
    if (!tr->flow) goto fail;
    tr->cfg.flow = *fm_flow_get_config(tr->flow);
    tr->opt = fm_optim_new(fm_flow_params(tr->flow), &cfg->optim);
    if (!tr->opt) goto fail;
    if (cfg->ema_decay > 0) {
        tr->ema = fm_ema_new(fm_flow_params(tr->flow), (float)cfg->ema_decay);
        if (!tr->ema) goto fail;
    }
    tr->tp = fm_tape_new(0);
    size_t n = (size_t)cfg->batch * fc.dim;
    tr->x1 = malloc(n * sizeof(float));
    tr->x0 = malloc(n * sizeof(float));
    tr->xt = malloc(n * sizeof(float));
    tr->ut = malloc(n * sizeof(float));
    tr->eps = malloc(n * sizeof(float));
    tr->t = malloc((size_t)cfg->batch * sizeof(float));
    tr->match = malloc((size_t)cfg->batch * sizeof(int));
    tr->pi = malloc((size_t)cfg->batch * sizeof(int));
    tr->pj = malloc((size_t)cfg->batch * sizeof(int));
    tr->scratch = malloc(2 * n * sizeof(float));
    if (!tr->tp || !tr->x1 || !tr->x0 || !tr->xt || !tr->ut || !tr->eps || !tr->t || !tr->match || !tr->pi ||
        !tr->pj || !tr->scratch) {
        fm__fail(FM_ERR_NOMEM, "out of memory for a batch of %d", cfg->batch);
        goto fail;
    }
    return tr;
fail:
    fm_trainer_free(tr);
    return NULL;
}

fm_trainer *fm_trainer_new(const fm_train_config *cfg)
{
    if (!cfg || !cfg->flow.data) {
        fm__fail(FM_ERR_ARG, "no training data given");
        return NULL;
    }
    fm_dataset *data = fm_dataset_open(cfg->flow.data);
    if (!data) return NULL;
    const fm_table *tab = fm_dataset_table(data);
    int standardize = cfg->standardize < 0 ? tab != NULL : cfg->standardize;
    if (standardize && !tab) {
        fm__fail(FM_ERR_ARG, "standardisation needs a CSV dataset ('%s' is a generator)", cfg->flow.data);
        fm_dataset_free(data);
        return NULL;
    }
    fm_trainer *tr = trainer_build(cfg, data);
    if (!tr) return NULL;
    tr->cfg.standardize = standardize;
    if (standardize) {
        int d = tab->cols;
        float *m = malloc((size_t)d * 2 * sizeof(float));
        fm_status s = m ? table_moments(tab, m, m + d) : fm__fail(FM_ERR_NOMEM, "out of memory for the data's moments");
        if (!s) s = fm_flow_set_standardization(tr->flow, m, m + d);
        free(m);
        if (s) {
            fm_trainer_free(tr);
            return NULL;
        }
    }
    fm_rng init;
    fm_rng_seed(&init, cfg->seed, FM_STREAM_INIT);
    fm_flow_init(tr->flow, &init);
    if (tr->ema) {
        fm_ema_free(tr->ema);
        tr->ema = fm_ema_new(fm_flow_params(tr->flow), (float)cfg->ema_decay);
        if (!tr->ema) {
            fm_trainer_free(tr);
            return NULL;
        }
    }
    fm_rng_seed(&tr->rdata, cfg->seed, FM_STREAM_DATA);
    fm_rng_seed(&tr->rnoise, cfg->seed, FM_STREAM_NOISE);
    fm_rng_seed(&tr->rtime, cfg->seed, FM_STREAM_TIME);
    return tr;
}

fm_flow *fm_trainer_flow(fm_trainer *tr) { return tr->flow; }
int64_t fm_trainer_iter(const fm_trainer *tr) { return tr->iter; }
const fm_train_config *fm_trainer_get_config(const fm_trainer *tr) { return &tr->cfg; }
fm_ema *fm_trainer_ema(fm_trainer *tr) { return tr->ema; }

int64_t fm_trainer_unconverged(const fm_trainer *tr) { return tr->unconverged; }

double fm_trainer_lr(const fm_trainer *tr) { return fm_schedule_lr(&tr->cfg.sched, tr->cfg.optim.lr, tr->iter); }

/* Workers for one step: the thread setting, but at least 32 rows and some
 * real work each, and the tapes and replicas they need. */
static int workers_for(fm_trainer *tr)
{
    int B = tr->cfg.batch, nw = fm_get_threads();
    double work = (double)B * (double)fm_params_size(fm_flow_params(tr->flow)) * 3;
    if (nw > B / 32) nw = B / 32;
    if (nw > (int)(work / 1e6)) nw = (int)(work / 1e6);
    if (nw > MAX_WORKERS) nw = MAX_WORKERS;
    if (nw < 2) return 1;
    for (int w = 1; w < nw; w++) {
        if (!tr->tps[w]) tr->tps[w] = fm_tape_new(0);
        if (!tr->rep[w]) tr->rep[w] = fm__params_replica(fm_flow_params(tr->flow));
        if (!tr->tps[w] || !tr->rep[w]) return 1; /* out of memory: run on one */
    }
    return nw;
}

/* Forward and backward of rows [r0, r1): loss part sum |v - u|^2 / (B d) into
 * *loss, gradients into worker w's buffer (P itself for worker 0). */
static fm_status shard(fm_trainer *tr, int w, int r0, int r1, double *loss)
{
    int B = tr->cfg.batch, d = fm_flow_get_config(tr->flow)->dim, m = r1 - r0;
    fm_tape *tp = w ? tr->tps[w] : tr->tp;
    fm_params *P = w ? tr->rep[w] : fm_flow_params(tr->flow);
    fm_tape_reset(tp);
    int ts[2] = {m, 1}, xs[2] = {m, d};
    fm_tensor *T = fm_tensor_wrap(tp, tr->t + r0, 2, ts);
    fm_tensor *X = fm_tensor_wrap(tp, tr->xt + (size_t)r0 * d, 2, xs);
    fm_tensor *U = fm_tensor_wrap(tp, tr->ut + (size_t)r0 * d, 2, xs);
    fm_params_requires_grad(P, 1);
    fm_tensor *sq = fm_mse_loss(tp, fm__mlp_forward_with(tp, fm_flow_net(tr->flow), P, T, X), U, FM_REDUCE_SUM);
    fm_tensor *l = fm_scale(tp, sq, (float)(1.0 / ((double)B * d)));
    if (!l) {
        *loss = NAN;
        return fm_tape_status(tp);
    }
    *loss = l->data[0];
    fm_params_zero_grad(P);
    if (!isfinite(*loss)) return FM_OK; /* reported by the caller, before any update */
    return fm_backward(tp, l, NULL);
}

/* Re-pair the batch's x0 and x1 by the configured coupling. */
static fm_status couple(fm_trainer *tr, int B, int d)
{
    const fm_train_config *c = &tr->cfg;
    size_t n = (size_t)B * d;
    if (c->coupling == FM_COUPLING_OT) {
        fm_status s = fm_ot_pairing(tr->x0, tr->x1, B, d, tr->match);
        if (s) return s;
        memcpy(tr->scratch, tr->x1, n * sizeof(float));
        for (int i = 0; i < B; i++)
            memcpy(tr->x1 + (size_t)i * d, tr->scratch + (size_t)tr->match[i] * d, (size_t)d * sizeof(float));
    } else if (c->coupling == FM_COUPLING_SB) {
        double sg = c->flow.path.sigma;
        int it = 0;
        fm_status s = fm_sinkhorn_pairs(tr->x0, tr->x1, B, d, 2 * sg * sg, FM_SINKHORN_MAX_ITER, 1e-4, &tr->rnoise,
                                        tr->pi, tr->pj, &it);
        if (s) return s;
        tr->unconverged += it < 0;
        memcpy(tr->scratch, tr->x0, n * sizeof(float));
        memcpy(tr->scratch + n, tr->x1, n * sizeof(float));
        for (int i = 0; i < B; i++) {
            memcpy(tr->x0 + (size_t)i * d, tr->scratch + (size_t)tr->pi[i] * d, (size_t)d * sizeof(float));
            memcpy(tr->x1 + (size_t)i * d, tr->scratch + n + (size_t)tr->pj[i] * d, (size_t)d * sizeof(float));
        }
    }
    return FM_OK;
}

fm_status fm_trainer_set_pairs(fm_trainer *tr, const float *x0, const float *x1, int n)
{
    int d = fm_flow_get_config(tr->flow)->dim;
    if (n < 1) return fm__fail(FM_ERR_ARG, "no pairs given");
    float *a = malloc((size_t)n * d * sizeof(float)), *b = malloc((size_t)n * d * sizeof(float));
    if (!a || !b) {
        free(a);
        free(b);
        return fm__fail(FM_ERR_NOMEM, "out of memory for %d pairs", n);
    }
    memcpy(a, x0, (size_t)n * d * sizeof(float));
    memcpy(b, x1, (size_t)n * d * sizeof(float));
    free(tr->pair0);
    free(tr->pair1);
    tr->pair0 = a;
    tr->pair1 = b;
    tr->npairs = n;
    return FM_OK;
}

fm_status fm_trainer_init_from(fm_trainer *tr, fm_flow *from)
{
    fm_params *P = fm_flow_params(tr->flow), *Q = fm_flow_params(from);
    if (fm_params_size(P) != fm_params_size(Q) || fm_params_count(P) != fm_params_count(Q))
        return fm__fail(FM_ERR_SHAPE, "the models differ in shape (%zu and %zu parameters)", fm_params_size(P),
                        fm_params_size(Q));
    memcpy(fm_params_data(P), fm_params_data(Q), fm_params_size(P) * sizeof(float));
    const float *mean, *sd;
    if (fm_flow_standardized(from, &mean, &sd)) {
        fm_status s = fm_flow_set_standardization(tr->flow, mean, sd);
        if (s) return s;
    }
    if (tr->ema) memcpy(fm_ema_data(tr->ema), fm_params_data(P), fm_params_size(P) * sizeof(float));
    return FM_OK;
}

fm_status fm_trainer_step(fm_trainer *tr, double *loss_out)
{
    const fm_flow_config *fc = fm_flow_get_config(tr->flow);
    const fm_path *path = &fc->path;
    int B = tr->cfg.batch, d = fc->dim;
    size_t n = (size_t)B * d;
    fm_status s = FM_OK;
    if (tr->npairs) { /* fixed pairs (reflow), already in network units */
        for (int i = 0; i < B; i++) {
            uint32_t k = (uint32_t)(((fm_rng_next(&tr->rdata) >> 32) * (uint64_t)tr->npairs) >> 32);
            memcpy(tr->x0 + (size_t)i * d, tr->pair0 + (size_t)k * d, (size_t)d * sizeof(float));
            memcpy(tr->x1 + (size_t)i * d, tr->pair1 + (size_t)k * d, (size_t)d * sizeof(float));
        }
    } else {
        s = fm_dataset_sample(tr->data, &tr->rdata, tr->x1, B);
        if (!s) s = fm_flow_source(tr->flow, &tr->rnoise, tr->x0, B);
        if (s) return s;
        fm_flow_to_model(tr->flow, tr->x1, B);
        if ((s = couple(tr, B, d))) return s;
    }
    /* t in (0, t_end): never exactly an end, where some paths' targets are infinite */
    fm_rng_uniform_fill(&tr->rtime, tr->t, (size_t)B, 0.0f, 1.0f);
    for (int i = 0; i < B; i++) { /* u + 2^-25 can round to 1 in float: step back below t_end */
        float t = (float)(path->t_end * (tr->t[i] + 0x1.0p-25));
        while ((double)t >= path->t_end) t = nextafterf(t, 0.0f);
        tr->t[i] = t;
    }
    int noisy = (path->kind == FM_PATH_ICFM || path->kind == FM_PATH_SB) && path->sigma > 0;
    if (noisy) fm_rng_normal_fill(&tr->rnoise, tr->eps, n, 0.0f, 1.0f);
    for (int i = 0; i < B; i++) {
        fm_path_coef c;
        fm_path_coef_at(path, tr->t[i], &c);
        for (int j = 0; j < d; j++) {
            size_t k = (size_t)i * d + j;
            double e = noisy ? tr->eps[k] : 0.0;
            tr->xt[k] = (float)(c.a * tr->x1[k] + c.b * tr->x0[k] + c.c * e);
            tr->ut[k] = (float)(c.da * tr->x1[k] + c.db * tr->x0[k] + c.dc * e);
        }
    }
    fm_params *P = fm_flow_params(tr->flow);
    int nw = workers_for(tr);
    double parts[MAX_WORKERS];
    fm_status st[MAX_WORKERS];
    if (nw == 1) {
        st[0] = shard(tr, 0, 0, B, &parts[0]);
    } else {
        FM__PARALLEL_FOR(nw)
        for (int w = 0; w < nw; w++) st[w] = shard(tr, w, (int)((long)B * w / nw), (int)((long)B * (w + 1) / nw), &parts[w]);
    }
    double L = 0;
    for (int w = 0; w < nw; w++) {
        if (st[w] != FM_OK) {
            /* a worker's message is in its tape (fm_last_error is per thread) */
            const char *msg = (w ? tr->tps[w] : tr->tp)->msg;
            return fm__fail(st[w], "%s", msg[0] || w == 0 ? (msg[0] ? msg : fm_last_error()) : "a worker thread failed");
        }
        L += parts[w];
    }
    if (loss_out) *loss_out = L;
    if (!isfinite(L))
        return fm__fail(FM_ERR_NUMERIC, "training diverged: the loss is %g at iteration %lld (learning rate %g)", L,
                        (long long)tr->iter + 1, fm_trainer_lr(tr));
    /* worker 0 wrote into P's gradient; add the others in shard order */
    float *g = fm_params_grad(P);
    size_t np = fm_params_size(P);
    for (int w = 1; w < nw; w++) {
        const float *gw = fm_params_grad(tr->rep[w]);
        for (size_t i = 0; i < np; i++) g[i] += gw[i];
    }
    /* The norm is taken every step, clipping or not: a non-finite gradient
     * stops training before it reaches the weights. */
    s = fm_clip_grad_norm(P, tr->cfg.clip, NULL);
    if (s) return fm__fail(s, "iteration %lld: %s", (long long)tr->iter + 1, fm_last_error());
    if ((s = fm_optim_step(tr->opt, fm_trainer_lr(tr)))) return s;
    if (tr->ema && (s = fm_ema_update(tr->ema, P))) return s;
    tr->iter++;
    return FM_OK;
}

/* ------------------------------------------------------------------ checkpoints */

fm_status fm_trainer_save(fm_trainer *tr, const char *path)
{
    fm_st_writer *w = fm_st_writer_new();
    if (!w) return FM_ERR_NOMEM;
    const fm_train_config *c = &tr->cfg;
    char hex[65];
    fm_status s = fm_flow_save(tr->flow, w);
    if (!s) s = fm_optim_save(tr->opt, w);
    if (!s && tr->ema) s = fm_ema_save(tr->ema, fm_flow_params(tr->flow), w);
    if (!s) s = fm__meta_put_num(w, "train.iter", (double)tr->iter);
    if (!s) s = fm__meta_put_num(w, "train.iters", (double)c->iters);
    if (!s) s = fm__meta_put_num(w, "train.batch", c->batch);
    if (!s) {
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
        s = fm_st_writer_meta(w, "train.seed", seed);
    }
    if (!s) s = fm_st_writer_meta(w, "train.schedule", fm_sched_name(c->sched.kind));
    if (!s) s = fm__meta_put_num(w, "train.warmup", (double)c->sched.warmup);
    if (!s) s = fm__meta_put_num(w, "train.min_lr", c->sched.min_lr);
    if (!s) s = fm__meta_put_num(w, "train.clip", c->clip);
    if (!s) s = fm__meta_put_num(w, "train.ema", c->ema_decay);
    if (!s) s = fm__meta_put_num(w, "train.standardize", c->standardize);
    if (!s) s = fm_st_writer_meta(w, "train.coupling", tr->npairs ? "reflow" : fm_coupling_name(c->coupling));
    if (!s) fm_rng_to_hex(&tr->rdata, hex), s = fm_st_writer_meta(w, "rng.data", hex);
    if (!s) fm_rng_to_hex(&tr->rnoise, hex), s = fm_st_writer_meta(w, "rng.noise", hex);
    if (!s) fm_rng_to_hex(&tr->rtime, hex), s = fm_st_writer_meta(w, "rng.time", hex);
    if (!s) s = fm_st_writer_save(w, path);
    fm_st_writer_free(w);
    return s;
}

fm_trainer *fm_trainer_resume(const char *path, int64_t iters)
{
    fm_st *st = fm_st_load(path);
    if (!st) return NULL;
    fm_trainer *tr = NULL;
    fm_train_config c = fm_train_config_default();
    double it = 0, tot = 0, batch = 0, warm = 0, minlr = 0, clip = 0, ema = 0, stdz = 0;
    fm_status s = fm_flow_config_load(&c.flow, st);
    if (!s && !fm_st_meta(st, "train.iter"))
        s = fm__fail(FM_ERR_FORMAT, "%s holds a model but no training state (not a training checkpoint)", path);
    if (!s) s = fm_optim_config_load(&c.optim, st);
    if (!s) s = fm__meta_get_whole(st, "train.iter", 0, 9e15, &it);
    if (!s) s = fm__meta_get_whole(st, "train.iters", 0, 9e15, &tot);
    if (!s) s = fm__meta_get_whole(st, "train.batch", 1, 1 << 24, &batch);
    const char *seed = fm_st_meta(st, "train.seed");
    char *seed_end = NULL;
    unsigned long long seed_v = seed ? strtoull(seed, &seed_end, 10) : 0;
    if (!s && (!seed || seed_end == seed || *seed_end))
        s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'train.seed' is missing or invalid");
    if (!s) s = fm__meta_get_whole(st, "train.warmup", 0, 9e15, &warm);
    if (!s) s = fm__meta_get_num(st, "train.min_lr", &minlr);
    if (!s) s = fm__meta_get_num(st, "train.clip", &clip);
    if (!s) s = fm__meta_get_num(st, "train.ema", &ema);
    if (!s) s = fm__meta_get_whole(st, "train.standardize", -1, 1, &stdz);
    if (!s && (!(minlr >= 0) || !(clip >= 0) || !(ema >= 0 && ema < 1)))
        s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata: min_lr, clip or ema out of range");
    const char *ck = fm_st_meta(st, "train.coupling");
    if (!s && ck && !strcmp(ck, "reflow"))
        s = fm__fail(FM_ERR_ARG, "%s was trained by reflow on pairs the checkpoint does not keep: it cannot be resumed",
                     path);
    int coupling = ck ? fm_coupling_from_name(ck) : FM_COUPLING_INDEPENDENT;
    if (!s && coupling < 0) s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'train.coupling' = '%s' is unknown", ck);
    const char *sk = fm_st_meta(st, "train.schedule");
    int sched = fm_sched_from_name(sk);
    if (!s && sched < 0) s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'train.schedule' is invalid");
    if (s) goto done;
    c.iters = iters > 0 ? iters : (int64_t)tot;
    if (c.iters <= (int64_t)it) {
        fm__fail(FM_ERR_ARG, "%s has done %lld iterations already; ask for more than that (--iters)", path,
                 (long long)it);
        goto done;
    }
    c.batch = (int)batch;
    c.seed = (uint64_t)seed_v;
    c.sched.kind = (fm_sched_kind)sched;
    c.sched.warmup = (int64_t)warm;
    c.sched.total = c.iters;
    c.sched.min_lr = minlr;
    c.clip = clip;
    c.ema_decay = ema;
    c.standardize = (int)stdz;
    c.coupling = (fm_coupling)coupling;
    fm_dataset *data = fm_dataset_open(c.flow.data);
    if (!data) {
        fm__fail(FM_ERR_ARG, "%s: its training data: %s", path, fm_last_error());
        goto done;
    }
    tr = trainer_build(&c, data);
    if (!tr) goto done;
    fm_flow *loaded = fm_flow_load(st, 0);
    if (!loaded) goto fail;
    const float *mean, *std;
    s = fm_flow_standardized(loaded, &mean, &std) ? fm_flow_set_standardization(tr->flow, mean, std) : FM_OK;
    if (!s) s = fm_params_load(fm_flow_params(tr->flow), st, NULL);
    fm_flow_free(loaded);
    if (!s) s = fm_optim_load(tr->opt, st);
    if (!s && tr->ema) s = fm_ema_load(tr->ema, fm_flow_params(tr->flow), st);
    if (!s) s = fm_rng_from_hex(&tr->rdata, fm_st_meta(st, "rng.data"));
    if (!s) s = fm_rng_from_hex(&tr->rnoise, fm_st_meta(st, "rng.noise"));
    if (!s) s = fm_rng_from_hex(&tr->rtime, fm_st_meta(st, "rng.time"));
    if (s) goto fail;
    tr->iter = (int64_t)it;
    goto done;
fail:
    fm_trainer_free(tr);
    tr = NULL;
done:
    fm_st_free(st);
    return tr;
}
