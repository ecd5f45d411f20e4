/* gan.c - the generative adversarial network baseline.
 *
 * Generator MLP from latent noise to data (its last layer linear, or squashed
 * by tanh into [-1, 1], the range image pixels are standardised to),
 * discriminator MLP from data to one logit. Both losses are binary
 * cross-entropies on the logits, computed stably: the discriminator ascends
 * log D(x) + log(1 - D(G(z))) by descending BCE(D(x), 1) + BCE(D(G(z)), 0);
 * the generator descends log(1 - D(G(z))) (minimax) or -log D(G(z))
 * (non-saturating). The trainer switches off the gradients of the network
 * that is not being updated.
 */
#include "train/method.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct fm_gan {
    fm_gan_config cfg; /* data points to an owned copy */
    fm_params *PG, *PD;
    fm_mlp *G, *D;
    fm__stdz z;
    fm__workers wk;
};

static const char *const loss_names[FM_GAN_LOSS_COUNT] = {"nonsaturating", "minimax"};

const char *fm_gan_loss_name(fm_gan_loss k) { return fm__name_of(loss_names, FM_GAN_LOSS_COUNT, k); }

int fm_gan_loss_from_name(const char *name) { return fm__name_index(loss_names, FM_GAN_LOSS_COUNT, name); }

fm_gan_config fm_gan_config_default(int dim)
{
    fm_gan_config c;
    memset(&c, 0, sizeof c);
    c.dim = dim;
    c.latent = 2;
    c.nhidden = c.d_nhidden = 3;
    for (int i = 0; i < 3; i++) c.width[i] = c.d_width[i] = 64;
    c.act = c.d_act = FM_ACT_ELU;
    c.out_act = FM_ACT_NONE;
    c.loss = FM_GAN_NONSATURATING;
    return c;
}

fm_gan *fm_gan_new(const fm_gan_config *cfg)
{
    if (!cfg) return NULL;
    if (cfg->dim < 1 || cfg->dim > (1 << 20) || cfg->latent < 1 || cfg->latent > (1 << 16)) {
        fm__fail(FM_ERR_ARG, "gan: data dimension %d or latent size %d is invalid", cfg->dim, cfg->latent);
        return NULL;
    }
    if (cfg->loss < 0 || cfg->loss >= FM_GAN_LOSS_COUNT) {
        fm__fail(FM_ERR_ARG, "gan: unknown loss %d", (int)cfg->loss);
        return NULL;
    }
    if (cfg->out_act != FM_ACT_NONE && cfg->out_act != FM_ACT_TANH) {
        fm__fail(FM_ERR_ARG, "gan: the generator's output is linear or tanh, not %s", fm_act_name(cfg->out_act));
        return NULL;
    }
    fm_gan *g = calloc(1, sizeof *g);
    if (!g) {
        fm__fail(FM_ERR_NOMEM, "out of memory creating a GAN");
        return NULL;
    }
    g->cfg = *cfg;
    g->cfg.data = fm__strdup(cfg->data ? cfg->data : "");
    g->PG = fm_params_new();
    g->PD = fm_params_new();
    g->z.d = cfg->dim;
    if (!g->cfg.data || !g->PG || !g->PD) {
        fm__fail(FM_ERR_NOMEM, "out of memory creating a GAN");
        fm_gan_free(g);
        return NULL;
    }
    fm_mlp_config gc, dc;
    memset(&gc, 0, sizeof gc);
    memset(&dc, 0, sizeof dc);
    gc.in_dim = cfg->latent;
    gc.out_dim = cfg->dim;
    gc.nhidden = cfg->nhidden;
    memcpy(gc.width, cfg->width, sizeof gc.width);
    gc.act = cfg->act;
    dc.in_dim = cfg->dim;
    dc.out_dim = 1;
    dc.nhidden = cfg->d_nhidden;
    memcpy(dc.width, cfg->d_width, sizeof dc.width);
    dc.act = cfg->d_act;
    if (!(g->G = fm_mlp_new(g->PG, "generator", &gc)) || !(g->D = fm_mlp_new(g->PD, "discriminator", &dc))) {
        fm_gan_free(g);
        return NULL;
    }
    return g;
}

