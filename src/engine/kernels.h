/* kernels.h - the ops' arithmetic as free functions over pointers and sizes.
 *
 * Each op of src/engine/ops_*.c is two layers: its kernels here, which do the
 * arithmetic and nothing else (no tape, no tensors, no allocation, no error
 * handling), and the tape op, which validates its inputs, infers the output's
 * shape, allocates on the tape, saves what the backward needs and calls the
 * kernels. The kernels can so be called without a tape: by tests, kernel
 * benchmarks and other backends.
 *
 * Conventions (llm.c's): outputs first, then inputs, then sizes and options.
 * A backward kernel ACCUMULATES (+=) into its gradient buffers, except where
 * it takes an `overwrite` flag (the tape's fresh gradient buffers are
 * uninitialised: 1 means write, 0 means add). A gradient pointer that is NULL
 * is not wanted and not computed. Shapes are in the comments beside the
 * pointers, row-major. Kernels that need scratch memory take it as an argument
 * (`work`, 64-byte aligned) whose size a companion fm__*_work function gives
 * for the same sizes and thread count. The order of every sum is part of a
 * kernel: the tape op's results are the kernel's bits, on any thread count.
 *
 * Kernels that several ops share stay in internal.h: fm__gemm (and its
 * shifted-plane forms) and the activations, fm__act_forward and
 * fm__act_backward.
 */
#ifndef FM_ENGINE_KERNELS_H
#define FM_ENGINE_KERNELS_H

#include "internal.h"

#include <stddef.h>

/* Scratch carved from one buffer (a kernel's `work`), each piece 64-byte
 * aligned. With base NULL nothing is carved (the pieces are NULL) but `used`
 * still counts: that is how the fm__*_work functions measure. */
typedef struct {
    unsigned char *base;
    size_t used;
} fm__carve;

static inline void *fm__carve_take(fm__carve *c, size_t bytes)
{
    void *p = c->base ? c->base + c->used : NULL;
    c->used += (bytes + 63) & ~(size_t)63;
    return p;
}

/* ------------------------------------------------------------------ linear (ops_linear.c) */

/* y = x W^T + b */
void fm__linear_forward(float *y,       /* (B, out) */
                        float *wt,      /* (in, out): receives W^T, the layout the product reads */
                        const float *x, /* (B, in) */
                        const float *w, /* (out, in) */
                        const float *b, /* (out) or NULL */
                        int B, int in, int out);
/* dx += dy W, dw += dy^T x, db += the column sums of dy (in double) */
void fm__linear_backward(float *dx,       /* (B, in) or NULL */
                         float *dw,       /* (out, in) or NULL */
                         float *db,       /* (out) or NULL */
                         const float *dy, /* (B, out) */
                         const float *x,  /* (B, in) */
                         const float *w,  /* (out, in) */
                         int B, int in, int out);

/* ------------------------------------------------------------------ elementwise arithmetic (ops_arith.c) */

/* The operation of fm__arith_* and fm__bcast_*: a + b, a - b, a * b. */
enum { FM__ADD, FM__SUB, FM__MUL };

/* y = a (op) b, a and b of one shape */
void fm__arith_forward(float *y,       /* (n) */
                       const float *a, /* (n) */
                       const float *b, /* (n) */
                       size_t n, int op);
/* da (=)+= dy [* b], then db (=)+= +-dy [* a]: a and b may be one tensor (da == db, db_overwrite 0) */
void fm__arith_backward(float *da,       /* (n) or NULL */
                        float *db,       /* (n) or NULL */
                        const float *dy, /* (n) */
                        const float *a,  /* (n) */
                        const float *b,  /* (n) */
                        size_t n, int op, int da_overwrite, int db_overwrite);

/* NumPy broadcasting of two operands of up to 4 dims: both seen as 4-D (aligned
 * at the trailing dimension), the output's shape and each operand's element
 * strides, 0 along the dimensions it is stretched over. */
