#!/bin/sh
# rfm_table.sh - Riemannian flow matching on the world's cities (the sphere)
# and on the torus's wrapped Gaussians: train, then on held-out points the
# NLL per point (nats), the geodesic W2 of samples (and of uniform points, for
# scale), NFE, and the share of samples off the manifold; the map figures.
#
#   sh bench/rfm_table.sh [OUT]     (ITERS, BATCH, N from the environment; needs make cities)
# Every command's output goes to OUT/<name>_<what>.log.
set -eu
FM=${FM:-./flowmatch}
OUT=${1:-bench/rfm}
ITERS=${ITERS:-20000}
BATCH=${BATCH:-512}
N=${N:-2000}
mkdir -p "$OUT"
[ -f data/cities/cities.pbf ] || { echo "rfm_table.sh: run 'make cities' first" >&2; exit 2; }
COMMON="--method rfm --batch $BATCH --iters $ITERS --lr 1e-3 --ema 0.999 --seed 1 --threads 1 --quiet"
for set in cities torus; do
    if [ $set = cities ]; then data=cities:data/cities test=cities:data/cities,split=test
    else data=torus-mix test=torus-mix; fi
    m="$OUT/$set.safetensors"
    t0=$(date +%s)
    [ -f "$m" ] || { $FM train $COMMON --data $data --out "$m" --loss-csv "$OUT/${set}_loss.csv" > "$OUT/${set}_train.log" 2>&1;
                     echo "train_seconds $(( $(date +%s) - t0 ))" >> "$OUT/${set}_train.log"; }
    $FM nll --model "$m" --data $test --n $N --seed 5 --threads 1 > "$OUT/${set}_nll.log" 2>&1
    for s in euler midpoint rk4; do
        for k in 10 25 100; do
            $FM eval --a "$m" --b $test --n $N --solver $s --steps $k --seed 7 --threads 1 > "$OUT/${set}_${s}_$k.log" 2>&1
        done
    done
    $FM sample --model "$m" --n $N --seed 3 --threads 1 --out "$OUT/${set}_samples.npy" \
        --scatter "$OUT/${set}_map.svg" > "$OUT/${set}_sample.log" 2>&1
    # uniform points against the same held-out set, the scale of the geodesic W2: normal points put on the
    # manifold (on the sphere exactly uniform; on the torus, with std 1000 before wrapping, uniform to 1e-6)
    if [ $set = cities ]; then man=sphere uni=gaussian:dim=3; else man=torus uni=gaussian:dim=2,scale=1000; fi
    $FM eval --a $uni --b $test --manifold $man --n $N --seed 7 --threads 1 > "$OUT/${set}_uniform.log" 2>&1
    echo "$set done in $(( $(date +%s) - t0 )) s"
done
