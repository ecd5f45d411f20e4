/* classifier.c - a small convolutional image classifier (layout and names in
 * flowmatch.h, next to fm_classifier_config) and the scores it gives a set of
 * generated images. Its training is src/methods/classifier.c, on the
 * generic trainer.
 *
 * Evaluation goes through the chunk workers (src/nets/workers.c), one tape
 * per thread.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

struct fm_classifier {
    fm_classifier_config cfg;
    char *data;                 /* the training data's spec ("" if unknown) */
    fm_params *P;
    int c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b; /* parameter indices */
    fm__workers wk;
};

fm_classifier_config fm_classifier_config_default(void)
{
    fm_classifier_config c;
    memset(&c, 0, sizeof c);
    c.in_ch = 1;
    c.height = c.width = 28;
    c.ch1 = 32;
    c.ch2 = 64;
    c.hidden = 128;
    c.classes = 10;
    c.act = FM_ACT_RELU;
    return c;
}

fm_status fm__classifier_check(const fm_classifier_config *c)
{
    if (c->in_ch < 1 || c->in_ch > 64 || c->height < 4 || c->width < 4 || c->height > 4096 || c->width > 4096)
        return fm__fail(FM_ERR_ARG, "classifier: image shape %d x %d x %d is invalid", c->in_ch, c->height, c->width);
    if (c->height % 4 || c->width % 4)
        return fm__fail(FM_ERR_ARG, "classifier: two 2x2 poolings need a height and width divisible by 4, not %d x %d",
                        c->height, c->width);
    if (c->ch1 < 1 || c->ch1 > 4096 || c->ch2 < 1 || c->ch2 > 4096)
        return fm__fail(FM_ERR_ARG, "classifier: convolution channels %d, %d are outside 1..4096", c->ch1, c->ch2);
    if (c->hidden < 1 || c->hidden > 65536)
        return fm__fail(FM_ERR_ARG, "classifier: %d features is outside 1..65536", c->hidden);
    if (c->classes < 2 || c->classes > FM_CLASSIFIER_MAX_CLASSES)
        return fm__fail(FM_ERR_ARG, "classifier: %d classes is outside 2..%d", c->classes, FM_CLASSIFIER_MAX_CLASSES);
    if (c->act < 0 || c->act >= FM_ACT_COUNT) return fm__fail(FM_ERR_ARG, "classifier: unknown activation %d", (int)c->act);
    if ((double)c->ch2 * (c->height / 4) * (c->width / 4) * c->hidden > 1e9)
        return fm__fail(FM_ERR_ARG, "classifier: the first linear layer (%d x %d x %d -> %d) is too large", c->ch2,
                        c->height / 4, c->width / 4, c->hidden);
    return FM_OK;
}

static int add_wb(fm_params *P, const char *name, int ndim, const int *ws, int *wi, int *bi)
{
    char k[64];
    int bs[1] = {ws[0]};
    snprintf(k, sizeof k, "%s.weight", name);
    *wi = fm_params_add(P, k, ndim, ws);
    snprintf(k, sizeof k, "%s.bias", name);
    *bi = *wi >= 0 ? fm_params_add(P, k, 1, bs) : -1;
    return *wi >= 0 && *bi >= 0;
}

fm_classifier *fm__classifier_new(const fm_classifier_config *cfg, const char *data)
{
    if (!cfg || fm__classifier_check(cfg)) return NULL;
    fm_classifier *c = calloc(1, sizeof *c);
    if (!c) {
        fm__fail(FM_ERR_NOMEM, "out of memory creating a classifier");
        return NULL;
    }
    c->cfg = *cfg;
    c->data = fm__strdup(data ? data : "");
    c->P = fm_params_new();
    if (!c->data || !c->P) {
        fm__fail(FM_ERR_NOMEM, "out of memory creating a classifier");
        fm_classifier_free(c);
        return NULL;
    }
    int flat = cfg->ch2 * (cfg->height / 4) * (cfg->width / 4);
    int s1[4] = {cfg->ch1, cfg->in_ch, 3, 3}, s2[4] = {cfg->ch2, cfg->ch1, 3, 3};
    int s3[2] = {cfg->hidden, flat}, s4[2] = {cfg->classes, cfg->hidden};
    if (!add_wb(c->P, "conv1", 4, s1, &c->c1w, &c->c1b) || !add_wb(c->P, "conv2", 4, s2, &c->c2w, &c->c2b) ||
        !add_wb(c->P, "fc1", 2, s3, &c->f1w, &c->f1b) || !add_wb(c->P, "fc2", 2, s4, &c->f2w, &c->f2b)) {
        fm_classifier_free(c);
        return NULL;
    }
    return c;
}

