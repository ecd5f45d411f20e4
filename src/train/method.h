/* method.h - the interface a generative method fills, and the trainer state
 * its training step works on.
 *
 * Each method is one file in src/methods/ that defines one fm__method table
 * (kann's op table, ggml's backend struct): its defaults and checks, how it
 * builds, initialises, saves and loads its model, one training step, and how
 * the model samples. src/methods/registry.c lists the tables; the trainer
 * (trainer.c) and the any-model handle (model.c) call through a table and
 * never name a method. An entry that only some methods have may be NULL, and
 * the caller says that this method cannot do that. Every method fills name,
 * object, build, init, step, free, save, load, dim, data and size.
 *
 * Not here: the methods themselves, and the registry (which sits above them).
 */
#ifndef FM_TRAIN_METHOD_H
#define FM_TRAIN_METHOD_H

#include "internal.h"

#define FM__TRAIN_WORKERS 16 /* data-parallel shards of a batch, at most */
#define FM__MAX_PARTS 4      /* named parts of a step's loss */

typedef struct fm__method fm__method;

/* A setting of a method's own, given as text (the train flag --NAME VALUE, or
 * fm_train_config_set): set parses it into the configuration (FM_ERR_ARG with
 * a message when the value is invalid); get writes the configuration's value
 * as text (the default --help shows). */
typedef struct {
    const char *name, *metavar, *help;
    fm_status (*set)(fm_train_config *c, const char *value);
    void (*get)(const fm_train_config *c, char *buf, size_t cap);
} fm__setting;

/* One set of parameters the trainer updates: its optimizer, the metadata
 * prefix of the optimizer's state in checkpoints ("optim", "optim_d"), and the
 * gradient replicas of the worker threads. Group 0 is the model's main set:
 * EMA, and the learning-rate schedule's base rate, are its. */
typedef struct {
    fm_params *P;
    fm_optim_config oc;            /* group 0: cfg.optim; others: set by build */
    fm_optim *opt;
    const char *optim_key;
    fm_params *rep[FM__TRAIN_WORKERS];
} fm__group;

struct fm_trainer {
    fm_train_config cfg;           /* data / source point into the model's copies */
    const fm__method *m;
    void *obj;                     /* the model (fm_flow, fm_vae, fm_gan, ...), owned by `model` */
    fm_model *model;               /* the handle over obj */
    void *ms;                      /* the method's training state (m->state_free frees it) */
    const void *extra;             /* a method's own configuration beyond fm_train_config (build and
                                    * state_new read it; NULL for the registered methods) */
    fm__group g[2];
    int ngroups;
    fm__stdz *z;                   /* the model's standardisation */
    fm_dataset *data;
    fm_ema *ema;                   /* of group 0 */
    fm_tape *tp;                   /* worker 0's tape */
    fm_tape *tps[FM__TRAIN_WORKERS]; /* workers 1.. */
    fm_rng rdata, rnoise, rtime;   /* the seed's data, noise and time streams */
    int64_t iter;
    float *x1;                     /* (batch, dim) the batch drawn by fm__train_draw, network units */
    int *labels;                   /* (batch) class-conditional: x1's labels (nclasses: none) */
    float *t, *xt, *ut;            /* (batch), (batch, dim) x 2: a regression batch (methods with forward) */
    int nclasses;                  /* K, 0 when unconditional (set by build) */
    double parts[FM__MAX_PARTS];   /* the last step's loss parts, named by m->parts */
    int nparts;
    int64_t unconverged;           /* batches whose coupling plan missed its tolerance */
    int plan_threads;              /* several ranks: the thread count shards are planned with (rank 0's) */
    const char *coupling_label;    /* "train.coupling" in checkpoints when not the configured one */
};

/* A shard's forward and backward on batch rows [r0, r1) with parameters P
 * (worker 0's are the group's own, the others' gradient replicas): its part
 * of the loss into loss[0] and of up to two loss parts into loss[1], loss[2]. */
