/* compare.c - `flowmatch compare`: flow matching against the models it grew
 * out of, on the same data, with matched parameter counts and the same number
 * of training iterations, judged by the same metrics.
 *
 * Each method is trained in turn (flow matching on the ot, vp and ve paths,
 * score matching on the VP SDE, DDPM, VAE, GAN), then sampled at several
 * numbers of network evaluations: flows with Euler steps (and the tutorial's
 * midpoint sampler), the score model also by its reverse SDE (em) and
 * predictor-corrector (pc), DDPM with DDIM and its ancestral sampler. Every row draws the same number of points with
 * the same seed and is scored against the same fresh data: exact W2 and
 * energy distance. The VAE's decoder and the GAN's generator, the networks
 * that sample, get the width that makes their parameter count closest to the
 * flow's; the table shows both that count and every trained parameter.
 */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { M_FM_OT, M_FM_VP, M_FM_VE, M_SCORE, M_DDPM, M_VAE, M_GAN, M_COUNT };
static const char *const mnames[M_COUNT] = {"fm-ot", "fm-vp", "fm-ve", "score-vp", "ddpm", "vae", "gan"};

/* Parameters of an MLP in -> width x depth -> out. */
static long mlp_size(int in, int width, int depth, int out)
{
    long n = 0;
    for (int l = 0; l <= depth; l++) {
        int a = l ? width : in, b = l < depth ? width : out;
        n += (long)a * b + b;
    }
    return n;
}

/* Parameters of the network that draws samples. */
static long sampling_size(int m, int d, int width, int depth, int latent)
{
    if (m == M_VAE) return mlp_size(latent, width, depth, d) + d; /* decoder and its log-variance */
    if (m == M_GAN) return mlp_size(latent, width, depth, d);      /* generator */
    return mlp_size(d + 1, width, depth, d);
}

/* The width whose parameter count comes closest to target. */
static int matched_width(int m, int d, int depth, int latent, long target)
{
    int best = 1;
    for (int w = 1; w <= 4096; w++)
        if (labs(sampling_size(m, d, w, depth, latent) - target) <
            labs(sampling_size(m, d, best, depth, latent) - target))
            best = w;
    return best;
}

typedef struct {
    const char *method, *sampler;
    int nfe;
    long params, sampling_params;
    double w2, energy, train_s, sample_ms;
} row;

/* Sample n points from model m with the given sampler and NFE, time them and
 * score them against ref. */
static int measure(fm_model *m, const char *mname, long sampling_params, const char *sampler, int nfe, int n,
                   uint64_t seed, const float *ref, double train_s, float *keep, row *out)
{
    fm_method meth = fm_model_method(m);
    int d = fm_model_dim(m), steps = nfe;
    fm_solver_config sc = fm_solver_config_default(FM_SOLVER_EULER);
    if (!strcmp(sampler, "midpoint")) sc.kind = FM_SOLVER_MIDPOINT, steps = nfe / 2;
    else if (!strcmp(sampler, "em")) sc.sampler = sampler; /* a flow's stochastic samplers */
    else if (!strcmp(sampler, "pc")) sc.sampler = sampler, steps = nfe / 2;
    else if (fm_model_sampling(m) == FM_SAMPLING_OWN) sc.sampler = sampler; /* DDPM's ddim or ancestral */
    double *grid = NULL;
    int ngrid = 0;
    if (fm_model_flow(m)) { /* flows, the score model and DDPM */
        grid = malloc((size_t)(steps + 1) * sizeof(double));
        if (!grid) return cli_error("compare", "out of memory");
        double t_end = meth != FM_METHOD_DDPM ? fm_flow_get_config(fm_model_flow(m))->path.t_end : 1.0;
        fm_time_grid_uniform(grid, steps, 0.0, t_end);
        ngrid = steps + 1;
    }
    float *x = malloc((size_t)2 * n * d * sizeof(float)); /* the scored samples, then the timed runs' */
    if (!x) {
        free(grid);
        return cli_error("compare", "out of memory");
    }
    /* the first run is scored (and warms up); the time is the best of three more */
    fm_rng r;
    fm_solve_stats st;
    double secs = INFINITY;
    fm_status s = FM_OK;
    for (int rep = 0; rep < 4 && !s; rep++) {
        fm_rng_seed(&r, seed, FM_STREAM_NOISE);
        double t0 = cli_now();
        s = fm_model_sample(m, n, &r, &sc, grid, ngrid, rep ? x + (size_t)n * d : x, NULL, NULL, &st);
        if (rep) secs = fmin(secs, cli_now() - t0);
    }
    free(grid);
    double w2 = NAN, e = NAN;
    if (!s) s = fm_w2_exact(x, ref, n, d, &w2, NULL);
    if (!s) s = fm_energy_distance(x, n, ref, n, d, &e);
    if (s) {
        free(x);
        return cli_error("compare", "%s with %s at NFE %d: %s", mname, sampler, nfe, fm_last_error());
    }
    if (keep) memcpy(keep, x, (size_t)n * d * sizeof(float));
    free(x);
    *out = (row){mname, sampler, (int)st.nfe, (long)fm_model_size(m), sampling_params, w2, e, train_s,
                 1000.0 * secs * 1000.0 / n};
    return CLI_GO;
}

