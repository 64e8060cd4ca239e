"""The classic pipelines as an :class:`~napari_vsr.enhancers.base.Enhancer` for the engine."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from napari_vsr.classic.dtypes import SUPPORTED_DTYPES
from napari_vsr.classic.parallel import BufferRecycler
from napari_vsr.classic.pipeline import Pipeline, usable_cpus
from napari_vsr.enhancers.base import Capabilities, Enhancer, StepCallback
from napari_vsr.errors import ParameterError

log = logging.getLogger(__name__)


class ClassicEnhancer(Enhancer):
    """Runs a :class:`Pipeline` over chunks of frames, frames in parallel threads.

    OpenCV and NumPy release the GIL, so one thread per core processes one frame at a time.
    The output array of a chunk is reused for the next chunk once the caller has dropped it
    (the engine copies each chunk out at once), see
    :class:`~napari_vsr.classic.parallel.BufferRecycler`; a caller that keeps its results
    gets fresh arrays every time.
    While several frames run in parallel OpenCV's own thread pool is switched off (scoped and
    restored, see :func:`~napari_vsr.classic.parallel.opencv_serial`); a chunk of a single
    frame, or ``workers=1``, leaves it on so that OpenCV parallelises inside the frame (see
    ``benchmarks/notes_classic.md``).

    Parameters
    ----------
    pipeline : Pipeline
        The steps; its overall scale must be a whole number (e.g. 1 or 4).
    workers : int, optional
        Threads; default: the CPUs this process may use (its affinity mask).  ``1`` runs
        in the calling thread.

    Raises
    ------
    ParameterError
        Non-integer or input-dependent overall scale, or ``workers < 1``.
    """

    def __init__(self, pipeline: Pipeline, *, workers: int | None = None):
        if not isinstance(pipeline, Pipeline):
            raise ParameterError(f"ClassicEnhancer needs a Pipeline, got {type(pipeline).__name__}")
        scale = pipeline.scale
        if scale is None or scale < 1 or not float(scale).is_integer():
            shown = "None (a resize 'size' step fixes the size)" if scale is None else scale
            raise ParameterError(
                f"recipe {pipeline.name!r}: overall scale is {shown}; the engine needs a whole "
                f"factor >= 1 (use resize 'factor' steps whose product is 1, 2, 3, 4, ...)",
                path=pipeline.path,
            )
        if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
            raise ParameterError(f"workers = {workers!r} is invalid; expected an integer >= 1")
        self.pipeline = pipeline
        self.workers = int(workers) if workers is not None else usable_cpus()
        self.name = f"classic:{pipeline.name}"
        scale = int(scale)
        context = pipeline.context
        self.capabilities = Capabilities(
            scale=scale,
            context=context,
            tileable=False,
            # bounded memory: 16 frames at scale 1, fewer when an output frame is scale**2 larger
            default_chunk=max(2 * self.workers, 4 * context, 16 // scale**2),
            default_overlap=context,
            input_kind="native",
            device=None,  # host only
            precisions=(),  # computes in the source dtype
        )
        self._pool: ThreadPoolExecutor | None = None
        self._buffers = BufferRecycler()
        self._checked: tuple[int, int] | None = None

    def check_frame_size(
        self, height: int, width: int, *, source: str | None = None
    ) -> tuple[int, int]:
        """Refuse frames of this size if a step would make them too large (before any work).

        See :meth:`Pipeline.check_size`; also run by :meth:`enhance` for each new frame size,
        before the output is allocated.

        Returns
        -------
        (int, int)
            The output ``(height, width)``.

        Raises
        ------
        ParameterError
        """
        out = self.pipeline.check_size(height, width, source=source)
        self._checked = (int(height), int(width))
        return out

    def _executor(self) -> ThreadPoolExecutor | None:
        if self.workers == 1:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="napari-vsr-classic")
        return self._pool

    def enhance(self, frames: np.ndarray, *, step: StepCallback | None = None) -> np.ndarray:
        """Enhance a chunk.

        Parameters
        ----------
        frames : ndarray, (T, H, W) or (T, H, W, C), uint8/uint16/float32
            Never modified.
        step : callable, optional
            ``step(t)`` as output frame ``t`` finishes (from the worker threads, one call at
            a time), ``step(None)`` after each frame or band of earlier steps; see
            :meth:`Pipeline.apply_stack`.

        Returns
        -------
        ndarray, (T, H * scale, W * scale[, C]), same dtype
        """
        frames = np.asarray(frames)
        scale = self.capabilities.scale
        expected = (frames.shape[1] * scale, frames.shape[2] * scale)
        if frames.ndim not in (3, 4) or frames.dtype not in SUPPORTED_DTYPES:
            return self.pipeline.apply_stack(frames)  # raises the pipeline's own error
        if self._checked != frames.shape[1:3]:
            self.check_frame_size(*frames.shape[1:3])
        got = self.pipeline.output_size(*frames.shape[1:3])
        if got != expected:
            raise ParameterError(
                f"recipe {self.pipeline.name!r}: frames of {frames.shape[1:3]} came out as "
                f"{got}, not {expected}; its resize steps do not divide this frame "
                f"size evenly"
            )
        out = self._buffers.get((frames.shape[0], *expected, *frames.shape[3:]), frames.dtype)
        return self.pipeline.apply_stack(
            frames, executor=self._executor(), workers=self.workers, out=out, step=step
        )

    def describe(self) -> dict[str, Any]:
        """Method, scale, context and the full recipe (JSON-serialisable)."""
        return {
            "method": self.name,
            "scale": self.capabilities.scale,
            "context": self.capabilities.context,
            "pipeline": self.pipeline.to_dict(),
        }

    def close(self) -> None:
        """Shut the thread pool down and drop the kept output buffer (both are recreated if
        ``enhance`` is called again)."""
        self._buffers.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
