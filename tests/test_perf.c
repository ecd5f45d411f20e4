/* test_perf.c - what the speed and memory work must not change: the matrix
 * product's documented order of arithmetic (bit for bit, packed or not), the
 * backward pass handing spent gradient buffers on (same gradients, less
 * memory), sums written over a convolution's output (same bits as fm_add),
 * and the profile's counts (the roofline's numerator).
 */
#include "harness.h"
#include "internal.h"
#include "engine/profile.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* C's element (i, j) as gemm.c documents it: the bias, then k in slices of
 * `slice` (256 for whole-vector columns of long products), each slice summed
 * from zero (the first from the bias) by multiply-adds in order and added to
 * the running sum; added to C at the end when accumulating. The last N % 16
 * columns of A^T B sum all of k in one slice; those of A B are dot products
 * in vector lanes (not emulated here), as are A^T B's when M = 1 (A^T is then
 * contiguous both ways and read as A; no shape here has M = 1). */
static float gemm_order(int i, int j, int K, const float *A, int tn, int M, const float *B, int N, const float *bias,
                        float c0, int acc, int slice)
{
    float s = bias ? bias[j] : 0.0f;
    for (int k0 = 0; k0 < K; k0 += slice) {
        float t = k0 == 0 ? s : 0.0f;
        for (int k = k0; k < K && k < k0 + slice; k++) {
            float a = tn ? A[(size_t)k * M + i] : A[(size_t)i * K + k], b = B[(size_t)k * N + j];
#ifdef __FMA__
            t = fmaf(a, b, t);
#else
            float p = a * b;
            t = t + p;
#endif
        }
        s = k0 == 0 ? t : s + t;
    }
    return acc ? c0 + s : s;
}

static void gemm_cases(fm_rng *r)
{
    static const int shapes[][3] = {{300, 64, 600}, {97, 48, 513}, {520, 32, 257}, {64, 130, 1024}, {13, 16, 300},
                                    {200, 67, 300}, {64, 3, 256}, {131, 2, 90}};
    int differ = 0, cases = 0;
    for (size_t q = 0; q < sizeof shapes / sizeof shapes[0]; q++)
        for (int v = 0; v < 4; v++) {
            int M = shapes[q][0], N = shapes[q][1], K = shapes[q][2], tn = v & 1, acc = v >> 1;
            float *A = malloc((size_t)M * K * sizeof(float)), *B = malloc((size_t)K * N * sizeof(float));
            float *bias = malloc((size_t)N * sizeof(float)), *C = malloc((size_t)M * N * sizeof(float));
            fm_rng_normal_fill(r, A, (size_t)M * K, 0, 1);
            fm_rng_normal_fill(r, B, (size_t)K * N, 0, 1);
            fm_rng_normal_fill(r, bias, (size_t)N, 0, 1);
            for (int run = 0; run < 3; run++) { /* packed on 1 and 2 threads, unpacked on 2 */
                fm_set_threads(run == 0 ? 1 : 2);
                fm__gemm_pack = run < 2;
                for (size_t e = 0; e < (size_t)M * N; e++) C[e] = 0.5f;
                if (tn) fm__gemm(M, N, K, A, 1, M, B, N, C, N, v == 1 ? NULL : bias, acc);
                else fm__gemm(M, N, K, A, K, 1, B, N, C, N, v == 1 ? NULL : bias, acc);
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < (tn ? N : N / 16 * 16); j++) {
                        int slice = j < N / 16 * 16 ? 256 : K;
                        float want = gemm_order(i, j, K, A, tn, M, B, N, v == 1 ? NULL : bias, 0.5f, acc, slice);
                        differ += memcmp(&want, &C[(size_t)i * N + j], sizeof want) != 0;
                    }
                cases++;
            }
            fm__gemm_pack = 1;
            free(A), free(B), free(bias), free(C);
        }
    fm_set_threads(0);
    t_check(differ == 0, "GEMM, %d runs (A and A^T, bias, accumulating, long k packed on 1 and 2 threads and unpacked, "
                         "narrow columns of A^T B): every element in the documented order, bit for bit (%d differ)",
            cases, differ);
}

