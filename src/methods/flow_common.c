/* flow_common.c - the flow object (src/flow/) as the model of a method: what
 * flow matching (fm.c) and DDPM (ddpm.c) share, a time-conditioned network
 * over the data (MLP or U-Net) with its standardisation and guidance. Not a
 * method itself; methods that regress a network on (t, x_t) use it.
 */
#include "methods/flow_common.h"

#include <string.h>

#include <stdio.h>

/* Checks shared with DDPM (src/methods/ddpm.c): the networks and labels of a flow. */
fm_status fm__flow_method_check(const fm_train_config *c)
{
    if (c->flow.unet.num_classes && c->flow.arch != FM_ARCH_UNET)
        return fm__fail(FM_ERR_ARG, "class conditioning is for the U-Net of flow matching and DDPM (--arch unet)");
    return FM_OK;
}

/* The flow for training (shared with DDPM). */
fm_status fm__flow_method_build(fm_trainer *tr, const fm_train_config *c, int dim, const char *data, const char *source)
{
    fm_flow *f = NULL;
    (void)dim;
    (void)data;
    /* DDPM's network predicts noise; every other method's is a velocity */
    fm_method kind = tr->m->id == FM_METHOD_DDPM ? FM_METHOD_DDPM : FM_METHOD_FM;
    fm_status s = fm__flow_build(&c->flow, kind, tr->data, source, &f);
    if (s) return s;
    tr->obj = f;
    tr->g[0].P = fm_flow_params(f);
    tr->z = fm__flow_stdz(f);
    tr->nclasses = fm_flow_num_classes(f);
    tr->cfg.flow = *fm_flow_get_config(f);
    return FM_OK;
}

fm_status fm__flow_method_load_config(fm_train_config *c, const fm_st *st)
{
    fm_flow *f = fm_flow_load(st, 0); /* checks the weights as well as the configuration */
    if (!f) return fm_last_status();
    fm_flow_free(f);
    return fm_flow_config_load(&c->flow, st); /* its strings point into st */
}
void fm__flow_method_free(void *obj) { fm_flow_free(obj); }
void fm__flow_method_init(void *obj, fm_rng *r) { fm_flow_init(obj, r); }
fm_status fm__flow_method_save(void *obj, fm_st_writer *w) { return fm_flow_save(obj, w); }
void *fm__flow_method_load(const fm_st *st, int use_ema) { return fm_flow_load(st, use_ema); }
int fm__flow_method_dim(const void *obj) { return fm_flow_get_config(obj)->dim; }
const char *fm__flow_method_data(const void *obj) { return fm_flow_get_config(obj)->data; }
size_t fm__flow_method_size(void *obj) { return fm_params_size(fm_flow_params(obj)); }
fm_tensor *fm__flow_method_forward(fm_tape *tp, void *obj, fm_params *P, fm_tensor *t, fm_tensor *x, const int *labels)
{
    return fm__flow_forward_with(tp, obj, P, t, x, labels);
}


fm_solver_kind fm__flow_method_default_solver(const void *obj, int *steps)
{
    (void)obj;
    if (steps) *steps = 8;
    return FM_SOLVER_MIDPOINT;
}

fm_status fm__flow_method_sample(void *obj, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                                 const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx,
                                 fm_solve_stats *st)
{
    return fm_flow_sample(obj, n, x_start, r, sc, grid, ngrid, out, obs, octx, st);
}
