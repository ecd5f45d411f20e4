/* train.c - training any method, one step at a time.
 *
 * Flow matching: each step draws a batch of data x1, source points x0, times
 * t ~ U[0, t_end] and (when the path has c != 0) extra noise, forms x_t and the
 * target u_t from the path's coefficients, and takes one optimizer step on
 * mean |v(t, x_t) - u_t|^2. DDPM is the same regression with t drawn from
 * 1..T, x_t = sqrt(abar_t) x1 + sqrt(1 - abar_t) eps and target eps. The VAE
 * descends its negative ELBO; the GAN takes k discriminator steps, then one
 * generator step. Data, source, time and initialisation use separate random
 * streams of one seed, so runs repeat bit for bit. The caller drives the loop
 * and reports progress; nothing here prints.
 *
 * With several threads the batch is split into contiguous shards, one per
 * thread, each with its own tape and gradient buffer; the gradients are then
 * added in shard order. The same seed and thread count therefore give the same
 * bits; another thread count sums in another order.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define MAX_WORKERS 16

struct fm_trainer {
    fm_train_config cfg; /* data / source point into the model's copies */
    fm_method method;
    fm_model *model;               /* handle over the parts below, which the trainer owns */
    fm_flow *flow;                 /* fm, ddpm */
    fm_vae *vae;
    fm_gan *gan;
    fm_params *P;                  /* the updated set: the flow's, the VAE's, the generator's */
    fm_params *PD;                 /* the discriminator's */
    fm__stdz *z;                   /* the model's standardisation */
    fm_dataset *data;
    fm_optim *opt, *optd;
    fm_ema *ema;
    fm_tape *tp;                   /* worker 0's tape */
    fm_tape *tps[MAX_WORKERS];     /* workers 1.. */
    fm_params *rep[MAX_WORKERS];   /* their gradient replicas of P */
    fm_params *repd[MAX_WORKERS];  /* ... and of PD */
    fm_rng rdata, rnoise, rtime;
    int64_t iter;
    float *x1, *x0, *t, *xt, *ut, *eps; /* (batch * dim) each; t (batch) */
    float *lat;                         /* (batch * latent): VAE noise, GAN input */
    double *abar;                       /* DDPM (T + 1) */
    int *match, *pi, *pj;               /* (batch) coupling indices */
    int *labels, *lscratch;             /* (batch) class-conditional: x1's labels (K: none) */
    int nclasses;                       /* K, 0 when unconditional */
    float *scratch;                     /* (2 batch dim) for re-pairing */
    float *pair0, *pair1;               /* (npairs, dim) fixed pairs (reflow), network units */
    int npairs;
    int64_t unconverged;                /* Sinkhorn plans that missed their tolerance */
    double parts[4];                    /* the last step's loss parts */
    int nparts;
    float *dsnap;                       /* GAN: the discriminator and its optimizer at the step's start */
    int64_t dsnap_step;
    fm_rng dsnap_rng[2];
};

fm_train_config fm_train_config_default(void)
{
    fm_train_config c;
    memset(&c, 0, sizeof c);
    c.method = FM_METHOD_FM;
    c.flow.net = fm_mlp_config_default(2);
    c.flow.unet = fm_unet_config_default(0, 0, 0); /* the image shape comes from the data */
    c.flow.path = fm_path_default(FM_PATH_OT);
    c.flow.ddpm = fm_ddpm_schedule_default();
    c.flow.dim = 2;
    c.flow.data = "moons";
    c.flow.source = "gaussian";
    c.optim = fm_optim_config_default(FM_OPTIM_ADAM);
    c.optim.lr = 1e-2;
    c.sched.kind = FM_SCHED_CONSTANT;
    c.batch = 256;
    c.iters = 10000;
    c.seed = 0;
    c.standardize = -1;
    c.label_dropout = 0.1;
    c.vae.latent = 2;
    c.vae.beta = 1.0;
    c.vae.likelihood = FM_VAE_GAUSSIAN;
    c.gan.latent = 2;
    c.gan.k = 1;
    c.gan.loss = FM_GAN_NONSATURATING;
    c.gan.d_nhidden = -1; /* the generator's */
    c.gan.d_optim = fm_optim_config_default(FM_OPTIM_ADAM);
    c.gan.d_optim.lr = 0; /* the generator's */
    return c;
}

fm_train_config fm_train_config_for(fm_method m)
{
    fm_train_config c = fm_train_config_default();
    c.method = m;
    if (m == FM_METHOD_VAE) c.optim.lr = 1e-3;
    if (m == FM_METHOD_GAN) c.optim.lr = 2e-4, c.optim.beta1 = 0.5;
    return c;
}

fm_train_config fm_train_config_for_data(fm_method m, const char *spec)
{
    fm_train_config c = fm_train_config_for(m);
    c.flow.data = spec;
    if (!fm_spec_image_shape(spec, NULL, NULL, NULL)) return c;
    if (m == FM_METHOD_VAE) {
        c.vae.latent = 20;
        c.vae.likelihood = FM_VAE_BERNOULLI;
        c.flow.net.nhidden = 1;
        c.flow.net.width[0] = 400;
        c.flow.net.act = FM_ACT_RELU;
    } else if (m == FM_METHOD_GAN) {
        c.gan.latent = 64;
        c.gan.out_act = FM_ACT_TANH;
        c.flow.net.nhidden = 2;
        c.flow.net.width[0] = c.flow.net.width[1] = 256;
    } else { /* flows and DDPM: a wider MLP and a gentler step than 2D's 3 x 64, 1e-2 */
        c.optim.lr = 1e-3;
        c.flow.net.act = FM_ACT_SILU;
        for (int i = 0; i < c.flow.net.nhidden; i++) c.flow.net.width[i] = 512;
    }
    return c;
}

void fm_trainer_free(fm_trainer *tr)
{
    if (!tr) return;
    fm_model_free(tr->model);
    fm_dataset_free(tr->data);
    fm_optim_free(tr->opt);
    fm_optim_free(tr->optd);
    fm_ema_free(tr->ema);
    fm_tape_free(tr->tp);
    for (int w = 0; w < MAX_WORKERS; w++) {
        fm_tape_free(tr->tps[w]);
        fm_params_free(tr->rep[w]);
        fm_params_free(tr->repd[w]);
    }
    free(tr->x1);
    free(tr->x0);
    free(tr->t);
    free(tr->xt);
    free(tr->ut);
    free(tr->eps);
    free(tr->lat);
    free(tr->abar);
    free(tr->match);
    free(tr->pi);
    free(tr->pj);
    free(tr->labels);
    free(tr->lscratch);
    free(tr->scratch);
    free(tr->pair0);
    free(tr->pair1);
    free(tr->dsnap);
    free(tr);
}

