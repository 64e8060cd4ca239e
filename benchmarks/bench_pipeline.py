"""Benchmark the whole pipeline end to end with the real CLI (issue 11: decode, enhance and
encode at the speed of the slowest stage; on a GPU, at the speed of the network).

The clip: the demo_000 sample frames (640x360), ping-pong looped for ``--seconds`` at ``--fps``
(default 60 s at 25 fps with CUDA, 4 s without), encoded with PyAV libx264 (CRF 20, yuv420p)
into an .mp4.  End-to-end rows run ``python -m napari_vsr enhance CLIP -o OUT.mp4`` in a
subprocess (this tree's ``src`` first on PYTHONPATH) and time its wall clock: process start,
imports, model load, decode, enhance, encode, mux.  A second run of the same command with
``--frames 0:K`` gives the fixed cost, so ``steady fps = (N - K) / (wall_N - wall_K)`` is the
rate once running (``--no-fixed-cost`` skips it).  The output's frame count is checked (its
container header, read with PyAV).  Nothing the CLI prints is parsed.

(a) CPU rows (classic ``--method classic --preset seed``, 640x360 -> 2560x1440 .mp4):

* ``e2e default``     the default pipeline (overlapped stages; finished segments saved in the
                      job folder, so an interrupted run resumes)
* ``e2e --no-job``    overlapped, frames straight to the output (no segment files)
* ``e2e --serial``    decode, enhance, encode one after another in one thread (the baseline),
                      with the job folder and with ``--no-job``
* ``decode alone``    every frame read through the reader (``open_source``), in chunks
* ``enhance alone``   the classic enhancer through ``engine.enhance`` over the decoded frames
                      held in memory
* ``encode alone``    the writer (same settings as the CLI's: default codec, the source's
                      colour tags) fed precomputed x4 frames: the first 60 outputs of
                      ``enhance alone``, cycled to the clip's length

and the ratio of the end-to-end rate to the slowest stage's (target >= 0.85).

(b) GPU rows (when CUDA is available, or ``--rows gpu``): RealBasicVSR x4 (the golden
checkpoint: random weights, the released compute), precision ``auto`` (fp16 on CUDA):

* ``network only``    the network in fp16 channels_last on N clips of T = chunk + 2 * overlap
                      frames already on the device (``bench_network.py``'s measurement; N:
                      ``--batch``, else the batch ``enhance alone`` resolved); also given per
                      kept frame (x chunk / (chunk + 2 overlap)): the engine computes the
                      overlap frames of every chunk too
* ``decode alone`` (software, and NVDEC via ``open_source(..., hwaccel="cuda")`` once it
  exists), ``enhance alone`` (engine, frames in memory, ``--batch`` passed on; the batch it
  used is recorded), ``encode alone`` (x264 and ``h264_nvenc``)
* ``official baseline`` what the official ``inference_realbasicvsr.py`` does, on our
                      ``RealBasicVSRNet``: every frame decoded with OpenCV into one float32
                      tensor, the whole sequence in one forward pass (or ``max_seq_len``
                      windows when the whole sequence cannot fit on the device: the row says
                      so), fp32, contiguous, N=1, every output kept in host memory, then
                      written with OpenCV's ``mp4v`` writer (PyAV's ``mpeg4`` if OpenCV cannot
                      open it); run in its own process, so its wall time includes the same
                      start-up costs as the CLI rows.  torch's defaults as the script has
                      them: cuDNN may run its fp32 convolutions in TF32 (recorded; our
                      enhancer switches TF32 off for fp32), which makes the baseline faster,
                      not slower.  Deviation: with windows, the outputs are kept as a list
                      instead of concatenated (``torch.cat`` would need twice the host
                      memory; this makes the baseline a little faster)
* ``e2e NVENC --no-job`` (``--codec h264_nvenc --no-job``: the headline row), ``e2e NVENC``
  (job folder), ``e2e NVDEC + NVENC --no-job`` (``--hwaccel cuda``), ``e2e x264 --no-job``,
  ``e2e NVENC --serial --no-job``: the CLI (``--batch``, ``--encode-preset`` and
  ``--extra-cli`` are passed on to every row)

with each end-to-end row's ratio to the network-only rate and its speed-up over the baseline
(wall time against wall time).  Targets: network >= 100 fps fp16 at 640x360, end-to-end NVENC
>= 90 % of the network's rate, >= 5x the baseline.

Flags the CLI may not have yet (``--serial``, ``--batch``, ``--no-job``, ``--hwaccel``,
``--encode-preset``) are looked up in its parser; rows that need a missing one are recorded
as "not available".
``--budget-s`` skips rows that would not fit (in priority order); the JSON is rewritten after
every row.

    python benchmarks/bench_pipeline.py --seconds 4              # CPU rows (+ GPU rows with CUDA)
    python benchmarks/bench_pipeline.py --rows gpu --seconds 20 --budget-s 240
    python benchmarks/bench_pipeline.py --rows gpu --device cpu --clip-size 96x64 --seconds 0.4
                                                                 # smoke of the GPU rows' code

Prints tables and writes ``benchmarks/results/pipeline.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import benchlib
import numpy as np
from benchlib import GOLDEN_CKPT, REPO, fmt, parse_size

KEEP_OUTPUTS = 60  # x4 frames kept from "enhance alone" for "encode alone" (cycled)
NEW_FLAGS = ("--serial", "--batch", "--no-job", "--hwaccel", "--encode-preset")


# --- the clip -----------------------------------------------------------------------------------
def make_clip(
    samples: Path, path: Path, n: int, fps: Fraction, size: tuple[int, int] | None, crf: int = 20
) -> dict:
    """Encode ``n`` ping-pong looped sample frames to ``path`` (H.264, yuv420p)."""
    import av

    frames = benchlib.load_frames(samples, size=size)
    order = benchlib.ping_pong(n, frames.shape[0])
    t0 = time.perf_counter()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for i in order:
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return {
        "path": str(path),
        "frames": n,
        "fps": str(fps),
        "size": [int(frames.shape[2]), int(frames.shape[1])],
        "crf": crf,
        "bytes": path.stat().st_size,
        "unique_frames": int(frames.shape[0]),
        "encode_s": time.perf_counter() - t0,
    }


def video_frames(path: Path) -> int | None:
    """Frames a video's container declares (PyAV), or by demuxing when it declares none."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            return sum(1 for p in container.demux(stream) if p.size)
    except (av.error.FFmpegError, IndexError, OSError):
        return None