typedef struct {
    int shape[4];
    size_t sa[4], sb[4];
} fm__bcast;
/* The plan of a (nda dims sha) op b (ndb dims shb), and the output's rank and
 * shape (ndim, shape); 0 if they do not broadcast. */
int fm__bcast_plan(fm__bcast *p, int *ndim, int *shape, int nda, const int *sha, int ndb, const int *shb);
/* y = a (op) b, broadcast by p */
void fm__bcast_forward(float *y,       /* p->shape */
                       const float *a, /* a's shape (strides p->sa) */
                       const float *b, /* b's shape (strides p->sb) */
                       const fm__bcast *p, int op);
/* da (=)+= dy [* b], db (=)+= +-dy [* a], each summed over the dims its operand is stretched over */
void fm__bcast_backward(float *da,       /* a's shape, or NULL */
                        float *db,       /* b's shape, or NULL */
                        const float *dy, /* p->shape */
                        const float *a,  /* a's shape */
                        const float *b,  /* b's shape */
                        const fm__bcast *p, int op, int da_overwrite, int db_overwrite);

/* y = s x */
void fm__scale_forward(float *y,       /* (n) */
                       const float *x, /* (n) */
                       float s, size_t n);
/* dx += s dy */
void fm__scale_backward(float *dx,       /* (n) */
                        const float *dy, /* (n) */
                        float s, size_t n);

/* y = exp(x) */
void fm__exp_forward(float *y,       /* (n) */
                     const float *x, /* (n) */
                     size_t n);
/* dx += y dy (y = exp(x), the forward's output) */
void fm__exp_backward(float *dx,       /* (n) */
                      const float *dy, /* (n) */
                      const float *y,  /* (n) */
                      size_t n);

/* ------------------------------------------------------------------ activations and the time embedding (ops_act.c) */

/* The activations' kernels are fm__act_forward and fm__act_backward (internal.h). */

/* y[b] = (cos a_i, sin a_i) over i < half = dim / 2, a_i = f_i t[b], f_i = scale max_period^(-i / half) */
void fm__time_embed_forward(float *y,       /* (B, dim) */
                            const float *t, /* (B) */
                            int B, int dim, float scale, float max_period);
/* dt[b] += sum over i of f_i (cos(a_i) dy[b, half + i] - sin(a_i) dy[b, i]), in double */
void fm__time_embed_backward(float *dt,       /* (B) */
                             const float *dy, /* (B, dim) */
                             const float *t,  /* (B) */
                             int B, int dim, float scale, float max_period);

/* ------------------------------------------------------------------ dropout (ops_dropout.c) */

/* keep[i] = (u_i >= p), u_i the i-th uniform draw of rng; y[i] = keep[i] ? x[i] / (1 - p) : 0 */
void fm__dropout_forward(float *y,             /* (n) */
                         unsigned char *keep,  /* (n): the mask, 1 where kept */
                         const float *x,       /* (n) */
                         fm_rng *rng,          /* advanced by n draws */
                         float p, size_t n);
/* dx (=)+= keep[i] ? dy[i] / (1 - p) : 0 */
void fm__dropout_backward(float *dx,                 /* (n) */
                          const float *dy,           /* (n) */
                          const unsigned char *keep, /* (n) */
                          float p, size_t n, int overwrite);

/* ------------------------------------------------------------------ embedding (ops_embed.c) */

/* y[i] = w[ids[i]] */
void fm__embedding_forward(float *y,         /* (n, dim) */
                           const float *w,   /* (num, dim) */
                           const int *ids,   /* (n), each in [0, num) */
                           int n, int dim);
/* dw[k] += the sum of dy[i] over the positions i with ids[i] = k, in position order, in double */
void fm__embedding_backward(float *dw,       /* (num, dim) */
                            const float *dy, /* (n, dim) */
                            const int *ids,  /* (n), each in [0, num) */
                            int n, int num, int dim,
                            void *work);     /* fm__embedding_backward_work(n, num, dim) bytes */
