/* fuzz.h - what the libFuzzer harnesses share: the input as a file, for the
 * readers that take a path (each harness process has its own file). Not part
 * of the library or of make test; built by `make fuzz` with clang. */
#ifndef FM_FUZZ_H
#define FM_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* data[0..n) written to this process's scratch file (suffix names the type); its path. */
static inline const char *fuzz_file(const uint8_t *data, size_t n, const char *suffix)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/fmfuzz.%ld%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
    return path;
}

#endif
