/* model.c - any trained model behind one handle: a method's table and its
 * model object, so sampling and evaluation need not be told what a file
 * holds. Loading a checkpoint by its "method" is the registry's
 * (src/methods/registry.c); everything else goes through the table.
 */
#include "train/method.h"

#include <stdio.h>
#include <string.h>

struct fm_model {
    const fm__method *m;
    void *obj;
};

fm_model *fm__model_wrap(const fm__method *m, void *obj)
{
    fm_model *M = calloc(1, sizeof *M);
    if (!M) { /* the object is the handle's: without one it goes */
        m->free(obj);
        fm__fail(FM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    M->m = m;
    M->obj = obj;
    return M;
}

const fm__method *fm__model_method(const fm_model *M) { return M->m; }
void *fm__model_object(fm_model *M) { return M->obj; }

void fm_model_free(fm_model *M)
{
    if (!M) return;
    M->m->free(M->obj);
    free(M);
}

fm_status fm__params_load_model(fm_params *p, const fm_st *st, int use_ema, fm__stdz *z, const char *zkey, int d)
{
    char probe[300];
    snprintf(probe, sizeof probe, "ema.%s", fm_params_count(p) ? fm_params_name(p, 0) : "");
    int ema = use_ema && fm_st_find(st, probe) >= 0;
    fm_status s = fm_params_load(p, st, ema ? "ema." : NULL);
    return s || !z ? s : fm__stdz_load(z, st, zkey, d);
}

fm_method fm_model_method(const fm_model *M) { return M->m->id; }
const char *fm_model_method_name(const fm_model *M) { return M->m->name; }

static void *object_of(fm_model *M, const char *kind) { return !strcmp(M->m->object, kind) ? M->obj : NULL; }
fm_flow *fm_model_flow(fm_model *M) { return object_of(M, "flow"); }
fm_vae *fm_model_vae(fm_model *M) { return object_of(M, "vae"); }
fm_gan *fm_model_gan(fm_model *M) { return object_of(M, "gan"); }
fm_nf *fm_model_nf(fm_model *M) { return object_of(M, "nf"); }

fm_status fm_model_log_prob(fm_model *M, const float *x, int n, double *logp)
{
    if (!M->m->log_prob) return fm__fail(FM_ERR_ARG, "a %s model has no closed-form density", M->m->name);
    if (n == 0) return FM_OK; /* it has one */
    if (n < 0 || !x || !logp) return fm__fail(FM_ERR_ARG, "log_prob: %d points", n);
    return M->m->log_prob(M->obj, x, n, logp);
}

const char *fm_model_log_prob_how(const fm_model *M)
{
    if (!M->m->log_prob) return NULL;
    return M->m->log_prob_how ? M->m->log_prob_how : "exact, by the change of variables";
}

fm_flow *fm_model_take_flow(fm_model *M)
{
    fm_flow *f = fm_model_flow(M);
    if (f) {
        free(M);
        return f;
    }
    fm_model_free(M);
    return NULL;
}

int fm_model_dim(const fm_model *M) { return M->m->dim(M->obj); }
const char *fm_model_data(const fm_model *M) { return M->m->data(M->obj); }
size_t fm_model_size(const fm_model *M) { return M->m->size(M->obj); }
fm_sampling fm_model_sampling(const fm_model *M) { return M->m->sampling; }

const char *fm_model_sampler(const fm_model *M, int i, int *steps, int *max_steps)
{
    const fm__method *m = M->m;
    for (int k = 0; m->sampling == FM_SAMPLING_OWN && m->samplers && m->samplers[k]; k++)
        if (k == i) {
            int s = 1, mx = 1;
            if (m->sampler_steps) m->sampler_steps(M->obj, i, &s, &mx);
            if (steps) *steps = s;
            if (max_steps) *max_steps = mx;
            return m->samplers[k];
        }
    return NULL;
}

fm_solver_kind fm_model_default_solver(const fm_model *M, int *steps)
{
    if (M->m->default_solver) return M->m->default_solver(M->obj, steps);
    if (steps) *steps = 1;
    if (M->m->sampling == FM_SAMPLING_OWN) fm_model_sampler(M, 0, steps, NULL);
    return FM_SOLVER_MIDPOINT;
}

int fm_model_start_dim(const fm_model *M) { return M->m->start_dim ? M->m->start_dim(M->obj) : M->m->dim(M->obj); }

fm_status fm_model_sample_from(fm_model *M, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                               const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx,
                               fm_solve_stats *st)
{
    if (n < 1) return fm__fail(FM_ERR_ARG, "cannot draw %d samples", n);
    if (!x_start && !r) return fm__fail(FM_ERR_ARG, "sampling from noise needs a random stream");
    if (!M->m->sample) return fm__fail(FM_ERR_ARG, "a %s model does not sample", M->m->name);
    fm_status s = M->m->sample(M->obj, n, x_start, r, sc, grid, ngrid, out, obs, octx, st);
    if (st && M->m->sampling == FM_SAMPLING_DIRECT) { /* one network pass */
        memset(st, 0, sizeof *st);
        st->nfe = st->steps = s ? 0 : 1;
    }
    return s;
}

fm_status fm_model_sample(fm_model *M, int n, fm_rng *r, const fm_solver_config *sc, const double *grid, int ngrid,
                          float *out, fm_observe_fn obs, void *octx, fm_solve_stats *st)
{
    return fm_model_sample_from(M, n, NULL, r, sc, grid, ngrid, out, obs, octx, st);
}
