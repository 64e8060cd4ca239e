"""RealBasicVSRNet against the reference outputs (golden data), plus layout/precision checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_vsr.models import RealBasicVSRNet

TOL = 1e-4


def _net(state, **hyper) -> RealBasicVSRNet:
    net = RealBasicVSRNet(**hyper)
    net.load_state_dict(state, strict=True)
    return net.eval()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


@pytest.fixture(scope="module")
def net(golden_ema) -> RealBasicVSRNet:
    return _net(golden_ema)


@pytest.fixture
def small_clip(golden_input) -> torch.Tensor:
    """(1, 2, 3, 64, 64): a cheap crop of the real clip."""
    return golden_input[:, :2, :, :64, :64].clone()


def test_parameter_names_and_shapes_match_official(golden_dir):
    expected = {}
    for line in (golden_dir / "official_generator_keys.txt").read_text().splitlines():
        key, shape = line.split("\t")
        expected[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    ours = {k: tuple(v.shape) for k, v in RealBasicVSRNet().state_dict().items()}
    assert ours == expected
    assert len(ours) == 320
    assert sum(np.prod(s, dtype=np.int64) for s in ours.values()) == 6_294_840


def test_default_matches_golden(net, golden_input, golden_dir):
    before = golden_input.clone()
    with torch.no_grad():
        out = net(golden_input)
    expected = np.load(golden_dir / "expected_default.npy")
    assert out.shape == (1, 6, 3, 288, 400) and out.dtype == torch.float32
    assert np.abs(out[0].numpy() - expected).max() <= TOL
    assert net.last_cleaning_passes == 1
    assert torch.equal(golden_input, before), "the input clip was modified"


def test_thres5_runs_three_cleaning_passes_and_matches_golden(golden_ema, golden_input, golden_dir):
    net5 = _net(golden_ema, dynamic_refine_thres=5)
    with torch.no_grad():
        out = net5(golden_input)
    expected = np.load(golden_dir / "expected_thres5.npy")
    assert np.abs(out[0].numpy() - expected).max() <= TOL
    assert net5.last_cleaning_passes == 3


def test_spynet_flow_matches_golden(net, golden_input, golden_dir):
    with torch.no_grad():
        flow = net.basicvsr.spynet(golden_input[:, 0], golden_input[:, 1])
    expected = np.load(golden_dir / "expected_spynet_flow_0to1.npy")
    assert flow.shape == (1, 2, 72, 100)
    assert np.abs(flow.numpy() - expected).max() <= TOL


def test_channels_last_and_batch_slicing_give_the_same_result(golden_ema, net, small_clip):
    with torch.no_grad():
        ref = net(small_clip)
        cl = _net(golden_ema).to(memory_format=torch.channels_last)
        cl.max_batch_pixels = 64 * 64  # one frame per slice everywhere
        out = cl(small_clip)
        # what the engine passes: a (1, T, 3, H, W) view of (T, H, W, 3) frames
        hwc_view = small_clip.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
        out_view = cl(hwc_view)
    assert out.shape == (1, 2, 3, 256, 256)
    assert out.is_contiguous()
    assert (out - ref).abs().max().item() <= TOL
    assert (out_view - ref).abs().max().item() <= TOL


def test_mirror_extended_clip_reuses_backward_flows(net, golden_input):
    clip = golden_input[:, :2, :, :64, :64]
    mirrored = torch.cat([clip, clip.flip(1)], dim=1)  # frames a b b a
    with torch.no_grad():
        backward, forward = net.basicvsr.compute_flows(mirrored)
        direct = net.basicvsr.spynet(mirrored[:, 1:].flatten(0, 1), mirrored[:, :-1].flatten(0, 1))
    assert backward.shape == forward.shape == (1, 3, 2, 64, 64)
    assert (forward[0] - direct).abs().max().item() <= TOL


def test_batch_of_two_clips_equals_each_clip_alone(net, small_clip):
    other = small_clip.flip(-1).contiguous()
    with torch.no_grad():
        both = net(torch.cat([small_clip, other]))
        alone = net(other)
    assert (both[1:] - alone).abs().max().item() <= TOL


@pytest.mark.parametrize("size", [(20, 30), (64, 40), (1, 1)])
def test_frames_smaller_than_64_px_are_padded_then_cropped(net, golden_input, size):
    h, w = size
    clip = golden_input[:, :2, :, :h, :w].clone()
    with torch.no_grad():
        out = net(clip)
    assert out.shape == (1, 2, 3, 4 * h, 4 * w)
    assert torch.isfinite(out).all()


def test_single_frame_clip(net, small_clip):
    with torch.no_grad():
        out = net(small_clip[:, :1])
    assert out.shape == (1, 1, 3, 256, 256)


def test_input_is_cast_to_the_network_dtype(net, small_clip):
    with torch.no_grad():
        out = net(small_clip.double())
    assert out.dtype == torch.float32


@pytest.mark.parametrize(
    "shape", [(6, 3, 72, 100), (1, 6, 1, 72, 100), (1, 6, 4, 72, 100)], ids=["4d", "gray", "rgba"]
)
def test_rejects_wrong_shapes(net, shape):
    with pytest.raises(ValueError, match=r"\(N, T, 3, H, W\)"):
        net(torch.zeros(shape))


def test_rejects_integer_frames(net):
    with pytest.raises(TypeError, match="float"):
        net(torch.zeros((1, 2, 3, 64, 64), dtype=torch.uint8))


def test_bfloat16_on_cpu_is_close_to_float32(golden_ema, net, small_clip):
    with torch.no_grad():
        ref = net(small_clip)
        out = _net(golden_ema).to(torch.bfloat16)(small_clip)
    assert out.dtype == torch.bfloat16
    assert _psnr(out.float().clamp(0, 1), ref.clamp(0, 1)) >= 40.0


def test_hyperparameters_are_keyword_only():
    with pytest.raises(TypeError):
        RealBasicVSRNet(32)  # type: ignore[misc]
    small = RealBasicVSRNet(mid_channels=16, num_propagation_blocks=1, num_cleaning_blocks=1)
    assert small.basicvsr.fusion.weight.shape == (16, 32, 1, 1)
    assert "mid_channels=16" in repr(small)


# --- CUDA ---------------------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def cuda_results(golden_ema, golden_input):
    """Float32 CUDA output of the golden clip and the network on the device."""
    gnet = _net(golden_ema).cuda()
    with torch.no_grad():
        out = gnet(golden_input.cuda()).float().cpu()
    return gnet, out


@pytest.mark.gpu
@cuda
def test_cuda_float32_matches_golden(cuda_results, golden_dir):
    _, out = cuda_results
    expected = np.load(golden_dir / "expected_default.npy")
    assert np.abs(out[0].numpy() - expected).max() <= 1e-3


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
def test_cuda_half_precision_psnr(golden_ema, golden_input, cuda_results, dtype, channels_last):
    _, ref = cuda_results
    hnet = _net(golden_ema).cuda().to(dtype)
    if channels_last:
        hnet = hnet.to(memory_format=torch.channels_last)
    with torch.no_grad():
        out = hnet(golden_input.cuda()).float().cpu()
    assert _psnr(out.clamp(0, 1), ref.clamp(0, 1)) >= 45.0


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_cuda_autocast_psnr(cuda_results, golden_input, dtype):
    gnet, ref = cuda_results
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        out = gnet(golden_input.cuda()).float().cpu()
    assert _psnr(out.clamp(0, 1), ref.clamp(0, 1)) >= 45.0


def test_step_callback_does_not_change_the_output(net, small_clip):
    clip = torch.cat([small_clip, small_clip.flip(1), small_clip], dim=1)  # (1, 6, 3, 64, 64)
    calls: list[tuple[str, int]] = []
    with torch.inference_mode():
        plain = net(clip)
        stepped = net(clip, step=lambda phase, i: calls.append((phase, i)))
    assert torch.equal(plain, stepped)
    forward = [c for c in calls if c[0] != "backward"]
    assert calls[:6] == [("backward", i) for i in range(5, -1, -1)]
    # one upsampling batch: every forward step, then every output frame
    assert forward == [("forward", i) for i in range(6)] + [("output", i) for i in range(6)]


def test_step_reports_frames_after_each_upsampling_batch(net, small_clip):
    calls: list[tuple[str, int]] = []
    net.max_batch_pixels = 64 * 64  # one frame per upsampling batch
    try:
        order = []

        def step(phase, i):
            calls.append((phase, i))
            order.append(i)

        with torch.inference_mode():
            out = net(small_clip[:, :, :, :40, :40], step=step)  # padded to 64 px inside
    finally:
        net.max_batch_pixels = 1 << 18
    assert out.shape == (1, 2, 3, 160, 160)
    assert calls == [("backward", 1), ("backward", 0), ("forward", 0), ("output", 0),
                     ("forward", 1), ("output", 1)]


def test_step_may_stop_the_forward(net, small_clip):
    from napari_vsr.errors import Cancelled

    calls = []

    def step(phase, i):
        calls.append((phase, i))
        if phase == "backward":
            raise Cancelled()

    with torch.inference_mode(), pytest.raises(Cancelled):
        net(small_clip, step=step)
    assert calls == [("backward", 1)]
