/* ops_act.c - elementwise activations and the sinusoidal time embedding.
 *
 * Formulas and constants follow torch.nn.functional (ELU alpha 1, SELU's
 * alpha and scale, Softplus beta 1 with threshold 20, both GELUs). The
 * backward uses the saved input and output, as PyTorch's autograd does.
 * Activations built on exp run on vectors (vmath.h); a short tail is padded to
 * a whole vector so every element goes through the same code. GELU (erf) and
 * Softplus (log1p) use libm.
 */
#include "internal.h"
#include "engine/kernels.h"
#include "engine/vmath.h"

#include <math.h>
#include <string.h>

#define SELU_ALPHA 1.6732632423543772848170429916717f
#define SELU_SCALE 1.0507009873554804934193349852946f
#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_C 0.044715f
#define SOFTPLUS_THRESHOLD 20.0f

static const char *const act_names[FM_ACT_COUNT] = {
    "none", "relu", "elu", "silu", "gelu", "gelu_tanh", "tanh", "sigmoid", "selu", "softplus",
};

const char *fm_act_name(fm_act a) { return (a >= 0 && a < FM_ACT_COUNT) ? act_names[a] : "?"; }

int fm_act_from_name(const char *name)
{
    for (int i = 0; i < FM_ACT_COUNT; i++)
        if (name && strcmp(name, act_names[i]) == 0) return i;
    return -1;
}

static inline float sigmoidf(float x)
{
    /* Never overflows: exp of a non-positive number only. */
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

/* ---- vector forms (vmath.h), used for whole vectors and zero-padded tails */

static inline fm_vf vsigmoid(fm_vf x) { return 1.0f / (1.0f + fm_vexp(-x)); }

static inline fm_vf vtanh(fm_vf x)
{
    /* tanh = expm1(2x) / (expm1(2x) + 2), exact near 0; |x| > 9 rounds to +-1 */
    fm_vf xc = fm_vmin(fm_vmax(x, fm_vsplat(-9.0f)), fm_vsplat(9.0f));
    fm_vf e = fm_vexpm1(xc + xc);
    return fm_vselm(fm_visnan(x), x, e / (e + 2.0f)); /* the clamps would turn NaN into -1 */
}

static inline fm_vf vfwd(fm_act a, fm_vf x)
{
    fm_vf zero = fm_vsplat(0.0f);
    switch (a) {
    case FM_ACT_RELU: return fm_vselm(fm_vgt(x, zero), x, zero);
    case FM_ACT_ELU: return fm_vselm(fm_vgt(x, zero), x, fm_vexpm1_neg(x));
    case FM_ACT_SILU: return x * vsigmoid(x);
    case FM_ACT_GELU_TANH: return 0.5f * x * (1.0f + vtanh(GELU_K * (x + GELU_C * x * x * x)));
    case FM_ACT_TANH: return vtanh(x);
    case FM_ACT_SIGMOID: return vsigmoid(x);
    case FM_ACT_SELU: return SELU_SCALE * fm_vselm(fm_vgt(x, zero), x, SELU_ALPHA * fm_vexpm1_neg(x));
    default: return x;
    }
}

/* dy * f'(x), given y = f(x) */
static inline fm_vf vbwd(fm_act a, fm_vf x, fm_vf y, fm_vf dy)
{
    switch (a) {
    case FM_ACT_RELU: return fm_vselm(fm_vgt(y, fm_vsplat(0.0f)), dy, fm_vsplat(0.0f));
    case FM_ACT_ELU: return fm_vselm(fm_vgt(x, fm_vsplat(0.0f)), dy, dy * (y + 1.0f));
    case FM_ACT_SILU: {
        fm_vf s = vsigmoid(x);
        return dy * s * (1.0f + x * (1.0f - s));
    }
    case FM_ACT_GELU_TANH: {
        fm_vf x2 = x * x, th = vtanh(GELU_K * (x + GELU_C * x2 * x));
        return dy * (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * GELU_C * x2));
    }
    case FM_ACT_TANH: return dy * (1.0f - y * y);
    case FM_ACT_SIGMOID: return dy * y * (1.0f - y);
    case FM_ACT_SELU: return fm_vselm(fm_vgt(x, fm_vsplat(0.0f)), dy * SELU_SCALE, dy * (y + SELU_SCALE * SELU_ALPHA));
    default: return dy;
    }
}

