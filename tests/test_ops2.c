/* test_ops2.c - group_norm, embedding, cross_entropy and dropout beyond the
 * PyTorch fixtures (those are in the ops and gradcheck groups): argument and
 * shape errors that return NULL with a message; group_norm against direct
 * float64 sums on an input large enough to be threaded, bit-identical on 1, 2
 * and 3 threads, and fused with an activation (fm__group_norm_act) the same
 * bits as group_norm then the activation; embedding ids copied at the call; cross_entropy's gradient
 * on a confident row element by element; dropout's mask statistics,
 * exact scaling, backward through the same mask and the identity when not
 * training.
 */
#include "harness.h"
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fm_tensor *t1(fm_tape *tp, int a) { return fm_tensor_new(tp, 1, (int[]){a}); }

static void errors(void)
{
    fm_tape *tp = fm_tape_new(0);
    fm_rng r;
    fm_rng_seed(&r, 1, 0);
    /* group_norm */
    t_expect_fail(tp, fm_group_norm(tp, t1(tp, 5), 1, NULL, NULL, 1e-5f), FM_ERR_SHAPE, "group_norm 1-D input", "[5]",
                "[N, C]");
    t_expect_fail(tp, fm_group_norm(tp, t_t4(tp, 2, 6, 3, 3), 0, NULL, NULL, 1e-5f), FM_ERR_ARG, "group_norm 0 groups",
                "groups 0", "[2, 6, 3, 3]");
    t_expect_fail(tp, fm_group_norm(tp, t_t4(tp, 2, 6, 3, 3), 4, NULL, NULL, 1e-5f), FM_ERR_SHAPE,
                "group_norm 6 channels in 4 groups", "6 channels", "4 groups");
    t_expect_fail(tp, fm_group_norm(tp, fm_tensor_2d(tp, 3, 6), 4, NULL, NULL, 1e-5f), FM_ERR_SHAPE,
                "group_norm [3, 6] in 4 groups", "[3, 6]", "4 groups");
    t_expect_fail(tp, fm_group_norm(tp, t_t4(tp, 2, 6, 3, 3), 3, t1(tp, 5), NULL, 1e-5f), FM_ERR_SHAPE,
                "group_norm gamma of 5 for 6 channels", "gamma [5]", "expected [6]");
    t_expect_fail(tp, fm_group_norm(tp, t_t4(tp, 2, 6, 3, 3), 3, NULL, fm_tensor_2d(tp, 1, 6), 1e-5f), FM_ERR_SHAPE,
                "group_norm 2-D beta", "beta [1, 6]", "[2, 6, 3, 3]");
    t_expect_fail(tp, fm_group_norm(tp, t_t4(tp, 2, 6, 3, 3), 3, NULL, NULL, -1.0f), FM_ERR_ARG, "group_norm eps -1",
                "eps -1", "[2, 6, 3, 3]");
    t_expect_fail(tp, fm_group_norm(tp, t_t4(tp, 2, 6, 3, 3), 3, NULL, NULL, NAN), FM_ERR_ARG, "group_norm eps NaN",
                "eps nan", NULL);
    t_expect_fail(tp, fm_group_norm(tp, NULL, 3, NULL, NULL, 1e-5f), FM_ERR_ARG, "group_norm NULL input",
                "group_norm: input 1 is NULL", NULL);
    /* embedding */
    int ids[4] = {3, 0, 11, 2};
    t_expect_fail(tp, fm_embedding(tp, t1(tp, 11), ids, 2), FM_ERR_SHAPE, "embedding 1-D weight", "[11]",
                "[num, dim]");
    t_expect_fail(tp, fm_embedding(tp, fm_tensor_2d(tp, 11, 4), NULL, 2), FM_ERR_ARG, "embedding NULL ids",
                "ids is NULL", "[11, 4]");
    t_expect_fail(tp, fm_embedding(tp, fm_tensor_2d(tp, 11, 4), ids, 0), FM_ERR_ARG, "embedding 0 ids", "0 ids",
                "[11, 4]");
    t_expect_fail(tp, fm_embedding(tp, fm_tensor_2d(tp, 11, 4), ids, 4), FM_ERR_ARG, "embedding id 11 of 11",
                "id 11 (position 2)", "[0, 11)");
    ids[1] = -1;
    t_expect_fail(tp, fm_embedding(tp, fm_tensor_2d(tp, 11, 4), ids, 2), FM_ERR_ARG, "embedding id -1",
                "id -1 (position 1)", "[11, 4]");
    t_expect_fail(tp, fm_embedding(tp, NULL, ids, 1), FM_ERR_ARG, "embedding NULL weight",
                "embedding: input 1 is NULL", NULL);
    /* cross_entropy */
    int labels[3] = {0, 4, 1};
    t_expect_fail(tp, fm_cross_entropy(tp, t1(tp, 5), labels, FM_REDUCE_MEAN), FM_ERR_SHAPE, "cross_entropy 1-D logits",
                "[5]", "[B, K]");
    t_expect_fail(tp, fm_cross_entropy(tp, fm_tensor_2d(tp, 3, 4), NULL, FM_REDUCE_MEAN), FM_ERR_ARG,
                "cross_entropy NULL labels", "labels is NULL", "[3, 4]");
    t_expect_fail(tp, fm_cross_entropy(tp, fm_tensor_2d(tp, 3, 4), labels, FM_REDUCE_SUM), FM_ERR_ARG,
                "cross_entropy label 4 of 4 classes", "label 4 of row 1", "[0, 4)");
    labels[1] = -2;
    t_expect_fail(tp, fm_cross_entropy(tp, fm_tensor_2d(tp, 3, 4), labels, FM_REDUCE_SUM), FM_ERR_ARG,
                "cross_entropy label -2", "label -2 of row 1", "[3, 4]");
    labels[1] = 1;
    t_expect_fail(tp, fm_cross_entropy(tp, fm_tensor_2d(tp, 3, 4), labels, (fm_reduce)7), FM_ERR_ARG,
                "cross_entropy reduction 7", "unknown reduction 7", NULL);
    /* dropout */
    t_expect_fail(tp, fm_dropout(tp, fm_tensor_2d(tp, 2, 3), 1.0f, &r, 1), FM_ERR_ARG, "dropout p 1",
                "probability 1 ", "[0, 1)");
    t_expect_fail(tp, fm_dropout(tp, fm_tensor_2d(tp, 2, 3), -0.25f, &r, 0), FM_ERR_ARG,
                "dropout p -0.25 (checked when not training too)", "probability -0.25", "[2, 3]");
    t_expect_fail(tp, fm_dropout(tp, fm_tensor_2d(tp, 2, 3), NAN, &r, 1), FM_ERR_ARG, "dropout p NaN",
                "probability nan", NULL);
    t_expect_fail(tp, fm_dropout(tp, fm_tensor_2d(tp, 2, 3), 0.5f, NULL, 1), FM_ERR_ARG,
                "dropout without a generator while training", "generator is NULL", "[2, 3]");
    t_expect_fail(tp, fm_dropout(tp, NULL, 0.5f, &r, 1), FM_ERR_ARG, "dropout NULL input", "dropout: input 1 is NULL",
                NULL);

    /* the error is sticky: later ops return NULL and backward names the first */
    fm_tensor *z = fm_tensor_2d(tp, 3, 4);
    fm_tensor_requires_grad(z, 1);
    labels[2] = 9;
    fm_tensor *bad = fm_cross_entropy(tp, z, labels, FM_REDUCE_MEAN);
    fm_tensor *later = fm_sum(tp, fm_group_norm(tp, z, 2, NULL, NULL, 1e-5f));
    fm_status bs = fm_backward(tp, later, NULL);
    t_check(bad == NULL && later == NULL && bs == FM_ERR_ARG && strstr(fm_last_error(), "label 9 of row 2"),
            "cross_entropy error is sticky: %s", fm_last_error());
    fm_tape_free(tp);
}

