"""What a Preview computes: the frame under the time slider, the part of it the canvas shows
(RealBasicVSR: at most 256 px a side, from the middle of the view), and the frames around it
the method needs.  Qt-free; the Enhance widget turns the plan into a job and an estimate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_vsr.jobs.request import MethodOptions

#: the largest preview region, in input pixels per side
PREVIEW_MAX_SIDE = {"realbasicvsr": 256}


class Crop:
    """A lazy (T, y0:y1, x0:x1[, C]) window of a (T, H, W[, C]) array, read by frame index or
    frame slice (what the job runner asks of an array source)."""

    def __init__(self, data, y: slice, x: slice):
        self._data, self._y, self._x = data, y, x
        self.dtype = data.dtype
        self.shape = (data.shape[0], y.stop - y.start, x.stop - x.start, *data.shape[3:])
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, tuple):
            if len(key) != 1:
                raise IndexError("a preview region is read by frame index or frame slice only")
            key = key[0]
        frames = np.asarray(self._data[key])
        if isinstance(key, slice):
            return frames[:, self._y, self._x]
        return frames[self._y, self._x]


@dataclass(frozen=True)
class PreviewPlan:
    """Frame ``t``, region ``y`` x ``x`` (data pixels), ``frames`` read, ``overlap`` asked of
    the engine (None: the method's), ``device`` kind, ``source`` (a :class:`Crop`, or None
    for the whole frame) and a ``key`` that changes when any of it does."""

    t: int
    y: slice
    x: slice
    frames: int
    overlap: int | None
    device: str
    source: Any
    key: tuple


def device_kind(method: MethodOptions) -> str:
    """"cpu", "cuda" or "mps": where ``method`` runs ("auto" resolved; classic: the CPU)."""
    if method.method != "realbasicvsr":
        return "cpu"
    if method.device in ("auto", None):
        try:
            import torch
        except ImportError:
            return "cpu"
        return "cuda" if torch.cuda.is_available() else "cpu"
    return method.device.split(":")[0]


def clamp(s: slice, side: int) -> slice:
    """At most ``side`` pixels of ``s``, around its middle."""
    if s.stop - s.start <= side:
        return s
    start = max(s.start, (s.start + s.stop) // 2 - side // 2)
    return slice(start, start + side)


def visible_region(layer, h: int, w: int) -> tuple[slice, slice]:
    """The part of ``layer``'s frame the canvas shows, in data pixels (napari's
    ``corner_pixels``); the whole frame when the view cannot tell or shows under 8 px."""
    try:
        corners = np.asarray(layer.corner_pixels)
        (y0, x0), (y1, x1) = corners[0][1:3], corners[1][1:3]
    except Exception:  # a layer napari has not drawn yet
        return slice(0, h), slice(0, w)
    y0, x0 = max(0, int(y0)), max(0, int(x0))
    y1, x1 = min(h, int(y1) + 1), min(w, int(x1) + 1)
    if y1 - y0 < 8 or x1 - x0 < 8:
        return slice(0, h), slice(0, w)
    return slice(y0, y1), slice(x0, x1)


def plan_preview(layer, world_t: float, method: MethodOptions,
                 overlap: int | None) -> PreviewPlan:
    """The preview of ``layer`` at world time ``world_t`` with ``method``."""
    n = int(layer.data.shape[0])
    t = int(min(max(round((world_t - layer.translate[0]) / layer.scale[0]), 0), n - 1))
    h, w = (int(v) for v in layer.data.shape[1:3])
    y, x = visible_region(layer, h, w)
    side = PREVIEW_MAX_SIDE.get(method.method)
    if side is not None:
        y, x = clamp(y, side), clamp(x, side)
    frames = 1
    if method.method == "realbasicvsr":
        from napari_vsr.enhancers.realbasicvsr import DEFAULT_OVERLAP

        overlap = DEFAULT_OVERLAP if overlap is None else overlap
        frames = min(n, t + overlap + 1) - max(0, t - overlap)
    whole = (y.start, y.stop, x.start, x.stop) == (0, h, 0, w)
    return PreviewPlan(t, y, x, frames, overlap, device_kind(method),
                       None if whole else Crop(layer.data, y, x),
                       (t, y.start, y.stop, x.start, x.stop, overlap))
