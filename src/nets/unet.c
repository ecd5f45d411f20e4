/* unet.c - a small convolutional U-Net over NCHW images (layout and names in
 * flowmatch.h, next to fm_unet_config).
 *
 * The network owns indices into a parameter set, like the MLP; its forward
 * takes the weights from any set laid out the same way (the model's own, or a
 * training worker's gradient replica). Parameters are registered in the order
 * a PyTorch module registers them (tests/ref/unet.py), which is also the order
 * fm_unet_init draws their initial values in.
 */
#include "internal.h"

#include <string.h>

#define GN_EPS 1e-5f

/* Parameter indices of a linear / conv / GroupNorm layer. */
typedef struct {
    int w, b;
} layer;

typedef struct {
    int cout;
    layer norm1, conv1, temb, norm2, conv2, skip; /* skip.w -1 when cin == cout */
} resblock;

struct fm_unet {
    fm_params *p;
    fm_unet_config cfg;
    int ch[FM_UNET_MAX_LEVELS]; /* C_i */
    layer time0, time2, conv_in, norm_out, conv_out;
    layer ival0, ival2;         /* interval_mlp (cfg.interval), else w -1 */
    int label_emb;              /* (num_classes + 1, time_dim), -1 without classes */
    resblock down[FM_UNET_MAX_LEVELS], mid, up[FM_UNET_MAX_LEVELS];
    layer upconv[FM_UNET_MAX_LEVELS];
    char prefix[128];
    int failed; /* a parameter could not be added */
};

fm_unet_config fm_unet_config_default(int in_ch, int height, int width)
{
    fm_unet_config c;
    memset(&c, 0, sizeof c);
    c.in_ch = in_ch;
    c.height = height;
    c.width = width;
    c.base = 32;
    c.nlevels = 3;
    c.mult[0] = 1;
    c.mult[1] = 2;
    c.mult[2] = 2;
    c.groups = 8;
    return c;
}

static fm_status config_check(const fm_unet_config *c)
{
    if (c->in_ch < 1 || c->in_ch > 64 || c->height < 1 || c->width < 1 || c->height > 4096 || c->width > 4096)
        return fm__fail(FM_ERR_ARG, "unet: image shape %d x %d x %d is invalid", c->in_ch, c->height, c->width);
    if (c->out_ch < 0 || c->out_ch > 4096) return fm__fail(FM_ERR_ARG, "unet: %d output channels is invalid", c->out_ch);
    if (c->nlevels < 1 || c->nlevels > FM_UNET_MAX_LEVELS)
        return fm__fail(FM_ERR_ARG, "unet: %d levels is outside 1..%d", c->nlevels, FM_UNET_MAX_LEVELS);
    int f = 1 << (c->nlevels - 1);
    if (c->height % f || c->width % f)
        return fm__fail(FM_ERR_ARG, "unet: %d levels halve the image %d times; %d x %d is not divisible by %d",
                        c->nlevels, c->nlevels - 1, c->height, c->width, f);
    if (c->base < 1 || c->base > 4096) return fm__fail(FM_ERR_ARG, "unet: base channels %d is outside 1..4096", c->base);
    if (c->groups < 1) return fm__fail(FM_ERR_ARG, "unet: %d GroupNorm groups; at least 1 is needed", c->groups);
    for (int i = 0; i < c->nlevels; i++) {
        if (c->mult[i] < 1 || c->mult[i] > 64)
            return fm__fail(FM_ERR_ARG, "unet: channel multiplier %d of level %d is outside 1..64", c->mult[i], i);
        if ((c->base * c->mult[i]) % c->groups)
            return fm__fail(FM_ERR_ARG, "unet: level %d's %d channels are not divisible into %d GroupNorm groups", i,
                            c->base * c->mult[i], c->groups);
    }
    if (c->time_freq < 0 || c->time_freq % 2 || c->time_freq > 65536)
        return fm__fail(FM_ERR_ARG, "unet: sinusoid size %d must be even and in 0..65536", c->time_freq);
    if (c->time_dim < 0 || c->time_dim > 65536)
        return fm__fail(FM_ERR_ARG, "unet: time embedding width %d is outside 0..65536", c->time_dim);
    if (c->num_classes < 0 || c->num_classes > 100000)
        return fm__fail(FM_ERR_ARG, "unet: %d classes is outside 0..100000", c->num_classes);
    if (c->interval != 0 && c->interval != 1) return fm__fail(FM_ERR_ARG, "unet: interval must be 0 or 1");
    if (!(c->time_scale >= 0 && c->time_scale <= 1e6))
        return fm__fail(FM_ERR_ARG, "unet: time scale %g is outside 0..1e6", c->time_scale);
    return FM_OK;
}