fm_classifier *fm_classifier_new(const fm_classifier_config *c) { return fm__classifier_new(c, NULL); }

void fm_classifier_free(fm_classifier *c)
{
    if (!c) return;
    fm_params_free(c->P);
    fm__workers_free(&c->wk);
    free(c->data);
    free(c);
}

void fm_classifier_init(fm_classifier *c, fm_rng *r)
{
    FM_ASSERT(r); /* a random stream is required */
    fm_params *P = c->P;
    fm_init_linear(r, fm_params_tensor(P, c->c1w), fm_params_tensor(P, c->c1b));
    fm_init_linear(r, fm_params_tensor(P, c->c2w), fm_params_tensor(P, c->c2b));
    fm_init_linear(r, fm_params_tensor(P, c->f1w), fm_params_tensor(P, c->f1b));
    fm_init_linear(r, fm_params_tensor(P, c->f2w), fm_params_tensor(P, c->f2b));
}

const fm_classifier_config *fm_classifier_get_config(const fm_classifier *c) { return &c->cfg; }
fm_params *fm_classifier_params(fm_classifier *c) { return c->P; }
const char *fm_classifier_data(const fm_classifier *c) { return c->data; }

/* ------------------------------------------------------------------ forward */

/* The logits with parameters P (c's own when NULL; a training shard's
 * replica); in training, dropout with probability p on the features (rng
 * draws the mask). */
fm_tensor *fm__classifier_forward(fm_tape *tp, fm_classifier *c, fm_params *P, fm_tensor *x, fm_tensor **features,
                                  float p, fm_rng *rng)
{
    if (features) *features = NULL;
    if (!fm__op_inputs_ok(tp, "classifier", &x, 1)) return NULL;
    const fm_classifier_config *k = &c->cfg;
    int d = k->in_ch * k->height * k->width, B = x->shape[0];
    char s1[96];
    if (!(x->ndim == 2 && x->shape[1] == d) &&
        !(x->ndim == 4 && x->shape[1] == k->in_ch && x->shape[2] == k->height && x->shape[3] == k->width))
        return fm__op_fail(tp, FM_ERR_SHAPE, "classifier: input has shape %s, expected [B, %d, %d, %d] or [B, %d]",
                           fm_shape_str(x, s1, sizeof s1), k->in_ch, k->height, k->width, d);
    if (!P) P = c->P;
    int is[4] = {B, k->in_ch, k->height, k->width}, fs[2] = {B, k->ch2 * (k->height / 4) * (k->width / 4)};
    fm_tensor *h = x->ndim == 2 ? fm_reshape(tp, x, 4, is) : x;
    h = fm_activation(tp, fm_conv2d(tp, h, fm_params_tensor(P, c->c1w), fm_params_tensor(P, c->c1b), 1, 1), k->act);
    h = fm_avg_pool2d(tp, h, 2);
    h = fm_activation(tp, fm_conv2d(tp, h, fm_params_tensor(P, c->c2w), fm_params_tensor(P, c->c2b), 1, 1), k->act);
    h = fm_reshape(tp, fm_avg_pool2d(tp, h, 2), 2, fs);
    fm_tensor *f = fm_activation(tp, fm_linear(tp, h, fm_params_tensor(P, c->f1w), fm_params_tensor(P, c->f1b)), k->act);
    if (features) *features = f;
    if (p > 0) f = fm_dropout(tp, f, p, rng, 1);
    return fm_linear(tp, f, fm_params_tensor(P, c->f2w), fm_params_tensor(P, c->f2b));
}

fm_tensor *fm_classifier_forward(fm_tape *tp, fm_classifier *c, fm_tensor *x, fm_tensor **features)
{
    return fm__classifier_forward(tp, c, NULL, x, features, 0.0f, NULL);
}

fm_tensor *fm_classifier_loss(fm_tape *tp, fm_classifier *c, fm_tensor *x, const int *labels)
{
    return fm_cross_entropy(tp, fm_classifier_forward(tp, c, x, NULL), labels, FM_REDUCE_MEAN);
}

/* ------------------------------------------------------------------ evaluation in chunks */

/* The index of the largest of row[0 .. K), the first on ties. */
int fm__argmax(const float *row, int K)
{
    int best = 0;
    for (int j = 1; j < K; j++)
        if (row[j] > row[best]) best = j;
    return best;
}

