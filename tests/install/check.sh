#!/usr/bin/env bash
# Installs vkgrad from a build tree into a temporary prefix, then builds and runs a small program
# outside the tree against that prefix twice: through find_package(vkgrad) (consumer/) and
# through pkg-config. Usage: check.sh <build dir> <this folder>
set -euo pipefail

build=${1:?usage: check.sh <build dir> <tests/install dir>}
here=${2:?usage: check.sh <build dir> <tests/install dir>}
cc=${CC:-cc}

work=$(mktemp -d "${TMPDIR:-/tmp}/vkgrad-install-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

echo "== cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; exit 1; }

echo "== find_package(vkgrad)"
cmake -S "$here/consumer" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/cmake-build"
out=$("$work/cmake-build/app")
echo "$out"
[[ $out == "install check: ok 10" ]]

echo "== pkg-config vkgrad"
pcdir=$(dirname "$(find "$prefix" -name vkgrad.pc -print -quit)")
flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs vkgrad)
echo "flags: $flags"
# shellcheck disable=SC2086 # the flags are meant to split into words
"$cc" -std=c11 -Wall -Wextra -Werror -o "$work/app-pc" "$here/consumer/main.c" $flags
out=$("$work/app-pc")
echo "$out"
[[ $out == "install check: ok 10" ]]

echo "install check: both ways passed"
