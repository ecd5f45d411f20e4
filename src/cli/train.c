/* train.c - `flowmatch train`: fit a flow-matching model and write its
 * checkpoint, the losses (CSV) and optionally the loss curve (SVG).
 *
 * Progress goes to stderr: a line rewritten in place on a terminal, plain
 * lines every --log-every iterations otherwise. Ctrl-C stops after the
 * current step and still writes the checkpoint, which --resume continues.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cli_losses_free(cli_losses *log)
{
    free(log->loss);
    free(log->lr);
    free(log->parts);
    memset(log, 0, sizeof *log);
}

typedef struct {
    fm_trainer *tr;
    cli_losses *log;
    const cli_saver *save;
    double last_save;
} train_ctx;

/* One step of a trainer, its loss, learning rate and loss parts kept in the log. */
static fm_status train_step(void *ctx, int64_t k, double *loss, double *lr, char *extra, size_t cap)
{
    train_ctx *c = ctx;
    cli_losses *log = c->log;
    double pv[4];
    *lr = fm_trainer_lr(c->tr);
    fm_status s = fm_trainer_step(c->tr, loss);
    if (s) return s;
    log->nparts = fm_trainer_loss_parts(c->tr, log->names, pv);
    for (int j = 0, o = 0; j < log->nparts; j++) {
        log->parts[4 * k + j] = (float)pv[j];
        o += snprintf(extra + o, cap - (size_t)o, "  %s %.4f", log->names[j], pv[j]);
    }
    log->loss[k] = (float)*loss;
    log->lr[k] = (float)*lr;
    const cli_saver *sv = c->save;
    if (sv && sv->fn) { /* a periodic save: every `every` iterations, or every `seconds` */
        int64_t it = fm_trainer_iter(c->tr);
        double now = cli_now();
        if ((sv->every > 0 && it % sv->every == 0) || (sv->every == 0 && now - c->last_save >= sv->seconds)) {
            log->n = k + 1;
            if ((s = sv->fn(sv->ctx, log)) != FM_OK) return s;
            c->last_save = now;
        }
    }
    return FM_OK;
}

int cli_train_loop(const char *cmd, fm_trainer *tr, int64_t iters, int64_t log_every, int quiet, cli_losses *log,
                   double *seconds, const cli_saver *save)
{
    int64_t start = fm_trainer_iter(tr), todo = iters - start, k = 0;
    if (todo < 0) todo = 0;
    memset(log, 0, sizeof *log);
    size_t cap = (size_t)(todo ? todo : 1);
    log->loss = malloc(cap * sizeof(float));
    log->lr = malloc(cap * sizeof(float));
    log->parts = malloc(cap * 4 * sizeof(float));
    if (!log->loss || !log->lr || !log->parts) {
        cli_losses_free(log);
        return cli_error(cmd, "out of memory for %lld losses", (long long)todo);
    }
    train_ctx c = {tr, log, save, cli_now()};
    int rc = cli_step_loop(cmd, start, iters, log_every, quiet, train_step, &c, "the checkpoint keeps the state so far",
                           &k, seconds);
    int64_t missed = fm_trainer_unconverged(tr);
    if (missed > 0) {
        double sg = fm_trainer_get_config(tr)->flow.path.sigma;
        fprintf(stderr,
                "flowmatch %s: warning: in %lld of %lld batches Sinkhorn missed its tolerance within %d iterations "
                "(regularisation 2 sigma^2 = %g is small); those plans were used as they stood\n",
                cmd, (long long)missed, (long long)k, FM_SINKHORN_MAX_ITER, 2 * sg * sg);
    }
    log->n = k;
    if (rc >= 0) cli_losses_free(log);
    return rc;
}

int cli_write_losses(const char *cmd, const char *csv, const char *svg, const cli_losses *log, int64_t first_iter,
                     const char *earlier)
{
    int64_t n = log->n;
    int cols = 3 + log->nparts;
    if (csv && *csv) {
        /* when resuming, keep the earlier run's rows up to where this one starts */
        fm_table old = {0};
        int keep = 0;
        if (earlier && fm_csv_read(earlier, &old) == FM_OK && old.cols == cols)
            while (keep < old.rows && old.data[(size_t)cols * keep] <= (float)first_iter) keep++;
        float *rows = malloc((size_t)(n + keep + 1) * cols * sizeof(float));
        if (!rows) {
            fm_table_free(&old);
            return cli_error(cmd, "out of memory");
        }
        if (keep) memcpy(rows, old.data, (size_t)keep * cols * sizeof(float));
        fm_table_free(&old);
        for (int64_t i = 0; i < n; i++) {
            float *r = rows + (size_t)cols * (keep + i);
            r[0] = (float)(first_iter + i + 1);
            r[1] = log->loss[i];
            r[2] = log->lr[i];
            for (int j = 0; j < log->nparts; j++) r[3 + j] = log->parts[4 * i + j];
        }
        const char *names[7] = {"iter", "loss", "lr"};
        for (int j = 0; j < log->nparts; j++) names[3 + j] = log->names[j];
        fm_status s = fm_csv_write(csv, rows, (int)(n + keep), cols, names);
        free(rows);
        if (s) return cli_error(cmd, "%s", fm_last_error());
    }
    if (svg && *svg && n > 0 && fm_svg_loss(svg, log->loss, (int)n, "training loss") != FM_OK)
        return cli_error(cmd, "%s", fm_last_error());
    return -1;
}