static void print_table(FILE *f, const row *rows, int nrows, const char *data, long iters, int batch)
{
    fprintf(f, "| method | sampler | NFE | W2 | energy distance | sampling parameters | all parameters | training (s) "
               "| sampling (ms / 1000 points) |\n");
    fprintf(f, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < nrows; i++) {
        const row *r = &rows[i];
        if (!strcmp(r->method, "data")) {
            fprintf(f, "| data vs data | (fresh draw) | | %.4f | %.5f | | | | |\n", r->w2, r->energy);
            continue;
        }
        fprintf(f, "| %s | %s | %d | %.4f | %.5f | %ld | %ld | %.2f | %.3f |\n", r->method, r->sampler, r->nfe, r->w2,
                r->energy, r->sampling_params, r->params, r->train_s, r->sample_ms);
    }
    fprintf(f, "\n%s, %ld training iterations of %d for every method. Sampling parameters: the network that draws the "
               "samples (the VAE's decoder, the GAN's generator); all parameters include the VAE's encoder and the "
               "GAN's discriminator.\n",
            data, iters, batch);
}

/* The command line. */
typedef struct {
    const char *data, *dir, *methods, *nfe_list, *act;
    int width, depth, batch, n, threads, quiet, force, json;
    int64_t iters, seed;
    double lr;
    int want[M_COUNT]; /* from --methods */
    int nfe[32], nnfe; /* from --nfe */
    fm_act act_kind;
} compare_opts;

/* The run: the reference draws, the table's rows, the figure's panels and the
 * trained models. */
typedef struct {
    int d;
    float *ref, *other; /* two independent draws of the data, n each */
    row *rows;
    int nrows;
    float *panels; /* (M_COUNT + 1, n, d): the data, then each method's samples */
    const char *titles[M_COUNT + 1];
    char tbuf[M_COUNT + 1][64];
    int npanels;
    fm_model *models[M_COUNT];
    cli_outputs outs;
} compare_run;

static void run_free(compare_run *r)
{
    cli_out_abort(&r->outs);
    for (int m = 0; m < M_COUNT; m++) fm_model_free(r->models[m]);
    free(r->rows);
    free(r->panels);
    free(r->ref);
    free(r->other);
}

static int check_options(compare_opts *o)
{
#define BAD(...) return cli_usage_error("compare", __VA_ARGS__)
    int nwant = 0;
    for (const char *p = o->methods; *p;) {
        size_t k = strcspn(p, ",");
        int found = -1;
        for (int m = 0; m < M_COUNT; m++)
            if (strlen(mnames[m]) == k && !strncmp(p, mnames[m], k)) found = m;
        if (found < 0) BAD("unknown method '%.*s' in --methods (fm-ot, fm-vp, fm-ve, score-vp, ddpm, vae, gan)", (int)k, p);
        nwant += !o->want[found];
        o->want[found] = 1;
        p += k + (p[k] == ',');
    }
    if (!nwant) BAD("--methods is empty");
    o->nnfe = cli_parse_ints(o->nfe_list, o->nfe, 32);
    if (o->nnfe < 1) BAD("--nfe '%s' is not a list of up to 32 counts in 1..100000", o->nfe_list);
    if (o->iters < 1 || o->batch < 1 || o->batch > (1 << 20) || o->n < 2 || o->n > 20000 || o->seed < 0 ||
        o->threads < 0 || o->threads > 1024)
        BAD("--iters and --batch must be >= 1, --n in 2..20000, --seed >= 0, --threads in 0..1024");
    if (o->width < 1 || o->width > 4096 || o->depth < 1 || o->depth > FM_MLP_MAX_LAYERS)
        BAD("--width must lie in 1..4096 and --depth in 1..%d", FM_MLP_MAX_LAYERS);
    int a = fm_act_from_name(o->act);
    if (a < 0) BAD("unknown --act '%s'", o->act);
    o->act_kind = (fm_act)a;
    if (!(o->lr >= 0)) BAD("--lr %g must be >= 0", o->lr);
#undef BAD
    return CLI_GO;
}

