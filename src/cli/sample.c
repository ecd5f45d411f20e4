/* sample.c - `flowmatch sample`: draw points from a trained model of any
 * method: a flow with the ODE solver of your choice, DDPM with its ancestral or
 * DDIM sampler, a VAE or GAN in one pass; optionally keep the trajectory and
 * draw it, or reconstruct points through a VAE.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Keeps the states at chosen grid indices. */
typedef struct {
    int n, d, ngrid, every;      /* every: trajectory period in grid points (0: none) */
    int fig[9], nfig;            /* grid indices drawn in the figure */
    float *traj, *figs;          /* (ntraj, n, d), (nfig, n, d) */
    double *traj_t, *fig_t;
    int ntraj;
} keeper;

static int keep_traj(const keeper *k, int g) { return k->every > 0 && (g % k->every == 0 || g == k->ngrid - 1); }

static fm_status observe(void *ctx, int g, double t, const float *x, size_t n)
{
    keeper *k = ctx;
    if (k->traj && keep_traj(k, g)) {
        memcpy(k->traj + (size_t)k->ntraj * n, x, n * sizeof(float));
        k->traj_t[k->ntraj++] = t;
    }
    for (int f = 0; f < k->nfig; f++)
        if (k->fig[f] == g) {
            memcpy(k->figs + (size_t)f * n, x, n * sizeof(float));
            k->fig_t[f] = t;
        }
    return FM_OK;
}

/* Every value finite? Else the index of the first that is not. */
static long first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long)i;
    return -1;
}

/* Up to 8 samples (rows) at the kept figure states (columns), as one PNG. */
static int traj_grid(const char *path, const keeper *k, int c, int h, int w)
{
    int rows = k->n < 8 ? k->n : 8, cols = k->nfig;
    size_t img = (size_t)c * h * w;
    float *tiles = malloc((size_t)rows * cols * img * sizeof(float));
    if (!tiles) return cli_error("sample", "out of memory for the trajectory grid");
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < cols; q++)
            memcpy(tiles + ((size_t)r * cols + q) * img, k->figs + ((size_t)q * k->n + r) * img, img * sizeof(float));
    fm_status s = fm_png_write_grid(path, tiles, rows * cols, c, h, w, cols, 0.0f, 1.0f);
    free(tiles);
    return s ? cli_error("sample", "%s", fm_last_error()) : -1;
}

