/* ops_conv.c - 2-D convolution, nearest-neighbour upsampling and average
 * pooling on NCHW tensors.
 *
 * conv2d takes its weight (O, C, kh, kw) as nn.Conv2d stores it. It is one
 * matrix product per image, y_n (O, P) = [b +] W (O, K) col_n, K = C kh kw,
 * P = Ho Wo, where col_n is the unfolded image: row (c, i, j) holds the input
 * pixel under kernel tap (i, j) of channel c for every output position (zero
 * where the tap falls in the padding). Backward, per image: dx_n gets W^T dy_n
 * folded back; dW^T (K, O) = col_n dy_n^T; db sums dy over images and pixels
 * in double.
 *
 * With stride 1 and an output as wide as the input (3x3 with padding 1, 1x1
 * without: every convolution of the U-Net) col_n is never built: the products
 * read its rows in place from one zero-padded copy of the image's planes,
 * masking the entries a shift carries across a row edge, and dx is the same
 * kind of product on a copy of dy with the kernel turned round (below, "the
 * products on shifted planes"). The weight gradients of a chunk of 8 images
 * add up in one float buffer; the chunks' buffers are summed in double in
 * chunk order.
 *
 * Other convolutions unfold each image (im2col) into tape scratch, a band of
 * output rows at a time for images of more than about 1024 output pixels, and
 * fold dcol = W^T dy_n back onto dx (col2im, a scatter-add in a fixed order);
 * each image's weight gradient has a buffer of its own, summed into dW in
 * image order (in double).
 *
 * Images (chunks, backward on shifted planes) are spread over the threads,
 * each writing only its own outputs and buffers; the matrix products give the
 * same bits on any thread count, and so does the op. Copies and unfolded
 * images are scratch, returned to the tape when the op (or its backward) is
 * done.
 *
 * upsample_nearest2d repeats each pixel in a factor x factor block; backward
 * sums the block. avg_pool2d averages k x k blocks (stride k, no padding);
 * backward spreads dy / k^2 over the block.
 */
#include "internal.h"
#include "engine/kernels.h"
#include "engine/profile.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

/* ------------------------------------------------------------------ conv2d */

typedef struct {
    int N, C, H, W;      /* input */
    int O, kh, kw;       /* weight */
    int stride, pad;
    int Ho, Wo;          /* output */
    int K, P;            /* C kh kw, Ho Wo */
    int rows;            /* output rows per slice of the unfolded image */
    /* the products on shifted planes (see below); the rest are for them */
    int shifted;
    int Np, Nx, Op;      /* P, H W and O rounded up to whole vectors */
    int Ow;              /* columns of the (K, O) weight-gradient sums: Op, or O when O < 16 (dot products) */
    size_t xps, dps;     /* floats per plane of the copies of x and of dy */
} conv_geom;

/* Kernels up to this wide (pad 8) run on shifted planes. */
#define CONV_MAX_SHIFTS 17

/* Output positions per band of an unfolded image, about: large images are
 * unfolded a band of output rows at a time, so the scratch stays small while
 * the products stay wide enough to run at speed. */
#define CONV_SLICE_COLS 1024

static conv_geom geom_of(int N, int C, int H, int W, int O, int kh, int kw, int stride, int pad)
{
    conv_geom g;
    g.N = N;
    g.C = C;
    g.H = H;
    g.W = W;
    g.O = O;
    g.kh = kh;
    g.kw = kw;
    g.stride = stride;
    g.pad = pad;
    g.Ho = (g.H + 2 * pad - g.kh) / stride + 1;
    g.Wo = (g.W + 2 * pad - g.kw) / stride + 1;
    g.K = g.C * g.kh * g.kw;
    g.P = g.Ho * g.Wo;
    int slices = (int)(((long long)g.P + CONV_SLICE_COLS - 1) / CONV_SLICE_COLS);
    g.rows = (g.Ho + slices - 1) / slices;
    g.shifted = stride == 1 && g.kw == 2 * pad + 1 && pad < g.W && pad < g.kh && g.kw <= CONV_MAX_SHIFTS;
    g.Np = (g.P + 15) / 16 * 16;
    g.Nx = (g.H * g.W + 15) / 16 * 16;
    g.Op = (g.O + 15) / 16 * 16;
    g.Ow = !g.shifted ? g.O : g.O < 16 ? g.O : g.Op;
    /* a plane: pad zeros, the rows read (output rows + kh - 1) of W, and room
     * for the pad shift and for the rounded-up columns */
    g.xps = 2 * (size_t)pad + (size_t)(g.Ho + g.kh - 1) * g.W + (size_t)(g.Np - g.P);
    g.dps = 2 * (size_t)pad + (size_t)(g.H + g.kh - 1) * g.W + (size_t)(g.Nx - g.H * g.W);
    return g;
}

/* Output columns [*lo, *hi) whose tap at kernel offset j lands inside a row of
 * length n (input index o*stride - pad + j in [0, n)); the others read padding. */
