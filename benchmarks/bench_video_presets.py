"""Time the video writer's x264/x265 presets on upscaled footage at the output sizes of a run.

Content: the 31 demo_000 sample frames (640x360 real footage) as an x4 network output would
look: downscaled first where needed (480x270 for 1080p, 320x180 for 720p), then x4 bicubic
and a mild unsharp mask (a VSR output is sharper than bicubic, and sharper content costs
more bits).  Each row writes the frames through ``VideoWriter`` (``VideoOptions(preset=...)``,
CRF 18 by default) and reports:

* ``cpu s/f``   CPU seconds per frame of the process (all encoder threads), from the first
                ``write`` to ``close``, RGB->Y'CbCr conversion included (the ``convert`` line
                gives that part alone): the work, which other load on the machine hardly
                changes; median of the rounds
* ``wall s/f``  wall seconds per frame, best of the rounds (with the machine to itself, about
                CPU time / cores for x264, which threads well)
* ``kB/frame``  file size over frames
* ``PSNR``      RGB PSNR of the decoded file against the frames written (dB)

    python benchmarks/bench_video_presets.py                      # x264, 720p/1080p/1440p
    python benchmarks/bench_video_presets.py --codecs libx265 --frames 12
    python benchmarks/bench_video_presets.py --json out.json

Timings depend on the number of cores (x264 threads scale well up to ~16): the notes
(benchmarks/notes_video_presets.md) say on what machine a table was taken.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from napari_vsr.io import VideoOptions, color, open_frames  # noqa: E402
from napari_vsr.io.video_writer import VideoWriter  # noqa: E402

SHARED = Path(os.environ.get("NAPARI_VSR_SHARED", REPO.parent / "shared"))
SAMPLES = SHARED / "samples" / "demo_000"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "1440p": (2560, 1440)}


def upscaled_frames(size: tuple[int, int], n: int) -> np.ndarray:
    """(n, H, W, 3) uint8: the sample frames as an x4 upscaler's output of that size."""
    paths = sorted(SAMPLES.glob("*.png"))[:n]
    if not paths:
        sys.exit(f"no sample frames in {SAMPLES} (set NAPARI_VSR_SHARED)")
    width, height = size
    out = []
    for p in paths:
        rgb = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        small = (width // 4, height // 4)
        if (rgb.shape[1], rgb.shape[0]) != small:
            rgb = cv2.resize(rgb, small, interpolation=cv2.INTER_AREA)
        big = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
        blur = cv2.GaussianBlur(big, (0, 0), 2.0)
        out.append(cv2.addWeighted(big, 1.6, blur, -0.6, 0))  # unsharp mask, amount 0.6
    return np.stack(out)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def run_one(frames: np.ndarray, codec: str, preset: str, crf: int, folder: Path) -> dict:
    path = folder / f"{codec}-{preset}.mp4"
    opts = VideoOptions(codec=codec, crf=crf, preset=preset)
    w = VideoWriter(path, fps=25, overwrite=True, video=opts)
    w.write(frames[0])  # opens the encoder; not counted
    t0, c0 = time.perf_counter(), time.process_time()
    for f in frames[1:]:
        w.write(f)
    w.close()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(frames) - 1
    with open_frames(path) as v:
        decoded = v[:]
    row = {
        "codec": codec,
        "preset": preset,
        "s_per_frame": elapsed / n,
        "cpu_s_per_frame": cpu / n,
        "kB_per_frame": path.stat().st_size / len(frames) / 1000,
        "psnr_db": psnr(decoded, frames),
    }
    path.unlink()
    return row


def convert_time(frames: np.ndarray) -> float:
    h, w = frames.shape[1:3]
    info = color.output_color(w, h)
    t0 = time.perf_counter()
    for f in frames[:8]:
        color.rgb_to_yuv_frame(f, "yuv420p", info)
    return (time.perf_counter() - t0) / min(8, len(frames))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="720p,1080p,1440p")
    ap.add_argument("--codecs", default="libx264")
    ap.add_argument(
        "--presets", default="medium,fast,faster,veryfast,superfast", help="comma-separated"
    )
    ap.add_argument("--frames", type=int, default=31)
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--rounds", type=int, default=3, help="passes over the presets, interleaved")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    rows = []
    print(f"cores: {os.cpu_count()}  frames: {args.frames}  crf: {args.crf}  "
          f"rounds: {args.rounds}  load: {os.getloadavg()[0]:.1f}")
    presets = args.presets.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        for size_name in args.sizes.split(","):
            frames = upscaled_frames(SIZES[size_name], args.frames)
            print(f"\n{size_name} {frames.shape[2]}x{frames.shape[1]}  "
                  f"convert {convert_time(frames) * 1000:.1f} ms/frame (wall)")
            print(f"{'codec':9} {'preset':10} {'cpu s/f':>8} {'wall s/f':>9} {'kB/frame':>9} "
                  f"{'PSNR dB':>8}")
            for codec in args.codecs.split(","):
                runs: dict[str, list[dict]] = {p: [] for p in presets}
                for r in range(args.rounds):  # interleaved, so passing load hits every preset
                    for preset in presets[r % len(presets):] + presets[: r % len(presets)]:
                        runs[preset].append(run_one(frames, codec, preset, args.crf, Path(tmp)))
                for preset in presets:
                    done = runs[preset]
                    row = dict(done[0], size=size_name,
                               s_per_frame=min(d["s_per_frame"] for d in done),
                               cpu_s_per_frame=float(np.median([d["cpu_s_per_frame"]
                                                                for d in done])))
                    rows.append(row)
                    print(f"{codec:9} {preset:10} {row['cpu_s_per_frame']:8.3f} "
                          f"{row['s_per_frame']:9.3f} {row['kB_per_frame']:9.1f} "
                          f"{row['psnr_db']:8.2f}", flush=True)
    print(f"\nload at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
