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
    return -1;
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
    return -1;
}

int cmd_reflow(int argc, char **argv)
{
    const char *model = NULL, *out = "reflow.safetensors";
    int rounds = 1, npairs = 20000, batch = 256, fresh = 0, threads = 0, quiet = 0, save_rounds = 0, eval_n = 2000;
    int64_t iters = 5000, seed = 0;
    double lr = 1e-3, ema = 0;
    cli_solver_opts so = cli_solver_defaults();
    so.solver = "dopri5";
    const cli_opt opts[] = {
        {"model", OPT_STR, &model, "FILE", "the flow to straighten (required)"},
        {"rounds", OPT_INT, &rounds, "K", "reflow rounds (K-rectified flow)"},
        {"pairs", OPT_INT, &npairs, "N", "pairs drawn per round"},
        CLI_SOLVER_OPTIONS(so),
        {"iters", OPT_I64, &iters, "N", "training iterations per round"},
        {"batch", OPT_INT, &batch, "N", "batch size"},
        {"lr", OPT_DOUBLE, &lr, "X", "Adam learning rate"},
        {"ema", OPT_DOUBLE, &ema, "X", "EMA decay of the weights (0: off)"},
        {"fresh", OPT_FLAG, &fresh, NULL, "start each round from new weights instead of the current ones"},
        {"seed", OPT_I64, &seed, "N", "random seed"},
        {"eval-n", OPT_INT, &eval_n, "N", "points for the W2 and path-energy report"},
        {"out", OPT_STR, &out, "FILE", "the last round's checkpoint (.safetensors)"},
        {"save-rounds", OPT_FLAG, &save_rounds, NULL, "also keep every round as <out>_round<k>.safetensors"},
        {"threads", OPT_INT, &threads, "N", "threads (0: all cores)"},
        {"quiet", OPT_FLAG, &quiet, NULL, "no training progress"},
    };
    const cli_spec spec = {"reflow", NULL, "Rectified flow: straighten a trained flow by retraining on its own pairs.",
                           "Each round solves --pairs source points to samples with the current model\n"
                           "(default dopri5 with rtol = atol = 1e-5), then trains --iters steps on those fixed\n"
                           "pairs with the straight path (x_t = t x1 + (1 - t) x0, target x1 - x0), from the\n"
                           "current weights unless --fresh. The table shows W2 to fresh data after 1 and 2\n"
                           "Euler steps and the path energy (100 Euler steps) with |E - W2^2| / W2^2,\n"
                           "before the first round and after each.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, NULL};
    int npos;
    int rc = cli_parse(&spec, argc, argv, NULL, &npos);
    if (rc >= 0) return rc;
#define BAD(...) return cli_usage_error("reflow", __VA_ARGS__)
    if (!model) BAD("--model is required");
    if (rounds < 1 || rounds > 100) BAD("--rounds %d must lie in 1..100", rounds);
    if (npairs < 2 || npairs > (1 << 24)) BAD("--pairs %d is invalid", npairs);
    if (iters < 1 || batch < 1 || batch > (1 << 24)) BAD("--iters and --batch must be >= 1");
    if (!(lr > 0) || !(ema >= 0 && ema < 1)) BAD("--lr must be > 0 and --ema in [0, 1)");
    if (eval_n < 2 || eval_n > 20000) BAD("--eval-n must lie in 2..20000");
    if (seed < 0 || threads < 0 || threads > 1024) BAD("--seed must be >= 0 and --threads in 0..1024");
    if (!cli_has_suffix(out, ".safetensors")) BAD("--out '%s' must end in .safetensors", out);
#undef BAD
    if ((rc = cli_solver_check("reflow", &so, 1)) >= 0) return rc;
    fm_set_threads(threads);
    fm_model *holder;
    fm_flow *cur;
    if ((rc = cli_load_flow("reflow", model, 1, &holder, &cur)) >= 0) return rc;
    cur = fm_model_take_flow(holder); /* keep the flow alone: rounds replace it */
    const fm_flow_config *fc0 = fm_flow_get_config(cur);
    int d = fc0->dim;
    char *data = malloc(strlen(fc0->data) + 1);
    float *x0 = malloc((size_t)npairs * d * sizeof(float)), *x1 = malloc((size_t)npairs * d * sizeof(float));
    double *grid = NULL;
    int ngrid;
    fm_solver_config sc;
    fm_trainer *tr = NULL;
    eval_set ev = {0};
    if (!data || !x0 || !x1) {
        rc = cli_error("reflow", "out of memory for %d pairs", npairs);
        goto done;
    }
    strcpy(data, fc0->data);
    if ((rc = eval_setup("reflow", cur, eval_n, (uint64_t)seed, data, &ev)) >= 0) goto done;
    printf("round  W2 (1 Euler step)  W2 (2 Euler steps)  path energy  normalised\n");
    if ((rc = report("reflow", cur, 0, (uint64_t)seed, &ev)) >= 0) goto done;
    for (int round = 1; round <= rounds; round++) {
        const fm_flow_config *fc = fm_flow_get_config(cur);
        free(grid);
        grid = NULL;
        if ((rc = cli_solver_setup("reflow", &so, &fc->path, &sc, &grid, &ngrid, 1)) >= 0) goto done;
        fm_rng r;
        fm_rng_seed(&r, (uint64_t)seed + (uint64_t)round, FM_STREAM_NOISE);
        double t0 = cli_now();
        if (fm_flow_make_pairs(cur, npairs, &r, &sc, grid, ngrid, x0, x1) != FM_OK) {
            rc = cli_error("reflow", "making pairs: %s", fm_last_error());
            goto done;
        }
        if (!quiet) fprintf(stderr, "round %d: %d pairs in %.2f s\n", round, npairs, cli_now() - t0);
        fm_train_config c = fm_train_config_default();
        c.flow = *fc;
        c.flow.path = fm_path_default(FM_PATH_OT); /* straight: x_t = t x1 + (1 - t) x0 */
        c.optim.lr = lr;
        c.batch = batch;
        c.iters = iters;
        c.seed = (uint64_t)seed + (uint64_t)round;
        c.ema_decay = ema;
        c.standardize = fm_flow_standardized(cur, NULL, NULL);
        fm_trainer_free(tr);
        tr = fm_trainer_new(&c);
        if (!tr || fm_trainer_set_pairs(tr, x0, x1, npairs) != FM_OK ||
            (!fresh && fm_trainer_init_from(tr, cur) != FM_OK)) {
            rc = cli_error("reflow", "%s", fm_last_error());
            goto done;
        }
        cli_losses log;
        double secs;
        rc = cli_train_loop("reflow", tr, iters, 1000, quiet, &log, &secs);
        cli_losses_free(&log);
        if (rc >= 0) goto done;
        fm_flow *next = fm_trainer_flow(tr);
        if (ema > 0) fm_ema_swap(fm_trainer_ema(tr), fm_flow_params(next));
        /* the next round starts from these weights (the EMA when kept) */
        fm_flow_free(cur);
        cur = fm_flow_clone(next);
        if (ema > 0) fm_ema_swap(fm_trainer_ema(tr), fm_flow_params(next));
        if (!cur) {
            rc = cli_error("reflow", "%s", fm_last_error());
            goto done;
        }
        if ((rc = report("reflow", cur, round, (uint64_t)seed, &ev)) >= 0) goto done;
        char *rp = NULL;
        if (save_rounds && round < rounds) {
            char tail[48];
            snprintf(tail, sizeof tail, "_round%d.safetensors", round);
            rp = cli_derive(out, tail);
        }
        const char *path = round == rounds ? out : rp;
        if (path && fm_trainer_save(tr, path) != FM_OK) {
            free(rp);
            rc = cli_error("reflow", "%s", fm_last_error());
            goto done;
        }
        free(rp);
    }
    if (!quiet) fprintf(stderr, "wrote %s\n", out);
    rc = CLI_OK;
done:
    eval_free(&ev);
    fm_trainer_free(tr);
    fm_flow_free(cur);
    free(data);
    free(x0);
    free(x1);
    free(grid);
    return rc;
}