/* One loop per activation so the switch is resolved outside it. */
#define VEC_FWD(A)                                                                                          \
    case A: {                                                                                               \
        size_t i = 0;                                                                                       \
        for (; i + FM_VL <= n; i += FM_VL) fm_vstore(y + i, vfwd(A, fm_vload(x + i)));                      \
        if (i < n) {                                                                                        \
            float tx[FM_VL] = {0}, ty[FM_VL];                                                               \
            memcpy(tx, x + i, (n - i) * sizeof(float));                                                     \
            fm_vstore(ty, vfwd(A, fm_vload(tx)));                                                           \
            memcpy(y + i, ty, (n - i) * sizeof(float));                                                     \
        }                                                                                                   \
        return;                                                                                             \
    }

#define VEC_BWD(A)                                                                                          \
    case A: {                                                                                               \
        size_t i = 0;                                                                                       \
        if (overwrite)                                                                                      \
            for (; i + FM_VL <= n; i += FM_VL)                                                              \
                fm_vstore(dx + i, vbwd(A, fm_vload(x + i), fm_vload(y + i), fm_vload(dy + i)));             \
        else                                                                                                \
            for (; i + FM_VL <= n; i += FM_VL)                                                              \
                fm_vstore(dx + i, fm_vload(dx + i) + vbwd(A, fm_vload(x + i), fm_vload(y + i), fm_vload(dy + i))); \
        if (i < n) {                                                                                        \
            float tx[FM_VL] = {0}, ty[FM_VL] = {0}, td[FM_VL] = {0}, tg[FM_VL];                             \
            size_t r = (n - i) * sizeof(float);                                                             \
            memcpy(tx, x + i, r);                                                                           \
            memcpy(ty, y + i, r);                                                                           \
            memcpy(td, dy + i, r);                                                                          \
            fm_vstore(tg, vbwd(A, fm_vload(tx), fm_vload(ty), fm_vload(td)));                               \
            for (size_t k = 0; k < n - i; k++) dx[i + k] = overwrite ? tg[k] : dx[i + k] + tg[k];           \
        }                                                                                                   \
        return;                                                                                             \
    }

void fm__act_forward(fm_act a, const float *x, float *y, size_t n)
{
    switch (a) {
        VEC_FWD(FM_ACT_RELU)
        VEC_FWD(FM_ACT_ELU)
        VEC_FWD(FM_ACT_SILU)
        VEC_FWD(FM_ACT_GELU_TANH)
        VEC_FWD(FM_ACT_TANH)
        VEC_FWD(FM_ACT_SIGMOID)
        VEC_FWD(FM_ACT_SELU)
    case FM_ACT_NONE: memmove(y, x, n * sizeof(float)); return;
    case FM_ACT_GELU:
        for (size_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
        return;
    case FM_ACT_SOFTPLUS:
        for (size_t i = 0; i < n; i++) y[i] = x[i] > SOFTPLUS_THRESHOLD ? x[i] : log1pf(expf(x[i]));
        return;
    default: FM_ASSERT(0 && "unknown activation");
    }
}

void fm__act_backward(fm_act a, const float *x, const float *y, const float *dy, float *dx, size_t n, int overwrite)
{
    switch (a) {
        VEC_BWD(FM_ACT_RELU)
        VEC_BWD(FM_ACT_ELU)
        VEC_BWD(FM_ACT_SILU)
        VEC_BWD(FM_ACT_GELU_TANH)
        VEC_BWD(FM_ACT_TANH)
        VEC_BWD(FM_ACT_SIGMOID)
        VEC_BWD(FM_ACT_SELU)
    case FM_ACT_NONE:
        for (size_t i = 0; i < n; i++) dx[i] = overwrite ? dy[i] : dx[i] + dy[i];
        return;
    case FM_ACT_GELU: /* f' = Phi(x) + x phi(x) */
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            float cdf = 0.5f * (1.0f + erff(v * (float)M_SQRT1_2));
            float pdf = expf(-0.5f * v * v) * 0.3989422804014327f;
            float g = dy[i] * (cdf + v * pdf);
            dx[i] = overwrite ? g : dx[i] + g;
        }
        return;
    case FM_ACT_SOFTPLUS: /* f' = sigmoid(x) */
        for (size_t i = 0; i < n; i++) {
            float g = x[i] > SOFTPLUS_THRESHOLD ? dy[i] : dy[i] * sigmoidf(x[i]);
            dx[i] = overwrite ? g : dx[i] + g;
        }
        return;
    default: FM_ASSERT(0 && "unknown activation");
    }
}


