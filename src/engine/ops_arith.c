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
#include "engine/kernels.h"

#include <math.h>
#include <string.h>

static void strides4(int ndim, const int *tshape, const int *out, size_t *st)
{
    int sh[4];
    int off = 4 - ndim;
    for (int d = 0; d < 4; d++) sh[d] = d < off ? 1 : tshape[d - off];
    size_t s = 1;
    for (int d = 3; d >= 0; d--) {
        st[d] = (sh[d] == 1 && out[d] != 1) ? 0 : s;
        s *= (size_t)sh[d];
    }
}

int fm__bcast_plan(fm__bcast *p, int *ndim, int *shape, int nda, const int *sha, int ndb, const int *shb)
{
    int nd = nda > ndb ? nda : ndb;
    for (int d = 0; d < 4; d++) {
        int oa = 4 - nda, ob = 4 - ndb;
        int da = d < oa ? 1 : sha[d - oa];
        int db = d < ob ? 1 : shb[d - ob];
        if (da != db && da != 1 && db != 1) return 0;
        p->shape[d] = da > db ? da : db;
    }
    for (int d = 0; d < nd; d++) shape[d] = p->shape[4 - nd + d];
    *ndim = nd;
    strides4(nda, sha, p->shape, p->sa);
    strides4(ndb, shb, p->shape, p->sb);
    return 1;
}

/* Values of an operand with strides st (0 along its stretched dims). */
static size_t bcast_size(const fm__bcast *p, const size_t *st)
{
    size_t n = 1;
    for (int d = 0; d < 4; d++) n *= st[d] == 0 ? 1 : (size_t)p->shape[d];
    return n;
}

/* Is one operand (the "full" one, strides f) whole over the last two
 * dimensions and the other (strides c) stretched over both? */
static int block_bcast(const fm__bcast *p, const size_t *f, const size_t *c)
{
    return p->shape[2] * p->shape[3] > 1 && f[3] == 1 && f[2] == (size_t)p->shape[3] && c[2] == 0 && c[3] == 0;
}

/* Over each block: dfull (=)+= fsign g v (v = the other operand for mul, else 1)
 * and dcst += csign times the sum of g u (u = the full operand for mul, else 1). */
