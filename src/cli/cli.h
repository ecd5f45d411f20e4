/* cli.h - shared pieces of the command-line tool: option parsing, help text
 * and error reporting. The library never prints; the tool does, here.
 */
#ifndef FM_CLI_H
#define FM_CLI_H

#include "flowmatch.h"

#include <stdio.h>

/* Exit codes: 0 success, 1 the work failed (bad file, numeric trouble), 2 usage.
 * The one return convention of the tool: a command (cmd_*) returns an exit
 * code; every helper that can end a command returns CLI_GO to go on, or the
 * exit code to end it with (its message already printed), so a caller writes
 * `if ((rc = helper(...)) != CLI_GO) return rc;`. */
enum { CLI_GO = -1, CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

typedef enum { OPT_STR, OPT_INT, OPT_I64, OPT_DOUBLE, OPT_FLAG } cli_kind;

typedef struct {
    const char *name;     /* long name without dashes, e.g. "lr" */
    cli_kind kind;
    void *dst;            /* const char **, int *, int64_t *, double *, int * (flag) */
    const char *metavar;  /* "N", "FILE", ... (unused for flags) */
    const char *help;     /* one line; the default is printed after it */
} cli_opt;

typedef struct {
    const char *name;     /* "inspect" */
    const char *args;     /* "FILE" */
    const char *summary;  /* one line for the command list */
    const char *details;  /* paragraph for --help, may be NULL */
    const cli_opt *opts;
    int nopts;
    int npos_min, npos_max;
    unsigned char *given; /* (nopts) or NULL: set to 1 for each option on the command line */
} cli_spec;

/* Parse argv (after the command name). Positional arguments go to pos[].
 * Returns -1 to go on, or an exit code (0 after --help, 2 after a usage error,
 * with the message already on stderr). */
int cli_parse(const cli_spec *spec, int argc, char **argv, const char **pos, int *npos);
void cli_help(const cli_spec *spec, FILE *f);
/* Was option `name` on the command line? (spec->given must be set.) */
int cli_given(const cli_spec *spec, const char *name);
/* Create folder dir and its parents (like mkdir -p); an existing folder is
 * fine. On failure reports "cannot use DIR as the output folder: why" and
 * returns CLI_FAIL; CLI_GO on success. */
int cli_make_dir(const char *cmd, const char *dir);
/* "flowmatch CMD: <message>" on stderr; returns CLI_FAIL. */
int cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The same for a bad command line; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Solver options shared by sample, eval and demo. */
typedef struct {
    const char *solver;
    int steps;
    const char *time_grid; /* "0,0.5,1" or NULL */
    double t_end;          /* <= 0: the path's */
    double rtol, atol;
    int64_t max_steps;
    double noise;          /* --solver sde, em, pc: the diffusion's scale G */
    double snr;            /* --solver pc: the corrector's signal-to-noise ratio */
    int corrector_steps;   /* --solver pc: Langevin steps per step */
    const char *spacing;   /* "uniform" or "edm[:RHO]": the grid of --steps */
} cli_solver_opts;

/* The options' defaults: a flow's own sampler (midpoint, 8 steps), the path's
 * end time, and the tolerances and step limit of fm_solver_config_default. */
cli_solver_opts cli_solver_defaults(void);
#define CLI_SOLVER_OPTIONS(o)                                                                                 \
    {"solver", OPT_STR, &(o).solver, "NAME",                                                                 \
     "euler, midpoint, heun, heun3, rk4, dopri5; stochastic: sde, em, pc; DDPM: ancestral, ddim"},                  \
    {"steps", OPT_INT, &(o).steps, "N", "grid of N steps on [0, t-end] (DDPM: sampler steps)"},               \
    {"spacing", OPT_STR, &(o).spacing, "KIND", "the steps' grid: uniform, or edm[:RHO] (EDM's, rho 7)"},     \
    {"time-grid", OPT_STR, &(o).time_grid, "T0,T1,...", "explicit increasing times instead of --steps"},      \
    {"t-end", OPT_DOUBLE, &(o).t_end, "T", "end time (0: the path's, 1 or 1 - 1e-3 for ve/vp/subvp/linear-vp)"},   \
    {"rtol", OPT_DOUBLE, &(o).rtol, "X", "dopri5 relative tolerance"},                                       \
    {"atol", OPT_DOUBLE, &(o).atol, "X", "dopri5 absolute tolerance"},                                       \
    {"max-steps", OPT_I64, &(o).max_steps, "N", "dopri5 step limit"},                                        \
    {"noise", OPT_DOUBLE, &(o).noise, "G", "sde: g_t = G s_t (0: the ODE); em, pc: G x the SDE's g"},       \
    {"snr", OPT_DOUBLE, &(o).snr, "R", "pc: the Langevin corrector's signal-to-noise ratio"},                \
    {"corrector-steps", OPT_INT, &(o).corrector_steps, "N", "pc: Langevin steps after each step"}

/* A probability path and a coupling on the command line (train, batch). */
typedef struct {
    const char *path, *coupling;
    double sigma_min, sigma, ve_min, ve_max, beta_min, beta_max, exponent, t_end;
} cli_path_opts;
/* The default path's parameters (ot, independent; ve's and vp's own). */
cli_path_opts cli_path_defaults(void);
#define CLI_PATH_OPTIONS(o)                                                                                   \
    {"path", OPT_STR, &(o).path, "NAME", "ot, icfm, ve, vp, cosine, poly, linear-vp, sb, subvp"},           \
    {"coupling", OPT_STR, &(o).coupling, "NAME", "independent, ot (minibatch OT) or sb (Schrodinger bridge)"}, \
    {"sigma-min", OPT_DOUBLE, &(o).sigma_min, "X", "ot: final noise level (0 .. 100; 1 keeps the source noise to the end)"}, \
    {"sigma", OPT_DOUBLE, &(o).sigma, "X", "icfm, cosine: constant noise; sb: bridge noise (default 0.5)"},  \
    {"ve-sigma-min", OPT_DOUBLE, &(o).ve_min, "X", "ve: smallest noise"},                                    \
    {"ve-sigma-max", OPT_DOUBLE, &(o).ve_max, "X", "ve: largest noise (source std)"},                        \
    {"beta-min", OPT_DOUBLE, &(o).beta_min, "X", "vp: beta at the data end"},                                \
    {"beta-max", OPT_DOUBLE, &(o).beta_max, "X", "vp: beta at the noise end"},                               \
    {"exponent", OPT_DOUBLE, &(o).exponent, "N", "poly: alpha_t = t^N"},                                     \
    {"t-end", OPT_DOUBLE, &(o).t_end, "T", "train on t in [0, T] (0: 1, or 1 - 1e-3 for ve/vp/subvp/linear-vp)"}
/* The path and coupling the options name (--coupling sb without --path takes
 * the sb path: the bridge comes with its plan). */
int cli_path_setup(const char *cmd, const cli_spec *spec, const cli_path_opts *o, fm_path *p, fm_coupling *c);

/* Exit code for a library failure: 2 for a bad argument or shape, else 1. */
int cli_status_code(fm_status s);

/* Outputs written under temporary names and renamed together at the end, so a
 * command that fails part-way replaces none of its earlier outputs. */
typedef struct {
    char *final[16], *tmp[16];
    int n;
} cli_outputs;
/* The temporary name to write final's contents to (same extension). */
const char *cli_out_stage(cli_outputs *o, const char *final);
int cli_out_commit(const char *cmd, cli_outputs *o); /* -1 on success, else exit code */
/* Every staged output can be created (tried, then removed): the check before
 * long work; the message names the missing folder. CLI_GO, or the exit code.
 * Staging an output also removes what a killed run left beside it. */
int cli_out_check(const char *cmd, cli_outputs *o);
/* Under mpirun: the checks of outputs are rank 0's, and the other ranks stage
 * theirs in a folder of their own (cli_scratch_remove deletes it). After a
 * check that only rank 0 makes, cli_dist_go(cmd, rc) gives every rank the first
 * rank's stop (its exit code), or CLI_GO when all go on. Collective. */
int cli_dist_go(const char *cmd, int rc);
/* The last message cli_error or cli_usage_error printed, without its
 * "flowmatch CMD: " ("" when none). */
const char *cli_last_error(void);
void cli_scratch_remove(void);
/* The same for named outputs before a command's work (NULL entries skipped). */
int cli_writable(const char *cmd, const char *const *paths, int n);
/* A default output name (option opt not given) that would replace an existing
 * file the user did not name: refused unless force. CLI_GO, or exit code 2. */
int cli_default_output(const char *cmd, const cli_spec *spec, const char *opt, const char *path, int force);
void cli_out_abort(cli_outputs *o);
/* A command that writes files names[0..n) (at most 16) into folder dir
 * (option --out-dir): the folder is made, and before any work each file is
 * checked writable; a default folder (--out-dir not given) whose files exist
 * is refused unless force. CLI_GO, or the exit code. */
int cli_dir_outputs(const char *cmd, const cli_spec *spec, const char *dir, const char *const *names, int n, int force);

double cli_now(void);
int cli_has_suffix(const char *s, const char *suffix);
char *cli_derive(const char *path, const char *tail);
/* Check the solver options before any work (CLI_GO if fine, else exit code 2 with
 * the message printed). */
int cli_solver_check(const char *cmd, const cli_solver_opts *o, int from_noise);
/* Solver config and time grid (malloc'ed) from the options; CLI_GO to go on, else
 * an exit code. from_noise: the ODE starts from the source, so the grid must
 * start at t = 0. */
int cli_solver_setup(const char *cmd, const cli_solver_opts *o, const fm_path *path, fm_solver_config *sc,
                     double **grid, int *ngrid, int from_noise);
/* Points to .npy or .csv by extension; CLI_GO on success, else an exit code. */
int cli_write_points(const char *cmd, const char *path, const float *x, int n, int d);
/* A model of any method from a checkpoint; CLI_GO on success, else an exit code. */
int cli_load_model(const char *cmd, const char *path, int use_ema, fm_model **out);
/* The same for commands that need a flow-matching model: *out is the flow
 * inside *holder (free the holder). */
int cli_load_flow(const char *cmd, const char *path, int use_ema, fm_model **holder, fm_flow **out);
/* The model's method in capitals ("DDPM"), for messages, into buf. */
const char *cli_model_kind(const fm_model *m, char *buf, size_t cap);
/* The sampler for model m from the solver options, its own default where
 * --solver / --steps were not given (spec->given must be set): an ODE solver
 * and time grid for flows, ancestral or ddim with --steps for DDPM, nothing
 * (grid NULL) for VAE and GAN, which refuse solver options when strict. eval
 * is not strict: its options may be meant for its other side, so a model
 * that cannot use them takes its own default sampler. CLI_GO to go on. */
int cli_sampler_setup(const char *cmd, const cli_spec *spec, cli_solver_opts *so, fm_model *m, int from_noise,
                      int strict, fm_solver_config *sc, double **grid, int *ngrid);

/* Losses per iteration of a training run: the loss, the learning rate, and
 * the trainer's loss parts (up to 4 per iteration, names in names). */
typedef struct {
    float *loss, *lr, *parts; /* (n), (n), (n * 4) */
    const char *names[4];
    int nparts;
    int64_t n;
} cli_losses;
void cli_losses_free(cli_losses *log);
/* One training step k (0-based) for cli_step_loop: its loss, the learning
 * rate it used and any further figures for the progress line in extra
 * ("  name value" pieces, cap bytes). */
typedef fm_status (*cli_step_fn)(void *ctx, int64_t k, double *loss, double *lr, char *extra, size_t cap);
/* Steps k = 0, 1, ... of a run at iteration start until iters (the total)
 * or Ctrl-C, with a progress line (on a terminal, redrawn; otherwise every
 * log_every iterations) of the loss, its smoothed value, extra, the rate and
 * the time left; after Ctrl-C, "interrupted at iteration N; " and
 * on_interrupt. *done: the steps taken, *seconds their time. -1 on success,
 * else the failed step's exit code. */
int cli_step_loop(const char *cmd, int64_t start, int64_t iters, int64_t log_every, int quiet, cli_step_fn step,
                  void *ctx, const char *on_interrupt, int64_t *done, double *seconds);
/* The signal (SIGINT, SIGTERM, SIGHUP) that stopped the last loop, 0 if none;
 * and a command's exit code from its result (CLI_GO or CLI_OK: done): 128 +
 * that signal after an interrupted run whose work was saved, else 0. */
int cli_interrupted(void);
int cli_exit_code(int rc);
/* The training loop with progress and Ctrl-C handling, shared by train, demo,
 * reflow and compare. On success (-1) log holds the iterations done (caller
 * frees); otherwise it is freed. */
typedef struct {
    int64_t every;   /* save after every this many iterations; 0: every `seconds` of training; < 0: never */
    double seconds;
    fm_status (*fn)(void *ctx, const cli_losses *log); /* the log so far (n set); a failure's message in fm_last_error */
    void *ctx;
} cli_saver;
/* save (may be NULL): periodic saves while training. */
int cli_train_loop(const char *cmd, fm_trainer *tr, int64_t iters, int64_t log_every, int quiet, cli_losses *log,
                   double *seconds, const cli_saver *save);
/* Losses of iterations first_iter + 1 ... to csv (iter, loss, lr, parts) and
 * svg; earlier: a previous loss CSV whose rows up to first_iter are kept. */
int cli_write_losses(const char *cmd, const char *csv, const char *svg, const cli_losses *log, int64_t first_iter,
                     const char *earlier);

/* --json: one JSON object on stdout instead of the text (the same numbers).
 * Members are written as they come; objects and arrays nest up to 8 deep. A
 * number that is not finite is written as null. */
typedef struct {
    int depth, count[8];
} cli_json;
void cli_json_open(cli_json *j, const char *key, char bracket); /* key NULL inside arrays and at the top */
void cli_json_close(cli_json *j, char bracket);                 /* prints a newline after the top object */
void cli_json_num(cli_json *j, const char *key, double v);
void cli_json_int(cli_json *j, const char *key, long long v);
void cli_json_str(cli_json *j, const char *key, const char *v); /* NULL: null */
void cli_json_str_raw(const char *v);                           /* a string, escaped */

int cmd_inspect(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_datasets(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_nll(int argc, char **argv);
int cmd_reflow(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_classifier(int argc, char **argv);

/* A comma-separated list of up to cap whole numbers in 1..100000 into v: their
 * count, or -1 if s is not such a list. */
int cli_parse_ints(const char *s, int *v, int cap);
/* --label and --guidance of a class-conditional model: *want = -2 for "all",
 * -1 for "none", else the class number (checked against the model's classes
 * later); the weight finite and within +-1e4. CLI_GO if both are valid, else the
 * usage error's exit code. */
int cli_class_choice(const char *cmd, const char *label, double guidance, int *want);

#endif