static void act_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0];
    if (!fm__wants_grad(x)) return;
    int fresh;
    float *gx = fm__grad_w(tp, x, &fresh);
    if (!gx) return;
    fm__act_backward((fm_act)y->arg.i[0], x->data, y->data, y->grad, gx, y->size, fresh);
}

#define ACT_OP(name) {name, act_backward}
static const fm_op act_ops[FM_ACT_COUNT] = {
    ACT_OP("none"), ACT_OP("relu"), ACT_OP("elu"),  ACT_OP("silu"), ACT_OP("gelu"),
    ACT_OP("gelu_tanh"), ACT_OP("tanh"), ACT_OP("sigmoid"), ACT_OP("selu"), ACT_OP("softplus"),
};

fm_tensor *fm_activation(fm_tape *tp, fm_tensor *x, fm_act a)
{
    if (!tp || tp->status != FM_OK) return NULL;
    if (a < 0 || a >= FM_ACT_COUNT)
        return fm__op_fail(tp, FM_ERR_ARG, "activation: unknown kind %d", (int)a);
    if (!fm__op_inputs_ok(tp, act_names[a], &x, 1)) return NULL;
    fm_tensor *y = fm__node(tp, &act_ops[a], x->ndim, x->shape, &x, 1);
    if (!y) return NULL;
    y->arg.i[0] = a;
    fm__act_forward(a, x->data, y->data, x->size);
    return y;
}

fm_tensor *fm_relu(fm_tape *tp, fm_tensor *x) { return fm_activation(tp, x, FM_ACT_RELU); }
fm_tensor *fm_elu(fm_tape *tp, fm_tensor *x) { return fm_activation(tp, x, FM_ACT_ELU); }
fm_tensor *fm_silu(fm_tape *tp, fm_tensor *x) { return fm_activation(tp, x, FM_ACT_SILU); }
fm_tensor *fm_gelu(fm_tape *tp, fm_tensor *x) { return fm_activation(tp, x, FM_ACT_GELU); }
fm_tensor *fm_gelu_tanh(fm_tape *tp, fm_tensor *x) { return fm_activation(tp, x, FM_ACT_GELU_TANH); }
fm_tensor *fm_tanh(fm_tape *tp, fm_tensor *x) { return fm_activation(tp, x, FM_ACT_TANH); }
fm_tensor *fm_sigmoid(fm_tape *tp, fm_tensor *x) { return fm_activation(tp, x, FM_ACT_SIGMOID); }
fm_tensor *fm_selu(fm_tape *tp, fm_tensor *x) { return fm_activation(tp, x, FM_ACT_SELU); }
fm_tensor *fm_softplus(fm_tape *tp, fm_tensor *x) { return fm_activation(tp, x, FM_ACT_SOFTPLUS); }

/* ---- sinusoidal time embedding (B) or (B, 1) -> (B, dim) */

/* y[b] = (cos a_i, sin a_i) over i < half = dim / 2, a_i = f_i t[b], f_i = scale max_period^(-i / half) */
void fm__time_embed_forward(float *y, const float *t, int B, int dim, float scale, float max_period)
{
    int half = dim / 2;
    double lmp = log((double)max_period);
    for (int b = 0; b < B; b++) {
        float *row = y + (size_t)b * dim;
        for (int i = 0; i < half; i++) {
            double a = (double)scale * exp(-lmp * i / half) * t[b];
            row[i] = (float)cos(a);
            row[half + i] = (float)sin(a);
        }
    }
}

/* dt[b] += sum over i of f_i (cos(a_i) dy[b, half + i] - sin(a_i) dy[b, i]), in double */
void fm__time_embed_backward(float *dt, const float *dy, const float *t, int B, int dim, float scale,
                             float max_period)
{
    int half = dim / 2;
    double sc = scale, lmp = log((double)max_period);
    for (int b = 0; b < B; b++) {
        double acc = 0.0;
        const float *g = dy + (size_t)b * dim;
        for (int i = 0; i < half; i++) {
            double f = sc * exp(-lmp * i / half), a = f * t[b];
            /* d cos(a)/dt = -f sin(a); d sin(a)/dt = f cos(a) */
            acc += -f * sin(a) * g[i] + f * cos(a) * g[half + i];
        }
        dt[b] += (float)acc;
    }
}

static void time_embed_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *t = y->src[0];
    if (!fm__wants_grad(t)) return;
    float *gt = fm__grad(tp, t);
    if (!gt) return;
    fm__time_embed_backward(gt, y->grad, t->data, y->shape[0], y->shape[1], y->arg.f[0], y->arg.f[1]);
}

