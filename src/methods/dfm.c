/* dfm.c - discrete flow matching (Gat et al. 2024) on sequences of L tokens
 * from a vocabulary of V: the mixture path, a network that predicts each
 * position's posterior over the vocabulary, the discrete Euler (jump)
 * sampler, and an ELBO of a sequence's log-likelihood.
 *
 * The path: x0 is all-mask (a token V beyond the vocabulary) or uniform
 * noise; at time t each position is x1's token with probability kappa_t =
 * t^n, else x0's (kappa_t' = n t^(n-1)). The network (an MLP on the one-hot
 * states, L (V + 1) inputs, and t; for images of tokens the U-Net, V + 1
 * one-hot channels in and V logit channels out) gives L x V logits, the
 * posterior p_{1|t}(x1^i | x_t). The loss, per position and averaged: the
 * cross-entropy -log p(x1^i), or the generalised KL of the mixture path,
 *     -kappa'/(1 - kappa) (p(x_t^i) - [x_t^i = x1^i] + [x_t^i != x1^i] log p(x1^i)),
 * whose integral over t bounds the sequence's negative log-likelihood
 * (its sum over positions, at times of a stratified grid, is the ELBO nll
 * reports, in nats, and bits per token).
 *
 * Sampling (discrete Euler, the model's sampler "euler"): at each step every
 * position draws x1^ from the posterior; the rate of jumping to a token y is
 * u(y) = kappa'/(1 - kappa) [y = x1^] (kappa' averaged over the step; plus, with --dfm-corrector B, the
 * divergence-free term B kappa'/(kappa (1 - kappa)) ((1 - kappa) p0(y) +
 * kappa p(y))), none to itself; it jumps with probability h sum u (the
 * Euler step of the chain, delta + h u; with the averaged rate a position
 * still at its source jumps with exactly the path's probability), to y drawn
 * from u. The step that reaches t = 1 takes x1^. Samples are
 * tokens (as floats).
 */
#include "train/method.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define DFM_T_MAX (1 - 1e-3) /* training and ELBO times stop short of t = 1, where kappa'/(1 - kappa) is infinite */

typedef struct {
    int V, L, source, gkl, elbo_samples;
    double exponent, corrector;
    fm_mlp_config net; /* in L (V + 1), out L V */
    fm_unet_config ucfg; /* images: in V + 1 channels (one-hot), out V (logits); unet NULL otherwise */
    char *data;
    fm_params *P;
    fm_mlp *mlp;
    fm_unet *unet;
    fm__stdz z; /* off: tokens are not standardised */
    fm__workers wk;
} dfm_model;

static dfm_model *dfm_new(int V, int L, const fm_train_config *c, const fm_mlp_config *shape, const fm_unet_config *uc,
                          const char *data)
{
    if (V < 2 || V > 4096 || L < 1 || (double)L * (V + 1) > (1 << 22)) {
        fm__fail(FM_ERR_ARG, "dfm: %d tokens of a vocabulary of %d is not a size it models", L, V);
        return NULL;
    }
    dfm_model *m = calloc(1, sizeof *m);
    if (!m) goto oom;
    m->V = V, m->L = L;
    m->source = c->dfm.source, m->gkl = c->dfm.gkl, m->elbo_samples = c->dfm.elbo_samples;
    m->exponent = c->dfm.exponent, m->corrector = c->dfm.corrector;
    m->net = *shape;
    m->net.in_dim = L * (V + 1);
    m->net.out_dim = L * V;
    m->net.time_input = 1;
    if (data && !(m->data = fm__strdup(data))) goto oom;
    if (!(m->P = fm_params_new())) goto oom;
    if (uc) { /* a U-Net over the image: one-hot channels in, logit channels out */
        m->ucfg = *uc;
        m->ucfg.in_ch = V + 1;
        m->ucfg.out_ch = V;
        m->ucfg.num_classes = 0;
        if (m->ucfg.height * m->ucfg.width != L) {
            fm__fail(FM_ERR_ARG, "dfm: a U-Net of %d x %d pixels for %d tokens", m->ucfg.height, m->ucfg.width, L);
            fm_params_free(m->P), free(m->data), free(m);
            return NULL;
        }
        m->unet = fm_unet_new(m->P, "net", &m->ucfg);
        if (m->unet) m->ucfg = *fm_unet_get_config(m->unet);
    } else {
        m->mlp = fm_mlp_new(m->P, "net", &m->net);
    }
    if (!m->mlp && !m->unet) {
        fm_params_free(m->P), free(m->data), free(m);
        return NULL;
    }
    return m;
oom:
    if (m) fm_params_free(m->P), free(m->data);
    free(m);
    fm__fail(FM_ERR_NOMEM, "out of memory");
    return NULL;
}

