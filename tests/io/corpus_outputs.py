"""Corpus entries for the output side (issue 9, item 4): inputs that look like outputs.

``build(folder)`` makes them in ``folder`` and returns name -> path.  Each must give exit code
0, 1 or 2 with one stderr line through ``info`` and ``enhance --method classic``:

- ``own_store.zarr``: a store napari-vsr wrote (with its marker): a valid input.
- ``not_a_store.zarr``: a folder named ``.zarr`` with a broken ``zarr.json``: one line.
- ``folder_named.mp4``: a folder of PNG frames whose name says video.
- ``partial_leftover``: a folder holding only a killed run's hidden partial
  (``.x.mp4.partial-<pid>-<tag>.mp4``) and the marker: no frames, one line.
"""

from __future__ import annotations

import pathlib

import numpy as np


def build(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    from napari_vsr.io import write_frames_to
    from napari_vsr.io.writer_base import write_marker

    folder = pathlib.Path(folder)
    out: dict[str, pathlib.Path] = {}
    frames = (np.arange(3 * 16 * 24 * 3, dtype=np.uint32) % 251).astype(np.uint8)
    frames = frames.reshape(3, 16, 24, 3)
    out["own_store.zarr"] = write_frames_to(folder / "own_store.zarr", frames)
    broken = folder / "not_a_store.zarr"
    broken.mkdir()
    (broken / "zarr.json").write_text('{"zarr_format": 3, "node_type": "array"')
    out["not_a_store.zarr"] = broken
    named = folder / "folder_named.mp4"
    write_frames_to(str(named) + "/", frames)
    out["folder_named.mp4"] = named
    left = folder / "partial_leftover"
    left.mkdir()
    (left / ".x.mp4.partial-999999-0badf00d.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" * 4)
    write_marker(left, "frames")
    out["partial_leftover"] = left
    return out
