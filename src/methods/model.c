/* model.c - any trained model behind one handle: loading a checkpoint of any
 * method and sampling from it, so the tools need not be told what a file holds.
 */
#include "internal.h"

#include <string.h>

static const char *const method_names[FM_METHOD_COUNT] = {"fm", "ddpm", "vae", "gan"};

const char *fm_method_name(fm_method m) { return m >= 0 && m < FM_METHOD_COUNT ? method_names[m] : "?"; }

int fm_method_from_name(const char *name)
{
    for (int i = 0; i < FM_METHOD_COUNT; i++)
        if (name && !strcmp(name, method_names[i])) return i;
    return -1;
}

struct fm_model {
    fm_method method;
    fm_flow *flow; /* fm, ddpm */
    fm_vae *vae;
    fm_gan *gan;
};

fm_model *fm__model_wrap(fm_method m, fm_flow *f, fm_vae *v, fm_gan *g)
{
    fm_model *M = calloc(1, sizeof *M);
    if (!M) { /* the parts are the handle's: without one they go */
        fm_flow_free(f);
        fm_vae_free(v);
        fm_gan_free(g);
        fm__fail(FM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    M->method = m;
    M->flow = f;
    M->vae = v;
    M->gan = g;
    return M;
}

fm_model *fm_model_load(const fm_st *st, int use_ema)
{
    if (fm__meta_check_format(st)) return NULL;
    const char *net = fm_st_meta(st, "model");
    if (net && !strcmp(net, "classifier")) {
        fm__fail(FM_ERR_FORMAT, "the checkpoint holds an image classifier, not a generative model (eval takes it as "
                                "--classifier)");
        return NULL;
    }
    const char *mk = fm_st_meta(st, "method");
    int m = mk ? fm_method_from_name(mk) : FM_METHOD_FM;
    if (m < 0) {
        fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'method' = '%s' is not one of fm, ddpm, vae, gan", mk);
        return NULL;
    }
    fm_flow *f = NULL;
    fm_vae *v = NULL;
    fm_gan *g = NULL;
    if (m == FM_METHOD_VAE) v = fm__vae_load(st, use_ema);
    else if (m == FM_METHOD_GAN) g = fm__gan_load(st, use_ema);
    else f = fm_flow_load(st, use_ema);
    if (!f && !v && !g) return NULL;
    return fm__model_wrap((fm_method)m, f, v, g);
}

void fm_model_free(fm_model *m)
{
    if (!m) return;
    fm_flow_free(m->flow);
    fm_vae_free(m->vae);
    fm_gan_free(m->gan);
    free(m);
}

fm_method fm_model_method(const fm_model *m) { return m->method; }

fm_flow *fm_model_take_flow(fm_model *m)
{
    fm_flow *f = m->flow;
    m->flow = NULL;
    fm_model_free(m);
    return f;
}
fm_flow *fm_model_flow(fm_model *m) { return m->flow; }
fm_vae *fm_model_vae(fm_model *m) { return m->vae; }
fm_gan *fm_model_gan(fm_model *m) { return m->gan; }

int fm_model_dim(const fm_model *m)
{
    return m->flow ? fm_flow_get_config(m->flow)->dim
           : m->vae ? fm_vae_get_config(m->vae)->dim
                    : fm_gan_get_config(m->gan)->dim;
}

const char *fm_model_data(const fm_model *m)
{
    return m->flow ? fm_flow_get_config(m->flow)->data
           : m->vae ? fm_vae_get_config(m->vae)->data
                    : fm_gan_get_config(m->gan)->data;
}

size_t fm_model_size(const fm_model *m)
{
    if (m->flow) return fm_params_size(fm_flow_params(m->flow));
    if (m->vae) return fm_params_size(fm_vae_params(m->vae));
    return fm_params_size(fm_gan_generator_params(m->gan)) + fm_params_size(fm_gan_discriminator_params(m->gan));
}

fm_solver_kind fm_model_default_solver(const fm_model *m, int *steps)
{
    if (m->method == FM_METHOD_DDPM) {
        if (steps) *steps = fm_flow_get_config(m->flow)->ddpm.T;
        return FM_SOLVER_ANCESTRAL;
    }
    if (steps) *steps = m->method == FM_METHOD_FM ? 8 : 1;
    return FM_SOLVER_MIDPOINT;
}

fm_status fm_model_sample(fm_model *m, int n, fm_rng *r, const fm_solver_config *sc, const double *grid, int ngrid,
                          float *out, fm_observe_fn obs, void *octx, fm_solve_stats *st)
{
    if (n < 1) return fm__fail(FM_ERR_ARG, "cannot draw %d samples", n);
    if (m->flow) return fm_flow_sample(m->flow, n, NULL, r, sc, grid, ngrid, out, obs, octx, st);
    fm_status s = m->vae ? fm__vae_sample(m->vae, n, r, out) : fm__gan_sample(m->gan, n, r, out);
    if (st) {
        memset(st, 0, sizeof *st);
        st->nfe = st->steps = s ? 0 : 1;
    }
    return s;
}
