/* ops_reduce.c - concat along dim 1, and full sums and means.
 *
 * Reductions accumulate in double and in index order, so a loss does not
 * depend on the thread count and loses no bits to a long float sum.
 */
#include "internal.h"

#include <string.h>

/* ---- concat: (N, C_k, ...) -> (N, sum C_k, ...) */

static void concat_backward(fm_tape *tp, fm_tensor *y)
{
    size_t outer = (size_t)y->shape[0], inner = y->size / outer / (size_t)y->shape[1];
    size_t row = (size_t)y->shape[1] * inner, off = 0;
    for (int k = 0; k < y->nsrc; k++) {
        fm_tensor *x = y->src[k];
        size_t w = (size_t)x->shape[1] * inner;
        if (fm__wants_grad(x)) {
            int fresh;
            float *gx = fm__grad_w(tp, x, &fresh);
            if (!gx) return;
            for (size_t n = 0; n < outer; n++) {
                const float *g = y->grad + n * row + off;
                if (fresh)
                    memcpy(gx + n * w, g, w * sizeof(float));
                else
                    for (size_t j = 0; j < w; j++) gx[n * w + j] += g[j];
            }
        }
        off += w;
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
    size_t outer = (size_t)shape[0], inner = y->size / outer / (size_t)shape[1];
    size_t row = (size_t)shape[1] * inner, off = 0;
    for (int k = 0; k < n; k++) {
        size_t w = (size_t)xs[k]->shape[1] * inner;
        for (size_t i = 0; i < outer; i++)
            memcpy(y->data + i * row + off, xs[k]->data + i * w, w * sizeof(float));
        off += w;
    }
    return y;
}

/* ---- sum and mean to a scalar */

static void reduce_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0];
    if (!fm__wants_grad(x)) return;
    float *gx = fm__grad(tp, x);
    if (!gx) return;
    float g = y->grad[0] * y->arg.f[0]; /* arg: 1 for sum, 1/n for mean */
    for (size_t i = 0; i < x->size; i++) gx[i] += g;
}

static const fm_op OP_SUM = {"sum", reduce_backward};
static const fm_op OP_MEAN = {"mean", reduce_backward};

static fm_tensor *reduce(fm_tape *tp, fm_tensor *x, const fm_op *op, int mean)
{
    if (!fm__op_inputs_ok(tp, op->name, &x, 1)) return NULL;
    fm_tensor *y = fm__node(tp, op, 0, NULL, &x, 1);
    if (!y) return NULL;
    double s = 0.0;
    for (size_t i = 0; i < x->size; i++) s += x->data[i];
    y->data[0] = (float)(mean ? s / (double)x->size : s);
    y->arg.f[0] = mean ? (float)(1.0 / (double)x->size) : 1.0f;
    return y;
}

fm_tensor *fm_sum(fm_tape *tp, fm_tensor *x) { return reduce(tp, x, &OP_SUM, 0); }
fm_tensor *fm_mean(fm_tape *tp, fm_tensor *x) { return reduce(tp, x, &OP_MEAN, 1); }
