"""napari sample data: 10 real low-quality frames (RealBasicVSR demo_000, see data/README.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from napari_vsr.io import open_frames

SAMPLE_CLIP = "demo_000_10f.mkv"


def sample_clip_path() -> Path:
    """Path of the shipped sample clip (lossless FFV1 mkv, 10 frames, 640x360 RGB, 25 fps)."""
    return Path(str(resources.files("napari_vsr") / "data" / SAMPLE_CLIP))


def make_sample_clip() -> list[tuple[Any, dict[str, Any], str]]:
    """napari sample-data hook.

    Returns
    -------
    list of one (data, kwargs, "image")
        data: ndarray (10, 360, 640, 3) uint8 (0..255), decoded in memory.
    """
    path = sample_clip_path()
    with open_frames(path) as frames:
        data = frames[:]
        meta = dict(frames.metadata)
    return [(data, {"name": "demo_000", "rgb": True, "metadata": meta}, "image")]
