"""Benchmark the RealBasicVSR forward pass: seconds per frame and peak memory.

Configurations: CPU float32 (baseline: contiguous weights), CPU float32 channels_last, CPU
float32 channels_last + fused oneDNN convolutions (the engine's CPU path; timed interleaved with
the other CPU rows), CPU bfloat16 channels_last (``--precision bf16``), and on CUDA (when
present) float32 / float16 / bfloat16, each contiguous and channels_last.  Every configuration
processes the same clip of sample frames (640x360 by default) as one chunk
(N=1, T=frames) and is compared with the baseline output (PSNR).

    python benchmarks/bench_model.py                 # 4 frames 640x360, 1 timed run (~7 min)
    python benchmarks/bench_model.py --quick         # 2 frames 96x64, smoke test
    python benchmarks/bench_model.py --frames 4 --size 320x180 --repeats 1

Prints a table and writes ``benchmarks/results/model.json``.
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
import torch
from benchlib import PeakRSS

from napari_vsr.models import RealBasicVSRNet, load_realbasicvsr
from napari_vsr.models.fused import fuse_convolutions

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("NAPARI_VSR_SHARED", REPO.parent / "shared"))
GOLDEN_CKPT = SHARED / "golden" / "realbasicvsr" / "realbasicvsr_random_mmedit_layout.pth"


def load_clip(frames: int, size: tuple[int, int] | None) -> torch.Tensor:
    """(1, T, 3, H, W) float32 in [0, 1] from the sample frames (resized when ``size``)."""
    folder = SHARED / "samples" / "demo_000"
    files = sorted(folder.glob("*.png"))[:frames]
    if len(files) < frames:
        sys.exit(f"need {frames} sample frames in {folder}, found {len(files)}")
    imgs = []
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if size is not None:
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        imgs.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    arr = np.stack(imgs).astype(np.float32) / 255.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).unsqueeze(0).contiguous()


def build_net() -> tuple[RealBasicVSRNet, str]:
    if GOLDEN_CKPT.is_file():
        return load_realbasicvsr(GOLDEN_CKPT), "golden random weights (official layout)"
    torch.manual_seed(0)
    return RealBasicVSRNet().eval().requires_grad_(False), "seeded random init"


def prepare(
    base: RealBasicVSRNet,
    clip: torch.Tensor,
    *,
    device: str,
    dtype: torch.dtype,
    channels_last: bool,
    fused: bool = False,
):
    """A copy of ``base`` set up as configured, and a function running it once on ``clip``."""
    net = RealBasicVSRNet()
    net.load_state_dict(base.state_dict())
    net.eval().requires_grad_(False).to(device=device, dtype=dtype)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if fused and not fuse_convolutions(net):
        return None
    x = clip.to(device=device, dtype=dtype)
    if channels_last:  # what the engine passes: a (1, T, 3, H, W) view of (T, H, W, 3) frames
        x = x[0].permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)[None]
    cuda = device.startswith("cuda")

    def once() -> torch.Tensor:
        with torch.inference_mode():
            out = net(x)
        if cuda:
            torch.cuda.synchronize()
        return out

    return once


def _row(device, dtype, channels_last, fused, times, peak_mb, t, cuda) -> dict:
    return {
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "channels_last": channels_last,
        "fused": fused,
        "s_per_frame": min(times) / t,
        "s_per_frame_mean": sum(times) / len(times) / t,
        "peak_mem_mb": peak_mb,
        "peak_mem_kind": "cuda max_memory_allocated" if cuda else "process RSS increase",
    }


def run_cpu_interleaved(base, clip, configs, repeats: int) -> list[tuple[dict, torch.Tensor]]:
    """Time the CPU configurations in interleaved rounds (best of ``repeats`` each), so that a
    change in machine load hits every configuration alike."""
    runs = [
        prepare(base, clip, device="cpu", dtype=d, channels_last=cl, fused=f)
        for d, cl, f in configs
    ]
    kept = [(c, r) for c, r in zip(configs, runs, strict=True) if r is not None]
    outs = [once() for _, once in kept]  # warm-up (allocator, oneDNN primitives)
    times = [[] for _ in kept]
    peaks = [0.0 for _ in kept]
    for _ in range(repeats):
        for k, (_, once) in enumerate(kept):
            outs[k] = None  # the previous output is not counted in this run's peak
            with PeakRSS() as rss:
                t0 = time.perf_counter()
                outs[k] = once()
                times[k].append(time.perf_counter() - t0)
            peaks[k] = max(peaks[k], (rss.peak - rss.start) / 2**20)
    t = clip.shape[1]
    return [
        (_row("cpu", d, cl, f, times[k], peaks[k], t, False), outs[k].float())
        for k, ((d, cl, f), _) in enumerate(kept)
    ]


def run_config(
    base: RealBasicVSRNet,
    clip: torch.Tensor,
    *,
    device: str,
    dtype: torch.dtype,
    channels_last: bool,
    repeats: int,
) -> tuple[dict, torch.Tensor]:
    once = prepare(base, clip, device=device, dtype=dtype, channels_last=channels_last)
    cuda = device.startswith("cuda")
    once()  # warm-up (allocator, kernels, oneDNN primitives)
    times = []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    with PeakRSS() as rss:
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = once()
            times.append(time.perf_counter() - t0)
    if cuda:
        peak_mb = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        peak_mb = (rss.peak - rss.start) / 2**20
    row = _row(device, dtype, channels_last, False, times, peak_mb, clip.shape[1], cuda)
    return row, out.float().cpu()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """PSNR in dB of ``a`` against ``b`` (both clipped to [0, 1]); None when identical."""
    mse = torch.mean((a.clamp(0, 1).double() - b.clamp(0, 1).double()) ** 2).item()
    return None if mse == 0 else float(10 * np.log10(1 / mse))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4, help="frames per chunk (default 4)")
    parser.add_argument("--size", default=None, help="resize frames to WxH (default 640x360)")
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds per config (min kept)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 frames 96x64, 1 run")
    parser.add_argument("--no-cuda", action="store_true", help="skip CUDA configs")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "model.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.size, args.repeats = 2, "96x64", 1
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None

    clip = load_clip(args.frames, size)
    base, weights = build_net()
    _, t, _, h, w = clip.shape

    cpu_configs = [
        (torch.float32, False, False),  # baseline: the reference layout
        (torch.float32, True, False),
        (torch.float32, True, True),  # what the engine runs on the CPU
        # --precision bf16 on the CPU: fast where the CPU has native bfloat16 (AMX, AVX512-BF16)
        (torch.bfloat16, True, False),
    ]
    configs = []
    if torch.cuda.is_available() and not args.no_cuda:
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            for cl in (False, True):
                configs.append(("cuda", dtype, cl))
    else:
        print("CUDA not available: GPU configurations skipped", file=sys.stderr)

    rows, baseline = [], None
    for row, out in run_cpu_interleaved(base, clip, cpu_configs, args.repeats):
        if baseline is None:
            baseline = out
        row["psnr_vs_baseline_db"] = psnr(out, baseline)
        row["max_abs_diff_vs_baseline"] = (out - baseline).abs().max().item()
        rows.append(row)
    for device, dtype, cl in configs:
        row, out = run_config(
            base, clip, device=device, dtype=dtype, channels_last=cl, repeats=args.repeats
        )
        torch.cuda.empty_cache()
        row["psnr_vs_baseline_db"] = psnr(out, baseline)
        row["max_abs_diff_vs_baseline"] = (out - baseline).abs().max().item()
        rows.append(row)
    base_s = rows[0]["s_per_frame"]
    for row in rows:
        row["speedup_vs_baseline"] = base_s / row["s_per_frame"]

    print(f"RealBasicVSR x4 forward, {t} frames of {w}x{h} (N=1), weights: {weights}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {platform.processor() or platform.machine()}"
    )
    head = f"{'device':6} {'dtype':8} {'layout':20} {'s/frame':>8} {'speedup':>8} {'peak MB':>9} {'PSNR dB':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        layout = ("channels_last" if r["channels_last"] else "contiguous") + (
            "+fused" if r["fused"] else ""
        )
        db = r["psnr_vs_baseline_db"]
        print(
            f"{r['device']:6} {r['dtype']:8} {layout:20} {r['s_per_frame']:8.3f} "
            f"{r['speedup_vs_baseline']:7.2f}x {r['peak_mem_mb']:9.0f} "
            + ("   exact" if db is None else f"{db:8.1f}")
        )
    print("baseline: cpu float32 contiguous (first row)")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "model",
        "frames": t,
        "height": h,
        "width": w,
        "repeats": args.repeats,
        "weights": weights,
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "baseline": "cpu float32 contiguous",
        "rows": rows,
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
