"""The streaming enhancement engine: one code path for the CLI and the napari widgets.

:func:`enhance` takes any lazy, numpy-like frame array and an
:class:`~napari_vsr.enhancers.Enhancer` and yields ``(frame_index, enhanced_frame)`` in order.
Everything it needs to know about the method comes from the enhancer's
:class:`~napari_vsr.enhancers.Capabilities` record.  The algorithm, end to end:

1. **Layout.**  The time axis is moved to the front; the two spatial axes are the last two (or the
   two before a trailing channel axis when ``rgb``); any axes in between (e.g. Z, or the C axis
   of a microscopy stack, ``(T, Z, C, Y, X)``) are "planes", each enhanced as its own gray
   sequence, so a stack keeps its axes and channel count.  Whether the last axis holds colour
   samples comes from the source's own ``rgb`` flag when it has one (TIFF stacks say so), so a
   ``(T, C, Y, X)`` stack that happens to be 3 or 4 pixels wide is never taken for RGB.
2. **Temporal chunks.**  Output frames ``[s, s + chunk)`` are computed from input frames
   ``[s - overlap, s + chunk + overlap)`` (clipped to the array); the outputs of the context frames
   are discarded.  Recurrent networks thus start each chunk "warm", and temporal filters over
   +-k frames are exact once ``overlap >= k``.  Only one chunk is in memory at a time, so host and
   device memory depend on ``chunk``, ``overlap`` and the frame size, never on the length.
3. **Data kinds** (for ``input_kind == "rgb01"`` enhancers): uint8/uint16 are scaled by their dtype
   range to float32 [0, 1] and scaled back (rounded, clipped) to the source dtype; float data is
   passed as float32 unchanged (expected in [0, 1]) and returned unclipped in its own dtype;
   gray is replicated to 3 channels and averaged back; an alpha channel is resized separately
   (bilinear).  ``"native"`` enhancers get the frames exactly as stored.  An rgb01 enhancer that
   declares ``accepts_integer_rgb`` gets uint8/uint16 RGB as stored and returns the source dtype,
   doing the same scaling, clipping and rounding itself (on its device, where the x4 output
   is large: converting 2560x1440 float frames on the host would cap a GPU at ~20 fps).
4. **Spatial tiles** (tileable enhancers): frames are cut into square tiles of ``tile`` input pixels
   overlapping by ``tile_overlap``; every tile is enhanced over the whole chunk and the outputs are
   blended with linear ramps across the overlaps.  ``tile=None`` picks a size from the free device
   memory (no tiling on CPU); a device out-of-memory error halves the tile and retries the chunk,
   and the retry is reported in :attr:`Progress.message`.
5. **Progress and cancel inside a chunk.**  The enhancer calls ``step(i)`` as each output frame
   ``i`` of a chunk finishes (a recurrent network also calls ``step(None)`` at each time step of
   its backward pass).  The engine's step checks ``cancel`` (raising
   :class:`~napari_vsr.errors.Cancelled`) and sends ``progress`` a :class:`Progress` for every
   finished frame of the chunk's kept range (context frames do not count; with planes or tiles
   a frame counts once every plane and tile has finished it).  ``cancel`` is also checked
   between chunks, planes and tiles.  The engine gives the enhancer's device memory back
   (:func:`~napari_vsr.models.device.release_memory`) when the generator finishes, is
   cancelled, fails or is closed early; it never closes the enhancer: the caller owns it.
6. **Batches.**  Consecutive chunks of the same length (and the planes of a chunk) go through
   the enhancer together, up to ``batch`` at a time
   (:meth:`~napari_vsr.enhancers.Enhancer.enhance_batch`): on a GPU a 640x360 chunk leaves most
   of the device idle.  The automatic batch fills the free device memory (1 on the CPU, where
   batching buys nothing, and when frames are tiled); out of memory, a batch is halved.
7. **Overlapped stages** (:mod:`napari_vsr.stages`).  Reading runs ahead of the enhancer in
   its own thread, and the enhancer runs ahead of the caller in another, each through a queue
   about one batch of chunks deep; the caller's own work (writing, encoding) overlaps with
   both, while memory stays bounded by the queues.  ``progress`` is called from the enhancer's
   thread as frames finish (at once, not when the caller takes them).  ``serial=True`` runs everything one after
   another in the caller's thread; the frames are identical.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from napari_vsr.dtype_range import from_float01 as _from_float01
from napari_vsr.dtype_range import saturate
from napari_vsr.dtype_range import to_float01 as _to_float01
from napari_vsr.enhancers.base import Capabilities, Enhancer
from napari_vsr.errors import DeviceError, ParameterError, UnsupportedDtypeError
from napari_vsr.jobs.progress import (  # noqa: F401 (CancelToken, Progress re-exported)
    CancelToken,
    Progress,
    RateClock,
    format_progress,
)
from napari_vsr.models.device import is_out_of_memory, memory_kind, release_memory
from napari_vsr.stages import produce

log = logging.getLogger(__name__)

#: smallest tile the out-of-memory retry goes down to, in input pixels
MIN_TILE = 32
#: share of the free device memory an automatic tile size may plan for
MEMORY_HEADROOM = 0.6


@dataclass(frozen=True)
class _Layout:
    """Where the axes are.  After moving time to the front: (T, *planes, H, W[, C])."""

    time_axis: int
    rgb: bool
    length: int
    planes: tuple[int, ...]
    height: int
    width: int
    channels: int  # 0 when there is no channel axis


def _layout(shape: Sequence[int], time_axis: int, rgb: bool | None) -> _Layout:
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    if ndim < 3:
        raise ParameterError(f"frames: expected at least 3 axes (T, H, W[, C]), got shape {shape}")
    if rgb is None:
        rgb = ndim >= 4 and shape[-1] in (3, 4)
    if rgb and ndim < 4:
        raise ParameterError(f"frames: rgb=True needs (T, H, W, C) data, got shape {shape}")
    first_spatial = ndim - 3 if rgb else ndim - 2
    axis = time_axis + ndim if time_axis < 0 else time_axis
    if not 0 <= axis < first_spatial:
        raise ParameterError(
            f"time_axis: expected an axis before the spatial axes of shape {shape} "
            f"(0..{first_spatial - 1}), got {time_axis}"
        )
    moved = (shape[axis],) + shape[:axis] + shape[axis + 1 :]
    spatial = moved[-3:-1] if rgb else moved[-2:]
    planes = moved[1 : len(moved) - (3 if rgb else 2)]
    return _Layout(
        time_axis=axis,
        rgb=bool(rgb),
        length=moved[0],
        planes=tuple(planes),
        height=spatial[0],
        width=spatial[1],
        channels=moved[-1] if rgb else 0,
    )


def _frame_shape(layout: _Layout, scale: int) -> tuple[int, ...]:
    """Shape of one output frame in the caller's axis order (time axis removed)."""
    tail = (layout.height * scale, layout.width * scale) + (
        (layout.channels,) if layout.rgb else ()
    )
    return layout.planes + tail


