/* classifier.c - the image classifier's training on the generic trainer.
 *
 * Not a generative method, so not in the registry: fm_classifier_trainer_*
 * drive the trainer (src/train/trainer.c) with this file's table. A step
 * takes the next batch of images in this epoch's shuffled order (the data
 * stream), moves each by a random shift (the noise stream), and takes one
 * Adam step on the mean cross-entropy, with dropout on the features. One tape
 * holds the whole batch: the convolutions spread its images over the threads
 * and the matrix products split their output, both with the same bits for
 * any thread count, so a run repeats bit for bit on any number of threads
 * (the thread shards of the generative methods would not).
 */
#include "train/method.h"

#include <math.h>
#include <string.h>

typedef struct {
    fm_classifier_train_config cfg; /* data points to the model's copy */
    const uint8_t *labels;          /* the dataset's */
    int *perm, pos;                 /* this epoch's order of the images, and the next one's place in it */
    int *lab;                       /* (batch) the batch's labels */
    float *x, *row;                 /* (batch, dim) the batch; (dim) one image before its shift */
    double acc;                     /* the last step's accuracy on its batch */
    int shards;                     /* the step's shards of the batch */
    fm_rng drop[FM__TRAIN_WORKERS]; /* their dropout streams (one shard: the trainer's noise stream) */
} clf_state;

struct fm_classifier_trainer {
    fm_trainer *tr;
};

fm_classifier_train_config fm_classifier_train_config_default(void)
{
    fm_classifier_train_config t;
    memset(&t, 0, sizeof t);
    t.net = fm_classifier_config_default();
    t.data = "mnist:data/mnist";
    t.optim = fm_optim_config_default(FM_OPTIM_ADAM);
    t.optim.lr = 2e-3;
    t.sched.kind = FM_SCHED_COSINE;
    t.iters = 1500;
    t.sched.total = t.iters;
    t.batch = 64;
    t.shift = 2;
    return t;
}

/* The classifier for the labelled images, which must fit it. */
static fm_status build(fm_trainer *tr, const fm_train_config *c, int dim, const char *data, const char *source)
{
    const fm_classifier_config *k = &((const fm_classifier_train_config *)tr->extra)->net;
    int d = k->in_ch * k->height * k->width, n = fm_dataset_rows(tr->data);
    const uint8_t *labels = fm_dataset_labels(tr->data);
    (void)c, (void)source;
    if (!labels)
        return fm__fail(FM_ERR_ARG, "classifier training needs labelled images (mnist:DIR); '%s' has no labels", data);
    if (dim != d)
        return fm__fail(FM_ERR_ARG, "'%s' has %d values per image; the classifier takes %d x %d x %d = %d", data, dim,
                        k->in_ch, k->height, k->width, d);
    for (int i = 0; i < n; i++)
        if (labels[i] >= k->classes)
            return fm__fail(FM_ERR_ARG, "'%s': label %d of image %d is not one of the classifier's %d classes", data,
                            labels[i], i + 1, k->classes);
    fm_classifier *m = fm__classifier_new(k, data);
    if (!m) return fm_last_status();
    tr->obj = m;
    tr->g[0].P = fm_classifier_params(m);
    return FM_OK;
}

static fm_status state_new(fm_trainer *tr)
{
    clf_state *st = calloc(1, sizeof *st);
    if (!st) return fm__fail(FM_ERR_NOMEM, "out of memory creating a classifier trainer");
    tr->ms = st;
    st->cfg = *(const fm_classifier_train_config *)tr->extra;
    st->cfg.data = fm_classifier_data(tr->obj);
    st->labels = fm_dataset_labels(tr->data);
    int d = tr->cfg.flow.dim, n = fm_dataset_rows(tr->data);
    st->perm = malloc((size_t)n * sizeof(int));
    st->lab = malloc((size_t)tr->cfg.batch * sizeof(int));
    st->x = malloc((size_t)tr->cfg.batch * d * sizeof(float));
    st->row = malloc((size_t)d * sizeof(float));
    if (!st->perm || !st->lab || !st->x || !st->row)
        return fm__fail(FM_ERR_NOMEM, "out of memory creating a classifier trainer");
    st->pos = n; /* a fresh order at the first step */
    return FM_OK;
}

static void state_free(void *ms)
{
    clf_state *st = ms;
    free(st->perm);
    free(st->lab);
    free(st->x);
    free(st->row);
    free(st);
}

/* img (C, H, W) moved by (dy, dx) pixels into out, zeros where nothing lands. */
static void shifted(const float *img, float *out, int C, int H, int W, int dy, int dx)
{
    memset(out, 0, (size_t)C * H * W * sizeof(float));
    int y0 = dy > 0 ? dy : 0, y1 = dy < 0 ? H + dy : H, x0 = dx > 0 ? dx : 0, x1 = dx < 0 ? W + dx : W;
    for (int c = 0; c < C; c++)
        for (int y = y0; y < y1; y++)
            memcpy(out + ((size_t)c * H + y) * W + x0, img + ((size_t)c * H + y - dy) * W + x0 - dx,
                   (size_t)(x1 - x0) * sizeof(float));
}

