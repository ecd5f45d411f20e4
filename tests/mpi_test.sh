#!/bin/sh
# mpi_test.sh - data-parallel runs over Open MPI ranks against one process.
#
#   tests/mpi_test.sh [CLI]      (make mpi-test; CLI defaults to ./flowmatch)
#
# The headline property: N ranks of T threads give the bytes of one process
# of N x T threads, for the tutorial run, every method, the U-Net, the GAN,
# the classifier, OT couplings, resuming across the two, and for sampling,
# likelihoods and evaluation. Then the failures: a batch too small for the
# ranks, a rank that cannot open its file, a rank that hangs (the others give
# up after FLOWMATCH_RANK_TIMEOUT seconds), a signal (rank 0 saves), a
# command that runs in one process only, and (FM_NOMPI=a build without MPI)
# a launch it must refuse. Ends with "N passed, N failed".
set -u
CLI=$(cd "$(dirname "${1:-./flowmatch}")" && pwd)/$(basename "${1:-./flowmatch}")
NOMPI=${FM_NOMPI:+$(cd "$(dirname "$FM_NOMPI")" && pwd)/$(basename "$FM_NOMPI")}
command -v mpirun > /dev/null || { echo "mpi_test: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)"; exit 2; }
"$CLI" version > /dev/null || exit 2
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
mkdir tmp
export TMPDIR="$W/tmp" # where the other ranks stage what they do not keep
# as root, Open MPI wants to be told; single-copy transfers need ptrace, which containers often forbid
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1 # more ranks than cores: this machine may have 2
MPI="mpirun --bind-to none"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "  ok    $1"; }
bad() { fail=$((fail + 1)); echo "  FAIL  $1"; }
# same NAME A B: the two files' bytes are equal (the largest error is then 0)
same() {
    if cmp -s "$2" "$3"; then ok "$1 (identical bytes)"; else bad "$1 ($2 and $3 differ)"; fi
}

