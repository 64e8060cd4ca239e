"""Opening a job's source and fingerprinting it (so a resumed job knows it is the same input)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np


def open_source(
    path: str | os.PathLike, *, skip_bad_frames: bool = False, hwaccel: str | None = None
):
    """Any reader source (video, frame folder, TIFF), plus ``.zarr`` result stores.

    ``hwaccel`` ({None, "none", "auto", "cuda"}): decode a video on the GPU (NVDEC) when one is
    usable; otherwise in software, and the source's ``notes`` (a list of str, also logged as
    warnings) say why.  Ignored by other sources.
    """
    if Path(path).suffix.lower() == ".zarr":
        from napari_vsr.io.zarr_store import open_result_store

        return open_result_store(path, mode="r")
    from napari_vsr.io import open_frames

    return open_frames(path, skip_bad_frames=skip_bad_frames, hwaccel=hwaccel)


def source_notes(source) -> list[str]:
    """What opening the source had to say (e.g. GPU decoding unavailable, software used):
    :attr:`VideoFrames.notes`; other sources have none."""
    from napari_vsr.io.video_reader import VideoFrames

    return list(source.notes) if isinstance(source, VideoFrames) else []


def source_metadata(source) -> dict[str, Any]:
    """The reader's metadata of a source (a zarr store's attributes, flattened)."""
    meta = getattr(source, "metadata", None)
    if isinstance(meta, dict):
        return dict(meta)
    attrs = dict(getattr(source, "attrs", {}) or {})
    nested = attrs.get("napari_vsr")
    if isinstance(nested, dict):
        return {**nested, **{k: v for k, v in attrs.items() if k != "napari_vsr"}}
    return attrs


def source_rgb(source, rgb: bool | None = None) -> bool:
    """Whether the last axis holds colour samples: the caller's word, the reader's, or a guess."""
    if isinstance(rgb, bool):
        return rgb
    flag = getattr(source, "rgb", None)
    if isinstance(flag, bool):
        return flag
    shape = tuple(np.shape(source))
    return len(shape) == 4 and shape[-1] in (3, 4)


def _stat_fingerprint(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def fingerprint(source, path: str | os.PathLike | None) -> dict[str, Any]:
    """What identifies the source: shape, dtype and the file's size and modification time (a
    folder: a digest of its entries' names, sizes and times; an array: a digest of its first,
    middle and last frames)."""
    doc: dict[str, Any] = {
        "shape": [int(s) for s in np.shape(source)],
        "dtype": str(np.dtype(source.dtype)),
    }
    if path is None:
        n = doc["shape"][0] if doc["shape"] else 0
        digest = hashlib.sha256()
        for i in sorted({0, n // 2, max(0, n - 1)}):
            if n:
                digest.update(np.ascontiguousarray(np.asarray(source[i])).tobytes())
        doc.update(kind="array", digest=digest.hexdigest())
        return doc
    p = Path(path)
    if p.is_dir():
        digest = hashlib.sha256()
        count = 0
        for root, dirs, files in os.walk(p):
            dirs.sort()
            for name in sorted(files):
                entry = Path(root) / name
                try:
                    st = entry.stat()
                except OSError:
                    continue
                rel = entry.relative_to(p).as_posix()
                digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
                count += 1
        doc.update(kind="folder", files=count, digest=digest.hexdigest())
    else:
        doc.update(kind="file", **_stat_fingerprint(p))
    return doc