/* Column means and standard deviations (population) of a table, in double. */
static fm_status table_moments(const fm_table *t, float *mean, float *std)
{
    for (int j = 0; j < t->cols; j++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < t->rows; i++) s += t->data[(size_t)i * t->cols + j];
        double m = s / t->rows;
        for (int i = 0; i < t->rows; i++) {
            double d = t->data[(size_t)i * t->cols + j] - m;
            s2 += d * d;
        }
        double sd = sqrt(s2 / t->rows);
        if (!(sd > 0))
            return fm__fail(FM_ERR_ARG, "column %d%s%s%s of the data is constant (%g): it cannot be standardised", j + 1,
                            t->names ? " '" : "", t->names ? t->names[j] : "", t->names ? "'" : "", m);
        mean[j] = (float)m;
        std[j] = (float)sd;
    }
    return FM_OK;
}

/* The model the configuration asks for, on dim-dimensional data. */
static fm_status make_model(fm_trainer *tr, const fm_train_config *cfg, int dim, const char *data, const char *source)
{
    const fm_mlp_config *net = &cfg->flow.net;
    if (cfg->method == FM_METHOD_FM || cfg->method == FM_METHOD_DDPM) {
        fm_flow_config fc = cfg->flow;
        fc.method = cfg->method;
        fc.dim = dim;
        fc.data = data;
        fc.source = source;
        if (fc.arch == FM_ARCH_UNET) {
            int ic, ih, iw;
            if (!fm_spec_image_shape(data, &ic, &ih, &iw))
                return fm__fail(FM_ERR_ARG, "the U-Net is for image data; '%s' is not (use the MLP)", data);
            if (!fc.unet.in_ch && !fc.unet.height && !fc.unet.width) { /* the data's shape unless set */
                fc.unet.in_ch = ic;
                fc.unet.height = ih;
                fc.unet.width = iw;
            }
        }
        tr->flow = fm_flow_new(&fc);
        if (!tr->flow) return fm_last_status();
        tr->P = fm_flow_params(tr->flow);
        tr->z = fm__flow_stdz(tr->flow);
    } else if (cfg->method == FM_METHOD_VAE) {
        fm_vae_config vc = fm_vae_config_default(dim);
        vc.latent = cfg->vae.latent;
        vc.beta = cfg->vae.beta;
        vc.likelihood = cfg->vae.likelihood;
        vc.nhidden = net->nhidden;
        memcpy(vc.width, net->width, sizeof vc.width);
        vc.act = net->act;
        vc.data = data;
        tr->vae = fm_vae_new(&vc);
        if (!tr->vae) return fm_last_status();
        tr->P = fm_vae_params(tr->vae);
        tr->z = fm__vae_stdz(tr->vae);
    } else {
        fm_gan_config gc = fm_gan_config_default(dim);
        gc.latent = cfg->gan.latent;
        gc.loss = cfg->gan.loss;
        gc.out_act = cfg->gan.out_act;
        gc.nhidden = net->nhidden;
        memcpy(gc.width, net->width, sizeof gc.width);
        gc.act = gc.d_act = net->act;
        gc.d_nhidden = cfg->gan.d_nhidden >= 0 ? cfg->gan.d_nhidden : net->nhidden;
        memcpy(gc.d_width, cfg->gan.d_nhidden >= 0 ? cfg->gan.d_width : net->width, sizeof gc.d_width);
        gc.data = data;
        tr->gan = fm_gan_new(&gc);
        if (!tr->gan) return fm_last_status();
        tr->P = fm_gan_generator_params(tr->gan);
        tr->PD = fm_gan_discriminator_params(tr->gan);
        tr->z = fm__gan_stdz(tr->gan);
    }
    tr->model = fm__model_wrap(cfg->method, tr->flow, tr->vae, tr->gan); /* frees them on failure */
    if (!tr->model) {
        tr->flow = NULL;
        tr->vae = NULL;
        tr->gan = NULL;
        return FM_ERR_NOMEM;
    }
    return FM_OK;
}

static fm_status config_check(const fm_train_config *cfg)
{
    if (cfg->method < 0 || cfg->method >= FM_METHOD_COUNT) return fm__fail(FM_ERR_ARG, "unknown method %d", (int)cfg->method);
    if (cfg->batch < 1 || cfg->batch > (1 << 24)) return fm__fail(FM_ERR_ARG, "batch size %d is invalid", cfg->batch);
    if (cfg->iters < 0) return fm__fail(FM_ERR_ARG, "iteration count %lld is invalid", (long long)cfg->iters);
    if (!(cfg->clip >= 0) || !(cfg->ema_decay >= 0 && cfg->ema_decay < 1))
        return fm__fail(FM_ERR_ARG, "clip must be >= 0 and EMA decay in [0, 1)");
    if (cfg->dequantize && !fm_spec_image_shape(cfg->flow.data, NULL, NULL, NULL))
        return fm__fail(FM_ERR_ARG, "dequantisation spreads pixel bytes: it needs image data ('%s' is not)",
                        cfg->flow.data ? cfg->flow.data : "none");
    if (cfg->flow.arch < 0 || cfg->flow.arch >= FM_ARCH_COUNT)
        return fm__fail(FM_ERR_ARG, "unknown network architecture %d", (int)cfg->flow.arch);
    if (cfg->flow.arch != FM_ARCH_MLP && cfg->method != FM_METHOD_FM && cfg->method != FM_METHOD_DDPM)
        return fm__fail(FM_ERR_ARG, "the %s network is for flow matching and DDPM; %s uses MLPs",
                        fm_arch_name(cfg->flow.arch), fm_method_name(cfg->method));
    if (cfg->coupling < 0 || cfg->coupling >= FM_COUPLING_COUNT)
        return fm__fail(FM_ERR_ARG, "unknown coupling %d", (int)cfg->coupling);
    if (cfg->method != FM_METHOD_FM && cfg->coupling != FM_COUPLING_INDEPENDENT)
        return fm__fail(FM_ERR_ARG, "couplings pair flow matching's source and data; %s has none",
                        fm_method_name(cfg->method));
    if (cfg->method != FM_METHOD_FM && !fm__is_gaussian_source(cfg->flow.source))
        return fm__fail(FM_ERR_ARG, "%s draws its noise from N(0, I); a source dataset is for flow matching",
                        fm_method_name(cfg->method));
    if (cfg->coupling == FM_COUPLING_SB && !(cfg->flow.path.kind == FM_PATH_SB && cfg->flow.path.sigma > 0))
        return fm__fail(FM_ERR_ARG, "the Schrodinger-bridge coupling needs the sb path with sigma > 0 (its plan's "
                                    "regularisation is 2 sigma^2)");
    if (cfg->flow.unet.num_classes && cfg->flow.arch != FM_ARCH_UNET) /* the U-Net is refused for VAE and GAN above */
        return fm__fail(FM_ERR_ARG, "class conditioning is for the U-Net of flow matching and DDPM (--arch unet)");
    if (!(cfg->label_dropout >= 0 && cfg->label_dropout < 1))
        return fm__fail(FM_ERR_ARG, "label dropout %g is outside [0, 1)", cfg->label_dropout);
    if (cfg->method == FM_METHOD_GAN && (cfg->gan.k < 1 || cfg->gan.k > 100))
        return fm__fail(FM_ERR_ARG, "gan: %d discriminator steps per generator step must lie in 1..100", cfg->gan.k);
    return FM_OK;
}

