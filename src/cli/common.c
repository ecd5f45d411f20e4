/* common.c - pieces several commands share: wall-clock time, sizes and file
 * names, the solver and time-grid options, and where points come from
 * (a file, a model or a dataset).
 */
#include "cli/cli.h"

#include <ctype.h>

#include <errno.h>
#include <sys/types.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

int cli_make_dir(const char *cmd, const char *dir)
{
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) return cli_error(cmd, "cannot use '%s' as the output folder: bad name", dir);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        struct stat sb;
        if (mkdir(buf, 0755) != 0 && (errno != EEXIST || stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode)))
            return cli_error(cmd, "cannot use %s as the output folder: %s", dir,
                             errno == EEXIST ? "a part of it exists and is not a folder" : strerror(errno));
        buf[i] = c;
    }
    return CLI_GO;
}

int cli_status_code(fm_status s) { return (s == FM_ERR_ARG || s == FM_ERR_SHAPE) ? CLI_USAGE : CLI_FAIL; }

/* Files "<name>.tmp<PID>..." beside path left by a process that is gone (a
 * run killed while saving): removed. */
static void remove_stale(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[1024];
    const char *base = slash ? slash + 1 : path;
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (slash == path) snprintf(dir, sizeof dir, "/");
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, base, bl) || strncmp(e->d_name + bl, ".tmp", 4)) continue;
        char *end = NULL;
        long pid = strtol(e->d_name + bl + 4, &end, 10);
        if (end == e->d_name + bl + 4 || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* its writer may still be at work */
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        remove(p);
    }
    closedir(d);
}

/* ------------------------------------------------------------------ ranks */

/* Ranks other than 0 compute what rank 0 computes but write nothing of the
 * user's: their outputs are staged in a folder of their own, removed at exit. */
static char scratch[256];

static void remove_files_in(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        remove(p);
    }
    closedir(d);
}

static const char *scratch_dir(void)
{
    if (!scratch[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/flowmatch-rank%d-XXXXXX", tmp && *tmp ? tmp : "/tmp", fm_dist_rank());
        if (!mkdtemp(scratch)) snprintf(scratch, sizeof scratch, "%s", tmp && *tmp ? tmp : "/tmp");
    }
    return scratch;
}

void cli_scratch_remove(void)
{
    if (!scratch[0] || fm_dist_rank() == 0) return;
    remove_files_in(scratch);
    rmdir(scratch);
    scratch[0] = '\0';
}

int cli_dist_go(const char *cmd, int rc)
{
    if (fm_dist_size() == 1) return rc;
    char msg[460];
    int mine = rc == CLI_GO ? 0 : rc == CLI_OK ? 1000 : rc;
    int first = fm_dist_first(mine, mine && mine != 1000 ? cli_last_error() : "", msg, sizeof msg);
    if (first && !mine && msg[0]) fprintf(stderr, "flowmatch %s: %s\n", cmd, msg); /* another rank's stop: rank 0 says why */
    return first == 0 ? CLI_GO : first == 1000 ? CLI_OK : first;
}

int cli_writable(const char *cmd, const char *const *paths, int n)
{
    cli_outputs o = {0};
    for (int i = 0; i < n; i++)
        if (paths[i] && !cli_out_stage(&o, paths[i])) {
            cli_out_abort(&o);
            return cli_error(cmd, "out of memory");
        }
    int rc = cli_out_check(cmd, &o);
    cli_out_abort(&o);
    return rc;
}


int cli_default_output(const char *cmd, const cli_spec *spec, const char *opt, const char *path, int force)
{
    struct stat st;
    if (fm_dist_rank() > 0 || cli_given(spec, opt) || force || stat(path, &st) != 0) return cli_dist_go(cmd, CLI_GO);
    return cli_dist_go(cmd, cli_usage_error(cmd, "%s exists and --%s was not given: name the output (--%s FILE), or pass "
                                            "--force to replace it", path, opt, opt)); /* rank 0's check */
}

int cli_dir_outputs(const char *cmd, const cli_spec *spec, const char *dir, const char *const *names, int n, int force)
{
    int rc = cli_make_dir(cmd, dir);
    const char *paths[16];
    char buf[16][4096];
    if (n > 16) n = 16;
    for (int i = 0; i < n && rc == CLI_GO; i++) {
        snprintf(buf[i], sizeof buf[i], "%s/%s", dir, names[i]);
        paths[i] = buf[i];
        struct stat st;
        if (fm_dist_rank() == 0 && !force && !cli_given(spec, "out-dir") && stat(buf[i], &st) == 0)
            rc = cli_usage_error(cmd, "%s exists and --out-dir was not given: name the folder (--out-dir DIR), or pass "
                                      "--force to replace what is in it", buf[i]);
    }
    rc = cli_dist_go(cmd, rc);
    return rc == CLI_GO ? cli_writable(cmd, paths, n) : rc;
}

static int out_check(const char *cmd, cli_outputs *o)
{
    for (int i = 0; i < o->n && fm_dist_rank() == 0; i++) {
        struct stat fs;
        if (stat(o->final[i], &fs) == 0 && S_ISDIR(fs.st_mode))
            return cli_error(cmd, "cannot write %s: it is a folder", o->final[i]);
        FILE *f = fopen(o->tmp[i], "wb");
        if (f) {
            fclose(f);
            remove(o->tmp[i]);
            continue;
        }
        int err = errno;
        const char *slash = strrchr(o->final[i], '/');
        struct stat st;
        char dir[1024];
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - o->final[i]) : 1, slash ? o->final[i] : ".");
        if (err == ENOENT && stat(dir, &st) != 0)
            return cli_error(cmd, "cannot write %s: the folder %s does not exist", o->final[i], dir);
        return cli_error(cmd, "cannot write %s: %s", o->final[i], strerror(err));
    }
    return CLI_GO;
}

