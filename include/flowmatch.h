/* flowmatch.h - the one public header of libflowmatch.
 *
 * Flow-matching generative models in plain C: a small reverse-mode autodiff
 * engine over float32 tensors, layers and models, PyTorch-exact optimizers,
 * reproducible random streams and safetensors checkpoints.
 *
 * Usage: one training step of the tutorial's flow-matching MLP.
 *
 *     fm_params *P = fm_params_new();
 *     fm_mlp_config mc = fm_mlp_config_default(2);         // 3 -> 64 ELU x3 -> 2
 *     fm_mlp *net = fm_mlp_new(P, "net", &mc);
 *     fm_rng init; fm_rng_seed(&init, 0, FM_STREAM_INIT);
 *     fm_mlp_init(net, &init);                             // nn.Linear defaults
 *     fm_optim_config oc = fm_optim_config_default(FM_OPTIM_ADAM);
 *     oc.lr = 1e-2;
 *     fm_optim *opt = fm_optim_new(P, &oc);
 *     fm_tape *tp = fm_tape_new(0);
 *     for (int it = 0; it < iters; it++) {
 *         fm_tape_reset(tp);                               // frees last step's tensors
 *         fm_tensor *t = ..., *xt = ..., *target = ...;   // fm_tensor_new + fill
 *         fm_tensor *loss = fm_mse_loss(tp, fm_mlp_forward(tp, net, t, xt), target,
 *                                       FM_REDUCE_MEAN);
 *         fm_params_zero_grad(P);
 *         if (fm_backward(tp, loss, NULL) != FM_OK) { puts(fm_last_error()); break; }
 *         fm_optim_step(opt, oc.lr);
 *     }
 *
 * Conventions
 * - Every public name starts with fm_ (types, functions) or FM_ (macros, enums).
 * - Fallible functions return an fm_status; constructors return NULL. In both
 *   cases fm_last_error() gives a message that names the file, field and value.
 * - Ops record onto a tape and never abort on bad shapes: they return NULL, the
 *   tape keeps the first error (fm_tape_status) and every later op on a NULL
 *   input returns NULL too, so a whole forward pass can be checked once.
 * - The library never exits and never writes to stdout. A broken internal
 *   invariant (a bug, not bad input) aborts with a message on stderr.
 * - Results are bit-identical for the same seed and thread count.
 * - Ownership: fm_*_new returns an object the caller frees with fm_*_free
 *   (which accepts NULL). Tensors made on a tape belong to the tape and die at
 *   fm_tape_reset or fm_tape_free.
 */
#ifndef FLOWMATCH_H
#define FLOWMATCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version, "MAJOR.MINOR.PATCH": the one place it is written (the
 * Makefile reads it for the shared library's SONAME, libflowmatch.so.MAJOR,
 * and for flowmatch.pc). fm_version() is the library's own, which a program
 * built against another header can compare with FM_VERSION. */
#define FM_VERSION "0.1.0"
const char *fm_version(void);
#define FM_MAX_DIMS 4

/* ------------------------------------------------------------------ status */

typedef enum {
    FM_OK = 0,
    FM_ERR_ARG,      /* a bad argument or option value */
    FM_ERR_SHAPE,    /* tensor shapes that do not fit together */
    FM_ERR_NOMEM,    /* an allocation failed */
    FM_ERR_IO,       /* a file could not be opened, read or written */
    FM_ERR_FORMAT,   /* a file's contents are malformed */
    FM_ERR_NUMERIC,  /* NaN or infinity where a finite number is needed */
    FM_ERR_STATE,    /* a call out of order (e.g. adding parameters after the optimizer) */
    FM_ERR_COUNT
} fm_status;

/* Short lower-case name of a status ("shape", "format", ...). */
const char *fm_status_name(fm_status s);
/* Message of the most recent failure on the calling thread ("" if none). */
const char *fm_last_error(void);
/* Its status (FM_OK if none), e.g. after a constructor returned NULL. */
fm_status fm_last_status(void);
/* Forget the last message. */
void fm_clear_error(void);

/* ------------------------------------------------------------------ random numbers */

/* xoshiro256** (Blackman and Vigna). Streams are 2^128 draws apart (the
 * generator's jump polynomial), so the data, noise and time streams of one seed
 * never overlap. The state is plain data: copy it to fork, save it to resume. */
typedef struct { uint64_t s[4]; } fm_rng;

enum { FM_STREAM_INIT = 0, FM_STREAM_DATA = 1, FM_STREAM_NOISE = 2, FM_STREAM_TIME = 3 };

void     fm_rng_seed(fm_rng *r, uint64_t seed, uint64_t stream);
uint64_t fm_rng_next(fm_rng *r);          /* 64 uniform bits */
void     fm_rng_jump(fm_rng *r);          /* advance 2^128 draws */
double   fm_rng_uniform(fm_rng *r);       /* [0, 1), 53 bits */
double   fm_rng_normal(fm_rng *r);        /* N(0, 1), Box-Muller (cosine half) */
/* out[i] ~ U[lo, hi) as float; uses one 64-bit draw per value. */
void     fm_rng_uniform_fill(fm_rng *r, float *out, size_t n, float lo, float hi);
/* out[i] ~ N(mean, std^2); Box-Muller pairs, one pair per two values. */
void     fm_rng_normal_fill(fm_rng *r, float *out, size_t n, float mean, float std);
/* State as 64 hex digits (buf must hold 65 chars) and back. */
void      fm_rng_to_hex(const fm_rng *r, char *buf);
fm_status fm_rng_from_hex(fm_rng *r, const char *hex);

/* ------------------------------------------------------------------ tensors and the tape */

typedef struct fm_tape fm_tape;
typedef struct fm_op fm_op;

/* A float32 tensor, contiguous, row-major, up to 4 dimensions (NCHW for images).
 * A scalar has ndim 0 and size 1. Only the first block of fields is public. */
typedef struct fm_tensor fm_tensor;
struct fm_tensor {
    int ndim;
    int shape[FM_MAX_DIMS];
    size_t size;            /* number of elements */
    float *data;            /* (size) */
    float *grad;            /* (size), NULL until a backward pass reaches it */
    /* engine-private below */
    unsigned char requires_grad;
    unsigned char is_param;
    int nsrc;
    fm_tensor **src;        /* inputs of the op that made this tensor */
    const fm_op *op;        /* NULL for leaves */
    fm_tensor *prev;        /* previous tensor on the tape */
    union { float f[4]; int i[4]; } arg;
    void *aux;              /* op-private saved values, laid out by the op */
};

/* A tape owns an arena: every tensor, its data and its gradient come from it.
 * initial_bytes 0 picks a default; the arena grows as needed and, at the next
 * reset, folds into one block big enough for the whole step, so a training loop
 * that resets every step stops allocating after its first step. */
fm_tape  *fm_tape_new(size_t initial_bytes);
void      fm_tape_free(fm_tape *tp);
void      fm_tape_reset(fm_tape *tp);          /* drops all tensors, clears the error */
fm_status fm_tape_status(const fm_tape *tp);   /* first error since the last reset */
/* Arena figures: bytes in use now, the most ever used in one step, and how many
 * times the arena has called malloc (constant once a loop is warm). */
void      fm_tape_stats(const fm_tape *tp, size_t *used, size_t *peak, size_t *mallocs);

/* A new leaf tensor on the tape, zero-filled. NULL on a bad shape. */
fm_tensor *fm_tensor_new(fm_tape *tp, int ndim, const int *shape);
fm_tensor *fm_tensor_2d(fm_tape *tp, int rows, int cols);
/* A leaf that views caller memory (no copy); the memory must outlive the step. */
fm_tensor *fm_tensor_wrap(fm_tape *tp, float *data, int ndim, const int *shape);
/* A leaf holding a copy of data. */
fm_tensor *fm_tensor_copy(fm_tape *tp, const float *data, int ndim, const int *shape);
/* Ask for the gradient of a leaf (an input to differentiate with respect to). */
void       fm_tensor_requires_grad(fm_tensor *t, int on);
/* Write "[2, 3]" into buf (at least 64 chars). */
const char *fm_shape_str(const fm_tensor *t, char *buf, size_t len);

/* Reverse-mode pass from y with cotangent dy (same shape as y; NULL means ones,
 * which for a scalar loss gives the ordinary gradient). Gradients of parameters
 * ACCUMULATE into their flat gradient buffer; gradients of other leaves
 * (inputs that require grad) are fresh on each call, so several calls on one
 * tape give several vector-Jacobian products e^T dy/dx (read them from
 * x->grad). An op's output keeps no gradient after the pass (its buffer
 * serves a tensor further back), as PyTorch keeps none for non-leaves. */
fm_status fm_backward(fm_tape *tp, fm_tensor *y, const float *dy);

/* ------------------------------------------------------------------ ops
 * Each op: out = f(inputs), recorded on the tape, with its backward. On a bad
 * shape, a NULL input or an earlier tape error they return NULL. */

typedef enum { FM_REDUCE_MEAN = 0, FM_REDUCE_SUM, FM_REDUCE_COUNT } fm_reduce;

/* y = x W^T + b. x (B, in), W (out, in) as nn.Linear stores it, b (out) or NULL. */
fm_tensor *fm_linear(fm_tape *tp, fm_tensor *x, fm_tensor *w, fm_tensor *b);
/* 2-D convolution (cross-correlation, as nn.Conv2d). x (N, C, H, W), w (O, C, kh, kw)
 * as nn.Conv2d stores it, b (O) or NULL; stride >= 1, pad >= 0 zeros on every
 * side. Out (N, O, Ho, Wo), Ho = (H + 2 pad - kh) / stride + 1, Wo likewise. */
fm_tensor *fm_conv2d(fm_tape *tp, fm_tensor *x, fm_tensor *w, fm_tensor *b, int stride, int pad);
/* Nearest-neighbour upsampling (N, C, H, W) -> (N, C, factor H, factor W). */
fm_tensor *fm_upsample_nearest2d(fm_tape *tp, fm_tensor *x, int factor);
/* Mean over k x k blocks (kernel = stride = k, no padding): (N, C, H, W) ->
 * (N, C, H / k, W / k); H and W must be multiples of k. */
fm_tensor *fm_avg_pool2d(fm_tape *tp, fm_tensor *x, int k);
/* Group normalisation as torch.nn.functional.group_norm. x (N, C), (N, C, L)
 * or (N, C, H, W); C divisible by groups >= 1. Each sample's group of C / groups
 * consecutive channels is normalised by its own mean and biased variance
 * (computed in double), then y = xhat gamma[c] + beta[c]. gamma (C) and beta
 * (C) may each be NULL (1 and 0). eps >= 0; PyTorch's default is 1e-5. */
fm_tensor *fm_group_norm(fm_tape *tp, fm_tensor *x, int groups, fm_tensor *gamma, fm_tensor *beta, float eps);
/* Rows of weight (num, dim) picked by ids[0 .. n), each in [0, num) (the ids are
 * copied): out (n, dim). Backward adds each row of the output's gradient into
 * its id's row of weight's gradient (a repeated id sums, in double). */
fm_tensor *fm_embedding(fm_tape *tp, fm_tensor *weight, const int *ids, int n);
/* Inverted dropout as torch: while training, each element is kept with
 * probability 1 - p and divided by 1 - p (the quotient rounded once), or set
 * to 0 (even where x is infinite or NaN, which torch would turn to NaN); backward passes dy through the same mask, scaled the same way. One
 * draw of fm_rng_uniform per element, in order (keep when u >= p). Without
 * training, or with p = 0, x itself is returned and rng is not used (it may be
 * NULL). p must lie in [0, 1). */
fm_tensor *fm_dropout(fm_tape *tp, fm_tensor *x, float p, fm_rng *rng, int training);
/* Elementwise with NumPy broadcasting (align trailing dims; a dim of 1 stretches). */
fm_tensor *fm_add(fm_tape *tp, fm_tensor *a, fm_tensor *b);   /* a + b */
fm_tensor *fm_sub(fm_tape *tp, fm_tensor *a, fm_tensor *b);   /* a - b */
fm_tensor *fm_mul(fm_tape *tp, fm_tensor *a, fm_tensor *b);   /* a * b */
fm_tensor *fm_scale(fm_tape *tp, fm_tensor *x, float s);      /* s x */
fm_tensor *fm_exp(fm_tape *tp, fm_tensor *x);                 /* exp(x) elementwise */
/* The same values (in the same order) seen with another shape of the same
 * size; backward passes the gradient through unchanged. */
fm_tensor *fm_reshape(fm_tape *tp, fm_tensor *x, int ndim, const int *shape);
/* Concatenate n tensors along dim 1 (features of (B, F), channels of NCHW). */
fm_tensor *fm_concat(fm_tape *tp, fm_tensor *const *xs, int n);
fm_tensor *fm_sum(fm_tape *tp, fm_tensor *x);                 /* scalar sum_i x_i */
fm_tensor *fm_mean(fm_tape *tp, fm_tensor *x);                /* scalar mean_i x_i */

/* Activations, elementwise. */
typedef enum {
    FM_ACT_NONE = 0,  /* f(x) = x */
    FM_ACT_RELU,      /* max(0, x) */
    FM_ACT_ELU,       /* x > 0 ? x : exp(x) - 1  (alpha = 1) */
    FM_ACT_SILU,      /* x sigmoid(x) */
    FM_ACT_GELU,      /* x Phi(x) = x/2 (1 + erf(x / sqrt 2)) */
    FM_ACT_GELU_TANH, /* x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    FM_ACT_TANH,      /* tanh(x) */
    FM_ACT_SIGMOID,   /* 1 / (1 + exp(-x)) */
    FM_ACT_SELU,      /* scale (x > 0 ? x : alpha (exp(x) - 1)), PyTorch's constants */
    FM_ACT_SOFTPLUS,  /* log(1 + exp(x)), x above 20 passes through (beta 1) */
    FM_ACT_COUNT
} fm_act;

const char *fm_act_name(fm_act a);                  /* "elu", "gelu_tanh", ... */
int         fm_act_from_name(const char *name);     /* -1 if unknown */
fm_tensor  *fm_activation(fm_tape *tp, fm_tensor *x, fm_act a);
/* f'(x) elementwise, itself an op with a backward (f''): what a forward-mode
 * tangent through an activation needs (dy = f'(x) dx), kept differentiable. */