size_t fm__embedding_backward_work(int n, int num, int dim);

/* ------------------------------------------------------------------ reshape (ops_shape.c) */

/* y = x (the same values under another shape) */
void fm__reshape_forward(float *y,       /* (n) */
                         const float *x, /* (n) */
                         size_t n);
/* dx (=)+= dy */
void fm__reshape_backward(float *dx,       /* (n) */
                          const float *dy, /* (n) */
                          size_t n, int overwrite);

/* ------------------------------------------------------------------ concat, sum and mean (ops_reduce.c) */

/* y[:, c0 .. c0 + ck, ...] = x: one input of a concatenation along dim 1 */
void fm__concat_forward(float *y,       /* (outer, ctot, inner) */
                        const float *x, /* (outer, ck, inner) */
                        int outer, int ctot, int c0, int ck, size_t inner);
/* dx (=)+= dy[:, c0 .. c0 + ck, ...] */
void fm__concat_backward(float *dx,       /* (outer, ck, inner) */
                         const float *dy, /* (outer, ctot, inner) */
                         int outer, int ctot, int c0, int ck, size_t inner, int overwrite);

/* y = sum of x (mean 0) or sum / n (mean 1), summed in double in index order */
void fm__reduce_forward(float *y,       /* (1) */
                        const float *x, /* (n) */
                        size_t n, int mean);
/* dx += dy k, k = 1 (mean 0) or the float nearest 1 / n (mean 1) */
void fm__reduce_backward(float *dx,       /* (n) */
                         const float *dy, /* (1) */
                         size_t n, int mean);

/* ------------------------------------------------------------------ losses (ops_loss.c)
 *
 * Each loss sums its terms in double, in index order, and scales the sum by k
 * = 1 / count for FM_REDUCE_MEAN (count: the elements, or the rows for the
 * cross-entropy), 1 for FM_REDUCE_SUM; the backward scales dloss by k rounded
 * to a float. */

/* loss = k sum of (p - t)^2 */
void fm__mse_forward(float *loss,    /* (1) */
                     const float *p, /* (n) */
                     const float *t, /* (n) */
                     size_t n, fm_reduce r);
/* dp += 2 k dloss (p - t), dt -= 2 k dloss (p - t) */
void fm__mse_backward(float *dp,          /* (n) or NULL */
                      float *dt,          /* (n) or NULL */
                      const float *dloss, /* (1) */
                      const float *p,     /* (n) */
                      const float *t,     /* (n) */
                      size_t n, fm_reduce r);

/* loss = -k sum of t log p + (1 - t) log(1 - p), each log floored at -100 */
void fm__bce_forward(float *loss,    /* (1) */
                     const float *p, /* (n), probabilities in [0, 1] */
                     const float *t, /* (n) */
                     size_t n, fm_reduce r);
/* dp += k dloss (p - t) / max(p (1 - p), 1e-12) */
void fm__bce_backward(float *dp,          /* (n) */
                      const float *dloss, /* (1) */
                      const float *p,     /* (n) */
                      const float *t,     /* (n) */
                      size_t n, fm_reduce r);

/* loss = k sum of max(z, 0) - z t + log1p(exp(-|z|)) */
void fm__bce_logits_forward(float *loss,    /* (1) */
                            const float *z, /* (n) */
                            const float *t, /* (n) */
                            size_t n, fm_reduce r);
/* dz += k dloss (sigmoid(z) - t) */
void fm__bce_logits_backward(float *dz,          /* (n) */
                             const float *dloss, /* (1) */
                             const float *z,     /* (n) */
                             const float *t,     /* (n) */
                             size_t n, fm_reduce r);

/* loss = k sum of -(1 + logvar - mu^2 - exp(logvar)) / 2 */
void fm__kl_normal_forward(float *loss,         /* (1) */
                           const float *mu,     /* (n) */
                           const float *logvar, /* (n) */
                           size_t n, fm_reduce r);
