/* meanflow.c - MeanFlow: a network of the average velocity, for generation in
 * one step or a few.
 *
 * The model is a flow whose network also takes an interval h (fm_flow_config
 * .interval): u(x, t, h) is the average velocity of the flow through x at
 * time t over [t, t + h], so x(t + h) = x + h u(x, t, h), and u(x, t, 0) is
 * the velocity itself. Time runs as everywhere in flowmatch, 0 = source,
 * 1 = data, and the path is the straight one, x_t = t x1 + (1 - t) x0,
 * with v = x1 - x0.
 *
 * Training (Geng et al. 2025, "Mean Flows for One-step Generative
 * Modeling"): differentiating h u(x(t), t, e - t) = x(e) - x(t) in t with the
 * end e held gives the MeanFlow identity
 *     u(x_t, t, h) = v(x_t, t) + h d/dt u(x_t, t, h),
 *     d/dt u = (du/dx) v + du/dt - du/dh,
 * one Jacobian-vector product of the network along the tangent (v, 1, -1) of
 * its inputs (x, t, h). The paper's time runs the other way (its t is our
 * 1 - t, its r our end e, its u our -u), where the same identity reads
 * u = v - (t - r) du/dt with the tangent (v, 0, 1). Each step draws two times
 * from the time distribution, t the smaller and e the larger; with
 * probability 1 - ratio e = t (then the target is v, flow matching itself).
 * The target v + h sg(du/dt) is regressed with the paper's adaptive weight:
 * loss = mean over rows of sg(w) |u - target|^2, w = 1 / (|u - target|^2 + c)^p.
 * The conditional velocity v = x1 - x0 stands in for the marginal one in both
 * the tangent and the target, as in the paper.
 *
 * The variant --target split (SplitMeanFlow, Guo et al. 2025) needs no JVP:
 * for e > t it splits the interval at s = t + lambda h, lambda ~ U(0, 1), and
 * regresses u(x_t, t, h) on lambda u1 + (1 - lambda) u2 with
 * u1 = u(x_t, t, s - t), x_s = x_t + (s - t) u1, u2 = u(x_s, s, e - s), both
 * without gradient; rows with e = t regress on v.
 *
 * Sampling jumps: x <- x + (t_{k+1} - t_k) u(x, t_k, t_{k+1} - t_k) on a
 * uniform grid of `steps` intervals (sampler "jump", 1 step by default), or
 * integrates the velocity u(x, t, 0) with midpoint steps (sampler "ode").
 */
#include "methods/flow_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    fm__flow_batch b;
    float *h, *t2;   /* (B) intervals; a second draw of times */
    float *lam;      /* (B) split points (target split) */
} mf_state;

static void defaults(fm_train_config *c, int image)
{
    c->flow.interval = 1;
    /* sinusoids of t itself, not of 1000 t: the target's du/dt goes through the time
     * embedding, and at 1000 t its derivative is a thousand times the network's
     * value and the regression on it diverges (mse 1e4 to 4e6 on MNIST in 200 steps) */
    c->flow.net.time_scale = 1.0;
    c->flow.unet.time_scale = 1.0;
    if (!image) return; /* uniform times: one-step W2 0.49 against 0.86 on 8gaussians -> moons */
    /* on images the paper's ImageNet setting, logit-normal(-0.4, 1) in its time: (0.4, 1) in ours */
    c->tdist.kind = FM_TDIST_LOGIT_NORMAL;
    c->tdist.loc = 0.4;
    c->tdist.scale = 1.0;
    fm__flow_image_defaults(c);
}

static fm_status check(const fm_train_config *c)
{
    fm_status s = fm__flow_method_check(c, 1);
    if (s) return s;
    if (c->flow.path.kind != FM_PATH_OT || c->flow.path.sigma_min != 0 || c->flow.path.t_end != 1)
        return fm__fail(FM_ERR_ARG, "meanflow: the path is the straight one, x_t = t x1 + (1 - t) x0 (ot, sigma-min 0)");
    if (c->flow.predict != FM_PREDICT_V)
        return fm__fail(FM_ERR_ARG, "meanflow: the network is the average velocity itself (predict v)");
    if (c->coupling == FM_COUPLING_SB)
        return fm__fail(FM_ERR_ARG, "meanflow: the Schrodinger-bridge coupling needs the sb path; take independent or ot");
    if (!(c->meanflow.ratio >= 0 && c->meanflow.ratio <= 1) || !(c->meanflow.weight_p >= 0 && c->meanflow.weight_p <= 4) ||
        !(c->meanflow.weight_c > 0 && c->meanflow.weight_c <= 1e6))
        return fm__fail(FM_ERR_ARG, "meanflow: ratio-r-neq-t in [0, 1], adaptive-p in [0, 4] and adaptive-c in (0, 1e6]");
    return FM_OK;
}