fm_tensor  *fm_act_grad(fm_tape *tp, fm_tensor *x, fm_act a);
fm_tensor  *fm_relu(fm_tape *tp, fm_tensor *x);
fm_tensor  *fm_elu(fm_tape *tp, fm_tensor *x);
fm_tensor  *fm_silu(fm_tape *tp, fm_tensor *x);
fm_tensor  *fm_gelu(fm_tape *tp, fm_tensor *x);
fm_tensor  *fm_gelu_tanh(fm_tape *tp, fm_tensor *x);
fm_tensor  *fm_tanh(fm_tape *tp, fm_tensor *x);
fm_tensor  *fm_sigmoid(fm_tape *tp, fm_tensor *x);
fm_tensor  *fm_selu(fm_tape *tp, fm_tensor *x);
fm_tensor  *fm_softplus(fm_tape *tp, fm_tensor *x);

/* Sinusoidal time embedding. t (B) or (B, 1) -> (B, dim), dim even, half = dim/2:
 * f_i = exp(-ln(max_period) i / half), a_i = scale t f_i,
 * out = [cos a_0 .. cos a_{half-1}, sin a_0 .. sin a_{half-1}]. */
fm_tensor *fm_time_embed(fm_tape *tp, fm_tensor *t, int dim, float scale, float max_period);

/* Losses, all returning a scalar. */
/* mean or sum of (pred - target)^2; both arguments may require grad. */
fm_tensor *fm_mse_loss(fm_tape *tp, fm_tensor *pred, fm_tensor *target, fm_reduce r);
/* -(y log p + (1 - y) log(1 - p)), logs clamped at -100 as PyTorch does;
 * p are probabilities, y targets (constant). */
fm_tensor *fm_bce_loss(fm_tape *tp, fm_tensor *p, fm_tensor *y, fm_reduce r);
/* The same on logits z, computed stably: max(z, 0) - z y + log(1 + exp(-|z|)). */
fm_tensor *fm_bce_logits_loss(fm_tape *tp, fm_tensor *z, fm_tensor *y, fm_reduce r);
/* KL(N(mu, exp(logvar)) || N(0, I)) = -1/2 (1 + logvar - mu^2 - exp(logvar)),
 * summed, or averaged over elements. */
fm_tensor *fm_kl_normal_loss(fm_tape *tp, fm_tensor *mu, fm_tensor *logvar, fm_reduce r);
/* -log N(x; mu, exp(logvar)) = 1/2 (log 2 pi + logvar + (x - mu)^2 exp(-logvar)),
 * summed or averaged over elements; logvar has mu's shape or is one row (the
 * size of mu's last dimension) shared by every row. x is a constant target. */
fm_tensor *fm_gaussian_nll_loss(fm_tape *tp, fm_tensor *mu, fm_tensor *logvar, fm_tensor *x, fm_reduce r);
/* -log softmax(z)[label] for each row of logits z (B, K), the log-softmax
 * computed stably (max subtracted, in double); labels[0 .. B) in [0, K), copied.
 * MEAN divides by B (PyTorch's cross_entropy), SUM does not. */
fm_tensor *fm_cross_entropy(fm_tape *tp, fm_tensor *logits, const int *labels, fm_reduce r);

/* ------------------------------------------------------------------ parameters */

/* All trainable values of a model in one flat buffer, their gradients in
 * another, each named (PyTorch state_dict keys) and shaped. */
typedef struct fm_params fm_params;

fm_params *fm_params_new(void);
void       fm_params_free(fm_params *p);
/* Add a zero-filled parameter; returns its index, or -1 (see fm_last_error). */
int        fm_params_add(fm_params *p, const char *name, int ndim, const int *shape);
int        fm_params_count(const fm_params *p);         /* number of tensors */
size_t     fm_params_size(const fm_params *p);          /* number of floats */
fm_tensor *fm_params_tensor(fm_params *p, int i);       /* view; valid until the next add */
const char *fm_params_name(const fm_params *p, int i);
int        fm_params_find(const fm_params *p, const char *name);  /* -1 if absent */
float     *fm_params_data(fm_params *p);                /* (size) */
float     *fm_params_grad(fm_params *p);                /* (size) */
void       fm_params_zero_grad(fm_params *p);
void       fm_params_requires_grad(fm_params *p, int on);
/* PyTorch nn.Linear default initialisation for a (out, in) weight and its bias:
 * both U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a = sqrt 5). For a
 * (O, C, kh, kw) weight, in = C kh kw: nn.Conv2d's default. */
void       fm_init_linear(fm_rng *r, fm_tensor *w, fm_tensor *b);

/* ------------------------------------------------------------------ models */

#define FM_MLP_MAX_LAYERS 16

typedef struct {
    int in_dim;                        /* data dimension d */
    int out_dim;                       /* output dimension (d for a velocity) */
    int nhidden;                       /* hidden layers */
    int width[FM_MLP_MAX_LAYERS];      /* their widths */
    fm_act act;                        /* between linear layers */
    int time_input;                    /* 1: input is concat(t, x), t first */
    int time_embed;                    /* >0: t enters as a sinusoidal embedding of this size */
    double time_scale;                 /* the embedding's sinusoids are of time_scale t (0: 1000) */
} fm_mlp_config;

/* The tutorial's model: in = out = dim, three hidden layers of 64, ELU, time input. */
fm_mlp_config fm_mlp_config_default(int dim);

typedef struct fm_mlp fm_mlp;

/* Adds "prefix.0.weight", "prefix.0.bias", "prefix.2.weight", ... to p, the keys
 * of nn.Sequential(Linear, act, Linear, act, ..., Linear). The weights are zero
 * until fm_mlp_init. p must outlive the model. */
fm_mlp    *fm_mlp_new(fm_params *p, const char *prefix, const fm_mlp_config *cfg);
void       fm_mlp_free(fm_mlp *m);
const fm_mlp_config *fm_mlp_get_config(const fm_mlp *m);
void       fm_mlp_init(fm_mlp *m, fm_rng *r);
/* t (B, 1) or NULL when the model takes no time; x (B, in_dim) -> (B, out_dim). */
fm_tensor *fm_mlp_forward(fm_tape *tp, fm_mlp *m, fm_tensor *t, fm_tensor *x);
/* The forward pass and its Jacobian-vector product in one: *y = net(t, x) and
 * the return value is d net / d(t, x) applied to the tangents (tt (B, 1) for t,
 * NULL: 0; tx (B, in_dim) for x), built from ordinary ops (linear, fm_act_grad,
 * mul), so a backward pass differentiates the product with respect to the
 * weights. tx may stack K tangents (K B, in_dim), row k B + b for point b:
 * they share one forward pass and give (K B, out_dim). tt needs K = 1. */
fm_tensor *fm_mlp_jvp(fm_tape *tp, fm_mlp *m, fm_tensor *t, fm_tensor *x, fm_tensor *tt, fm_tensor *tx, fm_tensor **y);

/* ------------------------------------------------------------------ U-Net */

/* A small convolutional U-Net for images (NCHW), the velocity or noise network
 * of a flow on image data. Level i works at (H / 2^i, W / 2^i) with
 * C_i = base mult[i] channels. With emb = time_mlp(sinusoid(t)) (Linear, SiLU,
 * Linear; sinusoid as fm_time_embed with scale 1000 and period 10000), plus
 * label_emb(y) in a class-conditional network:
 *   h = conv_in(x)                                      3x3, in_ch -> C_0
 *   level i = 0 .. L-1: h = down.i(h, emb); keep h; avg_pool2d(h, 2) below the last
 *   h = mid(h, emb)
 *   j = 0 .. L-1, level i = L-1-j: h = up.j(concat(h, kept_i), emb)     2 C_i -> C_i
 *                  above level 0: h = upconv.j(upsample_nearest2d(h, 2))  3x3, C_i -> C_{i-1}
 *   out = conv_out(silu(norm_out(h)))                   3x3, C_0 -> in_ch
 * A residual block (cin -> cout):
 *   h = conv1(silu(norm1(x))) + temb(silu(emb))[:, :, None, None]
 *   h = conv2(silu(norm2(h))),  out = h + (skip(x) if cin != cout else x)
 * with GroupNorm(groups, eps 1e-5), 3x3 convolutions padded by 1 and a 1x1 skip.
 * Parameter names are those of tests/ref/unet.py's UNet.state_dict():
 * time_mlp.0.*, time_mlp.2.*, label_emb.weight (classes only), conv_in.*, down.<i>.{norm1,conv1,temb,norm2,conv2,skip}.*,
 * mid.*, up.<j>.*, upconv.<j>.*, norm_out.*, conv_out.* (each .weight, .bias). */
#define FM_UNET_MAX_LEVELS 6

typedef struct {
    int in_ch, height, width;          /* image shape; height and width divisible by 2^(nlevels - 1) */
    int base;                          /* channels of level 0 (32) */
    int nlevels;                       /* resolutions (3: 28, 14, 7) */
    int mult[FM_UNET_MAX_LEVELS];      /* channel multipliers (1, 2, 2) */
    int time_freq;                     /* sinusoid size, even; 0: base */
    int time_dim;                      /* time embedding width; 0: 4 base */
    int groups;                        /* GroupNorm groups (8); divides every C_i */
    int num_classes;                   /* > 0: class-conditional, labels 0 .. num_classes - 1 */
    int out_ch;                        /* output channels; 0: in_ch (a velocity of the input's shape) */
    int interval;                      /* 1: a second time input h (an interval's length), embedded as t
                                        * by its own interval_mlp.0, .2 and added to t's embedding */
    double time_scale;                 /* the sinusoids are of time_scale t (0: 1000) */
} fm_unet_config;

/* base 32, mult 1, 2, 2, groups 8, time sizes from base. */
fm_unet_config fm_unet_config_default(int in_ch, int height, int width);

typedef struct fm_unet fm_unet;
/* Adds the parameters ("prefix." before every name above, none for "" or NULL)
 * to p, GroupNorm weights 1 and the rest zero until fm_unet_init; p must
 * outlive the model. time_freq and time_dim of 0 are resolved here. */
fm_unet   *fm_unet_new(fm_params *p, const char *prefix, const fm_unet_config *cfg);
void       fm_unet_free(fm_unet *u);
const fm_unet_config *fm_unet_get_config(const fm_unet *u);
/* PyTorch's defaults: convolutions and linear layers as fm_init_linear (in
 * registration order), GroupNorm weight 1 and bias 0. */
void       fm_unet_init(fm_unet *u, fm_rng *r);
/* t (B, 1) or (B); x (B, in_ch, H, W) or flat (B, in_ch H W): out has x's
 * shape, with out_ch channels when it is set. With interval, t may be (B, 2):
 * rows (t, h); a (B, 1) t then means h = 0.
 * A class-conditional network (num_classes K > 0) adds label_emb(y) to the time
 * embedding before its SiLU, y = labels[i] in 0 .. K, K meaning "no label"
 * (the row classifier-free guidance uses); labels NULL: every row K. A network
 * without classes refuses labels. */
fm_tensor *fm_unet_forward(fm_tape *tp, fm_unet *u, fm_tensor *t, fm_tensor *x, const int *labels);

/* The network of a flow. */
typedef enum { FM_ARCH_MLP = 0, FM_ARCH_UNET, FM_ARCH_COUNT } fm_arch;
const char *fm_arch_name(fm_arch a);          /* "mlp", "unet" */
int         fm_arch_from_name(const char *name);

/* ------------------------------------------------------------------ optimizers */

typedef enum { FM_OPTIM_SGD = 0, FM_OPTIM_ADAM, FM_OPTIM_ADAMW, FM_OPTIM_COUNT } fm_optim_kind;

/* Hyperparameters are doubles, like the Python floats torch.optim receives;
 * each is rounded to float where PyTorch rounds it. */
typedef struct {
    fm_optim_kind kind;
    double lr;
    double beta1, beta2, eps;   /* Adam, AdamW */
    double weight_decay;        /* L2 added to the gradient (SGD, Adam); decoupled (AdamW) */
    int amsgrad;                /* Adam, AdamW */
    double momentum, dampening; /* SGD */
    int nesterov;               /* SGD */
} fm_optim_config;

const char     *fm_optim_name(fm_optim_kind k);          /* "sgd", "adam", "adamw" */
int             fm_optim_from_name(const char *name);    /* -1 if unknown */
/* torch.optim's defaults: Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8; AdamW the
 * same with weight_decay 1e-2; SGD lr 1e-3 (torch requires one), no momentum. */
fm_optim_config fm_optim_config_default(fm_optim_kind k);

typedef struct fm_optim fm_optim;

/* State buffers sized for p; adding parameters afterwards is an error at step. */
fm_optim *fm_optim_new(fm_params *p, const fm_optim_config *cfg);
void      fm_optim_free(fm_optim *o);
/* One update with learning rate lr (from a schedule), torch.optim semantics.
 * Every parameter is updated (frozen ones too: weight decay and momentum move
 * them); keep frozen weights in a parameter set of their own. */
fm_status fm_optim_step(fm_optim *o, double lr);
int64_t   fm_optim_steps(const fm_optim *o);             /* updates taken */
const fm_optim_config *fm_optim_get_config(const fm_optim *o);

/* clip_grad_norm_: total = ||all gradients||_2 (accumulated in double); if
 * max_norm > 0 scale the gradients by min(1, max_norm / (total + 1e-6)).
 * Returns FM_ERR_NUMERIC (and leaves the gradients alone) if total is not finite. */
fm_status fm_clip_grad_norm(fm_params *p, double max_norm, double *total_norm);

/* Exponential moving average of the weights: e <- e - (1 - decay) (e - w). */
typedef struct fm_ema fm_ema;
fm_ema   *fm_ema_new(const fm_params *p, float decay);   /* starts as a copy of p */
void      fm_ema_free(fm_ema *e);
fm_status fm_ema_update(fm_ema *e, const fm_params *p);
float    *fm_ema_data(fm_ema *e);                         /* (fm_params_size) */
float     fm_ema_decay(const fm_ema *e);
/* Swap the averaged and the live weights (call twice to swap back). */
fm_status fm_ema_swap(fm_ema *e, fm_params *p);

