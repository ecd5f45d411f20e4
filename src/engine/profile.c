/* profile.c - where a step's time goes: seconds and floating-point work per
 * op kind, for the benchmarks (bench --profile) and the roofline.
 *
 * Off unless fm__prof_set turns it on. Level 1 counts only the work the
 * matrix products report (fm__prof_flops); level 2 also times intervals:
 * an op's forward runs from its node's creation (fm__node) to the next
 * interval's start, its backward is timed around the call, and the training
 * loop marks its own parts (drawing the batch, the optimizer). Each thread
 * keeps its own table, so the model's workers can be timed too; a report sums
 * the tables (thread-seconds where several threads ran at once). Threads
 * beyond the first 64 that profile are not counted.
 */
#include "internal.h"
#include "engine/profile.h"

#include <string.h>
#include <time.h>

enum { MAX_THREADS = 64 };

typedef struct {
    fm__prof_entry e[FM__PROF_KINDS];
    int n, cur; /* cur: the open interval's entry, -1 for none */
    double t0, flops;
} table;

int fm__prof_level;
static table *tables[MAX_THREADS];
static int ntables;
static _Thread_local table *mine;
static _Thread_local int refused; /* a thread beyond MAX_THREADS, or out of memory: not counted */

static double clock_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static table *my_table(void)
{
    if (mine || refused) return mine;
    int k;
#ifdef _OPENMP
#pragma omp atomic capture
#endif
    k = ntables++;
    if (k >= MAX_THREADS || !(mine = calloc(1, sizeof *mine))) { /* more threads than kept: not counted */
        refused = 1;
        return NULL;
    }
    mine->cur = -1;
    tables[k] = mine;
    return mine;
}

void fm__prof_set(int level)
{
    fm__prof_level = level;
}

void fm__prof_clear(void)
{
    int n = ntables < MAX_THREADS ? ntables : MAX_THREADS;
    for (int k = 0; k < n; k++)
        if (tables[k]) {
            memset(tables[k]->e, 0, sizeof tables[k]->e);
            tables[k]->n = 0;
            tables[k]->cur = -1;
            tables[k]->flops = 0;
        }
}

static void close_interval(table *T, double now)
{
    if (T->cur >= 0) T->e[T->cur].sec += now - T->t0;
    T->cur = -1;
}

void fm__prof_enter_(const char *name, int backward)
{
    table *T = my_table();
    if (!T) return;
    double now = clock_now();
    close_interval(T, now);
    int i = 0;
    while (i < T->n && !(T->e[i].backward == backward && !strcmp(T->e[i].name, name))) i++;
    if (i == T->n) {
        if (T->n == FM__PROF_KINDS) return; /* table full: the rest goes uncounted */
        T->e[i].name = name;
        T->e[i].backward = backward;
        T->n++;
    }
    T->e[i].calls++;
    T->cur = i;
    T->t0 = now;
}

void fm__prof_leave_(void)
{
    table *T = my_table();
    if (T) close_interval(T, clock_now());
}

void fm__prof_flops_(double flops)
{
    table *T = my_table();
    if (!T) return;
    T->flops += flops;
    if (T->cur >= 0) T->e[T->cur].flops += flops;
}

int fm__prof_report(fm__prof_entry *out, int max, double *flops)
{
    int n = 0, nt = ntables < MAX_THREADS ? ntables : MAX_THREADS;
    double total = 0;
    for (int k = 0; k < nt; k++) {
        const table *T = tables[k];
        if (!T) continue;
        total += T->flops;
        for (int i = 0; i < T->n; i++) {
            int j = 0;
            while (j < n && !(out[j].backward == T->e[i].backward && !strcmp(out[j].name, T->e[i].name))) j++;
            if (j == n) {
                if (n == max) continue;
                out[n] = T->e[i];
                n++;
            } else {
                out[j].sec += T->e[i].sec;
                out[j].flops += T->e[i].flops;
                out[j].calls += T->e[i].calls;
            }
        }
    }
    if (flops) *flops = total;
    return n;
}
