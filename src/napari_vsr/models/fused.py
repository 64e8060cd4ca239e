"""Fused oneDNN convolutions for float32 inference on the CPU.

On the CPU RealBasicVSR spends most of its time in oneDNN 3x3 convolutions that already run
close to the machine's peak; the rest is memory-bound glue around them: a separate pass over
every feature map for each ReLU / leaky ReLU and residual add, and a weight reorder on every
call.  :func:`fuse_convolutions` removes that glue for the layers that dominate the run time
(the cleaning and both propagation residual stacks, the SPyNet levels and the x4 upsampler):
each convolution is replaced, at call time, by one oneDNN primitive with the activation or the
residual add applied as a post-op, with weights reordered once into oneDNN's blocked layout.

The modules keep their parameters (state dicts are untouched); the fused path is a plain
attribute (``module._fused``) consulted by the module's ``forward`` and used only when it
still applies: no autograd, float32 CPU input, and weights that have not been replaced or
modified in place since fusing (``load_state_dict`` or ``.to(...)`` after fusing fall back to
the eager layers).  Results match the eager layers to float32 rounding (max abs difference
~1e-6 on the golden clip).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["fuse_convolutions", "fusion_available", "unfuse_convolutions"]

log = logging.getLogger(__name__)

_POINTWISE = getattr(torch.ops.mkldnn, "_convolution_pointwise", None)
_ACCUMULATE = getattr(torch.ops.mkldnn, "_convolution_pointwise_", None)


def fusion_available() -> bool:
    """True when this PyTorch build has oneDNN's fused convolution operators."""
    return (
        _POINTWISE is not None and _ACCUMULATE is not None and torch.backends.mkldnn.is_available()
    )


