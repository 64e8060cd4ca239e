"""Benchmark the streaming engine against the official-script-like baseline, and study overlap.

Main run (sample frames, 640x360 -> 2560x1440, golden checkpoint):

(a) **baseline**: what the official RealBasicVSR script does: every frame decoded into memory,
    the whole sequence in one forward pass, float32, default memory format, all outputs kept;
(b) **engine**: :func:`napari_vsr.engine.enhance` with :func:`make_enhancer` defaults
    (channels_last, fused oneDNN convolutions on CPU fp32, chunk/overlap defaults, auto tiles,
    auto precision) reading the frames lazily; on the CPU also the engine with the fused
    convolutions switched off ("unfused", channels_last only: the engine before that change),
    and the engine with ``precision="bf16"`` (opt-in on the CPU, where it is not fp32-exact).
    With ``--repeats N`` the rows are run in N interleaved rounds and the fastest run is kept.

Frames per second, peak host memory above the starting point (sampled every 5 ms), peak device
memory on CUDA, and the max abs difference of (b) against (a) (float outputs, before the final
rounding to uint8).  On CUDA the fp16 default is compared with the fp32 baseline by PSNR.

``--study``: on a crop (default 90x160) of all sample frames, chunked output for overlap
O = 0, 2, 4, 8, 16 against the whole-sequence output (PSNR per frame, at and around the joins),
and tiled against untiled output.

    python benchmarks/bench_engine.py                  # 6 frames 640x360
    python benchmarks/bench_engine.py --frames 12
    python benchmarks/bench_engine.py --study          # the overlap/tile study
    python benchmarks/bench_engine.py --quick          # smoke: 3 frames 64x96, tiny study

Prints tables and writes ``benchmarks/results/engine.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import PeakRSS

from napari_vsr.engine import enhance
from napari_vsr.enhancers import make_enhancer
from napari_vsr.io import open_frames
from napari_vsr.models.fused import unfuse_convolutions

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("NAPARI_VSR_SHARED", REPO.parent / "shared"))
GOLDEN_CKPT = SHARED / "golden" / "realbasicvsr" / "realbasicvsr_random_mmedit_layout.pth"
SAMPLES = SHARED / "samples" / "demo_000"


class Cropped:
    """A lazy view of a FrameArray: frames [0, n), rows/cols cropped at the centre."""

    def __init__(self, frames, n: int, height: int | None, width: int | None):
        t, h, w = frames.shape[:3]
        self.frames = frames
        height, width = min(height or h, h), min(width or w, w)
        self.y0, self.x0 = (h - height) // 2, (w - width) // 2
        self.shape = (min(n, t), height, width) + tuple(frames.shape[3:])
        self.dtype = frames.dtype
        self.rgb = True

    def __getitem__(self, index):
        if not isinstance(index, slice):
            raise TypeError("Cropped supports slices along time only")
        lo, hi, _ = index.indices(self.shape[0])
        block = self.frames[lo:hi]
        return block[:, self.y0 : self.y0 + self.shape[1], self.x0 : self.x0 + self.shape[2]]


def _device_sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _device_peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two float arrays clipped to [0, 1]."""
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2, dtype=np.float64))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def run_baseline(src, weights: Path, device: torch.device, dtype=torch.float32):
    """The official script's way: decode everything, one forward, default format, keep outputs."""
    from napari_vsr.models import load_realbasicvsr

    net = load_realbasicvsr(weights, device=device, dtype=dtype).eval()
    _reset_peak(device)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        frames = [np.asarray(src[i : i + 1][0]) for i in range(src.shape[0])]  # all decoded
        lqs = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255.0 for f in frames])
        with torch.no_grad():
            out = net(lqs[None].to(device, dtype))  # (1, T, 3, 4H, 4W), all kept
            outputs = [out[:, i].float().cpu() for i in range(out.shape[1])]
        _device_sync(device)
        seconds = time.perf_counter() - t0
    result = np.stack([o[0].permute(1, 2, 0).numpy() for o in outputs])
    del net, out, outputs, lqs
    return result, {
        "seconds": seconds,
        "fps": src.shape[0] / seconds,
        "peak_host_mib": mem.mib,
        "peak_device_mib": _device_peak_mib(device),
    }


class _Float01:
    """Lazy uint8 -> float32 [0, 1] view, so the engine's float outputs can be compared
    before rounding (the engine does exactly this conversion for uint8 sources)."""

    def __init__(self, src):
        self.src, self.shape, self.dtype, self.rgb = src, src.shape, np.dtype(np.float32), True

    def __getitem__(self, index):
        return self.src[index].astype(np.float32) / np.float32(255)


