/* ops_loss.c - scalar losses: MSE, binary cross-entropy (on probabilities and
 * on logits), the KL divergence of a diagonal Gaussian from N(0, I), the
 * negative log-likelihood of a diagonal Gaussian, and the cross-entropy of
 * class logits against integer labels.
 *
 * Each accumulates in double. Reduction MEAN divides by the number of
 * elements (PyTorch's reduction='mean'), for the cross-entropy the number of
 * rows; SUM does not divide.
 */
#include "internal.h"
#include "engine/kernels.h"

#include <math.h>
#include <string.h>

static int reduction_ok(fm_tape *tp, const char *op, fm_reduce r)
{
    if (r >= 0 && r < FM_REDUCE_COUNT) return 1;
    fm__op_fail(tp, FM_ERR_ARG, "%s: unknown reduction %d", op, (int)r);
    return 0;
}

/* Pairwise-shape check shared by the losses. */
static int loss_args(fm_tape *tp, const char *op, fm_tensor *a, fm_tensor *b, fm_reduce r)
{
    fm_tensor *in[2] = {a, b};
    if (!fm__op_inputs_ok(tp, op, in, 2) || !reduction_ok(tp, op, r)) return 0;
    if (!fm__same_shape(a, b)) {
        char s1[96], s2[96];
        fm__op_fail(tp, FM_ERR_SHAPE, "%s: shapes %s and %s differ", op,
                    fm_shape_str(a, s1, sizeof s1), fm_shape_str(b, s2, sizeof s2));
        return 0;
    }
    return 1;
}

/* The scalar output of the nin inputs, with the reduction in arg.i[0]. */
static fm_tensor *loss_node(fm_tape *tp, const fm_op *op, fm_tensor *const *in, int nin, fm_reduce r)
{
    fm_tensor *y = fm__node(tp, op, 0, NULL, in, nin);
    if (!y) return NULL;
    y->arg.i[0] = r;
    return y;
}

/* The factor each of `count` terms is scaled by: 1 / count for MEAN, 1 for SUM.
 * The forward takes it as a double, the backward rounded to a float. */
static double reduce_factor(fm_reduce r, size_t count) { return r == FM_REDUCE_MEAN ? 1.0 / (double)count : 1.0; }

/* ---- MSE: (p - t)^2 */

/* loss = k sum of (p - t)^2, in double */
void fm__mse_forward(float *loss, const float *p, const float *t, size_t n, fm_reduce r)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)p[i] - t[i];
        s += d * d;
    }
    loss[0] = (float)(s * reduce_factor(r, n));
}

/* dp += 2 k dloss (p - t), dt -= the same */
void fm__mse_backward(float *dp, float *dt, const float *dloss, const float *p, const float *t, size_t n, fm_reduce r)
{
    float g = dloss[0] * (float)reduce_factor(r, n);
    for (size_t i = 0; i < n; i++) {
        float d = 2.0f * g * (p[i] - t[i]);
        if (dp) dp[i] += d;
        if (dt) dt[i] -= d;
    }
}

static void mse_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *p = y->src[0], *t = y->src[1];
    float *gp = fm__wants_grad(p) ? fm__grad(tp, p) : NULL;
    float *gt = fm__wants_grad(t) ? fm__grad(tp, t) : NULL;
    if (tp->status != FM_OK) return;
    fm__mse_backward(gp, gt, y->grad, p->data, t->data, p->size, (fm_reduce)y->arg.i[0]);
}

static const fm_op OP_MSE = {"mse_loss", mse_backward};

fm_tensor *fm_mse_loss(fm_tape *tp, fm_tensor *pred, fm_tensor *target, fm_reduce r)
{
    if (!loss_args(tp, "mse_loss", pred, target, r)) return NULL;
    fm_tensor *y = loss_node(tp, &OP_MSE, (fm_tensor *[]){pred, target}, 2, r);
    if (!y) return NULL;
    fm__mse_forward(y->data, pred->data, target->data, pred->size, r);
    return y;
}

/* ---- BCE on probabilities */

