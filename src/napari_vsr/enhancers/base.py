"""The one interface shared by every enhancement method (classic pipelines and networks).

The engine (:mod:`napari_vsr.engine`) feeds an :class:`Enhancer` temporal chunks of frames and
handles progress, cancel, chunk overlap, spatial tiling and sinks, so none of that is written
twice.  An enhancer only maps a chunk of frames to enhanced frames, says what it needs in one
:class:`Capabilities` record (the engine reads that record, it never probes attributes), and
calls ``step`` as its output frames finish so that progress and cancel work inside a chunk.

No PyTorch here: importing this module (and the classic method) stays cheap.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

InputKind = Literal["native", "rgb01"]

#: ``step(i)`` after output frame ``i`` of a chunk is finished (0 <= i < T, any order);
#: ``step(None)`` at a check point where no frame finished (e.g. one time step of a backward
#: recurrent pass).  It may raise :class:`~napari_vsr.errors.Cancelled`; the enhancer lets
#: that propagate.
StepCallback = Callable[[int | None], None]


@dataclass(frozen=True)
class Capabilities:
    """Everything the engine needs to know about an enhancer, declared once.

    Attributes
    ----------
    scale : int
        Spatial scale factor of the output (1 for filters, 4 for RealBasicVSR x4).
    context : int
        Frames of temporal context the method needs on each side of a chunk: 0 for per-frame
        operators, ``k`` for a temporal filter over +-k frames (exact with ``overlap >= k``).
        Recurrent networks use all frames of a chunk; their overlap is ``default_overlap``.
    tileable : bool
        Whether the engine may cut frames into spatial tiles (with overlap) for this method.
    default_chunk, default_overlap : int
        Output frames per chunk and context frames per side when the user does not say.
    tile_overlap : int
        Default overlap between spatial tiles, in input pixels.
    input_kind : {"native", "rgb01"}
        ``"native"``: frames arrive in the source dtype and channel layout, (T, H, W) or
        (T, H, W, C), and must come back in the same dtype/channels.  ``"rgb01"``: frames
        arrive as float32 RGB in [0, 1], (T, H, W, 3); the engine converts dtype, gray and
        alpha.
    accepts_integer_rgb : bool
        rgb01 only: uint8/uint16 RGB chunks may be passed as stored; the enhancer scales,
        clips and rounds itself (on its device) and returns the source dtype.
    device : str or None
        Where the method runs (``"cpu"``, ``"cuda:0"``, ``"mps"``: anything
        :class:`torch.device` accepts), or None for host-only methods (no device memory to
        plan for or free).
    precisions : tuple of str
        Precision names the method can run in (``"fp32"``, ``"fp16"``, ``"bf16"``); empty
        when there is no choice (the classic pipelines compute in the source dtype).
    max_batch : int
        How many equal-shaped chunks :meth:`Enhancer.enhance_batch` can run through the method
        together (1: one at a time).  The engine batches independent chunks only up to this.
    """

    scale: int = 1
    context: int = 0
    tileable: bool = False
    default_chunk: int = 16
    default_overlap: int = 0
    tile_overlap: int = 16
    input_kind: InputKind = "native"
    accepts_integer_rgb: bool = False
    device: str | None = None
    precisions: tuple[str, ...] = ()
    max_batch: int = 1

    def __post_init__(self) -> None:
        if self.input_kind not in ("native", "rgb01"):
            raise ValueError(f"input_kind: expected 'native' or 'rgb01', got {self.input_kind!r}")
        if self.scale < 1 or self.default_chunk < 1 or self.max_batch < 1 or min(self.context, self.default_overlap) < 0:
            raise ValueError(f"capabilities out of range: {self}")


class Enhancer(abc.ABC):
    """Maps a temporal chunk of frames to enhanced frames.

    Attributes
    ----------
    name : str
        Short human name, used in layer names ("clip [<name>]") and logs.
    capabilities : Capabilities
        What the engine needs to know (scale, context, chunking, tiling, input kind, device).
        Set by each enhancer (class attribute or in ``__init__``).

    Notes
    -----
    The caller that made an enhancer owns it and calls :meth:`close` (or uses it as a context
    manager); the engine never closes it, so one enhancer can serve several runs.
    """

    name: str = "enhancer"
    capabilities: Capabilities = Capabilities()

    @property
    def scale(self) -> int:
        """``capabilities.scale`` (a shortcut for layer names and shapes)."""
        return self.capabilities.scale

    @abc.abstractmethod
    def enhance(self, frames: np.ndarray, *, step: StepCallback | None = None) -> np.ndarray:
        """Enhance a chunk.

        Parameters
        ----------
        frames : ndarray, (T, H, W[, C])
            See ``capabilities.input_kind`` for dtype and channels.  Never modified.
        step : callable, optional
            ``step(i)`` once output frame ``i`` (0..T-1) is finished, in whatever order the
            method produces them, and ``step(None)`` at further check points; see
            :data:`StepCallback`.  Exceptions it raises (``Cancelled``) propagate.

        Returns
        -------
        ndarray, (T, H * scale, W * scale[, C])
            One output per input frame, same dtype/channel convention as the input.
        """

    def enhance_batch(
        self,
        batch: Sequence[np.ndarray],
        *,
        steps: Sequence[StepCallback | None] | None = None,
    ) -> list[np.ndarray]:
        """Enhance several independent chunks of the same shape and dtype.

        Parameters
        ----------
        batch : sequence of ndarray, each (T, H, W[, C])
            Equal shapes and dtypes; see :meth:`enhance`.
        steps : sequence of callables, optional
            ``steps[k]`` is chunk ``k``'s ``step`` (see :meth:`enhance`).

        Returns
        -------
        list of ndarray
            Item ``k`` is what ``enhance(batch[k])`` returns (to the arithmetic's rounding).
            This default runs the chunks one after another; a method that declares
            ``capabilities.max_batch > 1`` runs them together.
        """
        steps = list(steps) if steps is not None else [None] * len(batch)
        if len(steps) != len(batch):
            raise ValueError(f"steps: expected {len(batch)} callbacks, got {len(steps)}")
        return [self.enhance(x, step=s) for x, s in zip(batch, steps, strict=True)]

    def estimate_memory(self, n_frames: int, height: int, width: int) -> int | None:
        """Rough bytes one chunk of ``n_frames`` frames of ``height`` x ``width`` needs on
        ``capabilities.device`` (host memory for the CPU); None when unknown."""
        return None

    def describe(self) -> dict[str, Any]:
        """Parameters worth recording in layer/file metadata (JSON-serialisable)."""
        return {"method": self.name, "scale": self.capabilities.scale}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free held resources (device memory, threads).  Called by the caller, not the engine."""

    def __enter__(self) -> Enhancer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
