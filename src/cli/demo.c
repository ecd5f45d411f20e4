/* demo.c - `flowmatch demo`: the tutorial's 2D example end to end.
 *
 * Trains the tutorial's model (moons with noise 0.05, MLP 3 x 64 ELU on
 * concat(t, x), OT path with sigma_min 0, Adam 1e-2, 10,000 iterations of 256),
 * draws 300 points through 8 midpoint steps into the 9-panel figure, and
 * measures the exact W2 of 2000 samples against 2000 fresh moons. An EMA of
 * the weights is kept alongside (it leaves training unchanged) and its W2 is
 * reported too; the checkpoint holds both, and `flowmatch sample` uses the EMA.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

/* Observer: state k of n floats into frame k. */
static fm_status keep_frame(void *frames, int k, double t, const float *x, size_t n)
{
    (void)t;
    memcpy((float *)frames + (size_t)k * n, x, n * sizeof(float));
    return FM_OK;
}

typedef struct {
    const char *dir;
    int64_t seed, iters;
    int threads, quiet, force;
} demo_opts;

/* One run: the trainer, the sampler and what it drew. */
typedef struct {
    fm_trainer *tr;
    int64_t done;        /* iterations trained */
    double train_s;
    fm_solver_config sc; /* 8 midpoint steps on grid */
    double grid[9];
    float *frames, *xs;  /* the figure's 300 points: (9, 300, 2) and (300, 2) */
    float *big, *ref;    /* 2000 samples and 2000 fresh moons */
    fm_solve_stats st;
    double w2, w2_ema;
    char path[4096];
} demo_run;

static void run_free(demo_run *r)
{
    free(r->frames);
    free(r->xs);
    free(r->big);
    free(r->ref);
    fm_trainer_free(r->tr);
}

/* DIR/name, in r->path. */
static const char *file_in(const demo_opts *o, demo_run *r, const char *name)
{
    snprintf(r->path, sizeof r->path, "%s/%s", o->dir, name);
    return r->path;
}

/* The tutorial's training run, its checkpoint and its losses. */
static int train_model(const demo_opts *o, demo_run *r)
{
    fm_train_config c = fm_train_config_default();
    c.seed = (uint64_t)o->seed;
    c.iters = o->iters;
    /* An EMA of the weights rides along: it does not change training, and its
     * samples show what the same budget can give. */
    c.ema_decay = 0.999;
    r->tr = fm_trainer_new(&c);
    if (!r->tr) return cli_error("demo", "%s", fm_last_error());
    if (!o->quiet)
        fprintf(stderr, "training the tutorial's flow on moons: %lld iterations of %d\n", (long long)o->iters, c.batch);
    cli_losses log;
    int rc = cli_train_loop("demo", r->tr, o->iters, 1000, o->quiet, &log, &r->train_s, NULL);
    if (rc != CLI_GO) return rc;
    r->done = log.n;
    if (fm_trainer_save(r->tr, file_in(o, r, "model.safetensors")) != FM_OK)
        rc = cli_error("demo", "%s", fm_last_error());
    char csv[4096];
    snprintf(csv, sizeof csv, "%s/loss.csv", o->dir);
    if (rc == CLI_GO) rc = cli_write_losses("demo", csv, file_in(o, r, "loss.svg"), &log, 0, NULL);
    cli_losses_free(&log);
    return rc;
}

/* 300 points through 8 midpoint steps, every state kept for the figure. */
static int draw_trajectory(const demo_opts *o, demo_run *r)
{
    fm_flow *f = fm_trainer_flow(r->tr);
    r->sc = fm_solver_config_default(FM_SOLVER_MIDPOINT);
    fm_time_grid_uniform(r->grid, 8, 0.0, 1.0);
    r->frames = malloc(9 * 300 * 2 * sizeof(float));
    r->xs = malloc(300 * 2 * sizeof(float));
    r->big = malloc(2000 * 2 * sizeof(float));
    r->ref = malloc(2000 * 2 * sizeof(float));
    if (!r->frames || !r->xs || !r->big || !r->ref) return cli_error("demo", "out of memory");
    fm_rng rng;
    fm_rng_seed(&rng, (uint64_t)o->seed, FM_STREAM_NOISE);
    if (fm_flow_sample(f, 300, NULL, &rng, &r->sc, r->grid, 9, r->xs, keep_frame, r->frames, &r->st) != FM_OK)
        return cli_error("demo", "%s", fm_last_error());
    int64_t shape[3] = {9, 300, 2};
    if (fm_npy_write(file_in(o, r, "trajectory.npy"), r->frames, 3, shape) != FM_OK ||
        fm_svg_trajectory(file_in(o, r, "trajectory.svg"), r->frames, r->grid, 9, 300, 2, 3.0) != FM_OK)
        return cli_error("demo", "%s", fm_last_error());
    return CLI_GO;
}

/* 2000 samples against 2000 fresh moons, from the tutorial's weights and
 * then from their EMA, with the same starting noise. */