static void tap_range(int n, int nout, int stride, int pad, int j, int *lo, int *hi)
{
    int a = pad - j, b = n + pad - j; /* need a <= o*stride < b */
    int l = a <= 0 ? 0 : (a + stride - 1) / stride;
    int h = b <= 0 ? 0 : (b + stride - 1) / stride;
    if (l > nout) l = nout;
    if (h > nout) h = nout;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

/* Output rows [oh0, oh1) of the unfolded image x (C, H, W): col (K, pc),
 * pc = (oh1 - oh0) Wo, row (c, i, j) the input under tap (i, j) of channel c. */
static void im2col(const conv_geom *g, const float *x, int oh0, int oh1, float *col)
{
    int s = g->stride, Wo = g->Wo;
    size_t pc = (size_t)(oh1 - oh0) * Wo;
    for (int c = 0; c < g->C; c++) {
        const float *xc = x + (size_t)c * g->H * g->W;
        for (int i = 0; i < g->kh; i++)
            for (int j = 0; j < g->kw; j++) {
                float *row = col + ((size_t)(c * g->kh + i) * g->kw + j) * pc;
                int lo, hi, off = j - g->pad; /* input column = ow s + off */
                tap_range(g->W, Wo, s, g->pad, j, &lo, &hi);
                for (int oh = oh0; oh < oh1; oh++) {
                    float *r = row + (size_t)(oh - oh0) * Wo;
                    int ih = oh * s - g->pad + i;
                    if (ih < 0 || ih >= g->H) {
                        for (int ow = 0; ow < Wo; ow++) r[ow] = 0.0f;
                        continue;
                    }
                    const float *xr = xc + (size_t)ih * g->W;
                    for (int ow = 0; ow < lo; ow++) r[ow] = 0.0f;
                    if (s == 1)
                        for (int ow = lo; ow < hi; ow++) r[ow] = xr[ow + off];
                    else
                        for (int ow = lo; ow < hi; ow++) r[ow] = xr[ow * s + off];
                    for (int ow = hi; ow < Wo; ow++) r[ow] = 0.0f;
                }
            }
    }
}

/* dx (C, H, W) += the fold of dcol (K, pc) for output rows [oh0, oh1): each
 * entry goes back to the input pixel it was copied from, rows of dcol in
 * order. The entries that read padding are dropped. */
static void col2im(const conv_geom *g, const float *dcol, int oh0, int oh1, float *dx)
{
    int s = g->stride, Wo = g->Wo;
    size_t pc = (size_t)(oh1 - oh0) * Wo;
    for (int c = 0; c < g->C; c++) {
        float *dc = dx + (size_t)c * g->H * g->W;
        for (int i = 0; i < g->kh; i++)
            for (int j = 0; j < g->kw; j++) {
                const float *row = dcol + ((size_t)(c * g->kh + i) * g->kw + j) * pc;
                int lo, hi, off = j - g->pad;
                tap_range(g->W, Wo, s, g->pad, j, &lo, &hi);
                for (int oh = oh0; oh < oh1; oh++) {
                    int ih = oh * s - g->pad + i;
                    if (ih < 0 || ih >= g->H) continue;
                    const float *r = row + (size_t)(oh - oh0) * Wo;
                    float *dr = dc + (size_t)ih * g->W;
                    if (s == 1)
                        for (int ow = lo; ow < hi; ow++) dr[ow + off] += r[ow];
                    else
                        for (int ow = lo; ow < hi; ow++) dr[ow * s + off] += r[ow];
                }
            }
    }
}

/* ---- the products on shifted planes
 *
 * With stride 1 and an output as wide as the input (kw = 2 pad + 1, pad < W,
 * pad < kh) the unfolded image need not be built: its row (c, i, j) is plane c
 * shifted by i rows and d = j - pad columns, except where the shift carries a
 * row's edge into the next row (output column ow with ow + d outside [0, W)),
 * which must read zero. So each image's planes are copied once, with pad
 * zeros before, zero rows above and below and zeros after, and row (c, i, j)
 * of the unfolded image is the copy of plane c read from offset i W + j on,
 * one contiguous run, except the entries across a row edge. The products
 * read those runs in place (gemm.c): the forward and dx products take their
 * k loop one shift d at a time and mask those columns; the weight gradient's
 * k loop (over pixels) skips them. Output columns are rounded up to whole
 * vectors; the extra ones read the zeros after the plane and are dropped.
 *
 * Forward, per image: y_n (O, P) = [b +] W (O, K) X_n, with K ordered by
 * (j, c, i) (the weight reordered to match, once per call). Input gradient:
 * the transposed convolution is the same kind of product,
 * dx_n (C, H W) += Wf D_n, on a copy of dy_n (kh - 1 - pad zero rows above
 * and below) and the kernel turned by 180 degrees, Wf[c, (j, o, i)] =
 * W[o, c, kh-1-i, kw-1-j]. Weight gradient: dW^T (K, O) = X_n dy_n^T, one
 * product per shift, dy_n transposed into (P, O) with O rounded up (zero
 * columns); with fewer than 16 outputs (a last layer to one channel) the
 * rounding would multiply the work, so there each entry is a dot product
 * along the pixels against dy_n with the pixels across an edge zeroed. Images
 * are taken in chunks of CONV_CHUNK in order; a chunk's images add their
 * products into one float buffer, and the chunks' buffers are summed in
 * double in chunk order, so the bits depend only on the shapes. */

#define CONV_CHUNK 8

/* The copy of nc planes src (R rows of W), pt zero rows above: plane c at
 * buf + c ps, the layout described above. */
static void plane_copies(const float *src, int nc, int R, int W, int pad, int pt, size_t ps, float *buf)
{
    size_t head = (size_t)pad + (size_t)pt * W, body = (size_t)R * W;
    for (int c = 0; c < nc; c++) {
        float *p = buf + (size_t)c * ps;
        memset(p, 0, head * sizeof(float));
        memcpy(p + head, src + (size_t)c * body, body * sizeof(float));
        memset(p + head + body, 0, (ps - head - body) * sizeof(float));
    }
}

/* Offsets of the rows (j, c, i), in that order, of the unfolded image in the
 * copy of nc planes of stride ps. */
static void plane_offsets(int nc, int kh, int kw, int W, size_t ps, ptrdiff_t *off)
{
    for (int j = 0; j < kw; j++)
        for (int c = 0; c < nc; c++)
            for (int i = 0; i < kh; i++)
                off[((size_t)j * nc + c) * kh + i] = (ptrdiff_t)((size_t)c * ps) + (ptrdiff_t)i * W + j;
}

/* Images [n0, n1) of the forward pass. wr: the weight in (j, c, i) order;
 * xb: this worker's copy of an image; out: its (O, Np) block when Np > P
 * (else the product goes to y directly). */
static void shifted_forward_images(const conv_geom *g, const float *x, const float *wr, const float *b,
                                   const ptrdiff_t *xoff, float *y, float *xb, float *out, int n0, int n1)
{
    size_t xs = (size_t)g->C * g->H * g->W, ys = (size_t)g->O * g->P;
    int mw = g->kw > 1 ? g->W : 0; /* a 1-wide kernel shifts nothing: no masks */
    for (int n = n0; n < n1; n++) {
        float *yn = y + (size_t)n * ys;
        plane_copies(x + (size_t)n * xs, g->C, g->H, g->W, g->pad, g->pad, g->xps, xb);
        if (g->Np == g->P) {
            if (b) /* bias first, then the sum over k added to it */
                for (int o = 0; o < g->O; o++)
                    for (int p = 0; p < g->P; p++) yn[(size_t)o * g->P + p] = b[o];
            fm__gemm_bshift(g->O, g->P, g->K, wr, g->K, xb, xoff, mw, -g->pad, g->kw, yn, g->P, b != NULL);
        } else {
            fm__gemm_bshift(g->O, g->Np, g->K, wr, g->K, xb, xoff, mw, -g->pad, g->kw, out, g->Np, 0);
            for (int o = 0; o < g->O; o++) {
                const float *r = out + (size_t)o * g->Np;
                float *d = yn + (size_t)o * g->P, bo = b ? b[o] : 0.0f;
                for (int p = 0; p < g->P; p++) d[p] = b ? bo + r[p] : r[p];
            }
        }
    }
}

/* dst (16 x 16, row stride ldd) = the transpose of src (16 x 16, row stride
 * lds), in registers: four rounds that swap the off-diagonal s x s blocks of
 * every 2s x 2s block, s = 8, 4, 2, 1. */
typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));
typedef float v16fu __attribute__((vector_size(64), aligned(4), may_alias));

/* a and b's lanes picked by 16 constant indices, 0-15 from a, 16-31 from b */
#if defined(__clang__) || __GNUC__ >= 12
#define SHUF16(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUF16(a, b, ...) __builtin_shuffle(a, b, (v16i){__VA_ARGS__})
#endif

