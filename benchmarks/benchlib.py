"""What the issue-11 benchmarks share: paths, the machine record, peak RSS, sample frames, JSON.

Imported by ``bench_network.py`` and ``bench_pipeline.py`` (both run as scripts from this
folder, so ``import benchlib`` finds this file).  No PyTorch at import time: the pipeline
benchmark's parent process only starts subprocesses.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("NAPARI_VSR_SHARED", REPO.parent / "shared"))
GOLDEN_CKPT = SHARED / "golden" / "realbasicvsr" / "realbasicvsr_random_mmedit_layout.pth"
RESULTS = HERE / "results"


def default_samples() -> Path:
    """The demo_000 sample frames: the folder of PNGs, or a video of them (what the GPU payload
    of ``scripts/gpu_stage.sh`` carries, ``samples/demo_000.mp4``)."""
    folder = SHARED / "samples" / "demo_000"
    if folder.is_dir():
        return folder
    for ext in (".mp4", ".mkv"):
        clip = folder.with_suffix(ext)
        if clip.is_file():
            return clip
    return folder


class PeakRSS:
    """Highest resident set size of this process while the block runs (sampled every 5 ms).

    ``mib``: the peak above the RSS at entry, in MiB.
    """

    def __init__(self, interval: float = 0.005):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def mib(self) -> float:
        return (self.peak - self.start) / 2**20


def release_host_memory() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``), so that the next
    measurement's RSS increase is not hidden by memory the allocator kept from the last one."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_smi() -> dict[str, str] | None:
    """GPU name, driver and clocks as nvidia-smi reports them (None without nvidia-smi)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    fields = (
        "name",
        "driver_version",
        "memory.total",
        "clocks.sm",
        "clocks.max.sm",
        "power.limit",
        "temperature.gpu",
    )
    try:
        done = subprocess.run(
            [exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": str(exc)}
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip()[-200:]}
    values = [v.strip() for v in done.stdout.splitlines()[0].split(",")]
    return dict(zip(fields, values, strict=False))


def machine_info(*, torch_info: bool = True) -> dict[str, Any]:
    """Date, machine, load and software versions (and the GPU, when torch sees one)."""
    import psutil

    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        import av

        info["av"] = av.__version__
        info["libavcodec"] = ".".join(str(v) for v in av.library_versions["libavcodec"])
    except Exception as exc:  # noqa: BLE001 - recorded, not fatal
        info["av"] = f"not importable: {exc}"
    if not torch_info:
        return info
    import torch

    info.update(
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        cuda_available=torch.cuda.is_available(),
    )
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=torch.cuda.get_device_name(0),
            gpu_capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpu_multiprocessors=props.multi_processor_count,
            cuda_runtime=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            tf32_matmul=getattr(torch.backends.cuda.matmul, "allow_tf32", None),
            tf32_cudnn=getattr(torch.backends.cudnn, "allow_tf32", None),
            nvidia_smi=_nvidia_smi(),
        )
    return info


def write_json(path: Path, doc: dict) -> None:
    """Write ``doc`` to ``path`` atomically (a reader or a kill never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(doc, indent=1, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def ping_pong(n: int, period: int) -> list[int]:
    """``n`` indices running 0 .. period-1, back to 1, forward again, ... (no index repeats
    at a turn, so no window of the result is a mirror of itself: BasicVSR's shortcut for
    mirrored clips never triggers)."""
    if period <= 1:
        return [0] * n
    cycle = list(range(period)) + list(range(period - 2, 0, -1))
    return [cycle[i % len(cycle)] for i in range(n)]


def load_frames(samples: Path, *, size: tuple[int, int] | None = None) -> np.ndarray:
    """Every sample frame as (T, H, W, 3) uint8 RGB, resized to ``size`` = (W, H) if given
    (area interpolation down, cubic up).  ``samples``: a folder of images or a video."""
    import cv2

    from napari_vsr.io import open_frames

    src = open_frames(samples)
    try:
        frames = np.asarray(src[0 : src.shape[0]])
    finally:
        src.close()
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        sys.exit(f"{samples}: expected 8-bit RGB frames, got {frames.shape} {frames.dtype}")
    if size is None or tuple(size) == (frames.shape[2], frames.shape[1]):
        return frames
    w, h = size
    inter = cv2.INTER_AREA if w * h < frames.shape[1] * frames.shape[2] else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (w, h), interpolation=inter) for f in frames])


def parse_size(text: str) -> tuple[int, int]:
    """``"640x360"`` -> (640, 360) (width, height)."""
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def fmt(value, spec: str = ".1f", missing: str = "-") -> str:
    """``format(value, spec)``, or ``missing`` for None."""
    return missing if value is None else format(value, spec)
