/* test_optim.c - gradient clipping, EMA and learning-rate schedules against
 * their closed forms, and the optimizer's argument checks.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void test_optim(void)
{
    fm_params *P = fm_params_new();
    int s1[2] = {2, 3}, s2[1] = {4};
    fm_params_add(P, "a", 2, s1);
    fm_params_add(P, "b", 1, s2);
    float *g = fm_params_grad(P);
    float g0[10] = {3, -4, 0, 1, 2, -2, 0.5f, 0, 0, 12};
    double ss = 0;
    for (int i = 0; i < 10; i++) ss += (double)g0[i] * g0[i];
    double want = sqrt(ss), got;

    /* clip_grad_norm_: coefficient max_norm / (norm + 1e-6) below 1 scales */
    memcpy(g, g0, sizeof g0);
    fm_clip_grad_norm(P, 5.0, &got);
    float ref[10];
    for (int i = 0; i < 10; i++) ref[i] = g0[i] * (float)(5.0 / (want + 1e-6));
    t_check(fabs(got - want) < 1e-12 * want, "clip: total norm %.10f vs %.10f", got, want);
    t_close("clip scales to max_norm", g, ref, 10, 1e-7);
    memcpy(g, g0, sizeof g0);
    fm_clip_grad_norm(P, 100.0, &got);
    t_close("clip leaves small gradients", g, g0, 10, 0);
    g[3] = NAN;
    t_check(fm_clip_grad_norm(P, 1.0, &got) == FM_ERR_NUMERIC && strstr(fm_last_error(), "NaN") && isnan(g[3]) &&
                g[0] == g0[0],
            "NaN gradient reported, gradients untouched: %s", fm_last_error());

    /* EMA: e <- e - (1 - d)(e - w), from a copy of the weights */
    float *w = fm_params_data(P);
    for (int i = 0; i < 10; i++) w[i] = (float)i;
    fm_ema *e = fm_ema_new(P, 0.9f);
    for (int i = 0; i < 10; i++) w[i] = (float)(10 - i);
    fm_ema_update(e, P);
    fm_ema_update(e, P);
    for (int i = 0; i < 10; i++) {
        float a = (float)i;
        a -= (1.0f - 0.9f) * (a - (float)(10 - i));
        a -= (1.0f - 0.9f) * (a - (float)(10 - i));
        ref[i] = a;
    }
    t_close("EMA after two updates", fm_ema_data(e), ref, 10, 0);
    float before[10];
    memcpy(before, w, sizeof before);
    fm_ema_swap(e, P);
    t_close("EMA swap brings the average in", w, ref, 10, 0);
    fm_ema_swap(e, P);
    t_close("EMA swap twice restores", w, before, 10, 0);
    fm_ema_free(e);
    t_check(fm_ema_new(P, 1.5f) == NULL && strstr(fm_last_error(), "decay"), "EMA decay 1.5 rejected: %s",
            fm_last_error());

    /* Schedules */
    fm_schedule cst = {FM_SCHED_CONSTANT, 0, 100, 0};
    fm_schedule cw = {FM_SCHED_COSINE, 10, 110, 1e-4};
    fm_schedule lin = {FM_SCHED_LINEAR, 0, 100, 0.0};
    double lr = 1e-2;
    double errs = 0;
    errs = fmax(errs, fabs(fm_schedule_lr(&cst, lr, 57) - lr));
    errs = fmax(errs, fabs(fm_schedule_lr(&cw, lr, 0) - lr / 10));
    errs = fmax(errs, fabs(fm_schedule_lr(&cw, lr, 9) - lr));
    errs = fmax(errs, fabs(fm_schedule_lr(&cw, lr, 10) - lr));
    errs = fmax(errs, fabs(fm_schedule_lr(&cw, lr, 60) - (1e-4 + (lr - 1e-4) * 0.5)));
    errs = fmax(errs, fabs(fm_schedule_lr(&cw, lr, 35) - (1e-4 + (lr - 1e-4) * 0.5 * (1 + cos(M_PI * 0.25)))));
    errs = fmax(errs, fabs(fm_schedule_lr(&cw, lr, 110) - 1e-4));
    errs = fmax(errs, fabs(fm_schedule_lr(&cw, lr, 500) - 1e-4));
    errs = fmax(errs, fabs(fm_schedule_lr(&lin, lr, 25) - 0.75 * lr));
    t_check(errs < 1e-15, "schedules match closed forms (max err %.1e)", errs);
    t_check(fm_sched_from_name("cosine") == FM_SCHED_COSINE && fm_sched_from_name("nope") < 0 &&
                !strcmp(fm_sched_name(FM_SCHED_LINEAR), "linear"),
            "schedule names");

    /* Optimizer arguments and order of calls */
    fm_optim_config oc = fm_optim_config_default(FM_OPTIM_ADAM);
    oc.beta1 = 1.0;
    t_check(fm_optim_new(P, &oc) == NULL && strstr(fm_last_error(), "betas"), "beta1 = 1 rejected: %s",
            fm_last_error());
    oc = fm_optim_config_default(FM_OPTIM_SGD);
    oc.nesterov = 1;
    t_check(fm_optim_new(P, &oc) == NULL && strstr(fm_last_error(), "Nesterov"), "Nesterov without momentum rejected: %s",
            fm_last_error());
    oc = fm_optim_config_default(FM_OPTIM_ADAMW);
    t_check(oc.weight_decay == 1e-2 && oc.lr == 1e-3 && oc.beta2 == 0.999 && oc.eps == 1e-8,
            "AdamW defaults are torch's (lr 1e-3, wd 1e-2, betas 0.9/0.999, eps 1e-8)");
    fm_optim *o = fm_optim_new(P, &oc);
    fm_params_add(P, "late", 1, s2);
    t_check(fm_optim_step(o, 1e-3) == FM_ERR_STATE && strstr(fm_last_error(), "now has"),
            "adding parameters after the optimizer is caught: %s", fm_last_error());
    fm_optim_free(o);
    t_check(fm_optim_from_name("adamw") == FM_OPTIM_ADAMW && fm_optim_from_name("rmsprop") < 0, "optimizer names");
    t_check(fm_params_add(P, "a", 2, s1) < 0 && strstr(fm_last_error(), "already"), "duplicate parameter name rejected: %s",
            fm_last_error());
    fm_params_free(P);
}
