#!/usr/bin/env bash
# onestep.sh - the one-step routes on the 2D sets: for each setting (moons,
# 8gaussians, 8gaussians -> moons) and seed, train I-CFM (the teacher, sigma
# 0.1), OT-CFM, MeanFlow (JVP target) and SplitMeanFlow (10,000 iterations of
# 256 each), straighten the teacher by reflow (1 and 2 rounds of 5,000
# iterations on 20,000 pairs), and measure W2 to 2000 fresh points at 1, 2
# and 4 steps (Euler for the flows, jumps for MeanFlow) and the teacher's at
# 100 Euler steps. Training seconds on one thread; reflow's include its
# teacher's and its pairs'. A route whose checkpoint and .seconds file are
# there is not trained again.
#
#   bench/onestep.sh [OUTDIR] [SEEDS...]      (default: bench/onestep 0 1 2; FM from the environment)
#
# Writes OUTDIR/results.csv and OUTDIR/table.md (mean +- std over the seeds).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fm=${FM:-$here/../flowmatch}
out=${1:-$here/onestep}
shift || true
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
mkdir -p "$out"
csv="$out/results.csv"
echo "setting,route,seed,steps,w2,train_seconds" > "$csv"
now() { date +%s.%N; }
secs() { echo "$(now) - $1" | bc; }

settings=("moons:moons:gaussian" "8gaussians:8gaussians:gaussian" "8gaussians->moons:moons:8gaussians")
for s in "${settings[@]}"; do
    IFS=: read -r name data source <<< "$s"
    tag=${name//->/_to_}
    for seed in "${seeds[@]}"; do
        dir="$out/$tag/seed$seed"
        mkdir -p "$dir"
        common=(--data "$data" --source "$source" --iters 10000 --seed "$seed" --threads 1 --quiet)
        # each route trains once: its checkpoint and <route>.seconds stay, so a rerun only measures
        # (delete a route's checkpoint to train it again)
        train() { # route, flags...
            local m=$1
            shift
            [ -f "$dir/$m.safetensors" ] && [ -f "$dir/$m.seconds" ] && return 0
            local t0
            t0=$(now)
            "$fm" train "${common[@]}" "$@" --out "$dir/$m.safetensors"
            secs "$t0" > "$dir/$m.seconds"
        }
        train icfm --path icfm --sigma 0.1
        train otcfm --path icfm --sigma 0.1 --coupling ot
        train meanflow --method meanflow
        train split --method meanflow --target split --adaptive-p 0
        for k in 1 2; do
            prev=$([ $k = 1 ] && echo icfm || echo rf1)
            [ -f "$dir/rf$k.safetensors" ] && [ -f "$dir/rf$k.seconds" ] && continue
            t0=$(now)
            "$fm" reflow --model "$dir/$prev.safetensors" --rounds 1 --pairs 20000 --iters 5000 \
                --seed "$((seed + 50 * (k - 1)))" --eval-n 100 --threads 1 --out "$dir/rf$k.safetensors" --quiet \
                > "$dir/reflow$k.txt"
            echo "$(secs "$t0") + $(cat "$dir/$prev.seconds")" | bc > "$dir/rf$k.seconds"
        done
        for m in icfm otcfm rf1 rf2 meanflow split; do
            solver=euler
            [[ $m == meanflow || $m == split ]] && solver=jump
            steps_list=(1 2 4)
            [ $m = icfm ] && steps_list=(1 2 4 100)
            for steps in "${steps_list[@]}"; do
                w2=$("$fm" eval --a "$dir/$m.safetensors" --b "$data" --n 2000 --seed $((seed + 200)) \
                    --solver $solver --steps "$steps" --metrics w2 --threads 1 | awk '/^W2/{print $3}')
                echo "$name,$m,$seed,$steps,$w2,$(cat "$dir/$m.seconds")" >> "$csv"
            done
        done
        w2=$("$fm" eval --a "$data" --b "$data" --n 2000 --seed $((seed + 200)) --metrics w2 --threads 1 | awk '/^W2/{print $3}')
        echo "$name,data,$seed,1,$w2," >> "$csv"
        echo "done: $name seed $seed" >&2
    done
done
/usr/bin/python3 "$here/onestep_table.py" "$csv" > "$out/table.md"
cat "$out/table.md"