def plan_output(
    shape: Sequence[int],
    dtype: Any,
    enhancer: Enhancer,
    *,
    time_axis: int = 0,
    rgb: bool | None = None,
) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the full output of :func:`enhance` (before any ``frame_range``).

    Parameters
    ----------
    shape : sequence of int
        Input shape, e.g. (T, H, W), (T, H, W, C) or (T, Z, H, W).
    dtype : numpy dtype-like
        Input dtype.
    enhancer : Enhancer
        Its ``capabilities.scale`` multiplies the two spatial axes.
    time_axis : int
        Which axis is time (must come before the spatial axes).
    rgb : bool, optional
        Whether the last axis holds channels; None guesses like napari (last axis of 3 or 4).

    Returns
    -------
    shape : tuple of int
        The input shape with both spatial axes multiplied by the enhancer's scale.
    dtype : numpy.dtype
        The input dtype (outputs always come back in the source dtype).
    """
    layout = _layout(shape, time_axis, rgb)
    dtype = np.dtype(dtype)
    caps = enhancer.capabilities
    if caps.input_kind == "rgb01":
        _check_rgb01_dtype(dtype)
    frame = list(_frame_shape(layout, caps.scale))
    frame.insert(layout.time_axis, layout.length)
    return tuple(frame), dtype


# --- dtype and channel conversion for rgb01 enhancers ------------------------------------------
def _check_rgb01_dtype(dtype: np.dtype) -> None:
    if dtype not in (np.uint8, np.uint16) and dtype.kind != "f":
        raise UnsupportedDtypeError(
            f"expected uint8, uint16 or float frames for a network enhancer, got {dtype}; "
            "convert the data first (e.g. rescale to float32 in [0, 1])"
        )


def _to_rgb(seq: np.ndarray, channels: int) -> np.ndarray:
    """(n, H, W[, C]) in the source dtype -> (n, H, W, 3) float32 in [0, 1] (alpha dropped)."""
    x = _to_float01(seq)
    if channels == 0:
        return np.repeat(x[..., None], 3, axis=-1)
    if channels in (1, 2):
        return np.repeat(x[..., :1], 3, axis=-1)
    return np.ascontiguousarray(x[..., :3])


def _resize_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """(k, H, W) any dtype -> (k, H*s, W*s) float32 in [0, 1] scale, bilinear (half-pixel centres)."""
    a = _to_float01(alpha)
    h, w = a.shape[1:]
    out = np.empty((a.shape[0], h * scale, w * scale), np.float32)
    for i in range(a.shape[0]):
        out[i] = cv2.resize(a[i], (w * scale, h * scale), interpolation=cv2.INTER_LINEAR)
    return out


def _from_rgb(
    rgb: np.ndarray, alpha: np.ndarray | None, channels: int, dtype: np.dtype
) -> np.ndarray:
    """(k, Hs, Ws, 3) float32 (+ resized alpha) -> (k, Hs, Ws[, C]) in the source dtype."""
    if channels == 0:
        return _from_float01(rgb.mean(axis=-1), dtype)
    if channels == 1:
        return _from_float01(rgb.mean(axis=-1, keepdims=True), dtype)
    if channels == 2:
        return _from_float01(np.stack([rgb.mean(axis=-1), alpha], axis=-1), dtype)
    if channels == 3:
        return _from_float01(rgb, dtype)
    return _from_float01(np.concatenate([rgb, alpha[..., None]], axis=-1), dtype)


# --- spatial tiles ------------------------------------------------------------------------------
def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if tile >= size:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def _ramp(length: int, start: int, stop: int, size: int, overlap: int) -> np.ndarray:
    """1-D blend weights (output scale) for a tile covering [start, stop) of an axis of ``size``."""
    w = np.ones(length, np.float32)
    if overlap <= 0:
        return w
    n = min(overlap, length // 2)
    ramp = (np.arange(n, dtype=np.float32) + 0.5) / n
    if start > 0:
        w[:n] = np.minimum(w[:n], ramp)
    if stop < size:
        w[length - n :] = np.minimum(w[length - n :], ramp[::-1])
    return w


def _available_host_memory() -> int | None:
    """Host memory this process may still use (MemAvailable, cgroup limit, user cap)."""
    from napari_vsr.host_memory import available_memory_bytes

    return available_memory_bytes()


def _device(caps: Capabilities):
    """The declared device as a ``torch.device``, or None for host-only methods."""
    if caps.device is None:
        return None
    import torch

    return torch.device(caps.device)


def _auto_chunk(enhancer: Enhancer, layout: _Layout, overlap: int) -> int:
    """The enhancer's default chunk, shortened on CPU when a chunk would not fit in free RAM.

    (On GPUs, tiles keep a chunk inside device memory instead; see :func:`_auto_tile`.)
    """
    caps = enhancer.capabilities
    chunk = int(caps.default_chunk)
    device = _device(caps)
    h, w = layout.height, layout.width
    if device is None or device.type != "cpu" or enhancer.estimate_memory(1, h, w) is None:
        return chunk
    free = _available_host_memory()
    if free is None:
        return chunk
    budget = free * MEMORY_HEADROOM
    while chunk > 1 and enhancer.estimate_memory(chunk + 2 * overlap, h, w) > budget:
        chunk = max(1, chunk * 2 // 3)
    if chunk < caps.default_chunk:
        log.warning(
            "chunk shortened to %d frames so that %dx%d frames fit in %.1f GB of free memory",
            chunk,
            w,
            h,
            free / 1e9,
        )
    return chunk


def _auto_tile(enhancer: Enhancer, n_frames: int, height: int, width: int) -> int:
    """Largest square tile (input pixels) that the enhancer's memory estimate fits on the device."""
    device = _device(enhancer.capabilities)
    estimate = enhancer.estimate_memory
    if device is None:
        return 0
    need = estimate(n_frames, height, width)
    if need is None:
        return 0
    from napari_vsr.models.device import free_memory_bytes

    free = free_memory_bytes(device)
    if free is None:
        return 0
    budget = free * MEMORY_HEADROOM
    if need <= budget:
        return 0
    side = max(height, width)
    while side > MIN_TILE and estimate(n_frames, min(side, height), min(side, width)) > budget:
        side = int(side * 0.8)
    side = max(MIN_TILE, side - side % 8)
    log.info("automatic tile size %d px for %d frames of %dx%d", side, n_frames, height, width)
    return side


