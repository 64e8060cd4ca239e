"""Benchmark the job runner (issue 10): segments, commits and assembly, here and on Dask workers,
against the plain single-process engine run.

Two workloads, each through four rows, interleaved round by round (the fastest of
``--repeats`` kept; peak memory: the highest):

* ``a) engine``   the baseline: open the source, build the enhancer, ``engine.enhance`` over
  the frames, every frame written by the same TIFF writer the runner uses; no segments
* ``b) runner``   ``jobs.runner.run`` with ``scheduler=None``: the same work cut into segments,
  each committed to the job folder, then the output assembled from them
* ``c) local:1``  ``jobs.runner.run`` on a Dask LocalCluster of 1 worker process
* ``d) local:2``  the same with 2 worker processes

Workloads: the ``denoise-sharpen`` classic preset (non-local means, then an unsharp mask; CPU
bound, same size) over the sample frames at 640x360, and RealBasicVSR (the golden checkpoint,
CPU fp32) over the sample frames cropped to 160x90, written as a TIFF.  Chunk and segment are
fixed so that every runner row computes the same segments (at least 4).

Each row's wall time includes everything its user waits for: opening the source, building the
enhancer (loading the weights), starting and closing the cluster, and writing the output.
Memory: peak RSS of this (driver) process and of each Dask worker process, found as children of
this process with psutil and sampled every 50 ms (workers' CPU seconds from the same samples).
Outputs are lossless TIFFs; each row's pixels are compared with row a) (``np.array_equal``).

The threads each row computes with are part of the result: the single-process rows use torch's
default (one per core) and the classic enhancer's one thread per core; a Dask worker gets
``OMP_NUM_THREADS`` = its share of the cores (checked in the workers with ``client.run`` on
the runner's own cluster, :func:`napari_vsr.jobs.distributed.connect`, before the timed rows).

    python benchmarks/bench_jobs.py               # full run (~4 min on 2 cores, more when loaded)
    python benchmarks/bench_jobs.py --repeats 3
    python benchmarks/bench_jobs.py --quick       # smoke: tiny frames, one round

Prints a markdown table and writes ``benchmarks/results/jobs.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import tifffile

# nothing here may import torch: a Dask worker re-imports this (__main__) module when it is
# spawned, while distributed's pre-spawn OMP_NUM_THREADS=1 is set, and torch would keep 1 thread
from napari_vsr.io import open_frames, open_writer
from napari_vsr.jobs import runner as jobs_runner
from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions
from napari_vsr.jobs.runner import JobStarted, SegmentDone
from napari_vsr.jobs.source import open_source

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("NAPARI_VSR_SHARED", REPO.parent / "shared"))
GOLDEN_CKPT = SHARED / "golden" / "realbasicvsr" / "realbasicvsr_random_mmedit_layout.pth"
SAMPLES = SHARED / "samples" / "demo_000"

ROWS = ("a) engine", "b) runner", "c) local:1", "d) local:2")
SCHEDULERS = {"b) runner": None, "c) local:1": "local:1", "d) local:2": "local:2"}


class ProcessMemory:
    """Peak RSS of this process and of each child process (recursively) while the block runs,
    sampled every ``interval`` seconds; also the last CPU seconds seen of each child."""

    def __init__(self, interval: float = 0.05):
        self.proc = psutil.Process()
        self.interval = interval
        self._stop = threading.Event()
        self.children: dict[int, dict] = {}

    def _sample(self) -> None:
        self.peak = max(self.peak, self.proc.memory_info().rss)
        for child in self.proc.children(recursive=True):
            try:
                with child.oneshot():
                    rss = child.memory_info().rss
                    cpu = child.cpu_times()
                    if child.pid not in self.children:
                        self.children[child.pid] = {"cmdline": " ".join(child.cmdline())[:200],
                                                    "peak": 0, "cpu_s": 0.0, "ports": set()}
                    seen = self.children[child.pid]
                    if not seen["ports"] and "spawn_main" in seen["cmdline"]:
                        seen["ports"] = {c.laddr.port for c in child.net_connections("tcp")
                                         if c.status == psutil.CONN_LISTEN}
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            seen = self.children[child.pid]
            seen["peak"] = max(seen["peak"], rss)
            seen["cpu_s"] = max(seen["cpu_s"], cpu.user + cpu.system)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        cpu = self.proc.cpu_times()
        self._cpu0 = cpu.user + cpu.system
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        cpu = self.proc.cpu_times()
        self.cpu_s = cpu.user + cpu.system - self._cpu0

    def workers(self, addresses: list[str]) -> list[dict]:
        """The Dask worker processes (children listening on a port of ``addresses``, the
        workers that ran segments), in pid order."""
        ports = {int(a.rsplit(":", 1)[1]) for a in addresses}
        return [
            {"pid": pid, "peak_rss_mib": c["peak"] / 2**20, "cpu_s": c["cpu_s"]}
            for pid, c in sorted(self.children.items())
            if c["ports"] & ports
        ]

    def others(self, addresses: list[str]) -> list[dict]:
        """Every other child process seen (multiprocessing's resource tracker, ...)."""
        workers = {w["pid"] for w in self.workers(addresses)}
        return [{"pid": pid, "cmdline": c["cmdline"], "peak_rss_mib": c["peak"] / 2**20}
                for pid, c in sorted(self.children.items()) if pid not in workers]


def _method(workload: str, weights: Path) -> MethodOptions:
    if workload == "classic":
        return MethodOptions(method="classic", preset="denoise-sharpen")
    return MethodOptions(method="realbasicvsr", weights=str(weights), device="cpu",
                         precision="fp32")


def run_engine(source: Path, method: MethodOptions, engine: EngineOptions, out: Path) -> dict:
    """Row a): the plain single-process engine run, written by the same writer."""
    import torch

    from napari_vsr.engine import enhance

    t0 = time.perf_counter()
    frames = open_source(source)
    try:
        enhancer = method.resolved().build(frame_size=tuple(frames.shape[1:3]))
        try:
            with open_writer(out, metadata={"benchmark": "bench_jobs a)"}) as writer:
                for _, frame in enhance(frames, enhancer, chunk=engine.chunk,
                                        overlap=engine.overlap):
                    writer.write(frame)
        finally:
            enhancer.close()
    finally:
        frames.close()
    return {"seconds": time.perf_counter() - t0, "torch_threads": torch.get_num_threads()}


def run_job(source: Path, method: MethodOptions, engine: EngineOptions, out: Path,
            segment: int, scheduler: str | None) -> dict:
    """Rows b)-d): ``jobs.runner.run``; times of the job's phases from its events."""
    marks: dict[str, float] = {}
    segments = []

    def on_event(event) -> None:
        now = time.perf_counter()
        if isinstance(event, JobStarted):
            marks["started"] = now
            marks["segments"] = event.segments
        elif isinstance(event, SegmentDone):
            marks.setdefault("first_segment", now)
            marks["last_segment"] = now
            segments.append({"index": event.index, "worker": event.worker,
                             "computed": event.computed})

    request = JobRequest(source=str(source), output=str(out), method=method, engine=engine,
                         segment=segment, scheduler=scheduler, overwrite=True)
    env = dict(os.environ)
    t0 = time.perf_counter()
    try:
        result = jobs_runner.run(request, on_event=on_event)
    finally:
        leaked = {k: os.environ[k] for k in os.environ if os.environ[k] != env.get(k)}
        os.environ.clear()  # a LocalCluster's nannies set OMP_NUM_THREADS=1 etc. here
        os.environ.update(env)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "segments": marks.get("segments"),
        "segments_computed": result.segments_computed,
        "until_job_started_s": marks["started"] - t0,
        "until_first_segment_s": marks["first_segment"] - t0,
        "assembly_s": t0 + seconds - marks["last_segment"],
        "workers_used": sorted({s["worker"] for s in segments if s["worker"]}),
        "environ_set_in_driver": leaked,
    }