/* Parameter "<prefix>.<name>.<what>" of the given shape: its index, or -1
 * with the model marked failed (fm_unet_new then takes back what was added). */
static int add_named(fm_unet *u, const char *name, const char *what, int ndim, const int *shape)
{
    if (u->failed) return -1;
    char full[320];
    snprintf(full, sizeof full, "%s%s%s.%s", u->prefix, *u->prefix ? "." : "", name, what);
    int i = fm_params_add(u->p, full, ndim, shape);
    if (i < 0) u->failed = 1;
    return i;
}

/* One named parameter weight + bias; the bias has d0 entries. */
static layer add_wb(fm_unet *u, const char *name, int ndim, int d0, int d1, int k)
{
    int ws[4] = {d0, d1, k, k}, bs[1] = {d0};
    layer l;
    l.w = add_named(u, name, "weight", ndim, ws);
    l.b = add_named(u, name, "bias", 1, bs);
    return l;
}

static layer add_linear(fm_unet *u, const char *name, int out, int in) { return add_wb(u, name, 2, out, in, 1); }
static layer add_conv(fm_unet *u, const char *name, int out, int in, int k) { return add_wb(u, name, 4, out, in, k); }
static layer add_norm1d(fm_unet *u, const char *name, int c) { return add_wb(u, name, 1, c, 1, 1); }

static resblock add_block(fm_unet *u, const char *name, int cin, int cout)
{
    char nm[160];
    resblock b;
    b.cout = cout;
#define SUB(s) (snprintf(nm, sizeof nm, "%s.%s", name, s), nm)
    b.norm1 = add_norm1d(u, SUB("norm1"), cin);
    b.conv1 = add_conv(u, SUB("conv1"), cout, cin, 3);
    b.temb = add_linear(u, SUB("temb"), cout, u->cfg.time_dim);
    b.norm2 = add_norm1d(u, SUB("norm2"), cout);
    b.conv2 = add_conv(u, SUB("conv2"), cout, cout, 3);
    if (cin != cout) b.skip = add_conv(u, SUB("skip"), cout, cin, 1);
    else b.skip.w = b.skip.b = -1;
#undef SUB
    return b;
}

static void register_all(fm_unet *u)
{
    const fm_unet_config *c = &u->cfg;
    int L = c->nlevels, td = c->time_dim;
    char nm[64];
    u->time0 = add_linear(u, "time_mlp.0", td, c->time_freq);
    u->time2 = add_linear(u, "time_mlp.2", td, td);
    u->ival0.w = u->ival2.w = -1;
    if (c->interval) {
        u->ival0 = add_linear(u, "interval_mlp.0", td, c->time_freq);
        u->ival2 = add_linear(u, "interval_mlp.2", td, td);
    }
    int es[2] = {c->num_classes + 1, td}; /* one row per class and one for "no label" */
    u->label_emb = c->num_classes > 0 ? add_named(u, "label_emb", "weight", 2, es) : -1;
    u->conv_in = add_conv(u, "conv_in", u->ch[0], c->in_ch, 3);
    for (int i = 0; i < L; i++) {
        snprintf(nm, sizeof nm, "down.%d", i);
        u->down[i] = add_block(u, nm, i ? u->ch[i - 1] : u->ch[0], u->ch[i]);
    }
    u->mid = add_block(u, "mid", u->ch[L - 1], u->ch[L - 1]);
    for (int j = 0; j < L; j++) {
        int i = L - 1 - j;
        snprintf(nm, sizeof nm, "up.%d", j);
        u->up[j] = add_block(u, nm, 2 * u->ch[i], u->ch[i]);
    }
    for (int j = 0; j + 1 < L; j++) {
        int i = L - 1 - j;
        snprintf(nm, sizeof nm, "upconv.%d", j);
        u->upconv[j] = add_conv(u, nm, u->ch[i - 1], u->ch[i], 3);
    }
    u->norm_out = add_norm1d(u, "norm_out", u->ch[0]);
    u->conv_out = add_conv(u, "conv_out", c->out_ch ? c->out_ch : c->in_ch, u->ch[0], 3);
}

