/* opcases.c - how each fixture case calls the op under test, and which
 * fixture file holds each table of cases. */
#include "opcases.h"

#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

static fm_tensor *r_linear(fm_tape *tp, fm_tensor **in) { return fm_linear(tp, in[0], in[1], in[2]); }
static fm_tensor *r_linear_nb(fm_tape *tp, fm_tensor **in) { return fm_linear(tp, in[0], in[1], NULL); }
static fm_tensor *r_add(fm_tape *tp, fm_tensor **in) { return fm_add(tp, in[0], in[1]); }
static fm_tensor *r_sub(fm_tape *tp, fm_tensor **in) { return fm_sub(tp, in[0], in[1]); }
static fm_tensor *r_mul(fm_tape *tp, fm_tensor **in) { return fm_mul(tp, in[0], in[1]); }
static fm_tensor *r_scale(fm_tape *tp, fm_tensor **in) { return fm_scale(tp, in[0], -1.7f); }
static fm_tensor *r_concat3(fm_tape *tp, fm_tensor **in) { return fm_concat(tp, in, 3); }
static fm_tensor *r_concat2(fm_tape *tp, fm_tensor **in) { return fm_concat(tp, in, 2); }
static fm_tensor *r_sum(fm_tape *tp, fm_tensor **in) { return fm_sum(tp, in[0]); }
static fm_tensor *r_mean(fm_tape *tp, fm_tensor **in) { return fm_mean(tp, in[0]); }
static fm_tensor *r_relu(fm_tape *tp, fm_tensor **in) { return fm_relu(tp, in[0]); }
static fm_tensor *r_elu(fm_tape *tp, fm_tensor **in) { return fm_elu(tp, in[0]); }
static fm_tensor *r_silu(fm_tape *tp, fm_tensor **in) { return fm_silu(tp, in[0]); }
static fm_tensor *r_gelu(fm_tape *tp, fm_tensor **in) { return fm_gelu(tp, in[0]); }
static fm_tensor *r_gelu_tanh(fm_tape *tp, fm_tensor **in) { return fm_gelu_tanh(tp, in[0]); }
static fm_tensor *r_tanh(fm_tape *tp, fm_tensor **in) { return fm_tanh(tp, in[0]); }
static fm_tensor *r_sigmoid(fm_tape *tp, fm_tensor **in) { return fm_sigmoid(tp, in[0]); }
static fm_tensor *r_selu(fm_tape *tp, fm_tensor **in) { return fm_selu(tp, in[0]); }
static fm_tensor *r_softplus(fm_tape *tp, fm_tensor **in) { return fm_softplus(tp, in[0]); }
static fm_tensor *r_temb(fm_tape *tp, fm_tensor **in) { return fm_time_embed(tp, in[0], 8, 1000.0f, 10000.0f); }
static fm_tensor *r_temb_flat(fm_tape *tp, fm_tensor **in) { return fm_time_embed(tp, in[0], 6, 1.0f, 100.0f); }
static fm_tensor *r_mse_mean(fm_tape *tp, fm_tensor **in) { return fm_mse_loss(tp, in[0], in[1], FM_REDUCE_MEAN); }
static fm_tensor *r_mse_sum(fm_tape *tp, fm_tensor **in) { return fm_mse_loss(tp, in[0], in[1], FM_REDUCE_SUM); }
static fm_tensor *r_bce_mean(fm_tape *tp, fm_tensor **in) { return fm_bce_loss(tp, in[0], in[1], FM_REDUCE_MEAN); }
static fm_tensor *r_bce_sum(fm_tape *tp, fm_tensor **in) { return fm_bce_loss(tp, in[0], in[1], FM_REDUCE_SUM); }
static fm_tensor *r_bcel_mean(fm_tape *tp, fm_tensor **in) { return fm_bce_logits_loss(tp, in[0], in[1], FM_REDUCE_MEAN); }
static fm_tensor *r_bcel_sum(fm_tape *tp, fm_tensor **in) { return fm_bce_logits_loss(tp, in[0], in[1], FM_REDUCE_SUM); }
static fm_tensor *r_kl_mean(fm_tape *tp, fm_tensor **in) { return fm_kl_normal_loss(tp, in[0], in[1], FM_REDUCE_MEAN); }
static fm_tensor *r_kl_sum(fm_tape *tp, fm_tensor **in) { return fm_kl_normal_loss(tp, in[0], in[1], FM_REDUCE_SUM); }
static fm_tensor *r_exp(fm_tape *tp, fm_tensor **in) { return fm_exp(tp, in[0]); }
static fm_tensor *r_gnll_mean(fm_tape *tp, fm_tensor **in) { return fm_gaussian_nll_loss(tp, in[0], in[1], in[2], FM_REDUCE_MEAN); }
static fm_tensor *r_gnll_sum(fm_tape *tp, fm_tensor **in) { return fm_gaussian_nll_loss(tp, in[0], in[1], in[2], FM_REDUCE_SUM); }
static fm_tensor *r_conv_s1p1(fm_tape *tp, fm_tensor **in) { return fm_conv2d(tp, in[0], in[1], in[2], 1, 1); }
static fm_tensor *r_conv_s2p1(fm_tape *tp, fm_tensor **in) { return fm_conv2d(tp, in[0], in[1], in[2], 2, 1); }
static fm_tensor *r_conv_s1p0(fm_tape *tp, fm_tensor **in) { return fm_conv2d(tp, in[0], in[1], in[2], 1, 0); }
static fm_tensor *r_conv_s2p0(fm_tape *tp, fm_tensor **in) { return fm_conv2d(tp, in[0], in[1], in[2], 2, 0); }
static fm_tensor *r_conv_s1p2(fm_tape *tp, fm_tensor **in) { return fm_conv2d(tp, in[0], in[1], in[2], 1, 2); }
static fm_tensor *r_conv_nb(fm_tape *tp, fm_tensor **in) { return fm_conv2d(tp, in[0], in[1], NULL, 1, 1); }
static fm_tensor *r_up2(fm_tape *tp, fm_tensor **in) { return fm_upsample_nearest2d(tp, in[0], 2); }
static fm_tensor *r_up3(fm_tape *tp, fm_tensor **in) { return fm_upsample_nearest2d(tp, in[0], 3); }
static fm_tensor *r_pool2(fm_tape *tp, fm_tensor **in) { return fm_avg_pool2d(tp, in[0], 2); }
static fm_tensor *r_pool3(fm_tape *tp, fm_tensor **in) { return fm_avg_pool2d(tp, in[0], 3); }
/* Integer inputs (ids, labels) come as float32 tensors holding whole numbers;
 * -1 when there are more than cap (the case then fails, never truncated). */
