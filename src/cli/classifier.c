/* classifier.c - `flowmatch classifier`: train the digit classifier that
 * scores image models (eval --classifier), measure it on the test split and
 * write its checkpoint.
 *
 * Progress goes to stderr as in `train`: a line rewritten in place on a
 * terminal, plain lines every --log-every iterations otherwise. Ctrl-C stops
 * after the current step; the model so far is still tested and written.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The test split beside a training spec: "mnist:DIR" -> "mnist:DIR,split=test". */
static char *test_spec_of(const char *train)
{
    size_t n = strlen(train);
    const char *tail = ",split=test";
    if (cli_has_suffix(train, tail)) n -= strlen(tail);
    char *s = malloc(n + strlen(tail) + 1);
    if (!s) return NULL;
    memcpy(s, train, n);
    strcpy(s + n, tail);
    return s;
}

typedef struct {
    fm_classifier_trainer *tr;
    double acc, wsum; /* the batch accuracy, smoothed like the loss */
} clf_ctx;

static fm_status clf_step(void *ctx, int64_t k, double *loss, double *lr, char *extra, size_t cap)
{
    clf_ctx *c = ctx;
    double acc = 0;
    (void)k;
    *lr = fm_classifier_trainer_lr(c->tr);
    fm_status s = fm_classifier_trainer_step(c->tr, loss, &acc);
    if (s) return s;
    c->acc = 0.98 * c->acc + 0.02 * acc;
    c->wsum = 0.98 * c->wsum + 0.02;
    snprintf(extra, cap, "  batch accuracy %.3f", c->acc / c->wsum);
    return FM_OK;
}

/* Accuracy of c on every image of the labelled set ts, printed with each
 * class's; CLI_GO on success. */
static int test_report(fm_classifier *c, fm_dataset *ts, double *accuracy)
{
    int n = fm_dataset_rows(ts), d = fm_dataset_dim(ts), K = fm_classifier_get_config(c)->classes;
    const uint8_t *lab = fm_dataset_labels(ts);
    float *x = malloc((size_t)n * d * sizeof(float));
    int *pred = malloc((size_t)n * sizeof(int));
    int *seen = calloc((size_t)K, sizeof(int)), *right = calloc((size_t)K, sizeof(int));
    int rc = CLI_GO;
    double t0 = cli_now();
    if (!x || !pred || !seen || !right) rc = cli_error("classifier", "out of memory for %d test images", n);
    else if (fm_dataset_read_rows(ts, 0, n, x) != FM_OK || fm_classifier_predict(c, x, n, NULL, pred) != FM_OK)
        rc = cli_error("classifier", "testing on %s: %s", fm_dataset_spec(ts), fm_last_error());
    if (rc == CLI_GO) {
        int total = 0;
        for (int i = 0; i < n; i++) {
            seen[lab[i]]++;
            right[lab[i]] += pred[i] == lab[i];
            total += pred[i] == lab[i];
        }
        *accuracy = (double)total / n;
        printf("test accuracy %.2f%% (%d of %d) on %s (%.2f s)\nper class:", 100.0 * *accuracy, total, n,
               fm_dataset_spec(ts), cli_now() - t0);
        for (int k = 0; k < K; k++)
            if (seen[k]) printf("  %d: %.1f%%", k, 100.0 * right[k] / seen[k]);
        printf("\n");
    }
    free(x);
    free(pred);
    free(seen);
    free(right);
    return rc;
}

/* The command line; its defaults are fm_classifier_train_config_default's. */
typedef struct {
    const char *data, *test, *channels, *sched, *act, *out;
    int hidden, batch, shift, threads, quiet;
    int64_t iters, seed, log_every;
    double lr, dropout;
    char default_channels[32];
} classifier_opts;

