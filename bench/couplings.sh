#!/usr/bin/env bash
# The couplings and rectified-flow table: for each setting (moons, 8gaussians,
# 8gaussians -> moons) and seed, train I-CFM, OT-CFM and SB-CFM (10,000
# iterations of 256), straighten the I-CFM model by reflow (1 and 2 rounds),
# and measure W2 to 2000 fresh points and the path energy after 1, 2, 8 and
# 100 Euler steps, plus the NLL of 2000 data points (rk4, 100 steps), and
# the floor: W2 between two independent 2000-point draws of the data.
#
#   bench/couplings.sh [OUTDIR] [SEEDS...]      (default: bench/couplings 0 1 2)
#
# Writes OUTDIR/results.csv and OUTDIR/table.md (mean +- std over the seeds).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fm="$here/../flowmatch"
out=${1:-$here/couplings}
shift || true
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
mkdir -p "$out"
csv="$out/results.csv"
echo "setting,method,seed,steps,w2,path_energy,normalised_pe,nll" > "$csv"

settings=("moons:moons:gaussian" "8gaussians:8gaussians:gaussian" "8gaussians->moons:moons:8gaussians")
for s in "${settings[@]}"; do
    IFS=: read -r name data source <<< "$s"
    tag=${name//->/_to_}
    for seed in "${seeds[@]}"; do
        dir="$out/$tag/seed$seed"
        mkdir -p "$dir"
        common=(--data "$data" --source "$source" --iters 10000 --seed "$seed" --quiet)
        "$fm" train "${common[@]}" --path icfm --sigma 0.1 --out "$dir/icfm.safetensors"
        "$fm" train "${common[@]}" --path icfm --sigma 0.1 --coupling ot --out "$dir/otcfm.safetensors"
        "$fm" train "${common[@]}" --coupling sb --sigma 0.5 --out "$dir/sbcfm.safetensors"
        "$fm" reflow --model "$dir/icfm.safetensors" --rounds 2 --pairs 20000 --iters 5000 --seed "$seed" \
            --eval-n 500 --save-rounds --out "$dir/rf2.safetensors" --quiet > "$dir/reflow.txt"
        mv "$dir/rf2_round1.safetensors" "$dir/rf1.safetensors"
        for m in icfm otcfm sbcfm rf1 rf2; do
            nll=$("$fm" nll --model "$dir/$m.safetensors" --data "$data" --n 2000 --seed $((seed + 100)) \
                --solver rk4 --steps 100 | awk '/NLL/{print $2}')
            for steps in 1 2 8 100; do
                line=$("$fm" eval --a "$dir/$m.safetensors" --b "$data" --n 2000 --seed $((seed + 200)) \
                    --solver euler --steps "$steps" --metrics w2)
                w2=$(echo "$line" | awk '/^W2/{print $3}')
                pe=$(echo "$line" | awk '/^path energy/{print $4}')
                npe=$(echo "$line" | awk '/^path energy/{print $NF}' | tr -d ')')
                echo "$name,$m,$seed,$steps,$w2,$pe,$npe,$nll" >> "$csv"
            done
        done
        # the floor: W2 between two independent draws of the data, same sizes
        line=$("$fm" eval --a "$data" --b "$data" --n 2000 --seed $((seed + 200)) --metrics w2)
        w2=$(echo "$line" | awk '/^W2/{print $3}')
        for steps in 1 2 8 100; do echo "$name,data,$seed,$steps,$w2,,," >> "$csv"; done
        echo "done: $name seed $seed" >&2
    done
done
/usr/bin/python3 "$here/couplings_table.py" "$csv" > "$out/table.md"
cat "$out/table.md"