static int as_ints(const fm_tensor *t, int *out, int cap)
{
    if (t->size > (size_t)cap) return -1;
    for (size_t i = 0; i < t->size; i++) out[i] = (int)t->data[i];
    return (int)t->size;
}
static fm_tensor *r_gn1(fm_tape *tp, fm_tensor **in) { return fm_group_norm(tp, in[0], 1, in[1], in[2], 1e-5f); }
static fm_tensor *r_gn2(fm_tape *tp, fm_tensor **in) { return fm_group_norm(tp, in[0], 2, in[1], in[2], 1e-5f); }
static fm_tensor *r_gn3(fm_tape *tp, fm_tensor **in) { return fm_group_norm(tp, in[0], 3, in[1], in[2], 1e-5f); }
static fm_tensor *r_gn8(fm_tape *tp, fm_tensor **in) { return fm_group_norm(tp, in[0], 8, in[1], in[2], 1e-5f); }
static fm_tensor *r_gn3_eps(fm_tape *tp, fm_tensor **in) { return fm_group_norm(tp, in[0], 3, in[1], in[2], 0.1f); }
static fm_tensor *r_gn2_plain(fm_tape *tp, fm_tensor **in) { return fm_group_norm(tp, in[0], 2, NULL, NULL, 1e-5f); }
static fm_tensor *r_gn3_plain(fm_tape *tp, fm_tensor **in) { return fm_group_norm(tp, in[0], 3, NULL, NULL, 1e-5f); }
static fm_tensor *r_gn2_gamma(fm_tape *tp, fm_tensor **in) { return fm_group_norm(tp, in[0], 2, in[1], NULL, 1e-5f); }
static fm_tensor *r_gn2_beta(fm_tape *tp, fm_tensor **in) { return fm_group_norm(tp, in[0], 2, NULL, in[1], 1e-5f); }
static fm_tensor *r_embedding(fm_tape *tp, fm_tensor **in)
{
    int ids[64], n = as_ints(in[1], ids, 64);
    return n < 0 ? NULL : fm_embedding(tp, in[0], ids, n);
}
static fm_tensor *r_ce(fm_tape *tp, fm_tensor **in, fm_reduce r)
{
    int labels[64];
    if (as_ints(in[1], labels, 64) != in[0]->shape[0]) return NULL;
    return fm_cross_entropy(tp, in[0], labels, r);
}
static fm_tensor *r_ce_mean(fm_tape *tp, fm_tensor **in) { return r_ce(tp, in, FM_REDUCE_MEAN); }
static fm_tensor *r_ce_sum(fm_tape *tp, fm_tensor **in) { return r_ce(tp, in, FM_REDUCE_SUM); }

