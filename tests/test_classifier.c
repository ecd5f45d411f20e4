/* test_classifier.c - the convolutional image classifier and MNIST's test split.
 *
 * The loss's gradient with respect to every parameter and the input against
 * central finite differences on a tiny network (with SiLU: a ReLU network
 * this small has pre-activations within any usable step of its kinks, which
 * spoil the differences, while the layers' composition is the same); a few dozen training steps on
 * a synthetic separable digit set reaching high test accuracy; checkpoints
 * that predict the same bits after loading, and malformed ones refused; the
 * same bits on 1 and 2 threads; the scores of generated images (Frechet
 * distance, accuracy, clamping); and the mnist:DIR,split=test spec with rows
 * read in order.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The digit folder every case here shares: 300 training and 100 test images. */
static const char *digits(void)
{
    static int made;
    static char spec[1100];
    if (!made) {
        made = t_digit_folder(t_path("clf_digits"), 300, 100);
        if (!made) t_check(0, "could not write the digit folder %s", t_path("clf_digits"));
        snprintf(spec, sizeof spec, "mnist:%s", t_path("clf_digits"));
    }
    return spec;
}

/* ---- gradients */

static fm_classifier_config tiny_config(void)
{
    fm_classifier_config c = fm_classifier_config_default();
    c.height = c.width = 8;
    c.ch1 = 2;
    c.ch2 = 3;
    c.hidden = 5;
    c.classes = 4;
    c.act = FM_ACT_SILU;
    return c;
}

/* The loss at the current weights and input. */
static double loss_at(fm_tape *tp, fm_classifier *c, float *x, int B, const int *lab)
{
    fm_tape_reset(tp);
    fm_tensor *l = fm_classifier_loss(tp, c, fm_tensor_wrap(tp, x, 2, (int[]){B, 64}), lab);
    return l ? (double)l->data[0] : NAN;
}

/* Fourth-order central difference of the loss in *v, step h, as
 * test_gradcheck.c takes it (each difference over the span float32 holds). */
static double fd_at(fm_tape *tp, fm_classifier *c, float *x, int B, const int *lab, float *v, double h)
{
    double x0 = *v;
    float p1 = (float)(x0 + h), m1 = (float)(x0 - h), p2 = (float)(x0 + 2 * h), m2 = (float)(x0 - 2 * h);
    *v = p1;
    double lp1 = loss_at(tp, c, x, B, lab);
    *v = m1;
    double lm1 = loss_at(tp, c, x, B, lab);
    *v = p2;
    double lp2 = loss_at(tp, c, x, B, lab);
    *v = m2;
    double lm2 = loss_at(tp, c, x, B, lab);
    *v = (float)x0;
    double d1 = (lp1 - lm1) / ((double)p1 - m1), d2 = (lp2 - lm2) / ((double)p2 - m2);
    return (4.0 * d1 - d2) / 3.0;
}

