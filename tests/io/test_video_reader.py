"""Frame-accurate lazy video reading on real encoded files."""

from __future__ import annotations

import threading
from fractions import Fraction

import numpy as np
import pytest

from napari_vsr.io import FrameArray, is_supported, open_frames

ALL = ["h264_bframes", "mpeg4_avi", "vfr_mkv", "vfr_mp4", "h264_10bit", "gray_ffv1"]


@pytest.mark.parametrize("name", ALL)
def test_random_and_sequential_reads_are_frame_accurate(videos, media_mod, name, rng):
    with open_frames(videos[name]) as v:
        n = len(v)
        order = rng.permutation(n)
        got = [media_mod.read_barcode(v[int(i)]) for i in order]
        assert got == [int(i) for i in order]
        # backwards, then sequential from the start, then a slice
        assert [media_mod.read_barcode(v[i]) for i in range(n - 1, -1, -3)] == list(
            range(n - 1, -1, -3)
        )
        assert [media_mod.read_barcode(f) for f in v] == list(range(n))
        assert [media_mod.read_barcode(f) for f in v[3:n:2]] == list(range(3, n, 2))


@pytest.mark.parametrize("name", ALL)
def test_accuracy_with_a_tiny_cache(videos, media_mod, name, rng):
    with open_frames(videos[name], cache_mb=0) as v:
        idx = rng.integers(0, len(v), size=25)
        assert [media_mod.read_barcode(v[int(i)]) for i in idx] == [int(i) for i in idx]


def test_shapes_dtypes_and_layouts(videos):
    with open_frames(videos["h264_bframes"]) as v:
        assert isinstance(v, FrameArray)
        assert v.shape == (60, 96, 160, 3) and v.dtype == np.uint8 and v.ndim == 4 and v.rgb
        assert len(v) == 60 and v.size == 60 * 96 * 160 * 3
    with open_frames(videos["gray_ffv1"]) as v:
        assert v.shape == (12, 96, 160) and v.dtype == np.uint8 and not v.rgb
    with open_frames(videos["h264_10bit"]) as v:
        assert v.shape == (12, 96, 160, 3) and v.dtype == np.uint16
        assert v[0].max() > 255  # full 16-bit range, not 8-bit values in a 16-bit box


def test_indexing_forms(videos, media_mod):
    with open_frames(videos["h264_bframes"]) as v:
        assert v[-1].shape == (96, 160, 3) and media_mod.read_barcode(v[-1]) == 59
        picked = v[np.array([5, 2, 5, 40])]
        assert picked.shape == (4, 96, 160, 3)
        assert [media_mod.read_barcode(f) for f in picked] == [5, 2, 5, 40]
        mask = np.zeros(60, bool)
        mask[[1, 30]] = True
        assert [media_mod.read_barcode(f) for f in v[mask]] == [1, 30]
        crop = v[7, 10:20, 30:50]
        assert crop.shape == (10, 20, 3)
        np.testing.assert_array_equal(crop, v[7][10:20, 30:50])
        assert v[2:4, :, :, 0].shape == (2, 96, 160)
        np.testing.assert_array_equal(v[2:4, ..., 1], v[2:4][..., 1])
        np.testing.assert_array_equal(v[..., 0][5], v[5][..., 0])
        assert v[...].shape == v.shape and v[()].shape == v.shape
        assert v[None, 1].shape == (1, 96, 160, 3)
        assert v[[]].shape == (0, 96, 160, 3)
        assert np.asarray(v[:3]).shape == (3, 96, 160, 3)
        with pytest.raises(IndexError):
            v[60]
        # results are copies: changing them does not change the next read
        a = v[3]
        a[:] = 0
        assert v[3].any()


def test_full_array_conversion(videos, media_mod):
    with open_frames(videos["mpeg4_avi"]) as v:
        arr = np.asarray(v)
        assert arr.shape == v.shape
        assert [media_mod.read_barcode(f) for f in arr] == list(range(len(v)))


