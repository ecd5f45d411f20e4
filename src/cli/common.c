/* common.c - pieces several commands share: wall-clock time, sizes and file
 * names, the solver and time-grid options, and where points come from
 * (a file, a model or a dataset).
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* path with its extension (if any) replaced: ("m.safetensors", "_loss.csv") -> "m_loss.csv" */
char *cli_derive(const char *path, const char *tail)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    size_t stem = (dot && (!slash || dot > slash)) ? (size_t)(dot - path) : strlen(path);
    char *r = malloc(stem + strlen(tail) + 1);
    if (!r) return NULL;
    memcpy(r, path, stem);
    strcpy(r + stem, tail);
    return r;
}

int cli_solver_check(const char *cmd, const cli_solver_opts *o)
{
    fm_solver_config sc;
    double *grid = NULL;
    int n;
    fm_path any = fm_path_default(FM_PATH_OT);
    int rc = cli_solver_setup(cmd, o, &any, &sc, &grid, &n);
    free(grid);
    return rc;
}

int cli_solver_setup(const char *cmd, const cli_solver_opts *o, const fm_path *path, fm_solver_config *sc,
                     double **grid, int *ngrid)
{
    int k = fm_solver_from_name(o->solver);
    if (k < 0) {
        fprintf(stderr, "flowmatch %s: unknown solver '%s' (euler, midpoint, heun, rk4, dopri5)\n", cmd, o->solver);
        return CLI_USAGE;
    }
    *sc = fm_solver_config_default((fm_solver_kind)k);
    sc->rtol = o->rtol;
    sc->atol = o->atol;
    sc->max_steps = o->max_steps;
    if (!(o->rtol > 0) || !(o->atol > 0) || o->max_steps < 1) {
        fprintf(stderr, "flowmatch %s: --rtol and --atol must be > 0 and --max-steps >= 1\n", cmd);
        return CLI_USAGE;
    }
    double t_end = o->t_end > 0 ? o->t_end : path->t_end;
    if (!(t_end > 0 && t_end <= 1) || o->t_end < 0) {
        fprintf(stderr, "flowmatch %s: --t-end %g must lie in (0, 1]\n", cmd, o->t_end);
        return CLI_USAGE;
    }
    if (o->time_grid && *o->time_grid) {
        int cap = 16, n = 0;
        double *g = malloc((size_t)cap * sizeof(double));
        const char *p = o->time_grid;
        while (g && *p) {
            char *e;
            double v = strtod(p, &e);
            if (e == p || (*e && *e != ',') || !isfinite(v)) {
                fprintf(stderr, "flowmatch %s: --time-grid '%s' is not a comma-separated list of times\n", cmd,
                        o->time_grid);
                free(g);
                return CLI_USAGE;
            }
            if (n == cap) {
                double *ng = realloc(g, (size_t)(cap *= 2) * sizeof(double));
                if (!ng) break;
                g = ng;
            }
            g[n++] = v;
            p = *e ? e + 1 : e;
        }
        if (!g) return cli_error(cmd, "out of memory");
        for (int i = 1; i < n; i++)
            if (!(g[i] > g[i - 1])) {
                fprintf(stderr, "flowmatch %s: --time-grid must increase strictly (%g then %g)\n", cmd, g[i - 1], g[i]);
                free(g);
                return CLI_USAGE;
            }
        if (n < 2 || g[0] < 0 || g[n - 1] > 1) {
            fprintf(stderr, "flowmatch %s: --time-grid needs at least two times within [0, 1]\n", cmd);
            free(g);
            return CLI_USAGE;
        }
        *grid = g;
        *ngrid = n;
        return -1;
    }
    if (o->steps < 1 || o->steps > 1000000) {
        fprintf(stderr, "flowmatch %s: --steps %d must be between 1 and 1000000\n", cmd, o->steps);
        return CLI_USAGE;
    }
    *grid = malloc((size_t)(o->steps + 1) * sizeof(double));
    if (!*grid) return cli_error(cmd, "out of memory");
    fm_time_grid_uniform(*grid, o->steps, 0.0, t_end);
    *ngrid = o->steps + 1;
    return -1;
}

int cli_write_points(const char *cmd, const char *path, const float *x, int n, int d)
{
    fm_status s;
    if (cli_has_suffix(path, ".csv")) {
        s = fm_csv_write(path, x, n, d, NULL);
    } else if (cli_has_suffix(path, ".npy")) {
        int64_t shape[2] = {n, d};
        s = fm_npy_write(path, x, 2, shape);
    } else {
        fprintf(stderr, "flowmatch %s: output '%s' must end in .npy or .csv\n", cmd, path);
        return CLI_USAGE;
    }
    return s == FM_OK ? -1 : cli_error(cmd, "%s", fm_last_error());
}

int cli_load_model(const char *cmd, const char *path, int use_ema, fm_flow **out)
{
    fm_st *st = fm_st_load(path);
    if (!st) return cli_error(cmd, "%s", fm_last_error());
    *out = fm_flow_load(st, use_ema);
    fm_st_free(st);
    if (!*out) return cli_error(cmd, "%s: %s", path, fm_last_error());
    return -1;
}