def worker_threads(scheduler: str) -> list[dict]:
    """What the runner's own local cluster gives each worker: OMP_NUM_THREADS, torch's thread
    count and the classic enhancer's threads (via ``client.run``; not timed)."""
    from napari_vsr.jobs.distributed import connect

    def probe() -> dict:
        import torch

        from napari_vsr.classic.pipeline import usable_cpus

        return {"pid": os.getpid(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                "torch_threads": torch.get_num_threads(), "classic_threads": usable_cpus()}

    env = dict(os.environ)
    try:
        with connect(scheduler, cuda=False) as client:
            return list(client.run(probe).values())
    finally:
        os.environ.clear()
        os.environ.update(env)


def classic_threads() -> int:
    from napari_vsr.classic.pipeline import usable_cpus

    return usable_cpus()


def warm_up(wl: dict, method: MethodOptions) -> dict:
    """Build the enhancer and run 2 frames, so that no timed row pays first-call costs."""
    import torch

    from napari_vsr.engine import enhance

    t0 = time.perf_counter()
    frames = open_source(wl["source"])
    enhancer = method.resolved().build(frame_size=tuple(frames.shape[1:3]))
    list(enhance(frames, enhancer, chunk=2, overlap=0, frame_range=(0, 2)))
    enhancer.close()
    frames.close()
    return {"seconds": time.perf_counter() - t0, "torch_threads": torch.get_num_threads()}


def read_pixels(path: Path) -> np.ndarray:
    return tifffile.imread(path)


def keep_best(rows: dict, name: str, run: dict) -> None:
    """The faster run of a row; memory figures: the highest seen in any run."""
    old = rows.get(name)
    if old is None:
        rows[name] = {**run, "runs_s": [run["seconds"]]}
        return
    best = dict(old if old["seconds"] <= run["seconds"] else run)
    best["runs_s"] = old["runs_s"] + [run["seconds"]]
    for key in ("driver_peak_rss_mib", "driver_rss_increase_mib"):
        best[key] = max(old[key], run[key])
    if old["workers"] and run["workers"]:
        peaks = sorted(max(w["peak_rss_mib"] for w in r["workers"]) for r in (old, run))
        best["max_worker_peak_rss_mib"] = peaks[-1]
    best["identical"] = old["identical"] and run["identical"]
    rows[name] = best


def make_inputs(args, tmp: Path) -> dict[str, dict]:
    """The two workloads' sources, engine options and segments."""
    frames = open_frames(args.samples)
    try:
        def crop(n: int, width: int, height: int) -> np.ndarray:
            h, w = frames.shape[1:3]
            y0, x0 = (h - height) // 2, (w - width) // 2
            return np.asarray(frames[0:n])[:, y0 : y0 + height, x0 : x0 + width]

        def scaled(n: int, width: int, height: int) -> np.ndarray:
            import cv2

            block = np.asarray(frames[0:n])
            return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
                             for f in block])

        workloads = {}
        if args.quick:
            classic_src = tmp / "classic_src.tif"
            tifffile.imwrite(classic_src, crop(8, 160, 90), photometric="rgb")
        else:
            classic_src = args.samples
        workloads["classic"] = {
            "source": classic_src, "engine": EngineOptions(chunk=args.classic_chunk),
            "segment": args.classic_segment}
        w, h = (int(v) for v in args.rbvsr_size.split("x"))
        rb_src = tmp / "rbvsr_src.tif"
        tifffile.imwrite(rb_src, scaled(args.rbvsr_frames, w, h), photometric="rgb")
        workloads["realbasicvsr"] = {
            "source": rb_src,
            "engine": EngineOptions(chunk=args.rbvsr_chunk, overlap=args.rbvsr_overlap),
            "segment": args.rbvsr_segment}
    finally:
        frames.close()
    for wl in workloads.values():
        src = open_source(wl["source"])
        wl["frames"], wl["size"] = int(src.shape[0]), [int(src.shape[2]), int(src.shape[1])]
        src.close()
    return workloads


