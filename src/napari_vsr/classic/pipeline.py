"""Pipelines: an ordered list of operator steps, saved and loaded as JSON or YAML recipes.

A recipe file looks like this (YAML; the JSON form has the same keys)::

    name: my-recipe
    description: sharpen, soften, upscale
    steps:
      - op: laplacian_sharpen
      - op: gaussian_blur
        ksize: 5
      - op: resize
        factor: 4
        interpolation: bicubic

Each step names an operator of :data:`napari_vsr.classic.registry.OPERATORS` and gives any of
its parameters; the others take their defaults.  ``napari-vsr recipes ops`` lists them all.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import yaml

from napari_vsr.classic import operators as _operators  # noqa: F401 - registers them all
from napari_vsr.classic.dtypes import check_dtype, restore_layout, to_channels_last
from napari_vsr.classic.parallel import for_each, opencv_serial
from napari_vsr.classic.recipe_text import load_recipe_data, read_recipe_text
from napari_vsr.classic.registry import Operator, get_operator
from napari_vsr.classic.resize import output_size as resize_output_size
from napari_vsr.errors import ParameterError

RECIPE_SUFFIXES = (".json", ".yaml", ".yml")
_TOP_KEYS = {"name", "description", "steps"}
#: most steps in a recipe file
MAX_STEPS = 256
#: largest frame (pixels) that any step of a recipe may produce: 2**29, e.g. 30720 x 17280
#: (1080p x16); one such RGB uint8 frame is 1.5 GiB
MAX_FRAME_PIXELS = 2**29
#: longest side (pixels) that any step may produce
MAX_FRAME_SIDE = 65536
#: (height, width) of the input that ``recipes check`` assumes without ``--size``/``--input``
REFERENCE_SIZE = (1080, 1920)


@dataclass(frozen=True)
class Step:
    """One validated step: an operator name and its full parameter set (defaults filled)."""

    op: str
    params: Mapping[str, Any]

    @property
    def operator(self) -> Operator:
        return get_operator(self.op)

    def to_dict(self) -> dict[str, Any]:
        """``{"op": name, <param>: value, ...}`` with plain JSON/YAML types (``None`` left out)."""
        out: dict[str, Any] = {"op": self.op}
        for key, value in self.params.items():
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


class Pipeline:
    """An ordered, immutable list of operator steps.

    Parameters
    ----------
    steps : sequence of (str, mapping) or Step
        ``(op name, params)`` pairs in order.
    name : str
        Short name (used in the enhancer name ``classic:<name>``).
    description : str
        One line for humans.

    Raises
    ------
    ParameterError
        Naming the step, the parameter and the allowed values.
    """

    def __init__(
        self,
        steps: Sequence[tuple[str, Mapping[str, Any]] | Step],
        *,
        name: str = "recipe",
        description: str = "",
    ):
        if isinstance(steps, str | bytes | Mapping) or not isinstance(steps, Iterable):
            raise ParameterError(f"recipe {name!r}: 'steps' must be a list of steps")
        checked = []
        for i, step in enumerate(steps, start=1):
            op, params = (step.op, step.params) if isinstance(step, Step) else step
            where = f"recipe {name!r}, step {i} ({op})"
            if not isinstance(params, Mapping):
                raise ParameterError(f"{where}: parameters must be a mapping, got {params!r}")
            spec = get_operator(op, where=f"recipe {name!r}, step {i}")
            checked.append(Step(op, MappingProxyType(spec.validate(params, where=where))))
        self._steps = tuple(checked)
        self.name = str(name)
        self.description = str(description)
        #: the recipe file it was read from (:meth:`from_file`), named in size errors
        self.path: str | None = None

    # --- properties -----------------------------------------------------------------------
    @property
    def steps(self) -> tuple[Step, ...]:
        return self._steps

    @property
    def scale(self) -> float | None:
        """Product of the resize factors (1.0 without resizing; ``None`` if a step resizes to
        a fixed size)."""
        total = 1.0
        for step in self._steps:
            s = step.operator.scale(step.params)
            if s is None:
                return None
            total *= s
        return total

    @property
    def context(self) -> int:
        """Frames of temporal context needed on each side: the sum of the temporal radii
        (one temporal step: its radius; chained temporal steps widen the window)."""
        return sum(step.operator.context(step.params) for step in self._steps)

    @property
    def temporal(self) -> bool:
        """Whether any step works across frames."""
        return any(step.operator.temporal for step in self._steps)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output ``(height, width)`` for an input frame of ``(height, width)``."""
        return _output_size(self._steps, height, width)

    def check_size(self, height: int, width: int, *, source: str | None = None) -> tuple[int, int]:
        """Refuse a recipe whose frames would grow past the documented limits.

        Every step's output is checked (not only the last: ``x16`` then ``x1/16`` has scale 1
        but needs 256 times the memory in between) against :data:`MAX_FRAME_PIXELS` and
        :data:`MAX_FRAME_SIDE`.  Nothing is allocated.

        Parameters
        ----------
        height, width : int
            Input frame size in pixels.
        source : str, optional
            Where the size came from (a file name, "the reference size"), named in the
            message.

        Returns
        -------
        (int, int)
            The output ``(height, width)``.

        Raises
        ------
        ParameterError
            Naming the step, the size it would make, the limit and the total scale.
        """
        h, w = int(height), int(width)
        for i, step in enumerate(self._steps, start=1):
            h, w = _output_size((step,), h, w)
            if h * w > MAX_FRAME_PIXELS or max(h, w) > MAX_FRAME_SIDE:
                origin = f" ({source})" if source else ""
                scale = self.scale
                total = f"total scale x{scale:g}" if scale is not None else "fixed-size steps"
                raise ParameterError(
                    f"recipe {self.name!r}, step {i} ({step.op}): frames of {w}x{h} pixels "
                    f"(width x height) from a {int(width)}x{int(height)} input{origin}, "
                    f"{h * w * 3 / 2**30:,.1f} GiB per 8-bit RGB frame; the limit is "
                    f"{MAX_FRAME_PIXELS:,} pixels per frame and {MAX_FRAME_SIDE} per side "
                    f"({total}); use smaller resize factors",
                    path=self.path,
                )
        return h, w

    # --- running --------------------------------------------------------------------------
    def apply(self, frame: np.ndarray, *, channel_axis: int | None = None) -> np.ndarray:
        """Run every step on one frame.

        Parameters
        ----------
        frame : ndarray, (H, W) or (H, W, C), uint8/uint16/float32
            Not modified.  Temporal steps see a one-frame window (the identity).
        channel_axis : int, optional
            Axis of the channels if not last.

        Returns
        -------
        ndarray, (H', W'[, C]), same dtype (see :meth:`output_size`)
        """
        frame = np.asarray(frame)
        check_dtype(frame, f"pipeline {self.name!r}")
        arr, moved = to_channels_last(frame, f"pipeline {self.name!r}", channel_axis)
        return restore_layout(self._run_frame(arr, self._steps), moved)

    def apply_stack(
        self,
        stack: np.ndarray,
        *,
        channel_axis: int | None = None,
        executor: Executor | None = None,
        workers: int | None = None,
        out: np.ndarray | None = None,
        step: Callable[[int | None], None] | None = None,
    ) -> np.ndarray:
        """Run every step on a stack of frames, optionally in parallel threads.

        Consecutive per-frame steps are fused and run frame by frame (each of ``workers``
        tasks takes the next frame until none is left); temporal steps run on the whole stack,
        split into horizontal bands (one task per band), which is exact because they work
        pixel by pixel.

        Parameters
        ----------
        stack : ndarray, (T, H, W) or (T, H, W, C), uint8/uint16/float32
            Not modified.
        channel_axis : int, optional
            Axis of the channels in ``stack`` if not last.
        executor : concurrent.futures.Executor, optional
            Where to run tasks; ``None`` runs them in the calling thread.
        workers : int, optional
            Parallel tasks to submit to ``executor`` (its thread count); default: the CPUs
            this process may use.
        out : ndarray, optional
            Where to write the result: the shape, dtype and layout of the return value.  Saves
            allocating (and page-faulting) a fresh output array for every stack.
        step : callable, optional
            ``step(t)`` once output frame ``t`` is final (when the last step is per-frame: as
            each frame finishes, from the worker threads but one call at a time; after a
            temporal last step: all frames at the end), ``step(None)`` after each frame of an
            earlier per-frame group and each band of a temporal step.  What it raises
            (``Cancelled``) stops the other tasks and propagates.

        Returns
        -------
        ndarray, (T, H', W'[, C]), same dtype
            ``out`` when given.

        Raises
        ------
        ParameterError
            ``out`` has the wrong shape or dtype.
        """
        stack = np.asarray(stack)
        where = f"pipeline {self.name!r}"
        check_dtype(stack, where)
        arr, moved = to_channels_last(stack, where, channel_axis, temporal=True)
        target = None
        if out is not None:
            target = _check_out(out, self._result_shape(arr.shape), arr.dtype, moved, where)
        tasks = 1 if executor is None else (workers or usable_cpus())
        run = map if executor is None else executor.map
        groups = self._groups()
        step = _serialised(step)
        reported = False  # whether step(t) was called for every output frame
        for i, group in enumerate(groups):
            spec = group[0].operator
            last_group = i == len(groups) - 1
            final = target if last_group else None
            if spec.temporal:

                def band(b, s=group[0], a=arr):
                    part = s.operator.run(a[:, b], s.params)
                    if step is not None:
                        step(None)
                    return part

                bands = _bands(arr.shape[1], tasks)  # the height here, after any resize
                with opencv_serial() if len(bands) > 1 else nullcontext():
                    parts = list(run(band, bands))
                if len(parts) == 1:
                    arr = parts[0]
                else:  # straight into the caller's ``out`` when this is the last step
                    arr = np.concatenate(parts, axis=1, out=final)
            else:
                arr = self._run_frames(arr, group, executor, tasks, final, step, last_group)
                reported = last_group
        if step is not None and not reported:
            for t in range(arr.shape[0]):
                step(t)
        if target is not None:
            if arr is not target:
                target[...] = arr
            return out
        if not self._steps:
            arr = arr.copy()
        return restore_layout(arr, moved)

    def _result_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Channels-last output shape for a channels-last input stack of ``shape``."""
        return (shape[0], *_output_size(self._steps, *shape[1:3]), *shape[3:])

    def _run_frames(
        self,
        arr: np.ndarray,
        group: tuple[Step, ...],
        executor: Executor | None,
        tasks: int,
        out: np.ndarray | None = None,
        step: Callable[[int | None], None] | None = None,
        last_group: bool = False,
    ) -> np.ndarray:
        """Per-frame steps over a channels-last stack; each task writes its frames in place.

        ``step(t)`` after frame ``t`` when this is the last group, else ``step(None)``.
        """
        height, width = _output_size(group, *arr.shape[1:3])
        if out is None:
            out = np.empty((arr.shape[0], height, width) + arr.shape[3:], dtype=arr.dtype)

        *head, last = group

        def one(t: int) -> None:
            frame = self._run_frame(arr[t], head) if head else arr[t]
            last.operator.run_into(frame, out[t], last.params)
            if step is not None:
                step(t if last_group else None)

        for_each(one, arr.shape[0], executor, tasks)
        return out

    def _groups(self) -> list[tuple[Step, ...]]:
        """Steps split into runs of per-frame steps and single temporal steps."""
        groups: list[tuple[Step, ...]] = []
        current: list[Step] = []
        for step in self._steps:
            if step.operator.temporal:
                if current:
                    groups.append(tuple(current))
                    current = []
                groups.append((step,))
            else:
                current.append(step)
        if current:
            groups.append(tuple(current))
        return groups

    @staticmethod
    def _run_frame(frame: np.ndarray, steps: Iterable[Step]) -> np.ndarray:
        out = frame
        for step in steps:
            spec = step.operator
            if spec.temporal:
                out = spec.run(out[np.newaxis], step.params)[0]
            else:
                out = spec.run(out, step.params)
        return out if out is not frame else frame.copy()

    # --- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"name", "description", "steps": [{"op": ..., params...}, ...]}``."""
        return {
            "name": self.name,
            "description": self.description,
            "steps": [step.to_dict() for step in self._steps],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Pipeline:
        """Build from the :meth:`to_dict` form (as read from a recipe file).

        Raises
        ------
        ParameterError
            Unknown keys, a missing or empty ``steps`` list, unknown operators or parameters.
        """
        label = source or "recipe"
        if not isinstance(data, Mapping):
            raise ParameterError(
                f"{label}: expected a mapping with 'steps' (and optionally 'name', "
                f"'description'), got {type(data).__name__}"
            )
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise ParameterError(
                f"{label}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"expected {', '.join(sorted(_TOP_KEYS))}"
            )
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise ParameterError(f"{label}: 'steps' must be a non-empty list of steps")
        if len(raw_steps) > MAX_STEPS:
            raise ParameterError(
                f"{label}: {len(raw_steps)} steps; a recipe has at most {MAX_STEPS} steps"
            )
        name = data.get("name") or (Path(source).stem if source else "recipe")
        steps = []
        for i, raw in enumerate(raw_steps, start=1):
            if not isinstance(raw, Mapping) or not isinstance(raw.get("op"), str):
                raise ParameterError(
                    f"recipe {name!r}, step {i}: expected a mapping with an 'op' name, got {raw!r}"
                )
            steps.append((raw["op"], {k: v for k, v in raw.items() if k != "op"}))
        return cls(steps, name=str(name), description=str(data.get("description") or ""))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Pipeline:
        """Load a recipe from ``.json``, ``.yaml`` or ``.yml``.

        The file is read safely (see :mod:`napari_vsr.classic.recipe_text`): at most
        :data:`~napari_vsr.classic.recipe_text.MAX_RECIPE_BYTES`, UTF-8 only, YAML without
        anchors or aliases, bounded nesting and value count.  The output size is not checked
        here (it depends on the input): see :meth:`check_size`.

        Raises
        ------
        SourceNotFoundError
            The file does not exist.
        ParameterError
            Wrong suffix, not a regular file, too large, not UTF-8, unparsable text, YAML
            anchors/aliases, too deep or too many values, or an invalid recipe.
        UnreadableMediaError
            Permission denied or another read error.
        """
        p = Path(path)
        suffix = _suffix(p)
        text = read_recipe_text(p)
        data = load_recipe_data(text, "json" if suffix == ".json" else "yaml", path=p)
        pipeline = cls.from_dict(data, source=os.fspath(p))
        pipeline.path = os.fspath(p)
        return pipeline

    def to_text(self, fmt: str = "yaml") -> str:
        """The recipe as ``"yaml"`` or ``"json"`` text."""
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2) + "\n"
        if fmt == "yaml":
            return yaml.safe_dump(self.to_dict(), sort_keys=False)
        raise ParameterError(f"recipe format {fmt!r} is unknown; expected 'yaml' or 'json'")

    def to_file(self, path: str | os.PathLike) -> None:
        """Save as JSON or YAML, chosen by the suffix."""
        p = Path(path)
        suffix = _suffix(p)
        p.write_text(self.to_text("json" if suffix == ".json" else "yaml"), encoding="utf-8")

    # --- dunder ---------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pipeline):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __len__(self) -> int:
        return len(self._steps)

    def __repr__(self) -> str:
        ops = " -> ".join(step.op for step in self._steps)
        return f"Pipeline({self.name!r}: {ops})"


