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

/* One side of the comparison: where its points come from, what they must be,
 * and then the points, how they were made (for the report) and, for a model,
 * its trajectories. */
typedef struct {
    const char *spec; /* --a or --b */
    uint64_t seed, stream;
    side_needs nd;
    fm_table t;
    char label[600];
    long nfe;         /* a model's network evaluations; -1 for points */
    model_side ms;
} eval_side;

/* Refuse points of the wrong size for the classifier; CLI_GO if they fit. */
static int check_dim(const char *spec, int d, const side_needs *nd)
{
    if (!nd->want_dim || d == nd->want_dim) return CLI_GO;
    return cli_error("eval", "--classifier scores images of %d pixels; '%s' has %d values per point", nd->want_dim, spec,
                     d);
}

/* The points of a .npy or .csv file. */
static int load_file_side(eval_side *s)
{
    fm_table *t = &s->t;
    int rc;
    if (fm_points_read(s->spec, t) != FM_OK) return cli_error("eval", "%s", fm_last_error());
    if ((rc = check_dim(s->spec, t->cols, &s->nd)) != CLI_GO) return rc;
    for (size_t i = 0; i < (size_t)t->rows * t->cols; i++)
        if (!isfinite(t->data[i]))
            return cli_error("eval", "%s: row %zu holds a NaN or infinite value", s->spec, i / (size_t)t->cols + 1);
    snprintf(s->label, sizeof s->label, "%s (%d points)", s->spec, t->rows);
    return CLI_GO;
}

/* How a model side's n samples were drawn, for the report. */
static void describe_model(eval_side *s, int n, const fm_solver_config *sc, long nfe)
{
    fm_model *m = s->ms.model;
    fm_sampling how = fm_model_sampling(m);
    const char *own = how == FM_SAMPLING_OWN ? fm_model_method_name(m) : "", *sp = how == FM_SAMPLING_OWN ? " " : "";
    const char *sampler = sc->sampler ? sc->sampler : fm_solver_name(sc->kind);
    const side_needs *nd = &s->nd;
    if (how == FM_SAMPLING_DIRECT)
        snprintf(s->label, sizeof s->label, "%s (%d samples, %s, NFE 1)", s->spec, n, fm_model_method_name(m));
    else if (!fm_model_flow(m) || !fm_flow_num_classes(fm_model_flow(m)))
        snprintf(s->label, sizeof s->label, "%s (%d samples, %s%s%s, NFE %ld)", s->spec, n, own, sp, sampler, nfe);
    else
        snprintf(s->label, sizeof s->label, "%s (%d samples, %s%s%s, NFE %ld; %s, guidance %g)", s->spec, n, own, sp,
                 sampler, nfe,
                 nd->label == -2 ? "class i mod K for sample i" : nd->label == -1 ? "no class" : "one class",
                 nd->guidance);
}

/* n samples of a checkpoint's model with the solver options (a model that
 * cannot use them takes its own sampler); a flow's are the ends of
 * trajectories whose starting points and path energy are kept too. */
static int load_model_side(int n, const cli_spec *cs, const cli_solver_opts *opts, eval_side *s)
{
    int rc = cli_load_model("eval", s->spec, 1, &s->ms.model);
    if (rc != CLI_GO) return rc;
    fm_model *m = s->ms.model;
    int d = fm_model_dim(m), is_fm = fm_model_sampling(m) == FM_SAMPLING_ODE; /* a flow: its path energy too */
    if ((rc = check_dim(s->spec, d, &s->nd)) != CLI_GO) return rc;
    fm_solver_config sc;
    double *grid;
    int ngrid;
    cli_solver_opts so = *opts;
    if ((rc = cli_sampler_setup("eval", cs, &so, m, 1, 0, &sc, &grid, &ngrid)) != CLI_GO) return rc;
    is_fm = is_fm && !sc.sampler; /* a stochastic sampler's trajectories have no path energy */
    s->t.data = malloc((size_t)n * d * sizeof(float));
    s->ms.x0 = is_fm ? malloc((size_t)n * d * sizeof(float)) : NULL;
    fm_rng r;
    fm_rng_seed(&r, s->seed, s->stream);
    fm_solve_stats st;
    fm_status e = !s->t.data || (is_fm && !s->ms.x0) ? FM_ERR_NOMEM : condition_model(m, n, &s->nd, s->nd.labels);
    if (!e)
        e = is_fm ? fm_flow_path_energy(fm_model_flow(m), n, NULL, &r, &sc, grid, ngrid, s->ms.x0, s->t.data,
                                        &s->ms.energy, &st)
                  : fm_model_sample(m, n, &r, &sc, grid, ngrid, s->t.data, NULL, NULL, &st);
    free(grid);
    if (e) return cli_error("eval", "sampling %s: %s", s->spec, e == FM_ERR_NOMEM ? "out of memory" : fm_last_error());
    s->ms.flow = is_fm ? fm_model_flow(m) : NULL;
    s->t.rows = n;
    s->t.cols = d;
    describe_model(s, n, &sc, st.nfe);
    s->nfe = st.nfe;
    return CLI_GO;
}