static void transpose16(const float *src, ptrdiff_t lds, float *dst, ptrdiff_t ldd)
{
    v16f r[16];
    for (int i = 0; i < 16; i++) r[i] = *(const v16fu *)(src + i * lds);
    /* round s: lo[l] = (l & s) ? 16 + l - s : l; hi[l] = (l & s) ? 16 + l : l + s */
#define T_ROUND(S, LO, HI)                                                                                  \
    for (int i = 0; i < 16; i++)                                                                            \
        if (!(i & (S))) {                                                                                   \
            v16f a = r[i], b = r[i + (S)];                                                                  \
            r[i] = SHUF16(a, b, LO);                                                                        \
            r[i + (S)] = SHUF16(a, b, HI);                                                                  \
        }
#define L8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define H8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define L4 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define H4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define L2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define H2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define L1 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define H1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
    T_ROUND(8, L8, H8)
    T_ROUND(4, L4, H4)
    T_ROUND(2, L2, H2)
    T_ROUND(1, L1, H1)
#undef T_ROUND
#undef L8
#undef H8
#undef L4
#undef H4
#undef L2
#undef H2
#undef L1
#undef H1
    for (int i = 0; i < 16; i++) *(v16fu *)(dst + i * ldd) = r[i];
}

/* dyt (P, Op) = dy_n (O rows of P, lds apart) transposed, zero in the columns from O on. */
static void transpose_dy(const float *dyn, int lds, int O, int P, int Op, float *dyt)
{
    for (int o0 = 0; o0 < Op; o0 += 16)
        for (int p0 = 0; p0 < P; p0 += 16) {
            if (o0 + 16 <= O && p0 + 16 <= P) {
                transpose16(dyn + (size_t)o0 * lds + p0, lds, dyt + (size_t)p0 * Op + o0, Op);
                continue;
            }
            int o1 = o0 + 16 < O ? o0 + 16 : O, p1 = p0 + 16 < P ? p0 + 16 : P, oz = o0 + 16 < Op ? o0 + 16 : Op;
            for (int p = p0; p < p1; p++) {
                float *t = dyt + (size_t)p * Op;
                for (int o = o0; o < o1; o++) t[o] = dyn[(size_t)o * lds + p];
                for (int o = o1 > o0 ? o1 : o0; o < oz; o++) t[o] = 0.0f;
            }
        }
}

/* part (K, O) (+)= X_n dy_n^T as K O dot products of length P (few outputs):
 * row (c, i, j) of X_n at xb + xoff[(j C + c) kh + i], against dym[j] (dy_n
 * with the pixels that shift j reads across an edge zeroed). */
static void dots_dw(const conv_geom *g, const float *xb, const ptrdiff_t *xoff, const float *dym, float *part, int acc)
{
    for (int c = 0; c < g->C; c++)
        for (int i = 0; i < g->kh; i++)
            for (int j = 0; j < g->kw; j++) {
                const float *a = xb + xoff[((size_t)j * g->C + c) * g->kh + i];
                int k = (c * g->kh + i) * g->kw + j;
                for (int o = 0; o < g->O; o++) {
                    const float *d = dym + ((size_t)j * g->O + o) * g->P;
                    float s[16] = {0};
                    int p = 0;
                    for (; p + 16 <= g->P; p += 16)
                        for (int l = 0; l < 16; l++) s[l] += a[p + l] * d[p + l];
                    for (; p < g->P; p++) s[p % 16] += a[p] * d[p];
                    for (int w = 8; w >= 1; w /= 2)
                        for (int l = 0; l < w; l++) s[l] += s[l + w];
                    float *e = part + (size_t)k * g->O + o;
                    *e = acc ? *e + s[0] : s[0];
                }
            }
}

/* Per-worker scratch of the backward pass on shifted planes. */
typedef struct {
    float *xb;  /* copy of x_n (weight gradient) */
    float *dyt; /* (P, Op): dy_n transposed, zero columns after O; or, for
                 * the dot products, (kw, O, P): dy_n masked per shift */
    float *db;  /* copy of dy_n (input gradient) */
    float *out; /* (C, Nx) when Nx > H W */
} shift_scratch;

/* What the backward's products share: offsets and pixel tables. */
typedef struct {
    const float *wf;      /* (C, O kh kw) in (j, o, i) order: the kernel turned round */
    const ptrdiff_t *xoff; /* (K): rows (j, c, i) of X_n */
    const ptrdiff_t *aoff; /* (C kh): rows (c, i) of X_n for one shift (add j) */
    const ptrdiff_t *doff; /* (O kh kw): rows (j, o, i) of D_n */
    const ptrdiff_t *kidx[CONV_MAX_SHIFTS]; /* per shift j, the pixels it reads within a row (NULL: all) */
    int klen[CONV_MAX_SHIFTS];
} shift_tables;

/* The sum of v[0 .. n) in double: 16 running sums (index mod 16), combined
 * pairwise. */
static double sum16_d(const float *v, int n)
{
    double s[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) s[l] += v[i + l];
    for (; i < n; i++) s[i % 16] += v[i];
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) s[l] += s[l + w];
    return s[0];
}

/* Backward of the images of chunk q: dx_n += Wf D_n for each (dx_n = when
 * dx_fresh), part (K, Ow) = the sum of X_n dy_n^T over the chunk's images in
 * order, and pdb[n O + o] = the sum of dy_n's channel o. */