int cli_out_check(const char *cmd, cli_outputs *o) { return cli_dist_go(cmd, out_check(cmd, o)); } /* rank 0's check */

const char *cli_out_stage(cli_outputs *o, const char *final)
{
    if (o->n == (int)(sizeof o->final / sizeof o->final[0])) return NULL;
    if (fm_dist_rank() == 0) remove_stale(final);
    const char *dot = strrchr(final, '.'), *slash = strrchr(final, '/');
    const char *ext = (dot && (!slash || dot > slash)) ? dot : "";
    size_t n = strlen(final) + strlen(ext) + 32;
    char *t = malloc(n), *f = malloc(strlen(final) + 1);
    if (!t || !f) {
        free(t);
        free(f);
        return NULL;
    }
    if (fm_dist_rank() > 0) { /* not the user's file: one in this rank's own folder */
        free(t);
        n = strlen(scratch_dir()) + strlen(ext) + 32;
        if (!(t = malloc(n))) {
            free(f);
            return NULL;
        }
        snprintf(t, n, "%s/%d%s", scratch_dir(), o->n, ext);
    } else {
        snprintf(t, n, "%s.tmp%ld%s", final, (long)getpid(), ext);
    }
    strcpy(f, final);
    o->final[o->n] = f;
    o->tmp[o->n++] = t;
    return t;
}

int cli_out_commit(const char *cmd, cli_outputs *o)
{
    int rc = CLI_GO;
    for (int i = 0; i < o->n; i++) {
        if (fm_dist_rank() > 0) remove(o->tmp[i]);
        else if (rc == CLI_GO && rename(o->tmp[i], o->final[i]) != 0)
            rc = cli_error(cmd, "cannot write %s: %s", o->final[i], strerror(errno));
        if (rc != CLI_GO) remove(o->tmp[i]);
    }
    for (int i = 0; i < o->n; i++) {
        free(o->tmp[i]);
        free(o->final[i]);
    }
    o->n = 0;
    return rc;
}

void cli_out_abort(cli_outputs *o)
{
    for (int i = 0; i < o->n; i++) {
        remove(o->tmp[i]);
        free(o->tmp[i]);
        free(o->final[i]);
    }
    o->n = 0;
}

cli_path_opts cli_path_defaults(void)
{
    fm_train_config c = fm_train_config_default();
    fm_path pd = fm_path_default(c.flow.path.kind), pv = fm_path_default(FM_PATH_VE);
    cli_path_opts o = {fm_path_name(c.flow.path.kind), fm_coupling_name(c.coupling), pd.sigma_min, pd.sigma,
                       pv.ve_sigma_min, pv.ve_sigma_max, pd.beta_min, pd.beta_max, pd.exponent, 0.0};
    return o;
}

