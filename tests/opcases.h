/* opcases.h - the op cases shared by the PyTorch comparison and the finite-
 * difference checks. Names match tests/ref/gen_fixtures.py's CASES
 * (ops.safetensors), CONV_CASES (conv.safetensors) and OPS2_CASES
 * (ops2.safetensors).
 */
#ifndef FM_TEST_OPCASES_H
#define FM_TEST_OPCASES_H

#include "flowmatch.h"

typedef struct {
    const char *name;    /* fixture prefix */
    const char *family;  /* for the per-family error table */
    int nin;
    fm_tensor *(*run)(fm_tape *tp, fm_tensor **in);
    double fd_step;      /* finite-difference step */
} opcase;

/* A fixture file and the cases it holds. */
typedef struct {
    const char *file;
    const opcase *cases;
    int n;
} opcase_set;

extern const opcase_set op_sets[];   /* ops, conv and ops2.safetensors */
extern const int n_op_sets;

/* Leaves for case c's inputs from the fixture (requires_grad where the fixture
 * has a gradient). Returns 0 and records a failure if something is missing. */
int opcase_inputs(fm_tape *tp, const fm_st *st, const opcase *c, fm_tensor **in);

#endif
