"""Small generators of real media for the I/O tests and benchmarks.

Every generated video frame carries its own index as a block barcode (16 bits, one square
block per bit, black or white on a textured background) that survives lossy compression, so a
test can tell which frame a reader really returned.  Import from other folders with
``importlib`` (tests run with ``--import-mode=importlib``)::

    spec = importlib.util.spec_from_file_location("media", REPO / "tests/io/media.py")
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BITS = 16


def barcode_frame(index: int, height: int, width: int, *, gray: bool = False) -> np.ndarray:
    """A frame whose top rows encode ``index``.

    Returns
    -------
    ndarray, (height, width, 3) uint8 (or (height, width) with ``gray``)
        Textured background that moves with ``index`` (so P/B frames carry real motion),
        plus a row of ``BITS`` blocks, white for a 1 bit, black for a 0 bit.
    """
    yy, xx = np.mgrid[0:height, 0:width]
    base = (96 + 40 * np.sin((xx + 3 * index) / 7.0) + 30 * np.cos((yy - 2 * index) / 5.0)).astype(
        np.uint8
    )
    frame = np.stack([base, np.roll(base, index, axis=1), base[::-1]], axis=-1)
    stamp_barcode(frame, index)
    return frame[..., 0].copy() if gray else frame


def stamp_barcode(frame: np.ndarray, index: int) -> np.ndarray:
    """Write ``index`` into the top rows of ``frame`` (H, W[, C]) uint8, in place; returns it."""
    height, width = frame.shape[:2]
    b = _barcode_block(height, width)
    for bit in range(BITS):
        frame[0:b, bit * b : (bit + 1) * b] = 255 if (index >> bit) & 1 else 0
    frame[b : b + 2, : BITS * b] = 128
    return frame


def _barcode_block(height: int, width: int) -> int:
    b = max(4, width // (BITS + 2))
    b = min(b, max(4, height // 3), 48)
    return b


def read_barcode(frame: np.ndarray) -> int:
    """Decode the index written by :func:`barcode_frame` (uint8 or uint16, RGB or gray)."""
    frame = np.asarray(frame)
    height, width = frame.shape[:2]
    b = _barcode_block(height, width)
    arr = frame[:b, : BITS * b].astype(np.float64)  # only the barcode rows: cheap on 1080p
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=-1)
    if frame.dtype == np.uint16:
        arr = arr / 257.0
    m = max(1, b // 4)
    value = 0
    for bit in range(BITS):
        cell = arr[m : b - m, bit * b + m : (bit + 1) * b - m]
        if cell.mean() > 128:
            value |= 1 << bit
    return value


def make_video(
    path: str | Path,
    *,
    n_frames: int = 24,
    size: tuple[int, int] = (96, 160),
    fps: Fraction | int = 25,
    codec: str = "libx264",
    gop: int = 12,
    bframes: int = 2,
    pix_fmt: str = "yuv420p",
    frame_times: list[float] | None = None,
    audio: bool = False,
    gray: bool = False,
    crf: int = 20,
    source=None,
    preset: str = "veryfast",
) -> Path:
    """Write a barcoded test video with PyAV.

    Parameters
    ----------
    size : (height, width)
    frame_times : list of float, optional
        Presentation time of each frame in seconds (VFR); default ``i / fps``.
    audio : bool
        Add an AAC (mp4/mkv/mov) or MP3 (avi) sine tone as long as the video.
    source : callable, optional
        ``source(i) -> (H, W, 3) uint8`` background of frame ``i`` (the barcode is stamped on
        it); default: a moving synthetic texture.
    """
    path = Path(path)
    height, width = size
    rate = Fraction(fps)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.gop_size = gop
        if codec in ("libx264", "libx265"):
            stream.options = {
                "crf": str(crf),
                "bf": str(bframes),
                "g": str(gop),
                "keyint_min": str(gop),
                "sc_threshold": "0",
                "preset": preset,
            }
        elif codec == "mpeg4":
            stream.codec_context.max_b_frames = bframes
            stream.options = {"qscale": "3", "g": str(gop)}
            stream.codec_context.bit_rate = 2_000_000
        if frame_times is not None:
            tb = Fraction(1, 1000)
            stream.codec_context.time_base = tb
        else:
            tb = 1 / rate
        astream = None
        if audio:
            acodec = "aac" if path.suffix.lower() in (".mp4", ".mkv", ".mov", ".m4v") else "mp3"
            astream = out.add_stream(acodec, rate=44100)
            astream.layout = "mono"
        for i in range(n_frames):
            if source is None:
                img = barcode_frame(i, height, width, gray=gray)
            else:
                img = stamp_barcode(np.array(source(i), dtype=np.uint8), i)
            frame = av.VideoFrame.from_ndarray(img, format="gray" if gray else "rgb24")
            if frame_times is not None:
                frame.pts = round(frame_times[i] / tb)
            else:
                frame.pts = i
            frame.time_base = tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if astream is not None:
            seconds = (frame_times[-1] if frame_times else n_frames / float(rate)) + 0.1
            _write_tone(out, astream, seconds)
    return path


def _write_tone(out: av.container.OutputContainer, astream, seconds: float) -> None:
    sr = 44100
    t = np.arange(int(sr * seconds)) / sr
    samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    chunk = 1152
    pts = 0
    for start in range(0, len(samples), chunk):
        part = samples[start : start + chunk][None, :]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format="flt", layout="mono")
        frame.sample_rate = sr
        frame.pts = pts
        frame.time_base = Fraction(1, sr)
        pts += part.shape[1]
        for packet in astream.encode(frame):
            out.mux(packet)
    for packet in astream.encode():
        out.mux(packet)


def make_audio_only(path: str | Path, *, seconds: float = 1.0) -> Path:
    """An mp4/m4a holding a single AAC stream and no video."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        astream = out.add_stream("aac", rate=44100)
        astream.layout = "mono"
        _write_tone(out, astream, seconds)
    return path