int cmd_sample(int argc, char **argv)
{
    const char *model = NULL, *out = "samples.npy", *x0file = NULL, *figure = NULL, *traj_out = NULL, *scatter = NULL,
               *recon = NULL, *pgrid = NULL, *tgrid = NULL, *label = "all", *labels_out = NULL;
    double guidance = 1.0;
    int n = -1, save_every = 0, no_ema = 0, threads = 0, quiet = 0, gcols = 8;
    int64_t seed = 0;
    double range = 3.0;
    cli_solver_opts so = cli_solver_defaults();
    const cli_opt opts[] = {
        {"model", OPT_STR, &model, "FILE", "checkpoint written by train (required)"},
        {"n", OPT_INT, &n, "N", "number of samples (default 2000, or the rows of --x0)"},
        CLI_SOLVER_OPTIONS(so),
        {"seed", OPT_I64, &seed, "N", "random seed for the starting noise"},
        {"x0", OPT_STR, &x0file, "FILE", "start from these points (.npy or .csv) instead of fresh noise"},
        {"reconstruct", OPT_STR, &recon, "FILE", "vae: encode and decode these points instead of sampling"},
        {"label", OPT_STR, &label, "L", "class-conditional models: a class, 'none', or 'all' (row r of --grid is class r)"},
        {"guidance", OPT_DOUBLE, &guidance, "W", "classifier-free guidance v_u + W (v_c - v_u) (1: conditional only)"},
        {"labels-out", OPT_STR, &labels_out, "FILE", "the requested labels, -1 for none (default: <out>_labels.npy)"},
        {"out", OPT_STR, &out, "FILE", "samples (.npy or .csv)"},
        {"save-every", OPT_INT, &save_every, "K", "also keep the state every K grid points"},
        {"traj", OPT_STR, &traj_out, "FILE", "where --save-every writes (n_states, n, dim) (default: <out>_traj.npy)"},
        {"figure", OPT_STR, &figure, "FILE", "trajectory panels (up to 9 states) as SVG"},
        {"scatter", OPT_STR, &scatter, "FILE", "samples against fresh training data as SVG"},
        {"range", OPT_DOUBLE, &range, "R", "figure axes span [-R, R]"},
        {"grid", OPT_STR, &pgrid, "FILE", "image models: the samples as a PNG grid"},
        {"grid-cols", OPT_INT, &gcols, "N", "images per row of --grid"},
        {"traj-grid", OPT_STR, &tgrid, "FILE", "image flows: up to 8 samples (rows) at 9 times (columns) as PNG"},
        {"no-ema", OPT_FLAG, &no_ema, NULL, "use the raw weights even if the checkpoint has EMA weights"},
        {"threads", OPT_INT, &threads, "N", "threads (0: all cores)"},
        {"quiet", OPT_FLAG, &quiet, NULL, "no summary line"},
    };
    unsigned char given[sizeof opts / sizeof opts[0]] = {0};
    const cli_spec spec = {"sample", NULL, "Draw samples from a trained model (flow, DDPM, VAE or GAN).",
                           "--steps N takes N uniform steps on [0, t-end] (t-end is 1, or 1 - 1e-3 for the\n"
                           "ve, vp and linear-vp paths); --time-grid gives the times explicitly; dopri5\n"
                           "adapts its steps between grid points. The number of function evaluations (NFE)\n"
                           "is reported. With --x0 the ODE starts from the given points (in the network's\n"
                           "units: standard normal draws for the default source), so another program can\n"
                           "reproduce the run from the same starting points. A DDPM model samples with\n"
                           "--solver ancestral (default, T steps) or ddim (default 50 steps), --x0 being x_T;\n"
                           "a VAE or GAN decodes latent noise in one pass (--x0: latent points).\n"
                           "A class-conditional model samples --label L for every point, or with 'all' sample\n"
                           "i asks for class (i / grid-cols) mod K, so --grid shows one row per class (and n\n"
                           "defaults to K x grid-cols); the labels are written next to the samples. Nothing is\n"
                           "written unless every output can be.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, given};
    int npos;
    int rc = cli_parse(&spec, argc, argv, NULL, &npos);
    if (rc >= 0) return rc;
#define BAD(...) return cli_usage_error("sample", __VA_ARGS__)
    if (!model) BAD("--model is required");
    if (n == 0 || n < -1 || n > (1 << 28)) BAD("--n %d is invalid", n);
    if (save_every < 0) BAD("--save-every must be >= 0");
    if (threads < 0 || threads > 1024) BAD("--threads must lie in 0..1024");
    if (!(range > 0)) BAD("--range must be > 0");
    if (seed < 0) BAD("--seed must be >= 0");
    if (!cli_has_suffix(out, ".npy") && !cli_has_suffix(out, ".csv")) BAD("--out '%s' must end in .npy or .csv", out);
    if (traj_out && !cli_has_suffix(traj_out, ".npy")) BAD("--traj '%s' must end in .npy", traj_out);
    if (figure && !cli_has_suffix(figure, ".svg")) BAD("--figure '%s' must end in .svg", figure);
    if (scatter && !cli_has_suffix(scatter, ".svg")) BAD("--scatter '%s' must end in .svg", scatter);
    if (recon && x0file) BAD("--reconstruct and --x0 exclude each other");
    if (pgrid && !cli_has_suffix(pgrid, ".png")) BAD("--grid '%s' must end in .png", pgrid);
    if (tgrid && !cli_has_suffix(tgrid, ".png")) BAD("--traj-grid '%s' must end in .png", tgrid);
    if (gcols < 1 || gcols > 1024) BAD("--grid-cols must lie in 1..1024");
    if (labels_out && !cli_has_suffix(labels_out, ".npy")) BAD("--labels-out '%s' must end in .npy", labels_out);
    int fixed;
    if ((rc = cli_class_choice("sample", label, guidance, &fixed)) >= 0) return rc;
#undef BAD
    if ((rc = cli_solver_check("sample", &so, !x0file)) >= 0) return rc;
    fm_set_threads(threads);
    fm_model *M;
    if ((rc = cli_load_model("sample", model, !no_ema, &M)) >= 0) return rc;
    fm_method meth = fm_model_method(M);
    fm_flow *f = fm_model_flow(M);
    int d = fm_model_dim(M), in_d = d; /* in_d: columns of --x0 */
    if (fm_model_vae(M)) in_d = fm_vae_get_config(fm_model_vae(M))->latent;
    if (fm_model_gan(M)) in_d = fm_gan_get_config(fm_model_gan(M))->latent;
    const char *data_spec = fm_model_data(M);
    fm_solver_config sc;
    double *grid = NULL;
    int ngrid = 0;
    fm_table x0 = {0};
    float *xs = NULL, *ref = NULL;
    char *tp = NULL;
    keeper k = {0};
    fm_dataset *ds = NULL;
    int *lab = NULL;
    float *labf = NULL;
    char *lp = NULL;
    cli_outputs outs = {0};
    if (!f && (save_every || figure || traj_out || tgrid)) {
        rc = cli_usage_error("sample",
                             "--save-every, --traj, --figure and --traj-grid need a flow or DDPM model (%s has no trajectory)",
                             fm_method_name(meth));
        goto done;
    }
    int K = f ? fm_flow_num_classes(f) : 0; /* fixed: -2 all classes, -1 none, else one class */
    if (!K && (cli_given(&spec, "label") || cli_given(&spec, "guidance") || labels_out)) {
        rc = cli_usage_error("sample", "--label, --guidance and --labels-out need a class-conditional model; %s is not one",
                             model);
        goto done;
    }
    if (K && fixed >= K) {
        rc = cli_usage_error("sample", "--label '%s' must be a class in 0..%d, 'none' or 'all'", label, K - 1);
        goto done;
    }
    if (recon && meth != FM_METHOD_VAE) {
        rc = cli_usage_error("sample", "--reconstruct needs a VAE model, not %s", fm_method_name(meth));
        goto done;
    }
    rc = cli_sampler_setup("sample", &spec, &so, M, !x0file, 1, &sc, &grid, &ngrid);
    if (rc >= 0) goto done;
    rc = -1;
    if (recon) {
        in_d = d;
        x0file = recon;
    }
    if (x0file) {
        if (fm_points_read(x0file, &x0) != FM_OK) {
            rc = cli_error("sample", "%s", fm_last_error());
            goto done;
        }
        long bad = first_nonfinite(x0.data, (size_t)x0.rows * x0.cols);
        if (x0.cols != in_d)
            rc = cli_error("sample", "%s has %d columns but the model %s %d", x0file, x0.cols,
                           in_d == d ? "is" : "has a latent dimension of", in_d);
        else if (n > 0 && n != x0.rows) rc = cli_error("sample", "--n %d disagrees with the %d rows of %s", n, x0.rows, x0file);
        else if (bad >= 0) rc = cli_error("sample", "%s: row %ld holds a NaN or infinite value", x0file, bad / in_d + 1);
        if (rc >= 0) goto done;
        n = x0.rows;
    }
    int ic = 0, ih = 0, iw = 0;
    if ((pgrid || tgrid) && (!fm_spec_image_shape(data_spec, &ic, &ih, &iw) || ic * ih * iw != d)) {
        rc = cli_usage_error("sample", "--%s needs an image model; %s was trained on '%s'", pgrid ? "grid" : "traj-grid",
                             model, data_spec);
        goto done;
    }
    if (n < 0) n = K && fixed == -2 && pgrid ? K * gcols : 2000;
    size_t nd = (size_t)n * d;
    if (scatter) { /* the comparison data must be drawable before anything is written */
        ds = fm_dataset_open(data_spec);
        ref = ds ? malloc(nd * sizeof(float)) : NULL;
        fm_rng rd;
        fm_rng_seed(&rd, (uint64_t)seed + 1, FM_STREAM_DATA);
        if (!ds || !ref || fm_dataset_sample(ds, &rd, ref, n) != FM_OK) {
            rc = cli_error("sample", "--scatter needs the model's training data '%s': %s", data_spec,
                           ref ? fm_last_error() : ds ? "out of memory" : fm_last_error());
            goto done;
        }
    }
    k.n = n;
    k.d = d;
    k.ngrid = ngrid;
    k.every = save_every;
    if (save_every > 0) {
        int nt = 0;
        for (int g = 0; g < ngrid; g++) nt += keep_traj(&k, g);
        k.traj = malloc((size_t)nt * nd * sizeof(float));
        k.traj_t = malloc((size_t)nt * sizeof(double));
        if (!k.traj || !k.traj_t) {
            rc = cli_error("sample", "out of memory for %d trajectory states", nt);
            goto done;
        }
    }
    if (figure || tgrid) {
        k.nfig = ngrid < 9 ? ngrid : 9;
        for (int i = 0; i < k.nfig; i++) k.fig[i] = k.nfig == ngrid ? i : (int)lround((double)i * (ngrid - 1) / 8);
        k.figs = malloc((size_t)k.nfig * nd * sizeof(float));
        k.fig_t = malloc((size_t)k.nfig * sizeof(double));
        if (!k.figs || !k.fig_t) {
            rc = cli_error("sample", "out of memory for the figure");
            goto done;
        }
    }
    xs = malloc(nd * sizeof(float));
    if (!xs) {
        rc = cli_error("sample", "out of memory for %d samples", n);
        goto done;
    }
    if (K) { /* the requested classes, with the guidance weight */
        lab = malloc((size_t)n * sizeof(int));
        labf = malloc((size_t)n * sizeof(float));
        if (!lab || !labf) {
            rc = cli_error("sample", "out of memory for %d labels", n);
            goto done;
        }
        for (int i = 0; i < n; i++) {
            lab[i] = fixed == -2 ? (i / gcols) % K : fixed;
            labf[i] = (float)lab[i];
        }
        if (fm_flow_set_condition(f, lab, n, guidance) != FM_OK) {
            rc = cli_error("sample", "%s", fm_last_error());
            goto done;
        }
    }
    fm_rng r;
    fm_rng_seed(&r, (uint64_t)seed, FM_STREAM_NOISE);
    fm_solve_stats st = {1, 1, 0};
    double t0 = cli_now();
    fm_status s;
    if (recon) {
        s = fm_vae_reconstruct(fm_model_vae(M), x0.data, n, xs);
    } else { /* --x0: a flow's initial state or a latent model's codes, network units */
        s = fm_model_sample_from(M, n, x0file ? x0.data : NULL, &r, &sc, grid, ngrid, xs,
                                 (k.traj || k.figs) ? observe : NULL, &k, &st);
    }
    double secs = cli_now() - t0;
    if (s) {
        rc = cli_error("sample", "%s", fm_last_error());
        goto done;
    }
    /* every output under a temporary name first; all renamed at the end */
    const char *to = cli_out_stage(&outs, out);
    if (to && (rc = cli_write_points("sample", to, xs, n, d)) >= 0) goto done;
    if (k.traj) {
        tp = traj_out ? NULL : cli_derive(out, "_traj.npy");
        int64_t shape[3] = {k.ntraj, n, d};
        const char *tt = cli_out_stage(&outs, traj_out ? traj_out : tp);
        if (!tt || fm_npy_write(tt, k.traj, 3, shape) != FM_OK) {
            rc = cli_error("sample", "%s", tt ? fm_last_error() : "out of memory");
            goto done;
        }
    }
    if (K) {
        lp = labels_out ? NULL : cli_derive(out, "_labels.npy");
        int64_t shape[1] = {n};
        const char *tl = cli_out_stage(&outs, labels_out ? labels_out : lp);
        if (!tl || fm_npy_write(tl, labf, 1, shape) != FM_OK) {
            rc = cli_error("sample", "%s", tl ? fm_last_error() : "out of memory");
            goto done;
        }
    }
    const char *tf = figure ? cli_out_stage(&outs, figure) : NULL;
    if (figure && (!tf || fm_svg_trajectory(tf, k.figs, k.fig_t, k.nfig, n, d, range) != FM_OK)) {
        rc = cli_error("sample", "%s", tf ? fm_last_error() : "out of memory");
        goto done;
    }
    const char *ts = scatter ? cli_out_stage(&outs, scatter) : NULL;
    if (scatter && (!ts || fm_svg_scatter(ts, "samples and data", xs, n, "samples", ref, n, data_spec, d, range) != FM_OK)) {
        rc = cli_error("sample", "%s", ts ? fm_last_error() : "out of memory");
        goto done;
    }
    const char *tt2 = tgrid ? cli_out_stage(&outs, tgrid) : NULL;
    if (tgrid && (!tt2 || (rc = traj_grid(tt2, &k, ic, ih, iw)) >= 0)) {
        if (!tt2) rc = cli_error("sample", "out of memory");
        goto done;
    }
    const char *tg = pgrid ? cli_out_stage(&outs, pgrid) : NULL;
    if (pgrid && (!tg || fm_png_write_grid(tg, xs, n, ic, ih, iw, gcols, 0.0f, 1.0f) != FM_OK)) {
        rc = cli_error("sample", "%s", tg ? fm_last_error() : "out of memory");
        goto done;
    }
    if (!to) {
        rc = cli_error("sample", "out of memory");
        goto done;
    }
    if ((rc = cli_out_commit("sample", &outs)) >= 0) goto done;
    if (!quiet) {
        if (!f)
            printf("%s %d points %s (NFE 1), %.3f s -> %s", recon ? "reconstructed" : "sampled", n,
                   meth == FM_METHOD_VAE ? "through the VAE's decoder" : "from the GAN's generator", secs, out);
        else if (meth == FM_METHOD_DDPM)
            printf("sampled %d points with DDPM %s in %d steps, NFE %ld, %.3f s -> %s", n, fm_solver_name(sc.kind),
                   ngrid - 1, st.nfe, secs, out);
        else {
            printf("sampled %d points with %s on %d grid points (t %.3g to %.3g), NFE %ld", n, fm_solver_name(sc.kind),
                   ngrid, grid[0], grid[ngrid - 1], st.nfe);
            if (sc.kind == FM_SOLVER_DOPRI5) printf(" (%ld steps, %ld rejected)", st.steps, st.rejected);
            printf(", %.3f s -> %s", secs, out);
        }
        if (k.traj) printf(", %s (%d states)", traj_out ? traj_out : tp, k.ntraj);
        if (K)
            printf(", labels %s (guidance %g%s) -> %s", fixed == -2 ? "by row" : label, guidance,
                   guidance != 1.0 ? ", 2 network passes per evaluation" : "", labels_out ? labels_out : lp);
        const char *more[] = {figure, scatter, pgrid, tgrid};
        for (int i = 0; i < 4; i++)
            if (more[i]) printf(", %s", more[i]);
        printf("\n");
    }
    rc = CLI_OK;
done:
    cli_out_abort(&outs);
    free(tp);
    free(lp);
    free(lab);
    free(labf);
    free(grid);
    free(xs);
    free(ref);
    free(k.traj);
    free(k.traj_t);
    free(k.figs);
    free(k.fig_t);
    fm_dataset_free(ds);
    fm_table_free(&x0);
    fm_model_free(M);
    return rc;
}
