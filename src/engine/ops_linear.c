/* ops_linear.c - the linear layer y = x W^T + b.
 *
 * W is stored (out, in) like nn.Linear so checkpoints load into PyTorch
 * unchanged. Forward multiplies by a transposed copy of W kept on the tape;
 * backward gives dx = dy W, dW += dy^T x and db += column sums of dy (summed in
 * double).
 */
#include "internal.h"
#include "engine/kernels.h"

/* Columns of db summed at once, each in a double of its own. */
#define LINEAR_DB_COLS 256

/* y = x W^T + b */
void fm__linear_forward(float *y, float *wt, const float *x, const float *w, const float *b, int B, int in, int out)
{
    /* W^T (in, out) so the product streams along rows; in 16 x 16 blocks, so
     * that neither side is walked a whole row apart at every step */
    for (int o0 = 0; o0 < out; o0 += 16)
        for (int i0 = 0; i0 < in; i0 += 16)
            for (int o = o0; o < o0 + 16 && o < out; o++)
                for (int i = i0; i < i0 + 16 && i < in; i++) wt[(size_t)i * out + o] = w[(size_t)o * in + i];
    fm__gemm(B, out, in, x, in, 1, wt, out, y, out, b, 0);
}

/* dx += dy W, dw += dy^T x, db += the column sums of dy (in double) */
void fm__linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int B,
                         int in, int out)
{
    /* dx (B, in) += dy (B, out) W (out, in) */
    if (dx) fm__gemm(B, in, out, dy, out, 1, w, in, dx, in, NULL, 1);
    /* dW (out, in) += dy^T x */
    if (dw) fm__gemm(out, in, B, dy, 1, out, x, in, dw, in, NULL, 1);
    /* each column's sum runs over the rows in order */
    for (int j0 = 0; db && j0 < out; j0 += LINEAR_DB_COLS) {
        int nj = out - j0 < LINEAR_DB_COLS ? out - j0 : LINEAR_DB_COLS;
        double acc[LINEAR_DB_COLS] = {0};
        for (int i = 0; i < B; i++)
            for (int j = 0; j < nj; j++) acc[j] += dy[(size_t)i * out + j0 + j];
        for (int j = 0; j < nj; j++) db[j0 + j] += (float)acc[j];
    }
}

static void linear_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0], *w = y->src[1], *b = y->nsrc > 2 ? y->src[2] : NULL;
    float *dx = fm__wants_grad(x) ? fm__grad(tp, x) : NULL;
    float *dw = fm__wants_grad(w) ? fm__grad(tp, w) : NULL;
    float *db = fm__wants_grad(b) ? fm__grad(tp, b) : NULL;
    if (tp->status != FM_OK) return;
    fm__linear_backward(dx, dw, db, y->grad, x->data, w->data, x->shape[0], x->shape[1], w->shape[0]);
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
    float *wt = fm__tape_alloc(tp, (size_t)in * out * sizeof(float)); /* W^T, kept on the tape */
    if (!wt) return NULL;
    fm__linear_forward(y->data, wt, x->data, w->data, b ? b->data : NULL, B, in, out);
    return y;
}
