/* eval.c - `flowmatch eval`: distances between two point sets, each given as
 * a file (.npy / .csv), a model (.safetensors, sampled) or a dataset spec.
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A model side: the model, and for a flow-matching model the starting points
 * of its trajectories (network units) and their path energy. */
typedef struct {
    fm_model *model;
    fm_flow *flow; /* flow matching only: it has a path energy */
    float *x0;
    double energy;
} model_side;

/* Points for one side; -1 on success, else an exit code. */
static int load_side(const char *spec, int n, uint64_t seed, uint64_t stream, const cli_spec *cs,
                     const cli_solver_opts *opts, fm_table *t, char *label, size_t llen, model_side *ms)
{
    memset(t, 0, sizeof *t);
    if (cli_has_suffix(spec, ".npy") || cli_has_suffix(spec, ".csv")) {
        if (fm_points_read(spec, t) != FM_OK) return cli_error("eval", "%s", fm_last_error());
        for (size_t i = 0; i < (size_t)t->rows * t->cols; i++)
            if (!isfinite(t->data[i])) {
                fm_table_free(t);
                return cli_error("eval", "%s: row %zu holds a NaN or infinite value", spec, i / (size_t)t->cols + 1);
            }
        snprintf(label, llen, "%s (%d points)", spec, t->rows);
        return -1;
    }
    if (cli_has_suffix(spec, ".safetensors")) {
        fm_model *m;
        int rc = cli_load_model("eval", spec, 1, &m);
        if (rc >= 0) return rc;
        fm_solver_config sc;
        double *grid;
        int ngrid, d = fm_model_dim(m);
        cli_solver_opts so = *opts;
        rc = cli_sampler_setup("eval", cs, &so, m, 1, 0, &sc, &grid, &ngrid);
        if (rc >= 0) {
            fm_model_free(m);
            return rc;
        }
        int is_fm = fm_model_method(m) == FM_METHOD_FM;
        t->data = malloc((size_t)n * d * sizeof(float));
        ms->x0 = is_fm ? malloc((size_t)n * d * sizeof(float)) : NULL;
        fm_rng r;
        fm_rng_seed(&r, seed, stream);
        fm_solve_stats st;
        /* a flow's samples are the ends of trajectories whose energy is kept too */
        fm_status s = !t->data || (is_fm && !ms->x0) ? FM_ERR_NOMEM
                      : is_fm ? fm_flow_path_energy(fm_model_flow(m), n, NULL, &r, &sc, grid, ngrid, ms->x0, t->data,
                                                    &ms->energy, &st)
                              : fm_model_sample(m, n, &r, &sc, grid, ngrid, t->data, NULL, NULL, &st);
        free(grid);
        if (s) {
            fm_model_free(m);
            fm_table_free(t);
            free(ms->x0);
            ms->x0 = NULL;
            return cli_error("eval", "sampling %s: %s", spec, s == FM_ERR_NOMEM ? "out of memory" : fm_last_error());
        }
        ms->model = m;
        ms->flow = is_fm ? fm_model_flow(m) : NULL;
        t->rows = n;
        t->cols = d;
        if (fm_model_method(m) == FM_METHOD_VAE || fm_model_method(m) == FM_METHOD_GAN)
            snprintf(label, llen, "%s (%d samples, %s, NFE 1)", spec, n, fm_method_name(fm_model_method(m)));
        else
            snprintf(label, llen, "%s (%d samples, %s%s, NFE %ld)", spec, n, is_fm ? "" : "ddpm ",
                     fm_solver_name(sc.kind), st.nfe);
        return -1;
    }
    fm_dataset *ds = fm_dataset_open(spec);
    if (!ds) {
        fprintf(stderr, "flowmatch eval: '%s' is not a .npy/.csv file, a .safetensors model or a dataset: %s\n", spec,
                fm_last_error());
        return cli_status_code(fm_last_status());
    }
    int d = fm_dataset_dim(ds);
    t->data = malloc((size_t)n * d * sizeof(float));
    fm_rng r;
    fm_rng_seed(&r, seed, stream);
    fm_status s = t->data ? fm_dataset_sample(ds, &r, t->data, n) : FM_ERR_NOMEM;
    snprintf(label, llen, "%s (%d points)", fm_dataset_spec(ds), n);
    fm_dataset_free(ds);
    if (s) {
        fm_table_free(t);
        return cli_error("eval", "drawing %s: %s", spec, fm_last_error());
    }
    t->rows = n;
    t->cols = d;
    return -1;
}

