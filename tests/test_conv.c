/* test_conv.c - the image ops beyond the PyTorch fixtures (those are in the
 * ops and gradcheck groups): shape errors that return NULL with a message,
 * conv2d against a direct float64 sum on layers large enough to be threaded
 * (one with its images in several groups), identical bits on 1, 2 and 3
 * threads, weight gradients that accumulate, and scratch given back to the
 * tape.
 */
#include "harness.h"
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shape errors */

static void shape_errors(void)
{
    fm_tape *tp = fm_tape_new(0);
    int s3[3] = {2, 3, 5};
    t_expect_fail(tp, fm_conv2d(tp, fm_tensor_new(tp, 3, s3), t_t4(tp, 4, 3, 3, 3), NULL, 1, 1), FM_ERR_SHAPE,
                "conv2d 3-D input", "[2, 3, 5]", "[N, C, H, W]");
    t_expect_fail(tp, fm_conv2d(tp, t_t4(tp, 2, 3, 5, 5), fm_tensor_2d(tp, 4, 27), NULL, 1, 1), FM_ERR_SHAPE,
                "conv2d 2-D weight", "[4, 27]", "[O, C, kh, kw]");
    t_expect_fail(tp, fm_conv2d(tp, t_t4(tp, 2, 3, 5, 5), t_t4(tp, 4, 2, 3, 3), NULL, 1, 1), FM_ERR_SHAPE,
                "conv2d channel mismatch", "[2, 3, 5, 5]", "[4, 2, 3, 3]");
    t_expect_fail(tp, fm_conv2d(tp, t_t4(tp, 1, 1, 2, 2), t_t4(tp, 1, 1, 5, 5), NULL, 1, 1), FM_ERR_SHAPE,
                "conv2d kernel larger than the padded input", "[1, 1, 5, 5]", "4x4");
    t_expect_fail(tp, fm_conv2d(tp, t_t4(tp, 1, 1, 9, 2), t_t4(tp, 1, 1, 1, 3), NULL, 1, 0), FM_ERR_SHAPE,
                "conv2d kernel wider than the input", "[1, 1, 9, 2]", "1x3");
    t_expect_fail(tp, fm_conv2d(tp, t_t4(tp, 2, 3, 5, 5), t_t4(tp, 4, 3, 3, 3), NULL, 0, 1), FM_ERR_ARG,
                "conv2d stride 0", "stride 0", "[2, 3, 5, 5]");
    t_expect_fail(tp, fm_conv2d(tp, t_t4(tp, 2, 3, 5, 5), t_t4(tp, 4, 3, 3, 3), NULL, 1, -1), FM_ERR_ARG,
                "conv2d padding -1", "padding -1", "[4, 3, 3, 3]");
    t_expect_fail(tp, fm_conv2d(tp, t_t4(tp, 2, 3, 5, 5), t_t4(tp, 4, 3, 3, 3), fm_tensor_new(tp, 1, (int[]){3}), 1, 1),
                FM_ERR_SHAPE, "conv2d bias of 3 for 4 outputs", "bias [3]", "expected [4]");
    t_expect_fail(tp, fm_conv2d(tp, t_t4(tp, 2, 3, 5, 5), t_t4(tp, 4, 3, 3, 3), fm_tensor_2d(tp, 1, 4), 1, 1),
                FM_ERR_SHAPE, "conv2d 2-D bias", "bias [1, 4]", "[4, 3, 3, 3]");
    t_expect_fail(tp, fm_conv2d(tp, NULL, t_t4(tp, 4, 3, 3, 3), NULL, 1, 1), FM_ERR_ARG, "conv2d NULL input",
                "conv2d: input 1 is NULL", NULL);
    t_expect_fail(tp, fm_upsample_nearest2d(tp, fm_tensor_2d(tp, 4, 4), 2), FM_ERR_SHAPE, "upsample 2-D input",
                "[4, 4]", "[N, C, H, W]");
    t_expect_fail(tp, fm_upsample_nearest2d(tp, t_t4(tp, 1, 2, 3, 3), 0), FM_ERR_ARG, "upsample factor 0", "factor 0",
                "[1, 2, 3, 3]");
    t_expect_fail(tp, fm_avg_pool2d(tp, fm_tensor_new(tp, 3, s3), 2), FM_ERR_SHAPE, "avg_pool 3-D input",
                "[2, 3, 5]", "[N, C, H, W]");
    t_expect_fail(tp, fm_avg_pool2d(tp, t_t4(tp, 1, 1, 5, 4), 2), FM_ERR_SHAPE, "avg_pool height 5 with k 2",
                "[1, 1, 5, 4]", "2x2");
    t_expect_fail(tp, fm_avg_pool2d(tp, t_t4(tp, 1, 1, 6, 4), 3), FM_ERR_SHAPE, "avg_pool width 4 with k 3",
                "[1, 1, 6, 4]", "3x3");
    t_expect_fail(tp, fm_avg_pool2d(tp, t_t4(tp, 1, 1, 4, 4), 0), FM_ERR_ARG, "avg_pool kernel 0", "kernel 0",
                "[1, 1, 4, 4]");

    /* the error is sticky: a later valid op returns NULL and backward names the first */
    fm_tensor *x = t_t4(tp, 1, 2, 4, 4);
    fm_tensor_requires_grad(x, 1);
    fm_tensor *bad = fm_conv2d(tp, x, t_t4(tp, 1, 3, 3, 3), NULL, 1, 1);
    fm_tensor *later = fm_avg_pool2d(tp, x, 2);
    fm_status bs = fm_backward(tp, later, NULL);
    t_check(bad == NULL && later == NULL && bs == FM_ERR_SHAPE && strstr(fm_last_error(), "conv2d: input [1, 2, 4, 4]"),
            "conv2d error is sticky: %s", fm_last_error());
    fm_tape_reset(tp);

    /* edges that are valid: a kernel exactly the padded size, a stride past the end */
    fm_tensor *y1 = fm_conv2d(tp, t_t4(tp, 1, 1, 3, 3), t_t4(tp, 2, 1, 5, 5), NULL, 1, 1);
    fm_tensor *y2 = fm_conv2d(tp, t_t4(tp, 1, 1, 7, 6), t_t4(tp, 1, 1, 3, 3), NULL, 4, 1);
    fm_tensor *y3 = fm_upsample_nearest2d(tp, t_t4(tp, 1, 1, 2, 3), 1);
    fm_tensor *y4 = fm_avg_pool2d(tp, t_t4(tp, 1, 1, 2, 3), 1);
    t_check(y1 && y1->shape[1] == 2 && y1->shape[2] == 1 && y1->shape[3] == 1 && y2 && y2->shape[2] == 2 &&
                y2->shape[3] == 2 && y3 && y3->shape[3] == 3 && y4 && y4->shape[2] == 2,
            "kernel as large as the padded input gives 1x1; stride 4 on 7x6 gives 2x2; factor and k 1 keep the size%s",
            y1 && y2 && y3 && y4 ? "" : fm_last_error());
    fm_tape_free(tp);
}

