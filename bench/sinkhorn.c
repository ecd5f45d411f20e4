/* sinkhorn.c - the entropic OT plan at small regularisation, measured through
 * the pairs it draws (fm_sinkhorn_pairs, present in every version): for 128
 * points from N(0, I) and N(0.5, I) in 1, 2, 8 and 60 dimensions and sigma
 * from 5e-4 to 5 (regularisation 2 sigma^2, as the sb coupling uses), over
 * 200 redraws of 128 pairs:
 *   iters   what the call reported for the first draw (-1: tolerance missed)
 *   L1 col  the drawn columns' frequency against uniform 1/n, summed (L1);
 *   L1 row  the same for rows; about 0.06 from sampling noise alone
 *   never   columns never drawn
 *   on OT   of the first draw's 128 pairs, those on the exact OT matching
 *   ms      milliseconds per call
 * bench/sinkhorn_before_after.sh REV builds it against REV's library and this
 * tree's and prints both tables (docs/couplings.md holds one such run).
 */
#include "flowmatch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N 128
#define REDRAWS 200

int main(void)
{
    const int dims[4] = {1, 2, 8, 60};
    const double sig[] = {5e-4, 1e-3, 1e-2, 0.1, 0.5, 1, 5};
    const int ns = (int)(sizeof sig / sizeof sig[0]);
    float *x0 = malloc((size_t)N * 60 * sizeof(float)), *x1 = malloc((size_t)N * 60 * sizeof(float));
    printf("| dims | sigma | iters | L1 col | L1 row | never | on OT | ms |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int a = 0; a < 4; a++) {
        int d = dims[a], match[N];
        fm_rng r;
        fm_rng_seed(&r, 1, 0);
        fm_rng_normal_fill(&r, x0, (size_t)N * d, 0, 1);
        fm_rng_normal_fill(&r, x1, (size_t)N * d, 0.5f, 1);
        fm_ot_pairing(x0, x1, N, d, match);
        for (int q = 0; q < ns; q++) {
            int ci[N] = {0}, cj[N] = {0}, pi[N], pj[N], first = 0, on = 0, ok = 1;
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            for (int rep = 0; rep < REDRAWS && ok; rep++) {
                int it = 0;
                ok = fm_sinkhorn_pairs(x0, x1, N, d, 2 * sig[q] * sig[q], FM_SINKHORN_MAX_ITER, 1e-4, &r, pi, pj, &it) ==
                     FM_OK;
                if (rep == 0) {
                    first = it;
                    for (int k = 0; k < N; k++) on += match[pi[k]] == pj[k];
                }
                for (int k = 0; k < N; k++) ci[pi[k]]++, cj[pj[k]]++;
            }
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double ms = ((t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6) / REDRAWS, li = 0, lj = 0;
            int never = 0;
            for (int k = 0; k < N; k++) {
                li += fabs(ci[k] / (double)(REDRAWS * N) - 1.0 / N), lj += fabs(cj[k] / (double)(REDRAWS * N) - 1.0 / N);
                never += cj[k] == 0;
            }
            if (!ok) printf("| %d | %g | failed: %s |\n", d, sig[q], fm_last_error());
            else printf("| %d | %g | %d | %.3f | %.3f | %d | %d | %.2f |\n", d, sig[q], first, lj, li, never, on, ms);
        }
    }
    free(x0);
    free(x1);
    return 0;
}