static void dfm_free(dfm_model *m)
{
    if (!m) return;
    fm_mlp_free(m->mlp);
    fm_unet_free(m->unet);
    fm_params_free(m->P);
    fm__workers_free(&m->wk);
    fm__stdz_free(&m->z);
    free(m->data);
    free(m);
}

/* The scheduler kappa_t = t^n and its derivative n t^(n - 1). */
static double kappa(double n, double t) { return pow(t, n); }
static double dkappa(double n, double t) { return t > 0 || n <= 1 ? n * pow(t, n - 1) : 0; }

/* A position's state on the path at kappa: its data token x1, else a source
 * token (the mask, or uniform noise); the source draw comes first. */
static int path_state(const dfm_model *m, int x1, double ka, fm_rng *r)
{
    int x0 = m->source == 0 ? m->V : (int)fm__rng_below(r, (uint32_t)m->V);
    return fm_rng_uniform(r) < ka ? x1 : x0;
}

/* The one-hot rows of states x (rows x L ints, V the mask) into oh (rows, L (V + 1)):
 * position-major for the MLP, channel-major (an image of V + 1 channels) for the U-Net. */
static void one_hot(const dfm_model *m, const int *x, int rows, float *oh)
{
    size_t w = (size_t)m->L * (m->V + 1);
    memset(oh, 0, (size_t)rows * w * sizeof(float));
    for (int i = 0; i < rows; i++)
        for (int p = 0; p < m->L; p++) {
            int v = x[(size_t)i * m->L + p];
            oh[(size_t)i * w + (m->unet ? (size_t)v * m->L + p : (size_t)p * (m->V + 1) + v)] = 1.0f;
        }
}

/* The network's logits for one-hot states X (m rows) at times T: (m, L V),
 * position-major from the MLP, channel-major from the U-Net. */
static fm_tensor *net_forward(fm_tape *tp, dfm_model *mo, fm_params *P, fm_tensor *T, fm_tensor *X)
{
    return mo->unet ? fm__unet_forward_with(tp, mo->unet, P, T, X, NULL) : fm__mlp_forward_with(tp, mo->mlp, P, T, X);
}

/* ------------------------------------------------------------------ the posterior, in chunks */

typedef struct {
    dfm_model *mo;
    const float *t; /* per row */
    const int *x;   /* states */
    float *logits;  /* (n, L V) */
} post_args;

static fm_status post_chunk(fm_tape *tp, float *tbuf, int i0, int m, void *ctx)
{
    post_args *a = ctx;
    dfm_model *mo = a->mo;
    int w = mo->L * (mo->V + 1), ts[2] = {m, 1}, xs[2] = {m, w};
    for (int i = 0; i < m; i++) tbuf[i] = a->t[i0 + i];
    fm_tensor *X = fm_tensor_new(tp, 2, xs);
    if (!X) return fm_tape_status(tp);
    one_hot(mo, a->x + (size_t)i0 * mo->L, m, X->data);
    fm_tensor *y = net_forward(tp, mo, mo->P, fm_tensor_wrap(tp, tbuf, 2, ts), X);
    if (!y) return fm_tape_status(tp);
    size_t LV = (size_t)mo->L * mo->V;
    if (!mo->unet) {
        memcpy(a->logits + (size_t)i0 * LV, y->data, (size_t)m * LV * sizeof(float));
        return FM_OK;
    }
    for (int i = 0; i < m; i++) /* channel-major to a row of V logits per position */
        for (int p = 0; p < mo->L; p++)
            for (int v = 0; v < mo->V; v++)
                a->logits[(size_t)(i0 + i) * LV + (size_t)p * mo->V + v] = y->data[(size_t)i * LV + (size_t)v * mo->L + p];
    return FM_OK;
}