/* ---- conv2d on larger layers */

typedef struct {
    int N, C, H, W, O, kh, kw, stride, pad;
    const char *what;
} layer;

typedef struct {
    float *y, *dx, *dw, *db;
    size_t ny, nx, nw;
} conv_run;

static void run_free(conv_run *r)
{
    free(r->y);
    free(r->dx);
    free(r->dw);
    free(r->db);
}

/* Forward and backward with `threads`; the weight and bias live in a
 * parameter set, so their gradients accumulate over `passes` backward passes. */
static int run_layer(const layer *L, const float *xv, const float *wv, const float *bv, const float *dy, int threads,
                     int passes, int want_x, int want_w, conv_run *out)
{
    fm_set_threads(threads);
    fm_params *P = fm_params_new();
    int wi = fm_params_add(P, "w", 4, (int[]){L->O, L->C, L->kh, L->kw});
    int bi = fm_params_add(P, "b", 1, (int[]){L->O});
    memcpy(fm_params_tensor(P, wi)->data, wv, fm_params_tensor(P, wi)->size * sizeof(float));
    memcpy(fm_params_tensor(P, bi)->data, bv, (size_t)L->O * sizeof(float));
    fm_params_zero_grad(P);
    fm_params_requires_grad(P, want_w);
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *x = fm_tensor_copy(tp, xv, 4, (int[]){L->N, L->C, L->H, L->W});
    fm_tensor_requires_grad(x, want_x);
    fm_tensor *w = fm_params_tensor(P, wi), *b = fm_params_tensor(P, bi);
    fm_tensor *y = fm_conv2d(tp, x, w, b, L->stride, L->pad);
    int ok = y != NULL;
    for (int p = 0; ok && p < passes; p++) ok = fm_backward(tp, y, dy) == FM_OK;
    memset(out, 0, sizeof *out);
    if (ok) {
        out->ny = y->size;
        out->nx = x->size;
        out->nw = w->size;
        out->y = t_dup(y->data, y->size);
        if (want_x) out->dx = t_dup(x->grad, x->size);
        if (want_w) {
            out->dw = t_dup(w->grad, w->size);
            out->db = t_dup(b->grad, (size_t)L->O);
        }
    } else {
        t_check(0, "%s: conv2d failed: %s", L->what, fm_last_error());
    }
    fm_tape_free(tp);
    fm_params_free(P);
    fm_set_threads(0);
    return ok;
}

