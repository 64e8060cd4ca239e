"""Frame stacks: a folder of numbered images, or a multi-page TIFF.

Folder rules: files with an image extension (png, jpg/jpeg, tif/tiff, bmp; any case) are
frames, everything else is ignored; they are ordered by natural sort (``frame_2`` before
``frame_10``).  Every frame must have the size, channel count and dtype of the first one.
Frames are decoded on access; PNG alpha (RGBA) and 16 bits are kept.  A frame that cannot be
read raises one project error naming that file.

TIFF rules: the first series is read with tifffile (compressed pages through ``imagecodecs``),
keeping uint8/uint16/float32 and every axis the file's metadata names, in the order
``(T, [Z, ...,] [C,] Y, X[, S])`` (see :class:`TiffFrames`).  Before anything is decoded, every
byte the series needs is checked against the file size (page offsets and byte counts, or the
extent of contiguous data, and the image count the metadata promises), so a truncated file is
refused at open.  tifffile, imagecodecs and OS errors become project errors in one place,
:func:`_translate_tiff_error`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from napari_vsr.errors import (
    FrameStackError,
    SourceNotFoundError,
    TruncatedMediaError,
    UnreadableMediaError,
    UnsupportedDtypeError,
    VsrError,
)
from napari_vsr.io.frame_array import DEFAULT_CACHE_MB, FrameArray

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
#: key of the JSON document the TIFF writer stores in the first page's description
TIFF_META_KEY = "napari_vsr"
#: side file of a frame folder with fps and metadata (written by the PNG folder writer)
FOLDER_META_NAME = "napari_vsr.json"
#: files that make a folder a zarr store (v2 and v3): not a frame folder
ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")


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


def _translate_os_error(exc: OSError, path: Path) -> VsrError:
    """An OS error on one frame file as a one-line project error naming that file."""
    if isinstance(exc, PermissionError):
        return UnreadableMediaError("cannot read the frame: permission denied", path=path)
    if isinstance(exc, FileNotFoundError):
        return SourceNotFoundError("the frame file disappeared while reading", path=path)
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return UnreadableMediaError(f"cannot read the frame: {reason}", path=path)


def _imdecode_quietly(buf: np.ndarray) -> np.ndarray | None:
    """``cv2.imdecode`` without OpenCV's own stderr lines on corrupt data (we raise instead)."""
    logging_api = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_api is None:  # pragma: no cover - OpenCV builds without the logging API
        return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    level = logging_api.getLogLevel()
    logging_api.setLogLevel(logging_api.LOG_LEVEL_SILENT)
    try:
        return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    finally:
        logging_api.setLogLevel(level)


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
            raise _translate_tiff_error(exc, path, "reading the TIFF frame") from exc
    else:
        try:
            buf = np.fromfile(path, dtype=np.uint8)
        except OSError as exc:
            raise _translate_os_error(exc, path) from exc
        arr = _imdecode_quietly(buf) if buf.size else None
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
            others = sum(1 for p in path.iterdir() if not p.name.startswith("."))
            found = (
                f"it holds {others} other {'entry' if others == 1 else 'entries'}"
                if others
                else "it is empty"
            )
            raise FrameStackError(
                f"no image frames (png/jpg/tif/bmp) in this folder ({found}); point to a folder "
                "of numbered images, or to a video or TIFF file",
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


# --- TIFF stacks ------------------------------------------------------------------------------
#: axis letters of the spatial plane and of interleaved colour samples (tifffile's names)
_SPATIAL = "YX"
#: largest TIFF series loaded whole at open (layouts that cannot be read page by page)
WHOLE_LOAD_LIMIT = 2**30
#: default display colours of channels without colour metadata (ImageJ's composite order)
DEFAULT_CHANNEL_COLORS = ("red", "green", "blue", "gray", "cyan", "magenta", "yellow")
TWO_CHANNEL_COLORS = ("green", "magenta")
_NAMED_COLORS = {
    (1, 0, 0): "red",
    (0, 1, 0): "green",
    (0, 0, 1): "blue",
    (0, 1, 1): "cyan",
    (1, 0, 1): "magenta",
    (1, 1, 0): "yellow",
    (1, 1, 1): "gray",
}


class _TiffLog(logging.Handler):
    """Collects what tifffile logs while a file is opened (it logs, not raises, on bad IFDs)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _translate_tiff_error(exc: BaseException, path: Path, doing: str) -> VsrError:
    """The one place where tifffile/imagecodecs/OS errors become project errors.

    Parameters
    ----------
    exc : BaseException
        What tifffile, imagecodecs or the OS raised.
    path : Path
        The TIFF file.
    doing : str
        What we were doing, e.g. ``"reading page 3 (frame 1)"``.
    """
    if isinstance(exc, VsrError):
        return exc  # already ours
    text = re.sub(r"<[^>]*>\s*", "", str(exc)).strip() or type(exc).__name__
    truncated = False
    if isinstance(exc, PermissionError):
        cause = "permission denied; check the file's permissions"
    elif isinstance(exc, OSError) and exc.errno is not None:
        cause = os.strerror(exc.errno).lower()
    elif "imagecodecs" in text:
        cause = f"{text}; install it with 'pip install imagecodecs'"
    elif isinstance(exc, tifffile.TiffFileError) and "not a TIFF" in text:
        cause = f"not a TIFF file ({text})"
    elif isinstance(exc, IndexError):
        cause, truncated = (
            "the file has no readable page directory: it is truncated or corrupt",
            True,
        )
    elif isinstance(exc, (tifffile.TiffFileError, struct.error)) or (
        "failed to read" in text or "unpack requires" in text
    ):
        cause, truncated = f"the file is truncated or its structure is corrupt ({text})", True
    elif type(exc).__module__.startswith("imagecodecs"):
        cause, truncated = f"the compressed data is corrupt ({type(exc).__name__}: {text})", True
    else:
        cause = f"{type(exc).__name__}: {text}"
    cls = TruncatedMediaError if truncated else UnreadableMediaError
    return cls(f"{doing} failed: {cause}", path=path)


def _color_name(rgb: tuple[float, float, float]) -> str | list[list[float]]:
    """A napari colormap name for a pure colour, else a black-to-colour ramp (N, 3) list."""
    top = max(rgb)
    if top <= 0:
        return "gray"
    norm = tuple(round(c / top, 2) for c in rgb)
    key = tuple(int(c >= 0.99) if c >= 0.99 or c <= 0.01 else -1 for c in norm)
    if key in _NAMED_COLORS:
        return _NAMED_COLORS[key]
    return [[0.0, 0.0, 0.0], [float(c) for c in rgb]]


def _imagej_channels(tif: tifffile.TiffFile, n: int) -> dict[str, Any]:
    """Channel names, display ranges and colours from ImageJ metadata (those present)."""
    ij = tif.imagej_metadata or {}
    out: dict[str, Any] = {}
    labels = ij.get("Labels")
    if isinstance(labels, (list, tuple)) and len(labels) >= n and all(labels[:n]):
        out["channel_names"] = [str(x) for x in labels[:n]]
    ranges = ij.get("Ranges")
    if isinstance(ranges, (list, tuple)) and len(ranges) >= 2 * n:
        pairs = [[float(ranges[2 * k]), float(ranges[2 * k + 1])] for k in range(n)]
        if all(hi > lo for lo, hi in pairs):
            out["channel_ranges"] = pairs
    luts = ij.get("LUTs")
    if isinstance(luts, (list, tuple)) and len(luts) >= n:
        try:
            out["channel_colors"] = [
                _color_name(tuple(float(v) / 255 for v in np.asarray(lut)[:, -1][:3]))
                for lut in luts[:n]
            ]
        except (IndexError, TypeError, ValueError):
            pass
    return out


def _ome_channels(tif: tifffile.TiffFile, n: int) -> dict[str, Any]:
    """Channel names and colours from the first image of the OME-XML (those present)."""
    import xml.etree.ElementTree as ET

    out: dict[str, Any] = {}
    try:
        root = ET.fromstring(tif.ome_metadata or "")
    except ET.ParseError as exc:
        log.warning("%s: ignoring unreadable OME-XML (%s)", tif.filename, exc)
        return out
    image = next((el for el in root if el.tag.endswith("}Image") or el.tag == "Image"), None)
    pixels = next((el for el in image if el.tag.endswith("Pixels")), None) if image else None
    if pixels is None:
        return out
    chans = [el for el in pixels if el.tag.endswith("}Channel") or el.tag == "Channel"]
    if len(chans) < n:
        return out
    names = [c.get("Name") for c in chans[:n]]
    if all(names):
        out["channel_names"] = names
    colors = [c.get("Color") for c in chans[:n]]
    if all(colors):
        try:
            rgba = [int(c) & 0xFFFFFFFF for c in colors]
            out["channel_colors"] = [
                _color_name(((v >> 24) / 255, ((v >> 16) & 255) / 255, ((v >> 8) & 255) / 255))
                for v in rgba
            ]
        except ValueError:
            pass
    return out


def default_channel_colors(n: int) -> list[str]:
    """Display colours for ``n`` channels: gray, green/magenta, else ImageJ's composite order."""
    if n == 1:
        return ["gray"]
    if n == 2:
        return list(TWO_CHANNEL_COLORS)
    return [DEFAULT_CHANNEL_COLORS[k % len(DEFAULT_CHANNEL_COLORS)] for k in range(n)]


def _stored_json(tif: tifffile.TiffFile) -> dict[str, Any]:
    """napari-vsr's own metadata: JSON in the description, or in ImageJ's ``Info`` property."""
    texts = []
    try:
        texts.append(tif.pages.first.description)
    except (AttributeError, IndexError, ValueError):
        pass
    if tif.is_imagej and tif.imagej_metadata:
        texts.append(tif.imagej_metadata.get("Info"))
    for text in texts:
        if isinstance(text, str) and text.lstrip().startswith("{"):
            try:
                doc = json.loads(text)
            except ValueError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get(TIFF_META_KEY), dict):
                return doc[TIFF_META_KEY]
    return {}


