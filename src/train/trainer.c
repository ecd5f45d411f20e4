/* trainer.c - the generic trainer: a method's steps, one at a time.
 *
 * It owns what every method's training shares: the data and the batch drawn
 * from it (labels, dequantisation, standardisation), the parameter groups with
 * their optimizers, gradient clipping, the learning-rate schedule, EMA, the
 * NaN guard, the thread shards, and checkpoints and resuming. What a step
 * computes is the method's (src/methods/, through fm__method); this file
 * never names a method. Data, source, time and initialisation use separate
 * random streams of one seed, so runs repeat bit for bit. The caller drives
 * the loop and reports progress; nothing here prints.
 *
 * With several threads the batch is split into contiguous shards, one per
 * thread, each with its own tape and gradient buffer; the gradients are then
 * added in shard order. The same seed and thread count therefore give the same
 * bits; another thread count sums in another order.
 */
#include "engine/profile.h"
#include "train/method.h"

#include <math.h>
#include <string.h>

/* Steps between the ranks' comparisons of their parameters. */
#define FM__DIST_CHECK_EVERY 100

static fm_trainer *trainer_new_local(const fm__method *m, const fm_train_config *cfg, const void *extra);

fm_train_config fm_train_config_default(void)
{
    fm_train_config c;
    memset(&c, 0, sizeof c);
    c.method = FM_METHOD_FM;
    c.flow.net = fm_mlp_config_default(2);
    c.flow.unet = fm_unet_config_default(0, 0, 0); /* the image shape comes from the data */
    c.flow.path = fm_path_default(FM_PATH_OT);
    c.flow.ddpm = fm_ddpm_schedule_default();
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
    c.cnf.steps = 8;
    c.cnf.solver = FM_SOLVER_RK4;
    c.cnf.hutchinson = -1;
    c.nf.layers = 8;
    c.nf.actnorm = 1;
    c.nf.scale = 2.0;
    c.rfm.manifold = FM_MANIFOLD_AUTO;
    c.rfm.nll_steps = 100;
    c.dfm.source = 0;
    c.dfm.exponent = 2.0;
    c.dfm.gkl = 1;
    c.dfm.corrector = 0.0;
    c.dfm.elbo_samples = 64;
    c.meanflow.ratio = 0.75; /* MeanFlow's CIFAR-10 setting (0.25 on ImageNet) */
    c.meanflow.weight_p = 0.5; /* the paper's 1 (ImageNet) and 0.75 (CIFAR-10); 0.5 measured best on moons */
    c.meanflow.weight_c = 1e-3;
    c.score.sde = FM_PATH_VP;
    c.tdist.kind = FM_TDIST_UNIFORM;
    c.tdist.loc = 0.0;
    c.tdist.scale = 1.0;
    c.label_dropout = 0.1;
    c.vae.latent = 2;
    c.vae.beta = 1.0;
    c.vae.likelihood = FM_VAE_GAUSSIAN;
    c.gan.latent = 2;
    c.gan.k = 1;
    c.gan.loss = FM_GAN_NONSATURATING;
    c.gan.d_nhidden = -1; /* the generator's */
    c.gan.d_optim = fm_optim_config_default(FM_OPTIM_ADAM);
    c.gan.d_optim.lr = 0; /* the generator's */
    return c;
}

void fm_trainer_free(fm_trainer *tr)
{
    if (!tr) return;
    if (tr->ms && tr->m->state_free) tr->m->state_free(tr->ms);
    fm_model_free(tr->model);
    fm_dataset_free(tr->data);
    for (int k = 0; k < 2; k++) {
        fm_optim_free(tr->g[k].opt);
        for (int w = 0; w < FM__TRAIN_WORKERS; w++) fm_params_free(tr->g[k].rep[w]);
    }
    fm_ema_free(tr->ema);
    fm_tape_free(tr->tp);
    for (int w = 0; w < FM__TRAIN_WORKERS; w++) fm_tape_free(tr->tps[w]);
    free(tr->x1);
    free(tr->t);
    free(tr->xt);
    free(tr->ut);
    free(tr->labels);
    free(tr);
}

