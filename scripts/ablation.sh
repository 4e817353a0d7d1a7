#!/usr/bin/env bash
# The ablation tables of a model card (SPEC.md section 7), on the world's validation clips, with the still and warp
# baselines beside them:
#   guidance: the teacher under text-only / motion-only / joint guidance and the student, at 17 frames (the teacher's
#             training length);
#   stream:   the student under sink 0/1, window 1/3, chunk 1/3, at STREAM_FRAMES frames (49: 13 latent frames, five
#             chunks of 3, so that the sink and the window are really used; at 17 frames the second chunk is the last).
# Prints two Markdown tables; the JSON reports stay in OUT (a report already there is reused).
#   scripts/ablation.sh STUDENT_DIR TEACHER_DIR [OUT=runs/ablation] [CLIPS=8] [STREAM_FRAMES=49]
set -euo pipefail
cd "$(dirname "$0")/.."
student=${1:?student model folder}
teacher=${2:?teacher model folder}
out=${3:-runs/ablation}
clips=${4:-8}
stream_frames=${5:-49}
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

f=$stream_frames
run "still-f$f" --method still --frames "$f"
run "warp-f$f" --method warp --frames "$f"
run "student-c3s1w1-f$f" --method student --model "$student" --frames "$f" --chunk 3 --sink 1 --window 1
run "student-c3s0w1-f$f" --method student --model "$student" --frames "$f" --chunk 3 --sink 0 --window 1
run "student-c3s1w3-f$f" --method student --model "$student" --frames "$f" --chunk 3 --sink 1 --window 3
run "student-c1s1w1-f$f" --method student --model "$student" --frames "$f" --chunk 1 --sink 1 --window 1

python3 - "$out" "$clips" "$f" <<'PY'
import json, sys, os
out, clips, frames = sys.argv[1], sys.argv[2], sys.argv[3]
def table(title, rows):
    print(f"\n{title}\n")
    print("| setting | EPE (px) | EPE, reliably tracked points | PSNR (dB) | SSIM |")
    print("|---|---|---|---|---|")
    for r in rows:
        m = json.load(open(os.path.join(out, r + ".json")))["mean"]
        f = lambda v, d: "-" if v is None else f"{v:.{d}f}"
        print(f"| {r} | {f(m['epe'], 2)} | {f(m.get('epe_reliable'), 2)} | {f(m['psnr'], 2)} | {f(m['ssim'], 3)} |")
table(f"Guidance ({clips} clips, 17 frames)",
      ["still", "warp", "teacher-text", "teacher-motion", "teacher-joint", "student-c3s1w1"])
table(f"Stream settings ({clips} clips, {frames} frames)",
      [f"{r}-f{frames}" for r in ["still", "warp", "student-c3s1w1", "student-c3s0w1", "student-c3s1w3",
                                   "student-c1s1w1"]])
PY
