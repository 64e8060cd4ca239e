"""RealBasicVSREnhancer.enhance_batch: item k is enhance(batch[k]), every chunk's step is
called, and the CUDA transfer path (pinned buffers, copy stream) gives the plain path's frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_vsr.enhancers import make_enhancer
from napari_vsr.enhancers.realbasicvsr import MAX_BATCH, RealBasicVSREnhancer
from napari_vsr.errors import Cancelled, ParameterError, UnsupportedDtypeError


@pytest.fixture(scope="module")
def golden_weights(golden_dir):
    return golden_dir / "realbasicvsr_random_mmedit_layout.pth"


@pytest.fixture(scope="module")
def enhancer(golden_weights) -> RealBasicVSREnhancer:
    return make_enhancer("realbasicvsr", weights=golden_weights, device="cpu")


def _clips(n: int, t: int, h: int, w: int) -> list[np.ndarray]:
    """``n`` different moving, textured float32 RGB clips in [0, 1], each (t, h, w, 3)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for k in range(n):
        tt = np.arange(t, dtype=np.float32)[:, None, None] + 3 * k
        r = 0.5 + 0.4 * np.sin(0.35 * (xx - 0.8 * tt) + 0.2 * yy + k)
        g = 0.5 + 0.4 * np.cos(0.25 * (yy + 0.5 * tt) - 0.1 * xx)
        b = 0.5 + 0.3 * np.sin(0.15 * (xx + yy) + 0.3 * tt - k)
        out.append(np.stack([r, g, b], axis=-1).astype(np.float32))
    return out


def _as(clips: list[np.ndarray], dtype) -> list[np.ndarray]:
    if dtype == np.float32:
        return clips
    top = np.iinfo(dtype).max
    return [np.rint(c * top).astype(dtype) for c in clips]


def test_capabilities_declare_the_batch(enhancer):
    assert enhancer.capabilities.max_batch == MAX_BATCH == 8


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.uint16], ids=lambda d: d.__name__)
def test_enhance_batch_equals_enhance_per_chunk(enhancer, dtype):
    batch = _as(_clips(3 if dtype == np.float32 else 2, 3, 20, 24), dtype)
    before = [c.copy() for c in batch]
    out = enhancer.enhance_batch(batch)
    assert len(out) == len(batch)
    for k, chunk in enumerate(batch):
        alone = enhancer.enhance(chunk)
        assert out[k].shape == alone.shape == (3, 80, 96, 3)
        assert out[k].dtype == alone.dtype == np.dtype(dtype)
        diff = np.abs(out[k].astype(np.float64) - alone.astype(np.float64)).max()
        assert diff <= (1e-5 if dtype == np.float32 else 0), (k, diff)
        np.testing.assert_array_equal(chunk, before[k])  # inputs untouched


def test_every_chunk_gets_its_steps(enhancer):
    batch = _clips(3, 4, 16, 16)
    calls: list[list[int | None]] = [[], [], []]
    steps = [calls[0].append, None, calls[2].append]
    enhancer.enhance_batch(batch, steps=steps)
    # backward time steps, then forward steps (None) and each output frame
    assert calls[1] == [] and calls[0] == calls[2]
    assert calls[0][:4] == [None] * 4 and calls[0].count(None) == 8
    assert [c for c in calls[0] if c is not None] == list(range(4))


def test_a_step_that_cancels_stops_the_batch(enhancer):
    batch = _clips(2, 4, 16, 16)
    calls: list[tuple[int, int | None]] = []

    def cancel_at_second(i):
        calls.append((1, i))
        if len(calls) >= 3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        enhancer.enhance_batch(batch, steps=[lambda i: calls.append((0, i)), cancel_at_second])
    assert calls == [(0, None), (1, None), (0, None), (1, None)]


def test_enhance_batch_checks_its_input(enhancer):
    a, b = _clips(2, 2, 16, 16)
    assert enhancer.enhance_batch([]) == []
    with pytest.raises(ParameterError, match="chunk 1"):
        enhancer.enhance_batch([a, b[:1]])
    with pytest.raises(ParameterError, match="chunk 1"):
        enhancer.enhance_batch([a, (b * 255).astype(np.uint8)])
    with pytest.raises(ParameterError, match="steps"):
        enhancer.enhance_batch([a, b], steps=[None])
    with pytest.raises(ParameterError, match=r"\(T, H, W, 3\)"):
        enhancer.enhance_batch([a[..., :2]])
    with pytest.raises(UnsupportedDtypeError, match="int32"):
        enhancer.enhance_batch([a.astype(np.int32)])


def test_memory_estimate_of_a_batch_is_below_the_multiple(enhancer):
    one = enhancer.estimate_memory(20, 180, 320)
    assert one > 0 and enhancer.estimate_memory(20, 180, 320, batch=1) == one
    previous = one
    for batch in (2, 4, 8):
        est = enhancer.estimate_memory(20, 180, 320, batch=batch)
        assert previous < est <= batch * one
        previous = est


