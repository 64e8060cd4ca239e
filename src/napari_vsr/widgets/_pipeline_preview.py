"""Live preview of a pipeline on the frame under napari's time slider.

:func:`preview_frame` and :func:`preview_placement` are plain numpy/arithmetic (what the tests
check against :meth:`~napari_vsr.classic.Pipeline.apply`); :class:`LivePreview` runs them in
a napari thread worker, one at a time, the newest request replacing any that waits (a burst of
edits or a played time slider computes the first and the last state, not every one), and keeps
one preview layer placed over its source in world coordinates.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, QTimer, Signal

from napari_vsr.classic.pipeline import Pipeline
from napari_vsr.errors import ParameterError, VsrError
from napari_vsr.jobs.results import contrast_limits
from napari_vsr.placement import result_placement

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

log = logging.getLogger(__name__)

PREVIEW_SUFFIX = " pipeline preview"


def preview_name(source_name: str) -> str:
    """The preview layer's name for a source layer's name."""
    return f"{source_name}{PREVIEW_SUFFIX}"


def frame_window(t: int, context: int, length: int) -> tuple[int, int]:
    """Half-open range of the frames a preview of frame ``t`` reads: ``t`` and ``context``
    frames on each side, cut at the ends of the clip (the engine does the same)."""
    return max(0, t - context), min(length, t + context + 1)


def preview_frame(pipeline: Pipeline, window: np.ndarray, index: int) -> np.ndarray:
    """Frame ``index`` of ``window`` run through ``pipeline``, with the window's other frames
    as the temporal context.

    Parameters
    ----------
    pipeline : Pipeline
    window : ndarray, (T, H, W) or (T, H, W, C), uint8/uint16/float32
        The frame and its neighbours (see :func:`frame_window`).  Not modified.
    index : int
        The frame of ``window`` to show.

    Returns
    -------
    ndarray, (H', W'[, C]), same dtype
        Equal to ``pipeline.apply(window[index])`` for a pipeline without temporal steps.
    """
    if pipeline.temporal and window.shape[0] > 1:
        return pipeline.apply_stack(window)[index]
    return pipeline.apply(window[index])


def preview_placement(
    scale: tuple[float, ...],
    translate: tuple[float, ...],
    in_size: tuple[int, int],
    out_size: tuple[int, int],
    t: int | None,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Scale and translate of a preview layer over its source layer.

    Parameters
    ----------
    scale, translate : tuple of float
        The source layer's, one per layer dimension (the RGB axis is not one); the last two
        are (y, x).
    in_size, out_size : (int, int)
        Frame ``(height, width)`` before and after the pipeline (each axis has its own factor:
        a resize to a fixed size may stretch).
    t : int or None
        The source frame shown, when the source has a time axis (axis 0); the preview layer
        holds that one frame at that time.  None for a single image.

    Returns
    -------
    (scale, translate)
        As :func:`~napari_vsr.placement.result_placement` places result layers.
    """
    scale, translate = tuple(map(float, scale)), tuple(map(float, translate))
    pad = 0 if t is not None else 1  # result_placement wants a time axis in front
    full_s, full_t = (1.0,) * pad + scale, (0.0,) * pad + translate
    factors = (out_size[0] / in_size[0], out_size[1] / in_size[1])
    new_s, new_t = list(full_s), list(full_t)
    for axis, factor in zip((-2, -1), factors, strict=True):
        s, tr = result_placement(full_s, full_t, factor, first_frame=t or 0)
        new_s[axis], new_t[axis] = s[axis], tr[axis]
        new_t[0] = tr[0]
    return tuple(new_s[pad:]), tuple(new_t[pad:])


@dataclass
class PreviewRequest:
    """What one preview computes: made on the GUI thread, computed on a worker."""

    pipeline: Pipeline
    data: Any  # the source layer's array (read on the worker)
    t: int | None  # the frame (None: a single image)
    window: tuple[int, int]
    rgb: bool
    source_name: str
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    display: dict[str, Any] = field(default_factory=dict)
    generation: int = 0

    def key(self) -> tuple:
        """What makes two requests give the same layer (the pipeline's name does not)."""
        return (id(self.data), self.source_name, self.t, self.scale, self.translate,
                json.dumps(self.pipeline.to_dict()["steps"], sort_keys=True))


