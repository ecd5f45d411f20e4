/* eval.c - `flowmatch eval`: distances between two point sets, each given as
 * a file (.npy / .csv), a model (.safetensors, sampled) or a dataset spec;
 * for images, with --classifier, the Frechet distance in a classifier's
 * features, the accuracy on requested labels and the predicted classes.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A model side: the model, and for a flow-matching model the starting points
 * of its trajectories (network units) and their path energy. */
typedef struct {
    fm_model *model;
    fm_flow *flow; /* flow matching only: it has a path energy */
    float *x0;
    double energy;
} model_side;

/* What a side must be for the classifier: points of want_dim values (0: no
 * classifier), and then a dataset's rows read in order rather than drawn; its labels, if it
 * has any, into *labels (malloc'ed) when labels is not NULL. A
 * class-conditional model asks for class `label` (-2: i mod K for sample i,
 * -1: none) with guidance `guidance`, and its requested labels count as its
 * own. */
typedef struct {
    int want_dim;
    int **labels;
    int label;
    double guidance;
} side_needs;

/* The condition of a class-conditional flow for n samples (and the requested
 * labels into *out when wanted); FM_OK for other models. */
static fm_status condition_model(fm_model *m, int n, const side_needs *nd, int **out)
{
    fm_flow *f = fm_model_flow(m);
    int K = f ? fm_flow_num_classes(f) : 0;
    if (!K) return FM_OK;
    int *lab = malloc((size_t)n * sizeof(int));
    if (!lab) return FM_ERR_NOMEM;
    for (int i = 0; i < n; i++) lab[i] = nd->label == -2 ? i % K : nd->label;
    fm_status s = fm_flow_set_condition(f, lab, n, nd->guidance);
    if (!s && out && nd->label != -1) *out = lab;
    else free(lab);
    return s;
}

/* Refuse points of the wrong size for the classifier; -1 if they fit. */
static int check_dim(const char *spec, int d, const side_needs *nd)
{
    if (!nd->want_dim || d == nd->want_dim) return -1;
    return cli_error("eval", "--classifier scores images of %d pixels; '%s' has %d values per point", nd->want_dim, spec,
                     d);
}