static const fm_op OP_TIME_EMBED = {"time_embed", time_embed_backward};

fm_tensor *fm_time_embed(fm_tape *tp, fm_tensor *t, int dim, float scale, float max_period)
{
    if (!fm__op_inputs_ok(tp, "time_embed", &t, 1)) return NULL;
    char s1[96];
    if (!(t->ndim == 1 || (t->ndim == 2 && t->shape[1] == 1)))
        return fm__op_fail(tp, FM_ERR_SHAPE, "time_embed: times must be [B] or [B, 1], got %s",
                           fm_shape_str(t, s1, sizeof s1));
    if (dim < 2 || dim % 2)
        return fm__op_fail(tp, FM_ERR_ARG, "time_embed: dimension %d must be even and >= 2", dim);
    if (!(max_period > 1.0f))
        return fm__op_fail(tp, FM_ERR_ARG, "time_embed: max_period %g must exceed 1",
                           (double)max_period);
    int B = t->shape[0];
    int shape[2] = {B, dim};
    fm_tensor *y = fm__node(tp, &OP_TIME_EMBED, 2, shape, &t, 1);
    if (!y) return NULL;
    y->arg.f[0] = scale;
    y->arg.f[1] = max_period;
    fm__time_embed_forward(y->data, t->data, B, dim, scale, max_period);
    return y;
}

/* Forward-mode tangent of fm_time_embed(t) along dt (both (B) or (B, 1)):
 * d cos(a_i) = -f_i sin(a_i) dt, d sin(a_i) = f_i cos(a_i) dt, in double.
 * Its values only: no gradient flows back through it. */
fm_tensor *fm__time_embed_jvp(fm_tape *tp, fm_tensor *t, fm_tensor *dt, int dim, float scale, float max_period)
{
    fm_tensor *in2[2] = {t, dt};
    if (!fm__op_inputs_ok(tp, "time_embed_jvp", in2, 2)) return NULL;
    if (dt->size != t->size || dim < 2 || dim % 2)
        return fm__op_fail(tp, FM_ERR_SHAPE, "time_embed_jvp: a tangent per time and an even dimension are needed");
    int B = (int)t->size, half = dim / 2;
    fm_tensor *y = fm_tensor_2d(tp, B, dim);
    if (!y) return NULL;
    double lmp = log((double)max_period);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < half; i++) {
            double f = (double)scale * exp(-lmp * i / half), a = f * t->data[b];
            y->data[(size_t)b * dim + i] = (float)(-f * sin(a) * dt->data[b]);
            y->data[(size_t)b * dim + half + i] = (float)(f * cos(a) * dt->data[b]);
        }
    return y;
}

/* ---- an activation's derivative as an op of its own (forward-mode tangents on the tape) */

/* f'(x) and f''(x), in double. */
static void act_d12(fm_act a, double x, double *d1, double *d2)
{
    double s, th, e;
    switch (a) {
    case FM_ACT_RELU: *d1 = x > 0, *d2 = 0; return;
    case FM_ACT_ELU: e = exp(x < 0 ? x : 0), *d1 = x > 0 ? 1 : e, *d2 = x > 0 ? 0 : e; return;
    case FM_ACT_SILU:
        s = 1 / (1 + exp(-x));
        *d1 = s * (1 + x * (1 - s)), *d2 = s * (1 - s) * (2 + x * (1 - 2 * s));
        return;
    case FM_ACT_GELU: {
        double pdf = exp(-0.5 * x * x) * 0.3989422804014327, cdf = 0.5 * (1 + erf(x * M_SQRT1_2));
        *d1 = cdf + x * pdf, *d2 = pdf * (2 - x * x);
        return;
    }
    case FM_ACT_GELU_TANH: {
        double u1 = GELU_K * (1 + 3 * GELU_C * x * x), u2 = 6 * GELU_K * GELU_C * x;
        th = tanh(GELU_K * (x + GELU_C * x * x * x));
        double sech2 = 1 - th * th;
        *d1 = 0.5 * (1 + th) + 0.5 * x * sech2 * u1;
        *d2 = sech2 * u1 + 0.5 * x * sech2 * (u2 - 2 * th * u1 * u1);
        return;
    }
    case FM_ACT_TANH: th = tanh(x), *d1 = 1 - th * th, *d2 = -2 * th * (1 - th * th); return;
    case FM_ACT_SIGMOID: s = 1 / (1 + exp(-x)), *d1 = s * (1 - s), *d2 = s * (1 - s) * (1 - 2 * s); return;
    case FM_ACT_SELU:
        e = SELU_SCALE * SELU_ALPHA * exp(x < 0 ? x : 0);
        *d1 = x > 0 ? SELU_SCALE : e, *d2 = x > 0 ? 0 : e;
        return;
    case FM_ACT_SOFTPLUS:
        s = 1 / (1 + exp(-x));
        *d1 = x > SOFTPLUS_THRESHOLD ? 1 : s, *d2 = x > SOFTPLUS_THRESHOLD ? 0 : s * (1 - s);
        return;
    default: *d1 = 1, *d2 = 0; return;
    }
}