def _data_end(page) -> int:
    """One past the last byte of a page's strips or tiles (0 when it has none)."""
    pairs = zip(page.dataoffsets, page.databytecounts, strict=False)
    return max((int(o) + int(c) for o, c in pairs if c), default=0)


def _promised_planes(tif: tifffile.TiffFile, page_shape: tuple[int, ...]) -> int | None:
    """How many pages the file's own metadata (ImageJ, OME, shaped JSON) says it holds."""
    try:
        if tif.is_imagej and tif.imagej_metadata:
            images = tif.imagej_metadata.get("images")
            return int(images) if images else None
        if tif.is_ome and tif.ome_metadata:
            m = re.search(r"<(?:\w+:)?Pixels\b([^>]*)>", tif.ome_metadata)
            if m is None:
                return None
            attrs = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            spp = re.search(r'<(?:\w+:)?Channel\b[^>]*SamplesPerPixel="(\d+)"', tif.ome_metadata)
            sizes = [int(attrs.get(k, 1)) for k in ("SizeC", "SizeZ", "SizeT")]
            return sizes[0] * sizes[1] * sizes[2] // max(1, int(spp.group(1)) if spp else 1)
        if tif.is_shaped and tif.shaped_metadata and "shape" in tif.shaped_metadata[0]:
            full = int(np.prod(tif.shaped_metadata[0]["shape"], dtype=np.int64))
            return full // max(1, int(np.prod(page_shape, dtype=np.int64)))
    except (TypeError, ValueError, AttributeError, IndexError):
        return None
    return None