class _ChunkProgress:
    """Counts the finished output frames of one chunk across planes and tiles.

    Each pass of the enhancer (one plane, one tile) contributes ``1 / (planes * tiles)`` of a
    frame when it reports that frame; a frame of the kept range counts as done once its
    passes add up to one.  ``on_frame(n)`` is called each time a frame becomes done, with the
    number of done frames of the chunk so far.
    """

    def __init__(self, keep: slice, planes: int, cancel: CancelToken | None, on_frame):
        self.keep = keep
        self.planes = planes
        self.cancel = cancel
        self.on_frame = on_frame
        self.parts = [Fraction(0)] * (keep.stop - keep.start)
        self.counted: set[int] = set()

    @property
    def done(self) -> int:
        return len(self.counted)

    def snapshot(self) -> list[Fraction]:
        return list(self.parts)

    def restore(self, parts: list[Fraction]) -> None:
        """Forget what a failed pass (an out-of-memory retry) reported; frames already
        counted as done stay counted."""
        self.parts = list(parts)

    def pass_step(self, tiles: int):
        """The ``step`` callable for one pass of an enhancer over one of ``tiles`` tiles."""
        share = Fraction(1, self.planes * tiles)
        seen: set[int] = set()

        def step(i: int | None) -> None:
            if self.cancel is not None:
                self.cancel.raise_if_cancelled()
            if i is None or i in seen:
                return
            seen.add(i)
            j = i - self.keep.start
            if not 0 <= j < len(self.parts) or j in self.counted:
                return  # a context frame, or one already counted
            self.parts[j] += share
            if self.parts[j] >= 1:
                self.counted.add(j)
                self.on_frame(len(self.counted))

        return step


