"""Encoder speed presets: the size rule, the mapping between x264 and NVENC names, the flag."""

from __future__ import annotations

import numpy as np
import pytest

from napari_vsr.errors import ParameterError
from napari_vsr.io import VideoOptions, open_writer
from napari_vsr.io.encode_presets import (
    check_preset,
    default_preset,
    nvenc_preset,
    x264_preset,
)


@pytest.mark.parametrize(
    "size,preset",
    [((640, 360), "medium"), ((1280, 720), "medium"), ((1920, 800), "faster"),
     ((1920, 1080), "faster"), ((2560, 1440), "veryfast"), ((3840, 2160), "veryfast")],
)
def test_preset_follows_the_output_size(tmp_path, size, preset):
    assert default_preset(*size) == preset
    w = open_writer(tmp_path / "p.mp4")
    width, height = size
    assert w._plan((height, width, 3), np.dtype(np.uint8))[2]["preset"] == preset
    w.abort()


def test_given_preset_wins_and_maps_between_encoders(tmp_path):
    assert x264_preset("slow", 3840, 2160) == "slow"
    assert x264_preset("p1", 640, 360) == "superfast" and x264_preset("p7", 1, 1) == "slower"
    assert nvenc_preset(None) == "p5" and nvenc_preset("ultrafast") == "p1"
    assert nvenc_preset("p3") == "p3" and check_preset(" Medium ") == "medium"
    w = open_writer(tmp_path / "p.mkv", video=VideoOptions(codec="h265", preset="p6"))
    assert w._plan((1440, 2560, 3), np.dtype(np.uint8))[2]["preset"] == "slow"
    w.abort()


def test_bad_preset_and_preset_for_a_stack_are_refused(tmp_path):
    with pytest.raises(ParameterError, match="--encode-preset quick: expected"):
        open_writer(tmp_path / "p.mp4", video=VideoOptions(preset="quick"))
    with pytest.raises(ParameterError, match="preset only apply to video"):
        open_writer(tmp_path / "p.tif", video=VideoOptions(preset="fast"))


def test_encode_preset_flag(tmp_path):
    from napari_vsr.cli import build_parser
    from napari_vsr.cli.enhance import job_request

    args = build_parser().parse_args(
        ["enhance", "in.mp4", "-o", str(tmp_path / "o.mp4"), "--encode-preset", "p4"])
    assert job_request(args).video.preset == "p4"
    args = build_parser().parse_args(["enhance", "in.mp4", "-o", str(tmp_path / "o.mp4")])
    assert job_request(args).video.preset is None
    args = build_parser().parse_args(["merge", "d", "v.mp4", "--fps", "25",
                                      "--encode-preset", "veryfast"])
    assert args.encode_preset == "veryfast"