/* ---- group_norm on a larger input */

typedef struct {
    float *y, *dx, *dg, *db;
} gn_run;

static void gn_free(gn_run *r)
{
    free(r->y);
    free(r->dx);
    free(r->dg);
    free(r->db);
}

/* Forward and backward with `threads`; gamma and beta are parameters, so
 * their gradients accumulate over `passes`. */
static int gn_once(const int *shape, int groups, const float *xv, const float *gv, const float *bv, const float *dy,
                   int threads, int passes, gn_run *out)
{
    fm_set_threads(threads);
    int C = shape[1];
    fm_params *P = fm_params_new();
    int gi = fm_params_add(P, "gamma", 1, &C), bi = fm_params_add(P, "beta", 1, &C);
    fm_tensor *g = fm_params_tensor(P, gi), *b = fm_params_tensor(P, bi);
    memcpy(g->data, gv, (size_t)C * sizeof(float));
    memcpy(b->data, bv, (size_t)C * sizeof(float));
    fm_params_zero_grad(P);
    fm_params_requires_grad(P, 1);
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *x = fm_tensor_copy(tp, xv, 4, shape);
    fm_tensor_requires_grad(x, 1);
    fm_tensor *y = fm_group_norm(tp, x, groups, g, b, 1e-5f);
    int ok = y != NULL;
    for (int p = 0; ok && p < passes; p++) ok = fm_backward(tp, y, dy) == FM_OK;
    memset(out, 0, sizeof *out);
    if (ok) {
        out->y = t_dup(y->data, y->size);
        out->dx = t_dup(x->grad, x->size);
        out->dg = t_dup(g->grad, (size_t)C);
        out->db = t_dup(b->grad, (size_t)C);
    } else {
        t_check(0, "group_norm failed: %s", fm_last_error());
    }
    fm_tape_free(tp);
    fm_params_free(P);
    fm_set_threads(0);
    return ok;
}