void fm_gan_free(fm_gan *g)
{
    if (!g) return;
    free((char *)g->cfg.data);
    fm_mlp_free(g->G);
    fm_mlp_free(g->D);
    fm_params_free(g->PG);
    fm_params_free(g->PD);
    fm__stdz_free(&g->z);
    fm__workers_free(&g->wk);
    free(g);
}

void fm_gan_init(fm_gan *g, fm_rng *r)
{
    fm_mlp_init(g->G, r);
    fm_mlp_init(g->D, r);
}

const fm_gan_config *fm_gan_get_config(const fm_gan *g) { return &g->cfg; }
fm_params *fm_gan_generator_params(fm_gan *g) { return g->PG; }
fm_params *fm_gan_discriminator_params(fm_gan *g) { return g->PD; }

/* G(z) in network units, with the parameters of PG. */
static fm_tensor *generate(fm_tape *tp, fm_gan *g, fm_params *PG, fm_tensor *z)
{
    fm_tensor *y = fm__mlp_forward_with(tp, g->G, PG, NULL, z);
    return g->cfg.out_act == FM_ACT_NONE ? y : fm_activation(tp, y, g->cfg.out_act);
}

/* A (B, 1) column of v. */
static fm_tensor *column(fm_tape *tp, int B, float v)
{
    fm_tensor *c = fm_tensor_2d(tp, B, 1);
    if (c)
        for (int i = 0; i < B; i++) c->data[i] = v;
    return c;
}

static fm_tensor *d_loss_with(fm_tape *tp, fm_gan *g, fm_params *PG, fm_params *PD, fm_tensor *x, fm_tensor *z,
                               double scale)
{
    if (!x || !z) return fm__op_fail(tp, FM_ERR_ARG, "gan: missing data or latent batch");
    fm_tensor *fake = generate(tp, g, PG, z);
    fm_tensor *real = fm__mlp_forward_with(tp, g->D, PD, NULL, x);
    fm_tensor *lf = fm__mlp_forward_with(tp, g->D, PD, NULL, fake);
    fm_tensor *a = fm_bce_logits_loss(tp, real, column(tp, x->shape[0], 1.0f), FM_REDUCE_SUM);
    fm_tensor *b = fm_bce_logits_loss(tp, lf, column(tp, z->shape[0], 0.0f), FM_REDUCE_SUM);
    return fm_scale(tp, fm_add(tp, a, b), (float)scale);
}

static fm_tensor *g_loss_with(fm_tape *tp, fm_gan *g, fm_params *PG, fm_params *PD, fm_tensor *z, double scale)
{
    if (!z) return fm__op_fail(tp, FM_ERR_ARG, "gan: missing latent batch");
    fm_tensor *lf = fm__mlp_forward_with(tp, g->D, PD, NULL, generate(tp, g, PG, z));
    int B = z->shape[0];
    if (g->cfg.loss == FM_GAN_NONSATURATING)
        return fm_scale(tp, fm_bce_logits_loss(tp, lf, column(tp, B, 1.0f), FM_REDUCE_SUM), (float)scale);
    return fm_scale(tp, fm_bce_logits_loss(tp, lf, column(tp, B, 0.0f), FM_REDUCE_SUM), (float)-scale);
}

static int batch_ok(fm_tape *tp, const fm_gan *g, fm_tensor *x, fm_tensor *z)
{
    char s1[96], s2[96];
    if (z && (z->ndim != 2 || z->shape[1] != g->cfg.latent)) {
        fm__op_fail(tp, FM_ERR_SHAPE, "gan: latent batch %s is not [B, %d]", fm_shape_str(z, s1, sizeof s1),
                    g->cfg.latent);
        return 0;
    }
    if (x && (x->ndim != 2 || x->shape[1] != g->cfg.dim || x->shape[0] != z->shape[0])) {
        fm__op_fail(tp, FM_ERR_SHAPE, "gan: data batch %s does not fit [%d, %d] (latent %s)",
                    fm_shape_str(x, s1, sizeof s1), z->shape[0], g->cfg.dim, fm_shape_str(z, s2, sizeof s2));
        return 0;
    }
    return 1;
}

fm_tensor *fm_gan_d_loss(fm_tape *tp, fm_gan *g, fm_tensor *x, fm_tensor *z)
{
    fm_tensor *in[2] = {x, z};
    if (!fm__op_inputs_ok(tp, "gan_d_loss", in, 2) || !batch_ok(tp, g, x, z)) return NULL;
    return d_loss_with(tp, g, g->PG, g->PD, x, z, 1.0 / x->shape[0]);
}