#define ARITH(op, fn)                                                                              \
    {op "_same", "arith", 2, fn, 1e-2}, {op "_row", "arith", 2, fn, 1e-2},                         \
        {op "_col", "arith", 2, fn, 1e-2}, {op "_4d", "arith", 2, fn, 1e-2},                       \
        {op "_both", "arith", 2, fn, 1e-2}

static const opcase op_cases[] = {
    {"linear", "linear", 3, r_linear, 1e-2},
    {"linear_nobias", "linear", 2, r_linear_nb, 1e-2},
    ARITH("add", r_add),
    ARITH("sub", r_sub),
    ARITH("mul", r_mul),
    {"scale", "scale", 1, r_scale, 1e-2},
    {"concat", "concat", 3, r_concat3, 1e-2},
    {"concat_4d", "concat", 2, r_concat2, 1e-2},
    {"sum", "reduce", 1, r_sum, 1e-2},
    {"mean", "reduce", 1, r_mean, 1e-2},
    {"relu", "activation", 1, r_relu, 2e-3},
    {"elu", "activation", 1, r_elu, 2e-3},
    {"silu", "activation", 1, r_silu, 1e-2},
    {"gelu", "activation", 1, r_gelu, 1e-2},
    {"gelu_tanh", "activation", 1, r_gelu_tanh, 1e-2},
    {"tanh", "activation", 1, r_tanh, 1e-2},
    {"sigmoid", "activation", 1, r_sigmoid, 1e-2},
    {"selu", "activation", 1, r_selu, 2e-3},
    {"softplus", "activation", 1, r_softplus, 1e-2},
    {"time_embed", "time_embed", 1, r_temb, 1e-5},
    {"time_embed_flat", "time_embed", 1, r_temb_flat, 1e-2},
    {"mse_mean", "loss", 2, r_mse_mean, 1e-2},
    {"mse_sum", "loss", 2, r_mse_sum, 1e-2},
    {"bce_mean", "loss", 2, r_bce_mean, 1e-3},
    {"bce_sum", "loss", 2, r_bce_sum, 1e-3},
    {"bce_logits_mean", "loss", 2, r_bcel_mean, 1e-2},
    {"bce_logits_sum", "loss", 2, r_bcel_sum, 1e-2},
    {"kl_mean", "loss", 2, r_kl_mean, 1e-2},
    {"kl_sum", "loss", 2, r_kl_sum, 1e-2},
    {"exp", "activation", 1, r_exp, 1e-2},
    {"gaussian_nll_mean", "loss", 3, r_gnll_mean, 1e-2},
    {"gaussian_nll_sum", "loss", 3, r_gnll_sum, 1e-2},
    {"gaussian_nll_row", "loss", 3, r_gnll_sum, 1e-2},
};

/* The image ops are linear in each input, so a finite difference has no
 * truncation error and a large step only shrinks the rounding noise. */