static void init_all(fm_unet *u, fm_rng *r);

fm_unet *fm_unet_new(fm_params *p, const char *prefix, const fm_unet_config *cfg)
{
    if (!p || !cfg) {
        fm__fail(FM_ERR_ARG, "fm_unet_new: missing parameter set or configuration");
        return NULL;
    }
    if (config_check(cfg) != FM_OK) return NULL;
    const char *pre = prefix ? prefix : "";
    if (strlen(pre) >= 100) {
        fm__fail(FM_ERR_ARG, "unet: parameter prefix '%.40s...' is too long", pre);
        return NULL;
    }
    fm_unet *u = calloc(1, sizeof *u);
    if (!u) {
        fm__fail(FM_ERR_NOMEM, "out of memory creating a U-Net");
        return NULL;
    }
    u->p = p;
    u->cfg = *cfg;
    if (!u->cfg.time_freq) u->cfg.time_freq = cfg->base % 2 ? cfg->base + 1 : cfg->base;
    if (!u->cfg.time_dim) u->cfg.time_dim = 4 * cfg->base;
    for (int i = cfg->nlevels; i < FM_UNET_MAX_LEVELS; i++) u->cfg.mult[i] = 0;
    strcpy(u->prefix, pre);
    for (int i = 0; i < cfg->nlevels; i++) u->ch[i] = cfg->base * cfg->mult[i];
    int n0 = fm_params_count(p);
    register_all(u);
    if (u->failed) { /* a name taken, or out of memory: take back what was added */
        fm__params_truncate(p, n0);
        free(u);
        return NULL;
    }
    init_all(u, NULL);
    return u;
}

void fm_unet_free(fm_unet *u) { free(u); }

const fm_unet_config *fm_unet_get_config(const fm_unet *u) { return &u->cfg; }

static void init_norm(fm_unet *u, layer l)
{
    fm_tensor *w = fm_params_tensor(u->p, l.w), *b = fm_params_tensor(u->p, l.b);
    for (size_t k = 0; k < w->size; k++) w->data[k] = 1.0f;
    memset(b->data, 0, b->size * sizeof(float));
}

static void init_lin(fm_unet *u, fm_rng *r, layer l)
{
    if (r) fm_init_linear(r, fm_params_tensor(u->p, l.w), fm_params_tensor(u->p, l.b));
}

static void init_block(fm_unet *u, fm_rng *r, const resblock *b)
{
    init_norm(u, b->norm1);
    init_lin(u, r, b->conv1);
    init_lin(u, r, b->temb);
    init_norm(u, b->norm2);
    init_lin(u, r, b->conv2);
    if (b->skip.w >= 0) init_lin(u, r, b->skip);
}

/* Every layer; with r NULL only the GroupNorm layers (1 and 0), as fm_unet_new
 * leaves them. */
