"""Benchmark the RealBasicVSR network alone: output frames per second and peak memory over a
grid of precision x memory layout x torch.compile x batch size, at 640x360 and 1280x720 input.

Each configuration builds :class:`~napari_vsr.enhancers.RealBasicVSREnhancer` the way the
product does (the golden checkpoint: random weights in the released layout, the same compute as
the released ones; channels_last, ``torch.compile`` of the heavy sub-networks, and on the CPU in
float32 the fused oneDNN path) and runs its network on N clips of T frames at once, input
(N, T, 3, H, W) already on the device in the network's dtype (a channels-last view of
(N, T, H, W, 3) frames, as the enhancer passes them).  The output stays on the device: no
host transfer, no decode, no encode.  Frames per second = N * T / seconds per call.

Timing: one warm-up call per configuration (its time is kept as ``warmup_s``: for compiled
rows it includes the compilation), then calls until ``--min-time`` seconds or
``--max-repeats`` calls (at least 2 on the CPU); the median is used on CUDA, the fastest on
the CPU (a machine shared with other work).  Peak memory: ``torch.cuda.max_memory_allocated``
during the timed calls on CUDA (absolute: weights, input and output included); on the CPU the
peak process RSS above its level before the warm-up, sampled every 5 ms.

Baseline (same run): float32, contiguous, not compiled, N = 1, at each size.  The physical
limit: ``--tflop-per-frame`` (2.94 TFLOP per 640x360 input frame, scaled by the pixel count;
``--count-flops`` counts it with torch's FlopCounterMode on a small crop) against
``--peak-tflops`` (990: H100/H200 dense fp16/bf16 tensor-core peak): limit fps = peak / FLOP
per frame, and each row's share of it (against the fp16 peak for every precision).

The grid is run in priority order (the fp16 channels_last rows first, compiled rows last) and
``--budget-s`` stops it in time: a configuration whose predicted time would not fit is recorded
as skipped.  The JSON is rewritten after every row, so a run killed by a time limit keeps what
it measured.

    python benchmarks/bench_network.py                      # CUDA: the full grid (long)
    python benchmarks/bench_network.py --budget-s 200       # CUDA: as much as fits in 200 s
    python benchmarks/bench_network.py --quick              # CPU smoke: 96x64, fp32/bf16
    python benchmarks/bench_network.py --device cpu --sizes 160x90 --frames 4 --batches 1

Prints a table and writes ``benchmarks/results/network.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import benchlib
import numpy as np
import torch
from benchlib import GOLDEN_CKPT, PeakRSS, fmt, parse_size

REF_PIXELS = 640 * 360
PRECISIONS = ("fp16", "bf16", "fp32")  # priority order


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_oom(exc: BaseException) -> bool:
    from napari_vsr.models.device import is_out_of_memory

    return is_out_of_memory(exc)


def flop_per_frame(args, width: int, height: int) -> float:
    return args.tflop_per_frame * 1e12 * (width * height) / REF_PIXELS


def grid(args) -> list[dict]:
    """Every configuration, in the order they are run (most wanted first)."""
    rows = []
    for compiled in args.compile:
        for size in args.sizes:
            for prec in args.precisions:
                for cl in args.channels_last:
                    for n in args.batches:
                        rows.append(
                            {
                                "size": f"{size[0]}x{size[1]}",
                                "precision": prec,
                                "channels_last": cl,
                                "compile": compiled,
                                "batch": n,
                            }
                        )

    def key(r):
        """Tiers: 0 the first size's baseline and fp16 channels_last rows (every N); 1 one
        compiled fp16 channels_last N=1 row there; 2 the other N=1 rows of the first size and
        the second size's baseline and fp16 channels_last rows; 3 every other plain row;
        4 every other compiled row.  Within a tier: size, precision, layout, N."""
        size_rank = [f"{w}x{h}" for w, h in args.sizes].index(r["size"])
        headline = r["precision"] == "fp16" and r["channels_last"]
        baseline = r["precision"] == "fp32" and not r["channels_last"] and r["batch"] == 1
        if r["compile"]:
            tier = 1 if size_rank == 0 and headline and r["batch"] == 1 else 4
        elif size_rank == 0 and (baseline or headline):
            tier = 0
        elif (size_rank == 0 and r["batch"] == 1) or (size_rank == 1 and (baseline or headline)):
            tier = 2
        else:
            tier = 3
        return (
            tier,
            size_rank,
            not baseline,
            PRECISIONS.index(r["precision"]),
            not r["channels_last"],
            r["batch"],
        )

    return sorted(rows, key=key)


class Models:
    """One enhancer per (precision, channels_last, compile), built on first use."""

    def __init__(self, args):
        self.args = args
        self._made: dict[tuple, object] = {}

    def get(self, prec: str, cl: bool, compiled: bool):
        from napari_vsr.enhancers import RealBasicVSREnhancer

        key = (prec, cl, compiled)
        if key not in self._made:
            self._made[key] = RealBasicVSREnhancer(
                self.args.weights,
                device=self.args.device,
                precision=prec,
                channels_last=cl,
                compile=compiled,
            )
        return self._made[key]

    def drop(self) -> None:
        """Close every network and give their memory back to the device."""
        for enh in self._made.values():
            enh.close()
        self._made.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def make_input(frames: np.ndarray, n: int, t: int, enh) -> torch.Tensor:
    """(N, T, 3, H, W) on the enhancer's device in its dtype: clip k starts at frame 3k of the
    ping-pong extended sample frames (N different clips)."""
    seq = benchlib.ping_pong(3 * (n - 1) + t, frames.shape[0])
    x = torch.from_numpy(np.stack([frames[seq[3 * k : 3 * k + t]] for k in range(n)]))
    x = x.to(enh.device).permute(0, 1, 4, 2, 3)  # channels-last view of each frame
    if not enh.channels_last:
        x = x.contiguous()
    return x.to(enh.dtype).div_(255.0)


def run_row(row: dict, models: Models, frames_by_size: dict, args) -> dict:
    enh = models.get(row["precision"], row["channels_last"], row["compile"])
    device = enh.device
    w, h = parse_size(row["size"])
    t, n = args.frames, row["batch"]
    row.update(frames=t, device=str(device), fused=bool(enh.fused))
    if row["compile"]:
        torch._dynamo.reset()  # static shapes: each compiled row compiles for its own shape
    x = make_input(frames_by_size[row["size"]], n, t, enh)
    net = enh._net  # the enhancer's configured network (benchmark: the network alone)

    def once():
        with torch.inference_mode():
            return net(x)

    out = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
    benchlib.release_host_memory()
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        out = once()
        _sync(device)
        row["warmup_s"] = time.perf_counter() - t0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times: list[float] = []
        while len(times) < args.max_repeats and (
            len(times) < args.min_repeats or sum(times) < args.min_time
        ):
            out = None  # the previous output is not counted in this call's peak
            t0 = time.perf_counter()
            out = once()
            _sync(device)
            times.append(time.perf_counter() - t0)
    assert out is not None and out.shape == (n, t, 3, 4 * h, 4 * w), out.shape
    del out
    # the median on CUDA (METHOD.md); the fastest on a CPU shared with other work
    sec = statistics.median(times) if device.type == "cuda" else min(times)
    fps = n * t / sec
    fpf = flop_per_frame(args, w, h)
    row.update(
        status="ok",
        runs_s=times,
        s_per_call=sec,
        fps=fps,
        ms_per_frame=1000 / fps,
        tflops=fps * fpf / 1e12,
        limit_fps=args.peak_tflops * 1e12 / fpf,
    )
    row["pct_of_limit"] = 100 * fps / row["limit_fps"]
    if device.type == "cuda":
        row["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        row["peak_kind"] = "cuda max_memory_allocated"
        # the enhancer switches TF32 off process-wide for fp32: recorded, not assumed
        row["tf32_cudnn"] = getattr(torch.backends.cudnn, "allow_tf32", None)
    else:
        row["peak_mib"] = rss.mib
        row["peak_kind"] = "process RSS above the level before the warm-up"
    return row


def predicted_s(row: dict, done: list[dict], args) -> float | None:
    """Seconds a row will take (warm-up + timed calls), from the fastest finished row of the
    same precision and compile setting (scaled by pixels x frames); None when nothing alike ran."""
    w, h = parse_size(row["size"])
    work = w * h * row["batch"] * args.frames
    alike = [r for r in done if r.get("status") == "ok" and r["precision"] == row["precision"]]
    if not alike:
        return None
    best = max(alike, key=lambda r: r["tflops"])
    per_px = best["s_per_call"] / (
        parse_size(best["size"])[0] * parse_size(best["size"])[1] * best["batch"] * best["frames"]
    )
    call = per_px * work
    timed = max(args.min_repeats, int(np.ceil(args.min_time / max(call, 1e-9))))
    calls = 1 + min(args.max_repeats, timed)
    compile_s = args.compile_estimate_s if row["compile"] else 0.0
    return call * calls + compile_s


def count_flops(args) -> dict:
    """FLOP per input frame counted by torch's FlopCounterMode on a 160x90 crop of T frames,
    scaled to 640x360 (convolutions, matrix products; SPyNet included)."""
    from torch.utils.flop_counter import FlopCounterMode

    from napari_vsr.models import load_realbasicvsr

    net = load_realbasicvsr(args.weights, device=args.device)
    t = max(args.frames, 2)
    x = torch.rand(1, t, 3, 90, 160, device=args.device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(x)
    total = counter.get_total_flops()
    return {
        "frames": t,
        "crop": "160x90",
        "flop": total,
        "tflop_per_frame_640x360": total / t / 1e12 * REF_PIXELS / (160 * 90),
    }


def print_table(rows: list[dict], args) -> None:
    base = {
        r["size"]: r
        for r in rows
        if r.get("status") == "ok"
        and r["precision"] == "fp32"
        and not r["channels_last"]
        and not r["compile"]
        and r["batch"] == 1
    }
    print(
        f"\nRealBasicVSR x4 network only, T={args.frames} frames per clip, {args.device}; "
        f"limit: {args.tflop_per_frame:g} TFLOP per 640x360 frame at {args.peak_tflops:g} "
        "TFLOP/s"
    )
    head = (
        f"{'size':>9} {'prec':>5} {'layout':>9} {'compile':>7} {'N':>2} {'fps':>9} "
        f"{'vs base':>8} {'ms/frame':>9} {'peak MiB':>9} {'TFLOP/s':>8} {'% limit':>8}  status"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        layout = "ch_last" if r["channels_last"] else "contig"
        if r.get("fused"):
            layout += "+f"
        comp = "yes" if r["compile"] else "no"
        if r.get("status") != "ok":
            print(
                f"{r['size']:>9} {r['precision']:>5} {layout:>9} {comp:>7} {r['batch']:>2} "
                f"{'':>9} {'':>8} {'':>9} {'':>9} {'':>8} {'':>8}  {r.get('status')}"
            )
            continue
        b = base.get(r["size"])
        speed = f"{r['fps'] / b['fps']:.2f}x" if b else "-"
        pct = fmt(r["pct_of_limit"], ".1f") if args.show_limit else "-"
        print(
            f"{r['size']:>9} {r['precision']:>5} {layout:>9} {comp:>7} {r['batch']:>2} "
            f"{r['fps']:>9.3f} {speed:>8} {r['ms_per_frame']:>9.1f} {r['peak_mib']:>9.0f} "
            f"{r['tflops']:>8.2f} {pct:>8}  ok"
        )
    print(
        "baseline (vs base): fp32 contiguous, not compiled, N=1, same size; '+f': fused "
        "oneDNN convolutions (CPU fp32)"
    )
    for size in args.sizes:
        w, h = size
        limit = args.peak_tflops * 1e12 / flop_per_frame(args, w, h)
        print(
            f"physical limit at {w}x{h}: {flop_per_frame(args, w, h) / 1e12:.2f} TFLOP per "
            f"frame -> {limit:.1f} fps at {args.peak_tflops:g} TFLOP/s"
        )


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    ap.add_argument(
        "--sizes", default=None, help="input sizes WxH, comma-separated (default 640x360,1280x720)"
    )
    ap.add_argument(
        "--precisions",
        default=None,
        help="comma-separated fp32,fp16,bf16 (default: all on CUDA, fp32,bf16 on CPU)",
    )
    ap.add_argument("--channels-last", default="both", choices=["both", "on", "off"])
    ap.add_argument(
        "--compile",
        default=None,
        choices=["both", "on", "off"],
        help="torch.compile rows (default: both on CUDA, off on CPU)",
    )
    ap.add_argument("--batches", default="1,2,4,8", help="clips per call N, comma-separated")
    ap.add_argument("--frames", type=int, default=20, help="frames per clip T (default 20)")
    ap.add_argument(
        "--min-time",
        type=float,
        default=None,
        help="timed seconds per row at least (default 1 on CUDA, 0 on CPU)",
    )
    ap.add_argument(
        "--max-repeats",
        type=int,
        default=None,
        help="timed calls per row at most (default 5 on CUDA, 2 on CPU)",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="stop the grid in time: rows that would not fit are recorded as skipped",
    )
    ap.add_argument(
        "--max-row-s",
        type=float,
        default=90.0,
        help="skip a row predicted to take longer than this (default 90)",
    )
    ap.add_argument(
        "--compile-estimate-s",
        type=float,
        default=60.0,
        help="compile time assumed when predicting a compiled row (default 60)",
    )
    ap.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="device peak TFLOP/s for the limit (default 990: H100/H200 dense fp16)",
    )
    ap.add_argument(
        "--tflop-per-frame",
        type=float,
        default=2.94,
        help="TFLOP per 640x360 input frame (default 2.94)",
    )
    ap.add_argument(
        "--count-flops",
        action="store_true",
        help="also count the FLOP per frame with FlopCounterMode (small crop)",
    )
    ap.add_argument("--weights", type=Path, default=GOLDEN_CKPT)
    ap.add_argument(
        "--samples",
        type=Path,
        default=None,
        help="sample frames: a folder or a video (default: the demo_000 frames)",
    )
    ap.add_argument(
        "--quick", action="store_true", help="CPU smoke: 96x64, fp32/bf16, 3 rows x N=1,2, T=3"
    )
    ap.add_argument("--out", type=Path, default=benchlib.RESULTS / "network.json")
    args = ap.parse_args(argv)

    cuda = torch.cuda.is_available()
    if args.device == "auto":
        args.device = "cuda" if cuda else "cpu"
    on_cuda = args.device.startswith("cuda")
    if args.quick:
        args.sizes = args.sizes or "96x64"
        args.precisions = args.precisions or "fp32,bf16"
        args.batches = "1,2" if args.batches == "1,2,4,8" else args.batches
        args.frames = 3 if args.frames == 20 else args.frames
    args.sizes = [parse_size(s) for s in (args.sizes or "640x360,1280x720").split(",")]
    args.precisions = (args.precisions or ("fp32,fp16,bf16" if on_cuda else "fp32,bf16")).split(",")
    for p in args.precisions:
        if p not in PRECISIONS:
            ap.error(f"--precisions: unknown {p!r} (fp32, fp16, bf16)")
    args.batches = [int(b) for b in args.batches.split(",")]
    args.channels_last = {"both": [True, False], "on": [True], "off": [False]}[args.channels_last]
    comp = args.compile or ("both" if on_cuda else "off")
    args.compile = {"both": [False, True], "on": [True], "off": [False]}[comp]
    if args.min_time is None:
        args.min_time = 1.0 if on_cuda else 0.0
    args.min_repeats = 1 if on_cuda else min(2, args.max_repeats or 2)
    if args.max_repeats is None:
        args.max_repeats = 5 if on_cuda else 2
    args.show_limit = on_cuda or args.peak_tflops is not None
    if args.peak_tflops is None:
        args.peak_tflops = 990.0
    args.samples = args.samples or benchlib.default_samples()
    if args.quick:  # few combinations: fp32 both layouts, bf16 channels_last
        args.only = {("fp32", True), ("fp32", False), ("bf16", True)}
    else:
        args.only = None
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    info = benchlib.machine_info()
    info.update(weights=args.weights.name, samples=str(args.samples), quick=args.quick)
    print(info)
    frames_by_size = {
        f"{w}x{h}": benchlib.load_frames(args.samples, size=(w, h)) for w, h in args.sizes
    }
    todo = [
        r
        for r in grid(args)
        if args.only is None or (r["precision"], r["channels_last"]) in args.only
    ]
    doc = {
        "benchmark": "network",
        "info": info,
        "settings": {
            "frames": args.frames,
            "sizes": [f"{w}x{h}" for w, h in args.sizes],
            "batches": args.batches,
            "min_time_s": args.min_time,
            "min_repeats": args.min_repeats,
            "max_repeats": args.max_repeats,
            "peak_tflops": args.peak_tflops,
            "tflop_per_frame_640x360": args.tflop_per_frame,
            "budget_s": args.budget_s,
        },
        "rows": [],
    }
    if args.count_flops:
        doc["counted"] = count_flops(args)
        print(
            f"counted: {doc['counted']['tflop_per_frame_640x360']:.3f} TFLOP per 640x360 "
            f"frame (T={doc['counted']['frames']}; the limit uses {args.tflop_per_frame:g})"
        )
    models = Models(args)  # kept between rows (~25 MB each); cached memory freed per row
    done: list[dict] = []
    for row in todo:
        left = None if args.budget_s is None else args.budget_s - (time.perf_counter() - t_start)
        guess = predicted_s(row, done, args)
        if left is not None and (left <= 0 or (guess is not None and guess > left)):
            row["status"] = (
                f"skipped: time budget ({fmt(guess, '.0f', '?')} s needed, {left:.0f} s left)"
            )
        elif guess is not None and guess > args.max_row_s:
            row["status"] = f"skipped: predicted {guess:.0f} s > --max-row-s {args.max_row_s:g}"
        else:
            try:
                run_row(row, models, frames_by_size, args)
            except Exception as exc:  # noqa: BLE001 - a failed row is a result, the grid goes on
                if _is_oom(exc):
                    row["status"] = "out of memory"
                else:
                    row["status"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                models.drop()
                if args.device.startswith("cuda"):
                    torch.cuda.empty_cache()
        done.append(row)
        r = row
        print(
            f"  {r['size']} {r['precision']} cl={int(r['channels_last'])} "
            f"compile={int(r['compile'])} N={r['batch']}: "
            + (
                f"{r['fps']:.3f} fps, {r['peak_mib']:.0f} MiB, warm-up {r['warmup_s']:.1f} s"
                if r.get("status") == "ok"
                else r["status"]
            ),
            flush=True,
        )
        doc["rows"] = done
        doc["elapsed_s"] = time.perf_counter() - t_start
        benchlib.write_json(args.out, doc)
    models.drop()
    print_table(done, args)
    print(f"\nwrote {args.out} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
