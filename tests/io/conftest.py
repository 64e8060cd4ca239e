"""Generated media shared by the I/O tests (module-scoped: encoded once per session)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "vsr_test_media", Path(__file__).with_name("media.py")
)
media = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(media)

VFR_TIMES = [0.0, 0.04, 0.1, 0.13, 0.3, 0.31, 0.5, 0.62, 0.7, 0.9, 0.95, 1.2, 1.25, 1.3, 1.7, 1.8]


@pytest.fixture(scope="session")
def media_mod():
    return media


@pytest.fixture(scope="session")
def vfr_times() -> list[float]:
    return list(VFR_TIMES)


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    """name -> path of barcoded test videos, each frame carrying its index."""
    d = tmp_path_factory.mktemp("videos")
    return {
        # H.264, 3 B-frames, GOP 24 (long relative to the clip), audio stream
        "h264_bframes": media.make_video(
            d / "h264.mp4", n_frames=60, gop=24, bframes=3, audio=True
        ),
        # MPEG-4 part 2 with B-frames in AVI
        "mpeg4_avi": media.make_video(
            d / "mpeg4.avi", codec="mpeg4", n_frames=30, gop=10, bframes=2
        ),
        # variable frame rate in Matroska and MP4
        "vfr_mkv": media.make_video(
            d / "vfr.mkv", n_frames=len(VFR_TIMES), gop=6, frame_times=VFR_TIMES
        ),
        "vfr_mp4": media.make_video(
            d / "vfr.MP4", n_frames=len(VFR_TIMES), gop=6, frame_times=VFR_TIMES
        ),
        # 10-bit H.264 -> uint16; 8-bit gray FFV1 -> (T, H, W)
        "h264_10bit": media.make_video(d / "deep.mkv", n_frames=12, gop=6, pix_fmt="yuv420p10le"),
        "gray_ffv1": media.make_video(
            d / "gray.mkv", codec="ffv1", pix_fmt="gray", gray=True, n_frames=12
        ),
    }
