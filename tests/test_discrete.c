/* test_discrete.c - discrete flow matching: its loss against finite
 * differences, the jump sampler against a two-state chain's closed form,
 * the ELBO above the true NLL of a set with a known likelihood, the method
 * learning that set, and the token datasets. */
#include "harness.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The loss op's gradient against central differences, both forms. */
static void loss_gradient(void)
{
    enum { N = 6, V = 5 };
    int x1[N] = {0, 1, 2, 3, 4, 2}, xt[N] = {0, V, 2, 1, V, 2}; /* same, mask, same, other, mask, same */
    float w[N] = {1.0f, 0.5f, 2.0f, 1.5f, 0.7f, 1.2f}, z[N * V];
    fm_rng r;
    fm_rng_seed(&r, 2, FM_STREAM_NOISE);
    for (int i = 0; i < N * V; i++) z[i] = (float)(2 * fm_rng_normal(&r));
    for (int gkl = 0; gkl < 2; gkl++) {
        fm_tape *tp = fm_tape_new(0);
        int zs[2] = {N, V};
        fm_tensor *Z = fm_tensor_copy(tp, z, 2, zs);
        fm_tensor_requires_grad(Z, 1);
        fm_tensor *l = fm__dfm_loss(tp, Z, x1, xt, w, gkl, V, 0);
        fm_status s = l ? fm_backward(tp, l, NULL) : fm_tape_status(tp);
        double err = 0, h = 1e-3;
        for (int i = 0; !s && i < N * V; i++) {
            float zp[N * V], zm[N * V];
            memcpy(zp, z, sizeof z), memcpy(zm, z, sizeof z);
            zp[i] += (float)h, zm[i] -= (float)h;
            fm_tape *t2 = fm_tape_new(0);
            double lp = fm__dfm_loss(t2, fm_tensor_copy(t2, zp, 2, zs), x1, xt, w, gkl, V, 0)->data[0];
            double lm = fm__dfm_loss(t2, fm_tensor_copy(t2, zm, 2, zs), x1, xt, w, gkl, V, 0)->data[0];
            fm_tape_free(t2);
            err = fmax(err, fabs((lp - lm) / (2 * h) - Z->grad[i]));
        }
        t_check(!s && err < 2e-3, "dfm loss (%s): gradient against central differences, largest difference %.1e %s",
                gkl ? "generalised KL" : "cross-entropy", err, T_ERR(s));
        fm_tape_free(tp);
    }
}

/* The exact posterior of one position whose data are token 1 with
 * probability 0.7 (V = 2): from the mask, (0.3, 0.7); from a token, itself. */
static fm_status exact_posterior(void *ctx, const float *t, const int *x, int n, float *logits)
{
    (void)ctx, (void)t;
    for (int i = 0; i < n; i++) {
        if (x[i] == 2) logits[2 * i] = (float)log(0.3), logits[2 * i + 1] = (float)log(0.7);
        else logits[2 * i] = x[i] == 0 ? 0.0f : -40.0f, logits[2 * i + 1] = x[i] == 1 ? 0.0f : -40.0f;
    }
    return FM_OK;
}

/* The two-state chain: with the exact posterior, the share still masked at
 * time t is 1 - kappa_t, and at t = 1 the tokens have the data's law. */
static void two_state_chain(void)
{
    enum { N = 40000 };
    static int x[N];
    double grid[201];
    for (int c = 0; c < 2; c++) {
        double corr = c ? 1.0 : 0.0;
        fm_rng r;
        fm_rng_seed(&r, 11, FM_STREAM_NOISE);
        /* to t = 0.5 in 100 steps: kappa = 0.25, so 75% still masked */
        for (int i = 0; i < N; i++) x[i] = 2;
        fm_time_grid_uniform(grid, 100, 0.0, 0.5);
        fm_status s = fm__dfm_euler(2, 1, 0, 2.0, corr, exact_posterior, NULL, &r, grid, 101, x, N, NULL);
        int masked = 0, ones = 0;
        for (int i = 0; i < N; i++) masked += x[i] == 2, ones += x[i] == 1;
        double pm = (double)masked / N, want = 1 - 0.5 * 0.5, se = sqrt(want * (1 - want) / N);
        /* and the unmasked ones already carry the data's law */
        double p1 = masked < N ? (double)ones / (N - masked) : 0, se1 = sqrt(0.21 / (N - masked + 1));
        /* to t = 1 in 200 steps */
        for (int i = 0; i < N; i++) x[i] = 2;
        fm_time_grid_uniform(grid, 200, 0.0, 1.0);
        if (!s) s = fm__dfm_euler(2, 1, 0, 2.0, corr, exact_posterior, NULL, &r, grid, 201, x, N, NULL);
        int end1 = 0, endm = 0;
        for (int i = 0; i < N; i++) end1 += x[i] == 1, endm += x[i] == 2;
        double q = (double)end1 / N, seq = sqrt(0.21 / N);
        t_check(!s && fabs(pm - want) < 4 * se + 0.005 && fabs(p1 - 0.7) < 4 * se1 && fabs(q - 0.7) < 4 * seq && endm == 0,
                "jump sampler%s on a two-state chain: masked at t = 0.5 %.4f (1 - kappa = %.4f), unmasked ones token 1 "
                "%.4f (0.7), at t = 1 token 1 %.4f (0.7) and none masked %s", c ? " with the divergence-free term" : "",
                pm, want, p1, q, T_ERR(s));
    }
}

