/* batch.c - `flowmatch batch`: one flow-matching training batch (the pairs,
 * times, noise, points on the path and targets the trainer regresses on) as
 * a safetensors file, for checking a training loop written elsewhere.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

int cmd_batch(int argc, char **argv)
{
    const char *data = "moons", *source = "gaussian", *out = NULL;
    int n = 128;
    int64_t seed = 0;
    double t_fixed = -1;
    cli_path_opts po = cli_path_defaults();
    const cli_opt opts[] = {
        {"data", OPT_STR, &data, "SPEC", "dataset the points x1 come from"},
        {"source", OPT_STR, &source, "SPEC", "where x0 comes from: gaussian (N(0, I)) or a dataset spec"},
        CLI_PATH_OPTIONS(po),
        {"n", OPT_INT, &n, "N", "batch size"},
        {"seed", OPT_I64, &seed, "N", "random seed (the data's stream, then the pairing, times and noise)"},
        {"t", OPT_DOUBLE, &t_fixed, "T", "every time T instead of uniform draws (-1: drawn)"},
        {"out", OPT_STR, &out, "FILE", "the batch (.safetensors; required)"},
    };
    unsigned char given[sizeof opts / sizeof opts[0]] = {0};
    const cli_spec spec = {"batch", NULL, "Draw one flow-matching training batch and write it.",
                           "Writes the tensors x0 and x1 (n, d; as paired by --coupling), t (n), eps (n, d;\n"
                           "zeros on a path without extra noise), xt = a x1 + b x0 + c eps and the target\n"
                           "ut = a' x1 + b' x0 + c' eps, in data units (no standardisation), as train draws\n"
                           "them (fm_batch_draw: torchcfm's sample_location_and_conditional_flow). --coupling\n"
                           "ot pairs each point once by the exact matching; sb draws pairs with replacement\n"
                           "from the entropic plan with regularisation 2 sigma^2.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, given};
    int npos, rc = cli_parse(&spec, argc, argv, NULL, &npos);
    if (rc != CLI_GO) return rc;
    if (!out) return cli_usage_error("batch", "--out FILE is required");
    if (!cli_has_suffix(out, ".safetensors")) return cli_usage_error("batch", "--out '%s' must end in .safetensors", out);
    if (n < 1 || n > (1 << 20) || seed < 0) return cli_usage_error("batch", "--n must lie in 1..2^20 and --seed be >= 0");
    fm_path p;
    fm_coupling cp;
    if ((rc = cli_path_setup("batch", &spec, &po, &p, &cp)) != CLI_GO) return rc;
    if (cli_given(&spec, "t") && !(t_fixed >= 0 && t_fixed <= p.t_end))
        return cli_usage_error("batch", "--t %g must lie in [0, %g] (the path's end)", t_fixed, p.t_end);
    const char *outs[] = {out};
    if ((rc = cli_writable("batch", outs, 1)) != CLI_GO) return rc;
    fm_dataset *ds = fm_dataset_open(data), *src = NULL;
    if (!ds) return cli_error("batch", "--data: %s", fm_last_error());
    int d = fm_dataset_dim(ds), gauss = !strcmp(source, "gaussian");
    /* the pairings cost n^3 (ot) and n^2 doubles (sb): a batch, not a data set */
    if ((cp != FM_COUPLING_INDEPENDENT && n > 4096) || (size_t)n * d > ((size_t)1 << 24)) {
        fm_dataset_free(ds);
        return cli_usage_error("batch", "--n %d of dimension %d is too large for a batch (at most 4096 points with "
                               "--coupling %s, and 2^24 values in all)", n, d, fm_coupling_name(cp));
    }
    if (!gauss && !(src = fm_dataset_open(source))) {
        fm_dataset_free(ds);
        return cli_error("batch", "--source: %s", fm_last_error());
    }
    rc = CLI_GO;
    if (src && fm_dataset_dim(src) != d)
        rc = cli_error("batch", "--source %s has dimension %d but --data %s has %d", source, fm_dataset_dim(src), data, d);
    size_t nd = (size_t)n * d;
    float *buf = rc == CLI_GO ? malloc((5 * nd + (size_t)n) * sizeof(float)) : NULL;
    if (rc == CLI_GO && !buf) rc = cli_error("batch", "out of memory for a batch of %d", n);
    fm_batch b = {0};
    if (buf) {
        b.x0 = buf, b.x1 = buf + nd, b.eps = buf + 2 * nd, b.xt = buf + 3 * nd, b.ut = buf + 4 * nd, b.t = buf + 5 * nd;
        fm_rng rd, rn;
        fm_rng_seed(&rd, (uint64_t)seed, FM_STREAM_DATA);
        fm_rng_seed(&rn, (uint64_t)seed, FM_STREAM_NOISE);
        for (int i = 0; i < n; i++) b.t[i] = (float)t_fixed;
        fm_status s = fm_dataset_sample(ds, &rd, b.x1, n);
        if (!s) s = src ? fm_dataset_sample(src, &rn, b.x0, n) : (fm_rng_normal_fill(&rn, b.x0, nd, 0, 1), FM_OK);
        if (!s) s = fm_batch_draw(&p, cp, &rn, n, d, t_fixed >= 0, &b);
        if (s) {
            cli_error("batch", "%s", fm_last_error());
            rc = cli_status_code(s); /* 2 for a coupling or a time the path cannot take */
        }
    }
    if (rc == CLI_GO) {
        fm_st_writer *w = fm_st_writer_new();
        int sh[2] = {n, d};
        const char *names[5] = {"x0", "x1", "eps", "xt", "ut"};
        fm_status s = w ? FM_OK : FM_ERR_NOMEM;
        for (int k = 0; k < 5 && !s; k++) s = fm_st_writer_add(w, names[k], 2, sh, buf + (size_t)k * nd);
        if (!s) s = fm_st_writer_add(w, "t", 1, sh, b.t);
        if (!s) s = fm_st_writer_meta(w, "path", fm_path_name(p.kind));
        if (!s) s = fm_st_writer_meta(w, "coupling", fm_coupling_name(cp));
        if (!s) s = fm_st_writer_meta(w, "data", fm_dataset_spec(ds));
        if (!s) s = fm_st_writer_save(w, out);
        if (s) rc = cli_error("batch", "%s", w ? fm_last_error() : "out of memory");
        fm_st_writer_free(w);
    }
    if (rc == CLI_GO) {
        printf("batch of %d on the %s path (%s coupling), dimension %d -> %s\n", n, fm_path_name(p.kind),
               fm_coupling_name(cp), d, out);
        rc = CLI_OK;
    }
    free(buf);
    fm_dataset_free(ds);
    fm_dataset_free(src);
    return rc;
}