static void gradients(void)
{
    fm_classifier_config cc = tiny_config();
    fm_classifier *c = fm_classifier_new(&cc);
    if (!t_check(c != NULL, "a tiny classifier (8 x 8 images, channels 2 and 3, 5 features, 4 classes, SiLU) %s", T_ERRP(c)))
        return;
    fm_rng r;
    fm_rng_seed(&r, 5, FM_STREAM_INIT);
    fm_params *P = fm_classifier_params(c);
    /* weights larger than PyTorch's start, so that the gradients stand well
     * above the float32 rounding of the loss in the differences */
    fm_rng_uniform_fill(&r, fm_params_data(P), fm_params_size(P), -0.8f, 0.8f);
    enum { B = 3 };
    float x[B * 64];
    int lab[B] = {2, 0, 3};
    fm_rng_uniform_fill(&r, x, B * 64, 0.0f, 1.0f);
    static const char *const names[8] = {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                         "fc1.weight",   "fc1.bias",   "fc2.weight",   "fc2.bias"};
    int named = fm_params_count(P) == 8;
    for (int i = 0; named && i < 8; i++) named = !strcmp(fm_params_name(P, i), names[i]);
    const fm_tensor *f1 = named ? fm_params_tensor(P, 4) : NULL;
    t_check(named && f1->shape[0] == 5 && f1->shape[1] == 3 * 2 * 2 && fm_params_size(P) == 20 + 57 + 65 + 24,
            "parameters conv1, conv2, fc1, fc2 (weight, bias) as a PyTorch module names them; fc1 takes the 3 x 2 x 2 "
            "pooled values, %zu in all",
            fm_params_size(P));
    /* analytic: the parameters' gradients and the input's */
    fm_tape *tp = fm_tape_new(0);
    fm_params_requires_grad(P, 1);
    fm_params_zero_grad(P);
    fm_tensor *X = fm_tensor_wrap(tp, x, 2, (int[]){B, 64});
    fm_tensor_requires_grad(X, 1);
    fm_tensor *l = fm_classifier_loss(tp, c, X, lab);
    fm_status s = l ? fm_backward(tp, l, NULL) : fm_tape_status(tp);
    if (!t_check(s == FM_OK && X->grad, "classifier loss forward and backward: %s", T_ERR(s))) {
        fm_tape_free(tp);
        fm_classifier_free(c);
        return;
    }
    size_t np = fm_params_size(P);
    float *ga = malloc(np * sizeof(float)), *gf = malloc(np * sizeof(float)), gx[B * 64], fx[B * 64];
    memcpy(ga, fm_params_grad(P), np * sizeof(float));
    memcpy(gx, X->grad, sizeof gx);
    fm_params_requires_grad(P, 0);
    float *w = fm_params_data(P);
    for (size_t i = 0; i < np; i++) gf[i] = (float)fd_at(tp, c, x, B, lab, &w[i], 1e-2 * fmax(1.0, fabs(w[i])));
    for (int i = 0; i < B * 64; i++) fx[i] = (float)fd_at(tp, c, x, B, lab, &x[i], 1e-2);
    char label[64];
    for (int i = 0; i < 8; i++) {
        fm_tensor *t = fm_params_tensor(P, i);
        size_t off = (size_t)(t->data - w);
        snprintf(label, sizeof label, "d loss / d %s vs finite diff", names[i]);
        t_close(label, ga + off, gf + off, t->size, 1e-3);
    }
    t_close("d loss / d input vs finite diff", gx, fx, B * 64, 1e-3);
    free(ga);
    free(gf);
    /* a wrong input shape is an error naming the shapes */
    fm_tape_reset(tp);
    fm_tensor *bad = fm_classifier_forward(tp, c, t_t4(tp, 2, 1, 8, 9), NULL);
    t_expect_fail(tp, bad, FM_ERR_SHAPE, "a [2, 1, 8, 9] input", "[2, 1, 8, 9]", "[B, 1, 8, 8]");
    fm_tape_free(tp);
    fm_classifier_free(c);
    cc.height = 10;
    c = fm_classifier_new(&cc);
    t_check(!c && fm_last_status() == FM_ERR_ARG && strstr(fm_last_error(), "divisible by 4"),
            "10 x 8 images refused: %s", fm_last_error());
    fm_classifier_free(c);
}

/* ---- training, checkpoints, threads */

static fm_classifier_train_config small_run(void)
{
    fm_classifier_train_config c = fm_classifier_train_config_default();
    c.data = digits();
    c.net.ch1 = 4;
    c.net.ch2 = 8;
    c.net.hidden = 16;
    c.optim.lr = 2e-2;
    c.batch = 32;
    c.iters = c.sched.total = 40;
    c.seed = 1;
    c.shift = 1;
    return c;
}

static fm_classifier_trainer *trained(const fm_classifier_train_config *c, int iters)
{
    fm_classifier_trainer *tr = fm_classifier_trainer_new(c);
    for (int i = 0; tr && i < iters; i++)
        if (fm_classifier_trainer_step(tr, NULL, NULL) != FM_OK) {
            fm_classifier_trainer_free(tr);
            return NULL;
        }
    return tr;
}

/* The test images and their labels. */
static float *test_images(int *n, int **labels)
{
    char spec[1200];
    snprintf(spec, sizeof spec, "%s,split=test", digits());
    fm_dataset *ds = fm_dataset_open(spec);
    *n = ds ? fm_dataset_rows(ds) : 0;
    float *x = ds ? malloc((size_t)*n * 784 * sizeof(float)) : NULL;
    *labels = ds ? malloc((size_t)*n * sizeof(int)) : NULL;
    if (x && *labels && fm_dataset_read_rows(ds, 0, *n, x) == FM_OK)
        for (int i = 0; i < *n; i++) (*labels)[i] = fm_dataset_labels(ds)[i];
    fm_dataset_free(ds);
    return x;
}