/* The next batch: images in this epoch's shuffled order (a new order once
 * every image has been seen), each moved by a random shift. */
static fm_status draw_batch(fm_trainer *tr, clf_state *st)
{
    const fm_classifier_config *k = &st->cfg.net;
    int n = fm_dataset_rows(tr->data), d = k->in_ch * k->height * k->width, s = st->cfg.shift;
    for (int b = 0; b < tr->cfg.batch; b++) {
        if (st->pos == n) {
            for (int i = 0; i < n; i++) st->perm[i] = i;
            for (int i = n - 1; i > 0; i--) {
                int j = (int)fm__rng_below(&tr->rdata, (uint32_t)i + 1), t = st->perm[i];
                st->perm[i] = st->perm[j];
                st->perm[j] = t;
            }
            st->pos = 0;
        }
        int i = st->perm[st->pos++];
        st->lab[b] = st->labels[i];
        float *dst = st->x + (size_t)b * d;
        fm_status e = fm_dataset_read_rows(tr->data, i, 1, s ? st->row : dst);
        if (e) return e;
        if (s) {
            int dy = (int)fm__rng_below(&tr->rnoise, 2u * s + 1) - s, dx = (int)fm__rng_below(&tr->rnoise, 2u * s + 1) - s;
            shifted(st->row, dst, k->in_ch, k->height, k->width, dy, dx);
        }
    }
    return FM_OK;
}

/* Cross-entropy of the rows [r0, r1) (their share of the batch mean), and
 * how many of them the network gets right (loss[1]). */
static fm_status shard(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss)
{
    clf_state *st = tr->ms;
    const fm_classifier_config *k = &st->cfg.net;
    int B = tr->cfg.batch, K = k->classes, m = r1 - r0, d = k->in_ch * k->height * k->width, xs[2] = {m, d}, w = 0;
    while (w < st->shards - 1 && fm__split(B, w + 1, st->shards) <= r0) w++;
    fm_tensor *z = fm__classifier_forward(tp, tr->obj, P, fm_tensor_wrap(tp, st->x + (size_t)r0 * d, 2, xs), NULL,
                                               (float)st->cfg.dropout, st->shards > 1 ? &st->drop[w] : &tr->rnoise);
    fm_tensor *l = st->shards > 1 ? fm_scale(tp, fm_cross_entropy(tp, z, st->lab + r0, FM_REDUCE_SUM), (float)(1.0 / B))
                                  : fm_cross_entropy(tp, z, st->lab, FM_REDUCE_MEAN);
    fm_status s = fm__train_finish(tp, P, l, loss);
    if (s || !z) return s;
    for (int b = 0; b < m; b++) loss[1] += fm__argmax(z->data + (size_t)b * K, K) == st->lab[r0 + b];
    return FM_OK;
}

static fm_status step(fm_trainer *tr, double *loss)
{
    clf_state *st = tr->ms;
    double lr = fm_trainer_lr(tr), sums[3] = {NAN, 0, 0};
    fm_status s = draw_batch(tr, st);
    if (s) return s;
    st->shards = fm__train_shard_count(tr);
    if (st->shards > 1) { /* each shard its own dropout stream, seeded from the noise stream */
        uint64_t seed = fm_rng_next(&tr->rnoise);
        for (int w = 0; w < st->shards; w++) fm_rng_seed(&st->drop[w], seed, (uint64_t)w);
    }
    s = fm__train_shards(tr, 0, NULL, shard, "loss", lr, sums);
    *loss = sums[0];
    tr->nparts = 0;
    if (s || (s = fm__train_update(tr, 0, lr))) return s;
    st->acc = sums[1] / tr->cfg.batch;
    tr->parts[0] = st->acc;
    tr->nparts = 1;
    return FM_OK;
}

static void m_free(void *obj) { fm_classifier_free(obj); }
static void m_init(void *obj, fm_rng *r) { fm_classifier_init(obj, r); }
static fm_status m_save(void *obj, fm_st_writer *w) { return fm_classifier_save(obj, w); }
static void *m_load(const fm_st *st, int use_ema)
{
    (void)use_ema;
    return fm_classifier_load(st);
}
static int m_dim(const void *obj)
{
    const fm_classifier_config *k = fm_classifier_get_config(obj);
    return k->in_ch * k->height * k->width;
}
static const char *m_data(const void *obj) { return fm_classifier_data(obj); }
static size_t m_size(void *obj) { return fm_params_size(fm_classifier_params(obj)); }

