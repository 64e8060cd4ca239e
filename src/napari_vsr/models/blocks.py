"""Building blocks shared by the RealBasicVSR network: residual stacks, pixel-shuffle
upsampling and optical-flow warping.

Attribute names follow the reference implementation (mmedit 0.16.1) so that official
checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PixelShufflePack",
    "ResidualBlockNoBN",
    "ResidualBlocksWithInputConv",
    "flow_warp",
    "in_slices",
]


class ResidualBlockNoBN(nn.Module):
    """``x + conv2(relu(conv1(x)))`` with 3x3 convolutions and no normalisation.

    Parameters
    ----------
    mid_channels : int
        Channels in and out.
    """

    def __init__(self, *, mid_channels: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), same dtype and device."""
        out = F.relu(self.conv1(x), inplace=True)
        return x + self.conv2(out)


class ResidualBlocksWithInputConv(nn.Module):
    """An input 3x3 convolution + leaky ReLU (slope 0.1), then ``num_blocks`` residual blocks.

    The layers live in ``self.main`` (``main.0`` the input conv, ``main.2.<i>`` the blocks) as in
    the reference, so parameter names match the released checkpoints.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of every later feature map.
    num_blocks : int
        Number of :class:`ResidualBlockNoBN`.
    """

    def __init__(self, in_channels: int, out_channels: int, *, num_blocks: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=True),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Sequential(
                *(ResidualBlockNoBN(mid_channels=out_channels) for _ in range(num_blocks))
            ),
        )
        #: optional fused CPU path (see :func:`napari_vsr.models.fused.fuse_convolutions`)
        self._fused = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H, W)."""
        if self._fused is not None and self._fused.accepts(x):
            return self._fused(x)
        return self.main(x)


class PixelShufflePack(nn.Module):
    """A convolution to ``out_channels * scale**2`` channels followed by a pixel shuffle.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels before and after the upsampling.
    scale : int
        Spatial upsampling factor.
    kernel_size : int
        Kernel of the convolution (odd; padded to keep the size).
    """

    def __init__(self, in_channels: int, out_channels: int, *, scale: int, kernel_size: int = 3):
        super().__init__()
        self.scale = scale
        self.upsample_conv = nn.Conv2d(
            in_channels, out_channels * scale * scale, kernel_size, 1, (kernel_size - 1) // 2
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, scale*H, scale*W)."""
        return F.pixel_shuffle(self.upsample_conv(x), self.scale)


def _pixel_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(1, H, W, 2) float32 pixel coordinates (x, y)."""
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=device),
        torch.arange(w, dtype=torch.float32, device=device),
        indexing="ij",
    )
    return torch.stack((xs, ys), dim=-1).unsqueeze(0)


def flow_warp(x: torch.Tensor, flow: torch.Tensor, *, padding_mode: str = "zeros") -> torch.Tensor:
    """Sample ``x`` at every pixel displaced by ``flow`` (bilinear, ``align_corners=True``).

    Sampling positions are formed in float32 whatever the dtype of ``x``: pixel coordinates
    of a 640 px frame are not representable to sub-pixel precision in float16.

    Parameters
    ----------
    x : Tensor, (B, C, H, W)
        Image or feature map, any floating dtype.
    flow : Tensor, (B, H, W, 2)
        Displacement in pixels, (dx, dy), any floating dtype.
    padding_mode : {"zeros", "border", "reflection"}
        What is read outside the frame.

    Returns
    -------
    Tensor, (B, C, H, W)
        Same dtype and device as ``x``.
    """
    h, w = x.shape[-2:]
    if flow.shape[1:3] != (h, w):
        raise ValueError(
            f"flow_warp: flow is {tuple(flow.shape[1:3])} but the feature map is {(h, w)}"
        )
    pos = _pixel_grid(h, w, x.device) + flow.float()
    scale = pos.new_tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
    grid = pos * scale - 1.0
    src = x if x.dtype in (torch.float32, torch.float64) else x.float()
    out = F.grid_sample(
        src, grid.to(src.dtype), mode="bilinear", padding_mode=padding_mode, align_corners=True
    )
    return out.to(x.dtype)


def in_slices(fn, x: torch.Tensor, *, max_pixels: int) -> torch.Tensor:
    """Apply a per-sample function ``fn`` to ``x`` in batch slices of at most ``max_pixels``.

    ``fn`` must treat samples independently (convolutions, no batch statistics), so the result
    equals ``fn(x)``; slicing bounds peak memory for long clips.

    Parameters
    ----------
    fn : callable
        Maps (b, ...) tensors to (b, ...) tensors.
    x : Tensor, (B, C, H, W)
    max_pixels : int
        Upper bound on ``b * H * W`` per call (at least one sample is always taken).

    Returns
    -------
    Tensor, (B, ...)
    """
    b, _, h, w = x.shape
    step = max(1, max_pixels // max(h * w, 1))
    if step >= b:
        return fn(x)
    return torch.cat([fn(x[i : i + step]) for i in range(0, b, step)], dim=0)
