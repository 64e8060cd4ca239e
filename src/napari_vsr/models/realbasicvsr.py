"""RealBasicVSR (Chan et al., CVPR 2022): an image-cleaning module run up to three times,
then BasicVSR x4.  Parameter names match the released mmedit generator."""

from __future__ import annotations

import logging

import torch
from torch import nn

from napari_vsr.errors import ParameterError, UnsupportedDtypeError
from napari_vsr.models.basicvsr import BasicVSRNet, NetworkStep
from napari_vsr.models.blocks import ResidualBlocksWithInputConv, in_slices

__all__ = ["RealBasicVSRNet", "MAX_CLEANING_PASSES"]

log = logging.getLogger(__name__)

#: the cleaning module runs at most this many times (fixed by the reference)
MAX_CLEANING_PASSES = 3


class RealBasicVSRNet(nn.Module):
    """Real-world video super-resolution x4.

    Parameters
    ----------
    mid_channels : int
        Feature channels of the cleaning and propagation branches (64 in the release).
    num_propagation_blocks : int
        Residual blocks in each BasicVSR propagation branch.
    num_cleaning_blocks : int
        Residual blocks in the cleaning module.
    dynamic_refine_thres : float
        Cleaning of a clip stops after the pass whose mean absolute residue, over the whole
        clip, is below ``dynamic_refine_thres / 255`` (255, the released value, means one
        pass in practice); at most :data:`MAX_CLEANING_PASSES` passes.  Decided per clip in a
        batch: each clip runs the passes it would run alone.

    Attributes
    ----------
    weights_path : str or None
        The checkpoint the weights came from (set by :func:`load_realbasicvsr`).
    weights_sha256 : str or None
        SHA-256 of that file.
    last_cleaning_passes : int
        How many cleaning passes the last forward call ran (diagnostics): the largest count
        over the clips of the batch, so for one clip the reference's count.
    last_cleaning_passes_per_clip : tuple of int
        The count of every clip of the last forward call, in batch order.
    max_batch_pixels : int
        Memory bound shared with the backbone: frames are cleaned, paired for flow and
        upsampled in batches of about this many low-resolution pixels.  Results do not depend
        on it.
    """

    def __init__(
        self,
        *,
        mid_channels: int = 64,
        num_propagation_blocks: int = 20,
        num_cleaning_blocks: int = 20,
        dynamic_refine_thres: float = 255,
    ):
        super().__init__()
        self.mid_channels = mid_channels
        self.num_propagation_blocks = num_propagation_blocks
        self.num_cleaning_blocks = num_cleaning_blocks
        self.dynamic_refine_thres = float(dynamic_refine_thres)
        self.weights_path: str | None = None
        self.weights_sha256: str | None = None
        self.last_cleaning_passes = 0
        self.last_cleaning_passes_per_clip: tuple[int, ...] = ()
        self.image_cleaning = nn.Sequential(
            ResidualBlocksWithInputConv(3, mid_channels, num_blocks=num_cleaning_blocks),
            nn.Conv2d(mid_channels, 3, 3, 1, 1, bias=True),
        )
        self.basicvsr = BasicVSRNet(mid_channels=mid_channels, num_blocks=num_propagation_blocks)

    @property
    def max_batch_pixels(self) -> int:
        return self.basicvsr.max_batch_pixels

    @max_batch_pixels.setter
    def max_batch_pixels(self, value: int) -> None:
        self.basicvsr.max_batch_pixels = max(1, int(value))

    def extra_repr(self) -> str:
        return (
            f"mid_channels={self.mid_channels}, "
            f"num_propagation_blocks={self.num_propagation_blocks}, "
            f"num_cleaning_blocks={self.num_cleaning_blocks}, "
            f"dynamic_refine_thres={self.dynamic_refine_thres:g}"
        )

    def clean(self, lqs: torch.Tensor) -> torch.Tensor:
        """Run the cleaning module with the dynamic stop rule, decided per clip.

        Each clip ``k`` of the batch runs passes until the mean absolute residue of its own
        pass (over its T frames) is below the threshold, or :data:`MAX_CLEANING_PASSES`
        passes ran; a clip that stopped takes no further passes, so its result is the one it
        gets alone.  While every clip is still running they share one batched call.

        Parameters
        ----------
        lqs : Tensor, (N, T, 3, H, W)
            Frames in [0, 1].  Not modified.

        Returns
        -------
        Tensor, (N, T, 3, H, W)
            The cleaned frames (not clipped).
        """
        n, t, c, h, w = lqs.shape
        x = lqs.reshape(n * t, c, h, w)
        thres = self.dynamic_refine_thres / 255.0
        budget = self.max_batch_pixels * 8
        passes = [0] * n
        levels = [float("nan")] * n
        active = list(range(n))
        while active:
            if len(active) == n:
                xa = x
            else:  # the clips still running, gathered (a copy)
                xa = x.unflatten(0, (n, t))[active].flatten(0, 1)
            residues = in_slices(self.image_cleaning, xa, max_pixels=budget)
            xa = xa + residues
            level = _mean_abs_per_clip(residues, len(active)).cpu()  # one device sync
            stop = (level < thres).tolist()
            if len(active) == n:
                x = xa  # a new tensor: the caller's lqs is never written
            else:
                x.unflatten(0, (n, t))[active] = xa.unflatten(0, (len(active), t))
            running = []
            for k, value, done in zip(active, level.tolist(), stop, strict=True):
                passes[k] += 1
                levels[k] = value
                if not done and passes[k] < MAX_CLEANING_PASSES:
                    running.append(k)
            active = running
        self.last_cleaning_passes_per_clip = tuple(passes)
        self.last_cleaning_passes = max(passes, default=0)
        log.debug(
            "cleaning stopped after %s pass(es), mean residue %s",
            passes,
            ", ".join(f"{v:.5f}" for v in levels),
        )
        return x.view(n, t, c, h, w)

    def forward(self, lqs: torch.Tensor, *, step: NetworkStep | None = None) -> torch.Tensor:
        """Clean and super-resolve a clip x4.

        Parameters
        ----------
        lqs : Tensor, (N, T, 3, H, W)
            RGB frames in [0, 1] on the network's device.  Outside autocast the input is
            cast to the network's dtype.  Any H, W >= 1 (sides under 64 px are padded by edge
            replication and the output cropped).  Never modified.
        step : callable, optional
            Per-time-step callback of the propagation, ``step(phase, i)``; see
            :meth:`BasicVSRNet.forward`.  What it raises (``Cancelled``) propagates.

        Returns
        -------
        Tensor, (N, T, 3, 4H, 4W)
            In the network's dtype (float32 under autocast), not clipped to [0, 1].

        Raises
        ------
        ParameterError
            Not a (N, T, 3, H, W) tensor (also a ``ValueError``).
        UnsupportedDtypeError
            Integer frames (also a ``TypeError``).
        """
        if lqs.ndim != 5 or lqs.shape[2] != 3:
            raise ParameterError(
                f"RealBasicVSRNet expects (N, T, 3, H, W) RGB frames, got shape {tuple(lqs.shape)}"
            )
        if not lqs.is_floating_point():
            raise UnsupportedDtypeError(
                f"RealBasicVSRNet expects float frames in [0, 1], got {lqs.dtype}"
            )
        dtype = self.basicvsr.conv_last.weight.dtype
        if lqs.dtype != dtype and not torch.is_autocast_enabled(lqs.device.type):
            lqs = lqs.to(dtype)
        return self.basicvsr(self.clean(lqs), step=step)


def _mean_abs_per_clip(residues: torch.Tensor, n: int) -> torch.Tensor:
    """Mean absolute value of each clip: (n * T, C, H, W) -> (n,) float32, same device.

    Each clip's mean is the very reduction its residues would get alone (same shape and
    strides), so a clip's stop decision does not depend on the rest of the batch.
    """
    if n == 1:
        return torch.mean(residues.abs(), dtype=torch.float32).reshape(1)
    clips = residues.unflatten(0, (n, -1))
    return torch.stack([torch.mean(clip.abs(), dtype=torch.float32) for clip in clips])
