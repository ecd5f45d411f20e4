/* sample.c - `flowmatch sample`: draw points from a trained model of any
 * method: a flow with the ODE solver of your choice, DDPM with its ancestral or
 * DDIM sampler, a VAE or GAN in one pass; optionally keep the trajectory and
 * draw it, or reconstruct points through a VAE.
 */
#include "cli/cli.h"

#include <errno.h>


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
    return s ? cli_error("sample", "%s", fm_last_error()) : CLI_GO;
}

/* The command line. */
typedef struct {
    const char *model, *out, *x0file, *figure, *traj_out, *scatter, *recon, *pgrid, *tgrid, *label, *labels_out;
    const char *schedule; /* sample along this path (a schedule transformation) */
    double guidance, range;
    int n, save_every, no_ema, threads, quiet, gcols, force;
    int64_t seed;
    cli_solver_opts so;
    int fixed; /* --label: -2 all classes, -1 none, else one class */
} sample_opts;

/* One run: the model and its sampler, the starting points, the samples and
 * what is kept for the other outputs. */
typedef struct {
    fm_model *M;
    fm_flow *f;                /* flows and DDPM; NULL for VAE and GAN */
    int d, in_d, K, n;         /* in_d: columns of --x0; K: classes (0: unconditional) */
    int ic, ih, iw;            /* the image shape of image models */
    const char *data_spec;
    const char *start;         /* --x0 or --reconstruct: the points read into x0 */
    fm_solver_config sc;
    double *grid;
    int ngrid;
    fm_table x0;
    float *xs, *ref;           /* the samples (n, d); the --scatter data (n, d) */
    keeper k;
    int *lab;
    float *labf;
    fm_solve_stats st;
    double secs;
    char *tp, *lp;             /* derived --traj and --labels-out names */
    cli_outputs outs;
} sample_run;

static void run_free(sample_run *r)
{
    cli_out_abort(&r->outs);
    free(r->tp);
    free(r->lp);
    free(r->lab);
    free(r->labf);
    free(r->grid);
    free(r->xs);
    free(r->ref);
    free(r->k.traj);
    free(r->k.traj_t);
    free(r->k.figs);
    free(r->k.fig_t);
    fm_table_free(&r->x0);
    fm_model_free(r->M);
}

/* The options on their own, before any file is read. */
static int check_options(sample_opts *o)
{
    int rc;
#define BAD(...) return cli_usage_error("sample", __VA_ARGS__)
    if (!o->model) BAD("--model is required");
    if (o->n == 0 || o->n < -1 || o->n > (1 << 28)) BAD("--n %d is invalid", o->n);
    if (o->save_every < 0) BAD("--save-every must be >= 0");
    if (o->threads < 0 || o->threads > 1024) BAD("--threads must lie in 0..1024");
    if (!(o->range > 0)) BAD("--range must be > 0");
    if (o->seed < 0) BAD("--seed must be >= 0");
    if (!cli_has_suffix(o->out, ".npy") && !cli_has_suffix(o->out, ".csv") && !cli_has_suffix(o->out, ".txt"))
        BAD("--out '%s' must end in .npy, .csv or .txt (a token model's samples decoded)", o->out);
    if (o->traj_out && !cli_has_suffix(o->traj_out, ".npy")) BAD("--traj '%s' must end in .npy", o->traj_out);
    if (o->figure && !cli_has_suffix(o->figure, ".svg")) BAD("--figure '%s' must end in .svg", o->figure);
    if (o->scatter && !cli_has_suffix(o->scatter, ".svg")) BAD("--scatter '%s' must end in .svg", o->scatter);
    if (o->recon && o->x0file) BAD("--reconstruct and --x0 exclude each other");
    if (o->pgrid && !cli_has_suffix(o->pgrid, ".png")) BAD("--grid '%s' must end in .png", o->pgrid);
    if (o->tgrid && !cli_has_suffix(o->tgrid, ".png")) BAD("--traj-grid '%s' must end in .png", o->tgrid);
    if (o->gcols < 1 || o->gcols > 1024) BAD("--grid-cols must lie in 1..1024");
    if (o->labels_out && !cli_has_suffix(o->labels_out, ".npy"))
        BAD("--labels-out '%s' must end in .npy", o->labels_out);
#undef BAD
    if ((rc = cli_class_choice("sample", o->label, o->guidance, &o->fixed)) != CLI_GO) return rc;
    const char *outs[] = {o->out, o->traj_out, o->labels_out, o->figure, o->scatter, o->pgrid, o->tgrid};
    if ((rc = cli_writable("sample", outs, (int)(sizeof outs / sizeof outs[0]))) != CLI_GO) return rc;
    return cli_solver_check("sample", &o->so, !o->x0file);
}