/* ------------------------------------------------------------------ flowmatch train */

#define TRAIN_MAX_SETTINGS 32 /* the methods' own settings, all of them (test_cli checks) */

/* The command line's values. Every default is the library's
 * (fm_train_config_default, fm_path_default, and the method's own defaults
 * for its data once --method and --data are known), never written here. */
typedef struct {
    const char *data, *source, *act, *optim, *sched, *out, *loss_csv, *loss_svg, *resume, *standardize,
        *method, *likelihood, *gan_loss, *arch, *out_act, *weights, *weights_prefix;
    int import; /* flowmatch import: load --weights, write the checkpoint, train nothing */
    int channels, class_cond, T, latent, d_width, d_depth, width, depth, time_embed, nesterov, amsgrad,
        threads, quiet, batch, dequantize, force;
    int64_t iters, seed, warmup, log_every, save_every;
    double label_dropout, beta_start, beta_end, kl_weight, d_lr, lr, beta1, beta2, eps, wd, momentum, min_lr, clip,
        ema;
    cli_path_opts po;
    /* the methods' own settings (fm_method_setting), as text: one flag each */
    int nset;
    const char *set_name[TRAIN_MAX_SETTINGS], *set_value[TRAIN_MAX_SETTINGS];
    char set_default[TRAIN_MAX_SETTINGS][32];
} train_opts;

static void opts_default(train_opts *o)
{
    fm_train_config c = fm_train_config_default();
    memset(o, 0, sizeof *o);
    o->po = cli_path_defaults();
    o->data = c.flow.data;
    o->source = c.flow.source;
    o->method = fm_method_name(c.method);
    o->act = fm_act_name(c.flow.net.act);
    o->optim = fm_optim_name(c.optim.kind);
    o->sched = fm_sched_name(c.sched.kind);
    o->standardize = "auto";
    o->likelihood = fm_vae_likelihood_name(c.vae.likelihood);
    o->gan_loss = fm_gan_loss_name(c.gan.loss);
    o->arch = fm_arch_name(c.flow.arch);
    o->out_act = fm_act_name(c.gan.out_act);
    o->out = "model.safetensors";
    o->channels = c.flow.unet.base;
    o->label_dropout = c.label_dropout;
    o->T = c.flow.ddpm.T;
    o->beta_start = c.flow.ddpm.beta_start;
    o->beta_end = c.flow.ddpm.beta_end;
    o->latent = c.vae.latent;
    o->kl_weight = c.vae.beta;
    o->d_depth = -1; /* the generator's */
    o->d_lr = c.gan.d_optim.lr; /* 0: the generator's */
    o->width = c.flow.net.width[0];
    o->depth = c.flow.net.nhidden;
    o->time_embed = c.flow.net.time_embed;
    o->batch = c.batch;
    o->iters = c.iters;
    o->seed = (int64_t)c.seed;
    o->log_every = 1000;
    o->lr = c.optim.lr;
    o->beta1 = c.optim.beta1;
    o->beta2 = c.optim.beta2;
    o->eps = c.optim.eps;
    o->wd = NAN; /* the optimizer's own */
    o->momentum = c.optim.momentum;
    o->min_lr = c.sched.min_lr;
    o->clip = c.clip;
    o->ema = c.ema_decay;
}

#define TRAIN_NOPTS (64 + TRAIN_MAX_SETTINGS)

/* A flag for each of the methods' own settings (once per name), after the
 * n options in t; the new count. */
static int setting_options(train_opts *o, cli_opt *t, int n)
{
    for (int m = 0; m < fm_method_count(); m++) {
        const char *metavar, *help, *name;
        char def[32];
        for (int i = 0; (name = fm_method_setting((fm_method)m, i, &metavar, &help, def, sizeof def)); i++) {
            int seen = 0;
            for (int k = 0; k < o->nset; k++) seen |= !strcmp(o->set_name[k], name);
            if (seen || o->nset == TRAIN_MAX_SETTINGS) continue;
            int k = o->nset++;
            o->set_name[k] = name;
            snprintf(o->set_default[k], sizeof o->set_default[k], "%s", def);
            o->set_value[k] = o->set_default[k];
            t[n++] = (cli_opt){name, OPT_STR, &o->set_value[k], metavar, help};
        }
    }
    return n;
}

