/* compare.c - `flowmatch compare`: flow matching against the models it grew
 * out of, on the same data, with matched parameter counts and the same number
 * of training iterations, judged by the same metrics.
 *
 * Each method is trained in turn (flow matching on the ot, vp and ve paths,
 * DDPM, VAE, GAN), then sampled at several numbers of network evaluations:
 * flows with Euler steps (and the tutorial's midpoint sampler), DDPM with DDIM
 * and its ancestral sampler. Every row draws the same number of points with
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

enum { M_FM_OT, M_FM_VP, M_FM_VE, M_DDPM, M_VAE, M_GAN, M_COUNT };
static const char *const mnames[M_COUNT] = {"fm-ot", "fm-vp", "fm-ve", "ddpm", "vae", "gan"};

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
    else if (!strcmp(sampler, "ddim")) sc.kind = FM_SOLVER_DDIM;
    else if (!strcmp(sampler, "ancestral")) sc.kind = FM_SOLVER_ANCESTRAL;
    double *grid = NULL;
    int ngrid = 0;
    if (meth == FM_METHOD_FM || meth == FM_METHOD_DDPM) {
        grid = malloc((size_t)(steps + 1) * sizeof(double));
        if (!grid) return cli_error("compare", "out of memory");
        double t_end = meth == FM_METHOD_FM ? fm_flow_get_config(fm_model_flow(m))->path.t_end : 1.0;
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
    return -1;
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

int cmd_compare(int argc, char **argv)
{
    const char *data = "moons", *dir = "compare", *methods = "fm-ot,fm-vp,fm-ve,ddpm,vae,gan",
               *nfe_list = "1,2,4,8,16,32,100", *act = "elu";
    int width = 64, depth = 3, batch = 256, n = 2000, threads = 1, quiet = 0;
    int64_t iters = 10000, seed = 0;
    double lr = 0;
    const cli_opt opts[] = {
        {"data", OPT_STR, &data, "SPEC", "dataset every method trains on"},
        {"methods", OPT_STR, &methods, "LIST", "any of fm-ot, fm-vp, fm-ve, ddpm, vae, gan"},
        {"iters", OPT_I64, &iters, "N", "training iterations for every method (GAN: generator steps)"},
        {"batch", OPT_INT, &batch, "N", "batch size"},
        {"width", OPT_INT, &width, "N", "hidden width of the flow and DDPM networks"},
        {"depth", OPT_INT, &depth, "N", "hidden layers of every network"},
        {"act", OPT_STR, &act, "NAME", "activation of every network"},
        {"lr", OPT_DOUBLE, &lr, "X", "one learning rate for all (0: each method's own, see below)"},
        {"nfe", OPT_STR, &nfe_list, "LIST", "network evaluations at which flows and DDPM are sampled"},
        {"n", OPT_INT, &n, "N", "samples per row, scored against as many fresh data points"},
        {"seed", OPT_I64, &seed, "N", "training and sampling seed"},
        {"threads", OPT_INT, &threads, "N", "threads for every method (0: all cores)"},
        {"out-dir", OPT_STR, &dir, "DIR", "where checkpoints, the table and the figure go"},
        {"quiet", OPT_FLAG, &quiet, NULL, "no progress output"},
    };
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
        opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, NULL};
    int npos;
    int rc = cli_parse(&spec, argc, argv, NULL, &npos);
    if (rc >= 0) return rc;
#define BAD(...) return cli_usage_error("compare", __VA_ARGS__)
    int want[M_COUNT] = {0}, nwant = 0;
    for (const char *p = methods; *p;) {
        size_t k = strcspn(p, ",");
        int found = -1;
        for (int m = 0; m < M_COUNT; m++)
            if (strlen(mnames[m]) == k && !strncmp(p, mnames[m], k)) found = m;
        if (found < 0) BAD("unknown method '%.*s' in --methods (fm-ot, fm-vp, fm-ve, ddpm, vae, gan)", (int)k, p);
        nwant += !want[found];
        want[found] = 1;
        p += k + (p[k] == ',');
    }
    if (!nwant) BAD("--methods is empty");
    int nfe[32];
    int nnfe = cli_parse_ints(nfe_list, nfe, 32);
    if (nnfe < 1) BAD("--nfe '%s' is not a list of up to 32 counts in 1..100000", nfe_list);
    if (iters < 1 || batch < 1 || batch > (1 << 20) || n < 2 || n > 20000 || seed < 0 || threads < 0 || threads > 1024)
        BAD("--iters and --batch must be >= 1, --n in 2..20000, --seed >= 0, --threads in 0..1024");
    if (width < 1 || width > 4096 || depth < 1 || depth > FM_MLP_MAX_LAYERS)
        BAD("--width must lie in 1..4096 and --depth in 1..%d", FM_MLP_MAX_LAYERS);
    int a = fm_act_from_name(act);
    if (a < 0) BAD("unknown --act '%s'", act);
    if (!(lr >= 0)) BAD("--lr %g must be >= 0", lr);
#undef BAD
    fm_dataset *ds = fm_dataset_open(data);
    if (!ds) {
        fprintf(stderr, "flowmatch compare: %s\n", fm_last_error());
        return cli_status_code(fm_last_status());
    }
    int d = fm_dataset_dim(ds);
    float *ref = malloc((size_t)n * d * sizeof(float)), *other = malloc((size_t)n * d * sizeof(float));
    fm_rng rd;
    fm_rng_seed(&rd, (uint64_t)seed + 1, FM_STREAM_DATA);
    fm_status s = ref && other ? fm_dataset_sample(ds, &rd, ref, n) : FM_ERR_NOMEM;
    if (!s) s = fm_dataset_sample(ds, &rd, other, n);
    fm_dataset_free(ds);
    if (s) {
        free(ref);
        free(other);
        return cli_error("compare", "drawing %s: %s", data, s == FM_ERR_NOMEM ? "out of memory" : fm_last_error());
    }
    if ((rc = cli_make_dir("compare", dir)) >= 0) {
        free(ref);
        free(other);
        return rc;
    }
    if (n > 10000 && !quiet) fprintf(stderr, "note: exact W2 on %d points per row may take a while\n", n);
    fm_set_threads(threads);
    int maxrows = 1 + M_COUNT * (2 * nnfe + 3);
    row *rows = calloc((size_t)maxrows, sizeof(row));
    float *panels = malloc((size_t)(M_COUNT + 1) * n * d * sizeof(float));
    const char *titles[M_COUNT + 1];
    char tbuf[M_COUNT + 1][64];
    int nrows = 0, npanels = 0;
    fm_model *models[M_COUNT] = {0};
    cli_outputs outs = {0};
    if (!rows || !panels) {
        rc = cli_error("compare", "out of memory");
        goto done;
    }
    /* the floor: two independent draws of the data */
    double w2 = NAN, e = NAN;
    if (fm_w2_exact(other, ref, n, d, &w2, NULL) || fm_energy_distance(other, n, ref, n, d, &e)) {
        rc = cli_error("compare", "%s", fm_last_error());
        goto done;
    }
    rows[nrows++] = (row){"data", "", 0, 0, 0, w2, e, 0, 0};
    memcpy(panels, ref, (size_t)n * d * sizeof(float));
    titles[npanels++] = "data";

    long target = sampling_size(M_FM_OT, d, width, depth, 2);
    for (int m = 0; m < M_COUNT; m++) {
        if (!want[m]) continue;
        fm_train_config c = fm_train_config_for(m == M_DDPM ? FM_METHOD_DDPM : m == M_VAE ? FM_METHOD_VAE
                                                 : m == M_GAN ? FM_METHOD_GAN : FM_METHOD_FM);
        c.flow.data = data;
        c.iters = iters;
        c.batch = batch;
        c.seed = (uint64_t)seed;
        c.sched.total = iters;
        int w = width;
        if (m == M_VAE) w = matched_width(M_VAE, d, depth, c.vae.latent, target);
        if (m == M_GAN) w = matched_width(M_GAN, d, depth, c.gan.latent, target);
        long sp = sampling_size(m, d, w, depth, m == M_VAE ? c.vae.latent : c.gan.latent);
        if (m == M_FM_VP) c.flow.path = fm_path_default(FM_PATH_VP);
        if (m == M_FM_VE) c.flow.path = fm_path_default(FM_PATH_VE);
        c.flow.net.nhidden = depth;
        for (int i = 0; i < depth; i++) c.flow.net.width[i] = w;
        c.flow.net.act = (fm_act)a;
        if (lr > 0) c.optim.lr = lr;
        c.gan.d_optim = c.optim;
        fm_trainer *tr = fm_trainer_new(&c);
        if (!tr) {
            rc = cli_error("compare", "%s: %s", mnames[m], fm_last_error());
            goto done;
        }
        if (!quiet)
            fprintf(stderr, "training %s: width %d x %d, %zu parameters, %lld iterations\n", mnames[m], w, depth,
                    fm_model_size(fm_trainer_model(tr)), (long long)iters);
        cli_losses log;
        double train_s = 0;
        char who[64];
        snprintf(who, sizeof who, "compare (%s)", mnames[m]);
        rc = cli_train_loop(who, tr, iters, iters / 4 > 0 ? iters / 4 : 1, quiet, &log, &train_s);
        if (rc < 0) {
            cli_losses_free(&log);
            char name[64];
            snprintf(name, sizeof name, "%s/%s.safetensors", dir, mnames[m]);
            const char *tp = cli_out_stage(&outs, name);
            if (!tp || fm_trainer_save(tr, tp) != FM_OK)
                rc = cli_error("compare", "%s", tp ? fm_last_error() : "out of memory");
            else /* reload it: what is measured is what the file holds */
                rc = cli_load_model("compare", tp, 0, &models[m]);
        }
        fm_trainer_free(tr);
        if (rc >= 0) goto done;
        if (!quiet) fprintf(stderr, "  trained in %.2f s; sampling\n", train_s);
        fm_model *M = models[m];
        float *keep = panels + (size_t)npanels * n * d;
        uint64_t sd = (uint64_t)seed;
        if (m == M_VAE || m == M_GAN) {
            rc = measure(M, mnames[m], sp, "one pass", 1, n, sd, ref, train_s, keep, &rows[nrows++]);
        } else if (m == M_DDPM) {
            int T = fm_flow_get_config(fm_model_flow(M))->ddpm.T;
            for (int i = 0; i < nnfe && rc < 0; i++)
                if (nfe[i] <= T) rc = measure(M, mnames[m], sp, "ddim", nfe[i], n, sd, ref, train_s, NULL, &rows[nrows++]);
            if (rc < 0 && T >= 100)
                rc = measure(M, mnames[m], sp, "ancestral", 100, n, sd, ref, train_s, NULL, &rows[nrows++]);
            if (rc < 0) rc = measure(M, mnames[m], sp, "ancestral", T, n, sd, ref, train_s, keep, &rows[nrows++]);
        } else {
            for (int i = 0; i < nnfe && rc < 0; i++)
                rc = measure(M, mnames[m], sp, "euler", nfe[i], n, sd, ref, train_s, NULL, &rows[nrows++]);
            if (rc < 0) rc = measure(M, mnames[m], sp, "midpoint", 16, n, sd, ref, train_s, keep, &rows[nrows++]);
        }
        if (rc >= 0) goto done;
        snprintf(tbuf[npanels], sizeof tbuf[npanels], "%s (W2 %.3f)", mnames[m], rows[nrows - 1].w2);
        titles[npanels] = tbuf[npanels];
        npanels++;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/compare.md", dir);
    const char *tmd = cli_out_stage(&outs, path);
    snprintf(path, sizeof path, "%s/compare.csv", dir);
    const char *tcsv = cli_out_stage(&outs, path);
    snprintf(path, sizeof path, "%s/compare.svg", dir);
    const char *tsvg = cli_out_stage(&outs, path);
    FILE *fmd = tmd ? fopen(tmd, "w") : NULL, *fcsv = tcsv ? fopen(tcsv, "w") : NULL;
    if (!fmd || !fcsv || !tsvg) {
        if (fmd) fclose(fmd);
        if (fcsv) fclose(fcsv);
        rc = cli_error("compare", "cannot write the table in %s: %s", dir, strerror(errno));
        goto done;
    }
    print_table(fmd, rows, nrows, data, (long)iters, batch);
    fprintf(fcsv, "method,sampler,nfe,w2,energy,sampling_params,params,train_s,sample_ms_per_1000\n");
    for (int i = 0; i < nrows; i++)
        fprintf(fcsv, "%s,%s,%d,%.6f,%.6f,%ld,%ld,%.4f,%.4f\n", rows[i].method, rows[i].sampler, rows[i].nfe,
                rows[i].w2, rows[i].energy, rows[i].sampling_params, rows[i].params, rows[i].train_s,
                rows[i].sample_ms);
    int bad = ferror(fmd) | ferror(fcsv);
    bad |= fclose(fmd) != 0;
    bad |= fclose(fcsv) != 0;
    if (bad) {
        rc = cli_error("compare", "cannot write the table in %s", dir);
        goto done;
    }
    if (fm_svg_panels(tsvg, panels, titles, npanels, n, d, 3.0) != FM_OK) {
        rc = cli_error("compare", "%s", fm_last_error());
        goto done;
    }
    if ((rc = cli_out_commit("compare", &outs)) >= 0) goto done;
    print_table(stdout, rows, nrows, data, (long)iters, batch);
    printf("wrote %s/compare.md, %s/compare.csv, %s/compare.svg and the checkpoints\n", dir, dir, dir);
    rc = CLI_OK;
done:
    cli_out_abort(&outs);
    for (int m = 0; m < M_COUNT; m++) fm_model_free(models[m]);
    free(rows);
    free(panels);
    free(ref);
    free(other);
    return rc;
}
