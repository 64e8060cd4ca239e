"""Every accepted checkpoint layout, derived from the golden file, and every kind of bad file."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch

from napari_vsr.errors import (
    ArchitectureMismatchError,
    CorruptWeightsError,
    VsrError,
    WeightsNotFoundError,
)
from napari_vsr.models import RealBasicVSRNet, generator_state_dict, load_realbasicvsr

# a parameter whose EMA and training values differ in the golden file
PROBE = "basicvsr.conv_last.weight"


def _assert_weights(net: RealBasicVSRNet, state: dict[str, torch.Tensor]) -> None:
    got = net.state_dict()
    assert got.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(got[k], v), k


def test_golden_file_has_distinct_ema_and_training_weights(golden_ema, golden_generator):
    assert not torch.equal(golden_ema[PROBE], golden_generator[PROBE])


def test_mmedit_layout_uses_the_ema_generator(golden_ckpt, golden_ema):
    net = load_realbasicvsr(golden_ckpt)
    _assert_weights(net, golden_ema)
    assert not net.training
    assert not any(p.requires_grad for p in net.parameters())
    assert net.weights_path == str(golden_ckpt)
    assert net.weights_sha256 == hashlib.sha256(golden_ckpt.read_bytes()).hexdigest()


def _layouts(ema, gen):
    """name -> (object to save, weights it must load as)."""
    return {
        "plain": (ema, ema),
        "state_dict_wrapped": ({"state_dict": ema, "meta": {"epoch": 3}}, ema),
        "mmedit_generator_only": (
            {"state_dict": {f"generator.{k}": v for k, v in gen.items()}},
            gen,
        ),
        "basicsr_params_ema": ({"params": gen, "params_ema": ema}, ema),
        "basicsr_params": ({"params": gen}, gen),
        "module_prefix": ({f"module.{k}": v for k, v in ema.items()}, ema),
        "mmedit_module_prefix": (
            {
                "state_dict": {
                    **{f"generator.module.{k}": v for k, v in gen.items()},
                    **{f"generator_ema.module.{k}": v for k, v in ema.items()},
                    "step_counter": torch.tensor(7),
                }
            },
            ema,
        ),
    }


@pytest.mark.parametrize(
    "layout",
    [
        "plain",
        "state_dict_wrapped",
        "mmedit_generator_only",
        "basicsr_params_ema",
        "basicsr_params",
        "module_prefix",
        "mmedit_module_prefix",
    ],
)
def test_layouts_derived_from_the_golden_file(tmp_path, golden_ema, golden_generator, layout):
    obj, expected = _layouts(golden_ema, golden_generator)[layout]
    path = tmp_path / f"{layout}.pth"
    torch.save(obj, path)
    _assert_weights(load_realbasicvsr(path), expected)


def test_numpy_values_in_the_metadata_are_accepted(tmp_path, golden_ema):
    path = tmp_path / "with_numpy_meta.pth"
    meta = {"seed": np.int64(2021), "best_psnr": np.float32(27.5), "hist": np.arange(3)}
    torch.save(
        {"meta": meta, "state_dict": {f"generator_ema.{k}": v for k, v in golden_ema.items()}}, path
    )
    _assert_weights(load_realbasicvsr(path), golden_ema)


def test_safetensors_layout(tmp_path, golden_ema):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path = tmp_path / "generator.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in golden_ema.items()}, path)
    _assert_weights(load_realbasicvsr(path), golden_ema)


def test_half_precision_checkpoint_loads_as_float32_by_default(tmp_path, golden_ema):
    path = tmp_path / "half.pth"
    torch.save({k: v.half() for k, v in golden_ema.items()}, path)
    net = load_realbasicvsr(path)
    assert {p.dtype for p in net.parameters()} == {torch.float32}
    assert torch.equal(net.state_dict()[PROBE], golden_ema[PROBE].half().float())


def test_device_and_dtype(golden_ckpt):
    net = load_realbasicvsr(golden_ckpt, device="cpu", dtype="bf16")
    assert {p.dtype for p in net.parameters()} == {torch.bfloat16}
    assert net.basicvsr.spynet.mean.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="precision: expected one of fp32, fp16, bf16"):
        load_realbasicvsr(golden_ckpt, dtype="int8")


def test_generator_state_dict_prefers_ema_whatever_the_key_order(golden_ema, golden_generator):
    mixed = {"state_dict": {}}
    for k in golden_ema:
        mixed["state_dict"][f"generator.{k}"] = golden_generator[k]
        mixed["state_dict"][f"generator_ema.{k}"] = golden_ema[k]
    assert torch.equal(generator_state_dict(mixed)[PROBE], golden_ema[PROBE])


# --- wrong architecture -------------------------------------------------------------------
def test_32_channel_model_is_an_architecture_mismatch(tmp_path):
    small = RealBasicVSRNet(mid_channels=32, num_propagation_blocks=2, num_cleaning_blocks=2)
    path = tmp_path / "c32.pth"
    torch.save(small.state_dict(), path)
    with pytest.raises(ArchitectureMismatchError) as info:
        load_realbasicvsr(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "missing keys" in msg and "shape mismatches" in msg
    assert "image_cleaning.0.main.0.weight (32, 3, 3, 3) (expected (64, 3, 3, 3))" in msg
    assert "more)" in msg  # long lists are cut
    assert isinstance(info.value, ValueError)


def test_unexpected_and_missing_keys_are_named(tmp_path, golden_ema):
    state = dict(golden_ema)
    del state["basicvsr.fusion.bias"]
    state["basicvsr.extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    with pytest.raises(ArchitectureMismatchError) as info:
        load_realbasicvsr(path)
    msg = str(info.value)
    assert "1 missing keys: basicvsr.fusion.bias" in msg
    assert "1 unexpected keys: basicvsr.extra_head.weight" in msg


# --- bad files ----------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(WeightsNotFoundError) as info:
        load_realbasicvsr(tmp_path / "nope.pth")
    assert isinstance(info.value, FileNotFoundError)
    assert "nope.pth" in str(info.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(CorruptWeightsError, match="empty"):
        load_realbasicvsr(path)


def test_truncated_file(tmp_path, golden_ckpt):
    path = tmp_path / "half.pth"
    data = golden_ckpt.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptWeightsError, match="truncated"):
        load_realbasicvsr(path)


def test_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(CorruptWeightsError, match="not a readable PyTorch checkpoint"):
        load_realbasicvsr(path)


def test_checkpoint_without_tensors(tmp_path):
    path = tmp_path / "meta_only.pth"
    torch.save({"meta": {"epoch": 1}, "note": "x"}, path)
    with pytest.raises(CorruptWeightsError, match="no tensors"):
        load_realbasicvsr(path)


def test_non_dict_checkpoint(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CorruptWeightsError, match="not a state dict"):
        load_realbasicvsr(path)


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_pickled_code_is_never_executed(tmp_path):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "exploit.pth"
    torch.save({"state_dict": _Exploit(sentinel)}, path, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    assert not sentinel.exists()
    with pytest.raises(CorruptWeightsError):
        load_realbasicvsr(path)
    assert not sentinel.exists()


def test_truncated_safetensors(tmp_path, golden_ema):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    good = tmp_path / "good.safetensors"
    safetensors_torch.save_file({PROBE: golden_ema[PROBE].contiguous()}, good)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CorruptWeightsError, match="safetensors"):
        load_realbasicvsr(bad)


def test_every_error_is_a_vsr_error(tmp_path):
    path = tmp_path / "x.pth"
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(VsrError):
        load_realbasicvsr(path)
