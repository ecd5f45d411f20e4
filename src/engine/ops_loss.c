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

/* Scalar output of the nin inputs with arg.f[0] = the factor each of the
 * `count` terms is scaled by (1 / count for MEAN, 1 for SUM). */
static fm_tensor *loss_node(fm_tape *tp, const fm_op *op, fm_tensor *const *in, int nin, size_t count, fm_reduce r,
                            double total)
{
    fm_tensor *y = fm__node(tp, op, 0, NULL, in, nin);
    if (!y) return NULL;
    double k = r == FM_REDUCE_MEAN ? 1.0 / (double)count : 1.0;
    y->data[0] = (float)(total * k);
    y->arg.f[0] = (float)k;
    return y;
}

/* ---- MSE: (p - t)^2 */

static void mse_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *p = y->src[0], *t = y->src[1];
    float g = y->grad[0] * y->arg.f[0];
    float *gp = fm__wants_grad(p) ? fm__grad(tp, p) : NULL;
    float *gt = fm__wants_grad(t) ? fm__grad(tp, t) : NULL;
    if (tp->status != FM_OK) return;
    for (size_t i = 0; i < p->size; i++) {
        float d = 2.0f * g * (p->data[i] - t->data[i]);
        if (gp) gp[i] += d;
        if (gt) gt[i] -= d;
    }
}

static const fm_op OP_MSE = {"mse_loss", mse_backward};

fm_tensor *fm_mse_loss(fm_tape *tp, fm_tensor *pred, fm_tensor *target, fm_reduce r)
{
    if (!loss_args(tp, "mse_loss", pred, target, r)) return NULL;
    double s = 0.0;
    for (size_t i = 0; i < pred->size; i++) {
        double d = (double)pred->data[i] - target->data[i];
        s += d * d;
    }
    return loss_node(tp, &OP_MSE, (fm_tensor *[]){pred, target}, 2, pred->size, r, s);
}

/* ---- BCE on probabilities */

static void bce_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *p = y->src[0], *t = y->src[1];
    if (!fm__wants_grad(p)) return;
    float *gp = fm__grad(tp, p);
    if (!gp) return;
    float g = y->grad[0] * y->arg.f[0];
    for (size_t i = 0; i < p->size; i++) {
        /* d/dp = (p - y) / (p (1 - p)), the denominator floored at 1e-12 as PyTorch does */
        double q = p->data[i], den = q * (1.0 - q);
        if (den < 1e-12) den = 1e-12;
        gp[i] += (float)(g * (q - t->data[i]) / den);
    }
}

static const fm_op OP_BCE = {"bce_loss", bce_backward};

fm_tensor *fm_bce_loss(fm_tape *tp, fm_tensor *p, fm_tensor *y, fm_reduce r)
{
    if (!loss_args(tp, "bce_loss", p, y, r)) return NULL;
    double s = 0.0;
    for (size_t i = 0; i < p->size; i++) {
        double q = p->data[i], v = y->data[i];
        if (!(q >= 0.0 && q <= 1.0))
            return fm__op_fail(tp, FM_ERR_NUMERIC,
                               "bce_loss: input %zu is %g; probabilities must lie in [0, 1]", i, q);
        double lp = q > 0 ? log(q) : -100.0, lq = q < 1 ? log1p(-q) : -100.0;
        if (lp < -100.0) lp = -100.0;
        if (lq < -100.0) lq = -100.0;
        s -= v * lp + (1.0 - v) * lq;
    }
    return loss_node(tp, &OP_BCE, (fm_tensor *[]){p, y}, 2, p->size, r, s);
}

/* ---- BCE on logits */

static void bce_logits_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *z = y->src[0], *t = y->src[1];
    if (!fm__wants_grad(z)) return;
    float *gz = fm__grad(tp, z);
    if (!gz) return;
    double g = (double)y->grad[0] * y->arg.f[0];
    for (size_t i = 0; i < z->size; i++) {
        double v = z->data[i];
        double s = v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
        gz[i] += (float)(g * (s - t->data[i]));
    }
}

static const fm_op OP_BCE_LOGITS = {"bce_logits_loss", bce_logits_backward};

fm_tensor *fm_bce_logits_loss(fm_tape *tp, fm_tensor *z, fm_tensor *y, fm_reduce r)
{
    if (!loss_args(tp, "bce_logits_loss", z, y, r)) return NULL;
    double s = 0.0;
    for (size_t i = 0; i < z->size; i++) {
        double v = z->data[i];
        s += (v > 0 ? v : 0.0) - v * y->data[i] + log1p(exp(-fabs(v)));
    }
    return loss_node(tp, &OP_BCE_LOGITS, (fm_tensor *[]){z, y}, 2, z->size, r, s);
}

