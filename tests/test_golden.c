/* test_golden.c - behaviour kept to the byte: tests/golden/run.sh trains,
 * samples and evaluates every method with small budgets at 1 and 2 threads,
 * and each output's SHA-256 must equal the one recorded in FM_GOLDEN (the
 * build's own file, tests/golden/<build>.sha256: the bits depend on the
 * compiler flags, not on the code's layout). Checkpoints written before the
 * code was restructured (tests/golden/old/) must still load and sample to the
 * recorded bytes. `make golden-record` rewrites the files: only for a change of
 * output that is intended and explained in its commit.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXLINES 256

typedef struct {
    char name[MAXLINES][160];
    char hash[MAXLINES][65];
    int n;
} hashes;

/* "NAME HASH" lines of a file, under a "[section]" heading when given. */
static int read_hashes(const char *path, const char *section, hashes *h)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512];
    int in = section == NULL;
    h->n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || !line[0]) continue;
        if (line[0] == '[') {
            in = section && !strncmp(line + 1, section, strlen(section)) && line[1 + strlen(section)] == ']';
            continue;
        }
        if (!in || h->n >= MAXLINES) continue;
        if (sscanf(line, "%159s %64s", h->name[h->n], h->hash[h->n]) == 2) h->n++;
    }
    fclose(f);
    return 1;
}

static void compare(const char *what, const hashes *want, const hashes *got)
{
    int matched = 0;
    for (int i = 0; i < want->n; i++) {
        const char *g = NULL;
        for (int j = 0; j < got->n; j++)
            if (!strcmp(want->name[i], got->name[j])) g = got->hash[j];
        int ok = g && !strcmp(g, want->hash[i]);
        matched += ok;
        t_check(ok, "%s %-28s %s", what, want->name[i], ok ? "same bytes" : g ? "DIFFERENT bytes" : "missing");
    }
    for (int j = 0; j < got->n; j++) {
        int known = 0;
        for (int i = 0; i < want->n && !known; i++) known = !strcmp(want->name[i], got->name[j]);
        if (!known) t_check(0, "%s %-28s produced but not in the golden set", what, got->name[j]);
    }
    t_note("%s: %d of %d outputs byte-identical", what, matched, want->n);
}

void test_golden(void)
{
    const char *golden = getenv("FM_GOLDEN"), *record = getenv("FM_GOLDEN_RECORD");
    if (!t_check(golden != NULL, "FM_GOLDEN names the build's golden file")) return;
    FILE *rec = NULL;
    if (record && *record) {
        rec = fopen(golden, "w");
        if (!t_check(rec != NULL, "%s can be written", golden)) return;
        fprintf(rec, "# SHA-256 of tests/golden/run.sh's outputs for one build; rewritten by make golden-record.\n");
    }
    const char *digits = t_path("golden_digits");
    if (!t_check(t_digit_folder(digits, 200, 50), "digit folder for the U-Net runs")) return;
    for (int th = 1; th <= 2; th++) {
        char cmd[4096], list[1100], section[32];
        snprintf(list, sizeof list, "%s", t_path(th == 1 ? "golden1.txt" : "golden2.txt"));
        snprintf(cmd, sizeof cmd, "sh tests/golden/run.sh '%s' '%s' '%s' %d > '%s'", t_cli(), digits,
                 t_path(th == 1 ? "golden1" : "golden2"), th, list);
        int rc = system(cmd);
        snprintf(section, sizeof section, "threads=%d", th);
        static hashes want, got;
        if (!t_check(rc == 0, "run.sh at %d thread%s ran", th, th > 1 ? "s" : "")) continue;
        if (rec) {
            read_hashes(list, NULL, &got);
            fprintf(rec, "[%s]\n", section);
            for (int i = 0; i < got.n; i++) fprintf(rec, "%s %s\n", got.name[i], got.hash[i]);
            t_check(got.n > 0, "recorded %d outputs at %d thread%s into %s", got.n, th, th > 1 ? "s" : "", golden);
            continue;
        }
        if (!t_check(read_hashes(golden, section, &want) && want.n > 0, "%s has a [%s] section", golden, section))
            continue;
        read_hashes(list, NULL, &got);
        compare(section, &want, &got);
    }
    if (rec) fclose(rec);
}