/* loss = -k sum of t log p + (1 - t) log(1 - p), each log floored at -100, in double */
void fm__bce_forward(float *loss, const float *p, const float *t, size_t n, fm_reduce r)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double q = p[i], v = t[i];
        double lp = q > 0 ? log(q) : -100.0, lq = q < 1 ? log1p(-q) : -100.0;
        if (lp < -100.0) lp = -100.0;
        if (lq < -100.0) lq = -100.0;
        s -= v * lp + (1.0 - v) * lq;
    }
    loss[0] = (float)(s * reduce_factor(r, n));
}

/* dp += k dloss (p - t) / max(p (1 - p), 1e-12) */
void fm__bce_backward(float *dp, const float *dloss, const float *p, const float *t, size_t n, fm_reduce r)
{
    float g = dloss[0] * (float)reduce_factor(r, n);
    for (size_t i = 0; i < n; i++) {
        /* d/dp = (p - y) / (p (1 - p)), the denominator floored at 1e-12 as PyTorch does */
        double q = p[i], den = q * (1.0 - q);
        if (den < 1e-12) den = 1e-12;
        dp[i] += (float)(g * (q - t[i]) / den);
    }
}

static void bce_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *p = y->src[0], *t = y->src[1];
    if (!fm__wants_grad(p)) return;
    float *gp = fm__grad(tp, p);
    if (!gp) return;
    fm__bce_backward(gp, y->grad, p->data, t->data, p->size, (fm_reduce)y->arg.i[0]);
}

static const fm_op OP_BCE = {"bce_loss", bce_backward};

fm_tensor *fm_bce_loss(fm_tape *tp, fm_tensor *p, fm_tensor *y, fm_reduce r)
{
    if (!loss_args(tp, "bce_loss", p, y, r)) return NULL;
    for (size_t i = 0; i < p->size; i++) {
        double q = p->data[i];
        if (!(q >= 0.0 && q <= 1.0))
            return fm__op_fail(tp, FM_ERR_NUMERIC,
                               "bce_loss: input %zu is %g; probabilities must lie in [0, 1]", i, q);
    }
    fm_tensor *l = loss_node(tp, &OP_BCE, (fm_tensor *[]){p, y}, 2, r);
    if (!l) return NULL;
    fm__bce_forward(l->data, p->data, y->data, p->size, r);
    return l;
}

/* ---- BCE on logits */

/* loss = k sum of max(z, 0) - z t + log1p(exp(-|z|)), in double */
void fm__bce_logits_forward(float *loss, const float *z, const float *t, size_t n, fm_reduce r)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double v = z[i];
        s += (v > 0 ? v : 0.0) - v * t[i] + log1p(exp(-fabs(v)));
    }
    loss[0] = (float)(s * reduce_factor(r, n));
}

/* dz += k dloss (sigmoid(z) - t), in double */
void fm__bce_logits_backward(float *dz, const float *dloss, const float *z, const float *t, size_t n, fm_reduce r)
{
    double g = (double)dloss[0] * (float)reduce_factor(r, n);
    for (size_t i = 0; i < n; i++) {
        double v = z[i];
        double s = v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
        dz[i] += (float)(g * (s - t[i]));
    }
}

static void bce_logits_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *z = y->src[0], *t = y->src[1];
    if (!fm__wants_grad(z)) return;
    float *gz = fm__grad(tp, z);
    if (!gz) return;
    fm__bce_logits_backward(gz, y->grad, z->data, t->data, z->size, (fm_reduce)y->arg.i[0]);
}

static const fm_op OP_BCE_LOGITS = {"bce_logits_loss", bce_logits_backward};

fm_tensor *fm_bce_logits_loss(fm_tape *tp, fm_tensor *z, fm_tensor *y, fm_reduce r)
{
    if (!loss_args(tp, "bce_logits_loss", z, y, r)) return NULL;
    fm_tensor *l = loss_node(tp, &OP_BCE_LOGITS, (fm_tensor *[]){z, y}, 2, r);
    if (!l) return NULL;
    fm__bce_logits_forward(l->data, z->data, y->data, z->size, r);
    return l;
}

