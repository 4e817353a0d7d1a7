#!/usr/bin/env bash
# The whole student recipe on a lent GPU in one call, each stage time-boxed: build the CLI against the machine's
# PyTorch, continue the teacher (from a model folder, at a GPU-sized batch), causal init from it, Self-Forcing DMD,
# then evaluate teacher and student on the world's validation clips. Every stage exports its EMA model, and the
# models (not the optimizer states) are copied to $OUT with the logs. Needs .carry/include/nlohmann (see
# scripts/gpu_bench.sh) unless BIN names a ready binary.
#   TEACHER_MIN=4 CAUSAL_MIN=2 DMD_MIN=2 INIT=models/teacher-128/warp-hint/model HINT=true bash scripts/gpu_train_student.sh
# CODEC names the autoencoder whose latents the teacher learns (default the bundled models/tiny-vae-128). With another
# one, e.g. CODEC=models/tiny-vae-128-lapped, INIT still helps (the weights that read text and tracks carry over)
# but the teacher relearns the latents: give it most of the minutes.
# On this CPU, to check the plumbing: BIN=build/motionstream DEVICE=cpu TEACHER_MIN=0.3 CAUSAL_MIN=0.3 DMD_MIN=0.3 \
#   BATCH=2 bash scripts/gpu_train_student.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
DEVICE=${DEVICE:-cuda}
INIT=${INIT:-models/teacher-128/run/model}   # the teacher to continue (a model folder)
CODEC=${CODEC:-models/tiny-vae-128}          # the autoencoder (latent space) the teacher trains in
COPY=${COPY:-false}                         # latent trajectory guidance (DitConfig::track_latent_copy)
HINT=${HINT:-false}                         # the warp hint (DitConfig::track_warp_hint); not with COPY
BATCH=${BATCH:-48}
TEACHER_MIN=${TEACHER_MIN:-4} CAUSAL_MIN=${CAUSAL_MIN:-2} DMD_MIN=${DMD_MIN:-2}
RUNS=${RUNS:-runs/gpu}
mkdir -p "$OUT" "$RUNS"
start=$(date +%s)
if [ -z "${BIN:-}" ]; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  TORCH_DIR=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')/Torch
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$TORCH_DIR" \
    -DMS_JSON_INCLUDE_DIR="$PWD/.carry/include" -DMS_BUILD_TESTS=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
    >"$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
  cmake --build build-gpu --target motionstream_cli -j 16 >"$OUT/build.log" 2>&1 || { grep -m 20 -A3 error "$OUT/build.log"; exit 1; }
  BIN=./build-gpu/motionstream
  echo "build: $(( $(date +%s) - start )) s"
fi
# The world renders on the CPU cores (its drawing code is CPU-first); the models train on $DEVICE.
WORLD=(--device "$DEVICE" --render_device cpu --width 128 --height 128 --checkpoint_minutes 1)
reached() { tail -1 "$1/log.jsonl" | python3 -c 'import json,sys;print(json.loads(sys.stdin.read())["step"])'; }

# 1. Teacher: a new run started from INIT (batch and noise schedule are a run's identity; the weights carry over).
T="$RUNS/teacher"
$BIN train teacher --run "$T" "${WORLD[@]}" --dit_preset cpu-small --codec "$CODEC" --frames 17 \
  --batch "$BATCH" --pool_size $((BATCH * 8)) --fresh_per_step $((BATCH / 4 > 0 ? BATCH / 4 : 1)) --lr 3e-4 \
  --warmup_steps 100 --steps 100000 --validate_every 200 --validation_clips 8 --init_from "$INIT" \
  --track_latent_copy "$COPY" --track_warp_hint "$HINT" --max-minutes "$TEACHER_MIN" --export 2>"$OUT/teacher.err"
tail -c 400 "$OUT/teacher.err"; echo "teacher: step $(reached "$T")"

# 2. Causal init from that teacher.
C="$RUNS/causal"
$BIN train causal --run "$C" "${WORLD[@]}" --teacher "$T/model" --frames 21 --batch $((BATCH / 4 > 0 ? BATCH / 4 : 1)) \
  --steps 100000 --validate_every 200 --max-minutes "$CAUSAL_MIN" --export 2>"$OUT/causal.err"
tail -c 400 "$OUT/causal.err"; echo "causal: step $(reached "$C")"

# 3. DMD: the causal student distilled against the teacher's guided score.
D="$RUNS/dmd"
$BIN train dmd --run "$D" "${WORLD[@]}" --student "$C/model" --teacher "$T/model" --frames 21 \
  --batch $((BATCH / 8 > 0 ? BATCH / 8 : 1)) --steps 100000 --max-minutes "$DMD_MIN" --export 2>"$OUT/dmd.err"
tail -c 400 "$OUT/dmd.err"; echo "dmd: step $(reached "$D")"

# 4. The model card's figures for what came out (CPU-side evaluation is the same code).
for m in teacher:"$T/model" causal:"$C/model" dmd:"$D/model"; do
  name=${m%%:*}; dir=${m#*:}; method=student; [ "$name" = teacher ] && method=teacher
  $BIN evaluate --method $method --model "$dir" --clips 8 --out "$OUT/eval-$name.json" 2>/dev/null | tail -1
done
for s in teacher causal dmd; do
  mkdir -p "$OUT/$s"; cp -r "$RUNS/$s/model/." "$OUT/$s/"; cp "$RUNS/$s/log.jsonl" "$RUNS/$s/config.json" "$OUT/$s/"
done
echo "total: $(( $(date +%s) - start )) s"
