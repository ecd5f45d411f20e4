/* flow_common.h - the flow object as a method's model, shared by fm.c and
 * ddpm.c (flow_common.c); fm__method table entries over an fm_flow.
 */
#ifndef FM_METHODS_FLOW_COMMON_H
#define FM_METHODS_FLOW_COMMON_H

#include "train/method.h"

/* Class labels only with the U-Net. */
/* The checks of a method over a flow; interval: 1 when its network takes the
 * interval input (MeanFlow), which every other method's refuses. */
fm_status fm__flow_method_check(const fm_train_config *c, int interval);
/* A velocity MLP on images: 512 wide, SiLU, Adam 1e-3 (fm, meanflow). */
void fm__flow_image_defaults(fm_train_config *c);
/* The flow a run asks for (fm__flow_build), as the trainer's model. */
fm_status fm__flow_method_build(fm_trainer *tr, const fm_train_config *c, int dim, const char *data,
                                const char *source);
/* The flow's configuration from a checkpoint, after checking it loads. */
fm_status fm__flow_method_load_config(fm_train_config *c, const fm_st *st);
void fm__flow_method_free(void *obj);
void fm__flow_method_init(void *obj, fm_rng *r);
fm_status fm__flow_method_save(void *obj, fm_st_writer *w);
void *fm__flow_method_load(const fm_st *st, int use_ema);
int fm__flow_method_dim(const void *obj);
const char *fm__flow_method_data(const void *obj);
size_t fm__flow_method_size(void *obj);
fm_tensor *fm__flow_method_forward(fm_tape *tp, void *obj, fm_params *P, fm_tensor *t, fm_tensor *x, const int *labels);

/* The table entries every method over a flow object shares (fm, ddpm, cnf,
 * score): what the model is, and how it is initialised, run, freed, loaded
 * and measured. A table lists FM__FLOW_OBJECT among its initialisers. */
#define FM__FLOW_OBJECT                                                                                              \
    .object = "flow", .stdz_key = "flow", .init = fm__flow_method_init, .forward = fm__flow_method_forward,           \
    .free = fm__flow_method_free, .load = fm__flow_method_load, .dim = fm__flow_method_dim,                          \
    .data = fm__flow_method_data, .size = fm__flow_method_size

/* A velocity field's sampling: an ODE solver (8 midpoint steps unless named), or the sde sampler. */
fm_solver_kind fm__flow_method_default_solver(const void *obj, int *steps);
fm_status fm__flow_method_sample(void *obj, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                                 const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx,
                                 fm_solve_stats *st);

/* ---- a regression on a probability path (fm.c, score.c) */

/* A batch's source points and extra noise. */
typedef struct {
    float *x0, *eps; /* (B dim) each */
} fm__flow_batch;
fm_status fm__flow_batch_new(fm__flow_batch *b, int B, int d);
void fm__flow_batch_free(fm__flow_batch *b);
/* A batch of data into tr->x1 (fm__train_draw), source points into b->x0,
 * paired by the configured coupling (independent, OT or Schrodinger bridge). */
fm_status fm__flow_draw_pairs(fm_trainer *tr, fm__flow_batch *b, int B);

/* tr->t (B times in (0, t_end)) from the training's time distribution. */
void fm__flow_draw_times(fm_trainer *tr, int B);
/* tr->xt = a x1 + b x0 + c eps and tr->ut, the target of what the flow
 * predicts (v: a' x1 + b' x0 + c' eps; eps: (b x0 + c eps) / s; x1: x1), at
 * tr->t, from tr->x1, x0 and eps (NULL: no extra noise). */
void fm__flow_targets(fm_trainer *tr, const float *x0, const float *eps, int B);
/* The time distribution's settings (--t-dist) and the prediction's (--predict);
 * the time distribution in a checkpoint's train.* metadata and back. */
fm_status fm__flow_set_tdist(fm_train_config *c, const char *v);
void fm__flow_get_tdist(const fm_train_config *c, char *buf, size_t cap);
fm_status fm__flow_set_predict(fm_train_config *c, const char *v);
void fm__flow_get_predict(const fm_train_config *c, char *buf, size_t cap);
fm_status fm__flow_save_tdist(fm_trainer *tr, fm_st_writer *w);
/* --t-dist as an entry of a method's settings (fm, score, meanflow). */
#define FM__TDIST_SETTING                                                                                            \
    {"t-dist", "DIST", "fm, score, meanflow: training times: uniform, logit-normal[:M,S] or skewed", fm__flow_set_tdist,        \
     fm__flow_get_tdist}
fm_status fm__flow_load_tdist(fm_train_config *c, const fm_st *st);

#endif
