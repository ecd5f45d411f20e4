/* vae.c - the variational autoencoder baseline.
 *
 * Encoder MLP to a hidden code, linear heads to mu and logvar; z = mu + eps
 * exp(logvar / 2); decoder MLP back to the data. The loss is the negative ELBO
 * per point: the reconstruction term (Bernoulli on the decoder's logits, or a
 * Gaussian with one learned log-variance per dimension) plus beta times the
 * KL divergence from N(0, I), as in the tutorial (BCE summed + KLD), divided
 * by the batch size. The network sees standardised data when the training
 * data were standardised; encode, decode and reconstruct work in data units.
 */
#include "train/method.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct fm_vae {
    fm_vae_config cfg; /* data points to an owned copy */
    fm_params *P;
    fm_mlp *enc, *dec;
    int mu_w, mu_b, lv_w, lv_b, dec_lv; /* parameter indices (dec_lv -1 for Bernoulli) */
    fm__stdz z;
    fm__workers wk;
};

static const char *const lik_names[FM_VAE_LIKELIHOOD_COUNT] = {"gaussian", "bernoulli"};

const char *fm_vae_likelihood_name(fm_vae_likelihood k) { return fm__name_of(lik_names, FM_VAE_LIKELIHOOD_COUNT, k); }

int fm_vae_likelihood_from_name(const char *name) { return fm__name_index(lik_names, FM_VAE_LIKELIHOOD_COUNT, name); }

fm_vae_config fm_vae_config_default(int dim)
{
    fm_vae_config c;
    memset(&c, 0, sizeof c);
    c.dim = dim;
    c.latent = 2;
    c.nhidden = 3;
    for (int i = 0; i < 3; i++) c.width[i] = 64;
    c.act = FM_ACT_ELU;
    c.likelihood = FM_VAE_GAUSSIAN;
    c.beta = 1.0;
    return c;
}

static fm_status config_check(const fm_vae_config *c)
{
    if (c->dim < 1 || c->dim > (1 << 20)) return fm__fail(FM_ERR_ARG, "vae: data dimension %d is invalid", c->dim);
    if (c->latent < 1 || c->latent > (1 << 16)) return fm__fail(FM_ERR_ARG, "vae: latent size %d is invalid", c->latent);
    if (c->nhidden < 1 || c->nhidden > FM_MLP_MAX_LAYERS)
        return fm__fail(FM_ERR_ARG, "vae: %d hidden layers: the encoder and decoder need at least one hidden layer "
                                    "and at most %d", c->nhidden, FM_MLP_MAX_LAYERS);
    if (c->likelihood < 0 || c->likelihood >= FM_VAE_LIKELIHOOD_COUNT)
        return fm__fail(FM_ERR_ARG, "vae: unknown likelihood %d", (int)c->likelihood);
    if (!(c->beta >= 0) || !isfinite(c->beta)) return fm__fail(FM_ERR_ARG, "vae: beta %g must be >= 0", c->beta);
    return FM_OK;
}

static int add_linear(fm_params *P, const char *name, int out, int in, int *wi, int *bi)
{
    char k[64];
    int ws[2] = {out, in}, bs[1] = {out};
    snprintf(k, sizeof k, "%s.weight", name);
    *wi = fm_params_add(P, k, 2, ws);
    snprintf(k, sizeof k, "%s.bias", name);
    *bi = fm_params_add(P, k, 1, bs);
    return *wi >= 0 && *bi >= 0;
}

