"""``load_realbasicvsr``: a ready-to-run RealBasicVSR network from any accepted checkpoint."""

from __future__ import annotations

import logging
import os

import torch

from napari_vsr.errors import DeviceError, ParameterError
from napari_vsr.jobs.progress import CancelToken, ProgressCallback
from napari_vsr.models.checkpoint import (
    check_architecture,
    check_values,
    generator_state_dict,
    read_checkpoint,
)
from napari_vsr.models.device import parse_precision
from napari_vsr.models.realbasicvsr import RealBasicVSRNet
from napari_vsr.models.weights import resolve_weights, sha256_file

__all__ = ["load_realbasicvsr"]

log = logging.getLogger(__name__)

def load_realbasicvsr(
    weights: str | os.PathLike | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> RealBasicVSRNet:
    """Build the released RealBasicVSR x4 network and load its weights.

    Parameters
    ----------
    weights : path-like, optional
        Checkpoint file in any accepted layout (see :mod:`napari_vsr.models.checkpoint`).
        None resolves it with :func:`~napari_vsr.models.weights.resolve_weights`
        (``$NAPARI_VSR_WEIGHTS``, the cache, then a download).
    device : torch.device or str, optional
        Where to put the network (default CPU).
    dtype : torch.dtype or str, optional
        Parameter dtype: float32 (default, whatever the checkpoint stores), float16 or
        bfloat16; also "fp32", "fp16", "bf16".
    progress : ProgressCallback, optional
        Receives :class:`~napari_vsr.jobs.progress.Progress` records (stage "downloading
        weights", unit "bytes") if a download happens.
    cancel : CancelToken, optional
        Stops such a download (:class:`~napari_vsr.errors.Cancelled`, nothing left cached).

    Returns
    -------
    RealBasicVSRNet
        In eval mode, gradients off, with ``weights_path`` and ``weights_sha256`` set.

    Raises
    ------
    WeightsNotFoundError, CorruptWeightsError, ArchitectureMismatchError, WeightsDownloadError,
    ChecksumMismatchError, DeviceError
    """
    torch_dtype = None if dtype is None else parse_precision(dtype)
    try:
        torch_device = torch.device(device) if device is not None else None
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(f"unknown device {device!r}: {exc}") from None
    path = resolve_weights(weights, progress=progress, cancel=cancel)
    state = generator_state_dict(read_checkpoint(path), path=path)
    with torch.device("meta"):  # no random init: every tensor comes from the checkpoint
        net = RealBasicVSRNet()
    check_architecture(net, state, path=path)
    check_values(state, path=path)  # NaN/Inf or integer weights: refused, not a black video
    net.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True, assign=True)
    net.weights_path = str(path)
    net.weights_sha256 = sha256_file(path)
    net.eval().requires_grad_(False)
    try:
        net.to(device=torch_device, dtype=torch_dtype or torch.float32)
    except (RuntimeError, AssertionError) as exc:
        raise DeviceError(f"cannot put the network on {device} as {torch_dtype}: {exc}") from exc
    log.info("loaded RealBasicVSR from %s (sha256 %s)", path, net.weights_sha256[:12])
    return net