static void block_backward(const fm__bcast *p, int kind, const float *g, const float *full, const float *cst,
                           const size_t *sf, const size_t *sc, float *dfull, int ffresh, float fsign, float *dcst,
                           float csign)
{
    size_t L = (size_t)p->shape[2] * p->shape[3], o = 0;
    for (int i0 = 0; i0 < p->shape[0]; i0++)
        for (int i1 = 0; i1 < p->shape[1]; i1++, o += L) {
            size_t jf = i0 * sf[0] + i1 * sf[1], jc = i0 * sc[0] + i1 * sc[1];
            const float *gb = g + o;
            if (dfull) {
                float v = fsign * (kind == FM__MUL ? cst[jc] : 1.0f);
                float *d = dfull + jf;
                if (ffresh)
                    for (size_t t = 0; t < L; t++) d[t] = gb[t] * v;
                else
                    for (size_t t = 0; t < L; t++) d[t] += gb[t] * v;
            }
            if (dcst) {
                double s[4] = {0, 0, 0, 0};
                size_t t = 0;
                if (kind == FM__MUL) {
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

/* y = a (op) b, one shape */
void fm__arith_forward(float *y, const float *a, const float *b, size_t n, int kind)
{
    if (kind == FM__ADD)
        for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    else if (kind == FM__SUB)
        for (size_t i = 0; i < n; i++) y[i] = a[i] - b[i];
    else
        for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

/* da (=)+= dy [b]; then db (=)+= +-dy [a] */
void fm__arith_backward(float *da, float *db, const float *dy, const float *a, const float *b, size_t n, int kind,
                        int da_overwrite, int db_overwrite)
{
    /* a's part first: when a and b are one tensor, b's adds to it */
    if (da) {
        if (kind == FM__MUL)
            for (size_t i = 0; i < n; i++) da[i] = (da_overwrite ? 0.0f : da[i]) + dy[i] * b[i];
        else if (da_overwrite)
            memcpy(da, dy, n * sizeof(float));
        else
            for (size_t i = 0; i < n; i++) da[i] += dy[i];
    }
    if (db) {
        if (kind == FM__MUL)
            for (size_t i = 0; i < n; i++) db[i] = (db_overwrite ? 0.0f : db[i]) + dy[i] * a[i];
        else if (kind == FM__SUB)
            for (size_t i = 0; i < n; i++) db[i] = (db_overwrite ? 0.0f : db[i]) - dy[i];
        else if (db_overwrite)
            memcpy(db, dy, n * sizeof(float));
        else
            for (size_t i = 0; i < n; i++) db[i] += dy[i];
    }
}

/* y = a (op) b, broadcast by p */
void fm__bcast_forward(float *y, const float *a, const float *b, const fm__bcast *p, int kind)
{
    int afull = block_bcast(p, p->sa, p->sb);
    if (afull || block_bcast(p, p->sb, p->sa)) {
        size_t L = (size_t)p->shape[2] * p->shape[3], o = 0;
        for (int i0 = 0; i0 < p->shape[0]; i0++)
            for (int i1 = 0; i1 < p->shape[1]; i1++, o += L) {
                const float *u = a + i0 * p->sa[0] + i1 * p->sa[1], *v = b + i0 * p->sb[0] + i1 * p->sb[1];
                float *d = y + o;
                if (afull) {
                    float c = v[0];
                    if (kind == FM__ADD)
                        for (size_t t = 0; t < L; t++) d[t] = u[t] + c;
                    else if (kind == FM__SUB)
                        for (size_t t = 0; t < L; t++) d[t] = u[t] - c;
                    else
                        for (size_t t = 0; t < L; t++) d[t] = u[t] * c;
                } else {
                    float c = u[0];
                    if (kind == FM__ADD)
                        for (size_t t = 0; t < L; t++) d[t] = c + v[t];
                    else if (kind == FM__SUB)
                        for (size_t t = 0; t < L; t++) d[t] = c - v[t];
                    else
                        for (size_t t = 0; t < L; t++) d[t] = c * v[t];
                }
            }
        return;
    }
    size_t o = 0;
    for (int i0 = 0; i0 < p->shape[0]; i0++)
        for (int i1 = 0; i1 < p->shape[1]; i1++)
            for (int i2 = 0; i2 < p->shape[2]; i2++) {
                size_t ia = i0 * p->sa[0] + i1 * p->sa[1] + i2 * p->sa[2];
                size_t ib = i0 * p->sb[0] + i1 * p->sb[1] + i2 * p->sb[2];
                for (int i3 = 0; i3 < p->shape[3]; i3++, o++) {
                    float u = a[ia + i3 * p->sa[3]], v = b[ib + i3 * p->sb[3]];
                    y[o] = kind == FM__ADD ? u + v : kind == FM__SUB ? u - v : u * v;
                }
            }
}

/* da (=)+= dy [b] and db (=)+= +-dy [a], each summed over its stretched dims */
void fm__bcast_backward(float *da, float *db, const float *dy, const float *a, const float *b, const fm__bcast *p,
                        int kind, int da_overwrite, int db_overwrite)
{
    /* stretched: the sums over the stretched dimensions accumulate */
    float sb = kind == FM__SUB ? -1.0f : 1.0f;
    if (block_bcast(p, p->sa, p->sb)) {
        if (db && db_overwrite) memset(db, 0, bcast_size(p, p->sb) * sizeof(float));
        block_backward(p, kind, dy, a, b, p->sa, p->sb, da, da_overwrite, 1.0f, db, sb);
        return;
    }
    if (block_bcast(p, p->sb, p->sa)) {
        if (da && da_overwrite) memset(da, 0, bcast_size(p, p->sa) * sizeof(float));
        block_backward(p, kind, dy, b, a, p->sb, p->sa, db, db_overwrite, sb, da, 1.0f);
        return;
    }
    if (da && da_overwrite) memset(da, 0, bcast_size(p, p->sa) * sizeof(float));
    if (db && db_overwrite) memset(db, 0, bcast_size(p, p->sb) * sizeof(float));
    size_t o = 0;
    for (int i0 = 0; i0 < p->shape[0]; i0++)
        for (int i1 = 0; i1 < p->shape[1]; i1++)
            for (int i2 = 0; i2 < p->shape[2]; i2++) {
                size_t ia = i0 * p->sa[0] + i1 * p->sa[1] + i2 * p->sa[2];
                size_t ib = i0 * p->sb[0] + i1 * p->sb[1] + i2 * p->sb[2];
                for (int i3 = 0; i3 < p->shape[3]; i3++, o++) {
                    size_t ja = ia + i3 * p->sa[3], jb = ib + i3 * p->sb[3];
                    if (kind == FM__MUL) {
                        if (da) da[ja] += dy[o] * b[jb];
                        if (db) db[jb] += dy[o] * a[ja];
                    } else {
                        if (da) da[ja] += dy[o];
                        if (db) db[jb] += kind == FM__SUB ? -dy[o] : dy[o];
                    }
                }
            }
}

static void arith_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *a = y->src[0], *b = y->src[1];
    int kind = y->arg.i[0];
    int fa = 0, fb = 0;
    float *ga = fm__wants_grad(a) ? fm__grad_w(tp, a, &fa) : NULL;
    float *gb = fm__wants_grad(b) ? fm__grad_w(tp, b, &fb) : NULL;
    if (tp->status != FM_OK) return;
    if (fm__same_shape(a, b)) {
        fm__arith_backward(ga, gb, y->grad, a->data, b->data, y->size, kind, fa, fb);
        return;
    }
    fm__bcast p;
    int nd, shape[4];
    fm__bcast_plan(&p, &nd, shape, a->ndim, a->shape, b->ndim, b->shape);
    fm__bcast_backward(ga, gb, y->grad, a->data, b->data, &p, kind, fa, fb);
}

static const fm_op OP_ADD = {"add", arith_backward};
static const fm_op OP_SUB = {"sub", arith_backward};
static const fm_op OP_MUL = {"mul", arith_backward};

static fm_tensor *arith_on(fm_tape *tp, fm_tensor *a, fm_tensor *b, int kind, int into)
{
    const fm_op *op = kind == FM__ADD ? &OP_ADD : kind == FM__SUB ? &OP_SUB : &OP_MUL;
    fm_tensor *in[2] = {a, b};
    if (!fm__op_inputs_ok(tp, op->name, in, 2)) return NULL;
    fm__bcast p;
    int nd, shape[4];
    if (!fm__bcast_plan(&p, &nd, shape, a->ndim, a->shape, b->ndim, b->shape)) {
        char s1[96], s2[96];
        return fm__op_fail(tp, FM_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", op->name,
                           fm_shape_str(a, s1, sizeof s1), fm_shape_str(b, s2, sizeof s2));
    }
    int fits = into && nd == a->ndim;
    for (int i = 0; fits && i < nd; i++) fits = shape[i] == a->shape[i];
    fm_tensor *y = fits ? fm__node_on(tp, op, a->data, nd, shape, in, 2) : fm__node(tp, op, nd, shape, in, 2);
    if (!y) return NULL;
    y->arg.i[0] = kind;
    if (fm__same_shape(a, b))
        fm__arith_forward(y->data, a->data, b->data, y->size, kind);
    else
        fm__bcast_forward(y->data, a->data, b->data, &p, kind);
    return y;
}

static fm_tensor *arith(fm_tape *tp, fm_tensor *a, fm_tensor *b, int kind) { return arith_on(tp, a, b, kind, 0); }

fm_tensor *fm_add(fm_tape *tp, fm_tensor *a, fm_tensor *b) { return arith(tp, a, b, FM__ADD); }
fm_tensor *fm__add_into(fm_tape *tp, fm_tensor *a, fm_tensor *b) { return arith_on(tp, a, b, FM__ADD, 1); }
fm_tensor *fm_sub(fm_tape *tp, fm_tensor *a, fm_tensor *b) { return arith(tp, a, b, FM__SUB); }
fm_tensor *fm_mul(fm_tape *tp, fm_tensor *a, fm_tensor *b) { return arith(tp, a, b, FM__MUL); }

/* y = s x */
void fm__scale_forward(float *y, const float *x, float s, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = s * x[i];
}

/* dx += s dy */
void fm__scale_backward(float *dx, const float *dy, float s, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] += s * dy[i];
}

static void scale_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0];
    if (!fm__wants_grad(x)) return;
    float *gx = fm__grad(tp, x);
    if (!gx) return;
    fm__scale_backward(gx, y->grad, y->arg.f[0], y->size);
}

static const fm_op OP_SCALE = {"scale", scale_backward};

fm_tensor *fm_scale(fm_tape *tp, fm_tensor *x, float s)
{
    if (!fm__op_inputs_ok(tp, "scale", &x, 1)) return NULL;
    fm_tensor *y = fm__node(tp, &OP_SCALE, x->ndim, x->shape, &x, 1);
    if (!y) return NULL;
    y->arg.f[0] = s;
    fm__scale_forward(y->data, x->data, s, y->size);
    return y;
}

/* ---- exp: the backward reuses the output */

/* y = exp(x) */
void fm__exp_forward(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

/* dx += y dy */
void fm__exp_backward(float *dx, const float *dy, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] += y[i] * dy[i];
}

static void exp_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0];
    if (!fm__wants_grad(x)) return;
    float *gx = fm__grad(tp, x);
    if (!gx) return;
    fm__exp_backward(gx, y->grad, y->data, y->size);
}

static const fm_op OP_EXP = {"exp", exp_backward};

fm_tensor *fm_exp(fm_tape *tp, fm_tensor *x)
{
    if (!fm__op_inputs_ok(tp, "exp", &x, 1)) return NULL;
    fm_tensor *y = fm__node(tp, &OP_EXP, x->ndim, x->shape, &x, 1);
    if (!y) return NULL;
    fm__exp_forward(y->data, x->data, y->size);
    return y;
}