static const fm__method classifier_task = {
    .id = FM_METHOD_COUNT, /* not a generative method: no fm_method of its own */
    .name = "classifier",
    .summary = "image classifier: cross-entropy on labelled images",
    .object = "classifier",
    .stdz_key = "classifier",
    .parts = {"acc"},
    .own_batches = 1,
    .build = build,
    .state_new = state_new,
    .state_free = state_free,
    .init = m_init,
    .step = step,
    .free = m_free,
    .save = m_save,
    .load = m_load,
    .dim = m_dim,
    .data = m_data,
    .size = m_size,
    .sampling = FM_SAMPLING_DIRECT, /* it does not sample: no sample entry */
};

fm_classifier_trainer *fm_classifier_trainer_new(const fm_classifier_train_config *cfg)
{
    if (!cfg) {
        fm__fail(FM_ERR_ARG, "fm_classifier_trainer_new: missing configuration");
        return NULL;
    }
    const fm_classifier_config *k = &cfg->net;
    if (cfg->batch < 1 || cfg->batch > (1 << 20)) {
        fm__fail(FM_ERR_ARG, "classifier training: batch %d is invalid", cfg->batch);
        return NULL;
    }
    if (cfg->iters < 0 || cfg->shift < 0 || cfg->shift >= k->height || cfg->shift >= k->width) {
        fm__fail(FM_ERR_ARG, "classifier training: %lld iterations, or shifts of %d pixels, are out of range",
                 (long long)cfg->iters, cfg->shift);
        return NULL;
    }
    if (!(cfg->dropout >= 0 && cfg->dropout < 1)) {
        fm__fail(FM_ERR_ARG, "classifier training: dropout %g must lie in [0, 1)", cfg->dropout);
        return NULL;
    }
    if (!(cfg->optim.lr > 0)) {
        fm__fail(FM_ERR_ARG, "classifier training: learning rate %g must be > 0", cfg->optim.lr);
        return NULL;
    }
    if (fm__classifier_check(k)) return NULL;
    fm_classifier_trainer *ct = calloc(1, sizeof *ct);
    if (!ct) {
        fm__fail(FM_ERR_NOMEM, "out of memory creating a classifier trainer");
        return NULL;
    }
    fm_train_config c = fm_train_config_default();
    c.flow.data = cfg->data ? cfg->data : "";
    c.optim = cfg->optim;
    c.sched = cfg->sched;
    c.batch = cfg->batch;
    c.iters = cfg->iters;
    c.seed = cfg->seed;
    c.standardize = 0; /* pixels as they are */
    c.label_dropout = 0;
    ct->tr = fm__trainer_new(&classifier_task, &c, cfg);
    if (!ct->tr) {
        free(ct);
        return NULL;
    }
    return ct;
}

void fm_classifier_trainer_free(fm_classifier_trainer *ct)
{
    if (!ct) return;
    fm_trainer_free(ct->tr);
    free(ct);
}

fm_status fm_classifier_trainer_step(fm_classifier_trainer *ct, double *loss, double *acc)
{
    double l = 0;
    fm_status s = fm_trainer_step(ct->tr, &l);
    if (s) return s;
    if (loss) *loss = l;
    if (acc) *acc = ((clf_state *)ct->tr->ms)->acc;
    return FM_OK;
}

int64_t fm_classifier_trainer_iter(const fm_classifier_trainer *ct) { return fm_trainer_iter(ct->tr); }
double fm_classifier_trainer_lr(const fm_classifier_trainer *ct) { return fm_trainer_lr(ct->tr); }
fm_classifier *fm_classifier_trainer_model(fm_classifier_trainer *ct) { return ct->tr->obj; }

const fm_classifier_train_config *fm_classifier_trainer_get_config(const fm_classifier_trainer *ct)
{
    return &((const clf_state *)ct->tr->ms)->cfg;
}

fm_status fm_classifier_trainer_save(fm_classifier_trainer *ct, fm_st_writer *w)
{
    const fm_classifier_train_config *c = fm_classifier_trainer_get_config(ct);
    fm_status s = fm_classifier_save(ct->tr->obj, w);
    if (!s) s = fm__meta_put_num(w, "train.iter", (double)fm_trainer_iter(ct->tr));
    if (!s) s = fm__meta_put_num(w, "train.batch", c->batch);
    if (!s) s = fm__meta_put_u64(w, "train.seed", c->seed);
    if (!s) s = fm__meta_put_num(w, "train.shift", c->shift);
    if (!s) s = fm__meta_put_num(w, "train.dropout", c->dropout);
    if (!s) s = fm_st_writer_meta(w, "train.optim", fm_optim_name(c->optim.kind));
    if (!s) s = fm__meta_put_num(w, "train.lr", c->optim.lr);
    if (!s) s = fm_st_writer_meta(w, "train.schedule", fm_sched_name(c->sched.kind));
    return s;
}