static const opcase conv_cases[] = {
    {"conv3x3", "conv", 3, r_conv_s1p1, 0.25},
    {"conv3x3_s2", "conv", 3, r_conv_s2p1, 0.25},
    {"conv1x1", "conv", 3, r_conv_s1p0, 0.25},
    {"conv1x1_s2", "conv", 3, r_conv_s2p0, 0.25},
    {"conv3x3_nobias", "conv", 2, r_conv_nb, 0.25},
    {"conv3x3_rect", "conv", 3, r_conv_s1p1, 0.25},
    {"conv3x3_valid", "conv", 3, r_conv_s1p0, 0.25},
    {"conv2x3_s2", "conv", 3, r_conv_s2p0, 0.25},
    {"conv5x5_pad2", "conv", 3, r_conv_s1p2, 0.25},
    {"upsample2", "resample", 1, r_up2, 0.25},
    {"upsample3", "resample", 1, r_up3, 0.25},
    {"avg_pool2", "resample", 1, r_pool2, 0.25},
    {"avg_pool3", "resample", 1, r_pool3, 0.25},
};

/* Group norm is smooth; the two-value groups of gn_2d(_plain) have a spread
 * of about 0.005, so their step is far smaller; gn_offset's values are near
 * 52. The logits of ce_large are near 1e4, where a step of 1e-5 |x| is 0.1.
 * Embedding is linear. */
static const opcase ops2_cases[] = {
    {"gn_g1", "norm", 3, r_gn1, 1e-2},
    {"gn_g2", "norm", 3, r_gn2, 1e-2},
    {"gn_g8", "norm", 3, r_gn8, 1e-2},
    {"gn_g2_plain", "norm", 1, r_gn2_plain, 1e-2},
    {"gn_g2_gamma", "norm", 2, r_gn2_gamma, 1e-2},
    {"gn_g2_beta", "norm", 2, r_gn2_beta, 1e-2},
    {"gn_2d", "norm", 3, r_gn3, 1e-4},
    {"gn_2d_affine", "norm", 3, r_gn3, 1e-2},
    {"gn_2d_plain", "norm", 1, r_gn3_plain, 1e-4},
    {"gn_2d_eps", "norm", 3, r_gn3_eps, 1e-2},
    {"gn_3d", "norm", 3, r_gn2, 1e-2},
    {"gn_offset", "norm", 3, r_gn2, 1e-3},
    {"embedding", "embedding", 2, r_embedding, 0.25},
    {"embedding_one", "embedding", 2, r_embedding, 0.25},
    {"ce_mean", "cross_entropy", 2, r_ce_mean, 1e-2},
    {"ce_sum", "cross_entropy", 2, r_ce_sum, 1e-2},
    {"ce_large", "cross_entropy", 2, r_ce_mean, 1e-5},
};

const opcase_set op_sets[] = {
    {"ops.safetensors", op_cases, (int)(sizeof op_cases / sizeof op_cases[0])},
    {"conv.safetensors", conv_cases, (int)(sizeof conv_cases / sizeof conv_cases[0])},
    {"ops2.safetensors", ops2_cases, (int)(sizeof ops2_cases / sizeof ops2_cases[0])},
};
const int n_op_sets = (int)(sizeof op_sets / sizeof op_sets[0]);

int opcase_inputs(fm_tape *tp, const fm_st *st, const opcase *c, fm_tensor **in)
{
    for (int k = 0; k < c->nin; k++) {
        char name[128];
        snprintf(name, sizeof name, "%s.in%d", c->name, k);
        int idx = fm_st_find(st, name);
        if (idx < 0) {
            t_check(0, "%s: fixture tensor %s is missing", c->name, name);
            return 0;
        }
        int nd;
        int64_t sh[FM_ST_MAX_DIMS];
        fm_st_entry(st, idx, NULL, &nd, sh);
        if (nd > 4) {
            t_check(0, "%s: fixture tensor %s has rank %d", c->name, name, nd);
            return 0;
        }
        int shape[4];
        for (int d = 0; d < nd && d < 4; d++) shape[d] = (int)sh[d];
        in[k] = fm_tensor_new(tp, nd, shape);
        if (!in[k] || fm_st_read(st, name, in[k]->data, nd, shape) != FM_OK) {
            t_check(0, "%s: cannot read %s: %s", c->name, name, fm_last_error());
            return 0;
        }
        snprintf(name, sizeof name, "%s.grad%d", c->name, k);
        fm_tensor_requires_grad(in[k], fm_st_find(st, name) >= 0);
    }
    return 1;
}
