/* ops_linear.c - the linear layer y = x W^T + b.
 *
 * W is stored (out, in) like nn.Linear so checkpoints load into PyTorch
 * unchanged. Forward multiplies by a transposed copy of W kept on the tape;
 * backward gives dx = dy W, dW += dy^T x and db += column sums of dy (summed in
 * double).
 */
#include "internal.h"

#include <string.h>

static void linear_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0], *w = y->src[1], *b = y->nsrc > 2 ? y->src[2] : NULL;
    int B = x->shape[0], in = x->shape[1], out = w->shape[0];
    const float *dy = y->grad;
    if (fm__wants_grad(x)) {
        /* dx (B, in) += dy (B, out) W (out, in) */
        float *dx = fm__grad(tp, x);
        if (!dx) return;
        fm__gemm(B, in, out, dy, out, 1, w->data, in, dx, in, NULL, 1);
    }
    if (fm__wants_grad(w)) {
        /* dW (out, in) += dy^T x */
        float *dw = fm__grad(tp, w);
        if (!dw) return;
        fm__gemm(out, in, B, dy, 1, out, x->data, in, dw, in, NULL, 1);
    }
    if (fm__wants_grad(b)) {
        float *db = fm__grad(tp, b);
        double *acc = fm__tape_alloc(tp, (size_t)out * sizeof(double));
        if (!db || !acc) return;
        memset(acc, 0, (size_t)out * sizeof(double));
        for (int i = 0; i < B; i++)
            for (int j = 0; j < out; j++) acc[j] += dy[(size_t)i * out + j];
        for (int j = 0; j < out; j++) db[j] += (float)acc[j];
    }
}

static const fm_op OP_LINEAR = {"linear", linear_backward};

fm_tensor *fm_linear(fm_tape *tp, fm_tensor *x, fm_tensor *w, fm_tensor *b)
{
    fm_tensor *in3[3] = {x, w, b};
    if (!fm__op_inputs_ok(tp, "linear", in3, 2)) return NULL;
    char s1[96], s2[96], s3[96];
    if (x->ndim != 2 || w->ndim != 2 || x->shape[1] != w->shape[1])
        return fm__op_fail(tp, FM_ERR_SHAPE,
                           "linear: input %s does not fit weight %s (expected input [B, %d])",
                           fm_shape_str(x, s1, sizeof s1), fm_shape_str(w, s2, sizeof s2),
                           w->ndim == 2 ? w->shape[1] : -1);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return fm__op_fail(tp, FM_ERR_SHAPE, "linear: bias %s does not fit weight %s (expected [%d])",
                           fm_shape_str(b, s3, sizeof s3), fm_shape_str(w, s2, sizeof s2),
                           w->shape[0]);
    int B = x->shape[0], in = x->shape[1], out = w->shape[0];
    int shape[2] = {B, out};
    fm_tensor *y = fm__node(tp, &OP_LINEAR, 2, shape, in3, b ? 3 : 2);
    if (!y) return NULL;
    /* W^T (in, out) so the product streams along rows. */
    float *wt = fm__tape_alloc(tp, (size_t)in * out * sizeof(float));
    if (!wt) return NULL;
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) wt[(size_t)i * out + o] = w->data[(size_t)o * in + i];
    fm__gemm(B, out, in, x->data, in, 1, wt, out, y->data, out, b ? b->data : NULL, 0);
    return y;
}