/* The direct sums in float64: y, dx, dW, db. */
static void reference(const layer *L, const float *x, const float *w, const float *b, const float *dy, int Ho, int Wo,
                      float *y, float *dx, float *dw, float *db)
{
    size_t nx = (size_t)L->N * L->C * L->H * L->W, nw = (size_t)L->O * L->C * L->kh * L->kw;
    double *gx = calloc(nx, sizeof(double)), *gw = calloc(nw, sizeof(double));
    for (int o = 0; o < L->O; o++) db[o] = 0;
    for (int n = 0; n < L->N; n++)
        for (int o = 0; o < L->O; o++) {
            double gb = 0;
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    size_t yi = (((size_t)n * L->O + o) * Ho + oh) * Wo + ow;
                    double s = b[o], g = dy[yi];
                    gb += g;
                    for (int c = 0; c < L->C; c++)
                        for (int i = 0; i < L->kh; i++)
                            for (int j = 0; j < L->kw; j++) {
                                int ih = oh * L->stride - L->pad + i, iw = ow * L->stride - L->pad + j;
                                if (ih < 0 || ih >= L->H || iw < 0 || iw >= L->W) continue;
                                size_t xi = (((size_t)n * L->C + c) * L->H + ih) * L->W + iw;
                                size_t wi = (((size_t)o * L->C + c) * L->kh + i) * L->kw + j;
                                s += (double)x[xi] * w[wi];
                                gx[xi] += g * w[wi];
                                gw[wi] += g * x[xi];
                            }
                    y[yi] = (float)s;
                }
            db[o] += (float)gb;
        }
    for (size_t i = 0; i < nx; i++) dx[i] = (float)gx[i];
    for (size_t i = 0; i < nw; i++) dw[i] = (float)gw[i];
    free(gx);
    free(gw);
}

static int layers_split; /* layers whose forward ran on several threads */