static fm_status state_new(fm_trainer *tr)
{
    mf_state *st = calloc(1, sizeof *st);
    if (!st) return fm__fail(FM_ERR_NOMEM, "out of memory");
    tr->ms = st;
    size_t B = (size_t)tr->cfg.batch;
    st->h = malloc(B * sizeof(float));
    st->t2 = malloc(B * sizeof(float));
    st->lam = malloc(B * sizeof(float));
    if (!st->h || !st->t2 || !st->lam) return fm__fail(FM_ERR_NOMEM, "out of memory for a batch of %zu", B);
    return fm__flow_batch_new(&st->b, tr->cfg.batch, tr->cfg.flow.dim);
}

static void state_free(void *ms)
{
    mf_state *st = ms;
    fm__flow_batch_free(&st->b);
    free(st->h);
    free(st->t2);
    free(st->lam);
    free(st);
}

/* The (m, 2) network times: rows (t_i, h_i). */
static fm_tensor *times2(fm_tape *tp, const float *t, const float *h, int m)
{
    fm_tensor *T = fm_tensor_2d(tp, m, 2);
    for (int i = 0; T && i < m; i++) {
        T->data[2 * (size_t)i] = t[i];
        T->data[2 * (size_t)i + 1] = h[i];
    }
    return T;
}

/* The split target of rows [r0, r1) into tgt (no gradient). */
static fm_status split_target(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, float *tgt)
{
    mf_state *st = tr->ms;
    int d = tr->cfg.flow.dim, m = r1 - r0, xs[2] = {m, d};
    const int *lab = tr->labels ? tr->labels + r0 : NULL;
    float *a = fm__tape_alloc(tp, 3 * (size_t)m * sizeof(float));
    if (!a) return fm_tape_status(tp);
    float *h1 = a, *s = a + m, *h2 = a + 2 * m;
    for (int i = 0; i < m; i++) {
        double t = tr->t[r0 + i], h = st->h[r0 + i], l = st->lam[r0 + i];
        h1[i] = (float)(l * h);
        s[i] = (float)(t + h1[i]);
        h2[i] = (float)(t + h - s[i]);
    }
    fm_tensor *X = fm_tensor_wrap(tp, tr->xt + (size_t)r0 * d, 2, xs);
    fm_tensor *u1 = fm__flow_forward_with(tp, tr->obj, P, times2(tp, tr->t + r0, h1, m), X, lab);
    if (!u1) return fm_tape_status(tp);
    fm_tensor *Xs = fm_tensor_2d(tp, m, d);
    if (!Xs) return fm_tape_status(tp);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < d; j++) {
            size_t k = (size_t)i * d + j;
            Xs->data[k] = X->data[k] + h1[i] * u1->data[k];
        }
    fm_tensor *u2 = fm__flow_forward_with(tp, tr->obj, P, times2(tp, s, h2, m), Xs, lab);
    if (!u2) return fm_tape_status(tp);
    for (int i = 0; i < m; i++) {
        double l = st->lam[r0 + i];
        for (int j = 0; j < d; j++) {
            size_t k = (size_t)i * d + j;
            tgt[k] = st->h[r0 + i] > 0 ? (float)(l * u1->data[k] + (1 - l) * u2->data[k]) : tr->ut[(size_t)r0 * d + k];
        }
    }
    return FM_OK;
}