static int measure_w2(const demo_opts *o, demo_run *r)
{
    fm_flow *f = fm_trainer_flow(r->tr);
    fm_dataset *moons = fm_dataset_open(fm_flow_get_config(f)->data);
    fm_rng rd, rng;
    fm_rng_seed(&rd, (uint64_t)o->seed + 1, FM_STREAM_DATA);
    fm_status s = moons ? fm_dataset_sample(moons, &rd, r->ref, 2000) : FM_ERR_ARG;
    fm_dataset_free(moons);
    fm_rng_seed(&rng, (uint64_t)o->seed + 1, FM_STREAM_NOISE);
    if (!s) s = fm_flow_sample(f, 2000, NULL, &rng, &r->sc, r->grid, 9, r->big, NULL, NULL, &r->st);
    int64_t shape[2] = {2000, 2};
    if (!s) s = fm_npy_write(file_in(o, r, "samples.npy"), r->big, 2, shape);
    if (!s) s = fm_svg_scatter(file_in(o, r, "samples.svg"), "2000 samples (8 midpoint steps) and 2000 fresh moons",
                               r->big, 2000, "samples", r->ref, 2000, "moons", 2, 3.0);
    if (!s) s = fm_w2_exact(r->big, r->ref, 2000, 2, &r->w2, NULL);
    fm_params *P = fm_flow_params(f);
    fm_ema *ema = fm_trainer_ema(r->tr);
    if (!s) s = fm_ema_swap(ema, P);
    fm_rng_seed(&rng, (uint64_t)o->seed + 1, FM_STREAM_NOISE);
    if (!s) s = fm_flow_sample(f, 2000, NULL, &rng, &r->sc, r->grid, 9, r->big, NULL, NULL, &r->st);
    if (!s) s = fm_w2_exact(r->big, r->ref, 2000, 2, &r->w2_ema, NULL);
    if (!s) s = fm_ema_swap(ema, P);
    return s ? cli_error("demo", "%s", fm_last_error()) : CLI_GO;
}

/* Everything after the options: CLI_OK, or the exit code of the step that failed. */
static int run(const demo_opts *o, demo_run *r)
{
    double t_start = cli_now();
    int rc;
    if ((rc = train_model(o, r)) != CLI_GO) return rc;
    double t_sample = cli_now();
    if ((rc = draw_trajectory(o, r)) != CLI_GO) return rc;
    if ((rc = measure_w2(o, r)) != CLI_GO) return rc;
    double t_end = cli_now();
    printf("trained %lld iterations in %.2f s (%.0f it/s, %d threads)\n", (long long)r->done, r->train_s,
           r->done / (r->train_s > 0 ? r->train_s : 1e-9), fm_get_threads());
    printf("sampled 300 + 2 x 2000 points with 8 midpoint steps (NFE %ld each) and measured W2 in %.2f s\n", r->st.nfe,
           t_end - t_sample);
    printf("W2 (exact) of 2000 samples to 2000 fresh moons: %.4f\n", r->w2);
    printf("  the same run's EMA weights (decay 0.999, no extra training): %.4f\n", r->w2_ema);
    printf("wrote %s/{model.safetensors, loss.csv, loss.svg, trajectory.svg, trajectory.npy, samples.npy, "
           "samples.svg}\n",
           o->dir);
    printf("total %.2f s\n", t_end - t_start);
    return CLI_OK;
}

int cmd_demo(int argc, char **argv)
{
    fm_train_config c = fm_train_config_default(); /* the tutorial's run */
    demo_opts o = {.dir = "demo", .seed = (int64_t)c.seed, .iters = c.iters};
    const cli_opt opts[] = {
        {"out-dir", OPT_STR, &o.dir, "DIR", "where the checkpoint, samples and figures go"},
        {"seed", OPT_I64, &o.seed, "N", "training and sampling seed"},
        {"iters", OPT_I64, &o.iters, "N", "training iterations"},
        {"threads", OPT_INT, &o.threads, "N", "threads (0: all cores)"},
        {"quiet", OPT_FLAG, &o.quiet, NULL, "no progress line"},
        {"force", OPT_FLAG, &o.force, NULL, "replace the files of an earlier run in the default folder"},
    };
    unsigned char given[sizeof opts / sizeof opts[0]] = {0};
    const cli_spec spec = {"demo", NULL, "Reproduce the tutorial's 2D flow-matching example end to end.",
                           "Writes DIR/model.safetensors, DIR/loss.csv, DIR/loss.svg, DIR/trajectory.svg\n"
                           "(300 points, 8 midpoint steps, t = 0.00 ... 1.00, axes [-3, 3]),\n"
                           "DIR/trajectory.npy, DIR/samples.npy and DIR/samples.svg, and prints the exact\n"
                           "W2 distance of 2000 samples to 2000 fresh moons.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, given};
    int npos, rc;
    if ((rc = cli_parse(&spec, argc, argv, NULL, &npos)) != CLI_GO) return rc;
    if (o.seed < 0 || o.iters < 1 || o.threads < 0 || o.threads > 1024)
        return cli_usage_error("demo", "--seed must be >= 0, --threads in 0..1024 and --iters >= 1");
    static const char *const files[] = {"model.safetensors", "loss.csv",     "loss.svg",   "trajectory.svg",
                                        "trajectory.npy",    "samples.npy", "samples.svg"};
    if ((rc = cli_dir_outputs("demo", &spec, o.dir, files, 7, o.force)) != CLI_GO) return rc; /* before training */
    fm_set_threads(o.threads);
    demo_run r = {0};
    rc = run(&o, &r);
    run_free(&r);
    return cli_exit_code(rc); /* 128 + the signal after an interrupted run */
}
