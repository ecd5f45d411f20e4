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

int cmd_demo(int argc, char **argv)
{
    const char *dir = "demo";
    int64_t seed = 0, iters = 10000;
    int threads = 0, quiet = 0;
    const cli_opt opts[] = {
        {"out-dir", OPT_STR, &dir, "DIR", "where the checkpoint, samples and figures go"},
        {"seed", OPT_I64, &seed, "N", "training and sampling seed"},
        {"iters", OPT_I64, &iters, "N", "training iterations"},
        {"threads", OPT_INT, &threads, "N", "threads (0: all cores)"},
        {"quiet", OPT_FLAG, &quiet, NULL, "no progress line"},
    };
    const cli_spec spec = {"demo", NULL, "Reproduce the tutorial's 2D flow-matching example end to end.",
                           "Writes DIR/model.safetensors, DIR/loss.csv, DIR/loss.svg, DIR/trajectory.svg\n"
                           "(300 points, 8 midpoint steps, t = 0.00 ... 1.00, axes [-3, 3]),\n"
                           "DIR/trajectory.npy, DIR/samples.npy and DIR/samples.svg, and prints the exact\n"
                           "W2 distance of 2000 samples to 2000 fresh moons.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, NULL};
    int npos;
    int rc = cli_parse(&spec, argc, argv, NULL, &npos);
    if (rc >= 0) return rc;
    if (seed < 0 || iters < 1 || threads < 0 || threads > 1024)
        return cli_usage_error("demo", "--seed must be >= 0, --threads in 0..1024 and --iters >= 1");
    if ((rc = cli_make_dir("demo", dir)) >= 0) return rc;
    fm_set_threads(threads);
    double t_start = cli_now();
    char path[4096];
#define FILE_IN(name) (snprintf(path, sizeof path, "%s/%s", dir, name), path)

    fm_train_config c = fm_train_config_default();
    c.seed = (uint64_t)seed;
    c.iters = iters;
    /* An EMA of the weights rides along: it does not change training, and its
     * samples show what the same budget can give. */
    c.ema_decay = 0.999;
    fm_trainer *tr = fm_trainer_new(&c);
    if (!tr) return cli_error("demo", "%s", fm_last_error());
    if (!quiet) fprintf(stderr, "training the tutorial's flow on moons: %lld iterations of 256\n", (long long)iters);
    cli_losses log;
    double train_s;
    rc = cli_train_loop("demo", tr, iters, 1000, quiet, &log, &train_s);
    int64_t done = log.n;
    if (rc >= 0) {
        fm_trainer_free(tr);
        return rc;
    }
    if (fm_trainer_save(tr, FILE_IN("model.safetensors")) != FM_OK) rc = cli_error("demo", "%s", fm_last_error());
    char csv[4096];
    snprintf(csv, sizeof csv, "%s/loss.csv", dir);
    if (rc < 0) rc = cli_write_losses("demo", csv, FILE_IN("loss.svg"), &log, 0, NULL);
    cli_losses_free(&log);

    fm_flow *f = fm_trainer_flow(tr);
    fm_solver_config sc = fm_solver_config_default(FM_SOLVER_MIDPOINT);
    double grid[9];
    fm_time_grid_uniform(grid, 8, 0.0, 1.0);
    float *frames = malloc(9 * 300 * 2 * sizeof(float)), *xs = malloc(300 * 2 * sizeof(float));
    float *big = malloc(2000 * 2 * sizeof(float)), *ref = malloc(2000 * 2 * sizeof(float));
    fm_rng r;
    fm_solve_stats st;
    double t_sample = cli_now(), w2 = 0;
    if (rc < 0 && (!frames || !xs || !big || !ref)) rc = cli_error("demo", "out of memory");
    if (rc < 0) {
        /* 300 points through 8 midpoint steps, every state kept for the figure */
        fm_rng_seed(&r, (uint64_t)seed, FM_STREAM_NOISE);
        if (fm_flow_sample(f, 300, NULL, &r, &sc, grid, 9, xs, keep_frame, frames, &st) != FM_OK)
            rc = cli_error("demo", "%s", fm_last_error());
    }
    if (rc < 0) {
        int64_t shape[3] = {9, 300, 2};
        if (fm_npy_write(FILE_IN("trajectory.npy"), frames, 3, shape) != FM_OK ||
            fm_svg_trajectory(FILE_IN("trajectory.svg"), frames, grid, 9, 300, 2, 3.0) != FM_OK)
            rc = cli_error("demo", "%s", fm_last_error());
    }
    double w2_ema = 0;
    if (rc < 0) {
        /* 2000 samples against 2000 fresh moons, from the tutorial's weights and
         * then from their EMA, with the same starting noise */
        fm_dataset *moons = fm_dataset_open(fm_flow_get_config(f)->data);
        fm_rng rd;
        fm_rng_seed(&rd, (uint64_t)seed + 1, FM_STREAM_DATA);
        fm_status s = moons ? fm_dataset_sample(moons, &rd, ref, 2000) : FM_ERR_ARG;
        fm_dataset_free(moons);
        fm_rng_seed(&r, (uint64_t)seed + 1, FM_STREAM_NOISE);
        if (!s) s = fm_flow_sample(f, 2000, NULL, &r, &sc, grid, 9, big, NULL, NULL, &st);
        int64_t shape[2] = {2000, 2};
        if (!s) s = fm_npy_write(FILE_IN("samples.npy"), big, 2, shape);
        if (!s) s = fm_svg_scatter(FILE_IN("samples.svg"), "2000 samples (8 midpoint steps) and 2000 fresh moons", big,
                                   2000, "samples", ref, 2000, "moons", 2, 3.0);
        if (!s) s = fm_w2_exact(big, ref, 2000, 2, &w2, NULL);
        fm_params *P = fm_flow_params(f);
        fm_ema *ema = fm_trainer_ema(tr);
        if (!s) s = fm_ema_swap(ema, P);
        fm_rng_seed(&r, (uint64_t)seed + 1, FM_STREAM_NOISE);
        if (!s) s = fm_flow_sample(f, 2000, NULL, &r, &sc, grid, 9, big, NULL, NULL, &st);
        if (!s) s = fm_w2_exact(big, ref, 2000, 2, &w2_ema, NULL);
        if (!s) s = fm_ema_swap(ema, P);
        if (s) rc = cli_error("demo", "%s", fm_last_error());
    }
    double t_end = cli_now();
    if (rc < 0) {
        printf("trained %lld iterations in %.2f s (%.0f it/s, %d threads)\n", (long long)done, train_s,
               done / (train_s > 0 ? train_s : 1e-9), fm_get_threads());
        printf("sampled 300 + 2 x 2000 points with 8 midpoint steps (NFE %ld each) and measured W2 in %.2f s\n", st.nfe,
               t_end - t_sample);
        printf("W2 (exact) of 2000 samples to 2000 fresh moons: %.4f\n", w2);
        printf("  the same run's EMA weights (decay 0.999, no extra training): %.4f\n", w2_ema);
        printf("wrote %s/{model.safetensors, loss.csv, loss.svg, trajectory.svg, trajectory.npy, samples.npy, "
               "samples.svg}\n",
               dir);
        printf("total %.2f s\n", t_end - t_start);
        rc = CLI_OK;
    }
#undef FILE_IN
    free(frames);
    free(xs);
    free(big);
    free(ref);
    fm_trainer_free(tr);
    return rc;
}