static void gn_large(void)
{
    int shape[4] = {6, 32, 24, 24}, G = 8, C = shape[1];
    size_t S = (size_t)shape[2] * shape[3], n = (size_t)shape[0] * C * S, m = (size_t)(C / G) * S;
    fm_rng r;
    fm_rng_seed(&r, 21, 0);
    float *x = malloc(n * sizeof(float)), *dy = malloc(n * sizeof(float));
    float gv[32], bv[32];
    fm_rng_normal_fill(&r, x, n, 0.5f, 2.0f);
    fm_rng_normal_fill(&r, dy, n, 0.0f, 1.0f);
    fm_rng_uniform_fill(&r, gv, 32, 0.5f, 1.5f);
    fm_rng_normal_fill(&r, bv, 32, 0.0f, 1.0f);
    gn_run run[3];
    int ok = 1;
    for (int q = 0; q < 3; q++) ok &= gn_once(shape, G, x, gv, bv, dy, q + 1, 1, &run[q]);
    if (ok) {
        /* direct float64 reference, one group at a time */
        float *ry = malloc(n * sizeof(float)), *rx = malloc(n * sizeof(float));
        float rg[32], rb[32];
        double ag[32] = {0}, ab[32] = {0};
        for (size_t q = 0; q < n / m; q++) {
            const float *xq = x + q * m, *dq = dy + q * m;
            int c0 = (int)(q % (size_t)G) * (C / G);
            double mean = 0, var = 0;
            for (size_t i = 0; i < m; i++) mean += xq[i];
            mean /= (double)m;
            for (size_t i = 0; i < m; i++) var += (xq[i] - mean) * (xq[i] - mean);
            double rstd = 1.0 / sqrt(var / (double)m + 1e-5), sg = 0, sgx = 0;
            for (size_t i = 0; i < m; i++) {
                int c = c0 + (int)(i / S);
                double xh = (xq[i] - mean) * rstd;
                ry[q * m + i] = (float)(xh * gv[c] + bv[c]);
                ag[c] += dq[i] * xh;
                ab[c] += dq[i];
                sg += dq[i] * gv[c];
                sgx += dq[i] * gv[c] * xh;
            }
            for (size_t i = 0; i < m; i++) {
                int c = c0 + (int)(i / S);
                double xh = (xq[i] - mean) * rstd;
                rx[q * m + i] = (float)(rstd * (dq[i] * gv[c] - sg / (double)m - xh * sgx / (double)m));
            }
        }
        for (int c = 0; c < C; c++) {
            rg[c] = (float)ag[c];
            rb[c] = (float)ab[c];
        }
        t_close("group_norm 6x32x24x24 G8 forward", run[0].y, ry, n, 1e-6);
        t_close("group_norm 6x32x24x24 G8 dx", run[0].dx, rx, n, 1e-6);
        t_close("group_norm 6x32x24x24 G8 dgamma", run[0].dg, rg, 32, 1e-6);
        t_close("group_norm 6x32x24x24 G8 dbeta", run[0].db, rb, 32, 1e-6);
        int same = 1;
        for (int q = 1; q < 3; q++) {
            same &= !memcmp(run[0].y, run[q].y, n * sizeof(float));
            same &= !memcmp(run[0].dx, run[q].dx, n * sizeof(float));
            same &= !memcmp(run[0].dg, run[q].dg, 32 * sizeof(float));
            same &= !memcmp(run[0].db, run[q].db, 32 * sizeof(float));
        }
        t_check(same, "group_norm: y, dx, dgamma, dbeta bit-identical on 1, 2 and 3 threads");
        free(ry);
        free(rx);
        gn_run twice;
        if (gn_once(shape, G, x, gv, bv, dy, 2, 2, &twice)) {
            int acc = 1;
            for (int c = 0; c < C; c++) acc &= twice.dg[c] == 2 * run[0].dg[c] && twice.db[c] == 2 * run[0].db[c];
            t_check(acc, "group_norm: a second backward pass doubles dgamma and dbeta");
            gn_free(&twice);
        }
    }
    for (int q = 0; q < 3; q++) gn_free(&run[q]);
    free(x);
    free(dy);
}