/* A dataset's points: n drawn, or for the classifier an image set's first n
 * in order (with their labels, when asked for). */
static int load_dataset_side(int n, eval_side *s)
{
    const side_needs *nd = &s->nd;
    fm_table *t = &s->t;
    fm_dataset *ds = fm_dataset_open(s->spec);
    if (!ds) {
        int code = cli_status_code(fm_last_status());
        const char *f = "'%s' is not a .npy/.csv file, a .safetensors model or a dataset: %s";
        return code == CLI_USAGE ? cli_usage_error("eval", f, s->spec, fm_last_error())
                                 : cli_error("eval", f, s->spec, fm_last_error());
    }
    int d = fm_dataset_dim(ds), rows = fm_dataset_rows(ds), rc;
    if ((rc = check_dim(s->spec, d, nd)) != CLI_GO) {
        fm_dataset_free(ds);
        return rc;
    }
    fm_status e;
    if (nd->want_dim && rows > 0) { /* a set of images: its first n, each once */
        int m = rows < n ? rows : n;
        const uint8_t *lab = fm_dataset_labels(ds);
        t->data = malloc((size_t)m * d * sizeof(float));
        e = t->data ? fm_dataset_read_rows(ds, 0, m, t->data) : FM_ERR_NOMEM;
        if (!e && lab && nd->labels) {
            if (!(*nd->labels = malloc((size_t)m * sizeof(int)))) e = FM_ERR_NOMEM;
            for (int i = 0; !e && i < m; i++) (*nd->labels)[i] = lab[i];
        }
        if (m == rows) snprintf(s->label, sizeof s->label, "%s (all %d images, in order)", fm_dataset_spec(ds), m);
        else snprintf(s->label, sizeof s->label, "%s (the first %d of its %d images)", fm_dataset_spec(ds), m, rows);
        n = m;
    } else {
        t->data = malloc((size_t)n * d * sizeof(float));
        fm_rng r;
        fm_rng_seed(&r, s->seed, s->stream);
        e = t->data ? fm_dataset_sample(ds, &r, t->data, n) : FM_ERR_NOMEM;
        snprintf(s->label, sizeof s->label, "%s (%d points)", fm_dataset_spec(ds), n);
    }
    fm_dataset_free(ds);
    if (e) return cli_error("eval", "drawing %s: %s", s->spec, e == FM_ERR_NOMEM ? "out of memory" : fm_last_error());
    t->rows = n;
    t->cols = d;
    return CLI_GO;
}

/* Points for one side: a file's, a model's samples or a dataset's. What it
 * allocates is freed by side_free, also after an error. */
static int load_side(int n, const cli_spec *cs, const cli_solver_opts *opts, eval_side *s)
{
    if (fm_points_file(s->spec)) return cli_dist_go("eval", load_file_side(s)); /* FILE.csv, FILE.npy, csv:FILE, npy:FILE */
    if (cli_has_suffix(s->spec, ".safetensors")) return load_model_side(n, cs, opts, s);
    return cli_dist_go("eval", load_dataset_side(n, s)); /* any rank may fail to read a file */
}

static void side_free(eval_side *s)
{
    fm_table_free(&s->t);
    fm_model_free(s->ms.model);
    free(s->ms.x0);
}

/* The image metrics of points a (na images, pixels in [0, 1], clamped there)
 * by classifier c, printed: the Frechet distance between their features and
 * those of ref (nref images), the accuracy against labels (the class each
 * image was asked to show, described by why; skipped when NULL) and the
 * predicted classes. CLI_GO on success, else an exit code. */
