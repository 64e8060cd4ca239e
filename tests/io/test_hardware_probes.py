"""The NVENC / NVDEC probes: cached once per process, FFmpeg's reason in one short line."""

from __future__ import annotations

import av
import pytest

from napari_vsr.errors import ParameterError
from napari_vsr.io import hardware


def test_nvenc_probe_is_cached_and_names_ffmpegs_reason(monkeypatch):
    hardware.reset_probes()
    calls = []

    def fake_open(encoder, width, height, pix_fmt, options):
        calls.append((encoder, pix_fmt))
        return "Cannot load libcuda.so.1"

    monkeypatch.setattr(hardware, "_open_encoder", fake_open)
    for _ in range(3):
        assert hardware.nvenc_failure("h264_nvenc", 64, 48) == "Cannot load libcuda.so.1"
    hardware.nvenc_failure("h264_nvenc", 64, 48, ten_bit=True)
    assert calls == [("h264_nvenc", "yuv420p"), ("h264_nvenc", "p010le")]
    hardware.reset_probes()


def test_ffmpeg_reason_is_one_short_line():
    exc = av.error.PermissionError(1, "Operation not permitted")
    logs = [(16, "h264_nvenc", "OpenEncodeSessionEx failed: unsupported device (2)\n"),
            (40, "h264_nvenc", "Nvenc unloaded\n"),
            (16, "h264_nvenc", "No capable devices found\n")]
    assert hardware._reason(exc, logs) == (
        "OpenEncodeSessionEx failed: unsupported device (2); No capable devices found"
    )
    assert hardware._reason(exc, []) == "Operation not permitted"
    assert len(hardware._reason(exc, [(16, "x", "y" * 500)])) <= 160


def test_hwaccel_values():
    assert hardware.check_hwaccel(None) is None and hardware.check_hwaccel("none") is None
    assert hardware.check_hwaccel(" CUDA ") == "cuda" and hardware.check_hwaccel("auto") == "auto"
    with pytest.raises(ParameterError, match="--hwaccel vaapi: expected one of none, auto, cuda"):
        hardware.check_hwaccel("vaapi")
    assert hardware.decode_hwaccel(None) == (None, None)


@pytest.mark.skipif(hardware.cuda_decode_failure() is None, reason="a CUDA device opens here")
def test_no_cuda_device_gives_a_reason_and_no_hwaccel():
    hw, why = hardware.decode_hwaccel("auto")
    assert hw is None and why and len(why) <= 160


def test_software_equivalents():
    assert hardware.software_encoder("h264_nvenc") == "libx264"
    assert hardware.software_encoder("hevc_nvenc") == "libx265"
    assert hardware.software_encoder("av1_nvenc") in hardware.SOFTWARE_EQUIVALENT["av1_nvenc"]
    assert hardware.is_nvenc("hevc_nvenc") and not hardware.is_nvenc("libx265")
