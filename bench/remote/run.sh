#!/bin/bash
# On the GPU machine, from a copy of the repository root with bench/remote/pack.sh's OUTDIR:
# installs the carried loader (dpkg -x into /, as root), finds the driver's ICD file, then runs
# vkgrad-info, the test binaries and tutorials (validation layer on), the three suites and the
# same suites in PyTorch on CUDA, writing reports and logs to RESULTS.
#   bench/remote/run.sh PACKDIR RESULTS        (MIN_TIME: --min-time for the suites, default 0.5;
#                                               SUITES: which, default "quick models micro",
#                                               empty for none;
#                                               TESTS: an extended regex of the test names to run,
#                                               default all)
set -u
PACK=$1 RES=$2 MT=${MIN_TIME:-0.5} SUITES=${SUITES-quick models micro}
mkdir -p "$RES/logs"
for f in "$PACK"/debs/*.deb; do dpkg -x "$f" /; done
ldconfig
P=$(mktemp -d)
tar xJf "$PACK/vkgrad.tar.xz" -C "$P"
tar xf "$PACK/datasets.tar" -C /
export LD_LIBRARY_PATH=$P/lib VK_LAYER_PATH=$P/layers
for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
         /etc/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$f" ] && { export VK_DRIVER_FILES=$f; break; }
done
B=$P/bin
echo "driver file: ${VK_DRIVER_FILES:-none found}"
"$B/vkgrad-info" || { VK_LOADER_DEBUG=error,driver "$B/vkgrad-info" 2>&1 | tail -30; exit 1; }

# every ctest entry (or those TESTS names) but the install check (pack.sh wrote the list), 6 at a time
sed "s|@B@|$B|" "$P/tests.list" | grep -E "^(${TESTS:-.*}) " > "$RES/logs/list"
one() { # NAME [VAR=VALUE ...] -- COMMAND...
  local n=$1; shift; local e=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do e+=("$1"); shift; done; [ $# -gt 0 ] && shift
  VKG_TEST_CACHE=$(mktemp -d) timeout 300 env "${e[@]}" "$@" > "$RES/logs/$n.log" 2>&1
  echo "$n rc=$?"
}
export -f one; export RES
echo "$(date +%T) tests"
xargs -r -P 6 -L 1 bash -c 'one "$@"' _ < "$RES/logs/list" | sort > "$RES/logs/summary"
grep -c "rc=0" "$RES/logs/summary" | sed 's/$/ passed/'; grep -v "rc=0" "$RES/logs/summary"

for s in $SUITES; do
  echo "$(date +%T) suite $s"
  "$B/vkgrad-bench" run --suite "$s" --min-time "$MT" --quiet --out "$RES/vkgrad-$s.json"
  python3 bench/pytorch/vkgrad_bench_torch.py run --suite "$s" --device cuda --min-time "$MT" --quiet \
    --out "$RES/torch-$s.json"
done
echo "$(date +%T) done"