fm_vae *fm_vae_new(const fm_vae_config *cfg)
{
    if (!cfg || config_check(cfg)) return NULL;
    fm_vae *v = calloc(1, sizeof *v);
    if (!v) {
        fm__fail(FM_ERR_NOMEM, "out of memory creating a VAE");
        return NULL;
    }
    v->cfg = *cfg;
    v->cfg.data = fm__strdup(cfg->data ? cfg->data : "");
    v->P = fm_params_new();
    v->z.d = cfg->dim;
    v->dec_lv = -1;
    if (!v->cfg.data || !v->P) goto oom;
    int nh = cfg->nhidden, top = cfg->width[nh - 1];
    fm_mlp_config e, d;
    memset(&e, 0, sizeof e);
    memset(&d, 0, sizeof d);
    e.in_dim = cfg->dim;
    e.out_dim = top;
    e.nhidden = nh - 1;
    for (int i = 0; i < nh - 1; i++) e.width[i] = cfg->width[i];
    e.act = d.act = cfg->act;
    d.in_dim = cfg->latent;
    d.out_dim = cfg->dim;
    d.nhidden = nh;
    for (int i = 0; i < nh; i++) d.width[i] = cfg->width[nh - 1 - i];
    if (!(v->enc = fm_mlp_new(v->P, "encoder", &e))) goto fail;
    if (!add_linear(v->P, "fc_mu", cfg->latent, top, &v->mu_w, &v->mu_b)) goto fail;
    if (!add_linear(v->P, "fc_logvar", cfg->latent, top, &v->lv_w, &v->lv_b)) goto fail;
    if (!(v->dec = fm_mlp_new(v->P, "decoder", &d))) goto fail;
    if (cfg->likelihood == FM_VAE_GAUSSIAN) {
        int s1[1] = {cfg->dim};
        if ((v->dec_lv = fm_params_add(v->P, "dec_logvar", 1, s1)) < 0) goto fail;
    }
    return v;
oom:
    fm__fail(FM_ERR_NOMEM, "out of memory creating a VAE");
fail:
    fm_vae_free(v);
    return NULL;
}

void fm_vae_free(fm_vae *v)
{
    if (!v) return;
    free((char *)v->cfg.data);
    fm_mlp_free(v->enc);
    fm_mlp_free(v->dec);
    fm_params_free(v->P);
    fm__stdz_free(&v->z);
    fm__workers_free(&v->wk);
    free(v);
}

void fm_vae_init(fm_vae *v, fm_rng *r)
{
    fm_mlp_init(v->enc, r);
    fm_init_linear(r, fm_params_tensor(v->P, v->mu_w), fm_params_tensor(v->P, v->mu_b));
    fm_init_linear(r, fm_params_tensor(v->P, v->lv_w), fm_params_tensor(v->P, v->lv_b));
    fm_mlp_init(v->dec, r);
    if (v->dec_lv >= 0) memset(fm_params_tensor(v->P, v->dec_lv)->data, 0, (size_t)v->cfg.dim * sizeof(float));
}

const fm_vae_config *fm_vae_get_config(const fm_vae *v) { return &v->cfg; }
fm_params *fm_vae_params(fm_vae *v) { return v->P; }

/* mu (returned) and logvar of x, with the parameters of P (v's layout). */
static fm_tensor *encode_with(fm_tape *tp, fm_vae *v, fm_params *P, fm_tensor *x, fm_tensor **lv)
{
    fm_tensor *h = fm__mlp_forward_with(tp, v->enc, P, NULL, x);
    if (v->cfg.act != FM_ACT_NONE) h = fm_activation(tp, h, v->cfg.act);
    *lv = fm_linear(tp, h, fm_params_tensor(P, v->lv_w), fm_params_tensor(P, v->lv_b));
    return fm_linear(tp, h, fm_params_tensor(P, v->mu_w), fm_params_tensor(P, v->mu_b));
}

static fm_tensor *loss_with(fm_tape *tp, fm_vae *v, fm_params *P, fm_tensor *x, fm_tensor *eps, double scale,
                             fm_tensor **rec_out, fm_tensor **kl_out)
{
    fm_tensor *lv, *mu = encode_with(tp, v, P, x, &lv);
    fm_tensor *z = fm_add(tp, mu, fm_mul(tp, eps, fm_exp(tp, fm_scale(tp, lv, 0.5f))));
    fm_tensor *out = fm__mlp_forward_with(tp, v->dec, P, NULL, z);
    fm_tensor *rec = v->cfg.likelihood == FM_VAE_BERNOULLI
                         ? fm_bce_logits_loss(tp, out, x, FM_REDUCE_SUM)
                         : fm_gaussian_nll_loss(tp, out, fm_params_tensor(P, v->dec_lv), x, FM_REDUCE_SUM);
    fm_tensor *kl = fm_kl_normal_loss(tp, mu, lv, FM_REDUCE_SUM);
    fm_tensor *loss = fm_scale(tp, fm_add(tp, rec, fm_scale(tp, kl, (float)v->cfg.beta)), (float)scale);
    if (rec_out) *rec_out = rec;
    if (kl_out) *kl_out = kl;
    return loss;
}

