/* test_flow.c - training and sampling a flow through the library: a short run
 * learns (W2 to the data falls), checkpoints restore sampling exactly,
 * resuming equals not stopping, the same seed repeats, CSV data come back in
 * data units, and a diverging run stops before touching the weights.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int train(fm_trainer *tr, int iters)
{
    for (int i = 0; i < iters; i++)
        if (fm_trainer_step(tr, NULL) != FM_OK) return 0;
    return 1;
}

void test_flow(void)
{
    char path[700], path2[700];
    snprintf(path, sizeof path, "%s/flow.safetensors", t_tmpdir());
    snprintf(path2, sizeof path2, "%s/flow2.safetensors", t_tmpdir());

    /* a short run learns the moons */
    fm_train_config c = fm_train_config_default();
    c.iters = 600;
    c.ema_decay = 0.99;
    fm_trainer *tr = fm_trainer_new(&c);
    if (!t_check(tr != NULL, "trainer for the tutorial's configuration %s", T_ERRP(tr))) return;
    double w0 = t_flow_w2(fm_trainer_flow(tr), "moons", 500, FM_SOLVER_MIDPOINT, 8, 5);
    int ok = train(tr, 300);
    fm_status ws = ok ? fm_trainer_save(tr, path) : FM_ERR_STATE;
    t_check(ok && ws == FM_OK, "300 steps run and the checkpoint is written %s", ok ? T_ERR(ws) : fm_last_error());
    ok &= train(tr, 300);
    double w1 = t_flow_w2(fm_trainer_flow(tr), "moons", 500, FM_SOLVER_MIDPOINT, 8, 5);
    t_check(ok && w1 < 0.6 * w0, "600 steps: W2 to moons falls from %.3f to %.3f", w0, w1);

    /* resume from step 300 and finish: identical weights */
    fm_trainer *rs = fm_trainer_resume(path, 0);
    ok = rs && fm_trainer_iter(rs) == 300 && train(rs, 300);
    size_t n = fm_params_size(fm_flow_params(fm_trainer_flow(tr)));
    t_check(ok && !memcmp(fm_params_data(fm_flow_params(fm_trainer_flow(tr))),
                          fm_params_data(fm_flow_params(fm_trainer_flow(rs))), n * sizeof(float)) &&
                !memcmp(fm_ema_data(fm_trainer_ema(tr)), fm_ema_data(fm_trainer_ema(rs)), n * sizeof(float)),
            "resume at 300 and train to 600 = training to 600 uninterrupted (weights and EMA)");
    fm_trainer_free(rs);

    /* a loaded checkpoint samples exactly as the live flow */
    fm_trainer_save(tr, path);
    fm_st *st = fm_st_load(path);
    fm_flow *loaded = st ? fm_flow_load(st, 0) : NULL, *loaded_ema = st ? fm_flow_load(st, 1) : NULL;
    t_check(loaded && loaded_ema && fm_flow_has_ema(st), "checkpoint loads as a flow, with and without EMA %s",
            T_ERRP(loaded));
    if (loaded) {
        double a = t_flow_w2(fm_trainer_flow(tr), "moons", 300, FM_SOLVER_MIDPOINT, 8, 8);
        double b = t_flow_w2(loaded, "moons", 300, FM_SOLVER_MIDPOINT, 8, 8);
        t_check(a == b, "samples of the loaded flow are bit-identical (W2 %.6f and %.6f)", a, b);
        /* x_start: the ODE starts where we say */
        float z[20], out1[20], out2[20];
        for (int i = 0; i < 20; i++) z[i] = (float)i / 10 - 1;
        fm_solver_config sc = fm_solver_config_default(FM_SOLVER_RK4);
        double grid[5];
        fm_time_grid_uniform(grid, 4, 0, 1);
        fm_rng r;
        fm_rng_seed(&r, 1, 0);
        fm_flow_sample(loaded, 10, z, &r, &sc, grid, 5, out1, NULL, NULL, NULL);
        memcpy(out2, z, sizeof z);
        fm_solve(&sc, fm_flow_field, loaded, grid, 5, out2, 20, NULL, NULL, NULL);
        t_check(!memcmp(out1, out2, sizeof out1), "sampling from given x0 = solving the ODE from x0");
    }
    fm_flow_free(loaded);
    fm_flow_free(loaded_ema);
    fm_st_free(st);
    fm_trainer_free(tr);

    /* the same seed gives the same model; another seed another one */
    c.iters = 50;
    c.ema_decay = 0;
    fm_trainer *s1 = fm_trainer_new(&c), *s2 = fm_trainer_new(&c);
    c.seed = 1;
    fm_trainer *s3 = fm_trainer_new(&c);
    train(s1, 50);
    train(s2, 50);
    train(s3, 50);
    float *p1 = fm_params_data(fm_flow_params(fm_trainer_flow(s1)));
    t_check(!memcmp(p1, fm_params_data(fm_flow_params(fm_trainer_flow(s2))), n * sizeof(float)) &&
                memcmp(p1, fm_params_data(fm_flow_params(fm_trainer_flow(s3))), n * sizeof(float)),
            "seed 0 twice: identical weights; seed 1: different");
    fm_trainer_free(s1);
    fm_trainer_free(s2);
    fm_trainer_free(s3);

    /* every path, and a dataset source, learns: W2 well below the untrained model's */
    for (int k = 0; k < FM_PATH_COUNT; k++) {
        fm_train_config pc = fm_train_config_default();
        pc.flow.path = fm_path_default((fm_path_kind)k);
        pc.flow.path.sigma = 0.1;
        pc.flow.source = k == FM_PATH_ICFM ? "8gaussians" : "gaussian";
        pc.iters = 400;
        fm_trainer *pt = fm_trainer_new(&pc);
        double loss = NAN;
        ok = pt != NULL;
        double w_init = ok ? t_flow_w2(fm_trainer_flow(pt), "moons", 300, FM_SOLVER_MIDPOINT, 8, 3) : NAN;
        for (int i = 0; ok && i < 400; i++) ok = fm_trainer_step(pt, &loss) == FM_OK;
        double w = ok ? t_flow_w2(fm_trainer_flow(pt), "moons", 300, FM_SOLVER_MIDPOINT, 8, 3) : NAN;
        t_check(ok && w < 0.5 && w < 0.6 * w_init, "path %-9s%s: 400 steps, loss %.3f, W2 %.3f (untrained %.3f)",
                fm_path_name(pc.flow.path.kind), k == FM_PATH_ICFM ? " from 8gaussians" : "", loss, w, w_init);
        fm_trainer_free(pt);
    }

    /* CSV data: standardised for training, samples back in data units */
    char csv[700], spec[720];
    snprintf(csv, sizeof csv, "%s/gauss.csv", t_tmpdir());
    FILE *f = fopen(csv, "w");
    fm_rng r;
    fm_rng_seed(&r, 2, 0);
    fprintf(f, "height,weight\n");
    for (int i = 0; i < 500; i++) fprintf(f, "%.4f,%.4f\n", 170 + 10 * fm_rng_normal(&r), 70 + 0.5 * fm_rng_normal(&r));
    fclose(f);
    snprintf(spec, sizeof spec, "csv:%s", csv);
    fm_train_config cc = fm_train_config_default();
    cc.flow.data = spec;
    cc.iters = 400;
    fm_trainer *ct = fm_trainer_new(&cc);
    ok = ct && train(ct, 400);
    const float *mean = NULL, *sd = NULL;
    ok = ok && fm_flow_standardized(fm_trainer_flow(ct), &mean, &sd);
    t_check(ok && fabs(mean[0] - 170) < 2 && fabs(sd[1] - 0.5) < 0.1, "CSV data standardised (mean %.2f, std %.3f)",
            ok ? mean[0] : 0, ok ? sd[1] : 0);
    if (ok) {
        float smp[2000];
        fm_solver_config sc = fm_solver_config_default(FM_SOLVER_RK4);
        double grid[11];
        fm_time_grid_uniform(grid, 10, 0, 1);
        fm_flow_sample(fm_trainer_flow(ct), 1000, NULL, &r, &sc, grid, 11, smp, NULL, NULL, NULL);
        double m0 = 0, m1 = 0;
        for (int i = 0; i < 1000; i++) m0 += smp[2 * i] / 1000, m1 += smp[2 * i + 1] / 1000;
        t_check(fabs(m0 - 170) < 2 && fabs(m1 - 70) < 0.2, "samples come back in data units (means %.2f, %.2f)", m0, m1);
    }
    fm_trainer_free(ct);

    /* divergence is caught before the weights change */
    fm_train_config dc = fm_train_config_default();
    dc.optim = fm_optim_config_default(FM_OPTIM_SGD);
    dc.optim.lr = 1e4;
    dc.iters = 100;
    fm_trainer *dt = fm_trainer_new(&dc);
    fm_status s = FM_OK;
    int steps = 0;
    float *before = malloc(n * sizeof(float));
    while (dt && s == FM_OK && steps < 100) {
        memcpy(before, fm_params_data(fm_flow_params(fm_trainer_flow(dt))), n * sizeof(float));
        s = fm_trainer_step(dt, NULL);
        steps++;
    }
    t_check(s == FM_ERR_NUMERIC && strstr(fm_last_error(), "diverged") &&
                !memcmp(before, fm_params_data(fm_flow_params(fm_trainer_flow(dt))), n * sizeof(float)),
            "lr 1e4 diverges at step %d and is stopped with the weights untouched: %s", steps, fm_last_error());
    free(before);
    fm_trainer_free(dt);

    /* bad configurations */
    fm_train_config bc = fm_train_config_default();
    bc.flow.source = "gaussian:dim=3";
    fm_trainer *bt = fm_trainer_new(&bc);
    t_check(!bt && strstr(fm_last_error(), "3 dimensions but the data has 2"), "3-D source for 2-D data refused: %s",
            fm_last_error());
    bc = fm_train_config_default();
    bc.standardize = 1;
    bt = fm_trainer_new(&bc);
    t_check(!bt && strstr(fm_last_error(), "needs a CSV"), "standardising a generator refused: %s", fm_last_error());
    t_check(!fm_trainer_resume("/nonexistent.safetensors", 0) && strstr(fm_last_error(), "cannot open"),
            "resuming a missing file: %s", fm_last_error());
}