/* Learning-rate schedules, for step = 0, 1, ... (the update about to be taken):
 * warm-up multiplies by (step + 1) / warmup while step < warmup; after it,
 * constant keeps lr, cosine goes from lr to min_lr along
 * min_lr + (lr - min_lr) (1 + cos(pi p)) / 2, p = (step - warmup) / (total - warmup),
 * and linear goes straight from lr to min_lr over the same span. */
typedef enum { FM_SCHED_CONSTANT = 0, FM_SCHED_COSINE, FM_SCHED_LINEAR, FM_SCHED_COUNT } fm_sched_kind;
typedef struct {
    fm_sched_kind kind;
    int64_t warmup;
    int64_t total;
    double min_lr;
} fm_schedule;
const char *fm_sched_name(fm_sched_kind k);
int         fm_sched_from_name(const char *name);
double      fm_schedule_lr(const fm_schedule *s, double lr, int64_t step);

/* ------------------------------------------------------------------ safetensors */

/* A whole safetensors file in memory, validated on load: header length within
 * the file, JSON well formed, every entry's dtype known, shape matching its byte
 * count, offsets in range, contiguous and non-overlapping, names unique. */
typedef struct fm_st fm_st;
#define FM_ST_MAX_DIMS 8 /* the reader's limit on a tensor's rank */

typedef enum {
    FM_DT_F64 = 0, FM_DT_F32, FM_DT_F16, FM_DT_BF16,           /* readable as float */
    FM_DT_I64, FM_DT_I32, FM_DT_I16, FM_DT_I8, FM_DT_U8, FM_DT_BOOL,
    FM_DT_U16, FM_DT_U32, FM_DT_U64, FM_DT_F8_E4M3, FM_DT_F8_E5M2,
    FM_DT_COUNT
} fm_dtype;
const char *fm_dtype_name(fm_dtype d);

fm_st     *fm_st_load(const char *path);
/* Parse a file image already in memory (the bytes are copied). name is used in messages. */
fm_st     *fm_st_parse(const void *bytes, size_t len, const char *name);
void       fm_st_free(fm_st *st);
int        fm_st_count(const fm_st *st);
/* Entry i in file order: name, dtype, rank and shape (shape may be NULL, or
 * must hold FM_ST_MAX_DIMS values). */
const char *fm_st_entry(const fm_st *st, int i, fm_dtype *dtype, int *ndim, int64_t *shape);
int        fm_st_find(const fm_st *st, const char *name);   /* -1 if absent */
/* Metadata value or NULL; fm_st_meta_count / fm_st_meta_at enumerate them. */
const char *fm_st_meta(const fm_st *st, const char *key);
int        fm_st_meta_count(const fm_st *st);
const char *fm_st_meta_at(const fm_st *st, int i, const char **value);
/* Read tensor name as float32 into out, which holds the product of shape.
 * The file's shape must equal (ndim, shape); F64, F16 and BF16 are converted. */
fm_status  fm_st_read(const fm_st *st, const char *name, float *out, int ndim, const int *shape);

typedef struct fm_st_writer fm_st_writer;
fm_st_writer *fm_st_writer_new(void);
void      fm_st_writer_free(fm_st_writer *w);
/* Queue an F32 tensor; data is not copied and must stay valid until save. */
fm_status fm_st_writer_add(fm_st_writer *w, const char *name, int ndim, const int *shape,
                           const float *data);
fm_status fm_st_writer_meta(fm_st_writer *w, const char *key, const char *value);
/* Write atomically: a temporary file beside path, then rename, so a failed
 * write never damages an existing file. */
fm_status fm_st_writer_save(fm_st_writer *w, const char *path);

/* Parameters, optimizer state and EMA to and from safetensors. Saving queues
 * views of the live buffers (do not free them before fm_st_writer_save).
 * Loading checks that every tensor is present with the expected shape. */
fm_status fm_params_save(fm_params *p, fm_st_writer *w, const char *prefix);
fm_status fm_params_load(fm_params *p, const fm_st *st, const char *prefix);
/* Weights written by another program (a PyTorch state_dict saved as
 * safetensors) into p, matched by name: parameter n is looked for as
 * prefix + n when prefix is given, else as n, as n without its first
 * component (net.0.weight as nn.Sequential's own 0.weight), as "model." + n or
 * as "module." + n, the scheme that finds the first parameter naming them
 * all. Shapes must match (F64, F16 and BF16 are converted) and every tensor of
 * the file must be used; FM_ERR_FORMAT names the first one missing, misshapen
 * or left over. p is unchanged on failure. */
fm_status fm_params_import(fm_params *p, const fm_st *st, const char *prefix);
fm_status fm_optim_save(fm_optim *o, fm_st_writer *w);
/* Restores state buffers and step; the optimizer must be of the saved kind. */
fm_status fm_optim_load(fm_optim *o, const fm_st *st);
/* The hyperparameters a checkpoint was trained with. */
fm_status fm_optim_config_load(fm_optim_config *c, const fm_st *st);
/* EMA weights as ema.<name>, laid out like p. */
fm_status fm_ema_save(fm_ema *e, fm_params *p, fm_st_writer *w);
fm_status fm_ema_load(fm_ema *e, fm_params *p, const fm_st *st);
/* Model configuration to metadata and back ("mlp.widths" = "64,64,64", ...). */
fm_status fm_mlp_config_save(const fm_mlp_config *c, fm_st_writer *w);
fm_status fm_mlp_config_load(fm_mlp_config *c, const fm_st *st);
/* The U-Net's: "model" = "unet", "unet.mult" = "1,2,2", "unet.base", ... */
fm_status fm_unet_config_save(const fm_unet_config *c, fm_st_writer *w);
fm_status fm_unet_config_load(fm_unet_config *c, const fm_st *st);

/* ------------------------------------------------------------------ arrays and tables */

/* Write a float32 array in NumPy's .npy format (rank 1..4, C order), atomically. */
fm_status fm_npy_write(const char *path, const float *data, int ndim, const int64_t *shape);
/* Read a .npy array of float16/32/64 or integers (either byte order; C order,
 * or Fortran order up to rank 2) as float32 in C order. *data is malloc'ed;
 * shape holds up to 4 dimensions. */
fm_status fm_npy_read(const char *path, float **data, int *ndim, int64_t *shape);

/* A numeric table: rows x cols floats, row-major, with optional column names. */
typedef struct {
    float *data;
    int rows, cols;
    char **names; /* (cols) or NULL when the file had no header */
} fm_table;
void      fm_table_free(fm_table *t);
/* Read a CSV of numbers; the first line is a header if any field is not a
 * number. Errors give the line: "data.csv:7: row has 3 fields, expected 2". */
fm_status fm_csv_read(const char *path, fm_table *t);
fm_status fm_csv_write(const char *path, const float *data, int rows, int cols, const char *const *names);
/* Points from a .npy (rank 1 or 2) or a .csv file: spec is a path ending in
 * .npy or .csv, or csv:FILE / npy:FILE (any name). The same file specs name
 * data everywhere: fm_dataset_open takes them too (rows drawn with
 * replacement), the tools read them in order. */
fm_status fm_points_read(const char *spec, fm_table *t);
/* The file a points spec names (past "csv:" / "npy:"), or NULL when spec is
 * not a file spec (a dataset name). */
const char *fm_points_file(const char *spec);

/* ------------------------------------------------------------------ IDX files (MNIST) */

/* LeCun's IDX format, as MNIST ships: two zero bytes, an element type, the
 * number of dimensions, one big-endian uint32 size per dimension, then the
 * elements in C order, big-endian. The reader takes plain or gzip-compressed
 * files (told apart by their first bytes, not by the name), rank 1 to 4, no
 * size 0, fewer than FM_IDX_MAX_COUNT elements, and exactly as many bytes of
 * data as the sizes need. */
typedef enum {
    FM_IDX_U8 = 0x08,   /* unsigned byte: MNIST's images and labels */
    FM_IDX_I8 = 0x09,
    FM_IDX_I16 = 0x0B,
    FM_IDX_I32 = 0x0C,  /* converted to float: exact up to 2^24 */
    FM_IDX_F32 = 0x0D,
    FM_IDX_F64 = 0x0E
} fm_idx_type;
#define FM_IDX_MAX_COUNT ((int64_t)1 << 31)

typedef struct {
    fm_idx_type type;          /* the file's element type */
    int ndim;                  /* 1..4 */
    int dims[FM_MAX_DIMS];     /* (ndim); MNIST images 60000 x 28 x 28, labels 60000 */
    int64_t count;             /* product of dims */
    float *data;               /* fm_idx_read: (count) values as float, else NULL */
    uint8_t *u8;               /* fm_idx_read_u8: (count) bytes as stored, else NULL */
} fm_idx;
/* Any element type, converted to float (bytes keep their values 0..255). On
 * failure *out is left empty, with nothing to free. */
fm_status fm_idx_read(const char *path, fm_idx *out);
/* Unsigned-byte files only (a quarter of the memory): other types are an error. */
fm_status fm_idx_read_u8(const char *path, fm_idx *out);
void      fm_idx_free(fm_idx *x); /* frees the buffers and zeroes *x */
/* Write unsigned bytes as an uncompressed IDX file (rank 1..4), atomically. */
fm_status fm_idx_write_u8(const char *path, int ndim, const int *dims, const uint8_t *data);

/* ------------------------------------------------------------------ PNG image grids */

#define FM_PNG_PAD 2 /* black pixels around every tile */
/* The pixel size of a grid of n images of h x w in `cols` columns (fewer if n
 * is smaller), with FM_PNG_PAD around each tile. */
fm_status fm_png_grid_size(int n, int h, int w, int cols, int *width, int *height);
/* Tile n images x (n, c, h, w; c = 1 gray or 3 RGB) row by row, `cols` to a
 * row, into a PNG written atomically. Value v becomes the byte
 * round(255 (v - lo) / (hi - lo)), clamped to 0..255; NaN is black. */
fm_status fm_png_write_grid(const char *path, const float *x, int n, int c, int h, int w, int cols, float lo, float hi);

/* ------------------------------------------------------------------ datasets */

/* A distribution to draw points from, named by a spec:
 *   "moons", "circles", "8gaussians", "checkerboard", "swissroll", "scurve",
 *   "spirals", "pinwheel" (2D), "gaussian" (any dim), each optionally with
 *   parameters, "moons:noise=0.1,scale=2", "circles:factor=0.3",
 *   "pinwheel:arms=3", "gaussian:dim=5";
 *   "csv:FILE" - the rows of a numeric CSV file, drawn with replacement;
 *   "mnist:DIR" - MNIST's training images (DIR/train-images-idx3-ubyte and
 *   train-labels-idx1-ubyte, plain or .gz), 784 pixels in [0, 1] per point,
 *   drawn with replacement; "mnist:DIR,split=test" - its test images
 *   (t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte), the same way
 *   (",split=train" is the default and the canonical spec leaves it out). */
typedef struct fm_dataset fm_dataset;
fm_dataset *fm_dataset_open(const char *spec);
void        fm_dataset_free(fm_dataset *ds);
int         fm_dataset_dim(const fm_dataset *ds);
/* Token data (discrete flow matching): the vocabulary size V, each column a
 * token in 0 .. V-1 stored as a float; 0 for real-valued data. words:FILE
 * (27: padding and a-z), checkerboard-tokens (vocab=V), mnist:DIR,binarize=1 (2). */
int         fm_dataset_vocab(const fm_dataset *ds);
/* The canonical spec with every parameter spelled out ("moons:noise=0.05,scale=1"). */
const char *fm_dataset_spec(const fm_dataset *ds);
/* n points, row-major (n, dim), in data units. A dataset keeps scratch
 * buffers: one dataset must not be sampled from two threads at once. */
fm_status   fm_dataset_sample(fm_dataset *ds, fm_rng *r, float *out, int n);
/* Rows of a CSV or image dataset (0 for generators); the CSV table itself
 * (NULL otherwise); an image dataset's labels (NULL otherwise). */
int         fm_dataset_rows(const fm_dataset *ds);
const uint8_t *fm_dataset_labels(const fm_dataset *ds);
/* fm_dataset_sample with the drawn rows' labels in labels[0 .. n) (the same
 * draws and points); FM_ERR_ARG for a dataset without labels. */
fm_status   fm_dataset_sample_labeled(fm_dataset *ds, fm_rng *r, float *out, int *labels, int n);
/* Rows first .. first + n - 1 of a CSV or image dataset, in order (not drawn),
 * into out (n, dim), data units; FM_ERR_ARG for a generator or rows past the end. */
fm_status   fm_dataset_read_rows(const fm_dataset *ds, int first, int n, float *out);
/* Uniform dequantisation of pixels x = b / 255 (b a byte, recovered by
 * rounding and clamping to 0..255): x <- (b + u) / 256 with u ~ U[0, 1) from r,
 * so a density over [0, 1) gives the bytes' probabilities by integrating over
 * their cells of side 1/256. */
void        fm_dequantize(float *x, size_t n, fm_rng *r);
/* 1 and the image shape (channels, height, width; any may be NULL) when a
 * dataset spec names images ("mnist:..."), without opening it; else 0. */
int         fm_spec_image_shape(const char *spec, int *c, int *h, int *w);
const fm_table *fm_dataset_table(const fm_dataset *ds);
/* Log-density of n points (n, dim) where the dataset has one in closed form
 * (gaussian, 8gaussians), after adding independent N(0, blur^2 I) noise (blur
 * 0: the dataset itself); FM_ERR_ARG otherwise. */
fm_status   fm_dataset_log_density(const fm_dataset *ds, const float *x, int n, double blur, double *out);
/* Built-in datasets, for listings: name of entry i (NULL past the end) and a
 * description with its default parameters into params. */
int         fm_dataset_count(void);
const char *fm_dataset_info(int i, char *params, size_t len);

/* ------------------------------------------------------------------ probability paths */

