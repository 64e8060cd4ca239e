"""SPyNet: coarse-to-fine optical flow (Ranjan and Black, 2017) as used by BasicVSR."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_vsr.models.blocks import flow_warp

__all__ = ["SPyNet"]

_LEVELS = 6


class _ConvModule(nn.Module):
    """A 7x7 convolution, optionally followed by ReLU (named ``conv`` as in the reference)."""

    def __init__(self, in_channels: int, out_channels: int, *, relu: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 7, 1, 3, bias=True)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return F.relu(x, inplace=True) if self.relu else x


class _SPyNetLevel(nn.Module):
    """One pyramid level: (ref, warped supp, flow) with 8 channels -> flow residue, 2 channels."""

    def __init__(self):
        super().__init__()
        chans = (8, 32, 64, 32, 16, 2)
        self.basic_module = nn.Sequential(
            *(
                _ConvModule(chans[i], chans[i + 1], relu=i < len(chans) - 2)
                for i in range(len(chans) - 1)
            )
        )
        #: optional fused CPU path (see :func:`napari_vsr.models.fused.fuse_convolutions`)
        self._fused = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.basic_module(x)


class SPyNet(nn.Module):
    """Optical flow from ``supp`` towards ``ref`` on a 6-level image pyramid.

    Frames are normalised with the ImageNet mean/std, resized (bilinear,
    ``align_corners=False``) to a multiple of 32, and the flow is resized back and rescaled.
    """

    def __init__(self):
        super().__init__()
        self.basic_module = nn.ModuleList(_SPyNetLevel() for _ in range(_LEVELS))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _pyramid_flow(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        """Flow for frames whose sides are multiples of 32: (B, 3, H, W) x2 -> (B, 2, H, W)."""
        refs = [(ref - self.mean) / self.std]
        supps = [(supp - self.mean) / self.std]
        for _ in range(_LEVELS - 1):
            refs.append(F.avg_pool2d(refs[-1], kernel_size=2, stride=2, count_include_pad=False))
            supps.append(F.avg_pool2d(supps[-1], kernel_size=2, stride=2, count_include_pad=False))
        refs.reverse()
        supps.reverse()

        b, _, h0, w0 = refs[0].shape
        flow = refs[0].new_zeros(b, 2, h0, w0)
        for level, module in enumerate(self.basic_module):
            if level == 0:
                flow_up = flow
            else:
                flow_up = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True)
                flow_up = flow_up * 2.0
            warped = flow_warp(supps[level], flow_up.permute(0, 2, 3, 1), padding_mode="border")
            x = torch.cat([refs[level], warped, flow_up], dim=1)
            if module._fused is not None and module._fused.accepts(x):
                flow = module._fused(x, flow_up)  # flow_up + module(x), fused
            else:
                flow = flow_up + module(x)
        return flow

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        """Flow that warps ``supp`` onto ``ref``.

        Parameters
        ----------
        ref, supp : Tensor, (B, 3, H, W)
            RGB frames in [0, 1], any floating dtype, same device.

        Returns
        -------
        Tensor, (B, 2, H, W)
            (dx, dy) in pixels of the input size, same dtype as ``ref``.
        """
        h, w = ref.shape[-2:]
        h_up = -(-h // 32) * 32
        w_up = -(-w // 32) * 32
        if (h_up, w_up) != (h, w):
            ref = F.interpolate(ref, size=(h_up, w_up), mode="bilinear", align_corners=False)
            supp = F.interpolate(supp, size=(h_up, w_up), mode="bilinear", align_corners=False)
        flow = self._pyramid_flow(ref, supp)
        if (h_up, w_up) != (h, w):
            flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
            scale = flow.new_tensor([w / w_up, h / h_up]).view(1, 2, 1, 1)
            flow = flow * scale
        return flow