static void init_all(fm_unet *u, fm_rng *r)
{
    int L = u->cfg.nlevels;
    init_lin(u, r, u->time0);
    init_lin(u, r, u->time2);
    if (u->ival0.w >= 0) {
        init_lin(u, r, u->ival0);
        init_lin(u, r, u->ival2);
    }
    if (r && u->label_emb >= 0) { /* nn.Embedding's default: N(0, 1) */
        fm_tensor *e = fm_params_tensor(u->p, u->label_emb);
        fm_rng_normal_fill(r, e->data, e->size, 0.0f, 1.0f);
    }
    init_lin(u, r, u->conv_in);
    for (int i = 0; i < L; i++) init_block(u, r, &u->down[i]);
    init_block(u, r, &u->mid);
    for (int j = 0; j < L; j++) init_block(u, r, &u->up[j]);
    for (int j = 0; j + 1 < L; j++) init_lin(u, r, u->upconv[j]);
    init_norm(u, u->norm_out);
    init_lin(u, r, u->conv_out);
}

void fm_unet_init(fm_unet *u, fm_rng *r)
{
    FM_ASSERT(r); /* a random stream is required */
    init_all(u, r);
}

/* ------------------------------------------------------------------ forward */

/* The forward pass, and with `jvp` its forward-mode tangent beside it: every
 * value is a dual (p, d), d the tangent (NULL without jvp). The tangents are
 * built from ordinary ops on the weights (linear and convolution without
 * bias, the activation's derivative) and the values-only tangents of the
 * group norm and the time embedding; nothing the loss reaches depends on
 * them unless a method makes it, so a backward pass ignores them. */
typedef struct {
    fm_tape *tp;
    fm_params *P;
    int groups;
    int jvp;
} fwd;

typedef struct {
    fm_tensor *p, *d;
} dual;

static fm_tensor *W(const fwd *f, int i) { return fm_params_tensor(f->P, i); }

/* silu(group_norm(x)) as one op: the norm's output is not kept */
static dual norm_silu(const fwd *f, dual x, layer n)
{
    dual y = {fm__group_norm_act(f->tp, x.p, f->groups, W(f, n.w), W(f, n.b), GN_EPS, FM_ACT_SILU), NULL};
    if (f->jvp) y.d = fm__group_norm_act_jvp(f->tp, y.p, x.d);
    return y;
}

static dual conv(const fwd *f, dual x, layer c, int pad)
{
    dual y = {fm_conv2d(f->tp, x.p, W(f, c.w), W(f, c.b), 1, pad), NULL};
    if (f->jvp) y.d = fm_conv2d(f->tp, x.d, W(f, c.w), NULL, 1, pad);
    return y;
}

static dual linear(const fwd *f, dual x, layer l)
{
    dual y = {fm_linear(f->tp, x.p, W(f, l.w), W(f, l.b)), NULL};
    if (f->jvp) y.d = fm_linear(f->tp, x.d, W(f, l.w), NULL);
    return y;
}

static dual silu(const fwd *f, dual x)
{
    dual y = {fm_silu(f->tp, x.p), NULL};
    if (f->jvp) y.d = fm_mul(f->tp, fm_act_grad(f->tp, x.p, FM_ACT_SILU), x.d);
    return y;
}

/* a + b; with `into`, written over a's values: for a convolution's output
 * that only this sum reads (a convolution's backward does not read its output). */
static dual sum(const fwd *f, dual a, dual b, int into)
{
    fm_tensor *(*op)(fm_tape *, fm_tensor *, fm_tensor *) = into ? fm__add_into : fm_add;
    dual y = {op(f->tp, a.p, b.p), NULL};
    if (f->jvp) y.d = op(f->tp, a.d, b.d);
    return y;
}

static dual reshape(const fwd *f, dual x, int ndim, const int *shape)
{
    dual y = {fm_reshape(f->tp, x.p, ndim, shape), NULL};
    if (f->jvp) y.d = fm_reshape(f->tp, x.d, ndim, shape);
    return y;
}

/* semb: silu(emb), (N, time_dim). */
static dual block(const fwd *f, const resblock *b, dual x, dual semb)
{
    dual h = conv(f, norm_silu(f, x, b->norm1), b->conv1, 1);
    dual te = linear(f, semb, b->temb);
    int ts[4] = {te.p ? te.p->shape[0] : 1, b->cout, 1, 1};
    h = sum(f, h, reshape(f, te, 4, ts), 1);
    h = conv(f, norm_silu(f, h, b->norm2), b->conv2, 1);
    return sum(f, h, b->skip.w >= 0 ? conv(f, x, b->skip, 0) : x, 1);
}