class _HostTransfer:
    """The CUDA transfer's contract on the host: what ``upload`` and ``download`` return."""

    def upload(self, arrays):
        from napari_vsr.models.transfer import _WIRE

        stacked = np.stack(arrays)
        raw = torch.from_numpy(stacked.view(np.uint8).reshape(-1).copy())
        return raw.view(_WIRE[stacked.dtype]).view(stacked.shape)

    def download(self, x):
        return x.contiguous().clone()

    def close(self):
        pass


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.uint16], ids=lambda d: d.__name__)
def test_transfer_path_arithmetic_matches_the_plain_path(golden_weights, dtype):
    """The CUDA path's conversions (uint16 as int16 bits, scaling, rounding) run on the CPU."""
    enh = make_enhancer("realbasicvsr", weights=golden_weights, device="cpu")
    enh._transfer = _HostTransfer()
    batch = _as(_clips(2, 2, 16, 20), dtype)
    if dtype == np.uint16:
        batch[0][0, 0, 0] = [0, 40000, 65535]  # values that do not fit an int16
    top = None if dtype == np.float32 else float(np.iinfo(dtype).max)
    with torch.inference_mode():
        plain = enh._run_plain(batch, [None, None], top)
        staged = enh._run_pinned(batch, [None, None], top)
    for p, s in zip(plain, staged, strict=True):
        assert s.dtype == p.dtype and s.shape == p.shape and s.flags.c_contiguous
        np.testing.assert_array_equal(s, p)


# --- CUDA ---------------------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def cuda_fp32(golden_weights):
    return make_enhancer("realbasicvsr", weights=golden_weights, device="cuda", precision="fp32")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - np.clip(b, 0, 1)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


@pytest.mark.gpu
@cuda
def test_cuda_enables_cudnn_benchmark(cuda_fp32):
    assert torch.backends.cudnn.benchmark
    assert cuda_fp32.pinned_transfers and cuda_fp32.capabilities.max_batch == 8


@pytest.mark.gpu
@cuda
def test_cuda_fp32_batch_close_to_each_chunk_alone(cuda_fp32):
    batch = _clips(4, 5, 48, 64)
    with torch.backends.cudnn.flags(enabled=True, benchmark=True, allow_tf32=False):
        out = cuda_fp32.enhance_batch(batch)
        for k, chunk in enumerate(batch):
            assert np.abs(out[k] - cuda_fp32.enhance(chunk)).max() <= 1e-3, k


@pytest.mark.gpu
@cuda
def test_cuda_fp16_batch_psnr_against_fp32(golden_weights, cuda_fp32):
    batch = _clips(4, 5, 48, 64)
    half = make_enhancer("realbasicvsr", weights=golden_weights, device="cuda", precision="fp16")
    out = half.enhance_batch(batch)
    with torch.backends.cudnn.flags(enabled=True, benchmark=True, allow_tf32=False):
        for k, chunk in enumerate(batch):
            assert _psnr(out[k], cuda_fp32.enhance(chunk)) >= 45.0, k


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.uint16], ids=lambda d: d.__name__)
def test_cuda_pinned_path_equals_plain_path(golden_weights, dtype):
    enh = make_enhancer("realbasicvsr", weights=golden_weights, device="cuda", precision="fp16")
    batch = _as(_clips(3, 4, 40, 56), dtype)
    pinned = enh.enhance_batch(batch)
    assert all(a.flags.c_contiguous for a in pinned)
    enh.pinned_transfers = False
    plain = enh.enhance_batch(batch)
    for p, q in zip(pinned, plain, strict=True):
        assert p.dtype == q.dtype == np.dtype(dtype)
        if dtype == np.float32:
            assert np.abs(p - q).max() <= 1e-6
        else:
            np.testing.assert_array_equal(p, q)


@pytest.mark.gpu
@cuda
def test_cuda_results_stay_valid_across_calls(golden_weights):
    """Outputs handed out are not overwritten by later calls; the input buffer grows."""
    enh = make_enhancer("realbasicvsr", weights=golden_weights, device="cuda", precision="fp16")
    clips = _as(_clips(4, 3, 32, 40), np.uint8)
    first = enh.enhance_batch(clips[:1])
    kept = [a.copy() for a in first]
    size = enh._transfer.buffer_bytes
    second = enh.enhance_batch(clips[1:])  # a larger batch: the input buffer is regrown
    assert enh._transfer.buffer_bytes > size
    third = enh.enhance_batch(clips[:1])
    for a, b in zip(first, kept, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(third[0], kept[0])
    assert len(second) == 3
    enh.close()
