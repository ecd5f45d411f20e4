/* test_checkpoint.c - a training checkpoint restores model, optimizer, EMA and
 * random state exactly (resuming gives the same bits as never stopping), and
 * a checkpoint that does not fit the model is refused without touching it.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B 64

typedef struct {
    fm_params *P;
    fm_mlp *m;
    fm_optim *o;
    fm_ema *e;
    fm_rng data;
} run;

static fm_status step(fm_tape *tp, run *r)
{
    fm_tape_reset(tp);
    fm_tensor *x0 = fm_tensor_2d(tp, B, 2), *x1 = fm_tensor_2d(tp, B, 2), *t = fm_tensor_2d(tp, B, 1);
    fm_rng_normal_fill(&r->data, x0->data, x0->size, 0, 1);
    fm_rng_normal_fill(&r->data, x1->data, x1->size, 2, 0.5f);
    fm_rng_uniform_fill(&r->data, t->data, t->size, 0, 1);
    fm_tensor *omt = fm_tensor_2d(tp, B, 1);
    for (int i = 0; i < B; i++) omt->data[i] = 1 - t->data[i];
    fm_tensor *xt = fm_add(tp, fm_mul(tp, omt, x0), fm_mul(tp, t, x1));
    fm_tensor *loss = fm_mse_loss(tp, fm_mlp_forward(tp, r->m, t, xt), fm_sub(tp, x1, x0), FM_REDUCE_MEAN);
    fm_params_zero_grad(r->P);
    fm_status s = fm_backward(tp, loss, NULL);
    if (!s) s = fm_clip_grad_norm(r->P, 1.0, NULL);
    if (!s) s = fm_optim_step(r->o, 1e-2);
    if (!s) s = fm_ema_update(r->e, r->P);
    return s;
}

static void make(run *r, const fm_mlp_config *mc)
{
    r->P = fm_params_new();
    r->m = fm_mlp_new(r->P, "net", mc);
    fm_rng init;
    fm_rng_seed(&init, 1, FM_STREAM_INIT);
    fm_mlp_init(r->m, &init);
    fm_optim_config oc = fm_optim_config_default(FM_OPTIM_ADAMW);
    oc.amsgrad = 1;
    r->o = fm_optim_new(r->P, &oc);
    r->e = fm_ema_new(r->P, 0.99f);
    fm_rng_seed(&r->data, 1, FM_STREAM_DATA);
}

static void unmake(run *r)
{
    fm_ema_free(r->e);
    fm_optim_free(r->o);
    fm_mlp_free(r->m);
    fm_params_free(r->P);
}

void test_checkpoint(void)
{
    fm_tape *tp = fm_tape_new(0);
    fm_mlp_config mc = fm_mlp_config_default(2);
    mc.act = FM_ACT_SILU;
    mc.width[1] = 32;
    run a;
    make(&a, &mc);
    int bad = 0;
    for (int i = 0; i < 5; i++) bad += step(tp, &a) != FM_OK;
    t_check(bad == 0, "five training steps run (%d failed)", bad);

    char path[600], hex[65];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", t_tmpdir());
    fm_st_writer *w = fm_st_writer_new();
    fm_rng_to_hex(&a.data, hex);
    fm_status s = fm_mlp_config_save(&mc, w);
    if (s == FM_OK) s = fm_params_save(a.P, w, NULL);
    if (s == FM_OK) s = fm_optim_save(a.o, w);
    if (s == FM_OK) s = fm_ema_save(a.e, a.P, w);
    if (s == FM_OK) s = fm_st_writer_meta(w, "rng.data", hex);
    if (s == FM_OK) s = fm_st_writer_save(w, path);
    fm_st_writer_free(w);
    t_check(s == FM_OK, "checkpoint saved %s", T_ERR(s));

    /* Restore everything from the file alone. */
    fm_st *st = fm_st_load(path);
    if (!t_check(st != NULL, "checkpoint loads %s", T_ERRP(st))) return;
    fm_mlp_config mc2;
    fm_optim_config oc2;
    s = fm_mlp_config_load(&mc2, st);
    t_check(s == FM_OK && mc2.nhidden == 3 && mc2.width[1] == 32 && mc2.act == FM_ACT_SILU && mc2.time_input == 1 &&
                mc2.in_dim == 2,
            "model configuration restored from metadata %s", T_ERR(s));
    s = fm_optim_config_load(&oc2, st);
    t_check(s == FM_OK && oc2.kind == FM_OPTIM_ADAMW && oc2.amsgrad == 1 && oc2.weight_decay == 1e-2,
            "optimizer configuration restored %s", T_ERR(s));
    run b;
    b.P = fm_params_new();
    b.m = fm_mlp_new(b.P, "net", &mc2);
    b.o = fm_optim_new(b.P, &oc2);
    b.e = fm_ema_new(b.P, 0.99f);
    s = fm_params_load(b.P, st, NULL);
    if (s == FM_OK) s = fm_optim_load(b.o, st);
    if (s == FM_OK) s = fm_ema_load(b.e, b.P, st);
    if (s == FM_OK) s = fm_rng_from_hex(&b.data, fm_st_meta(st, "rng.data"));
    t_check(s == FM_OK && fm_optim_steps(b.o) == 5, "state restored (step %lld) %s", (long long)fm_optim_steps(b.o),
            T_ERR(s));
    bad = 0;
    for (int i = 0; i < 5; i++) {
        bad += step(tp, &a) != FM_OK;
        bad += step(tp, &b) != FM_OK;
    }
    size_t n = fm_params_size(a.P);
    t_check(bad == 0 && !memcmp(fm_params_data(a.P), fm_params_data(b.P), n * sizeof(float)) &&
                !memcmp(fm_ema_data(a.e), fm_ema_data(b.e), n * sizeof(float)),
            "resumed training is bit-identical to uninterrupted training");

    /* Refusals that leave the model untouched. */
    fm_mlp_config wide = mc2;
    wide.width[1] = 64;
    fm_params *P3 = fm_params_new();
    fm_mlp *m3 = fm_mlp_new(P3, "net", &wide);
    fm_params_data(P3)[0] = 123.0f;
    s = fm_params_load(P3, st, NULL);
    t_check(s == FM_ERR_SHAPE && strstr(fm_last_error(), "net.2.weight") && strstr(fm_last_error(), "[32, 64]") &&
                strstr(fm_last_error(), "[64, 64]") && fm_params_data(P3)[0] == 123.0f,
            "wrong-shape tensor refused, weights untouched: %s", fm_last_error());
    fm_mlp_free(m3);
    fm_params_free(P3);
    P3 = fm_params_new();
    m3 = fm_mlp_new(P3, "model", &mc2);
    t_check(fm_params_load(P3, st, NULL) == FM_ERR_FORMAT && strstr(fm_last_error(), "'model.0.weight' is missing"),
            "missing tensor refused: %s", fm_last_error());
    fm_mlp_free(m3);
    fm_params_free(P3);
    fm_optim_config sgd = fm_optim_config_default(FM_OPTIM_SGD);
    fm_optim *o3 = fm_optim_new(b.P, &sgd);
    t_check(fm_optim_load(o3, st) == FM_ERR_STATE && strstr(fm_last_error(), "adamw"), "optimizer kind mismatch refused: %s",
            fm_last_error());
    fm_optim_free(o3);

    /* State made for another parameter count is refused, never overrun. */
    fm_params *P4 = fm_params_new();
    fm_mlp *m4 = fm_mlp_new(P4, "net", &mc2);
    fm_optim *o4 = fm_optim_new(P4, &oc2);
    fm_ema *e4 = fm_ema_new(P4, 0.9f);
    int extra[1] = {7};
    fm_params_add(P4, "late", 1, extra);
    fm_st_writer *w4 = fm_st_writer_new();
    t_check(fm_optim_save(o4, w4) == FM_ERR_STATE && fm_ema_save(e4, P4, w4) == FM_ERR_STATE,
            "saving optimizer / EMA state after parameters were added is refused: %s", fm_last_error());
    t_check(fm_optim_load(o4, st) == FM_ERR_STATE && fm_ema_load(e4, P4, st) == FM_ERR_STATE,
            "loading optimizer / EMA state after parameters were added is refused: %s", fm_last_error());
    fm_st_writer_free(w4);
    fm_ema_free(e4);
    fm_optim_free(o4);
    fm_mlp_free(m4);
    fm_params_free(P4);
    fm_st_free(st);

    /* Metadata that is not what it claims. */
    w = fm_st_writer_new();
    fm_st_writer_meta(w, "model", "mlp");
    fm_st_writer_meta(w, "mlp.in_dim", "2");
    fm_st_writer_meta(w, "mlp.out_dim", "2");
    fm_st_writer_meta(w, "mlp.time_input", "1");
    fm_st_writer_meta(w, "mlp.time_embed", "0");
    fm_st_writer_meta(w, "mlp.act", "elu");
    fm_st_writer_meta(w, "mlp.widths", "64,x");
    fm_st_writer_save(w, path);
    st = fm_st_load(path);
    t_check(st && fm_mlp_config_load(&mc2, st) == FM_ERR_FORMAT && strstr(fm_last_error(), "mlp.widths"),
            "bad widths in metadata refused: %s", fm_last_error());
    fm_st_free(st);
    fm_st_writer_meta(w, "mlp.widths", "64");
    fm_st_writer_meta(w, "mlp.act", "swish");
    fm_st_writer_save(w, path);
    st = fm_st_load(path);
    t_check(st && fm_mlp_config_load(&mc2, st) == FM_ERR_FORMAT && strstr(fm_last_error(), "swish"),
            "unknown activation in metadata refused: %s", fm_last_error());
    fm_st_free(st);
    fm_st_writer_free(w);

    unmake(&a);
    unmake(&b);
    fm_tape_free(tp);
}
