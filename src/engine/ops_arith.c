/* ops_arith.c - add, sub, mul with NumPy broadcasting, scale and exp.
 *
 * Shapes align at their trailing dimension; a dimension of 1 (or a missing
 * leading one) stretches to the other operand's. Backward sums the gradient
 * over the stretched dimensions, in a fixed order. When one operand is
 * stretched over the last two dimensions and the other is not (a per-channel
 * term on images, (N, C, H, W) and (N, C, 1, 1)), those H W values are one
 * contiguous block: the loops run over whole blocks, and a block's sum is
 * taken in double.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

enum { ARITH_ADD, ARITH_SUB, ARITH_MUL };

/* Both operands seen as 4-D, with element strides that are 0 along stretched dims. */
typedef struct {
    int shape[4];
    size_t sa[4], sb[4];
} bcast;

static void strides4(const fm_tensor *t, const int *out, size_t *st)
{
    int sh[4];
    int off = 4 - t->ndim;
    for (int d = 0; d < 4; d++) sh[d] = d < off ? 1 : t->shape[d - off];
    size_t s = 1;
    for (int d = 3; d >= 0; d--) {
        st[d] = (sh[d] == 1 && out[d] != 1) ? 0 : s;
        s *= (size_t)sh[d];
    }
}

/* Output rank and shape of a (op) b, or 0 if they do not broadcast. */
static int bcast_plan(const fm_tensor *a, const fm_tensor *b, int *ndim, int *shape, bcast *p)
{
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < 4; d++) {
        int oa = 4 - a->ndim, ob = 4 - b->ndim;
        int da = d < oa ? 1 : a->shape[d - oa];
        int db = d < ob ? 1 : b->shape[d - ob];
        if (da != db && da != 1 && db != 1) return 0;
        p->shape[d] = da > db ? da : db;
    }
    for (int d = 0; d < nd; d++) shape[d] = p->shape[4 - nd + d];
    *ndim = nd;
    strides4(a, p->shape, p->sa);
    strides4(b, p->shape, p->sb);
    return 1;
}

/* Is one operand (the "full" one, strides f) whole over the last two
 * dimensions and the other (strides c) stretched over both? */
static int block_bcast(const bcast *p, const size_t *f, const size_t *c)
{
    return p->shape[2] * p->shape[3] > 1 && f[3] == 1 && f[2] == (size_t)p->shape[3] && c[2] == 0 && c[3] == 0;
}

/* Over each block: dfull (=)+= fsign g v (v = the other operand for mul, else 1)
 * and dcst += csign times the sum of g u (u = the full operand for mul, else 1). */
static void block_backward(const bcast *p, int kind, const float *g, const float *full, const float *cst,
                           const size_t *sf, const size_t *sc, float *dfull, int ffresh, float fsign, float *dcst,
                           float csign)
{
    size_t L = (size_t)p->shape[2] * p->shape[3], o = 0;
    for (int i0 = 0; i0 < p->shape[0]; i0++)
        for (int i1 = 0; i1 < p->shape[1]; i1++, o += L) {
            size_t jf = i0 * sf[0] + i1 * sf[1], jc = i0 * sc[0] + i1 * sc[1];
            const float *gb = g + o;
            if (dfull) {
                float v = fsign * (kind == ARITH_MUL ? cst[jc] : 1.0f);
                float *d = dfull + jf;
                if (ffresh)
                    for (size_t t = 0; t < L; t++) d[t] = gb[t] * v;
                else
                    for (size_t t = 0; t < L; t++) d[t] += gb[t] * v;
            }
            if (dcst) {
                double s[4] = {0, 0, 0, 0};
                size_t t = 0;
                if (kind == ARITH_MUL) {
                    const float *u = full + jf;
                    for (; t + 4 <= L; t += 4)
                        for (int l = 0; l < 4; l++) s[l] += (double)gb[t + l] * u[t + l];
                    for (; t < L; t++) s[t % 4] += (double)gb[t] * u[t];
                } else {
                    for (; t + 4 <= L; t += 4)
                        for (int l = 0; l < 4; l++) s[l] += gb[t + l];
                    for (; t < L; t++) s[t % 4] += gb[t];
                }
                dcst[jc] += csign * (float)((s[0] + s[1]) + (s[2] + s[3]));
            }
        }
}