fm_tensor *fm__meanflow_loss(fm_tape *tp, fm_flow *f, fm_params *P, fm_tensor *T, fm_tensor *X, fm_tensor *V,
                             const int *labels, const float *target, double p, double c, double scale, double *plain)
{
    fm_tensor *in3[3] = {T, X, V};
    *plain = NAN;
    if (!fm__op_inputs_ok(tp, "meanflow_loss", in3, 3)) return NULL;
    int m = X->shape[0], d = X->shape[1];
    if (X->ndim != 2 || !fm__same_shape(X, V) || T->ndim != 2 || T->shape[0] != m || T->shape[1] != 2)
        return fm__op_fail(tp, FM_ERR_SHAPE, "meanflow_loss: needs times (m, 2), points and velocities (m, d)");
    fm_tensor *tgt = fm_tensor_2d(tp, m, d), *W = fm_tensor_2d(tp, m, d), *u = NULL, *e;
    if (!tgt || !W) return NULL;
    if (target) {
        memcpy(tgt->data, target, (size_t)m * d * sizeof(float));
        u = fm__flow_forward_with(tp, f, P, T, X, labels);
    } else { /* the tangent of (x, t, h) along the path with its end held: (v, 1, -1) */
        fm_tensor *TT = fm_tensor_2d(tp, m, 2);
        for (int i = 0; TT && i < m; i++) TT->data[2 * (size_t)i] = 1.0f, TT->data[2 * (size_t)i + 1] = -1.0f;
        fm_tensor *du = fm__flow_jvp_with(tp, f, P, T, X, labels, TT, V, &u);
        if (!du) return NULL;
        for (int i = 0; i < m; i++) {
            float h = T->data[2 * (size_t)i + 1];
            const float *v = V->data + (size_t)i * d, *dv = du->data + (size_t)i * d;
            float *g = tgt->data + (size_t)i * d;
            for (int j = 0; j < d; j++) g[j] = v[j] + h * dv[j];
        }
    }
    if (!u || !(e = fm_sub(tp, u, tgt))) return NULL;
    double sum = 0;
    for (int i = 0; i < m; i++) { /* |u - target|^2 in double: the weight of the row */
        double sq = 0;
        for (int j = 0; j < d; j++) {
            double r = (double)u->data[(size_t)i * d + j] - tgt->data[(size_t)i * d + j];
            sq += r * r;
        }
        sum += sq;
        float w = (float)(pow(sq + c, -p) * scale);
        for (int j = 0; j < d; j++) W->data[(size_t)i * d + j] = w;
    }
    *plain = sum;
    return fm_sum(tp, fm_mul(tp, W, fm_mul(tp, e, e)));
}

/* The loss of rows [r0, r1) over the batch size, and the plain squared error
 * over the batch size into loss[1]. */
static fm_status shard(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss)
{
    mf_state *st = tr->ms;
    const fm_train_config *c = &tr->cfg;
    int B = c->batch, d = c->flow.dim, m = r1 - r0, xs[2] = {m, d};
    size_t o = (size_t)r0 * d;
    float *tgt = NULL;
    if (c->meanflow.split) {
        tgt = fm__tape_alloc(tp, (size_t)m * d * sizeof(float));
        fm_status s = tgt ? split_target(tr, tp, P, r0, r1, tgt) : fm_tape_status(tp);
        if (s) return s;
    }
    double plain;
    fm_tensor *l = fm__meanflow_loss(tp, tr->obj, P, times2(tp, tr->t + r0, st->h + r0, m),
                                     fm_tensor_wrap(tp, tr->xt + o, 2, xs), fm_tensor_wrap(tp, tr->ut + o, 2, xs),
                                     tr->labels ? tr->labels + r0 : NULL, tgt, c->meanflow.weight_p, c->meanflow.weight_c,
                                     1.0 / B, &plain);
    fm_status s = fm__train_finish(tp, P, l, loss);
    loss[1] = plain / B;
    return s;
}

static fm_status step(fm_trainer *tr, double *loss)
{
    mf_state *st = tr->ms;
    const fm_train_config *c = &tr->cfg;
    int B = c->batch, d = c->flow.dim;
    fm_status s = fm__flow_draw_pairs(tr, &st->b, B);
    if (s) return s;
    fm__flow_draw_times(tr, B);
    memcpy(st->t2, tr->t, (size_t)B * sizeof(float));
    fm__flow_draw_times(tr, B);
    for (int i = 0; i < B; i++) {
        float a = tr->t[i], b = fm_rng_uniform(&tr->rtime) < c->meanflow.ratio ? st->t2[i] : a;
        tr->t[i] = a < b ? a : b;
        st->h[i] = (a < b ? b : a) - tr->t[i];
        st->lam[i] = c->meanflow.split ? fm_rng_uniform(&tr->rtime) : 0.0f;
    }
    for (int i = 0; i < B; i++) { /* x_t = t x1 + (1 - t) x0, v = x1 - x0 */
        double t = tr->t[i];
        for (int j = 0; j < d; j++) {
            size_t k = (size_t)i * d + j;
            tr->xt[k] = (float)(t * tr->x1[k] + (1 - t) * st->b.x0[k]);
            tr->ut[k] = tr->x1[k] - st->b.x0[k];
        }
    }
    double sums[3] = {NAN, 0, 0};
    s = fm__train_shards(tr, 0, NULL, shard, "loss", fm_trainer_lr(tr), sums);
    *loss = sums[0];
    tr->parts[0] = sums[1];
    tr->nparts = 1;
    return s ? s : fm__train_update(tr, 0, fm_trainer_lr(tr));
}