/* The model, the options that depend on it, and its sampler. */
static int open_model(sample_opts *o, const cli_spec *spec, sample_run *r)
{
    int rc;
    if ((rc = cli_load_model("sample", o->model, !o->no_ema, &r->M)) != CLI_GO) return rc;
    r->f = fm_model_flow(r->M);
    r->d = fm_model_dim(r->M);
    r->in_d = fm_model_start_dim(r->M); /* a latent model's --x0 holds codes */
    r->data_spec = fm_model_data(r->M);
    if (!r->f && (o->save_every || o->figure || o->traj_out || o->tgrid))
        return cli_usage_error("sample",
                               "--save-every, --traj, --figure and --traj-grid need a flow or DDPM model (%s has no trajectory)",
                               fm_model_method_name(r->M));
    r->K = r->f ? fm_flow_num_classes(r->f) : 0;
    if (!r->K && (cli_given(spec, "label") || cli_given(spec, "guidance") || o->labels_out))
        return cli_usage_error("sample", "--label, --guidance and --labels-out need a class-conditional model; %s is not one",
                               o->model);
    if (r->K && o->fixed >= r->K)
        return cli_usage_error("sample", "--label '%s' must be a class in 0..%d, 'none' or 'all'", o->label, r->K - 1);
    if (o->recon && !fm_model_vae(r->M))
        return cli_usage_error("sample", "--reconstruct needs a VAE model, not %s", fm_model_method_name(r->M));
    if (o->schedule && fm_model_set_schedule(r->M, o->schedule) != FM_OK)
        return cli_usage_error("sample", "--schedule: %s", fm_last_error());
    rc = cli_sampler_setup("sample", spec, &o->so, r->M, !o->x0file, 1, &r->sc, &r->grid, &r->ngrid);
    if (rc != CLI_GO) return rc;
    if (o->recon) r->in_d = r->d;
    r->start = o->recon ? o->recon : o->x0file;
    return CLI_GO;
}

/* The points of --x0 or --reconstruct, which set the number of samples. */
static int read_start(const sample_opts *o, sample_run *r)
{
    const char *file = r->start;
    if (!file) return CLI_GO;
    if (fm_points_read(file, &r->x0) != FM_OK) return cli_error("sample", "%s", fm_last_error());
    long bad = first_nonfinite(r->x0.data, (size_t)r->x0.rows * r->x0.cols);
    if (r->x0.cols != r->in_d)
        return cli_error("sample", "%s has %d columns but the model %s %d", file, r->x0.cols,
                         r->in_d == r->d ? "is" : "has a latent dimension of", r->in_d);
    if (o->n > 0 && o->n != r->x0.rows)
        return cli_error("sample", "--n %d disagrees with the %d rows of %s", o->n, r->x0.rows, file);
    if (bad >= 0) return cli_error("sample", "%s: row %ld holds a NaN or infinite value", file, bad / r->in_d + 1);
    r->n = r->x0.rows;
    return CLI_GO;
}

/* The image shape for --grid and --traj-grid, and the number of samples when
 * neither --n nor --x0 gave it. */
static int check_images(const sample_opts *o, sample_run *r)
{
    if ((o->pgrid || o->tgrid) &&
        (!fm_spec_image_shape(r->data_spec, &r->ic, &r->ih, &r->iw) || r->ic * r->ih * r->iw != r->d))
        return cli_usage_error("sample", "--%s needs an image model; %s was trained on '%s'",
                               o->pgrid ? "grid" : "traj-grid", o->model, r->data_spec);
    if (!r->start) r->n = o->n > 0 ? o->n : r->K && o->fixed == -2 && o->pgrid ? r->K * o->gcols : 2000;
    return CLI_GO;
}

