/* test_cli.c - the command-line tool: help for every command, usage errors
 * with exit status 2, bad files with exit status 1, all with messages.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char out_buf[8192], err_buf[8192];

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

/* Run `flowmatch args`; returns the exit status, output in out_buf / err_buf. */
static int cli(const char *args)
{
    char cmd[2048], o[600], e[600];
    snprintf(o, sizeof o, "%s/cli.out", t_tmpdir());
    snprintf(e, sizeof e, "%s/cli.err", t_tmpdir());
    snprintf(cmd, sizeof cmd, "%s %s > '%s' 2> '%s'", t_cli(), args, o, e);
    int st = system(cmd);
    slurp(o, out_buf, sizeof out_buf);
    slurp(e, err_buf, sizeof err_buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

void test_cli(void)
{
    int rc = cli("--help");
    t_check(rc == 0 && strstr(out_buf, "inspect"), "flowmatch --help lists the commands (exit %d)", rc);
    rc = cli("");
    t_check(rc == 2 && strstr(err_buf, "usage"), "no command: usage on stderr, exit 2 (exit %d)", rc);
    rc = cli("frobnicate");
    t_check(rc == 2 && strstr(err_buf, "unknown command 'frobnicate'"), "unknown command (exit %d): %.60s", rc, err_buf);
    rc = cli("version");
    t_check(rc == 0 && strstr(out_buf, FM_VERSION), "version prints %s", FM_VERSION);
    static const char *cmds[] = {"inspect"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char a[64];
        snprintf(a, sizeof a, "%s --help", cmds[i]);
        rc = cli(a);
        t_check(rc == 0 && strstr(out_buf, "usage: flowmatch") && strstr(out_buf, "--help"), "%s --help (exit %d)",
                cmds[i], rc);
        snprintf(a, sizeof a, "%s --no-such-flag 1", cmds[i]);
        rc = cli(a);
        t_check(rc == 2 && strstr(err_buf, "unknown option '--no-such-flag'"), "%s rejects an unknown flag (exit %d)",
                cmds[i], rc);
    }
    rc = cli("inspect");
    t_check(rc == 2 && strstr(err_buf, "missing argument"), "inspect without a file (exit %d)", rc);
    const char *fx = getenv("FM_FIXTURES");
    char a[1024];
    snprintf(a, sizeof a, "inspect '%s/formats.safetensors'", fx ? fx : "tests/fixtures");
    rc = cli(a);
    t_check(rc == 0 && strstr(out_buf, "bf16") && strstr(out_buf, "BF16") && strstr(out_buf, "format = pt"),
            "inspect lists tensors and metadata (exit %d)", rc);
    char bad[700];
    snprintf(bad, sizeof bad, "%s/bad.safetensors", t_tmpdir());
    FILE *f = fopen(bad, "wb");
    fwrite("\xff\x00\x00\x00\x00\x00\x00\x00{}", 1, 10, f);
    fclose(f);
    snprintf(a, sizeof a, "inspect '%s'", bad);
    rc = cli(a);
    t_check(rc == 1 && strstr(err_buf, "header length 255 runs past the end"), "inspect of a malformed file (exit %d): %.80s",
            rc, err_buf);
}