/* The logits of the posterior of n states x at times t (per row). */
static fm_status posterior(dfm_model *mo, const float *t, const int *x, int n, float *logits)
{
    post_args a = {mo, t, x, logits};
    fm__chunk_out out = {logits, (size_t)mo->L * mo->V * sizeof(float), 0, 1};
    return fm__run_chunks(&mo->wk, mo->P, n, post_chunk, &a, &out, 1);
}

/* softmax of V logits into p (double). */
static void softmax(const float *z, int V, double *p)
{
    double m = z[0], s = 0;
    for (int j = 1; j < V; j++) m = z[j] > m ? z[j] : m;
    for (int j = 0; j < V; j++) s += p[j] = exp(z[j] - m);
    for (int j = 0; j < V; j++) p[j] /= s;
}

/* j with probability w[j] / sum w, by one uniform draw. */
static int draw(const double *w, int n, double total, fm_rng *r)
{
    double u = fm_rng_uniform(r) * total, acc = 0;
    for (int j = 0; j < n; j++)
        if ((acc += w[j]) > u) return j;
    for (int j = n - 1; j > 0; j--)
        if (w[j] > 0) return j;
    return 0;
}

/* ------------------------------------------------------------------ the sampler */

fm_status fm__dfm_euler(int V, int L, int source, double exponent, double corrector, fm__dfm_posterior fn, void *ctx,
                        fm_rng *r, const double *grid, int ngrid, int *x, int n, fm_solve_stats *st)
{
    size_t nl = (size_t)n * L;
    float *lg = malloc(nl * V * sizeof(float)), *tt = malloc((size_t)n * sizeof(float));
    double *p = malloc((size_t)(V + 1) * 2 * sizeof(double)), *u = p ? p + V + 1 : NULL;
    if (!lg || !tt || !p) {
        free(lg), free(tt), free(p);
        return fm__fail(FM_ERR_NOMEM, "out of memory sampling %d sequences", n);
    }
    fm_status s = FM_OK;
    for (int g = 0; g + 1 < ngrid && !s; g++) {
        double t = grid[g], h = grid[g + 1] - t, k = kappa(exponent, t), dk = dkappa(exponent, t);
        for (int i = 0; i < n; i++) tt[i] = (float)t;
        if ((s = fn(ctx, tt, x, n, lg))) break;
        if (st) st->nfe++, st->steps++;
        int last = g + 2 == ngrid && grid[ngrid - 1] >= 1 - 1e-9; /* the step that reaches t = 1 takes x1^ */
        /* the jump rate, averaged over the step: (kappa(t + h) - kappa(t)) / (h (1 - kappa(t))), finite even
         * where kappa' is not (t = 0 with an exponent below 1) */
        double jc = k < 1 && h > 0 ? (kappa(exponent, t + h) - k) / (h * (1 - k)) : 0;
        double cc = corrector > 0 && k > 0 && k < 1 ? corrector * dk / (k * (1 - k)) : 0;
        for (size_t q = 0; q < nl; q++) {
            softmax(lg + q * V, V, p);
            int x1 = draw(p, V, 1.0, r), xt = x[q];
            if (last) {
                x[q] = x1;
                continue;
            }
            double tot = 0;
            for (int y = 0; y <= V; y++) { /* the rates to every state, the mask V included */
                double p0 = source == 0 ? (y == V) : (y < V ? 1.0 / V : 0);
                u[y] = (y == x1 ? jc : 0) + (cc > 0 ? cc * ((1 - k) * p0 + k * (y < V ? p[y] : 0)) : 0);
                if (y == xt) u[y] = 0;
                tot += u[y];
            }
            if (tot > 0 && fm_rng_uniform(r) < h * tot) x[q] = draw(u, V + 1, tot, r); /* the Euler step delta + h u */
        }
    }
    free(lg), free(tt), free(p);
    return s;
}

static fm_status model_posterior(void *ctx, const float *t, const int *x, int n, float *logits)
{
    return posterior(ctx, t, x, n, logits);
}

static const char *const samplers[] = {"euler", NULL};

static void sampler_steps(const void *obj, int i, int *steps, int *max_steps)
{
    (void)obj, (void)i;
    *steps = 64;
    *max_steps = 100000;
}

