/* ops_embed.c - embedding lookup, as torch.nn.functional.embedding.
 *
 * Row i of the output is row ids[i] of the weight (num, dim). The ids are
 * checked (each in [0, num)) and copied onto the tape. Backward sorts the
 * positions by id (a counting sort, stable, so positions stay in order within
 * an id), sums each id's rows of dy in double in that order and adds the sum
 * to the id's row of the weight's gradient once: a repeated id gets the same
 * bits whatever the order of the other ids.
 */
#include "internal.h"
#include "engine/kernels.h"

#include <string.h>

/* y[i] = w[ids[i]] */
void fm__embedding_forward(float *y, const float *w, const int *ids, int n, int dim)
{
    for (int i = 0; i < n; i++) memcpy(y + (size_t)i * dim, w + (size_t)ids[i] * dim, (size_t)dim * sizeof(float));
}

/* The backward's scratch: start (num + 1), order (n), acc (dim). */
static void embedding_scratch(fm__carve *c, int n, int num, int dim, int **start, int **order, double **acc)
{
    *start = fm__carve_take(c, ((size_t)num + 1) * sizeof(int));
    *order = fm__carve_take(c, (size_t)n * sizeof(int));
    *acc = fm__carve_take(c, (size_t)dim * sizeof(double));
}

size_t fm__embedding_backward_work(int n, int num, int dim)
{
    fm__carve c = {NULL, 0};
    int *start, *order;
    double *acc;
    embedding_scratch(&c, n, num, dim, &start, &order, &acc);
    return c.used;
}

/* dw[k] += the sum of dy[i] over the positions i with ids[i] = k, in order, in double */
void fm__embedding_backward(float *dw, const float *dy, const int *ids, int n, int num, int dim, void *work)
{
    fm__carve c = {work, 0};
    int *start, *order;
    double *acc;
    embedding_scratch(&c, n, num, dim, &start, &order, &acc);
    /* start[k] .. start[k + 1]: the positions of id k in order */
    memset(start, 0, ((size_t)num + 1) * sizeof(int));
    for (int i = 0; i < n; i++) start[ids[i] + 1]++;
    for (int k = 0; k < num; k++) start[k + 1] += start[k];
    for (int i = 0; i < n; i++) order[start[ids[i]]++] = i;
    /* start[k] is now the end of id k's run (the start of id k + 1's) */
    for (int k = 0, a = 0; k < num; k++) {
        int b = start[k];
        if (b > a) {
            for (int j = 0; j < dim; j++) acc[j] = 0.0;
            for (int p = a; p < b; p++) {
                const float *g = dy + (size_t)order[p] * dim;
                for (int j = 0; j < dim; j++) acc[j] += g[j];
            }
            float *d = dw + (size_t)k * dim;
            for (int j = 0; j < dim; j++) d[j] += (float)acc[j];
        }
        a = b;
    }
}

static void embedding_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *w = y->src[0];
    if (!fm__wants_grad(w)) return;
    float *dw = fm__grad(tp, w);
    if (!dw) return;
    int n = y->shape[0], num = w->shape[0], dim = w->shape[1];
    fm__arena_mark mark = fm__arena_get_mark(&tp->arena);
    void *work = fm__tape_alloc(tp, fm__embedding_backward_work(n, num, dim));
    if (!work) return;
    fm__embedding_backward(dw, y->grad, y->aux, n, num, dim, work);
    fm__arena_rewind(&tp->arena, &mark);
}

static const fm_op OP_EMBEDDING = {"embedding", embedding_backward};

fm_tensor *fm_embedding(fm_tape *tp, fm_tensor *weight, const int *ids, int n)
{
    if (!fm__op_inputs_ok(tp, "embedding", &weight, 1)) return NULL;
    char s[96];
    if (weight->ndim != 2)
        return fm__op_fail(tp, FM_ERR_SHAPE, "embedding: weight %s is not [num, dim]",
                           fm_shape_str(weight, s, sizeof s));
    if (!ids) return fm__op_fail(tp, FM_ERR_ARG, "embedding: ids is NULL (weight %s)", fm_shape_str(weight, s, sizeof s));
    if (n < 1)
        return fm__op_fail(tp, FM_ERR_ARG, "embedding: %d ids; at least 1 is needed (weight %s)", n,
                           fm_shape_str(weight, s, sizeof s));
    int num = weight->shape[0], dim = weight->shape[1];
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= num)
            return fm__op_fail(tp, FM_ERR_ARG, "embedding: id %d (position %d) is outside [0, %d) for weight %s",
                               ids[i], i, num, fm_shape_str(weight, s, sizeof s));
    int shape[2] = {n, dim};
    fm_tensor *y = fm__node(tp, &OP_EMBEDDING, 2, shape, &weight, 1);
    if (!y) return NULL;
    int *kept = fm__tape_alloc(tp, (size_t)n * sizeof(int));
    if (!kept) return NULL;
    memcpy(kept, ids, (size_t)n * sizeof(int));
    y->aux = kept;
    fm__embedding_forward(y->data, weight->data, ids, n, dim);
    return y;
}
