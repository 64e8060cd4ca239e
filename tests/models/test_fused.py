"""The fused oneDNN CPU path: golden parity, equality with the eager layers, and fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_vsr.models import RealBasicVSRNet
from napari_vsr.models import fused as fused_mod
from napari_vsr.models.fused import fuse_convolutions, fusion_available, unfuse_convolutions

pytestmark = pytest.mark.skipif(not fusion_available(), reason="no oneDNN fusion in this build")

TOL = 1e-4


def _net(state, *, channels_last: bool = True) -> RealBasicVSRNet:
    net = RealBasicVSRNet()
    net.load_state_dict(state, strict=True)
    net.eval().requires_grad_(False)
    return net.to(memory_format=torch.channels_last) if channels_last else net


@pytest.fixture
def calls(monkeypatch) -> dict[str, int]:
    """Counts calls of the fused stacks, SPyNet levels and upsamplers."""
    counts = {"stack": 0, "level": 0, "upsampler": 0}
    for key, cls in (
        ("stack", fused_mod.FusedResidualStack),
        ("level", fused_mod.FusedSPyNetLevel),
        ("upsampler", fused_mod.FusedUpsampler),
    ):
        original = cls.__call__

        def counted(self, *args, _key=key, _original=original):
            counts[_key] += 1
            return _original(self, *args)

        monkeypatch.setattr(cls, "__call__", counted)
    return counts


@pytest.fixture
def clip(golden_input) -> torch.Tensor:
    """(1, 3, 3, 64, 80): a cheap crop of the real clip, as a channels-last view."""
    frames = golden_input[0, :3, :, :64, :80].permute(0, 2, 3, 1).contiguous()
    return frames.permute(0, 3, 1, 2)[None]


def test_fused_network_matches_golden(golden_ema, golden_input, golden_dir, calls):
    net = _net(golden_ema)
    assert fuse_convolutions(net) == 10  # 3 residual stacks, 6 SPyNet levels, 1 upsampler
    with torch.inference_mode():
        out = net(golden_input)
    expected = np.load(golden_dir / "expected_default.npy")
    assert np.abs(out[0].numpy() - expected).max() <= TOL
    assert calls["stack"] == 1 + 2 * 6 and calls["level"] == 6 and calls["upsampler"] >= 1


@pytest.mark.parametrize("channels_last", [True, False], ids=["channels_last", "contiguous"])
def test_fused_equals_eager_with_row_bands(golden_ema, clip, calls, channels_last):
    net = _net(golden_ema, channels_last=channels_last)
    x = clip if channels_last else clip.contiguous()
    with torch.inference_mode():
        eager = net(x)
        fuse_convolutions(net)
        net.basicvsr._fused.band_bytes = 4096 * 80 * 5  # 5-row bands: interior band edges
        net.max_batch_pixels = 2 * 64 * 80  # upsampler called on 2 frames, then 1
        fused = net(x)
    assert calls["upsampler"] == 2
    assert fused.shape == eager.shape == (1, 3, 3, 256, 320)
    assert (fused - eager).abs().max().item() <= 1e-5


def test_stale_or_training_weights_fall_back_to_eager(golden_ema, golden_generator, clip, calls):
    net = _net(golden_ema)
    fuse_convolutions(net)
    net.load_state_dict(golden_generator, strict=True)  # in-place copy: the fused weights are stale
    with torch.inference_mode():
        got = net(clip)
    assert calls == {"stack": 0, "level": 0, "upsampler": 0}
    with torch.inference_mode():
        expected = _net(golden_generator)(clip)
    assert torch.equal(got, expected)

    fresh = _net(golden_ema)
    fuse_convolutions(fresh)
    with torch.enable_grad():  # autograd on: the eager layers run
        fresh(clip[:, :2, :, :, :64])
    assert calls["stack"] == 0


def test_state_dict_unchanged_and_unfuse(golden_ema, clip, calls):
    net = _net(golden_ema)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fuse_convolutions(net)
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    RealBasicVSRNet().load_state_dict(after, strict=True)
    unfuse_convolutions(net)
    with torch.inference_mode():
        net(clip[:, :2, :, :, :64])
    assert calls["stack"] == 0


def test_deep_copy_and_pickle_fall_back_to_eager(golden_ema):
    import copy
    import io

    net = _net(golden_ema)
    fuse_convolutions(net)
    twin = copy.deepcopy(net)
    assert twin.basicvsr._fused is None and twin.image_cleaning[0]._fused is None
    buf = io.BytesIO()
    torch.save(net, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert loaded.basicvsr.backward_resblocks._fused is None
    assert net.basicvsr._fused is not None


def test_not_fused_off_cpu_float32(golden_ema):
    net = _net(golden_ema).to(torch.bfloat16)
    assert fuse_convolutions(net) == 0
    assert net.basicvsr._fused is None


def test_enhancer_uses_the_fused_path_on_cpu_fp32(golden_dir):
    from napari_vsr.enhancers import make_enhancer

    enh = make_enhancer(
        "realbasicvsr", weights=golden_dir / "realbasicvsr_random_mmedit_layout.pth", device="cpu"
    )
    assert enh.fused and enh.describe()["fused"] is True
    assert enh._net.basicvsr.backward_resblocks._fused is not None
    # the fused path with a step callback: same output, one step per time step
    frames = np.random.default_rng(0).random((3, 24, 24, 3), dtype=np.float32)
    calls = []
    stepped = enh.enhance(frames, step=calls.append)
    np.testing.assert_array_equal(stepped, enh.enhance(frames))
    assert calls == [None, None, None, None, None, None, 0, 1, 2]  # backward, forward, output