/* The source: all-mask, or uniform tokens. */
static void draw_source(const dfm_model *m, fm_rng *r, int *x, size_t nl)
{
    for (size_t q = 0; q < nl; q++) x[q] = m->source == 0 ? m->V : (int)fm__rng_below(r, (uint32_t)m->V);
}

/* Tokens given as floats into ints, each checked. */
static fm_status tokens_of(const dfm_model *m, const float *x, size_t nl, int *out)
{
    for (size_t q = 0; q < nl; q++) {
        float v = x[q];
        if (!(v >= 0 && v < m->V) || v != floorf(v))
            return fm__fail(FM_ERR_ARG, "dfm: value %g at row %zu, column %zu is not a token of 0 .. %d", v, q / m->L + 1,
                            q % m->L + 1, m->V - 1);
        out[q] = (int)v;
    }
    return FM_OK;
}

static fm_status sample(void *obj, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                        const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx, fm_solve_stats *st)
{
    (void)obs, (void)octx;
    dfm_model *mo = obj;
    if (sc && sc->sampler && strcmp(sc->sampler, "euler"))
        return fm__fail(FM_ERR_ARG, "a dfm model samples with its discrete euler sampler, not '%s'", sc->sampler);
    if (!r) return fm__fail(FM_ERR_ARG, "dfm: sampling draws jumps: it needs a random stream");
    size_t nl = (size_t)n * mo->L;
    int *x = malloc(nl * sizeof(int));
    if (!x) return fm__fail(FM_ERR_NOMEM, "out of memory sampling %d sequences", n);
    fm_status s = FM_OK;
    if (x_start) { /* given states: tokens, or V for a masked position */
        for (size_t q = 0; q < nl && !s; q++)
            if (!(x_start[q] >= 0 && x_start[q] <= mo->V) || x_start[q] != floorf(x_start[q]))
                s = fm__fail(FM_ERR_ARG, "dfm: start value %g is neither a token nor the mask %d", x_start[q], mo->V);
            else x[q] = (int)x_start[q];
    } else {
        draw_source(mo, r, x, nl);
    }
    if (st) memset(st, 0, sizeof *st);
    if (!s)
        s = fm__dfm_euler(mo->V, mo->L, mo->source, mo->exponent, mo->corrector, model_posterior, mo, r, grid, ngrid,
                          x, n, st);
    for (size_t q = 0; !s && q < nl; q++) out[q] = (float)x[q];
    free(x);
    return s;
}

/* ------------------------------------------------------------------ the ELBO */

static fm_status log_prob(void *obj, const float *xf, int n, double *logp)
{
    dfm_model *mo = obj;
    int K = mo->elbo_samples, V = mo->V;
    size_t nl = (size_t)n * mo->L;
    int *x1 = malloc(nl * sizeof(int)), *xt = malloc(nl * sizeof(int));
    float *t = malloc((size_t)n * sizeof(float)), *lg = malloc(nl * V * sizeof(float));
    fm_status s = x1 && xt && t && lg ? FM_OK : fm__fail(FM_ERR_NOMEM, "out of memory for %d ELBOs", n);
    if (!s) s = tokens_of(mo, xf, nl, x1);
    fm_rng r;
    fm_rng_seed(&r, 0x656c626f, FM_STREAM_NOISE); /* the same draws every call */
    for (int i = 0; i < n; i++) logp[i] = 0;
    for (int k = 0; !s && k < K; k++) {
        /* time k of a stratified grid on (0, 1), its states drawn from the path */
        for (int i = 0; i < n; i++) t[i] = (float)((k + fm_rng_uniform(&r)) / K);
        for (int i = 0; i < n; i++)
            for (int q = 0; q < mo->L; q++) {
                size_t j = (size_t)i * mo->L + q;
                xt[j] = path_state(mo, x1[j], kappa(mo->exponent, t[i]), &r);
            }
        if ((s = posterior(mo, t, xt, n, lg))) break;
        for (int i = 0; i < n; i++) {
            double ka = kappa(mo->exponent, t[i]), w = ka < 1 ? dkappa(mo->exponent, t[i]) / (1 - ka) : 0, sum = 0;
            for (size_t j = (size_t)i * mo->L; j < (size_t)(i + 1) * mo->L; j++)
                sum += fm__dfm_row_loss(lg + j * V, 1, V, x1[j], xt[j], w, 1); /* the training loss's own term */
            logp[i] -= sum / K; /* the integral over (0, 1) by the stratified mean */
        }
    }
    free(x1), free(xt), free(t), free(lg);
    return s;
}

