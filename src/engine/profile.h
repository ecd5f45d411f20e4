/* profile.h - for the benchmarks: seconds and floating-point work per op
 * kind (profile.c). Level 0 (the default) costs one test per op; 1 counts the
 * products' work; 2 also times forward ops (node to next interval), backward
 * calls and the marked parts of a training step. */
#ifndef FM_ENGINE_PROFILE_H
#define FM_ENGINE_PROFILE_H

#define FM__PROF_KINDS 96
typedef struct {
    const char *name;
    int backward;
    long calls;
    double sec, flops;
} fm__prof_entry;
extern int fm__prof_level;
void fm__prof_set(int level);
void fm__prof_clear(void);
void fm__prof_enter_(const char *name, int backward);
void fm__prof_leave_(void);
void fm__prof_flops_(double flops);
/* The kinds seen on every thread, summed (at most max); *flops: all counted work. */
int fm__prof_report(fm__prof_entry *out, int max, double *flops);
static inline void fm__prof_enter(const char *name, int backward)
{
    if (fm__prof_level > 1) fm__prof_enter_(name, backward);
}
static inline void fm__prof_leave(void)
{
    if (fm__prof_level > 1) fm__prof_leave_();
}
static inline void fm__prof_flops(double flops)
{
    if (fm__prof_level > 0) fm__prof_flops_(flops);
}

#endif
