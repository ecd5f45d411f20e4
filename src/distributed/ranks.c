/* ranks.c - several processes as one: the ranks of an Open MPI job.
 *
 * Built with FM_MPI (the Makefile defines it when mpicc is found), this file
 * is the only one that speaks MPI; without it every call here is the single
 * process's (rank 0 of 1), and fm_dist_init refuses a launch as several ranks.
 *
 * Every exchange is a non-blocking MPI call waited on with a deadline
 * (fm_dist_set_timeout, 600 s by default): a rank that died or hangs makes
 * the others fail with a message instead of waiting for ever. After such a
 * failure the job cannot continue; fm_dist_finalize then says so and the
 * caller ends the job with fm_dist_abort.
 *
 * The reductions add in a fixed order, shard by shard, so N ranks of T
 * threads give the bits of one process of N x T threads: a chain (rank r
 * adds its shards to the sum of the ranks before it and passes it on, in
 * pipelined pieces), then a broadcast of the total from the last rank.
 */
#include "internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#ifdef FM_MPI
#include <mpi.h>
#endif

static int fm__rank = 0, fm__size = 1, fm__inited = 0, fm__broken = 0;
static double fm__timeout = 600.0;
static uint64_t fm__sent; /* payload bytes this rank has handed to the others */

uint64_t fm_dist_bytes_sent(void) { return fm__sent; }

int fm_dist_available(void)
{
#ifdef FM_MPI
    return 1;
#else
    return 0;
#endif
}

int fm_dist_rank(void) { return fm__rank; }
int fm_dist_size(void) { return fm__size; }
int fm__dist_on(void) { return fm__size > 1; }

void fm_dist_set_timeout(double seconds) { fm__timeout = seconds > 0 ? seconds : 600.0; }

/* The job size the launcher announces (Open MPI's mpirun, PMI, or Slurm's
 * srun), 1 when none. Over-counting is harmless: MPI_Init then reports the
 * real size (1 for a process started alone). */
static int launched_size(int *rank)
{
    static const char *const vars[][2] = {{"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"}, {"PMI_SIZE", "PMI_RANK"},
                                          {"PMIX_SIZE", "PMIX_RANK"}, {"SLURM_NTASKS", "SLURM_PROCID"}};
    for (size_t k = 0; k < sizeof vars / sizeof vars[0]; k++) {
        const char *s = getenv(vars[k][0]), *r = getenv(vars[k][1]);
        int n = s ? atoi(s) : 0;
        if (n > 1 || (k == 2 && r && !s)) { /* PMIx may announce only the rank */
            *rank = r ? atoi(r) : 0;
            return n > 1 ? n : 2;
        }
    }
    *rank = 0;
    return 1;
}

fm_status fm_dist_init(int *argc, char ***argv)
{
    int rank = 0, n = launched_size(&rank);
    if (fm__inited || n == 1) return FM_OK; /* one process: nothing to start */
#ifdef FM_MPI
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return fm__fail(FM_ERR_IO, "MPI_Init failed (launched as rank %d of %d)", rank, n);
    fm__inited = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &fm__rank);
    MPI_Comm_size(MPI_COMM_WORLD, &fm__size);
    if (fm__size == 1) { /* a process started alone after all */
        MPI_Finalize();
        fm__inited = 0;
        return FM_OK;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    return FM_OK;
#else
    (void)argc;
    (void)argv;
    fm__rank = rank; /* so that only the first of the processes reports it */
    return fm__fail(FM_ERR_ARG, "launched as %d ranks, but this flowmatch was built without MPI (no mpicc when it "
                                "was built): install libopenmpi-dev and rebuild, or run one process", n);
#endif
}

fm_status fm_dist_finalize(void)
{
    if (!fm__inited) return FM_OK;
    if (fm__broken) return fm__fail(FM_ERR_IO, "an exchange between the ranks failed: the job must be aborted");
#ifdef FM_MPI
    MPI_Finalize();
#endif
    fm__inited = 0;
    return FM_OK;
}

void fm_dist_abort(int code)
{
#ifdef FM_MPI
    if (fm__inited) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)code;
}

#ifdef FM_MPI
/* Wait for n requests until the deadline; polls, then sleeps a little between polls. */
static fm_status wait_all(int n, MPI_Request *rq, const char *what)
{
    double t0 = MPI_Wtime();
    for (long spin = 0;; spin++) {
        int done = 0;
        if (MPI_Testall(n, rq, &done, MPI_STATUSES_IGNORE) != MPI_SUCCESS) {
            fm__broken = 1;
            return fm__fail(FM_ERR_IO, "rank %d: an exchange (%s) failed: another rank has stopped", fm__rank, what);
        }
        if (done) return FM_OK;
        if (MPI_Wtime() - t0 > fm__timeout) {
            fm__broken = 1;
            return fm__fail(FM_ERR_IO, "rank %d waited %.0f s for the other ranks (%s): one of them has stopped or "
                                       "hangs", fm__rank, fm__timeout, what);
        }
        if (spin > 2000) {
            struct timespec ts = {0, spin > 100000 ? 1000000 : 20000};
            nanosleep(&ts, NULL);
        }
    }
}