/* Print the metrics named in which ("w2,energy,mmd"); -1 on success. */
static int print_metrics(const float *a, int na, const float *b, int nb, int d, const char *which, double bw)
{
    if (strstr(which, "w2")) {
        int m = na < nb ? na : nb;
        if (m > 10000) fprintf(stderr, "note: exact W2 on %d points may take a while\n", m);
        double w2, t0 = cli_now();
        if (fm_w2_exact(a, b, m, d, &w2, NULL) != FM_OK) return cli_error("eval", "%s", fm_last_error());
        printf("W2 (exact)       %.6f   (%d vs %d points%s, %.2f s)\n", w2, m, m, na != nb ? ", the first of each" : "",
               cli_now() - t0);
    }
    if (strstr(which, "energy")) {
        double e;
        if (fm_energy_distance(a, na, b, nb, d, &e) != FM_OK) return cli_error("eval", "%s", fm_last_error());
        printf("energy distance  %.6f\n", e);
    }
    if (strstr(which, "mmd")) {
        double m2, h;
        if (fm_mmd_gaussian(a, na, b, nb, d, bw, &m2, &h) != FM_OK) return cli_error("eval", "%s", fm_last_error());
        printf("MMD^2            %.6f   (Gaussian kernel, bandwidth %.4g%s)\n", m2, h, bw > 0 ? "" : ", median heuristic");
    }
    return -1;
}

/* For a model side: its path energy, and normalised by W2^2 between its
 * starting points and the other side (both in the model's units). */
static int path_energy_report(const char *which, const model_side *ms, const fm_table *self, const fm_table *other)
{
    if (!ms->flow) return -1;
    int m = self->rows < other->rows ? self->rows : other->rows, d = self->cols;
    float *o = malloc((size_t)m * d * sizeof(float));
    if (!o) return cli_error("eval", "out of memory");
    memcpy(o, other->data, (size_t)m * d * sizeof(float));
    fm_flow_to_model(ms->flow, o, m);
    double w2;
    fm_status s = fm_w2_exact(ms->x0, o, m, d, &w2, NULL);
    free(o);
    if (s) return cli_error("eval", "%s", fm_last_error());
    printf("path energy (%s)  %.6f   (W2^2 from its source to the other set %.6f; normalised path energy %.6f)\n",
           which, ms->energy, w2 * w2, fabs(ms->energy - w2 * w2) / (w2 * w2));
    return -1;
}

