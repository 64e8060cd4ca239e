"""A job's manifest: what it computes, written once when the job starts.

The manifest (JSON, in the job folder) records the source (path and fingerprint), the method
and its options, the weights' SHA-256, the resolved engine parameters, the segment plan and the
output frame layout.  Everything a Dask worker needs to compute a segment on its own is in it.
:func:`mismatch` compares a stored manifest with the one a new command would write, field by
field, so ``--resume`` refuses a job made by another command with a message that says what
differs.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from typing import Any

from napari_vsr.jobs.segments import Segment

MANIFEST_VERSION = 1

#: (key path, what to call it) of the fields that must match for a resume
_COMPARED = (
    (("version",), "manifest version"),
    (("source", "path"), "source"),
    (("source", "fingerprint"), "source file (size, time or content)"),
    (("source", "skip_bad_frames"), "--skip-bad-frames"),
    (("frames",), "frame range"),
    (("method", "method"), "method"),
    (("method", "preset"), "preset"),
    (("method", "recipe"), "recipe"),
    (("method", "pipeline"), "recipe steps (built in napari)"),
    (("recipe_sha256",), "recipe contents"),
    (("weights_sha256",), "weights (SHA-256)"),
    (("precision",), "precision"),
    (("device_type",), "device type"),
    (("method", "channels_last"), "memory format"),
    (("engine",), "engine parameters (chunk, overlap, tiles)"),
    (("segments",), "segment plan"),
    (("output", "frame_shape"), "output frame shape"),
    (("output", "dtype"), "output dtype"),
)


def build_manifest(
    *,
    source: dict[str, Any],
    frames: tuple[int, int],
    method: dict[str, Any],
    recipe_sha256: str | None,
    weights_sha256: str | None,
    precision: str | None,
    device_type: str,
    parameters: dict[str, Any],
    engine: dict[str, Any],
    segment: int,
    segments: list[Segment],
    output: dict[str, Any],
) -> dict[str, Any]:
    """The manifest document (JSON-safe)."""
    return {
        "version": MANIFEST_VERSION,
        # names this job, not its contents: a task of an earlier job in the same folder (a
        # worker still running after --overwrite started over) finds another id, commits nothing
        "job_id": uuid.uuid4().hex,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "source": source,
        "frames": [int(frames[0]), int(frames[1])],
        "method": method,
        "recipe_sha256": recipe_sha256,
        "weights_sha256": weights_sha256,
        "precision": precision,
        "device_type": device_type,
        "parameters": parameters,
        "engine": engine,
        "segment": int(segment),
        "segments": [[s.start, s.stop] for s in segments],
        "output": output,
    }


def manifest_segments(manifest: dict[str, Any]) -> list[Segment]:
    """The segment plan stored in a manifest."""
    return [Segment(i, int(a), int(b)) for i, (a, b) in enumerate(manifest["segments"])]


def _get(doc: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def mismatch(stored: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """None when ``wanted`` is the same job as ``stored``; else what differs, in words."""
    for path, what in _COMPARED:
        a, b = _get(stored, path), _get(wanted, path)
        if a != b:
            while isinstance(a, dict) and isinstance(b, dict):  # name the field that differs
                key = next(k for k in sorted(set(a) | set(b), key=str) if a.get(k) != b.get(k))
                what, a, b = f"{what} ({key})", a.get(key), b.get(key)
            return f"{what}: {_short(a)} in the job, {_short(b)} now"
    return None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
