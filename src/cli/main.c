/* main.c - the flowmatch command-line tool: dispatches to one command per
 * file and turns library errors into messages and exit codes.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    int ranks; /* runs under mpirun as several ranks */
} command;

static const command commands[] = {
    {"train", "train a flow-matching model (or a CNF, NF, score model, or a DDPM, VAE or GAN baseline)", cmd_train, 1},
    {"sample", "draw samples from a trained model of any method", cmd_sample, 1},
    {"eval", "compare two point sets: exact W2, energy distance, MMD; images by a classifier", cmd_eval, 1},
    {"nll", "log-likelihood of points under a trained model", cmd_nll, 1},
    {"reflow", "rectified flow: straighten a trained model for few-step sampling", cmd_reflow, 0},
    {"compare", "flow matching against a score model, DDPM, VAE and GAN on the same data", cmd_compare, 0},
    {"classifier", "train the digit classifier that scores image models (eval --classifier)", cmd_classifier, 1},
    {"demo", "the tutorial's 2D example end to end", cmd_demo, 0},
    {"datasets", "list the built-in datasets or draw points from one", cmd_datasets, 0},
    {"batch", "draw one flow-matching training batch (pairs, t, noise, x_t, u_t) as safetensors", cmd_batch, 0},
    {"inspect", "check a safetensors file and list its tensors and metadata", cmd_inspect, 0},
    {"import", "a flow trained elsewhere (a PyTorch state_dict as safetensors) as a checkpoint", cmd_import, 0},
};

static int dispatch(int argc, char **argv);

static void usage(FILE *f)
{
    fprintf(f,
            "usage: flowmatch COMMAND [options]\n\n"
            "Flow-matching generative models in plain C (version %s).\n\ncommands:\n",
            FM_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-10s %s\n", "version", "print the version");
    fprintf(f, "\n'flowmatch COMMAND --help' describes a command.\n");
}

static int run(const command *c, int argc, char **argv)
{
    if (fm_dist_size() > 1 && !c->ranks) {
        fprintf(stderr, "flowmatch %s runs in one process; under mpirun, train, sample, eval, nll and classifier "
                        "spread their work over the ranks\n", c->name);
        return CLI_USAGE;
    }
    return c->run(argc, argv);
}

/* Under mpirun: the ranks start; only rank 0 speaks (the others' output is
 * dropped, and their failures reach rank 0 as messages); at the end a failed
 * exchange between the ranks ends the whole job. */
static int start_ranks(int *argc, char ***argv)
{
    const char *tmo = getenv("FLOWMATCH_RANK_TIMEOUT"); /* seconds a rank waits for the others (600) */
    if (tmo && atof(tmo) > 0) fm_dist_set_timeout(atof(tmo));
    if (fm_dist_init(argc, argv) != FM_OK) {
        if (fm_dist_rank() == 0) fprintf(stderr, "flowmatch: %s\n", fm_last_error());
        return CLI_USAGE;
    }
    if (fm_dist_rank() > 0 && (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)))
        return CLI_FAIL;
    return CLI_GO;
}

static int end_ranks(int rc)
{
    cli_scratch_remove();
    if (fm_dist_finalize() != FM_OK) {
        fprintf(stderr, "flowmatch: %s\n", fm_last_error());
        fm_dist_abort(rc > 0 ? rc : CLI_FAIL);
    }
    return rc;
}

int main(int argc, char **argv)
{
    int rc = start_ranks(&argc, &argv);
    if (rc != CLI_GO) return rc;
    return end_ranks(dispatch(argc, argv));
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "flowmatch: missing command (see 'flowmatch --help')\n");
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("flowmatch %s\n", FM_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name)) return run(&commands[i], argc - 2, argv + 2);
    fprintf(stderr, "flowmatch: unknown command '%s' (see 'flowmatch --help')\n", cmd);
    return CLI_USAGE;
}