/* Column means and standard deviations (population) of a table, in double.
 * Refused: one row (no distribution to learn), a constant column, and a
 * column one value dominates (it holds nearly all the variance, so
 * standardising would squash every other row to one point: a typo like 1e30). */
static fm_status table_moments(const fm_table *t, float *mean, float *std)
{
    if (t->rows < 2)
        return fm__fail(FM_ERR_ARG, "the data hold %d row%s: there is no distribution to learn from", t->rows,
                        t->rows == 1 ? "" : "s");
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
        /* a value's share of the variance is (v - m)^2 / (n var): at 99% it alone is the spread */
        for (int i = 0; i < t->rows; i++) {
            double v = t->data[(size_t)i * t->cols + j];
            if ((v - m) * (v - m) >= 0.99 * t->rows * sd * sd)
                return fm__fail(FM_ERR_ARG, "row %d, column %d%s%s%s of the data holds %g, which alone makes %.0f%% of "
                                            "the column's variance: standardising would squash every other row (a "
                                            "typo? or --standardize off)", i + 1, j + 1, t->names ? " '" : "",
                                t->names ? t->names[j] : "", t->names ? "'" : "", v,
                                100.0 * (v - m) * (v - m) / (t->rows * sd * sd));
        }
        if (!isfinite(sd) || !isfinite(m))
            return fm__fail(FM_ERR_ARG, "column %d of the data overflows in standardisation (mean %g, std %g)", j + 1,
                            m, sd);
        mean[j] = (float)m;
        std[j] = (float)sd;
    }
    return FM_OK;
}

static fm_status config_check(const fm__method *m, const fm_train_config *cfg)
{
    if (cfg->batch < 1 || cfg->batch > (1 << 24)) return fm__fail(FM_ERR_ARG, "batch size %d is invalid", cfg->batch);
    if (cfg->iters < 0) return fm__fail(FM_ERR_ARG, "iteration count %lld is invalid", (long long)cfg->iters);
    if (!(cfg->clip >= 0) || !(cfg->ema_decay >= 0 && cfg->ema_decay < 1))
        return fm__fail(FM_ERR_ARG, "clip must be >= 0 and EMA decay in [0, 1)");
    if (cfg->dequantize && !fm_spec_image_shape(cfg->flow.data, NULL, NULL, NULL))
        return fm__fail(FM_ERR_ARG, "dequantisation spreads pixel bytes: it needs image data ('%s' is not)",
                        cfg->flow.data ? cfg->flow.data : "none");
    if (cfg->flow.arch < 0 || cfg->flow.arch >= FM_ARCH_COUNT)
        return fm__fail(FM_ERR_ARG, "unknown network architecture %d", (int)cfg->flow.arch);
    if (cfg->coupling < 0 || cfg->coupling >= FM_COUPLING_COUNT)
        return fm__fail(FM_ERR_ARG, "unknown coupling %d", (int)cfg->coupling);
    if (!(cfg->label_dropout >= 0 && cfg->label_dropout < 1))
        return fm__fail(FM_ERR_ARG, "label dropout %g is outside [0, 1)", cfg->label_dropout);
    return m->check ? m->check(cfg) : FM_OK;
}

fm_status fm__setting_whole(const char *what, const char *v, long lo, long hi, int *out)
{
    char *end = NULL;
    long k = strtol(v, &end, 10);
    if (end == v || *end || k < lo || k > hi)
        return fm__fail(FM_ERR_ARG, "%s = '%s' must be a whole number in %ld..%ld", what, v, lo, hi);
    *out = (int)k;
    return FM_OK;
}

fm_status fm__setting_number(const char *what, const char *v, double lo, double hi, int open_lo, double *out)
{
    char *end = NULL;
    double x = strtod(v, &end);
    if (end == v || *end || !(open_lo ? x > lo : x >= lo) || !(x <= hi))
        return fm__fail(FM_ERR_ARG, "%s = '%s' must be a number in %c%g, %g]", what, v, open_lo ? '(' : '[', lo, hi);
    *out = x;
    return FM_OK;
}

fm_status fm__train_plain_noise(const fm_train_config *c, const char *name)
{
    if (c->coupling != FM_COUPLING_INDEPENDENT)
        return fm__fail(FM_ERR_ARG, "couplings pair flow matching's source and data; %s has none", name);
    if (!fm__is_gaussian_source(c->flow.source))
        return fm__fail(FM_ERR_ARG, "%s draws its noise from N(0, I); a source dataset is for flow matching", name);
    return FM_OK;
}

