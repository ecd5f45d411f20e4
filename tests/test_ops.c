/* test_ops.c - every op's forward and backward against PyTorch (float64
 * references from tests/ref/gen_fixtures.py: ops.safetensors,
 * conv.safetensors for the image ops, ops2.safetensors for group norm,
 * embedding and cross-entropy), normwise relative error <= 1e-5.
 */
#include "harness.h"
#include "opcases.h"

#include <stdio.h>
#include <stdlib.h>

#define TOL 1e-5

static void run_set(const opcase_set *set)
{
    fm_st *st = t_fixture(set->file);
    if (!st) return;
    fm_tape *tp = fm_tape_new(0);
    for (int c = 0; c < set->n; c++) {
        const opcase *oc = &set->cases[c];
        fm_tape_reset(tp);
        fm_tensor *in[4] = {0};
        if (!opcase_inputs(tp, st, oc, in)) continue;
        fm_tensor *y = oc->run(tp, in);
        char name[128], label[96];
        if (!t_check(y != NULL, "%s runs (%s)", oc->name, T_ERRP(y))) continue;
        size_t n;
        snprintf(name, sizeof name, "%s.out", oc->name);
        float *ref = t_read(st, name, &n);
        if (!ref) continue;
        int ok_shape = n == y->size;
        if (ok_shape) {
            snprintf(label, sizeof label, "%s forward", oc->name);
            t_close(label, y->data, ref, n, TOL);
            t_family_max(oc->family, t_relerr(y->data, ref, n));
        } else {
            t_check(0, "%s forward: %zu values, PyTorch has %zu", oc->name, y->size, n);
        }
        free(ref);
        snprintf(name, sizeof name, "%s.dy", oc->name);
        float *dy = t_read(st, name, &n);
        if (!dy || n != y->size) {
            if (dy) t_check(0, "%s: the fixture's dy has %zu values, the output %zu", oc->name, n, y->size);
            free(dy);
            continue;
        }
        fm_status s = fm_backward(tp, y, dy);
        free(dy);
        if (!t_check(s == FM_OK, "%s backward runs %s", oc->name, T_ERR(s))) continue;
        for (int k = 0; k < oc->nin; k++) {
            if (!in[k]->requires_grad) continue;
            snprintf(name, sizeof name, "%s.grad%d", oc->name, k);
            float *g = t_read(st, name, &n);
            if (!g) continue;
            snprintf(label, sizeof label, "%s backward d/in%d", oc->name, k);
            if (in[k]->grad && n == in[k]->size) {
                t_close(label, in[k]->grad, g, n, TOL);
                t_family_max(oc->family, t_relerr(in[k]->grad, g, n));
            } else {
                t_check(0, "%s: no gradient or wrong size", label);
            }
            free(g);
        }
    }
    fm_tape_free(tp);
    fm_st_free(st);
}

void test_ops(void)
{
    for (int i = 0; i < n_op_sets; i++) run_set(&op_sets[i]);
}
