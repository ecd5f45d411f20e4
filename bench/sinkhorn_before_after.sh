#!/bin/sh
# sinkhorn_before_after.sh REV - bench/sinkhorn.c's table for REV's library
# (built in a temporary worktree) and for this tree's, one after the other.
set -eu
rev=${1:?usage: bench/sinkhorn_before_after.sh REV}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$tmp/wt" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git -C "$root" worktree add -q --detach "$tmp/wt" "$rev"
make -C "$tmp/wt" -s -j2 libflowmatch.a >/dev/null
make -C "$root" -s -j2 libflowmatch.a >/dev/null
for side in "$tmp/wt" "$root"; do
    cc -O2 -I"$side/include" "$root/bench/sinkhorn.c" "$side/libflowmatch.a" -lpng -lz -lm -fopenmp -o "$tmp/sk"
    echo "## $( [ "$side" = "$root" ] && echo "this tree ($(git -C "$root" rev-parse --short HEAD))" || echo "$rev")"
    "$tmp/sk"
    echo
done