/* ---- embedding: the ids are the caller's only during the call */

static void embedding_ids_copied(void)
{
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *w = fm_tensor_2d(tp, 11, 3);
    for (size_t i = 0; i < w->size; i++) w->data[i] = (float)i;
    fm_tensor_requires_grad(w, 1);
    int ids[5] = {10, 2, 10, 10, 4};
    fm_tensor *y = fm_embedding(tp, w, ids, 5);
    ids[0] = ids[2] = ids[3] = 0; /* must not matter now */
    float dy[15];
    for (int i = 0; i < 15; i++) dy[i] = (float)(i + 1) * 0.5f;
    fm_status s = y ? fm_backward(tp, y, dy) : FM_ERR_ARG;
    int ok = s == FM_OK && y->data[0] == 30.0f && y->data[3] == 6.0f && w->grad;
    /* row 10 gets rows 0, 2 and 3 of dy; rows 0, 1, 3, 5-9 nothing */
    for (int j = 0; ok && j < 3; j++) {
        ok &= w->grad[30 + j] == dy[j] + dy[6 + j] + dy[9 + j];
        ok &= w->grad[6 + j] == dy[3 + j] && w->grad[12 + j] == dy[12 + j];
    }
    for (int row = 0; ok && row < 11; row++)
        if (row != 2 && row != 4 && row != 10)
            for (int j = 0; j < 3; j++) ok &= w->grad[row * 3 + j] == 0.0f;
    t_check(ok, "embedding: ids copied at the call; repeated id 10 sums its rows, unused rows stay 0%s",
            s == FM_OK ? "" : fm_last_error());
    fm_tape_free(tp);
}

/* ---- cross_entropy on a confident row: the label's gradient p - 1 is about
 * -2 exp(-30), far below float's resolution of 1, and must not round to 0 */

static void cross_entropy_confident(void)
{
    fm_tape *tp = fm_tape_new(0);
    float zv[6] = {30, 0, 0, 0, -30, 0};
    int labels[2] = {0, 1};
    fm_tensor *z = fm_tensor_copy(tp, zv, 2, (int[]){2, 3});
    fm_tensor_requires_grad(z, 1);
    fm_tensor *L = fm_cross_entropy(tp, z, labels, FM_REDUCE_SUM);
    fm_status s = L ? fm_backward(tp, L, NULL) : FM_ERR_ARG;
    double e30 = exp(-30.0), lse0 = 30.0 + log1p(2 * e30), lse1 = log(2.0 + e30);
    double want_loss = (lse0 - 30.0) + (lse1 + 30.0);
    double want[6] = {-2 * e30 / (1 + 2 * e30), e30 / (1 + 2 * e30), e30 / (1 + 2 * e30),
                      1 / (2 + e30), e30 / (2 + e30) - 1, 1 / (2 + e30)};
    double worst = 0;
    for (int i = 0; s == FM_OK && i < 6; i++) {
        double e = fabs(z->grad[i] - want[i]) / fabs(want[i]);
        if (e > worst) worst = e;
    }
    /* the confident row alone: its loss, log(1 + 2 exp(-30)) ~ 1.9e-13, would vanish in the sum */
    fm_tensor *z0 = fm_tensor_copy(tp, zv, 2, (int[]){1, 3});
    fm_tensor *L0 = fm_cross_entropy(tp, z0, labels, FM_REDUCE_SUM);
    double want0 = log1p(2 * e30), e0 = L0 ? fabs(L0->data[0] - want0) / want0 : INFINITY;
    t_check(s == FM_OK && fabs(L->data[0] - want_loss) <= 1e-6 * want_loss && worst <= 1e-6 && e0 <= 1e-6,
            "cross_entropy: logits 30 and -30: loss %.9g (%.9g), the confident row alone %.4g (rel err %.1e), every "
            "gradient within %.1e of its own size%s",
            L ? (double)L->data[0] : NAN, want_loss, L0 ? (double)L0->data[0] : NAN, e0, worst,
            s == FM_OK ? "" : fm_last_error());
    fm_tape_free(tp);
}

