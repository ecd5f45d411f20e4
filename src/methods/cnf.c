/* cnf.c - a continuous normalizing flow trained by maximum likelihood: the
 * model flow matching made cheap to train.
 *
 * The model is the same velocity network as flow matching's (an fm_flow on
 * the OT path's time range [0, 1]). Each step takes a batch of data x(1) back
 * to t = 0 with a fixed-step solver (euler, midpoint, heun, heun3 or rk4; --train-steps
 * steps) on the tape, together with A, dA/dt = div v(t, x), A(1) = 0, so that
 * log p1(x(1)) = log N(x(0); 0, I) + A(0) (the instantaneous change of
 * variables), and one optimizer step on the mean negative log-likelihood,
 * differentiated through every step of the solver (discretise, then
 * optimise). The divergence is exact (one Jacobian-vector product per
 * dimension, stacked into one pass: fm_mlp_jvp) or Hutchinson's estimate
 * e^T J e with one Rademacher probe per point held for the whole solve. A
 * trained CNF samples and gives likelihoods as any flow: its checkpoint only
 * names the method that trained it.
 */
#include "methods/flow_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    float *probe; /* (batch, dim) Hutchinson's probes, or NULL */
} cnf_state;

/* Butcher tableaux of the fixed-step solvers: stages, a (row-major, lower), b, c. */
typedef struct {
    int s;
    double a[4][4], b[4], c[4];
} tableau;

static const tableau tableaux[] = {
    [FM_SOLVER_EULER] = {1, {{0}}, {1}, {0}},
    [FM_SOLVER_MIDPOINT] = {2, {{0}, {0.5}}, {0, 1}, {0, 0.5}},
    [FM_SOLVER_HEUN] = {2, {{0}, {1}}, {0.5, 0.5}, {0, 1}},
    [FM_SOLVER_RK4] = {4, {{0}, {0.5}, {0, 0.5}, {0, 0, 1}}, {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6}, {0, 0.5, 0.5, 1}},
    [FM_SOLVER_HEUN3] = {3, {{0}, {1.0 / 3}, {0, 2.0 / 3}}, {0.25, 0, 0.75}, {0, 1.0 / 3, 2.0 / 3}},
};

/* A solver with a tableau here (not dopri5). */
static int on_tape(int k) { return k >= 0 && k < (int)(sizeof tableaux / sizeof tableaux[0]) && tableaux[k].s > 0; }

static int exact_div(const fm_train_config *c) { return c->cnf.hutchinson == 0 || (c->cnf.hutchinson < 0 && c->flow.dim <= 16); }

static fm_status check(const fm_train_config *c)
{
    fm_status s = fm__train_plain_noise(c, "cnf");
    if (!s) s = fm__train_mlp_only(c, "cnf");
    if (!s && c->flow.predict != FM_PREDICT_V)
        s = fm__fail(FM_ERR_ARG, "cnf: the network is the velocity itself (predict v), trained by maximum likelihood");
    if (!s && (c->cnf.steps < 1 || c->cnf.steps > 1000))
        s = fm__fail(FM_ERR_ARG, "cnf: %d training solver steps must lie in 1..1000", c->cnf.steps);
    if (!s && !on_tape(c->cnf.solver))
        s = fm__fail(FM_ERR_ARG, "cnf: training needs a fixed-step solver (euler, midpoint, heun, heun3 or rk4)");
    if (!s && c->flow.path.kind != FM_PATH_OT)
        s = fm__fail(FM_ERR_ARG, "cnf: a CNF has no probability path to choose (it is trained by likelihood)");
    return s;
}

static fm_status state_new(fm_trainer *tr)
{
    cnf_state *st = calloc(1, sizeof *st);
    if (!st) return fm__fail(FM_ERR_NOMEM, "out of memory");
    tr->ms = st;
    if (!exact_div(&tr->cfg)) {
        st->probe = malloc((size_t)tr->cfg.batch * tr->cfg.flow.dim * sizeof(float));
        if (!st->probe) return fm__fail(FM_ERR_NOMEM, "out of memory for a batch of %d", tr->cfg.batch);
    }
    return FM_OK;
}

static void state_free(void *ms)
{
    cnf_state *st = ms;
    free(st->probe);
    free(st);
}

/* A (rows, 1) tensor of t. */
static fm_tensor *times(fm_tape *tp, int rows, double t)
{
    fm_tensor *T = fm_tensor_2d(tp, rows, 1);
    for (int i = 0; T && i < rows; i++) T->data[i] = (float)t;
    return T;
}

/* The velocity at (t, x) and the sum over the rows of its divergence:
 * sum(E * J E) with E the stacked unit vectors (exact) or the probes. */