class _Runner:
    """Runs one (n, H, W[, C]) sequence through the enhancer, tiled if asked; keeps the tile size."""

    def __init__(self, enhancer: Enhancer, *, tile: int | None, tile_overlap: int, cancel, notify,
                 batch: int = 1):
        self.enhancer = enhancer
        self.caps = enhancer.capabilities
        self.batch = max(1, int(batch))
        self.tile = tile
        self.tile_overlap = tile_overlap
        self.cancel = cancel
        self.notify = notify

    def __call__(
        self, seq: np.ndarray, keep: slice, progress: _ChunkProgress | None = None
    ) -> np.ndarray:
        """Enhance ``seq`` and return the outputs of the frames ``keep`` selects.

        ``progress`` (if given) hands out the ``step`` of each enhancer call.
        """
        n, h, w = seq.shape[:3]
        tileable = self.caps.tileable
        if self.tile is None:  # (enhance() resolves it up front; kept for direct use)
            self.tile = _auto_tile(self.enhancer, n, h, w) if tileable else 0
        while True:
            state = progress.snapshot() if progress is not None else None
            try:
                return self._run(seq, keep, self.tile, progress)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                self._free()
                if progress is not None:
                    progress.restore(state)
                current = self.tile or max(h, w)
                smaller = max(MIN_TILE, current // 2)
                memory = memory_kind(exc)
                if not tileable or smaller >= current:
                    raise DeviceError(
                        f"out of {memory} on {n} frames of {w}x{h}"
                        + (f" even with tiles of {current} px" if tileable else "")
                        + "; use a smaller --chunk"
                        + (", --tile or another device" if tileable else "")
                    ) from exc
                self.tile = smaller
                message = f"out of {memory}: retrying the chunk with {smaller} px tiles"
                log.warning(message)
                self.notify(message)

    def run_batch(
        self, seqs: list[np.ndarray], keeps: list[slice], trackers: list[_ChunkProgress | None]
    ) -> list[np.ndarray]:
        """Enhance equal-shaped sequences together (one network call) when the enhancer can;
        item ``k`` is what ``self(seqs[k], keeps[k], trackers[k])`` returns.

        Out of device memory, the batch is split in halves (and later batches are kept at
        that size); a single sequence falls back to the tiles of :meth:`__call__`.
        """
        n = len(seqs)
        if n == 1 or self.batch <= 1 or self._tiled(seqs[0]):
            if n > 1 and self.batch > 1:
                log.debug("batch of %d run one by one (tiled frames)", n)
            return [self(x, k, t) for x, k, t in zip(seqs, keeps, trackers, strict=True)]
        if n > self.batch:
            head = self.batch
            return (self.run_batch(seqs[:head], keeps[:head], trackers[:head])
                    + self.run_batch(seqs[head:], keeps[head:], trackers[head:]))
        distinct = {id(t): t for t in trackers if t is not None}
        states = {key: t.snapshot() for key, t in distinct.items()}
        steps = [t.pass_step(1) if t is not None else self._cancel_step() for t in trackers]
        try:
            outs = self._call_batch(seqs, steps)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            self._free()
            for key, t in distinct.items():
                t.restore(states[key])
            self.batch = max(1, n // 2)
            message = (f"out of {memory_kind(exc)}: running {self.batch} chunk(s) at a time "
                       f"instead of {n}")
            log.warning(message)
            self.notify(message)
            return self.run_batch(seqs, keeps, trackers)
        return [out[k] for out, k in zip(outs, keeps, strict=True)]

    def _tiled(self, seq: np.ndarray) -> bool:
        h, w = seq.shape[1:3]
        return bool(self.tile) and not (self.tile >= h and self.tile >= w)

    def _cancel_step(self):
        if self.cancel is None:
            return None
        cancel = self.cancel

        def step(i: int | None) -> None:
            cancel.raise_if_cancelled()

        return step

    def _call_batch(self, seqs: list[np.ndarray], steps) -> list[np.ndarray]:
        outs = self.enhancer.enhance_batch(seqs, steps=steps)
        s = self.caps.scale
        x = seqs[0]
        expect = (x.shape[0], x.shape[1] * s, x.shape[2] * s) + x.shape[3:]
        if len(outs) != len(seqs) or any(tuple(o.shape) != expect for o in outs):
            raise RuntimeError(
                f"enhancer {self.enhancer.name!r} returned {len(outs)} outputs of shapes "
                f"{[tuple(o.shape) for o in outs]} for {len(seqs)} chunks, expected {expect}"
            )
        return outs

    def _free(self) -> None:
        if self.caps.device is not None:
            release_memory(self.caps.device)

    def _call(self, seq: np.ndarray, step=None) -> np.ndarray:
        if step is None:
            step = self._cancel_step()
        out = self.enhancer.enhance(seq, step=step)
        s = self.caps.scale
        expect = (seq.shape[0], seq.shape[1] * s, seq.shape[2] * s) + seq.shape[3:]
        if tuple(out.shape) != expect:
            raise RuntimeError(
                f"enhancer {self.enhancer.name!r} returned shape {tuple(out.shape)}, expected {expect}"
            )
        return out

    def _run(
        self, seq: np.ndarray, keep: slice, tile: int, progress: _ChunkProgress | None
    ) -> np.ndarray:
        n, h, w = seq.shape[:3]
        if not tile or (tile >= h and tile >= w):
            return self._call(seq, progress and progress.pass_step(1))[keep]
        s = self.caps.scale
        ov = min(self.tile_overlap, tile // 2)
        core = np.arange(n)[keep]
        acc = np.zeros((len(core), h * s, w * s) + seq.shape[3:], np.float32)
        weight = np.zeros((h * s, w * s), np.float32)
        ys, xs = _tile_starts(h, tile, ov), _tile_starts(w, tile, ov)
        for y0 in ys:
            y1 = min(h, y0 + tile)
            wy = _ramp((y1 - y0) * s, y0, y1, h, ov * s)
            for x0 in xs:
                if self.cancel is not None:
                    self.cancel.raise_if_cancelled()
                x1 = min(w, x0 + tile)
                wx = _ramp((x1 - x0) * s, x0, x1, w, ov * s)
                step = progress and progress.pass_step(len(ys) * len(xs))
                out = self._call(np.ascontiguousarray(seq[:, y0:y1, x0:x1]), step)[keep]
                wgt = np.outer(wy, wx)
                region = (slice(None), slice(y0 * s, y1 * s), slice(x0 * s, x1 * s))
                if out.ndim == 4:
                    acc[region] += out.astype(np.float32) * wgt[None, :, :, None]
                else:
                    acc[region] += out.astype(np.float32) * wgt[None]
                weight[region[1:]] += wgt
        acc /= weight[None, :, :, None] if acc.ndim == 4 else weight[None]
        return saturate(acc, seq.dtype, overwrite=True)


class _ChunkReader:
    """Reads [lo, hi) along the time axis as (n, ...) with time first, reusing the previous block."""

    def __init__(self, frames, time_axis: int):
        self.frames = frames
        self.time_axis = time_axis
        self._lo = self._hi = 0
        self._block: np.ndarray | None = None

    def _fetch(self, lo: int, hi: int) -> np.ndarray:
        if self.time_axis == 0:
            block = np.asarray(self.frames[lo:hi])
        else:
            index = [slice(None)] * np.ndim(self.frames)
            index[self.time_axis] = slice(lo, hi)
            block = np.moveaxis(np.asarray(self.frames[tuple(index)]), self.time_axis, 0)
        if block.shape[0] != hi - lo:
            raise RuntimeError(f"frames[{lo}:{hi}] returned {block.shape[0]} frames")
        return block

    def read(self, lo: int, hi: int) -> np.ndarray:
        block = self._block
        if block is not None and self._lo <= lo < self._hi:
            reused = block[lo - self._lo : hi - self._lo]
            if hi > self._hi:
                reused = np.concatenate([reused, self._fetch(self._hi, hi)], axis=0)
            block = reused
        else:
            block = self._fetch(lo, hi)
        self._block, self._lo, self._hi = block, lo, hi
        return block


def _resolve_range(frame_range, length: int) -> tuple[int, int]:
    if frame_range is None:
        return 0, length
    start, stop = frame_range
    start = 0 if start is None else int(start)
    stop = length if stop is None else int(stop)
    if not 0 <= start < stop <= length:
        raise ParameterError(
            f"frame range: expected 0 <= start < stop <= {length} (half-open), got {start}:{stop}"
        )
    return start, stop


def enhance(
    frames,
    enhancer: Enhancer,
    *,
    chunk: int | None = None,
    overlap: int | None = None,
    tile: int | None = None,
    tile_overlap: int | None = None,
    batch: int | None = None,
    serial: bool = False,
    time_axis: int = 0,
    rgb: bool | None = None,
    frame_range: tuple[int | None, int | None] | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Enhance a frame array chunk by chunk, yielding frames in order.

    Parameters
    ----------
    frames : array-like, (T, H, W), (T, H, W, C) or nD with a time axis
        Anything numpy-like with ``shape``, ``dtype`` and slicing along the time axis (a lazy
        video, a zarr or dask array, a numpy array).  Read one chunk at a time; never modified.
        uint8, uint16 or float for network enhancers.
    enhancer : Enhancer
        The method, described by its ``capabilities``.  Not closed here (the caller owns it);
        its device memory cache is released when the generator ends for any reason.
    chunk : int, optional
        Output frames per chunk (L); default ``capabilities.default_chunk`` (shortened on
        the CPU when free memory is short).
    overlap : int, optional
        Context frames on each side of a chunk whose outputs are discarded (O); default
        ``capabilities.default_overlap``; must be >= ``capabilities.context``.
    tile : int, optional
        Square tile side in input pixels; 0 for no tiling; None picks from free device memory
        for chunks of ``L + 2 O`` frames (the longest the engine reads).
    tile_overlap : int, optional
        Overlap between tiles in input pixels; default ``capabilities.tile_overlap``.
    batch : int, optional
        Independent chunks (and extra planes) of equal length that go through the enhancer
        together (:meth:`~napari_vsr.enhancers.Enhancer.enhance_batch`), at most
        ``capabilities.max_batch``.  None: as many as the free device memory holds when the
        frames are not tiled, 1 on the CPU and for host methods.  Results per chunk do not
        depend on it (to the arithmetic's rounding).
    serial : bool
        Read, enhance and hand out frames one after another in the caller's thread (the
        baseline).  By default reading runs ahead in one thread and the enhancer in another,
        each bounded to about one batch of chunks ahead, so the caller's own work (writing,
        encoding) overlaps with both.  The frames are the same either way.
    time_axis : int
        Which axis is time (must come before the spatial axes).
    rgb : bool, optional
        Whether the last axis holds channels; None takes ``frames.rgb`` when the array has one
        (every reader's frame array does), else guesses like napari (last axis of 3 or 4).
    frame_range : (start, stop), optional
        Half-open range of output frames; context may still come from outside it.
    progress : callable, optional
        Called with a :class:`Progress` at the start, for
        every output frame the enhancer finishes (see ``step`` in
        :meth:`~napari_vsr.enhancers.Enhancer.enhance`), after each chunk if the enhancer
        reported fewer, and on an out-of-memory retry.  Called in the enhancer's thread (the
        caller's with ``serial``): it must be thread-safe and quick.
    cancel : CancelToken, optional
        Checked at every ``step`` of the enhancer (at least once per frame for the built-in
        methods), and between chunks, planes and tiles.

    Yields
    ------
    index : int
        Frame index along the time axis, ``start`` .. ``stop - 1`` in order.
    frame : ndarray
        The input frame's shape (time axis removed) with both spatial axes multiplied by
        ``capabilities.scale``; channels and extra axes kept; the source dtype.

    Raises
    ------
    Cancelled
        ``cancel`` was set.
    ParameterError
        Bad chunk, overlap, tile, batch, axis or range.
    UnsupportedDtypeError
        A network enhancer got something other than uint8, uint16 or float.
    DeviceError
        Out of device memory even at the smallest tile.
    """
    if rgb is None and isinstance(getattr(frames, "rgb", None), bool):
        rgb = frames.rgb  # the reader knows (e.g. a TIFF's samples axis); shape is a guess
    layout = _layout(np.shape(frames), time_axis, rgb)
    dtype = np.dtype(frames.dtype)
    caps = enhancer.capabilities
    overlap = caps.default_overlap if overlap is None else int(overlap)
    chunk = _auto_chunk(enhancer, layout, max(overlap, 0)) if chunk is None else int(chunk)
    if chunk < 1:
        raise ParameterError(f"chunk: expected at least 1 frame, got {chunk}")
    if overlap < caps.context:
        raise ParameterError(
            f"overlap: {enhancer.name!r} needs at least {caps.context} context frames on each "
            f"side, got {overlap}"
        )
    if tile is not None and tile != 0 and tile < 16:
        raise ParameterError(f"tile: expected 0 (no tiling) or at least 16 pixels, got {tile}")
    if tile and not caps.tileable:
        raise ParameterError(
            f"tile: the method {enhancer.name!r} cannot be tiled; leave tile unset"
        )
    if batch is not None and int(batch) < 1:
        raise ParameterError(f"batch: expected at least 1 chunk, got {batch}")
    if tile_overlap is None:
        tile_overlap = int(caps.tile_overlap)
    if tile_overlap < 0:
        raise ParameterError(f"tile overlap: expected >= 0 pixels, got {tile_overlap}")
    rgb01 = caps.input_kind == "rgb01"
    if rgb01:
        _check_rgb01_dtype(dtype)
        if layout.channels not in (0, 1, 2, 3, 4):
            raise ParameterError(f"frames: expected 1 to 4 channels, got {layout.channels}")
    start, stop = _resolve_range(frame_range, layout.length)
    direct = (
        rgb01
        and layout.channels == 3
        and dtype in (np.uint8, np.uint16)
        and caps.accepts_integer_rgb
    )
    longest = min(chunk + 2 * max(overlap, 0), layout.length)
    if tile is None:
        tile = _auto_tile(enhancer, longest, layout.height, layout.width) if caps.tileable else 0
    if batch is None:
        batch = _auto_batch(enhancer, longest, layout.height, layout.width, tile)
    batch = max(1, min(int(batch), caps.max_batch))
    plan = _Plan(layout, dtype, chunk, overlap, int(tile), tile_overlap, rgb01, direct, start,
                 stop, batch, bool(serial))
    return _generate(frames, enhancer, plan, progress, cancel)


@dataclass(frozen=True)
class _Plan:
    """Everything :func:`enhance` validated, for the generator."""

    layout: _Layout
    dtype: np.dtype
    chunk: int
    overlap: int
    tile: int
    tile_overlap: int
    rgb01: bool
    direct: bool  # uint8/uint16 RGB handed to an enhancer that scales on its device
    start: int
    stop: int
    batch: int
    serial: bool


@dataclass(frozen=True)
class _Chunk:
    """Output frames ``[start, stop)`` computed from input frames ``[lo, hi)``."""

    start: int
    stop: int
    lo: int
    hi: int

    @property
    def keep(self) -> slice:
        return slice(self.start - self.lo, self.stop - self.lo)


def _chunks(plan: _Plan) -> list[_Chunk]:
    out = []
    for s in range(plan.start, plan.stop, plan.chunk):
        e = min(s + plan.chunk, plan.stop)
        out.append(_Chunk(s, e, max(0, s - plan.overlap),
                          min(plan.layout.length, e + plan.overlap)))
    return out


def _groups(chunks: list[_Chunk], units_per_chunk: int, batch: int) -> list[list[_Chunk]]:
    """Consecutive chunks of the same length, ``batch`` enhancer calls' worth per group (a
    chunk with extra planes makes one call per plane)."""
    per_group = max(1, batch // units_per_chunk)
    groups: list[list[_Chunk]] = []
    for c in chunks:
        last = groups[-1] if groups else None
        if (last is not None and len(last) < per_group
                and last[0].hi - last[0].lo == c.hi - c.lo):
            last.append(c)
        else:
            groups.append([c])
    return groups


def _generate(
    frames, enhancer: Enhancer, plan: _Plan, progress, cancel
) -> Iterator[tuple[int, np.ndarray]]:
    layout = plan.layout
    caps = enhancer.capabilities
    chunks = _chunks(plan)
    n_planes = int(np.prod(layout.planes, dtype=np.int64))
    groups = _groups(chunks, n_planes, plan.batch)
    widest = max(len(g) for g in groups)
    log.info(
        "enhancing frames %d:%d of %d with %s (chunk %d, overlap %d, tile %d, batch %d, %s)",
        plan.start, plan.stop, layout.length, enhancer.name, plan.chunk, plan.overlap,
        plan.tile, plan.batch, "serial" if plan.serial else "overlapped stages",
    )
    reader = _ChunkReader(frames, layout.time_axis)
    clock = RateClock(plan.stop - plan.start)

    def read(stop: CancelToken | None) -> Iterator[tuple[_Chunk, np.ndarray]]:
        for c in chunks:
            if stop is not None:
                stop.raise_if_cancelled()
            yield c, reader.read(c.lo, c.hi)  # (n, *planes, H, W[, C])

    def report(record: Progress) -> None:
        if progress is not None:
            progress(record)

    def compute(stop: CancelToken) -> Iterator:
        # reading runs up to one group of chunks ahead of the enhancer
        blocks = produce(read, depth=widest + 1, name="napari-vsr-read", cancel=stop)
        return _compute(blocks, groups, enhancer, plan, clock, stop, report)

    try:
        report(clock.progress(0))
        if plan.serial:
            yield from _compute(read(cancel), groups, enhancer, plan, clock, cancel, report)
        else:
            # the enhancer runs up to one group of frames ahead of the caller
            yield from produce(compute, depth=max(2, plan.chunk * widest),
                               name="napari-vsr-enhance", cancel=cancel)
    finally:
        # the caller owns (and closes) the enhancer; the device cache is given back here,
        # also after a cancel or a failure
        if caps.device is not None:
            release_memory(caps.device)
    log.info("enhanced %d frames in %.1f s", plan.stop - plan.start,
             clock.progress(plan.stop - plan.start).elapsed_s)


def _compute(blocks, groups: list[list[_Chunk]], enhancer: Enhancer, plan: _Plan,
             clock: RateClock, cancel: CancelToken | None, report) -> Iterator:
    """The enhancer's stage: ``(chunk, block)`` in, ``(index, frame)`` out, in order; progress
    records to ``report`` as frames finish (in this stage's thread)."""
    layout = plan.layout
    scale = enhancer.capabilities.scale
    out_frame = _frame_shape(layout, scale)
    n_planes = int(np.prod(layout.planes, dtype=np.int64))
    done = 0  # frames of finished groups plus frames reported done inside the current one
    reported = 0

    def bump(_count: int) -> None:
        nonlocal done, reported
        done += 1
        reported = done
        report(clock.progress(done))

    def notify(message: str) -> None:
        report(clock.progress(done, message=message))

    runner = _Runner(enhancer, tile=plan.tile, tile_overlap=plan.tile_overlap, cancel=cancel,
                     notify=notify, batch=plan.batch)
    final = not layout.planes and (plan.direct or not plan.rgb01)
    blocks = iter(blocks)
    try:
        for group in groups:
            if cancel is not None:
                cancel.raise_if_cancelled()
            got = [next(blocks) for _ in group]
            before = done
            seqs, keeps, trackers, owners = [], [], [], []
            for k, (c, block) in enumerate(got):
                tracker = _ChunkProgress(c.keep, n_planes, cancel, bump)
                for plane in np.ndindex(*layout.planes):
                    seq = block[(slice(None),) + plane]
                    if plan.rgb01 and not plan.direct:
                        seq = _to_rgb(seq, layout.channels)
                    seqs.append(np.ascontiguousarray(seq))
                    keeps.append(c.keep)
                    trackers.append(tracker)
                    owners.append((k, plane))
            outs = runner.run_batch(seqs, keeps, trackers)
            for k, (c, block) in enumerate(got):
                mine = [(plane, o) for (kk, plane), o in zip(owners, outs, strict=True)
                        if kk == k]
                if final:
                    # the enhancer's output is already the final frames (T, H, W[, C]): hand
                    # out views of it instead of copying into a fresh array (a fresh x4 chunk
                    # per iteration costs page faults that dominate fast classic pipelines)
                    out = mine[0][1].astype(plan.dtype, copy=False)
                else:
                    out = np.empty((c.stop - c.start,) + out_frame, plan.dtype)
                    for plane, o in mine:
                        index = (slice(None),) + plane
                        if plan.rgb01 and not plan.direct:
                            alpha = None
                            if layout.channels in (2, 4):
                                alpha = _resize_alpha(block[index][c.keep][..., -1], scale)
                            out[index] = _from_rgb(o, alpha, layout.channels, plan.dtype)
                        else:
                            out[index] = o
                for i in range(c.stop - c.start):
                    yield c.start + i, out[i]
            done = before + sum(c.stop - c.start for c in group)
            if reported != done:  # the enhancer did not report every frame
                reported = done
                report(clock.progress(done))
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            close()


def _auto_batch(enhancer: Enhancer, n_frames: int, height: int, width: int, tile: int) -> int:
    """How many chunks of ``n_frames`` frames fit on the device together: 1 on the CPU, for
    host methods, for methods that take one chunk at a time and when frames are tiled (a
    tiled frame already fills the device)."""
    caps = enhancer.capabilities
    device = _device(caps)
    if caps.max_batch <= 1 or device is None or device.type == "cpu":
        return 1
    if tile and not (tile >= height and tile >= width):
        return 1
    need = enhancer.estimate_memory(n_frames, height, width)
    if not need:
        return 1
    from napari_vsr.models.device import free_memory_bytes

    free = free_memory_bytes(device)
    if free is None:
        return 1
    batch = int(min(caps.max_batch, max(1, free * MEMORY_HEADROOM // need)))
    log.info("automatic batch of %d chunk(s) of %d frames of %dx%d", batch, n_frames, height,
             width)
    return batch


def resolve_chunk(
    enhancer: Enhancer, shape: Sequence[int], overlap: int | None = None, *, rgb: bool | None = None
) -> int:
    """The chunk :func:`enhance` would choose with ``chunk=None`` (a job fixes it once for
    every segment, so that every process cuts the frames the same way)."""
    layout = _layout(shape, 0, rgb)
    overlap = enhancer.capabilities.default_overlap if overlap is None else int(overlap)
    return _auto_chunk(enhancer, layout, max(overlap, 0))


def resolve_tile(
    enhancer: Enhancer,
    shape: Sequence[int],
    chunk: int,
    overlap: int,
    *,
    rgb: bool | None = None,
) -> int:
    """The tile side :func:`enhance` would pick with ``tile=None`` for chunks of ``chunk``
    frames plus their context: 0 (no tiles) on the CPU or for a method that cannot be tiled,
    else from the device's free memory.  A job fixes it once, so that workers with other free
    memory cut the same tiles (a tiled output depends on the tile size)."""
    if not enhancer.capabilities.tileable:
        return 0
    layout = _layout(shape, 0, rgb)
    return _auto_tile(enhancer, chunk + 2 * max(overlap, 0), layout.height, layout.width)


def resolve_batch(
    enhancer: Enhancer,
    shape: Sequence[int],
    chunk: int,
    overlap: int,
    tile: int,
    *,
    rgb: bool | None = None,
) -> int:
    """The batch :func:`enhance` would pick with ``batch=None`` (a job fixes it once, so that
    every process runs its chunks the same way: batched arithmetic may round differently)."""
    layout = _layout(shape, 0, rgb)
    longest = min(chunk + 2 * max(overlap, 0), layout.length)
    return _auto_batch(enhancer, longest, layout.height, layout.width, tile)