/* ---- KL(N(mu, exp(logvar)) || N(0, I)) */

static void kl_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *mu = y->src[0], *lv = y->src[1];
    float g = y->grad[0] * y->arg.f[0];
    float *gm = fm__wants_grad(mu) ? fm__grad(tp, mu) : NULL;
    float *gl = fm__wants_grad(lv) ? fm__grad(tp, lv) : NULL;
    if (tp->status != FM_OK) return;
    for (size_t i = 0; i < mu->size; i++) {
        if (gm) gm[i] += g * mu->data[i];
        if (gl) gl[i] += 0.5f * g * expm1f(lv->data[i]);
    }
}

static const fm_op OP_KL = {"kl_normal_loss", kl_backward};

fm_tensor *fm_kl_normal_loss(fm_tape *tp, fm_tensor *mu, fm_tensor *logvar, fm_reduce r)
{
    if (!loss_args(tp, "kl_normal_loss", mu, logvar, r)) return NULL;
    double s = 0.0;
    for (size_t i = 0; i < mu->size; i++) {
        double m = mu->data[i], l = logvar->data[i];
        s += -0.5 * (1.0 + l - m * m - exp(l));
    }
    return loss_node(tp, &OP_KL, (fm_tensor *[]){mu, logvar}, 2, mu->size, r, s);
}

/* ---- Gaussian NLL: 1/2 (log 2 pi + logvar + (x - mu)^2 exp(-logvar)) */

static void gauss_nll_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *mu = y->src[0], *lv = y->src[1], *x = y->src[2];
    float g = y->grad[0] * y->arg.f[0];
    float *gm = fm__wants_grad(mu) ? fm__grad(tp, mu) : NULL;
    float *gl = fm__wants_grad(lv) ? fm__grad(tp, lv) : NULL;
    int row = lv->size != mu->size; /* logvar: mu's shape, or one row shared by all */
    double *acc = gl && row ? fm__tape_alloc(tp, lv->size * sizeof(double)) : NULL;
    if (tp->status != FM_OK) return;
    if (acc) memset(acc, 0, lv->size * sizeof(double));
    for (size_t i = 0; i < mu->size; i++) {
        size_t k = row ? i % lv->size : i;
        double iv = exp(-(double)lv->data[k]), r = (double)mu->data[i] - x->data[i], dl = 0.5 * g * (1.0 - r * r * iv);
        if (gm) gm[i] += (float)(g * r * iv);
        if (acc) acc[k] += dl; /* a shared row sums over the rows in double */
        else if (gl) gl[k] += (float)dl;
    }
    for (size_t k = 0; acc && k < lv->size; k++) gl[k] += (float)acc[k];
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
    double s = 0.0, l2pi = log(2.0 * M_PI);
    for (size_t i = 0; i < mu->size; i++) {
        double l = logvar->data[logvar->size == mu->size ? i : i % logvar->size], e = (double)x->data[i] - mu->data[i];
        s += 0.5 * (l2pi + l + e * e * exp(-l));
    }
    return loss_node(tp, &OP_GAUSS_NLL, in, 3, mu->size, r, s);
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

static void cross_entropy_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *z = y->src[0];
    if (!fm__wants_grad(z)) return;
    int fresh;
    float *gz = fm__grad_w(tp, z, &fresh); /* every element written */
    if (!gz) return;
    const ce_saved *sv = y->aux;
    int B = z->shape[0], K = z->shape[1];
    double g = (double)y->grad[0] * y->arg.f[0];
    for (int i = 0; i < B; i++) {
        const float *zi = z->data + (size_t)i * K;
        float *gi = gz + (size_t)i * K;
        double m = zi[sv->argmax[i]];
        /* d/dz_j = p_j - [j = label], in double and rounded once */
        for (int j = 0; j < K; j++) {
            double lp = (zi[j] - m) - sv->l1[i];
            float v = (float)(g * (j == sv->labels[i] ? expm1(lp) : exp(lp)));
            gi[j] = fresh ? v : gi[j] + v;
        }
    }
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
    double total = 0.0;
    for (int i = 0; i < B; i++) {
        const float *zi = logits->data + (size_t)i * K;
        int a = 0;
        for (int j = 1; j < K; j++)
            if (zi[j] > zi[a]) a = j;
        double m = zi[a], s = 0.0;
        for (int j = 0; j < K; j++)
            if (j != a) s += exp(zi[j] - m);
        sv->argmax[i] = a;
        sv->l1[i] = log1p(s);
        total += (m - zi[labels[i]]) + sv->l1[i];
    }
    fm_tensor *y = loss_node(tp, &OP_CROSS_ENTROPY, &logits, 1, (size_t)B, r, total);
    if (!y) return NULL;
    y->aux = sv;
    return y;
}