/* l2(silu(l0(sinusoid(t)))) for times t (B, 1), tangent dt. */
static dual time_mlp(const fwd *f, const fm_unet_config *c, fm_tensor *t, fm_tensor *dt, layer l0, layer l2)
{
    float sc = FM__TIME_SCALE_OF(c->time_scale);
    dual e = {fm_time_embed(f->tp, t, c->time_freq, sc, FM__TIME_EMBED_PERIOD), NULL};
    if (f->jvp) e.d = fm__time_embed_jvp(f->tp, t, dt, c->time_freq, sc, FM__TIME_EMBED_PERIOD);
    return linear(f, silu(f, linear(f, e, l0)), l2);
}

static fm_tensor *run(fm_tape *tp, fm_unet *u, fm_params *P, fm_tensor *t, fm_tensor *x, const int *labels,
                      fm_tensor *dt, fm_tensor *dx, fm_tensor **tangent)
{
    fm_tensor *in2[2] = {x, t};
    if (!fm__op_inputs_ok(tp, "unet", in2, 2)) return NULL;
    const fm_unet_config *c = &u->cfg;
    char s1[96], s2[96];
    int B = x->shape[0], d = c->in_ch * c->height * c->width;
    int flat = x->ndim == 2, tcols = t->ndim == 2 ? t->shape[1] : 1;
    if (!(flat && x->shape[1] == d) &&
        !(x->ndim == 4 && x->shape[1] == c->in_ch && x->shape[2] == c->height && x->shape[3] == c->width))
        return fm__op_fail(tp, FM_ERR_SHAPE, "unet: input has shape %s, expected [B, %d, %d, %d] or [B, %d]",
                           fm_shape_str(x, s1, sizeof s1), c->in_ch, c->height, c->width, d);
    if (!(t->ndim == 2 || t->ndim == 1) || tcols > 1 + c->interval || t->shape[0] != B)
        return fm__op_fail(tp, FM_ERR_SHAPE, "unet: times have shape %s, expected [%d, %d] for input %s",
                           fm_shape_str(t, s1, sizeof s1), B, 1 + c->interval, fm_shape_str(x, s2, sizeof s2));
    if (tangent && (!fm__same_shape(dx, x) || (dt && dt->size != t->size)))
        return fm__op_fail(tp, FM_ERR_SHAPE, "unet: tangents %s do not fit the input %s", fm_shape_str(dx, s1, sizeof s1),
                           fm_shape_str(x, s2, sizeof s2));
    fwd f = {tp, P, c->groups, tangent != NULL};
    int L = c->nlevels;
    fm_tensor *t0 = t, *dt0 = NULL;
    if (c->interval) t0 = fm__column(tp, t, 0);
    if (f.jvp) dt0 = dt ? (c->interval ? fm__column(tp, dt, 0) : dt) : fm_tensor_new(tp, t0->ndim, t0->shape);
    dual emb = time_mlp(&f, c, t0, dt0, u->time0, u->time2);
    if (c->interval) { /* + the interval's own embedding; a (B, 1) t: an interval of 0 */
        fm_tensor *h0 = fm__column(tp, t, 1), *dh = f.jvp ? (dt ? fm__column(tp, dt, 1) : fm_tensor_2d(tp, B, 1)) : NULL;
        emb = sum(&f, emb, time_mlp(&f, c, h0, dh, u->ival0, u->ival2), 0);
    }
    if (u->label_emb >= 0) { /* + the class's embedding; no labels: the "no label" row */
        int K = c->num_classes, *ids = fm__tape_alloc(tp, (size_t)B * sizeof(int));
        if (!ids) return fm__op_fail(tp, FM_ERR_NOMEM, "unet: out of memory for %d labels", B);
        for (int i = 0; i < B; i++) {
            ids[i] = labels ? labels[i] : K;
            if (ids[i] < 0 || ids[i] > K)
                return fm__op_fail(tp, FM_ERR_ARG, "unet: label %d of row %d is outside 0..%d (%d: no label)", ids[i],
                                   i, K, K);
        }
        emb.p = fm_add(tp, emb.p, fm_embedding(tp, W(&f, u->label_emb), ids, B)); /* a constant: no tangent */
    } else if (labels) {
        return fm__op_fail(tp, FM_ERR_ARG, "unet: labels given to a network without class conditioning");
    }
    dual semb = silu(&f, emb);
    int is[4] = {B, c->in_ch, c->height, c->width};
    dual h = {x, dx};
    if (flat) h = reshape(&f, h, 4, is);
    h = conv(&f, h, u->conv_in, 1);
    dual kept[FM_UNET_MAX_LEVELS];
    for (int i = 0; i < L; i++) {
        h = block(&f, &u->down[i], h, semb);
        kept[i] = h;
        if (i + 1 < L) {
            h.p = fm_avg_pool2d(tp, h.p, 2);
            if (f.jvp) h.d = fm_avg_pool2d(tp, h.d, 2);
        }
    }
    h = block(&f, &u->mid, h, semb);
    for (int j = 0; j < L; j++) {
        int i = L - 1 - j;
        fm_tensor *cat[2] = {h.p, kept[i].p}, *dcat[2] = {h.d, kept[i].d};
        dual hc = {fm_concat(tp, cat, 2), f.jvp ? fm_concat(tp, dcat, 2) : NULL};
        h = block(&f, &u->up[j], hc, semb);
        if (i > 0) {
            h.p = fm_upsample_nearest2d(tp, h.p, 2);
            if (f.jvp) h.d = fm_upsample_nearest2d(tp, h.d, 2);
            h = conv(&f, h, u->upconv[j], 1);
        }
    }
    h = conv(&f, norm_silu(&f, h, u->norm_out), u->conv_out, 1);
    if (flat) {
        int os[2] = {B, (c->out_ch ? c->out_ch : c->in_ch) * c->height * c->width};
        h = reshape(&f, h, 2, os);
    }
    if (tangent) *tangent = h.d;
    return h.p;
}