static int image_metrics(fm_classifier *c, const float *a, int na, const int *labels, const char *why, const float *ref,
                         int nref, cli_json *j)
{
    fm_image_scores sc;
    double t0 = cli_now();
    if (fm_classifier_score(c, a, na, labels, ref, nref, &sc) != FM_OK)
        return cli_error("eval", "classifier scores: %s", fm_last_error());
    int K = fm_classifier_get_config(c)->classes;
    if (j) {
        cli_json_num(j, "frechet", sc.frechet);
        cli_json_int(j, "features", fm_classifier_get_config(c)->hidden);
        if (labels) cli_json_num(j, "accuracy", sc.accuracy), cli_json_int(j, "correct", sc.correct);
        cli_json_open(j, "predicted_classes", '[');
        for (int k = 0; k < K; k++) cli_json_int(j, NULL, sc.counts[k]);
        cli_json_close(j, ']');
        cli_json_int(j, "clamped_pixels", sc.clamped);
        return CLI_GO;
    }
    printf("Frechet distance %.4f   (the classifier's %d features of %d against %d images; %.2f s)\n", sc.frechet,
           fm_classifier_get_config(c)->hidden, na, nref, cli_now() - t0);
    if (labels)
        printf("accuracy         %.4f   (%d of %d images classified as %s)\n", sc.accuracy, sc.correct, na, why);
    printf("predicted classes of a:");
    for (int k = 0; k < K; k++) printf("%s%d: %d", k ? "  " : " ", k, sc.counts[k]);
    printf("\n");
    if (sc.clamped)
        printf("note: %ld pixel values of a outside [0, 1] were clamped before the classifier\n", sc.clamped);
    return CLI_GO;
}

/* Requested labels, one per row of a .npy or .csv file: whole numbers in
 * 0..classes-1, into *out (malloc'ed) and their count into *count. */
static int read_labels(const char *path, int classes, int **out, int *count)
{
    fm_table t;
    if (fm_points_read(path, &t) != FM_OK) return cli_error("eval", "--labels: %s", fm_last_error());
    int rc = CLI_GO;
    int *lab = t.cols == 1 ? malloc((size_t)(t.rows ? t.rows : 1) * sizeof(int)) : NULL;
    if (t.cols != 1) rc = cli_error("eval", "--labels %s must hold one label per row, not %d columns", path, t.cols);
    else if (!lab) rc = cli_error("eval", "out of memory");
    for (int i = 0; lab && i < t.rows; i++) {
        float v = t.data[i];
        if (!(v >= 0 && v < classes && v == floorf(v))) {
            rc = cli_error("eval", "--labels %s: row %d holds %g, not a class of the classifier (0..%d)", path, i + 1,
                           (double)v, classes - 1);
            free(lab);
            lab = NULL;
            break;
        }
        lab[i] = (int)v;
    }
    *out = lab;
    *count = t.rows;
    fm_table_free(&t);
    return rc;
}

/* Print the metrics named in which ("w2,energy,mmd"); CLI_GO on success. */
static int print_metrics(const float *a, int na, const float *b, int nb, int d, const char *which, double bw,
                         cli_json *j)
{
    if (strstr(which, "w2")) {
        int m = na < nb ? na : nb;
        if (m > 10000) fprintf(stderr, "note: exact W2 on %d points may take a while\n", m);
        double w2, t0 = cli_now();
        if (fm_w2_exact(a, b, m, d, &w2, NULL) != FM_OK) return cli_error("eval", "%s", fm_last_error());
        if (j) cli_json_num(j, "w2", w2), cli_json_int(j, "w2_points", m);
        else printf("W2 (exact)       %.6f   (%d vs %d points%s, %.2f s)\n", w2, m, m, na != nb ? ", the first of each" : "",
               cli_now() - t0);
    }
    if (strstr(which, "energy")) {
        double e;
        if (fm_energy_distance(a, na, b, nb, d, &e) != FM_OK) return cli_error("eval", "%s", fm_last_error());
        if (j) cli_json_num(j, "energy_distance", e);
        else printf("energy distance  %.6f\n", e);
    }
    if (strstr(which, "mmd")) {
        double m2, h;
        if (fm_mmd_gaussian(a, na, b, nb, d, bw, &m2, &h) != FM_OK) return cli_error("eval", "%s", fm_last_error());
        if (j) cli_json_num(j, "mmd2", m2), cli_json_num(j, "mmd_bandwidth", h);
        else printf("MMD^2            %.6f   (Gaussian kernel, bandwidth %.4g%s)\n", m2, h, bw > 0 ? "" : ", median heuristic");
    }
    return CLI_GO;
}

/* On a manifold (--manifold, or a side's rfm model): W2 under the geodesic
 * distance, and the share of each side's points off the manifold. */