fm_tensor *fm_gan_g_loss(fm_tape *tp, fm_gan *g, fm_tensor *z)
{
    if (!fm__op_inputs_ok(tp, "gan_g_loss", &z, 1) || !batch_ok(tp, g, NULL, z)) return NULL;
    return g_loss_with(tp, g, g->PG, g->PD, z, 1.0 / z->shape[0]);
}

typedef struct {
    fm_gan *g;
    const float *z;
    float *out;
} gen_args;

static fm_status generate_chunk(fm_tape *tp, float *tbuf, int i0, int m, void *ctx)
{
    gen_args *a = ctx;
    int d = a->g->cfg.dim, L = a->g->cfg.latent, zs[2] = {m, L};
    (void)tbuf;
    fm_tensor *y = generate(tp, a->g, a->g->PG, fm_tensor_wrap(tp, (float *)a->z + (size_t)i0 * L, 2, zs));
    if (!y) return fm_tape_status(tp);
    memcpy(a->out + (size_t)i0 * d, y->data, (size_t)m * d * sizeof(float));
    return FM_OK;
}

fm_status fm_gan_generate(fm_gan *g, const float *z, int n, float *out)
{
    gen_args a = {g, z, out};
    fm__chunk_out o = {out, (size_t)g->cfg.dim * sizeof(float), 0, 1};
    fm_status s = fm__run_chunks(&g->wk, g->PG, n, generate_chunk, &a, &o, 1);
    if (!s) fm__stdz_to_data(&g->z, out, n);
    return s;
}

static fm_status sample_prior(fm_gan *g, int n, fm_rng *r, float *out)
{
    float *z = malloc((size_t)n * g->cfg.latent * sizeof(float));
    if (!z) return fm__fail(FM_ERR_NOMEM, "out of memory sampling %d points", n);
    fm_rng_normal_fill(r, z, (size_t)n * g->cfg.latent, 0.0f, 1.0f);
    fm_status s = fm_gan_generate(g, z, n, out);
    free(z);
    return s;
}

/* ------------------------------------------------------------------ checkpoints */

static fm_status gan_save(fm_gan *g, fm_st_writer *w)
{
    const fm_gan_config *c = &g->cfg;
    fm_status s = fm__meta_put_format(w);
    if (!s) s = fm_st_writer_meta(w, "method", "gan");
    if (!s) s = fm_st_writer_meta(w, "gan.data", c->data);
    if (!s) s = fm__meta_put_num(w, "gan.dim", c->dim);
    if (!s) s = fm__meta_put_num(w, "gan.latent", c->latent);
    if (!s) s = fm__meta_put_widths(w, "gan.widths", c->nhidden, c->width);
    if (!s) s = fm_st_writer_meta(w, "gan.act", fm_act_name(c->act));
    if (!s) s = fm_st_writer_meta(w, "gan.out_act", fm_act_name(c->out_act));
    if (!s) s = fm__meta_put_widths(w, "gan.d_widths", c->d_nhidden, c->d_width);
    if (!s) s = fm_st_writer_meta(w, "gan.d_act", fm_act_name(c->d_act));
    if (!s) s = fm_st_writer_meta(w, "gan.loss", fm_gan_loss_name(c->loss));
    if (!s) s = fm__stdz_save(&g->z, w, "gan");
    if (!s) s = fm_params_save(g->PG, w, NULL);
    if (!s) s = fm_params_save(g->PD, w, NULL);
    return s;
}