static void shifted_backward_chunk(const conv_geom *g, const float *x, const float *dy, const shift_tables *tb,
                                   float *dx, int dx_fresh, float *part, double *pdb, const shift_scratch *sc, int q)
{
    size_t xs = (size_t)g->C * g->H * g->W, ys = (size_t)g->O * g->P, hw = (size_t)g->H * g->W;
    int n0 = q * CONV_CHUNK, n1 = n0 + CONV_CHUNK < g->N ? n0 + CONV_CHUNK : g->N;
    int kd = g->O * g->kh * g->kw, mw = g->kw > 1 ? g->W : 0;
    for (int n = n0; n < n1; n++) {
        const float *dyn = dy + (size_t)n * ys;
        for (int o = 0; pdb && o < g->O; o++) pdb[(size_t)n * g->O + o] = sum16_d(dyn + (size_t)o * g->P, g->P);
        if (part) {
            plane_copies(x + (size_t)n * xs, g->C, g->H, g->W, g->pad, g->pad, g->xps, sc->xb);
            if (g->Ow < g->Op) {
                for (int j = 0; j < g->kw; j++) {
                    int d = j - g->pad;
                    float *m = sc->dyt + (size_t)j * g->O * g->P;
                    memcpy(m, dyn, (size_t)g->O * g->P * sizeof(float));
                    if (d != 0) /* the columns shift d reads across a row edge */
                        for (size_t r = 0; r < (size_t)g->O * g->Ho; r++)
                            for (int ow = d < 0 ? 0 : g->W - d; ow < (d < 0 ? -d : g->W); ow++) m[r * g->W + ow] = 0.0f;
                }
                dots_dw(g, sc->xb, tb->xoff, sc->dyt, part, n > n0);
            } else {
                transpose_dy(dyn, g->P, g->O, g->P, g->Op, sc->dyt);
                /* one product per shift j: rows (c, i, j) of dW^T, K kw apart */
                for (int j = 0; j < g->kw; j++)
                    fm__gemm_ashift(g->C * g->kh, g->Op, tb->klen[j], sc->xb + j, tb->aoff, tb->kidx[j], sc->dyt, g->Op,
                                    part + (size_t)j * g->Op, g->kw * g->Op, n > n0);
            }
        }
        if (dx) {
            float *dxn = dx + (size_t)n * xs;
            plane_copies(dyn, g->O, g->Ho, g->W, g->pad, g->kh - 1 - g->pad, g->dps, sc->db);
            if (g->Nx == (int)hw) {
                fm__gemm_bshift(g->C, g->Nx, kd, tb->wf, kd, sc->db, tb->doff, mw, -g->pad, g->kw, dxn, g->Nx,
                                !dx_fresh);
            } else {
                fm__gemm_bshift(g->C, g->Nx, kd, tb->wf, kd, sc->db, tb->doff, mw, -g->pad, g->kw, sc->out, g->Nx, 0);
                for (int c = 0; c < g->C; c++) {
                    const float *r = sc->out + (size_t)c * g->Nx;
                    float *d = dxn + (size_t)c * hw;
                    if (dx_fresh)
                        memcpy(d, r, hw * sizeof(float));
                    else
                        for (size_t p = 0; p < hw; p++) d[p] += r[p];
                }
            }
        }
    }
}

/* ---- the unfolded images (any other stride, padding or kernel) */

/* Images [n0, n1) of the forward pass; col is this worker's (K, rows Wo) scratch. */
static void conv_forward_images(const conv_geom *g, const float *x, const float *w, const float *b, float *y,
                                float *col, int n0, int n1)
{
    size_t xs = (size_t)g->C * g->H * g->W, ys = (size_t)g->O * g->P;
    for (int n = n0; n < n1; n++) {
        const float *xn = x + (size_t)n * xs;
        for (int oh0 = 0; oh0 < g->Ho; oh0 += g->rows) {
            int oh1 = oh0 + g->rows < g->Ho ? oh0 + g->rows : g->Ho, pc = (oh1 - oh0) * g->Wo;
            float *yc = y + (size_t)n * ys + (size_t)oh0 * g->Wo;
            im2col(g, xn, oh0, oh1, col);
            if (b) /* bias first, then the sum over k added to it */
                for (int o = 0; o < g->O; o++)
                    for (int p = 0; p < pc; p++) yc[(size_t)o * g->P + p] = b[o];
            fm__gemm(g->O, pc, g->K, w, g->K, 1, col, pc, yc, g->P, NULL, b != NULL);
        }
    }
}

/* Per-worker scratch of the backward pass. */
typedef struct {
    float *col;  /* (K, rows Wo), a slice of the unfolded image */
    float *dcol; /* (K, rows Wo), its gradient */
    float *dyt;  /* (rows Wo, O), the slice of dy_n transposed */
} conv_scratch;

/* Backward of image n: dx_n += fold(W^T dy_n); part (K, O) = col_n dy_n^T,
 * summed over the slices in order. */
static void conv_backward_image(const conv_geom *g, const float *x, const float *w, const float *dy, float *dx,
                                float *part, const conv_scratch *sc, int n)
{
    size_t xs = (size_t)g->C * g->H * g->W, ys = (size_t)g->O * g->P;
    const float *xn = x + (size_t)n * xs;
    for (int oh0 = 0; oh0 < g->Ho; oh0 += g->rows) {
        int oh1 = oh0 + g->rows < g->Ho ? oh0 + g->rows : g->Ho, pc = (oh1 - oh0) * g->Wo;
        const float *dyc = dy + (size_t)n * ys + (size_t)oh0 * g->Wo;
        if (part) {
            im2col(g, xn, oh0, oh1, sc->col);
            transpose_dy(dyc, g->P, g->O, pc, g->O, sc->dyt);
            fm__gemm(g->K, g->O, pc, sc->col, pc, 1, sc->dyt, g->O, part, g->O, NULL, oh0 > 0);
        }
        if (dx) {
            /* W^T: op(A)(k, o) = W[o K + k] */
            fm__gemm(g->K, pc, g->O, w, 1, g->K, dyc, g->P, sc->dcol, pc, NULL, 0);
            col2im(g, sc->dcol, oh0, oh1, dx + (size_t)n * xs);
        }
    }
}

/* Worker count for a loop over `items` images doing `work` multiply-adds
 * (each worker keeps scratch, so at most FM__MAX_WORKERS). */
static int image_threads(double work, int items)
{
    int nt = fm__threads_over(work, items);
    return nt < FM__MAX_WORKERS ? nt : FM__MAX_WORKERS;
}

/* Floats of weight-gradient buffers (one per image, or per chunk of images on
 * shifted planes) kept at once; they are taken in groups of this size, which
 * depends only on the shapes. */
#define CONV_PART_FLOATS ((size_t)1 << 22)

/* Items (chunks or images) per group whose partial weight gradients of per
 * floats each stay within CONV_PART_FLOATS: at least 1, at most items. */
static int part_group(size_t per, int items)
{
    size_t fit = CONV_PART_FLOATS / per;
    return fit < 1 ? 1 : fit < (size_t)items ? (int)fit : items;
}

/* acc (n doubles) += the m partial gradients of part, in order. */
static void add_parts(double *acc, const float *part, int m, size_t n)
{
    for (int i = 0; i < m; i++) {
        const float *pi = part + (size_t)i * n;
        for (size_t k = 0; k < n; k++) acc[k] += pi[k];
    }
}

/* ---- the kernels: scratch, forward, backward */

/* The forward's scratch: on shifted planes the row offsets, the reordered
 * weight and per worker a copy of an image (and an (O, Np) block when Np > P);
 * else per worker a band of the unfolded image. */
typedef struct {
    int nt;                                    /* workers */
    ptrdiff_t *xoff;                           /* (K) */
    float *wr;                                 /* (O, K) */
    float *xb[FM__MAX_WORKERS], *out[FM__MAX_WORKERS], *col[FM__MAX_WORKERS];
} conv_fwd_scratch;

