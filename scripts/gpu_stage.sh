#!/usr/bin/env bash
# Prepare what scripts/gpu_check.sh needs on a lent GPU machine, in the ignored folder .gpu/.
#
# The device machine has Python 3.12 with torch (CUDA), numpy, OpenCV, tifffile, scikit-image,
# scipy, pyyaml and psutil, but no PyAV or platformdirs, nothing can be installed there from a
# registry, and ../shared (the golden checkpoint, the sample frames) does not travel: only the
# repository (tracked files) and the paths a run names in `carry`, 64 MiB in all.  So this
# script builds ONE file, .gpu/payload.tar.xz, holding
#
#   site/     PyAV and platformdirs for CPython 3.12 manylinux x86_64, installed (pip --target)
#             from the wheels PyPI serves; PyAV's own FFmpeg has h264_nvenc/hevc_nvenc/av1_nvenc
#             and the cuvid decoders (they open only where the driver has NVENC/NVDEC)
#   shared/golden/realbasicvsr/   the golden checkpoint cut to its EMA generator (what the
#             network and the CUDA tests load: 25 of its 51 MB), expected_default.npy,
#             input_rgb_uint8.npy, expected_spynet_flow_0to1.npy, the key list and README
#   shared/samples/demo_000.mp4   the 31 sample frames as H.264 CRF 12 (the benchmarks take a
#             folder or a video; the PNGs are 13 MB)
#
# packed with xz (the wheel's zip compression leaves PyAV at 34 MiB; xz gets it to ~24), and
# checks that tracked files + untracked-not-ignored files + the payload fit in 64 MiB.
#
#   bash scripts/gpu_stage.sh                 # from the repository that the device tool sends
#   bash scripts/gpu_stage.sh --no-golden     # only the wheels and the sample clip
#
# Then, with the device tool: run(command="bash scripts/gpu_check.sh", carry=[".gpu"],
# timeout_s=600).  Needs pip with access to PyPI, xz, and this machine's Python with torch and
# PyAV (to cut the checkpoint and encode the sample clip).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PY=$REPO/.venv/bin/python; else PY=python3; fi
fi
SHARED=${NAPARI_VSR_SHARED:-$REPO/../shared}
DEST=$REPO/.gpu
LIMIT_MIB=64
GOLDEN=1
for arg in "$@"; do
    case $arg in
        --no-golden) GOLDEN=0 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "gpu_stage.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

AV_VERSION=${AV_VERSION:-$("$PY" -c 'import av; print(av.__version__)')}
PLATFORMDIRS_VERSION=${PLATFORMDIRS_VERSION:-$("$PY" -c 'import platformdirs; print(platformdirs.__version__)')}
PLATFORM_FLAGS=(--only-binary=:all: --python-version 3.12 --implementation cp
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/wheels" "$work/payload/site" "$work/payload/shared/samples"

echo "== wheels: av==$AV_VERSION platformdirs==$PLATFORMDIRS_VERSION (cp312 manylinux x86_64)"
"$PY" -m pip download -q --no-deps "${PLATFORM_FLAGS[@]}" -d "$work/wheels" \
    "av==$AV_VERSION" "platformdirs==$PLATFORMDIRS_VERSION"
"$PY" -m pip install -q --no-index --no-deps --no-compile "${PLATFORM_FLAGS[@]}" \
    --target "$work/payload/site" "$work/wheels"/*.whl
ls -l "$work/wheels"

echo "== sample clip and golden data from $SHARED"
GOLDEN=$GOLDEN "$PY" - "$SHARED" "$work/payload/shared" <<'EOF'
import os, shutil, sys
from pathlib import Path

import av
import cv2
import numpy as np

shared, dest = Path(sys.argv[1]), Path(sys.argv[2])
frames = sorted((shared / "samples" / "demo_000").glob("*.png"))
if not frames:
    sys.exit(f"no sample frames in {shared / 'samples' / 'demo_000'}")
clip = dest / "samples" / "demo_000.mp4"
with av.open(str(clip), "w") as out:
    stream = out.add_stream("libx264", rate=25)
    first = cv2.imread(str(frames[0]))
    stream.height, stream.width = first.shape[:2]
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": "12"}
    for f in frames:
        rgb = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
    out.mux(stream.encode(None))
print(f"{clip.name}: {len(frames)} frames, {clip.stat().st_size / 2**20:.1f} MiB")
if os.environ["GOLDEN"] != "1":
    sys.exit(0)
import torch

src = shared / "golden" / "realbasicvsr"
gold = dest / "golden" / "realbasicvsr"
gold.mkdir(parents=True)
name = "realbasicvsr_random_mmedit_layout.pth"
raw = torch.load(src / name, map_location="cpu", weights_only=True)
ema = {k: v for k, v in raw["state_dict"].items() if k.startswith("generator_ema.")}
meta = dict(raw.get("meta") or {}, note="golden checkpoint cut to generator_ema by gpu_stage.sh")
torch.save({"meta": meta, "state_dict": ema}, gold / name)
for extra in ("expected_default.npy", "input_rgb_uint8.npy", "expected_spynet_flow_0to1.npy",
              "official_generator_keys.txt", "README.md"):
    shutil.copy(src / extra, gold / extra)
print(f"golden: {len(ema)} EMA tensors, "
      f"{sum(p.stat().st_size for p in gold.iterdir()) / 2**20:.1f} MiB")
EOF

echo "== packing .gpu/payload.tar.xz"
mkdir -p "$DEST"
rm -f "$DEST/payload.tar.xz"
tar -C "$work/payload" -cf - . | xz -6 -T0 > "$DEST/payload.tar.xz.part"
mv "$DEST/payload.tar.xz.part" "$DEST/payload.tar.xz"

cd "$REPO"
tracked=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
untracked=$(git ls-files -z --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null \
    | awk '{s+=$1} END {print s+0}')
payload=$(stat -c %s "$DEST/payload.tar.xz")
unpacked=$(du -sb "$work/payload" | cut -f1)
total=$((tracked + untracked + payload))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "tracked files        $(mib "$tracked")"
echo "untracked, not ignored $(mib "$untracked")"
echo "payload.tar.xz       $(mib "$payload") (unpacked $(mib "$unpacked"))"
echo "travels in all       $(mib "$total") of ${LIMIT_MIB} MiB"
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
    echo "gpu_stage.sh: over the device tool's ${LIMIT_MIB} MiB: try --no-golden" >&2
    exit 1
fi
echo "ok: run(command=\"bash scripts/gpu_check.sh\", carry=[\".gpu\"], timeout_s=600)"
