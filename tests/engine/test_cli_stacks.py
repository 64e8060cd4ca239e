"""Microscopy stacks through the engine and the command line, as a user runs them.

``napari-vsr enhance stack.tif -o out.tif --method classic`` must keep the stack's axes, channel
count and channel names, and enhance every channel (and Z plane) as its own gray sequence: the
result for a channel equals the engine's result for that channel alone.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_vsr.engine import enhance
from napari_vsr.enhancers import make_enhancer
from napari_vsr.io import open_frames

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "corpus_stacks", REPO / "tests" / "io" / "corpus_stacks.py"
)
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "napari_vsr", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def _gray_reference(planes: np.ndarray, preset: str | None) -> np.ndarray:
    """The engine's output for one (T, H, W) gray sequence."""
    enhancer = make_enhancer("classic", preset=preset)
    return np.stack([frame for _, frame in enhance(planes, enhancer)])


@pytest.mark.parametrize(
    "axes,preset", [("TCYX", None), ("TZCYX", "bicubic-x4"), ("TCYX", "bicubic-x4")]
)
def test_enhance_stack_keeps_axes_channels_and_names(tmp_path, axes, preset):
    data = corpus.fluorescence(t=5, c=3, h=20, w=28)
    if axes == "TZCYX":
        data = np.stack([data, data[::-1] // 2], axis=1)  # two Z planes
    src = tmp_path / "stack.tif"
    names = ["DAPI", "GFP", "mCherry"]
    tifffile.imwrite(src, data, imagej=True, metadata={"axes": axes, "Labels": names})
    out = tmp_path / "out.tif"
    args = ["enhance", str(src), "-o", str(out), "--method", "classic", "-q"]
    done = _cli(*args, *(["--preset", preset] if preset else []))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [f"wrote 5 frames to {out}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif", "stack.tif"]
    with open_frames(out) as res:
        md = res.metadata
        assert md["axes"] == axes and md["channel_names"] == names
        s = res.shape[-1] // data.shape[-1]
        assert s == 4 and res.shape == (*data.shape[:-2], data.shape[-2] * s, data.shape[-1] * s)
        assert res.dtype == np.uint16 and not res.rgb
        got = res[:]
    # each channel (and Z plane) was processed on its own, as a gray sequence
    for plane in np.ndindex(*data.shape[1:-2]):
        index = (slice(None), *plane)
        np.testing.assert_array_equal(got[index], _gray_reference(data[index], preset))


def test_info_reports_axes_channels_and_names(tmp_path):
    data = corpus.fluorescence(t=4, c=2)
    src = tmp_path / "cells.tif"
    tifffile.imwrite(src, data, imagej=True, metadata={"axes": "TCYX", "Labels": ["GFP", "RFP"]})
    done = _cli("info", str(src), "--json")
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["axes"] == "TCYX" and facts["shape"] == [4, 2, 24, 32]
    assert (facts["width"], facts["height"], facts["channels"]) == (32, 24, 2)
    assert facts["channel_names"] == ["GFP", "RFP"]
    text = _cli("info", str(src)).stdout
    assert "channel names  GFP, RFP" in text and "32x24 (width x height), 2 channel(s)" in text


def test_truncated_stack_fails_in_one_line_before_any_output(tmp_path):
    data = corpus.fluorescence(t=12, c=2)
    src = tmp_path / "cut.tif"
    tifffile.imwrite(src, data, imagej=True, metadata={"axes": "TCYX"})
    raw = src.read_bytes()
    src.write_bytes(raw[: len(raw) * 2 // 3])
    out = tmp_path / "out.tif"
    done = _cli("enhance", str(src), "-o", str(out), "--method", "classic", "-q")
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"napari-vsr enhance: error: {src}: ") and "truncated" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tif"]


def test_stack_to_video_is_refused_before_work_zarr_keeps_axes(tmp_path):
    data = corpus.fluorescence(t=3, c=2)
    src = tmp_path / "two.tif"
    tifffile.imwrite(src, data, imagej=True, metadata={"axes": "TCYX"})
    out = tmp_path / "out.mkv"
    done = _cli("enhance", str(src), "-o", str(out), "--method", "classic", "-q")
    assert done.returncode == 2  # refused before any work
    [line] = done.stderr.strip().splitlines()
    assert f"{out}: a video output holds (H, W) or RGB(A) frames" in line
    assert "has axes TCYX; write a .tif or .zarr" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.tif"]
    zarr_out = tmp_path / "out.zarr"  # a zarr store keeps the axes
    done = _cli("enhance", str(src), "-o", str(zarr_out), "--method", "classic", "-q")
    assert done.returncode == 0, done.stderr
    from napari_vsr.io.zarr_store import open_result_store

    store = open_result_store(zarr_out, mode="r")
    assert store.shape == (3, 2, 96, 128) and store.attrs["axes"] == "TCYX"