static fm_gan *gan_load(const fm_st *st, int use_ema)
{
    fm_gan_config c;
    memset(&c, 0, sizeof c);
    double dim, latent;
    const char *lk = fm_st_meta(st, "gan.loss");
    fm_status s = fm__meta_get_whole(st, "gan.dim", 1, 1 << 20, &dim);
    if (!s) s = fm__meta_get_whole(st, "gan.latent", 1, 1 << 16, &latent);
    if (!s) s = fm__meta_get_widths(st, "gan.widths", &c.nhidden, c.width);
    if (!s) s = fm__meta_get_act(st, "gan.act", &c.act);
    if (!s && fm_st_meta(st, "gan.out_act")) s = fm__meta_get_act(st, "gan.out_act", &c.out_act); /* absent: linear */
    if (!s) s = fm__meta_get_widths(st, "gan.d_widths", &c.d_nhidden, c.d_width);
    if (!s) s = fm__meta_get_act(st, "gan.d_act", &c.d_act);
    if (!s && fm_gan_loss_from_name(lk) < 0)
        s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'gan.loss' = '%s' is not a GAN loss", lk ? lk : "(missing)");
    if (s) return NULL;
    c.dim = (int)dim;
    c.latent = (int)latent;
    c.loss = (fm_gan_loss)fm_gan_loss_from_name(lk);
    c.data = fm_st_meta(st, "gan.data");
    fm__params_budget(fm__st_values(st), "checkpoint");
    fm_gan *g = fm_gan_new(&c);
    fm__params_budget_end();
    if (!g) return NULL;
    s = fm__params_load_model(g->PG, st, use_ema, &g->z, "gan", c.dim);
    if (!s) s = fm_params_load(g->PD, st, NULL);
    if (s) {
        fm_gan_free(g);
        return NULL;
    }
    return g;
}

/* ------------------------------------------------------------------ the method */

typedef struct {
    float *lat;          /* (batch, latent) generator input */
    float *dsnap;        /* the discriminator and its optimizer at the step's start */
    int64_t dsnap_step;
    fm_rng dsnap_rng[2];
} gan_state;

static void defaults(fm_train_config *c, int image)
{
    c->optim.lr = 2e-4, c->optim.beta1 = 0.5; /* DCGAN's */
    if (!image) return;
    c->gan.latent = 64;
    c->gan.out_act = FM_ACT_TANH;
    c->flow.net.nhidden = 2;
    c->flow.net.width[0] = c->flow.net.width[1] = 256;
}

static fm_status check(const fm_train_config *c)
{
    fm_status s = fm__train_mlp_only(c, "gan");
    if (!s) s = fm__train_plain_noise(c, "gan");
    if (!s && (c->gan.k < 1 || c->gan.k > 100))
        s = fm__fail(FM_ERR_ARG, "gan: %d discriminator steps per generator step must lie in 1..100", c->gan.k);
    return s;
}

static fm_status build(fm_trainer *tr, const fm_train_config *c, int dim, const char *data, const char *source)
{
    (void)source;
    const fm_mlp_config *net = &c->flow.net;
    fm_gan_config gc = fm_gan_config_default(dim);
    gc.latent = c->gan.latent;
    gc.loss = c->gan.loss;
    gc.out_act = c->gan.out_act;
    gc.nhidden = net->nhidden;
    memcpy(gc.width, net->width, sizeof gc.width);
    gc.act = gc.d_act = net->act;
    gc.d_nhidden = c->gan.d_nhidden >= 0 ? c->gan.d_nhidden : net->nhidden;
    memcpy(gc.d_width, c->gan.d_nhidden >= 0 ? c->gan.d_width : net->width, sizeof gc.d_width);
    gc.data = data;
    fm_gan *g = fm_gan_new(&gc);
    if (!g) return fm_last_status();
    tr->obj = g;
    tr->z = &g->z;
    tr->g[0].P = g->PG;
    fm_optim_config dc = c->gan.d_optim;
    if (!(dc.lr > 0)) dc.lr = c->optim.lr;
    tr->cfg.gan.d_optim = dc;
    tr->g[1].P = g->PD;
    tr->g[1].oc = dc;
    tr->g[1].optim_key = "optim_d";
    tr->ngroups = 2;
    return FM_OK;
}

static fm_status state_new(fm_trainer *tr)
{
    gan_state *st = calloc(1, sizeof *st);
    if (!st) return fm__fail(FM_ERR_NOMEM, "out of memory");
    tr->ms = st;
    st->lat = malloc((size_t)tr->cfg.batch * tr->cfg.gan.latent * sizeof(float));
    if (!st->lat) return fm__fail(FM_ERR_NOMEM, "out of memory for a batch of %d", tr->cfg.batch);
    st->dsnap = malloc(4 * (fm_params_size(tr->g[1].P) + 1) * sizeof(float));
    return st->dsnap ? FM_OK : fm__fail(FM_ERR_NOMEM, "out of memory for the discriminator");
}

static void state_free(void *ms)
{
    gan_state *st = ms;
    free(st->lat);
    free(st->dsnap);
    free(st);
}

