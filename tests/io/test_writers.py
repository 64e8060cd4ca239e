"""Writers: round trips, atomic commit, overwrite rules, timing and copied streams."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from napari_vsr.errors import (
    OutputExistsError,
    ParameterError,
    UnsupportedDtypeError,
    WriteError,
)
from napari_vsr.io import VideoOptions, open_frames, open_writer, write_frames_to, writer_kind

LOSSLESS = VideoOptions(lossless=True)


@pytest.fixture
def clip(media_mod) -> np.ndarray:
    return np.stack([media_mod.barcode_frame(i, 48, 160) for i in range(10)])


def _indices(media_mod, frames, size=None):
    if size is not None:
        frames = frames[:, : size[0], : size[1]]
    return [media_mod.read_barcode(f) for f in frames]


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv", ".m4v"])
def test_lossy_video_round_trip(tmp_path, clip, media_mod, ext):
    path = write_frames_to(tmp_path / f"out{ext}", clip, fps=25)
    assert path.is_file()
    with open_frames(path) as v:
        assert v.shape == clip.shape and v.dtype == np.uint8
        assert v.metadata["fps_fraction"] == "25/1" and v.metadata["codec"] == "h264"
        assert _indices(media_mod, v[:]) == list(range(10))
        assert np.abs(v[:].astype(int) - clip).mean() < 6


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_lossless_video_is_bit_exact(tmp_path, clip, ext):
    path = write_frames_to(tmp_path / f"ll{ext}", clip, video=LOSSLESS)
    with open_frames(path) as v:
        np.testing.assert_array_equal(v[:], clip)


def test_lossless_mkv_keeps_gray_and_uint16(tmp_path, clip):
    gray = clip[..., 0].copy()
    with open_frames(write_frames_to(tmp_path / "g.mkv", gray, video=LOSSLESS)) as v:
        assert v.shape == gray.shape
        np.testing.assert_array_equal(v[:], gray)
    deep = clip.astype(np.uint16) * 257 + 3
    with open_frames(write_frames_to(tmp_path / "d.mkv", deep, video=LOSSLESS)) as v:
        assert v.dtype == np.uint16
        np.testing.assert_array_equal(v[:], deep)
    with pytest.raises(ParameterError, match="mkv"):
        write_frames_to(tmp_path / "d.mp4", deep, video=LOSSLESS)
    assert not (tmp_path / "d.mp4").exists()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_lossless_mkv_keeps_rgba(tmp_path, clip, dtype):
    alpha = np.broadcast_to(np.arange(clip.shape[2], dtype=np.uint8) * 3, clip.shape[:3])
    rgba = np.concatenate([clip, alpha[..., None]], axis=-1).astype(dtype)
    if dtype == np.uint16:
        rgba = rgba * 257 + 1
    with open_frames(write_frames_to(tmp_path / "a.mkv", rgba, video=LOSSLESS)) as v:
        assert v.shape == rgba.shape and v.dtype == dtype
        np.testing.assert_array_equal(v[:], rgba)


def test_odd_size_is_padded_for_yuv420p(tmp_path, media_mod):
    clip = np.stack([media_mod.barcode_frame(i, 47, 161) for i in range(4)])
    with open_frames(write_frames_to(tmp_path / "odd.mp4", clip)) as v:
        assert v.shape == (4, 48, 162, 3)
        assert _indices(media_mod, v[:], size=(47, 161)) == [0, 1, 2, 3]
    with open_frames(write_frames_to(tmp_path / "odd.mkv", clip, video=LOSSLESS)) as v:
        assert v.shape == clip.shape


def test_gray_uint16_float_into_lossy_video(tmp_path, clip):
    gray = clip[..., 0]
    with open_frames(write_frames_to(tmp_path / "g.mp4", gray)) as v:
        assert v.shape == (*gray.shape, 3)  # gray stored as luma, read back as RGB
        assert np.abs(v[:, :, :, 1].astype(int) - gray).mean() < 6
    deep = clip.astype(np.uint16) * 257
    with open_frames(write_frames_to(tmp_path / "d.mp4", deep)) as v:  # 16-bit: 10-bit H.264
        assert v.metadata["pix_fmt"] == "yuv420p10le" and v.dtype == np.uint16
        assert np.abs(v[:].astype(int) - deep).mean() < 6 * 257
    flt = clip.astype(np.float32) / 255
    with open_frames(write_frames_to(tmp_path / "f.mp4", flt)) as v:
        assert np.abs(v[:].astype(int) - clip).mean() < 6


@pytest.mark.parametrize(
    "fps,fraction",
    [
        (12.5, "25/2"),
        (25, "25/1"),
        (29.97, "30000/1001"),
        ("30000/1001", "30000/1001"),
        (Fraction(24000, 1001), "24000/1001"),
    ],
)
@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_fps_is_kept_exactly(tmp_path, clip, fps, fraction, ext):
    path = write_frames_to(tmp_path / f"r{ext}", clip[:6], fps=fps)
    with open_frames(path) as v:
        assert v.metadata["fps_fraction"] == fraction
        # Matroska stores millisecond timestamps
        np.testing.assert_allclose(
            np.diff(v.frame_times()), float(1 / Fraction(fraction)), atol=1.1e-3
        )


def test_frame_times_keep_variable_frame_rate(tmp_path, clip, vfr_times):
    times = vfr_times[:10]
    for ext in (".mp4", ".mkv"):
        vfr = VideoOptions(frame_times=times)
        with open_frames(write_frames_to(tmp_path / f"vfr{ext}", clip, video=vfr)) as v:
            np.testing.assert_allclose(v.frame_times(), times, atol=1e-3)


def test_audio_is_copied_from_the_source(tmp_path, videos, media_mod):
    src = videos["h264_bframes"]
    with open_frames(src) as v:
        frames = v[:]
        times = v.frame_times()
    for ext in (".mkv", ".mp4", ".mov"):
        out = write_frames_to(
            tmp_path / f"a{ext}",
            frames,
            video=VideoOptions(copy_streams_from=src, frame_times=times),
        )
        with open_frames(out) as w:
            assert w.metadata["has_audio"]
            assert w.metadata["audio_streams"][0]["codec"] == "aac"  # copied, not re-encoded
            assert w.metadata["fps_fraction"] == "25/1"  # taken from the source
            assert _indices(media_mod, w[:]) == list(range(len(frames)))


def test_audio_reencoded_when_the_container_refuses_it(tmp_path, media_mod):
    import av

    src = tmp_path / "pcm.mkv"
    with av.open(str(src), "w") as out:
        s = out.add_stream("pcm_s16le", rate=8000)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 8000), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = 8000, 0
        for p in s.encode(frame):
            out.mux(p)
        for p in s.encode():
            out.mux(p)
    clip = np.stack([media_mod.barcode_frame(i, 48, 160) for i in range(3)])
    copy = VideoOptions(copy_streams_from=src)
    with open_frames(write_frames_to(tmp_path / "o.mp4", clip, fps=3, video=copy)) as v:
        assert v.metadata["audio_streams"][0]["codec"] == "aac"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("target", ["frames_dir", "out.frames", "trailing/"])
def test_png_folder_round_trip(tmp_path, rng, dtype, target):
    hi = np.iinfo(dtype).max
    data = (rng.random((4, 12, 20, 3)) * hi).astype(dtype)
    path = str(tmp_path / target)
    assert writer_kind(path) == "frames"
    out = write_frames_to(path, data, fps=12.5, metadata={"note": "x", "bad": object()})
    assert out.is_dir()
    names = sorted(p.name for p in out.iterdir())
    assert names[0] == ".napari-vsr-output"  # the marker that lets --overwrite replace it
    assert names[1:3] == ["frame_000000.png", "frame_000001.png"] and "napari_vsr.json" in names
    with open_frames(out) as v:
        assert v.dtype == dtype and v.shape == data.shape and v.metadata["fps"] == 12.5
        np.testing.assert_array_equal(v[:], data)


def test_png_refuses_float(tmp_path):
    with pytest.raises(UnsupportedDtypeError, match="tif"):
        write_frames_to(tmp_path / "f.frames", np.zeros((2, 4, 4), np.float32))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("channels", [None, 3, 4])
def test_tiff_round_trip_keeps_dtype(tmp_path, rng, dtype, channels):
    shape = (5, 10, 14) + ((channels,) if channels else ())
    hi = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    data = (rng.random(shape) * hi).astype(dtype)
    out = write_frames_to(tmp_path / "s.tiff", data, fps=29.97, metadata={"method": "test"})
    with open_frames(out) as v:
        assert v.shape == shape and v.dtype == dtype
        np.testing.assert_array_equal(v[:], data)
        assert v.metadata["fps"] == pytest.approx(30000 / 1001)
        assert v.metadata["stored_metadata"]["method"] == "test"


def test_existing_target_raises_before_any_work(tmp_path, clip):
    for name in ("x.mp4", "x.tif", "x.frames"):
        target = tmp_path / name
        write_frames_to(target, clip[:2])
        with pytest.raises(OutputExistsError) as info:
            open_writer(target)
        assert isinstance(info.value, FileExistsError) and name in str(info.value)
        # overwrite replaces it
        write_frames_to(target, clip[:3], overwrite=True)
        with open_frames(target) as v:
            assert len(v) == 3


@pytest.mark.parametrize("name", ["x.mp4", "x.mkv", "x.tif", "x.frames"])
@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_inside_with_leaves_nothing(tmp_path, clip, name, exc):
    target = tmp_path / name
    with pytest.raises(exc):
        with open_writer(target) as w:
            w.write(clip[0])
            w.write(clip[1])
            raise exc("stop")
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_the_old_target(tmp_path, clip):
    target = tmp_path / "keep.mp4"
    write_frames_to(target, clip[:2])
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with open_writer(target, overwrite=True) as w:
            w.write(clip[0])
            raise RuntimeError
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]


def test_temp_file_beside_target_until_commit(tmp_path, clip):
    w = open_writer(tmp_path / "t.tif")
    w.write(clip[0])
    assert not (tmp_path / "t.tif").exists()
    assert w.temp_path.parent == tmp_path and w.temp_path.exists()
    w.close()
    assert (tmp_path / "t.tif").exists() and not w.temp_path.exists()
    w.close()  # idempotent


def test_abort_and_empty_close(tmp_path, clip):
    w = open_writer(tmp_path / "a.tif")
    w.write(clip[0])
    w.abort()
    assert list(tmp_path.iterdir()) == []
    w = open_writer(tmp_path / "b.mp4")
    with pytest.raises(WriteError, match="no frames"):
        w.close()
    assert list(tmp_path.iterdir()) == []


def test_mismatched_frames_are_refused(tmp_path, clip):
    with pytest.raises(WriteError, match="first frame"):
        with open_writer(tmp_path / "m.mkv") as w:
            w.write(clip[0])
            w.write(clip[0, :20])
    with pytest.raises(WriteError, match="shape"):
        with open_writer(tmp_path / "m.tif") as w:
            w.write(np.zeros((2, 4, 4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_writer_kind_rules(tmp_path):
    assert writer_kind("a.MP4") == "video" and writer_kind("a.mov") == "video"
    assert writer_kind("a.TIF") == "tiff" and writer_kind("a.zarr") == "zarr"
    assert writer_kind("out") == "frames" and writer_kind("out/") == "frames"
    assert writer_kind(tmp_path) == "frames"
    with pytest.raises(ParameterError, match=r"\.avi"):
        writer_kind("clip.avi")
    with pytest.raises(ParameterError, match="crf"):
        open_writer(tmp_path / "x.tif", video=VideoOptions(crf=20))
    with pytest.raises(ParameterError, match="encoder"):
        open_writer(tmp_path / "x.mp4", video=VideoOptions(codec="no-such-codec"))
    with pytest.raises(ParameterError, match="crf"):
        open_writer(tmp_path / "x.mp4", video=VideoOptions(crf=80))
    assert list(tmp_path.iterdir()) == []


def test_other_encoder(tmp_path, clip, media_mod):
    mpeg4 = VideoOptions(codec="mpeg4")
    with open_frames(write_frames_to(tmp_path / "m.mkv", clip, video=mpeg4)) as v:
        assert v.metadata["codec"] == "mpeg4"
        assert _indices(media_mod, v[:]) == list(range(10))


def test_iterable_and_frame_array_input(tmp_path, clip, videos, media_mod):
    out = write_frames_to(tmp_path / "it.tif", (f for f in clip[:3]))
    with open_frames(out) as v:
        assert len(v) == 3
    with open_frames(videos["mpeg4_avi"]) as src:
        out = write_frames_to(tmp_path / "fa.mkv", src, video=LOSSLESS)
        with open_frames(out) as v:
            assert _indices(media_mod, v[:]) == list(range(len(src)))


def test_zarr_target_uses_the_result_store(tmp_path, clip):
    pytest.importorskip("napari_vsr.io.zarr_store")
    out = write_frames_to(tmp_path / "r.zarr", clip[:3], fps=12.5)
    import zarr

    group_or_array = zarr.open(str(out), mode="r")
    assert out.is_dir() and group_or_array is not None


def test_copied_audio_follows_a_sub_range(tmp_path, videos):
    import av

    src = videos["h264_bframes"]  # 60 frames at 25 fps, audio from 0 to ~2.5 s
    with open_frames(src) as v:
        frames = v[20:40]
        times = v.frame_times()[20:40]
    video = VideoOptions(copy_streams_from=src, frame_times=times)
    out = write_frames_to(tmp_path / "part.mkv", frames, video=video)
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        stamps = [float(p.pts * p.time_base) for p in c.demux(a) if p.pts is not None]
    assert min(stamps) >= 0 and min(stamps) < 0.1  # starts with the video, not at the source's 0
    assert max(stamps) < 0.8 + 0.05  # 20 frames = 0.8 s of audio, not the whole 2.5 s


def test_dropped_writer_removes_its_temp_file(tmp_path, clip):
    import gc

    w = open_writer(tmp_path / "dropped.tif")
    w.write(clip[0])
    temp = w.temp_path
    assert temp.exists()
    del w
    gc.collect()
    assert not temp.exists() and list(tmp_path.iterdir()) == []


def test_video_options_travel_as_one_record(tmp_path):
    opts = VideoOptions(codec="ffv1", color_range="full")
    with pytest.raises(AttributeError):
        opts.codec = "h264"  # frozen
    frames = np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (3, 32, 1, 3))[:, :, :64]
    with open_writer(tmp_path / "v.mkv", fps="30000/1001", video=opts) as w:
        for f in frames:
            w.write(f)
    with open_frames(tmp_path / "v.mkv") as v:
        assert len(v) == 3 and v.metadata["fps_fraction"] == "30000/1001"
    with pytest.raises(ParameterError, match="crf, lossless only apply to video"):
        open_writer(tmp_path / "x.tif", video=VideoOptions(crf=10, lossless=True))
    # colour tags describe a source: not an error for a stack output
    open_writer(tmp_path / "y.tif", video=VideoOptions(color_primaries="bt709")).abort()
    with pytest.raises(TypeError):  # the options travel only as the record
        open_writer(tmp_path / "z.mkv", crf=3)