def run_engine(
    src,
    weights: Path,
    device: str,
    precision: str,
    reference: np.ndarray | None,
    *,
    fused: bool = True,
):
    enh = make_enhancer("realbasicvsr", weights=weights, device=device, precision=precision)
    if not fused:  # the CPU path before the fused convolutions (channels_last only)
        unfuse_convolutions(enh._net)
        enh.fused = False
    dev = enh.device
    _reset_peak(dev)
    max_diff = 0.0
    psnrs = []
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        for i, frame in enhance(_Float01(src), enh):
            if reference is not None:
                max_diff = max(max_diff, float(np.abs(frame - reference[i]).max()))
                psnrs.append(psnr(frame, reference[i]))
        _device_sync(dev)
        seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "fps": src.shape[0] / seconds,
        "peak_host_mib": mem.mib,
        "peak_device_mib": _device_peak_mib(dev),
        "precision": enh.precision,
        "fused": enh.fused,
        "chunk": enh.capabilities.default_chunk,
        "overlap": enh.capabilities.default_overlap,
        "max_abs_diff_vs_baseline": max_diff if reference is not None else None,
        "min_psnr_vs_baseline_db": min(psnrs) if psnrs else None,
    }


def _keep_best(rows: dict, name: str, run: dict) -> None:
    """Keep the faster of two runs of one configuration (peak memory: the higher)."""
    old = rows.get(name)
    if old is not None:
        peak = max(old["peak_host_mib"], run["peak_host_mib"])
        run = old if old["fps"] >= run["fps"] else run
        run["peak_host_mib"] = peak
    rows[name] = run


def _warm_up(weights: Path, device: torch.device) -> None:
    """One small forward so that neither timed configuration pays first-call costs."""
    from napari_vsr.models import load_realbasicvsr

    net = load_realbasicvsr(weights, device=device).eval()
    with torch.no_grad():
        net(torch.rand(1, 2, 3, 64, 64, device=device))
    _device_sync(device)


def main_run(args, weights: Path) -> dict:
    src_all = open_frames(args.samples)
    h, w = (int(v) for v in args.size.split("x")[::-1]) if args.size else (None, None)
    src = Cropped(src_all, args.frames, h, w)
    t, hh, ww = src.shape[:3]
    print(f"\n== engine vs baseline: {t} frames {ww}x{hh} -> {4 * ww}x{4 * hh}, {args.device} ==")
    devices = [torch.device("cpu")] if args.device == "cpu" else []
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if args.device == "auto" and not devices:
        devices = [torch.device("cpu")]
    rows = {}
    for device in devices:
        _warm_up(weights, device)
        for _ in range(args.repeats):  # interleaved rounds, the fastest run of each row kept
            ref, base = run_baseline(src, weights, device)
            _keep_best(rows, f"{device.type}/baseline fp32", base)
            if device.type == "cpu":
                unfused = run_engine(src, weights, "cpu", "fp32", ref, fused=False)
                _keep_best(rows, "cpu/engine fp32 unfused", unfused)
            eng32 = run_engine(src, weights, str(device), "fp32", ref)
            _keep_best(rows, f"{device.type}/engine fp32", eng32)
        if device.type == "cuda":
            rows["cuda/engine auto"] = run_engine(src, weights, "cuda", "auto", ref)
        # bf16 (opt-in on the CPU: fast where the CPU has native bfloat16, e.g. AMX)
        rows[f"{device.type}/engine bf16"] = run_engine(src, weights, str(device), "bf16", ref)
        del ref
    print(
        f"{'config':<26}{'fps':>8}{'speedup':>9}{'host MiB':>10}{'dev MiB':>9}{'max|diff|':>11}{'PSNR dB':>9}"
    )
    for name, r in rows.items():
        base = rows[name.split("/")[0] + "/baseline fp32"]
        dev = "-" if r["peak_device_mib"] is None else f"{r['peak_device_mib']:.0f}"
        diff = r.get("max_abs_diff_vs_baseline")
        p = r.get("min_psnr_vs_baseline_db")
        print(
            f"{name:<26}{r['fps']:>8.3f}{r['fps'] / base['fps']:>8.2f}x{r['peak_host_mib']:>10.0f}{dev:>9}"
            f"{'-' if diff is None else f'{diff:.2e}':>11}{'-' if p is None else f'{p:.1f}':>9}"
        )
    src_all.close()
    return {"frames": t, "size": [hh, ww], "rows": rows}


def _work(n: int, chunk: int, overlap: int) -> int:
    """Frames the network processes to output ``n`` frames in chunks with overlap."""
    return sum(min(n, s + chunk + overlap) - max(0, s - overlap) for s in range(0, n, chunk))


def _chunk_joins(n: int, chunk: int) -> list[int]:
    return list(range(chunk, n, chunk))