fm_tensor *fm_vae_loss(fm_tape *tp, fm_vae *v, fm_tensor *x, fm_tensor *eps, fm_tensor **rec, fm_tensor **kl)
{
    if (!fm__op_inputs_ok(tp, "vae_loss", &x, 1) || !fm__op_inputs_ok(tp, "vae_loss", &eps, 1)) return NULL;
    char s1[96], s2[96];
    if (x->ndim != 2 || x->shape[1] != v->cfg.dim || eps->ndim != 2 || eps->shape[0] != x->shape[0] ||
        eps->shape[1] != v->cfg.latent)
        return fm__op_fail(tp, FM_ERR_SHAPE, "vae_loss: data %s and noise %s do not fit [B, %d] and [B, %d]",
                           fm_shape_str(x, s1, sizeof s1), fm_shape_str(eps, s2, sizeof s2), v->cfg.dim,
                           v->cfg.latent);
    double B = x->shape[0];
    fm_tensor *r = NULL, *k = NULL, *loss = loss_with(tp, v, v->P, x, eps, 1.0 / B, &r, &k);
    if (rec) *rec = r ? fm_scale(tp, r, (float)(1.0 / B)) : NULL;
    if (kl) *kl = k ? fm_scale(tp, k, (float)(1.0 / B)) : NULL;
    return loss;
}

/* ------------------------------------------------------------------ evaluation in chunks */

typedef struct {
    fm_vae *v;
    const float *in;
    float *a, *b;
} eval_args;

static fm_status encode_chunk(fm_tape *tp, float *tbuf, int i0, int m, void *ctx)
{
    eval_args *e = ctx;
    int d = e->v->cfg.dim, L = e->v->cfg.latent, xs[2] = {m, d};
    (void)tbuf;
    fm_tensor *lv, *mu = encode_with(tp, e->v, e->v->P, fm_tensor_wrap(tp, (float *)e->in + (size_t)i0 * d, 2, xs), &lv);
    if (!mu || !lv) return fm_tape_status(tp);
    memcpy(e->a + (size_t)i0 * L, mu->data, (size_t)m * L * sizeof(float));
    if (e->b) memcpy(e->b + (size_t)i0 * L, lv->data, (size_t)m * L * sizeof(float));
    return FM_OK;
}

static fm_status decode_chunk(fm_tape *tp, float *tbuf, int i0, int m, void *ctx)
{
    eval_args *e = ctx;
    int d = e->v->cfg.dim, L = e->v->cfg.latent, zs[2] = {m, L};
    (void)tbuf;
    fm_tensor *out = fm_mlp_forward(tp, e->v->dec, NULL, fm_tensor_wrap(tp, (float *)e->in + (size_t)i0 * L, 2, zs));
    if (out && e->v->cfg.likelihood == FM_VAE_BERNOULLI) out = fm_sigmoid(tp, out);
    if (!out) return fm_tape_status(tp);
    memcpy(e->a + (size_t)i0 * d, out->data, (size_t)m * d * sizeof(float));
    return FM_OK;
}

fm_status fm_vae_encode(fm_vae *v, const float *x, int n, float *mu, float *logvar)
{
    float *xm = malloc((size_t)n * v->cfg.dim * sizeof(float));
    if (!xm) return fm__fail(FM_ERR_NOMEM, "out of memory encoding %d points", n);
    memcpy(xm, x, (size_t)n * v->cfg.dim * sizeof(float));
    fm__stdz_to_model(&v->z, xm, n);
    eval_args e = {v, xm, mu, logvar};
    size_t row = (size_t)v->cfg.latent * sizeof(float);
    fm__chunk_out out[2] = {{mu, row, 0, 1}, {logvar, row, 0, logvar != NULL}};
    fm_status s = fm__run_chunks(&v->wk, v->P, n, encode_chunk, &e, out, 2);
    free(xm);
    return s;
}