def compute(request: PreviewRequest) -> tuple[PreviewRequest, np.ndarray | str]:
    """The preview layer's data: ``(1, H', W'[, C])`` for a clip (frame ``t``), ``(H', W'[,
    C])`` for a single image; or, for what the user can fix (a dtype the operators refuse,
    frames too large), the message.  Runs on a worker thread."""
    try:
        if request.t is None:
            image = np.asarray(request.data)
            request.pipeline.check_size(*image.shape[:2])
            return request, request.pipeline.apply(image)
        lo, hi = request.window
        window = np.asarray(request.data[lo:hi])
        request.pipeline.check_size(*window.shape[1:3])
        return request, preview_frame(request.pipeline, window, request.t - lo)[np.newaxis]
    except VsrError as exc:  # words for the user; anything else is a bug: napari reports it
        return request, str(exc)


class LivePreview(QObject):
    """Keeps ``"<source> pipeline preview"`` up to date while enabled.

    Parameters
    ----------
    viewer : napari.Viewer
    layer_getter : callable
        The source layer now (or None).
    pipeline_getter : callable
        The pipeline now; what it raises (``ParameterError``) is shown, not previewed.

    Signals
    -------
    status(str)
        A line for the owner's message label ("" when the last preview went well).
    updated()
        After the preview layer was added or updated.
    """

    status = Signal(str)
    updated = Signal()

    def __init__(self, viewer: napari.Viewer, layer_getter: Callable[[], Image | None],
                 pipeline_getter: Callable[[], Pipeline], parent: QObject | None = None):
        super().__init__(parent)
        self.viewer = viewer
        self._layer_getter = layer_getter
        self._pipeline_getter = pipeline_getter
        self.layer: Image | None = None
        self.enabled = False
        self._worker = None
        self._pending: PreviewRequest | None = None
        self._last_key: tuple | None = None
        self._generation = 0
        # napari's time-slider event calls this hook, not a method: a builder deleted with the
        # preview on deletes this QObject, and napari cannot even disconnect a method of a
        # deleted QObject (it looks the method up on it)
        self._on_step = _Hook(self, "request")
        self._on_removed = _Hook(self, "_layer_removed")
        for hook in (self._on_step, self._on_removed):
            self.destroyed.connect(hook.kill)

    # --- switching ------------------------------------------------------------------------
    def set_enabled(self, on: bool) -> None:
        """Start (compute the current frame now) or stop (remove the layer)."""
        on = bool(on)
        if on == self.enabled:
            return
        self.enabled = on
        self._generation += 1
        self._pending = None
        self._last_key = None
        dims = self.viewer.dims.events.current_step
        removed = self.viewer.layers.events.removed
        if on:
            dims.connect(self._on_step)
            removed.connect(self._on_removed)
            self.request()
        else:
            dims.disconnect(self._on_step)
            removed.disconnect(self._on_removed)
            self.remove_layer()
            self.status.emit("")

    def remove_layer(self) -> None:
        if self.layer is not None and self.layer in self.viewer.layers:
            self.viewer.layers.remove(self.layer)
        self.layer = None

    @property
    def busy(self) -> bool:
        """Whether a preview is being computed or waits."""
        return self._worker is not None or self._pending is not None

    # --- requests -------------------------------------------------------------------------
    def request(self, event: Any = None) -> None:
        """Preview the current frame with the current pipeline (after an edit, a time step or
        another source); queued behind a running preview, replacing any queued one."""
        if not self.enabled:
            return
        try:
            req = self._make_request()
        except (VsrError, ValueError) as exc:
            self.status.emit(f"Preview: {exc}")
            return
        if req is None:
            return
        if req.key() == self._last_key and self.layer is not None \
                and self.layer in self.viewer.layers:
            return
        self._last_key = req.key()
        if self._worker is not None:
            self._pending = req
        else:
            self._start(req)

    def _make_request(self) -> PreviewRequest | None:
        layer = self._layer_getter()
        if layer is None:
            self.status.emit("Preview: open an image layer (a video or an image) first")
            return None
        if self.layer is not None and layer.name == self.layer.name:
            return None  # the preview itself was selected
        if getattr(layer, "multiscale", False):
            raise ParameterError(f"layer {layer.name!r} is multiscale; the preview needs a "
                                 "single-scale image")
        pipeline = self._pipeline_getter()
        rgb = bool(layer.rgb)
        ndim = layer.ndim  # without the RGB axis
        if ndim not in (2, 3):
            raise ParameterError(
                f"layer {layer.name!r} has {ndim} dimensions; the preview works on one image "
                "(Y, X) or a clip (T, Y, X)")
        shape = tuple(int(s) for s in layer.data.shape)
        scale = tuple(float(v) for v in layer.scale)
        translate = tuple(float(v) for v in layer.translate)
        display = {}
        if not rgb:
            display = {"contrast_limits": list(layer.contrast_limits),
                       "colormap": layer.colormap}
        t = None
        window = (0, 1)
        if ndim == 3:
            world = layer.world_to_data(self.viewer.dims.point)
            t = int(min(max(round(float(world[0])), 0), shape[0] - 1))
            window = frame_window(t, pipeline.context, shape[0])
        return PreviewRequest(pipeline=pipeline, data=layer.data, t=t, window=window, rgb=rgb,
                              source_name=layer.name, scale=scale, translate=translate,
                              display=display, generation=self._generation)

    def _start(self, req: PreviewRequest) -> None:
        worker = create_worker(compute, req, _start_thread=False,
                               _connect={"returned": self._show, "errored": self._failed,
                                         "finished": self._next})
        self._worker = worker
        worker.start()

    def _next(self) -> None:
        self._worker = None
        pending, self._pending = self._pending, None
        if pending is not None and self.enabled and pending.generation == self._generation:
            self._start(pending)

    def _failed(self, exc: BaseException) -> None:
        """An unexpected error (napari shows it as a notification too)."""
        self._last_key = None  # the same state may be asked again
        log.error("pipeline preview failed", exc_info=exc)
        self.status.emit(f"Preview failed: {type(exc).__name__}: {exc}")

    # --- the layer ------------------------------------------------------------------------
    def _layer_removed(self, event: Any) -> None:
        """The source went: its preview goes too (the preview layer itself: forgotten)."""
        gone = getattr(event, "value", None)
        if gone is None or self.layer is None:
            return
        if gone.name == self.layer.name:
            self.layer = None
            self._last_key = None
        elif preview_name(gone.name) == self.layer.name:
            # not inside napari's removal (the viewer may be clearing its list): next turn
            QTimer.singleShot(0, self._drop_orphan)

    def _drop_orphan(self) -> None:
        layer = self.layer
        if layer is None or layer not in self.viewer.layers:
            return
        source = layer.metadata.get("napari_vsr_preview", {}).get("source")
        if source not in self.viewer.layers:
            self.remove_layer()
            self._last_key = None

    def _show(self, result: tuple[PreviewRequest, np.ndarray | str]) -> None:
        req, image = result
        if not self.enabled or req.generation != self._generation:
            return
        if isinstance(image, str):
            self._last_key = None
            self.status.emit(f"Preview: {image}")
            return
        source = self._layer_getter()
        if source is None or source.name != req.source_name or source not in self.viewer.layers:
            return  # the source went away (or the viewer is closing) while it computed
        frame = image[0] if req.t is not None else image
        in_size = _frame_size(req)
        out_size = frame.shape[:2]
        scale, translate = preview_placement(req.scale, req.translate, in_size, out_size, req.t)
        name = preview_name(req.source_name)
        metadata = {"napari_vsr_preview": {"source": req.source_name, "frame": req.t,
                                           "pipeline": req.pipeline.to_dict()}}
        layer = self.layer
        if layer is not None and layer in self.viewer.layers and layer.name == name \
                and layer.rgb == req.rgb and layer.data.ndim == image.ndim:
            layer.data = image
            layer.scale = scale
            layer.translate = translate
            layer.metadata = metadata
        else:
            self.remove_layer()
            self.layer = self.viewer.add_image(
                image, name=name, rgb=req.rgb, scale=scale, translate=translate,
                metadata=metadata, **(req.display or _limits(image.dtype)))
        self.status.emit("")
        self.updated.emit()


class _Hook:
    """Calls a method of a :class:`LivePreview` until the preview is deleted (a plain object:
    safe to keep in napari's events after the QObject is gone)."""

    def __init__(self, preview: LivePreview, method: str):
        self._preview = weakref.ref(preview)
        self._method = method
        self.alive = True

    def kill(self, *args: Any) -> None:
        self.alive = False

    def __call__(self, event: Any = None) -> None:
        preview = self._preview() if self.alive else None
        if preview is not None:
            getattr(preview, self._method)(event)


def _frame_size(req: PreviewRequest) -> tuple[int, int]:
    shape = tuple(np.shape(req.data))
    return (shape[-3], shape[-2]) if req.rgb else (shape[-2], shape[-1])


def _limits(dtype) -> dict[str, Any]:
    """Contrast limits of the dtype's range (napari never scans the data to guess them)."""
    return {"contrast_limits": contrast_limits(dtype)}