/* What every row is scored against, and a second draw for the data's own row. */
static int draw_data(const compare_opts *o, compare_run *r)
{
    fm_dataset *ds = fm_dataset_open(o->data);
    if (!ds) {
        fprintf(stderr, "flowmatch compare: %s\n", fm_last_error());
        return cli_status_code(fm_last_status());
    }
    int n = o->n, d = r->d = fm_dataset_dim(ds);
    r->ref = malloc((size_t)n * d * sizeof(float));
    r->other = malloc((size_t)n * d * sizeof(float));
    fm_rng rd;
    fm_rng_seed(&rd, (uint64_t)o->seed + 1, FM_STREAM_DATA);
    fm_status s = r->ref && r->other ? fm_dataset_sample(ds, &rd, r->ref, n) : FM_ERR_NOMEM;
    if (!s) s = fm_dataset_sample(ds, &rd, r->other, n);
    fm_dataset_free(ds);
    if (s)
        return cli_error("compare", "drawing %s: %s", o->data, s == FM_ERR_NOMEM ? "out of memory" : fm_last_error());
    return CLI_GO;
}

/* Room for the rows and panels, and the first of each: the floor, two
 * independent draws of the data. */
static int data_row(const compare_opts *o, compare_run *r)
{
    int n = o->n, d = r->d;
    r->rows = calloc((size_t)(1 + M_COUNT * (2 * o->nnfe + 3)), sizeof(row));
    r->panels = malloc((size_t)(M_COUNT + 1) * n * d * sizeof(float));
    if (!r->rows || !r->panels) return cli_error("compare", "out of memory");
    double w2 = NAN, e = NAN;
    if (fm_w2_exact(r->other, r->ref, n, d, &w2, NULL) || fm_energy_distance(r->other, n, r->ref, n, d, &e))
        return cli_error("compare", "%s", fm_last_error());
    r->rows[r->nrows++] = (row){"data", "", 0, 0, 0, w2, e, 0, 0};
    memcpy(r->panels, r->ref, (size_t)n * d * sizeof(float));
    r->titles[r->npanels++] = "data";
    return CLI_GO;
}

/* Method m's training run: its own defaults with the shared options; the VAE's
 * and GAN's widths matched to target parameters, *w that width and *sp their
 * sampling network's size. */
static fm_train_config method_config(const compare_opts *o, int m, int d, long target, int *w, long *sp)
{
    fm_method meth = m == M_DDPM ? FM_METHOD_DDPM : m == M_VAE ? FM_METHOD_VAE : m == M_GAN ? FM_METHOD_GAN
                     : m == M_SCORE ? (fm_method)fm_method_from_name("score") : FM_METHOD_FM;
    fm_train_config c = fm_train_config_for(meth);
    c.flow.data = o->data;
    c.iters = o->iters;
    c.batch = o->batch;
    c.seed = (uint64_t)o->seed;
    c.sched.total = o->iters;
    *w = o->width;
    if (m == M_VAE) *w = matched_width(M_VAE, d, o->depth, c.vae.latent, target);
    if (m == M_GAN) *w = matched_width(M_GAN, d, o->depth, c.gan.latent, target);
    *sp = sampling_size(m, d, *w, o->depth, m == M_VAE ? c.vae.latent : c.gan.latent);
    if (m == M_FM_VP) c.flow.path = fm_path_default(FM_PATH_VP);
    if (m == M_FM_VE) c.flow.path = fm_path_default(FM_PATH_VE);
    c.flow.net.nhidden = o->depth;
    for (int i = 0; i < o->depth; i++) c.flow.net.width[i] = *w;
    c.flow.net.act = o->act_kind;
    if (o->lr > 0) c.optim.lr = o->lr;
    c.gan.d_optim = c.optim;
    return c;
}

/* Train method m, write its checkpoint and load it back into r->models[m]:
 * what is measured is what the file holds. */
