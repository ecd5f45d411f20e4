/* fuzz_csv.c - the CSV reader on arbitrary bytes. */
#include "flowmatch.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    fm_table t;
    if (fm_csv_read(fuzz_file(data, n, ".csv"), &t) == FM_OK) fm_table_free(&t);
    return 0;
}
