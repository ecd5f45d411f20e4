#!/bin/sh
# dfm_table.sh - discrete flow matching on its three sets, measured:
#   words        English words (make words) as 12 letter tokens: the share of
#                generated words in the training split, and in the list but
#                not the training split, at 16, 64 and 256 steps; the held-out
#                ELBO in bits per token
#   checkerboard flow_matching's 2D example, 128 bins a coordinate: the share
#                of samples on the white squares at 16, 64 and 256 steps, the
#                ELBO against the true NLL log 8192, and the figure
#   mnist        binarised digits: a sample grid and the Frechet distance in
#                the digit classifier's features (and that of real binarised
#                training digits, for scale)
#
#   sh bench/dfm_table.sh [OUT]   (ITERS_W, ITERS_C, ITERS_M, SEED from the environment;
#                                  needs make words and make mnist)
# Every command's output goes to OUT/<set>_<what>.log; OUT/table.md collects the numbers.
set -eu
FM=${FM:-./flowmatch}
OUT=${1:-bench/dfm}
ITERS_W=${ITERS_W:-30000}
ITERS_C=${ITERS_C:-6000}
ITERS_M=${ITERS_M:-1500}
SEED=${SEED:-1}
W=data/words/words.txt
mkdir -p "$OUT"
[ -f $W ] || { echo "dfm_table.sh: run 'make words' first" >&2; exit 2; }
[ -f data/mnist/train-images-idx3-ubyte ] || { echo "dfm_table.sh: run 'make mnist' first" >&2; exit 2; }
q="--threads 1 --quiet"
train() { # name, data, iters, batch
    [ -f "$OUT/$1.safetensors" ] || { t0=$(date +%s);
        $FM train --method dfm --data "$2" --iters $3 --batch $4 --seed $SEED $q --out "$OUT/$1.safetensors" > "$OUT/$1_train.log" 2>&1;
        echo "train_seconds $(( $(date +%s) - t0 ))" >> "$OUT/$1_train.log"; }
}
nats() { sed -n 's/^ *NLL *\([0-9.]*\) nats.*/\1/p' "$1"; }

# ---- words
train words "words:$W" $ITERS_W 256
$FM nll --model "$OUT/words.safetensors" --data "words:$W,split=test" --n 2000 --seed 5 --threads 1 > "$OUT/words_nll.log" 2>&1
# the usable words (1-12 letters a-z, lower-cased) and their split, as the reader makes it
awk '{ w = tolower($0); if (w ~ /^[a-z]+$/ && length(w) <= 12) { print w, (n % 10 == 9) ? "test" : "train"; n++ } }' $W > "$OUT/words_split.txt"
echo "| steps | in the training split | in the list, not the training split | new words | held-out ELBO |" > "$OUT/table.md"
echo "| ---: | ---: | ---: | ---: | ---: |" >> "$OUT/table.md"
elbo=$(nats "$OUT/words_nll.log")
for k in 16 64 256; do
    $FM sample --model "$OUT/words.safetensors" --n 2000 --steps $k --seed 3 --threads 1 --out "$OUT/words_$k.txt" > "$OUT/words_sample_$k.log" 2>&1
    awk -v k=$k -v e="$elbo" 'FNR == NR { split_[$1] = $2; next }
         { n++; if (($0 in split_) && split_[$0] == "train") tr++; else if ($0 in split_) te++; else nw++ }
         END { printf "| %d | %.1f%% | %.1f%% | %.1f%% | %.3f nats = %.3f bits per token |\n", k, 100 * tr / n, 100 * te / n,
               100 * nw / n, e, e / (12 * log(2)) }' "$OUT/words_split.txt" "$OUT/words_$k.txt" >> "$OUT/table.md"
done

# ---- checkerboard, 128 bins a coordinate
train checker checkerboard-tokens $ITERS_C 512
$FM nll --model "$OUT/checker.safetensors" --data checkerboard-tokens --n 2000 --seed 5 --threads 1 > "$OUT/checker_nll.log" 2>&1
echo "" >> "$OUT/table.md"
echo "| steps | on white squares | ELBO (true NLL log 8192 = 9.011 nats) |" >> "$OUT/table.md"
echo "| ---: | ---: | ---: |" >> "$OUT/table.md"
for k in 16 64 256; do
    sc=""
    [ $k = 64 ] && sc="--scatter $OUT/checker_samples.svg"
    $FM sample --model "$OUT/checker.safetensors" --n 4000 --steps $k --seed 3 --threads 1 --out "$OUT/checker_$k.csv" $sc > "$OUT/checker_sample_$k.log" 2>&1
    awk -F, -v k=$k -v e="$(nats "$OUT/checker_nll.log")" '{ n++; if ((int($1 / 32) + int($2 / 32)) % 2) w++ }
         END { printf "| %d | %.2f%% | %.3f nats |\n", k, 100 * w / n, e }' "$OUT/checker_$k.csv" >> "$OUT/table.md"
done

# ---- binarised MNIST
CLF=${CLF:-$OUT/clf.safetensors}
[ -f "$CLF" ] || $FM classifier --data mnist:data/mnist --out "$CLF" --threads 1 > "$OUT/clf.log" 2>&1
train mnist mnist:data/mnist,binarize=1 $ITERS_M 64
$FM sample --model "$OUT/mnist.safetensors" --n 64 --seed 3 --threads 1 --out "$OUT/mnist_samples.npy" \
    --grid "$OUT/mnist_samples.png" > "$OUT/mnist_sample.log" 2>&1
$FM eval --a "$OUT/mnist.safetensors" --b mnist:data/mnist,split=test,binarize=1 --classifier "$CLF" --n 1000 \
    --steps 64 --seed 7 --threads 1 > "$OUT/mnist_eval.log" 2>&1
$FM eval --a mnist:data/mnist,binarize=1 --b mnist:data/mnist,split=test,binarize=1 --classifier "$CLF" --n 1000 \
    --threads 1 > "$OUT/mnist_real.log" 2>&1
$FM nll --model "$OUT/mnist.safetensors" --data mnist:data/mnist,split=test,binarize=1 --n 500 --seed 5 --threads 1 \
    > "$OUT/mnist_nll.log" 2>&1
echo "" >> "$OUT/table.md"
fd() { sed -n 's/.*Frechet distance *\([0-9.]*\).*/\1/p' "$1" | head -n 1; }
echo "binarised MNIST: Frechet distance $(fd "$OUT/mnist_eval.log") (real binarised training digits: $(fd "$OUT/mnist_real.log")); ELBO $(nats "$OUT/mnist_nll.log") nats per image" >> "$OUT/table.md"
cat "$OUT/table.md"