static int train_method(const compare_opts *o, compare_run *r, int m, long target, long *sp, double *train_s)
{
    int w;
    fm_train_config c = method_config(o, m, r->d, target, &w, sp);
    fm_trainer *tr = fm_trainer_new(&c);
    if (!tr) return cli_error("compare", "%s: %s", mnames[m], fm_last_error());
    if (!o->quiet)
        fprintf(stderr, "training %s: width %d x %d, %zu parameters, %lld iterations\n", mnames[m], w, o->depth,
                fm_model_size(fm_trainer_model(tr)), (long long)o->iters);
    cli_losses log;
    char who[64];
    snprintf(who, sizeof who, "compare (%s)", mnames[m]);
    int rc = cli_train_loop(who, tr, o->iters, o->iters / 4 > 0 ? o->iters / 4 : 1, o->quiet, &log, train_s, NULL);
    if (rc == CLI_GO) {
        cli_losses_free(&log);
        char name[64];
        snprintf(name, sizeof name, "%s/%s.safetensors", o->dir, mnames[m]);
        const char *tp = cli_out_stage(&r->outs, name);
        if (!tp || fm_trainer_save(tr, tp) != FM_OK)
            rc = cli_error("compare", "%s", tp ? fm_last_error() : "out of memory");
        else
            rc = cli_load_model("compare", tp, 0, &r->models[m]);
    }
    fm_trainer_free(tr);
    return rc;
}

/* The rows of method m's samplers; its last row's samples become its panel. */
static int measure_method(const compare_opts *o, compare_run *r, int m, long sp, double train_s)
{
    fm_model *M = r->models[m];
    const char *mn = mnames[m];
    float *keep = r->panels + (size_t)r->npanels * o->n * r->d;
    int rc = CLI_GO, n = o->n;
    uint64_t sd = (uint64_t)o->seed;
    if (m == M_VAE || m == M_GAN) {
        rc = measure(M, mn, sp, "one pass", 1, n, sd, r->ref, train_s, keep, &r->rows[r->nrows++]);
    } else if (m == M_DDPM) {
        int T = fm_flow_get_config(fm_model_flow(M))->ddpm.T;
        for (int i = 0; i < o->nnfe && rc == CLI_GO; i++)
            if (o->nfe[i] <= T)
                rc = measure(M, mn, sp, "ddim", o->nfe[i], n, sd, r->ref, train_s, NULL, &r->rows[r->nrows++]);
        if (rc == CLI_GO && T >= 100)
            rc = measure(M, mn, sp, "ancestral", 100, n, sd, r->ref, train_s, NULL, &r->rows[r->nrows++]);
        if (rc == CLI_GO) rc = measure(M, mn, sp, "ancestral", T, n, sd, r->ref, train_s, keep, &r->rows[r->nrows++]);
    } else {
        for (int i = 0; i < o->nnfe && rc == CLI_GO; i++)
            rc = measure(M, mn, sp, "euler", o->nfe[i], n, sd, r->ref, train_s, NULL, &r->rows[r->nrows++]);
        if (rc == CLI_GO && m == M_SCORE) { /* the reverse SDE and predictor-corrector at 100 evaluations */
            rc = measure(M, mn, sp, "em", 100, n, sd, r->ref, train_s, NULL, &r->rows[r->nrows++]);
            if (rc == CLI_GO) rc = measure(M, mn, sp, "pc", 100, n, sd, r->ref, train_s, NULL, &r->rows[r->nrows++]);
        }
        if (rc == CLI_GO) rc = measure(M, mn, sp, "midpoint", 16, n, sd, r->ref, train_s, keep, &r->rows[r->nrows++]);
    }
    if (rc != CLI_GO) return rc;
    snprintf(r->tbuf[r->npanels], sizeof r->tbuf[r->npanels], "%s (W2 %.3f)", mn, r->rows[r->nrows - 1].w2);
    r->titles[r->npanels] = r->tbuf[r->npanels];
    r->npanels++;
    return CLI_GO;
}

