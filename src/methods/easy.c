/* easy.c - one-call entry points for bindings and short programs: a training
 * configuration on the heap set by option names as text (the train
 * command's flags), and sampling and likelihoods of any model by solver name
 * with its defaults. The Python package (python/flowmatch) is built on these,
 * so it mirrors no C struct. It sits beside the registry (registry.c), whose
 * public entry points it calls.
 */
#include "train/method.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A configuration with its own copy of the data spec behind it. */
typedef struct {
    fm_train_config c; /* first: the pointer handed out */
    char data[];
} owned_config;

fm_train_config *fm_train_config_new(const char *method, const char *data)
{
    int m = fm_method_from_name(method ? method : "fm");
    if (m < 0) {
        fm__fail(FM_ERR_ARG, "unknown method '%s'", method);
        return NULL;
    }
    if (!data || !*data) data = "moons";
    owned_config *o = malloc(sizeof *o + strlen(data) + 1);
    if (!o) {
        fm__fail(FM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    strcpy(o->data, data);
    o->c = fm_train_config_for_data((fm_method)m, o->data);
    return &o->c;
}

void fm_train_config_free(fm_train_config *c) { free(c); } /* c is the owned_config's first member */

/* value as a number within [lo, hi] (whole when whole is set). */
static fm_status number(const char *name, const char *value, double lo, double hi, int whole, double *out)
{
    char *end = NULL;
    double v = strtod(value, &end);
    if (end == value || *end || !(v >= lo && v <= hi) || (whole && v != floor(v)))
        return fm__fail(FM_ERR_ARG, "option %s = '%s' must be a%s number in [%g, %g]", name, value,
                        whole ? " whole" : "", lo, hi);
    *out = v;
    return FM_OK;
}

fm_status fm_train_config_set_option(fm_train_config *c, const char *name, const char *value)
{
    if (!c || !name || !value) return fm__fail(FM_ERR_ARG, "set_option: needs a configuration, a name and a value");
    double v = 0;
    fm_status s = FM_OK;
    fm_path *p = &c->flow.path;
#define NUM(key, lo, hi, whole, assign)                                                                              \
    if (!strcmp(name, key)) return (s = number(name, value, lo, hi, whole, &v)) ? s : ((assign), FM_OK)
    NUM("iters", 0, 9e15, 1, (c->iters = (int64_t)v, c->sched.total = (int64_t)v));
    NUM("batch", 1, 1 << 20, 1, c->batch = (int)v);
    NUM("seed", 0, 9e15, 1, c->seed = (uint64_t)v);
    NUM("lr", 0, 10, 0, c->optim.lr = v);
    NUM("ema", 0, 0.999999, 0, c->ema_decay = v);
    NUM("clip", 0, 1e9, 0, c->clip = v);
    NUM("warmup", 0, 9e15, 1, c->sched.warmup = (int64_t)v);
    NUM("min-lr", 0, 10, 0, c->sched.min_lr = v);
    NUM("depth", 1, FM_MLP_MAX_LAYERS, 1, c->flow.net.nhidden = (int)v);
    NUM("time-embed", 0, 4096, 1, c->flow.net.time_embed = (int)v);
    NUM("channels", 8, 1024, 1, c->flow.unet.base = (int)v);
    NUM("dequantize", 0, 1, 1, c->dequantize = (int)v);
    NUM("sigma-min", 0, 100, 0, p->sigma_min = v);
    NUM("sigma", 0, 100, 0, p->sigma = v);
    NUM("t-end", 1e-6, 1, 0, p->t_end = v);
    NUM("ve-sigma-min", 1e-9, 1e9, 0, p->ve_sigma_min = v);
    NUM("ve-sigma-max", 1e-9, 1e9, 0, p->ve_sigma_max = v);
    NUM("beta-min", 1e-9, 1e9, 0, p->beta_min = v);
    NUM("beta-max", 1e-9, 1e9, 0, p->beta_max = v);
    NUM("exponent", 1, 100, 0, p->exponent = v);
    NUM("T", 1, 100000, 1, c->flow.ddpm.T = (int)v);
    NUM("beta-start", 0, 1, 0, c->flow.ddpm.beta_start = v);
    NUM("beta-end", 0, 1, 0, c->flow.ddpm.beta_end = v);
    NUM("latent", 1, 4096, 1, (c->vae.latent = (int)v, c->gan.latent = (int)v));
    NUM("kl-weight", 0, 1e6, 0, c->vae.beta = v);
#undef NUM
    if (!strcmp(name, "width")) {
        if ((s = number(name, value, 1, 1 << 16, 1, &v))) return s;
        for (int i = 0; i < FM_MLP_MAX_LAYERS; i++) c->flow.net.width[i] = (int)v;
        return FM_OK;
    }
    if (!strcmp(name, "act")) {
        int k = fm_act_from_name(value);
        if (k < 0) return fm__fail(FM_ERR_ARG, "option act = '%s' is not an activation", value);
        c->flow.net.act = (fm_act)k;
        return FM_OK;
    }
    if (!strcmp(name, "path")) { /* the path's own defaults for its end time and sigma */
        int k = fm_path_from_name(value);
        if (k < 0) return fm__fail(FM_ERR_ARG, "option path = '%s' is not a path", value);
        fm_path d = fm_path_default((fm_path_kind)k);
        p->kind = d.kind, p->t_end = d.t_end, p->sigma = d.sigma;
        return FM_OK;
    }
    if (!strcmp(name, "coupling")) {
        int k = fm_coupling_from_name(value);
        if (k < 0) return fm__fail(FM_ERR_ARG, "option coupling = '%s' is not independent, ot or sb", value);
        c->coupling = (fm_coupling)k;
        return FM_OK;
    }
    if (!strcmp(name, "arch")) {
        int k = fm_arch_from_name(value);
        if (k < 0) return fm__fail(FM_ERR_ARG, "option arch = '%s' is not mlp or unet", value);
        c->flow.arch = (fm_arch)k;
        return FM_OK;
    }
    if (!strcmp(name, "schedule")) {
        int k = fm_sched_from_name(value);
        if (k < 0) return fm__fail(FM_ERR_ARG, "option schedule = '%s' is not constant, cosine or linear", value);
        c->sched.kind = (fm_sched_kind)k;
        return FM_OK;
    }
    if (!strcmp(name, "standardize")) {
        int k = !strcmp(value, "auto") ? -1 : !strcmp(value, "on") ? 1 : !strcmp(value, "off") ? 0 : -2;
        if (k == -2) return fm__fail(FM_ERR_ARG, "option standardize = '%s' is not auto, on or off", value);
        c->standardize = k;
        return FM_OK;
    }
    return fm_train_config_set(c, name, value); /* the method's own settings */
}

/* The grid from 0 to the model's end time in steps steps (malloc'ed). */
static double *grid_for(fm_model *m, int steps)
{
    double *g = malloc((size_t)(steps + 1) * sizeof(double));
    if (!g) {
        fm__fail(FM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    fm_flow *f = fm_model_flow(m);
    fm_time_grid_uniform(g, steps, 0.0, f && fm_model_method(m) != FM_METHOD_DDPM ? fm_flow_sampling_path(f)->t_end : 1.0);
    return g;
}

fm_status fm_model_sample_named(fm_model *m, int n, uint64_t seed, const char *solver, int steps, float *out)
{
    if (!m || n < 1 || !out) return fm__fail(FM_ERR_ARG, "sample: needs a model, n >= 1 (got %d) and an output", n);
    int dsteps = 1;
    fm_solver_kind kind = fm_model_default_solver(m, &dsteps);
    fm_solver_config sc = fm_solver_config_default(kind);
    sc.sampler = fm_model_sampler(m, 0, NULL, NULL);
    if (solver && *solver) {
        int k = fm_solver_from_name(solver);
        if (k >= 0) sc.kind = (fm_solver_kind)k, sc.sampler = NULL;
        else sc.sampler = solver; /* a model's own or a stochastic sampler; the model checks the name */
    }
    if (steps <= 0) steps = sc.kind == FM_SOLVER_DOPRI5 && !sc.sampler ? 1 : dsteps;
    if (steps > 1000000) return fm__fail(FM_ERR_ARG, "sample: %d steps is more than 1000000", steps);
    double *g = grid_for(m, steps);
    if (!g) return fm_last_status();
    fm_rng r;
    fm_rng_seed(&r, seed, FM_STREAM_NOISE);
    fm_status s = fm_model_sample(m, n, &r, &sc, g, steps + 1, out, NULL, NULL, NULL);
    free(g);
    return s;
}

fm_status fm_model_log_likelihood(fm_model *m, const float *x, int n, int steps, int probes, uint64_t seed,
                                  double *logp)
{
    if (!m || n < 0 || (n && (!x || !logp)) || probes < 0 || probes > 1024)
        return fm__fail(FM_ERR_ARG, "log_likelihood: needs a model, points and 0..1024 probes");
    if (fm_model_log_prob(m, NULL, 0, NULL) == FM_OK) return fm_model_log_prob(m, x, n, logp); /* closed form */
    fm_flow *f = fm_model_flow(m);
    if (!f || fm_model_sampling(m) != FM_SAMPLING_ODE)
        return fm__fail(FM_ERR_ARG, "a %s model has no likelihood here (flows by their ODE, a normalizing flow exactly)",
                        fm_model_method_name(m));
    if (steps <= 0) steps = 100;
    if (steps > 100000) return fm__fail(FM_ERR_ARG, "log_likelihood: %d steps is more than 100000", steps);
    double *g = malloc((size_t)(steps + 1) * sizeof(double));
    if (!g) return fm__fail(FM_ERR_NOMEM, "out of memory");
    fm_time_grid_uniform(g, steps, fm_flow_get_config(f)->path.t_end, 0.0);
    fm_nll_config c = {fm_solver_config_default(FM_SOLVER_RK4), g, steps + 1,
                       probes ? FM_DIV_HUTCH_RADEMACHER : FM_DIV_EXACT, probes, seed};
    fm_status s = fm_flow_log_likelihood(f, x, n, &c, logp, NULL, NULL);
    free(g);
    return s;
}

fm_status fm_model_set_schedule(fm_model *m, const char *path)
{
    fm_flow *f = m ? fm_model_flow(m) : NULL;
    if (!f) return fm__fail(FM_ERR_ARG, "a schedule transformation needs a flow (this model samples without an ODE)");
    if (!path || !*path) return fm_flow_set_schedule(f, NULL);
    int k = fm_path_from_name(path);
    if (k < 0) return fm__fail(FM_ERR_ARG, "unknown path '%s' for the schedule", path);
    fm_path to = fm_path_default((fm_path_kind)k);
    return fm_flow_set_schedule(f, &to);
}

fm_status fm_train_config_batch(const fm_train_config *c, uint64_t seed, int n, int d, int t_given, float *x0,
                                float *x1, float *t, float *eps, float *xt, float *ut)
{
    if (!c) return fm__fail(FM_ERR_ARG, "batch: needs a configuration");
    fm_rng r;
    fm_rng_seed(&r, seed, FM_STREAM_NOISE);
    fm_batch b = {x0, x1, NULL, NULL, t, eps, xt, ut};
    return fm_batch_draw(&c->flow.path, c->coupling, &r, n, d, t_given, &b);
}
