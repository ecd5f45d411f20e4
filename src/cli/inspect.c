/* inspect.c - `flowmatch inspect`: validate a safetensors file and list what
 * it holds (tensors with dtype and shape, then the metadata), as text or as
 * one JSON object.
 */
#include "cli/cli.h"

#include <stdint.h>

/* The listing; j NULL: text. */
static void list(const fm_st *st, int meta_only, cli_json *j)
{
    if (j) cli_json_open(j, NULL, '{');
    if (!meta_only) {
        uint64_t total = 0;
        if (j) cli_json_open(j, "tensors", '[');
        for (int i = 0; i < fm_st_count(st); i++) {
            fm_dtype dt;
            int nd;
            int64_t sh[8];
            const char *name = fm_st_entry(st, i, &dt, &nd, sh);
            uint64_t n = 1;
            if (j) {
                cli_json_open(j, NULL, '{');
                cli_json_str(j, "name", name);
                cli_json_str(j, "dtype", fm_dtype_name(dt));
                cli_json_open(j, "shape", '[');
            } else {
                printf("%-40s %-5s [", name, fm_dtype_name(dt));
            }
            for (int d = 0; d < nd; d++) {
                if (j) cli_json_int(j, NULL, (long long)sh[d]);
                else printf(d ? ", %lld" : "%lld", (long long)sh[d]);
                n *= (uint64_t)sh[d];
            }
            if (j) cli_json_close(j, ']'), cli_json_close(j, '}');
            else printf("]\n");
            total += n;
        }
        if (j) {
            cli_json_close(j, ']');
            cli_json_int(j, "count", fm_st_count(st));
            cli_json_int(j, "values", (long long)total);
        } else {
            printf("%d tensors, %llu values\n", fm_st_count(st), (unsigned long long)total);
        }
    }
    if (j) cli_json_open(j, "metadata", '{');
    for (int i = 0; i < fm_st_meta_count(st); i++) {
        const char *v;
        const char *k = fm_st_meta_at(st, i, &v);
        if (j) cli_json_str(j, k, v);
        else printf("%s = %s\n", k, v);
    }
    if (j) cli_json_close(j, '}'), cli_json_close(j, '}');
}

int cmd_inspect(int argc, char **argv)
{
    int meta_only = 0, json = 0;
    const cli_opt opts[] = {
        {"meta", OPT_FLAG, &meta_only, NULL, "print only the metadata"},
        {"json", OPT_FLAG, &json, NULL, "one JSON object: tensors (name, dtype, shape), count, values, metadata"},
    };
    const cli_spec spec = {"inspect", "FILE.safetensors",
                           "Check a safetensors file and list its tensors and metadata.",
                           "Every structural rule of the format is checked (header length, JSON,\n"
                           "dtypes, shapes against byte counts, offsets); the first violation is\n"
                           "reported and the exit status is 1.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 1, 1, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc != CLI_GO) return rc;
    fm_st *st = fm_st_load(pos[0]);
    if (!st) return cli_error("inspect", "%s", fm_last_error());
    cli_json j = {0};
    list(st, meta_only, json ? &j : NULL);
    fm_st_free(st);
    return CLI_OK;
}