/* dmu += k dloss mu, dlogvar += k dloss expm1(logvar) / 2 */
void fm__kl_normal_backward(float *dmu,          /* (n) or NULL */
                            float *dlogvar,      /* (n) or NULL */
                            const float *dloss,  /* (1) */
                            const float *mu,     /* (n) */
                            const float *logvar, /* (n) */
                            size_t n, fm_reduce r);

/* loss = k sum of (log 2 pi + logvar + (x - mu)^2 exp(-logvar)) / 2 */
void fm__gaussian_nll_forward(float *loss,         /* (1) */
                              const float *mu,     /* (n) */
                              const float *logvar, /* (nlv): mu's shape (nlv = n) or one row shared by the rows */
                              const float *x,      /* (n) */
                              size_t n, size_t nlv, fm_reduce r);
/* dmu += k dloss (mu - x) exp(-logvar), dlogvar += k dloss (1 - (mu - x)^2 exp(-logvar)) / 2 */
void fm__gaussian_nll_backward(float *dmu,          /* (n) or NULL */
                               float *dlogvar,      /* (nlv) or NULL; a shared row's sum over the rows in double */
                               const float *dloss,  /* (1) */
                               const float *mu,     /* (n) */
                               const float *logvar, /* (nlv) */
                               const float *x,      /* (n) */
                               size_t n, size_t nlv, fm_reduce r,
                               void *work);         /* fm__gaussian_nll_backward_work(n, nlv) bytes when dlogvar */
size_t fm__gaussian_nll_backward_work(size_t n, size_t nlv);

/* loss = k sum over rows i of (m_i - z_i[labels[i]]) + log1p(s_i) = log-sum-exp(z_i) - z_i[labels[i]] */
void fm__cross_entropy_forward(float *loss,       /* (1) */
                               int *argmax,       /* (B): each row's (first) largest logit, m_i = z_i[argmax[i]] */
                               double *l1,        /* (B): log1p(s_i), s_i = sum of exp(z_ij - m_i), j != argmax[i] */
                               const float *z,    /* (B, K) */
                               const int *labels, /* (B), each in [0, K) */
                               int B, int K, fm_reduce r);
/* dz (=)+= k dloss (softmax(z_i) - onehot(labels[i])), each term in double and rounded once */
void fm__cross_entropy_backward(float *dz,          /* (B, K) */
                                const float *dloss, /* (1) */
                                const float *z,     /* (B, K) */
                                const int *labels,  /* (B) */
                                const int *argmax,  /* (B), from the forward */
                                const double *l1,   /* (B), from the forward */
                                int B, int K, fm_reduce r, int overwrite);

/* ------------------------------------------------------------------ group normalisation (ops_norm.c)
 *
 * x (N, C, S) in G groups of C / G channels per sample, S values per channel;
 * an activation act after the norm makes it fm__group_norm_act's fused op
 * (FM_ACT_NONE: the plain norm). Groups are spread over the threads; the bits
 * do not depend on their number. */

/* y = act(xhat gamma + beta), xhat = (x - mean) rstd over each group, rstd = 1 / sqrt(var + eps) */
void fm__group_norm_forward(float *y,           /* (N, C, S) */
                            double *stats,      /* (N, G, 2): each group's mean and rstd, for the backward */
                            const float *x,     /* (N, C, S) */
                            const float *gamma, /* (C) or NULL (1) */
                            const float *beta,  /* (C) or NULL (0) */
                            int N, int C, size_t S, int G, float eps, fm_act act);
