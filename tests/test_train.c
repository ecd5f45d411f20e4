/* test_train.c - ten steps of the tutorial's flow-matching MLP from PyTorch's
 * initial weights on PyTorch's batches: every loss, the final weights and the
 * optimizer state must match torch.optim within 1e-5 (normwise relative), for
 * Adam, AdamW, SGD with momentum and two variants. Then the same training is
 * bit-identical on 1 and 2 threads.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-5
#define STEPS 10
#define BATCH 256

typedef struct {
    const char *name;
    fm_optim_kind kind;
    double lr, wd, momentum;
    int amsgrad, nesterov, wd_set;
} optcase;

static const optcase optcases[] = {
    {"adam", FM_OPTIM_ADAM, 1e-2, 0, 0, 0, 0, 0},
    {"adamw", FM_OPTIM_ADAMW, 1e-2, 0, 0, 0, 0, 0},
    {"sgd", FM_OPTIM_SGD, 1e-2, 0, 0.9, 0, 0, 0},
    {"adam_amsgrad_wd", FM_OPTIM_ADAM, 1e-2, 1e-3, 0, 1, 0, 1},
    {"sgd_nesterov_wd", FM_OPTIM_SGD, 1e-2, 1e-4, 0.9, 0, 1, 1},
};

/* One step of the reference loss: x_t = (1 - t) x0 + t x1, target x1 - x0. */
static float fm_step(fm_tape *tp, fm_mlp *m, fm_params *P, fm_optim *o, double lr, float *x0, float *x1, float *t)
{
    fm_tape_reset(tp);
    int s2[2] = {BATCH, 2}, s1[2] = {BATCH, 1};
    fm_tensor *X0 = fm_tensor_wrap(tp, x0, 2, s2), *X1 = fm_tensor_wrap(tp, x1, 2, s2);
    fm_tensor *T = fm_tensor_wrap(tp, t, 2, s1), *OMT = fm_tensor_new(tp, 2, s1);
    for (int i = 0; OMT && i < BATCH; i++) OMT->data[i] = 1.0f - t[i];
    fm_tensor *xt = fm_add(tp, fm_mul(tp, OMT, X0), fm_mul(tp, T, X1));
    fm_tensor *loss = fm_mse_loss(tp, fm_mlp_forward(tp, m, T, xt), fm_sub(tp, X1, X0), FM_REDUCE_MEAN);
    fm_params_zero_grad(P);
    if (!loss || fm_backward(tp, loss, NULL) != FM_OK || fm_optim_step(o, lr) != FM_OK) return NAN;
    return loss->data[0];
}

typedef struct {
    float *x0[STEPS], *x1[STEPS], *t[STEPS];
} batches;

static int load_batches(const fm_st *st, batches *b)
{
    for (int i = 0; i < STEPS; i++) {
        char n[64];
        snprintf(n, sizeof n, "batch%d.x0", i);
        b->x0[i] = t_read(st, n, NULL);
        snprintf(n, sizeof n, "batch%d.x1", i);
        b->x1[i] = t_read(st, n, NULL);
        snprintf(n, sizeof n, "batch%d.t", i);
        b->t[i] = t_read(st, n, NULL);
        if (!b->x0[i] || !b->x1[i] || !b->t[i]) return 0;
    }
    return 1;
}

static void free_batches(batches *b)
{
    for (int i = 0; i < STEPS; i++) {
        free(b->x0[i]);
        free(b->x1[i]);
        free(b->t[i]);
    }
}

static fm_optim_config config_of(const optcase *c)
{
    fm_optim_config oc = fm_optim_config_default(c->kind);
    oc.lr = c->lr;
    if (c->wd_set) oc.weight_decay = c->wd;
    oc.momentum = c->momentum;
    oc.amsgrad = c->amsgrad;
    oc.nesterov = c->nesterov;
    return oc;
}

/* Compare every tensor gpre<param> of got with rpre<param> of st; every
 * parameter must be present on both sides (else counted in *missing). */
static double compare_named(fm_params *P, const fm_st *got, const char *gpre, const fm_st *st, const char *rpre,
                            int *missing)
{
    double worst = 0;
    for (int i = 0; i < fm_params_count(P); i++) {
        char gn[256], rn[256];
        snprintf(gn, sizeof gn, "%s%s", gpre, fm_params_name(P, i));
        snprintf(rn, sizeof rn, "%s%s", rpre, fm_params_name(P, i));
        size_t n1 = 0, n2 = 0;
        float *a = got && fm_st_find(got, gn) >= 0 ? t_read(got, gn, &n1) : NULL;
        float *b = fm_st_find(st, rn) >= 0 ? t_read(st, rn, &n2) : NULL;
        if (!a || !b || n1 != n2) (*missing)++;
        else worst = fmax(worst, t_relerr(a, b, n1));
        free(a);
        free(b);
    }
    return worst;
}