static int geodesic_w2(const char *name, const fm_model *ma, const fm_model *mb, const fm_table *ta, const fm_table *tb,
                       cli_json *j)
{
    fm_manifold m = FM_MANIFOLD_AUTO;
    if (name) m = (fm_manifold)fm_manifold_from_name(name);
    else if (ma) m = fm_model_manifold(ma);
    if (m == FM_MANIFOLD_AUTO && mb) m = fm_model_manifold(mb);
    if (m == FM_MANIFOLD_AUTO) return CLI_GO;
    int d = fm_manifold_dim(m), n = ta->rows < tb->rows ? ta->rows : tb->rows;
    if (ta->cols != d) return cli_usage_error("eval", "--manifold %s takes points of %d columns, not %d",
                                              fm_manifold_name(m), d, ta->cols);
    const fm_table *t[2] = {ta, tb};
    double off[2];
    for (int k = 0; k < 2; k++) { /* a point is off when it is more than 1e-5 from the manifold */
        int bad = 0;
        for (int i = 0; i < t[k]->rows; i++) {
            const float *p = t[k]->data + (size_t)i * d;
            if (m == FM_MANIFOLD_SPHERE)
                bad += fabs(sqrt((double)p[0] * p[0] + (double)p[1] * p[1] + (double)p[2] * p[2]) - 1) > 1e-5;
            else bad += !(p[0] >= 0 && p[0] < 2 * M_PI && p[1] >= 0 && p[1] < 2 * M_PI);
        }
        off[k] = t[k]->rows ? (double)bad / t[k]->rows : 0;
    }
    float *a = malloc((size_t)n * d * sizeof(float)), *b = malloc((size_t)n * d * sizeof(float));
    if (!a || !b) {
        free(a), free(b);
        return cli_error("eval", "out of memory");
    }
    memcpy(a, ta->data, (size_t)n * d * sizeof(float)); /* the geodesic distance of the points put on it */
    memcpy(b, tb->data, (size_t)n * d * sizeof(float));
    fm_manifold_project(m, a, n);
    fm_manifold_project(m, b, n);
    double w2, t0 = cli_now();
    fm_status s = fm_manifold_w2(m, a, b, n, &w2);
    free(a), free(b);
    if (s) return cli_error("eval", "%s", fm_last_error());
    if (j) {
        cli_json_str(j, "manifold", fm_manifold_name(m));
        cli_json_num(j, "geodesic_w2", w2);
        cli_json_num(j, "a_off_manifold", off[0]);
        cli_json_num(j, "b_off_manifold", off[1]);
    } else {
        printf("geodesic W2      %.6f   (on the %s, %d vs %d points, %.2f s)\n", w2, fm_manifold_name(m), n, n,
               cli_now() - t0);
        printf("off the %s    a %.4f%%, b %.4f%% of the points (more than 1e-5 from it)\n", fm_manifold_name(m),
               100 * off[0], 100 * off[1]);
    }
    return CLI_GO;
}

/* For a model side: its path energy, and normalised by W2^2 between its
 * starting points and the other side (both in the model's units). */
static int path_energy_report(const char *which, const model_side *ms, const fm_table *self, const fm_table *other,
                              cli_json *j)
{
    if (!ms->flow) return CLI_GO;
    int m = self->rows < other->rows ? self->rows : other->rows, d = self->cols;
    float *o = malloc((size_t)m * d * sizeof(float));
    if (!o) return cli_error("eval", "out of memory");
    memcpy(o, other->data, (size_t)m * d * sizeof(float));
    fm_flow_to_model(ms->flow, o, m);
    double w2;
    fm_status s = fm_w2_exact(ms->x0, o, m, d, &w2, NULL);
    free(o);
    if (s) return cli_error("eval", "%s", fm_last_error());
    if (j) {
        char k[32];
        snprintf(k, sizeof k, "path_energy_%s", which);
        cli_json_open(j, k, '{');
        cli_json_num(j, "energy", ms->energy);
        cli_json_num(j, "w2_squared", w2 * w2);
        cli_json_num(j, "normalised", fabs(ms->energy - w2 * w2) / (w2 * w2));
        cli_json_close(j, '}');
        return CLI_GO;
    }
    printf("path energy (%s)  %.6f   (W2^2 from its source to the other set %.6f; normalised path energy %.6f)\n",
           which, ms->energy, w2 * w2, fabs(ms->energy - w2 * w2) / (w2 * w2));
    return CLI_GO;
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
    return CLI_GO;
}