/* Every path is affine in data x1, source x0 and extra noise eps ~ N(0, I):
 *     x_t = a(t) x1 + b(t) x0 + c(t) eps,   target u_t = a' x1 + b' x0 + c' eps.
 * t = 0 is the source (noise), t = 1 the data.
 *   ot         a = t,              b = 1 - (1 - sigma_min) t        (Lipman et al.)
 *   icfm       a = t,              b = 1 - t, c = sigma             (Tong et al.)
 *   ve         a = 1,              b = s(1 - t), s(r) = smin (smax/smin)^r
 *   vp         a = alpha(1 - t),   b = sqrt(1 - alpha(1 - t)^2), alpha(r) = exp(-T(r)/2),
 *              T(r) = beta_min r + (beta_max - beta_min) r^2 / 2
 *   cosine     a = sin(pi t / 2),  b = cos(pi t / 2), c = sigma      (torchcfm's VP-CFM)
 *   poly       a = t^n,            b = 1 - t^n
 *   linear-vp  a = t,              b = sqrt(1 - t^2)
 *   sb         a = t,              b = 1 - t, c = sigma sqrt(t (1 - t))   (Brownian bridge)
 * ve, vp and linear-vp are integrated to t_end = 1 - 1e-3 by default (their
 * fields are unbounded or their noise never vanishes at t = 1); ve's source is
 * N(0, smax^2 I), i.e. b(0) times a standard normal. */
typedef enum {
    FM_PATH_OT = 0, FM_PATH_ICFM, FM_PATH_VE, FM_PATH_VP, FM_PATH_COSINE, FM_PATH_POLY, FM_PATH_LINEAR_VP,
    FM_PATH_SB, FM_PATH_SUBVP, FM_PATH_COUNT
} fm_path_kind;

typedef struct {
    fm_path_kind kind;
    double sigma_min;                  /* ot (default 0; any value >= 0: 1 keeps x0 whole to t = 1) */
    double sigma;                      /* icfm and cosine (default 0), sb (default 0.5) */
    double ve_sigma_min, ve_sigma_max; /* ve (0.01, 5) */
    double beta_min, beta_max;         /* vp and subvp (0.1, 20) */
    double exponent;                   /* poly (2), >= 1 */
    double t_end;                      /* training draws t ~ U[0, t_end]; sampling stops there */
} fm_path;

typedef struct {
    double a, da, b, db, c, dc;
} fm_path_coef;

/* "ot", "icfm", "ve", "vp", "cosine", "poly", "linear-vp", "sb", "subvp" */
const char *fm_path_name(fm_path_kind k);
int         fm_path_from_name(const char *name); /* -1 if unknown */
fm_path     fm_path_default(fm_path_kind k);
fm_status   fm_path_check(const fm_path *p);
void        fm_path_coef_at(const fm_path *p, double t, fm_path_coef *c);
/* A Gaussian path's noise scale s_t = sqrt(b_t^2 + c_t^2) and its derivative. */
void        fm_path_noise(const fm_path *p, double t, double *s, double *ds);
/* The noising SDE whose perturbation kernel is the path (source N(0, I)):
 * in diffusion time tau = 1 - t, dx = f x dtau + g dW with
 *   f = -a'/a,   g^2 = 2 s (a' s / a - s')     (' = d/dt),
 * so that E[x_tau | x1] = a x1 and Var = s^2 (Song et al.'s VE, VP and sub-VP
 * SDEs for the ve, vp and subvp paths). *f and *g2 at flow time t; a_t = 0
 * (the ot path's t = 0) gives infinities. */
void        fm_path_sde(const fm_path *p, double t, double *f, double *g2);

/* The signal-to-noise ratio a_t / s_t of a path from N(0, I) (s_t as
 * fm_path_noise; infinite where s_t = 0). It rises with t on every path. */
double      fm_path_snr(const fm_path *p, double t);
/* Its inverse: the t in [0, t_end] whose ratio is snr, in closed form for ot,
 * cosine (sigma 0), poly, linear-vp, ve and vp (flow_matching's snr_inverse),
 * by bisection for the others; a ratio outside the path's range gives the
 * nearer end. */
double      fm_path_snr_inverse(const fm_path *p, double snr);

/* What a flow's network predicts on a Gaussian path x = a x1 + s e: the
 * velocity (v), the noise e (eps: the score is -e / s) or the data x1 (x1).
 * Any of them gives the others through x:
 *   eps -> v:  v = (a'/a) x + (s' - a' s / a) e
 *   x1  -> v:  v = (s'/s) x + (a' - a s' / s) x1
 * and back by solving the same line. A denominator below 1e-4 in size (a_t at
 * the ot path's t = 0 for eps, s_t at its t = 1 for x1) is taken as 1e-4 with
 * its sign: there the prediction does not determine the velocity (a flow
 * refuses eps on a path with a_0 = 0; x1 near s_t = 0 amplifies the network's
 * error by 1 / s_t, which adaptive solvers that evaluate at t = 1 feel). */
typedef enum { FM_PREDICT_V = 0, FM_PREDICT_EPS, FM_PREDICT_X1, FM_PREDICT_COUNT } fm_predict;
const char *fm_predict_name(fm_predict k);        /* "v", "eps", "x1" */
int         fm_predict_from_name(const char *name); /* -1 if unknown */
/* out (n floats) = y, a `from` prediction at (t, x), as a `to` prediction
 * (out may alias y). */
fm_status   fm_predict_convert(const fm_path *p, double t, fm_predict from, fm_predict to, const float *x,
                               const float *y, float *out, size_t n);

/* ------------------------------------------------------------------ manifolds */

/* The unit sphere S^2 (points: unit vectors of R^3; tangent vectors: ambient
 * vectors orthogonal to the point) and the flat torus [0, 2 pi)^2 (points:
 * angle pairs; tangent vectors: angle rates). AUTO picks by the data's
 * dimension (3: sphere, 2: torus). Riemannian flow matching (method rfm)
 * regresses on the geodesic x_t = exp_{x0}(t log_{x0}(x1)). */
typedef enum { FM_MANIFOLD_AUTO = 0, FM_MANIFOLD_SPHERE, FM_MANIFOLD_TORUS, FM_MANIFOLD_COUNT } fm_manifold;
const char *fm_manifold_name(fm_manifold m);     /* "auto", "sphere", "torus" */
int fm_manifold_from_name(const char *name);     /* -1 if unknown */
int fm_manifold_dim(fm_manifold m);              /* coordinates of a point: 3, 2 (0 for auto) */
void fm_manifold_project(fm_manifold m, float *x, int n);                  /* points onto it: normalise, wrap */
void fm_manifold_tangent(fm_manifold m, const float *x, float *v, int n);  /* v onto the tangent spaces at x */
void fm_manifold_exp(fm_manifold m, const float *x, const float *v, int n, float *out);
void fm_manifold_log(fm_manifold m, const float *x, const float *y, int n, float *out);
double fm_manifold_dist(fm_manifold m, const float *x, const float *y);   /* geodesic distance of two points */
/* The geodesic from x0 to x1 at times t (n each): its points xt and velocities
 * ut; xt may be x0 (each row is read before it is written). */
void fm_manifold_geodesic(fm_manifold m, const float *x0, const float *x1, const float *t, int n, float *xt,
                          float *ut);
void fm_manifold_uniform(fm_manifold m, fm_rng *r, float *x, int n);      /* the uniform distribution */
double fm_manifold_log_volume(fm_manifold m);                              /* log 4 pi, log 4 pi^2 */
/* W2 under the geodesic distance, by an exact assignment of a[i] to b[j]. */
fm_status fm_manifold_w2(fm_manifold m, const float *a, const float *b, int n, double *w2);

/* ------------------------------------------------------------------ ODE solvers */

/* The ODE solvers. (A method with samplers of its own, DDPM's ancestral and
 * DDIM, names them itself: fm_solver_config.sampler, fm_model_sampler.) */
typedef enum {
    FM_SOLVER_EULER = 0, FM_SOLVER_MIDPOINT, FM_SOLVER_HEUN, FM_SOLVER_RK4, FM_SOLVER_DOPRI5, FM_SOLVER_HEUN3,
    FM_SOLVER_COUNT
} fm_solver_kind;

/* v = f(t, x) for a whole batch: x and v hold n floats. */
typedef fm_status (*fm_field_fn)(void *ctx, double t, const float *x, float *v, size_t n);
/* Called with the state at every grid time (k = 0 .. ngrid - 1). */
typedef fm_status (*fm_observe_fn)(void *ctx, int k, double t, const float *x, size_t n);

typedef struct {
    fm_solver_kind kind;
    double rtol, atol; /* dopri5: error per component <= atol + rtol |x| (RMS over the batch) */
    long max_steps;    /* dopri5: give up (FM_ERR_NUMERIC) after this many steps */
    const char *sampler; /* a model with samplers of its own (fm_model_sampling FM_SAMPLING_OWN):
                          * which one by name, NULL for its first; the ODE fields are then unused.
                          * A flow from N(0, I) takes fm_sde_sample's over the grid: "sde"
                          * (g_t = G s_t), "em" (the reverse SDE of fm_path_sde, g scaled by G)
                          * and "pc" (em with a Langevin corrector) */
    double noise;        /* the stochastic samplers' G: "sde" 0 is the ODE by Euler; "em" 1 is the
                          * reverse-time SDE */
    double snr;          /* "pc": the corrector's signal-to-noise ratio (0.16) */
    int corrector_steps; /* "pc": Langevin steps after each predictor step (1) */
} fm_solver_config;

typedef struct {
    long nfe;      /* function evaluations (each one a batch) */
    long steps;    /* accepted plus rejected steps */
    long rejected; /* dopri5 */
} fm_solve_stats;

/* "euler", "midpoint", "heun", "rk4", "dopri5", "heun3" */
const char      *fm_solver_name(fm_solver_kind k);
int              fm_solver_from_name(const char *name);   /* -1 if unknown */
fm_solver_config fm_solver_config_default(fm_solver_kind k); /* rtol = atol = 1e-5, 10000 steps, sampler NULL,
                                                              * noise 1, snr 0.16, 1 corrector step */
/* steps + 1 points, uniformly from t0 to t1 (the last exactly t1). */
void             fm_time_grid_uniform(double *grid, int steps, double t0, double t1);
/* Integrate x (n floats, in place) along grid (ngrid >= 2 strictly monotonic
 * times, either direction). Fixed-step methods take one step per interval:
 *   euler     x += h f(t, x)
 *   midpoint  x += h f(t + h/2, x + h/2 f(t, x))        (the tutorial's step)
 *   heun      x += h/2 (f(t, x) + f(t + h, x + h f(t, x)))
 *   heun3     Heun's third-order method: k1 = f(t, x), k2 = f(t + h/3, x + h/3 k1),
 *             k3 = f(t + 2h/3, x + 2h/3 k2), x += h (k1 + 3 k3) / 4
 *   rk4       the classical fourth-order Runge-Kutta step
 * dopri5 adapts its step between grid points (Dormand-Prince 5(4), FSAL).
 * obs (may be NULL) sees the state at every grid point. stats may be NULL. */
fm_status fm_solve(const fm_solver_config *c, fm_field_fn f, void *fctx, const double *grid, int ngrid, float *x,
                   size_t n, fm_observe_fn obs, void *octx, fm_solve_stats *stats);

/* A schedule transformation (flow_matching's ScheduleTransformedModel): the
 * field v, trained on Gaussian path `from` (source N(0, I)), as a field for
 * path `to` with the same marginals at equal signal-to-noise ratio. At time r
 * of `to`, t = fm_path_snr_inverse(from, fm_path_snr(to, r)), the scale
 * k = sbar_r / s_t (= abar_r / a_t) and
 *     vbar_r(x) = A x + B v_t(x / k),   A = k' / k,   B = k dt/dr,
 * so a sample drawn along `to` ends where one along `from` does (exactly, for
 * an exact field and solver). fm_schedule_transform_at gives t, k, A and B;
 * fm_schedule_transform_field is an fm_field_fn with ctx an
 * fm_schedule_transform. Where `to`'s ratio leaves `from`'s range, t stops at
 * from's end (the field is extrapolated there). */
typedef struct {
    const fm_path *from, *to;
    fm_field_fn v;
    void *ctx;
} fm_schedule_transform;
void      fm_schedule_transform_at(const fm_path *from, const fm_path *to, double r, double *t, double *k, double *A,
                                   double *B);
fm_status fm_schedule_transform_field(void *ctx, double r, const float *x, float *v, size_t n);

/* Stochastic sampling with a flow's marginals on Gaussian path p (source
 * N(0, I)): Euler-Maruyama over the grid on
 *     dx = (v + g^2/2 score) dt + g dW,   score = (a' x - a v) / (s (a s' - a' s)),
 * the score from the velocity v (ctx's field) and the path. The diffusion:
 *   FM_DIFFUSION_SCALED  g_t = G s_t: bounded everywhere; G = 0 is Euler on the ODE
 *   FM_DIFFUSION_PATH    g_t = G g_path(t) of fm_path_sde: G = 1 is the
 *                        reverse-time SDE of score-based models (Song et al.),
 *                        drift 2 v - (a'/a) x; needs a_t > 0 on the grid
 * With corrector_steps > 0, each predictor step is followed by that many
 * Langevin steps at the new time, x += e score + sqrt(2 e) z with
 * e = 2 alpha (snr |z| / |score|)^2, |.| the mean over the n points of each
 * point's norm over its d values (Song et al.'s step; it depends on the
 * batch), alpha = (a_k / a_k+1)^2 (1 on ve): the predictor-corrector sampler.
 * x holds n points of d values (the state at grid[0]); r gives the noise, in
 * order. obs (may be NULL) sees the state at every grid time. */
typedef enum { FM_DIFFUSION_SCALED = 0, FM_DIFFUSION_PATH } fm_diffusion;
typedef struct {
    fm_diffusion diffusion;
    double noise;        /* G */
    int corrector_steps; /* 0: Euler-Maruyama alone */
    double snr;          /* the corrector's signal-to-noise ratio (Song et al.: 0.16) */
} fm_sde_config;
fm_status   fm_sde_sample(const fm_path *p, const fm_sde_config *c, fm_field_fn v, void *ctx, const double *grid,
                          int ngrid, float *x, int n, int d, fm_rng *r, fm_observe_fn obs, void *octx,
                          fm_solve_stats *st);