/* ---- KL(N(mu, exp(logvar)) || N(0, I)) */

/* loss = k sum of -(1 + logvar - mu^2 - exp(logvar)) / 2, in double */
void fm__kl_normal_forward(float *loss, const float *mu, const float *logvar, size_t n, fm_reduce r)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double m = mu[i], l = logvar[i];
        s += -0.5 * (1.0 + l - m * m - exp(l));
    }
    loss[0] = (float)(s * reduce_factor(r, n));
}

/* dmu += k dloss mu, dlogvar += k dloss expm1(logvar) / 2 */
void fm__kl_normal_backward(float *dmu, float *dlogvar, const float *dloss, const float *mu, const float *logvar,
                            size_t n, fm_reduce r)
{
    float g = dloss[0] * (float)reduce_factor(r, n);
    for (size_t i = 0; i < n; i++) {
        if (dmu) dmu[i] += g * mu[i];
        if (dlogvar) dlogvar[i] += 0.5f * g * expm1f(logvar[i]);
    }
}

static void kl_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *mu = y->src[0], *lv = y->src[1];
    float *gm = fm__wants_grad(mu) ? fm__grad(tp, mu) : NULL;
    float *gl = fm__wants_grad(lv) ? fm__grad(tp, lv) : NULL;
    if (tp->status != FM_OK) return;
    fm__kl_normal_backward(gm, gl, y->grad, mu->data, lv->data, mu->size, (fm_reduce)y->arg.i[0]);
}

static const fm_op OP_KL = {"kl_normal_loss", kl_backward};

fm_tensor *fm_kl_normal_loss(fm_tape *tp, fm_tensor *mu, fm_tensor *logvar, fm_reduce r)
{
    if (!loss_args(tp, "kl_normal_loss", mu, logvar, r)) return NULL;
    fm_tensor *y = loss_node(tp, &OP_KL, (fm_tensor *[]){mu, logvar}, 2, r);
    if (!y) return NULL;
    fm__kl_normal_forward(y->data, mu->data, logvar->data, mu->size, r);
    return y;
}

/* ---- Gaussian NLL: 1/2 (log 2 pi + logvar + (x - mu)^2 exp(-logvar)) */

/* loss = k sum of (log 2 pi + logvar + (x - mu)^2 exp(-logvar)) / 2, in double */
void fm__gaussian_nll_forward(float *loss, const float *mu, const float *logvar, const float *x, size_t n, size_t nlv,
                              fm_reduce r)
{
    double s = 0.0, l2pi = log(2.0 * M_PI);
    for (size_t i = 0; i < n; i++) {
        double l = logvar[nlv == n ? i : i % nlv], e = (double)x[i] - mu[i];
        s += 0.5 * (l2pi + l + e * e * exp(-l));
    }
    loss[0] = (float)(s * reduce_factor(r, n));
}

size_t fm__gaussian_nll_backward_work(size_t n, size_t nlv) { return nlv != n ? nlv * sizeof(double) : 0; }

/* dmu += k dloss (mu - x) exp(-logvar), dlogvar += k dloss (1 - (mu - x)^2 exp(-logvar)) / 2 */
void fm__gaussian_nll_backward(float *dmu, float *dlogvar, const float *dloss, const float *mu, const float *logvar,
                               const float *x, size_t n, size_t nlv, fm_reduce r, void *work)
{
    float g = dloss[0] * (float)reduce_factor(r, n);
    int row = nlv != n; /* logvar: mu's shape, or one row shared by all */
    double *acc = dlogvar && row ? work : NULL;
    if (acc) memset(acc, 0, nlv * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        size_t k = row ? i % nlv : i;
        double iv = exp(-(double)logvar[k]), d = (double)mu[i] - x[i], dl = 0.5 * g * (1.0 - d * d * iv);
        if (dmu) dmu[i] += (float)(g * d * iv);
        if (acc) acc[k] += dl; /* a shared row sums over the rows in double */
        else if (dlogvar) dlogvar[k] += (float)dl;
    }
    for (size_t k = 0; acc && k < nlv; k++) dlogvar[k] += (float)acc[k];
}

