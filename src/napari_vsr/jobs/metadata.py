"""The one provenance record of a result, written by every sink and read back by the reader.

A result (zarr store, TIFF stack, frame folder; a video keeps it beside nothing but its own
tags) carries under the key :data:`METADATA_KEY` a dict with:

``schema``        :data:`SCHEMA`
``source``        {"path": absolute path or None, "name": display name}
``frame_range``   [start, stop] of the source's frames (half-open)
``fps``           "num/den" (exact) or None; ``fps_float`` the same as a number
``method``        "realbasicvsr" | "classic"; ``parameters`` the enhancer's own description
``options``       the method options the user chose (preset, recipe, device, precision, ...)
``weights_sha256``, ``device``, ``precision``
``engine``        {"chunk", "overlap", "tile", "tile_overlap", "segment"}
``timing``        {"started", "finished", "elapsed_s", "segments_computed", "segments_reused"}
``layer``         napari placement: {"name", "rgb", "scale", "translate"}
``partial``       True while the job that writes it has not finished
``job_dir``       its state folder (for Resume) while partial

Zarr stores hold it as the array attribute ``napari_vsr`` (plus a top-level ``fps``), TIFF
stacks in the metadata JSON of the first page, frame folders in ``napari_vsr.json``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

SCHEMA = "napari-vsr/result/1"
METADATA_KEY = "napari_vsr"


def fps_text(fps) -> str | None:
    """An exact frame rate as ``"num/den"`` (None stays None)."""
    if fps is None:
        return None
    f = Fraction(fps).limit_denominator(1_000_000)
    return f"{f.numerator}/{f.denominator}"


def result_metadata(attrs: dict[str, Any] | None) -> dict[str, Any] | None:
    """The provenance record in a store's attributes or a writer's metadata dict, or None.

    Accepts the nested layout every sink writes now (also inside a reader's
    ``stored_metadata``: TIFF stacks, frame folders) and the flat layout of earlier CLI stores
    (``method`` and ``source_path`` at the top level).
    """
    if not isinstance(attrs, dict):
        return None
    nested = attrs.get(METADATA_KEY)
    if isinstance(nested, dict):
        return nested
    stored = attrs.get("stored_metadata")  # what the TIFF and frame-folder readers report
    if isinstance(stored, dict):
        return result_metadata(stored)
    if "method" in attrs and ("source_path" in attrs or "source" in attrs):
        md = dict(attrs)
        md.setdefault("source", {"path": attrs.get("source_path"), "name": None})
        return md
    return None


def result_fps(attrs: dict[str, Any] | None) -> Fraction | None:
    """The frame rate of a result (exact when stored as "num/den")."""
    md = result_metadata(attrs) or {}
    for value in (md.get("fps"), (attrs or {}).get("fps_fraction"), (attrs or {}).get("fps")):
        if value is None:
            continue
        try:
            return Fraction(str(value)).limit_denominator(1_000_000)
        except (ValueError, ZeroDivisionError):
            continue
    return None


def result_layer(attrs: dict[str, Any] | None) -> dict[str, Any]:
    """napari keywords (name, rgb, scale, translate) stored with a result, or {}."""
    md = result_metadata(attrs) or {}
    layer = md.get("layer")
    return dict(layer) if isinstance(layer, dict) else {}
