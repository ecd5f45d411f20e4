/* svg.c - figures as standalone SVG files: the trajectory panels, a scatter
 * of samples against data, and a training-loss curve.
 *
 * Plain SVG 1.1 with inline styles, readable in any browser; files are built
 * in memory and written atomically. Coordinates use the first two dimensions
 * of the points. Not a plotting library: fixed layouts only.
 */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 1 << 16;
        while (nc < b->n + (size_t)k + 1) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
}

static fm_status sb_save(sbuf *b, const char *path)
{
    if (b->oom) {
        free(b->s);
        return fm__fail(FM_ERR_NOMEM, "%s: out of memory building the figure", path);
    }
    fm__afile af;
    fm_status s = fm__afile_open(&af, path);
    if (s == FM_OK) {
        fm__afile_write(&af, b->s, b->n);
        s = fm__afile_commit(&af);
    }
    free(b->s);
    return s;
}

static void xml_text(sbuf *b, const char *t)
{
    for (; *t; t++) {
        if (*t == '<') sb_printf(b, "&lt;");
        else if (*t == '>') sb_printf(b, "&gt;");
        else if (*t == '&') sb_printf(b, "&amp;");
        else sb_printf(b, "%c", *t);
    }
}

static void header(sbuf *b, int w, int h)
{
    sb_printf(b,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
              "font-family=\"Helvetica, Arial, sans-serif\">\n"
              "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
              w, h, w, h);
}

/* An axes box at (x0, y0), w x h, showing [xlo, xhi] x [ylo, yhi] with nx and ny
 * tick intervals: frame, ticks, title and a clip path named clip<id>. */
static void map_axes(sbuf *b, int id, double x0, double y0, double w, double h, double xlo, double xhi, double ylo,
                     double yhi, int nx, int ny, const char *title)
{
    sb_printf(b, "<clipPath id=\"clip%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n", id,
              x0, y0, w, h);
    sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", x0, y0,
              w, h);
    for (int k = 0; k <= nx; k++) {
        double v = xlo + (xhi - xlo) * k / nx, px = x0 + w * k / nx;
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>"
                     "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%g</text>\n",
                  px, y0 + h, px, y0 + h + 4, px, y0 + h + 15, fabs(v) < 1e-9 ? 0.0 : v);
    }
    for (int k = 0; k <= ny; k++) {
        double v = ylo + (yhi - ylo) * k / ny, py = y0 + h - h * k / ny;
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>"
                     "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%g</text>\n",
                  x0 - 4, py, x0, py, x0 - 6, py + 3.5, fabs(v) < 1e-9 ? 0.0 : v);
    }
    if (title) {
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" text-anchor=\"middle\">", x0 + w / 2, y0 - 8);
        xml_text(b, title);
        sb_printf(b, "</text>\n");
    }
}

/* A square box of side s showing [lo, hi]^2, six ticks a side. */
static void axes(sbuf *b, int id, double x0, double y0, double s, double lo, double hi, const char *title)
{
    map_axes(b, id, x0, y0, s, s, lo, hi, lo, hi, 6, 6, title);
}

static void points(sbuf *b, int id, const float *p, int n, int d, double x0, double y0, double s, double lo, double hi,
                   const char *color)
{
    sb_printf(b, "<g clip-path=\"url(#clip%d)\" fill=\"%s\" fill-opacity=\"0.6\">\n", id, color);
    double k = s / (hi - lo);
    for (int i = 0; i < n; i++) {
        double x = p[(size_t)i * d], y = d > 1 ? p[(size_t)i * d + 1] : 0.0;
        if (!isfinite(x) || !isfinite(y)) continue;
        sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.8\"/>\n", x0 + (x - lo) * k, y0 + s - (y - lo) * k);
    }
    sb_printf(b, "</g>\n");
}

fm_status fm_svg_panels(const char *path, const float *frames, const char *const *titles, int nframes, int n, int d,
                        double range)
{
    if (nframes < 1 || n < 0 || d < 1 || !(range > 0))
        return fm__fail(FM_ERR_ARG, "%s: nothing to draw (%d frames of %d points)", path, nframes, n);
    sbuf b = {0};
    double s = 220, m = 40, gap = 30;
    int w = (int)(m + nframes * (s + gap)), h = (int)(s + 2 * m + 10);
    header(&b, w, h);
    for (int f = 0; f < nframes; f++) {
        double x0 = m + f * (s + gap), y0 = m;
        axes(&b, f, x0, y0, s, -range, range, titles ? titles[f] : NULL);
        points(&b, f, frames + (size_t)f * n * d, n, d, x0, y0, s, -range, range, "#1f77b4");
    }
    sb_printf(&b, "</svg>\n");
    return sb_save(&b, path);
}