static void arith_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *a = y->src[0], *b = y->src[1];
    int kind = y->arg.i[0];
    bcast p;
    int nd, shape[4];
    bcast_plan(a, b, &nd, shape, &p);
    int fa = 0, fb = 0;
    float *ga = fm__wants_grad(a) ? fm__grad_w(tp, a, &fa) : NULL;
    float *gb = fm__wants_grad(b) ? fm__grad_w(tp, b, &fb) : NULL;
    if (tp->status != FM_OK) return;
    const float *g = y->grad;
    if (fm__same_shape(a, b)) {
        /* a's part first: when a and b are one tensor, b's adds to it */
        if (ga) {
            if (kind == ARITH_MUL)
                for (size_t i = 0; i < y->size; i++) ga[i] = (fa ? 0.0f : ga[i]) + g[i] * b->data[i];
            else if (fa)
                memcpy(ga, g, y->size * sizeof(float));
            else
                for (size_t i = 0; i < y->size; i++) ga[i] += g[i];
        }
        if (gb) {
            if (kind == ARITH_MUL)
                for (size_t i = 0; i < y->size; i++) gb[i] = (fb ? 0.0f : gb[i]) + g[i] * a->data[i];
            else if (kind == ARITH_SUB)
                for (size_t i = 0; i < y->size; i++) gb[i] = (fb ? 0.0f : gb[i]) - g[i];
            else if (fb)
                memcpy(gb, g, y->size * sizeof(float));
            else
                for (size_t i = 0; i < y->size; i++) gb[i] += g[i];
        }
        return;
    }
    /* stretched: the sums over the stretched dimensions accumulate */
    float sb = kind == ARITH_SUB ? -1.0f : 1.0f;
    if (block_bcast(&p, p.sa, p.sb)) {
        if (fb) memset(gb, 0, b->size * sizeof(float));
        block_backward(&p, kind, g, a->data, b->data, p.sa, p.sb, ga, fa, 1.0f, gb, sb);
        return;
    }
    if (block_bcast(&p, p.sb, p.sa)) {
        if (fa) memset(ga, 0, a->size * sizeof(float));
        block_backward(&p, kind, g, b->data, a->data, p.sb, p.sa, gb, fb, sb, ga, 1.0f);
        return;
    }
    if (fa) memset(ga, 0, a->size * sizeof(float));
    if (fb) memset(gb, 0, b->size * sizeof(float));
    size_t o = 0;
    for (int i0 = 0; i0 < p.shape[0]; i0++)
        for (int i1 = 0; i1 < p.shape[1]; i1++)
            for (int i2 = 0; i2 < p.shape[2]; i2++) {
                size_t ia = i0 * p.sa[0] + i1 * p.sa[1] + i2 * p.sa[2];
                size_t ib = i0 * p.sb[0] + i1 * p.sb[1] + i2 * p.sb[2];
                for (int i3 = 0; i3 < p.shape[3]; i3++, o++) {
                    size_t ja = ia + i3 * p.sa[3], jb = ib + i3 * p.sb[3];
                    if (kind == ARITH_MUL) {
                        if (ga) ga[ja] += g[o] * b->data[jb];
                        if (gb) gb[jb] += g[o] * a->data[ja];
                    } else {
                        if (ga) ga[ja] += g[o];
                        if (gb) gb[jb] += kind == ARITH_SUB ? -g[o] : g[o];
                    }
                }
            }
}

static const fm_op OP_ADD = {"add", arith_backward};
static const fm_op OP_SUB = {"sub", arith_backward};
static const fm_op OP_MUL = {"mul", arith_backward};

