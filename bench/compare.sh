#!/usr/bin/env bash
# flowmatch compare on moons and 8gaussians at the default budget, for several
# seeds, then one W2 table per dataset (mean +- std over the seeds). About 75 s
# per run on one core.
#
#   bench/compare.sh [OUTDIR] [SEEDS...]        (default: bench/compare 0 1 2)
#   METHODS=score-vp bench/compare.sh ...       (only these methods; default: all)
#
# Writes OUTDIR/<data>/seed<N>/ (compare.md, compare.csv, compare.svg and the
# checkpoints) and OUTDIR/table.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fm="$here/../flowmatch"
out=${1:-$here/compare}
shift || true
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
mkdir -p "$out"
: > "$out/table.md"
for data in moons 8gaussians; do
    dirs=()
    for seed in "${seeds[@]}"; do
        dir="$out/$data/seed$seed"
        rm -rf "$dir"
        "$fm" compare --data "$data" --seed "$seed" ${METHODS:+--methods "$METHODS"} --quiet --out-dir "$dir" > /dev/null
        dirs+=("$dir")
        echo "done: $data seed $seed" >&2
    done
    /usr/bin/python3 "$here/compare_table.py" "$data" "${dirs[@]}" >> "$out/table.md"
    echo >> "$out/table.md"
done
cat "$out/table.md"