static fm_status shard_d(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss)
{
    gan_state *st = tr->ms;
    int B = tr->cfg.batch, d = tr->cfg.flow.dim, L = tr->cfg.gan.latent, m = r1 - r0;
    int xs[2] = {m, d}, zs[2] = {m, L};
    fm_tensor *l = d_loss_with(tp, tr->obj, tr->g[0].P, P, fm_tensor_wrap(tp, tr->x1 + (size_t)r0 * d, 2, xs),
                               fm_tensor_wrap(tp, st->lat + (size_t)r0 * L, 2, zs), 1.0 / B);
    return fm__train_finish(tp, P, l, loss);
}

static fm_status shard_g(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss)
{
    gan_state *st = tr->ms;
    int B = tr->cfg.batch, L = tr->cfg.gan.latent, m = r1 - r0, zs[2] = {m, L};
    fm_tensor *l = g_loss_with(tp, tr->obj, P, tr->g[1].P, fm_tensor_wrap(tp, st->lat + (size_t)r0 * L, 2, zs), 1.0 / B);
    return fm__train_finish(tp, P, l, loss);
}

/* Keep (or put back) the discriminator's weights, its optimizer state and the
 * streams the step draws from, so a failed GAN step changes nothing. */
static void snapshot(fm_trainer *tr, int restore)
{
    gan_state *st = tr->ms;
    float *buf[4];
    int64_t *step;
    size_t n;
    fm__optim_view(tr->g[1].opt, &buf[1], &buf[2], &buf[3], &step, &n);
    buf[0] = fm_params_data(tr->g[1].P);
    for (int k = 0; k < 4; k++) {
        if (!buf[k]) continue;
        float *s = st->dsnap + (size_t)k * n;
        if (restore) memcpy(buf[k], s, n * sizeof(float));
        else memcpy(s, buf[k], n * sizeof(float));
    }
    if (restore) {
        *step = st->dsnap_step;
        tr->rdata = st->dsnap_rng[0];
        tr->rnoise = st->dsnap_rng[1];
    } else {
        st->dsnap_step = *step;
        st->dsnap_rng[0] = tr->rdata;
        st->dsnap_rng[1] = tr->rnoise;
    }
}

/* k discriminator steps, then one generator step. */
static fm_status step_inner(fm_trainer *tr, double *loss)
{
    gan_state *st = tr->ms;
    int B = tr->cfg.batch, L = tr->cfg.gan.latent;
    double lr = fm_trainer_lr(tr), dlr = fm_schedule_lr(&tr->cfg.sched, tr->cfg.gan.d_optim.lr, tr->iter);
    double sd[3] = {NAN, 0, 0}, sg[3] = {NAN, 0, 0};
    fm_status s;
    for (int k = 0; k < tr->cfg.gan.k; k++) { /* ascend log D(x) + log(1 - D(G(z))) */
        if ((s = fm__train_draw(tr, B))) return s;
        fm_rng_normal_fill(&tr->rnoise, st->lat, (size_t)B * L, 0.0f, 1.0f);
        s = fm__train_shards(tr, 1, tr->g[0].P, shard_d, "discriminator's loss", dlr, sd);
        *loss = sd[0];
        if (s) return s;
        if ((s = fm__train_update(tr, 1, dlr))) return s;
    }
    fm_rng_normal_fill(&tr->rnoise, st->lat, (size_t)B * L, 0.0f, 1.0f);
    if ((s = fm__train_shards(tr, 0, tr->g[1].P, shard_g, "generator's loss", lr, sg))) return s;
    *loss = sd[0];
    tr->parts[0] = sd[0];
    tr->parts[1] = sg[0];
    tr->nparts = 2;
    return fm__train_update(tr, 0, lr);
}

static fm_status step(fm_trainer *tr, double *loss)
{
    snapshot(tr, 0);
    fm_status s = step_inner(tr, loss);
    if (s) snapshot(tr, 1);
    return s;
}

static fm_status save_train(fm_trainer *tr, fm_st_writer *w) { return fm__meta_put_num(w, "train.gan_k", tr->cfg.gan.k); }