typedef fm_status (*fm__shard_fn)(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss);

/* ---- parsing a method's settings: v into *out, else FM_ERR_ARG
 * "<what> = 'v' must be a whole number in lo..hi" / "... a number in (lo, hi]"
 * ([lo, hi] unless open_lo); what is "nf: flow-layers", say. */
fm_status fm__setting_whole(const char *what, const char *v, long lo, long hi, int *out);
fm_status fm__setting_number(const char *what, const char *v, double lo, double hi, int open_lo, double *out);

/* ---- what the trainer offers a method's step */

/* A batch of data into tr->x1 (and tr->labels, each dropped to "none" with the
 * label-dropout probability), dequantised if asked, in network units. */
fm_status fm__train_draw(fm_trainer *tr, int B);
/* The shards fm__train_shards cuts a batch into (the same on every rank). */
int fm__train_shard_count(const fm_trainer *tr);
/* Forward and backward of group gi over the batch in shards: the loss (and two
 * parts) summed into sums[0..2] and the group's gradient complete. `frozen`
 * (may be NULL) is read but gets no gradient. A non-finite loss is an
 * FM_ERR_NUMERIC error naming `what`, before any update. With several ranks
 * each computes its run of the shards and the sums are the same on all. */
fm_status fm__train_shards(fm_trainer *tr, int gi, fm_params *frozen, fm__shard_fn fn, const char *what, double lr,
                           double *sums);
/* Loss and gradient of a shard's scalar l on P (for shard functions). */
fm_status fm__train_finish(fm_tape *tp, fm_params *P, fm_tensor *l, double *loss);
/* One regression step of a method with a network on (t, x): the mean over
 * the batch of |net(t, x_t) - u_t|^2 from tr->t, tr->xt, tr->ut (and
 * tr->labels), on group 0; the loss into *loss. */
fm_status fm__train_regress(fm_trainer *tr, double *loss);
/* The check of a method whose noise is N(0, I) and that pairs nothing: no
 * coupling, no source dataset (name: the method's, for the message). */
fm_status fm__train_plain_noise(const fm_train_config *c, const char *name);
/* The check of a method whose networks are MLPs: no U-Net, no class labels. */
fm_status fm__train_mlp_only(const fm_train_config *c, const char *name);
/* Clip group gi's gradient and take its optimizer's step at lr. */
fm_status fm__train_update(fm_trainer *tr, int gi, double lr);

/* ---- the table */

struct fm__method {
    fm_method id;
    const char *name;        /* "fm": the CLI's --method and the checkpoint's "method" */
    const char *summary;     /* one line for listings */
    const char *object;      /* what the model is: "flow", "vae", "gan" (fm_model_flow, ...) */
    const char *stdz_key;    /* checkpoint prefix of the standardisation: "flow", "vae", "gan" */
    const char *parts[FM__MAX_PARTS]; /* names of the loss parts it reports, NULL-ended */
    /* train flags (without "--") that only this method's family takes; the CLI
     * refuses the others' */
    const char *const *options;
    /* its own settings (NULL-name-ended, or NULL): a new method's options need
     * no flag written into the CLI, which lists and parses them from here */
    const fm__setting *settings;
    /* 1: its step takes its batches itself (tr->x1 and fm__train_draw unused) */
    int own_batches;
    /* The data it trains on when none is named (NULL: the library's, moons):
     * a method for another kind of data (tokens, a manifold) names its own. */
    const char *default_data;

    /* Its defaults over fm_train_config_default(), and on image data when image. */
    void (*defaults)(fm_train_config *c, int image);
    /* Checks of the configuration that concern this method. */
    fm_status (*check)(const fm_train_config *c);
    /* Before the model is built: may adjust the standardisation choice (*standardize,
     * -1 auto) and refuse data it cannot model. NULL: nothing to check. */
    fm_status (*check_data)(const fm_train_config *c, fm_dataset *data, int *standardize);

