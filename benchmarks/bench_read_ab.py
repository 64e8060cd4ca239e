"""A/B sequential-read speed of two source trees of napari-vsr on the same 1080p clips.

Usage::

    git worktree add --detach /tmp/before <commit>
    python benchmarks/bench_read_ab.py --before /tmp/before/src --after src --pairs 3

Each measurement runs in its own process with ``PYTHONPATH`` set to one tree, reading every
frame in order with ``v[i]`` (what napari's time slider and the engine do); the two trees
alternate, so a change in machine load hits both.  Clips are made once by ``bench_io``'s
generator (1080p, GOP 120, 3 B-frames, CRF 23: real footage and a synthetic texture) and
kept in ``--media-dir``.  Prints a table and writes JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

READ = """
import sys, time
from napari_vsr.io import open_frames
best = 0.0
for _ in range(int(sys.argv[2])):
    with open_frames(sys.argv[1]) as v:
        n = len(v)
        t = time.perf_counter()
        for i in range(n):
            v[i]
        best = max(best, n / (time.perf_counter() - t))
print(best)
"""


def make_clips(folder: Path, n_frames: int) -> dict[str, Path]:
    sys.path.insert(0, str(HERE))
    import bench_io

    folder.mkdir(parents=True, exist_ok=True)
    size = (1080, 1920)
    clips = {}
    for name, real in (("footage", True), ("synthetic", False)):
        path = folder / f"ab_{name}_{n_frames}.mp4"
        if not path.exists():
            content = bench_io._content(*size) if real else None
            bench_io.media.make_video(
                path, n_frames=n_frames, size=size, gop=120, bframes=3, crf=23, source=content
            )
        clips[name] = path
    return clips


def read_fps(tree: Path, clip: Path, passes: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", READ, str(clip), str(passes)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="src folder of the 'before' tree")
    ap.add_argument("--after", type=Path, required=True, help="src folder of the 'after' tree")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--passes", type=int, default=2, help="passes per process (best is kept)")
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--media-dir", type=Path, default=Path("/tmp/napari-vsr-bench-ab"))
    args = ap.parse_args(argv)
    clips = make_clips(args.media_dir, args.frames)
    results = {}
    for name, clip in clips.items():
        runs = {"before": [], "after": []}
        for k in range(args.pairs):
            order = ("before", "after") if k % 2 == 0 else ("after", "before")
            for which in order:
                tree = args.before if which == "before" else args.after
                runs[which].append(read_fps(tree.resolve(), clip, args.passes))
        results[name] = runs
    print(
        f"{'clip':<10} {'before fps (median)':>20} {'after fps (median)':>19} {'after/before':>13}"
    )
    rows = []
    for name, runs in results.items():
        b, a = statistics.median(runs["before"]), statistics.median(runs["after"])
        print(f"{name:<10} {b:>20.1f} {a:>19.1f} {a / b:>13.2f}")
        rows.append({"clip": name, **runs, "median_before": b, "median_after": a, "ratio": a / b})
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    record = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, no GPU",
        "before": str(args.before),
        "after": str(args.after),
        "rows": rows,
    }
    path = out_dir / "bench_read_ab.json"
    path.write_text(json.dumps(record, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
