"""Frame timestamps of an MP4/MOV video track read from its sample tables, without demuxing.

Demuxing to learn every frame's presentation timestamp reads the whole file (seconds for a
long film).  MP4 and MOV files already list them in the ``moov`` box: decode-time deltas
(``stts``), composition offsets (``ctts``) and sync samples (``stss``).  This module reads only
those boxes.  It declines (returns None) whenever the file is not a plain case it can map
exactly onto what FFmpeg will decode: fragmented files, edit lists that cut frames, sample
counts that disagree with the container.  Callers then demux as usual.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


@dataclass
class SampleTable:
    """What the first video track's tables say, in the track's time scale.

    Attributes
    ----------
    pts : ndarray (N,) int64
        Presentation timestamps in presentation order (sorted), *before* FFmpeg's edit-list
        shift: callers align them with one decoded frame.
    keyframes : ndarray (K,) int64
        Presentation indices of sync samples, sorted.
    timescale : int
    media_time : int
        Start of the single edit (0 without an edit list).
    data_end : int
        Byte offset just past the end of the track's last data: a shorter file is truncated.
    """

    pts: np.ndarray
    keyframes: np.ndarray
    timescale: int
    media_time: int
    data_end: int


def _boxes(f, start: int, end: int):
    """Yield (type, payload start, payload end) of the boxes in [start, end)."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head)
        hdr = 8
        if size == 1:
            size = struct.unpack(">Q", f.read(8))[0]
            hdr = 16
        elif size == 0:
            size = end - pos
        if size < hdr:
            return
        yield kind, pos + hdr, min(pos + size, end)
        pos += size


def _find(f, start: int, end: int, kind: bytes):
    for k, s, e in _boxes(f, start, end):
        if k == kind:
            return s, e
    return None


def _full_box(f, span) -> tuple[int, bytes]:
    s, e = span
    f.seek(s)
    data = f.read(e - s)
    return data[0], data[4:]


def _track_tables(f, s: int, e: int) -> dict[bytes, tuple[int, bytes]] | None:
    mdia = _find(f, s, e, b"mdia")
    if mdia is None:
        return None
    hdlr = _find(f, *mdia, b"hdlr")
    if hdlr is None:
        return None
    _, body = _full_box(f, hdlr)
    if body[4:8] != b"vide":
        return None
    out: dict[bytes, tuple[int, bytes]] = {}
    mdhd = _find(f, *mdia, b"mdhd")
    minf = _find(f, *mdia, b"minf")
    stbl = _find(f, *minf, b"stbl") if minf else None
    if mdhd is None or stbl is None:
        return None
    out[b"mdhd"] = _full_box(f, mdhd)
    for kind in (b"stts", b"ctts", b"stss", b"stsz", b"stsc", b"stco", b"co64"):
        span = _find(f, *stbl, kind)
        if span is not None:
            out[kind] = _full_box(f, span)
    edts = _find(f, s, e, b"edts")
    elst = _find(f, *edts, b"elst") if edts else None
    if elst is not None:
        out[b"elst"] = _full_box(f, elst)
    return out


def _runs(body: bytes, signed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    n = struct.unpack(">I", body[:4])[0]
    arr = np.frombuffer(body[4 : 4 + 8 * n], dtype=">i4" if signed else ">u4").reshape(n, 2)
    return arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)


def read_sample_table(path: str | os.PathLike, *, expected_frames: int) -> SampleTable | None:
    """Read the first video track's timestamps, or None when the file is not a plain case.

    Parameters
    ----------
    expected_frames : int
        The frame count FFmpeg reports for the stream; a different sample count declines.
    """
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            moov = _find(f, 0, size, b"moov")
            if moov is None or _find(f, 0, size, b"moof") is not None:
                return None
            tables = None
            for kind, s, e in _boxes(f, *moov):
                if kind == b"trak":
                    tables = _track_tables(f, s, e)
                    if tables is not None:
                        break
            return _build(tables, expected_frames) if tables else None
    except (OSError, struct.error, ValueError, IndexError) as exc:
        log.debug("%s: sample tables not usable (%s)", path, exc)
        return None