/* ------------------------------------------------------------------ sampling */

static const char *const samplers[] = {"jump", "ode", NULL};

static void sampler_steps(const void *obj, int i, int *steps, int *max_steps)
{
    (void)obj;
    *steps = i == 0 ? 1 : 8;
    *max_steps = i == 0 ? 1000 : 100000;
}

/* One jump per interval of the grid: x <- x + h u(x, t, h). */
static fm_status jumps(fm_flow *f, const double *grid, int ngrid, float *x, int n, fm_observe_fn obs, void *octx)
{
    int d = fm_flow_get_config(f)->dim;
    size_t total = (size_t)n * d;
    float *u = malloc(total * sizeof(float));
    if (!u) return fm__fail(FM_ERR_NOMEM, "out of memory for %d samples", n);
    fm_status s = obs ? obs(octx, 0, grid[0], x, total) : FM_OK;
    for (int k = 0; !s && k + 1 < ngrid; k++) {
        double h = grid[k + 1] - grid[k];
        s = fm_flow_average_velocity(f, grid[k], h, x, u, n);
        for (size_t i = 0; !s && i < total; i++) x[i] += (float)(h * u[i]);
        if (!s && obs) s = obs(octx, k + 1, grid[k + 1], x, total);
    }
    free(u);
    return s;
}

static fm_status sample(void *obj, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                        const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx, fm_solve_stats *st)
{
    fm_flow *f = obj;
    int d = fm_flow_get_config(f)->dim;
    if (!sc || n < 1 || (!x_start && !r) || ngrid < 2 || !grid)
        return fm__fail(FM_ERR_ARG, "sampling needs a sampler, n >= 1 (got %d), a time grid and a random stream or "
                                    "starting points", n);
    int ode = sc->sampler && !strcmp(sc->sampler, "ode");
    if (sc->sampler && !ode && strcmp(sc->sampler, "jump"))
        return fm__fail(FM_ERR_ARG, "a MeanFlow model samples with jump or ode, not '%s'", sc->sampler);
    if (ode) {
        fm_solver_config mid = *sc;
        mid.kind = FM_SOLVER_MIDPOINT;
        mid.sampler = NULL;
        return fm_flow_sample(f, n, x_start, r, &mid, grid, ngrid, out, obs, octx, st);
    }
    size_t total = (size_t)n * d;
    fm_status s = FM_OK;
    if (x_start) memcpy(out, x_start, total * sizeof(float));
    else s = fm_flow_source(f, r, out, n);
    fm__obs_data w = {f, obs, octx, NULL};
    if (!s) s = jumps(f, grid, ngrid, out, n, obs ? fm__observe_data : NULL, &w);
    free(w.tmp);
    if (st) {
        memset(st, 0, sizeof *st);
        st->nfe = st->steps = s ? 0 : ngrid - 1;
    }
    if (!s) fm_flow_to_data(f, out, n);
    return s;
}

/* The likelihood of its velocity u(x, t, 0)'s flow: the ODE back to the
 * source, 100 rk4 steps, the exact divergence up to 16 dimensions, else
 * Hutchinson's with one Rademacher probe (seed 0). */
static fm_status log_prob(void *obj, const float *x, int n, double *logp)
{
    fm_flow *f = obj;
    enum { N = 100 };
    double grid[N + 1];
    fm_time_grid_uniform(grid, N, 1.0, 0.0);
    fm_nll_config c = {fm_solver_config_default(FM_SOLVER_RK4), grid, N + 1,
                       fm_flow_get_config(f)->dim <= 16 ? FM_DIV_EXACT : FM_DIV_HUTCH_RADEMACHER, 1, 0};
    return fm_flow_log_likelihood(f, x, n, &c, logp, NULL, NULL);
}

/* ------------------------------------------------------------------ checkpoints and the table */

static fm_status save(void *obj, fm_st_writer *w) { return fm__flow_save_as(obj, w, "meanflow"); }

static fm_status save_train(fm_trainer *tr, fm_st_writer *w)
{
    const fm_train_config *c = &tr->cfg;
    fm_status s = fm__meta_put_num(w, "train.mf_ratio", c->meanflow.ratio);
    if (!s) s = fm__meta_put_num(w, "train.mf_weight_p", c->meanflow.weight_p);
    if (!s) s = fm__meta_put_num(w, "train.mf_weight_c", c->meanflow.weight_c);
    if (!s) s = fm_st_writer_meta(w, "train.mf_target", c->meanflow.split ? "split" : "jvp");
    if (!s) s = fm__flow_save_tdist(tr, w);
    return s;
}

