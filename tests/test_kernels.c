/* test_kernels.c - the ops' kernels (src/engine/kernels.h) called directly,
 * without a tape, give the tape ops' bits: linear, broadcast and same-shape
 * arithmetic, activations, group norm (plain and fused with SiLU), conv2d on
 * shifted planes and on unfolded images, and two losses, forward and every
 * gradient, compared with memcmp. Backward kernels that overwrite get a
 * buffer full of NaN (the tape's fresh gradient is uninitialised); those that
 * accumulate get zeros, as the tape's gradients start. The larger cases run
 * on 2 threads, so the scratch a kernel asks for covers its workers.
 */
#include "harness.h"
#include "internal.h"
#include "engine/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Everything a case allocates, freed together at its end. */
static void *held[64];
static int nheld;

static void *hold(void *p)
{
    if (!p || nheld == (int)(sizeof held / sizeof held[0])) {
        fprintf(stderr, "test_kernels: %s\n", p ? "a case holds more buffers than the table" : "out of memory");
        abort();
    }
    held[nheld++] = p;
    return p;
}

static void release(void)
{
    while (nheld > 0) free(held[--nheld]);
}

static float *randn(fm_rng *r, size_t n, float mean, float std)
{
    float *p = hold(malloc(n * sizeof(float)));
    fm_rng_normal_fill(r, p, n, mean, std);
    return p;
}