def _build(t: dict[bytes, tuple[int, bytes]], expected: int) -> SampleTable | None:
    if b"stts" not in t or b"stsz" not in t:
        return None
    version, mdhd = t[b"mdhd"]
    timescale = struct.unpack(">I", mdhd[16:20] if version == 1 else mdhd[8:12])[0]
    counts, deltas = _runs(t[b"stts"][1])
    n = int(counts.sum())
    stsz = t[b"stsz"][1]
    if n != struct.unpack(">I", stsz[4:8])[0] or n != expected or n == 0:
        return None
    dts = np.concatenate([[0], np.cumsum(np.repeat(deltas, counts))[:-1]])
    pts = dts.copy()
    if b"ctts" in t:
        c_counts, offsets = _runs(t[b"ctts"][1], signed=True)
        if int(c_counts.sum()) != n:
            return None
        pts += np.repeat(offsets, c_counts)
    media_time = 0
    if b"elst" in t:
        version, body = t[b"elst"]
        entries = struct.unpack(">I", body[:4])[0]
        if entries != 1:
            return None  # several edits (cuts, delays): let FFmpeg's demuxer decide
        media_time = struct.unpack(
            ">q" if version == 1 else ">i", body[12:20] if version == 1 else body[8:12]
        )[0]
        if media_time > int(pts.min()):
            return None  # the edit trims frames that FFmpeg would drop
    order = np.argsort(pts, kind="stable")
    sorted_pts = pts[order]
    if np.any(np.diff(sorted_pts) == 0):
        return None
    if b"stss" in t:
        m = struct.unpack(">I", t[b"stss"][1][:4])[0]
        sync = np.frombuffer(t[b"stss"][1][4 : 4 + 4 * m], dtype=">u4").astype(np.int64) - 1
    else:
        sync = np.arange(n)
    sync = sync[(sync >= 0) & (sync < n)]
    if sync.size == 0 or sync.min() != 0 or bool((pts < pts[0]).any()):
        return None  # starts mid-GOP or with leading pictures: the demux path drops those
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    keys = np.unique(rank[sync])
    data_end = _data_end(t, n)
    if data_end is None:
        return None
    return SampleTable(sorted_pts, keys, int(timescale), int(media_time), data_end)


def _data_end(t: dict[bytes, tuple[int, bytes]], n: int) -> int | None:
    """End offset of the furthest chunk of the track (stco/co64 + stsc + stsz)."""
    if b"co64" in t:
        body = t[b"co64"][1]
        k = struct.unpack(">I", body[:4])[0]
        offsets = np.frombuffer(body[4 : 4 + 8 * k], dtype=">u8").astype(np.int64)
    elif b"stco" in t:
        body = t[b"stco"][1]
        k = struct.unpack(">I", body[:4])[0]
        offsets = np.frombuffer(body[4 : 4 + 4 * k], dtype=">u4").astype(np.int64)
    else:
        return None
    if b"stsc" not in t or offsets.size == 0:
        return None
    body = t[b"stsc"][1]
    m = struct.unpack(">I", body[:4])[0]
    stsc = np.frombuffer(body[4 : 4 + 12 * m], dtype=">u4").reshape(m, 3).astype(np.int64)
    first = stsc[:, 0] - 1  # 0-based first chunk of each run
    counts = np.diff(np.append(first, offsets.size))
    per_chunk = np.repeat(stsc[:, 1], counts)
    stsz = t[b"stsz"][1]
    fixed = struct.unpack(">I", stsz[0:4])[0]
    sizes = (
        np.full(n, fixed, dtype=np.int64)
        if fixed
        else np.frombuffer(stsz[8 : 8 + 4 * n], dtype=">u4").astype(np.int64)
    )
    if per_chunk.size != offsets.size or int(per_chunk.sum()) != n:
        return None
    csum = np.concatenate([[0], np.cumsum(sizes)])
    start = np.concatenate([[0], np.cumsum(per_chunk)[:-1]])
    chunk_bytes = csum[start + per_chunk] - csum[start]
    return int((offsets + chunk_bytes).max())