/* The common activations' f' and f'' in float from the vector kernels'
 * values (ELU, tanh, sigmoid, SiLU); d2 NULL: f' alone. 0 when a is not one
 * of them (then act_d12 serves, in double). */
static int act_d12_fast(fm_act a, const float *x, float *d1, float *d2, float *tmp, size_t n)
{
    switch (a) {
    case FM_ACT_ELU: /* f' = 1 or elu(x) + 1 = exp(x); f'' = 0 or exp(x) */
        fm__act_forward(FM_ACT_ELU, x, tmp, n);
        for (size_t i = 0; i < n; i++) {
            float e = tmp[i] + 1.0f;
            if (d1) d1[i] = x[i] > 0 ? 1.0f : e;
            if (d2) d2[i] = x[i] > 0 ? 0.0f : e;
        }
        return 1;
    case FM_ACT_TANH:
        fm__act_forward(FM_ACT_TANH, x, tmp, n);
        for (size_t i = 0; i < n; i++) {
            float th = tmp[i], g = 1.0f - th * th;
            if (d1) d1[i] = g;
            if (d2) d2[i] = -2.0f * th * g;
        }
        return 1;
    case FM_ACT_SIGMOID:
    case FM_ACT_SILU:
        fm__act_forward(FM_ACT_SIGMOID, x, tmp, n);
        for (size_t i = 0; i < n; i++) {
            float sg = tmp[i], g = sg * (1.0f - sg);
            if (a == FM_ACT_SIGMOID) {
                if (d1) d1[i] = g;
                if (d2) d2[i] = g * (1.0f - 2.0f * sg);
            } else {
                if (d1) d1[i] = sg * (1.0f + x[i] * (1.0f - sg));
                if (d2) d2[i] = g * (2.0f + x[i] * (1.0f - 2.0f * sg));
            }
        }
        return 1;
    default: return 0;
    }
}

static void act_grad_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0];
    if (!fm__wants_grad(x)) return;
    float *gx = fm__grad(tp, x);
    float *d2 = fm__tape_alloc(tp, 2 * y->size * sizeof(float));
    if (!gx || !d2) return;
    fm_act a = (fm_act)y->arg.i[0];
    if (act_d12_fast(a, x->data, NULL, d2, d2 + y->size, y->size)) {
        for (size_t i = 0; i < y->size; i++) gx[i] += y->grad[i] * d2[i];
        return;
    }
    for (size_t i = 0; i < y->size; i++) {
        double f1, f2;
        act_d12(a, x->data[i], &f1, &f2);
        gx[i] += (float)(y->grad[i] * f2);
    }
}

static const fm_op OP_ACT_GRAD = {"act_grad", act_grad_backward};

fm_tensor *fm_act_grad(fm_tape *tp, fm_tensor *x, fm_act a)
{
    if (!tp || tp->status != FM_OK) return NULL;
    if (a < 0 || a >= FM_ACT_COUNT) return fm__op_fail(tp, FM_ERR_ARG, "act_grad: unknown activation %d", (int)a);
    if (!fm__op_inputs_ok(tp, "act_grad", &x, 1)) return NULL;
    fm_tensor *y = fm__node(tp, &OP_ACT_GRAD, x->ndim, x->shape, &x, 1);
    if (!y) return NULL;
    y->arg.i[0] = a;
    float *tmp = fm__tape_alloc(tp, x->size * sizeof(float));
    if (!tmp) return NULL;
    if (act_d12_fast(a, x->data, y->data, NULL, tmp, x->size)) return y;
    for (size_t i = 0; i < x->size; i++) {
        double d1, d2;
        act_d12(a, x->data[i], &d1, &d2);
        y->data[i] = (float)d1;
    }
    return y;
}