typedef struct {
    fm_classifier *c;
    const float *x;
    float *logits, *features; /* either may be NULL */
    int *pred;
} eval_args;

static fm_status eval_chunk(fm_tape *tp, float *tbuf, int i0, int m, void *ctx)
{
    eval_args *e = ctx;
    const fm_classifier_config *k = &e->c->cfg;
    int d = k->in_ch * k->height * k->width, K = k->classes, xs[2] = {m, d};
    (void)tbuf;
    fm_tensor *f, *z = fm_classifier_forward(tp, e->c, fm_tensor_wrap(tp, (float *)e->x + (size_t)i0 * d, 2, xs), &f);
    if (!z) return fm_tape_status(tp);
    if (e->features) memcpy(e->features + (size_t)i0 * k->hidden, f->data, (size_t)m * k->hidden * sizeof(float));
    if (e->logits) memcpy(e->logits + (size_t)i0 * K, z->data, (size_t)m * K * sizeof(float));
    for (int i = 0; e->pred && i < m; i++) e->pred[i0 + i] = fm__argmax(z->data + (size_t)i * K, K);
    return FM_OK;
}

static fm_status evaluate(fm_classifier *c, const float *x, int n, float *logits, float *features, int *pred)
{
    if (n < 0) return fm__fail(FM_ERR_ARG, "classifier: cannot evaluate %d images", n);
    if (n == 0) return FM_OK;
    eval_args e = {c, x, logits, features, pred};
    const fm_classifier_config *k = &c->cfg;
    fm__chunk_out out[3] = {{logits, (size_t)k->classes * sizeof(float), 0, logits != NULL},
                            {features, (size_t)k->hidden * sizeof(float), 0, features != NULL},
                            {pred, sizeof(int), 0, pred != NULL}};
    return fm__run_chunks(&c->wk, c->P, n, eval_chunk, &e, out, 3);
}

fm_status fm_classifier_predict(fm_classifier *c, const float *x, int n, float *logits, int *pred)
{
    return evaluate(c, x, n, logits, NULL, pred);
}

fm_status fm_classifier_features(fm_classifier *c, const float *x, int n, float *features)
{
    return evaluate(c, x, n, NULL, features, NULL);
}

/* ------------------------------------------------------------------ scores of generated images */

/* A copy of x (n, d) clamped to [0, 1]; NULL (with the error set) on a
 * non-finite value or no memory. *clamped counts the values moved. */
static float *clamped_copy(const float *x, int n, int d, const char *what, long *clamped)
{
    float *y = malloc((size_t)n * d * sizeof(float) + 1);
    if (!y) {
        fm__fail(FM_ERR_NOMEM, "out of memory for %d images", n);
        return NULL;
    }
    for (size_t i = 0; i < (size_t)n * d; i++) {
        float v = x[i];
        if (!isfinite(v)) {
            fm__fail(FM_ERR_NUMERIC, "%s: image %zu holds a NaN or infinite pixel", what, i / (size_t)d + 1);
            free(y);
            return NULL;
        }
        if (v < 0.0f || v > 1.0f) {
            v = v < 0.0f ? 0.0f : 1.0f;
            if (clamped) (*clamped)++;
        }
        y[i] = v;
    }
    return y;
}

fm_status fm_classifier_score(fm_classifier *c, const float *x, int n, const int *labels, const float *ref, int nref,
                              fm_image_scores *out)
{
    const fm_classifier_config *k = &c->cfg;
    int d = k->in_ch * k->height * k->width, K = k->classes, H = k->hidden;
    memset(out, 0, sizeof *out);
    out->frechet = out->accuracy = NAN;
    if (n < 1 || (ref && nref < 2) || (ref && n < 2))
        return fm__fail(FM_ERR_ARG, "classifier scores need at least 1 image, and 2 on each side for the Frechet distance "
                                    "(got %d and %d)", n, ref ? nref : 0);
    for (int i = 0; labels && i < n; i++)
        if (labels[i] < 0 || labels[i] >= K)
            return fm__fail(FM_ERR_ARG, "requested label %d of image %d is not a class of this classifier (0..%d)",
                            labels[i], i + 1, K - 1);
    long clamped = 0;
    float *xa = NULL, *fa = NULL, *xb = NULL, *fb = NULL;
    int *pred = NULL;
    fm_status s = FM_OK;
    if (!(xa = clamped_copy(x, n, d, "images", &clamped))) s = fm_last_status();
    else if (!(fa = malloc((size_t)n * H * sizeof(float))) || !(pred = malloc((size_t)n * sizeof(int))))
        s = fm__fail(FM_ERR_NOMEM, "out of memory for the features of %d images", n);
    if (!s) s = evaluate(c, xa, n, NULL, fa, pred);
    if (!s && ref) {
        if (!(xb = clamped_copy(ref, nref, d, "reference images", NULL))) s = fm_last_status();
        else if (!(fb = malloc((size_t)nref * H * sizeof(float))))
            s = fm__fail(FM_ERR_NOMEM, "out of memory for the features of %d images", nref);
        if (!s) s = evaluate(c, xb, nref, NULL, fb, NULL);
        if (!s) s = fm_frechet_distance(fa, n, fb, nref, H, &out->frechet);
    }
    if (!s) {
        out->n = n;
        out->clamped = clamped;
        for (int i = 0; i < n; i++) {
            out->counts[pred[i]]++;
            if (labels) out->correct += pred[i] == labels[i];
        }
        if (labels) out->accuracy = (double)out->correct / n;
    }
    free(xa);
    free(fa);
    free(pred);
    free(xb);
    free(fb);
    return s;
}

