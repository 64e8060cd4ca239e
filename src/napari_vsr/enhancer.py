"""The one interface shared by every enhancement method (classic pipelines and networks).

The engine (:mod:`napari_vsr.engine`) feeds an :class:`Enhancer` temporal chunks of frames and
handles progress, cancel, chunk overlap, spatial tiling and sinks, so none of that is written
twice.  An enhancer only maps a chunk of frames to enhanced frames.
"""

from __future__ import annotations

import abc
from typing import Any, Literal

import numpy as np

InputKind = Literal["native", "rgb01"]


class Enhancer(abc.ABC):
    """Maps a temporal chunk of frames to enhanced frames.

    Attributes
    ----------
    name : str
        Short human name, used in layer names ("clip [<name>]") and logs.
    scale : int
        Spatial scale factor of the output (1 for filters, 4 for RealBasicVSR x4).
    context : int
        Frames of temporal context the method wants on each side of a chunk: 0 for per-frame
        operators, ``k`` for a temporal filter over +-k frames (exact with ``overlap >= k``).
        Recurrent networks use all frames of a chunk; their default overlap comes from
        ``default_overlap``.
    default_chunk, default_overlap : int
        What the engine uses when the user does not say.
    input_kind : {"native", "rgb01"}
        ``"native"``: frames arrive in the source dtype and channel layout, (T, H, W) or
        (T, H, W, C), and must come back in the same dtype/channels.  ``"rgb01"``: frames arrive
        as float32 RGB in [0, 1], (T, H, W, 3); the engine converts dtype, gray and alpha.
    tileable : bool
        Whether the engine may cut frames into spatial tiles (with overlap) for this method.
    """

    name: str = "enhancer"
    scale: int = 1
    context: int = 0
    default_chunk: int = 16
    default_overlap: int = 0
    input_kind: InputKind = "native"
    tileable: bool = False

    @abc.abstractmethod
    def enhance(self, frames: np.ndarray) -> np.ndarray:
        """Enhance a chunk.

        Parameters
        ----------
        frames : ndarray, (T, H, W[, C])
            See ``input_kind`` for dtype and channels.  Never modified.

        Returns
        -------
        ndarray, (T, H * scale, W * scale[, C])
            One output per input frame, same dtype/channel convention as the input.
        """

    def describe(self) -> dict[str, Any]:
        """Parameters worth recording in layer/file metadata (JSON-serialisable)."""
        return {"method": self.name, "scale": self.scale}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free held resources (device memory).  Called by the engine on finish or cancel."""