/* The option table over o. */
static int train_options(train_opts *o, cli_opt *t)
{
    const cli_opt opts[] = {
        {"method", OPT_STR, &o->method, "NAME", "fm (flow matching), cnf or nf (the lineage), score (SDEs), rfm (sphere, torus), dfm (tokens), meanflow (one step), or a baseline: ddpm, vae, gan"},
        {"data", OPT_STR, &o->data, "SPEC", "dataset: moons, circles, 8gaussians, ... or csv:FILE (rfm: torus-mix, dfm: checkerboard-tokens)"},
        {"source", OPT_STR, &o->source, "SPEC", "source distribution: gaussian or a dataset"},
        CLI_PATH_OPTIONS(o->po),
        {"T", OPT_INT, &o->T, "N", "ddpm: diffusion steps"},
        {"beta-start", OPT_DOUBLE, &o->beta_start, "X", "ddpm: beta_1 of the linear schedule"},
        {"beta-end", OPT_DOUBLE, &o->beta_end, "X", "ddpm: beta_T"},
        {"latent", OPT_INT, &o->latent, "N", "vae, gan: latent dimension (default: 2; on images vae 20, gan 64)"},
        {"kl-weight", OPT_DOUBLE, &o->kl_weight, "X", "vae: weight beta of the KL term"},
        {"likelihood", OPT_STR, &o->likelihood, "NAME",
         "vae: gaussian (real data) or bernoulli (data in [0, 1]; images' default)"},
        {"gan-loss", OPT_STR, &o->gan_loss, "NAME", "gan: nonsaturating (-log D(G(z))) or minimax (log(1 - D(G(z))))"},
        {"d-width", OPT_INT, &o->d_width, "N", "gan: discriminator width (default: --width)"},
        {"d-depth", OPT_INT, &o->d_depth, "N", "gan: discriminator hidden layers (default: --depth)"},
        {"d-lr", OPT_DOUBLE, &o->d_lr, "X", "gan: discriminator learning rate (default: --lr)"},
        {"out-act", OPT_STR, &o->out_act, "NAME",
         "gan: the generator's output, none (linear) or tanh (default: tanh on images)"},
        {"arch", OPT_STR, &o->arch, "NAME", "fm, ddpm, score, dfm network: mlp, or unet (image data: a convolutional U-Net; dfm's default on images)"},
        {"channels", OPT_INT, &o->channels, "N",
         "unet: base channels, a multiple of 8 (levels get 1, 2, 2 times as many)"},
        {"class-cond", OPT_FLAG, &o->class_cond, NULL,
         "unet: condition on the data's class labels (sample --label, --guidance)"},
        {"label-dropout", OPT_DOUBLE, &o->label_dropout, "P",
         "class-cond: chance a training label becomes 'none' (default 0.1)"},
        {"width", OPT_INT, &o->width, "N",
         "hidden layer width (vae: encoder and decoder; gan: generator) (default: 64; images 512, vae 400, gan 256)"},
        {"depth", OPT_INT, &o->depth, "N", "hidden layers (default: 3; on images vae 1, gan 2)"},
        {"act", OPT_STR, &o->act, "NAME",
         "relu, elu, silu, gelu, gelu_tanh, tanh, sigmoid, selu, softplus (default: elu; images silu, vae relu)"},
        {"time-embed", OPT_INT, &o->time_embed, "N", "sinusoidal time embedding size (0: raw t)"},
        {"optim", OPT_STR, &o->optim, "NAME", "adam, adamw or sgd"},
        {"lr", OPT_DOUBLE, &o->lr, "X", "learning rate (default: 0.01, on images 1e-3; vae 1e-3, gan 2e-4)"},
        {"beta1", OPT_DOUBLE, &o->beta1, "X", "Adam beta1 (default: 0.9; gan 0.5)"},
        {"beta2", OPT_DOUBLE, &o->beta2, "X", "Adam beta2"},
        {"eps", OPT_DOUBLE, &o->eps, "X", "Adam epsilon"},
        {"weight-decay", OPT_DOUBLE, &o->wd, "X", "weight decay (default: 0, AdamW 0.01)"},
        {"momentum", OPT_DOUBLE, &o->momentum, "X", "SGD momentum"},
        {"nesterov", OPT_FLAG, &o->nesterov, NULL, "SGD Nesterov momentum"},
        {"amsgrad", OPT_FLAG, &o->amsgrad, NULL, "Adam AMSGrad"},
        {"schedule", OPT_STR, &o->sched, "NAME", "learning rate: constant, cosine or linear"},
        {"warmup", OPT_I64, &o->warmup, "N", "linear warm-up iterations"},
        {"min-lr", OPT_DOUBLE, &o->min_lr, "X", "final learning rate of cosine / linear"},
        {"clip", OPT_DOUBLE, &o->clip, "X", "clip the gradient norm (0: off)"},
        {"ema", OPT_DOUBLE, &o->ema, "X", "EMA decay of the weights, e.g. 0.999 (0: off)"},
        {"standardize", OPT_STR, &o->standardize, "auto|on|off",
         "standardise the data (auto: CSV columns, image pixels to [-1, 1])"},
        {"dequantize", OPT_FLAG, &o->dequantize, NULL, "image data: spread each pixel byte uniformly over its 1/256 cell"},
        {"batch", OPT_INT, &o->batch, "N", "batch size"},
        {"iters", OPT_I64, &o->iters, "N", "iterations (total, when resuming)"},
        {"seed", OPT_I64, &o->seed, "N", "random seed"},
        {"threads", OPT_INT, &o->threads, "N", "threads (0: all cores)"},
        {"out", OPT_STR, &o->out, "FILE", "checkpoint (.safetensors)"},
        {"loss-csv", OPT_STR, &o->loss_csv, "FILE", "losses per iteration (default: <out>_loss.csv)"},
        {"loss-plot", OPT_STR, &o->loss_svg, "FILE", "loss curve as SVG"},
        {"log-every", OPT_I64, &o->log_every, "N", "progress line period when not on a terminal"},
        {"save-every", OPT_I64, &o->save_every, "N",
         "also save the checkpoint and losses every N iterations (default: 0, every 5 minutes; -1: only at the end)"},
        {"resume", OPT_STR, &o->resume, "FILE", "continue a checkpoint (its settings win; --iters sets the total)"},
        {"weights", OPT_STR, &o->weights, "FILE",
         "start from these weights: a flow's state_dict as safetensors (e.g. PyTorch's), matched by name and shape"},
        {"weights-prefix", OPT_STR, &o->weights_prefix, "P",
         "--weights: the file's names are P + the model's (default: tried as is, without 'net.', with 'model.')"},
        {"quiet", OPT_FLAG, &o->quiet, NULL, "no progress output"},
        {"force", OPT_FLAG, &o->force, NULL, "let the default --out replace an existing file"},
    };
    int n = (int)(sizeof opts / sizeof opts[0]);
    _Static_assert(sizeof opts / sizeof opts[0] + TRAIN_MAX_SETTINGS <= TRAIN_NOPTS, "TRAIN_NOPTS holds every option");
    memcpy(t, opts, sizeof opts);
    /* the methods' own settings go before the run's options (from --threads on) */
    int tail = 0;
    while (tail < n && strcmp(t[tail].name, "threads")) tail++;
    cli_opt rest[TRAIN_NOPTS];
    memcpy(rest, t + tail, (size_t)(n - tail) * sizeof *t);
    int m = setting_options(o, t, tail);
    memcpy(t + m, rest, (size_t)(n - tail) * sizeof *t);
    return m + n - tail;
}