class TiffFrames(FrameArray):
    """The first series of a (multi-page) TIFF as a lazy ``(T, *extra, H, W[, S])`` array.

    Axes come from the file's own metadata (ImageJ hyperstack, OME-XML or tifffile's shaped
    JSON; tifffile ``series.axes``) and are put in one order, recorded in ``metadata["axes"]``:

    - ``T`` first: the time axis, or, without one, the first other axis (a Z-only stack is a
      sequence of Z planes); a single image is one frame;
    - then every other axis of more than one element in file order (``Z``, unknown ones), as
      extra axes that the engine enhances plane by plane;
    - then ``C``, the channel axis, any count (``metadata["channel_axis"]`` gives its index,
      with ``channel_names``, ``channel_colors`` and ``channel_ranges`` where the file says);
    - then ``Y``, ``X``, and last ``S`` for RGB(A) samples (3 or 4; ``rgb`` is then True).

    Singleton axes are dropped.  A frame is decoded from its own pages on access (per page
    when every page is one plane; contiguous uncompressed data is read by offset); other
    layouts (one page holding several planes) are loaded whole at open.

    Parameters
    ----------
    path : path-like
        A ``.tif``/``.tiff`` file (compressed pages need the ``imagecodecs`` package).
    cache_mb : float
        Budget of the decoded-frame cache.

    Raises
    ------
    TruncatedMediaError
        At open, without decoding: a page's data or the page directory reaches past the end
        of the file, or the file's metadata promises more images than it holds.
    UnreadableMediaError
        Not a TIFF, or a page cannot be decoded (on access; names the page and frame).
    """

    def __init__(self, path: str | os.PathLike, *, cache_mb: float = DEFAULT_CACHE_MB):
        path = Path(path)
        if not path.is_file():
            raise SourceNotFoundError("no such file", path=path)
        size = path.stat().st_size
        if size == 0:
            raise UnreadableMediaError("the file is empty (0 bytes)", path=path)
        self._path = path
        self._tif = None
        handler = _TiffLog()
        tlog = logging.getLogger("tifffile")
        tlog.addHandler(handler)
        propagate, tlog.propagate = tlog.propagate, False
        try:
            try:
                self._tif = tifffile.TiffFile(path)
                series = self._tif.series[0]
            except Exception as exc:
                raise _translate_tiff_error(exc, path, "opening the TIFF") from exc
            try:
                self._check_complete(series, size, handler.messages)
            except VsrError:
                raise
            except Exception as exc:  # tifffile parses page directories lazily: errors here
                raise _translate_tiff_error(exc, path, "checking the TIFF's pages") from exc
            shape, dtype, meta, rgb = self._layout(series)
        except BaseException:
            if self._tif is not None:
                self._tif.close()
            raise
        finally:
            tlog.removeHandler(handler)
            tlog.propagate = propagate
        super().__init__(shape, dtype, meta, cache_mb=cache_mb, rgb=rgb)

    # --- integrity, at open -----------------------------------------------------------------
    def _check_complete(self, series, size: int, logged: list[str]) -> None:
        """Every byte the first series needs lies inside the file (offsets only, no decode)."""
        path, tif = self._path, self._tif
        shape = tuple(series.shape)
        page_shape = tuple(series.keyframe.shape) if series.keyframe is not None else ()
        plane_bytes = int(np.prod(page_shape, dtype=np.int64)) * series.dtype.itemsize
        n_planes = int(np.prod(shape, dtype=np.int64)) // max(1, int(np.prod(page_shape)))
        promised = _promised_planes(tif, page_shape)
        if promised is not None and promised > n_planes:
            found = len(tif.pages)
            end = _data_end(tif.pages[found - 1]) if found else 0
            if end > size:
                message = (
                    f"page {found} of {promised} needs bytes up to {end} but the file has {size}"
                )
            elif series.dataoffset is not None:
                need = int(series.dataoffset) + promised * plane_bytes
                message = (
                    f"the file's metadata promises {promised} images, whose data needs bytes up "
                    f"to {need}, but the file has {size}"
                )
            else:
                message = (
                    f"the file's metadata promises {promised} images but the page directory "
                    f"stops after {found} page{'s' if found != 1 else ''}"
                )
            raise TruncatedMediaError(
                f"{message}: the file is truncated", path=path, readable_frames=0
            )
        bad = [m for m in logged if "invalid" in m or "corrupt" in m or "failed" in m]
        if bad and promised != n_planes:
            # tifffile stopped at a broken page directory: pages after it are lost
            cause = re.sub(r"<[^>]*>\s*", "", bad[-1]).strip()
            raise TruncatedMediaError(
                f"the page directory is cut short or corrupt after {n_planes} page(s) ({cause}): "
                "the file is truncated or damaged",
                path=path,
                readable_frames=0,
            )
        self._contiguous = None
        pages = series.pages
        if series.dataoffset is not None:
            end = int(series.dataoffset) + int(series.nbytes)
            if end > size:
                raise TruncatedMediaError(
                    f"the image data needs bytes up to {end} but the file has {size}: the file "
                    "is truncated",
                    path=path,
                    readable_frames=0,
                )
            # uncompressed and contiguous: every plane is read by its offset, so the page
            # directories need not be parsed (that costs ~0.2 ms a page)
            self._contiguous = (int(series.dataoffset), plane_bytes)
            return
        for k in range(len(pages)):
            try:
                page = pages[k]
            except Exception as exc:
                page = None
                log.debug("page %d of %s: %s", k, path, exc)
            if page is None:
                raise TruncatedMediaError(
                    f"page {k + 1} of {len(pages)} is missing (the page directory stops early): "
                    "the file is truncated",
                    path=path,
                    readable_frames=0,
                )
            end = _data_end(page)
            if end > size:
                raise TruncatedMediaError(
                    f"page {k + 1} of {len(pages)} needs bytes up to {end} but the file has "
                    f"{size}: the file is truncated",
                    path=path,
                    readable_frames=0,
                )

    # --- layout -----------------------------------------------------------------------------
    def _layout(self, series):
        path, tif = self._path, self._tif
        dtype = _check_dtype(series.dtype, path)
        axes, shape = series.axes, tuple(int(s) for s in series.shape)
        if "Y" not in axes or "X" not in axes:
            raise FrameStackError(
                f"unsupported TIFF layout {axes} {shape}: expected height (Y) and width (X) axes",
                path=path,
            )
        roles: list[str] = []  # per file axis: T, O (other), C, Y, X, S, or "" (dropped)
        for a, n in zip(axes, shape, strict=True):
            if a in _SPATIAL:
                roles.append(a)
            elif n == 1:
                roles.append("")
            elif a == "S":
                roles.append("S" if n in (3, 4) else "C")
            elif a == "C" and "C" not in roles:
                roles.append("C")
            elif a == "T" and "T" not in roles:
                roles.append("T")
            else:
                roles.append("O")
        is_rgb = series.keyframe.photometric == tifffile.PHOTOMETRIC.RGB
        if "S" in roles and not is_rgb:
            roles[roles.index("S")] = "C"  # extra samples that are not RGB(A): channels
        if "T" not in roles and "O" in roles:
            roles[roles.index("O")] = "T"
        order = (
            [k for k, r in enumerate(roles) if r == "T"]
            + [k for k, r in enumerate(roles) if r == "O"]
            + [k for k, r in enumerate(roles) if r == "C"]
            + [roles.index("Y"), roles.index("X")]
            + [k for k, r in enumerate(roles) if r == "S"]
        )
        out_axes = "".join(
            "T" if roles[k] == "T" else ("C" if roles[k] == "C" else axes[k]) for k in order
        )
        out_shape = tuple(shape[k] for k in order)
        if "T" not in roles:
            out_axes, out_shape = "T" + out_axes, (1, *out_shape)
        dropped = [k for k, r in enumerate(roles) if r == ""]
        self._file_shape = shape
        self._order = dropped + order  # transpose of the full file shape; singletons first
        self._time = roles.index("T") if "T" in roles else None
        self._out_shape = out_shape
        # pages: the trailing file axes that one page holds
        page_size = int(np.prod(series.keyframe.shape, dtype=np.int64))
        k_page, acc = 0, 1
        while k_page < len(shape) and acc < page_size:
            k_page += 1
            acc *= shape[-k_page]
        self._page_axes = k_page
        self._whole: np.ndarray | None = None
        n_pages = int(np.prod(shape[: len(shape) - k_page], dtype=np.int64))
        per_page = (
            acc == page_size
            and (len(series.pages) == n_pages or self._contiguous is not None)
            and (self._time is None or self._time < len(shape) - k_page)
        )
        if not per_page:
            need = int(series.nbytes)
            if need > WHOLE_LOAD_LIMIT:
                raise FrameStackError(
                    f"this TIFF keeps several frames in one page (layout {axes} {shape}), so it "
                    f"can only be read whole: {need / 2**20:.1f} MiB, more than the "
                    f"{WHOLE_LOAD_LIMIT / 2**20:.1f} MiB napari-vsr loads at once; re-save it "
                    "with one page per plane (e.g. tifffile.imwrite(..., imagej=True))",
                    path=path,
                )
            try:
                data = series.asarray()
            except Exception as exc:
                raise _translate_tiff_error(exc, path, "reading the TIFF") from exc
            expected = int(np.prod(shape, dtype=np.int64))
            if data.size != expected:
                raise TruncatedMediaError(
                    f"the pages hold {data.size} values but the layout {axes} {shape} needs "
                    f"{expected}: the file is truncated or corrupt",
                    path=path,
                    readable_frames=0,
                )
            data = np.transpose(data.reshape(shape), self._order)
            self._whole = np.ascontiguousarray(data.reshape(out_shape))
        self._series = series
        rgb = out_axes.endswith("S")
        meta: dict[str, Any] = {
            "kind": "tiff",
            "source_path": str(path.resolve()),
            "n_frames": out_shape[0],
            "axes": out_axes,
            "file_axes": axes,
            "compression": str(getattr(series.keyframe.compression, "name", "")).lower(),
            "fps": None,
        }
        stored = _stored_json(tif)
        fps = stored.get("fps")
        if fps is None and tif.is_imagej and tif.imagej_metadata:
            ij = tif.imagej_metadata
            fps = ij.get("fps") or (1.0 / ij["finterval"] if ij.get("finterval") else None)
        try:
            meta["fps"] = float(fps) if fps else None
        except (TypeError, ValueError):
            meta["fps"] = None
        if stored:
            meta["stored_metadata"] = stored
        if "C" in out_axes:
            c = out_axes.index("C")
            n = out_shape[c]
            info: dict[str, Any] = {}
            if tif.is_ome:
                info = _ome_channels(tif, n)
            elif tif.is_imagej:
                info = _imagej_channels(tif, n)
            names = stored.get("channel_names")
            if "channel_names" not in info and isinstance(names, list) and len(names) == n:
                info["channel_names"] = [str(x) for x in names]
            meta["channel_axis"] = c
            meta["channel_names"] = info.get("channel_names") or [f"C{k}" for k in range(n)]
            meta["channel_colors"] = info.get("channel_colors") or default_channel_colors(n)
            if "channel_ranges" in info:
                meta["channel_ranges"] = info["channel_ranges"]
        return out_shape, dtype, meta, rgb

    # --- reading ----------------------------------------------------------------------------
    def _plane(self, k: int) -> np.ndarray:
        """Page ``k`` of the series as an array of the trailing file axes it holds."""
        tail = self._file_shape[len(self._file_shape) - self._page_axes :]
        if self._contiguous is not None:
            offset, nbytes = self._contiguous
            fh = self._tif.filehandle
            fh.seek(offset + k * nbytes)
            dtype = np.dtype(self._tif.byteorder + self._series.dtype.char)
            return fh.read_array(dtype, nbytes // dtype.itemsize).reshape(tail)
        return self._series.pages[k].asarray().reshape(tail)

    def _read_frames(self, indices: list[int]):
        shape = self._file_shape
        lead = shape[: len(shape) - self._page_axes]  # file axes across pages
        for i in indices:
            if self._whole is not None:
                yield i, self._whole[i].copy()
                continue
            ranges = [[i] if d == self._time else range(n) for d, n in enumerate(lead)]
            sub = tuple(len(r) for r in ranges)
            pages = (
                np.ravel_multi_index(np.meshgrid(*ranges, indexing="ij"), lead).ravel()
                if lead
                else np.zeros(1, np.int64)
            )
            k = -1
            try:
                planes = []
                for k in pages:
                    planes.append(self._plane(int(k)))
            except Exception as exc:
                doing = f"reading page {int(k) + 1} of {len(self._series.pages)} (frame {i})"
                raise _translate_tiff_error(exc, self._path, doing) from exc
            data = np.stack(planes).reshape(sub + shape[len(lead) :])
            data = np.transpose(data, self._order).reshape((1, *self._out_shape[1:]))
            yield i, np.ascontiguousarray(data[0])

    def _close(self) -> None:
        self._tif.close()
