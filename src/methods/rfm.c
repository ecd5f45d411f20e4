/* rfm.c - Riemannian flow matching (Chen and Lipman 2024) on the sphere S^2
 * and the flat torus: a time-conditioned MLP regressed on the velocity of
 * geodesic paths, sampled by ODE solvers that project back onto the manifold
 * after every step, with a likelihood from the divergence on the manifold.
 *
 * Training: x1 from the data (put on the manifold), x0 uniform on it, t
 * uniform, x_t = exp_{x0}(t log_{x0}(x1)) and its velocity u_t
 * (src/geometry/manifold.c); the loss is the mean of |v(t, x_t) - u_t|^2, the
 * manifold's metric being the ambient one (sphere) or the angles' (torus).
 * The network: on the sphere it reads (t, x) and its output u is projected to
 * the tangent plane, v = u - <u, x> x; on the torus it reads (t, cos a, sin a,
 * cos b, sin b), so v is periodic, and its output is the angle rates.
 *
 * Sampling (its own samplers euler, midpoint, rk4): each stage point is
 * x + c h k projected onto the manifold (normalised, or angles wrapped), and
 * so is each step's result; samples stay on it to rounding.
 *
 * Likelihood: log p1(x) = log p0(x0) - int_0^1 div_M v(t, x_t) dt, the ODE
 * run backwards from x with rk4 (rfm.nll_steps steps, 100) and p0 uniform
 * (1 / 4 pi, 1 / 4 pi^2). div_M v is exact: on the sphere tr(P J P) =
 * tr(J) - x^T J x with J the ambient Jacobian of v (three vector-Jacobian
 * products); on the torus the flat divergence, through the features by the
 * chain rule (two).
 */
#include "train/method.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    fm_manifold man;
    fm_mlp_config net; /* in: 3 (sphere) or 4 (torus features); out: 3 or 2 */
    int nll_steps;
    char *data;
    fm_params *P;
    fm_mlp *mlp;
    fm__stdz z; /* off: points on a manifold are not standardised (the trainer's draw reads it) */
    fm__workers wk;
} rfm_model;

static int man_dim(const rfm_model *m) { return fm_manifold_dim(m->man); }

static rfm_model *rfm_new(fm_manifold man, const fm_mlp_config *shape, int nll_steps, const char *data)
{
    if (man != FM_MANIFOLD_SPHERE && man != FM_MANIFOLD_TORUS) {
        fm__fail(FM_ERR_ARG, "rfm: manifold %d is neither the sphere nor the torus", (int)man);
        return NULL;
    }
    rfm_model *m = calloc(1, sizeof *m);
    if (!m) goto oom;
    m->man = man;
    m->nll_steps = nll_steps;
    m->net = *shape;
    m->net.in_dim = man == FM_MANIFOLD_SPHERE ? 3 : 4;
    m->net.out_dim = man_dim(m);
    m->net.time_input = 1;
    if (data && !(m->data = fm__strdup(data))) goto oom;
    if (!(m->P = fm_params_new())) goto oom;
    if (!(m->mlp = fm_mlp_new(m->P, "net", &m->net))) {
        free(m->data);
        fm_params_free(m->P);
        free(m);
        return NULL;
    }
    return m;
oom:
    if (m) free(m->data), fm_params_free(m->P);
    free(m);
    fm__fail(FM_ERR_NOMEM, "out of memory");
    return NULL;
}

static void rfm_free(rfm_model *m)
{
    if (!m) return;
    fm_mlp_free(m->mlp);
    fm_params_free(m->P);
    fm__workers_free(&m->wk);
    fm__stdz_free(&m->z);
    free(m->data);
    free(m);
}

/* ------------------------------------------------------------------ the field */

/* The torus's features (cos a, sin a, cos b, sin b) of angle pairs x (m rows). */
static void torus_features(const float *x, int m, float *f)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < 2; j++) {
            f[4 * i + 2 * j] = (float)cos(x[2 * i + j]);
            f[4 * i + 2 * j + 1] = (float)sin(x[2 * i + j]);
        }
}

/* v(t, x) on the tape for points X (m, d): on the torus from its features F
 * (m, 4), which the caller makes (and may ask gradients of). */