static double accuracy(fm_classifier *c, const float *x, const int *lab, int n)
{
    int *pred = malloc((size_t)n * sizeof(int)), right = 0;
    if (!pred || fm_classifier_predict(c, x, n, NULL, pred) != FM_OK) right = -n;
    for (int i = 0; right >= 0 && i < n; i++) right += pred[i] == lab[i];
    free(pred);
    return (double)right / n;
}

/* A checkpoint with the metadata of a good one, key `drop` left out and key
 * `key` set to `value` (either may be NULL), and every tensor but `skip`. */
static const char *variant(fm_classifier *c, const char *name, const char *drop, const char *key, const char *value,
                           const char *skip)
{
    static const char *const keys[] = {"format", "model", "classifier.in_ch", "classifier.height", "classifier.width",
                                       "classifier.channels", "classifier.hidden", "classifier.classes", "classifier.act"};
    const fm_classifier_config *k = fm_classifier_get_config(c);
    char vals[9][32];
    snprintf(vals[0], 32, "flowmatch");
    snprintf(vals[1], 32, "classifier");
    snprintf(vals[2], 32, "%d", k->in_ch);
    snprintf(vals[3], 32, "%d", k->height);
    snprintf(vals[4], 32, "%d", k->width);
    snprintf(vals[5], 32, "%d,%d", k->ch1, k->ch2);
    snprintf(vals[6], 32, "%d", k->hidden);
    snprintf(vals[7], 32, "%d", k->classes);
    snprintf(vals[8], 32, "%s", fm_act_name(k->act));
    fm_st_writer *w = fm_st_writer_new();
    for (int i = 0; i < 9; i++)
        if (!drop || strcmp(drop, keys[i])) fm_st_writer_meta(w, keys[i], key && !strcmp(key, keys[i]) ? value : vals[i]);
    fm_params *P = fm_classifier_params(c);
    for (int i = 0; i < fm_params_count(P); i++) {
        fm_tensor *t = fm_params_tensor(P, i);
        if (!skip || strcmp(skip, fm_params_name(P, i))) fm_st_writer_add(w, fm_params_name(P, i), t->ndim, t->shape, t->data);
    }
    const char *p = t_path(name);
    if (fm_st_writer_save(w, p) != FM_OK) t_note("could not write %s: %s", p, fm_last_error());
    fm_st_writer_free(w);
    return p;
}