/* ---- dropout */

static void dropout_props(float p)
{
    const int R = 200, Cc = 500;
    size_t n = (size_t)R * Cc;
    fm_rng r, r0;
    fm_rng_seed(&r, 77, 3);
    float *xv = malloc(n * sizeof(float)), *dy = malloc(n * sizeof(float));
    fm_rng_uniform_fill(&r, xv, n, 0.5f, 3.0f); /* never 0, so dropped entries show */
    for (size_t i = 0; i < n; i += 2) xv[i] = -xv[i];
    fm_rng_normal_fill(&r, dy, n, 0.0f, 1.0f);
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *x = fm_tensor_copy(tp, xv, 2, (int[]){R, Cc});
    fm_tensor_requires_grad(x, 1);
    r0 = r;
    fm_tensor *y = fm_dropout(tp, x, p, &r, 1);
    fm_status s = y ? fm_backward(tp, y, dy) : FM_ERR_ARG;
    if (!t_check(y && s == FM_OK, "dropout p %.2f runs%s", p, y && s == FM_OK ? "" : fm_last_error())) {
        fm_tape_free(tp);
        free(xv);
        free(dy);
        return;
    }
    double q = 1.0 - (double)p;
    size_t kept = 0, bad_y = 0, bad_dx = 0, bad_mask = 0;
    for (size_t i = 0; i < n; i++) {
        int keep = fm_rng_uniform(&r0) >= (double)p; /* the documented draw */
        kept += keep;
        bad_mask += keep != (y->data[i] != 0.0f);
        bad_y += keep ? y->data[i] != (float)(xv[i] / q) : y->data[i] != 0.0f;
        bad_dx += keep ? x->grad[i] != (float)(dy[i] / q) : x->grad[i] != 0.0f;
    }
    double frac = (double)kept / (double)n, se = sqrt((double)p * q / (double)n);
    t_check(fabs(frac - q) <= 4 * se, "dropout p %.2f keeps %.5f of %zu (1 - p = %.5f, %.1f standard errors)", p, frac,
            n, q, fabs(frac - q) / se);
    t_check(bad_y == 0 && bad_mask == 0, "dropout p %.2f: kept entries exactly x / (1 - p), dropped 0, mask as drawn",
            p);
    t_check(bad_dx == 0, "dropout p %.2f: backward dy / (1 - p) through the same mask, 0 elsewhere", p);
    t_check(!memcmp(r.s, r0.s, sizeof r.s), "dropout p %.2f: the generator advanced by one draw per element", p);
    fm_tape_free(tp);
    free(xv);
    free(dy);
}

static void dropout_identity(void)
{
    fm_tape *tp = fm_tape_new(0);
    fm_rng r, r0;
    fm_rng_seed(&r, 5, 0);
    r0 = r;
    fm_tensor *x = fm_tensor_2d(tp, 3, 4);
    for (size_t i = 0; i < x->size; i++) x->data[i] = (float)i - 5.5f;
    fm_tensor_requires_grad(x, 1);
    fm_tensor *a = fm_dropout(tp, x, 0.5f, &r, 0), *b = fm_dropout(tp, x, 0.0f, &r, 1);
    fm_tensor *c = fm_dropout(tp, x, 0.9f, NULL, 0);
    t_check(a == x && b == x && c == x && !memcmp(r.s, r0.s, sizeof r.s),
            "dropout: not training, or p 0, returns x itself and draws nothing%s", a && b && c ? "" : fm_last_error());
    fm_status s = fm_backward(tp, fm_sum(tp, fm_scale(tp, a, 2.0f)), NULL);
    int ok = s == FM_OK && x->grad;
    for (size_t i = 0; ok && i < x->size; i++) ok &= x->grad[i] == 2.0f;
    t_check(ok, "dropout: the identity passes the gradient unchanged%s", s == FM_OK ? "" : fm_last_error());
    /* the same seed gives the same mask */
    fm_rng r1, r2;
    fm_rng_seed(&r1, 9, 1);
    fm_rng_seed(&r2, 9, 1);
    fm_tensor *y1 = fm_dropout(tp, x, 0.5f, &r1, 1), *y2 = fm_dropout(tp, x, 0.5f, &r2, 1);
    t_check(y1 && y2 && !memcmp(y1->data, y2->data, x->size * sizeof(float)),
            "dropout: the same generator state gives the same output");
    fm_tape_free(tp);
}