#define BAD(...) return cli_usage_error("train", __VA_ARGS__)

/* Options given that belong to other methods than the one chosen. */
static int check_owners(const cli_spec *spec, fm_method m, const char *method)
{
    for (int i = 0; i < spec->nopts; i++) {
        int known;
        const char *name = spec->opts[i].name;
        if (spec->given[i] && !fm_method_takes_option(m, name, &known) && known)
            BAD("--%s does not apply to --method %s", name, method);
    }
    return CLI_GO;
}

/* The network: the MLP's shape, or the U-Net's, and class conditioning. */
static int set_network(const train_opts *o, const cli_spec *spec, fm_train_config *c)
{
    int a = fm_arch_from_name(o->arch), k;
    if (a < 0) BAD("unknown --arch '%s' (mlp, unet)", o->arch);
    c->flow.arch = (fm_arch)a;
    if (a == FM_ARCH_UNET) { /* the library checks the method and the data */
        static const char *const mlp_only[] = {"width", "depth", "act", "time-embed"};
        for (size_t i = 0; i < sizeof mlp_only / sizeof mlp_only[0]; i++)
            if (cli_given(spec, mlp_only[i])) BAD("--%s shapes the MLP; it does not apply to --arch unet", mlp_only[i]);
        int g = c->flow.unet.groups;
        if (o->channels < g || o->channels > 1024 || o->channels % g)
            BAD("--channels %d must be a multiple of %d (GroupNorm's groups) in %d..1024", o->channels, g, g);
        c->flow.unet.base = o->channels;
    } else if (cli_given(spec, "channels") || o->class_cond) {
        BAD("--%s shapes the U-Net; it needs --arch unet", o->class_cond ? "class-cond" : "channels");
    }
    if (cli_given(spec, "label-dropout") && !o->class_cond) BAD("--label-dropout needs --class-cond");
    if (!(o->label_dropout >= 0 && o->label_dropout < 1)) BAD("--label-dropout %g must lie in [0, 1)", o->label_dropout);
    c->flow.unet.num_classes = o->class_cond ? -1 : 0; /* -1: as many as the data's labels */
    c->label_dropout = o->label_dropout;
    if (o->width < 1 || o->width > 65536) BAD("--width %d must be between 1 and 65536", o->width);
    if (o->depth < 0 || o->depth > FM_MLP_MAX_LAYERS) BAD("--depth %d must be between 0 and %d", o->depth, FM_MLP_MAX_LAYERS);
    if ((k = fm_act_from_name(o->act)) < 0) BAD("unknown --act '%s'", o->act);
    c->flow.net.act = (fm_act)k;
    c->flow.net.nhidden = o->depth;
    for (int i = 0; i < o->depth; i++) c->flow.net.width[i] = o->width;
    if (o->time_embed < 0 || o->time_embed % 2 || o->time_embed > 4096)
        BAD("--time-embed %d must be even and in 0..4096", o->time_embed);
    c->flow.net.time_embed = o->time_embed;
    return CLI_GO;
}

/* DDPM's schedule and the VAE's and GAN's settings where given (c holds the
 * method's defaults for the data; the library checks them against the method). */
