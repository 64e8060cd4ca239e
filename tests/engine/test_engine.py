"""The engine with toy enhancers: chunks and context, tiles, data kinds, progress, cancel, OOM."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from napari_vsr.engine import CancelToken, Progress, enhance, plan_output
from napari_vsr.errors import Cancelled, ParameterError, UnsupportedDtypeError

_spec = importlib.util.spec_from_file_location(
    "toy_enhancers", Path(__file__).with_name("toy_enhancers.py")
)
toy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(toy)


def _collect(gen):
    items = list(gen)
    return [i for i, _ in items], np.stack([f for _, f in items])


def test_chunks_equal_network_on_chunk_with_context(rng):
    frames = rng.random((23, 10, 12, 3), dtype=np.float32)
    enh = toy.TinyRecurrent()
    idx, out = _collect(enhance(frames, enh, chunk=6, overlap=2, tile=0))
    assert idx == list(range(23))
    assert out.shape == (23, 20, 24, 3) and out.dtype == np.float32
    for s in range(0, 23, 6):
        e = min(s + 6, 23)
        lo, hi = max(0, s - 2), min(23, e + 2)
        ref = enh.run(frames[lo:hi])[s - lo : e - lo]
        np.testing.assert_allclose(out[s:e], ref, atol=1e-6, rtol=0)
    # overlap matters: the recurrence makes chunk outputs differ from the whole run
    whole = enh.run(frames)
    assert np.abs(out - whole).max() > 1e-4
    assert enh.closed == 0  # the caller owns the enhancer


def test_temporal_context_exact_when_overlap_covers_it(rng):
    frames = rng.integers(0, 65535, (17, 6, 7), dtype=np.uint16)
    enh = toy.TemporalMean(k=2, chunk=5)
    whole = enh.enhance(frames)
    _, out = _collect(enhance(frames, enh))
    np.testing.assert_array_equal(out, whole)
    with pytest.raises(ParameterError, match="context"):
        enhance(frames, enh, overlap=1)


def test_frame_range_uses_context_outside_it(rng):
    frames = rng.integers(0, 255, (12, 5, 6), dtype=np.uint8)
    enh = toy.TemporalMean(k=1, chunk=3)
    idx, out = _collect(enhance(frames, enh, frame_range=(4, 9)))
    assert idx == [4, 5, 6, 7, 8]
    np.testing.assert_array_equal(out, enh.enhance(frames)[4:9])
    with pytest.raises(ParameterError, match="frame range"):
        enhance(frames, enh, frame_range=(5, 20))


def test_source_never_materialised_and_overlap_reused():
    src = toy.LazyFrames(30, 8, 10)
    enh = toy.UpscaleNearest(scale=2, chunk=4)
    n = 0
    for i, frame in enhance(src, enh, overlap=3, tile=0):
        np.testing.assert_array_equal(frame, src[i].repeat(2, 0).repeat(2, 1))
        n += 1
    assert n == 30
    # the context frames shared by neighbouring chunks are not read twice
    assert src.reads <= 30 + 30  # the asserts above read each frame once more
    assert all(c[0] <= 4 + 2 * 3 for c in enh.calls)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiled_matches_untiled_for_a_local_operator(rng, dtype):
    if dtype == np.float32:
        frames = rng.random((5, 37, 53, 3), dtype=np.float32)
    else:
        frames = rng.integers(0, np.iinfo(dtype).max, (5, 37, 53, 3), dtype=dtype)
    enh = toy.UpscaleNearest(scale=3, chunk=2)
    _, plain = _collect(enhance(frames, enh, tile=0))
    enh.calls.clear()
    _, tiled = _collect(enhance(frames, enh, tile=16, tile_overlap=4))
    assert max(c[1] for c in enh.calls) <= 16 and max(c[2] for c in enh.calls) <= 16
    assert tiled.dtype == dtype
    np.testing.assert_allclose(tiled.astype(np.float64), plain.astype(np.float64), atol=1e-5)


def test_tiled_recurrent_close_to_untiled(rng):
    yy, xx = np.mgrid[0:40, 0:56] / 40.0
    base = (0.5 + 0.4 * np.sin(3 * yy + 2 * xx))[None, ..., None].astype(np.float32)
    frames = np.repeat(base, 4, 0) * np.linspace(0.8, 1.0, 4, dtype=np.float32)[:, None, None, None]
    frames = np.repeat(frames, 3, -1)
    enh = toy.TinyRecurrent()
    _, plain = _collect(enhance(frames, enh, tile=0))
    _, tiled = _collect(enhance(frames, enh, tile=24, tile_overlap=8))
    mse = np.mean((plain - tiled) ** 2)
    assert 10 * np.log10(1.0 / max(mse, 1e-20)) > 40


def test_uint8_rgb_scaled_and_returned_in_source_dtype(rng):
    frames = rng.integers(0, 256, (7, 9, 11, 3), dtype=np.uint8)
    enh = toy.TinyRecurrent()
    _, out = _collect(enhance(frames, enh, chunk=7, overlap=0, tile=0))
    ref = enh.run(frames.astype(np.float32) / 255)
    assert out.dtype == np.uint8 and out.shape == (7, 18, 22, 3)
    expect = np.rint(np.clip(ref, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expect)


def test_uint16_gray_replicated_and_reduced(rng):
    frames = rng.integers(0, 65536, (4, 8, 10), dtype=np.uint16)
    enh = toy.TinyRecurrent()
    assert plan_output(frames.shape, frames.dtype, enh) == ((4, 16, 20), np.dtype(np.uint16))
    _, out = _collect(enhance(frames, enh, chunk=4, overlap=0, tile=0))
    assert out.dtype == np.uint16 and out.shape == (4, 16, 20)
    rgb = np.repeat((frames.astype(np.float32) / 65535)[..., None], 3, -1)
    expect = np.rint(np.clip(enh.run(rgb).mean(-1), 0, 1) * 65535).astype(np.uint16)
    np.testing.assert_array_equal(out, expect)


def test_rgba_alpha_resized_separately(rng):
    frames = rng.integers(0, 256, (3, 6, 8, 4), dtype=np.uint8)
    frames[..., 3] = 200
    frames[:, :3, :, 3] = 10
    enh = toy.TinyRecurrent()
    _, out = _collect(enhance(frames, enh, tile=0))
    assert out.shape == (3, 12, 16, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :5, :, 3], 10)
    np.testing.assert_array_equal(out[:, 7:, :, 3], 200)
    rgb = enh.run(frames[..., :3].astype(np.float32) / 255)
    np.testing.assert_array_equal(out[..., :3], np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8))


def test_float_kept_unclipped(rng):
    frames = rng.random((3, 5, 6, 3)).astype(np.float64)
    enh = toy.TinyRecurrent()
    _, out = _collect(enhance(frames, enh, tile=0))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, enh.run(frames.astype(np.float32)), atol=1e-6)


def test_nd_planes_and_time_axis(rng):
    data = rng.integers(0, 256, (3, 5, 6, 7), dtype=np.uint8)  # (Z, T, Y, X)
    enh = toy.UpscaleNearest(scale=2, chunk=2)
    shape, dtype = plan_output(data.shape, data.dtype, enh, time_axis=1)
    assert shape == (3, 5, 12, 14) and dtype == np.uint8
    idx, out = _collect(enhance(data, enh, time_axis=1, tile=0))
    assert idx == list(range(5)) and out.shape == (5, 3, 12, 14)
    np.testing.assert_array_equal(np.moveaxis(out, 0, 1), data.repeat(2, 2).repeat(2, 3))
    # each Z plane is its own sequence: calls see (n, Y, X)
    assert all(len(c) == 3 for c in enh.calls)
    with pytest.raises(ParameterError, match="time_axis"):
        enhance(data, enh, time_axis=2)


def test_unsupported_dtype_for_network(rng):
    with pytest.raises(UnsupportedDtypeError, match="int32"):
        enhance(np.zeros((2, 4, 4, 3), np.int32), toy.TinyRecurrent())


def test_progress_reports_every_frame(rng):
    frames = rng.random((10, 4, 4, 3), dtype=np.float32)
    seen: list[Progress] = []
    list(enhance(frames, toy.TinyRecurrent(), chunk=4, overlap=1, progress=seen.append))
    # context frames (one each side) are not counted: one record per kept frame
    assert [p.done for p in seen] == list(range(11))
    assert all(p.total == 10 and p.stage == "enhancing" for p in seen)
    assert seen[0].eta_s is None and seen[-1].eta_s == 0 and seen[-1].fps > 0


def test_progress_every_chunk_when_the_enhancer_reports_no_frames(rng):
    frames = rng.integers(0, 255, (12, 5, 6), dtype=np.uint8)
    seen: list[Progress] = []
    list(enhance(frames, toy.TemporalMean(k=1, chunk=5), progress=seen.append))
    assert [p.done for p in seen] == [0, 5, 10, 12]


def test_tiled_progress_counts_a_frame_once_all_tiles_are_done(rng):
    frames = rng.integers(0, 255, (6, 40, 40, 3), dtype=np.uint8)
    enh = toy.UpscaleNearest(scale=2, chunk=3)
    seen: list[int] = []
    list(
        enhance(
            frames, enh, tile=24, tile_overlap=4, overlap=1, progress=lambda p: seen.append(p.done)
        )
    )
    assert len(enh.calls) == 2 * 4  # two chunks of four tiles
    assert seen == list(range(7))


def test_planes_progress_counts_a_frame_once_every_plane_is_done(rng):
    frames = rng.integers(0, 255, (4, 3, 6, 6), dtype=np.uint8)  # (T, Z, Y, X)
    enh = toy.UpscaleNearest(scale=2, chunk=4)
    seen: list[int] = []
    list(enhance(frames, enh, progress=lambda p: seen.append(p.done)))
    assert len(enh.calls) == 3 and seen == [0, 1, 2, 3, 4]


def test_cancel_inside_a_chunk_within_one_frame(rng):
    frames = rng.random((12, 4, 4, 3), dtype=np.float32)
    enh = toy.TinyRecurrent()
    token = CancelToken()
    seen: list[int] = []
    steps: list[int | None] = []
    real = enh.net.forward

    def counting(lqs, step=None):
        def spy(i):
            steps.append(i)
            step(i)

        return real(lqs, spy)

    enh.net.forward = counting

    def on_progress(p: Progress) -> None:
        seen.append(p.done)
        if p.done == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        list(enhance(frames, enh, chunk=12, progress=on_progress, cancel=token))
    # one chunk: 12 backward steps, then output frames 0, 1, 2; the step after frame 2 stops it
    assert seen == [0, 1, 2, 3]
    assert steps == [None] * 12 + [0, 1, 2, 3]


def test_cancel_during_the_backward_pass(rng):
    frames = rng.random((12, 4, 4, 3), dtype=np.float32)
    enh = toy.TinyRecurrent()
    token = CancelToken()
    calls = []

    def step(i):
        calls.append(i)
        if len(calls) == 5:
            token.cancel()

    real = enh.net.forward
    enh.net.forward = lambda lqs, s=None: real(lqs, lambda i: (step(i), s(i)))
    with pytest.raises(Cancelled):
        list(enhance(frames, enh, chunk=12, cancel=token))
    assert calls == [None] * 5  # the backward step during which it was set raised


def test_cancel_between_chunks(rng):
    frames = rng.random((20, 4, 4, 3), dtype=np.float32)
    enh = toy.TinyRecurrent()
    token = CancelToken()
    got = []

    def on_progress(p: Progress) -> None:
        if p.done >= 6:
            token.cancel()

    # no context: frame 5 is the last step of the first chunk, which is delivered whole
    with pytest.raises(Cancelled):
        for i, _ in enhance(frames, enh, chunk=6, overlap=0, progress=on_progress, cancel=token):
            got.append(i)
    assert got == list(range(6))
    assert token.cancelled and enh.closed == 0  # the caller owns the enhancer
    # with context frames after the chunk, their steps stop it before anything is yielded
    got.clear()
    token = CancelToken()
    with pytest.raises(Cancelled):
        for i, _ in enhance(frames, enh, chunk=6, overlap=2, progress=on_progress, cancel=token):
            got.append(i)
    assert got == []


def test_engine_releases_device_memory_and_never_closes(monkeypatch, rng):
    import napari_vsr.engine as engine

    released = []
    monkeypatch.setattr(engine, "release_memory", released.append)
    enh = toy.UpscaleNearest(device="cpu")
    gen = enhance(rng.integers(0, 9, (20, 4, 4), dtype=np.uint8), enh, chunk=3)
    next(gen)
    gen.close()
    assert released == ["cpu"] and enh.closed == 0
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        list(enhance(rng.integers(0, 9, (4, 4, 4), dtype=np.uint8), enh, cancel=token))
    assert released == ["cpu", "cpu"]
    list(enhance(rng.integers(0, 9, (4, 4, 4), dtype=np.uint8), toy.UpscaleNearest()))
    assert len(released) == 2  # host-only enhancers have no device memory


def test_enhancer_is_a_context_manager():
    with toy.UpscaleNearest() as enh:
        pass
    assert enh.closed == 1


def test_out_of_memory_retries_with_smaller_tiles(rng):
    frames = rng.integers(0, 256, (6, 80, 100, 3), dtype=np.uint8)
    enh = toy.OomBelow(limit=60)
    messages = []
    _, out = _collect(
        enhance(
            frames,
            enh,
            tile=0,
            tile_overlap=4,
            progress=lambda p: p.message and messages.append(p.message),
        )
    )
    np.testing.assert_array_equal(out, frames.repeat(2, 1).repeat(2, 2))
    assert messages and "50 px tiles" in messages[0]
    assert len(messages) == 1  # later chunks keep the smaller tile


def test_out_of_memory_not_tileable_is_device_error(rng):
    from napari_vsr.errors import DeviceError

    enh = toy.OomBelow(limit=4)
    enh.declare(tileable=False)
    with pytest.raises(DeviceError, match="out of device memory"):
        list(enhance(rng.integers(0, 9, (2, 8, 8), dtype=np.uint8), enh))


def test_bad_parameters(rng):
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    enh = toy.UpscaleNearest()
    with pytest.raises(ParameterError, match="chunk"):
        enhance(frames, enh, chunk=0)
    with pytest.raises(ParameterError, match="tile"):
        enhance(frames, enh, tile=3)
    with pytest.raises(ParameterError, match="at least 3 axes"):
        enhance(np.zeros((8, 8)), enh)


class _Sized(toy.UpscaleNearest):
    """Nearest x2 that claims a device and a memory estimate of ``per_px`` bytes per pixel-frame."""

    def __init__(self, device: str, per_px: int):
        super().__init__(scale=2, chunk=16, device=device)
        self.per_px = per_px

    def estimate_memory(self, n_frames: int, height: int, width: int) -> int:
        return n_frames * height * width * self.per_px


def test_auto_chunk_shrinks_on_cpu_when_ram_is_short(monkeypatch, rng):
    import napari_vsr.engine as engine

    monkeypatch.setattr(engine, "_available_host_memory", lambda: 10 * 8 * 8 * 1000)
    enh = _Sized("cpu", per_px=1000)  # 16 frames of 8x8 need 1.0 MB; 0.6 * 0.64 MB is free
    frames = rng.integers(0, 255, (20, 8, 8), dtype=np.uint8)
    _, out = _collect(enhance(frames, enh))
    np.testing.assert_array_equal(out, frames.repeat(2, 1).repeat(2, 2))
    assert max(c[0] for c in enh.calls) <= 6
    enh.calls.clear()
    list(enhance(frames, enh, chunk=16))  # an explicit chunk is kept
    assert enh.calls[0][0] == 16


def test_auto_tile_from_free_device_memory(monkeypatch, rng):
    import napari_vsr.models.device as device

    monkeypatch.setattr(device, "free_memory_bytes", lambda dev: 100_000)
    enh = _Sized("cuda", per_px=10)  # 4 frames of 60x80 need 192 kB; 60 kB may be planned for
    frames = rng.integers(0, 255, (4, 60, 80, 3), dtype=np.uint8)
    _, out = _collect(enhance(frames, enh, chunk=4, tile_overlap=4))
    np.testing.assert_array_equal(out, frames.repeat(2, 1).repeat(2, 2))
    sizes = {c[1:3] for c in enh.calls}
    assert all(4 * h * w * 10 <= 60_000 for h, w in sizes), sizes
    assert len(enh.calls) > 1


def test_auto_tile_plans_for_the_longest_chunk_with_its_context(monkeypatch, rng):
    import napari_vsr.models.device as device

    monkeypatch.setattr(device, "free_memory_bytes", lambda dev: 10**12)
    enh = _Sized("cuda", per_px=10)
    asked: list[int] = []
    real = enh.estimate_memory
    monkeypatch.setattr(enh, "estimate_memory", lambda n, h, w: asked.append(n) or real(n, h, w))
    frames = rng.integers(0, 255, (40, 8, 8, 3), dtype=np.uint8)
    list(enhance(frames, enh, chunk=6, overlap=3, tile=None))
    # the first chunk reads 6 + 3 frames, the interior ones 6 + 2 x 3: the plan is for 12
    assert asked and asked[0] == 12