static void gauss_nll_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *mu = y->src[0], *lv = y->src[1], *x = y->src[2];
    float *gm = fm__wants_grad(mu) ? fm__grad(tp, mu) : NULL;
    float *gl = fm__wants_grad(lv) ? fm__grad(tp, lv) : NULL;
    size_t bytes = gl ? fm__gaussian_nll_backward_work(mu->size, lv->size) : 0;
    void *work = bytes ? fm__tape_alloc(tp, bytes) : NULL;
    if (tp->status != FM_OK) return;
    fm__gaussian_nll_backward(gm, gl, y->grad, mu->data, lv->data, x->data, mu->size, lv->size,
                              (fm_reduce)y->arg.i[0], work);
}

static const fm_op OP_GAUSS_NLL = {"gaussian_nll_loss", gauss_nll_backward};

fm_tensor *fm_gaussian_nll_loss(fm_tape *tp, fm_tensor *mu, fm_tensor *logvar, fm_tensor *x, fm_reduce r)
{
    fm_tensor *in[3] = {mu, logvar, x};
    if (!fm__op_inputs_ok(tp, "gaussian_nll_loss", in, 3)) return NULL;
    if (!loss_args(tp, "gaussian_nll_loss", mu, x, r)) return NULL;
    int row = logvar->ndim == 1 && mu->ndim >= 1 && logvar->shape[0] == mu->shape[mu->ndim - 1];
    if (!fm__same_shape(mu, logvar) && !row) {
        char s1[96], s2[96];
        return fm__op_fail(tp, FM_ERR_SHAPE, "gaussian_nll_loss: logvar %s fits neither mu %s nor its rows",
                           fm_shape_str(logvar, s1, sizeof s1), fm_shape_str(mu, s2, sizeof s2));
    }
    fm_tensor *y = loss_node(tp, &OP_GAUSS_NLL, in, 3, r);
    if (!y) return NULL;
    fm__gaussian_nll_forward(y->data, mu->data, logvar->data, x->data, mu->size, logvar->size, r);
    return y;
}

/* ---- cross-entropy of logits (B, K) against labels
 *
 * With a the row's (first) largest logit m and s = sum over j != a of
 * exp(z_j - m), log-sum-exp(z) = m + log1p(s), so the loss of a row is
 * (m - z_label) + log1p(s) and log p_j = (z_j - m) - log1p(s): nothing
 * overflows, and a confident row's loss and its label's gradient p - 1
 * (expm1 of log p) keep their relative precision however close p is to 1. */

/* What the backward needs: the labels (copied), each row's argmax and log1p(s). */
typedef struct {
    int *labels, *argmax;
    double *l1;
} ce_saved;

/* loss = k sum over rows of log-sum-exp(z_i) - z_i[label_i]; argmax and l1 = log1p(s) per row for the backward */
void fm__cross_entropy_forward(float *loss, int *argmax, double *l1, const float *z, const int *labels, int B, int K,
                               fm_reduce r)
{
    double total = 0.0;
    for (int i = 0; i < B; i++) {
        const float *zi = z + (size_t)i * K;
        int a = 0;
        for (int j = 1; j < K; j++)
            if (zi[j] > zi[a]) a = j;
        double m = zi[a], s = 0.0;
        for (int j = 0; j < K; j++)
            if (j != a) s += exp(zi[j] - m);
        argmax[i] = a;
        l1[i] = log1p(s);
        total += (m - zi[labels[i]]) + l1[i];
    }
    loss[0] = (float)(total * reduce_factor(r, (size_t)B));
}

/* dz (=)+= k dloss (softmax(z_i) - onehot(label_i)), in double */
void fm__cross_entropy_backward(float *dz, const float *dloss, const float *z, const int *labels, const int *argmax,
                                const double *l1, int B, int K, fm_reduce r, int overwrite)
{
    double g = (double)dloss[0] * (float)reduce_factor(r, (size_t)B);
    for (int i = 0; i < B; i++) {
        const float *zi = z + (size_t)i * K;
        float *gi = dz + (size_t)i * K;
        double m = zi[argmax[i]];
        /* d/dz_j = p_j - [j = label], in double and rounded once */
        for (int j = 0; j < K; j++) {
            double lp = (zi[j] - m) - l1[i];
            float v = (float)(g * (j == labels[i] ? expm1(lp) : exp(lp)));
            gi[j] = overwrite ? v : gi[j] + v;
        }
    }
}