def written_by_x264(path: Path) -> bool:
    """Whether libx264 encoded the file (its SEI names itself: "x264 - core ..."), so that a
    row asking for NVENC can tell a software fallback from the real thing."""
    try:
        with open(path, "rb") as fh:
            return b"x264 - core" in fh.read(4 << 20)
    except OSError:
        return False


# --- the CLI ------------------------------------------------------------------------------------
def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def cli_flags() -> set[str]:
    """The option strings ``napari-vsr enhance`` accepts (read from its argparse parser)."""
    import argparse as _argparse

    from napari_vsr.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, _argparse._SubParsersAction):
            sub = action.choices.get("enhance")
            if sub is not None:
                return set(sub._option_string_actions)
    return set()


class ChildPeak:
    """Peak RSS of a child process (and its children), sampled every 50 ms."""

    def __init__(self, pid: int):
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                rss = self.proc.memory_info().rss + sum(
                    c.memory_info().rss for c in self.proc.children(recursive=True)
                )
                self.peak = max(self.peak, rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
            self._stop.wait(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def run_timed(cmd: list[str], timeout: float, log: Path | None = None) -> dict:
    """Run ``cmd``; wall seconds, exit code, peak RSS and the last stderr line."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=REPO
    )
    peak = ChildPeak(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        rc = "timeout"
    wall = time.perf_counter() - t0
    peak_mib = peak.stop()
    if log is not None:
        with open(log, "a") as fh:
            fh.write(f"$ {' '.join(cmd)}\n# rc={rc} wall={wall:.2f}s\n{out}{err}\n")
    lines = [ln for ln in (err or "").splitlines() if ln.strip()]
    return {
        "rc": rc,
        "wall_s": wall,
        "peak_rss_mib": peak_mib,
        "stderr_tail": lines[-3:] if lines else [],
        # the CLI's own warning lines (e.g. NVENC/NVDEC not usable: software used), as printed
        "warnings": [ln for ln in lines if "warning" in ln.lower()][:5],
    }


def enhance_cmd(clip: Path, out: Path, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "napari_vsr",
        "enhance",
        str(clip),
        "-o",
        str(out),
        "--overwrite",
        "-q",
        *extra,
    ]


def run_cli(row: dict, clip: Path, n: int, extra: list[str], args) -> dict:
    """One end-to-end row: the full run, then (unless --no-fixed-cost) the first K frames."""
    out = args.workdir / f"{row['key']}.mp4"
    full = run_timed(enhance_cmd(clip, out, extra), args.row_timeout, args.log)
    row.update(command=" ".join(["napari-vsr enhance CLIP -o OUT.mp4", *extra]), **full)
    if full["rc"] != 0:
        row["status"] = f"failed (rc {full['rc']}): " + " | ".join(full["stderr_tail"])[-300:]
        out.unlink(missing_ok=True)
        return row
    if full["warnings"]:
        row["note"] = " | ".join(full["warnings"])[:300]
    row["frames_out"] = video_frames(out)
    row["bytes_out"] = out.stat().st_size
    row["x264_stream"] = written_by_x264(out)
    out.unlink(missing_ok=True)
    row["fps"] = n / full["wall_s"]
    row["status"] = (
        "ok"
        if row["frames_out"] == n
        else (f"ok, but {row['frames_out']} frames written, {n} expected")
    )
    said = " ".join(full["warnings"]).lower()
    fallbacks = []
    if "h264_nvenc" in extra and row["x264_stream"]:
        fallbacks.append("encoded by libx264, not NVENC")
    if "--hwaccel" in extra and "decoding in software" in said:
        fallbacks.append("decoded in software")
    if fallbacks:
        row["status"] = f"fallback: {'; '.join(fallbacks)} (see the note)"
    k = min(args.fixed_frames, n // 4)
    if args.fixed_cost and k >= 1:
        part = run_timed(
            enhance_cmd(clip, out, [*extra, "--frames", f"0:{k}"]), args.row_timeout, args.log
        )
        out.unlink(missing_ok=True)
        if part["rc"] == 0 and full["wall_s"] > part["wall_s"]:
            row.update(
                fixed_frames=k,
                fixed_wall_s=part["wall_s"],
                steady_fps=(n - k) / (full["wall_s"] - part["wall_s"]),
            )
        else:
            row["fixed_cost_error"] = part["stderr_tail"] or "no steady rate (noise)"
    return row


# --- stages alone (in this process) -------------------------------------------------------------
def stage_decode(clip: Path, *, hwaccel: str | None = None, chunk: int = 16):
    """Every frame through the reader, ``chunk`` frames a slice; (frames, row fields)."""
    from napari_vsr.jobs.source import open_source

    kwargs = {} if hwaccel is None else {"hwaccel": hwaccel}
    if kwargs and not _accepts(open_source, "hwaccel"):
        return None, {"status": "not available yet (open_source has no hwaccel=)"}
    t0 = time.perf_counter()
    try:
        src = open_source(clip, **kwargs)
    except TypeError as exc:  # open_source passes it on to a reader that lacks it
        if "hwaccel" not in str(exc):
            raise
        return None, {"status": "not available yet (the video reader has no hwaccel=)"}
    try:
        n = src.shape[0]
        blocks = [np.asarray(src[lo : min(lo + chunk, n)]) for lo in range(0, n, chunk)]
        notes = [str(x) for x in getattr(src, "notes", None) or []]
        used = getattr(src, "hwaccel", None)  # "cuda" while NVDEC decodes, else None
    finally:
        src.close()
    seconds = time.perf_counter() - t0
    frames = np.concatenate(blocks)
    status = "ok"
    if hwaccel is not None and used is None:
        status = "fallback: decoded in software"
    return frames, {
        "status": status,
        "seconds": seconds,
        "fps": n / seconds,
        "hwaccel_used": used,
        "note": "; ".join([f"open + {n} frames in slices of {chunk}", *notes]),
    }


def _accepts(func, name: str) -> bool:
    """Whether ``func`` takes a parameter ``name`` (a flag merged or not yet)."""
    return name in inspect.signature(func).parameters


def stage_enhance(frames: np.ndarray, method, batch: int | None):
    """``engine.enhance`` over frames in memory; (first KEEP_OUTPUTS outputs, row fields,
    the enhancer's capabilities)."""
    from napari_vsr.engine import enhance

    t0 = time.perf_counter()
    enh = method.build(frame_size=tuple(frames.shape[1:3]))
    built = time.perf_counter() - t0
    note = ""
    try:
        kwargs = {}
        if batch is not None:
            if _accepts(enhance, "batch"):
                kwargs["batch"] = batch
            else:
                note = "enhance(batch=) not available yet: run without; "
        caps = enh.capabilities
        used = batch
        if used is None:  # what enhance(batch=None) picks (1 before batching existed)
            try:
                from napari_vsr.engine import resolve_batch
            except ImportError:
                used = 1
            else:
                used = resolve_batch(
                    enh, frames.shape, caps.default_chunk, caps.default_overlap, 0, rgb=True
                )
        used = max(1, min(int(used), getattr(caps, "max_batch", 1)))
        gen = enhance(frames, enh, **kwargs)
        kept = []
        t0 = time.perf_counter()
        for i, out in gen:
            if i < KEEP_OUTPUTS:
                kept.append(np.array(out, copy=True))
        seconds = time.perf_counter() - t0
        desc = enh.describe()
    finally:
        enh.close()
    n = frames.shape[0]
    return (
        kept,
        {
            "status": "ok",
            "seconds": seconds,
            "fps": n / seconds,
            "build_s": built,
            "batch": used,
            "max_batch": getattr(caps, "max_batch", 1),
            "enhancer": desc,
            "note": note + "enhancer built before the clock starts",
        },
        caps,
    )


def stage_encode(
    kept: list[np.ndarray],
    n: int,
    clip_meta: dict,
    out: Path,
    *,
    codec: str | None,
    preset: str | None,
):
    """The writer fed ``n`` frames cycling through ``kept`` (the CLI's writer settings)."""
    from napari_vsr.io import VideoOptions, fps_of_metadata, open_writer
    from napari_vsr.io.color import source_color_tags

    opts = {"codec": codec, **source_color_tags(clip_meta)}
    note = ""
    if preset is not None:
        if "preset" in VideoOptions.__dataclass_fields__:
            opts["preset"] = preset
        else:
            note = "VideoOptions.preset not available yet: default preset; "
    fps = fps_of_metadata(clip_meta) or 25
    t0 = time.perf_counter()
    try:
        with open_writer(out, fps=fps, overwrite=True, video=VideoOptions(**opts)) as writer:
            for i in range(n):
                writer.write(kept[i % len(kept)])
            encoder = getattr(writer, "encoder", None)
            notes = [str(x) for x in getattr(writer, "notes", None) or []]
    except Exception as exc:  # noqa: BLE001 - an encoder that does not open is a result
        out.unlink(missing_ok=True)
        return {"status": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    seconds = time.perf_counter() - t0
    frames_out = video_frames(out)
    size = out.stat().st_size
    x264 = written_by_x264(out)
    out.unlink(missing_ok=True)
    status = "ok" if frames_out == n else f"ok, but {frames_out} frames written"
    if codec and "nvenc" in codec and (x264 or (encoder and "nvenc" not in encoder)):
        status = f"fallback: encoded by {encoder or 'libx264'}, not {codec}"
    return {
        "status": status,
        "seconds": seconds,
        "fps": n / seconds,
        "bytes_out": size,
        "encoder": encoder,
        "note": "; ".join(
            [note + f"{len(kept)} distinct x4 frames cycled; includes flush and mux", *notes]
        ),
    }


def stage_network(args, size: tuple[int, int], chunk: int, overlap: int, batch: int) -> dict:
    """The network alone (bench_network's measurement) on ``batch`` clips of T = chunk + 2 *
    overlap frames (``batch``: what the engine used in "enhance alone")."""
    import bench_network

    prec = "fp16" if args.device.startswith("cuda") else "fp32"
    t = chunk + 2 * overlap
    wxh = f"{size[0]}x{size[1]}"
    nargs = bench_network.parse_args(
        [
            "--device",
            args.device,
            "--sizes",
            wxh,
            "--precisions",
            prec,
            "--channels-last",
            "on",
            "--compile",
            "off",
            "--batches",
            str(batch),
            "--frames",
            str(t),
            "--weights",
            str(args.weights),
            "--samples",
            str(args.samples),
        ]
    )
    frames = {wxh: benchlib.load_frames(args.samples, size=size)}
    models = bench_network.Models(nargs)
    row = {
        "size": wxh,
        "precision": prec,
        "channels_last": True,
        "compile": False,
        "batch": batch,
    }
    try:
        bench_network.run_row(row, models, frames, nargs)
    finally:
        models.drop()
    kept = chunk / t
    return {
        "status": "ok",
        "seconds": row["s_per_call"],
        "fps": row["fps"],
        "fps_per_kept_frame": row["fps"] * kept,
        "frames_per_call": t,
        "precision": prec,
        "peak_mib": row["peak_mib"],
        "tflops": row["tflops"],
        "note": f"N={row['batch']} T={t} ({chunk} kept + 2x{overlap} overlap); "
        f"per kept frame x{kept:.3f}",
    }


# --- the official script's way (a process of its own) ------------------------------------------
def baseline_worker(args) -> int:
    """``--baseline-worker``: inference_realbasicvsr.py's steps on our network; writes JSON."""
    import cv2
    import torch

    from napari_vsr.models import load_realbasicvsr
    from napari_vsr.models.device import is_out_of_memory

    times: dict[str, float] = {}
    t0 = time.perf_counter()
    device = torch.device(args.device)
    model = load_realbasicvsr(args.weights, device=device, dtype=torch.float32).eval()
    times["load_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # mmcv.VideoReader: OpenCV; BGR -> RGB, /255. (float64), float32
    cap = cv2.VideoCapture(str(args.clip))
    inputs = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        img = np.flip(frame, axis=2)
        inputs.append(torch.from_numpy(img / 255.0).permute(2, 0, 1).float())
    cap.release()
    inputs = torch.stack(inputs, dim=0).unsqueeze(0)  # (1, T, 3, H, W) on the host
    times["read_s"] = time.perf_counter() - t0
    _, t, _, h, w = inputs.shape

    max_seq_len = args.max_seq_len
    whole_reason = "whole sequence"
    if device.type == "cuda" and max_seq_len is None:
        free, _ = torch.cuda.mem_get_info(device)
        per_frame = h * w * 490 * 1.15  # feats 256 B + output 192 B + flows/inputs per LR px
        if t * per_frame > 0.85 * free:
            max_seq_len = max(1, int(0.85 * free // per_frame))
            whole_reason = (
                f"windows of {max_seq_len}: the whole sequence needs ~"
                f"{t * per_frame / 2**30:.0f} GiB, {free / 2**30:.0f} GiB free"
            )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    oom_retries = 0
    t0 = time.perf_counter()
    while True:
        try:
            with torch.no_grad():
                if max_seq_len is None:
                    outputs = [model(inputs.to(device)).cpu()]
                else:
                    outputs = [
                        model(inputs[:, i : i + max_seq_len].to(device)).cpu()
                        for i in range(0, t, max_seq_len)
                    ]
            break
        except Exception as exc:
            if not is_out_of_memory(exc) or (max_seq_len or t) <= 1:
                raise
            outputs = None
            oom_retries += 1
            max_seq_len = max(1, (max_seq_len or t) // 2)
            whole_reason = f"windows of {max_seq_len} (out of device memory with longer)"
            torch.cuda.empty_cache()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times["model_s"] = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None

    t0 = time.perf_counter()  # tensor2img + cv2.VideoWriter('mp4v'), frame by frame
    oh, ow = outputs[0].shape[-2:]
    writer = cv2.VideoWriter(
        str(args.out), cv2.VideoWriter_fourcc(*"mp4v"), float(args.fps), (ow, oh)
    )
    used = "cv2 mp4v"
    av_out = None
    if not writer.isOpened():
        import av

        used = "PyAV mpeg4 (OpenCV could not open mp4v)"
        av_out = av.open(str(args.out), "w")
        stream = av_out.add_stream("mpeg4", rate=Fraction(args.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = ow, oh, "yuv420p"
    written = 0
    for block in outputs:
        for i in range(block.shape[1]):
            img = block[:, i].squeeze(0).float().clamp_(0, 1).numpy()
            img = (np.transpose(img[[2, 1, 0], :, :], (1, 2, 0)) * 255.0).round()
            img = img.astype(np.uint8)
            if av_out is None:
                writer.write(img)
            else:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
                av_out.mux(stream.encode(frame))
            written += 1
    if av_out is None:
        writer.release()
    else:
        av_out.mux(stream.encode(None))
        av_out.close()
    times["write_s"] = time.perf_counter() - t0
    doc = {
        "frames": t,
        "written": written,
        "whole_sequence": max_seq_len is None,
        "max_seq_len": max_seq_len,
        "how": whole_reason,
        "oom_retries": oom_retries,
        "writer": used,
        "peak_device_mib": peak,
        # torch's defaults, as the official script runs: cuDNN may use TF32 for fp32 convolutions
        "tf32_cudnn": getattr(torch.backends.cudnn, "allow_tf32", None),
        "device": str(device),
        **times,
    }
    Path(args.json).write_text(json.dumps(doc))
    return 0


def run_baseline(row: dict, clip: Path, n: int, args) -> dict:
    out = args.workdir / "baseline.mp4"
    info = args.workdir / "baseline.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--baseline-worker",
        "--clip",
        str(clip),
        "--out",
        str(out),
        "--json",
        str(info),
        "--weights",
        str(args.weights),
        "--device",
        args.device,
        "--fps",
        str(float(args.fps)),
    ]
    res = run_timed(cmd, args.row_timeout, args.log)
    row.update(**res)
    if res["rc"] != 0 or not info.is_file():
        row["status"] = f"failed (rc {res['rc']}): " + " | ".join(res["stderr_tail"])[-300:]
        return row
    row["worker"] = json.loads(info.read_text())
    row["frames_out"] = video_frames(out)
    out.unlink(missing_ok=True)
    row["fps"] = n / res["wall_s"]
    row["status"] = "ok"
    row["note"] = row["worker"]["how"] + f"; written with {row['worker']['writer']}"
    return row


# --- the rows -----------------------------------------------------------------------------------
def _cli(key: str, label: str, extra: list[str]) -> dict:
    """An end-to-end row: the CLI with ``extra``; it needs every new flag among them."""
    return {
        "key": key,
        "label": label,
        "kind": "cli",
        "extra": extra,
        "needs": [f for f in extra if f in NEW_FLAGS],
    }


def cpu_rows() -> list[dict]:
    """(a), in the order they are run."""
    return [
        {"key": "a_decode", "label": "decode alone (reader)", "kind": "decode"},
        {
            "key": "a_enhance",
            "label": "classic enhance alone (engine, in memory)",
            "kind": "enhance",
        },
        {
            "key": "a_encode",
            "label": "encode alone (x264, the CLI's writer settings)",
            "kind": "encode",
            "codec": None,
        },
        _cli("a_e2e", "e2e classic, default (overlapped, job folder)", []),
        _cli("a_e2e_nojob", "e2e classic, --no-job (overlapped, no segment files)", ["--no-job"]),
        _cli("a_e2e_serial", "e2e classic, --serial (one thread, job folder)", ["--serial"]),
        _cli(
            "a_e2e_serial_nojob",
            "e2e classic, --serial --no-job (one thread, no segment files)",
            ["--serial", "--no-job"],
        ),
    ]


def gpu_rows() -> list[dict]:
    """(b), in priority order (decode first: the later in-memory stages need its frames)."""
    nvenc = ["--codec", "h264_nvenc"]
    return [
        {"key": "b_decode", "label": "decode alone (software)", "kind": "decode"},
        {
            "key": "b_enhance",
            "label": "RealBasicVSR enhance alone (engine, in memory)",
            "kind": "enhance",
        },
        {
            "key": "b_network",
            "label": "network only (channels_last, T = chunk + 2 overlap)",
            "kind": "network",
        },
        _cli("b_e2e_nvenc_nojob", "e2e NVENC, --no-job", [*nvenc, "--no-job"]),
        {"key": "b_baseline", "label": "official-script baseline (fp32)", "kind": "baseline"},
        {
            "key": "b_encode_nvenc",
            "label": "encode alone (h264_nvenc)",
            "kind": "encode",
            "codec": "h264_nvenc",
        },
        _cli("b_e2e_x264_nojob", "e2e x264 (software), --no-job", ["--no-job"]),
        _cli("b_e2e_nvenc", "e2e NVENC (job folder)", nvenc),
        _cli(
            "b_e2e_nvdec_nvenc_nojob",
            "e2e NVDEC + NVENC, --no-job",
            ["--hwaccel", "cuda", *nvenc, "--no-job"],
        ),
        {"key": "b_encode_x264", "label": "encode alone (x264)", "kind": "encode", "codec": None},
        {
            "key": "b_decode_nvdec",
            "label": "decode alone (NVDEC)",
            "kind": "decode",
            "hwaccel": "cuda",
        },
        _cli(
            "b_e2e_nvenc_serial_nojob",
            "e2e NVENC, --serial --no-job",
            ["--serial", *nvenc, "--no-job"],
        ),
    ]


def method_options(group: str, args):
    from napari_vsr.jobs.request import MethodOptions

    if group == "a":
        return MethodOptions(method="classic", preset="seed")
    return MethodOptions(method="realbasicvsr", weights=str(args.weights), device=args.device)


def cli_extra(group: str, args, flags: set[str]) -> tuple[list[str], list[str]]:
    """Options every row of a group passes, and notes on those left out."""
    notes = []
    if group == "a":
        extra = ["--method", "classic", "--preset", "seed"]
    else:
        extra = ["--weights", str(args.weights), "--device", args.device]
        if args.batch is not None:
            if "--batch" in flags:
                extra += ["--batch", str(args.batch)]
            else:
                notes.append("--batch not available yet: default batching")
    extra += args.extra_cli
    if args.encode_preset is not None:
        if "--encode-preset" in flags:
            extra += ["--encode-preset", args.encode_preset]
        else:
            notes.append("--encode-preset not available yet: default preset")
    return extra, notes


def keep_best(old: dict | None, new: dict) -> dict:
    """The faster of two runs of a row (by its steady rate when both have one, else by wall
    rate); every run's rates and loads are kept in ``runs``."""
    if old is None:
        return {**new, "runs": [_run_record(new)]}
    if not new.get("status", "").startswith("ok"):
        return {**old, "runs": old["runs"] + [_run_record(new)]}

    def rate(r):
        return r.get("steady_fps") or r.get("fps") or 0.0

    best = new if rate(new) > rate(old) else old
    return {**best, "runs": old["runs"] + [_run_record(new)]}


def _run_record(row: dict) -> dict:
    return {
        k: row.get(k) for k in ("fps", "steady_fps", "wall_s", "seconds", "load_1min", "status")
    }


def _free_device() -> None:
    """Give this process's cached device memory back, so that the CLI subprocesses find the
    GPU as free as a user's run would (their automatic batch depends on it)."""
    import gc

    gc.collect()
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def measure(row: dict, state: dict, args) -> None:
    group = row["key"][0]
    clip, n = state["clip"], state["n"]
    kind = row["kind"]
    if kind == "decode":
        frames, fields = stage_decode(clip, hwaccel=row.get("hwaccel"))
        row.update(fields)
        if frames is not None and "frames" not in state:
            state["frames"] = frames
    elif kind == "enhance":
        if "frames" not in state:  # decode alone did not run: the frames are needed here
            state["frames"] = stage_decode(clip)[0]
        kept, fields, caps = stage_enhance(
            state["frames"], method_options(group, args), args.batch if group == "b" else None
        )
        row.update(fields)
        state[f"kept_{group}"] = kept
        state["chunk"], state["overlap"] = caps.default_chunk, caps.default_overlap
        state["batch"] = fields["batch"]
        desc = fields["enhancer"]
        said = [str(desc[k]) for k in ("method", "precision", "device") if desc.get(k)]
        row["note"] += "; " + " ".join(said)
    elif kind == "encode":
        kept = state.get(f"kept_{group}")
        if not kept:
            row["status"] = "skipped: no enhanced frames (enhance alone did not run)"
            return
        row.update(
            stage_encode(
                kept,
                n,
                state["clip_meta"],
                args.workdir / f"{row['key']}.mp4",
                codec=row.get("codec"),
                preset=args.encode_preset,
            )
        )
    elif kind == "network":
        chunk, overlap = state.get("chunk", 20), state.get("overlap", 4)
        batch = args.batch or state.get("batch", 1)
        row.update(stage_network(args, state["size"], chunk, overlap, batch))
    elif kind == "baseline":
        _free_device()
        run_baseline(row, clip, n, args)
    elif kind == "cli":
        missing = [f for f in row["needs"] if f not in state["flags"]]
        if missing:
            row["status"] = f"not available yet (no {' '.join(missing)} flag)"
            return
        extra, notes = cli_extra(group, args, state["flags"])
        _free_device()
        run_cli(row, clip, n, extra + row["extra"], args)
        if notes:
            row["note"] = "; ".join([*notes, *([row["note"]] if row.get("note") else [])])


def summarise(rows: dict, group: str) -> dict:
    """Ratios: e2e / slowest stage (a, b); e2e / network and speed-up vs baseline (b)."""

    def ok(key):
        r = rows.get(key)
        return r if r and r.get("status", "").startswith("ok") and r.get("fps") else None

    def rate(r):  # the steady rate when the fixed cost was measured, else the wall rate
        return r.get("steady_fps") or r["fps"]

    out: dict = {}
    if group == "a":
        stages = [ok(k) for k in ("a_decode", "a_enhance", "a_encode")]
        if all(stages):
            slow = min(stages, key=lambda r: r["fps"])
            out["slowest_stage"] = {"row": slow["key"], "fps": slow["fps"]}
            for key in [k for k in rows if k.startswith("a_e2e")]:
                r = ok(key)
                if r:
                    out[f"{key}_over_slowest"] = rate(r) / slow["fps"]
                    out[f"{key}_wall_over_slowest"] = r["fps"] / slow["fps"]
        return out
    net, base = ok("b_network"), ok("b_baseline")
    stages = [ok(k) for k in ("b_decode", "b_enhance", "b_encode_nvenc")]
    if all(stages):
        slow = min(stages, key=lambda r: r["fps"])
        out["slowest_stage_nvenc"] = {"row": slow["key"], "fps": slow["fps"]}
    for key in [k for k in rows if k.startswith("b_e2e")]:
        r = ok(key)
        if not r:
            continue
        if net:
            out[f"{key}_over_network"] = rate(r) / net["fps"]
            out[f"{key}_over_network_per_kept_frame"] = rate(r) / net["fps_per_kept_frame"]
        if base:
            out[f"{key}_speedup_vs_baseline"] = base["wall_s"] / r["wall_s"]
    return out


def print_tables(doc: dict) -> None:
    rows = doc["rows"]
    for group, title in (("a", "(a) CPU: classic seed preset"), ("b", "(b) GPU: RealBasicVSR")):
        mine = [r for r in rows.values() if r["key"][0] == group]
        if not mine:
            continue
        clip = doc["clip"]
        print(
            f"\n{title}: {clip['frames']} frames {clip['size'][0]}x{clip['size'][1]} "
            f"-> x4, {clip['fps']} fps clip"
        )
        print(
            "| row | wall s | fps | steady fps | peak RSS MiB | runs: fps (load) | status / note |"
        )
        print("| --- | ---: | ---: | ---: | ---: | --- | --- |")
        for r in mine:
            wall = r.get("wall_s", r.get("seconds"))
            note = r.get("status", "")
            if r.get("note"):
                note += f"; {r['note']}"
            runs = ", ".join(
                f"{fmt(u.get('steady_fps') or u.get('fps'), '.2f')} ({fmt(u.get('load_1min'))})"
                for u in r.get("runs", [])
            )
            print(
                f"| {r['label']} | {fmt(wall, '.2f')} | {fmt(r.get('fps'), '.2f')} | "
                f"{fmt(r.get('steady_fps'), '.2f')} | {fmt(r.get('peak_rss_mib'), '.0f')} | "
                f"{runs} | {note} |"
            )
        s = doc["summary"].get(group, {})
        for k, v in s.items():
            print(f"  {k}: {json.dumps(v) if isinstance(v, dict) else f'{v:.3f}'}")
        if group == "a":
            print("  target: e2e / slowest stage >= 0.85 (steady rate when measured)")
        else:
            print(
                "  targets: network >= 100 fps fp16 640x360; e2e NVENC >= 0.90 of network; "
                ">= 5x baseline"
            )


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--rows",
        default=None,
        help="cpu, gpu or cpu,gpu (default: cpu, plus gpu when CUDA is available)",
    )
    ap.add_argument(
        "--seconds", type=float, default=None, help="clip length (default 60 with CUDA, 4 without)"
    )
    ap.add_argument("--fps", type=Fraction, default=Fraction(25), help="clip frame rate (25)")
    ap.add_argument("--clip-size", default="640x360", help="clip WxH (default 640x360)")
    ap.add_argument("--clip", type=Path, default=None, help="use this clip instead of making one")
    ap.add_argument("--device", default=None, help="device of the GPU rows (default cuda)")
    ap.add_argument(
        "--batch",
        type=int,
        default=None,
        help="GPU rows: --batch N for the CLI / enhance(batch=) (when available)",
    )
    ap.add_argument(
        "--encode-preset",
        default=None,
        help="--encode-preset for every CLI row and encode stage (when available)",
    )
    ap.add_argument(
        "--fixed-frames",
        type=int,
        default=20,
        help="K of the --frames 0:K run that measures the fixed cost (default 20)",
    )
    ap.add_argument(
        "--no-fixed-cost",
        dest="fixed_cost",
        action="store_false",
        help="skip the --frames 0:K runs (no steady rate)",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="skip the rows left when this many seconds have passed",
    )
    ap.add_argument(
        "--row-timeout",
        type=float,
        default=1800.0,
        help="seconds one subprocess may run (default 1800)",
    )
    ap.add_argument(
        "--extra-cli",
        default="",
        help='more options for every CLI row, one string (e.g. "--chunk 32 --overlap 4")',
    )
    ap.add_argument(
        "--only",
        default=None,
        help="comma-separated row keys to run (e.g. b_decode,b_e2e_nvenc_nojob); see the JSON",
    )
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="interleaved rounds over the rows; the fastest run of each row is kept (default 1)",
    )
    ap.add_argument("--weights", type=Path, default=GOLDEN_CKPT)
    ap.add_argument(
        "--samples",
        type=Path,
        default=None,
        help="sample frames: folder or video (default: the demo_000 frames)",
    )
    ap.add_argument("--workdir", type=Path, default=None, help="where clips and outputs go")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--out", type=Path, default=benchlib.RESULTS / "pipeline.json")
    ap.add_argument(
        "--log", type=Path, default=None, help="append every subprocess's command and output here"
    )
    # the official-script baseline's own process
    ap.add_argument("--baseline-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--max-seq-len", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.baseline_worker:
        args.device = args.device or "cuda"
        return args
    import torch

    cuda = torch.cuda.is_available()
    args.rows = (args.rows or ("cpu,gpu" if cuda else "cpu")).split(",")
    args.device = args.device or "cuda"
    if args.seconds is None:
        args.seconds = 60.0 if cuda else 4.0
    args.clip_size = parse_size(args.clip_size)
    args.extra_cli = shlex.split(args.extra_cli)
    args.only = set(args.only.split(",")) if args.only else None
    args.samples = args.samples or benchlib.default_samples()
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.baseline_worker:
        return baseline_worker(args)
    t_start = time.perf_counter()
    own_workdir = args.workdir is None
    args.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_pipeline_"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    info = benchlib.machine_info()
    flags = cli_flags()
    info["cli_flags_present"] = {f: f in flags for f in NEW_FLAGS}
    print(json.dumps(info), flush=True)
    n = max(1, round(args.seconds * args.fps))
    state: dict = {"flags": flags, "n": n}
    doc: dict = {
        "benchmark": "pipeline",
        "info": info,
        "settings": {
            k: (str(v) if isinstance(v, Path | Fraction) else v)
            for k, v in vars(args).items()
            if k not in ("json", "baseline_worker", "max_seq_len")
        },
        "rows": {},
        "summary": {},
    }
    try:
        if args.clip is None:
            clip = args.workdir / f"clip_{n}f_{args.clip_size[0]}x{args.clip_size[1]}.mp4"
            doc["clip"] = make_clip(args.samples, clip, n, args.fps, args.clip_size)
        else:
            clip = args.clip
            doc["clip"] = {"path": str(clip), "frames": video_frames(clip)}
        from napari_vsr.jobs.source import open_source

        src = open_source(clip)
        state["clip_meta"] = dict(src.metadata)
        n = state["n"] = int(src.shape[0])
        doc["clip"].update(
            frames=n,
            size=[int(src.shape[2]), int(src.shape[1])],
            fps=str(doc["clip"].get("fps", state["clip_meta"].get("fps"))),
        )
        src.close()
        state["clip"], state["size"] = clip, tuple(doc["clip"]["size"])
        print(f"clip: {doc['clip']}", flush=True)
        todo = (cpu_rows() if "cpu" in args.rows else []) + (
            gpu_rows() if "gpu" in args.rows else []
        )
        if args.only:
            todo = [r for r in todo if r["key"] in args.only]
        for rnd in range(args.repeats):
            for template in todo:
                old = doc["rows"].get(template["key"])
                if old is not None and not old.get("status", "").startswith("ok"):
                    continue  # not available, failed or skipped: not tried again
                left = (
                    None
                    if args.budget_s is None
                    else args.budget_s - (time.perf_counter() - t_start)
                )
                row = dict(template)
                row["load_1min"] = round(os.getloadavg()[0], 2)
                if left is not None and left <= 0:
                    row["status"] = "skipped: time budget spent"
                else:
                    t0 = time.perf_counter()
                    try:
                        measure(row, state, args)
                    except Exception as exc:  # noqa: BLE001 - a failed row is a result
                        row["status"] = (
                            f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                        )
                    row["row_s"] = time.perf_counter() - t0
                doc["rows"][row["key"]] = keep_best(old, row)
                print(
                    f"  round {rnd + 1} {row['label']}: {fmt(row.get('fps'), '.2f')} fps "
                    f"(steady {fmt(row.get('steady_fps'), '.2f')}, load "
                    f"{row['load_1min']}) {row.get('status')}",
                    flush=True,
                )
                doc["summary"] = {g: summarise(doc["rows"], g) for g in ("a", "b")}
                doc["elapsed_s"] = time.perf_counter() - t_start
                benchlib.write_json(args.out, doc)
    finally:
        if own_workdir and not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    doc["info"]["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    benchlib.write_json(args.out, doc)
    print_tables(doc)
    print(f"\nwrote {args.out} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