/* dx (=)+= rstd (g - mean(g) - xhat mean(g xhat)), dgamma += sum of dy' xhat, dbeta += sum of dy' */
void fm__group_norm_backward(float *dx,            /* (N, C, S) or NULL */
                             float *dgamma,        /* (C) or NULL; summed over samples and values in double */
                             float *dbeta,         /* (C) or NULL; likewise */
                             const float *dy,      /* (N, C, S); dy' = dy act'(h), h the norm's output; g = dy' gamma */
                             const float *x,       /* (N, C, S) */
                             const float *y,       /* (N, C, S): the forward's output (read with an activation) */
                             const float *gamma,   /* (C) or NULL */
                             const float *beta,    /* (C) or NULL */
                             const double *stats,  /* (N, G, 2): from the forward */
                             int N, int C, size_t S, int G, fm_act act, int dx_overwrite,
                             void *work); /* fm__group_norm_backward_work(..., dgamma != NULL, dbeta != NULL) bytes */
size_t fm__group_norm_backward_work(int N, int C, size_t S, int G, fm_act act, int want_dgamma, int want_dbeta);

/* ------------------------------------------------------------------ convolution, upsampling, pooling (ops_conv.c)
 *
 * NCHW images. conv2d's weight is (O, C, kh, kw) as nn.Conv2d stores it; its
 * output (N, O, Ho, Wo) has Ho = (H + 2 pad - kh) / stride + 1, Wo likewise.
 * Images are spread over the threads; the bits do not depend on their number. */

/* y_n = [b +] W (O, C kh kw) col(x_n), col the unfolded image (zero in the padding) */
void fm__conv2d_forward(float *y,       /* (N, O, Ho, Wo) */
                        const float *x, /* (N, C, H, W) */
                        const float *w, /* (O, C, kh, kw) */
                        const float *b, /* (O) or NULL */
                        int N, int C, int H, int W, int O, int kh, int kw, int stride, int pad,
                        void *work);    /* fm__conv2d_forward_work(...) bytes */
size_t fm__conv2d_forward_work(int N, int C, int H, int W, int O, int kh, int kw, int stride, int pad);
/* dx_n (=)+= fold(W^T dy_n), dw += sum over n of dy_n col(x_n)^T, db += sum of dy over images and pixels */
void fm__conv2d_backward(float *dx,       /* (N, C, H, W) or NULL */
                         float *dw,       /* (O, C, kh, kw) or NULL; the images' sum in double */
                         float *db,       /* (O) or NULL; in double */
                         const float *dy, /* (N, O, Ho, Wo) */
                         const float *x,  /* (N, C, H, W) */
                         const float *w,  /* (O, C, kh, kw) */
                         int N, int C, int H, int W, int O, int kh, int kw, int stride, int pad, int dx_overwrite,
                         void *work);     /* fm__conv2d_backward_work(..., dx != NULL, dw != NULL, db != NULL) bytes */
size_t fm__conv2d_backward_work(int N, int C, int H, int W, int O, int kh, int kw, int stride, int pad, int want_dx,
                                int want_dw, int want_db);

/* y[n, c, h f + i, w f + j] = x[n, c, h, w] for i, j < f (f = factor) */
void fm__upsample_nearest2d_forward(float *y,       /* (N, C, H f, W f) */
                                    const float *x, /* (N, C, H, W) */
                                    int N, int C, int H, int W, int factor);
/* dx[n, c, h, w] (=)+= the sum of dy over the pixel's f x f block, in float, row by row */
void fm__upsample_nearest2d_backward(float *dx,       /* (N, C, H, W) */
                                     const float *dy, /* (N, C, H f, W f) */
                                     int N, int C, int H, int W, int factor, int overwrite);

/* y[n, c, h, w] = the mean of x over its k x k block (stride k, no padding), summed in double */
void fm__avg_pool2d_forward(float *y,       /* (N, C, H / k, W / k) */
                            const float *x, /* (N, C, H, W), H and W multiples of k */
                            int N, int C, int H, int W, int k);
/* dx (=)+= dy[n, c, h, w] inv over each k x k block, inv = 1 / k^2 rounded to a float */
void fm__avg_pool2d_backward(float *dx,       /* (N, C, H, W) */
                             const float *dy, /* (N, C, H / k, W / k) */
                             int N, int C, int H, int W, int k, int overwrite);

#endif /* FM_ENGINE_KERNELS_H */