fm_status fm_vae_decode(fm_vae *v, const float *z, int n, fm_rng *r, float *x)
{
    eval_args e = {v, z, x, NULL};
    fm__chunk_out out = {x, (size_t)v->cfg.dim * sizeof(float), 0, 1};
    fm_status s = fm__run_chunks(&v->wk, v->P, n, decode_chunk, &e, &out, 1);
    if (s) return s;
    if (r && v->dec_lv >= 0) { /* the Gaussian decoder's own noise */
        int d = v->cfg.dim;
        const float *lv = fm_params_tensor(v->P, v->dec_lv)->data;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++) x[(size_t)i * d + j] += expf(0.5f * lv[j]) * (float)fm_rng_normal(r);
    }
    fm__stdz_to_data(&v->z, x, n);
    return FM_OK;
}

fm_status fm_vae_reconstruct(fm_vae *v, const float *x, int n, float *out)
{
    float *mu = malloc((size_t)n * v->cfg.latent * sizeof(float));
    if (!mu) return fm__fail(FM_ERR_NOMEM, "out of memory reconstructing %d points", n);
    fm_status s = fm_vae_encode(v, x, n, mu, NULL);
    if (!s) s = fm_vae_decode(v, mu, n, NULL, out);
    free(mu);
    return s;
}

static fm_status sample_prior(fm_vae *v, int n, fm_rng *r, float *out)
{
    float *z = malloc((size_t)n * v->cfg.latent * sizeof(float));
    if (!z) return fm__fail(FM_ERR_NOMEM, "out of memory sampling %d points", n);
    fm_rng_normal_fill(r, z, (size_t)n * v->cfg.latent, 0.0f, 1.0f);
    fm_status s = fm_vae_decode(v, z, n, r, out);
    free(z);
    return s;
}

/* ------------------------------------------------------------------ checkpoints */

static fm_status vae_save(fm_vae *v, fm_st_writer *w)
{
    const fm_vae_config *c = &v->cfg;
    fm_status s = fm__meta_put_format(w);
    if (!s) s = fm_st_writer_meta(w, "method", "vae");
    if (!s) s = fm_st_writer_meta(w, "vae.data", c->data);
    if (!s) s = fm__meta_put_num(w, "vae.dim", c->dim);
    if (!s) s = fm__meta_put_num(w, "vae.latent", c->latent);
    if (!s) s = fm__meta_put_widths(w, "vae.widths", c->nhidden, c->width);
    if (!s) s = fm_st_writer_meta(w, "vae.act", fm_act_name(c->act));
    if (!s) s = fm_st_writer_meta(w, "vae.likelihood", fm_vae_likelihood_name(c->likelihood));
    if (!s) s = fm__meta_put_num(w, "vae.beta", c->beta);
    if (!s) s = fm__stdz_save(&v->z, w, "vae");
    if (!s) s = fm_params_save(v->P, w, NULL);
    return s;
}

static fm_vae *vae_load(const fm_st *st, int use_ema)
{
    fm_vae_config c;
    memset(&c, 0, sizeof c);
    double dim, latent;
    const char *lk = fm_st_meta(st, "vae.likelihood");
    fm_status s = fm__meta_get_whole(st, "vae.dim", 1, 1 << 20, &dim);
    if (!s) s = fm__meta_get_whole(st, "vae.latent", 1, 1 << 16, &latent);
    if (!s) s = fm__meta_get_widths(st, "vae.widths", &c.nhidden, c.width);
    if (!s) s = fm__meta_get_act(st, "vae.act", &c.act);
    if (!s) s = fm__meta_get_num(st, "vae.beta", &c.beta);
    if (!s && fm_vae_likelihood_from_name(lk) < 0)
        s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'vae.likelihood' = '%s' is not a likelihood", lk ? lk : "(missing)");
    if (s) return NULL;
    c.dim = (int)dim;
    c.latent = (int)latent;
    c.likelihood = (fm_vae_likelihood)fm_vae_likelihood_from_name(lk);
    c.data = fm_st_meta(st, "vae.data");
    fm__params_budget(fm__st_values(st), "checkpoint");
    fm_vae *v = fm_vae_new(&c);
    fm__params_budget_end();
    if (!v) return NULL;
    if (fm__params_load_model(v->P, st, use_ema, &v->z, "vae", c.dim)) {
        fm_vae_free(v);
        return NULL;
    }
    return v;
}