static fm_tensor *field(fm_tape *tp, fm_flow *f, fm_params *P, double t, fm_tensor *x, fm_tensor *E, fm_tensor **div)
{
    fm_tensor *v = NULL, *je = fm__flow_jvp_with(tp, f, P, times(tp, x->shape[0], t), x, NULL, NULL, E, &v);
    *div = fm_sum(tp, fm_mul(tp, E, je));
    return v;
}

/* The d unit vectors stacked for m points ((d m, d), block i the i-th). */
static fm_tensor *unit_probes(fm_tape *tp, int m, int d)
{
    fm_tensor *E = fm_tensor_2d(tp, d * m, d);
    for (int i = 0; E && i < d; i++)
        for (int b = 0; b < m; b++) E->data[((size_t)i * m + b) * d + i] = 1.0f;
    return E;
}

/* The NLL of the rows of x summed, through the solver's steps, with weights P
 * and probes E (stacked unit vectors: the exact divergence). */
static fm_tensor *nll_sum(fm_tape *tp, fm_flow *f, fm_params *P, fm_tensor *x, fm_tensor *E, fm_solver_kind kind,
                          int N)
{
    const tableau *tb = &tableaux[kind];
    int m = x->shape[0], d = x->shape[1];
    fm_tensor *A = NULL; /* sum over the rows of A(t) */
    double t_end = fm_flow_get_config(f)->path.t_end, h = -t_end / N;
    for (int k = 0; k < N && x; k++) {
        double t = t_end + k * h;
        fm_tensor *kv[4] = {0}, *dv[4] = {0}, *xn = x;
        for (int j = 0; j < tb->s; j++) {
            fm_tensor *xj = x;
            for (int i = 0; i < j; i++)
                if (tb->a[j][i] != 0) xj = fm_add(tp, xj, fm_scale(tp, kv[i], (float)(h * tb->a[j][i])));
            kv[j] = field(tp, f, P, t + tb->c[j] * h, xj, E, &dv[j]);
            if (tb->b[j] == 0) continue;
            xn = fm_add(tp, xn, fm_scale(tp, kv[j], (float)(h * tb->b[j])));
            fm_tensor *inc = fm_scale(tp, dv[j], (float)(h * tb->b[j]));
            A = A ? fm_add(tp, A, inc) : inc;
        }
        x = xn;
    }
    /* NLL = |x(0)|^2 / 2 + d/2 log(2 pi) - A(0) */
    fm_tensor *sq = fm_scale(tp, fm_sum(tp, fm_mul(tp, x, x)), 0.5f);
    fm_tensor *c = sq ? fm_tensor_new(tp, sq->ndim, sq->shape) : NULL;
    if (c) c->data[0] = (float)(0.5 * d * log(2 * M_PI) * m);
    return fm_sub(tp, fm_add(tp, sq, c), A);
}

fm_tensor *fm_cnf_loss(fm_tape *tp, fm_flow *f, fm_tensor *x, fm_solver_kind kind, int steps, fm_tensor *probe)
{
    fm_tensor *in2[2] = {x, probe};
    if (!fm__op_inputs_ok(tp, "cnf_loss", in2, 1)) return NULL;
    if (!f || !on_tape(kind) || steps < 1 || x->ndim != 2 || x->shape[1] != fm_flow_get_config(f)->dim ||
        (probe && !fm__same_shape(probe, x)))
        return fm__op_fail(tp, FM_ERR_ARG, "cnf_loss: needs a flow, points (n, dim), a fixed-step solver, steps >= 1 "
                                           "and probes shaped as the points");
    fm_tensor *E = probe ? probe : unit_probes(tp, x->shape[0], x->shape[1]);
    return fm_scale(tp, nll_sum(tp, f, fm_flow_params(f), x, E, kind, steps), (float)(1.0 / x->shape[0]));
}

/* The NLL of rows [r0, r1) over the batch size. */
static fm_status shard_nll(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss)
{
    cnf_state *st = tr->ms;
    const fm_train_config *c = &tr->cfg;
    int d = c->flow.dim, m = r1 - r0, s2[2] = {m, d};
    fm_tensor *x = fm_tensor_wrap(tp, tr->x1 + (size_t)r0 * d, 2, s2);
    fm_tensor *E = st->probe ? fm_tensor_wrap(tp, st->probe + (size_t)r0 * d, 2, s2) : unit_probes(tp, m, d);
    fm_tensor *l = fm_scale(tp, nll_sum(tp, tr->obj, P, x, E, c->cnf.solver, c->cnf.steps), (float)(1.0 / c->batch));
    return fm__train_finish(tp, P, l, loss);
}

static fm_status step(fm_trainer *tr, double *loss)
{
    cnf_state *st = tr->ms;
    int B = tr->cfg.batch;
    fm_status s = fm__train_draw(tr, B);
    if (s) return s;
    for (size_t i = 0; st->probe && i < (size_t)B * tr->cfg.flow.dim; i++)
        st->probe[i] = fm_rng_uniform(&tr->rnoise) < 0.5 ? -1.0f : 1.0f;
    double sums[3] = {NAN, 0, 0};
    s = fm__train_shards(tr, 0, NULL, shard_nll, "negative log-likelihood", fm_trainer_lr(tr), sums);
    *loss = sums[0];
    tr->nparts = 0;
    return s ? s : fm__train_update(tr, 0, fm_trainer_lr(tr));
}