int cli_path_setup(const char *cmd, const cli_spec *spec, const cli_path_opts *o, fm_path *p, fm_coupling *c)
{
    int k, cp;
    const char *path = o->path;
    if ((cp = fm_coupling_from_name(o->coupling)) < 0)
        return cli_usage_error(cmd, "unknown --coupling '%s' (independent, ot, sb)", o->coupling);
    *c = (fm_coupling)cp;
    if (cp == FM_COUPLING_SB && !cli_given(spec, "path")) path = "sb"; /* the bridge comes with its plan */
    if ((k = fm_path_from_name(path)) < 0)
        return cli_usage_error(cmd, "unknown --path '%s' (ot, icfm, ve, vp, cosine, poly, linear-vp, sb, subvp)", path);
    *p = fm_path_default((fm_path_kind)k);
    p->sigma_min = o->sigma_min;
    if (cli_given(spec, "sigma") || k != FM_PATH_SB) p->sigma = o->sigma;
    p->ve_sigma_min = o->ve_min;
    p->ve_sigma_max = o->ve_max;
    p->beta_min = o->beta_min;
    p->beta_max = o->beta_max;
    p->exponent = o->exponent;
    if (o->t_end != 0) p->t_end = o->t_end;
    if (!(o->sigma_min <= 100)) return cli_usage_error(cmd, "--sigma-min %g must lie in [0, 100]", o->sigma_min);
    if (fm_path_check(p) != FM_OK) return cli_usage_error(cmd, "%s", fm_last_error());
    return CLI_GO;
}

cli_solver_opts cli_solver_defaults(void)
{
    fm_solver_config sc = fm_solver_config_default(FM_SOLVER_MIDPOINT);
    cli_solver_opts o = {fm_solver_name(sc.kind), 8,      NULL,   0.0, sc.rtol, sc.atol, sc.max_steps, sc.noise,
                         sc.snr,                 sc.corrector_steps, "uniform"};
    return o;
}

static const char *sampler_owner(const char *name);
static const char *capitals(const char *n, char *buf, size_t cap);

int cli_solver_check(const char *cmd, const cli_solver_opts *o, int from_noise)
{
    fm_solver_config sc;
    double *grid = NULL;
    int n;
    fm_path any = fm_path_default(FM_PATH_OT);
    cli_solver_opts ode = *o;
    if (fm_solver_from_name(o->solver) < 0 && sampler_owner(o->solver))
        ode.solver = "euler"; /* a method's own sampler (DDPM's): the model decides; the rest is checked here */
    int rc = cli_solver_setup(cmd, &ode, &any, &sc, &grid, &n, from_noise);
    free(grid);
    return rc;
}

/* Comma-separated times, spaces allowed around them. NULL (and a message) on error. */
static double *parse_grid(const char *cmd, const char *text, int *count)
{
    int cap = 16, n = 0;
    double *g = malloc((size_t)cap * sizeof(double));
    const char *p = text;
    while (g) {
        while (*p == ' ') p++;
        char *e;
        double v = strtod(p, &e);
        if (e == p || !isfinite(v)) break;
        if (n == cap) {
            double *ng = realloc(g, (size_t)(cap *= 2) * sizeof(double));
            if (!ng) {
                free(g);
                fprintf(stderr, "flowmatch %s: out of memory for --time-grid\n", cmd);
                return NULL;
            }
            g = ng;
        }
        g[n++] = v;
        while (*e == ' ') e++;
        if (*e == '\0') {
            *count = n;
            return g;
        }
        if (*e != ',') break;
        p = e + 1;
    }
    free(g);
    fprintf(stderr, "flowmatch %s: --time-grid '%s' is not a comma-separated list of times\n", cmd, text);
    return NULL;
}

