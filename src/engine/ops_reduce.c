/* ops_reduce.c - concat along dim 1, and full sums and means.
 *
 * Reductions accumulate in double and in index order, so a loss does not
 * depend on the thread count and loses no bits to a long float sum.
 */
#include "internal.h"
#include "engine/kernels.h"

#include <string.h>

/* ---- concat: (N, C_k, ...) -> (N, sum C_k, ...) */

/* y[:, c0 .. c0 + ck] = x */
void fm__concat_forward(float *y, const float *x, int outer, int ctot, int c0, int ck, size_t inner)
{
    size_t row = (size_t)ctot * inner, off = (size_t)c0 * inner, w = (size_t)ck * inner;
    for (size_t i = 0; i < (size_t)outer; i++) memcpy(y + i * row + off, x + i * w, w * sizeof(float));
}

/* dx (=)+= dy[:, c0 .. c0 + ck] */
void fm__concat_backward(float *dx, const float *dy, int outer, int ctot, int c0, int ck, size_t inner, int overwrite)
{
    size_t row = (size_t)ctot * inner, off = (size_t)c0 * inner, w = (size_t)ck * inner;
    for (size_t n = 0; n < (size_t)outer; n++) {
        const float *g = dy + n * row + off;
        if (overwrite)
            memcpy(dx + n * w, g, w * sizeof(float));
        else
            for (size_t j = 0; j < w; j++) dx[n * w + j] += g[j];
    }
}

static void concat_backward(fm_tape *tp, fm_tensor *y)
{
    int outer = y->shape[0], ctot = y->shape[1], c0 = 0;
    size_t inner = y->size / (size_t)outer / (size_t)ctot;
    for (int k = 0; k < y->nsrc; k++) {
        fm_tensor *x = y->src[k];
        if (fm__wants_grad(x)) {
            int fresh;
            float *gx = fm__grad_w(tp, x, &fresh);
            if (!gx) return;
            fm__concat_backward(gx, y->grad, outer, ctot, c0, x->shape[1], inner, fresh);
        }
        c0 += x->shape[1];
    }
}

static const fm_op OP_CONCAT = {"concat", concat_backward};

fm_tensor *fm_concat(fm_tape *tp, fm_tensor *const *xs, int n)
{
    if (!tp || tp->status != FM_OK) return NULL;
    if (n < 1 || !xs) return fm__op_fail(tp, FM_ERR_ARG, "concat: needs at least one tensor");
    if (!fm__op_inputs_ok(tp, "concat", xs, n)) return NULL;
    fm_tensor *x0 = xs[0];
    char s1[96], s2[96];
    if (x0->ndim < 2)
        return fm__op_fail(tp, FM_ERR_SHAPE, "concat: tensors must have at least 2 dims, got %s",
                           fm_shape_str(x0, s1, sizeof s1));
    int shape[FM_MAX_DIMS];
    memcpy(shape, x0->shape, sizeof shape);
    shape[1] = 0;
    for (int k = 0; k < n; k++) {
        fm_tensor *x = xs[k];
        int ok = x->ndim == x0->ndim;
        for (int d = 0; ok && d < x0->ndim; d++)
            if (d != 1 && x->shape[d] != x0->shape[d]) ok = 0;
        if (!ok)
            return fm__op_fail(tp, FM_ERR_SHAPE,
                               "concat: tensor %d has shape %s, which differs from %s outside dim 1",
                               k + 1, fm_shape_str(x, s1, sizeof s1), fm_shape_str(x0, s2, sizeof s2));
        shape[1] += x->shape[1];
    }
    fm_tensor *y = fm__node(tp, &OP_CONCAT, x0->ndim, shape, xs, n);
    if (!y) return NULL;
    size_t inner = y->size / (size_t)shape[0] / (size_t)shape[1];
    int c0 = 0;
    for (int k = 0; k < n; k++) {
        fm__concat_forward(y->data, xs[k]->data, shape[0], shape[1], c0, xs[k]->shape[1], inner);
        c0 += xs[k]->shape[1];
    }
    return y;
}

/* ---- sum and mean to a scalar */

/* y = the sum of x (in double, in order), or the mean */
void fm__reduce_forward(float *y, const float *x, size_t n, int mean)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    y[0] = (float)(mean ? s / (double)n : s);
}

/* dx += dy k, k = 1 for the sum, 1 / n for the mean */
void fm__reduce_backward(float *dx, const float *dy, size_t n, int mean)
{
    float g = dy[0] * (mean ? (float)(1.0 / (double)n) : 1.0f);
    for (size_t i = 0; i < n; i++) dx[i] += g;
}

static void reduce_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0];
    if (!fm__wants_grad(x)) return;
    float *gx = fm__grad(tp, x);
    if (!gx) return;
    fm__reduce_backward(gx, y->grad, x->size, y->arg.i[0]);
}

static const fm_op OP_SUM = {"sum", reduce_backward};
static const fm_op OP_MEAN = {"mean", reduce_backward};

static fm_tensor *reduce(fm_tape *tp, fm_tensor *x, const fm_op *op, int mean)
{
    if (!fm__op_inputs_ok(tp, op->name, &x, 1)) return NULL;
    fm_tensor *y = fm__node(tp, op, 0, NULL, &x, 1);
    if (!y) return NULL;
    y->arg.i[0] = mean;
    fm__reduce_forward(y->data, x->data, x->size, mean);
    return y;
}

fm_tensor *fm_sum(fm_tape *tp, fm_tensor *x) { return reduce(tp, x, &OP_SUM, 0); }
fm_tensor *fm_mean(fm_tape *tp, fm_tensor *x) { return reduce(tp, x, &OP_MEAN, 1); }
