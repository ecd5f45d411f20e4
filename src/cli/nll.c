/* nll.c - `flowmatch nll`: the model's log-likelihood of points, by integrating
 * its ODE backwards with the change of variables; per point to .npy, the mean
 * in nats and bits per dimension, and optionally a density heat map.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int cmd_nll(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *out = NULL, *plot = NULL, *probe = "rademacher";
    int n = 2000, hutch = 0, exact = 0, no_ema = 0, threads = 0, grid_n = 100, deq = 0;
    int64_t seed = 0;
    double range = 3.0;
    cli_solver_opts so = cli_solver_defaults();
    so.solver = "rk4";
    so.steps = 100;
    const cli_opt opts[] = {
        {"model", OPT_STR, &model, "FILE", "checkpoint (required)"},
        {"data", OPT_STR, &data, "X", "points: FILE.npy, FILE.csv or a dataset to draw --n points from (required)"},
        {"n", OPT_INT, &n, "N", "points drawn when --data is a dataset"},
        {"seed", OPT_I64, &seed, "N", "random seed for drawn points and Hutchinson probes"},
        CLI_SOLVER_OPTIONS(so),
        {"exact", OPT_FLAG, &exact, NULL, "exact divergence, one vector-Jacobian product per dimension (default)"},
        {"hutchinson", OPT_INT, &hutch, "K", "Hutchinson's estimate with K probes instead"},
        {"probe", OPT_STR, &probe, "KIND", "Hutchinson probes: rademacher or gaussian"},
        {"dequantize", OPT_FLAG, &deq, NULL, "image pixels: spread each byte over its 1/256 cell, report bits/dim of the bytes"},
        {"out", OPT_STR, &out, "FILE", "log p per point (.npy or .csv)"},
        {"plot", OPT_STR, &plot, "FILE", "density heat map beside the data (.svg; 2-D models)"},
        {"grid", OPT_INT, &grid_n, "G", "heat map resolution"},
        {"range", OPT_DOUBLE, &range, "R", "heat map spans [-R, R]^2"},
        {"no-ema", OPT_FLAG, &no_ema, NULL, "use the raw weights even if the checkpoint has EMA weights"},
        {"threads", OPT_INT, &threads, "N", "threads (0: all cores)"},
    };
    unsigned char given[sizeof opts / sizeof opts[0]] = {0};
    const cli_spec spec = {"nll", NULL, "Log-likelihood of points under a trained flow.",
                           "log p1(x) = log p0(x0) - integral of div v_t along the ODE path from x back to t = 0,\n"
                           "accumulated in double. --steps N is a uniform grid of N steps from t-end down to 0\n"
                           "(default rk4, 100 steps; dopri5 adapts, from one step unless --steps is given). The divergence is exact by default or\n"
                           "Hutchinson's estimate with --hutchinson K probes, fixed for the solve, with its\n"
                           "standard error. The source must have a density: N(0, I) or 8gaussians.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, given};
    int npos;
    int rc = cli_parse(&spec, argc, argv, NULL, &npos);
    if (rc >= 0) return rc;
    if (!strcmp(so.solver, "dopri5") && !cli_given(&spec, "steps")) so.steps = 1;
#define BAD(...) return cli_usage_error("nll", __VA_ARGS__)
    if (!model || !data) BAD("--model and --data are required");
    if (n < 1 || n > (1 << 24)) BAD("--n %d is invalid", n);
    if (hutch < 0 || hutch > 1024) BAD("--hutchinson %d must lie in 1..1024", hutch);
    if (exact && hutch) BAD("--exact and --hutchinson exclude each other");
    if (cli_given(&spec, "probe") && !hutch) BAD("--probe needs --hutchinson K");
    if (strcmp(probe, "rademacher") && strcmp(probe, "gaussian")) BAD("--probe must be rademacher or gaussian, not '%s'", probe);
    if (out && !cli_has_suffix(out, ".npy") && !cli_has_suffix(out, ".csv")) BAD("--out '%s' must end in .npy or .csv", out);
    if (plot && !cli_has_suffix(plot, ".svg")) BAD("--plot '%s' must end in .svg", plot);
    if (grid_n < 2 || grid_n > 1000 || !(range > 0)) BAD("--grid must lie in 2..1000 and --range be > 0");
    if (seed < 0 || threads < 0 || threads > 1024) BAD("--seed must be >= 0 and --threads in 0..1024");
#undef BAD
    if ((rc = cli_solver_check("nll", &so, 1)) >= 0) return rc;
    fm_set_threads(threads);
    fm_model *holder;
    fm_flow *f;
    if ((rc = cli_load_flow("nll", model, !no_ema, &holder, &f)) >= 0) return rc;
    const fm_flow_config *fc = fm_flow_get_config(f);
    int d = fc->dim;
    fm_table pts = {0};
    double *logp = NULL, *se = NULL, *grid = NULL, *gl = NULL;
    float *gp = NULL;
    cli_outputs outs = {0};
    int ngrid = 0;
    fm_solver_config sc;
    if (plot && d != 2) {
        rc = cli_error("nll", "--plot needs a 2-dimensional model, this one has %d dimensions", d);
        goto done;
    }
    if (deq && !fm_spec_image_shape(fc->data, NULL, NULL, NULL)) {
        rc = cli_usage_error("nll", "--dequantize needs an image model; %s was trained on '%s'", model, fc->data);
        goto done;
    }
    /* the grid runs from the path's end time down to 0 */
    if ((rc = cli_solver_setup("nll", &so, &fc->path, &sc, &grid, &ngrid, 1)) >= 0) goto done;
    for (int i = 0; i < ngrid / 2; i++) {
        double t = grid[i];
        grid[i] = grid[ngrid - 1 - i];
        grid[ngrid - 1 - i] = t;
    }
    if (cli_has_suffix(data, ".npy") || cli_has_suffix(data, ".csv")) {
        if (fm_points_read(data, &pts) != FM_OK) {
            rc = cli_error("nll", "%s", fm_last_error());
            goto done;
        }
    } else {
        fm_dataset *ds = fm_dataset_open(data);
        if (!ds) {
            fprintf(stderr, "flowmatch nll: %s\n", fm_last_error());
            rc = cli_status_code(fm_last_status());
            goto done;
        }
        pts.cols = fm_dataset_dim(ds);
        pts.rows = n;
        pts.data = malloc((size_t)n * pts.cols * sizeof(float));
        fm_rng r;
        fm_rng_seed(&r, (uint64_t)seed, FM_STREAM_DATA);
        fm_status s = pts.data ? fm_dataset_sample(ds, &r, pts.data, n) : FM_ERR_NOMEM;
        fm_dataset_free(ds);
        if (s) {
            rc = cli_error("nll", "drawing %s: %s", data, s == FM_ERR_NOMEM ? "out of memory" : fm_last_error());
            goto done;
        }
    }
    if (pts.cols != d) {
        rc = cli_error("nll", "the points have %d dimensions, the model %d", pts.cols, d);
        goto done;
    }
    for (size_t i = 0; i < (size_t)pts.rows * d; i++)
        if (!isfinite(pts.data[i])) {
            rc = cli_error("nll", "%s: row %zu holds a NaN or infinite value", data, i / d + 1);
            goto done;
        }
    if (deq) { /* pixels b / 255 -> (b + u) / 256, u from its own stream */
        fm_rng rq;
        fm_rng_seed(&rq, (uint64_t)seed + 7, FM_STREAM_NOISE);
        fm_dequantize(pts.data, (size_t)pts.rows * d, &rq);
    }
    logp = malloc((size_t)pts.rows * sizeof(double));
    se = malloc((size_t)pts.rows * sizeof(double));
    if (!logp || !se) {
        rc = cli_error("nll", "out of memory");
        goto done;
    }
    fm_nll_config nc = {sc, grid, ngrid, FM_DIV_EXACT, 0, (uint64_t)seed};
    if (hutch) {
        nc.div = strcmp(probe, "gaussian") ? FM_DIV_HUTCH_RADEMACHER : FM_DIV_HUTCH_GAUSSIAN;
        nc.probes = hutch;
    }
    fm_solve_stats st;
    double t0 = cli_now();
    if (fm_flow_log_likelihood(f, pts.data, pts.rows, &nc, logp, se, &st) != FM_OK) {
        rc = cli_error("nll", "%s", fm_last_error());
        goto done;
    }
    double secs = cli_now() - t0, mean = 0, mse = 0;
    for (int i = 0; i < pts.rows; i++) mean += logp[i] / pts.rows, mse += se[i] * se[i];
    mse = sqrt(mse) / pts.rows; /* the mean's standard error: the points' estimates are independent */
    double mass = NAN;
    if (plot) {
        int G = grid_n;
        gp = malloc((size_t)G * G * 2 * sizeof(float));
        gl = malloc((size_t)G * G * sizeof(double));
        if (!gp || !gl) {
            rc = cli_error("nll", "out of memory for the heat map");
            goto done;
        }
        double h = 2 * range / G;
        for (int i = 0; i < G; i++)
            for (int j = 0; j < G; j++) {
                gp[2 * ((size_t)i * G + j)] = (float)(-range + (j + 0.5) * h);
                gp[2 * ((size_t)i * G + j) + 1] = (float)(-range + (i + 0.5) * h);
            }
        nc.div = FM_DIV_EXACT;
        if (fm_flow_log_likelihood(f, gp, G * G, &nc, gl, NULL, NULL) != FM_OK) {
            rc = cli_error("nll", "%s", fm_last_error());
            goto done;
        }
        mass = 0;
        for (int i = 0; i < G * G; i++) mass += exp(gl[i]) * h * h;
        const char *tp = cli_out_stage(&outs, plot);
        if (!tp || fm_svg_density(tp, "model density", gl, G, -range, range, pts.data, pts.rows, d) != FM_OK) {
            rc = cli_error("nll", "%s", tp ? fm_last_error() : "out of memory");
            goto done;
        }
    }
    if (out) {
        const char *to = cli_out_stage(&outs, out);
        float *lf = malloc((size_t)pts.rows * sizeof(float));
        if (!to || !lf) {
            free(lf);
            rc = cli_error("nll", "out of memory");
            goto done;
        }
        for (int i = 0; i < pts.rows; i++) lf[i] = (float)logp[i];
        rc = cli_write_points("nll", to, lf, pts.rows, 1);
        free(lf);
        if (rc >= 0) goto done;
    }
    if ((rc = cli_out_commit("nll", &outs)) >= 0) goto done;
    printf("log-likelihood of %d points (%s, %d grid points from t = %.3g to 0, NFE %ld, %s divergence", pts.rows,
           fm_solver_name(sc.kind), ngrid, grid[0], st.nfe, hutch ? probe : "exact");
    if (hutch) printf(", %d probes", hutch);
    printf(", %.2f s)\n", secs);
    printf("  mean log p   %.4f nats\n  NLL          %.4f nats, %.4f bits per dimension\n", mean, -mean,
           -mean / (d * log(2.0)));
    /* log P(bytes) >= E_u log p((b + u) / 256) - d log 256 (Jensen): an upper bound in bits */
    if (deq) printf("  of the 8-bit pixels (dequantised, an upper bound): %.4f bits per dimension\n",
                    -mean / (d * log(2.0)) + 8.0);
    if (hutch > 1) printf("  Hutchinson's standard error of the mean: %.4f nats\n", mse);
    else if (hutch) printf("  Hutchinson's standard error needs two probes or more\n");
    if (plot) printf("  the density integrates to %.4f over the plot's grid\n", mass);
    rc = CLI_OK;
done:
    cli_out_abort(&outs);
    free(logp);
    free(se);
    free(grid);
    free(gp);
    free(gl);
    fm_table_free(&pts);
    fm_model_free(holder);
    return rc;
}
