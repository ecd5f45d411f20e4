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
    return FM_OK;
}

int cli_train_loop(const char *cmd, fm_trainer *tr, int64_t iters, int64_t log_every, int quiet, cli_losses *log,
                   double *seconds)
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
    train_ctx c = {tr, log};
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

int cmd_train(int argc, char **argv)
{
    fm_train_config c = fm_train_config_default();
    const char *data = "moons", *source = "gaussian", *path = "ot", *act = "elu", *optim = "adam",
               *sched = "constant", *out = "model.safetensors", *loss_csv = NULL, *loss_svg = NULL, *resume = NULL,
               *standardize = "auto", *coupling = "independent", *method = "fm", *likelihood = "gaussian",
               *gan_loss = "nonsaturating", *arch = "mlp", *out_act = "none";
    int channels = 32, class_cond = 0;
    double label_dropout = 0.1;
    int T = 1000, latent = 2, gan_k = 1, d_width = 0, d_depth = -1;
    double beta_start = 1e-4, beta_end = 0.02, kl_weight = 1.0, d_lr = 0;
    int width = 64, depth = 3, time_embed = 0, nesterov = 0, amsgrad = 0, threads = 0, quiet = 0, batch = 256,
        dequantize = 0;
    int64_t iters = 10000, seed = 0, warmup = 0, log_every = 1000;
    double lr = 1e-2, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, wd = NAN, momentum = 0, min_lr = 0, clip = 0, ema = 0;
    fm_path pd = fm_path_default(FM_PATH_OT), pv = fm_path_default(FM_PATH_VE);
    double sigma_min = pd.sigma_min, sigma = pd.sigma, ve_min = pv.ve_sigma_min, ve_max = pv.ve_sigma_max,
           beta_min = pd.beta_min, beta_max = pd.beta_max, exponent = pd.exponent, t_end = 0;
    const cli_opt opts[] = {
        {"method", OPT_STR, &method, "NAME", "fm (flow matching), or a baseline: ddpm, vae, gan"},
        {"data", OPT_STR, &data, "SPEC", "dataset: moons, circles, 8gaussians, ... or csv:FILE"},
        {"source", OPT_STR, &source, "SPEC", "source distribution: gaussian or a dataset"},
        {"path", OPT_STR, &path, "NAME", "ot, icfm, ve, vp, cosine, poly, linear-vp, sb"},
        {"coupling", OPT_STR, &coupling, "NAME", "independent, ot (minibatch OT) or sb (Schrodinger bridge)"},
        {"sigma-min", OPT_DOUBLE, &sigma_min, "X", "ot: final noise level"},
        {"sigma", OPT_DOUBLE, &sigma, "X", "icfm: constant noise; sb: bridge noise (default 0.5)"},
        {"ve-sigma-min", OPT_DOUBLE, &ve_min, "X", "ve: smallest noise"},
        {"ve-sigma-max", OPT_DOUBLE, &ve_max, "X", "ve: largest noise (source std)"},
        {"beta-min", OPT_DOUBLE, &beta_min, "X", "vp: beta at the data end"},
        {"beta-max", OPT_DOUBLE, &beta_max, "X", "vp: beta at the noise end"},
        {"exponent", OPT_DOUBLE, &exponent, "N", "poly: alpha_t = t^N"},
        {"t-end", OPT_DOUBLE, &t_end, "T", "train on t in [0, T] (0: 1, or 1 - 1e-3 for ve/vp/linear-vp)"},
        {"T", OPT_INT, &T, "N", "ddpm: diffusion steps"},
        {"beta-start", OPT_DOUBLE, &beta_start, "X", "ddpm: beta_1 of the linear schedule"},
        {"beta-end", OPT_DOUBLE, &beta_end, "X", "ddpm: beta_T"},
        {"latent", OPT_INT, &latent, "N", "vae, gan: latent dimension (default: 2; on images vae 20, gan 64)"},
        {"kl-weight", OPT_DOUBLE, &kl_weight, "X", "vae: weight beta of the KL term"},
        {"likelihood", OPT_STR, &likelihood, "NAME", "vae: gaussian (real data) or bernoulli (data in [0, 1]; images' default)"},
        {"k", OPT_INT, &gan_k, "N", "gan: discriminator steps per generator step"},
        {"gan-loss", OPT_STR, &gan_loss, "NAME", "gan: nonsaturating (-log D(G(z))) or minimax (log(1 - D(G(z))))"},
        {"d-width", OPT_INT, &d_width, "N", "gan: discriminator width (default: --width)"},
        {"d-depth", OPT_INT, &d_depth, "N", "gan: discriminator hidden layers (default: --depth)"},
        {"d-lr", OPT_DOUBLE, &d_lr, "X", "gan: discriminator learning rate (default: --lr)"},
        {"out-act", OPT_STR, &out_act, "NAME", "gan: the generator's output, none (linear) or tanh (default: tanh on images)"},
        {"arch", OPT_STR, &arch, "NAME", "fm, ddpm network: mlp, or unet (image data: a convolutional U-Net)"},
        {"channels", OPT_INT, &channels, "N", "unet: base channels, a multiple of 8 (levels get 1, 2, 2 times as many)"},
        {"class-cond", OPT_FLAG, &class_cond, NULL, "unet: condition on the data's class labels (sample --label, --guidance)"},
        {"label-dropout", OPT_DOUBLE, &label_dropout, "P", "class-cond: chance a training label becomes 'none' (default 0.1)"},
        {"width", OPT_INT, &width, "N",
         "hidden layer width (vae: encoder and decoder; gan: generator) (default: 64; images 512, vae 400, gan 256)"},
        {"depth", OPT_INT, &depth, "N", "hidden layers (default: 3; on images vae 1, gan 2)"},
        {"act", OPT_STR, &act, "NAME",
         "relu, elu, silu, gelu, gelu_tanh, tanh, sigmoid, selu, softplus (default: elu; images silu, vae relu)"},
        {"time-embed", OPT_INT, &time_embed, "N", "sinusoidal time embedding size (0: raw t)"},
        {"optim", OPT_STR, &optim, "NAME", "adam, adamw or sgd"},
        {"lr", OPT_DOUBLE, &lr, "X", "learning rate (default: 0.01, on images 1e-3; vae 1e-3, gan 2e-4)"},
        {"beta1", OPT_DOUBLE, &beta1, "X", "Adam beta1 (default: 0.9; gan 0.5)"},
        {"beta2", OPT_DOUBLE, &beta2, "X", "Adam beta2"},
        {"eps", OPT_DOUBLE, &eps, "X", "Adam epsilon"},
        {"weight-decay", OPT_DOUBLE, &wd, "X", "weight decay (default: 0, AdamW 0.01)"},
        {"momentum", OPT_DOUBLE, &momentum, "X", "SGD momentum"},
        {"nesterov", OPT_FLAG, &nesterov, NULL, "SGD Nesterov momentum"},
        {"amsgrad", OPT_FLAG, &amsgrad, NULL, "Adam AMSGrad"},
        {"schedule", OPT_STR, &sched, "NAME", "learning rate: constant, cosine or linear"},
        {"warmup", OPT_I64, &warmup, "N", "linear warm-up iterations"},
        {"min-lr", OPT_DOUBLE, &min_lr, "X", "final learning rate of cosine / linear"},
        {"clip", OPT_DOUBLE, &clip, "X", "clip the gradient norm (0: off)"},
        {"ema", OPT_DOUBLE, &ema, "X", "EMA decay of the weights, e.g. 0.999 (0: off)"},
        {"standardize", OPT_STR, &standardize, "auto|on|off", "standardise the data (auto: CSV columns, image pixels to [-1, 1])"},
        {"dequantize", OPT_FLAG, &dequantize, NULL, "image data: spread each pixel byte uniformly over its 1/256 cell"},
        {"batch", OPT_INT, &batch, "N", "batch size"},
        {"iters", OPT_I64, &iters, "N", "iterations (total, when resuming)"},
        {"seed", OPT_I64, &seed, "N", "random seed"},
        {"threads", OPT_INT, &threads, "N", "threads (0: all cores)"},
        {"out", OPT_STR, &out, "FILE", "checkpoint (.safetensors)"},
        {"loss-csv", OPT_STR, &loss_csv, "FILE", "losses per iteration (default: <out>_loss.csv)"},
        {"loss-plot", OPT_STR, &loss_svg, "FILE", "loss curve as SVG"},
        {"log-every", OPT_I64, &log_every, "N", "progress line period when not on a terminal"},
        {"resume", OPT_STR, &resume, "FILE", "continue a checkpoint (its settings win; --iters sets the total)"},
        {"quiet", OPT_FLAG, &quiet, NULL, "no progress output"},
    };
    unsigned char given[sizeof opts / sizeof opts[0]] = {0};
    const cli_spec spec = {"train", NULL, "Train a flow-matching model, or a DDPM, VAE or GAN baseline.",
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
                           "The checkpoint and loss files are replaced only when the run succeeds.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, given};
    int npos;
    int rc = cli_parse(&spec, argc, argv, NULL, &npos);
    if (rc >= 0) return rc;
#define BAD(...) return cli_usage_error("train", __VA_ARGS__)
    if (!cli_has_suffix(out, ".safetensors")) BAD("--out '%s' must end in .safetensors", out);
    if (threads < 0 || threads > 1024) BAD("--threads %d must lie in 0..1024", threads);
    if (iters < 0) BAD("--iters %lld must be >= 0", (long long)iters);
    if (log_every < 0) BAD("--log-every must be >= 0");
    fm_set_threads(threads);
    fm_trainer *tr;
    if (resume) {
        static const char *const allowed[] = {"resume", "iters", "out", "loss-csv", "loss-plot", "log-every", "quiet",
                                              "threads"};
        for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
            int ok = !given[i];
            for (size_t k = 0; !ok && k < sizeof allowed / sizeof allowed[0]; k++) ok = !strcmp(opts[i].name, allowed[k]);
            if (!ok) BAD("--%s cannot be changed when resuming: the checkpoint's settings are used", opts[i].name);
        }
        tr = fm_trainer_resume(resume, cli_given(&spec, "iters") ? iters : 0);
        if (!tr) {
            fprintf(stderr, "flowmatch train: cannot resume: %s\n", fm_last_error());
            return fm_last_status() == FM_ERR_ARG ? CLI_USAGE : CLI_FAIL; /* a bad file is not a bad command line */
        }
        iters = fm_trainer_get_config(tr)->iters;
    } else {
        int k, cp, m;
        if ((m = fm_method_from_name(method)) < 0) BAD("unknown --method '%s' (fm, ddpm, vae, gan)", method);
        c.method = (fm_method)m;
        /* options that belong to some methods only */
        static const struct {
            const char *name;
            unsigned methods; /* bit per fm_method */
        } owner[] = {
            {"source", 1}, {"path", 1}, {"coupling", 1}, {"sigma-min", 1}, {"sigma", 1}, {"ve-sigma-min", 1},
            {"ve-sigma-max", 1}, {"beta-min", 1}, {"beta-max", 1}, {"exponent", 1}, {"t-end", 1}, {"time-embed", 3},
            {"T", 2}, {"beta-start", 2}, {"beta-end", 2}, {"latent", 12}, {"kl-weight", 4}, {"likelihood", 4},
            {"k", 8}, {"gan-loss", 8}, {"d-width", 8}, {"d-depth", 8}, {"d-lr", 8}, {"out-act", 8},
        };
        for (size_t i = 0; i < sizeof owner / sizeof owner[0]; i++)
            if (cli_given(&spec, owner[i].name) && !(owner[i].methods & (1u << m)))
                BAD("--%s does not apply to --method %s", owner[i].name, method);
        /* the method's defaults for this data (image data: the image baselines) where not given */
        fm_train_config md = fm_train_config_for_data(c.method, data);
        if (!cli_given(&spec, "width")) width = md.flow.net.width[0];
        if (!cli_given(&spec, "depth")) depth = md.flow.net.nhidden;
        if (!cli_given(&spec, "act")) act = fm_act_name(md.flow.net.act);
        if (!cli_given(&spec, "latent")) latent = m == FM_METHOD_GAN ? md.gan.latent : md.vae.latent;
        if (!cli_given(&spec, "likelihood")) likelihood = fm_vae_likelihood_name(md.vae.likelihood);
        if (!cli_given(&spec, "out-act")) out_act = fm_act_name(md.gan.out_act);
        if ((cp = fm_coupling_from_name(coupling)) < 0) BAD("unknown --coupling '%s' (independent, ot, sb)", coupling);
        c.coupling = (fm_coupling)cp;
        int path_given = cli_given(&spec, "path"), sigma_given = cli_given(&spec, "sigma");
        if (cp == FM_COUPLING_SB && !path_given) path = "sb"; /* the bridge comes with its plan */
        if ((k = fm_path_from_name(path)) < 0)
            BAD("unknown --path '%s' (ot, icfm, ve, vp, cosine, poly, linear-vp, sb)", path);
        c.flow.path = fm_path_default((fm_path_kind)k);
        fm_path *p = &c.flow.path;
        p->sigma_min = sigma_min;
        if (sigma_given || k != FM_PATH_SB) p->sigma = sigma;
        p->ve_sigma_min = ve_min;
        p->ve_sigma_max = ve_max;
        p->beta_min = beta_min;
        p->beta_max = beta_max;
        p->exponent = exponent;
        if (t_end != 0) p->t_end = t_end;
        if (fm_path_check(p) != FM_OK) BAD("%s", fm_last_error());
        int a = fm_arch_from_name(arch);
        if (a < 0) BAD("unknown --arch '%s' (mlp, unet)", arch);
        c.flow.arch = (fm_arch)a;
        if (a == FM_ARCH_UNET) { /* the library checks the method and the data */
            static const char *const mlp_only[] = {"width", "depth", "act", "time-embed"};
            for (size_t i = 0; i < sizeof mlp_only / sizeof mlp_only[0]; i++)
                if (cli_given(&spec, mlp_only[i])) BAD("--%s shapes the MLP; it does not apply to --arch unet", mlp_only[i]);
            int g = c.flow.unet.groups;
            if (channels < g || channels > 1024 || channels % g)
                BAD("--channels %d must be a multiple of %d (GroupNorm's groups) in %d..1024", channels, g, g);
            c.flow.unet.base = channels;
        } else if (cli_given(&spec, "channels") || class_cond) {
            BAD("--%s shapes the U-Net; it needs --arch unet", class_cond ? "class-cond" : "channels");
        }
        if (cli_given(&spec, "label-dropout") && !class_cond) BAD("--label-dropout needs --class-cond");
        if (!(label_dropout >= 0 && label_dropout < 1)) BAD("--label-dropout %g must lie in [0, 1)", label_dropout);
        c.flow.unet.num_classes = class_cond ? -1 : 0; /* -1: as many as the data's labels */
        c.label_dropout = label_dropout;
        if (width < 1 || width > 65536) BAD("--width %d must be between 1 and 65536", width);
        if (depth < 0 || depth > FM_MLP_MAX_LAYERS) BAD("--depth %d must be between 0 and %d", depth, FM_MLP_MAX_LAYERS);
        if ((k = fm_act_from_name(act)) < 0) BAD("unknown --act '%s'", act);
        c.flow.net.act = (fm_act)k;
        c.flow.net.nhidden = depth;
        for (int i = 0; i < depth; i++) c.flow.net.width[i] = width;
        if (time_embed < 0 || time_embed % 2 || time_embed > 4096) BAD("--time-embed %d must be even and in 0..4096", time_embed);
        c.flow.net.time_embed = time_embed;
        c.flow.ddpm.T = T;
        c.flow.ddpm.beta_start = beta_start;
        c.flow.ddpm.beta_end = beta_end;
        if (m == FM_METHOD_DDPM && fm_ddpm_check(&c.flow.ddpm) != FM_OK) BAD("%s", fm_last_error());
        if (m >= FM_METHOD_VAE && depth < 1) BAD("--depth %d: the %s needs at least one hidden layer", depth, method);
        if (latent < 1 || latent > 65536) BAD("--latent %d must lie in 1..65536", latent);
        c.vae.latent = c.gan.latent = latent;
        if (!(kl_weight >= 0)) BAD("--kl-weight %g must be >= 0", kl_weight);
        c.vae.beta = kl_weight;
        if ((k = fm_vae_likelihood_from_name(likelihood)) < 0) BAD("unknown --likelihood '%s' (gaussian, bernoulli)", likelihood);
        c.vae.likelihood = (fm_vae_likelihood)k;
        if (gan_k < 1 || gan_k > 100) BAD("--k %d must lie in 1..100", gan_k);
        c.gan.k = gan_k;
        if ((k = fm_gan_loss_from_name(gan_loss)) < 0) BAD("unknown --gan-loss '%s' (nonsaturating, minimax)", gan_loss);
        c.gan.loss = (fm_gan_loss)k;
        if ((k = fm_act_from_name(out_act)) != FM_ACT_NONE && k != FM_ACT_TANH)
            BAD("--out-act '%s' must be none or tanh", out_act);
        c.gan.out_act = (fm_act)k;
        if (d_depth > FM_MLP_MAX_LAYERS || d_width < 0 || d_width > 65536 || (cli_given(&spec, "d-depth") && d_depth < 0))
            BAD("--d-width must lie in 1..65536 and --d-depth in 0..%d", FM_MLP_MAX_LAYERS);
        if (d_depth == 0 && cli_given(&spec, "d-width")) BAD("--d-width has no layer to set with --d-depth 0");
        c.gan.d_nhidden = d_depth >= 0 ? d_depth : depth;
        for (int i = 0; i < c.gan.d_nhidden; i++) c.gan.d_width[i] = d_width > 0 ? d_width : width;
        if (!(d_lr >= 0)) BAD("--d-lr %g must be >= 0", d_lr);
        if ((k = fm_optim_from_name(optim)) < 0) BAD("unknown --optim '%s' (adam, adamw, sgd)", optim);
        c.optim = fm_optim_config_default((fm_optim_kind)k);
        c.optim.lr = cli_given(&spec, "lr") || k != FM_OPTIM_ADAM ? lr : md.optim.lr; /* the method's own unless given */
        c.optim.beta1 = cli_given(&spec, "beta1") ? beta1 : md.optim.beta1;
        lr = c.optim.lr;
        c.optim.beta2 = beta2;
        c.optim.eps = eps;
        if (!isnan(wd)) c.optim.weight_decay = wd;
        c.optim.momentum = momentum;
        c.optim.nesterov = nesterov;
        c.optim.amsgrad = amsgrad;
        c.gan.d_optim = c.optim;
        c.gan.d_optim.lr = d_lr; /* 0: the generator's */
        if (!(lr > 0)) BAD("--lr %g must be > 0", lr);
        if ((k = fm_sched_from_name(sched)) < 0) BAD("unknown --schedule '%s' (constant, cosine, linear)", sched);
        if (warmup < 0 || !(min_lr >= 0)) BAD("--warmup and --min-lr must be >= 0");
        c.sched.kind = (fm_sched_kind)k;
        c.sched.warmup = warmup;
        c.sched.total = iters;
        c.sched.min_lr = min_lr;
        if (!(clip >= 0)) BAD("--clip %g must be >= 0", clip);
        if (!(ema >= 0 && ema < 1)) BAD("--ema %g must lie in [0, 1)", ema);
        c.clip = clip;
        c.ema_decay = ema;
        if (batch < 1 || batch > (1 << 24)) BAD("--batch %d is invalid", batch);
        c.batch = batch;
        c.iters = iters;
        if (seed < 0) BAD("--seed must be >= 0");
        c.seed = (uint64_t)seed;
        if (!strcmp(standardize, "auto")) c.standardize = -1;
        else if (!strcmp(standardize, "on")) c.standardize = 1;
        else if (!strcmp(standardize, "off")) c.standardize = 0;
        else BAD("--standardize must be auto, on or off, not '%s'", standardize);
        c.flow.data = data;
        c.flow.source = source;
        c.dequantize = dequantize;
        tr = fm_trainer_new(&c);
        if (!tr) {
            /* a bad spec or setting is a usage error; a file that cannot be read is not */
            fprintf(stderr, "flowmatch train: %s\n", fm_last_error());
            return cli_status_code(fm_last_status());
        }
    }
#undef BAD
    const fm_train_config *tc = fm_trainer_get_config(tr);
    const fm_flow_config *fc = &tc->flow;
    if (!quiet) {
        char what[160];
        if (tc->method == FM_METHOD_FM)
            snprintf(what, sizeof what, "flow matching %s -> %s, path %s", fc->source, fc->data, fm_path_name(fc->path.kind));
        else if (tc->method == FM_METHOD_DDPM)
            snprintf(what, sizeof what, "DDPM on %s, T %d, beta %g .. %g", fc->data, fc->ddpm.T, fc->ddpm.beta_start,
                     fc->ddpm.beta_end);
        else if (tc->method == FM_METHOD_VAE)
            snprintf(what, sizeof what, "VAE on %s, latent %d, %s likelihood, KL weight %g", fc->data, tc->vae.latent,
                     fm_vae_likelihood_name(tc->vae.likelihood), tc->vae.beta);
        else
            snprintf(what, sizeof what, "GAN on %s, latent %d, %s loss, k %d, discriminator %d x %d", fc->data,
                     tc->gan.latent, fm_gan_loss_name(tc->gan.loss), tc->gan.k,
                     fm_gan_get_config(fm_model_gan(fm_trainer_model(tr)))->d_nhidden,
                     fm_gan_get_config(fm_model_gan(fm_trainer_model(tr)))->d_width[0]);
        char net[160];
        if (fc->arch == FM_ARCH_UNET) {
            int o = snprintf(net, sizeof net, "U-Net %d channels x", fc->unet.base);
            for (int i = 0; i < fc->unet.nlevels; i++)
                o += snprintf(net + o, sizeof net - (size_t)o, "%s%d", i ? "," : " ", fc->unet.mult[i]);
            if (fc->unet.num_classes)
                snprintf(net + o, sizeof net - (size_t)o, ", %d classes, label dropout %g", fc->unet.num_classes,
                         tc->label_dropout);
        } else {
            snprintf(net, sizeof net, "MLP %d x %d %s", fc->net.nhidden, fc->net.nhidden ? fc->net.width[0] : 0,
                     fm_act_name(fc->net.act));
        }
        fprintf(stderr, "training %s; %s, %s lr %g, batch %d, %lld iterations, seed %llu%s (%zu parameters)\n", what, net,
                fm_optim_name(tc->optim.kind), tc->optim.lr, tc->batch, (long long)iters, (unsigned long long)tc->seed,
                resume ? " (resumed)" : "", fm_model_size(fm_trainer_model(tr)));
    }
    int64_t first = fm_trainer_iter(tr);
    cli_losses log;
    double secs = 0;
    rc = cli_train_loop("train", tr, iters, log_every, quiet, &log, &secs);
    int64_t done = log.n;
    if (rc >= 0) {
        fm_trainer_free(tr);
        return rc;
    }
    char *csv = loss_csv ? NULL : cli_derive(out, "_loss.csv");
    const char *csv_path = loss_csv ? loss_csv : csv;
    cli_outputs outs = {0};
    const char *t_out = cli_out_stage(&outs, out), *t_csv = csv_path ? cli_out_stage(&outs, csv_path) : NULL;
    const char *t_svg = loss_svg ? cli_out_stage(&outs, loss_svg) : NULL;
    if (!t_out || !t_csv || (loss_svg && !t_svg)) rc = cli_error("train", "out of memory");
    if (rc < 0 && fm_trainer_save(tr, t_out) != FM_OK) rc = cli_error("train", "%s", fm_last_error());
    if (rc < 0) rc = cli_write_losses("train", t_csv, t_svg, &log, first, resume ? csv_path : NULL);
    if (rc < 0) rc = cli_out_commit("train", &outs);
    cli_out_abort(&outs);
    if (rc < 0 && !quiet) {
        double tail = 0;
        int64_t m = done < 100 ? done : 100;
        for (int64_t i = done - m; i < done; i++) tail += log.loss[i];
        printf("trained %lld iterations in %.2f s (%.0f it/s); mean loss of the last %lld: %.4f\n", (long long)done,
               secs, done / fmax(secs, 1e-9), (long long)m, m ? tail / m : NAN);
        printf("wrote %s, %s%s%s\n", out, csv_path, loss_svg ? ", " : "", loss_svg ? loss_svg : "");
    }
    free(csv);
    cli_losses_free(&log);
    fm_trainer_free(tr);
    return rc < 0 ? CLI_OK : rc;
}