static int set_baselines(const train_opts *o, const cli_spec *spec, fm_train_config *c)
{
    int k;
    if (cli_given(spec, "T")) c->flow.ddpm.T = o->T;
    if (cli_given(spec, "beta-start")) c->flow.ddpm.beta_start = o->beta_start;
    if (cli_given(spec, "beta-end")) c->flow.ddpm.beta_end = o->beta_end;
    if (fm_ddpm_check(&c->flow.ddpm) != FM_OK) BAD("%s", fm_last_error()); /* before any data is read */
    if (cli_given(spec, "latent")) {
        if (o->latent < 1 || o->latent > 65536) BAD("--latent %d must lie in 1..65536", o->latent);
        c->vae.latent = c->gan.latent = o->latent;
    }
    if (!(o->kl_weight >= 0)) BAD("--kl-weight %g must be >= 0", o->kl_weight);
    if (cli_given(spec, "kl-weight")) c->vae.beta = o->kl_weight;
    if (cli_given(spec, "likelihood")) {
        if ((k = fm_vae_likelihood_from_name(o->likelihood)) < 0)
            BAD("unknown --likelihood '%s' (gaussian, bernoulli)", o->likelihood);
        c->vae.likelihood = (fm_vae_likelihood)k;
    }
    if ((k = fm_gan_loss_from_name(o->gan_loss)) < 0) BAD("unknown --gan-loss '%s' (nonsaturating, minimax)", o->gan_loss);
    if (cli_given(spec, "gan-loss")) c->gan.loss = (fm_gan_loss)k;
    if (cli_given(spec, "out-act")) {
        if ((k = fm_act_from_name(o->out_act)) != FM_ACT_NONE && k != FM_ACT_TANH)
            BAD("--out-act '%s' must be none or tanh", o->out_act);
        c->gan.out_act = (fm_act)k;
    }
    if (o->d_depth > FM_MLP_MAX_LAYERS || o->d_width < 0 || o->d_width > 65536 ||
        (cli_given(spec, "d-depth") && o->d_depth < 0))
        BAD("--d-width must lie in 1..65536 and --d-depth in 0..%d", FM_MLP_MAX_LAYERS);
    if (o->d_depth == 0 && cli_given(spec, "d-width")) BAD("--d-width has no layer to set with --d-depth 0");
    c->gan.d_nhidden = o->d_depth >= 0 ? o->d_depth : o->depth;
    for (int i = 0; i < c->gan.d_nhidden; i++) c->gan.d_width[i] = o->d_width > 0 ? o->d_width : o->width;
    if (!(o->d_lr >= 0)) BAD("--d-lr %g must be >= 0", o->d_lr);
    return CLI_GO;
}

/* The optimizer, its schedule and the run: md holds the method's defaults
 * for the learning rate and beta1 where they were not given. */
static int set_optim(const train_opts *o, const cli_spec *spec, const fm_train_config *md, fm_train_config *c)
{
    int k;
    if ((k = fm_optim_from_name(o->optim)) < 0) BAD("unknown --optim '%s' (adam, adamw, sgd)", o->optim);
    c->optim = fm_optim_config_default((fm_optim_kind)k);
    c->optim.lr = cli_given(spec, "lr") || k != FM_OPTIM_ADAM ? o->lr : md->optim.lr; /* the method's own unless given */
    c->optim.beta1 = cli_given(spec, "beta1") ? o->beta1 : md->optim.beta1;
    c->optim.beta2 = o->beta2;
    c->optim.eps = o->eps;
    if (!isnan(o->wd)) c->optim.weight_decay = o->wd;
    c->optim.momentum = o->momentum;
    c->optim.nesterov = o->nesterov;
    c->optim.amsgrad = o->amsgrad;
    c->gan.d_optim = c->optim;
    c->gan.d_optim.lr = o->d_lr; /* 0: the generator's */
    if (!(c->optim.lr > 0)) BAD("--lr %g must be > 0", c->optim.lr);
    if ((k = fm_sched_from_name(o->sched)) < 0) BAD("unknown --schedule '%s' (constant, cosine, linear)", o->sched);
    if (o->warmup < 0 || !(o->min_lr >= 0)) BAD("--warmup and --min-lr must be >= 0");
    c->sched.kind = (fm_sched_kind)k;
    c->sched.warmup = o->warmup;
    c->sched.total = o->iters;
    c->sched.min_lr = o->min_lr;
    if (!(o->clip >= 0)) BAD("--clip %g must be >= 0", o->clip);
    if (!(o->ema >= 0 && o->ema < 1)) BAD("--ema %g must lie in [0, 1)", o->ema);
    c->clip = o->clip;
    c->ema_decay = o->ema;
    if (o->batch < 1 || o->batch > (1 << 24)) BAD("--batch %d is invalid", o->batch);
    c->batch = o->batch;
    c->iters = o->iters;
    if (o->seed < 0) BAD("--seed must be >= 0");
    c->seed = (uint64_t)o->seed;
    if (!strcmp(o->standardize, "auto")) c->standardize = -1;
    else if (!strcmp(o->standardize, "on")) c->standardize = 1;
    else if (!strcmp(o->standardize, "off")) c->standardize = 0;
    else BAD("--standardize must be auto, on or off, not '%s'", o->standardize);
    c->dequantize = o->dequantize;
    return CLI_GO;
}