static fm_tensor *field(fm_tape *tp, rfm_model *mo, fm_params *P, fm_tensor *T, fm_tensor *X, fm_tensor *F)
{
    if (mo->man == FM_MANIFOLD_TORUS) return fm__mlp_forward_with(tp, mo->mlp, P, T, F);
    fm_tensor *u = fm__mlp_forward_with(tp, mo->mlp, P, T, X);
    if (!u) return NULL;
    int os[2] = {1, 3};
    fm_tensor *ones = fm_tensor_new(tp, 2, os);
    if (!ones) return NULL;
    for (int j = 0; j < 3; j++) ones->data[j] = 1.0f;
    fm_tensor *dot = fm_linear(tp, fm_mul(tp, u, X), ones, NULL); /* (m, 1): <u, x> */
    return fm_sub(tp, u, fm_mul(tp, dot, X));                     /* u - <u, x> x */
}

/* The method table's forward: the trainer's regression on (t, x_t). */
static fm_tensor *forward(fm_tape *tp, void *obj, fm_params *P, fm_tensor *t, fm_tensor *x, const int *labels)
{
    (void)labels;
    rfm_model *mo = obj;
    fm_tensor *F = NULL;
    if (mo->man == FM_MANIFOLD_TORUS) {
        int m = x->shape[0], fs[2] = {m, 4};
        if (!(F = fm_tensor_new(tp, 2, fs))) return NULL;
        torus_features(x->data, m, F->data);
    }
    return field(tp, mo, P, t, x, F);
}

typedef struct {
    rfm_model *mo;
    double t;
    const float *x;
    float *v;
    double *div; /* NULL: the velocity only */
} chunk_args;

static fm_status chunk(fm_tape *tp, float *tbuf, int i0, int m, void *ctx)
{
    chunk_args *a = ctx;
    rfm_model *mo = a->mo;
    int d = man_dim(mo), xs[2] = {m, d}, ts[2] = {m, 1};
    for (int i = 0; i < m; i++) tbuf[i] = (float)a->t;
    fm_tensor *T = fm_tensor_wrap(tp, tbuf, 2, ts);
    fm_tensor *X = fm_tensor_copy(tp, a->x + (size_t)i0 * d, 2, xs), *F = NULL;
    if (!X) return fm_tape_status(tp);
    if (mo->man == FM_MANIFOLD_TORUS) {
        int fs[2] = {m, 4};
        if (!(F = fm_tensor_new(tp, 2, fs))) return fm_tape_status(tp);
        torus_features(X->data, m, F->data);
    }
    fm_tensor *in = mo->man == FM_MANIFOLD_TORUS ? F : X;
    if (a->div) fm_tensor_requires_grad(in, 1);
    fm_tensor *v = field(tp, mo, mo->P, T, X, F);
    if (!v) return fm_tape_status(tp);
    memcpy(a->v + (size_t)i0 * d, v->data, (size_t)m * d * sizeof(float));
    if (!a->div) return FM_OK;
    /* row k of the Jacobian by a vector-Jacobian product with e_k on every point */
    float *e = malloc((size_t)m * d * sizeof(float));
    double *dv = a->div + i0, *xjx = calloc((size_t)m, sizeof(double));
    if (!e || !xjx) {
        free(e), free(xjx);
        return fm__fail(FM_ERR_NOMEM, "out of memory for a divergence");
    }
    for (int i = 0; i < m; i++) dv[i] = 0;
    fm__tape_mark mk = fm__tape_get_mark(tp);
    fm_status s = FM_OK;
    for (int k = 0; k < d && !s; k++) {
        memset(e, 0, (size_t)m * d * sizeof(float));
        for (int i = 0; i < m; i++) e[(size_t)i * d + k] = 1.0f;
        if ((s = fm_backward(tp, v, e))) break;
        const float *g = in->grad; /* e_k^T dv/d(in), (m, in_dim) */
        for (int i = 0; i < m; i++) {
            const float *gi = g + (size_t)i * in->shape[1], *xi = a->x + (size_t)(i0 + i) * d;
            if (mo->man == FM_MANIFOLD_SPHERE) { /* tr(J) and x^T J x from the rows of J */
                dv[i] += gi[k];
                xjx[i] += xi[k] * ((double)gi[0] * xi[0] + (double)gi[1] * xi[1] + (double)gi[2] * xi[2]);
            } else { /* d v_k / d angle_k = g . d features / d angle_k */
                double c = cos(xi[k]), sn = sin(xi[k]);
                dv[i] += -sn * gi[2 * k] + c * gi[2 * k + 1];
            }
        }
        fm__tape_rewind(tp, &mk);
    }
    for (int i = 0; i < m && mo->man == FM_MANIFOLD_SPHERE; i++) dv[i] -= xjx[i];
    free(e);
    free(xjx);
    return s;
}

