/* main.c - the flowmatch command-line tool: dispatches to one command per
 * file and turns library errors into messages and exit codes.
 */
#include "cli/cli.h"

#include <string.h>

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
    {"train", "train a flow-matching model (or a CNF, NF, score model, or a DDPM, VAE or GAN baseline)", cmd_train},
    {"sample", "draw samples from a trained model of any method", cmd_sample},
    {"eval", "compare two point sets: exact W2, energy distance, MMD; images by a classifier", cmd_eval},
    {"nll", "log-likelihood of points under a trained model", cmd_nll},
    {"reflow", "rectified flow: straighten a trained model for few-step sampling", cmd_reflow},
    {"compare", "flow matching against a score model, DDPM, VAE and GAN on the same data", cmd_compare},
    {"classifier", "train the digit classifier that scores image models (eval --classifier)", cmd_classifier},
    {"demo", "the tutorial's 2D example end to end", cmd_demo},
    {"datasets", "list the built-in datasets or draw points from one", cmd_datasets},
    {"inspect", "check a safetensors file and list its tensors and metadata", cmd_inspect},
    {"import", "a flow trained elsewhere (a PyTorch state_dict as safetensors) as a checkpoint", cmd_import},
};

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

int main(int argc, char **argv)
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
        if (!strcmp(cmd, commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "flowmatch: unknown command '%s' (see 'flowmatch --help')\n", cmd);
    return CLI_USAGE;
}
