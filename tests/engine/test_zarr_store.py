"""ZarrWriter (atomic, streaming) and the pre-sized result store."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from napari_vsr.errors import OutputExistsError, SourceNotFoundError, WriteError
from napari_vsr.io.zarr_store import ZarrWriter, create_result_store, open_result_store


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


def test_writer_round_trip_and_metadata(tmp_path, rng):
    frames = rng.integers(0, 65535, (5, 6, 7), dtype=np.uint16)
    target = tmp_path / "out.zarr"
    with ZarrWriter(
        target, metadata={"fps": 29.97, "fps_fraction": Fraction(30000, 1001), "p": tmp_path}
    ) as w:
        for f in frames:
            w.write(f)
        assert not target.exists()  # nothing under the target name until close
    arr = open_result_store(target, mode="r")
    assert arr.shape == (5, 6, 7) and arr.dtype == np.uint16 and arr.chunks == (1, 6, 7)
    np.testing.assert_array_equal(arr[:], frames)
    assert arr.attrs["fps"] == 29.97 and arr.attrs["fps_fraction"] == "30000/1001"
    assert _leftovers(tmp_path) == []


def test_writer_aborts_on_exception_and_refuses_existing(tmp_path, rng):
    target = tmp_path / "out.zarr"
    with pytest.raises(KeyboardInterrupt):
        with ZarrWriter(target) as w:
            w.write(np.zeros((4, 4, 3), np.uint8))
            raise KeyboardInterrupt
    assert not target.exists() and _leftovers(tmp_path) == []
    with ZarrWriter(target) as w:
        w.write(np.ones((4, 4, 3), np.uint8))
    with pytest.raises(OutputExistsError):
        ZarrWriter(target)
    with ZarrWriter(target, overwrite=True) as w:
        for _ in range(2):
            w.write(np.full((2, 2), 7, np.float32))
    arr = open_result_store(target)
    assert arr.shape == (2, 2, 2) and arr.dtype == np.float32 and float(arr[1, 1, 1]) == 7


def test_writer_rejects_mismatched_frame(tmp_path):
    w = ZarrWriter(tmp_path / "x.zarr")
    w.write(np.zeros((4, 4), np.uint8))
    with pytest.raises(WriteError, match="expected"):
        w.write(np.zeros((4, 5), np.uint8))
    assert _leftovers(tmp_path) == [] and not (tmp_path / "x.zarr").exists()


def test_result_store_filled_in_place(tmp_path):
    store = create_result_store(tmp_path / "r.zarr", (3, 8, 8, 3), np.uint8, attrs={"method": "x"})
    assert store.chunks == (1, 8, 8, 3)
    store[1] = 9
    again = open_result_store(tmp_path / "r.zarr")
    assert again[0].max() == 0 and again[1].min() == 9 and again.attrs["method"] == "x"
    with pytest.raises(OutputExistsError):
        create_result_store(tmp_path / "r.zarr", (1, 2, 2), np.uint8)
    create_result_store(tmp_path / "r.zarr", (1, 2, 2), np.uint8, overwrite=True)
    with pytest.raises(SourceNotFoundError):
        open_result_store(tmp_path / "missing.zarr")