static void cross_entropy_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *z = y->src[0];
    if (!fm__wants_grad(z)) return;
    int fresh;
    float *gz = fm__grad_w(tp, z, &fresh); /* every element written */
    if (!gz) return;
    const ce_saved *sv = y->aux;
    fm__cross_entropy_backward(gz, y->grad, z->data, sv->labels, sv->argmax, sv->l1, z->shape[0], z->shape[1],
                               (fm_reduce)y->arg.i[0], fresh);
}

static const fm_op OP_CROSS_ENTROPY = {"cross_entropy", cross_entropy_backward};

fm_tensor *fm_cross_entropy(fm_tape *tp, fm_tensor *logits, const int *labels, fm_reduce r)
{
    if (!fm__op_inputs_ok(tp, "cross_entropy", &logits, 1) || !reduction_ok(tp, "cross_entropy", r)) return NULL;
    char s1[96];
    if (logits->ndim != 2)
        return fm__op_fail(tp, FM_ERR_SHAPE, "cross_entropy: logits %s are not [B, K]",
                           fm_shape_str(logits, s1, sizeof s1));
    int B = logits->shape[0], K = logits->shape[1];
    if (!labels)
        return fm__op_fail(tp, FM_ERR_ARG, "cross_entropy: labels is NULL (logits %s)",
                           fm_shape_str(logits, s1, sizeof s1));
    for (int i = 0; i < B; i++)
        if (labels[i] < 0 || labels[i] >= K)
            return fm__op_fail(tp, FM_ERR_ARG, "cross_entropy: label %d of row %d is outside [0, %d) for logits %s",
                               labels[i], i, K, fm_shape_str(logits, s1, sizeof s1));
    ce_saved *sv = fm__tape_alloc(tp, sizeof *sv);
    if (!sv) return NULL;
    sv->labels = fm__tape_alloc(tp, (size_t)B * sizeof(int));
    sv->argmax = fm__tape_alloc(tp, (size_t)B * sizeof(int));
    sv->l1 = fm__tape_alloc(tp, (size_t)B * sizeof(double));
    if (!sv->labels || !sv->argmax || !sv->l1) return NULL;
    memcpy(sv->labels, labels, (size_t)B * sizeof(int));
    fm_tensor *y = loss_node(tp, &OP_CROSS_ENTROPY, &logits, 1, r);
    if (!y) return NULL;
    y->aux = sv;
    fm__cross_entropy_forward(y->data, sv->argmax, sv->l1, logits->data, labels, B, K, r);
    return y;
}

/* ---- discrete flow matching: cross-entropy and the generalised KL of the mixture path */

typedef struct {
    int *x1, *xt;
    float *w;
    int gkl, V, L; /* L > 0: logits (B, V L) channel-major, position p of item b at b V L + v L + p */
} dfm_saved;

/* Row r's logits: where its first is and the step between them. */
static size_t dfm_row(const dfm_saved *sv, int r, size_t *stride)
{
    *stride = sv->L ? (size_t)sv->L : 1;
    return sv->L ? (size_t)(r / sv->L) * sv->V * sv->L + (size_t)(r % sv->L) : (size_t)r * sv->V;
}

/* A row's log-sum-exp: its largest logit m and ls = log sum exp(z - m). */
static void row_lse(const float *z, size_t st, int V, double *m, double *ls)
{
    double mx = z[0], s = 0;
    for (int j = 1; j < V; j++) mx = fmax(mx, z[j * st]);
    for (int j = 0; j < V; j++) s += exp(z[j * st] - mx);
    *m = mx;
    *ls = log(s);
}