/* The command line. */
typedef struct {
    const char *a, *b, *metrics, *clf_path, *labels_path, *label, *manifold;
    double guidance, bw;
    int n, threads, json;
    int64_t seed;
    cli_solver_opts so;
    int want; /* --label: -2 class i mod K, -1 none, else one class */
} eval_opts;

/* One run: the classifier and its labels, and the two sides. */
typedef struct {
    fm_classifier *clf;
    char about[1200];
    int *req, nreq; /* --labels */
    int *own;       /* the labels of an image set given as --a */
    eval_side a, b;
} eval_run;

static void run_free(eval_run *r)
{
    side_free(&r->a);
    side_free(&r->b);
    free(r->req);
    free(r->own);
    fm_classifier_free(r->clf);
}

/* The options on their own, before any file is read. */
static int check_options(eval_opts *o)
{
    int rc;
    if (!o->a || !o->b) return cli_usage_error("eval", "both --a and --b are required");
    if (o->manifold && fm_manifold_from_name(o->manifold) <= FM_MANIFOLD_AUTO)
        return cli_usage_error("eval", "--manifold '%s' must be sphere or torus", o->manifold);
    if (o->n < 2 || o->n > 100000 || o->seed < 0 || o->threads < 0 || o->threads > 1024 || !(o->bw >= 0))
        return cli_usage_error("eval", "--n must lie in 2..100000, --threads in 0..1024; --seed and --bandwidth >= 0");
    if (!*o->metrics) return cli_usage_error("eval", "--metrics is empty (w2, energy, mmd)");
    for (const char *p = o->metrics; *p;) {
        size_t k = strcspn(p, ",");
        if (!((k == 2 && !strncmp(p, "w2", 2)) || (k == 6 && !strncmp(p, "energy", 6)) || (k == 3 && !strncmp(p, "mmd", 3))))
            return cli_usage_error("eval", "unknown metric '%.*s' in --metrics (w2, energy, mmd)", (int)k, p);
        p += k + (p[k] == ',');
    }
    if (o->labels_path && !o->clf_path) return cli_usage_error("eval", "--labels needs --classifier");
    if ((rc = cli_class_choice("eval", o->label, o->guidance, &o->want)) != CLI_GO) return rc;
    return cli_solver_check("eval", &o->so, 1);
}

/* The classifier and the labels first: their errors cost no sampling. Then
 * what each side must be. */
static int setup(const eval_opts *o, eval_run *r)
{
    int rc;
    if (o->clf_path && (rc = cli_dist_go("eval", load_classifier(o->clf_path, &r->clf, r->about, sizeof r->about))) != CLI_GO)
        return rc;
    if (o->labels_path &&
        (rc = read_labels(o->labels_path, fm_classifier_get_config(r->clf)->classes, &r->req, &r->nreq)) != CLI_GO)
        return rc;
    const fm_classifier_config *cc = r->clf ? fm_classifier_get_config(r->clf) : NULL;
    r->a.spec = o->a;
    r->a.seed = (uint64_t)o->seed;
    r->a.stream = FM_STREAM_DATA;
    r->a.nd = (side_needs){cc ? cc->in_ch * cc->height * cc->width : 0, r->req ? NULL : &r->own, o->want, o->guidance};
    r->b.spec = o->b;
    r->b.seed = (uint64_t)o->seed + 1;
    r->b.stream = FM_STREAM_NOISE;
    r->b.nd = (side_needs){r->a.nd.want_dim, NULL, o->want, o->guidance};
    return CLI_GO;
}

/* The two sets side by side: the distances, the path energies and, with a
 * classifier, the image metrics. */