/* ------------------------------------------------------------------ training */

typedef struct {
    int *x1, *xt;
    float *w, *oh, *t;
} dfm_state;

static fm_status state_new(fm_trainer *tr)
{
    dfm_model *mo = tr->obj;
    dfm_state *st = calloc(1, sizeof *st);
    if (!st) return fm__fail(FM_ERR_NOMEM, "out of memory");
    tr->ms = st;
    size_t B = (size_t)tr->cfg.batch, nl = B * mo->L;
    st->x1 = malloc(nl * sizeof(int));
    st->xt = malloc(nl * sizeof(int));
    st->w = malloc(nl * sizeof(float));
    st->t = malloc(B * sizeof(float));
    st->oh = malloc(nl * (mo->V + 1) * sizeof(float));
    if (!st->x1 || !st->xt || !st->w || !st->t || !st->oh)
        return fm__fail(FM_ERR_NOMEM, "out of memory for a batch of %zu sequences", B);
    return FM_OK;
}

static void state_free(void *ms)
{
    dfm_state *st = ms;
    free(st->x1), free(st->xt), free(st->w), free(st->t), free(st->oh);
    free(st);
}

static fm_status shard(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss)
{
    dfm_model *mo = tr->obj;
    dfm_state *st = tr->ms;
    int m = r1 - r0, L = mo->L, V = mo->V, w = L * (V + 1), ts[2] = {m, 1}, xs[2] = {m, w}, ls[2] = {m * L, V};
    fm_tensor *y = net_forward(tp, mo, P, fm_tensor_wrap(tp, st->t + r0, 2, ts), fm_tensor_wrap(tp, st->oh + (size_t)r0 * w, 2, xs));
    size_t o = (size_t)r0 * L;
    fm_tensor *l = mo->unet ? fm__dfm_loss(tp, y, st->x1 + o, st->xt + o, st->w + o, mo->gkl, V, L)
                            : fm__dfm_loss(tp, fm_reshape(tp, y, 2, ls), st->x1 + o, st->xt + o, st->w + o, mo->gkl, V, 0);
    return fm__train_finish(tp, P, fm_scale(tp, l, (float)(1.0 / ((double)tr->cfg.batch * L))), loss);
}

static fm_status step(fm_trainer *tr, double *loss)
{
    dfm_model *mo = tr->obj;
    dfm_state *st = tr->ms;
    int B = tr->cfg.batch, L = mo->L;
    fm_status s = fm__train_draw(tr, B);
    if (!s) s = tokens_of(mo, tr->x1, (size_t)B * L, st->x1);
    if (s) return s;
    for (int i = 0; i < B; i++) {
        double t = DFM_T_MAX * fm_rng_uniform(&tr->rtime), ka = kappa(mo->exponent, t);
        st->t[i] = (float)t;
        for (int q = 0; q < L; q++) {
            size_t j = (size_t)i * L + q;
            st->xt[j] = path_state(mo, st->x1[j], ka, &tr->rnoise);
            st->w[j] = mo->gkl ? (float)(dkappa(mo->exponent, t) / (1 - ka)) : 1.0f;
        }
    }
    one_hot(mo, st->xt, B, st->oh);
    double sums[3] = {NAN, 0, 0};
    s = fm__train_shards(tr, 0, NULL, shard, "loss", fm_trainer_lr(tr), sums);
    *loss = sums[0];
    tr->nparts = 0;
    return s ? s : fm__train_update(tr, 0, fm_trainer_lr(tr));
}

/* ------------------------------------------------------------------ checkpoints and the table */