def study(args, weights: Path) -> dict:
    """Overlap and tile study on a crop of all sample frames."""
    src_all = open_frames(args.samples)
    h, w = (int(v) for v in args.study_size.split("x")[::-1])
    src = Cropped(src_all, args.study_frames, h, w)
    frames = src[0 : src.shape[0]].astype(np.float32) / 255
    n = frames.shape[0]
    enh = make_enhancer("realbasicvsr", weights=weights, device=args.device, precision="fp32")
    print(f"\n== overlap study: {n} frames {w}x{h}, chunk L={args.study_chunk}, {enh.device} ==")
    t0 = time.perf_counter()
    whole = np.stack([f for _, f in enhance(frames, enh, chunk=n, overlap=0, tile=0)])
    whole_s = time.perf_counter() - t0
    joins = _chunk_joins(n, args.study_chunk)
    near = sorted({j + d for j in joins for d in (-2, -1, 0, 1) if 0 <= j + d < n})
    far = [i for i in range(n) if i not in near]
    overlaps = {}
    print(
        f"{'O':>3}{'mean':>8}{'min':>8}{'joins':>8}{'far':>8}{'work':>7}   per-frame PSNR (dB) at joins -1/0"
    )
    for o in args.overlaps:
        t0 = time.perf_counter()
        out = np.stack(
            [f for _, f in enhance(frames, enh, chunk=args.study_chunk, overlap=o, tile=0)]
        )
        seconds = time.perf_counter() - t0
        per = [psnr(out[i], whole[i]) for i in range(n)]
        fin = [p for p in per if np.isfinite(p)]
        cap = lambda v: min(v, 99.0)  # noqa: E731 - identical frames give inf
        at = [cap(per[i]) for i in near]
        row = {
            "per_frame_psnr_db": [cap(p) for p in per],
            "mean_db": cap(float(np.mean(fin))) if fin else 99.0,
            "min_db": cap(min(per)),
            "near_joins_mean_db": float(np.mean(at)) if at else None,
            "far_mean_db": float(np.mean([cap(per[i]) for i in far])) if far else None,
            "seconds": seconds,
            "frames_processed_per_output": _work(n, args.study_chunk, o) / n,
        }
        overlaps[o] = row
        at_j = " ".join(f"{cap(per[j - 1]):.1f}/{cap(per[j]):.1f}" for j in joins)
        print(
            f"{o:>3}{row['mean_db']:>8.1f}{row['min_db']:>8.1f}{row['near_joins_mean_db']:>8.1f}"
            f"{row['far_mean_db'] or float('nan'):>8.1f}{row['frames_processed_per_output']:>6.2f}x   {at_j}"
        )
    tiles = {}
    print(f"\n== tiles vs untiled: {n if args.quick else min(n, 8)} frames {w}x{h} ==")
    tf = frames[: n if args.quick else min(n, 8)]
    ref = np.stack([f for _, f in enhance(tf, enh, chunk=len(tf), overlap=0, tile=0)])
    for tile, tov in args.tiles:
        out = np.stack(
            [f for _, f in enhance(tf, enh, chunk=len(tf), overlap=0, tile=tile, tile_overlap=tov)]
        )
        p = psnr(out, ref)
        tiles[f"{tile}/{tov}"] = {
            "tile": tile,
            "tile_overlap": tov,
            "psnr_db": p,
            "max_abs_diff": float(np.abs(out - ref).max()),
        }
        print(
            f"tile {tile:>4} px, overlap {tov:>3} px: PSNR {p:6.1f} dB, max|diff| {tiles[f'{tile}/{tov}']['max_abs_diff']:.3f}"
        )
    src_all.close()
    return {
        "frames": n,
        "size": [h, w],
        "chunk": args.study_chunk,
        "joins": joins,
        "whole_seconds": whole_s,
        "overlaps": overlaps,
        "tiles": tiles,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=6, help="frames for the main run (default 6)")
    ap.add_argument(
        "--size", default=None, help="crop WxH for the main run (default: full 640x360)"
    )
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument(
        "--repeats", type=int, default=1, help="interleaved rounds of the main run (best kept)"
    )
    ap.add_argument("--weights", type=Path, default=GOLDEN_CKPT)
    ap.add_argument("--samples", type=Path, default=SAMPLES)
    ap.add_argument(
        "--study", action="store_true", help="run the overlap/tile study (instead of the main run)"
    )
    ap.add_argument("--study-size", default="160x90", help="crop WxH for the study")
    ap.add_argument("--study-frames", type=int, default=31)
    ap.add_argument("--study-chunk", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, both parts")
    args = ap.parse_args()
    args.overlaps = [0, 2, 4, 8, 16]
    args.tiles = [(64, 8), (64, 16), (48, 16)]
    if args.quick:
        args.frames, args.size = 3, "96x64"
        args.study_size, args.study_frames, args.study_chunk = "48x32", 6, 3
        args.overlaps, args.tiles = [0, 2], [(24, 8)]
    info = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "weights": str(args.weights.name),
        "quick": args.quick,
    }
    print(json.dumps(info))
    result = {"info": info}
    if args.study or args.quick:
        result["study"] = study(args, args.weights)
    if not args.study or args.quick:
        result["main"] = main_run(args, args.weights)
    out = HERE / "results" / ("engine_study.json" if args.study else "engine.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