static void training(void)
{
    int saved_threads = fm_get_threads();
    fm_set_threads(2);
    int n = 0, *lab = NULL;
    float *x = test_images(&n, &lab);
    fm_classifier_train_config cfg = small_run();
    fm_classifier_trainer *fresh = trained(&cfg, 0), *tr = trained(&cfg, (int)cfg.iters);
    double before = fresh && x ? accuracy(fm_classifier_trainer_model(fresh), x, lab, n) : NAN;
    double after = tr && x ? accuracy(fm_classifier_trainer_model(tr), x, lab, n) : NAN;
    t_check(x && n == 100 && before < 0.3 && after >= 0.95,
            "40 steps of 32 on 300 synthetic digits: test accuracy %.2f before, %.2f after (at least 0.95) %s", before,
            after, T_ERRP(tr));
    fm_classifier_trainer_free(fresh);
    if (!tr || !x) {
        fm_classifier_trainer_free(tr);
        free(x);
        free(lab);
        fm_set_threads(saved_threads);
        return;
    }
    fm_classifier *c = fm_classifier_trainer_model(tr);

    /* save, load, the same logits bit for bit */
    const char *path = t_path("clf.safetensors");
    fm_st_writer *w = fm_st_writer_new();
    fm_status s = fm_classifier_trainer_save(tr, w);
    if (!s) s = fm_st_writer_save(w, path);
    fm_st_writer_free(w);
    fm_st *st = s ? NULL : fm_st_load(path);
    fm_classifier *g = st ? fm_classifier_load(st) : NULL;
    float *za = malloc((size_t)n * 10 * sizeof(float)), *zb = malloc((size_t)n * 10 * sizeof(float));
    int same = g && fm_classifier_predict(c, x, n, za, NULL) == FM_OK && fm_classifier_predict(g, x, n, zb, NULL) == FM_OK &&
               !memcmp(za, zb, (size_t)n * 10 * sizeof(float));
    const char *model = st ? fm_st_meta(st, "model") : NULL, *ch = st ? fm_st_meta(st, "classifier.channels") : NULL,
               *it = st ? fm_st_meta(st, "train.iter") : NULL;
    t_check(same && model && !strcmp(model, "classifier") && ch && !strcmp(ch, "4,8") && it && !strcmp(it, "40") &&
                !strcmp(fm_classifier_data(g), digits()),
            "saved (model = classifier, channels 4,8, 40 iterations, its data) and loaded: the logits of %d images "
            "the same bits %s",
            n, s ? fm_last_error() : T_ERRP(g));
    /* nothing but a classifier loads as one, and a classifier is no generative model */
    fm_model *gm = st ? fm_model_load(st, 0) : NULL;
    t_check(st && !gm && fm_last_status() == FM_ERR_FORMAT && strstr(fm_last_error(), "classifier"),
            "fm_model_load refuses a classifier: %s", fm_last_error());
    fm_model_free(gm);
    fm_classifier_free(g);
    fm_st_free(st);

    /* malformed checkpoints, each with its message */
    static const struct {
        const char *drop, *key, *value, *skip, *want;
    } bad[] = {
        {"format", NULL, NULL, NULL, "not a flowmatch checkpoint"},
        {NULL, "model", "mlp", NULL, "holds a 'mlp' model, not a classifier"},
        {"model", NULL, NULL, NULL, "not a classifier"},
        {"classifier.hidden", NULL, NULL, NULL, "classifier.hidden"},
        {NULL, "classifier.channels", "4,8,16", NULL, "has 3 values, not 2"},
        {NULL, "classifier.classes", "1", NULL, "classifier.classes"},
        {NULL, "classifier.height", "30", NULL, "divisible by 4"},
        {NULL, "classifier.hidden", "17", NULL, "fc1.weight"},
        {NULL, "classifier.act", "swish", NULL, "classifier.act"},
        {NULL, NULL, NULL, "fc2.bias", "fc2.bias"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = variant(c, "clf_bad.safetensors", bad[i].drop, bad[i].key, bad[i].value, bad[i].skip);
        st = fm_st_load(p);
        g = st ? fm_classifier_load(st) : NULL;
        char what[96];
        if (bad[i].drop) snprintf(what, sizeof what, "no %s", bad[i].drop);
        else if (bad[i].key) snprintf(what, sizeof what, "%s = %s", bad[i].key, bad[i].value);
        else snprintf(what, sizeof what, "no %s", bad[i].skip);
        t_check(st && !g && fm_last_status() != FM_OK && strstr(fm_last_error(), bad[i].want),
                "a checkpoint with %s refused (%s): %s", what, fm_status_name(fm_last_status()), fm_last_error());
        fm_classifier_free(g);
        fm_st_free(st);
    }

    /* the same bits on 1 and 2 threads: training, logits and features */
    fm_set_threads(1);
    fm_classifier_trainer *t1 = trained(&cfg, 10);
    fm_set_threads(2);
    fm_classifier_trainer *t2 = trained(&cfg, 10);
    fm_params *p1 = t1 ? fm_classifier_params(fm_classifier_trainer_model(t1)) : NULL;
    fm_params *p2 = t2 ? fm_classifier_params(fm_classifier_trainer_model(t2)) : NULL;
    int same_w = p1 && p2 && !memcmp(fm_params_data(p1), fm_params_data(p2), fm_params_size(p1) * sizeof(float));
    double dw = p1 && p2 ? t_relerr(fm_params_data(p2), fm_params_data(p1), fm_params_size(p1)) : INFINITY;
    enum { M = 600 };
    float *big = malloc((size_t)M * 784 * sizeof(float)), *f1 = malloc((size_t)M * 16 * sizeof(float)),
          *f2 = malloc((size_t)M * 16 * sizeof(float)), *z1 = malloc((size_t)M * 10 * sizeof(float)),
          *z2 = malloc((size_t)M * 10 * sizeof(float));
    for (int i = 0; i < M; i++) memcpy(big + (size_t)i * 784, x + (size_t)(i % n) * 784, 784 * sizeof(float));
    for (int i = 0; i < M * 784; i += 7) big[i] *= 0.5f; /* no two rows alike */
    fm_set_threads(1);
    fm_status a1 = fm_classifier_predict(c, big, M, z1, NULL), b1 = fm_classifier_features(c, big, M, f1);
    fm_set_threads(2);
    fm_status a2 = fm_classifier_predict(c, big, M, z2, NULL), b2 = fm_classifier_features(c, big, M, f2);
    int same_z = !a1 && !a2 && !memcmp(z1, z2, (size_t)M * 10 * sizeof(float));
    int same_f = !b1 && !b2 && !memcmp(f1, f2, (size_t)M * 16 * sizeof(float));
    t_check(same_w && same_z && same_f,
            "1 and 2 threads: 10 training steps give the same weights (largest difference %.1e), %d images the same "
            "logits and features",
            dw, M);
    fm_classifier_trainer_free(t1);
    fm_classifier_trainer_free(t2);
    free(f1);
    free(f2);
    free(z1);
    free(z2);

    /* scores: the test images against themselves, by their own labels */
    fm_image_scores sc;
    s = fm_classifier_score(c, x, n, lab, x, n, &sc);
    int total = 0;
    for (int k = 0; k < 10; k++) total += sc.counts[k];
    double acc = accuracy(c, x, lab, n);
    t_check(s == FM_OK && fabs(sc.frechet) < 1e-3 && sc.accuracy == acc && sc.correct == (int)lround(acc * n) &&
                total == n && sc.clamped == 0,
            "scores of the test images against themselves: Frechet distance %.1e, accuracy %.2f as predicted, %d "
            "predictions counted %s",
            sc.frechet, sc.accuracy, total, T_ERR(s));
    /* values outside [0, 1] are clamped first: the same scores as the clamped copy */
    float *y = malloc((size_t)n * 784 * sizeof(float)), *yc = malloc((size_t)n * 784 * sizeof(float));
    long outside = 0;
    for (int i = 0; i < n * 784; i++) {
        y[i] = 1.4f * x[i] - 0.2f;
        yc[i] = y[i] < 0 ? 0.0f : y[i] > 1 ? 1.0f : y[i];
        outside += y[i] < 0 || y[i] > 1;
    }
    fm_image_scores s1, s2;
    fm_status c1 = fm_classifier_score(c, y, n, lab, big, M, &s1), c2 = fm_classifier_score(c, yc, n, lab, big, M, &s2);
    t_check(!c1 && !c2 && s1.clamped == outside && s2.clamped == 0 && s1.frechet == s2.frechet &&
                s1.correct == s2.correct && !memcmp(s1.counts, s2.counts, sizeof s1.counts) && s1.frechet > 0,
            "%ld values outside [0, 1] clamped, scored as their clamped copy (Frechet distance %.3f to %d other images)",
            s1.clamped, s1.frechet, M);
    y[5] = NAN;
    s = fm_classifier_score(c, y, n, NULL, NULL, 0, &s1);
    int nan_refused = s == FM_ERR_NUMERIC && strstr(fm_last_error(), "image 1");
    int badlab[2] = {3, 10};
    s = fm_classifier_score(c, x, 2, badlab, NULL, 0, &s1);
    int lab_refused = s == FM_ERR_ARG && strstr(fm_last_error(), "label 10 of image 2");
    s = fm_classifier_score(c, x, 1, NULL, x, n, &s1);
    t_check(nan_refused && lab_refused && s == FM_ERR_ARG && isnan(s1.accuracy),
            "a NaN pixel, a label of 10 and a Frechet distance of one image refused: %s", fm_last_error());
    free(y);
    free(yc);
    free(big);
    free(za);
    free(zb);

    /* what training refuses */
    fm_classifier_train_config b = small_run();
    b.data = "moons";
    fm_classifier_trainer *tb = fm_classifier_trainer_new(&b);
    int moons = !tb && fm_last_status() == FM_ERR_ARG && strstr(fm_last_error(), "labelled images");
    fm_classifier_trainer_free(tb);
    b = small_run();
    b.net.classes = 5; /* the digits have labels up to 9 */
    tb = fm_classifier_trainer_new(&b);
    t_check(moons && !tb && fm_last_status() == FM_ERR_ARG && strstr(fm_last_error(), "5 classes"),
            "training on moons and on labels beyond the classes refused: %s", fm_last_error());
    fm_classifier_trainer_free(tb);

    fm_classifier_trainer_free(tr);
    free(x);
    free(lab);
    fm_set_threads(saved_threads);
}

/* ---- the test split and rows in order */

static void test_split(void)
{
    const char *train = digits();
    char spec[1200], canon[1200];
    snprintf(spec, sizeof spec, "%s,split=test", train);
    fm_dataset *te = fm_dataset_open(spec);
    snprintf(spec, sizeof spec, "%s,split=train", train);
    fm_dataset *tr = fm_dataset_open(spec);
    snprintf(canon, sizeof canon, "%s,split=test", train);
    /* the test rows in order are the t10k file's, pixel / 255 */
    fm_idx im = {0};
    char ip[1200];
    snprintf(ip, sizeof ip, "%s/t10k-images-idx3-ubyte", t_path("clf_digits"));
    fm_status s = fm_idx_read_u8(ip, &im);
    float *x = te ? malloc(100 * 784 * sizeof(float)) : NULL;
    double err = x && !s && fm_dataset_read_rows(te, 0, 100, x) == FM_OK ? 0 : INFINITY;
    for (int i = 0; isfinite(err) && i < 100 * 784; i++) err = fmax(err, fabs(x[i] - im.u8[i] / 255.0f));
    int labels_ok = te && fm_dataset_labels(te);
    for (int i = 0; labels_ok && i < 100; i++) labels_ok = fm_dataset_labels(te)[i] == i % 10;
    t_check(te && tr && fm_dataset_rows(te) == 100 && fm_dataset_rows(tr) == 300 && fm_dataset_dim(te) == 784 &&
                !strcmp(fm_dataset_spec(te), canon) && !strcmp(fm_dataset_spec(tr), train) && labels_ok && err == 0,
            "split=test reads the t10k files (100 images in order, pixel error %.1e, labels 0..9 in turn; spec %s); "
            "split=train is the canonical %s %s",
            err, te ? fm_dataset_spec(te) : "-", tr ? fm_dataset_spec(tr) : "-", T_ERRP(te));
    /* rows in order: a middle range, the last row, and past the end */
    float row[784];
    int mid = te && fm_dataset_read_rows(te, 99, 1, row) == FM_OK && !memcmp(row, x + 99 * 784, sizeof row);
    s = te ? fm_dataset_read_rows(te, 98, 3, x) : FM_OK;
    int past = s == FM_ERR_ARG && strstr(fm_last_error(), "98..100") && strstr(fm_last_error(), "100 rows");
    fm_dataset *moons = fm_dataset_open("moons");
    s = fm_dataset_read_rows(moons, 0, 1, row);
    t_check(mid && past && s == FM_ERR_ARG && strstr(fm_last_error(), "generator"),
            "rows read in order: the last one right, rows past the end and a generator's refused: %s", fm_last_error());
    fm_dataset_free(moons);
    fm_dataset_free(te);
    fm_dataset_free(tr);
    fm_idx_free(&im);
    free(x);

    /* errors: an unknown split, a folder without test files; a .gz-only test split reads */
    snprintf(spec, sizeof spec, "%s,split=valid", train);
    te = fm_dataset_open(spec);
    int unknown = !te && fm_last_status() == FM_ERR_ARG && strstr(fm_last_error(), "split must be train or test");
    char dir[1100], cmd[3000];
    snprintf(dir, sizeof dir, "%s", t_path("clf_notest"));
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s'/train-* '%s'", dir, t_path("clf_digits"), dir);
    int made = system(cmd) == 0;
    snprintf(spec, sizeof spec, "mnist:%s,split=test", dir);
    te = fm_dataset_open(spec);
    int missing = made && !te && fm_last_status() == FM_ERR_IO && strstr(fm_last_error(), "t10k-images-idx3-ubyte");
    snprintf(cmd, sizeof cmd, "%s/t10k-images-idx3-ubyte.gz", dir);
    int gz = t_gzip_copy(ip, cmd);
    snprintf(cmd, sizeof cmd, "%s/t10k-labels-idx1-ubyte", t_path("clf_digits"));
    snprintf(ip, sizeof ip, "%s/t10k-labels-idx1-ubyte.gz", dir);
    gz = gz && t_gzip_copy(cmd, ip);
    fm_dataset *tz = gz ? fm_dataset_open(spec) : NULL;
    t_check(unknown && missing && tz && fm_dataset_rows(tz) == 100,
            "split=valid refused, a folder without t10k files refused naming them, t10k .gz files read (%d rows) %s",
            tz ? fm_dataset_rows(tz) : 0, T_ERRP(tz));
    fm_dataset_free(tz);
}

void test_classifier(void)
{
    gradients();
    test_split();
    training();
}