double fm__dfm_row_loss(const float *z, size_t st, int V, int a, int b, double w, int gkl)
{
    double m, ls;
    row_lse(z, st, V, &m, &ls);
    double lpa = z[(size_t)a * st] - m - ls;
    if (!gkl) return -w * lpa;
    int same = a == b;
    return -w * ((b < V ? exp(z[(size_t)b * st] - m - ls) : 0) - same + (same ? 0 : lpa));
}

static void dfm_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *z = y->src[0];
    if (!fm__wants_grad(z)) return;
    int fresh;
    float *gz = fm__grad_w(tp, z, &fresh);
    if (!gz) return;
    const dfm_saved *sv = y->aux;
    int K = sv->V, N = sv->L ? z->shape[0] * sv->L : z->shape[0];
    double g = y->grad[0];
    for (int r = 0; r < N; r++) {
        size_t st, o = dfm_row(sv, r, &st);
        const float *zr = z->data + o;
        double m, ls;
        row_lse(zr, st, K, &m, &ls);
        int a = sv->x1[r], b = sv->xt[r], same = a == b;
        double w = sv->w[r], pb = sv->gkl && b < K ? exp(zr[(size_t)b * st] - m - ls) : 0;
        for (int j = 0; j < K; j++) {
            double pj = exp(zr[(size_t)j * st] - m - ls), d;
            if (sv->gkl) /* -w [p_b (d_jb - p_j) + (1 - same) (d_ja - p_j)] */
                d = -w * ((b < K ? pb * ((j == b) - pj) : 0) + (same ? 0 : (j == a) - pj));
            else d = -w * ((j == a) - pj); /* -w (d_ja - p_j) */
            float v = (float)(g * d);
            size_t at = o + (size_t)j * st;
            gz[at] = fresh ? v : gz[at] + v;
        }
    }
}

static const fm_op OP_DFM = {"dfm_loss", dfm_backward};

fm_tensor *fm__dfm_loss(fm_tape *tp, fm_tensor *logits, const int *x1, const int *xt, const float *w, int gkl, int V,
                        int L)
{
    if (!fm__op_inputs_ok(tp, "dfm_loss", &logits, 1)) return NULL;
    char s1[96];
    if (logits->ndim != 2 || V < 2 || logits->shape[1] != (L ? V * L : V))
        return fm__op_fail(tp, FM_ERR_SHAPE, "dfm_loss: logits %s are not [N, %d]", fm_shape_str(logits, s1, sizeof s1),
                           L ? V * L : V);
    int N = L ? logits->shape[0] * L : logits->shape[0];
    for (int r = 0; r < N; r++)
        if (x1[r] < 0 || x1[r] >= V || xt[r] < 0 || xt[r] > V)
            return fm__op_fail(tp, FM_ERR_ARG, "dfm_loss: row %d: token %d or state %d outside the vocabulary of %d", r,
                               x1[r], xt[r], V);
    dfm_saved *sv = fm__tape_alloc(tp, sizeof *sv);
    if (!sv) return NULL;
    sv->x1 = fm__tape_alloc(tp, (size_t)N * sizeof(int));
    sv->xt = fm__tape_alloc(tp, (size_t)N * sizeof(int));
    sv->w = fm__tape_alloc(tp, (size_t)N * sizeof(float));
    if (!sv->x1 || !sv->xt || !sv->w) return NULL;
    memcpy(sv->x1, x1, (size_t)N * sizeof(int));
    memcpy(sv->xt, xt, (size_t)N * sizeof(int));
    memcpy(sv->w, w, (size_t)N * sizeof(float));
    sv->gkl = gkl, sv->V = V, sv->L = L;
    fm_tensor *y = loss_node(tp, &OP_DFM, &logits, 1, FM_REDUCE_SUM);
    if (!y) return NULL;
    y->aux = sv;
    double total = 0;
    for (int r = 0; r < N; r++) {
        size_t st, o = dfm_row(sv, r, &st);
        total += fm__dfm_row_loss(logits->data + o, st, V, x1[r], xt[r], w[r], gkl);
    }
    y->data[0] = (float)total;
    return y;
}