/* ------------------------------------------------------------------ checkpoints */

fm_status fm_classifier_save(fm_classifier *c, fm_st_writer *w)
{
    const fm_classifier_config *k = &c->cfg;
    int ch[2] = {k->ch1, k->ch2};
    fm_status s = fm__meta_put_format(w);
    if (!s) s = fm_st_writer_meta(w, "model", "classifier");
    if (!s) s = fm_st_writer_meta(w, "classifier.data", c->data);
    if (!s) s = fm__meta_put_num(w, "classifier.in_ch", k->in_ch);
    if (!s) s = fm__meta_put_num(w, "classifier.height", k->height);
    if (!s) s = fm__meta_put_num(w, "classifier.width", k->width);
    if (!s) s = fm__meta_put_widths(w, "classifier.channels", 2, ch);
    if (!s) s = fm__meta_put_num(w, "classifier.hidden", k->hidden);
    if (!s) s = fm__meta_put_num(w, "classifier.classes", k->classes);
    if (!s) s = fm_st_writer_meta(w, "classifier.act", fm_act_name(k->act));
    if (!s) s = fm_params_save(c->P, w, NULL);
    return s;
}

fm_classifier *fm_classifier_load(const fm_st *st)
{
    const char *model = fm_st_meta(st, "model");
    if (fm__meta_check_format(st)) return NULL;
    if (!model || strcmp(model, "classifier") != 0) {
        fm__fail(FM_ERR_FORMAT, "checkpoint holds %s%s%s, not a classifier", model ? "a '" : "a generative model",
                 model ? model : "", model ? "' model" : "");
        return NULL;
    }
    fm_classifier_config c;
    memset(&c, 0, sizeof c);
    double in = 0, h = 0, wd = 0, hid = 0, cls = 0;
    int ch[FM_MLP_MAX_LAYERS] = {0}, nch = 0;
    fm_status s = fm__meta_get_whole(st, "classifier.in_ch", 1, 64, &in);
    if (!s) s = fm__meta_get_whole(st, "classifier.height", 4, 4096, &h);
    if (!s) s = fm__meta_get_whole(st, "classifier.width", 4, 4096, &wd);
    if (!s) s = fm__meta_get_widths(st, "classifier.channels", &nch, ch);
    if (!s) s = fm__meta_get_whole(st, "classifier.hidden", 1, 65536, &hid);
    if (!s) s = fm__meta_get_whole(st, "classifier.classes", 2, FM_CLASSIFIER_MAX_CLASSES, &cls);
    if (!s) s = fm__meta_get_act(st, "classifier.act", &c.act);
    if (!s && nch != 2) s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'classifier.channels' has %d values, not 2", nch);
    if (s) return NULL;
    c.in_ch = (int)in;
    c.height = (int)h;
    c.width = (int)wd;
    c.ch1 = ch[0];
    c.ch2 = ch[1];
    c.hidden = (int)hid;
    c.classes = (int)cls;
    if (fm__classifier_check(&c)) {
        fm__fail(FM_ERR_FORMAT, "checkpoint's classifier: %s", fm_last_error());
        return NULL;
    }
    const char *data = fm_st_meta(st, "classifier.data");
    fm__params_budget(fm__st_values(st), "checkpoint");
    fm_classifier *m = fm__classifier_new(&c, data);
    fm__params_budget_end();
    if (m && fm_params_load(m->P, st, NULL) != FM_OK) {
        fm_classifier_free(m);
        return NULL;
    }
    return m;
}
