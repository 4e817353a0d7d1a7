#!/usr/bin/env bash
# Train the bundled tiny autoencoder on a lent GPU in one call: build the CLI against the machine's PyTorch, a
# 3-step smoke run, then a time-boxed run, then export (model.safetensors + vae.json with latent statistics).
# Needs .carry/include/nlohmann (see scripts/gpu_bench.sh). Results go to $OUT (or ./gpu_out).
#   MINUTES=3.3 RUN=runs/vae-cpu [LINEAR=true] [KERNEL=3] [INIT=models/tiny-vae-128-linear] bash scripts/gpu_train_vae.sh
# LINEAR=true (the default) starts from the fitted linear codec (--linear_path, docs/TRAINING.md): 25.5 dB before the
# first step, where 1,832 GPU steps of the convolutional autoencoder alone reached 21.5. The loss is MSE alone: on
# the CPU, from the fitted codec, it gained 0.20 dB in 500 steps where L1 + edges gained nothing (MODEL_CARD.md).
# KERNEL=3 (with LINEAR=true) gives the linear decoder a 3x3 neighbourhood, fitted before the first step (+0.25 dB on
# the validation clips for tiny-vae-128-linear, docs/TRAINING.md).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
MINUTES=${MINUTES:-3.3}
RUN=${RUN:-runs/vae-cpu}
LINEAR=${LINEAR:-true}
KERNEL=${KERNEL:-3}
[ "$LINEAR" = true ] || KERNEL=""
INIT=${INIT:-}   # an exported autoencoder folder to start from (one with a linear path keeps it as it is)
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
TORCH_DIR=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')/Torch
start=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$TORCH_DIR" \
  -DMS_JSON_INCLUDE_DIR="$PWD/.carry/include" -DMS_BUILD_TESTS=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
  >"$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
cmake --build build-gpu --target motionstream_cli -j 16 >"$OUT/build.log" 2>&1 || { grep -m 20 -A3 error "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"

# Smoke run; if the world cannot render on the GPU, render on the CPU cores instead.
RENDER=cuda
if ! ./build-gpu/motionstream train vae --run /tmp/smoke --device cuda --steps 3 --width 32 --height 32 --frames 5 \
     --batch 2 --validation_clips 1 >"$OUT/smoke.log" 2>&1; then
  tail -5 "$OUT/smoke.log"; RENDER=cpu; echo "rendering on the CPU"
fi

COMMON=(--device cuda --render_device $RENDER --width 128 --height 128 --frames 17 --batch 24 --pool_size 192 --fresh_per_step 3
        --lr 2e-3 --warmup_steps 300 --validate_every 500 --validation_clips 16 --checkpoint_minutes 1
        --l1_weight 0 --mse_weight 1 --gradient_weight 0 --linear_path $LINEAR ${KERNEL:+--linear_decoder_kernel $KERNEL} ${INIT:+--init $INIT})
./build-gpu/motionstream train vae --run "$RUN" "${COMMON[@]}" --steps 200000 --max-minutes "$MINUTES" \
  2>"$OUT/train.err"
tail -c 600 "$OUT/train.err"
reached=$(tail -1 "$RUN/log.jsonl" | python3 -c 'import json,sys;print(json.loads(sys.stdin.read())["step"])')
echo "reached step $reached"
# Export at the step reached (the run's length is not part of its identity).
./build-gpu/motionstream train vae --run "$RUN" "${COMMON[@]}" --steps "$reached" 2>&1 | tail -2
latest=$(ls -d "$RUN"/checkpoints/step-* | tail -1)
cp "$RUN/model.safetensors" "$RUN/vae.json" "$RUN/log.jsonl" "$RUN/config.json" "$OUT/"
cp "$latest/optimizer.pt" "$OUT/optimizer.pt"; cp "$latest/state.json" "$OUT/checkpoint_state.json"
python3 -c "import json;d=json.load(open('$RUN/vae.json'));print('val_psnr', d['val_psnr'])"
