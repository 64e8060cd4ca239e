"""Batches of clips through RealBasicVSRNet: every clip's result is the one it gets alone.

With the golden weights and ``dynamic_refine_thres=38`` the clips below stop cleaning at
different passes: the mean residue of "plain" is ~35/255 after its first pass (it stops
there), the others ~41/255 and growing (they run all three passes).  Float64 runs are exact
to the last bits; they are slow on the CPU, so clips are short.
"""

from __future__ import annotations

import pytest
import torch

from napari_vsr.models import RealBasicVSRNet
from napari_vsr.models.fused import fuse_convolutions, fusion_available

THRES = 38


def _net(state, *, dtype=torch.float32, channels_last=False, fused=False) -> RealBasicVSRNet:
    net = RealBasicVSRNet(dynamic_refine_thres=THRES)
    net.load_state_dict(state, strict=True)
    net = net.eval().to(dtype)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if fused:
        assert fuse_convolutions(net) > 0
    return net


def _clips(golden_input: torch.Tensor, size: tuple[int, int], t: int) -> dict[str, torch.Tensor]:
    """Three (1, t, 3, h, w) crops of the golden clip: "plain" (one cleaning pass), "shifted"
    and "bright" (three passes)."""
    h, w = size
    x = golden_input
    return {
        "shifted": x[:, 1 : 1 + t, :, 72 - h :, 100 - w :].clone(),
        "plain": x[:, :t, :, :h, :w].clone(),
        "bright": (x[:, :t, :, :h, :w].flip(-1).flip(-2) * 0.6 + 0.3).contiguous(),
    }


@pytest.fixture(scope="module")
def net64(golden_ema) -> RealBasicVSRNet:
    return _net(golden_ema, dtype=torch.float64)


@pytest.mark.parametrize("size", [(32, 48), (64, 64)], ids=["32x48", "64x64"])
def test_float64_cleaning_stops_per_clip(net64, golden_input, size):
    clips = [c.double() for c in _clips(golden_input, size, 2).values()]
    batch = torch.cat(clips)
    before = batch.clone()
    with torch.inference_mode():
        cleaned = net64.clean(batch)
        assert net64.last_cleaning_passes_per_clip == (3, 1, 3)
        assert net64.last_cleaning_passes == 3
        for k, clip in enumerate(clips):
            alone = net64.clean(clip)
            assert net64.last_cleaning_passes_per_clip == ((1,) if k == 1 else (3,))
            assert (cleaned[k] - alone[0]).abs().max().item() <= 1e-12, k
    assert torch.equal(batch, before), "the input batch was modified"


@pytest.mark.slow
def test_float64_network_batch_equals_each_clip_alone(net64, golden_input):
    clips = _clips(golden_input, (32, 48), 2)
    batch = torch.cat([clips["plain"], clips["shifted"]]).double()
    with torch.inference_mode():
        both = net64(batch)
        assert net64.last_cleaning_passes_per_clip == (1, 3)
        for k in range(2):
            alone = net64(batch[k : k + 1])
            assert (both[k] - alone[0]).abs().max().item() <= 1e-12, k


class _CountPairs:
    """Counts the frame pairs SPyNet is called on."""

    def __init__(self, spynet, monkeypatch):
        self.pairs = 0
        real = spynet.forward

        def forward(ref, supp):
            self.pairs += ref.shape[0]
            return real(ref, supp)

        monkeypatch.setattr(spynet, "forward", forward)


def test_mirror_shortcut_is_decided_per_clip(net64, golden_input, monkeypatch):
    clips = _clips(golden_input, (32, 48), 2)
    mirrored = torch.cat([clips["plain"], clips["plain"].flip(1)], dim=1)  # frames a b b a
    other = torch.cat([clips["shifted"], clips["bright"]], dim=1)  # 4 frames, no mirror
    batch = torch.cat([mirrored, other, mirrored]).double()
    count = _CountPairs(net64.basicvsr.spynet, monkeypatch)
    with torch.inference_mode():
        backward, forward = net64.basicvsr.compute_flows(batch)
        assert count.pairs == 3 * 3 + 3  # backward flows of all clips, forward of one
        assert torch.equal(forward[0], backward[0].flip(0))
        assert torch.equal(forward[2], backward[2].flip(0))
        for k in range(3):
            b1, f1 = net64.basicvsr.compute_flows(batch[k : k + 1])
            assert (backward[k] - b1[0]).abs().max().item() <= 1e-12
            assert (forward[k] - f1[0]).abs().max().item() <= 1e-12