static void check_layer(const layer *L, fm_rng *r)
{
    int Ho = (L->H + 2 * L->pad - L->kh) / L->stride + 1, Wo = (L->W + 2 * L->pad - L->kw) / L->stride + 1;
    size_t nx = (size_t)L->N * L->C * L->H * L->W, nw = (size_t)L->O * L->C * L->kh * L->kw;
    size_t ny = (size_t)L->N * L->O * Ho * Wo;
    float *x = malloc(nx * sizeof(float)), *w = malloc(nw * sizeof(float)), *b = malloc((size_t)L->O * sizeof(float));
    float *dy = malloc(ny * sizeof(float));
    fm_rng_normal_fill(r, x, nx, 0, 1);
    fm_rng_normal_fill(r, w, nw, 0, (float)(1.0 / sqrt((double)L->C * L->kh * L->kw)));
    fm_rng_normal_fill(r, b, (size_t)L->O, 0, 1);
    fm_rng_normal_fill(r, dy, ny, 0, 1);

    conv_run run[3];
    int ok = 1;
    for (int q = 0; q < 3; q++) ok &= run_layer(L, x, w, b, dy, q + 1, 1, 1, 1, &run[q]);
    if (ok) {
        float *ry = malloc(ny * sizeof(float)), *rx = malloc(nx * sizeof(float)), *rw = malloc(nw * sizeof(float));
        float *rb = malloc((size_t)L->O * sizeof(float));
        reference(L, x, w, b, dy, Ho, Wo, ry, rx, rw, rb);
        char label[96];
        snprintf(label, sizeof label, "%s forward", L->what);
        t_close(label, run[0].y, ry, ny, 1e-5);
        snprintf(label, sizeof label, "%s dx", L->what);
        t_close(label, run[0].dx, rx, nx, 1e-5);
        snprintf(label, sizeof label, "%s dW", L->what);
        t_close(label, run[0].dw, rw, nw, 1e-5);
        snprintf(label, sizeof label, "%s db", L->what);
        t_close(label, run[0].db, rb, (size_t)L->O, 1e-5);
        int same = 1;
        for (int q = 1; q < 3; q++) {
            same &= !memcmp(run[0].y, run[q].y, ny * sizeof(float));
            same &= !memcmp(run[0].dx, run[q].dx, nx * sizeof(float));
            same &= !memcmp(run[0].dw, run[q].dw, nw * sizeof(float));
            same &= !memcmp(run[0].db, run[q].db, (size_t)L->O * sizeof(float));
        }
        /* the forward splits its images only when there is work enough for two threads */
        double work = (double)L->N * L->O * Ho * Wo * L->C * L->kh * L->kw;
        int splits = L->N > 1 && work >= 2.0 * FM__PAR_MIN_WORK;
        layers_split += splits;
        t_check(same, "%s: y, dx, dW, db bit-identical on 1, 2 and 3 threads (%s)", L->what,
                splits ? "the images split across threads" : "too small to split: one thread each time");
        free(ry);
        free(rx);
        free(rw);
        free(rb);

        /* dx alone and dW alone give the bits of both together; two passes double dW */
        conv_run only_x = {0}, only_w = {0}, twice = {0};
        if (run_layer(L, x, w, b, dy, 2, 1, 1, 0, &only_x) && run_layer(L, x, w, b, dy, 2, 1, 0, 1, &only_w) &&
            run_layer(L, x, w, b, dy, 2, 2, 0, 1, &twice)) {
            int acc = 1;
            for (size_t i = 0; i < nw; i++) acc &= twice.dw[i] == 2 * run[0].dw[i];
            for (int o = 0; o < L->O; o++) acc &= twice.db[o] == 2 * run[0].db[o];
            t_check(!memcmp(only_x.dx, run[0].dx, nx * sizeof(float)) &&
                        !memcmp(only_w.dw, run[0].dw, nw * sizeof(float)) && acc,
                    "%s: dx alone and dW alone as with both; a second pass doubles dW and db", L->what);
        }
        run_free(&only_x);
        run_free(&only_w);
        run_free(&twice);
    }
    for (int q = 0; q < 3; q++) run_free(&run[q]);
    free(x);
    free(w);
    free(b);
    free(dy);
}

