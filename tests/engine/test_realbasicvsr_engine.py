"""The engine with the real network and the golden checkpoint (tiny frames, CPU, float32)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_vsr.engine import CancelToken, Progress, enhance, plan_output
from napari_vsr.enhancers import Capabilities, make_enhancer
from napari_vsr.enhancers.realbasicvsr import RealBasicVSREnhancer
from napari_vsr.errors import Cancelled, ParameterError


@pytest.fixture(scope="module")
def golden_weights(golden_dir):
    return golden_dir / "realbasicvsr_random_mmedit_layout.pth"


@pytest.fixture(scope="module")
def enhancer(golden_weights):
    return make_enhancer("realbasicvsr", weights=golden_weights, device="cpu")


def _clip(n: int, h: int, w: int) -> np.ndarray:
    """A moving, textured float32 RGB clip in [0, 1], (n, h, w, 3)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.arange(n, dtype=np.float32)[:, None, None]
    r = 0.5 + 0.4 * np.sin(0.35 * (xx - 0.8 * t) + 0.2 * yy)
    g = 0.5 + 0.4 * np.cos(0.25 * (yy + 0.5 * t) - 0.1 * xx)
    b = 0.5 + 0.3 * np.sin(0.15 * (xx + yy) + 0.3 * t)
    return np.stack([r, g, b], axis=-1).astype(np.float32)


def _network(enh: RealBasicVSREnhancer, frames: np.ndarray) -> np.ndarray:
    """The network itself on one clip: (T, H, W, 3) -> (T, 4H, 4W, 3)."""
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)[None].contiguous()
        return enh._net(x)[0].permute(0, 2, 3, 1).numpy()


def test_adapter_attributes(enhancer, golden_weights):
    assert enhancer.capabilities == Capabilities(
        scale=4,
        context=0,
        tileable=True,
        default_chunk=20,
        default_overlap=4,
        tile_overlap=16,
        input_kind="rgb01",
        accepts_integer_rgb=True,
        device="cpu",
        precisions=("fp32", "fp16", "bf16"),
        max_batch=8,
    )
    assert enhancer.scale == 4 and enhancer.estimate_memory(10, 64, 64) > 0
    assert enhancer.device == torch.device("cpu") and enhancer.precision == "fp32"
    assert enhancer.weights_path and len(enhancer.weights_sha256) == 64
    d = enhancer.describe()
    assert d["method"] == "realbasicvsr" and d["precision"] == "fp32" and d["scale"] == 4
    assert plan_output((40, 32, 48, 3), np.uint8, enhancer) == (
        (40, 128, 192, 3),
        np.dtype("uint8"),
    )


def test_forty_frames_equal_network_on_chunk_with_context(enhancer):
    frames = _clip(40, 32, 48)
    chunk, overlap = 16, 2
    got = list(enhance(frames, enhancer, chunk=chunk, overlap=overlap, tile=0))
    assert [i for i, _ in got] == list(range(40))
    out = np.stack([f for _, f in got])
    assert out.shape == (40, 128, 192, 3) and out.dtype == np.float32
    for s in range(0, 40, chunk):
        e = min(s + chunk, 40)
        lo, hi = max(0, s - overlap), min(40, e + overlap)
        ref = _network(enhancer, frames[lo:hi])[s - lo : e - lo]
        assert np.abs(out[s:e] - ref).max() <= 1e-4, f"chunk {s}:{e}"


def test_uint8_rgb_and_channels_last_off(enhancer, golden_weights):
    frames8 = np.rint(_clip(3, 20, 24) * 255).astype(np.uint8)
    out = np.stack([f for _, f in enhance(frames8, enhancer, tile=0)])
    assert out.dtype == np.uint8 and out.shape == (3, 80, 96, 3)
    ref = _network(enhancer, frames8.astype(np.float32) / 255)
    expect = np.clip(ref, 0, 1) * 255
    assert np.abs(out.astype(np.float32) - expect).max() <= 0.5 + 1e-3
    plain = make_enhancer("realbasicvsr", weights=golden_weights, device="cpu", channels_last=False)
    out2 = np.stack([f for _, f in enhance(frames8, plain, tile=0)])
    assert np.abs(out2.astype(int) - out.astype(int)).max() <= 1


def test_uint16_rgb_scaled_on_device(enhancer):
    frames16 = np.rint(_clip(2, 16, 20) * 65535).astype(np.uint16)
    assert enhancer.capabilities.accepts_integer_rgb
    out = np.stack([f for _, f in enhance(frames16, enhancer, tile=0)])
    assert out.dtype == np.uint16 and out.shape == (2, 64, 80, 3)
    ref = np.clip(_network(enhancer, frames16.astype(np.float32) / 65535), 0, 1) * 65535
    assert np.abs(out.astype(np.float64) - ref).max() <= 0.5 + 0.2


