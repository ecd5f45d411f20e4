/* test_solve.c - ODE solvers against closed-form solutions: each fixed-step
 * method's observed order of convergence, dopri5's accuracy and economy, grid
 * handling in both directions, and bad grids refused.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* dx/dt = A(t) x with x = (x, y): a rotation at rate 1 + t plus decay 0.5:
 * the solution is exp(-t/2) R(t + t^2/2) x0. */
static fm_status field(void *ctx, double t, const float *x, float *v, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i += 2) {
        double w = 1 + t;
        v[i] = (float)(-0.5 * x[i] - w * x[i + 1]);
        v[i + 1] = (float)(w * x[i] - 0.5 * x[i + 1]);
    }
    return FM_OK;
}

static void exact(double t0, double t1, const float *x0, double *out)
{
    double th = (t1 + t1 * t1 / 2) - (t0 + t0 * t0 / 2), k = exp(-0.5 * (t1 - t0));
    out[0] = k * (cos(th) * x0[0] - sin(th) * x0[1]);
    out[1] = k * (sin(th) * x0[0] + cos(th) * x0[1]);
}

static double solve_err(fm_solver_kind kind, int steps, double t0, double t1, long *nfe)
{
    const float x0[2] = {1.0f, 0.5f};
    float x[2] = {x0[0], x0[1]};
    double grid[513], ref[2];
    fm_time_grid_uniform(grid, steps, t0, t1);
    fm_solver_config c = fm_solver_config_default(kind);
    fm_solve_stats st;
    if (fm_solve(&c, field, NULL, grid, steps + 1, x, 2, NULL, NULL, &st) != FM_OK) return NAN;
    if (nfe) *nfe = st.nfe;
    exact(t0, t1, x0, ref);
    return hypot(x[0] - ref[0], x[1] - ref[1]);
}

static fm_status count_obs(void *ctx, int k, double t, const float *x, size_t n)
{
    (void)x;
    (void)n;
    double *seen = ctx;
    seen[k] = t;
    return FM_OK;
}

void test_solve(void)
{
    /* orders from errors at N and 2N steps (float32 state: stay well above 1e-6) */
    static const struct {
        fm_solver_kind k;
        int n0;
        double order;
        int nfe_per_step;
    } m[] = {{FM_SOLVER_EULER, 16, 1, 1}, {FM_SOLVER_MIDPOINT, 8, 2, 2}, {FM_SOLVER_HEUN, 8, 2, 2},
             {FM_SOLVER_HEUN3, 4, 3, 3}, {FM_SOLVER_RK4, 2, 4, 4}};
    for (int i = 0; i < 5; i++) {
        long nfe = 0;
        double e1 = solve_err(m[i].k, m[i].n0, 0, 1, NULL), e2 = solve_err(m[i].k, 2 * m[i].n0, 0, 1, NULL);
        double e3 = solve_err(m[i].k, 4 * m[i].n0, 0, 1, &nfe);
        double p1 = log2(e1 / e2), p2 = log2(e2 / e3);
        t_check(fabs(p1 - m[i].order) < 0.3 && fabs(p2 - m[i].order) < 0.3 && nfe == 4L * m[i].n0 * m[i].nfe_per_step,
                "%-8s order %.2f, %.2f (expect %.0f); errors %.1e %.1e %.1e; NFE %ld", fm_solver_name(m[i].k), p1, p2,
                m[i].order, e1, e2, e3, nfe);
    }
    /* backwards in time: integrate 1 -> 0 and compare with the exact inverse */
    double eb = solve_err(FM_SOLVER_RK4, 32, 1, 0, NULL);
    t_check(eb < 1e-5, "rk4 backwards (t 1 -> 0): error %.1e", eb);

    /* dopri5 reaches its tolerance with few evaluations */
    fm_solver_config c = fm_solver_config_default(FM_SOLVER_DOPRI5);
    c.rtol = c.atol = 1e-6;
    const float x0[2] = {1.0f, 0.5f};
    float x[2] = {x0[0], x0[1]};
    double grid[3] = {0, 0.5, 1}, ref[2], seen[3] = {-1, -1, -1};
    fm_solve_stats st;
    fm_status s = fm_solve(&c, field, NULL, grid, 3, x, 2, count_obs, seen, &st);
    exact(0, 1, x0, ref);
    double e = hypot(x[0] - ref[0], x[1] - ref[1]);
    t_check(s == FM_OK && e < 2e-5 && st.nfe < 120 && seen[0] == 0 && seen[1] == 0.5 && seen[2] == 1,
            "dopri5 rtol=atol=1e-6: error %.1e with NFE %ld (%ld steps, %ld rejected), lands on every grid time", e,
            st.nfe, st.steps, st.rejected);
    c.max_steps = 2;
    c.rtol = c.atol = 1e-12;
    x[0] = x0[0];
    x[1] = x0[1];
    s = fm_solve(&c, field, NULL, grid, 3, x, 2, NULL, NULL, NULL);
    t_check(s == FM_ERR_NUMERIC && strstr(fm_last_error(), "gave up after 2 steps"), "dopri5 step limit: %s",
            fm_last_error());

    /* grids */
    c = fm_solver_config_default(FM_SOLVER_EULER);
    double bad[3] = {0, 0.5, 0.5};
    t_check(fm_solve(&c, field, NULL, bad, 3, x, 2, NULL, NULL, NULL) == FM_ERR_ARG && strstr(fm_last_error(), "monotonic"),
            "non-monotonic grid refused: %s", fm_last_error());
    t_check(fm_solve(&c, field, NULL, bad, 1, x, 2, NULL, NULL, NULL) == FM_ERR_ARG, "one-point grid refused: %s",
            fm_last_error());
    double g[9];
    fm_time_grid_uniform(g, 8, 0, 1);
    t_check(g[0] == 0 && g[8] == 1 && fabs(g[4] - 0.5) < 1e-15, "uniform grid of 8 steps on [0, 1]");
    t_check(fm_solver_from_name("dopri5") == FM_SOLVER_DOPRI5 && fm_solver_from_name("rk45") < 0, "solver names");
}
