"""Metrics, wipe composites and comparison videos (Qt-free core)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from napari_vsr import compare
from napari_vsr.errors import Cancelled, ParameterError
from napari_vsr.jobs.progress import CancelToken, Progress


# --- PSNR / SSIM against values known in closed form -----------------------------------------
@pytest.mark.parametrize("offset", [1, 5, 20])
def test_psnr_constant_offset_uint8(rng, offset):
    a = rng.integers(30, 200, size=(24, 32, 3), dtype=np.uint8)
    b = (a.astype(np.int16) + offset).astype(np.uint8)
    # MSE = offset**2, so PSNR = 20 log10(255 / offset)
    assert compare.psnr(a, b) == pytest.approx(20 * math.log10(255 / offset), abs=1e-9)


def test_psnr_dtype_ranges_and_identity(rng):
    a16 = rng.integers(0, 60000, size=(8, 9), dtype=np.uint16)
    b16 = a16.copy()
    b16[0, 0] += 100  # one pixel off by 100: MSE = 100**2 / 72
    expected = 10 * math.log10(65535**2 / (100**2 / 72))
    assert compare.psnr(a16, b16) == pytest.approx(expected, rel=1e-12)
    f = rng.random((5, 6)).astype(np.float32)
    assert compare.psnr(f, f + np.float32(0.1)) == pytest.approx(20.0, abs=1e-4)
    assert compare.psnr(a16, a16) == math.inf
    assert compare.psnr(f, f + 0.5, data_range=2.0) == pytest.approx(
        10 * math.log10(4 / 0.25), abs=1e-6)
    with pytest.raises(ParameterError, match="equal shapes"):
        compare.psnr(a16, a16[:4])


@pytest.mark.parametrize("mx, my", [(100, 100), (100, 50), (10, 200)])
def test_ssim_constant_images_is_luminance_term(mx, my):
    # constant images: variances and covariance vanish, SSIM = (2 mx my + C1) / (mx^2 + my^2 + C1)
    a = np.full((32, 32), mx, np.uint8)
    b = np.full((32, 32), my, np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
    assert compare.ssim(a, b) == pytest.approx(expected, abs=1e-9)


def test_ssim_noise_and_channels(rng):
    a = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    assert compare.ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    s = compare.ssim(a, noisy)
    noisier = np.clip(a + rng.normal(0, 60, a.shape), 0, 255).astype(np.uint8)
    assert 0.0 < compare.ssim(a, noisier) < s < 1.0
    # channel-averaged: equals the mean of the per-channel values
    per_channel = [compare.ssim(a[..., c], noisy[..., c]) for c in range(3)]
    assert s == pytest.approx(np.mean(per_channel), abs=1e-12)


def test_frame_metrics_resamples_smaller_and_pairs(rng):
    hi = rng.integers(0, 256, size=(3, 32, 40, 3), dtype=np.uint8)
    lo = np.stack([cv2.resize(f, (10, 8), interpolation=cv2.INTER_AREA) for f in hi])
    rows = list(compare.frame_metrics(lo, hi, interpolation="nearest"))
    assert [r.index for r in rows] == [0, 1, 2]
    up = cv2.resize(lo[1], (40, 32), interpolation=cv2.INTER_NEAREST)
    assert rows[1].psnr == pytest.approx(compare.psnr(up, hi[1]))
    assert rows[1].ssim == pytest.approx(compare.ssim(up, hi[1]))
    rows = list(compare.frame_metrics(hi, hi, pairs=[(2, 2), (0, 1)]))
    assert rows[0].psnr == math.inf and rows[0].ssim == pytest.approx(1.0)
    assert (rows[1].index, rows[1].reference_index) == (0, 1)
    assert rows[1].psnr < 20


def test_metrics_csv(tmp_path):
    rows = [compare.FrameMetrics(0, 0, math.inf, 1.0), compare.FrameMetrics(1, 1, 31.5, 0.875)]
    p = tmp_path / "m.csv"
    compare.metrics_to_csv(rows, p)
    assert p.read_text().splitlines() == [
        "frame,reference_frame,psnr_db,ssim", "0,0,inf,1.000000", "1,1,31.500000,0.875000"]


def test_resize_frame_keeps_dtype_and_clips(rng):
    img16 = rng.integers(0, 65536, size=(6, 7), dtype=np.uint16)
    out = compare.resize_frame(img16, (24, 28), interpolation="bicubic")
    assert out.dtype == np.uint16 and out.shape == (24, 28)
    near = compare.resize_frame(img16, (24, 28), interpolation="nearest")
    assert np.array_equal(near[::4, ::4], img16)  # pixel-centre nearest on an integer factor
    one = rng.integers(0, 256, size=(5, 5, 1), dtype=np.uint8)
    assert compare.resize_frame(one, (10, 10)).shape == (10, 10, 1)
    with pytest.raises(ParameterError, match="channel layouts"):
        compare.match_sizes(np.zeros((4, 4, 3), np.uint8), np.zeros((8, 8), np.uint8))


# --- wipe -----------------------------------------------------------------------------------
@pytest.mark.parametrize("position", [-5, 0, 1, 13, 39, 40, 99])
@pytest.mark.parametrize("line_width", [0, 3])
def test_wipe_composite_positions(position, line_width):
    h, w = 10, 40
    left = np.full((h, w, 3), 10, np.uint8)
    right = np.full((h, w, 3), 200, np.uint8)
    left_in, right_in = left.copy(), right.copy()
    out = compare.wipe_composite(left, right, position, line_width=line_width)
    x = min(max(position, 0), w)
    cols = out[0, :, 0]
    assert np.all(cols[:x] == 10)
    assert np.all(cols[min(x + line_width, w):] == 200)
    assert np.all(cols[x:min(x + line_width, w)] == 255)
    assert np.all(out == out[:1])  # same in every row
    assert np.array_equal(left, left_in) and np.array_equal(right, right_in)


def test_wipe_composite_float_gray_line_and_errors(rng):
    a = rng.random((5, 8)).astype(np.float32)
    b = rng.random((5, 8)).astype(np.float32)
    out = compare.wipe_composite(a, b, 4, line_width=1)
    assert out.dtype == np.float32
    assert np.array_equal(out[:, :4], a[:, :4]) and np.all(out[:, 4] == 1.0)
    assert np.array_equal(out[:, 5:], b[:, 5:])
    with pytest.raises(ParameterError, match="equal shape"):
        compare.wipe_composite(a, b[:, :6], 2)


# --- comparison video -----------------------------------------------------------------------
def test_wipe_timeline_follows_the_seed_animation():
    tl = compare.wipe_timeline(6, 100, start_frame=2, pause_frame=3, pause_length=2,
                               slide_step=40, line_width=10)
    expected = (
        [(0, None), (1, None), (2, 0), (3, 40), (3, 40), (3, 40), (4, 80), (5, 100)]
        + [(5, 100)] * 2  # hold the last frame
        + [(5, 90), (5, 50), (5, 10)]  # slide back, starting at width - line_width
        + [(5, 0)] * 3  # right input, 1 + pause_length frames
    )
    assert tl.steps == expected
    with pytest.raises(ParameterError, match="slide_step"):
        compare.wipe_timeline(3, 10, slide_step=0)


def test_comparison_frames_upscales_smaller_input(rng):
    left = rng.integers(0, 256, size=(3, 8, 12, 3), dtype=np.uint8)  # source size
    right = rng.integers(0, 256, size=(3, 32, 48, 3), dtype=np.uint8)  # x4 result
    frames = list(compare.comparison_frames(left, right, start_frame=1, pause_length=1,
                                            slide_step=20, line_width=2))
    n = len(compare.wipe_timeline(3, 48, start_frame=1, pause_length=1, slide_step=20,
                                  line_width=2))
    assert len(frames) == n
    assert all(f.shape == (32, 48, 3) and f.dtype == np.uint8 for f in frames)
    # frame 0 is the left input alone, upscaled nearest
    assert np.array_equal(frames[0], np.repeat(np.repeat(left[0], 4, 0), 4, 1))
    # frame 2 (input frame 2, divider at 20): left | line | right
    up = np.repeat(np.repeat(left[2], 4, 0), 4, 1)
    assert np.array_equal(frames[2][:, :20], up[:, :20])
    assert np.all(frames[2][:, 20:22] == 255)
    assert np.array_equal(frames[2][:, 22:], right[2][:, 22:])


def test_export_comparison_video_round_trip(tmp_path, rng):
    io = pytest.importorskip("napari_vsr.io", reason="I/O part not available yet")
    if not hasattr(io, "open_writer"):
        pytest.skip("napari_vsr.io.open_writer not available yet")
    t, h, w = 4, 16, 24
    yy, xx = np.mgrid[0:h, 0:w]
    base = ((xx * 10 + yy * 3) % 256).astype(np.uint8)
    left = np.stack([np.stack([base] * 3, -1)] * t)
    right = np.stack([np.stack([255 - base] * 3, -1)] * t)
    small_left = left[:, ::2, ::2]  # half size: upscaled for display
    out = tmp_path / "cmp.mp4"
    seen = []
    n = compare.export_comparison_video(
        small_left, right, out, fps=12.5, start_frame=1, pause_frame=2, pause_length=3,
        slide_step=8, line_width=2, progress=seen.append)
    expected = len(compare.wipe_timeline(t, w, start_frame=1, pause_frame=2, pause_length=3,
                                         slide_step=8, line_width=2))
    assert n == expected and len(seen) == n
    assert all(isinstance(p, Progress) and p.unit == "frames" for p in seen)
    assert [p.done for p in seen] == list(range(1, n + 1)) and {p.total for p in seen} == {n}
    with io.open_frames(out) as video:
        assert video.shape[0] == expected
        assert video.shape[1:3] == (h, w)
        assert video.metadata["fps"] == pytest.approx(12.5)
    with pytest.raises(FileExistsError):
        compare.export_comparison_video(small_left, right, out)


def test_export_comparison_video_honours_a_cancel_token(tmp_path):
    pytest.importorskip("napari_vsr.io", reason="I/O part not available yet")
    left = np.zeros((6, 16, 16, 3), np.uint8)
    right = np.full((6, 16, 16, 3), 200, np.uint8)
    token = CancelToken()
    seen = []

    def progress(p):
        seen.append(p)
        if p.done == 2:
            token.cancel()

    out = tmp_path / "cmp.mp4"
    with pytest.raises(Cancelled):
        compare.export_comparison_video(left, right, out, slide_step=4, progress=progress,
                                        cancel=token)
    assert [p.done for p in seen] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing partial left behind


# --- automatic slide step (defect 7: the wipe crosses the frame within the clip) --------------
@pytest.mark.parametrize("n, width, start", [(10, 2560, 0), (10, 2560, 3), (2, 640, 0),
                                             (300, 1920, 10), (7, 5, 0)])
def test_auto_slide_step_reaches_the_far_edge_on_the_last_frame(n, width, start):
    step = compare.auto_slide_step(n, width, start_frame=start)
    tl = compare.wipe_timeline(n, width, start_frame=start, pause_length=0)  # step None: auto
    assert tl.slide_step == step
    divider = {i: x for i, x in tl.steps[:n]}
    assert divider[n - 1] == width  # all left on the last input frame
    assert divider[n - 2] is None or divider[n - 2] < width  # not long before it
    assert divider[start] == 0


def test_auto_slide_step_x4_clip_is_not_the_old_16_px():
    # the case: 10 frames of 2560 columns moved 16 px per frame crossed 5.6 %
    step = compare.auto_slide_step(10, 2560)
    assert step == pytest.approx(2560 / 9)
    tl = compare.wipe_timeline(10, 2560, pause_length=0)
    assert [x for _, x in tl.steps[:10]] == [round(i * 2560 / 9) for i in range(10)]
    assert compare.auto_slide_step(1, 100) == 100 and compare.auto_slide_step(3, 100,
                                                                             start_frame=5) == 100
    with pytest.raises(ParameterError, match="at least one frame"):
        compare.auto_slide_step(0, 100)


# --- captions ---------------------------------------------------------------------------------
def _changed_columns(a, b):
    diff = np.any((a != b).reshape(a.shape[0], a.shape[1], -1), axis=(0, 2))
    return np.flatnonzero(diff)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("channels", [0, 1, 3, 4])
def test_draw_caption_marks_only_its_corner(rng, dtype, channels):
    shape = (120, 200) + ((channels,) if channels else ())
    if dtype == np.float32:
        image = rng.random(shape).astype(dtype) * 0.5 + 0.25
    else:
        hi = np.iinfo(dtype).max
        image = rng.integers(hi // 4, 3 * hi // 4, size=shape).astype(dtype)
    before = image.copy()
    left = compare.draw_caption(image, "original", corner="top-left")
    right = compare.draw_caption(image, "enhanced", corner="top-right")
    assert np.array_equal(image, before)  # the input is not modified
    for out in (left, right):
        assert out.shape == image.shape and out.dtype == image.dtype
    cols_l, cols_r = _changed_columns(left, image), _changed_columns(right, image)
    assert cols_l.size > 20 and cols_r.size > 20
    assert cols_l.max() < 100 <= cols_r.min()  # each label stays in its half
    rows_l = np.flatnonzero(np.any((left != image).reshape(120, 200, -1), axis=(1, 2)))
    assert rows_l.max() < 60  # at the top
    white = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    box = left[:30, :100]
    assert box.max() >= 0.9 * white  # anti-aliased white text
    if channels == 4:  # an opaque box on RGBA
        changed = np.any(left[..., :3] != image[..., :3], axis=-1)
        assert np.all(left[..., 3][changed] == white)
    # the box darkens what it covers: its darkest pixels are darker than anything before
    assert box.min() < image.min()


def test_draw_caption_text_and_size_rules(rng):
    image = rng.integers(0, 256, size=(360, 640, 3), dtype=np.uint8)
    assert np.array_equal(compare.draw_caption(image, ""), image)
    small = compare.draw_caption(image, "original", text_height=0.03)
    large = compare.draw_caption(image, "original", text_height=0.09)
    assert _changed_columns(small, image).size < _changed_columns(large, image).size
    tiny = rng.integers(0, 256, size=(8, 12), dtype=np.uint8)
    assert compare.draw_caption(tiny, "a long label that does not fit").shape == (8, 12)
    with pytest.raises(ParameterError, match="corner"):
        compare.draw_caption(image, "x", corner="bottom")


def test_comparison_captions_follow_their_side(rng):
    left = rng.integers(60, 200, size=(3, 40, 64, 3), dtype=np.uint8)
    right = rng.integers(60, 200, size=(3, 40, 64, 3), dtype=np.uint8)
    opts = compare.ComparisonOptions(start_frame=1, pause_length=0, line_width=0,
                                     captions=("original", "enhanced"))
    frames = list(compare.comparison_frames(left, right, options=opts))
    tl = compare.wipe_timeline(3, 64, start_frame=1, pause_length=0, line_width=0)
    assert len(frames) == len(tl)
    cap_l = compare.draw_caption(left[0], "original", corner="top-left")
    assert np.array_equal(frames[0], cap_l)  # before the slide: the left input, its caption
    k = tl.steps.index((1, 0))  # divider at column 0: the right input only, its caption only
    assert np.array_equal(frames[k], compare.draw_caption(right[1], "enhanced",
                                                          corner="top-right"))
    plain = list(compare.comparison_frames(left, right, start_frame=1, pause_length=0,
                                           line_width=0))
    assert np.array_equal(plain[0], left[0])


def test_comparison_frame_is_the_videos_frame(rng):
    left = rng.integers(0, 256, size=(5, 10, 16, 3), dtype=np.uint8)
    right = rng.integers(0, 256, size=(5, 40, 64, 3), dtype=np.uint8)
    opts = compare.ComparisonOptions(start_frame=1, pause_frame=2, pause_length=2,
                                     captions=("a", "b"))
    frames = list(compare.comparison_frames(left, right, options=opts))
    tl = compare.wipe_timeline(5, 64, start_frame=1, pause_frame=2, pause_length=2)
    for i in range(5):
        np.testing.assert_array_equal(compare.comparison_frame(left, right, i, opts),
                                      frames[tl.first_step_of(i)])
    with pytest.raises(ParameterError, match="outside"):
        compare.comparison_frame(left, right, 5, opts)


# --- the wipe without compositing: a lazy column window ------------------------------------
class _CountingFrames:
    """A (T, H, W[, C]) array that counts frame reads."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, 0

    def __getitem__(self, key):
        self.reads += 1
        return self.data[key]