/* ------------------------------------------------------------------ the method */

typedef struct {
    float *lat; /* (batch, latent) reparameterisation noise */
} vae_state;

static void defaults(fm_train_config *c, int image)
{
    c->optim.lr = 1e-3;
    if (!image) return;
    c->vae.latent = 20; /* the tutorial's: 784 -> 400 ReLU -> 20 -> 400 ReLU -> 784, Bernoulli */
    c->vae.likelihood = FM_VAE_BERNOULLI;
    c->flow.net.nhidden = 1;
    c->flow.net.width[0] = 400;
    c->flow.net.act = FM_ACT_RELU;
}

static fm_status check(const fm_train_config *c)
{
    fm_status s = fm__train_mlp_only(c, "vae");
    return s ? s : fm__train_plain_noise(c, "vae");
}

/* The Bernoulli likelihood scores values in [0, 1]: images are, a table must
 * be checked, a generator's real-valued points are not; and standardising
 * would leave that range. */
static fm_status check_data(const fm_train_config *c, fm_dataset *data, int *standardize)
{
    if (c->vae.likelihood != FM_VAE_BERNOULLI) return FM_OK;
    if (c->standardize < 0) *standardize = 0;
    if (*standardize)
        return fm__fail(FM_ERR_ARG, "the Bernoulli likelihood models data in [0, 1]: standardising would leave that range");
    if (fm_spec_image_shape(c->flow.data, NULL, NULL, NULL)) return FM_OK;
    const fm_table *t = fm_dataset_table(data);
    if (!t)
        return fm__fail(FM_ERR_ARG, "the Bernoulli likelihood models data in [0, 1]; '%s' draws real-valued points (use "
                                    "the Gaussian likelihood)", fm_dataset_spec(data));
    for (size_t i = 0; i < (size_t)t->rows * t->cols; i++)
        if (!(t->data[i] >= 0.0f && t->data[i] <= 1.0f))
            return fm__fail(FM_ERR_ARG, "the Bernoulli likelihood models data in [0, 1]; row %zu, column %zu of '%s' holds "
                                        "%g (use the Gaussian likelihood)", i / (size_t)t->cols + 1,
                            i % (size_t)t->cols + 1, fm_dataset_spec(data), t->data[i]);
    return FM_OK;
}

static fm_status build(fm_trainer *tr, const fm_train_config *c, int dim, const char *data, const char *source)
{
    (void)source;
    const fm_mlp_config *net = &c->flow.net;
    fm_vae_config vc = fm_vae_config_default(dim);
    vc.latent = c->vae.latent;
    vc.beta = c->vae.beta;
    vc.likelihood = c->vae.likelihood;
    vc.nhidden = net->nhidden;
    memcpy(vc.width, net->width, sizeof vc.width);
    vc.act = net->act;
    vc.data = data;
    fm_vae *v = fm_vae_new(&vc);
    if (!v) return fm_last_status();
    tr->obj = v;
    tr->g[0].P = v->P;
    tr->z = &v->z;
    return FM_OK;
}

static fm_status state_new(fm_trainer *tr)
{
    vae_state *st = calloc(1, sizeof *st);
    if (!st) return fm__fail(FM_ERR_NOMEM, "out of memory");
    tr->ms = st;
    st->lat = malloc((size_t)tr->cfg.batch * tr->cfg.vae.latent * sizeof(float));
    return st->lat ? FM_OK : fm__fail(FM_ERR_NOMEM, "out of memory for a batch of %d", tr->cfg.batch);
}

static void state_free(void *ms)
{
    vae_state *st = ms;
    free(st->lat);
    free(st);
}

static fm_status shard(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss)
{
    vae_state *st = tr->ms;
    int B = tr->cfg.batch, d = tr->cfg.flow.dim, L = tr->cfg.vae.latent, m = r1 - r0;
    int xs[2] = {m, d}, zs[2] = {m, L};
    fm_tensor *rec = NULL, *kl = NULL;
    fm_tensor *l = loss_with(tp, tr->obj, P, fm_tensor_wrap(tp, tr->x1 + (size_t)r0 * d, 2, xs),
                                     fm_tensor_wrap(tp, st->lat + (size_t)r0 * L, 2, zs), 1.0 / B, &rec, &kl);
    if (rec && kl) {
        loss[1] = rec->data[0] / B;
        loss[2] = kl->data[0] / B;
    }
    return fm__train_finish(tp, P, l, loss);
}

