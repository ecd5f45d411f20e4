#!/usr/bin/env bash
# onestep_timing.sh - the training cost of each one-step route, on an
# otherwise idle machine (the tables' own seconds were taken while other
# runs shared the 2 cores): on moons, seed 0, one thread, each 2D route as
# bench/onestep.sh trains it; on MNIST, 2 threads, seconds per iteration of
# the conditional U-Net (20 iterations after 5, batch 64) for flow matching,
# OT-CFM and MeanFlow, and the teacher's reflow pairs per second (midpoint,
# 20 steps).
#
#   bench/onestep_timing.sh [OUTDIR]        (FM from the environment; MNIST part needs make mnist)
set -euo pipefail
FM=${FM:-./flowmatch}
out=${1:-bench/onestep_timing}
mkdir -p "$out"
now() { date +%s.%N; }
t() { local t0; t0=$(now); "$@" > /dev/null 2>&1; echo "$(now) - $t0" | bc; }
common=(--data moons --iters 10000 --seed 0 --threads 1 --quiet --force)
echo "route,seconds"
echo "icfm,$(t "$FM" train "${common[@]}" --path icfm --sigma 0.1 --out "$out/icfm.safetensors")"
echo "otcfm,$(t "$FM" train "${common[@]}" --path icfm --sigma 0.1 --coupling ot --out "$out/otcfm.safetensors")"
echo "meanflow,$(t "$FM" train "${common[@]}" --method meanflow --out "$out/mf.safetensors")"
echo "split,$(t "$FM" train "${common[@]}" --method meanflow --target split --adaptive-p 0 --out "$out/split.safetensors")"
rm -f "$out/rf.safetensors"
echo "reflow round,$(t "$FM" reflow --model "$out/icfm.safetensors" --pairs 20000 --iters 5000 --eval-n 100 --threads 1 \
    --quiet --out "$out/rf.safetensors")"
[ -d data/mnist ] || exit 0
mn=(--data mnist:data/mnist --arch unet --class-cond --batch 64 --lr 1e-3 --threads 2 --quiet --force)
for r in fm otcfm meanflow; do
    extra=()
    [ $r = otcfm ] && extra=(--coupling ot)
    [ $r = meanflow ] && extra=(--method meanflow)
    a=$(t "$FM" train "${mn[@]}" "${extra[@]}" --iters 5 --out "$out/m_$r.safetensors")
    b=$(t "$FM" train "${mn[@]}" "${extra[@]}" --iters 25 --out "$out/m_$r.safetensors")
    echo "mnist $r s/iteration,$(echo "($b - $a) / 20" | bc -l)"
done
rm -f "$out/m_rf.safetensors"
a=$(t "$FM" reflow --model "$out/m_fm.safetensors" --pairs 64 --solver midpoint --steps 20 --iters 1 --batch 64 \
    --eval-n 2 --threads 2 --quiet --out "$out/m_rf.safetensors")
rm -f "$out/m_rf.safetensors"
b=$(t "$FM" reflow --model "$out/m_fm.safetensors" --pairs 576 --solver midpoint --steps 20 --iters 1 --batch 64 \
    --eval-n 2 --threads 2 --quiet --out "$out/m_rf.safetensors")
echo "mnist reflow pairs/s,$(echo "512 / ($b - $a)" | bc -l)"