static int report(const eval_opts *o, const cli_spec *spec, eval_run *r)
{
    const fm_table *ta = &r->a.t, *tb = &r->b.t;
    int classic = !r->clf || cli_given(spec, "metrics"); /* W2, energy, MMD and the path energy */
    int rc;
    if (ta->cols != tb->cols) return cli_error("eval", "the sets have %d and %d dimensions", ta->cols, tb->cols);
    if (ta->rows < 2 || tb->rows < 2)
        return cli_error("eval", "each set needs at least 2 points (%d and %d)", ta->rows, tb->rows);
    if (r->req && r->nreq != ta->rows)
        return cli_error("eval", "--labels %s has %d labels for the %d images of --a", o->labels_path, r->nreq,
                         ta->rows);
    cli_json jj = {0}, *j = o->json ? &jj : NULL;
    if (j) {
        cli_json_open(j, NULL, '{');
        cli_json_str(j, "a", r->a.label);
        cli_json_str(j, "b", r->b.label);
        cli_json_int(j, "a_points", ta->rows);
        cli_json_int(j, "b_points", tb->rows);
        if (r->a.ms.model) cli_json_int(j, "a_nfe", r->a.nfe);
        if (r->b.ms.model) cli_json_int(j, "b_nfe", r->b.nfe);
        if (r->clf) cli_json_str(j, "classifier", r->about);
    } else {
        printf("a: %s\nb: %s\n", r->a.label, r->b.label);
        if (r->clf) printf("classifier: %s\n", r->about);
    }
    if (classic) {
        rc = print_metrics(ta->data, ta->rows, tb->data, tb->rows, ta->cols, o->metrics, o->bw, j);
        if (rc != CLI_GO) return rc;
        if ((rc = geodesic_w2(o->manifold, r->a.ms.model, r->b.ms.model, ta, tb, j)) != CLI_GO) return rc;
        if ((rc = path_energy_report("a", &r->a.ms, ta, tb, j)) != CLI_GO) return rc;
        if ((rc = path_energy_report("b", &r->b.ms, tb, ta, j)) != CLI_GO) return rc;
    }
    if (r->clf) {
        const char *why = r->req ? "their requested label"
                          : r->a.ms.model ? "the class it was asked for"
                                          : "their label in the set";
        rc = image_metrics(r->clf, ta->data, ta->rows, r->req ? r->req : r->own, why, tb->data, tb->rows, j);
        if (rc != CLI_GO) return rc;
    }
    if (j) cli_json_close(j, '}');
    return CLI_OK;
}

/* Everything after the options: CLI_OK, or the exit code of the step that failed. */
static int run(const eval_opts *o, const cli_spec *spec, eval_run *r)
{
    int rc;
    fm_set_threads(o->threads);
    if ((rc = setup(o, r)) != CLI_GO) return rc;
    if ((rc = load_side(o->n, spec, &o->so, &r->a)) != CLI_GO) return rc;
    if ((rc = load_side(o->n, spec, &o->so, &r->b)) != CLI_GO) return rc;
    return report(o, spec, r);
}

int cmd_eval(int argc, char **argv)
{
    eval_opts o = {.metrics = "w2,energy,mmd", .label = "all", .guidance = 1.0, .n = 2000, .so = cli_solver_defaults()};
    const cli_opt opts[] = {
        {"a", OPT_STR, &o.a, "X", "first set: FILE.npy, FILE.csv, MODEL.safetensors or a dataset (required)"},
        {"b", OPT_STR, &o.b, "Y", "second set, same kinds (required)"},
        {"n", OPT_INT, &o.n, "N", "points drawn from a model or dataset (with --classifier: image sets' first N)"},
        {"seed", OPT_I64, &o.seed, "N", "random seed for the drawn points"},
        {"metrics", OPT_STR, &o.metrics, "LIST", "any of w2, energy, mmd (with --classifier: only if given)"},
        {"json", OPT_FLAG, &o.json, NULL, "print one JSON object (the numbers of the report) instead of the text"},
        {"bandwidth", OPT_DOUBLE, &o.bw, "H", "MMD kernel bandwidth (0: median heuristic)"},
        {"manifold", OPT_STR, &o.manifold, "NAME", "sphere or torus: also W2 under the geodesic distance (default: an rfm model's own)"},
        {"classifier", OPT_STR, &o.clf_path, "FILE", "images: score them by this classifier (flowmatch classifier)"},
        {"labels", OPT_STR, &o.labels_path, "FILE", "with --classifier: the label each image of --a was asked to show (.npy or .csv, one per row)"},
        {"label", OPT_STR, &o.label, "L", "class-conditional models: 'all' (sample i asks for class i mod K), a class or 'none'"},
        {"guidance", OPT_DOUBLE, &o.guidance, "W", "class-conditional models: classifier-free guidance weight"},
        CLI_SOLVER_OPTIONS(o.so),
        {"threads", OPT_INT, &o.threads, "N", "threads (0: all cores)"},
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
    int npos, rc;
    if ((rc = cli_parse(&spec, argc, argv, NULL, &npos)) != CLI_GO) return rc;
    if ((rc = check_options(&o)) != CLI_GO) return rc;
    eval_run r = {0};
    rc = run(&o, &spec, &r);
    run_free(&r);
    return rc;
}
