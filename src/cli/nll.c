/* nll.c - `flowmatch nll`: the model's log-likelihood of points, by integrating
 * a flow's ODE backwards with the change of variables, or in closed form for
 * a model that has one (a normalizing flow); per point to .npy, the mean in
 * nats and bits per dimension, and optionally a density heat map.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The command line. */
typedef struct {
    const char *model, *data, *out, *plot, *probe;
    int n, hutch, exact, no_ema, threads, grid_n, deq, json;
    int64_t seed;
    double range;
    cli_solver_opts so;
} nll_opts;

/* One run: the flow, the points, their log-likelihoods and the heat map's. */
typedef struct {
    fm_model *holder;
    fm_flow *f;                 /* a flow (an ODE solve), or NULL: a closed-form density */
    const fm_flow_config *fc;
    int d;
    fm_table pts;
    fm_solver_config sc;
    double *grid; /* from the path's end time down to 0 */
    int ngrid;
    fm_nll_config nc;
    double *logp, *se;    /* (pts.rows) */
    float *gp;            /* the heat map's points (G G, 2) */
    double *gl;           /* and their log p */
    fm_solve_stats st;
    double secs, mean, mse, mass;
    cli_outputs outs;
} nll_run;

static void run_free(nll_run *r)
{
    cli_out_abort(&r->outs);
    free(r->logp);
    free(r->se);
    free(r->grid);
    free(r->gp);
    free(r->gl);
    fm_table_free(&r->pts);
    fm_model_free(r->holder);
}

/* The options on their own, before any file is read. */
static int check_options(nll_opts *o, const cli_spec *spec)
{
    if (!strcmp(o->so.solver, "dopri5") && !cli_given(spec, "steps")) o->so.steps = 1;
#define BAD(...) return cli_usage_error("nll", __VA_ARGS__)
    if (!o->model || !o->data) BAD("--model and --data are required");
    if (o->n < 1 || o->n > (1 << 24)) BAD("--n %d is invalid", o->n);
    if (!strcmp(o->so.solver, "sde") || !strcmp(o->so.solver, "em") || !strcmp(o->so.solver, "pc"))
        BAD("the likelihood needs an ODE solver (euler, midpoint, heun, heun3, rk4, dopri5), not the stochastic %s", o->so.solver);
    if (o->hutch < 0 || o->hutch > 1024) BAD("--hutchinson %d must lie in 1..1024", o->hutch);
    if (o->exact && o->hutch) BAD("--exact and --hutchinson exclude each other");
    if (cli_given(spec, "probe") && !o->hutch) BAD("--probe needs --hutchinson K");
    if (strcmp(o->probe, "rademacher") && strcmp(o->probe, "gaussian"))
        BAD("--probe must be rademacher or gaussian, not '%s'", o->probe);
    if (o->out && !cli_has_suffix(o->out, ".npy") && !cli_has_suffix(o->out, ".csv"))
        BAD("--out '%s' must end in .npy or .csv", o->out);
    if (o->plot && !cli_has_suffix(o->plot, ".svg")) BAD("--plot '%s' must end in .svg", o->plot);
    if (o->grid_n < 2 || o->grid_n > 1000 || !(o->range > 0)) BAD("--grid must lie in 2..1000 and --range be > 0");
    if (o->seed < 0 || o->threads < 0 || o->threads > 1024) BAD("--seed must be >= 0 and --threads in 0..1024");
#undef BAD
    const char *outs[] = {o->out, o->plot};
    int rc = cli_writable("nll", outs, 2);
    return rc != CLI_GO ? rc : cli_solver_check("nll", &o->so, 1);
}

/* The flow, the options that depend on it, and the time grid, which runs
 * from the path's end time down to 0. */
