/* load_sample.c - load a checkpoint of any method through the installed
 * library and draw samples with the model's own default sampler, written as
 * a .npy file.
 *
 *   cc load_sample.c $(pkg-config --cflags --libs flowmatch) -o load_sample
 *   ./load_sample model.safetensors [n] [samples.npy]
 */
#include <flowmatch.h>

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what)
{
    fprintf(stderr, "load_sample: %s: %s\n", what, fm_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: load_sample model.safetensors [n] [samples.npy]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 1000;
    const char *out = argc > 3 ? argv[3] : "samples.npy";
    if (n < 1 || n > 10000000) {
        fprintf(stderr, "load_sample: n = %d must lie in 1..10000000\n", n);
        return 2;
    }
    fm_st *st = fm_st_load(argv[1]);
    if (!st) return fail(argv[1]);
    fm_model *m = fm_model_load(st, 1); /* the EMA weights when the file has them */
    fm_st_free(st);
    if (!m) return fail(argv[1]);

    /* the model's default: an ODE solver over a uniform grid, a method's own
     * sampler for its steps, or one network pass */
    int steps = 1, d = fm_model_dim(m);
    fm_solver_config sc = fm_solver_config_default(fm_model_default_solver(m, &steps));
    sc.sampler = fm_model_sampler(m, 0, NULL, NULL);
    double *grid = malloc((size_t)(steps + 1) * sizeof(double));
    float *x = malloc((size_t)n * d * sizeof(float));
    if (!grid || !x) {
        fprintf(stderr, "load_sample: out of memory\n");
        return 1;
    }
    fm_flow *f = fm_model_flow(m); /* a flow's grid ends where its path does (ve, vp: 1 - 1e-3) */
    fm_time_grid_uniform(grid, steps, 0.0, f ? fm_flow_get_config(f)->path.t_end : 1.0);
    fm_rng r;
    fm_rng_seed(&r, 0, FM_STREAM_NOISE);
    fm_solve_stats ss;
    if (fm_model_sample(m, n, &r, &sc, grid, steps + 1, x, NULL, NULL, &ss) != FM_OK) return fail("sample");
    int64_t shape[2] = {n, d};
    if (fm_npy_write(out, x, 2, shape) != FM_OK) return fail(out);
    printf("%s: a %s model of %d dimensions, %zu parameters; %d samples (NFE %ld) -> %s\n", argv[1],
           fm_model_method_name(m), d, fm_model_size(m), n, ss.nfe, out);
    free(grid);
    free(x);
    fm_model_free(m);
    return 0;
}
