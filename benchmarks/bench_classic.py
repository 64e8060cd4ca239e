"""Benchmark the classic operators and the "seed" preset: frames per second, single thread vs
the parallel runner (:class:`napari_vsr.enhancers.ClassicEnhancer`).

Each row runs one pipeline over uint8 RGB sample frames at 640x360 and 1920x1080 (the sample
frames upscaled), chunk by chunk as the engine does, in four configurations:

* ``1 thread``   workers=1, ``cv2.setNumThreads(1)``: the single-thread baseline
* ``cv internal``  workers=1, OpenCV's default threads: a plain loop calling OpenCV
* ``runner``     workers = usable CPUs, OpenCV's default threads: what the library does (it
  switches OpenCV's pool off itself while frames run in parallel)
* ``runner keep`` the same, but every chunk's result is kept until the row ends, so the
  enhancer cannot reuse its output buffer: a fresh, page-faulting array per chunk

``speedup`` = runner / 1 thread.  Outputs of every configuration are checked to be identical.

    python benchmarks/bench_classic.py            # all operators, both sizes
    python benchmarks/bench_classic.py --quick    # a smoke run: few operators, few frames

Prints a table and writes ``benchmarks/results/classic.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from napari_vsr.classic import Pipeline, get_preset
from napari_vsr.classic.pipeline import usable_cpus
from napari_vsr.enhancers import ClassicEnhancer

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("NAPARI_VSR_SHARED", REPO.parent / "shared"))
SAMPLES = SHARED / "samples" / "demo_000"

#: (row name, pipeline steps, dtype); slow rows use fewer frames
ROWS: list[tuple[str, list[tuple[str, dict]], type]] = [
    ("laplacian_sharpen", [("laplacian_sharpen", {})], np.uint8),
    ("unsharp_mask", [("unsharp_mask", {})], np.uint8),
    ("mean_filter 5", [("mean_filter", {"size": 5})], np.uint8),
    ("gaussian_blur 5", [("gaussian_blur", {"ksize": 5})], np.uint8),
    ("median_filter 5", [("median_filter", {"size": 5})], np.uint8),
    ("bilateral_filter", [("bilateral_filter", {})], np.uint8),
    ("nl_means", [("nl_means", {})], np.uint8),
    ("resize bicubic x2", [("resize", {"factor": 2, "interpolation": "bicubic"})], np.uint8),
    ("resize lanczos x2", [("resize", {"factor": 2, "interpolation": "lanczos"})], np.uint8),
    ("equalize_hist", [("equalize_hist", {})], np.uint8),
    ("clahe", [("clahe", {})], np.uint8),
    ("clahe (uint16)", [("clahe", {})], np.uint16),
    ("adjust_gamma", [("adjust_gamma", {"gamma": 0.8})], np.uint8),
    ("sobel_magnitude", [("sobel_magnitude", {})], np.uint8),
    ("canny", [("canny", {})], np.uint8),
    ("temporal_median 1", [("temporal_median", {"radius": 1})], np.uint8),
    ("temporal_mean 2", [("temporal_mean", {"radius": 2})], np.uint8),
    ("seed (preset)", [], np.uint8),
]
QUICK_ROWS = {"gaussian_blur 5", "median_filter 5", "temporal_median 1", "seed (preset)"}
SLOW = {"nl_means": 8, "seed (preset)": 2, "clahe (uint16)": 2, "bilateral_filter": 2}

CONFIGS = [  # (name, workers, OpenCV threads or None for the default, keep results)
    ("1 thread", 1, 1, False),
    ("cv internal", 1, None, False),
    ("runner", None, None, False),
    ("runner keep", None, None, True),
]


def load_frames(n: int, size: tuple[int, int], dtype) -> np.ndarray:
    """``n`` sample frames (cycled), resized to ``size`` = (width, height), as (T, H, W, 3)."""
    paths = sorted(SAMPLES.glob("*.png"))
    if not paths:
        sys.exit(f"no sample frames in {SAMPLES} (set NAPARI_VSR_SHARED)")
    frames = []
    for i in range(n):
        img = cv2.imread(str(paths[i % len(paths)]), cv2.IMREAD_COLOR)
        if (img.shape[1], img.shape[0]) != size:
            img = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC)
        frames.append(img)
    stack = np.stack(frames)
    return stack.astype(np.uint16) * 257 if dtype == np.uint16 else stack


def run(
    pipeline: Pipeline,
    frames: np.ndarray,
    workers: int,
    cv_threads: int | None,
    repeats: int,
    keep: bool = False,
) -> tuple[float, np.ndarray]:
    """Best-of-``repeats`` frames per second, chunked like the engine (no overlap needed for
    per-frame rows; temporal rows are timed on whole chunks, which is the same work).

    Like the engine, each chunk's result is let go before the next chunk (the engine copies
    it into its own output at once), so the enhancer may reuse its output buffer; only the
    first frame is kept for the equality check (``keep=True`` keeps every result instead)."""
    default = cv2.getNumThreads()
    if cv_threads is not None:
        cv2.setNumThreads(cv_threads)
    try:
        enh = ClassicEnhancer(pipeline, workers=workers)
        chunk = enh.capabilities.default_chunk
        best = float("inf")
        for attempt in range(repeats + 1):  # pass 0 warms up pool, allocator and caches
            first = None
            kept = []
            start = time.perf_counter()
            for s in range(0, len(frames), chunk):
                result = enh.enhance(frames[s : s + chunk])
                if first is None:
                    first = result[:1].copy()
                if keep:
                    kept.append(result)
                del result
            if attempt:
                best = min(best, time.perf_counter() - start)
        enh.close()
    finally:
        cv2.setNumThreads(default)
    return len(frames) / best, first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 rows, few frames")
    parser.add_argument("--frames", type=int, default=32, help="frames per row at 640x360")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rows", nargs="*", help="only these row names")
    parser.add_argument(
        "--json", type=Path, default=HERE / "results" / "classic.json", help="where to write"
    )
    args = parser.parse_args(argv)

    frames_small = 4 if args.quick else args.frames
    repeats = 2 if args.quick else args.repeats
    rows = [r for r in ROWS if (not args.quick or r[0] in QUICK_ROWS)]
    if args.rows:
        rows = [r for r in rows if r[0] in args.rows]
    sizes = [
        ("640x360", (640, 360), frames_small),
        ("1920x1080", (1920, 1080), max(2, frames_small // 4)),
    ]
    workers = usable_cpus()

    results = []
    header = (
        f"{'operator':20s} {'size':>9s} {'frames':>6s}  "
        + "  ".join(f"{c[0]:>11s}" for c in CONFIGS)
        + "  speedup"
    )
    print(f"frames per second, uint8 RGB unless noted; runner = {workers} worker threads")
    print(header)
    print("-" * len(header))
    for name, steps, dtype in rows:
        pipeline = get_preset("seed") if not steps else Pipeline(steps, name=name)
        for size_name, size, n in sizes:
            n = max(2, n // SLOW.get(name, 1)) if name in SLOW else n
            frames = load_frames(n, size, dtype)
            fps = {}
            first = None
            for cname, w, cv, keep in CONFIGS:
                fps[cname], out = run(pipeline, frames, w or workers, cv, repeats, keep)
                if first is None:
                    first = out
                elif not np.array_equal(out, first):
                    print(f"  !! {name} {size_name}: {cname} output differs from 1 thread")
            speedup = fps["runner"] / fps["1 thread"]
            print(
                f"{name:20s} {size_name:>9s} {n:6d}  "
                + "  ".join(f"{fps[c[0]]:11.2f}" for c in CONFIGS)
                + f"  {speedup:6.2f}x"
            )
            results.append(
                {
                    "operator": name,
                    "size": size_name,
                    "frames": n,
                    "dtype": np.dtype(dtype).name,
                    "fps": fps,
                    "speedup": speedup,
                }
            )

    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "classic",
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "opencv": cv2.__version__,
            "opencv_threads_default": cv2.getNumThreads(),
            "numpy": np.__version__,
        },
        "configs": [
            {"name": c[0], "workers": c[1] or workers, "opencv_threads": c[2], "keep": c[3]}
            for c in CONFIGS
        ],
        "results": results,
    }
    args.json.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