static fm_status check(int rc, const char *what)
{
    if (rc == MPI_SUCCESS) return FM_OK;
    fm__broken = 1;
    return fm__fail(FM_ERR_IO, "rank %d: MPI call failed (%s)", fm__rank, what);
}
#endif

/* After a failed exchange the ranks are out of step: no further one is tried. */
static fm_status broken(void)
{
    return fm__fail(FM_ERR_IO, "rank %d: an earlier exchange between the ranks failed", fm__rank);
}

fm_status fm__dist_allgather(const void *mine, void *all, size_t bytes, const char *what)
{
    if (fm__size == 1) {
        memmove(all, mine, bytes);
        return FM_OK;
    }
    if (fm__broken) return broken();
#ifdef FM_MPI
    if (bytes > INT32_MAX) return fm__fail(FM_ERR_ARG, "%s: %zu bytes per rank is too many to exchange", what, bytes);
    MPI_Request rq;
    fm_status s = check(MPI_Iallgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD, &rq), what);
    fm__sent += (uint64_t)bytes * (uint64_t)(fm__size - 1);
    return s ? s : wait_all(1, &rq, what);
#else
    (void)what;
    return FM_OK;
#endif
}

fm_status fm__dist_bcast(void *p, size_t bytes, int root, const char *what)
{
    if (fm__size == 1) return FM_OK;
    if (fm__broken) return broken();
#ifdef FM_MPI
    for (size_t off = 0; off < bytes;) { /* in pieces of at most 1 GiB: MPI counts are int */
        size_t m = bytes - off < ((size_t)1 << 30) ? bytes - off : ((size_t)1 << 30);
        MPI_Request rq;
        fm_status s = check(MPI_Ibcast((char *)p + off, (int)m, MPI_BYTE, root, MPI_COMM_WORLD, &rq), what);
        if (!s) s = wait_all(1, &rq, what);
        if (s) return s;
        if (fm__rank == root) fm__sent += (uint64_t)m * (uint64_t)(fm__size - 1);
        off += m;
    }
    return FM_OK;
#else
    (void)p;
    (void)bytes;
    (void)root;
    (void)what;
    return FM_OK;
#endif
}

int fm_dist_first(int code, const char *msg, char *buf, size_t len)
{
    if (len) buf[0] = '\0';
    if (fm__size == 1) {
        if (code && msg && len) snprintf(buf, len, "%s", msg);
        return code;
    }
    struct {
        int32_t code;
        char msg[380];
    } me, *all = malloc((size_t)fm__size * sizeof me);
    if (!all) { /* the others wait in the exchange: the job must be ended */
        fm__broken = 1;
        if (len) snprintf(buf, len, "rank %d: out of memory in an exchange", fm__rank);
        return code ? code : -1;
    }
    memset(&me, 0, sizeof me);
    me.code = code;
    if (msg) snprintf(me.msg, sizeof me.msg, "%s", msg);
    int first = 0;
    if (fm__dist_allgather(&me, all, sizeof me, "agreeing on a result") != FM_OK) {
        first = code ? code : -1; /* the exchange failed: this rank stops too */
        if (len) snprintf(buf, len, "%s", fm_last_error());
    }
    for (int r = 0; !first && r < fm__size; r++)
        if (all[r].code) {
            first = all[r].code;
            if (!len) break;
            if (r == fm__rank) snprintf(buf, len, "%s", all[r].msg);
            else snprintf(buf, len, "rank %d: %s", r, all[r].msg);
        }
    free(all);
    return first;
}

fm_status fm_dist_agree(fm_status mine)
{
    if (fm__size == 1) return mine;
    char msg[460];
    int first = fm_dist_first((int)mine, mine ? fm_last_error() : "", msg, sizeof msg);
    if (!first) return FM_OK;
    fm_status s = first > 0 && first < FM_ERR_COUNT ? (fm_status)first : FM_ERR_IO;
    return fm__fail(s, "%s", msg);
}

/* Pieces of the chain: small enough that the ranks overlap, large enough to
 * keep the number of messages low. */
#define FM__CHAIN_PIECE 65536