/* v (n, d) and, when div is given, div_M v (n) at time t. */
static fm_status eval_field(rfm_model *mo, double t, const float *x, int n, float *v, double *div)
{
    chunk_args a = {mo, t, x, v, div};
    size_t row = (size_t)man_dim(mo) * sizeof(float);
    fm__chunk_out out[2] = {{v, row, 0, 1}, {div, sizeof(double), 0, div != NULL}};
    return fm__run_chunks(&mo->wk, mo->P, n, chunk, &a, out, 2);
}

static fm_status field_cb(void *ctx, double t, const float *x, int n, float *v, double *div)
{
    return eval_field(ctx, t, x, n, v, div);
}

fm_manifold fm_model_manifold(const fm_model *M)
{
    if (strcmp(fm_model_method_name(M), "rfm")) return FM_MANIFOLD_AUTO;
    return ((const rfm_model *)fm__model_object((fm_model *)M))->man;
}

fm_status fm__rfm_field(fm_model *M, double t, const float *x, int n, float *v, double *div)
{
    if (strcmp(fm_model_method_name(M), "rfm")) return fm__fail(FM_ERR_ARG, "not an rfm model");
    return eval_field(fm__model_object(M), t, x, n, v, div);
}

/* ------------------------------------------------------------------ sampling and likelihood */

static const char *const samplers[] = {"rk4", "midpoint", "euler", NULL}; /* the first is the default */

static void sampler_steps(const void *obj, int i, int *steps, int *max_steps)
{
    (void)obj;
    *steps = i == 0 ? 25 : i == 1 ? 50 : 100; /* 100 evaluations each */
    *max_steps = 100000;
}

static fm_status sample(void *obj, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                        const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx, fm_solve_stats *st)
{
    rfm_model *mo = obj;
    const char *name = sc && sc->sampler ? sc->sampler : "rk4";
    int kind = !strcmp(name, "euler") ? 0 : !strcmp(name, "midpoint") ? 1 : !strcmp(name, "rk4") ? 2 : -1;
    if (kind < 0)
        return fm__fail(FM_ERR_ARG, "an rfm model samples with euler, midpoint or rk4 (projected), not '%s'", name);
    if (ngrid < 2) return fm__fail(FM_ERR_ARG, "rfm: a time grid of %d points", ngrid);
    if (st) memset(st, 0, sizeof *st);
    if (x_start) {
        memcpy(out, x_start, (size_t)n * man_dim(mo) * sizeof(float));
        fm_manifold_project(mo->man, out, n);
    } else {
        fm_manifold_uniform(mo->man, r, out, n);
    }
    return fm__manifold_integrate(mo->man, kind, field_cb, mo, grid, ngrid, out, n, NULL, obs, octx, st);
}

static fm_status log_prob(void *obj, const float *x, int n, double *logp)
{
    rfm_model *mo = obj;
    int d = man_dim(mo), N = mo->nll_steps;
    float *y = malloc((size_t)n * d * sizeof(float));
    double *grid = malloc((size_t)(N + 1) * sizeof(double));
    if (!y || !grid) {
        free(y), free(grid);
        return fm__fail(FM_ERR_NOMEM, "out of memory for %d likelihoods", n);
    }
    memcpy(y, x, (size_t)n * d * sizeof(float));
    fm_manifold_project(mo->man, y, n);
    fm_time_grid_uniform(grid, N, 1.0, 0.0); /* from the data back to the uniform source */
    for (int i = 0; i < n; i++) logp[i] = 0;
    fm_status s = fm__manifold_integrate(mo->man, 2, field_cb, mo, grid, N + 1, y, n, logp, NULL, NULL, NULL);
    /* logp now holds int_1^0 div dt = -int_0^1 div dt */
    for (int i = 0; !s && i < n; i++) logp[i] += -fm_manifold_log_volume(mo->man);
    free(y), free(grid);
    return s;
}

/* ------------------------------------------------------------------ checkpoints */

static fm_status rfm_save(void *obj, fm_st_writer *w)
{
    rfm_model *m = obj;
    fm_status s = fm__meta_put_format(w);
    if (!s) s = fm_st_writer_meta(w, "method", "rfm");
    if (!s) s = fm_st_writer_meta(w, "rfm.data", m->data ? m->data : "");
    if (!s) s = fm_st_writer_meta(w, "rfm.manifold", fm_manifold_name(m->man));
    if (!s) s = fm__meta_put_num(w, "rfm.nll_steps", m->nll_steps);
    if (!s) s = fm__meta_put_widths(w, "rfm.widths", m->net.nhidden, m->net.width);
    if (!s) s = fm_st_writer_meta(w, "rfm.act", fm_act_name(m->net.act));
    if (!s) s = fm_params_save(m->P, w, NULL);
    return s;
}

