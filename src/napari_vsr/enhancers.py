"""Concrete enhancers for the engine: the RealBasicVSR adapter and the factory for all methods.

:func:`make_enhancer` is what the CLI and the widgets call; it turns a method name and the
user's options into an :class:`~napari_vsr.enhancer.Enhancer`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch

from napari_vsr.device import choose_device, choose_dtype, precision_name, release_memory
from napari_vsr.enhancer import Enhancer
from napari_vsr.errors import ParameterError
from napari_vsr.jobs.progress import CancelToken, ProgressCallback

log = logging.getLogger(__name__)

METHODS = ("realbasicvsr", "classic")


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
    scale = 4
    context = 0
    default_chunk = 20
    default_overlap = 4
    input_kind = "rgb01"
    tileable = True
    #: tile overlap in input pixels (see benchmarks/notes_engine.md)
    default_tile_overlap = 16
    #: uint8/uint16 RGB chunks are also accepted (scaled, clipped and rounded on the device)
    accepts_integer_rgb = True

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

    def enhance(self, frames: np.ndarray) -> np.ndarray:
        """Super-resolve one chunk.

        Parameters
        ----------
        frames : ndarray, (T, H, W, 3)
            float32 RGB in [0, 1], or uint8/uint16 RGB (scaled by the dtype maximum).

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
            out = self._net(lqs)[0].permute(0, 2, 3, 1)  # (T, 4H, 4W, 3) on the device
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


def make_enhancer(
    method: str,
    *,
    preset: str | None = None,
    recipe: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    precision: str = "auto",
    channels_last: bool = True,
    compile: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    frame_size: tuple[int, int] | None = None,
) -> Enhancer:
    """Build the enhancer for a method.

    Parameters
    ----------
    method : {"realbasicvsr", "classic"}
    preset : str, optional
        Classic only: a named pipeline (default "seed" when neither preset nor recipe is given).
    recipe : path-like, optional
        Classic only: a pipeline saved as JSON or YAML.
    weights, device, precision, channels_last, compile, progress, cancel
        RealBasicVSR only; see :class:`RealBasicVSREnhancer`.
    frame_size : (int, int), optional
        Classic only: the input ``(height, width)``; a recipe whose frames would grow past
        the limits of :meth:`~napari_vsr.classic.Pipeline.check_size` is refused here, before
        any work (the enhancer checks again on its first chunk in any case).

    Returns
    -------
    Enhancer

    Raises
    ------
    ParameterError
        Unknown method, or options that belong to the other method.
    """
    key = (method or "").strip().lower()
    if key == "realbasicvsr":
        if preset is not None or recipe is not None:
            raise ParameterError("--preset/--recipe belong to --method classic, not realbasicvsr")
        return RealBasicVSREnhancer(
            weights,
            device=device,
            precision=precision,
            channels_last=channels_last,
            compile=compile,
            progress=progress,
            cancel=cancel,
        )
    if key == "classic":
        if weights is not None:
            raise ParameterError("--weights belongs to --method realbasicvsr, not classic")
        if preset is not None and recipe is not None:
            raise ParameterError("give either --preset or --recipe, not both")
        from napari_vsr.classic import ClassicEnhancer, Pipeline, get_preset

        pipeline = (
            Pipeline.from_file(recipe) if recipe is not None else get_preset(preset or "seed")
        )
        enhancer = ClassicEnhancer(pipeline)
        if frame_size is not None:
            enhancer.check_frame_size(*frame_size)
        return enhancer
    raise ParameterError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