/* The --scatter comparison data: drawable before anything is written. */
static int draw_reference(const sample_opts *o, sample_run *r)
{
    if (!o->scatter) return CLI_GO;
    fm_dataset *ds = fm_dataset_open(r->data_spec);
    r->ref = ds ? malloc((size_t)r->n * r->d * sizeof(float)) : NULL;
    fm_rng rd;
    fm_rng_seed(&rd, (uint64_t)o->seed + 1, FM_STREAM_DATA);
    int rc = CLI_GO;
    if (!ds || !r->ref || fm_dataset_sample(ds, &rd, r->ref, r->n) != FM_OK)
        rc = cli_error("sample", "--scatter needs the model's training data '%s': %s", r->data_spec,
                       r->ref ? fm_last_error() : ds ? "out of memory" : fm_last_error());
    fm_dataset_free(ds);
    return rc;
}

/* Room for the samples and the states kept for --save-every, --figure and
 * --traj-grid. */
static int make_buffers(const sample_opts *o, sample_run *r)
{
    keeper *k = &r->k;
    size_t nd = (size_t)r->n * r->d;
    k->n = r->n;
    k->d = r->d;
    k->ngrid = r->ngrid;
    k->every = o->save_every;
    if (o->save_every > 0) {
        int nt = 0;
        for (int g = 0; g < r->ngrid; g++) nt += keep_traj(k, g);
        k->traj = malloc((size_t)nt * nd * sizeof(float));
        k->traj_t = malloc((size_t)nt * sizeof(double));
        if (!k->traj || !k->traj_t) return cli_error("sample", "out of memory for %d trajectory states", nt);
    }
    if (o->figure || o->tgrid) {
        int ngrid = r->ngrid;
        k->nfig = ngrid < 9 ? ngrid : 9;
        for (int i = 0; i < k->nfig; i++) k->fig[i] = k->nfig == ngrid ? i : (int)lround((double)i * (ngrid - 1) / 8);
        k->figs = malloc((size_t)k->nfig * nd * sizeof(float));
        k->fig_t = malloc((size_t)k->nfig * sizeof(double));
        if (!k->figs || !k->fig_t) return cli_error("sample", "out of memory for the figure");
    }
    r->xs = malloc(nd * sizeof(float));
    if (!r->xs) return cli_error("sample", "out of memory for %d samples", r->n);
    return CLI_GO;
}

/* A class-conditional model: the requested classes, with the guidance weight. */
static int set_labels(const sample_opts *o, sample_run *r)
{
    if (!r->K) return CLI_GO;
    r->lab = malloc((size_t)r->n * sizeof(int));
    r->labf = malloc((size_t)r->n * sizeof(float));
    if (!r->lab || !r->labf) return cli_error("sample", "out of memory for %d labels", r->n);
    for (int i = 0; i < r->n; i++) {
        r->lab[i] = o->fixed == -2 ? (i / o->gcols) % r->K : o->fixed;
        r->labf[i] = (float)r->lab[i];
    }
    if (fm_flow_set_condition(r->f, r->lab, r->n, o->guidance) != FM_OK)
        return cli_error("sample", "%s", fm_last_error());
    return CLI_GO;
}

static int draw_samples(const sample_opts *o, sample_run *r)
{
    fm_rng rng;
    fm_rng_seed(&rng, (uint64_t)o->seed, FM_STREAM_NOISE);
    r->st = (fm_solve_stats){1, 1, 0};
    double t0 = cli_now();
    fm_status s;
    if (o->recon) {
        s = fm_vae_reconstruct(fm_model_vae(r->M), r->x0.data, r->n, r->xs);
    } else { /* --x0: a flow's initial state or a latent model's codes, network units */
        s = fm_model_sample_from(r->M, r->n, r->start ? r->x0.data : NULL, &rng, &r->sc, r->grid, r->ngrid, r->xs,
                                 (r->k.traj || r->k.figs) ? observe : NULL, &r->k, &r->st);
    }
    r->secs = cli_now() - t0;
    return s ? cli_error("sample", "%s", fm_last_error()) : CLI_GO;
}

/* A (1- or 3-dimensional) array to .npy under the temporary name of final. */
static int write_npy(sample_run *r, const char *final, const float *x, int rank, const int64_t *shape)
{
    const char *t = cli_out_stage(&r->outs, final);
    if (!t || fm_npy_write(t, x, rank, shape) != FM_OK)
        return cli_error("sample", "%s", t ? fm_last_error() : "out of memory");
    return CLI_GO;
}

/* A token model's samples decoded, one a line: a words model's as words
 * (1-26 the letters, 0 the end), any other's as its tokens. */