static fm_status load_config(fm_train_config *c, const fm_st *st)
{
    fm_gan *g = gan_load(st, 0);
    if (!g) return fm_last_status();
    double k = 1;
    c->flow.net.nhidden = g->cfg.nhidden;
    memcpy(c->flow.net.width, g->cfg.width, sizeof g->cfg.width);
    c->flow.net.act = g->cfg.act;
    c->gan.latent = g->cfg.latent;
    c->gan.loss = g->cfg.loss;
    c->gan.out_act = g->cfg.out_act;
    c->gan.d_nhidden = g->cfg.d_nhidden;
    memcpy(c->gan.d_width, g->cfg.d_width, sizeof g->cfg.d_width);
    c->flow.data = fm_st_meta(st, "gan.data");
    fm_status s = fm__optim_config_load_as(&c->gan.d_optim, st, "optim_d");
    if (!s) s = fm__meta_get_whole(st, "train.gan_k", 1, 100, &k);
    c->gan.k = (int)k;
    if (!s && g->cfg.d_act != g->cfg.act)
        s = fm__fail(FM_ERR_FORMAT, "the checkpoint's discriminator activation differs from its generator's");
    fm_gan_free(g);
    return s;
}

static void m_free(void *obj) { fm_gan_free(obj); }
static void m_init(void *obj, fm_rng *r) { fm_gan_init(obj, r); }
static fm_status m_save(void *obj, fm_st_writer *w) { return gan_save(obj, w); }
static void *m_load(const fm_st *st, int use_ema) { return gan_load(st, use_ema); }
static int m_dim(const void *obj) { return ((const fm_gan *)obj)->cfg.dim; }
static const char *m_data(const void *obj) { return ((const fm_gan *)obj)->cfg.data; }
static size_t m_size(void *obj) { return fm_params_size(((fm_gan *)obj)->PG) + fm_params_size(((fm_gan *)obj)->PD); }

static int start_dim(const void *obj) { return ((const fm_gan *)obj)->cfg.latent; }

/* Latent noise (or the codes x_start) through the generator. */
static fm_status sample(void *obj, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                        const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx, fm_solve_stats *st)
{
    (void)sc, (void)grid, (void)ngrid, (void)obs, (void)octx, (void)st; /* one pass: the handle counts it */
    return x_start ? fm_gan_generate(obj, x_start, n, out) : sample_prior(obj, n, r, out);
}

static void describe(const fm_trainer *tr, char *buf, size_t cap)
{
    const fm_train_config *c = &tr->cfg;
    const fm_gan *g = tr->obj;
    snprintf(buf, cap, "GAN on %s, latent %d, %s loss, k %d, discriminator %d x %d", c->flow.data, c->gan.latent,
             fm_gan_loss_name(c->gan.loss), c->gan.k, g->cfg.d_nhidden, g->cfg.d_width[0]);
}

static const char *const options[] = {"latent", "gan-loss", "d-width", "d-depth", "d-lr", "out-act", NULL};

/* --k: discriminator steps per generator step, a whole number in 1..100. */
static fm_status set_k(fm_train_config *c, const char *value)
{
    char *end = NULL;
    long k = strtol(value, &end, 10);
    if (end == value || *end || k < 1 || k > 100)
        return fm__fail(FM_ERR_ARG, "gan: k = '%s' discriminator steps per generator step must be a whole number in "
                                    "1..100", value);
    c->gan.k = (int)k;
    return FM_OK;
}
static void get_k(const fm_train_config *c, char *buf, size_t cap) { snprintf(buf, cap, "%d", c->gan.k); }

static const fm__setting settings[] = {
    {"k", "N", "gan: discriminator steps per generator step", set_k, get_k},
    {NULL, NULL, NULL, NULL, NULL},
};

const fm__method fm__method_gan = {
    .id = FM_METHOD_GAN,
    .name = "gan",
    .summary = "generative adversarial network: a generator against a discriminator",
    .object = "gan",
    .stdz_key = "gan",
    .parts = {"d", "g"},
    .options = options,
    .settings = settings,
    .defaults = defaults,
    .check = check,
    .build = build,
    .state_new = state_new,
    .state_free = state_free,
    .init = m_init,
    .step = step,
    .describe = describe,
    .save_train = save_train,
    .load_config = load_config,
    .free = m_free,
    .save = m_save,
    .load = m_load,
    .dim = m_dim,
    .data = m_data,
    .size = m_size,
    .sampling = FM_SAMPLING_DIRECT,
    .start_dim = start_dim,
    .sample = sample,
};