void test_train(void)
{
    fm_st *st = t_fixture("train.safetensors");
    if (!st) return;
    batches b;
    memset(&b, 0, sizeof b);
    if (!load_batches(st, &b)) {
        free_batches(&b);
        fm_st_free(st);
        return;
    }
    fm_tape *tp = fm_tape_new(0);
    fm_mlp_config mc = fm_mlp_config_default(2);
    for (size_t c = 0; c < sizeof optcases / sizeof optcases[0]; c++) {
        const optcase *oc = &optcases[c];
        fm_params *P = fm_params_new();
        fm_mlp *m = fm_mlp_new(P, "net", &mc);
        fm_status ls = fm_params_load(P, st, "init.");
        if (!t_check(ls == FM_OK, "%s: PyTorch's initial weights load %s", oc->name, T_ERR(ls))) continue;
        fm_optim_config cfg = config_of(oc);
        fm_optim *o = fm_optim_new(P, &cfg);
        float loss[STEPS];
        for (int i = 0; i < STEPS; i++) loss[i] = fm_step(tp, m, P, o, cfg.lr, b.x0[i], b.x1[i], b.t[i]);
        char n[96], label[96];
        snprintf(n, sizeof n, "%s.loss", oc->name);
        float *ref = t_read(st, n, NULL);
        if (ref) {
            double worst = 0;
            for (int i = 0; i < STEPS; i++) worst = fmax(worst, fabs(loss[i] - ref[i]) / fabs(ref[i]));
            snprintf(label, sizeof label, "%s: 10 losses", oc->name);
            t_check(worst <= TOL, "%-34s max rel err %.2e (tol %.0e)", label, worst, TOL);
            t_note("losses %.6f -> %.6f (PyTorch %.6f -> %.6f)", loss[0], loss[STEPS - 1], ref[0], ref[STEPS - 1]);
            t_family_max("train loss", worst);
            free(ref);
        }
        /* Final weights and optimizer state, through a checkpoint file. */
        char path[600];
        snprintf(path, sizeof path, "%s/%s.safetensors", t_tmpdir(), oc->name);
        fm_st_writer *w = fm_st_writer_new();
        fm_params_save(P, w, NULL);
        fm_optim_save(o, w);
        fm_status ws = fm_st_writer_save(w, path);
        if (!t_check(ws == FM_OK, "%s: checkpoint written %s", oc->name, T_ERR(ws))) {
            fm_st_writer_free(w);
            continue;
        }
        fm_st_writer_free(w);
        fm_st *got = fm_st_load(path);
        t_check(got != NULL, "%s: checkpoint reads back %s", oc->name, T_ERRP(got));
        int missing = 0;
        snprintf(n, sizeof n, "%s.final.", oc->name);
        double ew = compare_named(P, got, "", st, n, &missing);
        snprintf(label, sizeof label, "%s: final weights", oc->name);
        t_check(ew <= TOL && !missing, "%-34s max rel err %.2e (tol %.0e)", label, ew, TOL);
        t_family_max("train weights", ew);
        static const char *slots[] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"};
        for (int s = 0; s < 4; s++) {
            char rp[96], gp[96];
            snprintf(rp, sizeof rp, "%s.state.%s.net.0.weight", oc->name, slots[s]);
            if (fm_st_find(st, rp) < 0) continue;
            snprintf(rp, sizeof rp, "%s.state.%s.", oc->name, slots[s]);
            snprintf(gp, sizeof gp, "optim.%s.", slots[s]);
            missing = 0;
            double es = compare_named(P, got, gp, st, rp, &missing);
            snprintf(label, sizeof label, "%s: state %s", oc->name, slots[s]);
            t_check(es <= TOL && !missing, "%-34s max rel err %.2e (tol %.0e)%s", label, es, TOL,
                    missing ? " (tensors missing)" : "");
            t_family_max("optim state", es);
        }
        fm_st_free(got);
        fm_optim_free(o);
        fm_mlp_free(m);
        fm_params_free(P);
    }

    /* Same seed and thread count: identical bits; and 1 vs 2 threads agree too. */
    float *final[3];
    int threads[3] = {1, 2, 2};
    size_t np = 0;
    mc.width[0] = mc.width[1] = mc.width[2] = 256; /* wide enough for the threaded kernels */
    for (int run = 0; run < 3; run++) {
        fm_set_threads(threads[run]);
        fm_params *P = fm_params_new();
        fm_mlp *m = fm_mlp_new(P, "net", &mc);
        fm_rng r;
        fm_rng_seed(&r, 11, FM_STREAM_INIT);
        fm_mlp_init(m, &r);
        fm_optim_config cfg = fm_optim_config_default(FM_OPTIM_ADAM);
        fm_optim *o = fm_optim_new(P, &cfg);
        int failed = 0;
        for (int i = 0; i < STEPS; i++) failed += isnan(fm_step(tp, m, P, o, 1e-2, b.x0[i], b.x1[i], b.t[i]));
        t_check(failed == 0, "threads run %d: all steps ran (%d failed)", run, failed);
        np = fm_params_size(P);
        final[run] = malloc(np * sizeof(float));
        memcpy(final[run], fm_params_data(P), np * sizeof(float));
        fm_optim_free(o);
        fm_mlp_free(m);
        fm_params_free(P);
    }
    fm_set_threads(0);
    t_check(memcmp(final[1], final[2], np * sizeof(float)) == 0, "two runs on 2 threads are bit-identical");
    t_check(memcmp(final[0], final[1], np * sizeof(float)) == 0, "1 and 2 threads give identical bits (%d available)",
            fm_get_threads());
    for (int i = 0; i < 3; i++) free(final[i]);
    free_batches(&b);
    fm_tape_free(tp);
    fm_st_free(st);
}