void test_conv(void)
{
    shape_errors();
    fm_rng r;
    fm_rng_seed(&r, 11, 0);
    static const layer layers[] = {
        {6, 8, 16, 16, 16, 3, 3, 1, 1, "conv 3x3 6x8x16x16 -> 16"},
        {5, 8, 15, 13, 12, 3, 3, 2, 1, "conv 3x3 stride 2 5x8x15x13 -> 12"},
        {4, 16, 12, 12, 24, 1, 1, 1, 0, "conv 1x1 4x16x12x12 -> 24"},
        /* K O = 576 x 512 floats of weight gradient per chunk of 8 images:
         * 16 images make two chunks, summed in order */
        {16, 64, 3, 3, 512, 3, 3, 1, 1, "conv 3x3 16x64x3x3 -> 512 (2 chunks)"},
        /* 2048 x 2048 floats per chunk: more than the buffers kept at once
         * (2^22 floats), so the two chunks go one group each */
        {16, 2048, 1, 1, 2048, 1, 1, 1, 0, "conv 1x1 16x2048x1x1 -> 2048 (2 groups)"},
        /* 1440 output pixels on shifted planes, which never cut an image */
        {2, 3, 40, 36, 8, 3, 3, 1, 1, "conv 3x3 2x3x40x36 -> 8 (shifted planes, 1440 pixels)"},
        {4, 8, 40, 36, 8, 3, 3, 1, 1, "conv 3x3 4x8x40x36 -> 8 (shifted planes, 1440 pixels)"},
        /* more than 1024 output pixels unfolded: two bands of rows */
        {1, 2, 70, 66, 3, 3, 3, 2, 1, "conv 3x3 stride 2 1x2x70x66 (2 bands)"},
        {2, 2, 42, 30, 3, 3, 3, 1, 0, "conv 3x3 valid 2x2x42x30 (2 bands)"},
        /* kernels of unequal sides, unfolded: rows of padding above and
         * below the input (1x3), columns beside it (3x1) */
        {2, 3, 9, 11, 5, 1, 3, 1, 1, "conv 1x3 pad 1 2x3x9x11 -> 5"},
        {2, 3, 9, 11, 5, 3, 1, 1, 1, "conv 3x1 pad 1 2x3x9x11 -> 5"},
        /* padding wider than the input */
        {2, 2, 3, 2, 2, 7, 7, 1, 3, "conv 7x7 pad 3 2x2x3x2 -> 2"},
        {2, 2, 3, 2, 2, 5, 7, 1, 3, "conv 5x7 pad 3 2x2x3x2 -> 2"},
    };
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) check_layer(&layers[i], &r);
    t_check(layers_split >= 3, "%d of the layers are large enough to test the split across threads", layers_split);

    /* the unfolded images are scratch: the tape keeps only the tensors */
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *x = t_t4(tp, 2, 32, 28, 28), *w = t_t4(tp, 32, 32, 3, 3);
    fm_tensor_requires_grad(x, 1);
    fm_tensor_requires_grad(w, 1);
    size_t before, after, after_bw;
    fm_tape_stats(tp, &before, NULL, NULL);
    fm_tensor *y = fm_conv2d(tp, x, w, NULL, 1, 1);
    fm_tape_stats(tp, &after, NULL, NULL);
    size_t ybytes = y ? y->size * sizeof(float) : 0, colbytes = (size_t)32 * 9 * 28 * 28 * sizeof(float);
    fm_status s = fm_backward(tp, fm_sum(tp, y), NULL);
    fm_tape_stats(tp, &after_bw, NULL, NULL);
    size_t grads = (x->size + w->size + (y ? y->size : 0) + 1) * sizeof(float);
    t_check(y && s == FM_OK && after - before < ybytes + 1024 && after_bw - after < grads + 4096,
            "conv2d keeps %zu KiB on the tape for a %zu KiB output (unfolding an image would take %zu KiB); backward "
            "%zu KiB for %zu KiB of gradients",
            (after - before) / 1024, ybytes / 1024, colbytes / 1024, (after_bw - after) / 1024, grads / 1024);
    fm_tape_free(tp);
}