/* The model's shape from a checkpoint's metadata into mc, man and steps. */
static fm_status shape_load(const fm_st *st, fm_mlp_config *mc, fm_manifold *man, int *steps)
{
    const char *mn = fm_st_meta(st, "rfm.manifold");
    int k = mn ? fm_manifold_from_name(mn) : -1;
    if (k != FM_MANIFOLD_SPHERE && k != FM_MANIFOLD_TORUS)
        return fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'rfm.manifold' is '%s', not sphere or torus", mn ? mn : "");
    double ns = 100;
    *mc = fm_mlp_config_default(2);
    fm_status s = fm__meta_get_whole(st, "rfm.nll_steps", 1, 100000, &ns);
    if (!s) s = fm__meta_get_widths(st, "rfm.widths", &mc->nhidden, mc->width);
    if (!s) s = fm__meta_get_act(st, "rfm.act", &mc->act);
    *man = (fm_manifold)k;
    *steps = (int)ns;
    return s;
}

static void *rfm_load(const fm_st *st, int use_ema)
{
    fm_mlp_config mc;
    fm_manifold man = FM_MANIFOLD_SPHERE;
    int steps = 100;
    if (shape_load(st, &mc, &man, &steps)) return NULL;
    fm__params_budget(fm__st_values(st), "checkpoint");
    rfm_model *m = rfm_new(man, &mc, steps, fm_st_meta(st, "rfm.data"));
    fm__params_budget_end();
    if (!m) return NULL;
    if (fm__params_load_model(m->P, st, use_ema, NULL, NULL, 0)) {
        rfm_free(m);
        return NULL;
    }
    return m;
}

/* ------------------------------------------------------------------ the method */

static void defaults(fm_train_config *c, int image)
{
    (void)image;
    c->optim.lr = 1e-3;
    c->flow.net.act = FM_ACT_SILU;
    c->flow.net.nhidden = 3;
    for (int i = 0; i < 3; i++) c->flow.net.width[i] = 256;
}

static fm_status check(const fm_train_config *c)
{
    fm_status s = fm__train_mlp_only(c, "rfm");
    if (!s && c->coupling != FM_COUPLING_INDEPENDENT)
        s = fm__fail(FM_ERR_ARG, "rfm pairs x0 and x1 independently; --coupling is for flow matching in R^d");
    if (!s && !fm__is_gaussian_source(c->flow.source))
        s = fm__fail(FM_ERR_ARG, "rfm's source is the uniform distribution on the manifold; --source is not taken");
    if (!s && (c->rfm.nll_steps < 1 || c->rfm.nll_steps > 100000))
        s = fm__fail(FM_ERR_ARG, "rfm: %d likelihood steps must lie in 1..100000", c->rfm.nll_steps);
    return s;
}

/* The manifold the data lives on: asked, or by its dimension. */
static fm_manifold manifold_for(const fm_train_config *c, int dim)
{
    if (c->rfm.manifold != FM_MANIFOLD_AUTO) return c->rfm.manifold;
    return dim == 3 ? FM_MANIFOLD_SPHERE : dim == 2 ? FM_MANIFOLD_TORUS : FM_MANIFOLD_AUTO;
}

static fm_status check_data(const fm_train_config *c, fm_dataset *data, int *standardize)
{
    int d = fm_dataset_dim(data);
    fm_manifold man = manifold_for(c, d);
    if (man == FM_MANIFOLD_AUTO)
        return fm__fail(FM_ERR_ARG, "rfm: '%s' has %d columns: the sphere takes unit vectors (3), the torus angle "
                                    "pairs (2)", fm_dataset_spec(data), d);
    if (fm_manifold_dim(man) != d)
        return fm__fail(FM_ERR_ARG, "rfm: the %s takes %d columns, '%s' has %d", fm_manifold_name(man),
                        fm_manifold_dim(man), fm_dataset_spec(data), d);
    if (c->standardize == 1) return fm__fail(FM_ERR_ARG, "rfm: points on a manifold are not standardised");
    *standardize = 0;
    const fm_table *t = fm_dataset_table(data);
    for (int i = 0; t && man == FM_MANIFOLD_SPHERE && i < t->rows; i++) { /* a table of points must be on the sphere */
        const float *x = t->data + (size_t)i * 3;
        double r = sqrt((double)x[0] * x[0] + (double)x[1] * x[1] + (double)x[2] * x[2]);
        if (fabs(r - 1) > 1e-3)
            return fm__fail(FM_ERR_ARG, "rfm: row %d of '%s' has norm %g: the sphere's points are unit vectors", i + 1,
                            fm_dataset_spec(data), r);
    }
    return FM_OK;
}

