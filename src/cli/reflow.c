/* reflow.c - `flowmatch reflow`: rectified flow. Each round draws source
 * points, solves them to the current model's samples, and trains a model on
 * those fixed pairs with the straight path x_t = t x1 + (1 - t) x0, starting
 * from the current weights; the paths straighten, so few steps suffice. Prints
 * W2 after 1 and 2 Euler steps and the path energy before and after each round.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What every round is scored against, drawn once: n fresh data points (and
 * in the network's units), and W2 from the source to them (the first report
 * computes it: the source draws repeat every round). */
typedef struct {
    int n, d;
    float *ref, *refm, *x, *x0;
    double w2src; /* < 0 until known */
} eval_set;

static void eval_free(eval_set *e)
{
    free(e->ref);
    free(e->refm);
    free(e->x);
    free(e->x0);
}

static int eval_setup(const char *cmd, fm_flow *f, int n, uint64_t seed, const char *data, eval_set *e)
{
    int d = fm_flow_get_config(f)->dim;
    size_t nd = (size_t)n * d;
    *e = (eval_set){n, d, malloc(nd * sizeof(float)), malloc(nd * sizeof(float)), malloc(nd * sizeof(float)),
                    malloc(nd * sizeof(float)), -1.0};
    fm_dataset *ds = fm_dataset_open(data);
    if (!ds || !e->ref || !e->refm || !e->x || !e->x0) {
        fm_dataset_free(ds);
        return cli_error(cmd, "cannot draw the evaluation data: %s", ds ? "out of memory" : fm_last_error());
    }
    fm_rng rd;
    fm_rng_seed(&rd, seed + 1000, FM_STREAM_DATA);
    fm_status s = fm_dataset_sample(ds, &rd, e->ref, n);
    fm_dataset_free(ds);
    if (s) return cli_error(cmd, "%s", fm_last_error());
    memcpy(e->refm, e->ref, nd * sizeof(float));
    fm_flow_to_model(f, e->refm, n); /* reflow keeps the data's standardisation */
    return CLI_GO;
}

/* W2 to the evaluation data after 1 and 2 Euler steps, and the path energy
 * over 100 Euler steps, normalised by W2^2 from the source to the data. */
static int report(const char *cmd, fm_flow *f, int round, uint64_t seed, eval_set *e)
{
    const fm_flow_config *fc = fm_flow_get_config(f);
    fm_solver_config eu = fm_solver_config_default(FM_SOLVER_EULER);
    double w2[2], grid[101], energy = 0;
    fm_rng r;
    for (int k = 1; k <= 2; k++) {
        fm_time_grid_uniform(grid, k, 0.0, fc->path.t_end);
        fm_rng_seed(&r, seed + 1000, FM_STREAM_NOISE);
        if (fm_flow_sample(f, e->n, NULL, &r, &eu, grid, k + 1, e->x, NULL, NULL, NULL) != FM_OK ||
            fm_w2_exact(e->x, e->ref, e->n, e->d, &w2[k - 1], NULL) != FM_OK)
            return cli_error(cmd, "%s", fm_last_error());
    }
    fm_time_grid_uniform(grid, 100, 0.0, fc->path.t_end);
    fm_rng_seed(&r, seed + 1000, FM_STREAM_NOISE);
    if (fm_flow_path_energy(f, e->n, NULL, &r, &eu, grid, 101, e->x0, NULL, &energy, NULL) != FM_OK ||
        (e->w2src < 0 && fm_w2_exact(e->x0, e->refm, e->n, e->d, &e->w2src, NULL) != FM_OK))
        return cli_error(cmd, "%s", fm_last_error());
    double w = e->w2src * e->w2src;
    printf("%5d  %17.4f  %17.4f  %11.4f  %10.4f\n", round, w2[0], w2[1], energy, fabs(energy - w) / w);
    fflush(stdout);
    return CLI_GO;
}

