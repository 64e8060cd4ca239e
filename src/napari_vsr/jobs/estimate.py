"""How long a piece of work will take, said before it starts (e.g. a napari preview).

Rates are input pixels per second per (method, device).  A rate measured by a finished run in
this process wins; otherwise the CPU figure from BENCHMARKS.md section 2 is used for
RealBasicVSR; other combinations are "unknown" until measured (no GPU figure is guessed).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from napari_vsr.jobs.progress import clock_text

#: input pixels per second: RealBasicVSR fp32 on the CPU took 11.77 s per 640x360 frame
#: (BENCHMARKS.md section 2, fused oneDNN path, 2-core VM)
BENCHMARK_RATES: dict[tuple[str, str], float] = {("realbasicvsr", "cpu"): 640 * 360 / 11.77}

_measured: dict[tuple[str, str], float] = {}
_lock = threading.Lock()


def record_rate(method: str, device: str, pixels: float, seconds: float) -> None:
    """Remember a finished run's rate (input pixels processed in ``seconds``)."""
    if pixels > 0 and seconds > 0:
        with _lock:
            _measured[(method, device)] = pixels / seconds


def rate(method: str, device: str) -> tuple[float | None, str]:
    """(input pixels per second, where the figure comes from) for ``method`` on ``device``."""
    with _lock:
        measured = _measured.get((method, device))
    if measured is not None:
        return measured, "measured by the last run"
    if (method, device) in BENCHMARK_RATES:
        return BENCHMARK_RATES[(method, device)], "from the CPU benchmark"
    return None, "no run measured yet"


@dataclass(frozen=True)
class Estimate:
    """The size of a piece of work and its expected duration (None: unknown)."""

    frames: int
    height: int
    width: int
    seconds: float | None
    basis: str

    @property
    def pixels(self) -> int:
        return self.frames * self.height * self.width

    def text(self) -> str:
        what = (f"{self.frames} frame{'s' if self.frames != 1 else ''} of "
                f"{self.width}x{self.height} px")
        if self.seconds is None:
            return f"{what}; time unknown ({self.basis})"
        return f"{what}, about {clock_text(self.seconds)} ({self.basis})"


def estimate(method: str, device: str, frames: int, height: int, width: int) -> Estimate:
    """The expected duration of ``frames`` frames of ``height`` x ``width`` input pixels."""
    r, basis = rate(method, device)
    seconds = None if r is None else frames * height * width / r
    return Estimate(frames, height, width, seconds, basis)
