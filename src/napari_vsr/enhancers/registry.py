"""The method registry: :func:`make_enhancer` turns a method name and the user's options into an
:class:`~napari_vsr.enhancers.base.Enhancer`.  What the CLI and the widgets call.

PyTorch is imported only when a network method is made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from napari_vsr.enhancers.base import Enhancer
from napari_vsr.errors import ParameterError
from napari_vsr.jobs.progress import CancelToken, ProgressCallback

if TYPE_CHECKING:
    from napari_vsr.classic import Pipeline

#: the method names :func:`make_enhancer` accepts
METHODS = ("realbasicvsr", "classic")


def make_enhancer(
    method: str,
    *,
    preset: str | None = None,
    recipe: str | os.PathLike | None = None,
    pipeline: Pipeline | Mapping[str, Any] | None = None,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    precision: str = "auto",
    channels_last: bool = True,
    compile: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    frame_size: tuple[int, int] | None = None,
) -> Enhancer:
    """Build the enhancer for a method.

    Parameters
    ----------
    method : {"realbasicvsr", "classic"}
    preset : str, optional
        Classic only: a named pipeline (default "seed" when neither preset nor recipe is given).
    recipe : path-like, optional
        Classic only: a pipeline saved as JSON or YAML.
    pipeline : Pipeline or mapping, optional
        Classic only: an inline recipe, a :class:`~napari_vsr.classic.Pipeline` or its
        :meth:`~napari_vsr.classic.Pipeline.to_dict` form (what the pipeline builder makes);
        validated like a recipe file.
    weights, device, precision, channels_last, compile, progress, cancel
        RealBasicVSR only; see :class:`~napari_vsr.enhancers.realbasicvsr.RealBasicVSREnhancer`.
    frame_size : (int, int), optional
        Classic only: the input ``(height, width)``; a recipe whose frames would grow past
        the limits of :meth:`~napari_vsr.classic.Pipeline.check_size` is refused here, before
        any work (the enhancer checks again on its first chunk in any case).

    Returns
    -------
    Enhancer
        Owned by the caller, who calls ``close()`` (or uses it in a ``with`` block).

    Raises
    ------
    ParameterError
        Unknown method, options that belong to the other method, more than one of
        preset/recipe/pipeline, or an invalid inline recipe.
    """
    key = (method or "").strip().lower()
    if key == "realbasicvsr":
        if preset is not None or recipe is not None or pipeline is not None:
            raise ParameterError(
                "a preset or recipe (--preset/--recipe, or a built pipeline) belongs to the "
                "classic method, not realbasicvsr"
            )
        from napari_vsr.enhancers.realbasicvsr import RealBasicVSREnhancer

        return RealBasicVSREnhancer(
            weights,
            device=device,
            precision=precision,
            channels_last=channels_last,
            compile=compile,
            progress=progress,
            cancel=cancel,
        )
    if key == "classic":
        if weights is not None:
            raise ParameterError("--weights belongs to --method realbasicvsr, not classic")
        given = [what for what, value in (("a preset", preset), ("a recipe file", recipe),
                                          ("a built pipeline", pipeline)) if value is not None]
        if len(given) > 1:
            raise ParameterError(
                "choose one of a preset (--preset), a recipe file (--recipe) or a built "
                f"pipeline; got {' and '.join(given)}"
            )
        from napari_vsr.classic import Pipeline, get_preset
        from napari_vsr.enhancers.classic import ClassicEnhancer

        if pipeline is not None:
            chosen = (pipeline if isinstance(pipeline, Pipeline)
                      else Pipeline.from_dict(pipeline))
        elif recipe is not None:
            chosen = Pipeline.from_file(recipe)
        else:
            chosen = get_preset(preset or "seed")
        enhancer = ClassicEnhancer(chosen)
        if frame_size is not None:
            enhancer.check_frame_size(*frame_size)
        return enhancer
    raise ParameterError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