def test_tiled_close_to_untiled(enhancer):
    frames = _clip(3, 40, 72)
    whole = np.stack([f for _, f in enhance(frames, enhancer, tile=0)])
    tiled = np.stack([f for _, f in enhance(frames, enhancer, tile=40, tile_overlap=16)])
    mse = float(np.mean((np.clip(whole, 0, 1) - np.clip(tiled, 0, 1)) ** 2))
    psnr = 10 * np.log10(1 / max(mse, 1e-20))
    assert psnr > 35, psnr


def test_factory_rejects_mixed_options(golden_weights):
    with pytest.raises(ParameterError, match="classic"):
        make_enhancer("realbasicvsr", weights=golden_weights, preset="seed")
    with pytest.raises(ParameterError, match="method"):
        make_enhancer("esrgan")
    with pytest.raises(ParameterError, match="realbasicvsr"):
        make_enhancer("classic", weights=golden_weights)


class _CountingSteps:
    """Wraps the network's forward to record every ``step(phase, i)`` it makes."""

    def __init__(self, enh: RealBasicVSREnhancer, monkeypatch):
        self.calls: list[tuple[str, int]] = []
        net = enh._net
        real = net.forward

        def forward(lqs, *, step=None):
            def spy(phase: str, i: int) -> None:
                self.calls.append((phase, i))
                if step is not None:
                    step(phase, i)

            return real(lqs, step=spy)

        monkeypatch.setattr(net, "forward", forward)


def test_one_chunk_reports_every_frame(enhancer, monkeypatch):
    frames = _clip(6, 32, 32)
    seen: list[Progress] = []
    steps = _CountingSteps(enhancer, monkeypatch)
    out = np.stack([f for _, f in enhance(frames, enhancer, chunk=6, tile=0, progress=seen.append)])
    assert [p.done for p in seen] == list(range(7))  # start, then one record per frame
    assert all(p.total == 6 and p.stage == "enhancing" for p in seen)
    # the forward steps (cancel points) interleave with the outputs by upsampling batch
    assert [c for c in steps.calls if c[0] != "forward"] == [
        ("backward", i) for i in range(5, -1, -1)] + [("output", i) for i in range(6)]
    assert [c for c in steps.calls if c[0] == "forward"] == [("forward", i) for i in range(6)]
    assert np.abs(out - _network(enhancer, frames)).max() <= 1e-4


def test_context_frames_are_not_counted(enhancer):
    frames = _clip(4, 24, 24)
    seen: list[int] = []
    list(
        enhance(
            frames, enhancer, chunk=2, overlap=1, tile=0, progress=lambda p: seen.append(p.done)
        )
    )
    assert seen == list(range(5))


def test_cancel_inside_a_chunk_within_one_frame(enhancer, monkeypatch):
    frames = _clip(8, 32, 32)
    token = CancelToken()
    seen: list[int] = []
    steps = _CountingSteps(enhancer, monkeypatch)

    def on_progress(p: Progress) -> None:
        seen.append(p.done)
        if p.done == 3:  # output frame 2 is finished
            token.cancel()

    got = []
    with pytest.raises(Cancelled):
        for i, _ in enhance(frames, enhancer, chunk=8, tile=0, progress=on_progress, cancel=token):
            got.append(i)
    assert got == [] and seen == [0, 1, 2, 3]
    outputs = [i for phase, i in steps.calls if phase == "output"]
    assert outputs == [0, 1, 2, 3]  # at most one more time step ran before Cancelled


def test_cancel_during_the_backward_pass(enhancer, monkeypatch):
    frames = _clip(8, 32, 32)
    token = CancelToken()
    steps = _CountingSteps(enhancer, monkeypatch)
    real_cancel = token.raise_if_cancelled
    checks = []

    def check() -> None:
        checks.append(len(steps.calls))
        if len(steps.calls) == 3:
            token.cancel()
        real_cancel()

    monkeypatch.setattr(token, "raise_if_cancelled", check)
    with pytest.raises(Cancelled):
        list(enhance(frames, enhancer, chunk=8, tile=0, cancel=token))
    assert steps.calls == [("backward", 7), ("backward", 6), ("backward", 5)]


def test_tiled_one_chunk_counts_frames_when_all_tiles_are_done(enhancer):
    frames = _clip(3, 40, 72)
    seen: list[int] = []
    list(
        enhance(
            frames,
            enhancer,
            chunk=3,
            tile=40,
            tile_overlap=16,
            progress=lambda p: seen.append(p.done),
        )
    )
    assert seen == [0, 1, 2, 3]


def test_overlapped_stages_equal_the_serial_run_with_the_golden_checkpoint(enhancer):
    frames = (_clip(9, 24, 32) * 255).round().astype(np.uint8)
    serial = np.stack([f for _, f in enhance(frames, enhancer, chunk=4, overlap=2, tile=0,
                                             serial=True)])
    overlapped = np.stack([f for _, f in enhance(frames, enhancer, chunk=4, overlap=2,
                                                 tile=0)])
    assert serial.shape == (9, 96, 128, 3) and serial.dtype == np.uint8
    np.testing.assert_array_equal(serial, overlapped)
