/* test_robust.c - nothing lost: a run whose outputs cannot be written does
 * not start; SIGTERM, SIGHUP and SIGINT save and exit with 128 + the signal;
 * kill -9 loses at most one --save-every interval and leaves a checkpoint that
 * loads and resumes in place, its loss history cut to the checkpoint; staged
 * files that a killed run left behind are removed by the next run.
 */
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int exists(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0;
}

static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* `flowmatch args` started in the background in folder dir (NULL: here), its stderr to err: the pid. */
static pid_t start_in(const char *dir, const char *args, const char *err)
{
    char cmd[4096], cli[1200];
    const char *c = t_cli();
    if (c[0] != '/' && getcwd(cli, sizeof cli)) /* the tool's path from here, for another folder */
        snprintf(cli + strlen(cli), sizeof cli - strlen(cli), "/%s", c);
    else
        snprintf(cli, sizeof cli, "%s", c);
    snprintf(cmd, sizeof cmd, "%s%s%sexec %s %s > /dev/null 2> '%s'", dir ? "cd '" : "", dir ? dir : "", dir ? "' && " : "",
             cli, args, err);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static pid_t start(const char *args, const char *err) { return start_in(NULL, args, err); }

/* Wait for path to appear (at most 60 s); 1 if it did. */
static int wait_for(const char *path)
{
    for (int i = 0; i < 600; i++) {
        if (exists(path)) return 1;
        nap(0.1);
    }
    return 0;
}

/* The exit status of pid (128 + signal if killed), waiting at most 60 s (then killed: -1). */
static int finish(pid_t pid)
{
    int st = 0;
    for (int i = 0; i < 600; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        nap(0.1);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

/* A checkpoint's train.iter, -1 if it does not load. */
static long iter_of(const char *path)
{
    fm_st *st = fm_st_load(path);
    const char *v = st ? fm_st_meta(st, "train.iter") : NULL;
    long it = v ? atol(v) : -1;
    fm_model *m = st ? fm_model_load(st, 0) : NULL;
    if (!m) it = -1;
    fm_model_free(m);
    fm_st_free(st);
    return it;
}

/* Rows of a loss CSV (after its header) and whether column 1 counts 1, 2, ... */
static long csv_rows(const char *path, int *contiguous)
{
    fm_table t = {0};
    *contiguous = 0;
    if (fm_csv_read(path, &t) != FM_OK) return -1;
    int ok = 1;
    for (int i = 0; i < t.rows; i++) ok &= t.data[(size_t)i * t.cols] == (float)(i + 1);
    *contiguous = ok;
    long n = t.rows;
    fm_table_free(&t);
    return n;
}

static void slurp_text(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

/* Run `flowmatch args` to its end: the exit status, stderr in err. */
static int run(const char *args, char *err, size_t cap)
{
    int rc = finish(start(args, t_path("run.err")));
    slurp_text(t_path("run.err"), err, cap);
    return rc;
}

/* Data and files that must not be trusted: each refused with a message that names the problem. */
static void untrusted(void)
{
    char args[1600], err[4096];
    FILE *f = fopen(t_path("big.csv"), "w");
    for (int i = 0; f && i < 200; i++) fprintf(f, "%g,%g\n", i == 17 ? 1e30 : sin(i + 1.0), cos(i * 0.7));
    if (f) fclose(f);
    snprintf(args, sizeof args, "train --data 'csv:%s' --iters 2 --quiet --out '%s'", t_path("big.csv"), t_path("b.safetensors"));
    int rc = run(args, err, sizeof err);
    t_check(rc == 2 && strstr(err, "row 18, column 1") && strstr(err, "1e+30"),
            "a CSV cell of 1e30 is refused, naming its row and column (exit %d): %.100s", rc, err);
    f = fopen(t_path("one.csv"), "w");
    if (f) fputs("a,b\n1,2\n", f), fclose(f);
    snprintf(args, sizeof args, "train --data 'csv:%s' --iters 2 --quiet --out '%s'", t_path("one.csv"), t_path("b.safetensors"));
    rc = run(args, err, sizeof err);
    t_check(rc == 2 && strstr(err, "1 row"), "one row of data says so (exit %d): %.100s", rc, err);
    snprintf(args, sizeof args, "sample --model '%s' --quiet --out '%s'", t_path("one.csv"), t_path("s.npy"));
    rc = run(args, err, sizeof err);
    t_check(rc == 1 && strstr(err, "not a safetensors file"), "a CSV given as a model: 'not a safetensors file' (exit %d): %.100s",
            rc, err);
    snprintf(args, sizeof args, "train --data 'mnist:%s' --iters 2 --quiet --out '%s'", t_path("no_digits"), t_path("b.safetensors"));
    rc = run(args, err, sizeof err);
    t_check(rc == 1 && strstr(err, "make mnist"), "mnist:DIR without digits says how to get them (exit %d): %.100s", rc, err);
    /* a default output name never replaces a file the user did not name */
    const char *dir = t_path("defaults");
    snprintf(args, sizeof args, "mkdir -p '%s' && echo keep > '%s/model.safetensors' && echo keep > '%s/samples.npy'", dir,
             dir, dir);
    int made = system(args) == 0;
    rc = finish(start_in(dir, "train --iters 2 --quiet", t_path("d.err")));
    slurp_text(t_path("d.err"), err, sizeof err);
    char kept[64] = "";
    snprintf(args, sizeof args, "%s/model.safetensors", dir);
    slurp_text(args, kept, sizeof kept);
    t_check(made && rc == 2 && strstr(err, "--force") && !strcmp(kept, "keep\n"),
            "train without --out refuses to replace an existing model.safetensors (exit %d): %.100s", rc, err);
    rc = finish(start_in(dir, "train --iters 2 --quiet --force", t_path("d.err")));
    long it = iter_of(args);
    snprintf(args, sizeof args, "sample --model model.safetensors --n 5 --quiet");
    int rc2 = finish(start_in(dir, args, t_path("d2.err")));
    slurp_text(t_path("d2.err"), err, sizeof err);
    t_check(rc == 0 && it == 2 && rc2 == 2 && strstr(err, "samples.npy exists"),
            "--force replaces it (iteration %ld); sample without --out refuses to replace samples.npy (exit %d)", it, rc2);
    /* commands that write a folder: its default is not replaced, and every file in it is checked before training */
    /* (an earlier run's demo/ holds loss.svg) */
    snprintf(args, sizeof args, "mkdir -p '%s/demo' && echo keep > '%s/demo/loss.svg'", dir, dir);
    made = system(args) == 0;
    rc = finish(start_in(dir, "demo --iters 1000000 --quiet", t_path("d.err")));
    slurp_text(t_path("d.err"), err, sizeof err);
    snprintf(args, sizeof args, "%s/demo/loss.svg", dir);
    slurp_text(args, kept, sizeof kept);
    t_check(made && rc == 2 && strstr(err, "demo/loss.svg exists") && strstr(err, "--force") && !strcmp(kept, "keep\n"),
            "demo without --out-dir refuses to replace an earlier run's files (exit %d): %.100s", rc, err);
    snprintf(args, sizeof args, "mkdir -p '%s/cmp/gan.safetensors'", dir);
    made = system(args) == 0;
    snprintf(args, sizeof args, "compare --methods gan --iters 1000000 --out-dir '%s/cmp' --quiet", dir);
    rc = run(args, err, sizeof err);
    t_check(made && rc == 1 && strstr(err, "gan.safetensors: it is a folder"),
            "compare stops before training when one of its files cannot be written (exit %d): %.100s", rc, err);
}

/* refused(arg) run in a child limited to 512 MB of address space: 1 when it
 * returned 1 there (under AddressSanitizer, whose shadow memory needs more
 * address space than any such limit, unlimited); *code the child's exit. */
static int refused_within_limit(int (*refused)(const void *), const void *arg, int *code)
{
    pid_t pid = fork();
    if (pid == 0) {
        int limited = 0;
#if !defined(__SANITIZE_ADDRESS__)
        struct rlimit rl = {512u << 20, 512u << 20};
        limited = setrlimit(RLIMIT_AS, &rl) == 0;
#endif
        _exit(refused(arg) ? (limited ? 0 : 3) : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
#if defined(__SANITIZE_ADDRESS__)
    return *code == 3;
#else
    return *code == 0;
#endif
}

static int idx_refused(const void *path)
{
    fm_idx x;
    return fm_idx_read(path, &x) == FM_ERR_FORMAT && strstr(fm_last_error(), "truncated");
}

static int checkpoint_refused(const void *path)
{
    fm_st *st = fm_st_load(path);
    fm_model *m = st ? fm_model_load(st, 0) : NULL;
    return st && !m && fm_last_status() == FM_ERR_FORMAT && strstr(fm_last_error(), "parameters");
}

/* Sizes in a header are claims: a 12-byte IDX file saying float32 57671 x 12384
 * (2.9 GB), plain or gzip-compressed, is refused as truncated without
 * allocating what it claims. The memory bound is checked in a child limited
 * to 512 MB of address space; under AddressSanitizer, whose shadow memory
 * needs more address space than any such limit, only the refusal is. */
static void bounded_idx(void)
{
    static const unsigned char hdr[12] = {0x00, 0x00, 0x0d, 0x02, 0x00, 0x00, 0xe1, 0x47, 0x00, 0x00, 0x30, 0x60};
    const char *plain = t_path("claims.idx"), *gz = t_path("claims.idx.gz");
    FILE *f = fopen(plain, "wb");
    if (f) fwrite(hdr, 1, sizeof hdr, f), fclose(f);
    int made = f && t_gzip_copy(plain, gz);
    for (int k = 0; k < 2; k++) {
        const char *p = k ? gz : plain;
        int code, ok = refused_within_limit(idx_refused, p, &code);
        t_check(made && ok, "a %s IDX header claiming 2.9 GB in 12 bytes is refused as truncated%s (child exit %d)",
                k ? "gzip" : "plain", code == 0 ? " within 512 MB of address space" : "", code);
    }
}

/* A checkpoint whose metadata describe a far larger network than its tensors
 * hold (mlp.widths 16384,16384 in a file of a few values) is refused before
 * the network is built: in a child limited to 512 MB of address space (under
 * ASan, the refusal alone). */
static void bounded_checkpoint(void)
{
    fm_st *src = fm_st_load("tests/golden/old/fm.safetensors");
    fm_st_writer *w = fm_st_writer_new();
    float x[4] = {0};
    int shape[1] = {4};
    for (int i = 0; src && w && i < fm_st_meta_count(src); i++) {
        const char *v, *k = fm_st_meta_at(src, i, &v);
        fm_st_writer_meta(w, k, !strcmp(k, "mlp.widths") ? "16384,16384" : v);
    }
    const char *path = t_path("huge_meta.safetensors");
    int made = src && w && fm_st_writer_add(w, "x", 1, shape, x) == FM_OK && fm_st_writer_save(w, path) == FM_OK;
    fm_st_writer_free(w);
    fm_st_free(src);
    int code, ok = refused_within_limit(checkpoint_refused, path, &code);
    fm_st *chk = fm_st_load(path);
    fm_model *m = chk ? fm_model_load(chk, 0) : NULL;
    t_check(made && ok && !m, "metadata describing 2 x 16384 hidden units in a file of 4 values are refused before "
            "the network is built (child exit %d): %s", code, fm_last_error());
    fm_model_free(m);
    fm_st_free(chk);
}

/* A flipped byte in a checkpoint's weights is caught on loading (the CRC-32
 * of the data in its metadata); a file without the key (older, or another
 * tool's) still loads. */
static void checksum(void)
{
    fm_train_config c = fm_train_config_default();
    c.batch = 32;
    fm_trainer *tr = t_trained(&c, 1);
    const char *p = t_path("crc.safetensors");
    int saved = tr && fm_trainer_save(tr, p) == FM_OK;
    fm_trainer_free(tr);
    size_t n = 0;
    unsigned char *b = t_slurp(p, &n);
    fm_st *good = b ? fm_st_parse(b, n, "good") : NULL;
    int crc = good && fm_st_meta(good, "flowmatch.crc32") && strlen(fm_st_meta(good, "flowmatch.crc32")) == 8;
    fm_st_free(good);
    if (b && n > 100) b[n - 37] ^= 0x10; /* a bit of the last tensor's data */
    fm_st *bad = b ? fm_st_parse(b, n, "flipped") : NULL;
    int caught = !bad && fm_last_status() == FM_ERR_FORMAT && strstr(fm_last_error(), "damaged");
    fm_st_free(bad);
    free(b);
    fm_st *old = fm_st_load("tests/golden/old/fm.safetensors");
    t_check(saved && crc && caught && old, "a checkpoint records its data's CRC-32; one flipped bit is refused (%s); "
            "a file without it still loads", fm_last_error());
    fm_st_free(old);
}

/* One way to name a table of points everywhere: FILE.csv, csv:FILE, FILE.npy
 * and npy:FILE for train --data, eval --a/--b and nll --data alike. */
static void data_specs(void)
{
    char args[2000], err[4096];
    const char *csv = t_path("pts.csv"), *m = t_path("pts.safetensors"), *npy = t_path("pts.npy");
    FILE *f = fopen(csv, "w");
    if (f) {
        fputs("x,y\n", f);
        for (int i = 0; i < 100; i++) fprintf(f, "%g,%g\n", sin(i * 1.3), cos(i * 0.4));
        fclose(f);
    }
    snprintf(args, sizeof args, "train --data '%s' --iters 5 --batch 32 --quiet --out '%s'", csv, m);
    int a = run(args, err, sizeof err);
    snprintf(args, sizeof args, "train --data 'csv:%s' --iters 5 --batch 32 --quiet --force --out '%s'", csv, m);
    int b = run(args, err, sizeof err);
    snprintf(args, sizeof args, "sample --model '%s' --n 50 --quiet --out '%s'", m, npy);
    int c = run(args, err, sizeof err);
    snprintf(args, sizeof args, "train --data '%s' --iters 5 --batch 32 --quiet --force --out '%s'", npy, m);
    int d = run(args, err, sizeof err);
    snprintf(args, sizeof args, "eval --a 'csv:%s' --b '%s' --metrics w2", csv, csv);
    int e = run(args, err, sizeof err);
    snprintf(args, sizeof args, "eval --a 'npy:%s' --b '%s' --metrics w2", npy, npy);
    int g = run(args, err, sizeof err);
    snprintf(args, sizeof args, "nll --model '%s' --data 'csv:%s' --n 10 --steps 4", m, csv);
    int h = run(args, err, sizeof err);
    t_check(!a && !b && !c && !d && !e && !g && !h,
            "FILE.csv, csv:FILE, FILE.npy and npy:FILE name data for train, eval and nll alike (exits %d %d %d %d %d %d %d) %.80s",
            a, b, c, d, e, g, h, err);
}

void test_robust(void)
{
    data_specs();
    checksum();
    bounded_idx();
    bounded_checkpoint();
    untrusted();
    char args[1600], err[4096];
    /* outputs that cannot be written: refused before any training */
    snprintf(args, sizeof args, "train --iters 20000 --out '%s'", t_path("nodir/m.safetensors"));
    pid_t p = start(args, t_path("r0.err"));
    int rc = finish(p);
    slurp_text(t_path("r0.err"), err, sizeof err);
    t_check(rc == 1 && strstr(err, "folder") && strstr(err, "nodir") && !strstr(err, ".tmp") && !strstr(err, "training "),
            "train --out nodir/m.safetensors stops before training, naming the folder (exit %d): %.120s", rc, err);

    /* the other commands check their outputs before their work too */
    static const char *const others[] = {"sample --model tests/golden/old/fm.safetensors --n 5 --out '%s/x.npy'",
                                         "nll --model tests/golden/old/fm.safetensors --data moons --n 5 --out '%s/x.npy'",
                                         "reflow --model tests/golden/old/fm.safetensors --pairs 50 --iters 5 --out "
                                         "'%s/r.safetensors'",
                                         "classifier --data mnist:nowhere --out '%s/c.safetensors'"};
    for (size_t k = 0; k < sizeof others / sizeof others[0]; k++) {
        snprintf(args, sizeof args, others[k], t_path("nodir"));
        rc = run(args, err, sizeof err);
        t_check(rc == 1 && strstr(err, "the folder") && strstr(err, "nodir does not exist"),
                "%.10s... with its output in a missing folder stops first, naming it (exit %d)", others[k], rc);
    }

    /* SIGTERM and SIGHUP: finish the step, save, exit 128 + signal */
    static const int sigs[] = {SIGTERM, SIGHUP, SIGINT};
    for (int k = 0; k < 3; k++) {
        char out[64], csv[64];
        snprintf(out, sizeof out, "sig%d.safetensors", k);
        snprintf(csv, sizeof csv, "sig%d_loss.csv", k);
        snprintf(args, sizeof args, "train --iters 10000000 --batch 64 --save-every 50 --threads 1 --quiet --out '%s'",
                 t_path(out));
        p = start(args, t_path("r1.err"));
        int seen = wait_for(t_path(out));
        kill(p, sigs[k]);
        rc = finish(p);
        long it = iter_of(t_path(out));
        int contiguous;
        long rows = csv_rows(t_path(csv), &contiguous);
        t_check(seen && rc == 128 + sigs[k] && it > 0 && rows == it && contiguous,
                "signal %d: saved at iteration %ld (loss history %ld rows), exit %d", sigs[k], it, rows, rc);
    }

    /* kill -9: at most one interval lost; the checkpoint loads and resumes in place */
    const char *km = t_path("k.safetensors"), *kc = t_path("k_loss.csv");
    snprintf(args, sizeof args, "train --iters 10000000 --batch 64 --save-every 40 --threads 1 --quiet --out '%s'", km);
    p = start(args, t_path("r2.err"));
    int seen = wait_for(km);
    nap(0.3);
    kill(p, SIGKILL);
    rc = finish(p);
    long it = iter_of(km);
    int contiguous;
    long rows = csv_rows(kc, &contiguous);
    t_check(seen && rc == 128 + SIGKILL && it > 0 && it % 40 == 0 && rows >= it && contiguous,
            "kill -9: the checkpoint loads at iteration %ld (a multiple of 40), the loss history holds %ld rows", it,
            rows);
    /* what a kill during a save leaves: staged files of a process that is gone */
    char stale1[1200], stale2[1200];
    snprintf(stale1, sizeof stale1, "%s.tmp2147480000.safetensors", km);
    snprintf(stale2, sizeof stale2, "%s.tmp2147480000.safetensors.tmp2147480000", km);
    FILE *f1 = fopen(stale1, "w"), *f2 = fopen(stale2, "w");
    if (f1) fclose(f1);
    if (f2) fclose(f2);
    snprintf(args, sizeof args, "train --resume '%s' --iters %ld --quiet", km, it + 30);
    p = start(args, t_path("r3.err"));
    rc = finish(p);
    long it2 = iter_of(km);
    long rows2 = csv_rows(kc, &contiguous);
    t_check(rc == 0 && it2 == it + 30 && rows2 == it + 30 && contiguous && !exists(stale1) && !exists(stale2),
            "resume continues the file in place: iteration %ld -> %ld, loss history cut and continued to %ld rows; "
            "the killed run's staged files are gone", it, it2, rows2);
}
