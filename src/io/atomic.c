/* atomic.c - replace a file only once its new contents are complete.
 *
 * Writers open a temporary file beside the target and rename it over the
 * target on success, so an interrupted or failed write never leaves a
 * half-written file where a good one was.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

fm_status fm__afile_open(fm__afile *a, const char *path)
{
    size_t n = strlen(path);
    a->path = path;
    a->f = NULL;
    a->failed = 0;
    a->tmp = malloc(n + 32);
    if (!a->tmp) return fm__fail(FM_ERR_NOMEM, "out of memory writing %s", path);
    snprintf(a->tmp, n + 32, "%s.tmp%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        fm_status s = fm__fail(FM_ERR_IO, "%s: cannot create: %s", a->tmp, strerror(errno));
        free(a->tmp);
        a->tmp = NULL;
        return s;
    }
    return FM_OK;
}

void fm__afile_write(fm__afile *a, const void *p, size_t n)
{
    if (!a->failed && n && fwrite(p, 1, n, a->f) != n) a->failed = errno ? errno : EIO;
}

fm_status fm__afile_commit(fm__afile *a)
{
    int err = a->failed;
    if (fflush(a->f) != 0 && !err) err = errno;
    if (!err && fsync(fileno(a->f)) != 0) err = errno;
    if (fclose(a->f) != 0 && !err) err = errno;
    a->f = NULL;
    fm_status s = FM_OK;
    if (err) {
        s = fm__fail(FM_ERR_IO, "%s: write failed: %s", a->tmp, strerror(err));
        remove(a->tmp);
    } else if (rename(a->tmp, a->path) != 0) {
        s = fm__fail(FM_ERR_IO, "%s: cannot replace: %s", a->path, strerror(errno));
        remove(a->tmp);
    }
    free(a->tmp);
    a->tmp = NULL;
    return s;
}

void fm__afile_abort(fm__afile *a)
{
    if (a->f) fclose(a->f);
    if (a->tmp) remove(a->tmp);
    free(a->tmp);
    a->f = NULL;
    a->tmp = NULL;
}

fm_status fm__read_file(const char *path, unsigned char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fm__fail(FM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    errno = 0;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            unsigned char *nb = cap > ((size_t)1 << 40) ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (!buf) return fm__fail(FM_ERR_NOMEM, "%s: out of memory reading the file", path);
    if (err) {
        free(buf);
        return fm__fail(FM_ERR_IO, "%s: cannot read: %s", path, strerror(err));
    }
    *out = buf;
    *len = n;
    return FM_OK;
}