int cli_solver_setup(const char *cmd, const cli_solver_opts *o, const fm_path *path, fm_solver_config *sc,
                     double **grid, int *ngrid, int from_noise)
{
    /* a flow's stochastic samplers: Euler-Maruyama over the same grid */
    int sde = !strcmp(o->solver, "sde") || !strcmp(o->solver, "em") || !strcmp(o->solver, "pc");
    int k = sde ? FM_SOLVER_EULER : fm_solver_from_name(o->solver);
    const char *owner = k < 0 ? sampler_owner(o->solver) : NULL;
    char kind[32];
    if (owner)
        return cli_usage_error(cmd, "--solver %s is a %s sampler; this takes an ODE solver: euler, midpoint, heun, heun3, rk4 or dopri5",
                               o->solver, capitals(owner, kind, sizeof kind));
    if (k < 0)
        return cli_usage_error(cmd, "unknown solver '%s' (euler, midpoint, heun, heun3, rk4, dopri5, sde, em, pc; a DDPM "
                                    "model: ancestral, ddim)", o->solver);
    *sc = fm_solver_config_default((fm_solver_kind)k);
    if (sde) sc->sampler = !strcmp(o->solver, "sde") ? "sde" : !strcmp(o->solver, "em") ? "em" : "pc";
    if (!(o->noise >= 0) || o->noise > 1e3) return cli_usage_error(cmd, "--noise %g must lie in [0, 1000]", o->noise);
    if (!(o->snr > 0) || o->snr > 10) return cli_usage_error(cmd, "--snr %g must lie in (0, 10]", o->snr);
    if (o->corrector_steps < 0 || o->corrector_steps > 100)
        return cli_usage_error(cmd, "--corrector-steps %d must lie in 0..100", o->corrector_steps);
    sc->noise = o->noise;
    sc->snr = o->snr;
    sc->corrector_steps = o->corrector_steps;
    double rho = 0; /* --spacing: 0 uniform, else EDM's rho */
    if (o->spacing && strcmp(o->spacing, "uniform")) {
        char *e = NULL;
        if (!strcmp(o->spacing, "edm")) rho = 7;
        else if (!strncmp(o->spacing, "edm:", 4)) rho = strtod(o->spacing + 4, &e);
        if (!strncmp(o->spacing, "edm:", 4) && (e == o->spacing + 4 || *e || !(rho > 0) || rho > 100)) rho = -1;
        if (rho <= 0) return cli_usage_error(cmd, "--spacing '%s' must be uniform, edm or edm:RHO (0 < RHO <= 100)", o->spacing);
    }
    sc->rtol = o->rtol;
    sc->atol = o->atol;
    sc->max_steps = o->max_steps;
    if (!(o->rtol > 0) || !(o->atol > 0) || o->max_steps < 1)
        return cli_usage_error(cmd, "--rtol and --atol must be > 0 and --max-steps >= 1");
    double t_end = o->t_end > 0 ? o->t_end : path->t_end;
    if (!(t_end > 0 && t_end <= 1) || o->t_end < 0)
        return cli_usage_error(cmd, "--t-end %g must lie in (0, 1]", o->t_end);
    if (o->time_grid) {
        int n = 0;
        double *g = parse_grid(cmd, o->time_grid, &n);
        if (!g) return CLI_USAGE;
        const char *bad = NULL;
        for (int i = 1; i < n && !bad; i++)
            if (!(g[i] > g[i - 1])) bad = "must increase strictly";
        if (n < 2) bad = "needs at least two times";
        else if (g[0] < 0 || g[n - 1] > 1) bad = "must lie within [0, 1]";
        else if (from_noise && g[0] != 0) bad = "must start at 0 when the ODE starts from noise (or give --x0)";
        if (bad) {
            fprintf(stderr, "flowmatch %s: --time-grid '%s' %s\n", cmd, o->time_grid, bad);
            free(g);
            return CLI_USAGE;
        }
        *grid = g;
        *ngrid = n;
        return CLI_GO;
    }
    if (o->steps < 1 || o->steps > 1000000)
        return cli_usage_error(cmd, "--steps %d must be between 1 and 1000000", o->steps);
    *grid = malloc((size_t)(o->steps + 1) * sizeof(double));
    if (!*grid) return cli_error(cmd, "out of memory");
    *ngrid = o->steps + 1;
    if (rho > 0) {
        if (fm_time_grid_edm(path, *grid, o->steps, 0.0, t_end, rho) == FM_OK) return CLI_GO;
        free(*grid);
        *grid = NULL;
        return cli_usage_error(cmd, "--spacing %s: %s", o->spacing, fm_last_error());
    }
    fm_time_grid_uniform(*grid, o->steps, 0.0, t_end);
    return CLI_GO;
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
        return cli_usage_error(cmd, "output '%s' must end in .npy or .csv", path);
    }
    return s == FM_OK ? CLI_GO : cli_error(cmd, "%s", fm_last_error());
}

