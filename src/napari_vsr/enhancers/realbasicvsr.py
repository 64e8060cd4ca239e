"""RealBasicVSR x4 as an :class:`~napari_vsr.enhancers.base.Enhancer` (imports PyTorch)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from napari_vsr.enhancers.base import Capabilities, Enhancer, StepCallback
from napari_vsr.jobs.progress import CancelToken, ProgressCallback
from napari_vsr.models.device import (
    PRECISION_NAMES,
    choose_device,
    choose_dtype,
    precision_name,
    release_memory,
)

log = logging.getLogger(__name__)

class RealBasicVSREnhancer(Enhancer):
    """RealBasicVSR x4 as an engine enhancer.

    Parameters
    ----------
    weights : path-like, optional
        Checkpoint; None resolves it (``$NAPARI_VSR_WEIGHTS``, the cache, then a download).
    device : str or torch.device
        ``"auto"`` (CUDA, MPS, CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``.
    precision : str
        ``"auto"`` (fp16 on CUDA, else fp32), ``"fp32"``, ``"fp16"``, ``"bf16"``.
    channels_last : bool
        Run convolutions in the channels-last memory format (same results, faster on CPU and
        on tensor cores).
    compile : bool
        Compile the heavy sub-networks with ``torch.compile`` (experimental; first chunk is slow).
    progress : ProgressCallback, optional
        Receives :class:`~napari_vsr.jobs.progress.Progress` records (stage "downloading
        weights", unit "bytes") if the checkpoint is downloaded.
    cancel : CancelToken, optional
        Stops that download (:class:`~napari_vsr.errors.Cancelled`).

    Notes
    -----
    ``enhance`` takes (T, H, W, 3) float32 RGB in [0, 1] on the host and returns
    (T, 4H, 4W, 3) float32, not clipped, on the host.  The whole chunk is one clip for the
    network (both recurrent directions run over it).  The network is loaded at construction, so
    weight errors surface before any output is created; :meth:`close` frees the device memory
    cached by the last chunk.

    On the CPU in float32 (and without ``compile``) the network runs its fused oneDNN path
    (:func:`napari_vsr.models.fused.fuse_convolutions`: conv + activation / residual add in one
    call, in-place residual stacks, upsampler in row bands); the ``fused`` attribute says
    whether it is on.  Same results to float32 rounding, faster and with far less memory.
    """

    name = "realbasicvsr"

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        channels_last: bool = True,
        compile: bool = False,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ):
        self.device = choose_device(device)
        self.dtype = choose_dtype(precision, self.device)
        self.channels_last = bool(channels_last)
        self.compile = bool(compile)
        #: whether the CPU float32 fused-convolution path is in use (set when loading)
        self.fused = False
        self._weights = weights
        self._net = None
        self._load(progress, cancel)
        self.weights_path: str | None = self._net.weights_path
        self.weights_sha256: str | None = self._net.weights_sha256
        self.capabilities = Capabilities(
            scale=4,
            context=0,
            tileable=True,
            default_chunk=20,
            default_overlap=4,
            tile_overlap=16,  # input pixels (see benchmarks/notes_engine.md)
            input_kind="rgb01",
            # uint8/uint16 RGB chunks are also accepted (scaled, clipped and rounded on the device)
            accepts_integer_rgb=True,
            device=str(self.device),
            precisions=PRECISION_NAMES,
        )

    @property
    def precision(self) -> str:
        """``"fp32"``, ``"fp16"`` or ``"bf16"``."""
        return precision_name(self.dtype)

    def _load(self, progress=None, cancel=None) -> None:
        from napari_vsr.models import load_realbasicvsr

        net = load_realbasicvsr(
            self._weights, device=self.device, dtype=self.dtype, progress=progress,
            cancel=cancel,
        )
        net.eval()
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        if self.device.type == "cpu" and self.dtype == torch.float32 and not self.compile:
            # conv + activation / residual add in one oneDNN call, upsampler in row bands:
            # same results to float32 rounding (benchmarks/notes_model.md)
            from napari_vsr.models.fused import fuse_convolutions

            self.fused = fuse_convolutions(net) > 0
        if self.compile:
            for module in (
                net.image_cleaning,
                net.basicvsr.backward_resblocks,
                net.basicvsr.forward_resblocks,
                net.basicvsr.spynet,
            ):
                module.compile()
        self._weights = net.weights_path or self._weights
        self._net = net
        log.info(
            "RealBasicVSR on %s, %s%s%s",
            self.device,
            self.precision,
            ", channels_last" if self.channels_last else "",
            ", fused convolutions" if self.fused else "",
        )

    def enhance(self, frames: np.ndarray, *, step: StepCallback | None = None) -> np.ndarray:
        """Super-resolve one chunk.

        Parameters
        ----------
        frames : ndarray, (T, H, W, 3)
            float32 RGB in [0, 1], or uint8/uint16 RGB (scaled by the dtype maximum).
        step : callable, optional
            ``step(None)`` after each time step of the backward propagation, ``step(i)`` once
            output frame ``i`` is upsampled (frames upsampled together in one batch are
            reported together); see :meth:`RealBasicVSRNet.forward`.

        Returns
        -------
        ndarray, (T, 4H, 4W, 3)
            float32 not clipped for float input; for uint8/uint16 input the same dtype,
            ``rint(clip(x, 0, 1) * max)`` computed on the device (what the engine does on the
            host for other enhancers).
        """
        top = None
        if frames.dtype in (np.uint8, np.uint16):
            top = float(np.iinfo(frames.dtype).max)
            frames = frames.astype(np.float32) / np.float32(top)
        x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
        with torch.inference_mode():
            # (1, T, 3, H, W) view of (T, H, W, 3) data: every frame is already channels-last
            lqs = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2)[None]
            if not self.channels_last:
                lqs = lqs.contiguous()
            lqs = lqs.to(self.dtype)
            # (T, 4H, 4W, 3) on the device
            out = self._net(lqs, step=_network_step(step))[0].permute(0, 2, 3, 1)
            if top is None:
                return out.to("cpu", torch.float32).numpy()
            out = out.float().clamp_(0.0, 1.0).mul_(top).round_()
            if top == 255.0:
                return out.to(torch.uint8).cpu().numpy()
            return out.to(torch.int32).cpu().numpy().astype(np.uint16)

    def estimate_memory(self, n_frames: int, height: int, width: int) -> int:
        """Rough device bytes for one chunk of ``n_frames`` frames of ``height`` x ``width``.

        Used by the engine to pick a tile size from the free device memory.
        """
        elt = torch.finfo(self.dtype).bits // 8
        px = max(height, 64) * max(width, 64)
        mid = 64
        per_frame = px * (elt * (3 * 2 + mid + 2 * 2 + 3 * 16) + 4 * 2 * 2)
        batch = min(n_frames * px, 1 << 18)
        transient = batch * elt * 16 * mid * 3 + px * elt * mid * 8
        return int(n_frames * per_frame + transient)

    def __repr__(self) -> str:
        return f"RealBasicVSREnhancer(device={str(self.device)!r}, precision={self.precision!r})"

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.name,
            "scale": self.scale,
            "device": str(self.device),
            "precision": self.precision,
            "channels_last": self.channels_last,
            "fused": self.fused,
            "weights": os.path.basename(self.weights_path) if self.weights_path else None,
            "weights_sha256": self.weights_sha256,
        }

    def close(self) -> None:
        """Give the device memory cached by the last chunk back (the weights, ~25 MB, stay)."""
        release_memory(self.device)


def _network_step(step: StepCallback | None) -> Callable[[str, int], None] | None:
    """The network's ``step(phase, i)`` in terms of the enhancer's ``step(i | None)``."""
    if step is None:
        return None

    def network_step(phase: str, i: int) -> None:
        step(i if phase == "output" else None)

    return network_step