class FusedConv:
    """One ``nn.Conv2d`` followed by an activation, or by an addition, in one oneDNN call.

    Parameters
    ----------
    conv : nn.Conv2d
        A float32 CPU convolution with a bias; its weights are copied (reordered) once.
    activation : {"none", "relu", "leaky_relu"}
        Post-op applied to the convolution output.
    negative_slope : float
        Slope of the leaky ReLU.
    """

    def __init__(self, conv: nn.Conv2d, *, activation: str = "none", negative_slope: float = 0.0):
        if conv.bias is None or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"FusedConv: unsupported convolution {conv}")
        self.conv = conv
        self._param = conv.weight
        self._version = conv.weight._version
        self._ptr = conv.weight.data_ptr()
        self.args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        self.activation = activation
        self.scalars = [negative_slope] if activation == "leaky_relu" else []
        weight = conv.weight.detach().contiguous(memory_format=torch.channels_last)
        try:  # oneDNN's blocked layout, reordered once (not on every call)
            nominal = [1, conv.in_channels, 64, 64]
            weight = torch._C._nn.mkldnn_reorder_conv2d_weight(
                weight.to_mkldnn(), *self.args[:3], conv.groups, nominal
            )
        except (RuntimeError, AttributeError) as exc:
            log.debug("weight prepacking unavailable (%s); using plain weights", exc)
        self.weight = weight
        self.bias = conv.bias.detach().clone()

    def fresh(self) -> bool:
        """Whether the convolution still has the weights this object was built from."""
        w = self.conv.weight
        return w is self._param and w._version == self._version and w.data_ptr() == self._ptr

    def __call__(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C_in, H, W) float32 CPU -> (B, C_out, H', W'), the memory format of ``x``.

        With ``add`` (same shape as the output) the result is ``conv(x) + add`` and the
        activation is not applied.
        """
        if add is None:
            return _POINTWISE(
                x, self.weight, self.bias, *self.args, self.activation, self.scalars, None
            )
        fmt = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
        other = add.contiguous(memory_format=fmt)
        return _POINTWISE.binary(
            x, other, self.weight, self.bias, *self.args, "add", 1.0, None, [], None
        )

    def accumulate(self, x: torch.Tensor, out: torch.Tensor, *, relu: bool = False) -> torch.Tensor:
        """``out += conv(x)`` in place (then ``relu`` in place if asked); returns ``out``.

        ``out`` must be a contiguous tensor of the output's shape in the memory format of
        ``x``; nothing new is allocated, which matters for feature maps above the C
        allocator's mmap threshold (32 MiB): those are page-faulted in afresh on every
        allocation, which cost ~30 % of a residual stack at 640x360.
        """
        return _ACCUMULATE.binary(
            out,
            x,
            self.weight,
            self.bias,
            *self.args,
            "add",
            None,
            "relu" if relu else None,
            [],
            None,
        )


def _is_channels_last(x: torch.Tensor) -> bool:
    return (
        x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and not x.is_contiguous()
    )


def _no_fused_path() -> None:
    return None


class _FusedPath:
    """Base of the fused replacements: the applicability check shared by all of them."""

    convs: list[FusedConv]

    def __reduce__(self):
        # prepacked oneDNN weights cannot be copied or pickled: a deep copy or a pickled
        # network gets the eager layers (``_fused`` None); fuse the copy again if wanted
        return (_no_fused_path, ())

    def accepts(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and not torch.is_grad_enabled()
            and all(c.fresh() for c in self.convs)
        )


class FusedResidualStack(_FusedPath):
    """:class:`~napari_vsr.models.blocks.ResidualBlocksWithInputConv`, fused:
    conv + leaky ReLU, then per block conv + ReLU and conv + residual add."""

    def __init__(self, module: nn.Module):
        first, slope = module.main[0], module.main[1].negative_slope
        self.head = FusedConv(first, activation="leaky_relu", negative_slope=slope)
        self.blocks = [
            (FusedConv(b.conv1, activation="relu"), FusedConv(b.conv2)) for b in module.main[2]
        ]
        self.convs = [self.head] + [c for pair in self.blocks for c in pair]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(x)
        if not y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous():
            y = y.contiguous()
        t = torch.empty_like(y)  # reused by every block (fresh maps would be page-faulted)
        for conv1, conv2 in self.blocks:
            conv1.accumulate(y, t.zero_(), relu=True)  # t = relu(conv1(y))
            conv2.accumulate(t, y)  # y = y + conv2(t)
        return y


class FusedSPyNetLevel(_FusedPath):
    """One SPyNet level (four conv + ReLU, then a conv to 2 channels) plus the flow residual."""

    def __init__(self, module: nn.Module):
        layers = list(module.basic_module)
        self.convs = [FusedConv(m.conv, activation="relu" if m.relu else "none") for m in layers]

    def __call__(self, x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """``flow + level(x)``: (B, 8, H, W), (B, 2, H, W) -> (B, 2, H, W)."""
        for conv in self.convs[:-1]:
            x = conv(x)
        return self.convs[-1](x, add=flow)


#: low-resolution rows a band of the upsampler needs on each side: one 3x3 conv at x1 (1 row),
#: one at x2 (1/2 row), two at x4 (1/2 row), rounded up
_HALO = 2


class FusedUpsampler(_FusedPath):
    """BasicVSR's fusion + x4 pixel-shuffle upsampler (leaky ReLU fused into every conv but
    the last, the bilinear skip added by the last), run in bands of rows."""

    #: bytes of the largest intermediate map of one band (x4 resolution, 64 channels)
    band_bytes = 24 << 20

    def __init__(self, net: nn.Module, *, negative_slope: float = 0.1):
        act = {"activation": "leaky_relu", "negative_slope": negative_slope}
        self.fusion = FusedConv(net.fusion, **act)
        self.up1 = FusedConv(net.upsample1.upsample_conv, **act)
        self.up2 = FusedConv(net.upsample2.upsample_conv, **act)
        self.hr = FusedConv(net.conv_hr, **act)
        self.last = FusedConv(net.conv_last)
        self.scales = (net.upsample1.scale, net.upsample2.scale)
        self.convs = [self.fusion, self.up1, self.up2, self.hr, self.last]
        kernels = [c.conv.kernel_size for c in self.convs]
        if self.scales != (2, 2) or kernels != [(1, 1)] + [(3, 3)] * 4:
            raise ValueError("FusedUpsampler: expected BasicVSR's x2 x2 upsampler, 3x3 kernels")

    def __call__(self, feats: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """(B, 2*mid, H, W) features and (B, 3, 4H, 4W) skip -> (B, 3, 4H, 4W).

        Frames are upsampled one at a time in bands of rows (with a halo, so the result is
        the same as for the whole frame): the x4 intermediate maps of a band stay small
        enough for the allocator to reuse and for the cache, where whole-frame maps (236 MB
        each for 320x180) are page-faulted in afresh on every call.
        """
        n, _, h, w = feats.shape
        rows = max(4, min(h, self.band_bytes // (4096 * w)))  # 64 ch x 16 px x 4 B per px
        if n == 1 and rows >= h:
            return self._run(feats, base)
        out = torch.empty_like(base)
        for s in range(n):
            for top in range(0, h, rows):
                bottom = min(top + rows, h)
                lo, hi = max(top - _HALO, 0), min(bottom + _HALO, h)
                band = self._run(feats[s : s + 1, :, lo:hi], base[s : s + 1, :, 4 * lo : 4 * hi])
                out[s : s + 1, :, 4 * top : 4 * bottom] = band[
                    :, :, 4 * (top - lo) : 4 * (bottom - lo)
                ]
        return out

    def _run(self, feats: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        # leaky ReLU is elementwise, so applying it before the pixel shuffle changes nothing
        out = F.pixel_shuffle(self.up1(self.fusion(feats)), self.scales[0])
        out = F.pixel_shuffle(self.up2(out), self.scales[1])
        return self.last(self.hr(out), add=base)


def fuse_convolutions(net: nn.Module) -> int:
    """Give the heavy sub-modules of a RealBasicVSR/BasicVSR network a fused CPU path.

    Call after the weights are loaded and the network is on the CPU in float32 (the memory
    format may be changed before or after).  Other devices and dtypes keep the eager path.

    Parameters
    ----------
    net : RealBasicVSRNet or BasicVSRNet
        Modified in place: attributes only, parameters and state dict unchanged.

    Returns
    -------
    int
        How many sub-modules were given a fused path (0 when oneDNN fusion is unavailable or
        the network is not float32 on the CPU).
    """
    from napari_vsr.models.basicvsr import BasicVSRNet
    from napari_vsr.models.blocks import ResidualBlocksWithInputConv
    from napari_vsr.models.spynet import _SPyNetLevel

    if not fusion_available():
        log.info("oneDNN convolution fusion unavailable in this PyTorch build")
        return 0
    first = next(net.parameters())
    if first.device.type != "cpu" or first.dtype != torch.float32:
        return 0
    count = 0
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, ResidualBlocksWithInputConv):
                module._fused = FusedResidualStack(module)
            elif isinstance(module, _SPyNetLevel):
                module._fused = FusedSPyNetLevel(module)
            elif isinstance(module, BasicVSRNet):
                module._fused = FusedUpsampler(module)
            else:
                continue
            count += 1
    log.debug("fused convolutions in %d sub-modules", count)
    return count


def unfuse_convolutions(net: nn.Module) -> None:
    """Drop every fused path made by :func:`fuse_convolutions` (back to the eager layers)."""
    for module in net.modules():
        if getattr(module, "_fused", None) is not None:
            module._fused = None