static void conv_fwd_layout(fm__carve *c, const conv_geom *g, conv_fwd_scratch *f)
{
    memset(f, 0, sizeof *f);
    f->nt = image_threads((double)g->N * g->O * g->P * g->K, g->N);
    if (g->shifted) {
        f->xoff = fm__carve_take(c, (size_t)g->K * sizeof(ptrdiff_t));
        f->wr = fm__carve_take(c, (size_t)g->O * g->K * sizeof(float));
        for (int t = 0; t < f->nt; t++) {
            f->xb[t] = fm__carve_take(c, (size_t)g->C * g->xps * sizeof(float));
            if (g->Np > g->P) f->out[t] = fm__carve_take(c, (size_t)g->O * g->Np * sizeof(float));
        }
    } else {
        for (int t = 0; t < f->nt; t++) f->col[t] = fm__carve_take(c, (size_t)g->K * g->rows * g->Wo * sizeof(float));
    }
}

size_t fm__conv2d_forward_work(int N, int C, int H, int W, int O, int kh, int kw, int stride, int pad)
{
    conv_geom g = geom_of(N, C, H, W, O, kh, kw, stride, pad);
    fm__carve c = {NULL, 0};
    conv_fwd_scratch f;
    conv_fwd_layout(&c, &g, &f);
    return c.used;
}

/* y_n = [b +] W col(x_n) */
void fm__conv2d_forward(float *y, const float *x, const float *w, const float *b, int N, int C, int H, int W, int O,
                        int kh, int kw, int stride, int pad, void *work)
{
    conv_geom g = geom_of(N, C, H, W, O, kh, kw, stride, pad);
    fm__carve c = {work, 0};
    conv_fwd_scratch f;
    conv_fwd_layout(&c, &g, &f);
    int nt = f.nt;
    if (g.shifted) {
        /* the work as a convolution counts it (the unfolded path's products count their own) */
        fm__prof_flops(2.0 * g.N * g.O * g.P * g.K);
        plane_offsets(g.C, g.kh, g.kw, g.W, g.xps, f.xoff);
        /* the weight's columns in (j, c, i) order */
        for (int o = 0; o < g.O; o++)
            for (int j = 0; j < g.kw; j++)
                for (int ch = 0; ch < g.C; ch++)
                    for (int i = 0; i < g.kh; i++)
                        f.wr[(size_t)o * g.K + ((size_t)j * g.C + ch) * g.kh + i] =
                            w[(((size_t)o * g.C + ch) * g.kh + i) * g.kw + j];
        FM__PARALLEL_FOR(nt)
        for (int t = 0; t < nt; t++) {
            int n0 = fm__split(g.N, t, nt), n1 = fm__split(g.N, t + 1, nt);
            shifted_forward_images(&g, x, f.wr, b, f.xoff, y, f.xb[t], f.out[t], n0, n1);
        }
    } else {
        FM__PARALLEL_FOR(nt)
        for (int t = 0; t < nt; t++) {
            int n0 = fm__split(g.N, t, nt), n1 = fm__split(g.N, t + 1, nt);
            conv_forward_images(&g, x, w, b, y, f.col[t], n0, n1);
        }
    }
}

/* The backward's scratch: the images' channel sums of dy pdb (N, O) (db
 * wanted), the weight gradient's double sums acc (K, Ow) and the groups'
 * float buffers part (dW wanted); on shifted planes the tables and per worker
 * shift_scratch, else per worker conv_scratch. Workers and the group size
 * (chunks or images whose buffers are kept at once) go with them. */
typedef struct {
    int nt, group;
    double *pdb, *acc;
    float *part;
    ptrdiff_t *xoff, *kidx, *doff; /* shifted planes */
    float *wf;
    shift_scratch ss[FM__MAX_WORKERS];
    conv_scratch cs[FM__MAX_WORKERS]; /* unfolded images */
} conv_bwd_scratch;

static void conv_bwd_layout(fm__carve *c, const conv_geom *g, int want_dx, int want_dw, int want_db,
                            conv_bwd_scratch *bb)
{
    memset(bb, 0, sizeof *bb);
    bb->pdb = want_db ? fm__carve_take(c, (size_t)g->N * g->O * sizeof(double)) : NULL;
    if (!want_dx && !want_dw) return;
    size_t ko = (size_t)g->K * g->Ow;
    bb->acc = want_dw ? fm__carve_take(c, ko * sizeof(double)) : NULL;
    double work = (double)g->N * g->O * g->P * g->K * (want_dx + want_dw);
    if (g->shifted) {
        int kd = g->O * g->kh * g->kw, nq = (g->N + CONV_CHUNK - 1) / CONV_CHUNK, dots = g->Ow < g->Op;
        bb->group = want_dw ? part_group(ko, nq) : nq;
        bb->nt = image_threads(work, bb->group);
        bb->xoff = want_dw ? fm__carve_take(c, (size_t)g->K * sizeof(ptrdiff_t)) : NULL;
        bb->kidx = want_dw && g->kw > 1 ? fm__carve_take(c, (size_t)g->kw * g->P * sizeof(ptrdiff_t)) : NULL;
        bb->doff = want_dx ? fm__carve_take(c, (size_t)kd * sizeof(ptrdiff_t)) : NULL;
        bb->wf = want_dx ? fm__carve_take(c, (size_t)g->C * kd * sizeof(float)) : NULL;
        bb->part = want_dw ? fm__carve_take(c, (size_t)bb->group * ko * sizeof(float)) : NULL;
        for (int t = 0; t < bb->nt; t++) {
            shift_scratch *sc = &bb->ss[t];
            sc->xb = want_dw ? fm__carve_take(c, (size_t)g->C * g->xps * sizeof(float)) : NULL;
            sc->dyt = !want_dw ? NULL
                      : fm__carve_take(c, (dots ? (size_t)g->kw * g->O : (size_t)g->Op) * g->P * sizeof(float));
            sc->db = want_dx ? fm__carve_take(c, (size_t)g->O * g->dps * sizeof(float)) : NULL;
            sc->out = want_dx && g->Nx > g->H * g->W ? fm__carve_take(c, (size_t)g->C * g->Nx * sizeof(float)) : NULL;
        }
    } else {
        size_t slice = (size_t)g->K * g->rows * g->Wo;
        bb->group = want_dw ? part_group(ko, g->N) : g->N;
        bb->nt = image_threads(work, bb->group);
        bb->part = want_dw ? fm__carve_take(c, (size_t)bb->group * ko * sizeof(float)) : NULL;
        for (int t = 0; t < bb->nt; t++) {
            conv_scratch *sc = &bb->cs[t];
            sc->col = want_dw ? fm__carve_take(c, slice * sizeof(float)) : NULL;
            sc->dcol = want_dx ? fm__carve_take(c, slice * sizeof(float)) : NULL;
            sc->dyt = want_dw ? fm__carve_take(c, (size_t)g->rows * g->Wo * g->O * sizeof(float)) : NULL;
        }
    }
}

size_t fm__conv2d_backward_work(int N, int C, int H, int W, int O, int kh, int kw, int stride, int pad, int want_dx,
                                int want_dw, int want_db)
{
    conv_geom g = geom_of(N, C, H, W, O, kh, kw, stride, pad);
    fm__carve c = {NULL, 0};
    conv_bwd_scratch bb;
    conv_bwd_layout(&c, &g, want_dx != 0, want_dw != 0, want_db != 0, &bb);
    return c.used;
}