/* The class count of a class-conditional model on data: the labels' largest
 * + 1 when asked for -1, else the configured count, which must cover them. */
static fm_status classes_of(const fm_train_config *cfg, const fm_dataset *data, int *K)
{
    const uint8_t *lab = fm_dataset_labels(data);
    if (!lab) return fm__fail(FM_ERR_ARG, "class conditioning needs labelled data; '%s' has no labels", fm_dataset_spec(data));
    int k = 0;
    for (int i = 0; i < fm_dataset_rows(data); i++)
        if (lab[i] + 1 > k) k = lab[i] + 1;
    if (cfg->flow.unet.num_classes > 0 && k > cfg->flow.unet.num_classes)
        return fm__fail(FM_ERR_ARG, "the data's labels go up to %d, more than the model's %d classes", k - 1,
                        cfg->flow.unet.num_classes);
    *K = cfg->flow.unet.num_classes < 0 ? k : cfg->flow.unet.num_classes;
    return FM_OK;
}

/* Everything but the weights, the optimizer state and the streams. */
static fm_trainer *trainer_build(const fm_train_config *cfg, fm_dataset *data)
{
    fm_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) {
        fm_dataset_free(data);
        fm__fail(FM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    tr->cfg = *cfg;
    tr->method = cfg->method;
    tr->data = data;
    if (config_check(cfg)) goto fail;
    int dim = fm_dataset_dim(data);
    fm_train_config mc = *cfg;
    if (cfg->flow.unet.num_classes && classes_of(cfg, data, &mc.flow.unet.num_classes)) goto fail;
    char *canon = NULL;
    if (!fm__is_gaussian_source(cfg->flow.source)) {
        fm_dataset *src = fm_dataset_open(cfg->flow.source);
        if (!src) {
            fm__fail(FM_ERR_ARG, "source: %s", fm_last_error());
            goto fail;
        }
        if (fm_dataset_dim(src) != dim) {
            fm__fail(FM_ERR_SHAPE, "source '%s' has %d dimensions but the data has %d", cfg->flow.source,
                     fm_dataset_dim(src), dim);
            fm_dataset_free(src);
            goto fail;
        }
        canon = fm__strdup(fm_dataset_spec(src));
        fm_dataset_free(src);
        if (!canon) {
            fm__fail(FM_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    fm_status s = make_model(tr, &mc, dim, fm_dataset_spec(data), canon ? canon : "gaussian");
    free(canon);
    if (s) goto fail;
    if (tr->flow) tr->cfg.flow = *fm_flow_get_config(tr->flow);
    tr->nclasses = tr->flow ? fm_flow_num_classes(tr->flow) : 0;
    tr->cfg.flow.data = fm_model_data(tr->model);
    tr->cfg.flow.dim = dim;
    tr->opt = fm_optim_new(tr->P, &cfg->optim);
    if (!tr->opt) goto fail;
    if (tr->PD) {
        fm_optim_config dc = cfg->gan.d_optim;
        if (!(dc.lr > 0)) dc.lr = cfg->optim.lr;
        tr->cfg.gan.d_optim = dc;
        tr->optd = fm_optim_new(tr->PD, &dc);
        tr->dsnap = malloc(4 * (fm_params_size(tr->PD) + 1) * sizeof(float));
        if (!tr->optd || !tr->dsnap) {
            if (tr->optd) fm__fail(FM_ERR_NOMEM, "out of memory for the discriminator");
            goto fail;
        }
    }
    if (cfg->ema_decay > 0) {
        tr->ema = fm_ema_new(tr->P, (float)cfg->ema_decay);
        if (!tr->ema) goto fail;
    }
    tr->tp = fm_tape_new(0);
    size_t n = (size_t)cfg->batch * dim;
    int latent = tr->vae ? cfg->vae.latent : tr->gan ? cfg->gan.latent : 1;
    tr->x1 = malloc(n * sizeof(float));
    tr->x0 = malloc(n * sizeof(float));
    tr->xt = malloc(n * sizeof(float));
    tr->ut = malloc(n * sizeof(float));
    tr->eps = malloc(n * sizeof(float));
    tr->lat = malloc((size_t)cfg->batch * latent * sizeof(float));
    tr->t = malloc((size_t)cfg->batch * sizeof(float));
    tr->match = malloc((size_t)cfg->batch * sizeof(int));
    tr->pi = malloc((size_t)cfg->batch * sizeof(int));
    tr->pj = malloc((size_t)cfg->batch * sizeof(int));
    tr->scratch = malloc(2 * n * sizeof(float));
    if (tr->nclasses) {
        tr->labels = malloc((size_t)cfg->batch * sizeof(int));
        tr->lscratch = malloc((size_t)cfg->batch * sizeof(int));
        if (!tr->labels || !tr->lscratch) {
            fm__fail(FM_ERR_NOMEM, "out of memory for a batch of %d", cfg->batch);
            goto fail;
        }
    }
    if (!tr->tp || !tr->x1 || !tr->x0 || !tr->xt || !tr->ut || !tr->eps || !tr->lat || !tr->t || !tr->match ||
        !tr->pi || !tr->pj || !tr->scratch) {
        fm__fail(FM_ERR_NOMEM, "out of memory for a batch of %d", cfg->batch);
        goto fail;
    }
    if (tr->method == FM_METHOD_DDPM) {
        const fm_ddpm_schedule *ds = &fm_flow_get_config(tr->flow)->ddpm;
        double *beta = malloc((size_t)(ds->T + 1) * sizeof(double));
        tr->abar = malloc((size_t)(ds->T + 1) * sizeof(double));
        if (!beta || !tr->abar) {
            free(beta);
            fm__fail(FM_ERR_NOMEM, "out of memory for the DDPM schedule");
            goto fail;
        }
        fm_ddpm_tables(ds, beta, tr->abar);
        free(beta);
    }
    return tr;
fail:
    fm_trainer_free(tr);
    return NULL;
}

static void model_init(fm_trainer *tr, fm_rng *r)
{
    if (tr->flow) fm_flow_init(tr->flow, r);
    else if (tr->vae) fm_vae_init(tr->vae, r);
    else fm_gan_init(tr->gan, r);
}

/* The Bernoulli likelihood scores values in [0, 1]: images are, a table must
 * be checked, a generator's real-valued points are not. */
static int bernoulli_refuses(const fm_dataset *data)
{
    const fm_table *t = fm_dataset_table(data);
    if (!t) {
        fm__fail(FM_ERR_ARG, "the Bernoulli likelihood models data in [0, 1]; '%s' draws real-valued points (use the "
                             "Gaussian likelihood)", fm_dataset_spec(data));
        return 1;
    }
    for (size_t i = 0; i < (size_t)t->rows * t->cols; i++)
        if (!(t->data[i] >= 0.0f && t->data[i] <= 1.0f)) {
            fm__fail(FM_ERR_ARG, "the Bernoulli likelihood models data in [0, 1]; row %zu, column %zu of '%s' holds %g "
                                 "(use the Gaussian likelihood)", i / (size_t)t->cols + 1, i % (size_t)t->cols + 1,
                     fm_dataset_spec(data), t->data[i]);
            return 1;
        }
    return 0;
}

fm_trainer *fm_trainer_new(const fm_train_config *cfg)
{
    if (!cfg || !cfg->flow.data) {
        fm__fail(FM_ERR_ARG, "no training data given");
        return NULL;
    }
    fm_dataset *data = fm_dataset_open(cfg->flow.data);
    if (!data) return NULL;
    const fm_table *tab = fm_dataset_table(data);
    int image = fm_spec_image_shape(cfg->flow.data, NULL, NULL, NULL);
    int standardize = cfg->standardize < 0 ? tab != NULL || image : cfg->standardize;
    if (cfg->method == FM_METHOD_VAE && cfg->vae.likelihood == FM_VAE_BERNOULLI && cfg->standardize < 0) standardize = 0;
    if (standardize && !tab && !image) {
        fm__fail(FM_ERR_ARG, "standardisation needs a CSV or image dataset ('%s' is a generator)", cfg->flow.data);
        fm_dataset_free(data);
        return NULL;
    }
    if (standardize && cfg->method == FM_METHOD_VAE && cfg->vae.likelihood == FM_VAE_BERNOULLI) {
        fm__fail(FM_ERR_ARG, "the Bernoulli likelihood models data in [0, 1]: standardising would leave that range");
        fm_dataset_free(data);
        return NULL;
    }
    if (cfg->method == FM_METHOD_VAE && cfg->vae.likelihood == FM_VAE_BERNOULLI && !image && bernoulli_refuses(data)) {
        fm_dataset_free(data);
        return NULL;
    }
    fm_trainer *tr = trainer_build(cfg, data);
    if (!tr) return NULL;
    tr->cfg.standardize = standardize;
    if (standardize) {
        /* CSV columns by their moments; image pixels in [0, 1] to [-1, 1] */
        int d = fm_dataset_dim(data);
        float *m = malloc((size_t)d * 2 * sizeof(float));
        fm_status s = m ? FM_OK : fm__fail(FM_ERR_NOMEM, "out of memory for the data's moments");
        if (!s && tab) s = table_moments(tab, m, m + d);
        else if (!s)
            for (int j = 0; j < 2 * d; j++) m[j] = 0.5f;
        if (!s) s = fm__stdz_set(tr->z, d, m, m + d);
        free(m);
        if (s) {
            fm_trainer_free(tr);
            return NULL;
        }
    }
    fm_rng init;
    fm_rng_seed(&init, cfg->seed, FM_STREAM_INIT);
    model_init(tr, &init);
    if (tr->ema) {
        fm_ema_free(tr->ema);
        tr->ema = fm_ema_new(tr->P, (float)cfg->ema_decay);
        if (!tr->ema) {
            fm_trainer_free(tr);
            return NULL;
        }
    }
    fm_rng_seed(&tr->rdata, cfg->seed, FM_STREAM_DATA);
    fm_rng_seed(&tr->rnoise, cfg->seed, FM_STREAM_NOISE);
    fm_rng_seed(&tr->rtime, cfg->seed, FM_STREAM_TIME);
    return tr;
}

fm_flow *fm_trainer_flow(fm_trainer *tr) { return tr->flow; }
fm_model *fm_trainer_model(fm_trainer *tr) { return tr->model; }
int64_t fm_trainer_iter(const fm_trainer *tr) { return tr->iter; }
const fm_train_config *fm_trainer_get_config(const fm_trainer *tr) { return &tr->cfg; }
fm_ema *fm_trainer_ema(fm_trainer *tr) { return tr->ema; }

int64_t fm_trainer_unconverged(const fm_trainer *tr) { return tr->unconverged; }

double fm_trainer_lr(const fm_trainer *tr) { return fm_schedule_lr(&tr->cfg.sched, tr->cfg.optim.lr, tr->iter); }

int fm_trainer_loss_parts(const fm_trainer *tr, const char **names, double *values)
{
    static const char *const vae_names[2] = {"rec", "kl"}, *const gan_names[2] = {"d", "g"};
    const char *const *nm = tr->method == FM_METHOD_VAE ? vae_names : gan_names;
    for (int i = 0; i < tr->nparts; i++) {
        if (names) names[i] = nm[i];
        if (values) values[i] = tr->parts[i];
    }
    return tr->nparts;
}

/* ------------------------------------------------------------------ one step */

/* A shard's forward and backward on rows [r0, r1) with parameters P (worker
 * 0's are the model's own, the others' gradient replicas): its part of the
 * loss into loss[0] and of the loss parts into loss[1], loss[2]. */
typedef fm_status (*shard_fn)(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss);

/* Loss and gradient of the scalar l on P. */
static fm_status finish(fm_tape *tp, fm_params *P, fm_tensor *l, double *loss)
{
    if (!l) {
        *loss = NAN;
        return fm_tape_status(tp);
    }
    *loss = l->data[0];
    fm_params_zero_grad(P);
    if (!isfinite(*loss)) return FM_OK; /* reported by the caller, before any update */
    return fm_backward(tp, l, NULL);
}

/* Regression of the network on (t, x_t) to u_t: flow matching and DDPM. */
static fm_status shard_regress(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss)
{
    int B = tr->cfg.batch, d = tr->cfg.flow.dim, m = r1 - r0;
    int ts[2] = {m, 1}, xs[2] = {m, d};
    fm_tensor *T = fm_tensor_wrap(tp, tr->t + r0, 2, ts);
    fm_tensor *X = fm_tensor_wrap(tp, tr->xt + (size_t)r0 * d, 2, xs);
    fm_tensor *U = fm_tensor_wrap(tp, tr->ut + (size_t)r0 * d, 2, xs);
    fm_tensor *sq = fm_mse_loss(tp, fm__flow_forward_with(tp, tr->flow, P, T, X, tr->labels ? tr->labels + r0 : NULL),
                                U, FM_REDUCE_SUM);
    return finish(tp, P, fm_scale(tp, sq, (float)(1.0 / ((double)B * d))), loss);
}

static fm_status shard_vae(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss)
{
    int B = tr->cfg.batch, d = tr->cfg.flow.dim, L = tr->cfg.vae.latent, m = r1 - r0;
    int xs[2] = {m, d}, zs[2] = {m, L};
    fm_tensor *rec = NULL, *kl = NULL;
    fm_tensor *l = fm__vae_loss_with(tp, tr->vae, P, fm_tensor_wrap(tp, tr->x1 + (size_t)r0 * d, 2, xs),
                                     fm_tensor_wrap(tp, tr->lat + (size_t)r0 * L, 2, zs), 1.0 / B, &rec, &kl);
    if (rec && kl) {
        loss[1] = rec->data[0] / B;
        loss[2] = kl->data[0] / B;
    }
    return finish(tp, P, l, loss);
}

static fm_status shard_gan_d(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss)
{
    int B = tr->cfg.batch, d = tr->cfg.flow.dim, L = tr->cfg.gan.latent, m = r1 - r0;
    int xs[2] = {m, d}, zs[2] = {m, L};
    fm_tensor *l = fm__gan_d_loss_with(tp, tr->gan, tr->P, P, fm_tensor_wrap(tp, tr->x1 + (size_t)r0 * d, 2, xs),
                                       fm_tensor_wrap(tp, tr->lat + (size_t)r0 * L, 2, zs), 1.0 / B);
    return finish(tp, P, l, loss);
}

static fm_status shard_gan_g(fm_trainer *tr, fm_tape *tp, fm_params *P, int r0, int r1, double *loss)
{
    int B = tr->cfg.batch, L = tr->cfg.gan.latent, m = r1 - r0, zs[2] = {m, L};
    fm_tensor *l = fm__gan_g_loss_with(tp, tr->gan, P, tr->PD, fm_tensor_wrap(tp, tr->lat + (size_t)r0 * L, 2, zs),
                                       1.0 / B);
    return finish(tp, P, l, loss);
}

/* Workers for one step on P: the thread setting, but at least 32 rows and some
 * real work each, and the tapes and replicas they need. */
static int workers_for(fm_trainer *tr, fm_params *P, fm_params **reps)
{
    int B = tr->cfg.batch, nw = fm_get_threads();
    double work = (double)B * (double)(fm_params_size(tr->P) + (tr->PD ? fm_params_size(tr->PD) : 0)) * 3;
    if (nw > B / 32) nw = B / 32;
    if (nw > (int)(work / 1e6)) nw = (int)(work / 1e6);
    if (nw > MAX_WORKERS) nw = MAX_WORKERS;
    if (nw < 2) return 1;
    for (int w = 1; w < nw; w++) {
        if (!tr->tps[w]) tr->tps[w] = fm_tape_new(0);
        if (!reps[w]) reps[w] = fm__params_replica(P);
        if (!tr->tps[w] || !reps[w]) return 1; /* out of memory: run on one */
    }
    return nw;
}

/* Forward and backward over the batch in shards: the loss (and its parts) into
 * sums[0..2] and P's gradient complete; `frozen` (may be NULL) is read but gets
 * no gradient. */
static fm_status run_shards(fm_trainer *tr, fm_params *P, fm_params **reps, fm_params *frozen, shard_fn fn,
                            const char *what, double lr, double *sums)
{
    int B = tr->cfg.batch;
    int nw = workers_for(tr, P, reps);
    double parts[MAX_WORKERS][3];
    fm_status st[MAX_WORKERS];
    int saved = frozen ? fm__params_get_requires_grad(frozen) : 0;
    if (frozen) fm_params_requires_grad(frozen, 0);
    memset(parts, 0, sizeof parts);
    if (nw == 1) {
        fm_tape_reset(tr->tp);
        fm_params_requires_grad(P, 1);
        st[0] = fn(tr, tr->tp, P, 0, B, parts[0]);
    } else {
        FM__PARALLEL_FOR(nw)
        for (int w = 0; w < nw; w++) {
            fm_tape *tp = w ? tr->tps[w] : tr->tp;
            fm_params *Pw = w ? reps[w] : P;
            fm_tape_reset(tp);
            fm_params_requires_grad(Pw, 1);
            st[w] = fn(tr, tp, Pw, fm__split(B, w, nw), fm__split(B, w + 1, nw), parts[w]);
        }
    }
    if (frozen) fm_params_requires_grad(frozen, saved);
    sums[0] = sums[1] = sums[2] = 0;
    for (int w = 0; w < nw; w++) {
        if (st[w] != FM_OK) {
            /* a worker's message is in its tape (fm_last_error is per thread) */
            const char *msg = (w ? tr->tps[w] : tr->tp)->msg;
            return fm__fail(st[w], "%s", msg[0] || w == 0 ? (msg[0] ? msg : fm_last_error()) : "a worker thread failed");
        }
        for (int k = 0; k < 3; k++) sums[k] += parts[w][k];
    }
    if (!isfinite(sums[0]))
        return fm__fail(FM_ERR_NUMERIC, "training diverged: the %s is %g at iteration %lld (learning rate %g)", what,
                        sums[0], (long long)tr->iter + 1, lr);
    /* worker 0 wrote into P's gradient; add the others in shard order */
    float *g = fm_params_grad(P);
    size_t np = fm_params_size(P);
    for (int w = 1; w < nw; w++) {
        const float *gw = fm_params_grad(reps[w]);
        for (size_t i = 0; i < np; i++) g[i] += gw[i];
    }
    return FM_OK;
}

static fm_status update(fm_trainer *tr, fm_params *P, fm_optim *opt, double lr)
{
    return fm__clip_and_step(P, opt, tr->cfg.clip, tr->iter, lr);
}

/* A batch of data in network units (and its labels, each dropped to "none"
 * with the label-dropout probability); the Bernoulli VAE checks its range. */
static fm_status draw_data(fm_trainer *tr, int B)
{
    fm_status s = tr->labels ? fm_dataset_sample_labeled(tr->data, &tr->rdata, tr->x1, tr->labels, B)
                             : fm_dataset_sample(tr->data, &tr->rdata, tr->x1, B);
    if (s) return s;
    for (int i = 0; tr->labels && i < B; i++)
        if (fm_rng_uniform(&tr->rdata) < tr->cfg.label_dropout) tr->labels[i] = tr->nclasses;
    if (tr->cfg.dequantize) fm_dequantize(tr->x1, (size_t)B * tr->cfg.flow.dim, &tr->rdata);
    fm__stdz_to_model(tr->z, tr->x1, B);
    if (tr->vae && tr->cfg.vae.likelihood == FM_VAE_BERNOULLI)
        for (size_t i = 0; i < (size_t)B * tr->cfg.flow.dim; i++)
            if (!(tr->x1[i] >= 0.0f && tr->x1[i] <= 1.0f))
                return fm__fail(FM_ERR_ARG, "the Bernoulli likelihood needs data in [0, 1]; the data hold %g", tr->x1[i]);
    return FM_OK;
}

/* Re-pair the batch's x0 and x1 by the configured coupling. */
static fm_status couple(fm_trainer *tr, int B, int d)
{
    const fm_train_config *c = &tr->cfg;
    size_t n = (size_t)B * d;
    if (c->coupling == FM_COUPLING_OT) {
        fm_status s = fm_ot_pairing(tr->x0, tr->x1, B, d, tr->match);
        if (s) return s;
        memcpy(tr->scratch, tr->x1, n * sizeof(float));
        for (int i = 0; i < B; i++)
            memcpy(tr->x1 + (size_t)i * d, tr->scratch + (size_t)tr->match[i] * d, (size_t)d * sizeof(float));
        if (tr->labels) { /* labels travel with their images */
            memcpy(tr->lscratch, tr->labels, (size_t)B * sizeof(int));
            for (int i = 0; i < B; i++) tr->labels[i] = tr->lscratch[tr->match[i]];
        }
    } else if (c->coupling == FM_COUPLING_SB) {
        double sg = c->flow.path.sigma;
        int it = 0;
        fm_status s = fm_sinkhorn_pairs(tr->x0, tr->x1, B, d, 2 * sg * sg, FM_SINKHORN_MAX_ITER, 1e-4, &tr->rnoise,
                                        tr->pi, tr->pj, &it);
        if (s) return s;
        tr->unconverged += it < 0;
        memcpy(tr->scratch, tr->x0, n * sizeof(float));
        memcpy(tr->scratch + n, tr->x1, n * sizeof(float));
        for (int i = 0; i < B; i++) {
            memcpy(tr->x0 + (size_t)i * d, tr->scratch + (size_t)tr->pi[i] * d, (size_t)d * sizeof(float));
            memcpy(tr->x1 + (size_t)i * d, tr->scratch + n + (size_t)tr->pj[i] * d, (size_t)d * sizeof(float));
        }
        if (tr->labels) {
            memcpy(tr->lscratch, tr->labels, (size_t)B * sizeof(int));
            for (int i = 0; i < B; i++) tr->labels[i] = tr->lscratch[tr->pj[i]];
        }
    }
    return FM_OK;
}

fm_status fm_trainer_set_pairs(fm_trainer *tr, const float *x0, const float *x1, int n)
{
    if (tr->method != FM_METHOD_FM) return fm__fail(FM_ERR_ARG, "fixed pairs train flow-matching models only");
    if (tr->nclasses) return fm__fail(FM_ERR_ARG, "fixed pairs carry no labels: a class-conditional model cannot take them");
    int d = fm_flow_get_config(tr->flow)->dim;
    if (n < 1) return fm__fail(FM_ERR_ARG, "no pairs given");
    float *a = malloc((size_t)n * d * sizeof(float)), *b = malloc((size_t)n * d * sizeof(float));
    if (!a || !b) {
        free(a);
        free(b);
        return fm__fail(FM_ERR_NOMEM, "out of memory for %d pairs", n);
    }
    memcpy(a, x0, (size_t)n * d * sizeof(float));
    memcpy(b, x1, (size_t)n * d * sizeof(float));
    free(tr->pair0);
    free(tr->pair1);
    tr->pair0 = a;
    tr->pair1 = b;
    tr->npairs = n;
    return FM_OK;
}

fm_status fm_trainer_init_from(fm_trainer *tr, fm_flow *from)
{
    if (!tr->flow) return fm__fail(FM_ERR_ARG, "only a flow can start from another flow's weights");
    fm_params *P = fm_flow_params(tr->flow), *Q = fm_flow_params(from);
    if (fm_params_size(P) != fm_params_size(Q) || fm_params_count(P) != fm_params_count(Q))
        return fm__fail(FM_ERR_SHAPE, "the models differ in shape (%zu and %zu parameters)", fm_params_size(P),
                        fm_params_size(Q));
    memcpy(fm_params_data(P), fm_params_data(Q), fm_params_size(P) * sizeof(float));
    const float *mean, *sd;
    if (fm_flow_standardized(from, &mean, &sd)) {
        fm_status s = fm_flow_set_standardization(tr->flow, mean, sd);
        if (s) return s;
    }
    if (tr->ema) memcpy(fm_ema_data(tr->ema), fm_params_data(P), fm_params_size(P) * sizeof(float));
    return FM_OK;
}

static fm_status step_flow(fm_trainer *tr, double *loss_out)
{
    const fm_flow_config *fc = fm_flow_get_config(tr->flow);
    const fm_path *path = &fc->path;
    int B = tr->cfg.batch, d = fc->dim;
    size_t n = (size_t)B * d;
    fm_status s = FM_OK;
    if (tr->npairs) { /* fixed pairs (reflow), already in network units */
        for (int i = 0; i < B; i++) {
            uint32_t k = fm__rng_below(&tr->rdata, (uint32_t)tr->npairs);
            memcpy(tr->x0 + (size_t)i * d, tr->pair0 + (size_t)k * d, (size_t)d * sizeof(float));
            memcpy(tr->x1 + (size_t)i * d, tr->pair1 + (size_t)k * d, (size_t)d * sizeof(float));
        }
    } else {
        s = draw_data(tr, B);
        if (!s) s = fm_flow_source(tr->flow, &tr->rnoise, tr->x0, B);
        if (s) return s;
        if ((s = couple(tr, B, d))) return s;
    }
    fm_rng_uniform_fill(&tr->rtime, tr->t, (size_t)B, 0.0f, 1.0f);
    if (tr->method == FM_METHOD_DDPM) {
        /* t uniform in 1..T; x_t = sqrt(abar) x1 + sqrt(1 - abar) eps, target eps (= x0) */
        int T = fc->ddpm.T;
        for (int i = 0; i < B; i++) {
            int ti = 1 + (int)(tr->t[i] * T);
            if (ti > T) ti = T;
            double a = sqrt(tr->abar[ti]), c = sqrt(1.0 - tr->abar[ti]);
            tr->t[i] = (float)((double)ti / T);
            for (int j = 0; j < d; j++) {
                size_t k = (size_t)i * d + j;
                tr->xt[k] = (float)(a * tr->x1[k] + c * tr->x0[k]);
                tr->ut[k] = tr->x0[k];
            }
        }
    } else {
        for (int i = 0; i < B; i++) { /* t in (0, t_end): u + 2^-25 can round to 1 in float, so step back */
            float t = (float)(path->t_end * (tr->t[i] + 0x1.0p-25));
            while ((double)t >= path->t_end) t = nextafterf(t, 0.0f);
            tr->t[i] = t;
        }
        int noisy = (path->kind == FM_PATH_ICFM || path->kind == FM_PATH_SB) && path->sigma > 0;
        if (noisy) fm_rng_normal_fill(&tr->rnoise, tr->eps, n, 0.0f, 1.0f);
        for (int i = 0; i < B; i++) {
            fm_path_coef c;
            fm_path_coef_at(path, tr->t[i], &c);
            for (int j = 0; j < d; j++) {
                size_t k = (size_t)i * d + j;
                double e = noisy ? tr->eps[k] : 0.0;
                tr->xt[k] = (float)(c.a * tr->x1[k] + c.b * tr->x0[k] + c.c * e);
                tr->ut[k] = (float)(c.da * tr->x1[k] + c.db * tr->x0[k] + c.dc * e);
            }
        }
    }
    double sums[3] = {NAN, 0, 0};
    s = run_shards(tr, tr->P, tr->rep, NULL, shard_regress, "loss", fm_trainer_lr(tr), sums);
    *loss_out = sums[0];
    tr->nparts = 0;
    if (s) return s;
    return update(tr, tr->P, tr->opt, fm_trainer_lr(tr));
}

static fm_status step_vae(fm_trainer *tr, double *loss_out)
{
    int B = tr->cfg.batch;
    fm_status s = draw_data(tr, B);
    if (s) return s;
    fm_rng_normal_fill(&tr->rnoise, tr->lat, (size_t)B * tr->cfg.vae.latent, 0.0f, 1.0f);
    double sums[3] = {NAN, 0, 0};
    s = run_shards(tr, tr->P, tr->rep, NULL, shard_vae, "loss", fm_trainer_lr(tr), sums);
    *loss_out = sums[0];
    if (s) return s;
    tr->parts[0] = sums[1];
    tr->parts[1] = sums[2];
    tr->nparts = 2;
    return update(tr, tr->P, tr->opt, fm_trainer_lr(tr));
}

/* Keep (or put back) the discriminator's weights, its optimizer state and the
 * streams the step draws from, so a failed GAN step changes nothing. */
static void gan_snapshot(fm_trainer *tr, int restore)
{
    float *buf[4];
    int64_t *step;
    size_t n;
    fm__optim_view(tr->optd, &buf[1], &buf[2], &buf[3], &step, &n);
    buf[0] = fm_params_data(tr->PD);
    for (int k = 0; k < 4; k++) {
        if (!buf[k]) continue;
        float *s = tr->dsnap + (size_t)k * n;
        if (restore) memcpy(buf[k], s, n * sizeof(float));
        else memcpy(s, buf[k], n * sizeof(float));
    }
    if (restore) {
        *step = tr->dsnap_step;
        tr->rdata = tr->dsnap_rng[0];
        tr->rnoise = tr->dsnap_rng[1];
    } else {
        tr->dsnap_step = *step;
        tr->dsnap_rng[0] = tr->rdata;
        tr->dsnap_rng[1] = tr->rnoise;
    }
}

static fm_status step_gan_inner(fm_trainer *tr, double *loss_out);

static fm_status step_gan(fm_trainer *tr, double *loss_out)
{
    gan_snapshot(tr, 0);
    fm_status s = step_gan_inner(tr, loss_out);
    if (s) gan_snapshot(tr, 1);
    return s;
}

static fm_status step_gan_inner(fm_trainer *tr, double *loss_out)
{
    int B = tr->cfg.batch, L = tr->cfg.gan.latent;
    double lr = fm_trainer_lr(tr), dlr = fm_schedule_lr(&tr->cfg.sched, tr->cfg.gan.d_optim.lr, tr->iter);
    double sd[3] = {NAN, 0, 0}, sg[3] = {NAN, 0, 0};
    fm_status s;
    for (int k = 0; k < tr->cfg.gan.k; k++) { /* ascend log D(x) + log(1 - D(G(z))) */
        if ((s = draw_data(tr, B))) return s;
        fm_rng_normal_fill(&tr->rnoise, tr->lat, (size_t)B * L, 0.0f, 1.0f);
        s = run_shards(tr, tr->PD, tr->repd, tr->P, shard_gan_d, "discriminator's loss", dlr, sd);
        *loss_out = sd[0];
        if (s) return s;
        if ((s = update(tr, tr->PD, tr->optd, dlr))) return s;
    }
    fm_rng_normal_fill(&tr->rnoise, tr->lat, (size_t)B * L, 0.0f, 1.0f);
    if ((s = run_shards(tr, tr->P, tr->rep, tr->PD, shard_gan_g, "generator's loss", lr, sg))) return s;
    *loss_out = sd[0];
    tr->parts[0] = sd[0];
    tr->parts[1] = sg[0];
    tr->nparts = 2;
    return update(tr, tr->P, tr->opt, lr);
}

fm_status fm_trainer_step(fm_trainer *tr, double *loss_out)
{
    double loss = 0;
    fm_status s = tr->vae ? step_vae(tr, &loss) : tr->gan ? step_gan(tr, &loss) : step_flow(tr, &loss);
    if (loss_out) *loss_out = loss;
    if (s) return s;
    if (tr->ema && (s = fm_ema_update(tr->ema, tr->P))) return s;
    tr->iter++;
    return FM_OK;
}

/* ------------------------------------------------------------------ checkpoints */

static const char *stdz_prefix(fm_method m) { return m == FM_METHOD_VAE ? "vae" : m == FM_METHOD_GAN ? "gan" : "flow"; }

fm_status fm_trainer_save(fm_trainer *tr, const char *path)
{
    fm_st_writer *w = fm_st_writer_new();
    if (!w) return FM_ERR_NOMEM;
    const fm_train_config *c = &tr->cfg;
    char hex[65];
    fm_status s = tr->vae ? fm__vae_save(tr->vae, w) : tr->gan ? fm__gan_save(tr->gan, w) : fm_flow_save(tr->flow, w);
    if (!s) s = fm_optim_save(tr->opt, w);
    if (!s && tr->optd) s = fm__optim_save_as(tr->optd, w, "optim_d");
    if (!s && tr->ema) s = fm_ema_save(tr->ema, tr->P, w);
    if (!s) s = fm__meta_put_num(w, "train.iter", (double)tr->iter);
    if (!s) s = fm__meta_put_num(w, "train.iters", (double)c->iters);
    if (!s) s = fm__meta_put_num(w, "train.batch", c->batch);
    if (!s) s = fm__meta_put_u64(w, "train.seed", c->seed);
    if (!s) s = fm_st_writer_meta(w, "train.schedule", fm_sched_name(c->sched.kind));
    if (!s) s = fm__meta_put_num(w, "train.warmup", (double)c->sched.warmup);
    if (!s) s = fm__meta_put_num(w, "train.min_lr", c->sched.min_lr);
    if (!s) s = fm__meta_put_num(w, "train.clip", c->clip);
    if (!s) s = fm__meta_put_num(w, "train.ema", c->ema_decay);
    if (!s) s = fm__meta_put_num(w, "train.standardize", c->standardize);
    if (!s) s = fm_st_writer_meta(w, "train.coupling", tr->npairs ? "reflow" : fm_coupling_name(c->coupling));
    if (!s) s = fm__meta_put_num(w, "train.dequantize", c->dequantize);
    if (!s && tr->nclasses) s = fm__meta_put_num(w, "train.label_dropout", c->label_dropout);
    if (!s && tr->gan) s = fm__meta_put_num(w, "train.gan_k", c->gan.k);
    if (!s) fm_rng_to_hex(&tr->rdata, hex), s = fm_st_writer_meta(w, "rng.data", hex);
    if (!s) fm_rng_to_hex(&tr->rnoise, hex), s = fm_st_writer_meta(w, "rng.noise", hex);
    if (!s) fm_rng_to_hex(&tr->rtime, hex), s = fm_st_writer_meta(w, "rng.time", hex);
    if (!s) s = fm_st_writer_save(w, path);
    fm_st_writer_free(w);
    return s;
}

/* The model part of a training configuration, from a checkpoint. */
static fm_status model_config_load(fm_train_config *c, const fm_st *st)
{
    fm_model *m = fm_model_load(st, 0);
    if (!m) return fm_last_status();
    c->method = fm_model_method(m);
    fm_status s = FM_OK;
    if (fm_model_flow(m)) {
        s = fm_flow_config_load(&c->flow, st); /* its strings point into st */
    } else if (fm_model_vae(m)) {
        const fm_vae_config *v = fm_vae_get_config(fm_model_vae(m));
        c->flow.net.nhidden = v->nhidden;
        memcpy(c->flow.net.width, v->width, sizeof v->width);
        c->flow.net.act = v->act;
        c->vae.latent = v->latent;
        c->vae.beta = v->beta;
        c->vae.likelihood = v->likelihood;
        c->flow.data = fm_st_meta(st, "vae.data");
    } else {
        const fm_gan_config *g = fm_gan_get_config(fm_model_gan(m));
        double k = 1;
        c->flow.net.nhidden = g->nhidden;
        memcpy(c->flow.net.width, g->width, sizeof g->width);
        c->flow.net.act = g->act;
        c->gan.latent = g->latent;
        c->gan.loss = g->loss;
        c->gan.out_act = g->out_act;
        c->gan.d_nhidden = g->d_nhidden;
        memcpy(c->gan.d_width, g->d_width, sizeof g->d_width);
        c->flow.data = fm_st_meta(st, "gan.data");
        s = fm__optim_config_load_as(&c->gan.d_optim, st, "optim_d");
        if (!s) s = fm__meta_get_whole(st, "train.gan_k", 1, 100, &k);
        c->gan.k = (int)k;
        if (!s && g->d_act != g->act)
            s = fm__fail(FM_ERR_FORMAT, "the checkpoint's discriminator activation differs from its generator's");
    }
    fm_model_free(m);
    if (!s && !c->flow.data) s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata does not name the training data");
    return s;
}

fm_trainer *fm_trainer_resume(const char *path, int64_t iters)
{
    fm_st *st = fm_st_load(path);
    if (!st) return NULL;
    fm_trainer *tr = NULL;
    fm_train_config c = fm_train_config_default();
    double it = 0, tot = 0, batch = 0, warm = 0, minlr = 0, clip = 0, ema = 0, stdz = 0;
    fm_status s = model_config_load(&c, st);
    if (!s && !fm_st_meta(st, "train.iter"))
        s = fm__fail(FM_ERR_FORMAT, "%s holds a model but no training state (not a training checkpoint)", path);
    if (!s) s = fm_optim_config_load(&c.optim, st);
    if (!s) s = fm__meta_get_whole(st, "train.iter", 0, 9e15, &it);
    if (!s) s = fm__meta_get_whole(st, "train.iters", 0, 9e15, &tot);
    if (!s) s = fm__meta_get_whole(st, "train.batch", 1, 1 << 24, &batch);
    const char *seed = fm_st_meta(st, "train.seed");
    char *seed_end = NULL;
    unsigned long long seed_v = seed ? strtoull(seed, &seed_end, 10) : 0;
    if (!s && (!seed || seed_end == seed || *seed_end))
        s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'train.seed' is missing or invalid");
    if (!s) s = fm__meta_get_whole(st, "train.warmup", 0, 9e15, &warm);
    if (!s) s = fm__meta_get_num(st, "train.min_lr", &minlr);
    if (!s) s = fm__meta_get_num(st, "train.clip", &clip);
    if (!s) s = fm__meta_get_num(st, "train.ema", &ema);
    if (!s) s = fm__meta_get_whole(st, "train.standardize", -1, 1, &stdz);
    double deq = 0; /* absent in checkpoints from before dequantisation */
    if (!s && fm_st_meta(st, "train.dequantize")) s = fm__meta_get_whole(st, "train.dequantize", 0, 1, &deq);
    double ldrop = c.label_dropout;
    if (!s && fm_st_meta(st, "train.label_dropout")) s = fm__meta_get_num(st, "train.label_dropout", &ldrop);
    if (!s && (!(minlr >= 0) || !(clip >= 0) || !(ema >= 0 && ema < 1)))
        s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata: min_lr, clip or ema out of range");
    const char *ck = fm_st_meta(st, "train.coupling");
    if (!s && ck && !strcmp(ck, "reflow"))
        s = fm__fail(FM_ERR_ARG, "%s was trained by reflow on pairs the checkpoint does not keep: it cannot be resumed",
                     path);
    int coupling = ck ? fm_coupling_from_name(ck) : FM_COUPLING_INDEPENDENT;
    if (!s && coupling < 0) s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'train.coupling' = '%s' is unknown", ck);
    const char *sk = fm_st_meta(st, "train.schedule");
    int sched = fm_sched_from_name(sk);
    if (!s && sched < 0) s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'train.schedule' is invalid");
    if (s) goto done;
    c.iters = iters > 0 ? iters : (int64_t)tot;
    if (c.iters <= (int64_t)it) {
        fm__fail(FM_ERR_ARG, "%s has done %lld iterations already; ask for more than that (--iters)", path,
                 (long long)it);
        goto done;
    }
    c.batch = (int)batch;
    c.seed = (uint64_t)seed_v;
    c.sched.kind = (fm_sched_kind)sched;
    c.sched.warmup = (int64_t)warm;
    c.sched.total = c.iters;
    c.sched.min_lr = minlr;
    c.clip = clip;
    c.ema_decay = ema;
    c.standardize = (int)stdz;
    c.coupling = (fm_coupling)coupling;
    c.dequantize = (int)deq;
    c.label_dropout = ldrop;
    fm_dataset *data = fm_dataset_open(c.flow.data);
    if (!data) {
        fm__fail(FM_ERR_ARG, "%s: its training data: %s", path, fm_last_error());
        goto done;
    }
    tr = trainer_build(&c, data);
    if (!tr) goto done;
    s = fm__stdz_load(tr->z, st, stdz_prefix(tr->method), tr->cfg.flow.dim);
    if (!s) s = fm_params_load(tr->P, st, NULL);
    if (!s && tr->PD) s = fm_params_load(tr->PD, st, NULL);
    if (!s) s = fm_optim_load(tr->opt, st);
    if (!s && tr->optd) s = fm__optim_load_as(tr->optd, st, "optim_d");
    if (!s && tr->ema) s = fm_ema_load(tr->ema, tr->P, st);
    if (!s) s = fm_rng_from_hex(&tr->rdata, fm_st_meta(st, "rng.data"));
    if (!s) s = fm_rng_from_hex(&tr->rnoise, fm_st_meta(st, "rng.noise"));
    if (!s) s = fm_rng_from_hex(&tr->rtime, fm_st_meta(st, "rng.time"));
    if (s) goto fail;
    tr->iter = (int64_t)it;
    goto done;
fail:
    fm_trainer_free(tr);
    tr = NULL;
done:
    fm_st_free(st);
    return tr;
}
