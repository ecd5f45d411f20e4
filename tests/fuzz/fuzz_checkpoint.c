/* fuzz_checkpoint.c - a checkpoint of any method from arbitrary bytes: parsed,
 * loaded as a model (its metadata are claims, bounded by its tensors), and
 * when it loads, sampled a little (and its samples scored, for a model with a
 * closed-form density). */
#include "flowmatch.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    fm_st *st = fm_st_parse(data, n, "fuzz");
    fm_model *m = st ? fm_model_load(st, 1) : NULL;
    if (m && fm_model_dim(m) <= 64) {
        float out[4 * 64];
        fm_rng r;
        fm_rng_seed(&r, 1, FM_STREAM_NOISE);
        int steps = 0;
        fm_solver_config sc = fm_solver_config_default(fm_model_default_solver(m, &steps));
        double grid[3] = {0.0, 0.5, 1.0};
        fm_model_sample(m, 4, &r, &sc, grid, 3, out, NULL, NULL, NULL);
        double lp[4];
        if (fm_model_log_prob(m, NULL, 0, NULL) == FM_OK) fm_model_log_prob(m, out, 4, lp); /* a closed-form density */
    }
    fm_model_free(m);
    fm_classifier *c = st ? fm_classifier_load(st) : NULL;
    fm_classifier_free(c);
    fm_st_free(st);
    return 0;
}