/* Points for one side; -1 on success, else an exit code. */
static int load_side(const char *spec, int n, uint64_t seed, uint64_t stream, const cli_spec *cs,
                     const cli_solver_opts *opts, const side_needs *nd, fm_table *t, char *label, size_t llen,
                     model_side *ms)
{
    memset(t, 0, sizeof *t);
    int rc;
    if (cli_has_suffix(spec, ".npy") || cli_has_suffix(spec, ".csv")) {
        if (fm_points_read(spec, t) != FM_OK) return cli_error("eval", "%s", fm_last_error());
        if ((rc = check_dim(spec, t->cols, nd)) >= 0) {
            fm_table_free(t);
            return rc;
        }
        for (size_t i = 0; i < (size_t)t->rows * t->cols; i++)
            if (!isfinite(t->data[i])) {
                fm_table_free(t);
                return cli_error("eval", "%s: row %zu holds a NaN or infinite value", spec, i / (size_t)t->cols + 1);
            }
        snprintf(label, llen, "%s (%d points)", spec, t->rows);
        return -1;
    }
    if (cli_has_suffix(spec, ".safetensors")) {
        fm_model *m;
        rc = cli_load_model("eval", spec, 1, &m);
        if (rc >= 0) return rc;
        if ((rc = check_dim(spec, fm_model_dim(m), nd)) >= 0) {
            fm_model_free(m);
            return rc;
        }
        fm_solver_config sc;
        double *grid;
        int ngrid, d = fm_model_dim(m);
        cli_solver_opts so = *opts;
        rc = cli_sampler_setup("eval", cs, &so, m, 1, 0, &sc, &grid, &ngrid);
        if (rc >= 0) {
            fm_model_free(m);
            return rc;
        }
        int is_fm = fm_model_method(m) == FM_METHOD_FM;
        t->data = malloc((size_t)n * d * sizeof(float));
        ms->x0 = is_fm ? malloc((size_t)n * d * sizeof(float)) : NULL;
        fm_rng r;
        fm_rng_seed(&r, seed, stream);
        fm_solve_stats st;
        /* a flow's samples are the ends of trajectories whose energy is kept too */
        fm_status s = !t->data || (is_fm && !ms->x0) ? FM_ERR_NOMEM : condition_model(m, n, nd, nd->labels);
        if (!s)
            s = is_fm ? fm_flow_path_energy(fm_model_flow(m), n, NULL, &r, &sc, grid, ngrid, ms->x0, t->data,
                                            &ms->energy, &st)
                      : fm_model_sample(m, n, &r, &sc, grid, ngrid, t->data, NULL, NULL, &st);
        free(grid);
        if (s) {
            fm_model_free(m);
            fm_table_free(t);
            free(ms->x0);
            ms->x0 = NULL;
            return cli_error("eval", "sampling %s: %s", spec, s == FM_ERR_NOMEM ? "out of memory" : fm_last_error());
        }
        ms->model = m;
        ms->flow = is_fm ? fm_model_flow(m) : NULL;
        t->rows = n;
        t->cols = d;
        if (fm_model_method(m) == FM_METHOD_VAE || fm_model_method(m) == FM_METHOD_GAN)
            snprintf(label, llen, "%s (%d samples, %s, NFE 1)", spec, n, fm_method_name(fm_model_method(m)));
        else if (!fm_flow_num_classes(fm_model_flow(m)))
            snprintf(label, llen, "%s (%d samples, %s%s, NFE %ld)", spec, n, is_fm ? "" : "ddpm ",
                     fm_solver_name(sc.kind), st.nfe);
        else
            snprintf(label, llen, "%s (%d samples, %s%s, NFE %ld; %s, guidance %g)", spec, n, is_fm ? "" : "ddpm ",
                     fm_solver_name(sc.kind), st.nfe,
                     nd->label == -2 ? "class i mod K for sample i" : nd->label == -1 ? "no class" : "one class",
                     nd->guidance);
        return -1;
    }
    fm_dataset *ds = fm_dataset_open(spec);
    if (!ds) {
        fprintf(stderr, "flowmatch eval: '%s' is not a .npy/.csv file, a .safetensors model or a dataset: %s\n", spec,
                fm_last_error());
        return cli_status_code(fm_last_status());
    }
    int d = fm_dataset_dim(ds), rows = fm_dataset_rows(ds);
    if ((rc = check_dim(spec, d, nd)) >= 0) {
        fm_dataset_free(ds);
        return rc;
    }
    fm_status s;
    if (nd->want_dim && rows > 0) { /* a set of images: its first n, each once */
        int m = rows < n ? rows : n;
        const uint8_t *lab = fm_dataset_labels(ds);
        t->data = malloc((size_t)m * d * sizeof(float));
        s = t->data ? fm_dataset_read_rows(ds, 0, m, t->data) : FM_ERR_NOMEM;
        if (!s && lab && nd->labels) {
            if (!(*nd->labels = malloc((size_t)m * sizeof(int)))) s = FM_ERR_NOMEM;
            for (int i = 0; !s && i < m; i++) (*nd->labels)[i] = lab[i];
        }
        if (m == rows) snprintf(label, llen, "%s (all %d images, in order)", fm_dataset_spec(ds), m);
        else snprintf(label, llen, "%s (the first %d of its %d images)", fm_dataset_spec(ds), m, rows);
        n = m;
    } else {
        t->data = malloc((size_t)n * d * sizeof(float));
        fm_rng r;
        fm_rng_seed(&r, seed, stream);
        s = t->data ? fm_dataset_sample(ds, &r, t->data, n) : FM_ERR_NOMEM;
        snprintf(label, llen, "%s (%d points)", fm_dataset_spec(ds), n);
    }
    fm_dataset_free(ds);
    if (s) {
        fm_table_free(t);
        return cli_error("eval", "drawing %s: %s", spec, s == FM_ERR_NOMEM ? "out of memory" : fm_last_error());
    }
    t->rows = n;
    t->cols = d;
    return -1;
}

/* The image metrics of points a (na images, pixels in [0, 1], clamped there)
 * by classifier c, printed: the Frechet distance between their features and
 * those of ref (nref images), the accuracy against labels (the class each
 * image was asked to show, described by why; skipped when NULL) and the
 * predicted classes. -1 on success, else an exit code. */
