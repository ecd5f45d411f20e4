#!/bin/sh
# mnist_table.sh - the flow matching paper's Table 1 ranking at this machine's
# scale: FM on the OT path, FM on the VP (diffusion) path, score matching on
# the VP SDE and DDPM, each the same U-Net trained with the same budget
# (iterations, batch, Adam, warm-up, clipping, EMA, dequantised pixels),
# unconditional, on the 9,000 training digits of `make mnist`; then, on the
# 1,000 test digits:
#   nll     bits per dimension of the dequantised pixels on NLL_N test digits
#           (Hutchinson, PROBES probes, dopri5 at tolerance NLL_TOL; its
#           standard error), flows only. A fixed-step solve is not enough:
#           rk4 with 10 steps puts FM on the VP path at 0.88 bits/dim where
#           dopri5 says 2.73 (its field is stiff near t = 0, beta = 20)
#   dopri5  1,000 samples at tolerance 1e-5 and 1e-3: NFE, Frechet distance in
#           the digit classifier's features, predicted-class histogram
#   fixed   FIXED_N samples at 10, 20 and 50 steps of each fixed-step sampler
# Two lanes of one thread each run side by side (fm-ot then score-vp; fm-vp
# then ddpm). Every command's output goes to OUT/<model>_<what>.log;
# bench/mnist_table.py turns them into the table.
#
#   sh bench/mnist_table.sh [OUT]   (ITERS, SEED, PROBES, NLL_N, NLL_TOL, EVAL_N, FIXED_N, MODELS, TOLS from the environment)
# A model whose checkpoint OUT/<model>.safetensors exists is continued to ITERS
# (--resume), not trained again, and a measurement whose log is complete is
# not repeated: a stopped run picks up where it was.
set -eu
FM=${FM:-./flowmatch}
OUT=${1:-bench/mnist}
ITERS=${ITERS:-3000}
SEED=${SEED:-1}
PROBES=${PROBES:-2}
NLL_N=${NLL_N:-1000}
NLL_TOL=${NLL_TOL:-1e-4}
EVAL_N=${EVAL_N:-1000}
FIXED_N=${FIXED_N:-500}
TOLS=${TOLS-1e-5 1e-3} # the dopri5 tolerances measured (empty: none)
DATA=mnist:data/mnist
TEST=mnist:data/mnist,split=test
mkdir -p "$OUT"
[ -f data/mnist/train-images-idx3-ubyte ] || { echo "mnist_table.sh: run 'make mnist' first" >&2; exit 2; }
[ -f "$OUT/clf.safetensors" ] || $FM classifier --data $DATA --out "$OUT/clf.safetensors" --threads 2 > "$OUT/clf.log" 2>&1
COMMON="--data $DATA --arch unet --batch 64 --lr 1e-3 --warmup 100 --clip 1 --ema 0.999 --dequantize --iters $ITERS --seed $SEED --threads 1 --quiet"

stamp() { date +%s; }
done_log() { grep -q "$2" "$1" 2>/dev/null; } # a measurement already made

# one model: train, then its measurements; $1 name, $2 method flags, $3 kind (flow or ddpm)
run_model() {
    name=$1 flags=$2 kind=$3 m="$OUT/$1.safetensors"
    t0=$(stamp)
    # a run of this script that was stopped may have left its training going: wait for it
    while pgrep -f -- "--out $m" > /dev/null; do sleep 15; done
    if [ ! -f "$m" ]; then
        $FM train $flags $COMMON --out "$m" --loss-csv "$OUT/${name}_loss.csv" > "$OUT/${name}_train.log" 2>&1
        echo "train_seconds $(( $(stamp) - t0 ))" >> "$OUT/${name}_train.log"
    else # a stopped run's checkpoint: continued to ITERS (the same bits as one run)
        done_it=$($FM inspect "$m" | sed -n 's/^ *train\.iter = //p')
        if [ "$done_it" -lt "$ITERS" ]; then
            $FM train --resume "$m" --iters $ITERS --threads 1 --quiet >> "$OUT/${name}_train.log" 2>&1
            echo "resumed_at $done_it train_seconds_after_resume $(( $(stamp) - t0 ))" >> "$OUT/${name}_train.log"
        fi
    fi
    ev="--a $m --b $TEST --classifier $OUT/clf.safetensors --seed 7 --threads 1"
    while pgrep -f -- "--a $m " > /dev/null; do sleep 15; done # a stopped run's measurement still going
    if [ "$kind" = flow ]; then
        for tol in $TOLS; do
            done_log "$OUT/${name}_dopri5_$tol.log" Frechet ||
                $FM eval $ev --n $EVAL_N --solver dopri5 --rtol $tol --atol $tol > "$OUT/${name}_dopri5_$tol.log" 2>&1
        done
        samplers="euler midpoint"
        [ "$name" = score-vp ] && samplers="euler midpoint em"
    else
        done_log "$OUT/${name}_ddim_100.log" Frechet ||
            $FM eval $ev --n $EVAL_N --solver ddim --steps 100 > "$OUT/${name}_ddim_100.log" 2>&1
        samplers="ddim ancestral"
    fi
    for s in $samplers; do
        for k in 10 20 50; do
            done_log "$OUT/${name}_${s}_$k.log" Frechet ||
                $FM eval $ev --n $FIXED_N --solver $s --steps $k > "$OUT/${name}_${s}_$k.log" 2>&1
        done
    done
    [ -f "$OUT/${name}_samples.png" ] ||
        $FM sample --model "$m" --n 64 --seed 3 --threads 1 --grid "$OUT/${name}_samples.png" \
            --out "$OUT/${name}_samples.npy" \
            $( [ "$kind" = flow ] && echo "--solver dopri5" || echo "--solver ddim --steps 100" ) > "$OUT/${name}_sample.log" 2>&1
    if [ "$kind" = flow ]; then
        done_log "$OUT/${name}_nll.log" "bits per dimension" ||
            $FM nll --model "$m" --data $TEST --n $NLL_N --hutchinson $PROBES --solver dopri5 --rtol $NLL_TOL \
                --atol $NLL_TOL --dequantize --threads 1 > "$OUT/${name}_nll.log" 2>&1
    fi
    echo "$name done in $(( $(stamp) - t0 )) s"
}

# MODELS (default all four) picks some, in their lanes
MODELS=${MODELS:-fm-ot score-vp fm-vp ddpm}
want() { case " $MODELS " in *" $1 "*) return 0 ;; esac; return 1; }
( if want fm-ot; then run_model fm-ot "--method fm --path ot" flow; fi
  if want score-vp; then run_model score-vp "--method score --sde vp" flow; fi ) &
( if want fm-vp; then run_model fm-vp "--method fm --path vp" flow; fi
  if want ddpm; then run_model ddpm "--method ddpm" ddpm; fi ) &
wait
echo "all done"