int cli_load_model(const char *cmd, const char *path, int use_ema, fm_model **out)
{
    fm_st *st = fm_st_load(path);
    int rc = CLI_GO;
    *out = NULL;
    if (!st) {
        rc = cli_error(cmd, "%s", fm_last_error());
    } else {
        *out = fm_model_load(st, use_ema);
        fm_st_free(st);
        if (!*out) /* name the file once */
            rc = strstr(fm_last_error(), path) ? cli_error(cmd, "%s", fm_last_error())
                                               : cli_error(cmd, "%s: %s", path, fm_last_error());
    }
    if ((rc = cli_dist_go(cmd, rc)) != CLI_GO) { /* every rank has it, or none goes on */
        fm_model_free(*out);
        *out = NULL;
    }
    return rc;
}

int cli_load_flow(const char *cmd, const char *path, int use_ema, fm_model **holder, fm_flow **out)
{
    int rc = cli_load_model(cmd, path, use_ema, holder);
    if (rc != CLI_GO) return rc;
    if (fm_model_sampling(*holder) != FM_SAMPLING_ODE || !fm_model_flow(*holder)) {
        rc = cli_error(cmd, "%s holds a %s model; this command needs a flow-matching model", path,
                       fm_method_name(fm_model_method(*holder)));
        fm_model_free(*holder);
        *holder = NULL;
        return rc;
    }
    *out = fm_model_flow(*holder);
    return CLI_GO;
}

/* A name in capitals ("DDPM"), into buf. */
static const char *capitals(const char *n, char *buf, size_t cap)
{
    size_t k = 0;
    for (; n[k] && k + 1 < cap; k++) buf[k] = (char)toupper((unsigned char)n[k]);
    buf[k] = '\0';
    return buf;
}

const char *cli_model_kind(const fm_model *m, char *buf, size_t cap)
{
    return capitals(fm_model_method_name(m), buf, cap);
}

/* Index of the model's own sampler called name, -1 if none; its names as "a or b" into list. */
static int own_sampler(const fm_model *m, const char *name, char *list, size_t cap)
{
    int found = -1;
    list[0] = '\0';
    const char *s;
    for (int i = 0; (s = fm_model_sampler(m, i, NULL, NULL)); i++) {
        if (name && !strcmp(name, s)) found = i;
        snprintf(list + strlen(list), cap - strlen(list), "%s%s", i ? " or " : "", s);
    }
    return found;
}

/* The method whose own sampler is called name, or NULL. */
static const char *sampler_owner(const char *name)
{
    for (int m = 0; m < fm_method_count(); m++)
        for (int i = 0; fm_method_sampler((fm_method)m, i); i++)
            if (!strcmp(name, fm_method_sampler((fm_method)m, i))) return fm_method_name((fm_method)m);
    return NULL;
}

static const char *const ode_opts[] = {"solver", "steps",  "time-grid", "t-end",           "rtol",
                                       "atol",   "max-steps", "noise", "snr", "corrector-steps", "spacing"};

/* A model with samplers of its own: one of them by --solver, with --steps. */
static int own_sampler_setup(const char *cmd, const cli_spec *spec, cli_solver_opts *so, fm_model *m, int strict,
                             fm_solver_config *sc, double **grid, int *ngrid)
{
    char kind[32], list[128];
    cli_model_kind(m, kind, sizeof kind);
    own_sampler(m, NULL, list, sizeof list);
    for (size_t i = 2; strict && i < sizeof ode_opts / sizeof ode_opts[0]; i++)
        if (cli_given(spec, ode_opts[i]))
            return cli_usage_error(cmd, "--%s does not apply to a %s model (--solver %s, --steps)", ode_opts[i], kind,
                                   list);
    int foreign = !strict && cli_given(spec, "solver") && own_sampler(m, so->solver, list, sizeof list) < 0;
    if (!cli_given(spec, "solver") || foreign) so->solver = fm_model_sampler(m, 0, NULL, NULL);
    int k = own_sampler(m, so->solver, list, sizeof list), steps, max_steps;
    if (k < 0) return cli_usage_error(cmd, "a %s model samples with --solver %s, not '%s'", kind, list, so->solver);
    fm_model_sampler(m, k, &steps, &max_steps);
    if (foreign || !cli_given(spec, "steps")) so->steps = steps;
    if (so->steps < 1 || so->steps > max_steps)
        return cli_usage_error(cmd, "--steps %d must lie in 1..%d for this %s model", so->steps, max_steps, kind);
    *sc = fm_solver_config_default(FM_SOLVER_EULER);
    sc->sampler = fm_model_sampler(m, k, NULL, NULL);
    *grid = malloc((size_t)(so->steps + 1) * sizeof(double));
    if (!*grid) return cli_error(cmd, "out of memory");
    fm_time_grid_uniform(*grid, so->steps, 0.0, 1.0); /* for the observers: flow-matching time */
    *ngrid = so->steps + 1;
    return CLI_GO;
}