static int image_metrics(fm_classifier *c, const float *a, int na, const int *labels, const char *why, const float *ref,
                         int nref)
{
    fm_image_scores sc;
    double t0 = cli_now();
    if (fm_classifier_score(c, a, na, labels, ref, nref, &sc) != FM_OK)
        return cli_error("eval", "classifier scores: %s", fm_last_error());
    int K = fm_classifier_get_config(c)->classes;
    printf("Frechet distance %.4f   (the classifier's %d features of %d against %d images; %.2f s)\n", sc.frechet,
           fm_classifier_get_config(c)->hidden, na, nref, cli_now() - t0);
    if (labels)
        printf("accuracy         %.4f   (%d of %d images classified as %s)\n", sc.accuracy, sc.correct, na, why);
    printf("predicted classes of a:");
    for (int k = 0; k < K; k++) printf("%s%d: %d", k ? "  " : " ", k, sc.counts[k]);
    printf("\n");
    if (sc.clamped)
        printf("note: %ld pixel values of a outside [0, 1] were clamped before the classifier\n", sc.clamped);
    return -1;
}

/* Requested labels, one per row of a .npy or .csv file: whole numbers in
 * 0..classes-1. NULL (and the exit code in *rc) on error. */
static int *read_labels(const char *path, int classes, int *count, int *rc)
{
    fm_table t;
    if (fm_points_read(path, &t) != FM_OK) {
        *rc = cli_error("eval", "--labels: %s", fm_last_error());
        return NULL;
    }
    int *lab = t.cols == 1 ? malloc((size_t)(t.rows ? t.rows : 1) * sizeof(int)) : NULL;
    if (t.cols != 1) *rc = cli_error("eval", "--labels %s must hold one label per row, not %d columns", path, t.cols);
    else if (!lab) *rc = cli_error("eval", "out of memory");
    for (int i = 0; lab && i < t.rows; i++) {
        float v = t.data[i];
        if (!(v >= 0 && v < classes && v == floorf(v))) {
            *rc = cli_error("eval", "--labels %s: row %d holds %g, not a class of the classifier (0..%d)", path, i + 1,
                            (double)v, classes - 1);
            free(lab);
            lab = NULL;
            break;
        }
        lab[i] = (int)v;
    }
    *count = t.rows;
    fm_table_free(&t);
    return lab;
}

/* Print the metrics named in which ("w2,energy,mmd"); -1 on success. */
static int print_metrics(const float *a, int na, const float *b, int nb, int d, const char *which, double bw)
{
    if (strstr(which, "w2")) {
        int m = na < nb ? na : nb;
        if (m > 10000) fprintf(stderr, "note: exact W2 on %d points may take a while\n", m);
        double w2, t0 = cli_now();
        if (fm_w2_exact(a, b, m, d, &w2, NULL) != FM_OK) return cli_error("eval", "%s", fm_last_error());
        printf("W2 (exact)       %.6f   (%d vs %d points%s, %.2f s)\n", w2, m, m, na != nb ? ", the first of each" : "",
               cli_now() - t0);
    }
    if (strstr(which, "energy")) {
        double e;
        if (fm_energy_distance(a, na, b, nb, d, &e) != FM_OK) return cli_error("eval", "%s", fm_last_error());
        printf("energy distance  %.6f\n", e);
    }
    if (strstr(which, "mmd")) {
        double m2, h;
        if (fm_mmd_gaussian(a, na, b, nb, d, bw, &m2, &h) != FM_OK) return cli_error("eval", "%s", fm_last_error());
        printf("MMD^2            %.6f   (Gaussian kernel, bandwidth %.4g%s)\n", m2, h, bw > 0 ? "" : ", median heuristic");
    }
    return -1;
}

/* For a model side: its path energy, and normalised by W2^2 between its
 * starting points and the other side (both in the model's units). */
static int path_energy_report(const char *which, const model_side *ms, const fm_table *self, const fm_table *other)
{
    if (!ms->flow) return -1;
    int m = self->rows < other->rows ? self->rows : other->rows, d = self->cols;
    float *o = malloc((size_t)m * d * sizeof(float));
    if (!o) return cli_error("eval", "out of memory");
    memcpy(o, other->data, (size_t)m * d * sizeof(float));
    fm_flow_to_model(ms->flow, o, m);
    double w2;
    fm_status s = fm_w2_exact(ms->x0, o, m, d, &w2, NULL);
    free(o);
    if (s) return cli_error("eval", "%s", fm_last_error());
    printf("path energy (%s)  %.6f   (W2^2 from its source to the other set %.6f; normalised path energy %.6f)\n",
           which, ms->energy, w2 * w2, fabs(ms->energy - w2 * w2) / (w2 * w2));
    return -1;
}