/* EDM's grid (Karras et al. 2022) on path p: steps + 1 times from t0 to t1
 * whose noise-to-signal ratios s_t / a_t follow the rho schedule
 *   sigma_i = (smax^(1/rho) + i / N (smin^(1/rho) - smax^(1/rho)))^rho
 * from smax = min(80, ratio at t0) down to smin = max(0.002, ratio at t1).
 * Where the ratio at t1 is below 0.002 (the ot path's 0 at t = 1) N = steps - 1
 * and, as in EDM, a last step goes from 0.002 to t1; otherwise N = steps. The
 * first time is t0 and the last t1. rho 7 is EDM's; rho = 1 spaces the ratio
 * evenly. */
fm_status   fm_time_grid_edm(const fm_path *p, double *grid, int steps, double t0, double t1, double rho);

/* ------------------------------------------------------------------ methods */

/* The generative models flowmatch trains: flow matching, and the models it grew
 * out of as baselines measured on the same data. */
typedef enum { FM_METHOD_FM = 0, FM_METHOD_DDPM, FM_METHOD_VAE, FM_METHOD_GAN, FM_METHOD_COUNT } fm_method;
const char *fm_method_name(fm_method m);           /* "fm", "ddpm", "vae", "gan" */
int         fm_method_from_name(const char *name);  /* -1 if unknown */
/* Methods are a registry: how many, and a one-line description of each. */
int         fm_method_count(void);
const char *fm_method_summary(fm_method m);         /* NULL if unknown */
/* 1 if training method m takes the option (a `flowmatch train` flag without
 * "--") that only some methods take; *known (may be NULL) receives whether any
 * method takes it, so an option no method claims is everyone's. */
int         fm_method_takes_option(fm_method m, const char *option, int *known);
/* Settings of a method's own, beyond fm_train_config's shared fields, given
 * as text (`flowmatch train --NAME VALUE` lists and parses them from here):
 * the name of method m's setting i (NULL past the last), its metavar, a
 * one-line help, and its default as text into def (cap bytes; may be NULL). */
const char *fm_method_setting(fm_method m, int i, const char **metavar, const char **help, char *def, size_t cap);
/* Name of method m's own sampler i (DDPM: "ancestral", "ddim"), NULL past the last. */
const char *fm_method_sampler(fm_method m, int i);

/* ------------------------------------------------------------------ diffusion (DDPM) */

/* In diffusion's own time step t = 1..T runs from data towards noise:
 *   beta_t = beta_start + (beta_end - beta_start) (t - 1) / (T - 1),
 *   abar_t = prod_{s <= t} (1 - beta_s),  q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I).
 * A DDPM network predicts the noise eps of x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps
 * from (t / T, x_t). */
typedef struct {
    int T;
    double beta_start, beta_end;
} fm_ddpm_schedule;

fm_ddpm_schedule fm_ddpm_schedule_default(void);   /* T = 1000, beta 1e-4 .. 0.02 */
fm_status        fm_ddpm_check(const fm_ddpm_schedule *s);
/* beta[t] and abar[t] for t = 0..T (beta[0] = 0, abar[0] = 1), in double. */
void             fm_ddpm_tables(const fm_ddpm_schedule *s, double *beta, double *abar);
/* eps (n, d) predicted for x (n, d) at step t in 1..T. */
typedef fm_status (*fm_eps_fn)(void *ctx, int t, const float *x, float *eps, int n, int d);
/* DDPM's own samplers (not ODE solvers). */
typedef enum { FM_DDPM_ANCESTRAL = 0, FM_DDPM_DDIM, FM_DDPM_SAMPLER_COUNT } fm_ddpm_sampler;
const char *fm_ddpm_sampler_name(fm_ddpm_sampler k);      /* "ancestral", "ddim" */
int         fm_ddpm_sampler_from_name(const char *name);  /* -1 if unknown */
/* The reverse process on x (n, d): x_T on entry, x_0 on return, in `steps`
 * steps through t_i = round(i T / steps), i = steps .. 1, with t_0 = 0:
 *   ancestral  x <- (x - b / sqrt(1 - abar_t) eps) / sqrt(1 - b) + sqrt(b) z,
 *              b = 1 - abar_t / abar_prev, z ~ N(0, I) from r; with steps = T,
 *              b = beta_t and this is the reference's step, noise on every
 *              step; a respaced chain (steps < T) takes z = 0 on its last
 *              step, whose b is not small (the DDPM paper's z = 0 at t = 1)
 *   ddim       x <- sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps,
 *              x0 = (x - sqrt(1 - abar_t) eps) / sqrt(abar_t)   (deterministic)
 * obs sees every state (k = 0 .. steps) with flow-matching time 1 - t_i / T
 * (0 = noise, 1 = data). */
fm_status fm_ddpm_sample(const fm_ddpm_schedule *s, fm_eps_fn f, void *fctx, fm_ddpm_sampler kind, int steps,
                         fm_rng *r, float *x, int n, int d, fm_observe_fn obs, void *octx);

/* ------------------------------------------------------------------ couplings */

/* How a training batch pairs source points x0 with data points x1. */
typedef enum { FM_COUPLING_INDEPENDENT = 0, FM_COUPLING_OT, FM_COUPLING_SB, FM_COUPLING_COUNT } fm_coupling;
const char *fm_coupling_name(fm_coupling c);        /* "independent", "ot", "sb" */
int         fm_coupling_from_name(const char *name);
/* Minibatch OT: match[i] = the data point paired with source point i, by the
 * exact assignment minimising sum |x0_i - x1_match(i)|^2 (no point repeated). */
fm_status fm_ot_pairing(const float *x0, const float *x1, int n, int d, int *match);
/* The entropic OT plan between the two batches: P (n x n, double) minimising
 * <P, C> - eps H(P) with C_ij = |x0_i - x1_j|^2 and every row and column
 * summing to 1/n, by Sinkhorn's iterations in log space and double precision
 * with eps annealed from max C down to eps (epsilon scaling; below 1e-3 max C
 * from the exact matching's dual prices instead), then at eps, with Newton
 * steps on the semi-dual for up to 512 points where Sinkhorn crawls, until
 * the column sums are within tol (L1, the plan's mass being 1) or max_iter
 * iterations in all (a Newton step counts as one). Non-finite points are
 * refused. Below eps = 1e-9 max C the plan is its
 * eps -> 0 limit, the exact OT matching (P_i,match(i) = 1/n), with 0
 * iterations. err (may be NULL) receives the larger L1 error of the row and
 * column sums, measured on the plan returned; iters (may be NULL) the
 * iterations taken, or -1 when err exceeds tol (the plan is as it stands). */
fm_status fm_sinkhorn_plan(const float *x0, const float *x1, int n, int d, double eps, int max_iter, double tol,
                           double *plan, int *iters, double *err);
/* n pairs (i_out[k], j_out[k]) drawn with replacement from fm_sinkhorn_plan's
 * plan (as torchcfm's OTPlanSampler draws them); iters as there. */
fm_status fm_sinkhorn_pairs(const float *x0, const float *x1, int n, int d, double eps, int max_iter, double tol,
                            fm_rng *r, int *i_out, int *j_out, int *iters);

/* ------------------------------------------------------------------ a training batch */

/* One flow-matching training batch from the trainer's own pieces (torchcfm's
 * sample_location_and_conditional_flow, with return_noise and its labelled
 * variant), for a training loop of your own or to check one. The trainer
 * draws its times and noise from streams of their own; here one stream r
 * gives everything:
 *   1. x0 and x1 (n, d; source and data points) are re-paired in place by
 *      coupling c: ot permutes x1 to the exact OT matching of x0 (each point
 *      used once, where torchcfm redraws with replacement); sb replaces both
 *      by n pairs drawn with replacement from the entropic plan with
 *      regularisation 2 sigma^2 (p the sb path, sigma > 0); independent
 *      leaves them. y0 and y1 (n, may be NULL) are labels that travel with
 *      their points.
 *   2. t (n): unless t_given, drawn uniformly in (0, t_end) from r; given
 *      times must lie in [0, t_end] where the path's coefficients are finite
 *      (not sb's ends, nor t = 1 on vp and linear-vp).
 *   3. eps (n, d): N(0, I) from r where the path adds noise (c != 0), else
 *      zeros (eps may then be NULL).
 *   4. xt = a x1 + b x0 + c eps and the target ut = a' x1 + b' x0 + c' eps.
 * Every draw comes from r in that order: one seed reproduces the batch. */
typedef struct {
    float *x0, *x1; /* (n, d) in: the points; out: as paired */
    int *y0, *y1;   /* (n) their labels, or NULL */
    float *t;       /* (n) */
    float *eps;     /* (n, d), or NULL on a path without extra noise */
    float *xt, *ut; /* (n, d) */
} fm_batch;
fm_status fm_batch_draw(const fm_path *p, fm_coupling c, fm_rng *r, int n, int d, int t_given, fm_batch *b);

/* ------------------------------------------------------------------ flows */

/* A flow: the velocity network v(t, x), its probability path, the source its
 * noise comes from, and (for CSV data) the standardisation of the data. The
 * network works on standardised data; samples come back in data units.
 * A DDPM model is the same object with method FM_METHOD_DDPM: its network
 * predicts noise from (t / T, x_t); it samples through fm_model_sample with
 * its own samplers (fm_flow_sample, the ODE sampler, refuses it). */
typedef struct {
    int dim;              /* data dimension */
    fm_arch arch;         /* the network: an MLP (default) or a U-Net (image data) */
    fm_mlp_config net;    /* MLP: in_dim, out_dim and time_input are set from dim */
    fm_unet_config unet;  /* U-Net: in_ch height width must equal dim; the flow's
                           * points stay flat (B, dim) and are seen as images inside */
    fm_path path;
    const char *data;     /* dataset spec it was trained on (informational) */
    const char *source;   /* "gaussian" (N(0, I)) or a dataset spec */
    fm_method method;     /* FM_METHOD_FM (a velocity) or FM_METHOD_DDPM (a noise predictor) */
    fm_ddpm_schedule ddpm; /* DDPM's schedule (its source is N(0, I); path is unused) */
    fm_predict predict;   /* FM_METHOD_FM: what the network predicts (v; eps needs a path with
                           * a_0 > 0, eps and x1 a path without extra noise); the flow's velocity
                           * converts it */
    int interval;         /* 1: the network also takes an interval h >= 0 and gives the average
                           * velocity u(x, t, h) = (x(t + h) - x(t)) / h of the flow through x at t
                           * (MeanFlow); its velocity is u(x, t, 0). Predicts v. */
} fm_flow_config;

typedef struct fm_flow fm_flow;
fm_flow   *fm_flow_new(const fm_flow_config *cfg);   /* zero weights; copies the specs */
void       fm_flow_free(fm_flow *f);
void       fm_flow_init(fm_flow *f, fm_rng *r);      /* nn.Linear's default initialisation */
const fm_flow_config *fm_flow_get_config(const fm_flow *f);
fm_params *fm_flow_params(fm_flow *f);
fm_mlp    *fm_flow_net(fm_flow *f);                 /* NULL for a U-Net */
fm_unet   *fm_flow_unet(fm_flow *f);                /* NULL for an MLP */
/* Data are standardised as (x - mean) / std per column; NULL mean turns it off. */
fm_status  fm_flow_set_standardization(fm_flow *f, const float *mean, const float *std);
int        fm_flow_standardized(const fm_flow *f, const float **mean, const float **std);
void       fm_flow_to_model(const fm_flow *f, float *x, int n);   /* data units -> network units */
void       fm_flow_to_data(const fm_flow *f, float *x, int n);    /* and back */
/* v (n, dim) = v(t, x) in network units. */
fm_status  fm_flow_velocity(fm_flow *f, double t, const float *x, float *v, int n);
/* u (n, dim) = u(x, t, h), an interval flow's average velocity over [t, t + h]
 * in network units (h = 0: fm_flow_velocity; a flow without the interval
 * input takes only h = 0). */
fm_status  fm_flow_average_velocity(fm_flow *f, double t, double h, const float *x, float *u, int n);
/* fm_field_fn over a flow (ctx is the fm_flow). */
fm_status  fm_flow_field(void *flow, double t, const float *x, float *v, size_t n);
/* Classes of a class-conditional flow (its U-Net's num_classes), else 0. */
int        fm_flow_num_classes(const fm_flow *f);
/* The condition of every later evaluation (velocity, sampling, likelihood) of
 * a class-conditional flow on n rows: row i asks for class labels[i] (0 ..
 * K - 1, or -1: none) with classifier-free guidance
 *   v = v_uncond + w (v_cond - v_uncond),
 * w = guidance (1: the conditional network alone, one evaluation; 0: the
 * unconditional one); a DDPM model mixes its noise predictions the same way.
 * Evaluations then take exactly n rows. labels NULL (or n 0) clears it: every
 * row unconditional. The labels are copied. */
fm_status  fm_flow_set_condition(fm_flow *f, const int *labels, int n, double guidance);
/* Sample along another path than the training one (a schedule
 * transformation, fm_schedule_transform): fm_flow_sample then starts from
 * `to`'s b(0) x0 + c(0) eps and integrates the transformed field over a grid
 * of `to`'s times (to its t_end); the SDE samplers read their score from
 * `to`. Needs a velocity model (not DDPM, not MeanFlow's jumps) from
 * N(0, I), and a pair of paths whose time change stays bounded (refused:
 * poly with n > 1 to ot, whose ratios start as t^n and r, so dt/dr grows
 * like r^(1/n - 1) and multiplies the network's error near r = 0). NULL goes
 * back to the trained path. The path is copied. */
fm_status  fm_flow_set_schedule(fm_flow *f, const fm_path *to);
/* The path sampling follows: the schedule set, else the trained path. */
const fm_path *fm_flow_sampling_path(const fm_flow *f);
/* n source points x0 (before the path's b(0) scaling). */
fm_status  fm_flow_source(fm_flow *f, fm_rng *r, float *x0, int n);
/* Draw n samples into out (n, dim), data units. The ODE starts from x_start
 * (network units) when given, else from b(0) x0 + c(0) eps with x0 from the
 * source. grid: the solver's time grid, usually 0 .. path.t_end. obs sees
 * every grid state in data units. A DDPM model is refused: it samples with
 * its own samplers through fm_model_sample. */
fm_status  fm_flow_sample(fm_flow *f, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                          const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx,
                          fm_solve_stats *st);