static fm_status dfm_save(void *obj, fm_st_writer *w)
{
    dfm_model *m = obj;
    fm_status s = fm__meta_put_format(w);
    if (!s) s = fm_st_writer_meta(w, "method", "dfm");
    if (!s) s = fm_st_writer_meta(w, "dfm.data", m->data ? m->data : "");
    if (!s) s = fm__meta_put_num(w, "dfm.vocab", m->V);
    if (!s) s = fm__meta_put_num(w, "dfm.length", m->L);
    if (!s) s = fm_st_writer_meta(w, "dfm.source", m->source ? "uniform" : "mask");
    if (!s) s = fm__meta_put_num(w, "dfm.exponent", m->exponent);
    if (!s) s = fm_st_writer_meta(w, "dfm.loss", m->gkl ? "gkl" : "ce");
    if (!s) s = fm__meta_put_num(w, "dfm.corrector", m->corrector);
    if (!s) s = fm__meta_put_num(w, "dfm.elbo_samples", m->elbo_samples);
    if (!s) s = fm__meta_put_widths(w, "dfm.widths", m->net.nhidden, m->net.width);
    if (!s) s = fm_st_writer_meta(w, "dfm.act", fm_act_name(m->net.act));
    if (!s) s = fm_st_writer_meta(w, "dfm.arch", m->unet ? "unet" : "mlp");
    if (!s && m->unet) s = fm_unet_config_save(&m->ucfg, w);
    if (!s) s = fm_params_save(m->P, w, NULL);
    return s;
}

/* The configuration from a checkpoint's metadata: c's dfm part and net shape, V and L. */
static fm_status shape_load(const fm_st *st, fm_train_config *c, int *V, int *L)
{
    double v = 0, l = 0, ex = 2, co = 0, es = 64;
    fm_status s = fm__meta_get_whole(st, "dfm.vocab", 2, 4096, &v);
    if (!s) s = fm__meta_get_whole(st, "dfm.length", 1, 1 << 22, &l);
    if (!s) s = fm__meta_get_num(st, "dfm.exponent", &ex);
    if (!s) s = fm__meta_get_num(st, "dfm.corrector", &co);
    if (!s) s = fm__meta_get_whole(st, "dfm.elbo_samples", 1, 100000, &es);
    if (!s) s = fm__meta_get_widths(st, "dfm.widths", &c->flow.net.nhidden, c->flow.net.width);
    if (!s) s = fm__meta_get_act(st, "dfm.act", &c->flow.net.act);
    const char *src = fm_st_meta(st, "dfm.source"), *lo = fm_st_meta(st, "dfm.loss");
    if (!s && (!src || (strcmp(src, "mask") && strcmp(src, "uniform"))))
        s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'dfm.source' is '%s', not mask or uniform", src ? src : "");
    if (!s && (!lo || (strcmp(lo, "ce") && strcmp(lo, "gkl"))))
        s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'dfm.loss' is '%s', not ce or gkl", lo ? lo : "");
    if (!s && !(ex > 0 && ex <= 100 && co >= 0 && co <= 100))
        s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata: dfm.exponent %g or dfm.corrector %g out of range", ex, co);
    const char *arch = fm_st_meta(st, "dfm.arch");
    c->flow.arch = arch && !strcmp(arch, "unet") ? FM_ARCH_UNET : FM_ARCH_MLP;
    if (!s && c->flow.arch == FM_ARCH_UNET) s = fm_unet_config_load(&c->flow.unet, st);
    if (s) return s;
    *V = (int)v, *L = (int)l;
    c->dfm.source = !strcmp(src, "uniform");
    c->dfm.gkl = !strcmp(lo, "gkl");
    c->dfm.exponent = ex, c->dfm.corrector = co, c->dfm.elbo_samples = (int)es;
    return FM_OK;
}

static void *dfm_load(const fm_st *st, int use_ema)
{
    fm_train_config c = fm_train_config_default();
    int V, L;
    if (shape_load(st, &c, &V, &L)) return NULL;
    fm__params_budget(fm__st_values(st), "checkpoint");
    dfm_model *m = dfm_new(V, L, &c, &c.flow.net, c.flow.arch == FM_ARCH_UNET ? &c.flow.unet : NULL,
                           fm_st_meta(st, "dfm.data"));
    fm__params_budget_end();
    if (!m) return NULL;
    if (fm__params_load_model(m->P, st, use_ema, NULL, NULL, 0)) {
        dfm_free(m);
        return NULL;
    }
    return m;
}

static void defaults(fm_train_config *c, int image)
{
    if (image) { /* pixels as tokens: the U-Net, one-hot channels in and logit channels out */
        c->flow.arch = FM_ARCH_UNET;
        c->flow.unet.base = 16;
    }
    c->optim.lr = 1e-3;
    c->flow.net.act = FM_ACT_SILU;
    c->flow.net.nhidden = 3;
    for (int i = 0; i < 3; i++) c->flow.net.width[i] = 512;
}

