"""Frame-stack writers: a folder of numbered PNG files and a multi-page TIFF.

PNG folder: ``frame_000000.png, frame_000001.png, ...`` (uint8 and uint16 kept; gray, RGB and
RGBA kept) plus ``napari_vsr.json`` holding fps and metadata, which the folder reader picks up,
and the hidden marker ``.napari-vsr-output`` that lets ``overwrite`` replace the folder later
(see :mod:`napari_vsr.io.writer_base`).  float32 frames are refused (PNG has no float type: use
TIFF or zarr).

TIFF: one page per frame in a single contiguous series (axes ``TYX`` or ``TYXS``), dtype kept
(uint8, uint16, float32), fps and metadata stored as JSON in the first page's description.
Classic TIFF is limited to 4 GiB; use ``.zarr`` beyond that.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from napari_vsr.errors import UnsupportedDtypeError
from napari_vsr.io.stack_reader import FOLDER_META_NAME, TIFF_META_KEY
from napari_vsr.io.writer_base import Writer, remove_path, temp_path_beside, write_marker


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

    def _finish(self) -> None:
        doc = {"fps": self._fps, "n_frames": self.frames_written, "metadata": self._metadata}
        (self._tmp / FOLDER_META_NAME).write_text(json.dumps(doc, indent=1))


class TiffStackWriter(Writer):
    """Writes frames as pages of one multi-page TIFF, keeping the dtype.

    Parameters
    ----------
    path : path-like
        ``.tif`` or ``.tiff`` target.
    overwrite : bool
        Replace an existing file at commit.
    fps : float, optional
        Stored in the description JSON (``napari_vsr.fps``).
    metadata : dict, optional
        JSON-serialisable entries are stored in the description JSON.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        overwrite: bool = False,
        fps: float | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        super().__init__(path, overwrite=overwrite)
        self._tmp = temp_path_beside(self.path)
        try:
            self._tif = tifffile.TiffWriter(self._tmp)
        except OSError as exc:
            remove_path(self._tmp)
            raise self._init_failed(exc, "creating the TIFF file") from exc
        self._meta = {**_jsonable(metadata), "fps": fps}

    @property
    def temp_path(self) -> Path:
        return self._tmp

    def _write(self, frame: np.ndarray) -> None:
        if frame.dtype not in (np.uint8, np.uint16, np.float32):
            raise UnsupportedDtypeError(
                f"the TIFF writer keeps uint8, uint16 or float32, not {frame.dtype}; convert "
                "the frames first",
                path=self.path,
            )
        rgb = frame.ndim == 3
        self._tif.write(
            frame,
            contiguous=True,
            photometric="rgb" if rgb else "minisblack",
            extrasamples=("unassalpha",) if rgb and frame.shape[2] == 4 else None,
            metadata={"axes": "TYXS" if rgb else "TYX", TIFF_META_KEY: self._meta},
        )

    def _finish(self) -> None:
        self._tif.close()

    def _discard(self) -> None:
        try:
            self._tif.close()
        except Exception:  # pragma: no cover - closing a half-written file
            pass