static int write_tokens(const char *path, const sample_run *r)
{
    if (!fm_model_vocab(r->M)) return cli_usage_error("sample", "--out .txt writes a token model's samples (dfm)");
    int words = !strncmp(fm_model_data(r->M), "words:", 6);
    FILE *f = fopen(path, "wb");
    if (!f) return cli_error("sample", "cannot write %s: %s", path, strerror(errno));
    for (int i = 0; i < r->n; i++) {
        for (int j = 0; j < r->d; j++) {
            int t = (int)r->xs[(size_t)i * r->d + j];
            if (words && t >= 1 && t <= 26) fputc('a' + t - 1, f);
            else if (!words) fprintf(f, "%s%d", j ? " " : "", t);
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0) return cli_error("sample", "cannot write %s: %s", path, strerror(errno));
    return CLI_GO;
}

/* Pairs of tokens (a 2D set discretised, as checkerboard-tokens) drawn at
 * their bins' centres in [-2, 2)^2, samples beside the data. */
static int token_scatter(const char *path, const sample_run *r)
{
    int V = fm_model_vocab(r->M);
    size_t m = (size_t)r->n * 2;
    float *a = malloc(2 * m * sizeof(float)), *b = a ? a + m : NULL;
    if (!a) return cli_error("sample", "out of memory");
    for (size_t i = 0; i < m; i++) a[i] = (float)((r->xs[i] + 0.5) / V * 4 - 2), b[i] = (float)((r->ref[i] + 0.5) / V * 4 - 2);
    fm_status s = fm_svg_scatter(path, "samples and data (token bins in [-2, 2))", a, r->n, "samples", b, r->n,
                                 r->data_spec, 2, 2.2);
    free(a);
    return s ? cli_error("sample", "%s", fm_last_error()) : CLI_GO;
}

/* A manifold model's --scatter: its density on a map, its samples, the data. */
static int manifold_map(const char *path, sample_run *r)
{
    enum { G = 48 };
    fm_manifold m = fm_model_manifold(r->M);
    int cells = m == FM_MANIFOLD_SPHERE ? 2 * G * G : G * G, d = fm_manifold_dim(m);
    float *pts = malloc((size_t)cells * d * sizeof(float));
    double *lp = malloc((size_t)cells * sizeof(double));
    fm_status s = pts && lp ? FM_OK : FM_ERR_NOMEM;
    if (!s) fm_map_grid(m, G, pts);
    if (!s) s = fm_model_log_prob(r->M, pts, cells, lp);
    if (!s) s = fm_svg_map(path, m, "model density", r->xs, r->n, "samples", r->ref, r->n, r->data_spec, lp, G);
    free(pts);
    free(lp);
    return s ? cli_error("sample", "%s", s == FM_ERR_NOMEM && !lp ? "out of memory" : fm_last_error()) : CLI_GO;
}

/* Every output under a temporary name first; all renamed at the end. */
static int write_outputs(const sample_opts *o, sample_run *r)
{
    int rc, n = r->n, d = r->d;
    const char *to = cli_out_stage(&r->outs, o->out);
    if (to && cli_has_suffix(o->out, ".txt")) {
        if ((rc = write_tokens(to, r)) != CLI_GO) return rc;
    } else if (to && (rc = cli_write_points("sample", to, r->xs, n, d)) != CLI_GO) {
        return rc;
    }
    if (r->k.traj) {
        r->tp = o->traj_out ? NULL : cli_derive(o->out, "_traj.npy");
        int64_t shape[3] = {r->k.ntraj, n, d};
        if ((rc = write_npy(r, o->traj_out ? o->traj_out : r->tp, r->k.traj, 3, shape)) != CLI_GO) return rc;
    }
    if (r->K) {
        r->lp = o->labels_out ? NULL : cli_derive(o->out, "_labels.npy");
        int64_t shape[1] = {n};
        if ((rc = write_npy(r, o->labels_out ? o->labels_out : r->lp, r->labf, 1, shape)) != CLI_GO) return rc;
    }
    const char *tf = o->figure ? cli_out_stage(&r->outs, o->figure) : NULL;
    if (o->figure && (!tf || fm_svg_trajectory(tf, r->k.figs, r->k.fig_t, r->k.nfig, n, d, o->range) != FM_OK))
        return cli_error("sample", "%s", tf ? fm_last_error() : "out of memory");
    const char *ts = o->scatter ? cli_out_stage(&r->outs, o->scatter) : NULL;
    if (o->scatter && fm_model_manifold(r->M) != FM_MANIFOLD_AUTO) {
        if (!ts) return cli_error("sample", "out of memory");
        if ((rc = manifold_map(ts, r)) != CLI_GO) return rc;
    } else if (o->scatter && fm_model_vocab(r->M) && d == 2) {
        if (!ts) return cli_error("sample", "out of memory");
        if ((rc = token_scatter(ts, r)) != CLI_GO) return rc;
    } else if (o->scatter && (!ts || fm_svg_scatter(ts, "samples and data", r->xs, n, "samples", r->ref, n,
                                                    r->data_spec, d, o->range) != FM_OK)) {
        return cli_error("sample", "%s", ts ? fm_last_error() : "out of memory");
    }
    const char *tt = o->tgrid ? cli_out_stage(&r->outs, o->tgrid) : NULL;
    if (o->tgrid && !tt) return cli_error("sample", "out of memory");
    if (o->tgrid && (rc = traj_grid(tt, &r->k, r->ic, r->ih, r->iw)) != CLI_GO) return rc;
    const char *tg = o->pgrid ? cli_out_stage(&r->outs, o->pgrid) : NULL;
    if (o->pgrid && (!tg || fm_png_write_grid(tg, r->xs, n, r->ic, r->ih, r->iw, o->gcols, 0.0f, 1.0f) != FM_OK))
        return cli_error("sample", "%s", tg ? fm_last_error() : "out of memory");
    if (!to) return cli_error("sample", "out of memory");
    return cli_out_commit("sample", &r->outs);
}

/* The summary line: sampler, NFE, time and the files written. */
static void print_summary(const sample_opts *o, const sample_run *r)
{
    const fm_solver_config *sc = &r->sc;
    char kind[32];
    cli_model_kind(r->M, kind, sizeof kind);
    fm_sampling how = fm_model_sampling(r->M);
    if (how == FM_SAMPLING_DIRECT)
        printf("%s %d points in one pass of the %s model (NFE 1), %.3f s -> %s", o->recon ? "reconstructed" : "sampled",
               r->n, kind, r->secs, o->out);
    else if (how == FM_SAMPLING_OWN)
        printf("sampled %d points with %s %s in %d steps, NFE %ld, %.3f s -> %s", r->n, kind, sc->sampler,
               r->ngrid - 1, r->st.nfe, r->secs, o->out);
    else {
        char how_s[96];
        if (sc->sampler && !strcmp(sc->sampler, "pc"))
            snprintf(how_s, sizeof how_s, "pc (Euler-Maruyama on the reverse SDE, G = %g, %d Langevin steps, snr %g)",
                     sc->noise, sc->corrector_steps, sc->snr);
        else if (sc->sampler)
            snprintf(how_s, sizeof how_s, "%s (Euler-Maruyama%s, noise G = %g)", sc->sampler,
                     strcmp(sc->sampler, "em") ? "" : " on the reverse SDE", sc->noise);
        else snprintf(how_s, sizeof how_s, "%s", fm_solver_name(sc->kind));
        printf("sampled %d points with %s on %d grid points (t %.3g to %.3g), NFE %ld", r->n, how_s, r->ngrid, r->grid[0],
               r->grid[r->ngrid - 1], r->st.nfe);
        if (sc->kind == FM_SOLVER_DOPRI5) printf(" (%ld steps, %ld rejected)", r->st.steps, r->st.rejected);
        printf(", %.3f s -> %s", r->secs, o->out);
    }
    if (r->k.traj) printf(", %s (%d states)", o->traj_out ? o->traj_out : r->tp, r->k.ntraj);
    if (r->K)
        printf(", labels %s (guidance %g%s) -> %s", o->fixed == -2 ? "by row" : o->label, o->guidance,
               o->guidance != 1.0 ? ", 2 network passes per evaluation" : "", o->labels_out ? o->labels_out : r->lp);
    const char *more[] = {o->figure, o->scatter, o->pgrid, o->tgrid};
    for (int i = 0; i < 4; i++)
        if (more[i]) printf(", %s", more[i]);
    printf("\n");
}

/* Everything after the options: CLI_OK, or the exit code of the step that failed. */
static int run(sample_opts *o, const cli_spec *spec, sample_run *r)
{
    int rc;
    fm_set_threads(o->threads);
    if ((rc = open_model(o, spec, r)) != CLI_GO) return rc;
    if ((rc = read_start(o, r)) != CLI_GO) return rc;
    if ((rc = check_images(o, r)) != CLI_GO) return rc;
    if ((rc = cli_dist_go("sample", draw_reference(o, r))) != CLI_GO) return rc;
    if ((rc = make_buffers(o, r)) != CLI_GO) return rc;
    if ((rc = set_labels(o, r)) != CLI_GO) return rc;
    if ((rc = draw_samples(o, r)) != CLI_GO) return rc;
    if ((rc = write_outputs(o, r)) != CLI_GO) return rc;
    if (!o->quiet) print_summary(o, r);
    return CLI_OK;
}

int cmd_sample(int argc, char **argv)
{
    sample_opts o = {.out = "samples.npy", .label = "all", .guidance = 1.0, .n = -1, .gcols = 8, .range = 3.0,
                     .so = cli_solver_defaults()};
    const cli_opt opts[] = {
        {"model", OPT_STR, &o.model, "FILE", "checkpoint written by train (required)"},
        {"n", OPT_INT, &o.n, "N", "number of samples (default 2000, or the rows of --x0)"},
        CLI_SOLVER_OPTIONS(o.so),
        {"seed", OPT_I64, &o.seed, "N", "random seed for the starting noise"},
        {"schedule", OPT_STR, &o.schedule, "PATH", "sample along this path (its defaults) instead of the trained one"},
        {"x0", OPT_STR, &o.x0file, "FILE", "start from these points (.npy or .csv) instead of fresh noise"},
        {"reconstruct", OPT_STR, &o.recon, "FILE", "vae: encode and decode these points instead of sampling"},
        {"label", OPT_STR, &o.label, "L", "class-conditional models: a class, 'none', or 'all' (row r of --grid is class r)"},
        {"guidance", OPT_DOUBLE, &o.guidance, "W", "classifier-free guidance v_u + W (v_c - v_u) (1: conditional only)"},
        {"labels-out", OPT_STR, &o.labels_out, "FILE", "the requested labels, -1 for none (default: <out>_labels.npy)"},
        {"out", OPT_STR, &o.out, "FILE", "samples (.npy or .csv)"},
        {"save-every", OPT_INT, &o.save_every, "K", "also keep the state every K grid points"},
        {"traj", OPT_STR, &o.traj_out, "FILE", "where --save-every writes (n_states, n, dim) (default: <out>_traj.npy)"},
        {"figure", OPT_STR, &o.figure, "FILE", "trajectory panels (up to 9 states) as SVG"},
        {"scatter", OPT_STR, &o.scatter, "FILE", "samples against fresh training data as SVG"},
        {"range", OPT_DOUBLE, &o.range, "R", "figure axes span [-R, R]"},
        {"grid", OPT_STR, &o.pgrid, "FILE", "image models: the samples as a PNG grid"},
        {"grid-cols", OPT_INT, &o.gcols, "N", "images per row of --grid"},
        {"traj-grid", OPT_STR, &o.tgrid, "FILE", "image flows: up to 8 samples (rows) at 9 times (columns) as PNG"},
        {"no-ema", OPT_FLAG, &o.no_ema, NULL, "use the raw weights even if the checkpoint has EMA weights"},
        {"threads", OPT_INT, &o.threads, "N", "threads (0: all cores)"},
        {"quiet", OPT_FLAG, &o.quiet, NULL, "no summary line"},
        {"force", OPT_FLAG, &o.force, NULL, "let the default --out replace an existing file"},
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
                           "written unless every output can be. --schedule PATH samples a flow trained on one\n"
                           "path along another (a schedule transformation: the same marginals at equal\n"
                           "signal-to-noise ratio), e.g. an ot model along the cosine path.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, given};
    int npos, rc;
    if ((rc = cli_parse(&spec, argc, argv, NULL, &npos)) != CLI_GO) return rc;
    if ((rc = check_options(&o)) != CLI_GO) return rc;
    if ((rc = cli_default_output("sample", &spec, "out", o.out, o.force)) != CLI_GO) return rc;
    sample_run r = {0};
    rc = run(&o, &spec, &r);
    run_free(&r);
    return rc;
}
