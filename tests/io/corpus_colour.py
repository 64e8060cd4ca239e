"""Unusual inputs for colour, containers and codecs, for the bad-input property test.

``build(folder)`` writes them and returns name -> path.  Every one of them is a file a user may
have: ``napari-vsr info`` and ``napari-vsr enhance --method classic`` must end with exit code
0, 1 or 2 and one line on stderr, never a traceback.  Entries whose encoder or muxer this
FFmpeg build lacks are left out.
"""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

_spec = importlib.util.spec_from_file_location(
    "vsr_corpus_colour_media", Path(__file__).with_name("media.py")
)
media = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(media)

#: name -> (muxer, encoder, pix_fmt, (height, width), stream/frame colour tags)
_CLIPS: dict[str, tuple[str, str, str, tuple[int, int], dict[str, int]]] = {
    # tags FFmpeg knows but a reader cannot use as a matrix: YCgCo, BT.2020 constant luminance
    "ycgco_tagged.mkv": ("matroska", "ffv1", "yuv420p", (48, 64), {"colorspace": 8}),
    "bt2020cl_tagged.mkv": ("matroska", "ffv1", "yuv420p", (48, 64), {"colorspace": 10}),
    # odd but valid: full range, film primaries, log transfer
    "odd_tags_full_range.mkv": (
        "matroska",
        "ffv1",
        "yuv444p",
        (48, 64),
        {"colorspace": 7, "color_range": 2, "color_primaries": 8, "color_trc": 9},
    ),
    # HDR10: 10-bit BT.2020 PQ
    "hdr10_pq.mkv": (
        "matroska",
        "ffv1",
        "yuv420p10le",
        (48, 64),
        {"colorspace": 9, "color_range": 1, "color_primaries": 9, "color_trc": 16},
    ),
    # HLG, 12-bit 4:2:2
    "hlg_12bit.mkv": (
        "matroska",
        "ffv1",
        "yuv422p12le",
        (48, 64),
        {"colorspace": 9, "color_range": 1, "color_primaries": 9, "color_trc": 18},
    ),
    # odd size (x264 4:4:4, so no padding) and a JPEG-range format
    "odd_size_33x17.mp4": ("mp4", "libx264", "yuv444p", (17, 33), {}),
    "full_range_yuvj.mp4": ("mp4", "libx264", "yuvj420p", (48, 64), {}),
    # alpha
    "alpha_prores4444.mov": ("mov", "prores_ks", "yuva444p10le", (48, 64), {}),
    "alpha_vp9.webm": ("webm", "libvpx-vp9", "yuva420p", (48, 64), {}),
    # one per container claimed in issue 9
    "mpegts.ts": ("mpegts", "libx264", "yuv420p", (48, 64), {}),
    "avchd.MTS": ("mpegts", "libx264", "yuv420p", (48, 64), {}),
    "bluray.m2ts": ("mpegts", "libx264", "yuv420p", (48, 64), {}),
    "program.mpg": ("mpeg", "mpeg2video", "yuv420p", (48, 64), {}),
    "mpeg1.mpeg": ("mpeg", "mpeg1video", "yuv420p", (48, 64), {}),
    "dvd.VOB": ("vob", "mpeg2video", "yuv420p", (48, 64), {}),
    "flash.flv": ("flv", "flv", "yuv420p", (48, 64), {}),
    "windows.wmv": ("asf", "wmv2", "yuv420p", (48, 64), {}),
    "windows.asf": ("asf", "wmv2", "yuv420p", (48, 64), {}),
    "phone.3gp": ("3gp", "mpeg4", "yuv420p", (48, 64), {}),
    "phone.3g2": ("3g2", "mpeg4", "yuv420p", (48, 64), {}),
    "open.ogv": ("ogg", "libvpx", "yuv420p", (48, 64), {}),
    "raw.y4m": ("yuv4mpegpipe", "rawvideo", "yuv420p", (48, 64), {}),
    "pro.mxf": ("mxf", "mpeg2video", "yuv422p", (576, 720), {}),
    "camcorder.dv": ("dv", "dvvideo", "yuv420p", (576, 720), {}),
}


def _write(path: Path, muxer: str, encoder: str, pix_fmt: str, size, tags, n: int = 4) -> None:
    height, width = size
    with av.open(str(path), "w", format=muxer) as out:
        s = out.add_stream(encoder, rate=Fraction(25))
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        if encoder == "libx264":
            s.options = {"crf": "20", "preset": "ultrafast"}
        elif encoder == "libvpx-vp9":
            s.options = {"crf": "30", "b": "0", "deadline": "realtime"}
        elif encoder in ("mpeg2video", "mpeg1video", "mpeg4", "flv", "wmv2", "libvpx"):
            s.bit_rate = 20_000_000 if height >= 576 else 1_000_000
        for key, value in tags.items():
            setattr(s.codec_context, key, value)
        for i in range(n):
            rgb = media.barcode_frame(i, height, width)
            if pix_fmt.startswith("yuva"):
                alpha = np.full((height, width, 1), 40 * (i + 1), np.uint8)
                frame = av.VideoFrame.from_ndarray(np.concatenate([rgb, alpha], -1), "rgba")
            else:
                frame = av.VideoFrame.from_ndarray(rgb, "rgb24")
            frame = frame.reformat(format=pix_fmt)
            for key, value in tags.items():
                setattr(frame, key, value)
            frame.pts = i
            for packet in s.encode(frame):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)


def build(folder: Path) -> dict[str, Path]:
    """Write the corpus into ``folder`` (created); name -> path of each file written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {}
    for name, (muxer, encoder, pix_fmt, size, tags) in _CLIPS.items():
        if encoder not in av.codecs_available or muxer not in av.formats_available:
            continue
        path = folder / name
        try:
            _write(path, muxer, encoder, pix_fmt, size, tags)
        except (av.error.FFmpegError, ValueError):  # a build that cannot make this one
            path.unlink(missing_ok=True)
            continue
        made[name] = path
    # a container claimed by its extension that holds no video stream at all
    made["audio_only.ts"] = _audio_only(folder / "audio_only.ts")
    return made


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mpegts") as out:
        a = out.add_stream("mp2", rate=48000)
        a.layout = "mono"
        samples = np.zeros((1, 1152), np.int16)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48000, i * 1152
            for packet in a.encode(frame):
                out.mux(packet)
        for packet in a.encode():
            out.mux(packet)
    return path
