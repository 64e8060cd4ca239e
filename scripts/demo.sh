#!/usr/bin/env bash
# The main job on the built-in sample clip, headless:
#   1. inspect the shipped sample clip (napari-vsr info),
#   2. enhance it with the classic "seed" preset (Laplacian sharpen -> Gaussian 5x5 -> bicubic x4),
#   3. enhance it with RealBasicVSR x4 when a checkpoint can be resolved (NAPARI_VSR_WEIGHTS, the
#      cache, or a download); otherwise say how to get one,
#   4. print `napari-vsr info` of each result.
# Outputs go to ./demo-output (or $1).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo-output}
mkdir -p "$OUT"
VSR=.venv/bin/napari-vsr
SAMPLE=$(.venv/bin/python -c "from napari_vsr._sample_data import sample_clip_path; print(sample_clip_path())")

echo "== sample clip: $SAMPLE"
$VSR info "$SAMPLE"

echo "== classic 'seed' preset (x4)"
$VSR enhance "$SAMPLE" -o "$OUT/sample_seed_x4.mp4" --method classic --preset seed --overwrite
$VSR info "$OUT/sample_seed_x4.mp4"

echo "== RealBasicVSR x4"
if $VSR weights path >/dev/null 2>&1 || $VSR weights fetch; then
  $VSR enhance "$SAMPLE" -o "$OUT/sample_realbasicvsr_x4.mp4" --method realbasicvsr --overwrite
  $VSR info "$OUT/sample_realbasicvsr_x4.mp4"
else
  echo "RealBasicVSR skipped: no checkpoint could be resolved or downloaded here."
  echo "Place the released checkpoint with: $VSR weights import FILE.pth (see README)."
fi
echo "== done: results in $OUT/"