/* Path energy (how straight the learned flow is): E = mean over n trajectories
 * of the integral of |v_t(x_t)|^2 dt along the solver's grid, in network units,
 * accumulated in double. The trajectories start from x_start (network units)
 * or from fresh source draws; x0_out and x1_out (may be NULL) receive their
 * starts (network units) and ends (data units). A flow that moves each point
 * straight and at constant speed has E = mean |x1 - x0|^2, which for an optimal
 * flow is W2^2(p0, p1): the normalised path energy |E - W2^2| / W2^2 (Tong et
 * al.) measures the excess. */
fm_status  fm_flow_path_energy(fm_flow *f, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                               const double *grid, int ngrid, float *x0_out, float *x1_out, double *energy,
                               fm_solve_stats *st);
/* A copy with its own weights (the configuration, standardisation and current
 * weights of f). */
fm_flow   *fm_flow_clone(fm_flow *f);
/* Rectified flow's pairs: n source draws x0 and the ends x1 of this model's
 * trajectories from them (started, as when sampling, at b(0) x0 + c(0) eps),
 * both in network units. A trainer on the straight ot path (sigma_min 0, which
 * starts from x0 itself) given them with fm_trainer_set_pairs learns the
 * straightened flow, whatever path this model was trained on. */
fm_status  fm_flow_make_pairs(fm_flow *f, int n, fm_rng *r, const fm_solver_config *sc, const double *grid, int ngrid,
                              float *x0, float *x1);
/* Configuration, standardisation and weights to a checkpoint, and back.
 * use_ema loads the EMA weights when the file has them. */
fm_status  fm_flow_save(fm_flow *f, fm_st_writer *w);
fm_status  fm_flow_config_load(fm_flow_config *c, const fm_st *st); /* specs point into st */
fm_flow   *fm_flow_load(const fm_st *st, int use_ema);
int        fm_flow_has_ema(const fm_st *st);

/* ------------------------------------------------------------------ VAE */

/* How the decoder scores data: a diagonal Gaussian with a learned variance per
 * dimension (real-valued data), or independent Bernoullis (data in [0, 1]). */
typedef enum { FM_VAE_GAUSSIAN = 0, FM_VAE_BERNOULLI, FM_VAE_LIKELIHOOD_COUNT } fm_vae_likelihood;
const char *fm_vae_likelihood_name(fm_vae_likelihood k);   /* "gaussian", "bernoulli" */
int         fm_vae_likelihood_from_name(const char *name);

/* Encoder: MLP dim -> width[0] .. width[nhidden-1], act after every layer, then
 * linear heads to mu and logvar (latent each). Decoder: MLP latent ->
 * width[nhidden-1] .. width[0] -> dim. PyTorch names: encoder.0.weight, ...,
 * fc_mu.*, fc_logvar.*, decoder.0.weight, ..., and dec_logvar (Gaussian). */
typedef struct {
    int dim, latent;
    int nhidden;                   /* >= 1 */
    int width[FM_MLP_MAX_LAYERS];
    fm_act act;
    fm_vae_likelihood likelihood;
    double beta;                   /* weight of the KL term */
    const char *data;              /* informational */
} fm_vae_config;
fm_vae_config fm_vae_config_default(int dim);   /* latent 2, 3 x 64 ELU, Gaussian, beta 1 */

typedef struct fm_vae fm_vae;
fm_vae    *fm_vae_new(const fm_vae_config *c);
void       fm_vae_free(fm_vae *v);
void       fm_vae_init(fm_vae *v, fm_rng *r);     /* nn.Linear's default; dec_logvar 0 */
const fm_vae_config *fm_vae_get_config(const fm_vae *v);
fm_params *fm_vae_params(fm_vae *v);
/* The loss on a batch x (B, dim; network units) with reparameterisation noise
 * eps (B, latent): z = mu + eps exp(logvar / 2), loss = (rec + beta kl) / B with
 * rec = -log p(x | z) summed (Bernoulli: BCE on the decoder's logits; Gaussian:
 * fm_gaussian_nll_loss) and kl = KL(q(z | x) || N(0, I)) summed. *rec and *kl
 * (may be NULL) receive the two sums divided by B. */
fm_tensor *fm_vae_loss(fm_tape *tp, fm_vae *v, fm_tensor *x, fm_tensor *eps, fm_tensor **rec, fm_tensor **kl);
/* Data units in and out. decode: the decoder's mean (Bernoulli: probabilities),
 * plus its Gaussian noise when r is given. */
fm_status  fm_vae_encode(fm_vae *v, const float *x, int n, float *mu, float *logvar);
fm_status  fm_vae_decode(fm_vae *v, const float *z, int n, fm_rng *r, float *x);
/* decode(mu(x)): the reconstruction's mean. */
fm_status  fm_vae_reconstruct(fm_vae *v, const float *x, int n, float *out);

/* ------------------------------------------------------------------ GAN */

/* Generator MLP latent -> width -> dim, then out_act (none, or tanh for data
 * in [-1, 1]); discriminator MLP dim -> d_width -> 1 logit. PyTorch names
 * generator.0.weight, ..., discriminator.0.weight, ... (tanh has no weights). */
typedef enum { FM_GAN_NONSATURATING = 0, FM_GAN_MINIMAX, FM_GAN_LOSS_COUNT } fm_gan_loss;
const char *fm_gan_loss_name(fm_gan_loss k);      /* "nonsaturating", "minimax" */
int         fm_gan_loss_from_name(const char *name);

typedef struct {
    int dim, latent;
    int nhidden, width[FM_MLP_MAX_LAYERS];
    fm_act act;
    fm_act out_act;                /* on the generator's output: FM_ACT_NONE or FM_ACT_TANH */
    int d_nhidden, d_width[FM_MLP_MAX_LAYERS];
    fm_act d_act;
    fm_gan_loss loss;
    const char *data;              /* informational */
} fm_gan_config;
fm_gan_config fm_gan_config_default(int dim);   /* latent 2, both 3 x 64 ELU, linear output, non-saturating */

typedef struct fm_gan fm_gan;
fm_gan    *fm_gan_new(const fm_gan_config *c);
void       fm_gan_free(fm_gan *g);
void       fm_gan_init(fm_gan *g, fm_rng *r);
const fm_gan_config *fm_gan_get_config(const fm_gan *g);
fm_params *fm_gan_generator_params(fm_gan *g);
fm_params *fm_gan_discriminator_params(fm_gan *g);
/* On a batch (network units; means over the batch, logits D):
 *   discriminator   BCE(D(x), 1) + BCE(D(G(z)), 0), i.e. -[log D(x) + log(1 - D(G(z)))]
 *   generator       non-saturating BCE(D(G(z)), 1) = -log D(G(z)),
 *                   minimax -BCE(D(G(z)), 0) = log(1 - D(G(z))).
 * Gradients reach whichever parameter sets require them. */
fm_tensor *fm_gan_d_loss(fm_tape *tp, fm_gan *g, fm_tensor *x, fm_tensor *z);
fm_tensor *fm_gan_g_loss(fm_tape *tp, fm_gan *g, fm_tensor *z);
/* G(z) for latent points z (n, latent), data units. */
fm_status  fm_gan_generate(fm_gan *g, const float *z, int n, float *out);

/* ------------------------------------------------------------------ any model */

/* A trained model of any method, as a checkpoint holds it; sample and eval use
 * it without being told the method. */
typedef struct fm_model fm_model;
/* Loads a checkpoint written by any trainer ("method" in its metadata, fm
 * when absent). use_ema takes the EMA weights when the file has them. */
fm_model  *fm_model_load(const fm_st *st, int use_ema);
void       fm_model_free(fm_model *m);
fm_method  fm_model_method(const fm_model *m);
int        fm_model_dim(const fm_model *m);
const char *fm_model_data(const fm_model *m);   /* the training data's spec */
size_t     fm_model_size(const fm_model *m);    /* trainable parameters (GAN: both networks) */
fm_flow   *fm_model_flow(fm_model *m);          /* fm, cnf, score and ddpm; NULL otherwise */
fm_vae    *fm_model_vae(fm_model *m);
fm_gan    *fm_model_gan(fm_model *m);
/* The flow inside m, which the caller then owns and frees; m itself is freed. */
fm_flow   *fm_model_take_flow(fm_model *m);
/* How a model samples: a flow integrates its ODE with an ODE solver
 * (fm_solver_config.kind) along a time grid; a model with samplers of its own
 * (DDPM: ancestral, DDIM) takes the one fm_solver_config.sampler names for
 * ngrid - 1 steps; a VAE or GAN decodes latent noise in one network pass. */
typedef enum { FM_SAMPLING_ODE = 0, FM_SAMPLING_OWN, FM_SAMPLING_DIRECT } fm_sampling;
fm_sampling fm_model_sampling(const fm_model *m);
/* Own sampler i of the model (NULL past the last, and for the other kinds),
 * with its default number of steps and the most it may take (either may be NULL). */
const char *fm_model_sampler(const fm_model *m, int i, int *steps, int *max_steps);
/* The ODE solver a flow takes when none is named (midpoint, 8 steps); for the
 * other kinds, steps receives their default steps (DDPM: its first sampler's
 * T, one pass: 1) and the solver returned is unused. */
fm_solver_kind fm_model_default_solver(const fm_model *m, int *steps);
/* Size of the starting points fm_model_sample_from takes: the data dimension
 * for flows and DDPM, the latent size for a VAE or GAN. */
int        fm_model_start_dim(const fm_model *m);
/* n samples in data units, drawing the noise from r. Flows solve their ODE
 * along grid with sc->kind (sc->sampler NULL), or take a stochastic sampler
 * ("sde", "em", "pc") along it; DDPM runs the sampler
 * sc->sampler names (NULL: ancestral) for ngrid - 1 steps; VAE and GAN decode
 * latent noise in one network evaluation (sc and grid unused, may be NULL).
 * obs sees the states of flows and DDPM. st->nfe counts network evaluations. */
fm_status  fm_model_sample(fm_model *m, int n, fm_rng *r, const fm_solver_config *sc, const double *grid, int ngrid,
                           float *out, fm_observe_fn obs, void *octx, fm_solve_stats *st);
/* The same from given starting points x_start (n rows, network units): a
 * flow's or DDPM's initial state x(0) or x_T, a VAE's or GAN's latent codes
 * (the VAE adds its decoder noise from r when r is given); NULL: fresh noise
 * from r, which is then required. */
fm_status  fm_model_sample_from(fm_model *m, int n, const float *x_start, fm_rng *r, const fm_solver_config *sc,
                                const double *grid, int ngrid, float *out, fm_observe_fn obs, void *octx,
                                fm_solve_stats *st);
const char *fm_model_method_name(const fm_model *m);  /* "fm", "ddpm", ... */
/* The vocabulary of a dfm (token) model; 0 for any other model. */
int fm_model_vocab(const fm_model *m);
/* The manifold an rfm model lives on; FM_MANIFOLD_AUTO for any other model. */
fm_manifold fm_model_manifold(const fm_model *m);
/* n samples (data units) with a sampler named as text: an ODE solver
 * ("euler" .. "dopri5"), a flow's stochastic one ("sde", "em", "pc") or a
 * method's own ("ancestral", "ddim"); NULL the model's default. steps <= 0 the
 * default count; the grid runs uniformly to the path's end (the schedule's,
 * fm_model_set_schedule). Noise from the seed's noise stream. */
fm_status  fm_model_sample_named(fm_model *m, int n, uint64_t seed, const char *solver, int steps, float *out);
/* Sample a flow-matching model along the path named (its defaults) through a
 * schedule transformation (fm_flow_set_schedule); NULL or "" returns to the
 * trained path. */
fm_status  fm_model_set_schedule(fm_model *m, const char *path);
/* log p of n points (data units): a closed-form density when the model has
 * one (nf), else a flow's by rk4 over steps (<= 0: 100) from its path's end to
 * 0, exact divergence (probes 0) or Hutchinson's with that many Rademacher
 * probes from seed. */
fm_status  fm_model_log_likelihood(fm_model *m, const float *x, int n, int steps, int probes, uint64_t seed,
                                   double *logp);

/* ------------------------------------------------------------------ CNF */

/* The training loss of a continuous normalizing flow (train --method cnf): the
 * mean negative log-likelihood of x (n, dim; network units) under flow f's
 * velocity, integrated on the tape from t = t_end back to 0 through `steps`
 * steps of fixed-step solver kind (euler, midpoint, heun, heun3, rk4) together with
 * the divergence: exact (probe NULL; d Jacobian-vector products in one pass)
 * or Hutchinson's e^T J e on probe (n, dim). fm_backward on it gives the
 * gradient of f's weights through every step (MLP flows). */
fm_tensor *fm_cnf_loss(fm_tape *tp, fm_flow *f, fm_tensor *x, fm_solver_kind kind, int steps, fm_tensor *probe);

/* ------------------------------------------------------------------ normalizing flow */

/* A normalizing flow of affine couplings (RealNVP; train --method nf): layer k
 * is an optional ActNorm y = (h + bias) exp(logs), then a coupling in which
 * the coordinates i with (i + k) even pass through (mask m) and set the
 * others' log-scale s = scale tanh(snet(m y) / scale) and shift t = tnet(m y):
 * h' = m y + (1 - m)(y exp(s) + t). snet and tnet are MLPs dim -> hidden ->
 * dim (parameters "nf.K.s.*", "nf.K.t.*", "nf.K.an.bias", "nf.K.an.logs").
 * log p(x) = log N(z; 0, I) + log|det dz/dx|, exact; samples are f^-1(z). */
typedef struct fm_nf fm_nf;
typedef struct {
    int dim;
    int layers;                     /* coupling layers, 8 (at most 64) */
    int actnorm;                    /* 1: an ActNorm before each coupling */
    double scale;                   /* the log-scale's soft bound, 2 */
    int nhidden, width[FM_MLP_MAX_LAYERS]; /* each coupling network's hidden layers */
    fm_act act;
    const char *data;               /* dataset spec (informational), copied */
} fm_nf_config;
fm_nf_config fm_nf_config_default(int dim); /* 8 layers, ActNorm, scale 2, 3 x 64 ELU */
fm_nf     *fm_nf_new(const fm_nf_config *cfg); /* zero weights */
void       fm_nf_free(fm_nf *f);
void       fm_nf_init(fm_nf *f, fm_rng *r);   /* networks as nn.Linear, their last layers zero: the identity */
const fm_nf_config *fm_nf_get_config(const fm_nf *f);
fm_params *fm_nf_params(fm_nf *f);
/* On the tape, in network units: z = f(x) for x (B, dim), and the sum over the
 * rows of log|det| into *logdet (may be NULL); the mean NLL of x. */
