#!/bin/bash
# Where the GPU training path's time goes (benchmarks/RESULTS.md section 14): the two 256x192 pose
# configs on one GPU, single-device strategy, bf16-mixed, each timed four ways in one call, so the
# ratios compare like with like: the shipped path (timed, then profiled over its last steps),
# the same with one resident batch instead of the loader, the loader with OpenCV single-threaded,
# and the network alone (bench_models.py). OUT gets the log and a tarball of the records and
# profile tables; the Chrome traces stay in the work folder the log names (tens of MB for HRNet).
# Usage: bash benchmarks/profile_train_gpu.sh OUT
set -u
out=${1:?usage: profile_train_gpu.sh OUT}
work=$(mktemp -d)
mkdir -p "$out"
export PYTHONUNBUFFERED=1
bench="python3 benchmarks/bench_train_gpu.py --strategy auto --steps 170 --warmup 30 --images 300
       --configs simplebaseline_r50_coco_256x192 hrnet_w32_coco_256x192"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  nproc
  echo "work folder: $work"
  $bench --out "$work/real" --profile-steps 10
  $bench --out "$work/resident" --data "$work/real/data" --profile-steps 10 --loader resident
  $bench --out "$work/cv2_1" --data "$work/real/data" --cv2-threads 1
  for arch in resnet50 hrnet_w32; do
    python3 benchmarks/bench_models.py --device cuda --arch $arch --size 192 256 --batch 32 --steps 50 --warmup 10 --variants bf16_cl
  done
} 2>&1 | tee "$out/log.txt"
(cd "$work" && tar czf "$out/records.tar.gz" \
   */bench_train_gpu.json */profile_*.txt)