fm_status fm__dist_chain_sum(float *g, const float *const *more, int nmore, size_t n, const char *what)
{
    if (fm__size == 1) {
        for (int k = 0; k < nmore; k++)
            for (size_t i = 0; i < n; i++) g[i] += more[k][i];
        return FM_OK;
    }
    if (fm__broken) return broken();
#ifdef FM_MPI
    size_t npieces = (n + FM__CHAIN_PIECE - 1) / FM__CHAIN_PIECE;
    float *in = fm__rank ? malloc(FM__CHAIN_PIECE * sizeof(float)) : NULL;
    MPI_Request *sends = fm__rank < fm__size - 1 ? malloc((npieces ? npieces : 1) * sizeof(MPI_Request)) : NULL;
    if ((fm__rank && !in) || (fm__rank < fm__size - 1 && !sends)) {
        free(in);
        free(sends);
        fm__broken = 1; /* the others wait in the chain: the job must be ended */
        return fm__fail(FM_ERR_NOMEM, "out of memory for the gradient exchange");
    }
    fm_status s = FM_OK;
    size_t sent = 0;
    for (size_t p = 0; p < npieces && !s; p++) {
        size_t i0 = p * FM__CHAIN_PIECE, m = n - i0 < FM__CHAIN_PIECE ? n - i0 : FM__CHAIN_PIECE;
        float *gp = g + i0;
        if (fm__rank) { /* the sum over the shards of the ranks before, then this rank's shards in order */
            MPI_Request rq;
            s = check(MPI_Irecv(in, (int)m, MPI_FLOAT, fm__rank - 1, 7, MPI_COMM_WORLD, &rq), what);
            if (!s) s = wait_all(1, &rq, what);
            if (s) break;
            for (size_t i = 0; i < m; i++) gp[i] = in[i] + gp[i];
        }
        for (int k = 0; k < nmore; k++)
            for (size_t i = 0; i < m; i++) gp[i] += more[k][i0 + i];
        if (fm__rank < fm__size - 1) {
            s = check(MPI_Isend(gp, (int)m, MPI_FLOAT, fm__rank + 1, 7, MPI_COMM_WORLD, &sends[sent]), what);
            if (!s) sent++, fm__sent += m * sizeof(float);
        }
    }
    if (!s && sent) s = wait_all((int)sent, sends, what);
    free(in);
    free(sends);
    if (!s) s = fm__dist_bcast(g, n * sizeof(float), fm__size - 1, what); /* the last rank holds the total */
    return s;
#else
    (void)what;
    return FM_OK;
#endif
}

fm_status fm__dist_gather_rows(void *p, size_t row_bytes, const int *start, const char *what)
{
    if (fm__size == 1) return FM_OK;
    if (fm__broken) return broken();
#ifdef FM_MPI
    int N = fm__size, *cnt = malloc((size_t)N * 2 * sizeof(int));
    if (!cnt) {
        fm__broken = 1;
        return fm__fail(FM_ERR_NOMEM, "out of memory");
    }
    if ((double)start[N] * row_bytes > INT32_MAX) {
        free(cnt);
        return fm__fail(FM_ERR_ARG, "%s: %d rows of %zu bytes are too many to gather at once", what, start[N], row_bytes);
    }
    for (int r = 0; r < N; r++) {
        cnt[r] = (int)((size_t)(start[r + 1] - start[r]) * row_bytes);
        cnt[N + r] = (int)((size_t)start[r] * row_bytes);
    }
    fm__sent += (uint64_t)cnt[fm__rank] * (uint64_t)(N - 1);
    MPI_Request rq;
    fm_status s = check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_BYTE, p, cnt, cnt + N, MPI_BYTE, MPI_COMM_WORLD, &rq), what);
    if (!s) s = wait_all(1, &rq, what);
    free(cnt);
    return s;
#else
    (void)p;
    (void)row_bytes;
    (void)start;
    (void)what;
    return FM_OK;
#endif
}

int fm__dist_plan_threads(void)
{
    int t = fm_get_threads();
    if (fm__size > 1 && fm__dist_bcast(&t, sizeof t, 0, "the thread count") != FM_OK) return fm_get_threads();
    return t;
}

fm_status fm__dist_same(uint64_t h, const char *what)
{
    if (fm__size == 1) return FM_OK;
    uint64_t *all = malloc((size_t)fm__size * sizeof *all);
    if (!all) {
        fm__broken = 1;
        return fm__fail(FM_ERR_NOMEM, "out of memory");
    }
    fm_status s = fm__dist_allgather(&h, all, sizeof h, what);
    for (int r = 1; !s && r < fm__size; r++)
        if (all[r] != all[0])
            s = fm__fail(FM_ERR_STATE, "%s differ between the ranks (rank 0: %08llx, rank %d: %08llx): the ranks no "
                                       "longer compute the same thing", what, (unsigned long long)all[0], r,
                         (unsigned long long)all[r]);
    free(all);
    return s;
}