# An MNIST-style folder of 640 training and 128 test images (blobs of the ten classes).
python3 - digits << 'EOF' || { echo "mpi_test: python3 is needed to write the test digits"; exit 2; }
import os, random, struct, sys
d = sys.argv[1]; os.makedirs(d, exist_ok=True); rnd = random.Random(5)
def write(name, n):
    px = bytearray(); lab = bytearray()
    for i in range(n):
        c = i % 10; lab.append(c)
        cy, cx = 6 + 2 * (c // 5) * 4, 4 + 4 * (c % 5)
        for y in range(28):
            for x in range(28):
                v = 255 - 40 * (abs(y - cy) + abs(x - cx)) + rnd.randint(-30, 30)
                px.append(max(0, min(255, v)))
    open(os.path.join(d, name + "-images-idx3-ubyte"), "wb").write(struct.pack(">IIII", 0x803, n, 28, 28) + px)
    open(os.path.join(d, name + "-labels-idx1-ubyte"), "wb").write(struct.pack(">II", 0x801, n) + lab)
write("train", 640); write("t10k", 128)
EOF
D="mnist:digits"
q="--quiet"

echo "training: N ranks x T threads against one process of N x T threads"
# pair NAME NP ARGS...: train ARGS with NP ranks of 1 thread and in one process with NP threads
pair() {
    name=$1 np=$2
    shift 2
    $MPI -np "$np" "$CLI" train "$@" --threads 1 $q --out "$name.mpi.safetensors" > "$name.mpi.log" 2>&1 &&
        "$CLI" train "$@" --threads "$np" $q --out "$name.one.safetensors" > "$name.one.log" 2>&1 ||
        { bad "$name: a run failed: $(tail -n 3 "$name.mpi.log" "$name.one.log" | tr '\n' ' ')"; return; }
    same "$name: $np ranks x 1 thread = 1 process x $np threads" "$name.mpi.safetensors" "$name.one.safetensors"
}
pair tutorial 2 --iters 300
pair tutorial3 3 --iters 300
# ranks started with different --threads plan with rank 0's count: 1 thread x 2 ranks cut the batch as 2 threads
$MPI -np 1 "$CLI" train --iters 300 --threads 1 $q --out mixed.safetensors : -np 1 "$CLI" train --iters 300 --threads 3 \
    $q --out mixed.safetensors > /dev/null 2>&1
same "ranks with different --threads (1 and 3) = 1 process x 2 threads" mixed.safetensors tutorial.one.safetensors
$MPI -np 1 "$CLI" sample --model tutorial.one.safetensors --n 1000 --solver dopri5 --threads 1 $q --out mx.npy : \
    -np 1 "$CLI" sample --model tutorial.one.safetensors --n 1000 --solver dopri5 --threads 2 $q --out mx.npy > /dev/null 2>&1
"$CLI" sample --model tutorial.one.safetensors --n 1000 --solver dopri5 --threads 1 $q --out mx.one.npy > /dev/null 2>&1
same "sampling on ranks with different --threads" mx.npy mx.one.npy
$MPI -np 2 "$CLI" train --iters 300 --threads 2 $q --out t22.safetensors > /dev/null 2>&1 &&
    "$CLI" train --iters 300 --threads 4 $q --out t4.safetensors > /dev/null 2>&1
same "tutorial: 2 ranks x 2 threads = 1 process x 4 threads" t22.safetensors t4.safetensors
"$CLI" train --iters 300 --threads 1 $q --out t1.safetensors > /dev/null 2>&1
if cmp -s t1.safetensors tutorial.mpi.safetensors; then bad "tutorial: 2 shards gave 1 shard's bytes (no split?)"
else ok "tutorial: 2 shards differ from 1 (the batch was split)"; fi
for m in ddpm vae gan cnf nf score; do pair "$m" 2 --method "$m" --iters 40; done
pair ot-coupling 2 --coupling ot --iters 100
pair rfm-sphere 2 --method rfm --data sphere-mix --iters 40
pair dfm 2 --method dfm --data checkerboard-tokens:vocab=16 --width 64 --iters 40
pair unet 2 --data "$D" --arch unet --channels 8 --class-cond --iters 3 --batch 64 --ema 0.9
pair unet-ddpm 2 --method ddpm --data "$D" --arch unet --channels 8 --T 50 --iters 2 --batch 64
pair mnist-gan 2 --method gan --data "$D" --iters 3 --batch 64
if $MPI -np 2 "$CLI" classifier --data "$D" --channels 8,8 --hidden 16 --iters 6 --batch 128 --threads 1 $q \
    --out clf.mpi.safetensors > clf.log 2>&1 &&
    "$CLI" classifier --data "$D" --channels 8,8 --hidden 16 --iters 6 --batch 128 --threads 2 $q \
        --out clf.one.safetensors >> clf.log 2>&1; then
    same "classifier: 2 ranks x 1 thread = 1 process x 2 threads" clf.mpi.safetensors clf.one.safetensors
else bad "classifier: a run failed: $(tail -n 3 clf.log | tr '\n' ' ')"; fi

echo "resuming across the two"
"$CLI" train --iters 400 --threads 2 $q --out full.safetensors > /dev/null 2>&1
"$CLI" train --iters 200 --threads 2 $q --out r1.safetensors > /dev/null 2>&1 &&
    $MPI -np 2 "$CLI" train --resume r1.safetensors --iters 400 --threads 1 $q > /dev/null 2>&1
same "1 process to 200, 2 ranks to 400 = 1 process to 400" r1.safetensors full.safetensors
$MPI -np 2 "$CLI" train --iters 200 --threads 1 $q --out r2.safetensors > /dev/null 2>&1 &&
    "$CLI" train --resume r2.safetensors --iters 400 --threads 2 $q > /dev/null 2>&1
same "2 ranks to 200, 1 process to 400 = 1 process to 400" r2.safetensors full.safetensors
same "  and the loss history too" r2_loss.csv full_loss.csv

echo "sampling, likelihoods and evaluation: rows split over the ranks"
M=tutorial.one.safetensors
$MPI -np 2 "$CLI" sample --model $M --n 1000 --solver dopri5 --threads 1 $q --out s.mpi.npy > /dev/null 2>&1
"$CLI" sample --model $M --n 1000 --solver dopri5 --threads 2 $q --out s.one.npy > /dev/null 2>&1
same "sample (dopri5, 1000 points)" s.mpi.npy s.one.npy
$MPI -np 3 "$CLI" sample --model unet.one.safetensors --n 20 --steps 3 --label all --guidance 2 --threads 1 $q \
    --out u.mpi.npy > /dev/null 2>&1
"$CLI" sample --model unet.one.safetensors --n 20 --steps 3 --label all --guidance 2 --threads 1 $q --out u.one.npy \
    > /dev/null 2>&1
same "sample (class-conditional U-Net, guidance, 3 ranks)" u.mpi.npy u.one.npy
$MPI -np 2 "$CLI" nll --model $M --data moons --n 300 --hutchinson 2 --threads 1 --out l.mpi.csv > /dev/null 2>&1
"$CLI" nll --model $M --data moons --n 300 --hutchinson 2 --threads 2 --out l.one.csv > /dev/null 2>&1
same "nll (Hutchinson, per-point values)" l.mpi.csv l.one.csv
$MPI -np 2 "$CLI" nll --model rfm-sphere.one.safetensors --data sphere-mix --n 200 --threads 1 --out r.mpi.csv > /dev/null 2>&1
"$CLI" nll --model rfm-sphere.one.safetensors --data sphere-mix --n 200 --threads 2 --out r.one.csv > /dev/null 2>&1
same "nll of an rfm model (its projected rk4, the divergence on the sphere)" r.mpi.csv r.one.csv
$MPI -np 3 "$CLI" sample --model rfm-sphere.one.safetensors --n 500 --threads 1 $q --out rs.mpi.npy > /dev/null 2>&1
"$CLI" sample --model rfm-sphere.one.safetensors --n 500 --threads 1 $q --out rs.one.npy > /dev/null 2>&1
same "sample an rfm model (3 ranks)" rs.mpi.npy rs.one.npy
$MPI -np 2 "$CLI" sample --model dfm.one.safetensors --n 500 --steps 16 --threads 1 $q --out ds.mpi.npy > /dev/null 2>&1
"$CLI" sample --model dfm.one.safetensors --n 500 --steps 16 --threads 1 $q --out ds.one.npy > /dev/null 2>&1
same "sample a dfm model (the jump sampler)" ds.mpi.npy ds.one.npy
$MPI -np 2 "$CLI" nll --model dfm.one.safetensors --data checkerboard-tokens:vocab=16 --n 300 --threads 1 --out dl.mpi.csv > /dev/null 2>&1
"$CLI" nll --model dfm.one.safetensors --data checkerboard-tokens:vocab=16 --n 300 --threads 2 --out dl.one.csv > /dev/null 2>&1
same "nll of a dfm model (its ELBO)" dl.mpi.csv dl.one.csv
$MPI -np 2 "$CLI" eval --a $M --b moons --n 500 --threads 1 --json > e.mpi.json 2> e.err
"$CLI" eval --a $M --b moons --n 500 --threads 2 --json > e.one.json 2>> e.err
same "eval (W2, energy, MMD, path energy)" e.mpi.json e.one.json
$MPI -np 2 "$CLI" eval --a unet.one.safetensors --b "$D,split=test" --n 64 --steps 2 --classifier clf.one.safetensors \
    --threads 1 --json > c.mpi.json 2>> e.err
"$CLI" eval --a unet.one.safetensors --b "$D,split=test" --n 64 --steps 2 --classifier clf.one.safetensors \
    --threads 2 --json > c.one.json 2>> e.err
same "eval with the classifier (Frechet distance, classes)" c.mpi.json c.one.json

left=$(ls "$TMPDIR" | wc -l)
[ "$left" -eq 0 ] && ok "the other ranks' scratch folders are gone" || bad "$left scratch folders left in $TMPDIR"

echo "failures"
# expect NAME RC-WANTED(nonzero) PATTERN command...: a non-zero exit whose message matches
expect() {
    name=$1 pat=$2
    shift 2
    t0=$(date +%s)
    "$@" > out.log 2>&1
    rc=$? secs=$(($(date +%s) - t0))
    if [ $rc -ne 0 ] && grep -q "$pat" out.log; then ok "$name (exit $rc after ${secs} s)"
    else bad "$name (exit $rc after ${secs} s; wanted a failure saying '$pat'): $(head -c 300 out.log)"; fi
}
expect "a batch too small for the ranks" "too few for 2 ranks" \
    $MPI -np 2 "$CLI" train --batch 32 --iters 5 --threads 1 $q --out small.safetensors
expect "rank 1 cannot open its data" "rank 1: missing.csv" \
    $MPI -np 2 sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then d=missing.csv; else d=moons; fi;
        exec "$0" train --data $d --iters 5 --threads 1 --quiet --out miss.safetensors' "$CLI"
expect "rank 1 cannot open the model" "rank 1: .*nothere" \
    $MPI -np 2 sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then m=nothere.safetensors; else m="$1"; fi;
        exec "$0" sample --model $m --n 10 --threads 1 --quiet --out miss.npy' "$CLI" "$M"
[ -e miss.safetensors ] || [ -e miss.npy ] && bad "a failed run left its output" || ok "a failed run wrote nothing"
export FLOWMATCH_RANK_TIMEOUT=4
expect "rank 1 hangs: rank 0 gives up after the timeout and ends the job" "waited 4 s" \
    timeout 120 $MPI -x FLOWMATCH_RANK_TIMEOUT -np 2 sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then
        "$0" train --iters 1000000 --threads 1 --quiet --out hang.safetensors & p=$!; sleep 1; kill -STOP $p; wait $p;
        else exec "$0" train --iters 1000000 --threads 1 --quiet --out hang.safetensors; fi' "$CLI"
unset FLOWMATCH_RANK_TIMEOUT
expect "rank 1 dies: the job ends" "exited\|non-zero\|terminated" \
    timeout 120 $MPI -np 2 sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then
        "$0" train --iters 1000000 --threads 1 --quiet --out dead.safetensors & p=$!; sleep 1; kill -9 $p; exit 9;
        else exec "$0" train --iters 1000000 --threads 1 --quiet --out dead.safetensors; fi' "$CLI"
"$CLI" train --iters 20 --seed 1 --threads 1 $q --out seed1.safetensors > /dev/null 2>&1
"$CLI" train --iters 20 --seed 2 --threads 1 $q --out seed2.safetensors > /dev/null 2>&1
expect "ranks that hold different parameters (two checkpoints) are caught by the hash" "differ between the ranks" \
    $MPI -np 2 sh -c 'exec "$0" train --resume seed$((OMPI_COMM_WORLD_RANK + 1)).safetensors --iters 40 --threads 1 \
        --quiet --out diverged.safetensors' "$CLI"
expect "a command of one process refuses ranks" "runs in one process" $MPI -np 2 "$CLI" demo --out-dir demo
if [ -n "$NOMPI" ]; then
    expect "a build without MPI refuses to run as 2 ranks" "built without MPI" \
        $MPI -np 2 "$NOMPI" train --iters 5 --threads 1 $q --out nompi.safetensors
    [ "$(grep -c "built without MPI" out.log)" = 1 ] && ok "  and says so once (rank 0)" ||
        bad "  the message came $(grep -c "built without MPI" out.log) times"
fi
# a signal to mpirun: every rank stops at the same step and rank 0 saves
$MPI -np 2 "$CLI" train --iters 1000000 --threads 1 --log-every 1000000 --out sig.safetensors > sig.log 2>&1 &
p=$!
sleep 3
kill -TERM $p
wait $p
rc=$?
it=$("$CLI" inspect sig.safetensors 2> /dev/null | sed -n 's/^ *train\.iter = //p')
if [ $rc -ne 0 ] && [ -n "$it" ] && [ "$it" -gt 0 ] && grep -q "terminated at iteration $it" sig.log; then
    ok "SIGTERM: the ranks stopped together and rank 0 saved iteration $it (exit $rc)"
else bad "SIGTERM: exit $rc, checkpoint at iteration '${it:-none}': $(tail -n 2 sig.log | tr '\n' ' ')"; fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