static int open_model(const nll_opts *o, nll_run *r)
{
    int rc;
    if ((rc = cli_load_model("nll", o->model, !o->no_ema, &r->holder)) != CLI_GO) return rc;
    r->d = fm_model_dim(r->holder);
    if (o->plot && r->d != 2)
        return cli_error("nll", "--plot needs a 2-dimensional model, this one has %d dimensions", r->d);
    if (o->deq && !fm_spec_image_shape(fm_model_data(r->holder), NULL, NULL, NULL))
        return cli_usage_error("nll", "--dequantize needs an image model; %s was trained on '%s'", o->model,
                               fm_model_data(r->holder));
    if (fm_model_sampling(r->holder) != FM_SAMPLING_ODE || !fm_model_flow(r->holder)) {
        if (fm_model_log_prob(r->holder, NULL, 0, NULL) != FM_OK)
            return cli_error("nll", "%s holds a %s model; nll needs a flow-matching model, a CNF or a normalizing flow",
                             o->model, fm_model_method_name(r->holder));
        return CLI_GO; /* a closed-form density: no solver */
    }
    r->f = fm_model_flow(r->holder);
    r->fc = fm_flow_get_config(r->f);
    if ((rc = cli_solver_setup("nll", &o->so, &r->fc->path, &r->sc, &r->grid, &r->ngrid, 1)) != CLI_GO) return rc;
    for (int i = 0; i < r->ngrid / 2; i++) {
        double t = r->grid[i];
        r->grid[i] = r->grid[r->ngrid - 1 - i];
        r->grid[r->ngrid - 1 - i] = t;
    }
    return CLI_GO;
}

/* The points: a file's, or --n drawn from a dataset; --dequantize spreads
 * their pixels. */
static int read_points(const nll_opts *o, nll_run *r)
{
    fm_table *pts = &r->pts;
    if (fm_points_file(o->data)) { /* FILE.csv, FILE.npy, csv:FILE, npy:FILE */
        if (fm_points_read(o->data, pts) != FM_OK) return cli_error("nll", "%s", fm_last_error());
    } else {
        fm_dataset *ds = fm_dataset_open(o->data);
        if (!ds)
            return cli_status_code(fm_last_status()) == CLI_USAGE ? cli_usage_error("nll", "%s", fm_last_error())
                                                                  : cli_error("nll", "%s", fm_last_error());
        pts->cols = fm_dataset_dim(ds);
        pts->rows = o->n;
        pts->data = malloc((size_t)o->n * pts->cols * sizeof(float));
        fm_rng rng;
        fm_rng_seed(&rng, (uint64_t)o->seed, FM_STREAM_DATA);
        fm_status s = pts->data ? fm_dataset_sample(ds, &rng, pts->data, o->n) : FM_ERR_NOMEM;
        fm_dataset_free(ds);
        if (s)
            return cli_error("nll", "drawing %s: %s", o->data, s == FM_ERR_NOMEM ? "out of memory" : fm_last_error());
    }
    if (pts->cols != r->d) return cli_error("nll", "the points have %d dimensions, the model %d", pts->cols, r->d);
    for (size_t i = 0; i < (size_t)pts->rows * r->d; i++)
        if (!isfinite(pts->data[i]))
            return cli_error("nll", "%s: row %zu holds a NaN or infinite value", o->data, i / r->d + 1);
    if (o->deq) { /* pixels b / 255 -> (b + u) / 256, u from its own stream */
        fm_rng rq;
        fm_rng_seed(&rq, (uint64_t)o->seed + 7, FM_STREAM_NOISE);
        fm_dequantize(pts->data, (size_t)pts->rows * r->d, &rq);
    }
    return CLI_GO;
}

/* log p of every point, their mean and its standard error. */
static int likelihood(const nll_opts *o, nll_run *r)
{
    int rows = r->pts.rows;
    r->logp = malloc((size_t)rows * sizeof(double));
    r->se = malloc((size_t)rows * sizeof(double));
    if (!r->logp || !r->se) return cli_error("nll", "out of memory");
    r->nc = (fm_nll_config){r->sc, r->grid, r->ngrid, FM_DIV_EXACT, 0, (uint64_t)o->seed};
    if (o->hutch) {
        r->nc.div = strcmp(o->probe, "gaussian") ? FM_DIV_HUTCH_RADEMACHER : FM_DIV_HUTCH_GAUSSIAN;
        r->nc.probes = o->hutch;
    }
    double t0 = cli_now();
    fm_status s = r->f ? fm_flow_log_likelihood(r->f, r->pts.data, rows, &r->nc, r->logp, r->se, &r->st)
                       : fm_model_log_prob(r->holder, r->pts.data, rows, r->logp);
    if (s != FM_OK) return cli_error("nll", "%s", fm_last_error());
    for (int i = 0; !r->f && i < rows; i++) r->se[i] = 0;
    r->secs = cli_now() - t0;
    r->mean = r->mse = 0;
    for (int i = 0; i < rows; i++) r->mean += r->logp[i] / rows, r->mse += r->se[i] * r->se[i];
    r->mse = sqrt(r->mse) / rows; /* the mean's standard error: the points' estimates are independent */
    r->mass = NAN;
    return CLI_GO;
}

