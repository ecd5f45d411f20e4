/* ops_shape.c - reshape: the same values seen with another shape.
 *
 * Tensors are contiguous and row-major, so a reshape keeps the element order:
 * the output is a copy of x's values under the new shape, and backward adds
 * the output's gradient to x's element for element.
 */
#include "internal.h"
#include "engine/kernels.h"

#include <string.h>

/* y = x */
void fm__reshape_forward(float *y, const float *x, size_t n) { memcpy(y, x, n * sizeof(float)); }

/* dx (=)+= dy */
void fm__reshape_backward(float *dx, const float *dy, size_t n, int overwrite)
{
    if (overwrite)
        memcpy(dx, dy, n * sizeof(float));
    else
        for (size_t i = 0; i < n; i++) dx[i] += dy[i];
}

static void reshape_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0];
    if (!fm__wants_grad(x)) return;
    int fresh;
    float *dx = fm__grad_w(tp, x, &fresh);
    if (!dx) return;
    fm__reshape_backward(dx, y->grad, y->size, fresh);
}

static const fm_op OP_RESHAPE = {"reshape", reshape_backward};

fm_tensor *fm_reshape(fm_tape *tp, fm_tensor *x, int ndim, const int *shape)
{
    if (!fm__op_inputs_ok(tp, "reshape", &x, 1)) return NULL;
    char s1[96], s2[96];
    if (ndim < 0 || ndim > FM_MAX_DIMS || (ndim > 0 && !shape))
        return fm__op_fail(tp, FM_ERR_SHAPE, "reshape: rank %d is outside 0..%d", ndim, FM_MAX_DIMS);
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0)
            return fm__op_fail(tp, FM_ERR_SHAPE, "reshape: shape %s has a non-positive dimension",
                               fm__shape_fmt(ndim, shape, s2, sizeof s2));
        n *= (size_t)shape[d];
    }
    if (n != x->size)
        return fm__op_fail(tp, FM_ERR_SHAPE, "reshape: %s (%zu values) cannot be seen as %s (%zu values)",
                           fm_shape_str(x, s1, sizeof s1), x->size, fm__shape_fmt(ndim, shape, s2, sizeof s2), n);
    fm_tensor *y = fm__node(tp, &OP_RESHAPE, ndim, shape, &x, 1);
    if (!y) return NULL;
    fm__reshape_forward(y->data, x->data, x->size);
    return y;
}

fm_tensor *fm__column(fm_tape *tp, fm_tensor *t, int k)
{
    if (!fm__op_inputs_ok(tp, "column", &t, 1)) return NULL;
    int B = t->shape[0], cols = t->ndim == 2 ? t->shape[1] : 1;
    fm_tensor *c = fm_tensor_2d(tp, B, 1);
    for (int i = 0; c && k < cols && i < B; i++) c->data[i] = t->data[(size_t)i * cols + k];
    return c;
}
