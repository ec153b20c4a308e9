#!/bin/sh
# vkgrad and PyTorch side by side on this machine, one suite: vkgrad-bench's report, PyTorch's
# with 1 thread, 2 threads, and 2 threads whose OpenMP workers sleep instead of spinning
# (OMP_WAIT_POLICY=passive: what 2 threads need when other processes share the cores), the best
# of those per case, all validated, then compare's table and chart. The load average before and
# after goes to stdout: on a shared machine it says how far to trust the figures.
#   bench/pytorch/side_by_side.sh [models|micro|quick] [OUTDIR]      (from the repository root)
# VKGRAD_BENCH names the vkgrad-bench binary (default build/bench/vkgrad-bench); MIN_TIME sets
# --min-time for both sides (default: their default, 1 s).
set -eu
SUITE=${1:-models}
OUT=${2:-bench/results}
BENCH=${VKGRAD_BENCH:-build/bench/vkgrad-bench}
P="/usr/bin/python3 bench/pytorch/vkgrad_bench_torch.py"
MT=${MIN_TIME:+--min-time $MIN_TIME}
mkdir -p "$OUT"
echo "start: $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uptime)"
"$BENCH" run --suite "$SUITE" $MT --quiet --out "$OUT/compare-pytorch-$SUITE-vkgrad.json"
$P run --suite "$SUITE" $MT --quiet --threads 1 --out "$OUT/pytorch-$SUITE-1thread.json"
$P run --suite "$SUITE" $MT --quiet --threads 2 --out "$OUT/pytorch-$SUITE-2threads.json"
$P run --suite "$SUITE" $MT --quiet --threads 2 --omp-wait-policy passive --out "$OUT/pytorch-$SUITE-2threads-passive.json"
echo "end: $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uptime)"
$P best "$OUT/pytorch-$SUITE-1thread.json" "$OUT/pytorch-$SUITE-2threads.json" \
  "$OUT/pytorch-$SUITE-2threads-passive.json" --out "$OUT/pytorch-$SUITE-best.json"
$P validate "$OUT/compare-pytorch-$SUITE-vkgrad.json" "$OUT/pytorch-$SUITE-1thread.json" \
  "$OUT/pytorch-$SUITE-2threads.json" "$OUT/pytorch-$SUITE-2threads-passive.json" "$OUT/pytorch-$SUITE-best.json"
BENCH=$(cd "$(dirname "$BENCH")" && pwd)/$(basename "$BENCH")
cd "$OUT" # the table names the reports and links the chart relative to itself
"$BENCH" compare "compare-pytorch-$SUITE-vkgrad.json" "pytorch-$SUITE-best.json" \
  --out-md "compare-pytorch-$SUITE.md" --chart "compare-pytorch-$SUITE"