/* n floats of NaN: an overwriting kernel must write them all. */
static float *nans(size_t n)
{
    float *p = hold(malloc(n * sizeof(float)));
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static float *zeros(size_t n) { return hold(calloc(n, sizeof(float))); }

/* A kernel's scratch: 64-byte aligned, NULL when none is asked for. */
static void *work(size_t bytes) { return bytes ? hold(aligned_alloc(64, (bytes + 63) / 64 * 64)) : NULL; }

/* A tape input that wants its gradient, holding a copy of data. */
static fm_tensor *leaf(fm_tape *tp, const float *data, int ndim, const int *shape)
{
    fm_tensor *t = fm_tensor_copy(tp, data, ndim, shape);
    if (t) fm_tensor_requires_grad(t, 1);
    return t;
}

/* One case: the kernel's n values (got) are the tape op's (ref), bit for bit. */
static int same_bits(const char *op, const char *what, const float *got, const float *ref, size_t n)
{
    int ok = got && ref && memcmp(got, ref, n * sizeof(float)) == 0;
    return t_check(ok, "%s %s: the kernel's %zu values are the tape op's bits (largest relative difference %.2e)", op,
                   what, n, got && ref ? t_relerr(got, ref, n) : INFINITY);
}

/* The tape's backward from y with cotangent dy; a failure is a failed case. */
static int tape_backward(fm_tape *tp, const char *op, fm_tensor *y, const float *dy)
{
    fm_status s = y ? fm_backward(tp, y, dy) : FM_ERR_ARG;
    if (s == FM_OK) return 1;
    t_check(0, "%s on the tape: %s", op, fm_last_error());
    return 0;
}

static void linear(fm_rng *r)
{
    int B = 7, in = 13, out = 5;
    float *x = randn(r, (size_t)B * in, 0, 1), *w = randn(r, (size_t)out * in, 0, 1), *b = randn(r, (size_t)out, 0, 1);
    float *dy = randn(r, (size_t)B * out, 0, 1);
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *X = leaf(tp, x, 2, (int[]){B, in}), *W = leaf(tp, w, 2, (int[]){out, in}), *Bt = leaf(tp, b, 1, &out);
    fm_tensor *Y = fm_linear(tp, X, W, Bt);
    if (tape_backward(tp, "linear", Y, dy)) {
        float *y = nans((size_t)B * out), *wt = nans((size_t)in * out);
        fm__linear_forward(y, wt, x, w, b, B, in, out);
        float *dx = zeros((size_t)B * in), *dw = zeros((size_t)out * in), *db = zeros((size_t)out);
        fm__linear_backward(dx, dw, db, dy, x, w, B, in, out);
        same_bits("linear", "y", y, Y->data, Y->size);
        same_bits("linear", "dx", dx, X->grad, X->size);
        same_bits("linear", "dw", dw, W->grad, W->size);
        same_bits("linear", "db", db, Bt->grad, Bt->size);
    }
    fm_tape_free(tp);
    release();
}

/* a (op) b broadcast (sub or mul), each operand's gradient written fresh. */
static void bcast(fm_rng *r, int kind, int nda, const int *sha, int ndb, const int *shb, const char *name)
{
    size_t na = 1, nb = 1;
    for (int d = 0; d < nda; d++) na *= (size_t)sha[d];
    for (int d = 0; d < ndb; d++) nb *= (size_t)shb[d];
    float *a = randn(r, na, 0, 1), *b = randn(r, nb, 0, 1);
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *A = leaf(tp, a, nda, sha), *Bt = leaf(tp, b, ndb, shb);
    fm_tensor *Y = kind == FM__MUL ? fm_mul(tp, A, Bt) : fm_sub(tp, A, Bt);
    float *dy = Y ? randn(r, Y->size, 0, 1) : NULL;
    if (tape_backward(tp, name, Y, dy)) {
        fm__bcast p;
        int nd, shape[4];
        int planned = fm__bcast_plan(&p, &nd, shape, nda, sha, ndb, shb);
        t_check(planned && nd == Y->ndim && !memcmp(shape, Y->shape, (size_t)nd * sizeof(int)),
                "%s: fm__bcast_plan gives the tape op's output shape", name);
        if (planned) {
            float *y = nans(Y->size), *da = nans(na), *db = nans(nb);
            fm__bcast_forward(y, a, b, &p, kind);
            fm__bcast_backward(da, db, dy, a, b, &p, kind, 1, 1);
            same_bits(name, "y", y, Y->data, Y->size);
            same_bits(name, "da", da, A->grad, na);
            same_bits(name, "db", db, Bt->grad, nb);
        }
    }
    fm_tape_free(tp);
    release();
}

/* a + a: one gradient buffer, written by a's part and added to by b's. */
static void add_self(fm_rng *r)
{
    int n = 29;
    float *a = randn(r, (size_t)n, 0, 1), *dy = randn(r, (size_t)n, 0, 1);
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *A = leaf(tp, a, 1, &n), *Y = fm_add(tp, A, A);
    if (tape_backward(tp, "add a + a", Y, dy)) {
        float *y = nans((size_t)n), *da = nans((size_t)n);
        fm__arith_forward(y, a, a, (size_t)n, FM__ADD);
        fm__arith_backward(da, da, dy, a, a, (size_t)n, FM__ADD, 1, 0);
        same_bits("add a + a", "y", y, Y->data, (size_t)n);
        same_bits("add a + a", "da", da, A->grad, (size_t)n);
    }
    fm_tape_free(tp);
    release();
}

static void activation(fm_rng *r, fm_act act)
{
    int n = 37; /* a tail shorter than a vector */
    float *x = randn(r, (size_t)n, 0, 2), *dy = randn(r, (size_t)n, 0, 1);
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *X = leaf(tp, x, 1, &n), *Y = fm_activation(tp, X, act);
    char name[64];
    snprintf(name, sizeof name, "activation %s", fm_act_name(act));
    if (tape_backward(tp, name, Y, dy)) {
        float *y = nans((size_t)n), *dx = nans((size_t)n);
        fm__act_forward(act, x, y, (size_t)n);
        fm__act_backward(act, x, y, dy, dx, (size_t)n, 1);
        same_bits(name, "y", y, Y->data, (size_t)n);
        same_bits(name, "dx", dx, X->grad, (size_t)n);
    }
    fm_tape_free(tp);
    release();
}

static void group_norm(fm_rng *r, int N, int C, int H, int W, int G, fm_act act)
{
    size_t S = (size_t)H * W, n = (size_t)N * C * S;
    float *x = randn(r, n, 1, 2), *gamma = randn(r, (size_t)C, 1, 0.5f), *beta = randn(r, (size_t)C, 0, 0.5f);
    float *dy = randn(r, n, 0, 1);
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *X = leaf(tp, x, 4, (int[]){N, C, H, W}), *Gm = leaf(tp, gamma, 1, &C), *Bt = leaf(tp, beta, 1, &C);
    fm_tensor *Y = fm__group_norm_act(tp, X, G, Gm, Bt, 1e-5f, act);
    char name[96];
    snprintf(name, sizeof name, "group_norm %dx%dx%dx%d in %d groups, %s", N, C, H, W, G, fm_act_name(act));
    if (tape_backward(tp, name, Y, dy)) {
        float *y = nans(n), *dx = nans(n), *dgamma = zeros((size_t)C), *dbeta = zeros((size_t)C);
        double *stats = hold(malloc(2 * (size_t)N * G * sizeof(double)));
        fm__group_norm_forward(y, stats, x, gamma, beta, N, C, S, G, 1e-5f, act);
        void *wk = work(fm__group_norm_backward_work(N, C, S, G, act, 1, 1));
        fm__group_norm_backward(dx, dgamma, dbeta, dy, x, y, gamma, beta, stats, N, C, S, G, act, 1, wk);
        same_bits(name, "y", y, Y->data, n);
        same_bits(name, "dx", dx, X->grad, n);
        same_bits(name, "dgamma", dgamma, Gm->grad, (size_t)C);
        same_bits(name, "dbeta", dbeta, Bt->grad, (size_t)C);
    }
    fm_tape_free(tp);
    release();
}

static void conv2d(fm_rng *r, int N, int C, int H, int W, int O, int kh, int kw, int stride, int pad)
{
    size_t nx = (size_t)N * C * H * W, nw = (size_t)O * C * kh * kw;
    float *x = randn(r, nx, 0, 1), *w = randn(r, nw, 0, 0.3f), *b = randn(r, (size_t)O, 0, 1);
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *X = leaf(tp, x, 4, (int[]){N, C, H, W}), *Wt = leaf(tp, w, 4, (int[]){O, C, kh, kw});
    fm_tensor *Bt = leaf(tp, b, 1, &O), *Y = fm_conv2d(tp, X, Wt, Bt, stride, pad);
    float *dy = Y ? randn(r, Y->size, 0, 1) : NULL;
    char name[96];
    snprintf(name, sizeof name, "conv2d %dx%dx%dx%d -> %d, %dx%d stride %d pad %d", N, C, H, W, O, kh, kw, stride, pad);
    if (tape_backward(tp, name, Y, dy)) {
        float *y = nans(Y->size), *dx = nans(nx), *dw = zeros(nw), *db = zeros((size_t)O);
        fm__conv2d_forward(y, x, w, b, N, C, H, W, O, kh, kw, stride, pad,
                           work(fm__conv2d_forward_work(N, C, H, W, O, kh, kw, stride, pad)));
        fm__conv2d_backward(dx, dw, db, dy, x, w, N, C, H, W, O, kh, kw, stride, pad, 1,
                            work(fm__conv2d_backward_work(N, C, H, W, O, kh, kw, stride, pad, 1, 1, 1)));
        same_bits(name, "y", y, Y->data, Y->size);
        same_bits(name, "dx", dx, X->grad, nx);
        same_bits(name, "dw", dw, Wt->grad, nw);
        same_bits(name, "db", db, Bt->grad, (size_t)O);
    }
    fm_tape_free(tp);
    release();
}

static void cross_entropy(fm_rng *r)
{
    int B = 6, K = 10, labels[6] = {0, 3, 9, 3, 2, 7};
    float *z = randn(r, (size_t)B * K, 0, 3), dloss = 0.7f;
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *Z = leaf(tp, z, 2, (int[]){B, K}), *L = fm_cross_entropy(tp, Z, labels, FM_REDUCE_MEAN);
    if (tape_backward(tp, "cross_entropy", L, &dloss)) {
        float *loss = nans(1), *dz = nans((size_t)B * K);
        int *argmax = hold(malloc((size_t)B * sizeof(int)));
        double *l1 = hold(malloc((size_t)B * sizeof(double)));
        fm__cross_entropy_forward(loss, argmax, l1, z, labels, B, K, FM_REDUCE_MEAN);
        fm__cross_entropy_backward(dz, &dloss, z, labels, argmax, l1, B, K, FM_REDUCE_MEAN, 1);
        same_bits("cross_entropy (mean)", "loss", loss, L->data, 1);
        same_bits("cross_entropy (mean)", "dz", dz, Z->grad, Z->size);
    }
    fm_tape_free(tp);
    release();
}

static void mse(fm_rng *r)
{
    int n = 45;
    float *p = randn(r, (size_t)n, 0, 1), *t = randn(r, (size_t)n, 0, 1), dloss = 1.3f;
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *P = leaf(tp, p, 1, &n), *T = leaf(tp, t, 1, &n), *L = fm_mse_loss(tp, P, T, FM_REDUCE_SUM);
    if (tape_backward(tp, "mse_loss", L, &dloss)) {
        float *loss = nans(1), *dp = zeros((size_t)n), *dt = zeros((size_t)n);
        fm__mse_forward(loss, p, t, (size_t)n, FM_REDUCE_SUM);
        fm__mse_backward(dp, dt, &dloss, p, t, (size_t)n, FM_REDUCE_SUM);
        same_bits("mse_loss (sum)", "loss", loss, L->data, 1);
        same_bits("mse_loss (sum)", "dpred", dp, P->grad, (size_t)n);
        same_bits("mse_loss (sum)", "dtarget", dt, T->grad, (size_t)n);
    }
    fm_tape_free(tp);
    release();
}

void test_kernels(void)
{
    fm_rng r;
    fm_rng_seed(&r, 2024, 0);
    linear(&r);
    bcast(&r, FM__MUL, 4, (int[]){2, 3, 4, 5}, 4, (int[]){1, 3, 1, 1}, "mul [2, 3, 4, 5] by [1, 3, 1, 1]");
    bcast(&r, FM__SUB, 2, (int[]){3, 1}, 2, (int[]){1, 4}, "sub [3, 1] - [1, 4]");
    add_self(&r);
    activation(&r, FM_ACT_SILU);
    activation(&r, FM_ACT_GELU);
    activation(&r, FM_ACT_TANH);
    group_norm(&r, 2, 8, 5, 5, 4, FM_ACT_NONE);
    group_norm(&r, 2, 8, 5, 5, 4, FM_ACT_SILU);
    conv2d(&r, 2, 3, 8, 8, 16, 3, 3, 1, 1); /* shifted planes, products */
    conv2d(&r, 2, 3, 6, 7, 4, 3, 3, 1, 1);  /* shifted planes, dot products (fewer than 16 outputs) */
    conv2d(&r, 2, 3, 9, 9, 5, 4, 4, 2, 1);  /* unfolded images */
    cross_entropy(&r);
    mse(&r);
    /* large enough to be split over workers, each with scratch of its own */
    fm_set_threads(2);
    group_norm(&r, 8, 32, 16, 16, 8, FM_ACT_SILU);
    conv2d(&r, 9, 16, 16, 16, 32, 3, 3, 1, 1);
    conv2d(&r, 4, 8, 40, 40, 8, 3, 3, 2, 1);
    fm_set_threads(0);
}
