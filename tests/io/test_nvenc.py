"""NVENC encoding in the video writer: the probed choice, the software fallback and its note.

Without a usable NVIDIA encoder (the CI machines) the fallback is tested: the software encoder of
the same bitstream with one note naming the file, what was asked, why it failed and what is
used, decided in the pre-flight; the output still right (frames, size, fps, colour tags).  What
an NVENC writer plans (formats, options) is tested with the probe answered "opens"; the GPU
tests run only where an NVENC encoder really opens.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import numpy as np
import pytest

from napari_vsr.io import VideoOptions, hardware, open_frames, open_writer, write_frames_to

NTSC = Fraction(30000, 1001)
#: (colorspace, color_range, color_primaries, color_trc) written for SD-sized output
SD_TAGS = (6, 1, 6, 6)


def _nvenc_opens(encoder: str, *, ten_bit: bool = False) -> bool:
    return hardware.nvenc_failure(encoder, 640, 360, ten_bit=ten_bit) is None


requires_nvenc = pytest.mark.skipif(
    not _nvenc_opens("h264_nvenc"), reason="needs a CUDA GPU with NVENC (h264_nvenc opens)"
)
requires_no_nvenc = pytest.mark.skipif(
    _nvenc_opens("h264_nvenc"), reason="checks the fallback where NVENC does not open"
)


@pytest.fixture
def clip(media_mod) -> np.ndarray:
    """(12, 96, 160, 3) uint8 barcoded frames."""
    return np.stack([media_mod.barcode_frame(i, 96, 160) for i in range(12)])


@pytest.fixture
def gpu_clip(media_mod) -> np.ndarray:
    """(12, 360, 640, 3) uint8 barcoded frames: above every NVENC minimum size, still SD."""
    return np.stack([media_mod.barcode_frame(i, 360, 640) for i in range(12)])


def _stream_tags(path) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(frame tags, stream tags): (colorspace, color_range, color_primaries, color_trc)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        cc = stream.codec_context
        f = next(c.decode(stream))
        return (
            (f.colorspace, f.color_range, f.color_primaries, f.color_trc),
            (cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc),
        )


def _check_output(path, frames, media_mod, *, codec: str, dtype=np.uint8) -> None:
    with open_frames(path) as v:
        assert v.shape == frames.shape and v.dtype == dtype
        assert v.metadata["fps_fraction"] == "30000/1001"
        assert v.metadata["codec"] == codec
        assert (v.metadata["color_matrix"], v.metadata["color_range"]) == ("bt601", "limited")
        got = v[:]
        assert [media_mod.read_barcode(f) for f in got] == list(range(len(frames)))
        scale = 257.0 if dtype == np.uint16 else 1.0
        assert np.abs(got / scale - frames / scale).mean() < 6
    frame_tags, stream_tags = _stream_tags(path)
    assert frame_tags == SD_TAGS and stream_tags == SD_TAGS


# --- NVENC asked for, not usable: the software encoder of the same kind ------------------------
@requires_no_nvenc
@pytest.mark.parametrize(
    "codec,software",
    [("h264_nvenc", "libx264"), ("nvenc", "libx264"), ("hevc_nvenc", "libx265"),
     ("av1_nvenc", None)],
)
def test_nvenc_fallback_is_decided_in_the_preflight(tmp_path, codec, software):
    software = software or hardware.software_encoder("av1_nvenc")
    asked = {"nvenc": "h264_nvenc"}.get(codec, codec)
    w = open_writer(tmp_path / "out.mkv", fps=NTSC, video=VideoOptions(codec=codec))
    try:
        w.preflight((96, 160, 3), np.uint8, 12)  # before any frame: the choice is known
        assert w.frames_written == 0 and w.encoder == software
        assert len(w.notes) == 1
        note = w.notes[0]
        assert str(tmp_path / "out.mkv") in note and asked in note and software in note
        assert "cannot encode here (" in note  # FFmpeg's reason in brackets
        w.validate((96, 160, 3), np.uint8)
        assert len(w.notes) == 1  # once per writer
    finally:
        w.abort()


@requires_no_nvenc
def test_h264_nvenc_fallback_output_is_right(tmp_path, clip, media_mod, caplog):
    path = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING, logger="napari_vsr.io.video_writer"):
        write_frames_to(path, clip, fps=NTSC, video=VideoOptions(codec="h264_nvenc"))
    logged = [r.getMessage() for r in caplog.records if "h264_nvenc" in r.getMessage()]
    assert len(logged) == 1 and "libx264" in logged[0] and str(path) in logged[0]
    _check_output(path, clip, media_mod, codec="h264")


@requires_no_nvenc
def test_hevc_nvenc_10bit_fallback_keeps_the_bit_depth(tmp_path, clip, media_mod):
    deep = clip.astype(np.uint16) * 257
    path = tmp_path / "deep.mkv"
    w = open_writer(path, fps=NTSC, video=VideoOptions(codec="hevc_nvenc"))
    with w:
        w.preflight(deep.shape[1:], deep.dtype, len(deep))
        assert w.encoder == "libx265" and "10-bit" in w.notes[0]
        for f in deep:
            w.write(f)
    with open_frames(path) as v:
        assert v.metadata["pix_fmt"] == "yuv420p10le"
    _check_output(path, deep, media_mod, codec="hevc", dtype=np.uint16)


@requires_no_nvenc
@pytest.mark.parametrize("codec", [None, "auto", "AUTO"])
def test_automatic_choice_on_a_cuda_job_falls_back_to_software(tmp_path, clip, codec):
    video = VideoOptions(codec=codec, prefer_hardware=True)
    w = open_writer(tmp_path / "a.mp4", video=video)
    w.preflight(clip.shape[1:], clip.dtype, len(clip))
    w.abort()
    assert w.encoder == "libx264"
    assert len(w.notes) == 1 and "NVENC" in w.notes[0] and "libx264 (software)" in w.notes[0]


def test_no_hardware_without_the_hint_or_in_webm(tmp_path, clip, monkeypatch):
    calls = []
    monkeypatch.setattr(hardware, "nvenc_failure", lambda *a, **k: calls.append(a))
    for name, video in [("plain.mp4", VideoOptions()), ("auto.mp4", VideoOptions(codec="auto")),
                        ("hint.webm", VideoOptions(prefer_hardware=True)),
                        ("x265.mp4", VideoOptions(codec="h265", prefer_hardware=True)),
                        ("ll.mkv", VideoOptions(lossless=True, prefer_hardware=True))]:
        w = open_writer(tmp_path / name, video=video)
        w.validate(clip.shape[1:], clip.dtype)
        w.abort()
        assert w.notes == [] and not hardware.is_nvenc(w.encoder), name
    assert calls == []  # no NVENC probe at all
    # a hint, not a user's option: no error for a stack output
    open_writer(tmp_path / "q.tif", video=VideoOptions(prefer_hardware=True)).abort()


def test_fallback_warning_is_logged_once_per_process(tmp_path, clip, monkeypatch, caplog):
    monkeypatch.setattr(hardware, "nvenc_failure", lambda *a, **k: "No NVENC capable devices found")
    target = tmp_path / "twice.mp4"
    with caplog.at_level(logging.WARNING, logger="napari_vsr.io.video_writer"):
        for _ in range(2):  # the job runner: a pre-flight writer, then the assembling one
            w = open_writer(target, video=VideoOptions(codec="hevc_nvenc"))
            w.validate(clip.shape[1:], clip.dtype)
            w.abort()
            assert w.notes == [
                f"{target}: hevc_nvenc 160x96 was asked for but cannot encode here (No NVENC "
                "capable devices found); encoding with libx265 (software) instead"
            ]
    assert sum("hevc_nvenc" in r.getMessage() for r in caplog.records) == 1


# --- NVENC usable (simulated here; real on a GPU below): what is planned ------------------------
def _opens(*working):
    """A stand-in for hardware.nvenc_failure: the named (encoder, ten_bit) pairs open."""

    def failure(encoder, width, height, *, ten_bit=False, options=None):
        return None if (encoder, ten_bit) in working else "10 bit encode not supported"

    return failure


def test_nvenc_plan_options_and_input_formats(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "nvenc_failure", _opens(("hevc_nvenc", False),
                                                          ("hevc_nvenc", True),
                                                          ("av1_nvenc", False)))
    w = open_writer(tmp_path / "h.mp4", video=VideoOptions(codec="hevc_nvenc", crf=20))
    enc, pix_fmt, opts, kind = w._plan((96, 160, 3), np.dtype(np.uint8))
    assert (enc, pix_fmt, kind) == ("hevc_nvenc", "yuv420p", "yuv")
    assert opts == {"preset": "p5", "tune": "hq", "rc": "vbr", "cq": "20", "b": "0"}
    assert w._plan((96, 160, 3), np.dtype(np.uint16))[1] == "p010le"
    assert w.notes == []
    assert w._plan((96, 160, 4), np.dtype(np.uint8))[1] == "yuv420p"
    assert len(w.notes) == 1 and "hevc_nvenc cannot store alpha" in w.notes[0]
    w.abort()
    w = open_writer(tmp_path / "a.mkv", video=VideoOptions(codec="av1_nvenc", crf=0,
                                                           preset="veryfast"))
    opts = w._plan((96, 160, 3), np.dtype(np.uint8))[2]
    assert opts["cq"] == "13" and opts["preset"] == "p2"  # AV1 scale; x264 name mapped
    w.abort()


def test_automatic_choice_takes_nvenc_when_it_opens(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "nvenc_failure", _opens(("h264_nvenc", False),
                                                          ("hevc_nvenc", True)))
    hint = VideoOptions(prefer_hardware=True)
    w = open_writer(tmp_path / "a.mov", video=hint)
    w.validate((96, 160, 3), np.uint8)
    assert w.encoder == "h264_nvenc" and w.notes == []
    w.abort()
    # 16-bit frames: H.264 NVENC has no 10-bit here, HEVC has
    w = open_writer(tmp_path / "d.mp4", video=hint)
    w.validate((96, 160, 3), np.uint16)
    assert w.encoder == "hevc_nvenc" and "10-bit HEVC" in w.notes[0]
    w.abort()
    # asked for by name: the software H.264 (10-bit) and a hint at hevc_nvenc
    w = open_writer(tmp_path / "e.mp4", video=VideoOptions(codec="h264_nvenc"))
    w.validate((96, 160, 3), np.uint16)
    assert w.encoder == "libx264" and "hevc_nvenc encodes 10-bit" in w.notes[0]
    assert w._plan((96, 160, 3), np.dtype(np.uint16))[1] == "yuv420p10le"
    w.abort()


# --- on an NVIDIA GPU ---------------------------------------------------------------------------
@requires_nvenc
def test_h264_nvenc_writes_the_video(tmp_path, gpu_clip, media_mod):
    path = tmp_path / "gpu.mp4"
    w = open_writer(path, fps=NTSC, video=VideoOptions(codec="h264_nvenc"))
    with w:
        w.preflight(gpu_clip.shape[1:], gpu_clip.dtype, len(gpu_clip))
        assert w.encoder == "h264_nvenc" and w.notes == []
        for f in gpu_clip:
            w.write(f)
    _check_output(path, gpu_clip, media_mod, codec="h264")


@pytest.mark.skipif(not _nvenc_opens("hevc_nvenc", ten_bit=True),
                    reason="needs a GPU whose NVENC encodes 10-bit HEVC")
def test_hevc_nvenc_writes_10_bit_video(tmp_path, gpu_clip, media_mod):
    deep = gpu_clip.astype(np.uint16) * 257
    path = tmp_path / "gpu10.mkv"
    w = open_writer(path, fps=NTSC, video=VideoOptions(codec="hevc_nvenc"))
    with w:
        w.preflight(deep.shape[1:], deep.dtype, len(deep))
        assert w.encoder == "hevc_nvenc" and w.notes == []
        for f in deep:
            w.write(f)
    with open_frames(path) as v:
        assert v.metadata["bit_depth"] == 10
    _check_output(path, deep, media_mod, codec="hevc", dtype=np.uint16)


@requires_nvenc
def test_automatic_choice_uses_nvenc_on_a_gpu(tmp_path, gpu_clip, media_mod):
    path = tmp_path / "auto.mp4"
    w = open_writer(path, fps=NTSC, video=VideoOptions(prefer_hardware=True))
    with w:
        w.preflight(gpu_clip.shape[1:], gpu_clip.dtype, len(gpu_clip))
        assert w.encoder == "h264_nvenc" and w.notes == []
        for f in gpu_clip:
            w.write(f)
    _check_output(path, gpu_clip, media_mod, codec="h264")
