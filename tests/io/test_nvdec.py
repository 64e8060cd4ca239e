"""NVDEC decoding in the video reader (``hwaccel``): the frames are the software path's.

Without a usable GPU decoder (the CI machines): software decoding with one note, frames
identical; the hardware paths of the reader are driven with FFmpeg's ``cuda`` hwaccel asked for
(a decoder that does not open, a stream it cannot take); the frames a GPU hands down (nv12,
p010le) are converted like software ones.  The GPU test runs only where a CUDA device opens.
"""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest

from napari_vsr.errors import ParameterError
from napari_vsr.io import hardware, open_frames

requires_nvdec = pytest.mark.skipif(
    hardware.cuda_decode_failure() is not None, reason="needs a CUDA device for NVDEC"
)
requires_no_nvdec = pytest.mark.skipif(
    hardware.cuda_decode_failure() is None, reason="checks the fallback without NVDEC"
)


# --- without a usable GPU decoder, and what comes down from one ------------------------------
@pytest.mark.parametrize("name,download", [("h264_bframes", "nv12"), ("h264_10bit", "p010le")])
def test_reader_converts_gpu_downloads_like_software_frames(videos, name, download):
    """NVDEC hands frames down as nv12/p010le: the same samples, so the same RGB."""
    with open_frames(videos[name]) as v, av.open(str(videos[name])) as c:
        for k, frame in enumerate(c.decode(video=0)):
            if k == 3:
                break
            np.testing.assert_array_equal(v._convert(frame.reformat(format=download)),
                                          v._convert(frame))
            np.testing.assert_array_equal(v._convert(frame), v[k])


@requires_no_nvdec
@pytest.mark.parametrize("asked", ["cuda", "auto"])
def test_hwaccel_unavailable_decodes_in_software_with_a_note(videos, asked, caplog):
    from napari_vsr.jobs.source import open_source

    path = videos["h264_bframes"]
    with caplog.at_level(logging.WARNING, logger="napari_vsr.io.video_reader"):
        v = open_source(path, hwaccel=asked)
    with v, open_frames(path) as ref:
        assert v.hwaccel is None and len(v.notes) == 1
        assert str(path) in v.notes[0] and f"--hwaccel {asked}" in v.notes[0]
        assert "decoding in software" in v.notes[0]
        np.testing.assert_array_equal(v[:], ref[:])
        np.testing.assert_array_equal(v[30], ref[30])  # a seek
    assert any("decoding in software" in r.getMessage() for r in caplog.records)


def _pretend_cuda_opens(monkeypatch):
    """decode_hwaccel as on a CUDA machine: the reader's decoders then open with the hwaccel."""
    from av.codec.hwaccel import HWAccel

    monkeypatch.setattr(hardware, "decode_hwaccel",
                        lambda asked: (HWAccel("cuda", allow_software_fallback=True), None))


def test_gpu_decoder_that_does_not_open_falls_back_to_software(videos, monkeypatch):
    _pretend_cuda_opens(monkeypatch)
    path = videos["h264_bframes"]
    with open_frames(path, hwaccel="cuda") as v, open_frames(path) as ref:
        assert v.hwaccel == "cuda" and v.notes == []
        if hardware.cuda_decode_failure() is None:
            pytest.skip("the GPU decoder opens here")
        np.testing.assert_array_equal(v[10], ref[10])
        np.testing.assert_array_equal(v[:], ref[:])
        assert v.hwaccel is None and len(v.notes) == 1
        assert "the GPU decoder did not open" in v.notes[0]


def test_stream_the_gpu_cannot_decode_is_read_in_software(videos, monkeypatch):
    """FFmpeg decodes in software what NVDEC lacks (here FFV1: no hardware decoder at all)."""
    _pretend_cuda_opens(monkeypatch)
    path = videos["gray_ffv1"]
    with open_frames(path, hwaccel="auto") as v, open_frames(path) as ref:
        np.testing.assert_array_equal(v[:], ref[:])
        assert v.hwaccel is None and len(v.notes) == 1
        assert "the GPU cannot decode this ffv1 stream" in v.notes[0]


def test_hwaccel_values(videos):
    with open_frames(videos["h264_bframes"], hwaccel="none") as v:
        assert v.hwaccel is None and v.notes == []
    with pytest.raises(ParameterError, match="--hwaccel vaapi"):
        open_frames(videos["h264_bframes"], hwaccel="vaapi")


def test_hwaccel_flag_reaches_the_request(tmp_path):
    from napari_vsr.cli import build_parser
    from napari_vsr.cli.enhance import job_request

    argv = ["enhance", "in.mp4", "-o", str(tmp_path / "o.mp4")]
    assert job_request(build_parser().parse_args(argv + ["--hwaccel", "cuda"])).hwaccel == "cuda"
    assert job_request(build_parser().parse_args(argv + ["--hwaccel", "none"])).hwaccel is None
    assert job_request(build_parser().parse_args(argv)).hwaccel is None


# --- on an NVIDIA GPU ---------------------------------------------------------------------------
@requires_nvdec
@pytest.mark.parametrize("name", ["h264_bframes", "h264_10bit", "mpeg4_avi"])
def test_nvdec_frames_match_software_decoding(videos, name):
    path = videos[name]
    with open_frames(path, hwaccel="cuda") as gpu, open_frames(path) as cpu:
        frames = gpu[:]
        # NVDEC lacks some streams (H.264 10-bit before Blackwell): then software, with a note
        assert gpu.hwaccel == "cuda" or len(gpu.notes) == 1
        ref = cpu[:]
        assert frames.shape == ref.shape and frames.dtype == ref.dtype
        diff = np.abs(frames.astype(np.int32) - ref)
        assert diff.max() <= 1 and diff.mean() < 0.01  # the same decoded samples, same maths
        np.testing.assert_array_equal(gpu[5], cpu[5])  # a seek
