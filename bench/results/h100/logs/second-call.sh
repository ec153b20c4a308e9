#!/bin/bash
# second GPU call: the optimizer fix's tests, matmul variants, tuned vs rule on the models suite
set -u
PACK=out/remote RES=/tmp/res2; mkdir -p $RES/logs
for f in $PACK/debs/*.deb; do dpkg -x "$f" /; done; ldconfig
P=$(mktemp -d); tar xJf $PACK/vkgrad.tar.xz -C $P; tar xf $PACK/datasets.tar -C /
export LD_LIBRARY_PATH=$P/lib VK_LAYER_PATH=$P/layers VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
B=$P/bin
sed "s|@B@|$B|" $P/tests.list | grep -E "^(optim|optim_sync_validation|graph|nn|models|checkpoint|dtype|tutorial_0[5-9]|tutorial_10-checkpoints) " > $RES/logs/list
one() { local n=$1; shift; local e=(); while [ "$1" != "--" ]; do e+=("$1"); shift; done; shift
  VKG_TEST_CACHE=$(mktemp -d) timeout 200 env "${e[@]}" "$@" > "$RES/logs/$n.log" 2>&1; echo "$n rc=$?"; }
export -f one; export RES
echo "$(date +%T) tests"; xargs -P 8 -L 1 bash -c 'one "$@"' _ < $RES/logs/list | sort | tee $RES/logs/summary
echo "$(date +%T) matmul variants"
timeout 90 $B/vkgrad-matmul-time --ms 100 --variants auto,tiled,general,reg,reg_sg,reg_tex,reg_sg_tex \
  1024x1024x1024 2048x2048x2048 4096x4096x4096 2048x128x384 2048x512x128 128x784x512 2>&1 | tee $RES/matmul-time.txt
export XDG_CACHE_HOME=/tmp/xdg
for m in default full cached; do
  echo "$(date +%T) models $m"
  if [ $m = default ]; then t=off; else t=$m; fi
  VKG_TUNE=$t timeout 60 $B/vkgrad-bench run --suite models --min-time 0.4 --quiet --out $RES/vkgrad-models-tune-$m.json 2>&1 | grep -E "train step|inference|replay"
done
echo "$(date +%T) done"