/* --json: the table's rows and the run's settings as one object. */
static void print_json(const compare_opts *o, const compare_run *r)
{
    cli_json j = {0};
    cli_json_open(&j, NULL, '{');
    cli_json_str(&j, "data", o->data);
    cli_json_int(&j, "iters", (long long)o->iters);
    cli_json_int(&j, "batch", o->batch);
    cli_json_int(&j, "n", o->n);
    cli_json_str(&j, "out_dir", o->dir);
    cli_json_open(&j, "rows", '[');
    for (int i = 0; i < r->nrows; i++) {
        const row *w = &r->rows[i];
        cli_json_open(&j, NULL, '{');
        cli_json_str(&j, "method", w->method);
        cli_json_str(&j, "sampler", w->sampler);
        cli_json_int(&j, "nfe", w->nfe);
        cli_json_num(&j, "w2", w->w2);
        cli_json_num(&j, "energy_distance", w->energy);
        cli_json_int(&j, "sampling_params", w->sampling_params);
        cli_json_int(&j, "params", w->params);
        cli_json_num(&j, "train_seconds", w->train_s);
        cli_json_num(&j, "sample_ms_per_1000", w->sample_ms);
        cli_json_close(&j, '}');
    }
    cli_json_close(&j, ']');
    cli_json_close(&j, '}');
}

/* DIR/compare.md, .csv and .svg, then every output renamed into place. */
static int write_results(const compare_opts *o, compare_run *r)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/compare.md", o->dir);
    const char *tmd = cli_out_stage(&r->outs, path);
    snprintf(path, sizeof path, "%s/compare.csv", o->dir);
    const char *tcsv = cli_out_stage(&r->outs, path);
    snprintf(path, sizeof path, "%s/compare.svg", o->dir);
    const char *tsvg = cli_out_stage(&r->outs, path);
    FILE *fmd = tmd ? fopen(tmd, "w") : NULL, *fcsv = tcsv ? fopen(tcsv, "w") : NULL;
    if (!fmd || !fcsv || !tsvg) {
        if (fmd) fclose(fmd);
        if (fcsv) fclose(fcsv);
        return cli_error("compare", "cannot write the table in %s: %s", o->dir, strerror(errno));
    }
    print_table(fmd, r->rows, r->nrows, o->data, (long)o->iters, o->batch);
    fprintf(fcsv, "method,sampler,nfe,w2,energy,sampling_params,params,train_s,sample_ms_per_1000\n");
    for (int i = 0; i < r->nrows; i++) {
        const row *w = &r->rows[i];
        fprintf(fcsv, "%s,%s,%d,%.6f,%.6f,%ld,%ld,%.4f,%.4f\n", w->method, w->sampler, w->nfe, w->w2, w->energy,
                w->sampling_params, w->params, w->train_s, w->sample_ms);
    }
    int bad = ferror(fmd) | ferror(fcsv);
    bad |= fclose(fmd) != 0;
    bad |= fclose(fcsv) != 0;
    if (bad) return cli_error("compare", "cannot write the table in %s", o->dir);
    if (fm_svg_panels(tsvg, r->panels, r->titles, r->npanels, o->n, r->d, 3.0) != FM_OK)
        return cli_error("compare", "%s", fm_last_error());
    return cli_out_commit("compare", &r->outs);
}

/* Everything after the options: CLI_OK, or the exit code of the step that failed. */
static int run(const compare_opts *o, const cli_spec *spec, compare_run *r)
{
    int rc;
    if ((rc = draw_data(o, r)) != CLI_GO) return rc;
    const char *files[3 + M_COUNT] = {"compare.md", "compare.csv", "compare.svg"};
    char ckpt[M_COUNT][32];
    int nf = 3;
    for (int m = 0; m < M_COUNT; m++)
        if (o->want[m]) snprintf(ckpt[m], sizeof ckpt[m], "%s.safetensors", mnames[m]), files[nf++] = ckpt[m];
    if ((rc = cli_dir_outputs("compare", spec, o->dir, files, nf, o->force)) != CLI_GO) return rc; /* before training */
    if (o->n > 10000 && !o->quiet) fprintf(stderr, "note: exact W2 on %d points per row may take a while\n", o->n);
    fm_set_threads(o->threads);
    if ((rc = data_row(o, r)) != CLI_GO) return rc;
    long target = sampling_size(M_FM_OT, r->d, o->width, o->depth, 2);
    for (int m = 0; m < M_COUNT; m++) {
        if (!o->want[m]) continue;
        long sp;
        double train_s = 0;
        if ((rc = train_method(o, r, m, target, &sp, &train_s)) != CLI_GO) return rc;
        if (!o->quiet) fprintf(stderr, "  trained in %.2f s; sampling\n", train_s);
        if ((rc = measure_method(o, r, m, sp, train_s)) != CLI_GO) return rc;
    }
    if ((rc = write_results(o, r)) != CLI_GO) return rc;
    if (o->json) {
        print_json(o, r);
        return CLI_OK;
    }
    print_table(stdout, r->rows, r->nrows, o->data, (long)o->iters, o->batch);
    printf("wrote %s/compare.md, %s/compare.csv, %s/compare.svg and the checkpoints\n", o->dir, o->dir, o->dir);
    return CLI_OK;
}