static fm_status save(void *obj, fm_st_writer *w) { return fm__flow_save_as(obj, w, "cnf"); }

static fm_status save_train(fm_trainer *tr, fm_st_writer *w)
{
    const fm_train_config *c = &tr->cfg;
    fm_status s = fm__meta_put_num(w, "train.cnf_steps", c->cnf.steps);
    if (!s) s = fm_st_writer_meta(w, "train.cnf_solver", fm_solver_name(c->cnf.solver));
    if (!s) s = fm__meta_put_num(w, "train.cnf_hutchinson", c->cnf.hutchinson);
    return s;
}

static fm_status load_config(fm_train_config *c, const fm_st *st)
{
    fm_status s = fm__flow_method_load_config(c, st);
    double steps = 8, hutch = -1;
    if (!s) s = fm__meta_get_whole(st, "train.cnf_steps", 1, 1000, &steps);
    if (!s) s = fm__meta_get_num(st, "train.cnf_hutchinson", &hutch);
    const char *sv = fm_st_meta(st, "train.cnf_solver");
    int k = sv ? fm_solver_from_name(sv) : FM_SOLVER_RK4;
    if (!s && (!on_tape(k) || (hutch != -1 && hutch != 0 && hutch != 1)))
        s = fm__fail(FM_ERR_FORMAT, "the checkpoint's CNF training solver or divergence is not one flowmatch knows");
    c->cnf.steps = (int)steps;
    c->cnf.solver = (fm_solver_kind)k;
    c->cnf.hutchinson = (int)hutch;
    return s;
}

static void describe(const fm_trainer *tr, char *buf, size_t cap)
{
    const fm_train_config *c = &tr->cfg;
    snprintf(buf, cap, "a CNF by maximum likelihood on %s, %d %s steps, %s divergence", c->flow.data, c->cnf.steps,
             fm_solver_name(c->cnf.solver), exact_div(c) ? "exact" : "Hutchinson");
}

/* --train-steps N, --train-solver NAME, --divergence exact|hutchinson|auto */
static fm_status set_steps(fm_train_config *c, const char *v)
{
    return fm__setting_whole("cnf: train-steps", v, 1, 1000, &c->cnf.steps);
}
static void get_steps(const fm_train_config *c, char *buf, size_t cap) { snprintf(buf, cap, "%d", c->cnf.steps); }
static fm_status set_solver(fm_train_config *c, const char *v)
{
    int k = fm_solver_from_name(v);
    if (!on_tape(k))
        return fm__fail(FM_ERR_ARG, "cnf: train-solver = '%s' must be euler, midpoint, heun, heun3 or rk4", v);
    c->cnf.solver = (fm_solver_kind)k;
    return FM_OK;
}
static void get_solver(const fm_train_config *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", fm_solver_name(c->cnf.solver));
}
static fm_status set_div(fm_train_config *c, const char *v)
{
    int k = !strcmp(v, "exact") ? 0 : !strcmp(v, "hutchinson") ? 1 : !strcmp(v, "auto") ? -1 : -2;
    if (k == -2) return fm__fail(FM_ERR_ARG, "cnf: divergence = '%s' must be exact, hutchinson or auto", v);
    c->cnf.hutchinson = k;
    return FM_OK;
}
static void get_div(const fm_train_config *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", c->cnf.hutchinson < 0 ? "auto" : c->cnf.hutchinson ? "hutchinson" : "exact");
}

static const fm__setting settings[] = {
    {"train-steps", "N", "cnf: solver steps through which each training step integrates", set_steps, get_steps},
    {"train-solver", "NAME", "cnf: fixed-step solver of training: euler, midpoint, heun, heun3, rk4", set_solver, get_solver},
    {"divergence", "KIND", "cnf: exact, hutchinson (one probe per point), auto (exact up to 16 dims)", set_div,
     get_div},
    {NULL, NULL, NULL, NULL, NULL},
};

const fm__method fm__method_cnf = {
    .id = 4,
    .name = "cnf",
    .summary = "continuous normalizing flow: a velocity field trained by maximum likelihood through its ODE",
    FM__FLOW_OBJECT,
    .settings = settings,
    .check = check,
    .build = fm__flow_method_build,
    .state_new = state_new,
    .state_free = state_free,
    .step = step,
    .save_train = save_train,
    .describe = describe,
    .load_config = load_config,
    .save = save,
    .sampling = FM_SAMPLING_ODE,
    .default_solver = fm__flow_method_default_solver,
    .sample = fm__flow_method_sample,
};
