/* args.c - option parsing for the command-line tool.
 *
 * Every command describes its options in a table; the same table parses
 * argv, rejects unknown or malformed options with a message naming them, and
 * prints --help with each option's current (default) value.
 */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static char last_msg[400]; /* the last error reported, for rank 0 to print when another rank has it */

const char *cli_last_error(void) { return last_msg; }

static void vreport(const char *cmd, const char *fmt, va_list ap)
{
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    fprintf(stderr, "flowmatch %s: %s\n", cmd, last_msg);
}

int cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, fmt, ap);
    va_end(ap);
    return CLI_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, fmt, ap);
    va_end(ap);
    return CLI_USAGE;
}

static void print_default(const cli_opt *o, FILE *f)
{
    if (o->help && strstr(o->help, "default")) return; /* the help says it in words */
    switch (o->kind) {
    case OPT_STR: {
        const char *v = *(const char **)o->dst;
        if (v) fprintf(f, " (default: %s)", v);
        break;
    }
    case OPT_INT: fprintf(f, " (default: %d)", *(int *)o->dst); break;
    case OPT_I64: fprintf(f, " (default: %lld)", (long long)*(int64_t *)o->dst); break;
    case OPT_DOUBLE: fprintf(f, " (default: %g)", *(double *)o->dst); break;
    case OPT_FLAG: break;
    }
}

void cli_help(const cli_spec *spec, FILE *f)
{
    fprintf(f, "usage: flowmatch %s%s%s%s\n\n%s\n", spec->name, spec->nopts ? " [options]" : "",
            spec->args ? " " : "", spec->args ? spec->args : "", spec->summary);
    if (spec->details) fprintf(f, "\n%s\n", spec->details);
    if (spec->nopts) fprintf(f, "\noptions:\n");
    for (int i = 0; i < spec->nopts; i++) {
        const cli_opt *o = &spec->opts[i];
        char left[64];
        if (o->kind == OPT_FLAG) snprintf(left, sizeof left, "--%s", o->name);
        else snprintf(left, sizeof left, "--%s %s", o->name, o->metavar ? o->metavar : "X");
        fprintf(f, "  %-24s %s", left, o->help);
        print_default(o, f);
        fputc('\n', f);
    }
    fprintf(f, "  %-24s %s\n", "--help", "show this help and exit");
}

static int usage(const cli_spec *spec, const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "flowmatch %s: ", spec->name);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, " (see 'flowmatch %s --help')\n", spec->name);
    return CLI_USAGE;
}

static int set_value(const cli_spec *spec, const cli_opt *o, const char *v)
{
    char *end;
    errno = 0;
    switch (o->kind) {
    case OPT_STR: *(const char **)o->dst = v; return 0;
    case OPT_INT: {
        long x = strtol(v, &end, 10);
        if (end == v || *end || errno || x < -2147483647L || x > 2147483647L)
            return usage(spec, "--%s expects an integer, got '%s'", o->name, v);
        *(int *)o->dst = (int)x;
        return 0;
    }
    case OPT_I64: {
        long long x = strtoll(v, &end, 10);
        if (end == v || *end || errno) return usage(spec, "--%s expects an integer, got '%s'", o->name, v);
        *(int64_t *)o->dst = (int64_t)x;
        return 0;
    }
    case OPT_DOUBLE: {
        double x = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(x))
            return usage(spec, "--%s expects a number, got '%s'", o->name, v);
        *(double *)o->dst = x;
        return 0;
    }
    case OPT_FLAG: *(int *)o->dst = 1; return 0;
    }
    return 0;
}

int cli_parse(const cli_spec *spec, int argc, char **argv, const char **pos, int *npos)
{
    *npos = 0;
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] == '-') {
            const char *name = a + 2;
            if (strcmp(name, "help") == 0) {
                cli_help(spec, stdout);
                return CLI_OK;
            }
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const cli_opt *o = NULL;
            for (int k = 0; k < spec->nopts; k++)
                if (strlen(spec->opts[k].name) == len && strncmp(spec->opts[k].name, name, len) == 0)
                    o = &spec->opts[k];
            if (!o) return usage(spec, "unknown option '%s'%s", a, "");
            if (spec->given) spec->given[o - spec->opts] = 1;
            const char *v;
            if (o->kind == OPT_FLAG) {
                if (eq) return usage(spec, "--%s takes no value%s", o->name, "");
                v = "1";
            } else if (eq) {
                v = eq + 1;
            } else {
                if (i + 1 >= argc) return usage(spec, "--%s needs a value%s", o->name, "");
                v = argv[++i];
            }
            int rc = set_value(spec, o, v);
            if (rc) return rc;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9'))
            return usage(spec, "unknown option '%s'%s", a, "");
        if (*npos >= spec->npos_max || !pos) return usage(spec, "unexpected argument '%s'%s", a, "");
        pos[(*npos)++] = a;
    }
    if (*npos < spec->npos_min)
        return usage(spec, "missing argument %s%s", spec->args ? spec->args : "", "");
    return -1;
}

int cli_given(const cli_spec *spec, const char *name)
{
    for (int i = 0; spec->given && i < spec->nopts; i++)
        if (spec->given[i] && !strcmp(spec->opts[i].name, name)) return 1;
    return 0;
}