def test_metadata(videos):
    with open_frames(videos["h264_bframes"]) as v:
        md = v.metadata
        assert md["kind"] == "video" and md["n_frames"] == 60
        assert md["fps"] == 25.0 and md["fps_fraction"] == "25/1" and md["nominal_fps"] == 25.0
        assert Fraction(md["time_base"]) > 0
        assert md["duration_s"] == pytest.approx(60 / 25)
        assert md["codec"] == "h264" and md["pix_fmt"] == "yuv420p"
        assert md["has_audio"] and not md["has_subtitles"]
        assert md["audio_streams"][0]["codec"] == "aac"
        assert md["rotation"] == 0
        assert md["source_path"].endswith("h264.mp4")
        np.testing.assert_allclose(v.frame_times(), np.arange(60) / 25)


def test_vfr_frame_times(videos, vfr_times):
    for name in ("vfr_mkv", "vfr_mp4"):
        with open_frames(videos[name]) as v:
            assert len(v) == len(vfr_times)
            np.testing.assert_allclose(v.frame_times(), vfr_times, atol=1e-3)


def test_concurrent_readers_get_the_right_frames(videos, media_mod):
    with open_frames(videos["h264_bframes"], cache_mb=1) as v:
        errors: list[str] = []

        def work(seed: int) -> None:
            r = np.random.default_rng(seed)
            for i in r.integers(0, 60, size=15):
                got = media_mod.read_barcode(v[int(i)])
                if got != i:
                    errors.append(f"asked {i} got {got}")

        threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


def test_cache_is_bounded(videos):
    frame_bytes = 96 * 160 * 3
    with open_frames(videos["h264_bframes"], cache_mb=10 * frame_bytes / 2**20) as v:
        for i in range(60):
            v[i]
        assert v._cache.nbytes <= 10 * frame_bytes
        assert len(v._cache) == 10


def test_close_and_context_manager(videos):
    v = open_frames(videos["mpeg4_avi"])
    with v:
        v[0]
    assert v.closed
    with pytest.raises(ValueError, match="closed"):
        v[1]
    v.close()  # idempotent


def test_uppercase_extension_and_is_supported(videos, tmp_path):
    assert is_supported(videos["vfr_mp4"])  # vfr.MP4
    for ext in ("mp4", "M4V", "mov", "AVI", "mkv", "WebM", "gif", "tif", "TIFF"):
        assert is_supported(tmp_path / f"clip.{ext}")
    for bad in ("clip.txt", "clip", "clip.zarr", 12, None):
        assert not is_supported(bad)
    # an empty folder is claimed, so that the reader can say why it holds nothing to open
    assert is_supported(tmp_path)