fm_tensor *fm_nf_forward(fm_tape *tp, fm_nf *f, fm_tensor *x, fm_tensor **logdet);
fm_tensor *fm_nf_loss(fm_tape *tp, fm_nf *f, fm_tensor *x);
/* In data units: z (n, dim; may be NULL) and log p per point (n; may be
 * NULL); log p alone; and x = f^-1(z). */
fm_status  fm_nf_transform(fm_nf *f, const float *x, int n, float *z, double *logp);
fm_status  fm_nf_log_prob(fm_nf *f, const float *x, int n, double *logp);
fm_status  fm_nf_inverse(fm_nf *f, const float *z, int n, float *x);
fm_nf     *fm_model_nf(fm_model *m);  /* the normalizing flow it holds, or NULL */
/* The log-density of n points x (data units) for a model that computes its
 * own (nf: exactly; rfm: by its ODE on the manifold); a flow's comes from
 * fm_flow_log_likelihood (an ODE solve). FM_ERR_ARG for a model without one;
 * n = 0 only asks whether it has one. fm_model_log_prob_how says how, in a
 * few words (NULL: it has none). */
fm_status  fm_model_log_prob(fm_model *m, const float *x, int n, double *logp);
const char *fm_model_log_prob_how(const fm_model *m);

/* ------------------------------------------------------------------ training */

/* How a regression on a path draws its times (scaled to (0, t_end)):
 *   uniform       U(0, 1)
 *   logit-normal  sigmoid(loc + scale n), n ~ N(0, 1) (Stable Diffusion 3: 0, 1)
 *   skewed        1 / (1 + exp(1.2 n - 1.2)), clipped to [1e-4, 1]: the
 *                 log-normal noise level of EDM, as flow_matching's image example draws it */
typedef enum { FM_TDIST_UNIFORM = 0, FM_TDIST_LOGIT_NORMAL, FM_TDIST_SKEWED, FM_TDIST_COUNT } fm_tdist;
const char *fm_tdist_name(fm_tdist k); /* "uniform", "logit-normal", "skewed" */

typedef struct {
    fm_method method;      /* what to train (default fm) */
    fm_flow_config flow;   /* data: dataset spec to train on; dim is taken from it. Its
                            * net's hidden layers and activation also shape the other
                            * methods' networks (VAE encoder and decoder, GAN generator) */
    fm_optim_config optim;
    fm_schedule sched;     /* sched.total is usually iters */
    double clip;           /* gradient-norm clipping, 0 = off */
    double ema_decay;      /* EMA of the weights, 0 = off */
    int batch;
    int64_t iters;
    uint64_t seed;
    int standardize;       /* -1 (default): CSV columns by their moments, image pixels [0, 1] -> [-1, 1]; 0: never; 1: always */
    fm_coupling coupling;  /* pairing of x0 and x1 in each batch; sb needs the sb path */
    int dequantize;        /* image data: pixel bytes b = 255 x spread uniformly over
                            * [b / 256, (b + 1) / 256) in every batch (for likelihoods
                            * in bits per dimension); 0 = off */
    double label_dropout;  /* class-conditional U-Net (flow.unet.num_classes > 0, or -1:
                            * as many as the data's labels): each training label is
                            * replaced by "no label" with this probability (0.1), which
                            * trains the unconditional model classifier-free guidance
                            * needs */
    struct {
        int latent;                  /* 2 */
        double beta;                 /* KL weight, 1 */
        fm_vae_likelihood likelihood;
    } vae;
    struct {
        int latent;                  /* 2 */
        int k;                       /* discriminator steps per generator step, 1 */
        fm_gan_loss loss;
        fm_act out_act;              /* the generator's output: FM_ACT_NONE (linear) or FM_ACT_TANH */
        int d_nhidden, d_width[FM_MLP_MAX_LAYERS]; /* the discriminator; d_nhidden -1 copies the generator's */
        fm_optim_config d_optim;     /* its optimizer; lr 0 copies optim */
    } gan;
    struct {
        int steps;                   /* solver steps from the data back to t = 0 in each training step, 8 */
        fm_solver_kind solver;       /* a fixed-step solver: euler, midpoint, heun, heun3 or rk4 (default) */
        int hutchinson;              /* divergence: 0 exact, 1 Hutchinson's (a Rademacher probe per point,
                                      * fixed for the solve), -1 (default) exact up to 16 dimensions */
    } cnf;
    struct {
        fm_path_kind sde;            /* the SDE: FM_PATH_VE, FM_PATH_VP (default) or FM_PATH_SUBVP; its
                                      * path (with flow.path's sigmas and betas) replaces flow.path's kind */
    } score;
    struct {
        fm_tdist kind;               /* fm and score: how training draws t in (0, t_end): uniform */
        double loc, scale;           /* logit-normal: t = sigmoid(loc + scale n), n ~ N(0, 1) (0, 1) */
    } tdist;
    struct {
        int layers;                  /* affine coupling layers, 8 */
        int actnorm;                 /* an ActNorm before each coupling (data-initialised), 1 */
        double scale;                /* the log-scale's bound: s = scale tanh(raw / scale), 2 */
    } nf;
    struct {
        fm_manifold manifold;        /* rfm: sphere, torus, or auto (by the data's dimension) */
        int nll_steps;               /* rfm: rk4 steps of its likelihood's ODE, 100 */
    } rfm;
    struct {
        int source;                  /* dfm: 0 all-mask (default), 1 uniform noise over the vocabulary */
        double exponent;             /* dfm: the scheduler kappa_t = t^exponent, 2 */
        int gkl;                     /* dfm: the loss: 0 cross-entropy, 1 generalised KL (default) */
        double corrector;            /* dfm: weight of the divergence-free term when sampling, 0 */
        int elbo_samples;            /* dfm: times per sequence of its ELBO (nll), 64 */
    } dfm;
    struct {
        double ratio;                /* meanflow: share of training intervals h > 0, 0.75 */
        double weight_p, weight_c;   /* meanflow: adaptive weight 1 / (|error|^2 + c)^p: 0.5, 1e-3 */
        int split;                   /* meanflow: 0 the JVP target (default), 1 SplitMeanFlow's */
    } meanflow;
} fm_train_config;

/* The tutorial's run: moons, 3x64 ELU, OT path (sigma_min 0), Adam 1e-2,
 * batch 256, 10,000 iterations, seed 0; for the other methods DDPM's default
 * schedule, latent 2, beta 1, Gaussian decoder, k 1, non-saturating loss. */
fm_train_config fm_train_config_default(void);
/* The defaults for method m: the above, with the optimizer each baseline
 * trains well with on the 2D sets: Adam 1e-3 for the VAE, Adam 2e-4 with
 * beta1 0.5 for the GAN (DCGAN's); flows and DDPM keep 1e-2. A method for
 * other data names its own (flow.data): rfm torus-mix, dfm
 * checkerboard-tokens. */
fm_train_config fm_train_config_for(fm_method m);
/* The same fitted to the data spec names (flow.data = spec): on image data
 * ("mnist:...") the VAE is the tutorial's, 784 -> 400 ReLU -> latent 20 ->
 * 400 ReLU -> 784 with the Bernoulli likelihood on the [0, 1] pixels, and the
 * GAN has latent 64, 2 x 256 ELU layers in each network and a tanh output (the
 * pixels are standardised to [-1, 1]), and flows and DDPM take Adam 1e-3 and
 * (with the MLP) 3 x 512 SiLU layers; everything else is
 * fm_train_config_for(m)'s. */
fm_train_config fm_train_config_for_data(fm_method m, const char *spec);
/* Set c->method's own setting name (fm_method_setting) from the text value
 * (FM_ERR_ARG naming the setting and value when either is not valid for that
 * method). */
fm_status       fm_train_config_set(fm_train_config *c, const char *name, const char *value);
/* For bindings and short programs: a configuration on the heap (method by
 * name, NULL "fm"; data a dataset spec, kept in a copy; the method's defaults
 * for that data), set by the train command's option names as text: iters,
 * batch, seed, lr, ema, clip, warmup, min-lr, schedule, width, depth, act,
 * time-embed, arch, channels, path, sigma-min, sigma, t-end, ve-sigma-min,
 * ve-sigma-max, beta-min, beta-max, exponent, coupling, standardize
 * (auto|on|off), dequantize (0|1), T, beta-start, beta-end (DDPM), latent,
 * kl-weight (VAE, GAN), and the method's own settings
 * (fm_train_config_set). FM_ERR_ARG names a bad name or value. */
fm_train_config *fm_train_config_new(const char *method, const char *data);
void             fm_train_config_free(fm_train_config *c);
fm_status        fm_train_config_set_option(fm_train_config *c, const char *name, const char *value);

/* One training batch (fm_batch_draw) on c's path and coupling (its
 * "path", "sigma", "coupling", ... options), every draw from seed's noise
 * stream: for bindings, which then mirror no struct. */
fm_status        fm_train_config_batch(const fm_train_config *c, uint64_t seed, int n, int d, int t_given, float *x0,
                                       float *x1, float *t, float *eps, float *xt, float *ut);

typedef struct fm_trainer fm_trainer;
fm_trainer *fm_trainer_new(const fm_train_config *cfg);
/* Continue a checkpoint written by fm_trainer_save; iters > 0 sets a new total. */
fm_trainer *fm_trainer_resume(const char *path, int64_t iters);
void        fm_trainer_free(fm_trainer *tr);
/* One iteration. loss: the regression loss (fm, ddpm), the negative ELBO per
 * point (vae), or the discriminator's loss (gan; the parts give both). A
 * non-finite loss or gradient returns FM_ERR_NUMERIC before the weights change. */
fm_status   fm_trainer_step(fm_trainer *tr, double *loss);
int64_t     fm_trainer_iter(const fm_trainer *tr);       /* iterations done */
double      fm_trainer_lr(const fm_trainer *tr);         /* learning rate of the next step */
fm_flow    *fm_trainer_flow(fm_trainer *tr);              /* fm and ddpm; NULL otherwise */
fm_model   *fm_trainer_model(fm_trainer *tr);             /* the model being trained */
/* What is being trained, in a few words for a progress report ("flow matching
 * gaussian -> moons, path ot", "VAE on moons, latent 2, ..."), into buf. */
void        fm_trainer_describe(const fm_trainer *tr, char *buf, size_t len);
/* The parts of the last step's loss: VAE "rec" and "kl" (per point), GAN "d"
 * and "g"; none for fm and ddpm. Returns how many (at most 4). */
int         fm_trainer_loss_parts(const fm_trainer *tr, const char **names, double *values);
fm_ema     *fm_trainer_ema(fm_trainer *tr);              /* NULL without EMA (GAN: the generator's) */
const fm_train_config *fm_trainer_get_config(const fm_trainer *tr);
/* Everything needed to sample or to resume, atomically. */
fm_status   fm_trainer_save(fm_trainer *tr, const char *path);
/* Train on fixed pairs (x0_i, x1_i) in network units instead of drawing data
 * and source (rectified flow): batches draw pairs uniformly with replacement.
 * The pairs are copied. Such a checkpoint cannot be resumed. */
fm_status   fm_trainer_set_pairs(fm_trainer *tr, const float *x0, const float *x1, int n);
/* The same for a class-conditional model: pair i is of class labels[i] (0 ..
 * K - 1), dropped to "none" with the label-dropout probability as data are. */
fm_status   fm_trainer_set_labeled_pairs(fm_trainer *tr, const float *x0, const float *x1, const int *labels, int n);
/* Start from another flow's weights (and standardisation); the models must
 * have the same shape. */
fm_status   fm_trainer_init_from(fm_trainer *tr, fm_flow *from);
/* Batches so far (this session) whose Sinkhorn plan (sb coupling) missed its
 * tolerance within FM_SINKHORN_MAX_ITER iterations: a small sigma makes the
 * entropic problem slow to converge. */
#define FM_SINKHORN_MAX_ITER 1000
int64_t     fm_trainer_unconverged(const fm_trainer *tr);

/* ------------------------------------------------------------------ likelihood */

/* A field with vector-Jacobian products: v (n, d) = v(t, x), and for each of
 * the k cotangents e (k, n, d), u_k = e_k^T dv/dx row by row (u: (k, n, d)). */
typedef fm_status (*fm_vjp_fn)(void *ctx, double t, const float *x, int n, int d, const float *e, int k, float *v,
                               float *u);
/* log-density at t = 0 of n points (n, d) into out (n). */
typedef fm_status (*fm_logp0_fn)(void *ctx, const float *x0, int n, int d, double *out);

typedef enum { FM_DIV_EXACT = 0, FM_DIV_HUTCH_RADEMACHER, FM_DIV_HUTCH_GAUSSIAN, FM_DIV_COUNT } fm_div_kind;
const char *fm_div_name(fm_div_kind k); /* "exact", "rademacher", "gaussian" */

typedef struct {
    fm_solver_config solver;
    const double *grid; /* from the points' time down to 0 */
    int ngrid;
    fm_div_kind div;
    int probes;         /* Hutchinson: probes, fixed for the solve */
    uint64_t seed;      /* Hutchinson: their random stream */
} fm_nll_config;

/* log p(x) for n points (n, d) at time grid[0] > 0: the ODE is integrated to
 * grid[ngrid - 1], which must be 0, with the log-density change dl/dt = div v
 * accumulated in double, then log p0 is added. se (may be NULL) receives Hutchinson's standard
 * error per point (the spread of the probes' estimates), 0 for exact. */
fm_status fm_log_likelihood(fm_vjp_fn f, void *fctx, fm_logp0_fn p0, void *pctx, const float *x, int n, int d,
                            const fm_nll_config *c, double *logp, double *se, fm_solve_stats *st);