/* checkerboard-tokens with 8 bins a coordinate: uniform over the 32 bin
 * pairs of the 8 dark squares, so the NLL of every point is log 32. */
static void learns_checkerboard(void)
{
    fm_train_config c = fm_train_config_for((fm_method)fm_method_from_name("dfm"));
    c.flow.data = "checkerboard-tokens:vocab=8";
    c.batch = 256;
    c.iters = 1500;
    c.flow.net.nhidden = 2;
    c.flow.net.width[0] = c.flow.net.width[1] = 128;
    c.optim.lr = 2e-3;
    c.seed = 3;
    fm_set_threads(2);
    fm_trainer *tr = t_trained(&c, (int)c.iters);
    fm_model *M = tr ? fm_trainer_model(tr) : NULL;
    enum { N = 2000 };
    float x[2 * N], y[2 * N];
    double lp[N], nll = 0, nll2 = 0;
    fm_dataset *ds = fm_dataset_open(c.flow.data);
    fm_rng r;
    fm_rng_seed(&r, 5, FM_STREAM_DATA);
    fm_status s = M && ds ? fm_dataset_sample(ds, &r, x, N) : FM_ERR_STATE;
    if (!s) s = fm_model_log_prob(M, x, N, lp);
    for (int i = 0; !s && i < N; i++) nll -= lp[i] / N, nll2 += lp[i] * lp[i] / N;
    double sd = sqrt(fmax(nll2 - nll * nll, 0)), se = sd / sqrt(N), h = log(32.0);
    t_check(!s && nll > h - 4 * se && nll < h + 1.0,
            "dfm on checkerboard-tokens:vocab=8 (1500 steps): the ELBO's NLL %.3f nats (standard error %.3f) bounds "
            "the true NLL log 32 = %.3f from above, within 1 nat %s", nll, se, h, T_ERR(s));
    /* its samples: on the dark squares (bin pairs with an even sum of 4-bin cells... of 2-bin cells here) */
    fm_solver_config sc = fm_solver_config_default(FM_SOLVER_EULER);
    sc.sampler = "euler";
    double grid[65];
    fm_time_grid_uniform(grid, 64, 0.0, 1.0);
    if (!s) s = fm_model_sample(M, N, &r, &sc, grid, 65, y, NULL, NULL, NULL);
    int dark = 0, dark_data = 0;
    for (int i = 0; !s && i < N; i++) {
        dark += ((int)y[2 * i] / 2 + (int)y[2 * i + 1] / 2) % 2 == 0;
        dark_data += ((int)x[2 * i] / 2 + (int)x[2 * i + 1] / 2) % 2 == 0;
    }
    t_check(!s && dark_data == N && dark > 0.9 * N, "dfm samples on the dark squares: %.1f%% (the data: %.1f%%) %s",
            100.0 * dark / N, 100.0 * dark_data / N, T_ERR(s));
    fm_dataset_free(ds);
    fm_trainer_free(tr);
}

static void token_data(void)
{
    const char *p = t_path("words.txt");
    FILE *f = fopen(p, "wb");
    for (int i = 0; f && i < 40; i++) fprintf(f, "%s\n", i == 3 ? "Zebra" : i == 5 ? "it's" : i == 7 ? "abcdefghijklmnop" : "word");
    if (f) fclose(f);
    char spec[600], spec_t[620];
    snprintf(spec, sizeof spec, "words:%s", p);
    snprintf(spec_t, sizeof spec_t, "words:%s,split=test", p);
    fm_dataset *a = fm_dataset_open(spec), *b = fm_dataset_open(spec_t);
    float row[12];
    int ok = a && b && fm_dataset_vocab(a) == 27 && fm_dataset_dim(a) == 12;
    /* 38 usable (an apostrophe and 16 letters are not), every tenth the test split: 3 test, 35 train */
    ok = ok && fm_dataset_rows(a) == 35 && fm_dataset_rows(b) == 3 && fm_dataset_read_rows(a, 3, 1, row) == FM_OK;
    t_check(ok && row[0] == 26 && row[1] == 5 && row[4] == 1 && row[5] == 0,
            "words: 27 tokens of 12 columns, upper case folded, words with other characters or over 12 letters skipped, "
            "every tenth the test split (%d, %d rows) %s", a ? fm_dataset_rows(a) : -1, b ? fm_dataset_rows(b) : -1,
            T_ERRP(a));
    fm_dataset_free(a), fm_dataset_free(b);
}