/* Check the options and set the training run's configuration from them. */
static int make_config(const classifier_opts *o, fm_classifier_train_config *c)
{
#define BAD(...) return cli_usage_error("classifier", __VA_ARGS__)
    if (!cli_has_suffix(o->out, ".safetensors")) BAD("--out '%s' must end in .safetensors", o->out);
    int ch[2];
    if (cli_parse_ints(o->channels, ch, 2) != 2 || ch[0] > 4096 || ch[1] > 4096)
        BAD("--channels '%s' must be two numbers in 1..4096, e.g. 32,64", o->channels);
    c->net.ch1 = ch[0];
    c->net.ch2 = ch[1];
    if (o->hidden < 1 || o->hidden > 65536) BAD("--hidden %d must lie in 1..65536", o->hidden);
    int a = fm_act_from_name(o->act);
    if (a < 0) BAD("unknown --act '%s' (relu, elu, silu, gelu, gelu_tanh, tanh, sigmoid, selu, softplus)", o->act);
    c->net.act = (fm_act)a;
    if (o->iters < 1) BAD("--iters %lld must be >= 1", (long long)o->iters);
    if (o->batch < 1 || o->batch > 65536) BAD("--batch %d must lie in 1..65536", o->batch);
    if (!(o->lr > 0)) BAD("--lr %g must be > 0", o->lr);
    int k = fm_sched_from_name(o->sched);
    if (k < 0) BAD("unknown --schedule '%s' (cosine, linear, constant)", o->sched);
    if (o->shift < 0 || o->shift > 8) BAD("--shift %d must lie in 0..8", o->shift);
    if (!(o->dropout >= 0 && o->dropout < 1)) BAD("--dropout %g must lie in [0, 1)", o->dropout);
    if (o->seed < 0) BAD("--seed must be >= 0");
    if (o->threads < 0 || o->threads > 1024) BAD("--threads %d must lie in 0..1024", o->threads);
    if (o->log_every < 0) BAD("--log-every must be >= 0");
#undef BAD
    c->net.hidden = o->hidden;
    c->data = o->data;
    c->batch = o->batch;
    c->iters = o->iters;
    c->optim.lr = o->lr;
    c->sched.kind = (fm_sched_kind)k;
    c->sched.total = o->iters;
    c->shift = o->shift;
    c->dropout = o->dropout;
    c->seed = (uint64_t)o->seed;
    return CLI_GO;
}

/* The test set (--test, or the training data's test split; NULL for --test
 * none), opened before training so that a missing one costs nothing. */
static int open_test(const classifier_opts *o, fm_classifier *m, fm_dataset **out)
{
    const fm_classifier_config *nc = fm_classifier_get_config(m);
    *out = NULL;
    if (o->test && !strcmp(o->test, "none")) return CLI_GO;
    char *derived = o->test ? NULL : test_spec_of(fm_classifier_data(m));
    const char *tspec = o->test ? o->test : derived;
    fm_dataset *ts = tspec ? fm_dataset_open(tspec) : NULL;
    int bad = !ts || !fm_dataset_labels(ts) || fm_dataset_dim(ts) != nc->in_ch * nc->height * nc->width;
    for (int i = 0; !bad && i < fm_dataset_rows(ts); i++) bad = fm_dataset_labels(ts)[i] >= nc->classes;
    int rc = CLI_GO;
    if (bad && !tspec) {
        rc = cli_error("classifier", "out of memory");
    } else if (bad && !ts) {
        fprintf(stderr, "flowmatch classifier: test set: %s%s\n", fm_last_error(),
                o->test ? "" : " (--test SPEC names another, --test none skips the test)");
        rc = cli_status_code(fm_last_status());
    } else if (bad) {
        rc = cli_error("classifier", "test set '%s' is not labelled images of %d x %d with labels below %d",
                       fm_dataset_spec(ts), nc->height, nc->width, nc->classes);
    }
    free(derived);
    if (rc != CLI_GO) fm_dataset_free(ts);
    else *out = ts;
    return rc;
}

/* Training to --iters or Ctrl-C, then the test on ts (if any): its accuracy
 * into *acc. */
static int train(const classifier_opts *o, fm_classifier_trainer *tr, fm_dataset *ts, double *acc)
{
    fm_classifier *m = fm_classifier_trainer_model(tr);
    const fm_classifier_config *nc = fm_classifier_get_config(m);
    if (!o->quiet)
        fprintf(stderr,
                "training a classifier on %s: conv %d, %d, %d features, %d classes, %s (%zu parameters); adam lr "
                "%g %s, batch %d, %lld iterations, shifts up to %d pixels, dropout %g, seed %lld, %d threads\n",
                fm_classifier_data(m), nc->ch1, nc->ch2, nc->hidden, nc->classes, fm_act_name(nc->act),
                fm_params_size(fm_classifier_params(m)), o->lr, o->sched, o->batch, (long long)o->iters, o->shift,
                o->dropout, (long long)o->seed, fm_get_threads());
    double secs = 0;
    clf_ctx cc = {tr, 0, 0};
    int64_t done = 0;
    int rc = cli_step_loop("classifier", 0, o->iters, o->log_every, o->quiet, clf_step, &cc,
                           "the model so far is tested and written", &done, &secs);
    if (rc != CLI_GO) return rc;
    done = fm_classifier_trainer_iter(tr);
    if (!o->quiet)
        printf("trained %lld iterations in %.1f s (%.1f it/s)\n", (long long)done, secs, done / fmax(secs, 1e-9));
    return ts ? test_report(m, ts, acc) : CLI_GO;
}