/* The same for a flow: x in data units, log-density of the data distribution
 * (standardisation included) at time grid[0], usually the path's end time.
 * The source must have a density ("gaussian", or a dataset with one: gaussian,
 * 8gaussians with noise); that is checked before the solve. */
fm_status fm_flow_log_likelihood(fm_flow *f, const float *x, int n, const fm_nll_config *c, double *logp, double *se,
                                 fm_solve_stats *st);
/* fm_vjp_fn over a flow (ctx is the fm_flow), in network units. */
fm_status fm_flow_vjp(void *flow, double t, const float *x, int n, int d, const float *e, int k, float *v, float *u);

/* ------------------------------------------------------------------ evaluation */

/* Costs of row i: out[k] = c(i, cols[k]) for k < ncols, or c(i, k) when cols is NULL. */
typedef void (*fm_cost_fn)(void *ctx, int i, const int *cols, int ncols, double *out);
/* Exact minimum-cost assignment of n rows to n columns (Jonker-Volgenant):
 * x[i] is row i's column; u, v (may be NULL) receive dual prices with
 * u_i + v_j <= c(i, j) and equality on the assignment; total the cost. */
fm_status fm_assignment(int n, fm_cost_fn cost, void *ctx, int *x, double *u, double *v, double *total);
/* Exact 2-Wasserstein distance between two equal-size point sets (n, d):
 * sqrt(min over matchings of mean |a_i - b_match(i)|^2). match may be NULL. */
fm_status fm_w2_exact(const float *a, const float *b, int n, int d, double *w2, int *match);
/* Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (within-sample means over i != j). */
fm_status fm_energy_distance(const float *a, int na, const float *b, int nb, int d, double *out);
/* Unbiased squared MMD with k(x, y) = exp(-|x - y|^2 / (2 h^2)); bandwidth <= 0
 * takes the median pairwise distance of the pooled samples (first 500 of
 * each). used receives the bandwidth. */
fm_status fm_mmd_gaussian(const float *a, int na, const float *b, int nb, int d, double bandwidth, double *mmd2,
                          double *used);

/* Frechet distance between Gaussians fitted to two feature sets (a: na x d,
 * b: nb x d; means, and covariances divided by n - 1, in double):
 * |mu_a - mu_b|^2 + tr(Sa + Sb - 2 (Sa^1/2 Sb Sa^1/2)^1/2), the squared
 * 2-Wasserstein distance of the two Gaussians; with a classifier's features
 * this is the Frechet distance image generators are scored by. */
fm_status fm_frechet_distance(const float *a, int na, const float *b, int nb, int d, double *out);
/* The same from given means (d) and symmetric covariances (d x d, row-major). */
fm_status fm_frechet_gaussians(const double *mu_a, const double *sa, const double *mu_b, const double *sb, int d,
                               double *out);

/* ------------------------------------------------------------------ image classifier */

/* A small convolutional classifier of images (MNIST digits by default): the
 * feature extractor of the image metrics, a generator's Frechet distance in
 * its features and the accuracy of class-conditional samples. On x
 * (B, in_ch, H, W), or flat (B, in_ch H W):
 *   h = avg_pool2d(act(conv1(x)), 2)       3x3 padded by 1, in_ch -> ch1
 *   h = avg_pool2d(act(conv2(h)), 2)       3x3 padded by 1, ch1 -> ch2
 *   f = act(fc1(flatten(h)))               ch2 (H / 4) (W / 4) -> hidden: the features
 *   logits = fc2(f)                        hidden -> classes
 * with act ReLU by default, flattened in NCHW order as torch.flatten. The parameter names are those of
 * a PyTorch module with nn.Conv2d attributes conv1, conv2 and nn.Linear
 * attributes fc1, fc2: conv1.weight, conv1.bias, conv2.*, fc1.*, fc2.*. */
#define FM_CLASSIFIER_MAX_CLASSES 256
typedef struct {
    int in_ch, height, width;   /* image shape; height and width divisible by 4 */
    int ch1, ch2;               /* convolution channels */
    int hidden;                 /* features */
    int classes;                /* 2 .. FM_CLASSIFIER_MAX_CLASSES */
    fm_act act;                 /* after each convolution and fc1 */
} fm_classifier_config;
/* MNIST digits: 1 x 28 x 28, channels 32 and 64, 128 features, 10 classes,
 * ReLU (421,642 parameters). */
fm_classifier_config fm_classifier_config_default(void);

typedef struct fm_classifier fm_classifier;
fm_classifier *fm_classifier_new(const fm_classifier_config *c);   /* zero weights */
void       fm_classifier_free(fm_classifier *c);
/* PyTorch's defaults (fm_init_linear) for conv1, conv2, fc1, fc2 in this order. */
void       fm_classifier_init(fm_classifier *c, fm_rng *r);
const fm_classifier_config *fm_classifier_get_config(const fm_classifier *c);
const char *fm_classifier_data(const fm_classifier *c);   /* the training data's spec ("" if unknown) */
fm_params *fm_classifier_params(fm_classifier *c);
/* Logits (B, classes) of x; *features (may be NULL) receives f (B, hidden). */
fm_tensor *fm_classifier_forward(fm_tape *tp, fm_classifier *c, fm_tensor *x, fm_tensor **features);
/* Mean cross-entropy of the logits against labels[0 .. B), each in [0, classes). */
fm_tensor *fm_classifier_loss(fm_tape *tp, fm_classifier *c, fm_tensor *x, const int *labels);
/* n images x (n, in_ch H W), valued as in training (MNIST: pixels in [0, 1]),
 * in chunks over the threads, with the same bits for any thread count: the
 * logits (n, classes) and the predicted classes pred (n), the first largest
 * logit; either may be NULL. */
fm_status  fm_classifier_predict(fm_classifier *c, const float *x, int n, float *logits, int *pred);
/* The features f (n, hidden) of n images. */
fm_status  fm_classifier_features(fm_classifier *c, const float *x, int n, float *features);
/* The configuration as metadata ("model" = "classifier", "classifier.in_ch",
 * ".height", ".width", ".channels" = "32,64", ".hidden", ".classes", ".act", ".data")
 * and the weights under their names; and back (a checkpoint of another model
 * is an FM_ERR_FORMAT error that says what it holds). */
fm_status  fm_classifier_save(fm_classifier *c, fm_st_writer *w);
fm_classifier *fm_classifier_load(const fm_st *st);

/* A set of images (a generator's samples, say) scored by a classifier. */
typedef struct {
    int n;                /* images scored */
    long clamped;         /* their pixel values outside [0, 1], clamped before the classifier */
    double frechet;       /* Frechet distance between their features and a reference set's; NaN without one */
    int correct;          /* images classified as the label they were asked for */
    double accuracy;      /* correct / n; NaN without labels */
    int counts[FM_CLASSIFIER_MAX_CLASSES]; /* images predicted as each class */
} fm_image_scores;
/* x (n, in_ch H W): pixel values, clamped to [0, 1] (a NaN or infinite value
 * is an FM_ERR_NUMERIC error); labels (n): the class each image was asked to
 * show, or NULL; ref (nref, in_ch H W): real images for the Frechet distance
 * (fm_frechet_distance of the features), or NULL. The distance needs n and
 * nref of at least 2. */
fm_status fm_classifier_score(fm_classifier *c, const float *x, int n, const int *labels, const float *ref, int nref,
                              fm_image_scores *out);

/* Training on labelled images: Adam on the mean cross-entropy of batches
 * taken through the training images in a fresh shuffled order every epoch
 * (the seed's data stream), each image moved by a random shift of up to
 * `shift` pixels along each axis, zeros coming in at the edges, and with
 * dropout on the features (both from the noise stream). One tape holds the whole batch; its convolutions and products
 * spread over the threads with the same bits for any count, so a run gives
 * the same weights on any number of threads. */
typedef struct {
    fm_classifier_config net;
    const char *data;          /* labelled images: "mnist:DIR" */
    fm_optim_config optim;     /* Adam, lr 2e-3 */
    fm_schedule sched;         /* cosine to 0; sched.total is usually iters */
    int batch;                 /* 64 */
    int64_t iters;             /* 1500 (for the caller's loop) */
    uint64_t seed;             /* 0 */
    int shift;                 /* 2 pixels; 0: none */
    double dropout;            /* dropout probability on the features before fc2 in training; 0: none */
} fm_classifier_train_config;
fm_classifier_train_config fm_classifier_train_config_default(void);

typedef struct fm_classifier_trainer fm_classifier_trainer;
fm_classifier_trainer *fm_classifier_trainer_new(const fm_classifier_train_config *c);
void       fm_classifier_trainer_free(fm_classifier_trainer *tr);
/* One step. loss: the batch's mean cross-entropy; acc: the fraction of the
 * batch it classified right before the update (either may be NULL). A
 * non-finite loss or gradient is FM_ERR_NUMERIC before the weights change. */
fm_status  fm_classifier_trainer_step(fm_classifier_trainer *tr, double *loss, double *acc);
int64_t    fm_classifier_trainer_iter(const fm_classifier_trainer *tr);   /* steps done */
double     fm_classifier_trainer_lr(const fm_classifier_trainer *tr);     /* learning rate of the next step */
fm_classifier *fm_classifier_trainer_model(fm_classifier_trainer *tr);    /* the trainer's own */
const fm_classifier_train_config *fm_classifier_trainer_get_config(const fm_classifier_trainer *tr);
/* The model (fm_classifier_save) and the training settings ("train.*") to w. */
fm_status  fm_classifier_trainer_save(fm_classifier_trainer *tr, fm_st_writer *w);

/* ------------------------------------------------------------------ figures (SVG) */

/* nframes panels side by side, frame f showing frames[f] (n points of d dims,
 * first two drawn) titled titles[f], axes fixed to [-range, range]. */
fm_status fm_svg_panels(const char *path, const float *frames, const char *const *titles, int nframes, int n, int d,
                        double range);
/* The same titled "t = %.2f" with times[f] (at most 64 frames). */
fm_status fm_svg_trajectory(const char *path, const float *frames, const double *times, int nframes, int n, int d,
                            double range);
/* Two point clouds in one panel with a legend; range <= 0 picks one to fit. */
fm_status fm_svg_scatter(const char *path, const char *title, const float *a, int na, const char *la, const float *b,
                         int nb, const char *lb, int d, double range);
/* A heat map of exp(logp) on a G x G grid over [lo, hi]^2 (row i at
 * y = lo + (i + 0.5)(hi - lo)/G, column j likewise in x), beside the points. */
fm_status fm_svg_density(const char *path, const char *title, const double *logp, int G, double lo, double hi,
                         const float *pts, int n, int d);
/* Points on the sphere or the torus as maps, one panel each: the density
 * logp on the grid of fm_map_grid (G rows; NULL: none), then a (na points;
 * red) and b (nb; blue; either may be NULL). The sphere in longitude and
 * latitude (equirectangular, degrees), the torus in its two angles. */
fm_status fm_svg_map(const char *path, fm_manifold m, const char *title, const float *a, int na, const char *la,
                     const float *b, int nb, const char *lb, const double *logp, int G);
/* The map's density grid: G rows of latitude x 2G of longitude on the sphere
 * (cell centres, as unit vectors), G x G angle pairs on the torus; row-major,
 * from the bottom row. pts holds G * 2G * 3 or G * G * 2 floats. */
void fm_map_grid(fm_manifold m, int G, float *pts);
/* Loss per iteration on a log scale, raw and smoothed. */
fm_status fm_svg_loss(const char *path, const float *loss, int n, const char *title);

/* ------------------------------------------------------------------ threads */

/* Threads used by the engine's parallel loops (1 without OpenMP). n <= 0 means
 * all available. The kernels and sampling give identical bits for any count;
 * training splits each batch across the threads, so its results are identical
 * for the same seed and thread count. */
void fm_set_threads(int n);
int  fm_get_threads(void);

/* ------------------------------------------------------------------ ranks (Open MPI) */

/* Data-parallel work over the processes of an MPI job (mpirun -np N). A
 * trainer's batch is cut into shards, as for threads, but over N x T workers
 * (N ranks of fm_get_threads() = T threads each, the same T on every rank):
 * each rank computes its run of shards, the gradients are added in shard
 * order and every rank takes the same optimizer step, so N ranks of T threads
 * give the bits of one process of N x T threads. Every rank draws the whole
 * batch (data, times, noise, couplings) from the same streams and computes
 * only its rows; an OT coupling thus pairs the whole batch, as in one process.
 * Model evaluations over many rows (sampling, likelihoods, classifier scores)
 * split their chunks over the ranks and gather the rows in order.
 * Once fm_dist_init has started MPI, fm_trainer_new, fm_trainer_resume,
 * fm_trainer_step and every call that evaluates a model on many rows are
 * collective: all ranks make them, in the same order, with the same
 * arguments. The parameters' hash is compared across ranks at the first step
 * and every 100 (FM_ERR_STATE when they differ). Every exchange waits at most
 * fm_dist_set_timeout seconds (600 by default) for the other ranks; after a
 * failed exchange the job cannot go on (fm_dist_finalize says so; end it with
 * fm_dist_abort).
 *
 * fm_dist_init starts MPI when the process was launched as one of several
 * ranks (mpirun sets OMPI_COMM_WORLD_SIZE) and does nothing otherwise; in a
 * build without MPI a launch as several ranks is FM_ERR_ARG. */
fm_status fm_dist_init(int *argc, char ***argv);
fm_status fm_dist_finalize(void);
void fm_dist_abort(int code);
int  fm_dist_available(void); /* built with MPI */
int  fm_dist_rank(void);      /* 0 in one process */
int  fm_dist_size(void);      /* 1 in one process */
void fm_dist_set_timeout(double seconds);
/* The payload bytes this rank has sent to the others so far (what a
 * collective delivers to each other rank counts once per rank). */
uint64_t fm_dist_bytes_sent(void);
/* Collective: the first failing rank's status on every rank (FM_OK when none
 * failed), its message in fm_last_error ("rank r: ..."). */
fm_status fm_dist_agree(fm_status mine);
/* Collective: the lowest rank's nonzero code (0 when every rank gives 0),
 * and into buf (len bytes) that rank's msg, "rank r: msg" when it is another
 * rank ("" when none). msg may be NULL or "". */
int fm_dist_first(int code, const char *msg, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* FLOWMATCH_H */
