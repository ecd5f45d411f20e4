/* mlp.c - the multilayer perceptron: Linear, act, Linear, act, ..., Linear.
 *
 * Parameter names are those of nn.Sequential inside a module attribute
 * (prefix.0.weight, prefix.0.bias, prefix.2.weight, ...): activations take the
 * odd indices, so a checkpoint loads into the PyTorch reference model with
 * load_state_dict. With time_input the network sees concat(t, x), t first, as
 * in the tutorial; with time_embed it sees concat(sinusoid(t), x).
 */
#include "internal.h"

#include <string.h>


struct fm_mlp {
    fm_params *p;
    fm_mlp_config cfg;
    int nlin;                        /* linear layers = nhidden + 1 */
    int w[FM_MLP_MAX_LAYERS + 1];    /* parameter indices */
    int b[FM_MLP_MAX_LAYERS + 1];
};

fm_mlp_config fm_mlp_config_default(int dim)
{
    fm_mlp_config c;
    memset(&c, 0, sizeof c);
    c.in_dim = c.out_dim = dim;
    c.nhidden = 3;
    for (int i = 0; i < c.nhidden; i++) c.width[i] = 64;
    c.act = FM_ACT_ELU;
    c.time_input = 1;
    return c;
}

static int mlp_input_width(const fm_mlp_config *c)
{
    return c->in_dim + (c->time_input ? (c->time_embed > 0 ? c->time_embed : 1) : 0);
}

static fm_status config_check(const fm_mlp_config *c)
{
    if (c->in_dim < 1 || c->out_dim < 1)
        return fm__fail(FM_ERR_ARG, "mlp: input and output dimensions must be >= 1 (got %d, %d)",
                        c->in_dim, c->out_dim);
    if (c->nhidden < 0 || c->nhidden > FM_MLP_MAX_LAYERS)
        return fm__fail(FM_ERR_ARG, "mlp: %d hidden layers is outside 0..%d", c->nhidden,
                        FM_MLP_MAX_LAYERS);
    for (int i = 0; i < c->nhidden; i++)
        if (c->width[i] < 1 || c->width[i] > (1 << 20))
            return fm__fail(FM_ERR_ARG, "mlp: hidden layer %d has width %d", i + 1, c->width[i]);
    if (c->act < 0 || c->act >= FM_ACT_COUNT)
        return fm__fail(FM_ERR_ARG, "mlp: unknown activation %d", (int)c->act);
    if (c->time_embed < 0 || c->time_embed % 2)
        return fm__fail(FM_ERR_ARG, "mlp: time embedding size %d must be even and >= 0",
                        c->time_embed);
    if (!(c->time_scale >= 0 && c->time_scale <= 1e6))
        return fm__fail(FM_ERR_ARG, "mlp: time scale %g is outside 0..1e6", c->time_scale);
    return FM_OK;
}

fm_mlp *fm_mlp_new(fm_params *p, const char *prefix, const fm_mlp_config *cfg)
{
    if (!p || !cfg) {
        fm__fail(FM_ERR_ARG, "fm_mlp_new: missing parameter set or configuration");
        return NULL;
    }
    if (config_check(cfg) != FM_OK) return NULL;
    const char *pre = prefix ? prefix : "";
    if (strlen(pre) > 200) {
        fm__fail(FM_ERR_ARG, "mlp: parameter prefix '%.40s...' is too long", pre);
        return NULL;
    }
    fm_mlp *m = calloc(1, sizeof *m);
    if (!m) {
        fm__fail(FM_ERR_NOMEM, "out of memory creating an MLP");
        return NULL;
    }
    m->p = p;
    m->cfg = *cfg;
    m->nlin = cfg->nhidden + 1;
    int in = mlp_input_width(cfg);
    const char *dot = *pre ? "." : "";
    char name[256];
    int n0 = fm_params_count(p); /* a failure takes back what was added */
    for (int l = 0; l < m->nlin; l++) {
        int out = l < cfg->nhidden ? cfg->width[l] : cfg->out_dim;
        int ws[2] = {out, in}, bs[1] = {out};
        snprintf(name, sizeof name, "%s%s%d.weight", pre, dot, 2 * l);
        m->w[l] = fm_params_add(p, name, 2, ws);
        snprintf(name, sizeof name, "%s%s%d.bias", pre, dot, 2 * l);
        m->b[l] = fm_params_add(p, name, 1, bs);
        if (m->w[l] < 0 || m->b[l] < 0) { /* a name taken, or out of memory */
            fm__params_truncate(p, n0);
            free(m);
            return NULL;
        }
        in = out;
    }
    return m;
}

void fm_mlp_free(fm_mlp *m) { free(m); }

const fm_mlp_config *fm_mlp_get_config(const fm_mlp *m) { return &m->cfg; }

void fm_mlp_init(fm_mlp *m, fm_rng *r)
{
    for (int l = 0; l < m->nlin; l++)
        fm_init_linear(r, fm_params_tensor(m->p, m->w[l]), fm_params_tensor(m->p, m->b[l]));
}

fm_tensor *fm_mlp_forward(fm_tape *tp, fm_mlp *m, fm_tensor *t, fm_tensor *x)
{
    return fm__mlp_forward_with(tp, m, m->p, t, x);
}

/* NULL when x (B, in_dim) and t (B, 1) (when the model takes time) do not fit
 * the network, the tape's error set; else 1. */