/* The U-Net's channel-major logits: the loss and its gradient equal those of
 * the same logits rearranged a row a position. */
static void loss_layouts(void)
{
    enum { B = 2, L = 3, V = 4 };
    int x1[B * L] = {0, 1, 2, 3, 0, 1}, xt[B * L] = {0, V, 2, 1, V, 1};
    float w[B * L] = {1, 2, 0.5f, 1.5f, 0.3f, 1}, cm[B * V * L], rm[B * L * V];
    fm_rng r;
    fm_rng_seed(&r, 4, FM_STREAM_NOISE);
    for (int i = 0; i < B * V * L; i++) cm[i] = (float)fm_rng_normal(&r);
    for (int b = 0; b < B; b++)
        for (int v = 0; v < V; v++)
            for (int p = 0; p < L; p++) rm[(b * L + p) * V + v] = cm[b * V * L + v * L + p];
    fm_tape *tp = fm_tape_new(0), *tq = fm_tape_new(0);
    int cs[2] = {B, V * L}, rs[2] = {B * L, V};
    fm_tensor *C = fm_tensor_copy(tp, cm, 2, cs), *R = fm_tensor_copy(tq, rm, 2, rs);
    fm_tensor_requires_grad(C, 1), fm_tensor_requires_grad(R, 1);
    fm_tensor *lc = fm__dfm_loss(tp, C, x1, xt, w, 1, V, L), *lr = fm__dfm_loss(tq, R, x1, xt, w, 1, V, 0);
    fm_status s = lc && lr ? fm_backward(tp, lc, NULL) : FM_ERR_STATE;
    if (!s) s = fm_backward(tq, lr, NULL);
    double e = s ? 1 : fabs(lc->data[0] - lr->data[0]);
    for (int b = 0; !s && b < B; b++)
        for (int v = 0; v < V; v++)
            for (int p = 0; p < L; p++) e = fmax(e, fabs(C->grad[b * V * L + v * L + p] - R->grad[(b * L + p) * V + v]));
    t_check(!s && e < 1e-6, "dfm loss on channel-major logits (the U-Net's) = on rows, loss and gradient within %.1e %s",
            e, T_ERR(s));
    fm_tape_free(tp);
    fm_tape_free(tq);
}

/* Binarised digits through the U-Net: trains, resumes to the same bytes, samples 0/1 images. */
static void unet_tokens(void)
{
    const char *dir = t_path("dfm_digits");
    char spec[700], file[700];
    snprintf(spec, sizeof spec, "mnist:%s,binarize=1", dir);
    snprintf(file, sizeof file, "%s", t_path("dfm_unet.safetensors"));
    fm_train_config c = fm_train_config_for_data((fm_method)fm_method_from_name("dfm"), spec);
    c.batch = 8;
    c.iters = 4;
    c.flow.unet.base = 8;
    fm_set_threads(1);
    int made = t_digit_folder(dir, 64, 16);
    fm_trainer *full = made ? t_trained(&c, 4) : NULL, *half = made ? t_trained(&c, 2) : NULL;
    int ok = full && half && c.flow.arch == FM_ARCH_UNET && fm_trainer_save(half, file) == FM_OK;
    fm_trainer *res = ok ? fm_trainer_resume(file, 4) : NULL;
    for (int i = 0; res && i < 2; i++) ok = ok && fm_trainer_step(res, NULL) == FM_OK;
    size_t la = 0, lb = 0;
    unsigned char *a = NULL, *b = NULL;
    if (ok && res && fm_trainer_save(full, t_path("dfm_a.safetensors")) == FM_OK &&
        fm_trainer_save(res, t_path("dfm_b.safetensors")) == FM_OK)
        a = t_slurp(t_path("dfm_a.safetensors"), &la), b = t_slurp(t_path("dfm_b.safetensors"), &lb);
    int same = a && b && la == lb && !memcmp(a, b, la);
    float x[4 * 784];
    fm_rng r;
    fm_rng_seed(&r, 1, FM_STREAM_NOISE);
    fm_solver_config sc = fm_solver_config_default(FM_SOLVER_EULER);
    double grid[5];
    fm_time_grid_uniform(grid, 4, 0.0, 1.0);
    fm_status s = full ? fm_model_sample(fm_trainer_model(full), 4, &r, &sc, grid, 5, x, NULL, NULL, NULL) : FM_ERR_STATE;
    int binary = !s;
    for (int i = 0; binary && i < 4 * 784; i++) binary = x[i] == 0 || x[i] == 1;
    t_check(ok && same && binary, "dfm with the U-Net on binarised digits: 2 steps, resume, 2 steps = 4 steps (%zu bytes), "
            "samples of 0s and 1s %s", la, T_ERR(s));
    free(a), free(b);
    fm_trainer_free(full), fm_trainer_free(half), fm_trainer_free(res);
}

void test_discrete(void)
{
    loss_gradient();
    loss_layouts();
    unet_tokens();
    two_state_chain();
    token_data();
    learns_checkerboard();
}
