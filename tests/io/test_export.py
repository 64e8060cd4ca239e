"""Saving a whole stack: what each format keeps and loses, and the round trips (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_vsr.errors import Cancelled, ParameterError, UnsupportedDtypeError
from napari_vsr.io import open_frames
from napari_vsr.io.export import default_lossless, plan_save, save_stack
from napari_vsr.jobs.progress import CancelToken


@pytest.fixture
def gray16() -> np.ndarray:
    """6 frames of 16x20 uint16 gray using the whole 16-bit range (low bits set)."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 65535, 16 * 20).reshape(16, 20)
    frames = [np.clip(ramp + rng.integers(-300, 300, ramp.shape), 0, 65535) for _ in range(6)]
    return np.stack(frames).astype(np.uint16)


def test_default_lossless_by_target():
    assert default_lossless("a.mkv") and default_lossless("a.MKV")
    assert not default_lossless("a.mp4") and not default_lossless("a.mov")
    assert default_lossless("a.tif") and default_lossless("a.frames")


@pytest.mark.parametrize(
    ("name", "dtype", "rgb_shape", "lossless", "kept", "lost"),
    [
        ("a.mkv", "uint16", False, None, ["exact values (FFV1)", "16-bit samples", "gray"], []),
        ("a.mkv", "uint8", True, None, ["exact values (FFV1)", "8-bit samples"], []),
        ("a.mp4", "uint16", False, None, ["6 frames"],
         ["lossy H.264", "16-bit samples are stored with 10 bits", "reads back as RGB"]),
        ("a.mov", "uint8", True, None, [], ["lossy H.264"]),
        ("a.mp4", "uint8", True, True, ["exact values (lossless H.264)"], []),
        ("a.mp4", "uint8", False, True, ["exact values"], ["reads back as RGB"]),
        ("a.mkv", "uint8", False, False, [], ["lossy H.264", "reads back as RGB"]),
        ("a.mkv", "float32", True, None, ["exact values (FFV1)"], ["float values are rounded"]),
        ("a.tif", "uint16", False, None, ["uint16", "gray", "exact values"], []),
        ("a.tif", "float64", False, None, ["exact values"], ["float64 samples are stored as float32"]),
        ("a.frames", "uint16", True, None, ["16-bit samples", "RGB", "exact values"], []),
    ],
)
def test_plan_says_what_is_kept_and_lost(name, dtype, rgb_shape, lossless, kept, lost, tmp_path):
    shape = (6, 16, 20, 3) if rgb_shape else (6, 16, 20)
    plan = plan_save(tmp_path / name, shape, dtype, rgb=rgb_shape, lossless=lossless)
    for phrase in kept:
        assert any(phrase in k for k in plan.kept), (phrase, plan.kept)
    for phrase in lost:
        assert any(phrase in k for k in plan.lost), (phrase, plan.lost)
    if lost:
        assert plan.warning.startswith(f"{name}: ") and plan.lossless is not None
    else:
        assert plan.lost == () and plan.warning is None and plan.lossless
    assert not (tmp_path / name).exists()  # planning writes nothing


@pytest.mark.parametrize(
    ("name", "dtype", "shape", "rgb", "lossless", "error", "says"),
    [
        ("a.mp4", "uint16", (2, 8, 8), False, True, ParameterError, ".mkv"),
        ("a.mov", "uint8", (2, 8, 8, 4), True, True, ParameterError, ".mkv"),
        ("a.webm", "uint8", (2, 8, 8, 3), True, True, ParameterError, "webm cannot be lossless"),
        ("a.frames", "float32", (2, 8, 8), False, None, UnsupportedDtypeError, ".tif"),
        ("a.tif", "int32", (2, 8, 8), False, None, UnsupportedDtypeError, "int32"),
        ("a.mp4", "uint8", (2, 3, 8, 8), False, None, ParameterError, "4-D"),
        ("a.zarr", "uint8", (2, 8, 8), False, None, ParameterError, "not .zarr"),
    ],
)
def test_plan_refuses_what_a_format_cannot_hold(name, dtype, shape, rgb, lossless, error, says,
                                                tmp_path):
    with pytest.raises(error) as info:
        plan_save(tmp_path / name, shape, dtype, rgb=rgb, lossless=lossless)
    assert says in str(info.value)
    if says != "4-D":  # the shape error is about the data, not the file
        assert name in str(info.value)


