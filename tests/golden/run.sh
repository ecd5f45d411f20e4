#!/bin/sh
# run.sh - the golden set: a fixed list of commands with small budgets whose
# outputs (checkpoints, samples, printed metrics) must keep their exact bytes
# across refactoring. Prints "NAME SHA256" per output, one line each.
#
#   tests/golden/run.sh CLI DIGITS OUTDIR THREADS
#
# CLI: the flowmatch binary; DIGITS: an MNIST-style folder (the test harness
# makes one); OUTDIR: scratch space (emptied); THREADS: 1 or 2. With
# GOLDEN_KEEP=DIR in the environment the outputs are also copied to DIR.
# tests/test_golden.c runs it and compares with tests/golden/<build>.sha256;
# `make golden-record` rewrites those files (only when a change of output is
# intended and explained).
set -eu
CLI=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") TH=$4 R=$(cd "$(dirname "$0")" && pwd)
rm -rf "$3"
mkdir -p "$3"
cp -r "$2" "$3/digits"
cd "$3"
DIGITS=digits
q="--threads $TH --quiet"
run() { "$CLI" "$@"; }
out() { # name, then the command; its stdout is hashed as NAME.txt
    n=$1; shift
    "$CLI" "$@" > "$n.out" 2> "$n.err" || { echo "golden: '$*' failed:" >&2; cat "$n.err" >&2; exit 1; }
    untimed < "$n.out" > "$n.txt" && rm "$n.out"
}
untimed() { # printed figures without the times and rates, which vary from run to run
    sed -E 's/[0-9]+(\.[0-9]+)? s\b/TIME/g; s#[0-9]+(\.[0-9]+)? it/s#RATE#g'
}
# each method on moons
run train --data moons --iters 60 --batch 256 --seed 3 $q --out "fm.safetensors" --loss-csv "fm_loss.csv"
run sample --model "fm.safetensors" --n 300 --seed 1 --threads $TH --quiet --out "fm_samples.npy"
run sample --model "fm.safetensors" --n 200 --solver dopri5 --threads $TH --quiet --out "fm_dopri5.npy"
run train --method ddpm --data moons --iters 40 --batch 256 --T 100 $q --out "ddpm.safetensors" --loss-csv "ddpm_loss.csv"
run sample --model "ddpm.safetensors" --n 200 --threads $TH --quiet --out "ddpm_ancestral.npy"
run sample --model "ddpm.safetensors" --n 200 --solver ddim --steps 10 --threads $TH --quiet --out "ddpm_ddim.npy"
run train --method vae --data moons --iters 60 --batch 256 $q --out "vae.safetensors" --loss-csv "vae_loss.csv"
run sample --model "vae.safetensors" --n 200 --threads $TH --quiet --out "vae_samples.npy"
run train --method gan --data moons --iters 40 --batch 256 --k 2 $q --out "gan.safetensors" --loss-csv "gan_loss.csv"
run sample --model "gan.safetensors" --n 200 --threads $TH --quiet --out "gan_samples.npy"
# other paths, options and a resumed run
run train --data 8gaussians --path icfm --sigma 0.1 --iters 40 --batch 256 --ema 0.99 --clip 1 --schedule cosine \
    --warmup 5 --time-embed 16 $q --out "icfm.safetensors" --loss-csv "icfm_loss.csv"
run train --data circles --path vp --iters 30 --batch 256 --optim adamw $q --out "vp.safetensors" --loss-csv "vp_loss.csv"
run sample --model "vp.safetensors" --n 200 --solver rk4 --steps 4 --threads $TH --quiet --out "vp_samples.npy"
run train --resume "fm.safetensors" --iters 90 $q --out "fm_resumed.safetensors" --loss-csv "fm_resumed_loss.csv"
# the couplings
run train --data moons --coupling ot --iters 40 --batch 128 $q --out "ot.safetensors" --loss-csv "ot_loss.csv"
run train --data moons --path sb --coupling sb --iters 30 --batch 128 $q --out "sb.safetensors" --loss-csv "sb_loss.csv"
# the tutorial run, shortened
out demo demo --iters 100 --seed 2 --out-dir demo --threads $TH --quiet
# reflow
out reflow reflow --model "fm.safetensors" --pairs 500 --iters 40 --eval-n 200 --solver euler --steps 4 --threads $TH \
    --quiet --out "reflow.safetensors"
# likelihood and evaluation
out nll nll --model "fm.safetensors" --data moons --n 100 --steps 20 --threads $TH --out "nll.npy"
out nll_hutch nll --model "fm.safetensors" --data moons --n 100 --steps 10 --hutchinson 2 --threads $TH
out eval eval --a "fm.safetensors" --b moons --n 300 --threads $TH
out eval_ddpm eval --a "ddpm.safetensors" --b moons --n 200 --solver ddim --steps 5 --threads $TH
# a short U-Net run on digits, class-conditional with guidance
run train --data "mnist:$DIGITS" --arch unet --channels 8 --iters 3 --batch 8 $q --out "unet.safetensors" \
    --loss-csv "unet_loss.csv"
run sample --model "unet.safetensors" --n 4 --steps 2 --threads $TH --quiet --out "unet_samples.npy"
run train --data "mnist:$DIGITS" --arch unet --channels 8 --class-cond --iters 3 --batch 8 --ema 0.9 $q \
    --out "unet_cond.safetensors" --loss-csv "unet_cond_loss.csv"
run sample --model "unet_cond.safetensors" --n 4 --steps 2 --label all --guidance 2 --threads $TH --quiet \
    --out "unet_cond_samples.npy"
run train --method ddpm --data "mnist:$DIGITS" --arch unet --channels 8 --T 50 --iters 2 --batch 8 $q \
    --out "unet_ddpm.safetensors" --loss-csv "unet_ddpm_loss.csv"
run sample --model "unet_ddpm.safetensors" --n 3 --solver ddim --steps 3 --threads $TH --quiet --out "unet_ddpm_samples.npy"
run train --method vae --data "mnist:$DIGITS" --iters 3 --batch 16 $q --out "mnist_vae.safetensors" --loss-csv "mnist_vae_loss.csv"
run train --method gan --data "mnist:$DIGITS" --iters 3 --batch 16 $q --out "mnist_gan.safetensors" --loss-csv "mnist_gan_loss.csv"
# the digit classifier (its own training: epochs of shuffled images, shifts, dropout)
out classifier classifier --data "mnist:$DIGITS" --channels 8,8 --hidden 16 --iters 6 --batch 16 --dropout 0.2 \
    --threads $TH --quiet --out classifier.safetensors
# checkpoints written by earlier versions still load and sample the same
for f in "$R"/old/*.safetensors; do
    [ -f "$f" ] || continue
    b=$(basename "$f" .safetensors)
    case $b in vae|gan) steps= ;; *) steps="--steps 3" ;; esac
    run sample --model "$f" --n 50 $steps --threads $TH --quiet --out "old_${b}_samples.npy"
done
[ -z "${GOLDEN_KEEP:-}" ] || { mkdir -p "$GOLDEN_KEEP" && cp -r . "$GOLDEN_KEEP/"; }
find . -path ./digits -prune -o -type f ! -name '*.err' ! -name '*.svg' -print | LC_ALL=C sort | while read -r f; do
    printf '%s %s\n' "${f#./}" "$(sha256sum "$f" | cut -d' ' -f1)"
done
