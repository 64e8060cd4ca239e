"""RealBasicVSR x4 as an :class:`~napari_vsr.enhancers.base.Enhancer` (imports PyTorch)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from napari_vsr.enhancers.base import Capabilities, Enhancer, StepCallback
from napari_vsr.errors import ParameterError, UnsupportedDtypeError
from napari_vsr.jobs.progress import CancelToken, ProgressCallback
from napari_vsr.models.device import (
    PRECISION_NAMES,
    choose_device,
    choose_dtype,
    precision_name,
    release_memory,
)

log = logging.getLogger(__name__)

#: chunks one :meth:`RealBasicVSREnhancer.enhance_batch` call may run together (on every
#: device; the engine picks 1 on the CPU, where batching does not pay)
MAX_BATCH = 8
#: context frames on each side of a chunk (the recurrence needs neighbours to restore a frame)
DEFAULT_OVERLAP = 4


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
    ``enhance`` takes (T, H, W, 3) float32 RGB in [0, 1] (or uint8/uint16 RGB) on the host
    and returns (T, 4H, 4W, 3) float32, not clipped (or the integer dtype), on the host.  The whole chunk is one clip for the
    network (both recurrent directions run over it).  The network is loaded at construction, so
    weight errors surface before any output is created; :meth:`close` frees the device memory
    cached by the last chunk.

    On the CPU in float32 (and without ``compile``) the network runs its fused oneDNN path
    (:func:`napari_vsr.models.fused.fuse_convolutions`: conv + activation / residual add in one
    call, in-place residual stacks, upsampler in row bands); the ``fused`` attribute says
    whether it is on.  Same results to float32 rounding, faster and with far less memory.

    Batches (:meth:`enhance_batch`, ``capabilities.max_batch`` = :data:`MAX_BATCH` on every
    device) run up to 8 equal-shaped chunks as one (N, T, ...) network call; each chunk's
    result is what :meth:`enhance` gives it alone (the network decides everything per clip).
    On the CPU a batch brings little (oneDNN already spreads one chunk over every core) for
    N times the memory, so the engine's automatic choice there is 1; an explicit batch works
    and gives the same frames.  :meth:`estimate_memory` takes the batch size (``batch=``).

    On CUDA devices:

    - ``torch.backends.cudnn.benchmark`` is switched on when the enhancer is made
      (process-wide, not restored): chunk shapes are fixed within a run, so cuDNN times its
      algorithms once per shape (the first chunk of each new shape, e.g. a shorter last
      chunk or an edge tile, is slower) and keeps the fastest; with ``precision="fp32"``
      TF32 convolutions and matrix products are switched off (process-wide too), so fp32 is
      float32 arithmetic;
    - frames travel through page-locked buffers (:class:`~napari_vsr.models.transfer.CudaTransfer`):
      the input is stacked into a reused pinned buffer and copied on a side stream, the
      output comes back into pinned memory and the arrays returned are views of it (held by
      the arrays; the memory is reused once they are gone).  ``pinned_transfers = False``
      switches to plain pageable copies (same results);
    - CUDA graphs are not used: the cleaning stop rule needs the residue level on the host
      after every pass, the chunk length and the batch vary, and the propagation is a Python
      loop over time; ``compile`` remains the kernel-fusion option.
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
        #: CUDA only: frames cross the bus through pinned buffers (False: pageable copies)
        self.pinned_transfers = self.device.type == "cuda"
        self._transfer = None
        if self.device.type == "cuda":
            # fixed shapes per run: let cuDNN pick the fastest algorithm per shape once
            torch.backends.cudnn.benchmark = True
            if self.dtype == torch.float32:
                # "fp32" means float32 arithmetic (the reference's), not TF32's 10-bit
                # mantissa that PyTorch allows for convolutions by default
                torch.backends.cudnn.allow_tf32 = False
                torch.backends.cuda.matmul.allow_tf32 = False
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
            default_overlap=DEFAULT_OVERLAP,
            tile_overlap=16,  # input pixels (see benchmarks/notes_engine.md)
            input_kind="rgb01",
            # uint8/uint16 RGB chunks are also accepted (scaled, clipped and rounded on the device)
            accepts_integer_rgb=True,
            device=str(self.device),
            precisions=PRECISION_NAMES,
            max_batch=MAX_BATCH,
        )

    @property
    def precision(self) -> str:
        """``"fp32"``, ``"fp16"`` or ``"bf16"``."""
        return precision_name(self.dtype)

    def _load(self, progress=None, cancel=None) -> None:
        from napari_vsr.models import load_realbasicvsr

        net = load_realbasicvsr(
            self._weights,
            device=self.device,
            dtype=self.dtype,
            progress=progress,
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
            host for other enhancers).  On CUDA a view of page-locked memory (see the class
            notes); on the CPU possibly a strided view of the network's output.
        """
        return self.enhance_batch([frames], steps=[step])[0]

    def enhance_batch(
        self,
        batch: Sequence[np.ndarray],
        *,
        steps: Sequence[StepCallback | None] | None = None,
    ) -> list[np.ndarray]:
        """Super-resolve several independent chunks in one network call.

        Parameters
        ----------
        batch : sequence of ndarray, each (T, H, W, 3)
            Same shape and dtype (float32 RGB in [0, 1], uint8 or uint16 RGB; other float
            dtypes are converted to float32 first); any number, though the engine passes at
            most ``capabilities.max_batch``.  Never modified.
        steps : sequence of callables, optional
            ``steps[k]`` is chunk ``k``'s ``step`` (see :meth:`enhance`).  The chunks advance
            together, so each network time step calls every chunk's ``step`` (in batch order);
            what one raises (``Cancelled``) stops the whole batch.

        Returns
        -------
        list of ndarray, each (T, 4H, 4W, 3)
            Item ``k`` is ``enhance(batch[k])``: equal on the CPU up to the rounding of kernels
            run on a different batch size (bit-identical on the fused float32 path in our
            tests), within 1e-3 in float32 on CUDA (cuDNN may pick other algorithms for
            another batch size).

        Raises
        ------
        ParameterError
            Chunks of different shapes or dtypes, or not (T, H, W, 3) (also a ``ValueError``).
        UnsupportedDtypeError
            Neither floating point nor uint8/uint16 (also a ``TypeError``).
        """
        batch = list(batch)
        steps = list(steps) if steps is not None else [None] * len(batch)
        if len(steps) != len(batch):
            raise ParameterError(f"steps: expected {len(batch)} callbacks, got {len(steps)}")
        if not batch:
            return []
        _check_batch(batch)
        if batch[0].dtype.kind == "f" and batch[0].dtype != np.float32:
            batch = [np.asarray(a, dtype=np.float32) for a in batch]
        top = None
        if batch[0].dtype in (np.uint8, np.uint16):
            top = float(np.iinfo(batch[0].dtype).max)
        with torch.inference_mode():
            if self.pinned_transfers and self.device.type == "cuda":
                return self._run_pinned(batch, steps, top)
            return self._run_plain(batch, steps, top)

    def _run_plain(self, batch: list[np.ndarray], steps, top: float | None) -> list[np.ndarray]:
        """Host arrays converted on the host and copied with ``.to`` (the CPU path)."""
        frames = batch[0] if len(batch) == 1 else np.stack(batch)
        if top is not None:
            frames = frames.astype(np.float32) / np.float32(top)
        x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
        if len(batch) == 1:
            x = x[None]
        # (N, T, 3, H, W) view of (N, T, H, W, 3) data: every frame is already channels-last
        lqs = self._prepare(x.to(self.device, non_blocking=True))
        # (N, T, 4H, 4W, 3) on the device
        out = self._net(lqs, step=_network_step(steps)).permute(0, 1, 3, 4, 2)
        if top is None:
            return list(out.to("cpu", torch.float32).numpy())
        out = out.float().clamp_(0.0, 1.0).mul_(top).round_()
        if top == 255.0:
            return list(out.to(torch.uint8).cpu().numpy())
        return list(out.to(torch.int32).cpu().numpy().astype(np.uint16))

    def _run_pinned(self, batch: list[np.ndarray], steps, top: float | None) -> list[np.ndarray]:
        """CUDA: pinned staging, side-stream upload, integer scaling and rounding on the device."""
        from napari_vsr.models.transfer import CudaTransfer

        if self._transfer is None:
            self._transfer = CudaTransfer(self.device)
        x = self._transfer.upload(batch)  # (N, T, H, W, 3): uint8, int16 bits, or float32
        if top == 65535.0:
            x = x.to(torch.int32).bitwise_and_(0xFFFF)
        if top is not None:
            # a true float32 division, as on the host (CUDA turns the division by a Python
            # scalar into a multiplication by its reciprocal, one ulp off at times)
            x = x.to(torch.float32).div_(torch.full((), top, device=x.device))
        lqs = self._prepare(x)
        out = self._net(lqs, step=_network_step(steps)).permute(0, 1, 3, 4, 2)
        dense = torch.contiguous_format  # (N, T, 4H, 4W, 3) in memory, ready to copy
        if top is None:
            host = self._transfer.download(out.to(torch.float32, memory_format=dense))
        else:
            out = out.float().clamp_(0.0, 1.0).mul_(top).round_()
            if top == 255.0:
                host = self._transfer.download(out.to(torch.uint8, memory_format=dense))
            else:  # uint16 as int16 bits (torch < 2.3 has no uint16): v - 65536 when v >= 2**15
                out = torch.where(out >= 32768.0, out - 65536.0, out)
                host = self._transfer.download(out.to(torch.int16, memory_format=dense))
        arrays = host.numpy()
        if top == 65535.0:
            arrays = arrays.view(np.uint16)
        return list(arrays)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, H, W, 3) float32 on the device -> the network input (N, T, 3, H, W)."""
        lqs = x.permute(0, 1, 4, 2, 3)
        if not self.channels_last:
            lqs = lqs.contiguous()
        return lqs.to(self.dtype)

    def estimate_memory(self, n_frames: int, height: int, width: int, *, batch: int = 1) -> int:
        """Rough device bytes for one call on ``batch`` chunks of ``n_frames`` frames of
        ``height`` x ``width`` (host bytes on the CPU).

        Used by the engine to pick a tile size (and a batch size) from the free memory.
        ``estimate_memory(n, h, w, batch=b) <= b * estimate_memory(n, h, w)``: the per-call
        working sets (cleaning and flow slices, the upsampler) are bounded by
        ``max_batch_pixels`` and do not grow with the batch, so multiplying the one-chunk
        figure by the batch size is a safe upper bound for callers that do not pass ``batch``.
        """
        elt = torch.finfo(self.dtype).bits // 8
        px = max(height, 64) * max(width, 64)
        mid = self._net.mid_channels
        limit = self._net.max_batch_pixels
        batch = max(1, int(batch))
        frames = batch * n_frames
        # held through the call, per input pixel of every frame: the float32 input, the
        # network input and the cleaned frames, backward features, flows both ways, the x4
        # output in the network dtype and its conversion for the host (float32 or integer)
        held = 4 * 3 + elt * (3 + 3 + mid + 2 * 2 + 3 * 16) + (3 * 16 if elt == 4 else 4 * 3 * 16)
        # per call: cleaning slices (~4 maps of ``mid``, 2 in place on the fused CPU path),
        # SPyNet slices (~128 channels), one propagation step of every clip (~6 maps and a
        # float32 sampling grid) and one upsampler call (up to ``max_batch_pixels``, at least
        # one frame: ~3 * 16 * mid values per input pixel; row bands on the fused CPU path)
        cleaning = min(8 * limit, frames * px) * elt * mid * (2 if self.fused else 4)
        flows = min(4 * limit, 2 * frames * px) * elt * 128
        step = batch * px * (elt * mid * 6 + 4 * 2 * 2)
        if self.fused:
            from napari_vsr.models.fused import FusedUpsampler

            upsample = 3 * FusedUpsampler.band_bytes
        else:
            upsample = max(min(limit, frames * px), px) * elt * 16 * mid * 3
        return int(frames * px * held + max(cleaning, flows, step + upsample))

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
        """Give the device memory cached by the last chunk back (the weights, ~25 MB, stay),
        and the pinned input buffer on CUDA."""
        if self._transfer is not None:
            self._transfer.close()
        release_memory(self.device)


def _check_batch(batch: list[np.ndarray]) -> None:
    """Raise unless every chunk is (T, H, W, 3) of one shape and one accepted dtype."""
    first = batch[0]
    if first.dtype.kind != "f" and first.dtype not in (np.uint8, np.uint16):
        raise UnsupportedDtypeError(
            f"RealBasicVSR expects float32 RGB in [0, 1] or uint8/uint16 RGB frames, "
            f"got {first.dtype}"
        )
    if first.ndim != 4 or first.shape[-1] != 3:
        raise ParameterError(
            f"RealBasicVSR expects (T, H, W, 3) RGB chunks, got shape {first.shape}"
        )
    for k, a in enumerate(batch[1:], start=1):
        if a.shape != first.shape or a.dtype != first.dtype:
            raise ParameterError(
                "enhance_batch: every chunk must have the shape and dtype of the first, "
                f"{first.shape} {first.dtype}; chunk {k} is {a.shape} {a.dtype}"
            )


def _network_step(steps: Sequence[StepCallback | None]) -> Callable[[str, int], None] | None:
    """The network's ``step(phase, i)`` in terms of the chunks' ``step(i | None)``: every
    network time step is one step of every chunk of the batch."""
    live = [s for s in steps if s is not None]
    if not live:
        return None

    def network_step(phase: str, i: int) -> None:
        arg = i if phase == "output" else None
        for step in live:
            step(arg)

    return network_step