@pytest.mark.parametrize("shape", [(4, 6, 10), (4, 6, 10, 3)])
@pytest.mark.parametrize("start, stop", [(0, None), (3, None), (9, None), (10, None),
                                         (15, None), (-2, None), (0, 4), (2, 7), (6, 3),
                                         (0, 0), (4, 99)])
def test_column_window_is_those_columns(rng, shape, start, stop):
    data = rng.integers(0, 256, size=shape, dtype=np.uint8)
    win = compare.ColumnWindow(data, start, stop)
    lo = min(max(start, 0), 10)
    hi = max(lo, 10 if stop is None else min(max(stop, 0), 10))
    expected = data[:, :, lo:hi]
    assert win.shape == expected.shape and win.dtype == data.dtype and win.ndim == data.ndim
    assert (win.start, win.stop, len(win)) == (lo, hi, 4)
    np.testing.assert_array_equal(np.asarray(win), expected)
    if expected.shape[2] == 0:
        assert win[1].shape == expected[1].shape
        return
    keys = [2, (2,), (1, slice(None), slice(None)), (3, slice(1, 5), slice(1, None, 2)),
            (Ellipsis,), (0, Ellipsis), (slice(0, 2), slice(None), -1), (2, 3, 0),
            (1, slice(None), slice(None, None, -1)), (1, slice(None), np.array([0, -1])),
            (slice(2, 3), slice(None), slice(None)), (slice(3, 4), 1), (slice(-1, None),),
            (slice(1, 3), slice(1, 4))]
    for key in keys:
        np.testing.assert_array_equal(win[key], expected[key], err_msg=str(key))
    with pytest.raises(IndexError):
        win[0, 0, expected.shape[2]]
    with pytest.raises(IndexError):
        win[0, 0, np.array([expected.shape[2]])]


