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
 * class's; -1 on success. */
static int test_report(fm_classifier *c, fm_dataset *ts, double *accuracy)
{
    int n = fm_dataset_rows(ts), d = fm_dataset_dim(ts), K = fm_classifier_get_config(c)->classes;
    const uint8_t *lab = fm_dataset_labels(ts);
    float *x = malloc((size_t)n * d * sizeof(float));
    int *pred = malloc((size_t)n * sizeof(int));
    int *seen = calloc((size_t)K, sizeof(int)), *right = calloc((size_t)K, sizeof(int));
    int rc = -1;
    double t0 = cli_now();
    if (!x || !pred || !seen || !right) rc = cli_error("classifier", "out of memory for %d test images", n);
    else if (fm_dataset_read_rows(ts, 0, n, x) != FM_OK || fm_classifier_predict(c, x, n, NULL, pred) != FM_OK)
        rc = cli_error("classifier", "testing on %s: %s", fm_dataset_spec(ts), fm_last_error());
    if (rc < 0) {
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

int cmd_classifier(int argc, char **argv)
{
    fm_classifier_train_config c = fm_classifier_train_config_default();
    const char *data = c.data, *test = NULL, *channels = "32,64", *sched = fm_sched_name(c.sched.kind),
               *act = fm_act_name(c.net.act),
               *out = "classifier.safetensors";
    int hidden = c.net.hidden, batch = c.batch, shift = c.shift, threads = 0, quiet = 0;
    int64_t iters = c.iters, seed = 0, log_every = 100;
    double lr = c.optim.lr, dropout = c.dropout;
    const cli_opt opts[] = {
        {"data", OPT_STR, &data, "SPEC", "labelled training images: mnist:DIR"},
        {"test", OPT_STR, &test, "SPEC", "labelled test images, or none (default: the data's split=test)"},
        {"channels", OPT_STR, &channels, "A,B", "channels of the two convolutions"},
        {"hidden", OPT_INT, &hidden, "N", "features: width of the layer before the logits"},
        {"act", OPT_STR, &act, "NAME", "activation after each convolution and the features' layer"},
        {"iters", OPT_I64, &iters, "N", "iterations"},
        {"batch", OPT_INT, &batch, "N", "batch size"},
        {"lr", OPT_DOUBLE, &lr, "X", "Adam learning rate"},
        {"schedule", OPT_STR, &sched, "NAME", "learning rate: cosine (to 0), linear or constant"},
        {"shift", OPT_INT, &shift, "N", "augmentation: move each image by up to N pixels along each axis (0: off)"},
        {"dropout", OPT_DOUBLE, &dropout, "P", "dropout probability on the features in training (0: none)"},
        {"seed", OPT_I64, &seed, "N", "random seed"},
        {"threads", OPT_INT, &threads, "N", "threads (0: all cores; the weights are the same for any count)"},
        {"out", OPT_STR, &out, "FILE", "checkpoint (.safetensors)"},
        {"log-every", OPT_I64, &log_every, "N", "progress line period when not on a terminal"},
        {"quiet", OPT_FLAG, &quiet, NULL, "no progress output"},
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
    int npos;
    int rc = cli_parse(&spec, argc, argv, NULL, &npos);
    if (rc >= 0) return rc;
#define BAD(...) return cli_usage_error("classifier", __VA_ARGS__)
    if (!cli_has_suffix(out, ".safetensors")) BAD("--out '%s' must end in .safetensors", out);
    int ch[2];
    if (cli_parse_ints(channels, ch, 2) != 2 || ch[0] > 4096 || ch[1] > 4096)
        BAD("--channels '%s' must be two numbers in 1..4096, e.g. 32,64", channels);
    c.net.ch1 = ch[0];
    c.net.ch2 = ch[1];
    if (hidden < 1 || hidden > 65536) BAD("--hidden %d must lie in 1..65536", hidden);
    int a = fm_act_from_name(act);
    if (a < 0) BAD("unknown --act '%s' (relu, elu, silu, gelu, gelu_tanh, tanh, sigmoid, selu, softplus)", act);
    c.net.act = (fm_act)a;
    if (iters < 1) BAD("--iters %lld must be >= 1", (long long)iters);
    if (batch < 1 || batch > 65536) BAD("--batch %d must lie in 1..65536", batch);
    if (!(lr > 0)) BAD("--lr %g must be > 0", lr);
    int k = fm_sched_from_name(sched);
    if (k < 0) BAD("unknown --schedule '%s' (cosine, linear, constant)", sched);
    if (shift < 0 || shift > 8) BAD("--shift %d must lie in 0..8", shift);
    if (!(dropout >= 0 && dropout < 1)) BAD("--dropout %g must lie in [0, 1)", dropout);
    if (seed < 0) BAD("--seed must be >= 0");
    if (threads < 0 || threads > 1024) BAD("--threads %d must lie in 0..1024", threads);
    if (log_every < 0) BAD("--log-every must be >= 0");
#undef BAD
    fm_set_threads(threads);
    c.net.hidden = hidden;
    c.data = data;
    c.batch = batch;
    c.iters = iters;
    c.optim.lr = lr;
    c.sched.kind = (fm_sched_kind)k;
    c.sched.total = iters;
    c.shift = shift;
    c.dropout = dropout;
    c.seed = (uint64_t)seed;
    fm_classifier_trainer *tr = fm_classifier_trainer_new(&c);
    if (!tr) {
        fprintf(stderr, "flowmatch classifier: %s\n", fm_last_error());
        return cli_status_code(fm_last_status());
    }
    fm_classifier *m = fm_classifier_trainer_model(tr);
    const fm_classifier_config *nc = fm_classifier_get_config(m);
    /* the test set is opened before training, so a missing one costs nothing */
    fm_dataset *ts = NULL;
    char *derived = NULL;
    if (!test || strcmp(test, "none")) {
        derived = test ? NULL : test_spec_of(fm_classifier_data(m));
        const char *tspec = test ? test : derived;
        ts = tspec ? fm_dataset_open(tspec) : NULL;
        int bad = !ts || !fm_dataset_labels(ts) || fm_dataset_dim(ts) != nc->in_ch * nc->height * nc->width;
        for (int i = 0; !bad && i < fm_dataset_rows(ts); i++) bad = fm_dataset_labels(ts)[i] >= nc->classes;
        if (bad) {
            if (!tspec) {
                rc = cli_error("classifier", "out of memory");
            } else if (!ts) {
                fprintf(stderr, "flowmatch classifier: test set: %s%s\n", fm_last_error(),
                        test ? "" : " (--test SPEC names another, --test none skips the test)");
                rc = cli_status_code(fm_last_status());
            } else {
                rc = cli_error("classifier", "test set '%s' is not labelled images of %d x %d with labels below %d",
                               fm_dataset_spec(ts), nc->height, nc->width, nc->classes);
            }
            free(derived);
            fm_dataset_free(ts);
            fm_classifier_trainer_free(tr);
            return rc;
        }
    }
    free(derived);
    if (!quiet)
        fprintf(stderr,
                "training a classifier on %s: conv %d, %d, %d features, %d classes, %s (%zu parameters); adam lr "
                "%g %s, batch %d, %lld iterations, shifts up to %d pixels, dropout %g, seed %lld, %d threads\n",
                fm_classifier_data(m), nc->ch1, nc->ch2, nc->hidden, nc->classes, fm_act_name(nc->act),
                fm_params_size(fm_classifier_params(m)), lr, sched, batch, (long long)iters, shift, dropout, (long long)seed,
                fm_get_threads());
    double secs = 0, acc = NAN;
    clf_ctx cc = {tr, 0, 0};
    int64_t done = 0;
    rc = cli_step_loop("classifier", 0, iters, log_every, quiet, clf_step, &cc,
                       "the model so far is tested and written", &done, &secs);
    done = fm_classifier_trainer_iter(tr);
    if (rc < 0 && !quiet)
        printf("trained %lld iterations in %.1f s (%.1f it/s)\n", (long long)done, secs, done / fmax(secs, 1e-9));
    if (rc < 0 && ts) rc = test_report(m, ts, &acc);
    fm_st_writer *w = rc < 0 ? fm_st_writer_new() : NULL;
    if (rc < 0) {
        fm_status s = w ? fm_classifier_trainer_save(tr, w) : FM_ERR_NOMEM;
        if (!s && ts) s = fm_st_writer_meta(w, "classifier.test_data", fm_dataset_spec(ts));
        if (!s && ts) {
            char num[32];
            snprintf(num, sizeof num, "%.6f", acc);
            s = fm_st_writer_meta(w, "classifier.test_accuracy", num);
        }
        if (!s) s = fm_st_writer_save(w, out);
        if (s) rc = cli_error("classifier", "%s", s == FM_ERR_NOMEM && !w ? "out of memory" : fm_last_error());
        else if (!quiet) printf("wrote %s\n", out);
    }
    fm_st_writer_free(w);
    fm_dataset_free(ts);
    fm_classifier_trainer_free(tr);
    return rc < 0 ? CLI_OK : rc;
}
