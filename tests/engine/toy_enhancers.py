"""Small deterministic enhancers for engine tests (no weights, fast on CPU).

Each declares its :class:`~napari_vsr.enhancers.Capabilities`; ``UpscaleNearest`` and
``TinyRecurrent`` call ``step`` per finished frame (``TinyRecurrent`` also ``step(None)`` per
backward time step), ``TemporalMean`` never does (an enhancer that ignores ``step``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from napari_vsr.enhancers import Capabilities, Enhancer


class UpscaleNearest(Enhancer):
    """Native enhancer: pixel repeat by ``scale`` plus one, per frame; counts calls and sizes."""

    name = "nearest"

    def __init__(
        self, scale: int = 2, *, chunk: int = 4, tileable: bool = True, device: str | None = None
    ):
        self.capabilities = Capabilities(
            scale=scale, default_chunk=chunk, tileable=tileable, device=device
        )
        self.calls: list[tuple[int, ...]] = []
        self.steps: list[int | None] = []
        self.closed = 0

    def declare(self, **changes) -> None:
        """Change some capabilities (e.g. ``tileable=False``)."""
        self.capabilities = replace(self.capabilities, **changes)

    def enhance(self, frames: np.ndarray, *, step=None) -> np.ndarray:
        self.calls.append(frames.shape)
        s = self.capabilities.scale
        out = frames.repeat(s, axis=1).repeat(s, axis=2)
        for i in range(len(frames)):
            self.steps.append(i)
            if step is not None:
                step(i)
        return out

    def close(self) -> None:
        self.closed += 1


class TemporalMean(Enhancer):
    """Native temporal mean over +-k frames (clipped at the sequence ends), scale 1, float64 out."""

    name = "tmean"

    def __init__(self, k: int = 2, *, chunk: int = 5):
        self.k = k
        self.capabilities = Capabilities(context=k, default_overlap=k, default_chunk=chunk)

    def enhance(self, frames: np.ndarray, *, step=None) -> np.ndarray:  # never calls step
        x = frames.astype(np.float64)
        out = np.empty_like(x)
        for t in range(len(x)):
            out[t] = x[max(0, t - self.k) : t + self.k + 1].mean(axis=0)
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

    def forward(self, lqs: torch.Tensor, step=None) -> torch.Tensor:
        """(N, T, 3, H, W) -> (N, T, 3, 2H, 2W); ``step(None)`` per backward step, ``step(i)``
        per output frame."""
        n, t, c, h, w = lqs.shape
        state = torch.zeros(n, c, h, w)
        back = []
        for i in range(t - 1, -1, -1):
            state = torch.tanh(self.mix(torch.cat([lqs[:, i], state], 1)))
            back.append(state)
            if step is not None:
                step(None)
        back.reverse()
        state = torch.zeros(n, c, h, w)
        outs = []
        for i in range(t):
            state = torch.tanh(self.mix(torch.cat([back[i], state], 1)))
            up = torch.nn.functional.interpolate(
                lqs[:, i] + 0.1 * state, scale_factor=2, mode="nearest"
            )
            outs.append(up)
            if step is not None:
                step(i)
        return torch.stack(outs, 1)


class TinyRecurrent(Enhancer):
    """rgb01 adapter around :class:`TinyRecurrentNet`."""

    name = "tiny"
    capabilities = Capabilities(
        scale=2, input_kind="rgb01", tileable=True, default_chunk=6, default_overlap=2
    )

    def __init__(self):
        self.net = TinyRecurrentNet().eval()
        self.closed = 0

    def run(self, frames: np.ndarray, step=None) -> np.ndarray:
        """(T, H, W, 3) float32 -> (T, 2H, 2W, 3) float32, the whole array at once."""
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)[None]
            return self.net(x, step)[0].permute(0, 2, 3, 1).numpy()

    def enhance(self, frames: np.ndarray, *, step=None) -> np.ndarray:
        assert frames.dtype == np.float32 and frames.shape[-1] == 3
        return self.run(frames, step)

    def close(self) -> None:
        self.closed += 1


class OomBelow(UpscaleNearest):
    """Raises a CUDA out-of-memory error for inputs wider or taller than ``limit`` pixels."""

    def __init__(self, limit: int):
        super().__init__(scale=2, chunk=4)
        self.limit = limit

    def enhance(self, frames: np.ndarray, *, step=None) -> np.ndarray:
        if max(frames.shape[1:3]) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().enhance(frames, step=step)


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


class BatchedRecurrent(TinyRecurrent):
    """:class:`TinyRecurrent` that runs equal chunks together (N > 1); records batch sizes.

    ``oom_above``: a batch of more chunks raises a CUDA out-of-memory error (the engine halves).
    """

    name = "tiny-batched"

    def __init__(self, *, max_batch: int = 4, oom_above: int | None = None,
                 device: str | None = None):
        super().__init__()
        self.capabilities = replace(TinyRecurrent.capabilities, max_batch=max_batch,
                                    device=device)
        self.oom_above = oom_above
        self.batches: list[int] = []

    def enhance(self, frames, *, step=None):
        return self.enhance_batch([frames], steps=[step])[0]

    def enhance_batch(self, batch, *, steps=None):
        if self.oom_above is not None and len(batch) > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        self.batches.append(len(batch))
        steps = list(steps) if steps is not None else [None] * len(batch)

        def step(i):
            for s in steps:
                if s is not None:
                    s(i)

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(np.stack(batch))).permute(0, 1, 4, 2, 3)
            out = self.net(x, step).permute(0, 1, 3, 4, 2).numpy()
        return list(out)

    def estimate_memory(self, n_frames, height, width):
        return n_frames * height * width * 3 * 4 * 100