def test_column_window_reads_a_frame_once_for_every_divider_position(rng):
    frames = _CountingFrames(rng.integers(0, 256, size=(3, 8, 20, 3), dtype=np.uint8))
    win = compare.ColumnWindow(frames, 5)
    np.testing.assert_array_equal(win[1], frames.data[1, :, 5:])
    for start, stop in ((0, 3), (7, None), (0, 12), (19, 20)):
        win = win.with_columns(start, stop)
        np.testing.assert_array_equal(win[1], frames.data[1, :, start:stop])
    assert frames.reads == 1  # one read of frame 1, then slices of it
    np.testing.assert_array_equal(win[2, :, :1], frames.data[2, :, 19:20])
    assert frames.reads == 2
    # napari asks for one frame as t:t+1
    np.testing.assert_array_equal(win[2:3, 1:4], frames.data[2:3, 1:4, 19:20])
    np.testing.assert_array_equal(win.with_columns(3, 9)[slice(2, 3), :, ::2],
                                  frames.data[2:3, :, 3:9:2])
    assert frames.reads == 2
    np.testing.assert_array_equal(win[0:2], frames.data[0:2, :, 19:20])  # several: read
    assert frames.reads == 3
    with pytest.raises(ParameterError, match="shape"):
        compare.ColumnWindow(np.zeros((4, 4)), 0)
    with pytest.raises(IndexError):
        win[3]
