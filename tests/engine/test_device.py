"""Device and precision choice."""

from __future__ import annotations

import pytest
import torch

from napari_vsr.engine import Progress, format_progress
from napari_vsr.errors import DeviceError, ParameterError
from napari_vsr.models.device import choose_device, choose_dtype, is_out_of_memory, precision_name


def test_auto_device_and_precision():
    dev = choose_device("auto")
    if torch.cuda.is_available():
        assert dev.type == "cuda" and choose_dtype("auto", dev) == torch.float16
    else:
        assert dev.type in ("cpu", "mps") and choose_dtype("auto", dev) == torch.float32
    assert choose_device(None) == dev


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("fp32", torch.float32),
        ("FP16", torch.float16),
        ("bf16", torch.bfloat16),
        ("half", torch.float16),
    ],
)
def test_precision_names(name, dtype):
    assert choose_dtype(name, "cpu") == dtype
    assert precision_name(dtype) in ("fp32", "fp16", "bf16")


def test_bad_names():
    with pytest.raises(ParameterError, match="device"):
        choose_device("gpu0")
    with pytest.raises(ParameterError, match="precision"):
        choose_dtype("int8", "cpu")
    assert choose_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_device_error():
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        choose_device("cuda")
    with pytest.raises(RuntimeError):  # DeviceError is also a RuntimeError
        choose_device("cuda:0")


def test_out_of_memory_recognised():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(ValueError("out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_format_progress():
    text = format_progress(Progress(12, 40, 4.0, 3.0, 9.2))
    assert text == "12/40 frames, 3.00 fps, ETA 0:10"
    assert "ETA ?" in format_progress(Progress(0, 40, 0.0, 0.0, None))
