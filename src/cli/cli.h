/* cli.h - shared pieces of the command-line tool: option parsing, help text
 * and error reporting. The library never prints; the tool does, here.
 */
#ifndef FM_CLI_H
#define FM_CLI_H

#include "flowmatch.h"

#include <stdio.h>

/* Exit codes: 0 success, 1 the work failed (bad file, numeric trouble), 2 usage. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

typedef enum { OPT_STR, OPT_INT, OPT_I64, OPT_DOUBLE, OPT_FLAG } cli_kind;

typedef struct {
    const char *name;     /* long name without dashes, e.g. "lr" */
    cli_kind kind;
    void *dst;            /* const char **, int *, int64_t *, double *, int * (flag) */
    const char *metavar;  /* "N", "FILE", ... (unused for flags) */
    const char *help;     /* one line; the default is printed after it */
} cli_opt;

typedef struct {
    const char *name;     /* "inspect" */
    const char *args;     /* "FILE" */
    const char *summary;  /* one line for the command list */
    const char *details;  /* paragraph for --help, may be NULL */
    const cli_opt *opts;
    int nopts;
    int npos_min, npos_max;
} cli_spec;

/* Parse argv (after the command name). Positional arguments go to pos[].
 * Returns -1 to go on, or an exit code (0 after --help, 2 after a usage error,
 * with the message already on stderr). */
int cli_parse(const cli_spec *spec, int argc, char **argv, const char **pos, int *npos);
void cli_help(const cli_spec *spec, FILE *f);
/* "flowmatch CMD: <message>" on stderr; returns CLI_FAIL. */
int cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

int cmd_inspect(int argc, char **argv);

#endif
