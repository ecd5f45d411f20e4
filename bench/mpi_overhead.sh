#!/bin/sh
# mpi_overhead.sh - what spreading a training step over ranks costs on one
# machine: the same work (the same shards, the same bits) as 1 process of 2
# threads and as 2 ranks of 1 thread, for the default U-Net's step (batch
# 128) and the wide MLP's (4 x 512, batch 4096), alternated REPS times; rank
# 0 also reports the bytes it sent per step.
#
#   sh bench/mpi_overhead.sh [REPS]     (after make build/rel/bench; needs mpirun)
# Run it on an otherwise idle machine: the lines are wall-clock medians.
set -eu
REPS=${1:-3}
BENCH=${BENCH:-build/rel/bench}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
for what in unet-step wide-step; do
    steps=10
    [ $what = wide-step ] && steps=20
    r=1
    while [ $r -le "$REPS" ]; do
        echo "$what 1x2: $($BENCH $what --threads 2 --steps $steps | grep RESULT)"
        echo "$what 2x1: $(mpirun --bind-to core -np 2 $BENCH $what --threads 1 --steps $steps | grep RESULT)"
        r=$((r + 1))
    done
done