int cmd_eval(int argc, char **argv)
{
    const char *a = NULL, *b = NULL, *metrics = "w2,energy,mmd";
    int n = 2000, threads = 0;
    int64_t seed = 0;
    double bw = 0;
    cli_solver_opts so = CLI_SOLVER_DEFAULTS;
    const cli_opt opts[] = {
        {"a", OPT_STR, &a, "X", "first set: FILE.npy, FILE.csv, MODEL.safetensors or a dataset (required)"},
        {"b", OPT_STR, &b, "Y", "second set, same kinds (required)"},
        {"n", OPT_INT, &n, "N", "points drawn from a model or dataset"},
        {"seed", OPT_I64, &seed, "N", "random seed for the drawn points"},
        {"metrics", OPT_STR, &metrics, "LIST", "any of w2, energy, mmd"},
        {"bandwidth", OPT_DOUBLE, &bw, "H", "MMD kernel bandwidth (0: median heuristic)"},
        CLI_SOLVER_OPTIONS(so),
        {"threads", OPT_INT, &threads, "N", "threads (0: all cores)"},
    };
    unsigned char given[sizeof opts / sizeof opts[0]] = {0};
    const cli_spec spec = {"eval", NULL, "Compare two point sets: exact 2-Wasserstein, energy distance and MMD.",
                           "W2 is the exact optimal matching (Jonker-Volgenant) of equal numbers of points,\n"
                           "sqrt of the mean squared distance; energy distance and MMD^2 (Gaussian kernel)\n"
                           "are unbiased U-statistics. Models are sampled with the solver options; two sides\n"
                           "drawn from models or datasets use different random streams. For a model the\n"
                           "path energy E = mean integral |v|^2 dt of its trajectories is reported too, and\n"
                           "|E - W2^2| / W2^2 with W2 from its source to the other set (0 for straight,\n"
                           "optimal paths). DDPM models sample with ancestral (T steps) unless --solver ddim\n"
                           "--steps N; VAE and GAN models in one pass.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, given};
    int npos;
    int rc = cli_parse(&spec, argc, argv, NULL, &npos);
    if (rc >= 0) return rc;
    if (!a || !b)
        return cli_usage_error("eval", "both --a and --b are required");
    if (n < 2 || n > 100000 || seed < 0 || threads < 0 || threads > 1024 || !(bw >= 0))
        return cli_usage_error("eval", "--n must lie in 2..100000, --threads in 0..1024; --seed and --bandwidth >= 0");
    if (!*metrics)
        return cli_usage_error("eval", "--metrics is empty (w2, energy, mmd)");
    for (const char *p = metrics; *p;) {
        size_t k = strcspn(p, ",");
        if (!((k == 2 && !strncmp(p, "w2", 2)) || (k == 6 && !strncmp(p, "energy", 6)) || (k == 3 && !strncmp(p, "mmd", 3))))
            return cli_usage_error("eval", "unknown metric '%.*s' in --metrics (w2, energy, mmd)", (int)k, p);
        p += k + (p[k] == ',');
    }
    if ((rc = cli_solver_check("eval", &so, 1)) >= 0) return rc;
    fm_set_threads(threads);
    fm_table ta, tb;
    char la[600], lb[600];
    model_side ma = {0}, mb = {0};
    if ((rc = load_side(a, n, (uint64_t)seed, FM_STREAM_DATA, &spec, &so, &ta, la, sizeof la, &ma)) >= 0) return rc;
    if ((rc = load_side(b, n, (uint64_t)seed + 1, FM_STREAM_NOISE, &spec, &so, &tb, lb, sizeof lb, &mb)) >= 0) {
        fm_table_free(&ta);
        fm_model_free(ma.model);
        free(ma.x0);
        return rc;
    }
    if (ta.cols != tb.cols) {
        rc = cli_error("eval", "the sets have %d and %d dimensions", ta.cols, tb.cols);
    } else if (ta.rows < 2 || tb.rows < 2) {
        rc = cli_error("eval", "each set needs at least 2 points (%d and %d)", ta.rows, tb.rows);
    } else {
        printf("a: %s\nb: %s\n", la, lb);
        rc = print_metrics(ta.data, ta.rows, tb.data, tb.rows, ta.cols, metrics, bw);
        if (rc < 0) rc = path_energy_report("a", &ma, &ta, &tb);
        if (rc < 0) rc = path_energy_report("b", &mb, &tb, &ta);
        if (rc < 0) rc = CLI_OK;
    }
    fm_table_free(&ta);
    fm_table_free(&tb);
    fm_model_free(ma.model);
    fm_model_free(mb.model);
    free(ma.x0);
    free(mb.x0);
    return rc;
}