def measure(name: str, wl: dict, method: MethodOptions, tmp: Path, reference) -> dict:
    out = tmp / f"{name[0]}_out.tif"
    with ProcessMemory() as mem:
        if name == "a) engine":
            run = run_engine(wl["source"], method, wl["engine"], out)
        else:
            run = run_job(wl["source"], method, wl["engine"], out, wl["segment"],
                          SCHEDULERS[name])
    pixels = read_pixels(out)
    out.unlink()
    run.update(
        driver_peak_rss_mib=mem.peak / 2**20,
        driver_rss_increase_mib=(mem.peak - mem.start) / 2**20,
        driver_cpu_s=mem.cpu_s,
        workers=mem.workers(run.get("workers_used", [])),
        other_children=mem.others(run.get("workers_used", [])),
        fps=wl["frames"] / run["seconds"],
    )
    run["max_worker_peak_rss_mib"] = max(
        (w["peak_rss_mib"] for w in run["workers"]), default=None)
    if reference is None:
        run["identical"] = True
        return run, pixels
    run["identical"] = bool(np.array_equal(pixels, reference))
    if not run["identical"] and pixels.shape == reference.shape:
        diff = np.abs(pixels.astype(np.int32) - reference.astype(np.int32))
        run["max_abs_diff"] = int(diff.max())
        run["differing_pixel_fraction"] = float(np.mean(diff > 0))
    return run, pixels


def threads_text(workload: str, name: str, probes: dict, driver_threads: int) -> str:
    if name in ("a) engine", "b) runner"):
        return f"1 process x {driver_threads}"
    got = probes.get(SCHEDULERS[name], [])
    n = len(got)
    key = "torch_threads" if workload == "realbasicvsr" else "classic_threads"
    per = sorted({p[key] for p in got})
    return f"{n} worker{'s' if n != 1 else ''} x {'/'.join(map(str, per))}"