/* The classifier of --classifier, and what its checkpoint says of its test. */
static int load_classifier(const char *path, fm_classifier **out, char *about, size_t len)
{
    fm_st *st = fm_st_load(path);
    if (!st) return cli_error("eval", "%s", fm_last_error());
    *out = fm_classifier_load(st);
    const char *acc = fm_st_meta(st, "classifier.test_accuracy"), *on = fm_st_meta(st, "classifier.test_data");
    if (*out) {
        int o = snprintf(about, len, "%s (trained on %s", path, fm_classifier_data(*out));
        if (acc && on) snprintf(about + o, len - (size_t)o, "; test accuracy %.2f%% on %s)", 100 * atof(acc), on);
        else snprintf(about + o, len - (size_t)o, ")");
    }
    fm_st_free(st);
    if (!*out) return cli_error("eval", "--classifier %s: %s", path, fm_last_error());
    return -1;
}

int cmd_eval(int argc, char **argv)
{
    const char *a = NULL, *b = NULL, *metrics = "w2,energy,mmd", *clf_path = NULL, *labels_path = NULL,
               *label = "all";
    double guidance = 1.0;
    int n = 2000, threads = 0;
    int64_t seed = 0;
    double bw = 0;
    cli_solver_opts so = cli_solver_defaults();
    const cli_opt opts[] = {
        {"a", OPT_STR, &a, "X", "first set: FILE.npy, FILE.csv, MODEL.safetensors or a dataset (required)"},
        {"b", OPT_STR, &b, "Y", "second set, same kinds (required)"},
        {"n", OPT_INT, &n, "N", "points drawn from a model or dataset (with --classifier: image sets' first N)"},
        {"seed", OPT_I64, &seed, "N", "random seed for the drawn points"},
        {"metrics", OPT_STR, &metrics, "LIST", "any of w2, energy, mmd (with --classifier: only if given)"},
        {"bandwidth", OPT_DOUBLE, &bw, "H", "MMD kernel bandwidth (0: median heuristic)"},
        {"classifier", OPT_STR, &clf_path, "FILE", "images: score them by this classifier (flowmatch classifier)"},
        {"labels", OPT_STR, &labels_path, "FILE", "with --classifier: the label each image of --a was asked to show (.npy or .csv, one per row)"},
        {"label", OPT_STR, &label, "L", "class-conditional models: 'all' (sample i asks for class i mod K), a class or 'none'"},
        {"guidance", OPT_DOUBLE, &guidance, "W", "class-conditional models: classifier-free guidance weight"},
        CLI_SOLVER_OPTIONS(so),
        {"threads", OPT_INT, &threads, "N", "threads (0: all cores)"},
    };
    unsigned char given[sizeof opts / sizeof opts[0]] = {0};
    const cli_spec spec = {"eval", NULL,
                           "Compare two point sets: exact 2-Wasserstein, energy distance and MMD; images by a classifier.",
                           "W2 is the exact optimal matching (Jonker-Volgenant) of equal numbers of points,\n"
                           "sqrt of the mean squared distance; energy distance and MMD^2 (Gaussian kernel)\n"
                           "are unbiased U-statistics. Models are sampled with the solver options; two sides\n"
                           "drawn from models or datasets use different random streams. For a model the\n"
                           "path energy E = mean integral |v|^2 dt of its trajectories is reported too, and\n"
                           "|E - W2^2| / W2^2 with W2 from its source to the other set (0 for straight,\n"
                           "optimal paths). DDPM models sample with ancestral (T steps) unless --solver ddim\n"
                           "--steps N; VAE and GAN models in one pass.\n"
                           "With --classifier (a checkpoint of `flowmatch classifier`) both sets must be\n"
                           "images (pixels in [0, 1], clamped there), and eval reports instead the Frechet\n"
                           "distance between the classifier's features of a and of b (usually real images,\n"
                           "e.g. mnist:data/mnist,split=test), the classes it predicts for a, and with\n"
                           "--labels (one whole number per row of a, .npy or .csv) its accuracy against them;\n"
                           "a labelled image set as --a is scored against its own labels. Image datasets\n"
                           "give their first --n images in order instead of draws. --metrics adds the\n"
                           "distances above. A class-conditional model is sampled for --label (by default\n"
                           "sample i asks for class i mod K, so every class has its share) with --guidance,\n"
                           "and scored against the labels it was asked for.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, given};
    int npos;
    int rc = cli_parse(&spec, argc, argv, NULL, &npos);
    if (rc >= 0) return rc;
    if (!a || !b)
        return cli_usage_error("eval", "both --a and --b are required");
    if (n < 2 || n > 100000 || seed < 0 || threads < 0 || threads > 1024 || !(bw >= 0))
        return cli_usage_error("eval", "--n must lie in 2..100000, --threads in 0..1024; --seed and --bandwidth >= 0");
    if (!*metrics)
        return cli_usage_error("eval", "--metrics is empty (w2, energy, mmd)");
    for (const char *p = metrics; *p;) {
        size_t k = strcspn(p, ",");
        if (!((k == 2 && !strncmp(p, "w2", 2)) || (k == 6 && !strncmp(p, "energy", 6)) || (k == 3 && !strncmp(p, "mmd", 3))))
            return cli_usage_error("eval", "unknown metric '%.*s' in --metrics (w2, energy, mmd)", (int)k, p);
        p += k + (p[k] == ',');
    }
    if (labels_path && !clf_path) return cli_usage_error("eval", "--labels needs --classifier");
    int want;
    if ((rc = cli_class_choice("eval", label, guidance, &want)) >= 0) return rc;
    if ((rc = cli_solver_check("eval", &so, 1)) >= 0) return rc;
    fm_set_threads(threads);
    /* the classifier and the labels first: their errors cost no sampling */
    fm_classifier *clf = NULL;
    char about[1200] = "";
    int *req = NULL, nreq = 0;
    if (clf_path && (rc = load_classifier(clf_path, &clf, about, sizeof about)) >= 0) return rc;
    if (labels_path && !(req = read_labels(labels_path, fm_classifier_get_config(clf)->classes, &nreq, &rc))) {
        fm_classifier_free(clf);
        return rc;
    }
    int *own = NULL; /* the labels of an image set given as --a */
    const fm_classifier_config *cc = clf ? fm_classifier_get_config(clf) : NULL;
    side_needs na = {cc ? cc->in_ch * cc->height * cc->width : 0, req ? NULL : &own, want, guidance};
    side_needs nb = {na.want_dim, NULL, want, guidance};
    int classic = !clf || cli_given(&spec, "metrics"); /* W2, energy, MMD and the path energy */
    fm_table ta = {0}, tb = {0};
    char la[600], lb[600];
    model_side ma = {0}, mb = {0};
    rc = load_side(a, n, (uint64_t)seed, FM_STREAM_DATA, &spec, &so, &na, &ta, la, sizeof la, &ma);
    if (rc < 0) rc = load_side(b, n, (uint64_t)seed + 1, FM_STREAM_NOISE, &spec, &so, &nb, &tb, lb, sizeof lb, &mb);
    if (rc >= 0) {
        /* a side failed, with its message */
    } else if (ta.cols != tb.cols) {
        rc = cli_error("eval", "the sets have %d and %d dimensions", ta.cols, tb.cols);
    } else if (ta.rows < 2 || tb.rows < 2) {
        rc = cli_error("eval", "each set needs at least 2 points (%d and %d)", ta.rows, tb.rows);
    } else if (req && nreq != ta.rows) {
        rc = cli_error("eval", "--labels %s has %d labels for the %d images of --a", labels_path, nreq, ta.rows);
    } else {
        printf("a: %s\nb: %s\n", la, lb);
        if (clf) printf("classifier: %s\n", about);
        if (classic) rc = print_metrics(ta.data, ta.rows, tb.data, tb.rows, ta.cols, metrics, bw);
        if (rc < 0 && classic) rc = path_energy_report("a", &ma, &ta, &tb);
        if (rc < 0 && classic) rc = path_energy_report("b", &mb, &tb, &ta);
        if (rc < 0 && clf)
            rc = image_metrics(clf, ta.data, ta.rows, req ? req : own,
                               req ? "their requested label" : ma.model ? "the class it was asked for" : "their label in the set",
                               tb.data, tb.rows);
        if (rc < 0) rc = CLI_OK;
    }
    fm_table_free(&ta);
    fm_table_free(&tb);
    fm_model_free(ma.model);
    fm_model_free(mb.model);
    free(ma.x0);
    free(mb.x0);
    free(req);
    free(own);
    fm_classifier_free(clf);
    return rc;
}
