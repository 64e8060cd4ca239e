"""Host memory: what is available, what a chunk of frames needs, and the check made before any
work so that a too-large input ends with a clear error instead of the kernel's OOM killer.

Available memory is the smallest of: ``MemAvailable`` in ``/proc/meminfo`` (or the free pages
from ``os.sysconf`` elsewhere), the room left under the process's cgroup limit (containers,
Slurm), and the cap set by the environment variable ``NAPARI_VSR_MAX_MEMORY`` (bytes, or with a
``K``/``M``/``G``/``T`` suffix, e.g. ``8G``) for people who share a machine.

The estimate for a chunk (:func:`chunk_memory_bytes`) counts :data:`INPUT_BYTES_PER_VALUE`
bytes for every value of every input frame of the chunk (context included: the source block and
four float32 working copies) and :data:`OUTPUT_BYTES_PER_VALUE` for every value of every output
frame (two float32 copies), plus the enhancer's own estimate (``estimate_memory``) when it runs
on the CPU.  Measured on 1280x720 RGB (peak RSS of ``enhance --method classic`` growing with
``--chunk``): the ``seed`` preset took 46 MB per frame (estimate 66 MB), ``bicubic-x4`` 44 MB
per frame (estimate 398 MB: it resizes uint8 directly; a recipe with float steps after the
upscale comes closer).  The estimate errs high, and errs only towards a shorter chunk or, when
not even one frame fits, a clear error.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from napari_vsr.errors import InsufficientMemoryError, ParameterError

log = logging.getLogger(__name__)

#: environment variable capping the memory a run may plan for
MEMORY_ENV = "NAPARI_VSR_MAX_MEMORY"
#: bytes per value of an input frame in a chunk (the source block, float32 working copies)
INPUT_BYTES_PER_VALUE = 16
#: bytes per value of an output frame in a chunk (two float32 copies)
OUTPUT_BYTES_PER_VALUE = 8
#: share of the available memory a run may plan for (the rest: Python, decoders, encoders)
MEMORY_HEADROOM = 0.85

_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str) -> int:
    """``"8G"``, ``"512M"``, ``"1.5g"`` or ``"1000000"`` -> bytes (binary units).

    Raises
    ------
    ParameterError
        Not a size.
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?[bB])?\s*", text or "")
    if not m:
        raise ParameterError(
            f"{MEMORY_ENV}={text!r}: expected a size such as 8G, 512M or a number of bytes"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _meminfo_available(path: str = "/proc/meminfo") -> int | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _sysconf_available() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup memory limit (v2 or v1), None without one."""
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        rel = rel.lstrip("/")
        if controllers == "":  # v2 unified hierarchy
            base = Path("/sys/fs/cgroup") / rel
            limit, usage = base / "memory.max", base / "memory.current"
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / rel
            limit, usage = base / "memory.limit_in_bytes", base / "memory.usage_in_bytes"
        else:
            continue
        try:
            cap = limit.read_text().strip()
            used = int(usage.read_text().strip())
        except (OSError, ValueError):
            continue
        if cap == "max" or not cap.isdigit() or int(cap) >= 2**60:
            continue
        return max(0, int(cap) - used)
    return None


def available_memory_bytes() -> int | None:
    """Host memory this process may still use, in bytes (see the module notes); None if unknown.

    Raises
    ------
    ParameterError
        ``NAPARI_VSR_MAX_MEMORY`` is set but not a size.
    """
    found = [v for v in (_meminfo_available() or _sysconf_available(), _cgroup_room()) if v]
    cap = os.environ.get(MEMORY_ENV)
    if cap:
        found.append(parse_size(cap))
    return min(found) if found else None


def chunk_memory_bytes(
    in_frame: Sequence[int],
    out_frame: Sequence[int],
    n_in: int,
    n_out: int,
    *,
    enhancer_estimate: int = 0,
) -> int:
    """Host bytes one chunk needs.

    Parameters
    ----------
    in_frame, out_frame : sequence of int
        One input and one output frame, e.g. (H, W, 3) and (4H, 4W, 3).
    n_in, n_out : int
        Input frames read for the chunk (context included) and output frames it makes.
    enhancer_estimate : int
        The enhancer's own working memory for the chunk, in bytes (0 when unknown).

    Returns
    -------
    int
        ``INPUT_BYTES_PER_VALUE * n_in * |in_frame| + OUTPUT_BYTES_PER_VALUE * n_out *
        |out_frame| + enhancer_estimate``.
    """
    px_in = float(np.prod(in_frame, dtype=np.float64))
    px_out = float(np.prod(out_frame, dtype=np.float64))
    return int(
        INPUT_BYTES_PER_VALUE * n_in * px_in
        + OUTPUT_BYTES_PER_VALUE * n_out * px_out
        + enhancer_estimate
    )


def _human(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def plan_chunk(
    in_frame: Sequence[int],
    out_frame: Sequence[int],
    *,
    length: int,
    chunk: int,
    overlap: int,
    explicit: bool,
    estimate: Callable[[int], int] | None = None,
    source: str | os.PathLike | None = None,
    available: int | None = None,
) -> int:
    """Check that one frame and one chunk fit in the available memory, before any work.

    Parameters
    ----------
    in_frame, out_frame : sequence of int
        One input and one output frame (time axis removed).
    length : int
        Frames in the source (a chunk never reads more).
    chunk, overlap : int
        Output frames per chunk and context frames on each side.
    explicit : bool
        Whether the user chose ``chunk`` (``--chunk``): then a chunk that does not fit is an
        error naming the largest that does; otherwise the chunk is shortened (logged).
    estimate : callable, optional
        ``estimate(n_in) -> bytes``: the enhancer's own working memory for ``n_in`` frames.
    source : path-like, optional
        Named in the error.
    available : int, optional
        Bytes available; default :func:`available_memory_bytes`.

    Returns
    -------
    int
        The chunk to run with (``chunk``, or shorter when it was not explicit).

    Raises
    ------
    InsufficientMemoryError
        Even one frame does not fit, or an explicit chunk does not.
    """
    avail = available_memory_bytes() if available is None else available
    if avail is None:
        return chunk
    budget = avail * MEMORY_HEADROOM

    def need(c: int) -> int:
        n_in = min(length, c + 2 * overlap)
        extra = estimate(n_in) if estimate is not None else 0
        return chunk_memory_bytes(
            in_frame, out_frame, n_in, min(c, length), enhancer_estimate=extra
        )

    def size(shape: Sequence[int]) -> str:
        return "x".join(str(int(s)) for s in shape)

    one = need(1)
    if one > budget:
        raise InsufficientMemoryError(
            f"one frame ({size(in_frame)} in, {size(out_frame)} out, with {2 * overlap} "
            f"context frames) needs about {_human(one)} of memory but only {_human(avail)} are "
            "available; use a smaller input or scale, or a machine with more memory",
            path=source,
        )
    if need(chunk) <= budget:
        return chunk
    fits = chunk
    while fits > 1 and need(fits) > budget:
        fits = max(1, fits * 2 // 3)
    if explicit:
        raise InsufficientMemoryError(
            f"--chunk {chunk} needs about {_human(need(chunk))} of memory but only "
            f"{_human(avail)} are available; use --chunk {fits}{' or less' if fits > 1 else ''}",
            path=source,
        )
    log.warning(
        "chunk shortened from %d to %d frames so that a chunk fits in %s of memory",
        chunk,
        fits,
        _human(avail),
    )
    return fits


def plan_enhancer_chunk(
    enhancer,
    in_shape: Sequence[int],
    out_shape: Sequence[int],
    *,
    rgb: bool | None = None,
    chunk: int | None = None,
    overlap: int | None = None,
    source: str | os.PathLike | None = None,
) -> int | None:
    """:func:`plan_chunk` for an enhancer run over a whole (T, ...) source.

    Parameters
    ----------
    enhancer : Enhancer
        Its ``capabilities.default_chunk``/``default_overlap`` fill in ``chunk``/``overlap``;
        its ``estimate_memory(n, h, w)`` is added when ``capabilities.device`` is the CPU.
    in_shape, out_shape : sequence of int
        Full input and output shapes, time first (see ``engine.plan_output``).
    rgb : bool, optional
        Whether the last axis holds channels; None guesses like napari (last axis of 3 or 4).
    chunk, overlap : int, optional
        What the user chose (None: the enhancer's defaults; a chosen chunk that does not fit
        is an error, a default one is shortened).
    source : path-like, optional
        Named in the error.

    Returns
    -------
    int or None
        The chunk to run with; None when the user chose none and the default fits (the
        engine then applies its own choice, e.g. its device-memory plan).

    Raises
    ------
    InsufficientMemoryError
    """
    in_frame = tuple(int(s) for s in in_shape[1:])
    caps = enhancer.capabilities
    ctx = caps.default_overlap if overlap is None else int(overlap)
    size = caps.default_chunk if chunk is None else int(chunk)
    if size < 1 or ctx < 0:
        return chunk  # the engine names the bad value
    if rgb is None:
        rgb = len(in_shape) >= 4 and int(in_shape[-1]) in (3, 4)
    per_chunk = None
    on_cpu = caps.device is not None and caps.device.split(":")[0] == "cpu"
    if on_cpu and len(in_frame) >= 2:
        h, w = (in_frame[-3], in_frame[-2]) if rgb else in_frame[-2:]
        if enhancer.estimate_memory(1, h, w) is not None:

            def per_chunk(n_in: int) -> int:
                return int(enhancer.estimate_memory(n_in, h, w))

    planned = plan_chunk(
        in_frame,
        tuple(int(s) for s in out_shape[1:]),
        length=int(in_shape[0]),
        chunk=size,
        overlap=ctx,
        explicit=chunk is not None,
        estimate=per_chunk,
        source=source,
    )
    return None if chunk is None and planned == size else planned


def check_in_memory_result(shape: Sequence[int], dtype, *, what: str = "the result") -> None:
    """Refuse to hold a whole result of ``shape``/``dtype`` in memory when it cannot fit.

    Raises
    ------
    InsufficientMemoryError
    """
    need = float(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
    avail = available_memory_bytes()
    if avail is not None and need > avail * MEMORY_HEADROOM / 2:
        raise InsufficientMemoryError(
            f"{what} ({'x'.join(str(int(s)) for s in shape)} {np.dtype(dtype)}) needs "
            f"{_human(need)} but only {_human(avail)} of memory are available; choose a "
            "result folder (an on-disk store) or fewer frames"
        )
