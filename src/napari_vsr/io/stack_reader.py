"""Frame stacks: a folder of numbered images, or a multi-page TIFF.

Folder rules: files with an image extension (png, jpg/jpeg, tif/tiff, bmp; any case) are
frames, everything else is ignored; they are ordered by natural sort (``frame_2`` before
``frame_10``).  Every frame must have the size, channel count and dtype of the first one.
Frames are decoded on access.

TIFF rules: the first series is read with tifffile, keeping uint8/uint16/float32.  Layouts are
put into napari's convention: ``(T, H, W)`` gray or ``(T, H, W, C)`` with C in 3/4 channels last;
a channel-first ``(T, C, H, W)`` series with 3 or 4 channels is transposed.  One frame per page
is read lazily; other layouts are loaded whole at open.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from napari_vsr.errors import (
    FrameStackError,
    SourceNotFoundError,
    UnreadableMediaError,
    UnsupportedDtypeError,
)
from napari_vsr.io.frame_array import DEFAULT_CACHE_MB, FrameArray

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
#: key of the JSON document the TIFF writer stores in the first page's description
TIFF_META_KEY = "napari_vsr"
#: side file of a frame folder with fps and metadata (written by the PNG folder writer)
FOLDER_META_NAME = "napari_vsr.json"


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: ``f2`` < ``f10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, naturally sorted (hidden files skipped)."""
    folder = Path(folder)
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def _check_dtype(dtype: np.dtype, path: Path) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in SUPPORTED_DTYPES:
        raise UnsupportedDtypeError(
            f"pixel type {dtype} is not supported (expected uint8, uint16 or float32); "
            "convert the data first",
            path=path,
        )
    return dtype


def read_image(path: Path) -> np.ndarray:
    """Decode one image file.

    Returns
    -------
    ndarray, (H, W) or (H, W, C) with C in 3/4 (RGB/RGBA order), source dtype.
    """
    if path.suffix.lower() in (".tif", ".tiff"):
        try:
            arr = tifffile.imread(path, key=0)
        except Exception as exc:
            raise UnreadableMediaError(f"cannot read TIFF image ({exc})", path=path) from exc
    else:
        buf = np.fromfile(path, dtype=np.uint8)
        arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
        if arr is None:
            raise UnreadableMediaError("not a readable image (empty or corrupt)", path=path)
        if arr.ndim == 3 and arr.shape[2] == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
        elif arr.ndim == 3 and arr.shape[2] == 4:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    return arr


