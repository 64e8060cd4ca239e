"""Small deterministic enhancers for engine tests (no weights, fast on CPU)."""

from __future__ import annotations

import numpy as np
import torch

from napari_vsr.enhancer import Enhancer


class UpscaleNearest(Enhancer):
    """Native enhancer: pixel repeat by ``scale`` plus one, per frame; counts calls and sizes."""

    name = "nearest"
    input_kind = "native"
    tileable = True

    def __init__(self, scale: int = 2, *, chunk: int = 4):
        self.scale = scale
        self.default_chunk = chunk
        self.calls: list[tuple[int, ...]] = []
        self.closed = 0

    def enhance(self, frames: np.ndarray) -> np.ndarray:
        self.calls.append(frames.shape)
        out = frames.repeat(self.scale, axis=1).repeat(self.scale, axis=2)
        return out

    def close(self) -> None:
        self.closed += 1


class TemporalMean(Enhancer):
    """Native temporal mean over +-k frames (clipped at the sequence ends), scale 1, float64 out."""

    name = "tmean"
    input_kind = "native"

    def __init__(self, k: int = 2, *, chunk: int = 5):
        self.context = k
        self.default_overlap = k
        self.default_chunk = chunk

    def enhance(self, frames: np.ndarray) -> np.ndarray:
        x = frames.astype(np.float64)
        out = np.empty_like(x)
        for t in range(len(x)):
            out[t] = x[max(0, t - self.context) : t + self.context + 1].mean(axis=0)
        return out.astype(frames.dtype)


class TinyRecurrentNet(torch.nn.Module):
    """Bidirectional recurrent toy: every output depends on every frame of the chunk."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.mix = torch.nn.Conv2d(6, 3, 3, padding=1)
        with torch.no_grad():
            self.mix.weight.copy_(torch.randn(self.mix.weight.shape, generator=g) * 0.1)
            self.mix.bias.zero_()

    def forward(self, lqs: torch.Tensor) -> torch.Tensor:  # (N, T, 3, H, W) -> (N, T, 3, 2H, 2W)
        n, t, c, h, w = lqs.shape
        state = torch.zeros(n, c, h, w)
        back = []
        for i in range(t - 1, -1, -1):
            state = torch.tanh(self.mix(torch.cat([lqs[:, i], state], 1)))
            back.append(state)
        back.reverse()
        state = torch.zeros(n, c, h, w)
        outs = []
        for i in range(t):
            state = torch.tanh(self.mix(torch.cat([back[i], state], 1)))
            up = torch.nn.functional.interpolate(
                lqs[:, i] + 0.1 * state, scale_factor=2, mode="nearest"
            )
            outs.append(up)
        return torch.stack(outs, 1)


class TinyRecurrent(Enhancer):
    """rgb01 adapter around :class:`TinyRecurrentNet`."""

    name = "tiny"
    scale = 2
    input_kind = "rgb01"
    tileable = True
    default_chunk = 6
    default_overlap = 2

    def __init__(self):
        self.net = TinyRecurrentNet().eval()
        self.closed = 0

    def run(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) float32 -> (T, 2H, 2W, 3) float32, the whole array at once."""
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)[None]
            return self.net(x)[0].permute(0, 2, 3, 1).numpy()

    def enhance(self, frames: np.ndarray) -> np.ndarray:
        assert frames.dtype == np.float32 and frames.shape[-1] == 3
        return self.run(frames)

    def close(self) -> None:
        self.closed += 1


class OomBelow(UpscaleNearest):
    """Raises a CUDA out-of-memory error for inputs wider or taller than ``limit`` pixels."""

    def __init__(self, limit: int):
        super().__init__(scale=2, chunk=4)
        self.limit = limit

    def enhance(self, frames: np.ndarray) -> np.ndarray:
        if max(frames.shape[1:3]) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().enhance(frames)


class LazyFrames:
    """A numpy-like (T, H, W, 3) uint8 source that makes each frame on demand (no storage)."""

    def __init__(self, length: int, height: int, width: int):
        self.shape = (length, height, width, 3)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 4
        self.reads = 0

    def __len__(self) -> int:
        return self.shape[0]

    def _frame(self, i: int) -> np.ndarray:
        h, w = self.shape[1:3]
        yy, xx = np.mgrid[0:h, 0:w]
        return ((yy * 3 + xx * 5 + i * 7)[..., None] + np.array([0, 50, 100])).astype(np.uint8)

    def __getitem__(self, index):
        if isinstance(index, slice):
            idx = range(*index.indices(self.shape[0]))
            self.reads += len(idx)
            return (
                np.stack([self._frame(i) for i in idx])
                if len(idx)
                else np.empty((0,) + self.shape[1:], np.uint8)
            )
        self.reads += 1
        return self._frame(int(index))

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("the engine must never materialise the whole source")