/* The command line. */
typedef struct {
    const char *model, *out;
    int rounds, npairs, batch, fresh, threads, quiet, save_rounds, eval_n;
    int64_t iters, seed;
    double lr, ema;
    cli_solver_opts so;
} reflow_opts;

/* One run: the current flow, its pairs and the round's trainer. */
typedef struct {
    fm_flow *cur;
    char *data;       /* the flow's training data spec */
    float *x0, *x1;   /* (pairs, d) */
    int *labels;      /* (pairs) a class-conditional flow's: pair i is of class i mod K */
    fm_solver_config sc;
    double *grid;
    int ngrid;
    fm_trainer *tr;
    eval_set ev;
} reflow_run;

static void run_free(reflow_run *r)
{
    eval_free(&r->ev);
    fm_trainer_free(r->tr);
    fm_flow_free(r->cur);
    free(r->data);
    free(r->x0);
    free(r->x1);
    free(r->labels);
    free(r->grid);
}

/* The options on their own, before any file is read. */
static int check_options(const reflow_opts *o)
{
#define BAD(...) return cli_usage_error("reflow", __VA_ARGS__)
    if (!o->model) BAD("--model is required");
    if (o->rounds < 1 || o->rounds > 100) BAD("--rounds %d must lie in 1..100", o->rounds);
    if (o->npairs < 2 || o->npairs > (1 << 24)) BAD("--pairs %d is invalid", o->npairs);
    if (o->iters < 1 || o->batch < 1 || o->batch > (1 << 24)) BAD("--iters and --batch must be >= 1");
    if (!(o->lr > 0) || !(o->ema >= 0 && o->ema < 1)) BAD("--lr must be > 0 and --ema in [0, 1)");
    if (o->eval_n < 2 || o->eval_n > 20000) BAD("--eval-n must lie in 2..20000");
    if (o->seed < 0 || o->threads < 0 || o->threads > 1024) BAD("--seed must be >= 0 and --threads in 0..1024");
    if (!cli_has_suffix(o->out, ".safetensors")) BAD("--out '%s' must end in .safetensors", o->out);
#undef BAD
    int rc = cli_writable("reflow", &o->out, 1);
    return rc != CLI_GO ? rc : cli_solver_check("reflow", &o->so, 1);
}

/* The flow to straighten, alone (rounds replace it), and room for its pairs. */
static int open_model(const reflow_opts *o, reflow_run *r)
{
    fm_model *holder;
    int rc = cli_load_flow("reflow", o->model, 1, &holder, &r->cur);
    if (rc != CLI_GO) return rc;
    r->cur = fm_model_take_flow(holder);
    const fm_flow_config *fc = fm_flow_get_config(r->cur);
    r->data = malloc(strlen(fc->data) + 1);
    r->x0 = malloc((size_t)o->npairs * fc->dim * sizeof(float));
    r->x1 = malloc((size_t)o->npairs * fc->dim * sizeof(float));
    int K = fm_flow_num_classes(r->cur);
    r->labels = K ? malloc((size_t)o->npairs * sizeof(int)) : NULL;
    if (!r->data || !r->x0 || !r->x1 || (K && !r->labels))
        return cli_error("reflow", "out of memory for %d pairs", o->npairs);
    for (int i = 0; K && i < o->npairs; i++) r->labels[i] = i % K;
    strcpy(r->data, fc->data);
    return CLI_GO;
}

