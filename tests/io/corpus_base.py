"""Good inputs for the corpus property test: each must enhance with exit code 0."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2

_spec = importlib.util.spec_from_file_location("media", Path(__file__).with_name("media.py"))
media = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(media)


def build(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    cases = {
        "good.mp4": media.make_video(folder / "good.mp4", n_frames=6, size=(48, 64)),
        "good_odd_size.mkv": media.make_video(
            folder / "good_odd_size.mkv", n_frames=4, size=(37, 63), codec="ffv1", pix_fmt="yuv444p"
        ),
    }
    frames = folder / "good_frames"
    frames.mkdir(exist_ok=True)
    for i in range(3):
        cv2.imwrite(str(frames / f"f{i}.png"), media.barcode_frame(i, 48, 64))
    cases["good_frames"] = frames
    return cases