/* A chain of n ops on one (rows, cols) input, summed. */
static fm_tensor *chain(fm_tape *tp, fm_tensor *x, int n)
{
    fm_tensor *h = x;
    for (int i = 0; i < n; i++) h = i % 2 ? fm_tanh(tp, h) : fm_scale(tp, h, 0.9f);
    return fm_sum(tp, h);
}

static void spare_gradients(fm_rng *r)
{
    enum { ROWS = 64, COLS = 256, N = 12 };
    size_t bytes = (size_t)ROWS * COLS * sizeof(float);
    float *xv = malloc(bytes);
    fm_rng_normal_fill(r, xv, (size_t)ROWS * COLS, 0, 1);
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *x = fm_tensor_copy(tp, xv, 2, (int[]){ROWS, COLS});
    fm_tensor_requires_grad(x, 1);
    fm_tensor *y = chain(tp, x, N);
    size_t fwd = 0, peak = 0;
    fm_tape_stats(tp, &fwd, NULL, NULL);
    fm_status s = fm_backward(tp, y, NULL);
    fm_tape_stats(tp, NULL, &peak, NULL);
    /* the gradient, by the chain rule in double */
    double err = 0;
    for (size_t e = 0; e < (size_t)ROWS * COLS && !s; e++) {
        double h = xv[e], d = 1;
        for (int i = 0; i < N; i++) {
            if (i % 2) {
                h = tanh(h);
                d *= 1 - h * h;
            } else {
                h *= 0.9;
                d *= 0.9;
            }
        }
        err = fmax(err, fabs(x->grad[e] - d));
    }
    int inner_kept = 0;
    for (fm_tensor *t = tp->last; t; t = t->prev) inner_kept += t->op && t->grad != NULL && t->size > 1024;
    /* without recycling the pass would add N gradients of the input's size */
    t_check(!s && err < 1e-5 && peak - fwd <= 3 * bytes && inner_kept == 0,
            "backward through %d ops: gradient max error %.1e, the pass added %.1f input sizes to the tape (at most 3; "
            "%d without recycling), %d inner gradients kept",
            N, err, (double)(peak - fwd) / (double)bytes, N + 1, inner_kept);
    fm_tape_free(tp);
    free(xv);
}

static void add_into(fm_rng *r)
{
    fm_tape *tp = fm_tape_new(0);
    int worst = 0, shared = 1;
    for (int bc = 0; bc < 2; bc++) { /* same shape, then a per-channel (N, C, 1, 1) term as the U-Net adds */
        int as[4] = {3, 5, 6, 7}, bs[4] = {3, 5, bc ? 1 : 6, bc ? 1 : 7};
        fm_tensor *a1 = t_t4(tp, as[0], as[1], as[2], as[3]), *b1 = t_t4(tp, bs[0], bs[1], bs[2], bs[3]);
        fm_rng_normal_fill(r, a1->data, a1->size, 0, 1);
        fm_rng_normal_fill(r, b1->data, b1->size, 0, 1);
        fm_tensor *a2 = fm_tensor_copy(tp, a1->data, 4, as), *b2 = fm_tensor_copy(tp, b1->data, 4, bs);
        fm_tensor *ins[4] = {a1, b1, a2, b2};
        for (int k = 0; k < 4; k++) fm_tensor_requires_grad(ins[k], 1);
        /* an op before each, so that the sum's inputs are op outputs as in the U-Net */
        fm_tensor *p1 = fm_scale(tp, a1, 2.0f), *p2 = fm_scale(tp, a2, 2.0f);
        fm_tensor *y1 = fm_add(tp, p1, b1), *y2 = fm__add_into(tp, p2, b2);
        shared &= y2 && y2->data == p2->data;
        fm_tensor *w = fm_tensor_new(tp, 4, as);
        fm_rng_normal_fill(r, w->data, w->size, 0, 1);
        fm_tensor *l1 = fm_sum(tp, fm_mul(tp, y1, w)), *l2 = fm_sum(tp, fm_mul(tp, y2, w));
        if (!l1 || !l2 || memcmp(y1->data, y2->data, y1->size * sizeof(float)) || memcmp(l1->data, l2->data, 4)) {
            worst = 1;
            continue;
        }
        fm_backward(tp, l1, NULL);
        float *g[2] = {malloc(a1->size * sizeof(float)), malloc(b1->size * sizeof(float))};
        memcpy(g[0], a1->grad, a1->size * sizeof(float));
        memcpy(g[1], b1->grad, b1->size * sizeof(float));
        fm_backward(tp, l2, NULL);
        worst |= memcmp(g[0], a2->grad, a1->size * sizeof(float)) || memcmp(g[1], b2->grad, b1->size * sizeof(float));
        free(g[0]), free(g[1]);
    }
    t_check(!worst && shared, "a sum written over its first input: fm_add's values and gradients bit for bit "
                              "(same shape and per-channel), on the input's own values (%s)",
            shared ? "shared" : "NOT shared");
    fm_tape_free(tp);
}