fm_tensor *fm__unet_forward_with(fm_tape *tp, fm_unet *u, fm_params *P, fm_tensor *t, fm_tensor *x, const int *labels)
{
    return run(tp, u, P, t, x, labels, NULL, NULL, NULL);
}

fm_tensor *fm__unet_jvp_with(fm_tape *tp, fm_unet *u, fm_params *P, fm_tensor *t, fm_tensor *x, const int *labels,
                             fm_tensor *dt, fm_tensor *dx, fm_tensor **y)
{
    fm_tensor *d = NULL, *in1[1] = {dx};
    if (y) *y = NULL;
    if (!fm__op_inputs_ok(tp, "unet_jvp", in1, 1)) return NULL;
    fm_tensor *out = run(tp, u, P, t, x, labels, dt, dx, &d);
    if (!out || !d) return NULL;
    if (y) *y = out;
    return d;
}

fm_tensor *fm_unet_forward(fm_tape *tp, fm_unet *u, fm_tensor *t, fm_tensor *x, const int *labels)
{
    return fm__unet_forward_with(tp, u, u->p, t, x, labels);
}

/* ------------------------------------------------------------------ names and metadata */

static const char *const arch_names[FM_ARCH_COUNT] = {"mlp", "unet"};
const char *fm_arch_name(fm_arch a) { return fm__name_of(arch_names, FM_ARCH_COUNT, a); }
int fm_arch_from_name(const char *name) { return fm__name_index(arch_names, FM_ARCH_COUNT, name); }