fm_status fm__train_mlp_only(const fm_train_config *c, const char *name)
{
    if (c->flow.arch != FM_ARCH_MLP)
        return fm__fail(FM_ERR_ARG, "the %s network is for flow matching and DDPM; %s uses MLPs",
                        fm_arch_name(c->flow.arch), name);
    if (c->flow.unet.num_classes)
        return fm__fail(FM_ERR_ARG, "class conditioning is for the U-Net of flow matching and DDPM (--arch unet)");
    return FM_OK;
}

/* Everything but the weights, the optimizer state and the streams. */
static fm_trainer *trainer_build(const fm__method *m, const fm_train_config *cfg, fm_dataset *data, const void *extra)
{
    fm_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) {
        fm_dataset_free(data);
        fm__fail(FM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    tr->m = m;
    tr->extra = extra;
    tr->cfg = *cfg;
    tr->data = data;
    if (config_check(m, cfg)) goto fail;
    int dim = fm_dataset_dim(data);
    char *canon = NULL;
    if (!fm__is_gaussian_source(cfg->flow.source)) {
        fm_dataset *src = fm_dataset_open(cfg->flow.source);
        if (!src) {
            fm__fail(FM_ERR_ARG, "source: %s", fm_last_error());
            goto fail;
        }
        if (fm_dataset_dim(src) != dim) {
            fm__fail(FM_ERR_SHAPE, "source '%s' has %d dimensions but the data has %d", cfg->flow.source,
                     fm_dataset_dim(src), dim);
            fm_dataset_free(src);
            goto fail;
        }
        canon = fm__strdup(fm_dataset_spec(src));
        fm_dataset_free(src);
        if (!canon) {
            fm__fail(FM_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    tr->g[0].oc = cfg->optim;
    tr->g[0].optim_key = "optim";
    tr->ngroups = 1;
    fm_status s = m->build(tr, cfg, dim, fm_dataset_spec(data), canon ? canon : "gaussian");
    free(canon);
    if (s) {
        if (tr->obj) m->free(tr->obj); /* a build that failed after making its model */
        tr->obj = NULL;
        goto fail;
    }
    tr->model = fm__model_wrap(m, tr->obj); /* frees obj on failure */
    if (!tr->model) {
        tr->obj = NULL;
        goto fail;
    }
    tr->cfg.flow.data = fm_model_data(tr->model);
    tr->cfg.flow.dim = dim;
    for (int k = 0; k < tr->ngroups; k++) {
        tr->g[k].opt = fm_optim_new(tr->g[k].P, &tr->g[k].oc);
        if (!tr->g[k].opt) goto fail;
    }
    if (cfg->ema_decay > 0) {
        tr->ema = fm_ema_new(tr->g[0].P, (float)cfg->ema_decay);
        if (!tr->ema) goto fail;
    }
    tr->tp = fm_tape_new(0);
    if (!m->own_batches) tr->x1 = malloc((size_t)cfg->batch * dim * sizeof(float));
    if (tr->nclasses) {
        tr->labels = malloc((size_t)cfg->batch * sizeof(int));
        if (!tr->labels) {
            fm__fail(FM_ERR_NOMEM, "out of memory for a batch of %d", cfg->batch);
            goto fail;
        }
    }
    if (m->forward) {
        tr->t = malloc((size_t)cfg->batch * sizeof(float));
        tr->xt = malloc((size_t)cfg->batch * dim * sizeof(float));
        tr->ut = malloc((size_t)cfg->batch * dim * sizeof(float));
        if (!tr->t || !tr->xt || !tr->ut) {
            fm__fail(FM_ERR_NOMEM, "out of memory for a batch of %d", cfg->batch);
            goto fail;
        }
    }
    if (!tr->tp || (!m->own_batches && !tr->x1)) {
        fm__fail(FM_ERR_NOMEM, "out of memory for a batch of %d", cfg->batch);
        goto fail;
    }
    if (m->state_new && m->state_new(tr)) goto fail;
    tr->extra = NULL; /* the caller's: read by build and state_new only */
    return tr;
fail:
    fm_trainer_free(tr);
    return NULL;
}

static int shard_count(const fm_trainer *tr);

/* The CRC-32 of what every rank must hold alike: every group's parameters and the EMA. */
static uint64_t state_hash(fm_trainer *tr)
{
    uint32_t h = 0;
    for (int k = 0; k < tr->ngroups; k++)
        h = fm__crc32(h, fm_params_data(tr->g[k].P), fm_params_size(tr->g[k].P) * sizeof(float));
    if (tr->ema) h = fm__crc32(h, fm_ema_data(tr->ema), fm_params_size(tr->g[0].P) * sizeof(float));
    return h;
}

/* Several ranks: a trainer made (or not) on every rank alike, with the same
 * state, and a batch that gives every rank a shard. */
fm_trainer *fm__trainer_agreed(fm_trainer *tr)
{
    if (!fm__dist_on()) return tr;
    fm_status s = tr ? FM_OK : fm_last_status() ? fm_last_status() : FM_ERR_IO;
    int pt = fm__dist_plan_threads(); /* rank 0's: ranks started with other --threads still cut batches alike */
    if (tr) tr->plan_threads = pt;
    int nr = fm_dist_size(), S = tr ? shard_count(tr) : 0;
    if (!s && nr > FM__TRAIN_WORKERS)
        s = fm__fail(FM_ERR_ARG, "%d ranks: a batch is cut into at most %d shards, so at most %d ranks take part", nr,
                     FM__TRAIN_WORKERS, FM__TRAIN_WORKERS);
    if (!s && S < nr) {
        double np = 0;
        for (int k = 0; k < tr->ngroups; k++) np += (double)fm_params_size(tr->g[k].P);
        double need = fmax(32.0 * nr, ceil(nr * 1e6 / (3 * np)));
        s = fm__fail(FM_ERR_ARG, "a batch of %d cuts into %d shard%s (of at least 32 rows and 1e6 multiply-adds each), "
                                 "too few for %d ranks: use a batch of at least %.0f, or fewer ranks",
                     tr->cfg.batch, S, S == 1 ? "" : "s", nr, need);
    }
    s = fm_dist_agree(s);
    if (!s) s = fm__dist_same(state_hash(tr), "the initial parameters");
    if (s) {
        fm_trainer_free(tr);
        return NULL;
    }
    return tr;
}

fm_trainer *fm__trainer_new(const fm__method *m, const fm_train_config *cfg, const void *extra)
{
    return fm__trainer_agreed(trainer_new_local(m, cfg, extra));
}

static fm_trainer *trainer_new_local(const fm__method *m, const fm_train_config *cfg, const void *extra)
{
    if (!cfg || !cfg->flow.data) {
        fm__fail(FM_ERR_ARG, "no training data given");
        return NULL;
    }
    fm_dataset *data = fm_dataset_open(cfg->flow.data);
    if (!data) return NULL;
    const fm_table *tab = fm_dataset_table(data);
    int image = fm_spec_image_shape(cfg->flow.data, NULL, NULL, NULL);
    int standardize = cfg->standardize < 0 ? tab != NULL || image : cfg->standardize;
    if (standardize && !tab && !image) {
        fm__fail(FM_ERR_ARG, "standardisation needs a CSV or image dataset ('%s' is a generator)", cfg->flow.data);
        fm_dataset_free(data);
        return NULL;
    }
    if (m->check_data && m->check_data(cfg, data, &standardize)) {
        fm_dataset_free(data);
        return NULL;
    }
    fm_trainer *tr = trainer_build(m, cfg, data, extra);
    if (!tr) return NULL;
    tr->cfg.standardize = standardize;
    if (standardize) {
        /* CSV columns by their moments; image pixels in [0, 1] to [-1, 1] */
        int d = fm_dataset_dim(data);
        float *mo = malloc((size_t)d * 2 * sizeof(float));
        fm_status s = mo ? FM_OK : fm__fail(FM_ERR_NOMEM, "out of memory for the data's moments");
        if (!s && tab) s = table_moments(tab, mo, mo + d);
        else if (!s)
            for (int j = 0; j < 2 * d; j++) mo[j] = 0.5f;
        if (!s) s = fm__stdz_set(tr->z, d, mo, mo + d);
        free(mo);
        if (s) {
            fm_trainer_free(tr);
            return NULL;
        }
    }
    fm_rng init;
    fm_rng_seed(&init, cfg->seed, FM_STREAM_INIT);
    m->init(tr->obj, &init);
    if (tr->ema) {
        fm_ema_free(tr->ema);
        tr->ema = fm_ema_new(tr->g[0].P, (float)cfg->ema_decay);
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

fm_model *fm_trainer_model(fm_trainer *tr) { return tr->model; }
fm_flow *fm_trainer_flow(fm_trainer *tr) { return fm_model_flow(tr->model); }
int64_t fm_trainer_iter(const fm_trainer *tr) { return tr->iter; }
const fm_train_config *fm_trainer_get_config(const fm_trainer *tr) { return &tr->cfg; }
fm_ema *fm_trainer_ema(fm_trainer *tr) { return tr->ema; }
int64_t fm_trainer_unconverged(const fm_trainer *tr) { return tr->unconverged; }
double fm_trainer_lr(const fm_trainer *tr) { return fm_schedule_lr(&tr->cfg.sched, tr->cfg.optim.lr, tr->iter); }

void fm_trainer_describe(const fm_trainer *tr, char *buf, size_t len)
{
    if (len) buf[0] = '\0';
    if (tr->m->describe && len) tr->m->describe(tr, buf, len);
}

int fm_trainer_loss_parts(const fm_trainer *tr, const char **names, double *values)
{
    for (int i = 0; i < tr->nparts; i++) {
        if (names) names[i] = tr->m->parts[i];
        if (values) values[i] = tr->parts[i];
    }
    return tr->nparts;
}

/* ------------------------------------------------------------------ one step */

fm_status fm__train_finish(fm_tape *tp, fm_params *P, fm_tensor *l, double *loss)
{
    if (!l) {
        *loss = NAN;
        return fm_tape_status(tp);
    }
    *loss = l->data[0];
    fm_params_zero_grad(P);
    if (!isfinite(*loss)) return FM_OK; /* reported by the caller, before any update */
    return fm_backward(tp, l, NULL);
}

/* The shards of a batch: one per thread of every rank, but at least 32 rows
 * and some real work each. One process of N x T threads and N ranks of T
 * threads cut a batch alike. */
int fm__train_shard_count(const fm_trainer *tr) { return shard_count(tr); }

static int shard_count(const fm_trainer *tr)
{
    int B = tr->cfg.batch, nw = (tr->plan_threads > 0 ? tr->plan_threads : fm_get_threads()) * fm_dist_size();
    double work = 0;
    for (int k = 0; k < tr->ngroups; k++) work += (double)fm_params_size(tr->g[k].P);
    work *= (double)B * 3;
    if (nw > B / 32) nw = B / 32;
    if (nw > (int)(work / 1e6)) nw = (int)(work / 1e6);
    if (nw > FM__TRAIN_WORKERS) nw = FM__TRAIN_WORKERS;
    return nw < 2 ? 1 : nw;
}

/* This rank's shards [*s0, *s0 + return) of S, with the tapes and replicas
 * they need; 0 when they cannot be had (a single process then runs on one). */
static int local_shards(fm_trainer *tr, int gi, int S, int *s0)
{
    int nr = fm_dist_size(), r = fm_dist_rank();
    *s0 = fm__split(S, r, nr);
    int L = fm__split(S, r + 1, nr) - *s0;
    fm__group *g = &tr->g[gi];
    for (int w = 1; w < L; w++) {
        if (!tr->tps[w]) tr->tps[w] = fm_tape_new(0);
        if (!g->rep[w]) g->rep[w] = fm__params_replica(g->P);
        if (!tr->tps[w] || !g->rep[w]) return 0;
    }
    return L;
}

/* Several ranks: the shards' statuses and loss parts, in shard order; mine
 * a failure of this rank's before its shards ran (FM_OK when none). */
static fm_status gather_parts(int L, const fm_status *st, const char *const *msg, double (*parts)[3], double *sums,
                              fm_status mine)
{
    for (int w = 0; w < L && !mine; w++)
        if (st[w]) mine = fm__fail(st[w], "%s", msg[w]);
    int nr = fm_dist_size();
    double(*all)[FM__TRAIN_WORKERS][3] = malloc((size_t)nr * sizeof *all);
    if (!all && !mine) mine = fm__fail(FM_ERR_NOMEM, "out of memory");
    fm_status s = fm_dist_agree(mine); /* every rank learns of any failure before the next exchange */
    if (s) {
        free(all);
        return s;
    }
    s = fm__dist_allgather(parts, all, sizeof *all, "the shards' losses");
    for (int r = 0; !s && r < nr; r++) /* every rank's first L_r entries are its shards'; the rest are 0 */
        for (int w = 0; w < FM__TRAIN_WORKERS; w++)
            for (int k = 0; k < 3; k++) sums[k] += all[r][w][k];
    free(all);
    return s;
}

fm_status fm__train_shards(fm_trainer *tr, int gi, fm_params *frozen, fm__shard_fn fn, const char *what, double lr,
                           double *sums)
{
    int B = tr->cfg.batch, S = shard_count(tr), s0 = 0, dist = fm__dist_on();
    fm__group *g = &tr->g[gi];
    int nw = S > 1 ? local_shards(tr, gi, S, &s0) : 1;
    fm_status oom = FM_OK;
    if (nw == 0 && !dist) S = nw = 1; /* out of memory for the replicas: run on one */
    if (nw == 0) oom = fm__fail(FM_ERR_NOMEM, "out of memory for the shards' replicas"); /* told to every rank below */
    double parts[FM__TRAIN_WORKERS][3];
    fm_status st[FM__TRAIN_WORKERS];
    int saved = frozen ? fm__params_get_requires_grad(frozen) : 0;
    if (frozen) fm_params_requires_grad(frozen, 0);
    memset(parts, 0, sizeof parts);
    if (oom) {
        /* nothing computed: the failure goes to the other ranks in the exchange of statuses */
    } else if (nw == 1) { /* the whole batch, or this rank's one shard of several (computed as a worker would) */
        fm_tape_reset(tr->tp);
        fm_params_requires_grad(g->P, 1);
        fm__set_solo(S > 1);
        st[0] = fn(tr, tr->tp, g->P, fm__split(B, s0, S), fm__split(B, s0 + 1, S), parts[0]);
        fm__set_solo(0);
    } else {
        FM__PARALLEL_FOR(nw)
        for (int w = 0; w < nw; w++) {
            fm_tape *tp = w ? tr->tps[w] : tr->tp;
            fm_params *Pw = w ? g->rep[w] : g->P;
            fm_tape_reset(tp);
            fm_params_requires_grad(Pw, 1);
            st[w] = fn(tr, tp, Pw, fm__split(B, s0 + w, S), fm__split(B, s0 + w + 1, S), parts[w]);
        }
    }
    if (frozen) fm_params_requires_grad(frozen, saved);
    sums[0] = sums[1] = sums[2] = 0;
    const char *msg[FM__TRAIN_WORKERS];
    for (int w = 0; w < nw; w++) { /* a worker's message is in its tape (fm_last_error is per thread) */
        const char *m = (w ? tr->tps[w] : tr->tp)->msg;
        msg[w] = m[0] || w == 0 ? (m[0] ? m : fm_last_error()) : "a worker thread failed";
    }
    if (dist) {
        fm_status s = gather_parts(nw, st, msg, parts, sums, oom);
        if (s) return s;
    } else {
        for (int w = 0; w < nw; w++) {
            if (st[w] != FM_OK) return fm__fail(st[w], "%s", msg[w]);
            for (int k = 0; k < 3; k++) sums[k] += parts[w][k];
        }
    }
    if (!isfinite(sums[0]))
        return fm__fail(FM_ERR_NUMERIC, "training diverged: the %s is %g at iteration %lld (learning rate %g)", what,
                        sums[0], (long long)tr->iter + 1, lr);
    /* worker 0 wrote into P's gradient; add the others in shard order (and the ranks' in rank order) */
    const float *more[FM__TRAIN_WORKERS];
    for (int w = 1; w < nw; w++) more[w - 1] = fm_params_grad(g->rep[w]);
    return fm__dist_chain_sum(fm_params_grad(g->P), more, nw - 1, fm_params_size(g->P), "the gradients");
}

/* Regression of the network on (t, x_t) to u_t. */
static fm_status shard_regress(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss)
{
    int B = tr->cfg.batch, d = tr->cfg.flow.dim, m = r1 - r0;
    int ts[2] = {m, 1}, xs[2] = {m, d};
    fm_tensor *T = fm_tensor_wrap(tp, tr->t + r0, 2, ts);
    fm_tensor *X = fm_tensor_wrap(tp, tr->xt + (size_t)r0 * d, 2, xs);
    fm_tensor *U = fm_tensor_wrap(tp, tr->ut + (size_t)r0 * d, 2, xs);
    fm_tensor *sq = fm_mse_loss(tp, tr->m->forward(tp, tr->obj, P, T, X, tr->labels ? tr->labels + r0 : NULL), U,
                                FM_REDUCE_SUM);
    return fm__train_finish(tp, P, fm_scale(tp, sq, (float)(1.0 / ((double)B * d))), loss);
}

fm_status fm__train_regress(fm_trainer *tr, double *loss)
{
    double sums[3] = {NAN, 0, 0};
    fm_status s = fm__train_shards(tr, 0, NULL, shard_regress, "loss", fm_trainer_lr(tr), sums);
    *loss = sums[0];
    tr->nparts = 0;
    if (s) return s;
    return fm__train_update(tr, 0, fm_trainer_lr(tr));
}

fm_status fm__train_update(fm_trainer *tr, int gi, double lr)
{
    return fm__clip_and_step(tr->g[gi].P, tr->g[gi].opt, tr->cfg.clip, tr->iter, lr);
}

fm_status fm__train_draw(fm_trainer *tr, int B)
{
    fm__prof_enter("draw the batch", 0); /* to the first op */
    fm_status s = tr->labels ? fm_dataset_sample_labeled(tr->data, &tr->rdata, tr->x1, tr->labels, B)
                             : fm_dataset_sample(tr->data, &tr->rdata, tr->x1, B);
    if (s) return s;
    for (int i = 0; tr->labels && i < B; i++)
        if (fm_rng_uniform(&tr->rdata) < tr->cfg.label_dropout) tr->labels[i] = tr->nclasses;
    if (tr->cfg.dequantize) fm_dequantize(tr->x1, (size_t)B * tr->cfg.flow.dim, &tr->rdata);
    fm__stdz_to_model(tr->z, tr->x1, B);
    return FM_OK;
}

fm_status fm_trainer_step(fm_trainer *tr, double *loss_out)
{
    double loss = 0;
    fm_status s = tr->m->step(tr, &loss);
    if (loss_out) *loss_out = loss;
    if (s) return s;
    if (tr->ema && (s = fm_ema_update(tr->ema, tr->g[0].P))) return s;
    tr->iter++;
    if (fm__dist_on() && (tr->iter == 1 || tr->iter % FM__DIST_CHECK_EVERY == 0))
        return fm__dist_same(state_hash(tr), "the parameters");
    return FM_OK;
}

/* ------------------------------------------------------------------ checkpoints */

fm_status fm_trainer_save(fm_trainer *tr, const char *path)
{
    fm_st_writer *w = fm_st_writer_new();
    if (!w) return FM_ERR_NOMEM;
    const fm_train_config *c = &tr->cfg;
    char hex[65];
    fm_status s = tr->m->save(tr->obj, w);
    if (!s) s = fm_optim_save(tr->g[0].opt, w);
    for (int k = 1; !s && k < tr->ngroups; k++) s = fm__optim_save_as(tr->g[k].opt, w, tr->g[k].optim_key);
    if (!s && tr->ema) s = fm_ema_save(tr->ema, tr->g[0].P, w);
    if (!s) s = fm__meta_put_num(w, "train.iter", (double)tr->iter);
    if (!s) s = fm__meta_put_num(w, "train.iters", (double)c->iters);
    if (!s) s = fm__meta_put_num(w, "train.batch", c->batch);
    if (!s) s = fm__meta_put_u64(w, "train.seed", c->seed);
    if (!s) s = fm_st_writer_meta(w, "train.schedule", fm_sched_name(c->sched.kind));
    if (!s) s = fm__meta_put_num(w, "train.warmup", (double)c->sched.warmup);
    if (!s) s = fm__meta_put_num(w, "train.min_lr", c->sched.min_lr);
    if (!s) s = fm__meta_put_num(w, "train.clip", c->clip);
    if (!s) s = fm__meta_put_num(w, "train.ema", c->ema_decay);
    if (!s) s = fm__meta_put_num(w, "train.standardize", c->standardize);
    if (!s) s = fm_st_writer_meta(w, "train.coupling", tr->coupling_label ? tr->coupling_label : fm_coupling_name(c->coupling));
    if (!s) s = fm__meta_put_num(w, "train.dequantize", c->dequantize);
    if (!s && tr->nclasses) s = fm__meta_put_num(w, "train.label_dropout", c->label_dropout);
    if (!s && tr->m->save_train) s = tr->m->save_train(tr, w);
    if (!s) fm_rng_to_hex(&tr->rdata, hex), s = fm_st_writer_meta(w, "rng.data", hex);
    if (!s) fm_rng_to_hex(&tr->rnoise, hex), s = fm_st_writer_meta(w, "rng.noise", hex);
    if (!s) fm_rng_to_hex(&tr->rtime, hex), s = fm_st_writer_meta(w, "rng.time", hex);
    if (!s) s = fm_st_writer_save(w, path);
    fm_st_writer_free(w);
    return s;
}

fm_trainer *fm__trainer_resume(const fm__method *m, const fm_st *st, const char *path, int64_t iters)
{
    fm_trainer *tr = NULL;
    fm_train_config c = fm_train_config_default();
    double it = 0, tot = 0, batch = 0, warm = 0, minlr = 0, clip = 0, ema = 0, stdz = 0;
    c.method = m->id;
    if (!m->load_config) {
        fm__fail(FM_ERR_ARG, "%s: a %s run cannot be resumed", path, m->name);
        return NULL;
    }
    fm_status s = m->load_config(&c, st);
    if (!s && !c.flow.data) s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata does not name the training data");
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
    double deq = 0; /* absent in checkpoints from before dequantisation */
    if (!s && fm_st_meta(st, "train.dequantize")) s = fm__meta_get_whole(st, "train.dequantize", 0, 1, &deq);
    double ldrop = c.label_dropout;
    if (!s && fm_st_meta(st, "train.label_dropout")) s = fm__meta_get_num(st, "train.label_dropout", &ldrop);
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
    if (s) return NULL;
    c.iters = iters > 0 ? iters : (int64_t)tot;
    if (c.iters <= (int64_t)it) {
        fm__fail(FM_ERR_ARG, "%s has done %lld iterations already; ask for more than that (--iters)", path,
                 (long long)it);
        return NULL;
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
    c.dequantize = (int)deq;
    c.label_dropout = ldrop;
    fm_dataset *data = fm_dataset_open(c.flow.data);
    if (!data) {
        fm__fail(FM_ERR_ARG, "%s: its training data: %s", path, fm_last_error());
        return NULL;
    }
    tr = trainer_build(m, &c, data, NULL);
    if (!tr) return NULL;
    s = fm__stdz_load(tr->z, st, m->stdz_key, tr->cfg.flow.dim);
    for (int k = 0; !s && k < tr->ngroups; k++) s = fm_params_load(tr->g[k].P, st, NULL);
    if (!s) s = fm_optim_load(tr->g[0].opt, st);
    for (int k = 1; !s && k < tr->ngroups; k++) s = fm__optim_load_as(tr->g[k].opt, st, tr->g[k].optim_key);
    if (!s && tr->ema) s = fm_ema_load(tr->ema, tr->g[0].P, st);
    if (!s) s = fm_rng_from_hex(&tr->rdata, fm_st_meta(st, "rng.data"));
    if (!s) s = fm_rng_from_hex(&tr->rnoise, fm_st_meta(st, "rng.noise"));
    if (!s) s = fm_rng_from_hex(&tr->rtime, fm_st_meta(st, "rng.time"));
    if (s) {
        fm_trainer_free(tr);
        return NULL;
    }
    tr->iter = (int64_t)it;
    return tr;
}
