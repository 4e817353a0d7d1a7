#!/usr/bin/env bash
# Build the core library and the streaming benchmark against the GPU machine's own PyTorch and run the 832x480
# Wan-1.3B-layout benchmark (chunk 3, sink 1, window 1, 3 steps + clean pass), eager and CUDA graphs in one process
# each, latents only and with a TAEHV-width decoder (random weights) on its own stream; then the CPU preset on the GPU.
# One call, under 8 minutes. nlohmann/json.hpp is carried in .carry/include (no apt on that machine):
#   mkdir -p .carry/include && cp -r /usr/include/nlohmann .carry/include/
# then run this with .carry carried. Logs and JSON go to $OUT (or ./gpu_out).
# If the CUDA engine code (src/motionstream/util/gpu.cpp) does not compile, its errors are printed and the build is
# redone without it (-DMS_CUDA=OFF), so the eager figures still come back.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$OUT/gpu.txt"

TORCH_DIR=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')/Torch
build() {  # extra cmake args...; 0 when stream_bench built
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$TORCH_DIR" \
    -DMS_JSON_INCLUDE_DIR="$PWD/.carry/include" -DMS_BUILD_TESTS=OFF -DCMAKE_CUDA_ARCHITECTURES=90 "$@" \
    >"$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; return 1; }
  grep -E "CUDA engine code|engine runs eagerly" "$OUT/cmake.log"
  cmake --build build-gpu --target stream_bench -j 16 >"$OUT/build.log" 2>&1 && return 0
  echo "== build failed; first errors:"
  grep -E "error|Error" "$OUT/build.log" | grep -v "^ninja: build stopped" | head -25 | cut -c1-400
  cp "$OUT/build.log" "$OUT/build_failed.log"
  return 1
}
start=$(date +%s)
cuda_code=1
if ! build -DMS_CUDA=ON; then
  echo "== rebuilding without the CUDA engine code (eager only)"
  cuda_code=0
  build -DMS_CUDA=OFF || exit 1
fi
echo "build: $(( $(date +%s) - start )) s (cuda engine code: $cuda_code)"

# GPU memory as the driver sees it, sampled while the benchmarks run.
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$OUT/memory.txt" 2>/dev/null &
smi=$!

modes=(--eager)
[ "$cuda_code" = 1 ] && modes+=(--cuda-graphs)
run() {  # name, seconds, args...
  local name=$1 limit=$2; shift 2
  echo "== $name: $*"
  timeout "$limit" ./build-gpu/stream_bench "$@" >"$OUT/$name.jsonl" 2>"$OUT/$name.err"
  echo "rc=$?"
  grep '"bench":"stream"' "$OUT/$name.jsonl" | cut -c1-1800
  tr '\r' '\n' <"$OUT/$name.err" | grep -v "chunk [0-9]*/" | grep -v '^ *$' | tail -5
}
wan=(--preset wan-1.3b-motion --width 832 --height 480 --device cuda --dtype bf16 --chunks 30 --report 5,30 --per-chunk)
run wan13b_832x480_bf16_latents 140 "${wan[@]}" "${modes[@]}"
run wan13b_832x480_bf16_taehv 160 "${wan[@]}" "${modes[@]}" --codec taehv-wan
run cpu_small_256_fp32 50 --preset cpu-small --width 256 --height 256 --device cuda --dtype fp32 --chunks 100 \
  --report 5,100 "${modes[@]}"
kill $smi 2>/dev/null
echo "peak GPU memory used (MiB): $(sort -n "$OUT/memory.txt" | tail -1)"
echo "total: $(( $(date +%s) - start )) s"