/* The backward on shifted planes: dx, dW summed over the chunks (in double,
 * into bb->acc (K, Ow), when wanted), and the images' sums of dy per channel
 * into bb->pdb (N, O). */
static void shifted_backward(const conv_geom *g, const float *x, const float *w, const float *dy, float *dx,
                             int dx_fresh, conv_bwd_scratch *bb)
{
    size_t kop = (size_t)g->K * g->Ow;
    int kd = g->O * g->kh * g->kw, nq = (g->N + CONV_CHUNK - 1) / CONV_CHUNK, group = bb->group, nt = bb->nt;
    double *acc = bb->acc, *pdb = bb->pdb;
    float *part = bb->part;
    shift_tables tb;
    memset(&tb, 0, sizeof tb);
    if (acc) {
        plane_offsets(g->C, g->kh, g->kw, g->W, g->xps, bb->xoff);
        tb.xoff = bb->xoff;
        tb.aoff = bb->xoff; /* its shift j = 0 block: rows (c, i) at c xps + i W */
        /* shift d reads within the row at output columns [max(0, -d), min(W, W - d)) */
        for (int j = 0; j < g->kw; j++) {
            int d = j - g->pad, lo = d < 0 ? -d : 0, hi = d > 0 ? g->W - d : g->W, len = 0;
            if (d == 0) {
                tb.kidx[j] = NULL;
                tb.klen[j] = g->P;
                continue;
            }
            ptrdiff_t *t = bb->kidx + (size_t)j * g->P;
            for (int oh = 0; oh < g->Ho; oh++)
                for (int ow = lo; ow < hi; ow++) t[len++] = (ptrdiff_t)oh * g->W + ow;
            tb.kidx[j] = t;
            tb.klen[j] = len;
        }
    }
    if (dx) {
        plane_offsets(g->O, g->kh, g->kw, g->W, g->dps, bb->doff);
        /* Wf[c, (j, o, i)] = W[o, c, kh-1-i, kw-1-j] */
        for (int c = 0; c < g->C; c++)
            for (int j = 0; j < g->kw; j++)
                for (int o = 0; o < g->O; o++)
                    for (int i = 0; i < g->kh; i++)
                        bb->wf[(size_t)c * kd + ((size_t)j * g->O + o) * g->kh + i] =
                            w[(((size_t)o * g->C + c) * g->kh + g->kh - 1 - i) * g->kw + g->kw - 1 - j];
        tb.wf = bb->wf;
        tb.doff = bb->doff;
    }
    for (int q0 = 0; q0 < nq; q0 += group) {
        int m = nq - q0 < group ? nq - q0 : group;
        int ntm = nt < m ? nt : m;
        FM__PARALLEL_FOR(ntm)
        for (int t = 0; t < ntm; t++) {
            int i0 = fm__split(m, t, ntm), i1 = fm__split(m, t + 1, ntm);
            for (int i = i0; i < i1; i++)
                shifted_backward_chunk(g, x, dy, &tb, dx, dx_fresh, part ? part + (size_t)i * kop : NULL, pdb,
                                       &bb->ss[t], q0 + i);
        }
        if (acc) add_parts(acc, part, m, kop); /* the chunks' weight gradients in chunk order */
    }
}

/* db (O) += the images' channel sums pdb (N, O), in image order (nothing when
 * db is NULL). */
static void bias_grad(const conv_geom *g, const double *pdb, float *db)
{
    for (int o = 0; db && o < g->O; o++) {
        double s = 0.0;
        for (int n = 0; n < g->N; n++) s += pdb[(size_t)n * g->O + o];
        db[o] += (float)s;
    }
}

/* dx (=)+= W^T dy folded back, dw += col(x) dy^T, db += dy's sums (dW and db over the images in double) */
void fm__conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int N,
                         int C, int H, int W, int O, int kh, int kw, int stride, int pad, int dx_overwrite, void *work)
{
    conv_geom g = geom_of(N, C, H, W, O, kh, kw, stride, pad);
    fm__carve c = {work, 0};
    conv_bwd_scratch bb;
    conv_bwd_layout(&c, &g, dx != NULL, dw != NULL, db != NULL, &bb);
    /* The bias gradient: each image's channel sums (pdb (N, O)), added in
     * image order. On shifted planes they come with the image's other
     * gradients (dy is read once); else here. */
    double *pdb = bb.pdb;
    if (db && !(g.shifted && (dx || dw)))
        for (size_t k = 0; k < (size_t)g.N * g.O; k++) pdb[k] = sum16_d(dy + k * g.P, g.P);
    if (!dx && !dw) {
        bias_grad(&g, pdb, db);
        return;
    }

    int ldo = g.Ow;
    size_t ko = (size_t)g.K * ldo;
    double *acc = bb.acc;
    if (acc) memset(acc, 0, ko * sizeof(double));
    if (g.shifted) {
        fm__prof_flops(2.0 * g.N * g.O * g.P * g.K * ((dx != NULL) + (dw != NULL)));
        shifted_backward(&g, x, w, dy, dx, dx_overwrite, &bb);
    } else {
        if (dx_overwrite) memset(dx, 0, (size_t)g.N * g.C * g.H * g.W * sizeof(float)); /* col2im adds */
        int group = bb.group, nt = bb.nt;
        float *part = bb.part;
        for (int n0 = 0; n0 < g.N; n0 += group) {
            int m = g.N - n0 < group ? g.N - n0 : group;
            int ntm = nt < m ? nt : m;
            FM__PARALLEL_FOR(ntm)
            for (int t = 0; t < ntm; t++) {
                int i0 = fm__split(m, t, ntm), i1 = fm__split(m, t + 1, ntm);
                for (int i = i0; i < i1; i++)
                    conv_backward_image(&g, x, w, dy, dx, part ? part + (size_t)i * ko : NULL, &bb.cs[t], n0 + i);
            }
            if (dw) add_parts(acc, part, m, ko); /* the images' weight gradients in image order */
        }
    }
    bias_grad(&g, pdb, db);
    if (dw)
        for (int o = 0; o < g.O; o++)
            for (int k = 0; k < g.K; k++) dw[(size_t)o * g.K + k] += (float)acc[(size_t)k * ldo + o];
}

