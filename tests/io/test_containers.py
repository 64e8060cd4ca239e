"""Every container people have: claimed by the reader and the manifest, read frame-exactly.

Each clip is written here with the codec its container is made for (MPEG-2 for DVD/MXF, DV at
its fixed size, WMV2 for Windows Media, ...) and carries a barcode of its frame index.
"""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from napari_vsr.io import is_supported, open_frames
from napari_vsr.io.sources import VIDEO_EXTENSIONS

_spec = importlib.util.spec_from_file_location(
    "vsr_test_media_c", Path(__file__).with_name("media.py")
)
media = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(media)

#: extension -> (muxer, encoder, pix_fmt, (height, width), fps, muxer options)
CONTAINERS = {
    ".ts": ("mpegts", "libx264", "yuv420p", (96, 160), 25, {}),
    ".mts": ("mpegts", "libx264", "yuv420p", (96, 160), Fraction(30000, 1001), {}),
    ".m2ts": ("mpegts", "libx264", "yuv420p", (96, 160), 25, {"mpegts_m2ts_mode": "1"}),
    ".mpg": ("mpeg", "mpeg2video", "yuv420p", (96, 160), 25, {}),
    ".mpeg": ("mpeg", "mpeg1video", "yuv420p", (96, 160), 25, {}),
    ".vob": ("vob", "mpeg2video", "yuv420p", (96, 160), 25, {}),
    ".flv": ("flv", "flv", "yuv420p", (96, 160), 25, {}),
    ".wmv": ("asf", "wmv2", "yuv420p", (96, 160), 25, {}),
    ".asf": ("asf", "wmv2", "yuv420p", (96, 160), 25, {}),
    ".3gp": ("3gp", "mpeg4", "yuv420p", (96, 160), 25, {}),
    ".3g2": ("3g2", "mpeg4", "yuv420p", (96, 160), 25, {}),
    ".ogv": ("ogg", "libvpx", "yuv420p", (96, 160), 25, {}),
    ".y4m": ("yuv4mpegpipe", "rawvideo", "yuv420p", (96, 160), 25, {}),
    ".mxf": ("mxf", "mpeg2video", "yuv422p", (576, 720), 25, {}),
    ".dv": ("dv", "dvvideo", "yuv420p", (576, 720), 25, {}),
}
NEW_EXTENSIONS = tuple(CONTAINERS)


def make_clip(path: Path, ext: str, n_frames: int = 30) -> Path:
    """A barcoded clip in the container of ``ext``; pytest.skip when this FFmpeg lacks a part."""
    muxer, encoder, pix_fmt, (height, width), fps, options = CONTAINERS[ext]
    if encoder not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {encoder} encoder (needed for {ext})")
    if muxer not in av.formats_available:
        pytest.skip(f"this FFmpeg build has no {muxer} muxer (needed for {ext})")
    with av.open(str(path), "w", format=muxer, options=options) as out:
        s = out.add_stream(encoder, rate=fps)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        if encoder == "libx264":
            s.options = {"crf": "18", "bf": "2", "g": "12", "preset": "veryfast"}
        elif encoder in ("mpeg2video", "mpeg1video", "mpeg4", "flv", "wmv2"):
            s.codec_context.gop_size = 12
            if encoder != "flv" and encoder != "wmv2":
                s.codec_context.max_b_frames = 2
            s.bit_rate = 25_000_000 if height >= 576 else 2_000_000
        elif encoder == "libvpx":
            s.options = {"crf": "10", "b": "1M", "g": "12"}
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(media.barcode_frame(i, height, width), "rgb24")
            frame = frame.reformat(format=pix_fmt)
            frame.pts = i
            for packet in s.encode(frame):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)
    return path


@pytest.mark.parametrize("ext", NEW_EXTENSIONS)
def test_new_containers_read_frame_exactly(tmp_path, ext):
    path = make_clip(tmp_path / f"clip{ext}", ext)
    rng = np.random.default_rng(9)
    with open_frames(path) as v:
        assert len(v) == 30, f"{ext}: {len(v)} frames"
        assert v.shape[1:3] == CONTAINERS[ext][3]
        assert [media.read_barcode(f) for f in v] == list(range(30))
    with open_frames(path, cache_mb=0) as v:  # random access on a fresh reader
        for i in rng.integers(0, 30, size=8):
            assert media.read_barcode(v[int(i)]) == int(i), f"{ext}: frame {i}"


@pytest.mark.parametrize("ext", NEW_EXTENSIONS)
def test_any_case_is_claimed(tmp_path, ext):
    for name in (f"a{ext}", f"a{ext.upper()}", f"a{ext[:2]}{ext[2:].upper()}"):
        assert is_supported(tmp_path / name), name
    assert ext in VIDEO_EXTENSIONS


def test_manifest_claims_every_video_extension():
    manifest = Path(__file__).resolve().parents[2] / "src" / "napari_vsr" / "napari.yaml"
    doc = yaml.safe_load(manifest.read_text())
    patterns = set(doc["contributions"]["readers"][0]["filename_patterns"])
    for ext in VIDEO_EXTENSIONS:
        assert f"*{ext}" in patterns and f"*{ext.upper()}" in patterns, ext
    writers = {w["command"]: w for w in doc["contributions"]["writers"]}
    assert {".webm", ".mov", ".mkv", ".mp4"} <= set(
        writers["napari-vsr.write_video"]["filename_extensions"]
    )


def test_webm_writer_round_trip(tmp_path):
    from napari_vsr.io import write_frames_to

    clip = np.stack([media.barcode_frame(i, 96, 160) for i in range(12)])
    path = write_frames_to(tmp_path / "out.webm", clip)
    with av.open(str(path)) as c:
        assert (
            c.format.name.startswith("matroska") and c.streams.video[0].codec_context.name == "vp9"
        )
    with open_frames(path) as v:
        assert [media.read_barcode(f) for f in v] == list(range(12))


def test_prores_in_mov_round_trip(tmp_path):
    from napari_vsr.io import VideoOptions, write_frames_to

    clip = np.stack([media.barcode_frame(i, 96, 160) for i in range(6)])
    path = write_frames_to(tmp_path / "out.mov", clip, video=VideoOptions(codec="prores"))
    with open_frames(path) as v:
        assert v.metadata["codec"] == "prores"
        assert [media.read_barcode(f) for f in v] == list(range(6))
        assert v.dtype == np.uint16  # ProRes is 10-bit: read back as uint16
        assert np.abs(v[:].astype(int) - clip.astype(int) * 257).mean() < 2 * 257