/* A new trainer from the command line: the method's defaults for the data,
 * overridden by what was given. */
/* --weights: a flow's network from another program's state_dict, before
 * any training; the EMA starts from the same weights. */
static int load_weights(const train_opts *o, fm_trainer *tr)
{
    const char *cmd = o->import ? "import" : "train";
    fm_flow *f = fm_model_flow(fm_trainer_model(tr));
    if (!f)
        return cli_usage_error(cmd, "--weights loads a flow's network (fm, cnf, score, ddpm), not a %s model",
                               fm_method_name(fm_trainer_get_config(tr)->method));
    fm_st *st = fm_st_load(o->weights);
    if (!st) return cli_error(cmd, "%s", fm_last_error());
    fm_status s = fm_params_import(fm_flow_params(f), st, o->weights_prefix);
    fm_st_free(st);
    if (s) return cli_error(cmd, "%s: %s (the network is %s; see --width, --depth, --act, --arch)", o->weights,
                            fm_last_error(), fm_arch_name(fm_flow_get_config(f)->arch));
    fm_ema *e = fm_trainer_ema(tr);
    fm_params *P = fm_flow_params(f);
    if (e) memcpy(fm_ema_data(e), fm_params_data(P), fm_params_size(P) * sizeof(float));
    return CLI_GO;
}

static int new_trainer(train_opts *o, const cli_spec *spec, fm_trainer **tr)
{
    int rc, m = fm_method_from_name(o->method);
    if (m < 0) BAD("unknown --method '%s' (fm, ddpm, vae, gan, cnf, nf, score, rfm, dfm)", o->method);
    if ((rc = check_owners(spec, (fm_method)m, o->method)) != CLI_GO) return rc;
    if (!cli_given(spec, "data")) o->data = fm_train_config_for((fm_method)m).flow.data; /* the method's own */
    fm_train_config md = fm_train_config_for_data((fm_method)m, o->data), c = md;
    if (!cli_given(spec, "width")) o->width = md.flow.net.width[0];
    if (!cli_given(spec, "depth")) o->depth = md.flow.net.nhidden;
    if (!cli_given(spec, "act")) o->act = fm_act_name(md.flow.net.act);
    if (!cli_given(spec, "arch")) o->arch = fm_arch_name(md.flow.arch); /* a method's own default (dfm's on images) */
    if (!cli_given(spec, "channels") && md.flow.unet.base > 0) o->channels = md.flow.unet.base;
    if ((rc = cli_path_setup("train", spec, &o->po, &c.flow.path, &c.coupling)) != CLI_GO ||
        (rc = set_network(o, spec, &c)) != CLI_GO ||
        (rc = set_baselines(o, spec, &c)) != CLI_GO || (rc = set_optim(o, spec, &md, &c)) != CLI_GO)
        return rc;
    c.flow.data = o->data;
    c.flow.source = o->source;
    for (int k = 0; k < o->nset; k++) /* the method's own settings, where given */
        if (cli_given(spec, o->set_name[k]) && fm_train_config_set(&c, o->set_name[k], o->set_value[k]) != FM_OK)
            BAD("--%s %s: %s", o->set_name[k], o->set_value[k], fm_last_error());
    *tr = fm_trainer_new(&c);
    if (!*tr) { /* a bad spec or setting is a usage error; a file that cannot be read is not */
        fprintf(stderr, "flowmatch %s: %s\n", o->import ? "import" : "train", fm_last_error());
        return cli_status_code(fm_last_status());
    }
    return o->weights ? load_weights(o, *tr) : CLI_GO;
}

/* A trainer that continues --resume: only the run's outputs and length may be given. */
static int resume_trainer(train_opts *o, const cli_spec *spec, fm_trainer **tr)
{
    static const char *const allowed[] = {"resume", "iters", "out", "loss-csv", "loss-plot", "log-every", "quiet",
                                          "threads", "save-every", "force"};
    for (int i = 0; i < spec->nopts; i++) {
        int ok = !spec->given[i];
        for (size_t k = 0; !ok && k < sizeof allowed / sizeof allowed[0]; k++) ok = !strcmp(spec->opts[i].name, allowed[k]);
        if (!ok) BAD("--%s cannot be changed when resuming: the checkpoint's settings are used", spec->opts[i].name);
    }
    *tr = fm_trainer_resume(o->resume, cli_given(spec, "iters") ? o->iters : 0);
    if (!*tr) {
        fprintf(stderr, "flowmatch train: cannot resume: %s\n", fm_last_error());
        return fm_last_status() == FM_ERR_ARG ? CLI_USAGE : CLI_FAIL; /* a bad file is not a bad command line */
    }
    o->iters = fm_trainer_get_config(*tr)->iters;
    return CLI_GO;
}
#undef BAD