fm_status fm_unet_config_save(const fm_unet_config *c, fm_st_writer *w)
{
    fm_status s = fm_st_writer_meta(w, "model", "unet");
    if (!s) s = fm__meta_put_num(w, "unet.in_ch", c->in_ch);
    if (!s) s = fm__meta_put_num(w, "unet.height", c->height);
    if (!s) s = fm__meta_put_num(w, "unet.width", c->width);
    if (!s) s = fm__meta_put_num(w, "unet.base", c->base);
    if (!s) s = fm__meta_put_widths(w, "unet.mult", c->nlevels, c->mult);
    if (!s) s = fm__meta_put_num(w, "unet.time_freq", c->time_freq);
    if (!s) s = fm__meta_put_num(w, "unet.time_dim", c->time_dim);
    if (!s) s = fm__meta_put_num(w, "unet.groups", c->groups);
    if (!s) s = fm__meta_put_num(w, "unet.num_classes", c->num_classes);
    if (!s && c->out_ch && c->out_ch != c->in_ch) s = fm__meta_put_num(w, "unet.out_ch", c->out_ch); /* only when it differs */
    if (!s && c->interval) s = fm__meta_put_num(w, "unet.interval", 1); /* only when set */
    if (!s && c->time_scale > 0) s = fm__meta_put_num(w, "unet.time_scale", c->time_scale);
    return s;
}

fm_status fm_unet_config_load(fm_unet_config *c, const fm_st *st)
{
    const char *model = fm_st_meta(st, "model");
    if (!model) return fm__fail(FM_ERR_FORMAT, "checkpoint metadata lacks 'model'");
    if (strcmp(model, "unet") != 0) return fm__fail(FM_ERR_FORMAT, "checkpoint holds a '%s' model, not a unet", model);
    fm_unet_config t;
    memset(&t, 0, sizeof t);
    double in = 0, h = 0, wd = 0, base = 0, tf = 0, tdim = 0, g = 0, nc = 0;
    int mult[FM_MLP_MAX_LAYERS] = {0}, nl = 0;
    fm_status s = fm__meta_get_whole(st, "unet.in_ch", 1, 64, &in);
    if (!s) s = fm__meta_get_whole(st, "unet.height", 1, 4096, &h);
    if (!s) s = fm__meta_get_whole(st, "unet.width", 1, 4096, &wd);
    if (!s) s = fm__meta_get_whole(st, "unet.base", 1, 4096, &base);
    if (!s) s = fm__meta_get_widths(st, "unet.mult", &nl, mult);
    if (!s) s = fm__meta_get_whole(st, "unet.time_freq", 0, 65536, &tf);
    if (!s) s = fm__meta_get_whole(st, "unet.time_dim", 0, 65536, &tdim);
    if (!s) s = fm__meta_get_whole(st, "unet.groups", 1, 4096, &g);
    if (!s) s = fm__meta_get_whole(st, "unet.num_classes", 0, 100000, &nc);
    double oc = 0;
    if (!s && fm_st_meta(st, "unet.out_ch")) s = fm__meta_get_whole(st, "unet.out_ch", 1, 4096, &oc);
    double iv = 0;
    if (!s && fm_st_meta(st, "unet.interval")) s = fm__meta_get_whole(st, "unet.interval", 0, 1, &iv);
    double tsc = 0;
    if (!s && fm_st_meta(st, "unet.time_scale")) s = fm__meta_get_num(st, "unet.time_scale", &tsc);
    if (s) return s;
    if (nl < 1 || nl > FM_UNET_MAX_LEVELS)
        return fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'unet.mult' has %d levels, not 1..%d", nl, FM_UNET_MAX_LEVELS);
    t.in_ch = (int)in;
    t.height = (int)h;
    t.width = (int)wd;
    t.base = (int)base;
    t.nlevels = nl;
    memcpy(t.mult, mult, (size_t)nl * sizeof(int));
    t.time_freq = (int)tf;
    t.time_dim = (int)tdim;
    t.groups = (int)g;
    t.num_classes = (int)nc;
    t.out_ch = (int)oc;
    t.interval = (int)iv;
    t.time_scale = tsc;
    if (config_check(&t)) return fm__fail(FM_ERR_FORMAT, "checkpoint's U-Net: %s", fm_last_error());
    *c = t;
    return FM_OK;
}