/* fm__group_norm_act: the bits of fm_group_norm then fm_activation, forward
 * and backward (x, gamma, beta), on 1 and 2 threads; a gradient that already
 * holds something is added to. */
static void gn_act_fused(void)
{
    static const fm_act acts[3] = {FM_ACT_SILU, FM_ACT_ELU, FM_ACT_GELU};
    int shape[4] = {6, 32, 12, 12}, C = 32;
    size_t n = (size_t)6 * C * 144;
    float *res[2][4];
    for (int a = 0; a < 3; a++) {
        int same = 1;
        for (int threads = 1; threads <= 2; threads++) {
            for (int fused = 0; fused < 2; fused++) {
                fm_set_threads(threads);
                fm_rng r;
                fm_rng_seed(&r, 31, 0);
                fm_tape *tp = fm_tape_new(0);
                fm_tensor *x = fm_tensor_new(tp, 4, shape), *g = t1(tp, C), *b = t1(tp, C);
                fm_rng_normal_fill(&r, x->data, n, 2, 3);
                fm_rng_normal_fill(&r, g->data, (size_t)C, 1, 0.5f);
                fm_rng_normal_fill(&r, b->data, (size_t)C, 0, 0.5f);
                fm_tensor_requires_grad(x, 1);
                fm_tensor_requires_grad(g, 1);
                fm_tensor_requires_grad(b, 1);
                fm_tensor *y = fused ? fm__group_norm_act(tp, x, 8, g, b, 1e-5f, acts[a])
                                     : fm_activation(tp, fm_group_norm(tp, x, 8, g, b, 1e-5f), acts[a]);
                /* x also feeds the sum, so its gradient is added to after the norm's is written */
                fm_tensor *l = y ? fm_add(tp, fm_sum(tp, fm_mul(tp, y, y)), fm_sum(tp, x)) : NULL;
                if (!l || fm_backward(tp, l, NULL) != FM_OK) {
                    t_check(0, "group_norm_act failed: %s", fm_last_error());
                    fm_tape_free(tp);
                    fm_set_threads(0);
                    return;
                }
                res[fused][0] = t_dup(y->data, n);
                res[fused][1] = t_dup(x->grad, n);
                res[fused][2] = t_dup(g->grad, (size_t)C);
                res[fused][3] = t_dup(b->grad, (size_t)C);
                fm_tape_free(tp);
                fm_set_threads(0);
            }
            for (int k = 0; k < 4; k++) {
                same &= !memcmp(res[0][k], res[1][k], (k < 2 ? n : (size_t)C) * sizeof(float));
                free(res[0][k]);
                free(res[1][k]);
            }
        }
        t_check(same, "group_norm_act (%s): output and gradients the bits of group_norm then %s, on 1 and 2 threads",
                fm_act_name(acts[a]), fm_act_name(acts[a]));
    }
    fm_tape *tp = fm_tape_new(0);
    t_expect_fail(tp, fm__group_norm_act(tp, t_t4(tp, 2, 6, 3, 3), 3, NULL, NULL, 1e-5f, (fm_act)99), FM_ERR_ARG,
                  "group_norm_act unknown activation", "activation 99", "[2, 6, 3, 3]");
    fm_tape_free(tp);
}

void test_ops2(void)
{
    errors();
    gn_large();
    gn_act_fused();
    embedding_ids_copied();
    cross_entropy_confident();
    dropout_props(0.3f);
    dropout_props(0.5f);
    dropout_props(0.9f);
    dropout_identity();
}
