"""Generated media for the engine/CLI tests: small real videos (optionally with audio)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def frame(i: int, height: int, width: int) -> np.ndarray:
    """A moving textured RGB frame, (height, width, 3) uint8."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = 110 + 60 * np.sin((xx + 2 * i) / 5.0) + 40 * np.cos((yy - i) / 4.0)
    return (
        np.stack([base, np.roll(base, i, axis=1), base[::-1]], axis=-1)
        .clip(0, 255)
        .astype(np.uint8)
    )


def make_video(
    path: Path,
    n: int,
    *,
    fps: Fraction | str | int = 25,
    height: int = 32,
    width: int = 48,
    audio_s: float | None = None,
    codec: str = "libx264",
) -> Path:
    """Encode ``n`` frames at ``fps``; with ``audio_s``, add an AAC sine track that long."""
    rate = Fraction(fps)
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            vs.options = {"preset": "ultrafast", "g": "30"}
        astream = None
        if audio_s is not None:
            astream = out.add_stream("aac", rate=48000)
            astream.layout = "mono"
        for i in range(n):
            vf = av.VideoFrame.from_ndarray(frame(i, height, width), format="rgb24")
            vf.pts = i
            vf.time_base = 1 / rate
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if astream is not None:
            total = int(audio_s * 48000)
            t = np.arange(total) / 48000.0
            pcm = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, total, 1024):
                block = pcm[start : start + 1024][None]
                af = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
                af.sample_rate = 48000
                af.pts = start
                af.time_base = Fraction(1, 48000)
                for p in astream.encode(af):
                    out.mux(p)
            for p in astream.encode():
                out.mux(p)
    return path


def audio_duration(path: Path) -> float | None:
    """Seconds of decoded audio in the first audio stream, or None when there is none."""
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        s = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(s))
        return samples / s.codec_context.sample_rate
