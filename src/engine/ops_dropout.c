/* ops_dropout.c - inverted dropout, as torch.nn.functional.dropout.
 *
 * While training, element i is kept when the i-th draw u of fm_rng_uniform
 * (in element order, one draw per element, so the mask depends only on the
 * generator's state) satisfies u >= p, which has probability 1 - p; a kept
 * element becomes x / (1 - p), the quotient taken in double and rounded once,
 * a dropped one 0. The mask (one byte per element) stays on the tape and the
 * backward passes dy through it with the same scaling. Not training, or p = 0,
 * the op is the identity and returns x itself.
 */
#include "internal.h"
#include "engine/kernels.h"

/* keep[i] = (u_i >= p), u_i rng's next uniform draw; y[i] = keep[i] ? x[i] / (1 - p) : 0 */
void fm__dropout_forward(float *y, unsigned char *keep, const float *x, fm_rng *rng, float p, size_t n)
{
    double q = 1.0 - (double)p;
    for (size_t i = 0; i < n; i++) {
        keep[i] = fm_rng_uniform(rng) >= (double)p;
        y[i] = keep[i] ? (float)(x[i] / q) : 0.0f;
    }
}

/* dx (=)+= keep ? dy / (1 - p) : 0 */
void fm__dropout_backward(float *dx, const float *dy, const unsigned char *keep, float p, size_t n, int overwrite)
{
    double q = 1.0 - (double)p;
    for (size_t i = 0; i < n; i++) {
        float v = keep[i] ? (float)(dy[i] / q) : 0.0f;
        dx[i] = overwrite ? v : dx[i] + v;
    }
}

static void dropout_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0];
    if (!fm__wants_grad(x)) return;
    int fresh;
    float *dx = fm__grad_w(tp, x, &fresh); /* every element written */
    if (!dx) return;
    fm__dropout_backward(dx, y->grad, y->aux, y->arg.f[0], x->size, fresh);
}

static const fm_op OP_DROPOUT = {"dropout", dropout_backward};

fm_tensor *fm_dropout(fm_tape *tp, fm_tensor *x, float p, fm_rng *rng, int training)
{
    if (!fm__op_inputs_ok(tp, "dropout", &x, 1)) return NULL;
    char s[96];
    if (!(p >= 0.0f && p < 1.0f))
        return fm__op_fail(tp, FM_ERR_ARG, "dropout: probability %g is outside [0, 1) (input %s)", (double)p,
                           fm_shape_str(x, s, sizeof s));
    if (!training || p == 0.0f) return x;
    if (!rng)
        return fm__op_fail(tp, FM_ERR_ARG, "dropout: the random generator is NULL while training (input %s, p %g)",
                           fm_shape_str(x, s, sizeof s), (double)p);
    fm_tensor *y = fm__node(tp, &OP_DROPOUT, x->ndim, x->shape, &x, 1);
    if (!y) return NULL;
    unsigned char *keep = fm__tape_alloc(tp, x->size);
    if (!keep) return NULL;
    y->arg.f[0] = p;
    y->aux = keep;
    fm__dropout_forward(y->data, keep, x->data, rng, p, x->size);
    return y;
}