def _assert_batch_equals_alone(
    net, clips: list[torch.Tensor], passes, tol: float, *, batch_pixels: int | None = None
):
    """``batch_pixels``: the batch runs with this ``max_batch_pixels`` (the clips alone with
    the default), so slices cut across clips."""
    default = net.max_batch_pixels
    with torch.inference_mode():
        net.max_batch_pixels = batch_pixels or default
        try:
            both = net(torch.cat(clips))
        finally:
            net.max_batch_pixels = default
        assert net.last_cleaning_passes_per_clip == passes
        for k, clip in enumerate(clips):
            alone = net(clip)
            assert net.last_cleaning_passes_per_clip == (passes[k],)
            assert (both[k] - alone[0]).abs().max().item() <= tol, k


@pytest.mark.skipif(not fusion_available(), reason="no oneDNN fusion in this build")
def test_float32_fused_batch_equals_each_clip_alone(golden_ema, golden_input):
    """What the CPU enhancer runs: channels-last, fused oneDNN path; a mirrored clip too."""
    clips = _clips(golden_input, (32, 48), 4)
    mirrored = torch.cat([clips["plain"][:, :2], clips["plain"][:, :2].flip(1)], dim=1)
    net = _net(golden_ema, channels_last=True, fused=True)
    _assert_batch_equals_alone(net, [clips["shifted"], mirrored, clips["bright"]], (3, 1, 3), 1e-5)


def test_float32_eager_batch_in_slices_equals_each_clip_alone(golden_ema, golden_input):
    """Slices that cut across clip boundaries change nothing."""
    clips = _clips(golden_input, (64, 64), 2)
    net = _net(golden_ema)
    three = [clips["plain"], clips["bright"], clips["shifted"]]
    # cleaning slices of 3 frames (8 * 1536 px: clip edges fall inside them), flow pairs and
    # upsampler frames one by one
    _assert_batch_equals_alone(net, three, (1, 3, 3), 1e-5, batch_pixels=1536)


def test_steps_fire_once_per_time_step_for_the_whole_batch(golden_ema, golden_input):
    net = _net(golden_ema, channels_last=True)
    clips = _clips(golden_input, (32, 48), 3)
    calls: list[tuple[str, int]] = []
    with torch.inference_mode():
        net(torch.cat(list(clips.values())), step=lambda phase, i: calls.append((phase, i)))
    assert calls == ([("backward", i) for i in (2, 1, 0)] + [("forward", i) for i in range(3)]
                     + [("output", i) for i in range(3)])


# --- CUDA ---------------------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * float(torch.log10(torch.tensor(1.0 / mse)))


@pytest.mark.gpu
@cuda
def test_cuda_batch_equals_each_clip_alone(golden_ema, golden_input):
    """float32 (TF32 off: cuDNN may pick other algorithms per batch size) within 1e-3, and
    float16 batches within 45 dB of float32 clips alone."""
    clips = [c.cuda() for c in _clips(golden_input, (64, 64), 4).values()]
    batch = torch.cat(clips)
    with torch.backends.cudnn.flags(enabled=True, benchmark=True, allow_tf32=False):
        net = _net(golden_ema).cuda()
        _assert_batch_equals_alone(net, clips, (3, 1, 3), 1e-3)
        with torch.inference_mode():
            ref = [net(c)[0].float().cpu() for c in clips]
        half = _net(golden_ema).cuda().half().to(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = half(batch).float().cpu()
    for k in range(len(clips)):
        assert _psnr(out[k].clamp(0, 1), ref[k].clamp(0, 1)) >= 45.0, k