    /* The model for dim-dimensional data: sets tr->obj, tr->z, the groups'
     * parameters (and ngroups, optim_key) and tr->nclasses. */
    fm_status (*build)(fm_trainer *tr, const fm_train_config *c, int dim, const char *data, const char *source);
    /* The method's per-run state, once the trainer's parts exist; and its free. */
    fm_status (*state_new)(fm_trainer *tr);
    void (*state_free)(void *ms);
    void (*init)(void *obj, fm_rng *r);
    /* The network's output on (t (B, 1), x (B, dim)) with weights P (labels:
     * a class-conditional network's); NULL for a method without one. */
    fm_tensor *(*forward)(fm_tape *tp, void *obj, fm_params *P, fm_tensor *t, fm_tensor *x, const int *labels);
    /* One iteration: draw, losses, updates. On failure the weights are unchanged. */
    fm_status (*step)(fm_trainer *tr, double *loss);
    /* Metadata of the training run that is the method's own (after the
     * generic train.* keys); NULL: none. */
    fm_status (*save_train)(fm_trainer *tr, fm_st_writer *w);
    /* What is trained, in a few words for a progress report ("flow matching
     * gaussian -> moons, path ot"), into buf (cap bytes). */
    void (*describe)(const fm_trainer *tr, char *buf, size_t cap);
    /* The model part of a training configuration from a checkpoint (resume). */
    fm_status (*load_config)(fm_train_config *c, const fm_st *st);

    /* The model object. */
    void (*free)(void *obj);
    fm_status (*save)(void *obj, fm_st_writer *w);   /* configuration and weights */
    void *(*load)(const fm_st *st, int use_ema);
    int (*dim)(const void *obj);
    const char *(*data)(const void *obj);
    size_t (*size)(void *obj);
    /* Exact log-density of n points in data units (NULL: none in closed form),
     * and how it is computed, in a few words (NULL: by the change of variables). */
    fm_status (*log_prob)(void *obj, const float *x, int n, double *logp);
    const char *log_prob_how;
    /* How it samples (fm_sampling), and for FM_SAMPLING_OWN its samplers'
     * names (NULL-ended), sampler i's default steps and the most it takes. */
    fm_sampling sampling;
    const char *const *samplers;
    void (*sampler_steps)(const void *obj, int i, int *steps, int *max_steps);
    /* The ODE solver taken when none is named and its steps (FM_SAMPLING_ODE). */
    fm_solver_kind (*default_solver)(const void *obj, int *steps);
    /* Size of a starting point of sample (NULL: the data dimension). */
    int (*start_dim)(const void *obj);
    /* n samples in data units, from x_start (network units: a flow's initial
     * state, a latent model's codes) when given, else fresh noise from r. */
    fm_status (*sample)(void *obj, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                        const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx, fm_solve_stats *st);
};

/* A model's weights p from st (their EMA copy, "ema." + each name, when
 * use_ema and the file has one) and then, when z is given, its
 * standardisation under key zkey for d columns. */
fm_status fm__params_load_model(fm_params *p, const fm_st *st, int use_ema, fm__stdz *z, const char *zkey, int d);

/* The handle over a model of method m, which it owns from here on (fm_model_free
 * frees it through m); when it cannot be made, obj is freed. */
fm_model *fm__model_wrap(const fm__method *m, void *obj);
const fm__method *fm__model_method(const fm_model *M);
void *fm__model_object(fm_model *M);

/* The generic trainer on method m (trainer.c); the registry resolves m. */
fm_trainer *fm__trainer_new(const fm__method *m, const fm_train_config *cfg, const void *extra);
fm_trainer *fm__trainer_resume(const fm__method *m, const fm_st *st, const char *path, int64_t iters);
/* tr as it is in one process; with several ranks, NULL (and tr freed) unless
 * every rank made its trainer, with the same state, and the batch gives every
 * rank a shard: the failing rank's message on every rank. Collective. */
fm_trainer *fm__trainer_agreed(fm_trainer *tr);

#endif /* FM_TRAIN_METHOD_H */
