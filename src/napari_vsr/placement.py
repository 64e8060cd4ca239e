"""Where a result layer goes in world coordinates so that it overlays its source frame-synced.

Pure arithmetic on napari's per-axis ``scale`` and ``translate`` (no Qt, no napari import).

napari puts the centre of data pixel ``i`` at world ``translate + i * scale``.  An x``s``
result pixel ``j`` covers source coordinate ``(j + 0.5) / s - 0.5`` (the half-pixel convention
of bicubic resizing and of RealBasicVSR's bilinear skip), so on each upscaled axis::

    scale'     = scale / s
    translate' = translate + scale * (-(s - 1) / (2 s))      # x4: -3/8 of a source pixel

and the time axis keeps the source's scale, shifted by the first frame of the range.
"""

from __future__ import annotations

from collections.abc import Sequence


def result_placement(
    scale: Sequence[float],
    translate: Sequence[float],
    factor: int,
    *,
    first_frame: int = 0,
    time_axis: int = 0,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Scale and translate of a result layer made from a source layer.

    Parameters
    ----------
    scale, translate : sequence of float, one per layer dimension
        The source layer's (napari ``layer.scale`` / ``layer.translate``; for an RGB layer the
        channel axis is not a dimension).  The last two dimensions are the spatial ones.
    factor : int
        Spatial scale factor of the enhancer (1 keeps the spatial placement).
    first_frame : int
        Index of the source frame that became result frame 0 (a frame range).
    time_axis : int
        The time dimension.

    Returns
    -------
    (scale, translate) : tuples of float, same length as the inputs.
    """
    scale = [float(v) for v in scale]
    translate = [float(v) for v in translate]
    if len(scale) != len(translate) or len(scale) < 3:
        raise ValueError(
            f"expected scale and translate for at least 3 dimensions (time, y, x), got "
            f"{len(scale)} and {len(translate)}"
        )
    new_scale, new_translate = list(scale), list(translate)
    for axis in (-2, -1):
        new_scale[axis] = scale[axis] / factor
        new_translate[axis] = translate[axis] + scale[axis] * (-(factor - 1) / (2 * factor))
    new_translate[time_axis] = translate[time_axis] + scale[time_axis] * first_frame
    return tuple(new_scale), tuple(new_translate)


def frame_index(world_t: float, scale_t: float, translate_t: float, length: int) -> int | None:
    """Data frame index of a layer at world time ``world_t``; None when outside the layer."""
    i = round((world_t - translate_t) / scale_t)
    return i if 0 <= i < length else None
