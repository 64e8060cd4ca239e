"""BasicVSR (Chan et al., CVPR 2021): bidirectional recurrent propagation aligned by SPyNet
flow, then fusion and x4 pixel-shuffle upsampling with a bilinear skip of the input."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from napari_vsr.models.blocks import (
    PixelShufflePack,
    ResidualBlocksWithInputConv,
    flow_warp,
    in_slices,
)
from napari_vsr.models.spynet import SPyNet

__all__ = ["BasicVSRNet", "MIN_SIZE", "NetworkStep"]

#: ``step(phase, i)``: ``("backward", i)`` / ``("forward", i)`` after time step ``i`` of the
#: backward / forward propagation, ``("output", i)`` once output frame ``i`` is written; may
#: raise (e.g. ``Cancelled``) to stop
NetworkStep = Callable[[str, int], None]

#: smallest frame side the propagation handles (SPyNet's coarsest level needs >= 2 px);
#: smaller frames are padded (edge replication) and the output cropped
MIN_SIZE = 64


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, negative_slope=0.1, inplace=True)


class BasicVSRNet(nn.Module):
    """The BasicVSR x4 backbone.

    Parameters
    ----------
    mid_channels : int
        Feature channels of the propagation branches.
    num_blocks : int
        Residual blocks in each propagation branch.

    Attributes
    ----------
    max_batch_pixels : int
        Memory bound, not a hyperparameter: SPyNet pairs and the upsampler are run on as many
        frames at once as fit in this many low-resolution pixels (at least one frame).
        The result does not depend on it.
    """

    def __init__(self, *, mid_channels: int = 64, num_blocks: int = 30):
        super().__init__()
        self.mid_channels = mid_channels
        self.max_batch_pixels = 1 << 18
        self.spynet = SPyNet()
        self.backward_resblocks = ResidualBlocksWithInputConv(
            mid_channels + 3, mid_channels, num_blocks=num_blocks
        )
        self.forward_resblocks = ResidualBlocksWithInputConv(
            mid_channels + 3, mid_channels, num_blocks=num_blocks
        )
        self.fusion = nn.Conv2d(mid_channels * 2, mid_channels, 1, 1, 0, bias=True)
        self.upsample1 = PixelShufflePack(mid_channels, mid_channels, scale=2, kernel_size=3)
        self.upsample2 = PixelShufflePack(mid_channels, 64, scale=2, kernel_size=3)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)
        #: optional fused CPU upsampler (see :func:`napari_vsr.models.fused.fuse_convolutions`)
        self._fused = None

    # -- optical flow ----------------------------------------------------------------------
    def compute_flows(self, lqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flows between neighbouring frames, all pairs in batched SPyNet calls.

        Parameters
        ----------
        lqs : Tensor, (N, T, 3, H, W), T >= 2
            Frames in [0, 1].

        Returns
        -------
        backward, forward : Tensor, (N, T-1, 2, H, W) each
            ``backward[:, i]`` warps frame i+1 onto frame i; ``forward[:, i]`` warps frame i
            onto frame i+1.  For a clip that is a mirror extension of itself (``x[T-1-i] ==
            x[i]``, decided per clip) the forward flows are its reversed backward ones and are
            not recomputed.
        """
        n, t, c, h, w = lqs.shape
        first = lqs[:, :-1].reshape(-1, c, h, w)
        second = lqs[:, 1:].reshape(-1, c, h, w)
        mirrored = [
            t % 2 == 0 and torch.equal(clip[: t // 2], clip[t // 2 :].flip(0)) for clip in lqs
        ]
        todo = [k for k in range(n) if not mirrored[k]]  # clips whose forward flows are needed
        if len(todo) == n:
            ref, supp = torch.cat([first, second]), torch.cat([second, first])
        elif not todo:
            ref, supp = first, second
        else:
            rest = lqs[todo]
            rest_first = rest[:, :-1].reshape(-1, c, h, w)
            rest_second = rest[:, 1:].reshape(-1, c, h, w)
            ref, supp = torch.cat([first, rest_second]), torch.cat([second, rest_first])
        pairs = torch.cat([ref, supp], dim=1)
        flows = in_slices(
            lambda p: self.spynet(p[:, :c], p[:, c:]), pairs, max_pixels=self.max_batch_pixels * 4
        )
        backward = flows[: n * (t - 1)].unflatten(0, (n, t - 1))
        if not todo:
            return backward, backward.flip(1)
        computed = flows[n * (t - 1) :].unflatten(0, (len(todo), t - 1))
        if len(todo) == n:
            return backward, computed
        it = iter(computed)
        forward = [backward[k].flip(0) if mirrored[k] else next(it) for k in range(n)]
        return backward, torch.stack(forward)

    # -- propagation -----------------------------------------------------------------------
    def _upsample(self, feats: torch.Tensor, lqs: torch.Tensor) -> torch.Tensor:
        """(B, 2*mid, H, W) fused features + (B, 3, H, W) frames -> (B, 3, 4H, 4W)."""
        if self._fused is not None and self._fused.accepts(feats):
            base = F.interpolate(lqs, scale_factor=4, mode="bilinear", align_corners=False)
            return self._fused(feats, base)
        out = _lrelu(self.fusion(feats))
        out = _lrelu(self.upsample1(out))
        out = _lrelu(self.upsample2(out))
        out = _lrelu(self.conv_hr(out))
        out = self.conv_last(out)
        base = F.interpolate(lqs, scale_factor=4, mode="bilinear", align_corners=False)
        return out + base

    def _upsample_in_slices(self, feats: torch.Tensor, lqs: torch.Tensor) -> torch.Tensor:
        """:meth:`_upsample` on at most ``max_batch_pixels`` input pixels per call (at least
        one frame): a group holds at least one frame of every clip of a batch, so this keeps
        the x4 working set bounded whatever the batch size."""
        b, _, h, w = feats.shape
        step = max(1, self.max_batch_pixels // (h * w))
        if step >= b:
            return self._upsample(feats, lqs)
        parts = [self._upsample(feats[i : i + step], lqs[i : i + step]) for i in range(0, b, step)]
        return torch.cat(parts)

    def forward(self, lqs: torch.Tensor, *, step: NetworkStep | None = None) -> torch.Tensor:
        """Super-resolve a clip x4.

        Parameters
        ----------
        lqs : Tensor, (N, T, 3, H, W)
            RGB frames in [0, 1], floating dtype: N independent clips of T frames.  Not
            modified.
        step : callable, optional
            ``step("backward", i)`` after each time step ``i`` of the backward propagation
            (T-1 down to 0), ``step("forward", i)`` after each step of the forward one (0 up
            to T-1), ``step("output", i)`` once output frame ``i`` is upsampled
            (0 up to T-1; frames upsampled in one batch, see ``max_batch_pixels``, are reported
            together after it).  One call covers all N clips (they advance together).  For
            progress and cancel: what it raises propagates.  The result does not depend on it.

        Returns
        -------
        Tensor, (N, T, 3, 4H, 4W)
            Not clipped; same device as the input.  Clip ``k`` of the output is what clip
            ``k`` gives alone (every operation is per clip; batch composition changes only
            the rounding of the kernels, not the arithmetic).
        """
        n, t, c, h, w = lqs.shape
        if h < MIN_SIZE or w < MIN_SIZE:
            ph, pw = max(MIN_SIZE - h, 0), max(MIN_SIZE - w, 0)
            padded = F.pad(lqs.reshape(n * t, c, h, w), (0, pw, 0, ph), mode="replicate")
            out = self.forward(padded.view(n, t, c, h + ph, w + pw), step=step)
            return out[..., : 4 * h, : 4 * w]

        if t > 1:
            flows_backward, flows_forward = self.compute_flows(lqs)

        # backward-time propagation: frame T-1 down to 0
        feats_backward: list[torch.Tensor | None] = [None] * t
        feat = lqs.new_zeros(n, self.mid_channels, h, w)
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                feat = flow_warp(feat, flows_backward[:, i].permute(0, 2, 3, 1))
            feat = self.backward_resblocks(torch.cat([lqs[:, i], feat], dim=1))
            feats_backward[i] = feat
            if step is not None:
                step("backward", i)

        # forward-time propagation; fusion and upsampling batched over groups of frames (of
        # all clips: max_batch_pixels bounds the pixels of one call whatever N is)
        group = max(1, self.max_batch_pixels // (n * h * w))
        out: torch.Tensor | None = None
        pending: list[torch.Tensor] = []
        feat = torch.zeros_like(feat)
        for i in range(t):
            if i > 0:
                feat = flow_warp(feat, flows_forward[:, i - 1].permute(0, 2, 3, 1))
            feat = self.forward_resblocks(torch.cat([lqs[:, i], feat], dim=1))
            pending.append(torch.cat([feats_backward[i], feat], dim=1))
            feats_backward[i] = None
            if step is not None:
                step("forward", i)
            if len(pending) == group or i == t - 1:
                start = i + 1 - len(pending)
                frames = lqs[:, start : i + 1].transpose(0, 1).reshape(-1, c, h, w)
                res = self._upsample_in_slices(torch.cat(pending), frames)
                pending.clear()
                if out is None:
                    out = res.new_empty(n, t, c, 4 * h, 4 * w)
                out[:, start : i + 1] = res.unflatten(0, (-1, n)).transpose(0, 1)
                if step is not None:
                    for k in range(start, i + 1):
                        step("output", k)
        return out