int cmd_compare(int argc, char **argv)
{
    /* the shared network and budget: the tutorial's (fm_train_config_default) */
    fm_train_config c = fm_train_config_default();
    compare_opts o = {.data = c.flow.data, .dir = "compare", .methods = "fm-ot,fm-vp,fm-ve,score-vp,ddpm,vae,gan",
                      .nfe_list = "1,2,4,8,16,32,100", .act = fm_act_name(c.flow.net.act),
                      .width = c.flow.net.width[0], .depth = c.flow.net.nhidden, .batch = c.batch, .n = 2000,
                      .threads = 1, .iters = c.iters, .seed = (int64_t)c.seed};
    const cli_opt opts[] = {
        {"data", OPT_STR, &o.data, "SPEC", "dataset every method trains on"},
        {"methods", OPT_STR, &o.methods, "LIST", "any of fm-ot, fm-vp, fm-ve, score-vp, ddpm, vae, gan"},
        {"iters", OPT_I64, &o.iters, "N", "training iterations for every method (GAN: generator steps)"},
        {"batch", OPT_INT, &o.batch, "N", "batch size"},
        {"width", OPT_INT, &o.width, "N", "hidden width of the flow and DDPM networks"},
        {"depth", OPT_INT, &o.depth, "N", "hidden layers of every network"},
        {"act", OPT_STR, &o.act, "NAME", "activation of every network"},
        {"lr", OPT_DOUBLE, &o.lr, "X", "one learning rate for all (0: each method's own, see below)"},
        {"nfe", OPT_STR, &o.nfe_list, "LIST", "network evaluations at which flows and DDPM are sampled"},
        {"n", OPT_INT, &o.n, "N", "samples per row, scored against as many fresh data points"},
        {"seed", OPT_I64, &o.seed, "N", "training and sampling seed"},
        {"threads", OPT_INT, &o.threads, "N", "threads for every method (0: all cores)"},
        {"out-dir", OPT_STR, &o.dir, "DIR", "where checkpoints, the table and the figure go"},
        {"quiet", OPT_FLAG, &o.quiet, NULL, "no progress output"},
        {"json", OPT_FLAG, &o.json, NULL, "print one JSON object (the table's rows) instead of the table"},
        {"force", OPT_FLAG, &o.force, NULL, "replace the files of an earlier run in the default folder"},
    };
    unsigned char given[sizeof opts / sizeof opts[0]] = {0};
    const cli_spec spec = {
        "compare", NULL, "Train flow matching and its baselines on the same data and compare them.",
        "Trains flow matching on the ot, vp and ve paths, DDPM, a VAE and a GAN with the\n"
        "same iterations and batch; the VAE's and GAN's widths are chosen so that their\n"
        "total parameter count (both networks) matches the flow's. Learning rates, unless\n"
        "--lr: Adam 1e-2 for flows and DDPM (the tutorial's), 1e-3 for the VAE, 2e-4 with\n"
        "beta1 0.5 for the GAN (DCGAN's). Flows are sampled with Euler at each --nfe (and\n"
        "the tutorial's midpoint sampler at 16), DDPM with DDIM at each --nfe and the\n"
        "ancestral sampler at 100 and T = 1000, the VAE and GAN in one pass. Every row is\n"
        "scored on --n samples against the same --n fresh data points (exact W2, energy\n"
        "distance). Writes DIR/compare.md, DIR/compare.csv, DIR/compare.svg (each\n"
        "method's samples side by side) and DIR/<method>.safetensors.",
        opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, given};
    int npos, rc;
    if ((rc = cli_parse(&spec, argc, argv, NULL, &npos)) != CLI_GO) return rc;
    if ((rc = check_options(&o)) != CLI_GO) return rc;
    compare_run r = {0};
    rc = run(&o, &spec, &r);
    run_free(&r);
    return rc;
}