static fm_status step(fm_trainer *tr, double *loss)
{
    vae_state *st = tr->ms;
    int B = tr->cfg.batch;
    fm_status s = fm__train_draw(tr, B);
    if (s) return s;
    if (tr->cfg.vae.likelihood == FM_VAE_BERNOULLI)
        for (size_t i = 0; i < (size_t)B * tr->cfg.flow.dim; i++)
            if (!(tr->x1[i] >= 0.0f && tr->x1[i] <= 1.0f))
                return fm__fail(FM_ERR_ARG, "the Bernoulli likelihood needs data in [0, 1]; the data hold %g", tr->x1[i]);
    fm_rng_normal_fill(&tr->rnoise, st->lat, (size_t)B * tr->cfg.vae.latent, 0.0f, 1.0f);
    double sums[3] = {NAN, 0, 0};
    s = fm__train_shards(tr, 0, NULL, shard, "loss", fm_trainer_lr(tr), sums);
    *loss = sums[0];
    if (s) return s;
    tr->parts[0] = sums[1];
    tr->parts[1] = sums[2];
    tr->nparts = 2;
    return fm__train_update(tr, 0, fm_trainer_lr(tr));
}

static fm_status load_config(fm_train_config *c, const fm_st *st)
{
    fm_vae *v = vae_load(st, 0);
    if (!v) return fm_last_status();
    c->flow.net.nhidden = v->cfg.nhidden;
    memcpy(c->flow.net.width, v->cfg.width, sizeof v->cfg.width);
    c->flow.net.act = v->cfg.act;
    c->vae.latent = v->cfg.latent;
    c->vae.beta = v->cfg.beta;
    c->vae.likelihood = v->cfg.likelihood;
    c->flow.data = fm_st_meta(st, "vae.data");
    fm_vae_free(v);
    return FM_OK;
}

static void m_free(void *obj) { fm_vae_free(obj); }
static void m_init(void *obj, fm_rng *r) { fm_vae_init(obj, r); }
static fm_status m_save(void *obj, fm_st_writer *w) { return vae_save(obj, w); }
static void *m_load(const fm_st *st, int use_ema) { return vae_load(st, use_ema); }
static int m_dim(const void *obj) { return ((const fm_vae *)obj)->cfg.dim; }
static const char *m_data(const void *obj) { return ((const fm_vae *)obj)->cfg.data; }
static size_t m_size(void *obj) { return fm_params_size(((fm_vae *)obj)->P); }

static int start_dim(const void *obj) { return ((const fm_vae *)obj)->cfg.latent; }

/* Latent noise (or the codes x_start) through the decoder, with its noise. */
static fm_status sample(void *obj, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                        const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx, fm_solve_stats *st)
{
    (void)sc, (void)grid, (void)ngrid, (void)obs, (void)octx, (void)st; /* one pass: the handle counts it */
    return x_start ? fm_vae_decode(obj, x_start, n, r, out) : sample_prior(obj, n, r, out);
}

static void describe(const fm_trainer *tr, char *buf, size_t cap)
{
    const fm_train_config *c = &tr->cfg;
    snprintf(buf, cap, "VAE on %s, latent %d, %s likelihood, KL weight %g", c->flow.data, c->vae.latent,
             fm_vae_likelihood_name(c->vae.likelihood), c->vae.beta);
}

static const char *const options[] = {"latent", "kl-weight", "likelihood", NULL};

const fm__method fm__method_vae = {
    .id = FM_METHOD_VAE,
    .name = "vae",
    .summary = "variational autoencoder: encoder, decoder and the negative ELBO",
    .object = "vae",
    .stdz_key = "vae",
    .parts = {"rec", "kl"},
    .options = options,
    .defaults = defaults,
    .check = check,
    .check_data = check_data,
    .build = build,
    .state_new = state_new,
    .state_free = state_free,
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
    .sampling = FM_SAMPLING_DIRECT,
    .start_dim = start_dim,
    .sample = sample,
};