static void conv2d_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0], *w = y->src[1], *b = y->nsrc > 2 ? y->src[2] : NULL;
    int N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int O = w->shape[0], kh = w->shape[2], kw = w->shape[3], stride = y->arg.i[0], pad = y->arg.i[1];
    int dx_fresh = 0;
    float *dx = fm__wants_grad(x) ? fm__grad_w(tp, x, &dx_fresh) : NULL;
    float *dw = fm__wants_grad(w) ? fm__grad(tp, w) : NULL;
    float *db = fm__wants_grad(b) ? fm__grad(tp, b) : NULL;
    if (tp->status != FM_OK) return;
    /* the scratch is given back at the end */
    fm__arena_mark mark = fm__arena_get_mark(&tp->arena);
    size_t bytes = fm__conv2d_backward_work(N, C, H, W, O, kh, kw, stride, pad, dx != NULL, dw != NULL, db != NULL);
    void *work = bytes ? fm__tape_alloc(tp, bytes) : NULL;
    if (tp->status != FM_OK) return;
    fm__conv2d_backward(dx, dw, db, y->grad, x->data, w->data, N, C, H, W, O, kh, kw, stride, pad, dx_fresh, work);
    fm__arena_rewind(&tp->arena, &mark);
}

static const fm_op OP_CONV2D = {"conv2d", conv2d_backward};

fm_tensor *fm_conv2d(fm_tape *tp, fm_tensor *x, fm_tensor *w, fm_tensor *b, int stride, int pad)
{
    fm_tensor *in3[3] = {x, w, b};
    if (!fm__op_inputs_ok(tp, "conv2d", in3, 2)) return NULL;
    char s1[96], s2[96], s3[96];
    if (x->ndim != 4)
        return fm__op_fail(tp, FM_ERR_SHAPE, "conv2d: input %s is not [N, C, H, W]", fm_shape_str(x, s1, sizeof s1));
    if (w->ndim != 4)
        return fm__op_fail(tp, FM_ERR_SHAPE, "conv2d: weight %s is not [O, C, kh, kw]",
                           fm_shape_str(w, s2, sizeof s2));
    if (x->shape[1] != w->shape[1])
        return fm__op_fail(tp, FM_ERR_SHAPE, "conv2d: input %s has %d channels but weight %s expects %d",
                           fm_shape_str(x, s1, sizeof s1), x->shape[1], fm_shape_str(w, s2, sizeof s2),
                           w->shape[1]);
    if (stride < 1)
        return fm__op_fail(tp, FM_ERR_ARG, "conv2d: stride %d must be at least 1 (input %s, weight %s)", stride,
                           fm_shape_str(x, s1, sizeof s1), fm_shape_str(w, s2, sizeof s2));
    if (pad < 0)
        return fm__op_fail(tp, FM_ERR_ARG, "conv2d: padding %d must be at least 0 (input %s, weight %s)", pad,
                           fm_shape_str(x, s1, sizeof s1), fm_shape_str(w, s2, sizeof s2));
    long long ph = (long long)x->shape[2] + 2LL * pad, pw = (long long)x->shape[3] + 2LL * pad;
    if (w->shape[2] > ph || w->shape[3] > pw)
        return fm__op_fail(tp, FM_ERR_SHAPE,
                           "conv2d: kernel %dx%d of weight %s is larger than input %s padded by %d (%lldx%lld)",
                           w->shape[2], w->shape[3], fm_shape_str(w, s2, sizeof s2), fm_shape_str(x, s1, sizeof s1),
                           pad, ph, pw);
    /* the unfolded image (K, P) must be indexable by int rows and columns */
    long long K = (long long)(w->size / (size_t)w->shape[0]);
    long long P = ((ph - w->shape[2]) / stride + 1) * ((pw - w->shape[3]) / stride + 1);
    if (ph > INT_MAX || pw > INT_MAX || K > INT_MAX || P > INT_MAX || (double)K * (double)P > 0x1p40)
        return fm__op_fail(tp, FM_ERR_SHAPE, "conv2d: input %s with weight %s (padding %d) is too large to unfold",
                           fm_shape_str(x, s1, sizeof s1), fm_shape_str(w, s2, sizeof s2), pad);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return fm__op_fail(tp, FM_ERR_SHAPE, "conv2d: bias %s does not fit weight %s (expected [%d])",
                           fm_shape_str(b, s3, sizeof s3), fm_shape_str(w, s2, sizeof s2), w->shape[0]);
    int N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int O = w->shape[0], kh = w->shape[2], kw = w->shape[3];
    conv_geom g = geom_of(N, C, H, W, O, kh, kw, stride, pad);
    int shape[4] = {g.N, g.O, g.Ho, g.Wo};
    fm_tensor *y = fm__node(tp, &OP_CONV2D, 4, shape, in3, b ? 3 : 2);
    if (!y) return NULL;
    y->arg.i[0] = stride;
    y->arg.i[1] = pad;
    /* the scratch is given back at the end */
    fm__arena_mark mark = fm__arena_get_mark(&tp->arena);
    size_t bytes = fm__conv2d_forward_work(N, C, H, W, O, kh, kw, stride, pad);
    void *work = bytes ? fm__tape_alloc(tp, bytes) : NULL;
    if (tp->status != FM_OK) return NULL;
    fm__conv2d_forward(y->data, x->data, w->data, b ? b->data : NULL, N, C, H, W, O, kh, kw, stride, pad, work);
    fm__arena_rewind(&tp->arena, &mark);
    return y;
}

/* ------------------------------------------------------------------ upsampling and pooling */

/* x is a live [N, C, H, W] tensor and the op's size parameter (what = v) is
 * at least 1; else the op fails with a message naming both. */
static int image_input_ok(fm_tape *tp, const char *op, fm_tensor *x, const char *what, int v)
{
    if (!fm__op_inputs_ok(tp, op, &x, 1)) return 0;
    char s[96];
    if (x->ndim != 4) {
        fm__op_fail(tp, FM_ERR_SHAPE, "%s: input %s is not [N, C, H, W]", op, fm_shape_str(x, s, sizeof s));
        return 0;
    }
    if (v < 1) {
        fm__op_fail(tp, FM_ERR_ARG, "%s: %s %d must be at least 1 (input %s)", op, what, v, fm_shape_str(x, s, sizeof s));
        return 0;
    }
    return 1;
}

/* y[n, c, h f + i, w f + j] = x[n, c, h, w] for i, j < f */
void fm__upsample_nearest2d_forward(float *y, const float *x, int N, int C, int H, int W, int factor)
{
    size_t planes = (size_t)N * C, Wy = (size_t)W * factor, Hy = (size_t)H * factor;
    for (size_t q = 0; q < planes; q++) {
        const float *xp = x + q * (size_t)H * W;
        float *yp = y + q * Hy * Wy;
        for (int h = 0; h < H; h++) {
            float *row = yp + (size_t)h * factor * Wy;
            const float *xr = xp + (size_t)h * W;
            if (factor == 2)
                for (int w = 0; w < W; w++) row[2 * w] = row[2 * w + 1] = xr[w];
            else
                for (int w = 0; w < W; w++)
                    for (int j = 0; j < factor; j++) row[(size_t)w * factor + j] = xr[w];
            for (int i = 1; i < factor; i++) memcpy(row + (size_t)i * Wy, row, Wy * sizeof(float));
        }
    }
}