fm_status fm_svg_trajectory(const char *path, const float *frames, const double *times, int nframes, int n, int d,
                            double range)
{
    if (nframes < 1 || nframes > 64) return fm__fail(FM_ERR_ARG, "%s: %d frames (1..64)", path, nframes);
    char buf[64][32];
    const char *titles[64];
    for (int f = 0; f < nframes; f++) {
        snprintf(buf[f], sizeof buf[f], "t = %.2f", times[f]);
        titles[f] = buf[f];
    }
    return fm_svg_panels(path, frames, titles, nframes, n, d, range);
}

/* Symmetric range covering both clouds (robust: 99.5% of coordinates). */
static double auto_range(const float *a, int na, const float *b, int nb, int d)
{
    double m = 0;
    for (int i = 0; i < na; i++)
        for (int k = 0; k < 2 && k < d; k++) m = fmax(m, fabs(a[(size_t)i * d + k]));
    for (int i = 0; i < nb; i++)
        for (int k = 0; k < 2 && k < d; k++) m = fmax(m, fabs(b[(size_t)i * d + k]));
    if (!(m > 0) || !isfinite(m)) m = 1;
    return ceil(m * 1.05 * 2) / 2;
}

fm_status fm_svg_scatter(const char *path, const char *title, const float *a, int na, const char *la, const float *b,
                         int nb, const char *lb, int d, double range)
{
    if (d < 1) return fm__fail(FM_ERR_ARG, "%s: points have no dimensions", path);
    double r = range > 0 ? range : auto_range(a, na, b, nb, d);
    sbuf sb = {0};
    double s = 420, m = 50;
    header(&sb, (int)(s + 2 * m + 130), (int)(s + 2 * m));
    axes(&sb, 0, m, m, s, -r, r, title);
    if (b && nb) points(&sb, 0, b, nb, d, m, m, s, -r, r, "#ff7f0e");
    if (a && na) points(&sb, 0, a, na, d, m, m, s, -r, r, "#1f77b4");
    const char *labels[2] = {la ? la : "a", lb ? lb : "b"}, *colors[2] = {"#1f77b4", "#ff7f0e"};
    int counts[2] = {na, nb};
    for (int k = 0; k < 2; k++) {
        if (!counts[k]) continue;
        double y = m + 20 + 20 * k;
        sb_printf(&sb, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">",
                  m + s + 20, y, colors[k], m + s + 30, y + 4);
        xml_text(&sb, labels[k]);
        sb_printf(&sb, " (%d)</text>\n", counts[k]);
    }
    if (d > 2) sb_printf(&sb, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">dimensions 1 and 2 of %d</text>\n", m + s + 20, m + 70.0, d);
    sb_printf(&sb, "</svg>\n");
    return sb_save(&sb, path);
}

fm_status fm_svg_loss(const char *path, const float *loss, int n, const char *title)
{
    if (n < 1) return fm__fail(FM_ERR_ARG, "%s: no losses to draw", path);
    /* log10 range over finite positive values */
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++)
        if (loss[i] > 0 && isfinite(loss[i])) {
            lo = fmin(lo, log10(loss[i]));
            hi = fmax(hi, log10(loss[i]));
        }
    if (!(lo <= hi)) return fm__fail(FM_ERR_NUMERIC, "%s: no positive finite loss to draw", path);
    lo = floor(lo * 2) / 2;
    hi = ceil(hi * 2) / 2;
    if (hi - lo < 0.5) hi = lo + 0.5;
    sbuf b = {0};
    double W = 640, H = 360, mx = 70, my = 40, pw = W - mx - 20, ph = H - 2 * my;
    header(&b, (int)W, (int)H);
    sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", mx, my,
              pw, ph);
    for (double e = lo; e <= hi + 1e-9; e += 0.5) {
        double y = my + ph - (e - lo) / (hi - lo) * ph;
        sb_printf(&b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.3g</text>\n",
                  mx, y, mx + pw, y, mx - 6, y + 3.5, pow(10, e));
    }
    for (int k = 0; k <= 4; k++) {
        double x = mx + pw * k / 4;
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%d</text>\n", x, my + ph + 15,
                  (int)((double)n * k / 4));
    }
    sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">iteration</text>\n", mx + pw / 2,
              H - 6);
    if (title) {
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" text-anchor=\"middle\">", mx + pw / 2, my - 12);
        xml_text(&b, title);
        sb_printf(&b, "</text>\n");
    }
    /* raw losses (thinned to at most 2000 vertices) and an exponential moving average */
    int stride = n > 2000 ? n / 2000 : 1;
    for (int pass = 0; pass < 2; pass++) {
        sb_printf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" points=\"", pass ? "#1f77b4" : "#aec7e8",
                  pass ? "1.6" : "0.8");
        double ema = 0, wsum = 0, beta = 1.0 - 1.0 / fmax(10.0, n / 50.0);
        for (int i = 0; i < n; i++) {
            double v = loss[i];
            if (!(v > 0 && isfinite(v))) continue;
            ema = beta * ema + (1 - beta) * log10(v);
            wsum = beta * wsum + (1 - beta);
            if (i % stride && i != n - 1) continue;
            double yv = pass ? ema / wsum : log10(v);
            double x = mx + pw * (n > 1 ? (double)i / (n - 1) : 0.5), y = my + ph - (yv - lo) / (hi - lo) * ph;
            sb_printf(&b, "%.1f,%.1f ", x, y);
        }
        sb_printf(&b, "\"/>\n");
    }
    sb_printf(&b, "</svg>\n");
    return sb_save(&b, path);
}