static fm_status check(const fm_train_config *c)
{
    fm_status s = c->flow.unet.num_classes ? fm__fail(FM_ERR_ARG, "dfm: class conditioning is not for token models") : FM_OK;
    if (!s && c->coupling != FM_COUPLING_INDEPENDENT) s = fm__fail(FM_ERR_ARG, "dfm pairs x0 and x1 independently");
    if (!s && !fm__is_gaussian_source(c->flow.source))
        s = fm__fail(FM_ERR_ARG, "dfm's source is the all-mask or the uniform distribution (--dfm-source)");
    if (!s && c->dequantize) s = fm__fail(FM_ERR_ARG, "dfm models tokens: --dequantize is for real-valued pixels");
    if (!s && (c->dfm.source < 0 || c->dfm.source > 1 || !(c->dfm.exponent > 0 && c->dfm.exponent <= 100) ||
               !(c->dfm.corrector >= 0 && c->dfm.corrector <= 100) || c->dfm.elbo_samples < 1 ||
               c->dfm.elbo_samples > 100000))
        s = fm__fail(FM_ERR_ARG, "dfm: source %d (0 or 1), exponent %g (in (0, 100]), corrector %g (in [0, 100]) or "
                                 "ELBO samples %d (1..100000) out of range", c->dfm.source, c->dfm.exponent,
                     c->dfm.corrector, c->dfm.elbo_samples);
    return s;
}

static fm_status check_data(const fm_train_config *c, fm_dataset *data, int *standardize)
{
    if (!fm_dataset_vocab(data))
        return fm__fail(FM_ERR_ARG, "dfm: '%s' is not token data (words:FILE, checkerboard-tokens, "
                                    "mnist:DIR,binarize=1)", fm_dataset_spec(data));
    if (c->standardize == 1) return fm__fail(FM_ERR_ARG, "dfm: tokens are not standardised");
    if (c->flow.arch == FM_ARCH_UNET && !fm_spec_image_shape(fm_dataset_spec(data), NULL, NULL, NULL))
        return fm__fail(FM_ERR_ARG, "dfm: the U-Net is for images of tokens (mnist:DIR,binarize=1); '%s' is a sequence",
                        fm_dataset_spec(data));
    *standardize = 0;
    return FM_OK;
}

static fm_status build(fm_trainer *tr, const fm_train_config *c, int dim, const char *data, const char *source)
{
    (void)source;
    fm_dataset *ds = fm_dataset_open(data); /* its vocabulary */
    if (!ds) return fm_last_status();
    int V = fm_dataset_vocab(ds);
    fm_dataset_free(ds);
    fm_unet_config uc = c->flow.unet;
    if (c->flow.arch == FM_ARCH_UNET) { /* the image's shape, and the network's from the configuration */
        int ch, h, w;
        if (!fm_spec_image_shape(data, &ch, &h, &w))
            return fm__fail(FM_ERR_FORMAT, "dfm: a U-Net for '%s', which is not an image set", data);
        uc = fm_unet_config_default(V + 1, h, w);
        if (c->flow.unet.base > 0) uc.base = c->flow.unet.base;
    }
    dfm_model *m = dfm_new(V, dim, c, &c->flow.net, c->flow.arch == FM_ARCH_UNET ? &uc : NULL, data);
    if (!m) return fm_last_status();
    tr->obj = m;
    tr->g[0].P = m->P;
    tr->z = &m->z;
    return FM_OK;
}

static fm_status load_config(fm_train_config *c, const fm_st *st)
{
    int V, L;
    fm_status s = shape_load(st, c, &V, &L);
    if (!s) c->flow.data = fm_st_meta(st, "dfm.data");
    return s;
}

static void describe(const fm_trainer *tr, char *buf, size_t cap)
{
    const dfm_model *m = tr->obj;
    snprintf(buf, cap, "discrete flow matching on %s: %d tokens of %d, %s source, kappa = t^%g, %s loss",
             tr->cfg.flow.data, m->L, m->V, m->source ? "uniform" : "mask", m->exponent, m->gkl ? "generalised KL" : "cross-entropy");
}