def print_table(results: dict, probes: dict) -> None:
    print("\n| workload | row | threads | wall s | fps | speed-up vs a) | driver peak RSS MiB "
          "(+ during row) | peak RSS per worker MiB | worker CPU s | identical to a) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for workload, res in results.items():
        base = res["rows"]["a) engine"]["seconds"]
        threads = res["driver_threads"]
        for name, r in res["rows"].items():
            workers = " / ".join(f"{w['peak_rss_mib']:.0f}" for w in r["workers"]) or "-"
            cpu = " / ".join(f"{w['cpu_s']:.1f}" for w in r["workers"]) or "-"
            same = "yes" if r["identical"] else (
                f"no (max diff {r.get('max_abs_diff')}, "
                f"{100 * r.get('differing_pixel_fraction', 0):.2g} % of values)")
            print(f"| {workload} | {name} | {threads_text(workload, name, probes, threads)} | "
                  f"{r['seconds']:.2f} | {r['fps']:.2f} | {base / r['seconds']:.2f}x | "
                  f"{r['driver_peak_rss_mib']:.0f} (+{r['driver_rss_increase_mib']:.0f}) | "
                  f"{workers} | {cpu} | {same} |")
    print("\nphases of the runner rows (s): until JobStarted / until the first segment / "
          "assembly after the last segment")
    for workload, res in results.items():
        for name, r in res["rows"].items():
            if name != "a) engine":
                print(f"  {workload:<13}{name:<12}{r['until_job_started_s']:7.2f}"
                      f"{r['until_first_segment_s']:8.2f}{r['assembly_s']:8.2f}   "
                      f"segments {r['segments']}, workers used {len(r['workers_used'])}, "
                      f"runs {', '.join(f'{s:.2f}' for s in r['runs_s'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2,
                    help="interleaved rounds (fastest kept; default 2)")
    ap.add_argument("--workloads", nargs="+", default=["classic", "realbasicvsr"],
                    choices=["classic", "realbasicvsr"])
    ap.add_argument("--weights", type=Path, default=GOLDEN_CKPT)
    ap.add_argument("--samples", type=Path, default=SAMPLES)
    ap.add_argument("--classic-chunk", type=int, default=4)
    ap.add_argument("--classic-segment", type=int, default=8,
                    help="frames per segment (31 frames: 4 segments)")
    ap.add_argument("--rbvsr-size", default="160x90", help="RealBasicVSR input WxH (scaled)")
    ap.add_argument("--rbvsr-frames", type=int, default=16)
    ap.add_argument("--rbvsr-chunk", type=int, default=4)
    ap.add_argument("--rbvsr-overlap", type=int, default=2,
                    help="context frames each side of a chunk (default 2: less work than 4)")
    ap.add_argument("--rbvsr-segment", type=int, default=4,
                    help="frames per segment (16 frames: 4 segments)")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny frames, one round")
    args = ap.parse_args()
    if args.quick:
        args.repeats = 1
        args.classic_chunk, args.classic_segment = 2, 2
        args.rbvsr_size, args.rbvsr_frames, args.rbvsr_chunk, args.rbvsr_segment = (
            "32x24", 4, 1, 1)
        args.rbvsr_overlap = 0

    import distributed
    import torch

    info = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "distributed": distributed.__version__,
        "numpy": np.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpus": psutil.cpu_count(),
        "load_average_before": os.getloadavg(),
        "quick": args.quick,
        "repeats": args.repeats,
    }
    print(json.dumps(info))
    tmp = Path(tempfile.mkdtemp(prefix="bench_jobs_"))
    results: dict = {}
    try:
        workloads = {k: v for k, v in make_inputs(args, tmp).items() if k in args.workloads}
        probes = {s: worker_threads(s) for s in ("local:1", "local:2")}
        print("worker threads:", json.dumps(probes))
        for workload, wl in workloads.items():
            method = _method(workload, args.weights)
            print(f"\n== {workload}: {wl['frames']} frames {wl['size'][0]}x{wl['size'][1]}, "
                  f"chunk {wl['engine'].chunk}, segment {wl['segment']} ==", flush=True)
            warm = warm_up(wl, method)
            rows: dict = {}
            reference = None
            for rnd in range(args.repeats):
                for name in ROWS:
                    run, pixels = measure(name, wl, method, tmp, reference)
                    if reference is None:  # round 1's a): every other run is compared to it
                        reference = pixels
                    print(f"  round {rnd + 1} {name:<12}{run['seconds']:8.2f} s  "
                          f"identical={run['identical']}", flush=True)
                    keep_best(rows, name, run)
            results[workload] = {
                "frames": wl["frames"], "size": wl["size"], "source": str(wl["source"]),
                "chunk": wl["engine"].chunk, "segment": wl["segment"],
                "overlap": wl["engine"].overlap, "method": method.to_dict(),
                "warm_up_s": warm["seconds"], "rows": rows,
                "driver_threads": (warm["torch_threads"] if workload == "realbasicvsr"
                                   else classic_threads()),
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    info["load_average_after"] = os.getloadavg()
    print_table(results, probes)
    print(f"\nload average before {info['load_average_before']}, "
          f"after {info['load_average_after']}")
    out = HERE / "results" / "jobs.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"info": info, "worker_threads": probes, "workloads": results},
                              indent=1, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