/* Round k's pairs: source points solved to the current flow's samples. */
static int make_pairs(const reflow_opts *o, reflow_run *r, int round)
{
    const fm_flow_config *fc = fm_flow_get_config(r->cur);
    free(r->grid);
    r->grid = NULL;
    int rc = cli_solver_setup("reflow", &o->so, &fc->path, &r->sc, &r->grid, &r->ngrid, 1);
    if (rc != CLI_GO) return rc;
    fm_rng rng;
    fm_rng_seed(&rng, (uint64_t)o->seed + (uint64_t)round, FM_STREAM_NOISE);
    double t0 = cli_now();
    /* a class-conditional flow solves each pair under its class, without guidance */
    if ((r->labels && fm_flow_set_condition(r->cur, r->labels, o->npairs, 1.0) != FM_OK) ||
        fm_flow_make_pairs(r->cur, o->npairs, &rng, &r->sc, r->grid, r->ngrid, r->x0, r->x1) != FM_OK)
        return cli_error("reflow", "making pairs: %s", fm_last_error());
    fm_flow_set_condition(r->cur, NULL, 0, 0);
    if (!o->quiet) fprintf(stderr, "round %d: %d pairs in %.2f s\n", round, o->npairs, cli_now() - t0);
    return CLI_GO;
}

/* Train on the pairs with the straight path, from the current weights unless
 * --fresh; the result (its EMA when kept) becomes the current flow. */
static int train_round(const reflow_opts *o, reflow_run *r, int round)
{
    fm_train_config c = fm_train_config_default();
    c.flow = *fm_flow_get_config(r->cur);
    c.flow.path = fm_path_default(FM_PATH_OT); /* straight: x_t = t x1 + (1 - t) x0 */
    c.optim.lr = o->lr;
    c.batch = o->batch;
    c.iters = o->iters;
    c.seed = (uint64_t)o->seed + (uint64_t)round;
    c.ema_decay = o->ema;
    c.standardize = fm_flow_standardized(r->cur, NULL, NULL);
    fm_trainer_free(r->tr);
    r->tr = fm_trainer_new(&c);
    if (!r->tr || fm_trainer_set_labeled_pairs(r->tr, r->x0, r->x1, r->labels, o->npairs) != FM_OK ||
        (!o->fresh && fm_trainer_init_from(r->tr, r->cur) != FM_OK))
        return cli_error("reflow", "%s", fm_last_error());
    cli_losses log;
    double secs;
    int rc = cli_train_loop("reflow", r->tr, o->iters, 1000, o->quiet, &log, &secs, NULL);
    cli_losses_free(&log);
    if (rc != CLI_GO) return rc;
    fm_flow *next = fm_trainer_flow(r->tr);
    if (o->ema > 0) fm_ema_swap(fm_trainer_ema(r->tr), fm_flow_params(next));
    /* the next round starts from these weights (the EMA when kept) */
    fm_flow_free(r->cur);
    r->cur = fm_flow_clone(next);
    if (o->ema > 0) fm_ema_swap(fm_trainer_ema(r->tr), fm_flow_params(next));
    if (!r->cur) return cli_error("reflow", "%s", fm_last_error());
    return CLI_GO;
}

/* The last round's checkpoint to --out; with --save-rounds the others beside it. */
static int save_round(const reflow_opts *o, reflow_run *r, int round)
{
    char *rp = NULL;
    if (o->save_rounds && round < o->rounds) {
        char tail[48];
        snprintf(tail, sizeof tail, "_round%d.safetensors", round);
        rp = cli_derive(o->out, tail);
    }
    const char *path = round == o->rounds ? o->out : rp;
    int rc = CLI_GO;
    if (path && fm_trainer_save(r->tr, path) != FM_OK) rc = cli_error("reflow", "%s", fm_last_error());
    free(rp);
    return rc;
}