/* --plot: log p on a G x G grid over [-R, R]^2 beside the points, and the
 * mass the grid holds. */
static int density_plot(const nll_opts *o, nll_run *r)
{
    int G = o->grid_n;
    double range = o->range, h = 2 * range / G;
    r->gp = malloc((size_t)G * G * 2 * sizeof(float));
    r->gl = malloc((size_t)G * G * sizeof(double));
    if (!r->gp || !r->gl) return cli_error("nll", "out of memory for the heat map");
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++) {
            r->gp[2 * ((size_t)i * G + j)] = (float)(-range + (j + 0.5) * h);
            r->gp[2 * ((size_t)i * G + j) + 1] = (float)(-range + (i + 0.5) * h);
        }
    r->nc.div = FM_DIV_EXACT;
    if ((r->f ? fm_flow_log_likelihood(r->f, r->gp, G * G, &r->nc, r->gl, NULL, NULL)
              : fm_model_log_prob(r->holder, r->gp, G * G, r->gl)) != FM_OK)
        return cli_error("nll", "%s", fm_last_error());
    r->mass = 0;
    for (int i = 0; i < G * G; i++) r->mass += exp(r->gl[i]) * h * h;
    const char *tp = cli_out_stage(&r->outs, o->plot);
    if (!tp || fm_svg_density(tp, "model density", r->gl, G, -range, range, r->pts.data, r->pts.rows, r->d) != FM_OK)
        return cli_error("nll", "%s", tp ? fm_last_error() : "out of memory");
    return CLI_GO;
}

/* --out: log p per point as one column. */
static int write_logp(const nll_opts *o, nll_run *r)
{
    const char *to = cli_out_stage(&r->outs, o->out);
    float *lf = malloc((size_t)r->pts.rows * sizeof(float));
    if (!to || !lf) {
        free(lf);
        return cli_error("nll", "out of memory");
    }
    for (int i = 0; i < r->pts.rows; i++) lf[i] = (float)r->logp[i];
    int rc = cli_write_points("nll", to, lf, r->pts.rows, 1);
    free(lf);
    return rc;
}

static void print_json(const nll_opts *o, const nll_run *r)
{
    int d = r->d;
    cli_json j = {0};
    cli_json_open(&j, NULL, '{');
    cli_json_int(&j, "points", r->pts.rows);
    cli_json_str(&j, "method", fm_model_method_name(r->holder));
    cli_json_str(&j, "solver", r->f ? fm_solver_name(r->sc.kind) : NULL); /* null: exact, no solver */
    cli_json_str(&j, "divergence", !r->f ? NULL : o->hutch ? o->probe : "exact");
    cli_json_int(&j, "probes", o->hutch);
    cli_json_int(&j, "nfe", r->f ? r->st.nfe : 0);
    cli_json_num(&j, "seconds", r->secs);
    cli_json_num(&j, "mean_log_p", r->mean);
    cli_json_num(&j, "nll", -r->mean);
    cli_json_num(&j, "bits_per_dim", -r->mean / (d * log(2.0)));
    if (o->deq) cli_json_num(&j, "bits_per_dim_8bit", -r->mean / (d * log(2.0)) + 8.0);
    if (o->hutch > 1) cli_json_num(&j, "standard_error", r->mse);
    if (o->plot) cli_json_num(&j, "density_mass", r->mass);
    cli_json_close(&j, '}');
}

static void print_report(const nll_opts *o, const nll_run *r)
{
    int d = r->d;
    if (o->json) {
        print_json(o, r);
        return;
    }
    if (!r->f) {
        printf("log-likelihood of %d points (%s: %s, %.2f s)\n", r->pts.rows, fm_model_method_name(r->holder),
               fm_model_log_prob_how(r->holder), r->secs);
    } else {
        printf("log-likelihood of %d points (%s, %d grid points from t = %.3g to 0, NFE %ld, %s divergence",
               r->pts.rows, fm_solver_name(r->sc.kind), r->ngrid, r->grid[0], r->st.nfe, o->hutch ? o->probe : "exact");
        if (o->hutch) printf(", %d probes", o->hutch);
        printf(", %.2f s)\n", r->secs);
    }
    printf("  mean log p   %.4f nats\n  NLL          %.4f nats, %.4f bits per dimension\n", r->mean, -r->mean,
           -r->mean / (d * log(2.0)));
    /* log P(bytes) >= E_u log p((b + u) / 256) - d log 256 (Jensen): an upper bound in bits */
    if (o->deq) printf("  of the 8-bit pixels (dequantised, an upper bound): %.4f bits per dimension\n",
                       -r->mean / (d * log(2.0)) + 8.0);
    if (o->hutch > 1) printf("  Hutchinson's standard error of the mean: %.4f nats\n", r->mse);
    else if (o->hutch) printf("  Hutchinson's standard error needs two probes or more\n");
    if (o->plot) printf("  the density integrates to %.4f over the plot's grid\n", r->mass);
}

