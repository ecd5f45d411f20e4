/* test_gradcheck.c - every op's backward against central finite differences.
 *
 * The objective is L(x) = sum_j dy_j f(x)_j with the fixture's inputs and
 * upstream gradient. The op runs in float32 as it always does; the perturbed
 * input, L and the difference quotient are float64, and the fourth-order
 * stencil (8 (L(+h) - L(-h)) - (L(+2h) - L(-2h))) / 12h keeps the truncation
 * error below the float32 rounding of f. Kinked activations use a step smaller
 * than the fixture's distance from the kink (1e-2); the image ops, linear in
 * each input, a large one (0.25); tests/opcases.c gives each case's step.
 * Every fixture file's cases are checked (integer inputs such as labels have
 * no gradient and are not perturbed).
 */
#include "harness.h"
#include "opcases.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 2e-4

/* L at the fixture inputs with input k, element i set to v. */
static double objective(fm_tape *tp, const fm_st *st, const opcase *oc, const float *dy, int k, size_t i, float v)
{
    fm_tape_reset(tp);
    fm_tensor *in[4] = {0};
    if (!opcase_inputs(tp, st, oc, in)) return NAN;
    in[k]->data[i] = v;
    fm_tensor *y = oc->run(tp, in);
    if (!y) return NAN;
    double L = 0.0;
    for (size_t j = 0; j < y->size; j++) L += (double)dy[j] * y->data[j];
    return L;
}

static void run_set(const opcase_set *set)
{
    fm_st *st = t_fixture(set->file);
    if (!st) return;
    fm_tape *tp = fm_tape_new(0);
    for (int c = 0; c < set->n; c++) {
        const opcase *oc = &set->cases[c];
        char name[128];
        snprintf(name, sizeof name, "%s.dy", oc->name);
        size_t ny;
        float *dy = t_read(st, name, &ny);
        if (!dy) continue;
        /* Analytic gradients first. */
        fm_tape_reset(tp);
        fm_tensor *in[4] = {0};
        if (!opcase_inputs(tp, st, oc, in)) {
            free(dy);
            continue;
        }
        fm_tensor *y = oc->run(tp, in);
        fm_status bs = y && y->size == ny ? fm_backward(tp, y, dy) : FM_ERR_SHAPE;
        if (bs != FM_OK) {
            if (y && y->size != ny) t_check(0, "%s: %zu outputs, the fixture's dy has %zu", oc->name, y->size, ny);
            else t_check(0, "%s: forward/backward failed: %s", oc->name, fm_last_error());
            free(dy);
            continue;
        }
        float *an[4] = {0};
        float *x0[4] = {0};
        size_t sz[4] = {0};
        for (int k = 0; k < oc->nin; k++) {
            sz[k] = in[k]->size;
            x0[k] = malloc(sz[k] * sizeof(float));
            memcpy(x0[k], in[k]->data, sz[k] * sizeof(float));
            if (in[k]->requires_grad && !in[k]->grad) t_check(0, "%s: input %d got no gradient", oc->name, k);
            if (in[k]->requires_grad && in[k]->grad) {
                an[k] = malloc(sz[k] * sizeof(float));
                memcpy(an[k], in[k]->grad, sz[k] * sizeof(float));
            }
        }
        for (int k = 0; k < oc->nin; k++) {
            if (!an[k]) continue;
            float *fd = malloc(sz[k] * sizeof(float));
            for (size_t i = 0; i < sz[k]; i++) {
                double x = x0[k][i], h = oc->fd_step * (fabs(x) > 1.0 ? fabs(x) : 1.0);
                /* Use the steps float32 can represent exactly. */
                float p1 = (float)(x + h), m1 = (float)(x - h);
                float p2 = (float)(x + 2 * h), m2 = (float)(x - 2 * h);
                double hp = (double)p1 - x, hm = x - (double)m1;
                double hh = 0.5 * (hp + hm);
                double d1 = objective(tp, st, oc, dy, k, i, p1) - objective(tp, st, oc, dy, k, i, m1);
                double d2 = objective(tp, st, oc, dy, k, i, p2) - objective(tp, st, oc, dy, k, i, m2);
                double h2 = 0.5 * (((double)p2 - x) + (x - (double)m2));
                /* Richardson combination, each difference over its own exact span */
                fd[i] = (float)((4.0 * d1 / (2 * hh) - d2 / (2 * h2)) / 3.0);
            }
            char label[96];
            snprintf(label, sizeof label, "%s d/in%d vs finite diff", oc->name, k);
            t_close(label, an[k], fd, sz[k], TOL);
            free(fd);
        }
        for (int k = 0; k < oc->nin; k++) {
            free(an[k]);
            free(x0[k]);
        }
        free(dy);
    }
    fm_tape_free(tp);
    fm_st_free(st);
}

void test_gradcheck(void)
{
    for (int i = 0; i < n_op_sets; i++) run_set(&op_sets[i]);
}