/* The line that says what is trained, on stderr. */
static void report_start(fm_trainer *tr, const train_opts *o)
{
    const fm_train_config *tc = fm_trainer_get_config(tr);
    const fm_flow_config *fc = &tc->flow;
    char what[200], net[160];
    fm_trainer_describe(tr, what, sizeof what);
    if (fc->arch == FM_ARCH_UNET) {
        int n = snprintf(net, sizeof net, "U-Net %d channels x", fc->unet.base);
        for (int i = 0; i < fc->unet.nlevels; i++) n += snprintf(net + n, sizeof net - (size_t)n, "%s%d", i ? "," : " ", fc->unet.mult[i]);
        if (fc->unet.num_classes)
            snprintf(net + n, sizeof net - (size_t)n, ", %d classes, label dropout %g", fc->unet.num_classes,
                     tc->label_dropout);
    } else {
        snprintf(net, sizeof net, "MLP %d x %d %s", fc->net.nhidden, fc->net.nhidden ? fc->net.width[0] : 0,
                 fm_act_name(fc->net.act));
    }
    fprintf(stderr, "training %s; %s, %s lr %g, batch %d, %lld iterations, seed %llu%s (%zu parameters)\n", what, net,
            fm_optim_name(tc->optim.kind), tc->optim.lr, tc->batch, (long long)o->iters, (unsigned long long)tc->seed,
            o->resume ? " (resumed)" : "", fm_model_size(fm_trainer_model(tr)));
}

/* The outputs of a run: staged (and checked writable) before it starts. */
typedef struct {
    fm_trainer *tr;
    const train_opts *o;
    int64_t first;           /* the iteration the run started at */
    char *csv;               /* the derived loss CSV name (NULL when --loss-csv) */
    const char *csv_path, *t_out, *t_csv, *t_svg;
    cli_outputs outs;
} train_out;

static int stage_outputs(fm_trainer *tr, const train_opts *o, train_out *w)
{
    memset(w, 0, sizeof *w);
    w->tr = tr;
    w->o = o;
    w->first = fm_trainer_iter(tr);
    w->csv = o->loss_csv ? NULL : cli_derive(o->out, "_loss.csv");
    w->csv_path = o->loss_csv ? o->loss_csv : w->csv;
    w->t_out = cli_out_stage(&w->outs, o->out);
    w->t_csv = w->csv_path ? cli_out_stage(&w->outs, w->csv_path) : NULL;
    w->t_svg = o->loss_svg ? cli_out_stage(&w->outs, o->loss_svg) : NULL;
    if (!w->t_out || !w->t_csv || (o->loss_svg && !w->t_svg)) return cli_error("train", "out of memory");
    return cli_out_check("train", &w->outs); /* before any training */
}

/* A periodic save: the losses first, then the checkpoint, each replaced
 * atomically; a resumed run keeps the history up to the checkpoint's
 * iteration, so the two never disagree on what was trained. */
static fm_status save_now(void *ctx, const cli_losses *log)
{
    train_out *w = ctx;
    if (fm_dist_rank() > 0) return FM_OK; /* rank 0 keeps the run */
    if (cli_write_losses("train", w->csv_path, NULL, log, w->first, w->csv_path) != CLI_GO) return FM_ERR_IO;
    return fm_trainer_save(w->tr, w->o->out);
}

/* The checkpoint, the loss CSV and the loss plot, all or none; then the summary. */
static int write_outputs(train_out *w, const cli_losses *log, double secs)
{
    int rc = CLI_GO;
    const train_opts *o = w->o;
    int64_t done = log->n;
    const char *csv_path = w->csv_path;
    if (fm_trainer_save(w->tr, w->t_out) != FM_OK) rc = cli_error("train", "%s", fm_last_error());
    if (rc == CLI_GO) rc = cli_write_losses("train", w->t_csv, w->t_svg, log, w->first, o->resume ? csv_path : NULL);
    if (rc == CLI_GO) rc = cli_out_commit("train", &w->outs);
    cli_out_abort(&w->outs);
    if (rc == CLI_GO && !o->quiet) {
        double tail = 0;
        int64_t m = done < 100 ? done : 100;
        for (int64_t i = done - m; i < done; i++) tail += log->loss[i];
        printf("trained %lld iterations in %.2f s (%.0f it/s); mean loss of the last %lld: %.4f\n", (long long)done,
               secs, done / fmax(secs, 1e-9), (long long)m, m ? tail / m : NAN);
        printf("wrote %s, %s%s%s\n", o->out, csv_path, o->loss_svg ? ", " : "", o->loss_svg ? o->loss_svg : "");
    }
    return rc;
}

static const char train_details[] =
    "Defaults reproduce the tutorial: moons (noise 0.05), MLP 3 x 64 ELU with input\n"
    "concat(t, x), OT path with sigma_min 0, Adam lr 1e-2, batch 256, 10000 iterations.\n"
    "--method ddpm trains a noise predictor on (t / T, x_t) with the linear schedule\n"
    "(T 1000, beta 1e-4 .. 0.02); vae an MLP encoder and decoder with the negative ELBO\n"
    "(Gaussian likelihood with a learned variance, or Bernoulli for data in [0, 1]);\n"
    "gan a generator and a discriminator, k discriminator steps per generator step.\n"
    "The same --width, --depth and --act shape every method's networks. On image data\n"
    "(mnist:DIR) the VAE defaults to the tutorial's (784 -> 400 -> latent 20 -> 400 -> 784,\n"
    "ReLU, Bernoulli), the GAN to latent 64, 2 x 256 ELU and a tanh output, flows and\n"
    "DDPM to lr 1e-3 and an MLP of 3 x 512 SiLU.\n"
    "The checkpoint holds everything `flowmatch sample` needs, and the optimizer, EMA\n"
    "and random state for --resume, which continues with the checkpoint's settings\n"
    "(only --iters, the outputs, --threads and the logging options may be given).\n"
    "The checkpoint and loss files are replaced only when the run succeeds.";