static fm_tensor *arith(fm_tape *tp, fm_tensor *a, fm_tensor *b, int kind)
{
    const fm_op *op = kind == ARITH_ADD ? &OP_ADD : kind == ARITH_SUB ? &OP_SUB : &OP_MUL;
    fm_tensor *in[2] = {a, b};
    if (!fm__op_inputs_ok(tp, op->name, in, 2)) return NULL;
    bcast p;
    int nd, shape[4];
    if (!bcast_plan(a, b, &nd, shape, &p)) {
        char s1[96], s2[96];
        return fm__op_fail(tp, FM_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", op->name,
                           fm_shape_str(a, s1, sizeof s1), fm_shape_str(b, s2, sizeof s2));
    }
    fm_tensor *y = fm__node(tp, op, nd, shape, in, 2);
    if (!y) return NULL;
    y->arg.i[0] = kind;
    float *out = y->data;
    const float *x = a->data, *z = b->data;
    if (fm__same_shape(a, b)) {
        size_t n = y->size;
        if (kind == ARITH_ADD)
            for (size_t i = 0; i < n; i++) out[i] = x[i] + z[i];
        else if (kind == ARITH_SUB)
            for (size_t i = 0; i < n; i++) out[i] = x[i] - z[i];
        else
            for (size_t i = 0; i < n; i++) out[i] = x[i] * z[i];
        return y;
    }
    int afull = block_bcast(&p, p.sa, p.sb);
    if (afull || block_bcast(&p, p.sb, p.sa)) {
        size_t L = (size_t)p.shape[2] * p.shape[3], o = 0;
        for (int i0 = 0; i0 < p.shape[0]; i0++)
            for (int i1 = 0; i1 < p.shape[1]; i1++, o += L) {
                const float *u = x + i0 * p.sa[0] + i1 * p.sa[1], *v = z + i0 * p.sb[0] + i1 * p.sb[1];
                float *d = out + o;
                if (afull) {
                    float c = v[0];
                    if (kind == ARITH_ADD)
                        for (size_t t = 0; t < L; t++) d[t] = u[t] + c;
                    else if (kind == ARITH_SUB)
                        for (size_t t = 0; t < L; t++) d[t] = u[t] - c;
                    else
                        for (size_t t = 0; t < L; t++) d[t] = u[t] * c;
                } else {
                    float c = u[0];
                    if (kind == ARITH_ADD)
                        for (size_t t = 0; t < L; t++) d[t] = c + v[t];
                    else if (kind == ARITH_SUB)
                        for (size_t t = 0; t < L; t++) d[t] = c - v[t];
                    else
                        for (size_t t = 0; t < L; t++) d[t] = c * v[t];
                }
            }
        return y;
    }
    size_t o = 0;
    for (int i0 = 0; i0 < p.shape[0]; i0++)
        for (int i1 = 0; i1 < p.shape[1]; i1++)
            for (int i2 = 0; i2 < p.shape[2]; i2++) {
                size_t ia = i0 * p.sa[0] + i1 * p.sa[1] + i2 * p.sa[2];
                size_t ib = i0 * p.sb[0] + i1 * p.sb[1] + i2 * p.sb[2];
                for (int i3 = 0; i3 < p.shape[3]; i3++, o++) {
                    float u = x[ia + i3 * p.sa[3]], v = z[ib + i3 * p.sb[3]];
                    out[o] = kind == ARITH_ADD ? u + v : kind == ARITH_SUB ? u - v : u * v;
                }
            }
    return y;
}

fm_tensor *fm_add(fm_tape *tp, fm_tensor *a, fm_tensor *b) { return arith(tp, a, b, ARITH_ADD); }
fm_tensor *fm_sub(fm_tape *tp, fm_tensor *a, fm_tensor *b) { return arith(tp, a, b, ARITH_SUB); }
fm_tensor *fm_mul(fm_tape *tp, fm_tensor *a, fm_tensor *b) { return arith(tp, a, b, ARITH_MUL); }

static void scale_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0];
    if (!fm__wants_grad(x)) return;
    float *gx = fm__grad(tp, x);
    if (!gx) return;
    float s = y->arg.f[0];
    for (size_t i = 0; i < y->size; i++) gx[i] += s * y->grad[i];
}

static const fm_op OP_SCALE = {"scale", scale_backward};

fm_tensor *fm_scale(fm_tape *tp, fm_tensor *x, float s)
{
    if (!fm__op_inputs_ok(tp, "scale", &x, 1)) return NULL;
    fm_tensor *y = fm__node(tp, &OP_SCALE, x->ndim, x->shape, &x, 1);
    if (!y) return NULL;
    y->arg.f[0] = s;
    for (size_t i = 0; i < y->size; i++) y->data[i] = s * x->data[i];
    return y;
}

/* ---- exp: the backward reuses the output */

static void exp_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0];
    if (!fm__wants_grad(x)) return;
    float *gx = fm__grad(tp, x);
    if (!gx) return;
    for (size_t i = 0; i < y->size; i++) gx[i] += y->data[i] * y->grad[i];
}

static const fm_op OP_EXP = {"exp", exp_backward};

fm_tensor *fm_exp(fm_tape *tp, fm_tensor *x)
{
    if (!fm__op_inputs_ok(tp, "exp", &x, 1)) return NULL;
    fm_tensor *y = fm__node(tp, &OP_EXP, x->ndim, x->shape, &x, 1);
    if (!y) return NULL;
    for (size_t i = 0; i < y->size; i++) y->data[i] = expf(x->data[i]);
    return y;
}
