#!/usr/bin/env bash
# onestep_mnist.sh - one-step routes on MNIST with the class-conditional U-Net
# of docs/results.md's conditional run (batch 64, Adam 1e-3, warmup 100,
# clip 1, EMA 0.999, label dropout 0.1): the I-CFM teacher, OT-CFM, MeanFlow,
# and the teacher straightened by 1 and 2 rounds of reflow on labelled pairs.
# Each model draws 1000 digits (100 of each class, no guidance) at 1, 2 and 4
# steps (the teacher also at 100 Euler steps), scored by the digit classifier
# against the 1,000 test digits: Frechet distance in its features and the
# share classified as the class asked for. Training seconds go to
# OUT/<route>_seconds (reflow's include its teacher's).
#
#   bench/onestep_mnist.sh [OUT]       (needs make mnist)
#
# From the environment: ITERS (3000) training iterations of each route;
# RITERS (ITERS) of each reflow round, which starts from the previous
# model's weights; PAIRS (10000) per round; FM (./flowmatch).
#
# STAGES (default: all) picks among: clf teacher otcfm meanflow reflow eval grid.
# A stage whose checkpoint exists is not trained again (a run killed mid-way
# leaves its periodic checkpoint: delete it before rerunning that stage).
set -euo pipefail
FM=${FM:-./flowmatch}
OUT=${1:-bench/onestep_mnist}
ITERS=${ITERS:-3000}
RITERS=${RITERS:-$ITERS}
PAIRS=${PAIRS:-10000}
STAGES=${STAGES:-"clf teacher otcfm meanflow reflow eval grid"}
DATA=mnist:data/mnist
TEST=mnist:data/mnist,split=test
mkdir -p "$OUT"
[ -d data/mnist ] || { echo "onestep_mnist.sh: run 'make mnist' first" >&2; exit 2; }
want() { [[ " $STAGES " == *" $1 "* ]]; }
now() { date +%s.%N; }
COMMON=(--data "$DATA" --arch unet --class-cond --batch 64 --lr 1e-3 --warmup 100 --clip 1 --ema 0.999 --seed 1
        --threads 2 --quiet)

train() { # route, extra flags...
    local r=$1
    shift
    [ -f "$OUT/$r.safetensors" ] && return 0
    local t0
    t0=$(now)
    "$FM" train "${COMMON[@]}" --iters "$ITERS" "$@" --out "$OUT/$r.safetensors" > "$OUT/${r}_train.log" 2>&1
    echo "$(now) - $t0" | bc > "$OUT/${r}_seconds"
}

if want clf && [ ! -f "$OUT/clf.safetensors" ]; then
    "$FM" classifier --data "$DATA" --out "$OUT/clf.safetensors" --threads 2 > "$OUT/clf.log" 2>&1
fi
want teacher && train teacher
want otcfm && train otcfm --coupling ot
want meanflow && train meanflow --method meanflow
if want reflow; then
    for k in 1 2; do
        prev=$([ $k = 1 ] && echo teacher || echo reflow1)
        [ -f "$OUT/reflow$k.safetensors" ] && continue
        t0=$(now)
        "$FM" reflow --model "$OUT/$prev.safetensors" --rounds 1 --pairs "$PAIRS" --solver midpoint --steps 20 \
            --iters "$RITERS" --batch 64 --lr 1e-3 --ema 0.999 --seed $((k + 1)) --eval-n 100 --threads 2 --quiet \
            --out "$OUT/reflow$k.safetensors" > "$OUT/reflow${k}_train.log" 2>&1
        echo "$(now) - $t0 + $(cat "$OUT/${prev}_seconds")" | bc > "$OUT/reflow${k}_seconds"
    done
fi
if want eval; then
    ev() { # route, solver, steps
        local log="$OUT/$1_$2_$3.log"
        [ -f "$log" ] || "$FM" eval --a "$OUT/$1.safetensors" --b "$TEST" --classifier "$OUT/clf.safetensors" \
            --n 1000 --solver "$2" --steps "$3" --seed 7 --threads 2 > "$log" 2>&1
    }
    for s in 1 2 4; do
        for r in teacher otcfm reflow1 reflow2; do ev $r euler $s; done
        ev meanflow jump $s
    done
    ev teacher euler 100
    /usr/bin/python3 "$(dirname "$0")/onestep_mnist_table.py" "$OUT" > "$OUT/table.md"
    cat "$OUT/table.md"
fi
if want grid; then
    for r in meanflow reflow2 otcfm; do
        s=$([ $r = meanflow ] && echo jump || echo euler)
        "$FM" sample --model "$OUT/$r.safetensors" --label all --solver $s --steps 1 --seed 3 --threads 2 \
            --out "$OUT/${r}_1step.npy" --grid "$OUT/${r}_1step.png" > "$OUT/${r}_sample.log" 2>&1
    done
fi