static const char import_details[] =
    "Makes a flowmatch checkpoint of a flow trained elsewhere: the model is described\n"
    "by the same options as `flowmatch train` (--method fm, score, cnf or ddpm; --arch,\n"
    "--width, --depth, --act, --time-embed; --path and its parameters; --data, whose\n"
    "dimension and standardisation the model takes: --standardize off for a network\n"
    "trained on raw data), and --weights gives its tensors, a state_dict saved as\n"
    "safetensors (safetensors.torch.save_file(model.state_dict(), ...)). Each of the\n"
    "model's tensors (net.0.weight, ...) must be in the file under its own name, the\n"
    "name without 'net.' (an nn.Sequential's own 0.weight), or with 'model.' or\n"
    "'module.' before it (or --weights-prefix P), with the same shape, and every\n"
    "tensor of the file must be used. The checkpoint then samples, evaluates and\n"
    "gives likelihoods like any other, and `train --resume` fine-tunes it with a fresh\n"
    "optimizer (the training options given here, --lr, --batch, --ema, ..., are\n"
    "the ones it resumes with).";

static int train_main(int argc, char **argv, int import)
{
    train_opts o;
    cli_opt opts[TRAIN_NOPTS];
    unsigned char given[TRAIN_NOPTS] = {0};
    opts_default(&o);
    o.import = import;
    int nopts = train_options(&o, opts);
    const cli_spec spec = {import ? "import" : "train", NULL,
                           import ? "Import a flow trained elsewhere (a PyTorch state_dict as safetensors) as a checkpoint."
                                  : "Train a flow-matching model, or a DDPM, VAE or GAN baseline.",
                           import ? import_details : train_details, opts, nopts, 0, 0, given};
    const char *cmd = spec.name;
    int npos, rc = cli_parse(&spec, argc, argv, NULL, &npos);
    if (rc != CLI_GO) return rc;
    if (import && (!o.weights || o.resume || cli_given(&spec, "iters")))
        return cli_usage_error(cmd, "import needs --weights FILE, and takes neither --resume nor --iters (it trains "
                                    "nothing; fine-tune with train --resume)");
    if (import) o.iters = 0;
    if (o.weights && o.resume) return cli_usage_error(cmd, "--weights starts a new run; --resume continues its own");
    if (o.resume && !cli_given(&spec, "out")) o.out = o.resume; /* a resumed run continues its file */
    else if ((rc = cli_default_output(cmd, &spec, "out", o.out, o.force)) != CLI_GO) return rc;
    if (!cli_has_suffix(o.out, ".safetensors")) return cli_usage_error(cmd, "--out '%s' must end in .safetensors", o.out);
    if (o.threads < 0 || o.threads > 1024) return cli_usage_error(cmd, "--threads %d must lie in 0..1024", o.threads);
    if (o.iters < 0) return cli_usage_error(cmd, "--iters %lld must be >= 0", (long long)o.iters);
    if (o.log_every < 0) return cli_usage_error(cmd, "--log-every must be >= 0");
    fm_set_threads(o.threads);
    fm_trainer *tr = NULL;
    rc = o.resume ? resume_trainer(&o, &spec, &tr) : new_trainer(&o, &spec, &tr);
    if (rc != CLI_GO) {
        fm_trainer_free(tr);
        return rc;
    }
    if (import) {
        rc = fm_trainer_save(tr, o.out) == FM_OK ? CLI_OK : cli_error(cmd, "%s", fm_last_error());
        if (rc == CLI_OK && !o.quiet)
            printf("imported %s (%zu parameters) as a %s model: wrote %s\n", o.weights,
                   fm_model_size(fm_trainer_model(tr)), fm_method_name(fm_trainer_get_config(tr)->method), o.out);
        fm_trainer_free(tr);
        return rc;
    }
    train_out w;
    if ((rc = stage_outputs(tr, &o, &w)) == CLI_GO) {
        if (!o.quiet) report_start(tr, &o);
        cli_losses log;
        double secs = 0;
        cli_saver sv = {o.save_every, 300.0, save_now, &w};
        rc = cli_train_loop("train", tr, o.iters, o.log_every, o.quiet, &log, &secs, o.save_every < 0 ? NULL : &sv);
        if (rc == CLI_GO) {
            rc = write_outputs(&w, &log, secs);
            cli_losses_free(&log);
        }
    }
    cli_out_abort(&w.outs);
    free(w.csv);
    fm_trainer_free(tr);
    return cli_exit_code(rc); /* 128 + the signal after an interrupted, saved run */
}

int cmd_train(int argc, char **argv) { return train_main(argc, argv, 0); }
int cmd_import(int argc, char **argv) { return train_main(argc, argv, 1); }