int cli_sampler_setup(const char *cmd, const cli_spec *spec, cli_solver_opts *so, fm_model *m, int from_noise,
                      int strict, fm_solver_config *sc, double **grid, int *ngrid)
{
    char kind[32];
    *grid = NULL;
    *ngrid = 0;
    fm_sampling how = fm_model_sampling(m);
    if (how == FM_SAMPLING_DIRECT) {
        for (size_t i = 0; strict && i < sizeof ode_opts / sizeof ode_opts[0]; i++)
            if (cli_given(spec, ode_opts[i]))
                return cli_usage_error(cmd, "--%s does not apply to a %s model: it samples in one network pass",
                                       ode_opts[i], cli_model_kind(m, kind, sizeof kind));
        *sc = fm_solver_config_default(FM_SOLVER_EULER);
        return CLI_GO;
    }
    if (how == FM_SAMPLING_OWN) return own_sampler_setup(cmd, spec, so, m, strict, sc, grid, ngrid);
    const char *owner = fm_solver_from_name(so->solver) < 0 ? sampler_owner(so->solver) : NULL;
    if (owner && strict)
        return cli_usage_error(cmd, "--solver %s is a %s sampler; a flow takes euler, midpoint, heun, heun3, rk4 or dopri5",
                               so->solver, capitals(owner, kind, sizeof kind));
    if (!fm_model_flow(m)) return cli_error(cmd, "a %s model has no ODE to sample", cli_model_kind(m, kind, sizeof kind));
    if (owner) { /* options meant for another model: the flow's own sampler */
        *so = cli_solver_defaults();
        so->solver = fm_solver_name(fm_model_default_solver(m, &so->steps));
    } else if (!cli_given(spec, "solver")) { /* the model's own default (a score model's: dopri5) */
        int steps;
        so->solver = fm_solver_name(fm_model_default_solver(m, &steps));
        if (!cli_given(spec, "steps")) so->steps = steps;
    }
    return cli_solver_setup(cmd, so, fm_flow_sampling_path(fm_model_flow(m)), sc, grid, ngrid, from_noise);
}

int cli_class_choice(const char *cmd, const char *label, double guidance, int *want)
{
    char *end = NULL;
    long v = strtol(label, &end, 10);
    if (!strcmp(label, "all")) *want = -2;
    else if (!strcmp(label, "none")) *want = -1;
    else if (end != label && !*end && v >= 0 && v <= 100000) *want = (int)v;
    else return cli_usage_error(cmd, "--label '%s' must be a class number, 'none' or 'all'", label);
    if (!isfinite(guidance) || fabs(guidance) > 1e4)
        return cli_usage_error(cmd, "--guidance %g must be a finite number within +-1e4", guidance);
    return CLI_GO;
}

/* The signal that asked a loop to stop (0: none). A second signal ends the
 * process at once, without saving: the last good outputs stay as they are
 * (every file is written under a temporary name and renamed). */
static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    if (interrupted) _exit(128 + sig);
    interrupted = sig;
}

int cli_interrupted(void) { return interrupted; }

int cli_exit_code(int rc)
{
    if (rc != CLI_GO && rc != CLI_OK) return rc;
    return interrupted ? 128 + interrupted : CLI_OK;
}

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define NSTOP ((int)(sizeof stop_signals / sizeof stop_signals[0]))

