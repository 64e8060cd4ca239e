"""Frame-stack writers: a folder of numbered PNG files and a multi-page TIFF.

PNG folder: ``frame_000000.png, frame_000001.png, ...`` (uint8 and uint16 kept; gray, RGB and
RGBA kept) plus ``napari_vsr.json`` holding fps and metadata, which the folder reader picks up,
and the hidden marker ``.napari-vsr-output`` that lets ``overwrite`` replace the folder later
(see :mod:`napari_vsr.io.writer_base`).  float32 frames are refused (PNG has no float type: use
TIFF or zarr).

TIFF: one page per frame in a single contiguous series (axes ``TYX`` or ``TYXS``), dtype kept
(uint8, uint16, float32), fps and metadata stored as JSON in the first page's description;
stacks with channel or Z axes (``TCYX``, ``TZCYX``) as an ImageJ hyperstack with their axes and
channel names (see :class:`TiffStackWriter`).
Classic TIFF is limited to 4 GiB; use ``.zarr`` beyond that.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from napari_vsr.errors import UnsupportedDtypeError
from napari_vsr.io.stack_reader import FOLDER_META_NAME, TIFF_META_KEY
from napari_vsr.io.writer_base import (
    Writer,
    as_frame,
    remove_path,
    temp_path_beside,
    write_marker,
)

log = logging.getLogger(__name__)


def _jsonable(metadata: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        out[str(key)] = value
    return out


class PngFolderWriter(Writer):
    """Writes each frame as ``frame_NNNNNN.png`` into a new folder.

    Parameters
    ----------
    path : path-like
        The folder to create.
    overwrite : bool
        Replace an existing folder at commit.
    fps : float, optional
        Stored in ``napari_vsr.json``.
    metadata : dict, optional
        JSON-serialisable entries are stored in ``napari_vsr.json``.
    compression : int
        PNG compression level 0 (fast, big) .. 9 (slow, small).
    """

    folder_output = True
    size_ratio = 0.8  # PNG of natural images: typically 40-80 % of the raw bytes

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        overwrite: bool = False,
        fps: float | None = None,
        metadata: dict[str, Any] | None = None,
        compression: int = 3,
    ):
        super().__init__(path, overwrite=overwrite)
        self._tmp = temp_path_beside(self.path, keep_suffix=False)
        try:
            self._tmp.mkdir()
            write_marker(self._tmp, "frames")
        except OSError as exc:
            remove_path(self._tmp)
            raise self._init_failed(exc, "creating the frames folder") from exc
        self._fps = fps
        self._metadata = _jsonable(metadata)
        self._params = [cv2.IMWRITE_PNG_COMPRESSION, int(compression)]

    @property
    def temp_path(self) -> Path:
        return self._tmp

    def _write(self, frame: np.ndarray) -> None:
        if frame.dtype == np.bool_:
            frame = frame.astype(np.uint8) * 255
        if frame.dtype not in (np.uint8, np.uint16):
            raise UnsupportedDtypeError(
                f"PNG holds uint8 or uint16, not {frame.dtype}; write a .tif or .zarr instead, "
                "or convert the frames",
                path=self.path,
            )
        if frame.ndim == 3:
            code = cv2.COLOR_RGB2BGR if frame.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
            frame = cv2.cvtColor(frame, code)
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(frame), self._params)
        if not ok:
            raise OSError("PNG encoding failed")
        buf.tofile(self._tmp / f"frame_{self.frames_written:06d}.png")

    def update_metadata(self, metadata) -> bool:
        self._metadata = {**self._metadata, **_jsonable(metadata)}
        return True

    def _finish(self) -> None:
        doc = {"fps": self._fps, "n_frames": self.frames_written, "metadata": self._metadata}
        (self._tmp / FOLDER_META_NAME).write_text(json.dumps(doc, indent=1))


#: axis letters an ImageJ hyperstack can hold, in the only order ImageJ accepts
IMAGEJ_AXES = "TZCYXS"


def _imagej_ok(axes: str) -> bool:
    """Whether ``axes`` (T first, then a subsequence of ZCYXS) is an ImageJ hyperstack order."""
    it = iter(IMAGEJ_AXES)
    return (
        axes.startswith("T")
        and len(set(axes)) == len(axes)
        and all(a in it for a in axes)
        and not ("C" in axes and axes.endswith("S"))
    )


class TiffStackWriter(Writer):
    """Writes frames as pages of one multi-page TIFF, keeping the dtype and the axes.

    Frames are ``(H, W)`` or ``(H, W, S)`` (S = 3/4: RGB(A)), written as today's plain series
    (axes ``TYX``/``TYXS``, fps and metadata as JSON in the first page's description), or
    frames with more axes, e.g. ``(C, H, W)`` or ``(Z, C, H, W)``, named by ``axes``
    (``"TCYX"``, ``"TZCYX"``: the stack's axes with T first).  Those are written as an ImageJ
    hyperstack (axes in ImageJ's TZCYXS order; channel names as slice labels; fps and
    metadata as JSON in the ``Info`` property), so ImageJ/Fiji, tifffile and napari-vsr reopen
    them with the same axes and channel names; other axis orders are written as a tifffile
    "shaped" series with the axes in its JSON description.

    Parameters
    ----------
    path : path-like
        ``.tif`` or ``.tiff`` target.
    overwrite : bool
        Replace an existing file at commit.
    fps : float, optional
        Stored in the metadata JSON (``napari_vsr.fps``) and, for hyperstacks, as ImageJ's fps.
    metadata : dict, optional
        JSON-serialisable entries are stored in the metadata JSON.  ``metadata["axes"]`` and
        ``metadata["channel_names"]`` (what the TIFF reader reports) are used when ``axes`` and
        ``channel_names`` are not given.
    axes : str, optional
        Axis letters of the whole stack, T first, Y and X (and S) last (``"TYX"``, ``"TCYX"``,
        ``"TZCYX"``, ...); frames with more axes than ``(H, W[, S])`` are only taken when their
        ndim + 1 is its length.  Default: ``TYX`` / ``TYXS`` (from the first frame).
    channel_names : list of str, optional
        One name per channel (``C`` axis), stored as ImageJ labels and in the JSON.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        overwrite: bool = False,
        fps: float | None = None,
        metadata: dict[str, Any] | None = None,
        axes: str | None = None,
        channel_names: list[str] | None = None,
    ):
        super().__init__(path, overwrite=overwrite)
        self._tmp = temp_path_beside(self.path)
        try:
            self._tif = tifffile.TiffWriter(self._tmp)
        except OSError as exc:
            remove_path(self._tmp)
            raise self._init_failed(exc, "creating the TIFF file") from exc
        meta = dict(metadata or {})
        self._axes_given = axes is not None  # else from metadata: may describe another layout
        axes = axes if axes is not None else meta.get("axes")
        names = channel_names if channel_names is not None else meta.get("channel_names")
        self._axes = str(axes).upper() if axes else None
        self._names = [str(n) for n in names] if isinstance(names, (list, tuple)) else None
        self._meta = {**_jsonable(meta), "fps": fps}
        self._fps = fps
        self._mode: str | None = None  # "plain", "imagej" or "shaped", fixed by the first frame

    @property
    def temp_path(self) -> Path:
        return self._tmp

    def _fitted_axes(self, ndim: int) -> str | None:
        """``self._axes`` for frames of ``ndim`` axes, or None when they do not fit.

        Axes from the metadata of a stack with channels also fit one of its channels: a
        napari layer of one channel of a ``TZCYX`` stack has ``TZYX`` frames.
        """
        axes = self._axes
        if not axes or axes[-2:] not in ("YX", "XS"):
            return None
        if len(axes) == ndim + 1:
            return axes
        if not self._axes_given and len(axes) == ndim + 2 and "C" in axes:
            return axes.replace("C", "")
        return None

    def _frame_axes(self, frame: np.ndarray) -> str:
        axes = self._fitted_axes(frame.ndim)
        if axes is None:
            if self._axes is not None and self._axes_given:
                log.warning(
                    "%s: axes %r do not fit frames of shape %s; writing them as %s",
                    self.path,
                    self._axes,
                    frame.shape,
                    "TYX" if frame.ndim == 2 else "TYXS",
                )
            axes = "TYX" if frame.ndim == 2 else "TYXS"
        self._axes = axes
        return axes

    def _check_frame(self, frame: Any) -> np.ndarray:
        arr = np.asarray(frame)
        axes = self._fitted_axes(arr.ndim)
        if axes is None or axes in ("TYX", "TYXS"):
            return as_frame(arr, self.path)  # (H, W[, S]) frames, as every writer takes
        if arr.dtype.kind not in "uif":
            raise UnsupportedDtypeError(f"cannot write frames of dtype {arr.dtype}", path=self.path)
        return arr

    def _write(self, frame: np.ndarray) -> None:
        if frame.dtype not in (np.uint8, np.uint16, np.float32):
            raise UnsupportedDtypeError(
                f"the TIFF writer keeps uint8, uint16 or float32, not {frame.dtype}; convert "
                "the frames first",
                path=self.path,
            )
        axes = self._frame_axes(frame) if self._mode is None else self._axes
        rgb = axes.endswith("S") and frame.shape[-1] in (3, 4)
        if self._mode is None:
            if axes in ("TYX", "TYXS"):
                self._mode = "plain"
            else:
                self._mode = "imagej" if _imagej_ok(axes) else "shaped"
            if "C" not in axes:
                self._names = None
                self._meta.pop("channel_names", None)
            if self._names is not None:
                n = frame.shape[axes.index("C") - 1]
                if len(self._names) != n:
                    log.warning(
                        "%s: %d channel names for %d channels; names not stored",
                        self.path,
                        len(self._names),
                        n,
                    )
                    self._names = None
                    self._meta.pop("channel_names", None)
            if self._names is not None:
                self._meta["channel_names"] = self._names
            self._meta["axes"] = axes
        common = {
            "contiguous": True,
            "photometric": "rgb" if rgb else "minisblack",
            "extrasamples": ("unassalpha",) if rgb and frame.shape[-1] == 4 else None,
        }
        if self._mode == "imagej":
            first = self.frames_written == 0
            tags = None
            if first:
                info: dict[str, Any] = {"Info": json.dumps({TIFF_META_KEY: self._meta})}
                if self._names is not None:
                    info["Labels"] = list(self._names)
                tags = tifffile.imagej_metadata_tag(info, self._tif.tiff.byteorder)
            self._tif.write(
                frame,
                description="ImageJ=1.11a\n" if first else None,
                metadata=None,
                extratags=tags,
                **common,
            )
        else:
            self._tif.write(frame, metadata={"axes": axes, TIFF_META_KEY: self._meta}, **common)

    def _finish(self) -> None:
        if self._mode == "imagej":
            shape = (self.frames_written, *self._frame_shape)
            kwargs: dict[str, Any] = {"axes": self._axes}
            if self._fps:
                kwargs["fps"] = float(self._fps)
            rgb = self._axes.endswith("S")
            self._tif.overwrite_description(tifffile.imagej_description(shape, rgb=rgb, **kwargs))
        self._tif.close()

    def _discard(self) -> None:
        try:
            self._tif.close()
        except Exception:  # pragma: no cover - closing a half-written file
            pass
