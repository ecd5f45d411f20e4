/* fuzz_args.c - the command line's option parser on arbitrary arguments (NUL
 * separates them), with a table of every option kind. */
#include "cli/cli.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    char *buf = malloc(n + 1);
    if (!buf) return 0;
    memcpy(buf, data, n);
    buf[n] = '\0';
    char *argv[64];
    int argc = 0;
    for (size_t i = 0; i <= n && argc < 64; i += strlen(buf + i) + 1) argv[argc++] = buf + i;
    const char *s = "x", *pos[4];
    int k = 0, flag = 0, npos = 0;
    int64_t l = 0;
    double d = 0;
    const cli_opt opts[] = {
        {"str", OPT_STR, &s, "S", "a string"},
        {"int", OPT_INT, &k, "N", "an int"},
        {"i64", OPT_I64, &l, "N", "a long"},
        {"num", OPT_DOUBLE, &d, "X", "a number"},
        {"flag", OPT_FLAG, &flag, NULL, "a flag"},
    };
    unsigned char given[5] = {0};
    const cli_spec spec = {"fuzz", "ARGS", "the parser", NULL, opts, 5, 0, 4, given};
    cli_parse(&spec, argc, argv, pos, &npos); /* usage errors print (run with -close_fd_mask=3) */
    int v[8];
    cli_parse_ints(buf, v, 8);
    free(buf);
    return 0;
}