@pytest.mark.parametrize("name", ["g.mkv", "g.tif", "g.frames"])
def test_uint16_gray_round_trips_exactly(gray16, tmp_path, name):
    out = save_stack(gray16, tmp_path / name, rgb=False, fps="30000/1001")
    with open_frames(out) as back:
        assert back.shape == gray16.shape and back.dtype == np.uint16 and not back.rgb
        np.testing.assert_array_equal(np.asarray(back[0:6]), gray16)
        assert back.metadata["fps"] == pytest.approx(30000 / 1001, abs=1e-3)


def test_uint16_gray_mp4_is_ten_bit_colour(tmp_path):
    smooth = np.repeat(np.linspace(4000, 60000, 32 * 48).reshape(1, 32, 48), 4, axis=0)
    smooth = smooth.astype(np.uint16)
    plan = plan_save(tmp_path / "g.mp4", smooth.shape, smooth.dtype, rgb=False)
    assert "16-bit samples are stored with 10 bits" in plan.warning
    out = save_stack(smooth, tmp_path / "g.mp4", rgb=False)
    with open_frames(out) as back:
        assert back.shape == (*smooth.shape, 3) and back.dtype == np.uint16
        got = np.asarray(back[2]).astype(np.int64)
    assert np.abs(got[..., 0] - got[..., 2]).max() <= 257  # gray: equal channels
    # 10-bit levels, not 8-bit ones (those are multiples of 257), and close to the source
    assert np.count_nonzero(got % 257) > got.size // 2
    assert np.abs(got[..., 1] - smooth[2].astype(np.int64)).mean() < 257


def test_uint16_webm_names_the_codec_the_writer_uses(tmp_path):
    from napari_vsr.io.video_writer import VideoWriter

    plan = plan_save(tmp_path / "g.webm", (2, 16, 32, 3), np.uint16, rgb=True)
    writer = VideoWriter(tmp_path / "g.webm", overwrite=True)
    try:
        writer.validate((16, 32, 3), np.uint16)
        encoder = writer.encoder
    finally:
        writer.abort()
    family = {"libvpx-vp9": "VP9", "libsvtav1": "AV1", "libaom-av1": "AV1"}[encoder]
    assert plan.lost[0] == f"lossy {family} compression changes the values slightly"


def test_rgb_uint8_lossless_mp4_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (3, 16, 20, 3), dtype=np.uint8)
    out = save_stack(frames, tmp_path / "c.mp4", rgb=True, lossless=True)
    with open_frames(out) as back:
        np.testing.assert_array_equal(np.asarray(back[0:3]), frames)


def test_lazy_arrays_progress_partial_count_and_cancel(gray16, tmp_path):
    store = zarr.open_array(store=str(tmp_path / "s.zarr"), mode="w", shape=gray16.shape,
                            chunks=(1, 16, 20), dtype=gray16.dtype)
    store[:] = gray16
    seen = []
    out = save_stack(store, tmp_path / "z.tif", rgb=False, n_frames=4,
                     progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with open_frames(out) as back:
        np.testing.assert_array_equal(np.asarray(back[0:4]), gray16[:4])

    token = CancelToken()

    def stop_after_two(done, total):
        if done == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        save_stack(store, tmp_path / "c.mkv", rgb=False, progress=stop_after_two, cancel=token)
    assert list(tmp_path.glob("*c.mkv*")) == []  # nothing left, not even a temporary

    with pytest.raises(ParameterError, match="no frames"):
        save_stack(store, tmp_path / "none.tif", rgb=False, n_frames=0)


def test_single_image_is_one_frame(tmp_path):
    image = np.arange(12 * 10, dtype=np.uint16).reshape(12, 10)
    out = save_stack(image, tmp_path / "one.tif", rgb=False)
    with open_frames(out) as back:
        assert back.shape == (1, 12, 10)
        np.testing.assert_array_equal(np.asarray(back[0]), image)
