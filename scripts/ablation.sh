#!/usr/bin/env bash
# The ablation table of a model card (SPEC.md section 7): the student under sink 0/1, window 1/3, chunk 1/3, and the
# teacher under text-only / motion-only / joint guidance, with the still and warp baselines beside them, all on the
# world's validation clips. Prints a Markdown table; the JSON reports stay in OUT.
#   scripts/ablation.sh STUDENT_DIR TEACHER_DIR [OUT=runs/ablation] [CLIPS=8]
set -euo pipefail
cd "$(dirname "$0")/.."
student=${1:?student model folder}
teacher=${2:?teacher model folder}
out=${3:-runs/ablation}
clips=${4:-8}
bin=${MS_BIN:-build/motionstream}
mkdir -p "$out"

run() {  # name, then evaluate options
  local name=$1
  shift
  [ -f "$out/$name.json" ] || "$bin" evaluate --clips "$clips" --out "$out/$name.json" "$@" >/dev/null
}
run still --method still
run warp --method warp
run teacher-text --method teacher --model "$teacher" --guidance text
run teacher-motion --method teacher --model "$teacher" --guidance motion
run teacher-joint --method teacher --model "$teacher" --guidance joint
run student-c3s1w1 --method student --model "$student" --chunk 3 --sink 1 --window 1
run student-c3s0w1 --method student --model "$student" --chunk 3 --sink 0 --window 1
run student-c3s1w3 --method student --model "$student" --chunk 3 --sink 1 --window 3
run student-c1s1w1 --method student --model "$student" --chunk 1 --sink 1 --window 1

python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
rows = ["still", "warp", "teacher-text", "teacher-motion", "teacher-joint",
        "student-c3s1w1", "student-c3s0w1", "student-c3s1w3", "student-c1s1w1"]
print("| setting | EPE (px) | PSNR (dB) | SSIM |")
print("|---|---|---|---|")
for r in rows:
    m = json.load(open(os.path.join(out, r + ".json")))["mean"]
    f = lambda v, d: "-" if v is None else f"{v:.{d}f}"
    print(f"| {r} | {f(m['epe'], 2)} | {f(m['psnr'], 2)} | {f(m['ssim'], 3)} |")
PY
