#!/usr/bin/env bash
# Build the core library and the streaming benchmark against the GPU machine's own PyTorch and run the 832x480
# Wan-1.3B-layout benchmark (chunk 3, sink 1, window 1, 3 steps + clean pass), then the CPU preset on the GPU.
# One call, well under 8 minutes. nlohmann/json.hpp is carried in .carry/include (no apt on that machine):
#   mkdir -p .carry/include && cp -r /usr/include/nlohmann .carry/include/
# then run this with .carry carried. Logs and JSON go to $OUT (or ./gpu_out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$OUT/gpu.txt"

TORCH_DIR=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')/Torch
start=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$TORCH_DIR" \
  -DMS_JSON_INCLUDE_DIR="$PWD/.carry/include" -DMS_BUILD_TESTS=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
  >"$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
cmake --build build-gpu --target stream_bench -j 16 >"$OUT/build.log" 2>&1 || { grep -m 20 -A3 error "$OUT/build.log"; tail -20 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"

# GPU memory as the driver sees it, sampled while the benchmarks run.
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$OUT/memory.txt" 2>/dev/null &
smi=$!

run() {  # name, args...
  local name=$1; shift
  echo "== $name: $*"
  timeout 240 ./build-gpu/stream_bench "$@" >"$OUT/$name.jsonl" 2>"$OUT/$name.err"
  echo "rc=$?"; tail -c 1500 "$OUT/$name.jsonl"; tail -3 "$OUT/$name.err"
}
run wan13b_832x480_bf16 --preset wan-1.3b-motion --width 832 --height 480 --device cuda --dtype bf16 --chunks 40 --report 5,40 --per-chunk
run cpu_small_256_fp32 --preset cpu-small --width 256 --height 256 --device cuda --dtype fp32 --chunks 200 --report 5,200
kill $smi 2>/dev/null
echo "peak GPU memory used (MiB): $(sort -n "$OUT/memory.txt" | tail -1)"
