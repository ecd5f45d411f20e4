/* workers.c - evaluating a model on many rows: chunks of rows handed to the
 * threads, each worker with its own tape and time buffer.
 *
 * Fewer rows than FM__CHUNK per worker make smaller chunks, so every worker
 * has some, rather than one chunk whose small matrix products would fork
 * threads of their own. A row's arithmetic does not depend on its chunk's
 * size or worker, so results are the same for any thread count, and for any
 * number of ranks: each computes a run of the chunks, and the rows are then
 * gathered on every rank.
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

fm_status fm__run_chunks(fm__workers *wk, fm_params *P, int n, fm__chunk_fn fn, void *ctx, const fm__chunk_out *out,
                         int nout)
{
    int nw = fm_get_threads(), nr = out && fm__dist_on() ? fm_dist_size() : 1, me = nr > 1 ? fm_dist_rank() : 0;
    int pt = nr > 1 ? fm__dist_plan_threads() : nw; /* rank 0's count: every rank plans alike */
    if (nw > FM__MAX_WORKERS) nw = FM__MAX_WORKERS;
    if (nw < 1) nw = 1;
    if (pt > FM__MAX_WORKERS) pt = FM__MAX_WORKERS;
    if (pt < 1) pt = 1;
    /* the chunk plan is one process's of nr x pt threads; rank me takes a run of its chunks */
    int plan = pt * nr, rows = FM__CHUNK;
    if ((long)n < (long)plan * FM__CHUNK) {
        rows = (n + plan - 1) / plan;
        rows = rows < 32 ? 32 : (rows + 15) / 16 * 16;
        if (rows > FM__CHUNK) rows = FM__CHUNK;
    }
    int chunks = (n + rows - 1) / rows, c0 = fm__split(chunks, me, nr), c1 = fm__split(chunks, me + 1, nr);
    int mine = c1 - c0;
    if (nw > mine) nw = mine > 0 ? mine : 1;
    fm_status s = FM_OK;
    for (int w = 0; w < nw && !s; w++) {
        if (!wk->tp[w]) wk->tp[w] = fm_tape_new(0);
        if (!wk->tbuf[w]) wk->tbuf[w] = malloc(2 * FM__CHUNK * sizeof(float)); /* up to 2 time columns */
        if (!wk->tp[w] || !wk->tbuf[w]) s = fm__fail(FM_ERR_NOMEM, "out of memory for the model's workers");
    }
    if (s) return nr > 1 ? fm_dist_agree(s) : s; /* the other ranks learn it in the exchange they wait in */
    int saved = fm__params_get_requires_grad(P);
    fm_params_requires_grad(P, 0);
    fm_status st[FM__MAX_WORKERS];
    FM__PARALLEL_FOR(nw)
    for (int w = 0; w < nw; w++) {
        st[w] = FM_OK;
        for (int c = c0 + fm__split(mine, w, nw); c < c0 + fm__split(mine, w + 1, nw) && st[w] == FM_OK; c++) {
            fm_tape_reset(wk->tp[w]);
            st[w] = fn(wk->tp[w], wk->tbuf[w], c * rows, n - c * rows < rows ? n - c * rows : rows, ctx);
        }
    }
    fm_params_requires_grad(P, saved);
    for (int w = 0; w < nw && !s; w++)
        if (st[w] != FM_OK) s = fm__fail(st[w], "%s", wk->tp[w]->msg[0] ? wk->tp[w]->msg : "a worker failed");
    if (nr == 1) return s;
    if ((s = fm_dist_agree(s))) return s;
    int start[FM__MAX_RANKS + 1];
    if (nr > FM__MAX_RANKS) return fm__fail(FM_ERR_ARG, "%d ranks: at most %d are supported", nr, FM__MAX_RANKS);
    for (int r = 0; r <= nr; r++) {
        int c = fm__split(chunks, r, nr);
        start[r] = c * rows < n ? c * rows : n;
    }
    for (int k = 0; k < nout && !s; k++)
        for (int b = 0; b < out[k].blocks && !s; b++)
            s = fm__dist_gather_rows((char *)out[k].p + (size_t)b * out[k].stride, out[k].row, start, "gathering rows");
    return s;
}