/* dx[n, c, h, w] (=)+= the sum of dy over the pixel's f x f block, in float, row by row */
void fm__upsample_nearest2d_backward(float *dx, const float *dy, int N, int C, int H, int W, int factor, int overwrite)
{
    int f = factor, Wy = W * factor;
    size_t planes = (size_t)N * C;
    for (size_t q = 0; q < planes; q++) {
        const float *g = dy + q * (size_t)(H * factor) * Wy;
        float *d = dx + q * (size_t)H * W;
        for (int h = 0; h < H; h++) {
            float *dr = d + (size_t)h * W;
            if (f == 2) { /* the same sums in the same order, in a loop that vectorises */
                const float *r0 = g + (size_t)(2 * h) * Wy, *r1 = r0 + Wy;
                for (int w = 0; w < W; w++) {
                    float s = ((r0[2 * w] + r0[2 * w + 1]) + r1[2 * w]) + r1[2 * w + 1];
                    dr[w] = overwrite ? s : dr[w] + s;
                }
                continue;
            }
            for (int w = 0; w < W; w++) {
                float s = 0.0f;
                for (int i = 0; i < f; i++)
                    for (int j = 0; j < f; j++) s += g[(size_t)(h * f + i) * Wy + (size_t)w * f + j];
                dr[w] = overwrite ? s : dr[w] + s;
            }
        }
    }
}

static void upsample_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0];
    if (!fm__wants_grad(x)) return;
    int fresh;
    float *dx = fm__grad_w(tp, x, &fresh);
    if (!dx) return;
    fm__upsample_nearest2d_backward(dx, y->grad, x->shape[0], x->shape[1], x->shape[2], x->shape[3], y->arg.i[0],
                                    fresh);
}

static const fm_op OP_UPSAMPLE = {"upsample_nearest2d", upsample_backward};

fm_tensor *fm_upsample_nearest2d(fm_tape *tp, fm_tensor *x, int factor)
{
    if (!image_input_ok(tp, "upsample_nearest2d", x, "factor", factor)) return NULL;
    char s[96];
    int H = x->shape[2], W = x->shape[3];
    if ((long long)H * factor > INT_MAX || (long long)W * factor > INT_MAX)
        return fm__op_fail(tp, FM_ERR_SHAPE, "upsample_nearest2d: input %s times %d is too large",
                           fm_shape_str(x, s, sizeof s), factor);
    int shape[4] = {x->shape[0], x->shape[1], H * factor, W * factor};
    fm_tensor *y = fm__node(tp, &OP_UPSAMPLE, 4, shape, &x, 1);
    if (!y) return NULL;
    y->arg.i[0] = factor;
    fm__upsample_nearest2d_forward(y->data, x->data, x->shape[0], x->shape[1], H, W, factor);
    return y;
}

/* y[n, c, h, w] = the mean of x over the k x k block (h k .. h k + k - 1, w k .. w k + k - 1), in double */
void fm__avg_pool2d_forward(float *y, const float *x, int N, int C, int H, int W, int k)
{
    double kk = (double)k * k;
    size_t planes = (size_t)N * C;
    int Ho = H / k, Wo = W / k;
    for (size_t q = 0; q < planes; q++) {
        const float *xp = x + q * (size_t)H * W;
        float *yp = y + q * (size_t)Ho * Wo;
        if (k == 2) { /* the same sums in the same order, in a loop that vectorises */
            for (int h = 0; h < Ho; h++) {
                const float *r0 = xp + (size_t)(2 * h) * W, *r1 = r0 + W;
                float *yr = yp + (size_t)h * Wo;
                for (int w = 0; w < Wo; w++)
                    yr[w] = (float)(((((double)r0[2 * w] + r0[2 * w + 1]) + r1[2 * w]) + r1[2 * w + 1]) / 4.0);
            }
            continue;
        }
        for (int h = 0; h < Ho; h++)
            for (int w = 0; w < Wo; w++) {
                double sum = 0.0;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) sum += xp[(size_t)(h * k + i) * W + (size_t)w * k + j];
                yp[(size_t)h * Wo + w] = (float)(sum / kk);
            }
    }
}

/* dx over each k x k block (=)+= dy[n, c, h, w] inv, inv = the float nearest 1 / k^2 */
void fm__avg_pool2d_backward(float *dx, const float *dy, int N, int C, int H, int W, int k, int overwrite)
{
    int Ho = H / k, Wo = W / k;
    float inv = (float)(1.0 / ((double)k * k));
    size_t planes = (size_t)N * C;
    for (size_t q = 0; q < planes; q++) {
        const float *g = dy + q * (size_t)Ho * Wo;
        float *d = dx + q * (size_t)H * W;
        if (k == 2) { /* the same values in loops that vectorise */
            for (int h = 0; h < Ho; h++) {
                float *r0 = d + (size_t)(2 * h) * W, *r1 = r0 + W;
                const float *gr = g + (size_t)h * Wo;
                if (overwrite)
                    for (int w = 0; w < Wo; w++) r0[2 * w] = r0[2 * w + 1] = r1[2 * w] = r1[2 * w + 1] = gr[w] * inv;
                else
                    for (int w = 0; w < Wo; w++) {
                        float v = gr[w] * inv;
                        r0[2 * w] += v;
                        r0[2 * w + 1] += v;
                        r1[2 * w] += v;
                        r1[2 * w + 1] += v;
                    }
            }
            continue;
        }
        for (int h = 0; h < Ho; h++)
            for (int w = 0; w < Wo; w++) {
                float v = g[(size_t)h * Wo + w] * inv;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        float *e = d + (size_t)(h * k + i) * W + (size_t)w * k + j; /* one block each */
                        *e = overwrite ? v : *e + v;
                    }
            }
    }
}

static void avg_pool_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0];
    if (!fm__wants_grad(x)) return;
    int fresh;
    float *dx = fm__grad_w(tp, x, &fresh);
    if (!dx) return;
    fm__avg_pool2d_backward(dx, y->grad, x->shape[0], x->shape[1], x->shape[2], x->shape[3], y->arg.i[0], fresh);
}

static const fm_op OP_AVG_POOL = {"avg_pool2d", avg_pool_backward};

fm_tensor *fm_avg_pool2d(fm_tape *tp, fm_tensor *x, int k)
{
    if (!image_input_ok(tp, "avg_pool2d", x, "kernel", k)) return NULL;
    char s[96];
    int H = x->shape[2], W = x->shape[3];
    if (H % k || W % k)
        return fm__op_fail(tp, FM_ERR_SHAPE, "avg_pool2d: input %s does not divide into %dx%d blocks",
                           fm_shape_str(x, s, sizeof s), k, k);
    int shape[4] = {x->shape[0], x->shape[1], H / k, W / k};
    fm_tensor *y = fm__node(tp, &OP_AVG_POOL, 4, shape, &x, 1);
    if (!y) return NULL;
    y->arg.i[0] = k;
    fm__avg_pool2d_forward(y->data, x->data, x->shape[0], x->shape[1], H, W, k);
    return y;
}