static int cmp_double_asc(const void *p, const void *q)
{
    double a = *(const double *)p, b = *(const double *)q;
    return a < b ? -1 : a > b;
}

/* Viridis-like ramp through five anchors, u in [0, 1]. */
static void ramp(double u, int *r, int *g, int *b)
{
    static const int c[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    if (!(u > 0)) u = 0;
    if (u > 1) u = 1;
    double x = u * 4;
    int k = x >= 4 ? 3 : (int)x;
    double f = x - k;
    *r = (int)lround(c[k][0] + f * (c[k + 1][0] - c[k][0]));
    *g = (int)lround(c[k][1] + f * (c[k + 1][1] - c[k][1]));
    *b = (int)lround(c[k][2] + f * (c[k + 1][2] - c[k][2]));
}

/* The colour scale of a heat map of n log-densities: the largest, *top, and
 * the density (relative to it) at the 99.5th percentile, *q, so that one
 * sharp peak does not leave the rest of the map dark. */
static fm_status heat_scale(const char *path, const double *logp, size_t n, double *top, double *q)
{
    double mx = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (isfinite(logp[i]) && logp[i] > mx) mx = logp[i];
    if (!isfinite(mx)) return fm__fail(FM_ERR_NUMERIC, "%s: the density is nowhere finite", path);
    double *dens = malloc(n * sizeof(double));
    if (!dens) return fm__fail(FM_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) dens[i] = isfinite(logp[i]) ? exp(logp[i] - mx) : 0.0;
    qsort(dens, n, sizeof(double), cmp_double_asc);
    *q = dens[(size_t)((n - 1) * 0.995)];
    free(dens);
    if (!(*q > 0)) *q = 1;
    *top = mx;
    return FM_OK;
}

/* The cells of a rows x cols grid of log-densities over the box at (x0, y0),
 * w x h, row 0 at the bottom. */
static void heat_cells(sbuf *b, const double *logp, int rows, int cols, double x0, double y0, double w, double h,
                       double top, double q)
{
    double cw = w / cols, ch = h / rows;
    sb_printf(b, "<g shape-rendering=\"crispEdges\">\n");
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            int r, g, bl;
            double v = logp[(size_t)i * cols + j];
            ramp(isfinite(v) ? exp(v - top) / q : 0.0, &r, &g, &bl);
            sb_printf(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#%02x%02x%02x\"/>\n",
                      x0 + j * cw, y0 + h - (i + 1) * ch, cw + 0.5, ch + 0.5, r, g, bl);
        }
    sb_printf(b, "</g>\n");
}

fm_status fm_svg_density(const char *path, const char *title, const double *logp, int G, double lo, double hi,
                         const float *pts, int n, int d)
{
    if (G < 2 || !(hi > lo)) return fm__fail(FM_ERR_ARG, "%s: a density grid needs G >= 2 and lo < hi", path);
    double top, q;
    fm_status st = heat_scale(path, logp, (size_t)G * G, &top, &q);
    if (st) return st;
    sbuf b = {0};
    double s = 400, m = 50, gap = 60;
    header(&b, (int)(2 * s + 2 * m + gap), (int)(s + 2 * m));
    axes(&b, 0, m, m, s, lo, hi, title ? title : "model density");
    heat_cells(&b, logp, G, G, m, m, s, s, top, q); /* row i is y = lo + (i + 0.5) cell */
    sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", m, m, s, s);
    double x1 = m + s + gap;
    axes(&b, 1, x1, m, s, lo, hi, "data");
    if (pts && n) points(&b, 1, pts, n, d, x1, m, s, lo, hi, "#1f77b4");
    sb_printf(&b, "</svg>\n");
    return sb_save(&b, path);
}