/* Everything after the options: CLI_OK, or the exit code of the step that failed. */
static int run(const reflow_opts *o, reflow_run *r)
{
    int rc;
    fm_set_threads(o->threads);
    if ((rc = open_model(o, r)) != CLI_GO) return rc;
    if ((rc = eval_setup("reflow", r->cur, o->eval_n, (uint64_t)o->seed, r->data, &r->ev)) != CLI_GO) return rc;
    printf("round  W2 (1 Euler step)  W2 (2 Euler steps)  path energy  normalised\n");
    if ((rc = report("reflow", r->cur, 0, (uint64_t)o->seed, &r->ev)) != CLI_GO) return rc;
    for (int round = 1; round <= o->rounds; round++) {
        if ((rc = make_pairs(o, r, round)) != CLI_GO) return rc;
        if ((rc = train_round(o, r, round)) != CLI_GO) return rc;
        if ((rc = report("reflow", r->cur, round, (uint64_t)o->seed, &r->ev)) != CLI_GO) return rc;
        if ((rc = save_round(o, r, round)) != CLI_GO) return rc;
    }
    if (!o->quiet) fprintf(stderr, "wrote %s\n", o->out);
    return CLI_OK;
}

int cmd_reflow(int argc, char **argv)
{
    /* batch, EMA and seed as a training run's (fm_train_config_default); fewer
     * iterations at a lower rate, since each round starts from trained weights */
    fm_train_config c = fm_train_config_default();
    reflow_opts o = {.out = "reflow.safetensors", .rounds = 1, .npairs = 20000, .batch = c.batch, .eval_n = 2000,
                     .iters = 5000, .seed = (int64_t)c.seed, .lr = 1e-3, .ema = c.ema_decay,
                     .so = cli_solver_defaults()};
    o.so.solver = "dopri5";
    const cli_opt opts[] = {
        {"model", OPT_STR, &o.model, "FILE", "the flow to straighten (required)"},
        {"rounds", OPT_INT, &o.rounds, "K", "reflow rounds (K-rectified flow)"},
        {"pairs", OPT_INT, &o.npairs, "N", "pairs drawn per round"},
        CLI_SOLVER_OPTIONS(o.so),
        {"iters", OPT_I64, &o.iters, "N", "training iterations per round"},
        {"batch", OPT_INT, &o.batch, "N", "batch size"},
        {"lr", OPT_DOUBLE, &o.lr, "X", "Adam learning rate"},
        {"ema", OPT_DOUBLE, &o.ema, "X", "EMA decay of the weights (0: off)"},
        {"fresh", OPT_FLAG, &o.fresh, NULL, "start each round from new weights instead of the current ones"},
        {"seed", OPT_I64, &o.seed, "N", "random seed"},
        {"eval-n", OPT_INT, &o.eval_n, "N", "points for the W2 and path-energy report"},
        {"out", OPT_STR, &o.out, "FILE", "the last round's checkpoint (.safetensors)"},
        {"save-rounds", OPT_FLAG, &o.save_rounds, NULL, "also keep every round as <out>_round<k>.safetensors"},
        {"threads", OPT_INT, &o.threads, "N", "threads (0: all cores)"},
        {"quiet", OPT_FLAG, &o.quiet, NULL, "no training progress"},
    };
    const cli_spec spec = {"reflow", NULL, "Rectified flow: straighten a trained flow by retraining on its own pairs.",
                           "Each round solves --pairs source points to samples with the current model\n"
                           "(default dopri5 with rtol = atol = 1e-5), then trains --iters steps on those fixed\n"
                           "pairs with the straight path (x_t = t x1 + (1 - t) x0, target x1 - x0), from the\n"
                           "current weights unless --fresh. A class-conditional flow solves pair i under\n"
                           "class i mod K (no guidance) and trains on it with that label. The table shows\n"
                           "W2 to fresh data after 1 and 2 Euler steps and the path energy (100 Euler\n"
                           "steps) with |E - W2^2| / W2^2, before the first round and after each.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, NULL};
    int npos, rc;
    if ((rc = cli_parse(&spec, argc, argv, NULL, &npos)) != CLI_GO) return rc;
    if ((rc = check_options(&o)) != CLI_GO) return rc;
    reflow_run r = {0};
    rc = run(&o, &r);
    run_free(&r);
    return cli_exit_code(rc); /* 128 + the signal after an interrupted run */
}