def _suffix(p: Path) -> str:
    suffix = p.suffix.lower()
    if suffix not in RECIPE_SUFFIXES:
        raise ParameterError(
            f"recipe files must end in {', '.join(RECIPE_SUFFIXES)}; got {suffix or 'no suffix'!r}",
            path=p,
        )
    return suffix


def _output_size(steps: Iterable[Step], height: int, width: int) -> tuple[int, int]:
    for step in steps:
        if step.op == "resize":
            if step.params["factor"] is not None:
                height, width = resize_output_size(height, width, step.params["factor"])
            else:
                height, width = step.params["size"]
    return height, width


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under ``taskset`` or a container
    CPU set), not every CPU of the machine; at most ``$NAPARI_VSR_THREADS`` when set (a Dask
    worker's share of its machine's cores)."""
    try:
        cpus = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    cap = os.environ.get("NAPARI_VSR_THREADS", "").strip()
    if cap.isdigit() and int(cap) > 0:
        cpus = min(cpus, int(cap))
    return cpus


def _check_out(
    out: np.ndarray, shape: tuple[int, ...], dtype: np.dtype, moved: int | None, where: str
) -> np.ndarray:
    """The channels-last view of a caller's ``out`` after checking it fits."""
    target = out if moved is None else np.moveaxis(out, moved, -1)
    if not isinstance(out, np.ndarray) or target.shape != shape or out.dtype != dtype:
        got = f"{out.shape} {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
        want = list(shape)
        if moved is not None:
            want.insert(moved, want.pop())
        raise ParameterError(f"{where}: out must be a {tuple(want)} {dtype} array, got {got}")
    return target


def _bands(height: int, parts: int) -> list[slice]:
    """Split ``range(height)`` into at most ``parts`` contiguous slices."""
    parts = max(1, min(parts, height))
    edges = [math.floor(i * height / parts) for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _serialised(step: Callable[[int | None], None] | None) -> Callable[[int | None], None] | None:
    """``step`` made safe to call from several worker threads (one call at a time)."""
    if step is None:
        return None
    lock = threading.Lock()

    def serialised(i: int | None) -> None:
        with lock:
            step(i)

    return serialised
