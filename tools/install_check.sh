#!/bin/sh
# install_check.sh - `make install` into a temporary prefix, checked as a user
# of the installed copy would: the examples built outside the source tree with
# pkg-config against the shared library and run, the versions of the tool,
# the library, its SONAME and flowmatch.pc the same, only fm_ symbols
# exported, the manual page readable, and `make uninstall` leaving no file.
#
#   sh tools/install_check.sh VERSION MAJOR     (make install-check passes them)
set -eu
version=$1 major=$2
src=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "install-check: $*" >&2; exit 1; }

MAKEFLAGS= make -s install PREFIX="$prefix" > /dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pc=$(pkg-config --modversion flowmatch) || fail "pkg-config does not find flowmatch.pc"
[ "$pc" = "$version" ] || fail "flowmatch.pc says $pc, the header $version"
tool=$("$prefix/bin/flowmatch" --version)
[ "$tool" = "flowmatch $version" ] || fail "the tool says '$tool'"
so=$(readelf -d "$prefix/lib/libflowmatch.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$so" = "libflowmatch.so.$major" ] || fail "SONAME '$so', not libflowmatch.so.$major"
[ -L "$prefix/lib/libflowmatch.so" ] && [ -L "$prefix/lib/libflowmatch.so.$major" ] || fail "the .so symlinks are missing"
exported=$(nm -D --defined-only "$prefix/lib/libflowmatch.so.$version" | awk '$2 ~ /[TDBR]/ {print $3}')
count=$(printf '%s\n' "$exported" | grep -c '^fm_')
others=$(printf '%s\n' "$exported" | grep -v '^fm_' | grep -v '^_init$' | grep -v '^_fini$' || true)
[ -z "$others" ] || fail "symbols outside fm_ exported: $(echo $others | head -c 300)"
printf '%s\n' "$exported" | grep -q '^fm__' && fail "internal fm__ symbols exported"
page=$prefix/share/man/man1/flowmatch.1
grep -q '^\.TH FLOWMATCH 1 .*flowmatch '"$version" "$page" && [ "$(grep -c '^\.SS ' "$page")" -ge 10 ] \
    || fail "the manual page lacks its title or a section per command"
if command -v groff > /dev/null 2>&1; then # formats without a warning, where a formatter is installed
    [ -z "$(groff -man -Tutf8 -ww -z "$page" 2>&1)" ] || fail "groff warns about the manual page"
fi

# the examples, outside the tree, against the shared library
cd "$tmp"
for ex in train_sample load_sample; do
    cc -std=c11 -Wall -Wextra -Werror "$src/examples/$ex.c" $(pkg-config --cflags --libs flowmatch) -o "$ex" \
        || fail "examples/$ex.c does not build against the installed copy"
done
ldd ./train_sample | grep -q "libflowmatch.so.$major => $prefix/lib" 2>/dev/null || \
    LD_LIBRARY_PATH="$prefix/lib" ldd ./train_sample | grep -q "libflowmatch.so.$major => $prefix/lib" || \
    fail "train_sample does not link the installed shared library"
export LD_LIBRARY_PATH="$prefix/lib"
./train_sample m.safetensors 1500 || fail "train_sample failed"
./load_sample m.safetensors 500 s.npy || fail "load_sample failed"
# and statically, as pkg-config --static says
cc -std=c11 "$src/examples/load_sample.c" $(pkg-config --cflags flowmatch) "$prefix/lib/libflowmatch.a" \
    $(pkg-config --static --libs-only-l --libs-only-other flowmatch | sed 's/-lflowmatch//') -o load_static \
    || fail "load_sample does not link statically with pkg-config --static"
./load_static m.safetensors 10 s2.npy > /dev/null || fail "the static load_sample failed"

cd "$src"
MAKEFLAGS= make -s uninstall PREFIX="$prefix" > /dev/null
left=$(find "$prefix" -type f -o -type l)
[ -z "$left" ] || fail "uninstall left: $left"
echo "install-check: flowmatch $version installed, $count fm_ symbols exported (nothing else), SONAME $so;" \
    "examples built with pkg-config and run (shared and static); uninstall left nothing"