static fm_status build(fm_trainer *tr, const fm_train_config *c, int dim, const char *data, const char *source)
{
    (void)source;
    rfm_model *m = rfm_new(manifold_for(c, dim), &c->flow.net, c->rfm.nll_steps, data);
    if (!m) return fm_last_status();
    tr->obj = m;
    tr->g[0].P = m->P;
    tr->z = &m->z;
    return FM_OK;
}

static fm_status step(fm_trainer *tr, double *loss)
{
    rfm_model *mo = tr->obj;
    int B = tr->cfg.batch;
    fm_status s = fm__train_draw(tr, B);
    if (s) return s;
    fm_manifold_project(mo->man, tr->x1, B);
    fm_manifold_uniform(mo->man, &tr->rnoise, tr->xt, B); /* the source points, then replaced row by row by x_t */
    for (int i = 0; i < B; i++) tr->t[i] = (float)fm_rng_uniform(&tr->rtime);
    fm_manifold_geodesic(mo->man, tr->xt, tr->x1, tr->t, B, tr->xt, tr->ut);
    return fm__train_regress(tr, loss);
}

static fm_status load_config(fm_train_config *c, const fm_st *st)
{
    fm_manifold man = FM_MANIFOLD_SPHERE;
    int steps = 100;
    fm_status s = shape_load(st, &c->flow.net, &man, &steps);
    if (s) return s;
    c->rfm.manifold = man;
    c->rfm.nll_steps = steps;
    c->flow.data = fm_st_meta(st, "rfm.data");
    return FM_OK;
}

static void describe(const fm_trainer *tr, char *buf, size_t cap)
{
    const rfm_model *m = tr->obj;
    snprintf(buf, cap, "Riemannian flow matching on the %s: uniform -> %s, geodesic paths", fm_manifold_name(m->man),
             tr->cfg.flow.data);
}

static void m_free(void *obj) { rfm_free(obj); }
static void m_init(void *obj, fm_rng *r) { fm_mlp_init(((rfm_model *)obj)->mlp, r); }
static int m_dim(const void *obj) { return man_dim(obj); }
static const char *m_data(const void *obj) { return ((const rfm_model *)obj)->data; }
static size_t m_size(void *obj) { return fm_params_size(((rfm_model *)obj)->P); }

/* --manifold NAME, --nll-steps N */
static fm_status set_manifold(fm_train_config *c, const char *v)
{
    int k = fm_manifold_from_name(v);
    if (k < 0) return fm__fail(FM_ERR_ARG, "rfm: manifold = '%s' must be sphere, torus or auto", v);
    c->rfm.manifold = (fm_manifold)k;
    return FM_OK;
}
static void get_manifold(const fm_train_config *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", fm_manifold_name(c->rfm.manifold));
}
static fm_status set_nll_steps(fm_train_config *c, const char *v)
{
    return fm__setting_whole("rfm: nll-steps", v, 1, 100000, &c->rfm.nll_steps);
}
static void get_nll_steps(const fm_train_config *c, char *buf, size_t cap) { snprintf(buf, cap, "%d", c->rfm.nll_steps); }

static const fm__setting settings[] = {
    {"manifold", "NAME", "rfm: sphere (unit vectors), torus (angle pairs), or auto: by the data's columns",
     set_manifold, get_manifold},
    {"nll-steps", "N", "rfm: rk4 steps of the likelihood's ODE (nll)", set_nll_steps, get_nll_steps},
    {NULL, NULL, NULL, NULL, NULL},
};

const fm__method fm__method_rfm = {
    .id = 7,
    .name = "rfm",
    .summary = "Riemannian flow matching on the sphere or the flat torus: geodesic paths, projected solvers",
    .object = "rfm",
    .stdz_key = "rfm",
    .settings = settings,
    .default_data = "torus-mix",
    .defaults = defaults,
    .check = check,
    .check_data = check_data,
    .build = build,
    .init = m_init,
    .forward = forward,
    .step = step,
    .describe = describe,
    .load_config = load_config,
    .free = m_free,
    .save = rfm_save,
    .load = rfm_load,
    .dim = m_dim,
    .data = m_data,
    .size = m_size,
    .log_prob = log_prob,
    .log_prob_how = "its ODE back to the uniform source, rk4 (rfm.nll_steps steps), exact divergence on the manifold",
    .sampling = FM_SAMPLING_OWN,
    .samplers = samplers,
    .sampler_steps = sampler_steps,
    .sample = sample,
};