static void profile_counts(fm_rng *r)
{
    enum { M = 96, K = 40, N = 32 };
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *x = fm_tensor_new(tp, 2, (int[]){M, K}), *w = fm_tensor_new(tp, 2, (int[]){N, K});
    fm_rng_normal_fill(r, x->data, x->size, 0, 1);
    fm_rng_normal_fill(r, w->data, w->size, 0, 1);
    fm_tensor_requires_grad(x, 1);
    fm_tensor_requires_grad(w, 1);
    fm__prof_set(2);
    fm__prof_clear();
    fm_tensor *y = fm_linear(tp, x, w, NULL);
    fm_status s = fm_backward(tp, fm_sum(tp, y), NULL);
    fm__prof_entry e[FM__PROF_KINDS];
    double total = 0, fwd = -1, bwd = -1, sec = 0;
    long calls = 0;
    int n = fm__prof_report(e, FM__PROF_KINDS, &total);
    for (int i = 0; i < n; i++) {
        if (!strcmp(e[i].name, "linear")) {
            if (e[i].backward) bwd = e[i].flops;
            else fwd = e[i].flops, calls = e[i].calls;
        }
        sec += e[i].sec;
    }
    /* a convolution counts 2 N O Ho Wo C kh kw per pass, forward, input and weight gradients */
    fm__prof_clear();
    fm_tensor *im = t_t4(tp, 2, 3, 8, 8), *k = t_t4(tp, 4, 3, 3, 3);
    fm_rng_normal_fill(r, im->data, im->size, 0, 1);
    fm_rng_normal_fill(r, k->data, k->size, 0, 1);
    fm_tensor_requires_grad(im, 1);
    fm_tensor_requires_grad(k, 1);
    fm_tensor *cy = fm_conv2d(tp, im, k, NULL, 1, 1);
    double cf = 0, cb = 0;
    fm__prof_report(e, FM__PROF_KINDS, &cf);
    fm_status cs = cy ? fm_backward(tp, fm_sum(tp, cy), NULL) : FM_ERR_STATE;
    fm__prof_report(e, FM__PROF_KINDS, &cb);
    double cwant = 2.0 * 2 * 4 * 8 * 8 * 3 * 3 * 3;
    fm__prof_set(0);
    fm__prof_clear();
    fm_linear(tp, x, w, NULL);
    double after = -1;
    fm__prof_report(e, FM__PROF_KINDS, &after);
    double want = 2.0 * M * N * K;
    t_check(!s && fwd == want && bwd == 2 * want && total == 3 * want && calls == 1 && sec >= 0 && after == 0,
            "profile: a (%d x %d) (%d x %d)^T product counts %.0f flops forward (want %.0f), %.0f backward (want %.0f), "
            "%.0f in all, %ld call; nothing once off (%.0f)",
            M, K, N, K, fwd, want, bwd, 2 * want, total, calls, after);
    t_check(!cs && cf == cwant && cb == 3 * cwant,
            "profile: a 3x3 convolution, 2 x 3 x 8 x 8 -> 4 channels, counts %.0f flops forward (want %.0f) and %.0f "
            "with its backward (want %.0f)",
            cf, cwant, cb, 3 * cwant);
    fm_tape_free(tp);
}

void test_perf(void)
{
    fm_rng r;
    fm_rng_seed(&r, 23, FM_STREAM_INIT);
    gemm_cases(&r);
    spare_gradients(&r);
    add_into(&r);
    profile_counts(&r);
}