def test_gif(tmp_path, media_mod):
    import av

    path = tmp_path / "anim.gif"
    with av.open(str(path), "w") as out:
        s = out.add_stream("gif", rate=10)
        s.width, s.height, s.pix_fmt = 160, 48, "rgb8"
        for i in range(8):
            f = av.VideoFrame.from_ndarray(media_mod.barcode_frame(i, 48, 160), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    with open_frames(path) as v:
        assert v.shape == (8, 48, 160, 3)
        assert [media_mod.read_barcode(v[i]) for i in (7, 0, 3)] == [7, 0, 3]


def test_stepping_backwards_uses_the_backfilled_cache(videos, media_mod):
    with open_frames(videos["h264_bframes"]) as v:
        seeks = []
        original = v._seek_to_key

        def counting(key_pos, **kwargs):
            seeks.append(key_pos)
            original(key_pos, **kwargs)

        v._seek_to_key = counting
        got = [media_mod.read_barcode(v[i]) for i in range(45, 30, -1)]
        assert got == list(range(45, 30, -1))
        assert len(seeks) <= 4  # one seek per 5 steps back, not one per step


@pytest.mark.parametrize(
    "codec,ext,pix_fmt",
    [
        ("libvpx-vp9", ".webm", "yuv420p"),
        ("libx265", ".mov", "yuv420p"),
        ("mjpeg", ".avi", "yuvj420p"),
    ],
)
def test_other_codecs_and_containers(tmp_path, media_mod, codec, ext, pix_fmt, rng):
    import av

    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this FFmpeg build")
    path = tmp_path / f"clip{ext}"
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 160, 96, pix_fmt
        if codec == "libx265":
            s.options = {"x265-params": "log-level=error:keyint=8:bframes=2", "preset": "ultrafast"}
        elif codec == "libvpx-vp9":
            s.options = {"deadline": "realtime", "cpu-used": "8", "g": "8", "crf": "30", "b": "0"}
        for i in range(16):
            f = av.VideoFrame.from_ndarray(media_mod.barcode_frame(i, 96, 160), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    with open_frames(path) as v:
        assert v.shape == (16, 96, 160, 3)
        order = rng.permutation(16)
        assert [media_mod.read_barcode(v[int(i)]) for i in order] == [int(i) for i in order]


@pytest.mark.parametrize("angle", [90, -90, 180])
def test_rotation_metadata_is_applied_like_a_player(tmp_path, media_mod, angle, capsys):
    import av

    from napari_vsr.cli import main

    path = tmp_path / "phone.mp4"
    originals = [media_mod.barcode_frame(i, 48, 160) for i in range(6)]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 160, 48, "yuv444p"
        s.options = {"crf": "10"}
        s.set_display_rotation(angle)
        for i, img in enumerate(originals):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    k = (angle // 90) % 4
    with open_frames(path) as v:
        assert v.metadata["rotation"] == k * 90 and v.metadata["rotation_applied"]
        assert v.shape[1:3] == ((160, 48) if k % 2 else (48, 160))
        for i in (4, 1):
            expected = np.rot90(originals[i], k).astype(int)
            assert np.abs(v[i].astype(int) - expected).mean() < 4
    with open_frames(path, apply_rotation=False) as v:
        assert v.shape[1:3] == (48, 160) and not v.metadata["rotation_applied"]
        assert media_mod.read_barcode(v[3]) == 3
    assert main(["info", str(path)]) == 0
    assert f"{k * 90} degrees counter-clockwise (applied)" in capsys.readouterr().out


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_stream_cut_mid_gop_starts_at_its_first_keyframe(tmp_path, videos, media_mod, ext):
    import av

    cut = tmp_path / f"cut{ext}"
    with av.open(str(videos["h264_bframes"])) as src, av.open(str(cut), "w") as out:
        stream = src.streams.video[0]
        o = out.add_stream_from_template(stream)
        packets = [p for p in src.demux(stream) if p.dts is not None]
        for p in packets[3:]:  # drop the first keyframe and two more: starts mid-GOP
            p.stream = o
            out.mux(p)
    with open_frames(cut) as v:
        # the second GOP (keyframe at 24) is the first decodable frame
        assert len(v) == 36 and media_mod.read_barcode(v[0]) == 24
        assert [media_mod.read_barcode(v[i]) for i in (35, 5, 0)] == [59, 29, 24]
        got = [media_mod.read_barcode(f) for f in v]
        assert got == list(range(24, 60))


def _plain_decode(path) -> list[np.ndarray]:
    """Every frame in presentation order by a plain PyAV loop, no seeking, nothing skipped.

    Converted with the reader's colour conversion for the stream's matrix and range (these
    tests are about which frame arrives, not about the conversion).
    """
    import av

    from napari_vsr.io.color import YuvToRgb, describe_stream

    with av.open(str(path)) as c:
        frames = list(c.decode(c.streams.video[0]))
    frames.sort(key=lambda f: f.pts)
    f0 = frames[0]
    info = describe_stream(
        f0.colorspace,
        f0.color_range,
        f0.color_primaries,
        f0.color_trc,
        width=f0.width,
        height=f0.height,
        pix_fmt=f0.format.name,
    )
    convert = YuvToRgb(f0.format.name, info)
    return [convert(f) for f in frames]


@pytest.mark.parametrize("name", ["h264_bframes", "mpeg4_avi"])
def test_random_reads_give_the_pixels_of_a_plain_decode(videos, name, rng):
    # skipping non-reference frames on the way to a target must not change any pixel
    reference = _plain_decode(videos[name])
    with open_frames(videos[name], cache_mb=0) as v:
        assert len(v) == len(reference)
        for i in rng.integers(0, len(v), size=20):
            np.testing.assert_array_equal(v[int(i)], reference[int(i)], err_msg=f"frame {i}")


def _count_conversions(v) -> list[int]:
    converted: list[int] = []
    original = v._convert

    def counting(frame):
        converted.append(frame.pts)
        return original(frame)

    v._convert = counting
    return converted


def test_a_jump_converts_only_the_frame_asked_for(videos, media_mod):
    with open_frames(videos["h264_bframes"]) as v:  # 60 frames, keyframes every 24
        converted = _count_conversions(v)
        for i in (45, 10, 57, 30):  # jumps: no stepping backwards by a few frames
            converted.clear()
            assert media_mod.read_barcode(v[i]) == i
            assert len(converted) == 1, f"frame {i}: {len(converted)} frames converted"
        assert len(v._cache) == 4


def test_stepping_back_after_a_jump_backfills_the_cache(videos, media_mod):
    with open_frames(videos["h264_bframes"]) as v:
        converted = _count_conversions(v)
        assert media_mod.read_barcode(v[44]) == 44
        assert len(converted) == 1
        converted.clear()
        assert media_mod.read_barcode(v[43]) == 43  # one step back: seeks and backfills
        assert len(converted) == 5
        converted.clear()
        # served from the backfilled cache (all in the GOP of keyframe 24)
        assert [media_mod.read_barcode(v[i]) for i in (42, 41, 40, 39)] == [42, 41, 40, 39]
        assert converted == []


def test_conversion_falls_back_when_pyav_lacks_an_option(tmp_path, media_mod):
    # swscale converts the non-Y'CbCr formats (here RGB in FFV1)
    path = media_mod.make_video(tmp_path / "rgb.mkv", codec="ffv1", pix_fmt="bgr0", n_frames=12)
    with open_frames(path, cache_mb=0) as v:
        v._sws_options = {"no_such_option": 1}  # what an older PyAV does with threads=
        assert media_mod.read_barcode(v[7]) == 7
        assert v._sws_options == {}
        assert media_mod.read_barcode(v[8]) == 8


@pytest.mark.parametrize("name", ["h264_bframes", "mpeg4_avi", "vfr_mkv"])
def test_seeks_unthreaded_and_reading_on_threaded_give_the_same_pixels(videos, name):
    # seeks decode on the unthreaded decoder; reading on moves to the threaded one at a keyframe
    reference = _plain_decode(videos[name])
    with open_frames(videos[name], cache_mb=0) as v:
        keys = v._keys
        assert len(keys) >= 2, "the clip needs two keyframes for this test"
        mid = keys[1] - 3  # a seek into the first GOP: unthreaded
        np.testing.assert_array_equal(v[mid], reference[mid])
        assert v._active is False and True not in v._handles
        for i in range(mid + 1, len(v)):  # read on across keyframe keys[1]
            np.testing.assert_array_equal(v[i], reference[i], err_msg=f"frame {i}")
            assert v._active is (i >= keys[1]), f"frame {i}"
        jump = keys[1] + 1  # a jump back is a seek again: unthreaded, same pixels
        np.testing.assert_array_equal(v[jump], reference[jump])
        assert v._active is False
        np.testing.assert_array_equal(v[0], reference[0])  # a seek onto a keyframe: threaded
        assert v._active is True


def test_threads_off_never_opens_a_second_decoder(videos, media_mod):
    from napari_vsr.io.video_reader import VideoFrames

    with VideoFrames(videos["h264_bframes"], threads=False) as v:
        assert [media_mod.read_barcode(f) for f in v] == list(range(60))
        assert list(v._handles) == [False]