static fm_status load_config(fm_train_config *c, const fm_st *st)
{
    fm_status s = fm__flow_method_load_config(c, st);
    if (!s) s = fm__flow_load_tdist(c, st);
    if (!s) s = fm__meta_get_num(st, "train.mf_ratio", &c->meanflow.ratio);
    if (!s) s = fm__meta_get_num(st, "train.mf_weight_p", &c->meanflow.weight_p);
    if (!s) s = fm__meta_get_num(st, "train.mf_weight_c", &c->meanflow.weight_c);
    const char *tg = fm_st_meta(st, "train.mf_target");
    if (!s && (!tg || (strcmp(tg, "jvp") && strcmp(tg, "split"))))
        s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'train.mf_target' is not jvp or split");
    if (!s) c->meanflow.split = !strcmp(tg, "split");
    return s;
}

static void describe(const fm_trainer *tr, char *buf, size_t cap)
{
    const fm_train_config *c = &tr->cfg;
    snprintf(buf, cap, "MeanFlow %s -> %s, %s target, %g%% of intervals h > 0", c->flow.source, c->flow.data,
             c->meanflow.split ? "split" : "JVP", 100 * c->meanflow.ratio);
}

static fm_status set_ratio(fm_train_config *c, const char *v)
{
    return fm__setting_number("meanflow: ratio-r-neq-t", v, 0, 1, 0, &c->meanflow.ratio);
}
static void get_ratio(const fm_train_config *c, char *b, size_t n) { snprintf(b, n, "%g", c->meanflow.ratio); }
static fm_status set_p(fm_train_config *c, const char *v)
{
    return fm__setting_number("meanflow: adaptive-p", v, 0, 4, 0, &c->meanflow.weight_p);
}
static void get_p(const fm_train_config *c, char *b, size_t n) { snprintf(b, n, "%g", c->meanflow.weight_p); }
static fm_status set_c(fm_train_config *c, const char *v)
{
    return fm__setting_number("meanflow: adaptive-c", v, 0, 1e6, 1, &c->meanflow.weight_c);
}
static void get_c(const fm_train_config *c, char *b, size_t n) { snprintf(b, n, "%g", c->meanflow.weight_c); }
static fm_status set_target(fm_train_config *c, const char *v)
{
    if (strcmp(v, "jvp") && strcmp(v, "split"))
        return fm__fail(FM_ERR_ARG, "meanflow: target = '%s' must be jvp (the MeanFlow identity) or split "
                                    "(SplitMeanFlow's interval splitting)", v);
    c->meanflow.split = !strcmp(v, "split");
    return FM_OK;
}
static void get_target(const fm_train_config *c, char *b, size_t n) { snprintf(b, n, "%s", c->meanflow.split ? "split" : "jvp"); }

static const fm__setting settings[] = {
    {"ratio-r-neq-t", "P", "meanflow: share of training intervals with h > 0 (the rest are flow matching's h = 0)",
     set_ratio, get_ratio},
    {"adaptive-p", "P", "meanflow: power p of the adaptive weight 1 / (|error|^2 + c)^p (0: plain squared error)", set_p,
     get_p},
    {"adaptive-c", "C", "meanflow: c of the adaptive weight", set_c, get_c},
    {"target", "KIND", "meanflow: jvp (the MeanFlow identity, one JVP) or split (SplitMeanFlow, two forward passes)",
     set_target, get_target},
    FM__TDIST_SETTING,
    {NULL, NULL, NULL, NULL, NULL},
};

static const char *const options[] = {"source", "coupling", "time-embed", NULL};

const fm__method fm__method_meanflow = {
    .id = 9,
    .name = "meanflow",
    .summary = "MeanFlow: the average velocity over an interval, for one-step or few-step generation",
    FM__FLOW_OBJECT,
    .parts = {"mse"},
    .options = options,
    .settings = settings,
    .defaults = defaults,
    .check = check,
    .build = fm__flow_method_build,
    .state_new = state_new,
    .state_free = state_free,
    .step = step,
    .save_train = save_train,
    .describe = describe,
    .load_config = load_config,
    .save = save,
    .log_prob = log_prob,
    .log_prob_how = "the ODE of its velocity u(x, t, 0) back to the source, 100 rk4 steps, exact divergence up to 16 "
                    "dimensions, else Hutchinson's with one Rademacher probe",
    .sampling = FM_SAMPLING_OWN,
    .samplers = samplers,
    .sampler_steps = sampler_steps,
    .sample = sample,
};
