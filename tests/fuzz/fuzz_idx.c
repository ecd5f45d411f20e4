/* fuzz_idx.c - the IDX reader (plain, or gzip when the bytes say so) on arbitrary bytes. */
#include "flowmatch.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    fm_idx x;
    const char *p = fuzz_file(data, n, ".idx");
    if (fm_idx_read(p, &x) == FM_OK) fm_idx_free(&x);
    if (fm_idx_read_u8(p, &x) == FM_OK) fm_idx_free(&x);
    return 0;
}