/* ---- points on the sphere or the torus as a map */

/* Map coordinates of point p: longitude and latitude in degrees (sphere), the
 * two angles in radians (torus). */
static void map_xy(fm_manifold m, const float *p, double *x, double *y)
{
    if (m == FM_MANIFOLD_SPHERE) {
        double z = p[2] > 1 ? 1 : p[2] < -1 ? -1 : p[2];
        *x = atan2(p[1], p[0]) * 180 / M_PI;
        *y = asin(z) * 180 / M_PI;
    } else {
        *x = p[0];
        *y = p[1];
    }
}

fm_status fm_svg_map(const char *path, fm_manifold m, const char *title, const float *a, int na, const char *la,
                     const float *b, int nb, const char *lb, const double *logp, int G)
{
    if (m != FM_MANIFOLD_SPHERE && m != FM_MANIFOLD_TORUS)
        return fm__fail(FM_ERR_ARG, "%s: a map is of the sphere or the torus", path);
    if (logp && G < 2) return fm__fail(FM_ERR_ARG, "%s: a density grid needs G >= 2", path);
    int sph = m == FM_MANIFOLD_SPHERE, rows = logp ? G : 0, cols = sph ? 2 * G : G;
    double xlo = sph ? -180 : 0, xhi = sph ? 180 : 2 * M_PI, ylo = sph ? -90 : 0, yhi = sph ? 90 : 2 * M_PI;
    double w = sph ? 640 : 360, h = 320 + (sph ? 0 : 40), mx = 50, gap = 50;
    int panels = (a && na > 0) + (b && nb > 0) + (logp != NULL);
    if (!panels) return fm__fail(FM_ERR_ARG, "%s: nothing to draw", path);
    double top = 0, q = 1;
    fm_status st = logp ? heat_scale(path, logp, (size_t)rows * cols, &top, &q) : FM_OK;
    if (st) return st;
    sbuf sb = {0};
    header(&sb, (int)(w + 2 * mx), (int)(panels * (h + gap) + gap));
    double y0 = gap;
    int id = 0;
    if (logp) { /* the density as a heat map */
        map_axes(&sb, id++, mx, y0, w, h, xlo, xhi, ylo, yhi, sph ? 6 : 4, sph ? 6 : 4, title ? title : "model density");
        heat_cells(&sb, logp, rows, cols, mx, y0, w, h, top, q);
        y0 += h + gap;
    }
    const float *sets[2] = {a, b};
    const int ns[2] = {na, nb};
    const char *names[2] = {la, lb}, *colors[2] = {"#d62728", "#1f77b4"};
    for (int k = 0; k < 2; k++) {
        if (!sets[k] || ns[k] <= 0) continue;
        map_axes(&sb, id, mx, y0, w, h, xlo, xhi, ylo, yhi, sph ? 6 : 4, sph ? 6 : 4, names[k]);
        sb_printf(&sb, "<g clip-path=\"url(#clip%d)\" fill=\"%s\" fill-opacity=\"0.5\">\n", id++, colors[k]);
        for (int i = 0; i < ns[k]; i++) {
            double x, y;
            map_xy(m, sets[k] + (size_t)i * (sph ? 3 : 2), &x, &y);
            if (!isfinite(x) || !isfinite(y)) continue;
            sb_printf(&sb, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.2\"/>\n", mx + (x - xlo) / (xhi - xlo) * w,
                      y0 + h - (y - ylo) / (yhi - ylo) * h);
        }
        sb_printf(&sb, "</g>\n");
        y0 += h + gap;
    }
    sb_printf(&sb, "</svg>\n");
    return sb_save(&sb, path);
}

void fm_map_grid(fm_manifold m, int G, float *pts)
{
    int sph = m == FM_MANIFOLD_SPHERE, cols = sph ? 2 * G : G;
    for (int i = 0; i < G; i++)
        for (int j = 0; j < cols; j++) {
            float *p = pts + ((size_t)i * cols + j) * (sph ? 3 : 2);
            if (sph) {
                double la = (-90 + (i + 0.5) * 180.0 / G) * M_PI / 180, lo = (-180 + (j + 0.5) * 180.0 / G) * M_PI / 180;
                p[0] = (float)(cos(la) * cos(lo)), p[1] = (float)(cos(la) * sin(lo)), p[2] = (float)sin(la);
            } else {
                p[0] = (float)((j + 0.5) * 2 * M_PI / G), p[1] = (float)((i + 0.5) * 2 * M_PI / G);
            }
        }
}
