/* workers.c - evaluating a model on many rows: chunks of rows handed to the
 * threads, each worker with its own tape and time buffer.
 *
 * Fewer rows than FM__CHUNK per worker make smaller chunks, so every worker
 * has some, rather than one chunk whose small matrix products would fork
 * threads of their own. A row's arithmetic does not depend on its chunk's
 * size or worker, so results are the same for any thread count.
 */
#include "internal.h"

void fm__workers_free(fm__workers *wk)
{
    for (int w = 0; w < FM__MAX_WORKERS; w++) {
        fm_tape_free(wk->tp[w]);
        free(wk->tbuf[w]);
        wk->tp[w] = NULL;
        wk->tbuf[w] = NULL;
    }
}

fm_status fm__run_chunks(fm__workers *wk, fm_params *P, int n, fm__chunk_fn fn, void *ctx)
{
    int nw = fm_get_threads();
    if (nw > FM__MAX_WORKERS) nw = FM__MAX_WORKERS;
    if (nw < 1) nw = 1;
    int rows = FM__CHUNK;
    if ((long)n < (long)nw * FM__CHUNK) {
        rows = (n + nw - 1) / nw;
        rows = rows < 32 ? 32 : (rows + 15) / 16 * 16;
        if (rows > FM__CHUNK) rows = FM__CHUNK;
    }
    int chunks = (n + rows - 1) / rows;
    if (nw > chunks) nw = chunks;
    for (int w = 0; w < nw; w++) {
        if (!wk->tp[w]) wk->tp[w] = fm_tape_new(0);
        if (!wk->tbuf[w]) wk->tbuf[w] = malloc(FM__CHUNK * sizeof(float));
        if (!wk->tp[w] || !wk->tbuf[w]) return fm__fail(FM_ERR_NOMEM, "out of memory for the model's workers");
    }
    int saved = fm__params_get_requires_grad(P);
    fm_params_requires_grad(P, 0);
    fm_status st[FM__MAX_WORKERS];
    FM__PARALLEL_FOR(nw)
    for (int w = 0; w < nw; w++) {
        st[w] = FM_OK;
        for (int c = fm__split(chunks, w, nw); c < fm__split(chunks, w + 1, nw) && st[w] == FM_OK; c++) {
            fm_tape_reset(wk->tp[w]);
            st[w] = fn(wk->tp[w], wk->tbuf[w], c * rows, n - c * rows < rows ? n - c * rows : rows, ctx);
        }
    }
    fm_params_requires_grad(P, saved);
    for (int w = 0; w < nw; w++)
        if (st[w] != FM_OK) return fm__fail(st[w], "%s", wk->tp[w]->msg[0] ? wk->tp[w]->msg : "a worker failed");
    return FM_OK;
}