static void m_free(void *obj) { dfm_free(obj); }
static void m_init(void *obj, fm_rng *r)
{
    dfm_model *m = obj;
    if (m->unet) fm_unet_init(m->unet, r);
    else fm_mlp_init(m->mlp, r);
}
static int m_dim(const void *obj) { return ((const dfm_model *)obj)->L; }
static const char *m_data(const void *obj) { return ((const dfm_model *)obj)->data; }
static size_t m_size(void *obj) { return fm_params_size(((dfm_model *)obj)->P); }

int fm_model_vocab(const fm_model *M)
{
    if (strcmp(fm_model_method_name(M), "dfm")) return 0;
    return ((const dfm_model *)fm__model_object((fm_model *)M))->V;
}

/* --dfm-source, --dfm-exponent, --dfm-loss, --dfm-corrector, --elbo-samples */
static fm_status set_source(fm_train_config *c, const char *v)
{
    if (strcmp(v, "mask") && strcmp(v, "uniform")) return fm__fail(FM_ERR_ARG, "dfm: source '%s' is mask or uniform", v);
    c->dfm.source = !strcmp(v, "uniform");
    return FM_OK;
}
static void get_source(const fm_train_config *c, char *b, size_t n) { snprintf(b, n, "%s", c->dfm.source ? "uniform" : "mask"); }
static fm_status set_exponent(fm_train_config *c, const char *v)
{
    return fm__setting_number("dfm: dfm-exponent", v, 0, 100, 1, &c->dfm.exponent);
}
static void get_exponent(const fm_train_config *c, char *b, size_t n) { snprintf(b, n, "%g", c->dfm.exponent); }
static fm_status set_loss(fm_train_config *c, const char *v)
{
    if (strcmp(v, "ce") && strcmp(v, "gkl")) return fm__fail(FM_ERR_ARG, "dfm: loss '%s' is ce or gkl", v);
    c->dfm.gkl = !strcmp(v, "gkl");
    return FM_OK;
}
static void get_loss(const fm_train_config *c, char *b, size_t n) { snprintf(b, n, "%s", c->dfm.gkl ? "gkl" : "ce"); }
static fm_status set_corrector(fm_train_config *c, const char *v)
{
    return fm__setting_number("dfm: dfm-corrector", v, 0, 100, 0, &c->dfm.corrector);
}
static void get_corrector(const fm_train_config *c, char *b, size_t n) { snprintf(b, n, "%g", c->dfm.corrector); }
static fm_status set_elbo(fm_train_config *c, const char *v)
{
    return fm__setting_whole("dfm: elbo-samples", v, 1, 100000, &c->dfm.elbo_samples);
}
static void get_elbo(const fm_train_config *c, char *b, size_t n) { snprintf(b, n, "%d", c->dfm.elbo_samples); }

static const fm__setting settings[] = {
    {"dfm-source", "KIND", "dfm: the source, mask (every position masked) or uniform (noise tokens)", set_source, get_source},
    {"dfm-exponent", "N", "dfm: the scheduler kappa_t = t^N", set_exponent, get_exponent},
    {"dfm-loss", "KIND", "dfm: ce (cross-entropy) or gkl (the mixture path's generalised KL)", set_loss, get_loss},
    {"dfm-corrector", "B", "dfm: weight of the divergence-free term when sampling (0: none)", set_corrector, get_corrector},
    {"elbo-samples", "K", "dfm: stratified times of the ELBO that nll reports", set_elbo, get_elbo},
    {NULL, NULL, NULL, NULL, NULL},
};

const fm__method fm__method_dfm = {
    .id = 8,
    .name = "dfm",
    .summary = "discrete flow matching on tokens: the mixture path, a posterior network, the discrete Euler sampler",
    .object = "dfm",
    .stdz_key = "dfm",
    .settings = settings,
    .default_data = "checkerboard-tokens", /* flow_matching's own discrete example */
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
    .save = dfm_save,
    .load = dfm_load,
    .dim = m_dim,
    .data = m_data,
    .size = m_size,
    .log_prob = log_prob,
    .log_prob_how = "the negative ELBO of the mixture path (generalised KL at stratified times): an upper bound on the NLL",
    .sampling = FM_SAMPLING_OWN,
    .samplers = samplers,
    .sampler_steps = sampler_steps,
    .sample = sample,
};