/* The checkpoint, with the test set and its accuracy in the metadata. */
static int save_model(const classifier_opts *o, fm_classifier_trainer *tr, const fm_dataset *ts, double acc)
{
    fm_st_writer *w = fm_st_writer_new();
    fm_status s = w ? fm_classifier_trainer_save(tr, w) : FM_ERR_NOMEM;
    if (!s && ts) s = fm_st_writer_meta(w, "classifier.test_data", fm_dataset_spec(ts));
    if (!s && ts) {
        char num[32];
        snprintf(num, sizeof num, "%.6f", acc);
        s = fm_st_writer_meta(w, "classifier.test_accuracy", num);
    }
    if (!s) s = fm_st_writer_save(w, o->out);
    int rc = CLI_GO;
    if (s) rc = cli_error("classifier", "%s", s == FM_ERR_NOMEM && !w ? "out of memory" : fm_last_error());
    else if (!o->quiet) printf("wrote %s\n", o->out);
    fm_st_writer_free(w);
    return rc;
}

int cmd_classifier(int argc, char **argv)
{
    fm_classifier_train_config c = fm_classifier_train_config_default();
    classifier_opts o = {.data = c.data, .sched = fm_sched_name(c.sched.kind), .act = fm_act_name(c.net.act),
                         .out = "classifier.safetensors", .hidden = c.net.hidden, .batch = c.batch, .shift = c.shift,
                         .iters = c.iters, .seed = (int64_t)c.seed, .log_every = 100, .lr = c.optim.lr,
                         .dropout = c.dropout};
    snprintf(o.default_channels, sizeof o.default_channels, "%d,%d", c.net.ch1, c.net.ch2);
    o.channels = o.default_channels;
    const cli_opt opts[] = {
        {"data", OPT_STR, &o.data, "SPEC", "labelled training images: mnist:DIR"},
        {"test", OPT_STR, &o.test, "SPEC", "labelled test images, or none (default: the data's split=test)"},
        {"channels", OPT_STR, &o.channels, "A,B", "channels of the two convolutions"},
        {"hidden", OPT_INT, &o.hidden, "N", "features: width of the layer before the logits"},
        {"act", OPT_STR, &o.act, "NAME", "activation after each convolution and the features' layer"},
        {"iters", OPT_I64, &o.iters, "N", "iterations"},
        {"batch", OPT_INT, &o.batch, "N", "batch size"},
        {"lr", OPT_DOUBLE, &o.lr, "X", "Adam learning rate"},
        {"schedule", OPT_STR, &o.sched, "NAME", "learning rate: cosine (to 0), linear or constant"},
        {"shift", OPT_INT, &o.shift, "N", "augmentation: move each image by up to N pixels along each axis (0: off)"},
        {"dropout", OPT_DOUBLE, &o.dropout, "P", "dropout probability on the features in training (0: none)"},
        {"seed", OPT_I64, &o.seed, "N", "random seed"},
        {"threads", OPT_INT, &o.threads, "N", "threads (0: all cores; the weights are the same for any count)"},
        {"out", OPT_STR, &o.out, "FILE", "checkpoint (.safetensors)"},
        {"log-every", OPT_I64, &o.log_every, "N", "progress line period when not on a terminal"},
        {"quiet", OPT_FLAG, &o.quiet, NULL, "no progress output"},
    };
    const cli_spec spec = {"classifier", NULL, "Train a convolutional digit classifier for eval --classifier.",
                           "The network: conv 3x3 (1 -> A) + act, avg_pool 2, conv 3x3 (A -> B) + act,\n"
                           "avg_pool 2, flatten, Linear(B 7 7 -> N) + act (the N features that eval's Frechet\n"
                           "distance uses), Linear(N -> 10) logits. Adam on the cross-entropy of batches taken\n"
                           "through the shuffled training images epoch by epoch, each image shifted at random\n"
                           "by up to --shift pixels. Afterwards the classifier is tested on every image of the\n"
                           "test split (MNIST's t10k files in the same folder) and its accuracy printed and\n"
                           "stored in the checkpoint, which is replaced only when the run succeeds.\n"
                           "Ctrl-C stops after the current step and still tests and writes the model.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, NULL};
    int npos, rc;
    if ((rc = cli_parse(&spec, argc, argv, NULL, &npos)) != CLI_GO) return rc;
    if ((rc = make_config(&o, &c)) != CLI_GO) return rc;
    if ((rc = cli_writable("classifier", &o.out, 1)) != CLI_GO) return rc; /* before training */
    fm_set_threads(o.threads);
    fm_classifier_trainer *tr = fm_classifier_trainer_new(&c);
    if (!tr) {
        fprintf(stderr, "flowmatch classifier: %s\n", fm_last_error());
        return cli_status_code(fm_last_status());
    }
    fm_dataset *ts = NULL;
    double acc = NAN;
    rc = cli_dist_go("classifier", open_test(&o, fm_classifier_trainer_model(tr), &ts));
    if (rc == CLI_GO) rc = train(&o, tr, ts, &acc);
    if (rc == CLI_GO) rc = save_model(&o, tr, ts, acc);
    fm_dataset_free(ts);
    fm_classifier_trainer_free(tr);
    return cli_exit_code(rc); /* 128 + the signal after an interrupted, saved run */
}
