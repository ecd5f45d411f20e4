/* datasets.c - `flowmatch datasets`: list the built-in datasets, or draw
 * points from one into a file (and a figure).
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

int cmd_datasets(int argc, char **argv)
{
    const char *draw = NULL, *out = NULL, *plot = NULL;
    int n = 2000;
    int64_t seed = 0;
    const cli_opt opts[] = {
        {"draw", OPT_STR, &draw, "SPEC", "draw points from this dataset"},
        {"n", OPT_INT, &n, "N", "how many"},
        {"seed", OPT_I64, &seed, "N", "random seed"},
        {"out", OPT_STR, &out, "FILE", "write them (.npy or .csv)"},
        {"plot", OPT_STR, &plot, "FILE", "scatter plot (.svg), or for images a grid (.png)"},
    };
    const cli_spec spec = {"datasets", NULL, "List the built-in datasets, or draw points from one.",
                           "A dataset spec is a name with optional parameters, e.g. moons,\n"
                           "moons:noise=0.1,scale=2, circles:factor=0.3, gaussian:dim=5, csv:FILE, or\n"
                           "mnist:DIR (MNIST's IDX files, e.g. from make mnist).",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, NULL};
    int npos;
    int rc = cli_parse(&spec, argc, argv, NULL, &npos);
    if (rc != CLI_GO) return rc;
    if (!draw) {
        if (out || plot)
            return cli_usage_error("datasets", "--out and --plot need --draw SPEC");
        char info[256];
        for (int i = 0; i < fm_dataset_count(); i++) {
            const char *name = fm_dataset_info(i, info, sizeof info);
            printf("  %-13s %s\n", name, info);
        }
        return CLI_OK;
    }
    if (n < 1 || n > (1 << 26) || seed < 0)
        return cli_usage_error("datasets", "--n must be >= 1 and --seed >= 0");
    int ic, ih, iw, image = fm_spec_image_shape(draw, &ic, &ih, &iw);
    if (plot && !cli_has_suffix(plot, image ? ".png" : ".svg"))
        return cli_usage_error("datasets", "--plot '%s' must end in %s", plot, image ? ".png (an image grid)" : ".svg");
    fm_dataset *ds = fm_dataset_open(draw);
    if (!ds) {
        fprintf(stderr, "flowmatch datasets: %s\n", fm_last_error());
        return cli_status_code(fm_last_status());
    }
    int d = fm_dataset_dim(ds);
    float *x = malloc((size_t)n * d * sizeof(float));
    fm_rng r;
    fm_rng_seed(&r, (uint64_t)seed, FM_STREAM_DATA);
    rc = CLI_GO;
    if (!x || fm_dataset_sample(ds, &r, x, n) != FM_OK) rc = cli_error("datasets", "%s", x ? fm_last_error() : "out of memory");
    if (rc == CLI_GO && out) rc = cli_write_points("datasets", out, x, n, d);
    if (rc == CLI_GO && plot &&
        (image ? fm_png_write_grid(plot, x, n, ic, ih, iw, 16, 0.0f, 1.0f)
               : fm_svg_scatter(plot, fm_dataset_spec(ds), x, n, fm_dataset_spec(ds), NULL, 0, NULL, d, 0)) != FM_OK)
        rc = cli_error("datasets", "%s", fm_last_error());
    if (rc == CLI_GO) {
        printf("%s: %d points of dimension %d%s%s\n", fm_dataset_spec(ds), n, d, out ? " -> " : "", out ? out : "");
        rc = CLI_OK;
    }
    free(x);
    fm_dataset_free(ds);
    return rc;
}