int cli_step_loop(const char *cmd, int64_t start, int64_t iters, int64_t log_every, int quiet, cli_step_fn step,
                  void *ctx, const char *on_interrupt, int64_t *done, double *seconds)
{
    int64_t todo = iters - start > 0 ? iters - start : 0, k = 0;
    int tty = isatty(fileno(stderr)), rc = CLI_GO;
    interrupted = 0;
    struct sigaction sa, old[NSTOP];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < NSTOP; i++) sigaction(stop_signals[i], &sa, &old[i]);
    double t0 = cli_now(), last_print = t0, avg = 0, wsum = 0;
    int ranks = fm_dist_size() > 1;
    for (; k < todo && !interrupted; k++) {
        double loss = 0, lr = 0;
        char extra[128] = "";
        int failed = step(ctx, k, &loss, &lr, extra, sizeof extra) != FM_OK;
        if (failed) { /* a step's save may print its own error */
            if (tty && !quiet) fputc('\n', stderr);
            rc = cli_error(cmd, "%s", fm_last_error());
        }
        if (ranks) { /* every rank stops at the same step: a signal to any, or a failure on one (rank 0's save) */
            char msg[460];
            int any = fm_dist_first(failed ? -1 : interrupted, failed ? cli_last_error() : NULL, msg, sizeof msg);
            if (any == -1 && !failed)
                rc = cli_error(cmd, "at iteration %lld: %s", (long long)(start + k + 1), msg[0] ? msg : "another rank failed");
            else if (any > 0) interrupted = any;
        }
        if (rc != CLI_GO) break;
        avg = 0.98 * avg + 0.02 * loss;
        wsum = 0.98 * wsum + 0.02;
        int64_t it = start + k + 1;
        if (quiet) continue;
        double now = cli_now();
        int due = tty ? (now - last_print > 0.1 || it == iters) : (log_every > 0 && (it % log_every == 0 || it == iters));
        if (due) {
            double rate = (double)(k + 1) / fmax(now - t0, 1e-9);
            fprintf(stderr, "%siter %lld/%lld  loss %.4f  (smoothed %.4f)%s  lr %.2e  %.1f it/s  ETA %.1f s%s",
                    tty ? "\r" : "", (long long)it, (long long)iters, loss, avg / wsum, extra, lr, rate,
                    (double)(iters - it) / rate, tty ? "   " : "\n");
            last_print = now;
        }
    }
    if (tty && !quiet) fputc('\n', stderr);
    for (int i = 0; i < NSTOP; i++) sigaction(stop_signals[i], &old[i], NULL);
    if (interrupted && rc == CLI_GO)
        fprintf(stderr, "flowmatch %s: %s at iteration %lld; %s\n", cmd,
                interrupted == SIGINT ? "interrupted" : interrupted == SIGTERM ? "terminated" : "hung up",
                (long long)(start + k), on_interrupt);
    *done = k;
    *seconds = cli_now() - t0;
    return rc;
}

int cli_parse_ints(const char *s, int *v, int cap)
{
    int n = 0;
    while (*s) {
        char *e;
        errno = 0;
        long x = strtol(s, &e, 10);
        if (e == s || errno || x < 1 || x > 100000 || n == cap || (*e && *e != ',')) return -1;
        v[n++] = (int)x;
        s = *e ? e + 1 : e;
    }
    return n;
}

/* ------------------------------------------------------------------ JSON output */

/* The separator and key of the next member. */
static void json_member(cli_json *j, const char *key)
{
    if (j->depth > 0 && j->count[j->depth - 1]++) putchar(',');
    if (key) {
        cli_json_str_raw(key);
        putchar(':');
    }
}

void cli_json_str_raw(const char *v)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p == '\n') printf("\\n");
        else if (*p == '\t') printf("\\t");
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

void cli_json_open(cli_json *j, const char *key, char bracket)
{
    json_member(j, key);
    putchar(bracket);
    if (j->depth < 8) j->count[j->depth] = 0;
    j->depth++;
}

void cli_json_close(cli_json *j, char bracket)
{
    putchar(bracket);
    if (--j->depth == 0) putchar('\n');
}

void cli_json_num(cli_json *j, const char *key, double v)
{
    json_member(j, key);
    if (isfinite(v)) printf("%.17g", v);
    else printf("null");
}

void cli_json_int(cli_json *j, const char *key, long long v)
{
    json_member(j, key);
    printf("%lld", v);
}

void cli_json_str(cli_json *j, const char *key, const char *v)
{
    json_member(j, key);
    if (v) cli_json_str_raw(v);
    else printf("null");
}