def _header_size(path: Path) -> tuple[int, int] | None:
    """(H, W) from the file header without decoding pixels; None when unknown."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.height, im.width
    except Exception:
        return None


class FolderFrames(FrameArray):
    """A folder of image files as a lazy ``(T, H, W[, C])`` array.

    Parameters
    ----------
    path : path-like
        The folder.
    cache_mb : float
        Budget of the decoded-frame cache.
    """

    def __init__(self, path: str | os.PathLike, *, cache_mb: float = DEFAULT_CACHE_MB):
        path = Path(path)
        if not path.is_dir():
            raise SourceNotFoundError("no such folder", path=path)
        files = list_image_files(path)
        if not files:
            raise FrameStackError(
                "the folder holds no image frames (expected png, jpg, jpeg, tif, tiff or bmp "
                "files)",
                path=path,
            )
        first = read_image(files[0])
        dtype = _check_dtype(first.dtype, files[0])
        for f in files[1:]:
            size = _header_size(f)
            if size is not None and size != first.shape[:2]:
                raise FrameStackError(
                    f"frames differ in size: {files[0].name} is {first.shape[1]}x{first.shape[0]} "
                    f"but {f.name} is {size[1]}x{size[0]} (width x height); all frames must "
                    "match",
                    path=path,
                )
        self._files = files
        self._path = path
        meta: dict[str, Any] = {
            "kind": "folder",
            "source_path": str(path.resolve()),
            "n_frames": len(files),
            "files": [f.name for f in files],
            "fps": None,
        }
        side = path / FOLDER_META_NAME
        if side.is_file():
            try:
                doc = json.loads(side.read_text())
                meta["fps"] = float(doc["fps"]) if doc.get("fps") else None
                if doc.get("metadata"):
                    meta["stored_metadata"] = doc["metadata"]
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                log.warning("%s: ignoring unreadable %s (%s)", path, FOLDER_META_NAME, exc)
        super().__init__((len(files), *first.shape), dtype, meta, cache_mb=cache_mb)
        self._cache.put(0, first)

    def _read_frames(self, indices: list[int]):
        for i in indices:
            arr = read_image(self._files[i])
            if arr.shape != self.frame_shape or arr.dtype != self.dtype:
                raise FrameStackError(
                    f"frame {self._files[i].name} is {arr.shape} {arr.dtype} but the stack is "
                    f"{self.frame_shape} {self.dtype} (from {self._files[0].name}); all frames "
                    "must match",
                    path=self._path,
                )
            yield i, arr


class TiffFrames(FrameArray):
    """The first series of a (multi-page) TIFF as a ``(T, H, W[, C])`` array.

    Parameters
    ----------
    path : path-like
        A ``.tif``/``.tiff`` file.
    cache_mb : float
        Budget of the decoded-frame cache.
    """

    def __init__(self, path: str | os.PathLike, *, cache_mb: float = DEFAULT_CACHE_MB):
        path = Path(path)
        if not path.is_file():
            raise SourceNotFoundError("no such file", path=path)
        if path.stat().st_size == 0:
            raise UnreadableMediaError("the file is empty (0 bytes)", path=path)
        try:
            tif = tifffile.TiffFile(path)
        except Exception as exc:
            raise UnreadableMediaError(f"not a readable TIFF file ({exc})", path=path) from exc
        self._tif = tif
        self._path = path
        try:
            shape, dtype, meta = self._layout(tif, path)
        except BaseException:
            tif.close()
            raise
        super().__init__(shape, dtype, meta, cache_mb=cache_mb)

    def _layout(self, tif: tifffile.TiffFile, path: Path):
        series = tif.series[0]
        dtype = _check_dtype(series.dtype, path)
        axes, shape = series.axes, tuple(series.shape)
        # drop singleton axes except the spatial ones
        keep = [k for k, a in enumerate(axes) if shape[k] != 1 or a in "YX"]
        axes = "".join(axes[k] for k in keep)
        shape = tuple(shape[k] for k in keep)
        chan = [k for k, a in enumerate(axes) if a in "CS"]
        other = [k for k, a in enumerate(axes) if a not in "CSYX"]
        if len(chan) > 1 or len(other) > 1 or "Y" not in axes or "X" not in axes:
            raise FrameStackError(
                f"unsupported TIFF layout {series.axes} {series.shape}: expected frames along one "
                "axis, height, width and at most one channel axis",
                path=path,
            )
        if chan and shape[chan[0]] not in (3, 4):
            raise FrameStackError(
                f"unsupported channel count {shape[chan[0]]} in TIFF layout {series.axes}: expected "
                "gray, RGB (3) or RGBA (4)",
                path=path,
            )
        order = other + [axes.index("Y"), axes.index("X")] + chan
        self._transpose = tuple(order) if order != list(range(len(order))) else None
        out_shape = tuple(shape[k] for k in order)
        if not other:
            out_shape = (1, *out_shape)
        n = out_shape[0]
        pages = series.pages
        self._whole: np.ndarray | None = None
        self._page_of_frame = None
        page_shape = (
            tuple(s for s in pages[0].shape if s != 1) if pages and pages[0] is not None else None
        )
        frame_shape = out_shape[1:]
        if (
            len(pages) == n
            and n > 1
            and page_shape
            in (
                frame_shape,
                frame_shape[::-1],
                (frame_shape[-1], *frame_shape[:-1]) if len(frame_shape) == 3 else None,
            )
        ):
            self._page_of_frame = True
        else:
            data = series.asarray()
            data = data.reshape(shape)
            if self._transpose:
                data = np.transpose(data, self._transpose)
            self._whole = np.ascontiguousarray(data.reshape(out_shape))
        fps = None
        extra: dict[str, Any] = {}
        try:
            desc = tif.pages[0].description
            doc = json.loads(desc) if desc and desc.lstrip().startswith("{") else {}
            extra = doc.get(TIFF_META_KEY, {}) if isinstance(doc, dict) else {}
            fps = extra.get("fps")
        except (ValueError, AttributeError):
            pass
        if fps is None and tif.is_imagej and tif.imagej_metadata:
            fps = tif.imagej_metadata.get("fps") or (
                1.0 / tif.imagej_metadata["finterval"]
                if tif.imagej_metadata.get("finterval")
                else None
            )
        meta = {
            "kind": "tiff",
            "source_path": str(path.resolve()),
            "n_frames": n,
            "axes": series.axes,
            "fps": float(fps) if fps else None,
        }
        if extra:
            meta["stored_metadata"] = extra
        return out_shape, dtype, meta

    def _read_frames(self, indices: list[int]):
        for i in indices:
            if self._whole is not None:
                yield i, self._whole[i].copy()
                continue
            page = self._tif.series[0].pages[i]
            arr = page.asarray()
            arr = arr.reshape(tuple(s for s in arr.shape if s != 1) or arr.shape)
            if arr.shape != self.frame_shape and arr.ndim == 3:
                arr = np.moveaxis(arr, 0, -1)  # planar (C, H, W) page
            if arr.shape != self.frame_shape:
                raise FrameStackError(
                    f"page {i} is {arr.shape}, expected {self.frame_shape}", path=self._path
                )
            yield i, np.ascontiguousarray(arr)

    def _close(self) -> None:
        self._tif.close()
