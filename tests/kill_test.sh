#!/bin/sh
# kill_test.sh - kill -9 a training run at random moments, again and again,
# resuming it each time: the checkpoint must always load, lose at most one
# --save-every interval, and leave no staged file behind once resumed.
#
#   tests/kill_test.sh [CLI] [ROUNDS]     (default ./flowmatch, 30 rounds)
#
# Ends with "N passed, N failed"; exits non-zero on any failure.
set -u
CLI=$(cd "$(dirname "${1:-./flowmatch}")" && pwd)/$(basename "${1:-./flowmatch}")
ROUNDS=${2:-30}
EVERY=25
D=$(mktemp -d "${TMPDIR:-/tmp}/fmkill.XXXXXX")
trap 'rm -rf "$D"' EXIT
cd "$D" || exit 2
pass=0 fail=0
check() { # ok message
    if [ "$1" = 1 ]; then pass=$((pass + 1)); echo "PASS  kill/$2"; else fail=$((fail + 1)); echo "FAIL  kill/$2"; fi
}
iter_of() { "$CLI" inspect "$1" 2>/dev/null | sed -n 's/^ *train\.iter = \([0-9]*\)$/\1/p'; }
total=0
for r in $(seq 1 "$ROUNDS"); do
    total=$((total + 400 + r * 37))
    if [ -f k.safetensors ]; then
        set -- train --resume k.safetensors --iters "$total" --save-every $EVERY --log-every 1 --threads 1
    else
        set -- train --iters "$total" --batch 64 --save-every $EVERY --log-every 1 --threads 1 --out k.safetensors
    fi
    "$CLI" "$@" > out.txt 2> err.txt &
    pid=$!
    # a random moment: 0.05 .. 0.8 s after the start
    sleep "$(awk -v s="$r" 'BEGIN { srand(s); printf "%.2f", 0.05 + 0.75 * rand() }')"
    kill -9 "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
    reached=$(sed -n 's/^iter \([0-9]*\)\/.*/\1/p' err.txt | tail -n 1)
    reached=${reached:-0}
    got=$(iter_of k.safetensors)
    if [ -z "$got" ]; then
        # killed before the first save of a fresh run: nothing to lose yet
        ok=0; [ ! -f k.safetensors ] && [ "$reached" -lt $EVERY ] && ok=1
        check $ok "round $r: no checkpoint yet (killed at iteration $reached)"
        continue
    fi
    ok=0; [ "$got" -ge $((reached - EVERY)) ] && "$CLI" sample --model k.safetensors --n 10 --out s.npy --quiet && ok=1
    check $ok "round $r: killed at iteration $reached, the checkpoint loads at $got"
done
# a last resume to the end: no staged file of the killed runs is left
total=$(( $(iter_of k.safetensors) + 10 ))
"$CLI" train --resume k.safetensors --iters "$total" --quiet --threads 1
ok=0; [ "$(iter_of k.safetensors)" = "$total" ] && [ -z "$(ls | grep '\.tmp[0-9]')" ] && ok=1
check $ok "a final resume reaches iteration $total; no staged file left ($(ls | tr '\n' ' '))"
# the loss history: one row per iteration, 1 .. total, in order
ok=0; awk -F, -v n="$total" 'NR > 1 { if ($1 + 0 != NR - 1) bad = 1; rows++ } END { exit !(rows == n && !bad) }' \
    k_loss.csv && ok=1
check $ok "the loss history holds iterations 1 .. $total once each, in order"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
