"""The classic pipelines as an :class:`~napari_vsr.enhancer.Enhancer` for the engine."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from napari_vsr.classic.pipeline import Pipeline
from napari_vsr.enhancer import Enhancer
from napari_vsr.errors import ParameterError

log = logging.getLogger(__name__)


class ClassicEnhancer(Enhancer):
    """Runs a :class:`Pipeline` over chunks of frames, frames in parallel threads.

    OpenCV and NumPy release the GIL, so one thread per core processes one frame each.
    OpenCV's own thread pool is left as configured: when the worker threads keep every core
    busy its parallel loops find no idle threads and run inline (see
    ``benchmarks/notes_classic.md``).

    Parameters
    ----------
    pipeline : Pipeline
        The steps; its overall scale must be a whole number (e.g. 1 or 4).
    workers : int, optional
        Threads; default ``os.cpu_count()``.  ``1`` runs in the calling thread.

    Raises
    ------
    ParameterError
        Non-integer or input-dependent overall scale, or ``workers < 1``.
    """

    input_kind = "native"
    tileable = False

    def __init__(self, pipeline: Pipeline, *, workers: int | None = None):
        if not isinstance(pipeline, Pipeline):
            raise ParameterError(f"ClassicEnhancer needs a Pipeline, got {type(pipeline).__name__}")
        scale = pipeline.scale
        if scale is None or scale < 1 or not float(scale).is_integer():
            raise ParameterError(
                f"recipe {pipeline.name!r}: overall scale is {scale}; the engine needs a whole "
                f"factor >= 1 (use resize 'factor' steps whose product is 1, 2, 3, 4, ...)"
            )
        if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
            raise ParameterError(f"workers = {workers!r} is invalid; expected an integer >= 1")
        self.pipeline = pipeline
        self.workers = int(workers) if workers is not None else (os.cpu_count() or 1)
        self.name = f"classic:{pipeline.name}"
        self.scale = int(scale)
        self.context = pipeline.context
        self.default_overlap = self.context
        # bounded memory: 16 frames at scale 1, fewer when each output frame is scale**2 larger
        self.default_chunk = max(2 * self.workers, 4 * self.context, 16 // self.scale**2)
        self._pool: ThreadPoolExecutor | None = None

    def _executor(self) -> ThreadPoolExecutor | None:
        if self.workers == 1:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="napari-vsr-classic")
        return self._pool

    def enhance(self, frames: np.ndarray) -> np.ndarray:
        """Enhance a chunk.

        Parameters
        ----------
        frames : ndarray, (T, H, W) or (T, H, W, C), uint8/uint16/float32
            Never modified.

        Returns
        -------
        ndarray, (T, H * scale, W * scale[, C]), same dtype
        """
        frames = np.asarray(frames)
        out = self.pipeline.apply_stack(frames, executor=self._executor())
        expected = (frames.shape[1] * self.scale, frames.shape[2] * self.scale)
        if out.shape[1:3] != expected:
            raise ParameterError(
                f"recipe {self.pipeline.name!r}: frames of {frames.shape[1:3]} came out as "
                f"{out.shape[1:3]}, not {expected}; its resize steps do not divide this frame "
                f"size evenly"
            )
        return out

    def describe(self) -> dict[str, Any]:
        """Method, scale, context and the full recipe (JSON-serialisable)."""
        return {
            "method": self.name,
            "scale": self.scale,
            "context": self.context,
            "pipeline": self.pipeline.to_dict(),
        }

    def close(self) -> None:
        """Shut the thread pool down (it is recreated if ``enhance`` is called again)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> ClassicEnhancer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