static int inputs_fit(fm_tape *tp, const fm_mlp_config *c, fm_tensor *t, fm_tensor *x)
{
    char s1[96], s2[96];
    if (x->ndim != 2 || x->shape[1] != c->in_dim)
        return !fm__op_fail(tp, FM_ERR_SHAPE, "mlp: input has shape %s, expected [B, %d]",
                            fm_shape_str(x, s1, sizeof s1), c->in_dim);
    if (!c->time_input) return 1;
    if (!t) return !fm__op_fail(tp, FM_ERR_ARG, "mlp: this model takes a time input, got none");
    if (t->ndim != 2 || t->shape[0] != x->shape[0] || t->shape[1] != 1)
        return !fm__op_fail(tp, FM_ERR_SHAPE, "mlp: times have shape %s, expected [%d, 1] for input %s",
                            fm_shape_str(t, s1, sizeof s1), x->shape[0], fm_shape_str(x, s2, sizeof s2));
    return 1;
}

fm_tensor *fm__mlp_forward_with(fm_tape *tp, fm_mlp *m, fm_params *P, fm_tensor *t, fm_tensor *x)
{
    if (!fm__op_inputs_ok(tp, "mlp", &x, 1)) return NULL;
    const fm_mlp_config *c = &m->cfg;
    if (!inputs_fit(tp, c, t, x)) return NULL;
    fm_tensor *h = x;
    if (c->time_input) {
        fm_tensor *te = c->time_embed > 0
                            ? fm_time_embed(tp, t, c->time_embed, FM__TIME_SCALE_OF(c->time_scale), FM__TIME_EMBED_PERIOD)
                            : t;
        fm_tensor *parts[2] = {te, x};
        h = fm_concat(tp, parts, 2);
    }
    for (int l = 0; l < m->nlin; l++) {
        h = fm_linear(tp, h, fm_params_tensor(P, m->w[l]), fm_params_tensor(P, m->b[l]));
        if (l + 1 < m->nlin && c->act != FM_ACT_NONE) h = fm_activation(tp, h, c->act);
    }
    return h;
}

fm_tensor *fm_mlp_jvp(fm_tape *tp, fm_mlp *m, fm_tensor *t, fm_tensor *x, fm_tensor *tt, fm_tensor *tx, fm_tensor **y)
{
    return fm__mlp_jvp_with(tp, m, m->p, t, x, tt, tx, y);
}

/* Layer by layer: a = W h + b, da = W dh; h' = f(a), dh' = f'(a) da. The K
 * tangents stacked in tx's rows share the forward pass. */
fm_tensor *fm__mlp_jvp_with(fm_tape *tp, fm_mlp *m, fm_params *P, fm_tensor *t, fm_tensor *x, fm_tensor *tt,
                            fm_tensor *tx, fm_tensor **y)
{
    if (y) *y = NULL;
    fm_tensor *in2[2] = {x, tx};
    if (!fm__op_inputs_ok(tp, "mlp_jvp", in2, 2)) return NULL;
    const fm_mlp_config *c = &m->cfg;
    char s1[96], s2[96];
    if (!inputs_fit(tp, c, t, x)) return NULL;
    int B = x->shape[0], K = B ? tx->shape[0] / B : 0; /* K tangents stacked */
    if (tx->ndim != 2 || tx->shape[1] != x->shape[1] || K < 1 || tx->shape[0] != K * B)
        return fm__op_fail(tp, FM_ERR_SHAPE, "mlp_jvp: the tangents %s do not fit the input %s",
                           fm_shape_str(tx, s1, sizeof s1), fm_shape_str(x, s2, sizeof s2));
    if (tt && (!c->time_input || !t || K != 1 || !fm__same_shape(t, tt)))
        return fm__op_fail(tp, FM_ERR_ARG, "mlp_jvp: a time tangent needs a time input and one tangent of its shape");
    fm_tensor *h = x, *dh = tx;
    if (c->time_input) {
        fm_tensor *te = c->time_embed > 0
                            ? fm_time_embed(tp, t, c->time_embed, FM__TIME_SCALE_OF(c->time_scale), FM__TIME_EMBED_PERIOD)
                            : t;
        int zs[2] = {K * B, te ? te->shape[1] : 1};
        fm_tensor *dte = !tt                ? fm_tensor_new(tp, 2, zs) /* zeros */
                         : c->time_embed > 0 ? fm__time_embed_jvp(tp, t, tt, c->time_embed, FM__TIME_SCALE_OF(c->time_scale),
                                                                   FM__TIME_EMBED_PERIOD)
                                             : tt;
        fm_tensor *parts[2] = {te, x}, *dparts[2] = {dte, tx};
        h = fm_concat(tp, parts, 2);
        dh = fm_concat(tp, dparts, 2);
    }
    for (int l = 0; l < m->nlin; l++) {
        fm_tensor *W = fm_params_tensor(P, m->w[l]);
        h = fm_linear(tp, h, W, fm_params_tensor(P, m->b[l]));
        dh = fm_linear(tp, dh, W, NULL);
        if (l + 1 < m->nlin && c->act != FM_ACT_NONE) {
            int w = h->shape[1], s3[3] = {K, B, w}, s2d[2] = {K * B, w};
            fm_tensor *g = fm_act_grad(tp, h, c->act); /* (B, w), stretched over the K tangents */
            dh = K == 1 ? fm_mul(tp, g, dh) : fm_reshape(tp, fm_mul(tp, g, fm_reshape(tp, dh, 3, s3)), 2, s2d);
            h = fm_activation(tp, h, c->act);
        }
    }
    if (y) *y = h;
    return dh;
}
