/* kernels.h - the ops' arithmetic as free functions over pointers and sizes.
 *
 * Each op of src/engine/ops_*.c is two layers: its kernels here, which do the
 * arithmetic and nothing else (no tape, no tensors, no allocation, no error
 * handling), and the tape op, which validates its inputs, infers the output's
 * shape, allocates on the tape, saves what the backward needs and calls the
 * kernels. The kernels can so be called without a tape: by tests, kernel
 * benchmarks and other backends.
 *
 * Conventions (llm.c's): outputs first, then inputs, then sizes and options.
 * A backward kernel ACCUMULATES (+=) into its gradient buffers, except where
 * it takes an `overwrite` flag (the tape's fresh gradient buffers are
 * uninitialised: 1 means write, 0 means add). A gradient pointer that is NULL
 * is not wanted and not computed. Shapes are in the comments beside the
 * pointers, row-major. Kernels that need scratch memory take it as an argument
 * (`work`, 64-byte aligned) whose size a companion fm__*_work function gives
 * for the same sizes and thread count. The kernels give the same bits as the
 * ops did before they were split out: the order of every sum is part of them.
 *
 * Kernels that several ops share stay in internal.h: fm__gemm (and its
 * shifted-plane forms) and the activations, fm__act_forward and
 * fm__act_backward.
 */
#ifndef FM_ENGINE_KERNELS_H
#define FM_ENGINE_KERNELS_H

#include "internal.h"

#include <stddef.h>

/* ------------------------------------------------------------------ linear (ops_linear.c) */

/* y = x W^T + b */
void fm__linear_forward(float *y,       /* (B, out) */
                        float *wt,      /* (in, out): receives W^T, the layout the product reads */
                        const float *x, /* (B, in) */
                        const float *w, /* (out, in) */
                        const float *b, /* (out) or NULL */
                        int B, int in, int out);
/* dx += dy W, dw += dy^T x, db += the column sums of dy (in double) */
void fm__linear_backward(float *dx,       /* (B, in) or NULL */
                         float *dw,       /* (out, in) or NULL */
                         float *db,       /* (out) or NULL */
                         const float *dy, /* (B, out) */
                         const float *x,  /* (B, in) */
                         const float *w,  /* (out, in) */
                         int B, int in, int out);

#endif /* FM_ENGINE_KERNELS_H */
