#!/bin/sh
# Packs this build for a machine that has a GPU and its driver but no Vulkan loader, no GLVND
# and nothing else of ours (the NVIDIA H100 of bench/README.md): the stripped binaries, the
# shared libraries they load (glibc excepted), the validation layer, Debian's loader and GLVND
# packages, and the datasets the tests read. Run from the repository root after ./run build;
# OUTDIR (default out/remote) then travels with bench/remote/run.sh and bench/pytorch/.
#   bench/remote/pack.sh [OUTDIR]
set -eu
OUT=${1:-out/remote}
B=${VKG_BUILD_DIR:-build}
rm -rf "$OUT" && mkdir -p "$OUT/debs"
P=$(mktemp -d)
mkdir -p "$P/bin" "$P/lib" "$P/layers"
for b in "$B/lib/vkgrad-info" "$B/bench/vkgrad-bench" "$B/bench/vkgrad-matmul-time" "$B/models/vkgrad-train" \
         "$B"/tests/test_* "$B"/tutorials/tutorial-*; do
  [ -f "$b" ] && [ -x "$b" ] && strip -o "$P/bin/$(basename "$b")" "$b"
done
# every library the binaries load, but the C library's own (the target's glibc is newer)
for b in "$P"/bin/*; do ldd "$b"; done | awk '/=>/ { print $3 }' | sort -u |
  grep -v -E '/(libc|libm|libdl|librt|libpthread|libresolv|libgcc_s|libstdc\+\+)\.so|ld-linux' |
  while read -r l; do cp -L "$l" "$P/lib/"; done
strip -o "$P/lib/libVkLayer_khronos_validation.so" /usr/lib/x86_64-linux-gnu/libVkLayer_khronos_validation.so
cp /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json "$P/layers/"
# the test list is ctest's own (every binary and variant of tests/CMakeLists.txt), rewritten
# for run.sh: "NAME [VAR=VALUE ...] -- @B@/BINARY ARGS"; the install check needs a compiler
(cd "$B" && ctest --show-only=json-v1) | python3 -c '
import json, os, sys
local = ("VK_DRIVER_FILES", "VKG_TEST_CACHE", "LSAN_OPTIONS", "UBSAN_OPTIONS")
for t in json.load(sys.stdin)["tests"]:
    cmd = t["command"]
    if t["name"] == "install": continue
    if "--" in cmd: cmd = cmd[cmd.index("--") + 1:]   # tutorial_check README main.c -- BINARY --test
    env = [e for p in t.get("properties", []) if p["name"] == "ENVIRONMENT" for e in p["value"]
           if not e.startswith(local)]
    args = ["4" if a == "2" and i and cmd[i - 1] == "--jobs" else a for i, a in enumerate(cmd)]
    print(t["name"], *env, "--", "@B@/" + os.path.basename(args[0]), *args[1:])
' > "$P/tests.list"
tar cJf "$OUT/vkgrad.tar.xz" -C "$P" .
rm -rf "$P"
# the loader and GLVND: NVIDIA's Vulkan driver (libGLX_nvidia.so.0) needs libGLdispatch
(cd "$OUT/debs" && apt-get download libvulkan1 libglvnd0 libglx0 libegl1 libgl1 libopengl0 libgles2 2>/dev/null)
tar cf "$OUT/datasets.tar" -C / usr/share/datasets/fashion-mnist usr/share/games/fortunes
ls -la "$OUT" "$OUT/debs"