/* Everything after the options: CLI_OK, or the exit code of the step that failed. */
static int run(const nll_opts *o, nll_run *r)
{
    int rc;
    fm_set_threads(o->threads);
    if ((rc = open_model(o, r)) != CLI_GO) return rc;
    if ((rc = cli_dist_go("nll", read_points(o, r))) != CLI_GO) return rc; /* any rank may fail to read them */
    if ((rc = likelihood(o, r)) != CLI_GO) return rc;
    if (o->plot && (rc = density_plot(o, r)) != CLI_GO) return rc;
    if (o->out && (rc = write_logp(o, r)) != CLI_GO) return rc;
    if ((rc = cli_out_commit("nll", &r->outs)) != CLI_GO) return rc;
    print_report(o, r);
    return CLI_OK;
}

int cmd_nll(int argc, char **argv)
{
    nll_opts o = {.probe = "rademacher", .n = 2000, .grid_n = 100, .range = 3.0, .so = cli_solver_defaults()};
    o.so.solver = "rk4";
    o.so.steps = 100;
    const cli_opt opts[] = {
        {"model", OPT_STR, &o.model, "FILE", "checkpoint (required)"},
        {"data", OPT_STR, &o.data, "X", "points: FILE.npy, FILE.csv or a dataset to draw --n points from (required)"},
        {"n", OPT_INT, &o.n, "N", "points drawn when --data is a dataset"},
        {"seed", OPT_I64, &o.seed, "N", "random seed for drawn points and Hutchinson probes"},
        CLI_SOLVER_OPTIONS(o.so),
        {"exact", OPT_FLAG, &o.exact, NULL, "exact divergence, one vector-Jacobian product per dimension (default)"},
        {"hutchinson", OPT_INT, &o.hutch, "K", "Hutchinson's estimate with K probes instead"},
        {"probe", OPT_STR, &o.probe, "KIND", "Hutchinson probes: rademacher or gaussian"},
        {"dequantize", OPT_FLAG, &o.deq, NULL, "image pixels: spread each byte over its 1/256 cell, report bits/dim of the bytes"},
        {"json", OPT_FLAG, &o.json, NULL, "print one JSON object (the numbers of the report) instead of the text"},
        {"out", OPT_STR, &o.out, "FILE", "log p per point (.npy or .csv)"},
        {"plot", OPT_STR, &o.plot, "FILE", "density heat map beside the data (.svg; 2-D models)"},
        {"grid", OPT_INT, &o.grid_n, "G", "heat map resolution"},
        {"range", OPT_DOUBLE, &o.range, "R", "heat map spans [-R, R]^2"},
        {"no-ema", OPT_FLAG, &o.no_ema, NULL, "use the raw weights even if the checkpoint has EMA weights"},
        {"threads", OPT_INT, &o.threads, "N", "threads (0: all cores)"},
    };
    unsigned char given[sizeof opts / sizeof opts[0]] = {0};
    const cli_spec spec = {"nll", NULL, "Log-likelihood of points under a trained flow or normalizing flow.",
                           "log p1(x) = log p0(x0) - integral of div v_t along the ODE path from x back to t = 0,\n"
                           "accumulated in double. --steps N is a uniform grid of N steps from t-end down to 0\n"
                           "(default rk4, 100 steps; dopri5 adapts, from one step unless --steps is given). The divergence is exact by default or\n"
                           "Hutchinson's estimate with --hutchinson K probes, fixed for the solve, with its\n"
                           "standard error. The source must have a density: N(0, I) or 8gaussians. A normalizing\n"
                           "flow (--method nf) gives its exact log-likelihood directly; the solver options do not apply.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, given};
    int npos, rc;
    if ((rc = cli_parse(&spec, argc, argv, NULL, &npos)) != CLI_GO) return rc;
    if ((rc = check_options(&o, &spec)) != CLI_GO) return rc;
    nll_run r = {0};
    rc = run(&o, &r);
    run_free(&r);
    return rc;
}
