"""What a job is asked to do: one record built by the CLI or a widget, read by the runner.

Every field is plain data (JSON-serialisable through :meth:`MethodOptions.to_dict`), so a job's
method can be written into its manifest and rebuilt by a Dask worker process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from napari_vsr.errors import ParameterError


@dataclass(frozen=True)
class MethodOptions:
    """The enhancement method and its options, as a user chose them.

    ``device``/``precision``/``weights``/``channels_last``/``compile`` apply to RealBasicVSR,
    ``preset``/``recipe``/``pipeline`` to the classic method (at most one of the three; see
    :func:`napari_vsr.enhancers.make_enhancer`).

    ``pipeline`` is an inline recipe: the :meth:`~napari_vsr.classic.Pipeline.to_dict` form of a
    pipeline (``{"name", "description", "steps": [{"op": ..., <param>: value}, ...]}``, the
    same keys as a recipe file), as the pipeline builder makes it.  A
    :class:`~napari_vsr.classic.Pipeline` may be given; it is stored as that dict (a deep copy
    of plain JSON types), so the options stay JSON-serialisable and go into a job's manifest
    as they are: a resumed job or a Dask worker rebuilds the same pipeline.

    Raises
    ------
    ParameterError
        ``pipeline`` is neither a Pipeline nor a mapping, or holds values JSON cannot write.
    """

    method: str = "realbasicvsr"
    preset: str | None = None
    recipe: str | None = None
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    pipeline: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.pipeline is not None:
            object.__setattr__(self, "pipeline", _plain_recipe(self.pipeline))

    def __hash__(self) -> int:  # the inline recipe is a dict: hash the JSON form
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> MethodOptions:
        known = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc}
        return cls(**known)

    def resolved(self) -> MethodOptions:
        """Paths made absolute (a worker in another folder reads the same files)."""
        def absolute(p):
            return None if p is None else os.path.abspath(os.fspath(p))

        return MethodOptions(**{**asdict(self), "recipe": absolute(self.recipe),
                                "weights": absolute(self.weights)})

    def build(self, *, frame_size: tuple[int, int] | None = None, progress=None, cancel=None):
        """Make the :class:`~napari_vsr.enhancers.Enhancer` (loads weights for a network).

        ``progress`` receives download :class:`~napari_vsr.jobs.progress.Progress` records
        while a checkpoint downloads; ``cancel`` stops the download.
        """
        from napari_vsr.enhancers import make_enhancer

        return make_enhancer(
            self.method, preset=self.preset, recipe=self.recipe, pipeline=self.pipeline,
            weights=self.weights, device=self.device, precision=self.precision,
            channels_last=self.channels_last, compile=self.compile, progress=progress,
            cancel=cancel, frame_size=frame_size)


def _plain_recipe(value: Any) -> dict[str, Any]:
    """An inline recipe as a fresh dict of plain JSON types (a Pipeline: its ``to_dict()``)."""
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, Mapping):
        value = to_dict()
    if not isinstance(value, Mapping):
        raise ParameterError(
            f"method options: 'pipeline' must be a recipe (a Pipeline or its to_dict() form), "
            f"got {type(value).__name__}"
        )
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"method options: the inline recipe holds a value that is not plain data ({exc})"
        ) from None


@dataclass(frozen=True)
class EngineOptions:
    """How the engine cuts the work (None: the method's default or an automatic choice).

    ``batch``: chunks run through the method together (None: from free device memory; 1 on
    the CPU).  ``serial``: decode, enhance and write one after another in one thread (the
    baseline; the output is the same).
    """

    chunk: int | None = None
    overlap: int | None = None
    tile: int | None = None
    tile_overlap: int | None = None
    batch: int | None = None
    serial: bool = False


@dataclass(frozen=True)
class Placement:
    """Where the source layer sits in napari's world (per layer dimension, RGB axis excluded)."""

    scale: tuple[float, ...] | None = None
    translate: tuple[float, ...] | None = None


@dataclass(frozen=True)
class JobRequest:
    """Everything one job needs.

    Attributes
    ----------
    source : str, path or array-like
        A path the readers open (video, frame folder, TIFF, ``.zarr`` result store), or a
        numpy-like (T, ...) array (a napari layer's data; local runs only).
    output : str or path, optional
        The file or folder to write (kind from its extension: video, ``.tif``, ``.zarr``,
        frame folder).  None with ``store`` set: the widget's result store.
    method : MethodOptions
    engine : EngineOptions
    frame_range : (start, stop), optional
        Half-open output frames; None for all.  ``stop`` past the end is clipped.
    segment : int, optional
        Frames per segment (rounded up to whole chunks); None picks one.
    job_dir : str or path, optional
        The state folder; None: beside the output.
    durable : bool
        Keep a state folder (committed segments, resumable); False keeps nothing on disk but
        the output (previews).
    live : bool
        A ``.zarr`` output is a pre-sized store filled as frames finish, visible (flagged
        ``partial``) while the job runs, so a napari layer can show it; else the output appears
        only when complete.
    resume : bool
        Continue an interrupted job with the same manifest.
    overwrite : bool
        Replace the output and any interrupted job of it.
    keep_job : bool
        Keep the state folder after success.
    scheduler : str, optional
        None or "" runs here; ``"local:N"`` a LocalCluster of N workers; ``"tcp://HOST:PORT"``
        a running Dask scheduler.
    video : VideoOptions, optional
        Options of a video output (codec, crf, lossless, colour matrix and range); the runner
        adds the source's colour tags, frame times and audio/subtitle streams.
    no_audio : bool
        Do not copy the source's audio and subtitles into a video output.
    skip_bad_frames : bool
        Replace undecodable video frames by the previous one instead of stopping.
    hwaccel : str, optional
        Decode a video source on the GPU: ``"cuda"`` (NVDEC), ``"auto"`` (NVDEC when the
        build, driver and GPU have it); None decodes in software.
    source_name : str, optional
        How the source is named in layer names and metadata (default: the file name).
    rgb : bool, optional
        Whether the source's last axis holds channels (None: the reader's flag or a guess).
    placement : Placement, optional
        The source layer's placement, for the result's frame-synced placement.
    extra_metadata : dict
        More provenance to record (the widget's own notes).
    """

    source: Any
    output: str | os.PathLike | None = None
    method: MethodOptions = field(default_factory=MethodOptions)
    engine: EngineOptions = field(default_factory=EngineOptions)
    frame_range: tuple[int | None, int | None] | None = None
    segment: int | None = None
    job_dir: str | os.PathLike | None = None
    durable: bool = True
    live: bool = False
    resume: bool = False
    overwrite: bool = False
    keep_job: bool = False
    scheduler: str | None = None
    video: Any = None
    no_audio: bool = False
    skip_bad_frames: bool = False
    hwaccel: str | None = None
    source_name: str | None = None
    rgb: bool | None = None
    placement: Placement = field(default_factory=Placement)
    extra_metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def source_path(self) -> str | None:
        """The source as an absolute path, or None for an array source."""
        if isinstance(self.source, str | os.PathLike):
            return os.path.abspath(os.fspath(self.source))
        return None

    def name(self) -> str:
        if self.source_name:
            return self.source_name
        path = self.source_path
        return Path(path).name if path else "array"


def parse_scheduler(text: str | None) -> tuple[str, int | str] | None:
    """``None``/"" -> None (run here); ``"local:N"`` -> ("local", N); ``"tcp://h:p"`` ->
    ("address", text).  Anything else is a :class:`ParameterError`."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if text.startswith("local"):
        _, _, n = text.partition(":")
        try:
            workers = int(n) if n else 0
        except ValueError:
            workers = -1
        if workers < 1 and n:
            raise ParameterError(f"--scheduler: expected local:N with N >= 1 workers, got {text!r}")
        return ("local", workers)
    if "://" in text:
        return ("address", text)
    raise ParameterError(
        f"--scheduler: expected local:N or a scheduler address like tcp://HOST:8786, got {text!r}"
    )
