"""Folders of images and multi-page TIFF stacks."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import tifffile

from napari_vsr.errors import (
    FrameStackError,
    SourceNotFoundError,
    UnreadableMediaError,
    UnsupportedDtypeError,
)
from napari_vsr.io import is_supported, open_frames


def _png(path, arr):
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR if arr.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    assert cv2.imwrite(str(path), arr)


def test_folder_natural_sort_and_ignored_files(tmp_path, media_mod):
    # written in a shuffled order; names that sort wrongly as plain strings
    for i in (10, 2, 0, 1, 11, 3):
        _png(tmp_path / f"frame_{i}.png", media_mod.barcode_frame(i, 40, 144))
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / "thumbs.db").write_bytes(b"\0\1")
    assert is_supported(tmp_path)
    with open_frames(tmp_path) as v:
        assert v.shape == (6, 40, 144, 3) and v.dtype == np.uint8 and v.rgb
        assert [media_mod.read_barcode(f) for f in v] == [0, 1, 2, 3, 10, 11]
        assert v.metadata["kind"] == "folder"
        assert v.metadata["files"][:3] == ["frame_0.png", "frame_1.png", "frame_2.png"]


@pytest.mark.parametrize(
    "shape,dtype,ext",
    [
        ((24, 32), np.uint8, ".png"),
        ((24, 32, 3), np.uint16, ".png"),
        ((24, 32, 4), np.uint8, ".png"),
        ((24, 32, 3), np.uint8, ".bmp"),
        ((24, 32), np.uint16, ".tif"),
        ((24, 32, 3), np.float32, ".tiff"),
    ],
)
def test_folder_keeps_dtype_and_channels(tmp_path, rng, shape, dtype, ext):
    hi = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    frames = [(rng.random(shape) * hi).astype(dtype) for _ in range(3)]
    for i, f in enumerate(frames):
        if ext in (".tif", ".tiff"):
            tifffile.imwrite(tmp_path / f"f{i}{ext}", f)
        else:
            _png(tmp_path / f"f{i}{ext}", f)
    with open_frames(tmp_path) as v:
        assert v.shape == (3, *shape) and v.dtype == dtype
        np.testing.assert_array_equal(v[:], np.stack(frames))


def test_folder_jpeg_is_read(tmp_path, media_mod):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.JPG"), media_mod.barcode_frame(i, 40, 144))
    with open_frames(tmp_path) as v:
        assert [media_mod.read_barcode(f) for f in v] == [0, 1, 2]


def test_empty_folder_and_folder_without_images_are_claimed_and_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert is_supported(empty)  # claimed, so napari shows our message, not "refused the file"
    with pytest.raises(FrameStackError, match="no image frames .* in this folder") as info:
        open_frames(empty)
    assert str(empty) in str(info.value) and "it is empty" in str(info.value)
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "readme.txt").write_text("x")
    assert is_supported(texts)
    with pytest.raises(FrameStackError, match="it holds 1 other entry"):
        open_frames(texts)


def test_single_images_and_zarr_folders_are_not_claimed(tmp_path):
    _png(tmp_path / "lone.png", np.zeros((8, 8, 3), np.uint8))
    assert not is_supported(tmp_path / "lone.png")  # napari's built-in reader opens it
    store = tmp_path / "store"
    store.mkdir()
    (store / ".zgroup").write_text('{"zarr_format": 2}')
    assert not is_supported(store)
    (tmp_path / "out.zarr").mkdir()
    assert not is_supported(tmp_path / "out.zarr")


def test_unreadable_frame_names_the_file(tmp_path):
    for i in range(3):
        _png(tmp_path / f"f{i}.png", np.full((8, 8), i, np.uint8))
    (tmp_path / "f1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with open_frames(tmp_path) as v:
        v[0]
        with pytest.raises(UnreadableMediaError, match="f1.png") as info:
            v[1]
    assert "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_frame_without_read_permission_names_the_file(tmp_path):
    for i in range(2):
        _png(tmp_path / f"f{i}.png", np.full((8, 8), i, np.uint8))
    (tmp_path / "f1.png").chmod(0)
    try:
        with open_frames(tmp_path) as v:
            with pytest.raises(UnreadableMediaError, match="f1.png: cannot read the frame: permis"):
                v[1]
    finally:
        (tmp_path / "f1.png").chmod(0o644)


def test_frame_deleted_after_open_names_the_file(tmp_path):
    for i in range(3):
        _png(tmp_path / f"f{i}.png", np.full((8, 8), i, np.uint8))
    with open_frames(tmp_path) as v:
        (tmp_path / "f2.png").unlink()
        np.testing.assert_array_equal(v[1], np.full((8, 8), 1, np.uint8))
        with pytest.raises(SourceNotFoundError, match="f2.png: the frame file disappeared"):
            v[2]


def test_png_alpha_and_16_bit_are_kept(tmp_path, rng):
    rgba = rng.integers(0, 65535, size=(3, 12, 16, 4), dtype=np.uint16)
    for i, f in enumerate(rgba):
        _png(tmp_path / f"a{i}.png", f)
    with open_frames(tmp_path) as v:
        assert v.shape == (3, 12, 16, 4) and v.dtype == np.uint16 and v.rgb
        np.testing.assert_array_equal(v[:], rgba)


def test_mixed_size_folder(tmp_path):
    _png(tmp_path / "a_1.png", np.zeros((20, 30, 3), np.uint8))
    _png(tmp_path / "a_2.png", np.zeros((20, 30, 3), np.uint8))
    _png(tmp_path / "a_10.png", np.zeros((22, 30, 3), np.uint8))
    with pytest.raises(FrameStackError, match="a_10.png") as info:
        open_frames(tmp_path)
    assert isinstance(info.value, ValueError)


def test_mixed_channels_detected_on_access(tmp_path):
    _png(tmp_path / "0.png", np.zeros((20, 30, 3), np.uint8))
    _png(tmp_path / "1.png", np.zeros((20, 30), np.uint8))
    with open_frames(tmp_path) as v:
        with pytest.raises(FrameStackError, match="1.png"):
            v[1]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("rgb", [False, True])
def test_tiff_stack_round_trip(tmp_path, rng, dtype, rgb):
    shape = (5, 16, 24, 3) if rgb else (5, 16, 24)
    hi = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    data = (rng.random(shape) * hi).astype(dtype)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, data, photometric="rgb" if rgb else "minisblack")
    with open_frames(path) as v:
        assert v.shape == shape and v.dtype == dtype and v.rgb == rgb
        np.testing.assert_array_equal(v[:], data)
        np.testing.assert_array_equal(v[3], data[3])


def test_tiff_channel_axis_is_kept_even_with_three_channels(tmp_path, rng):
    data = rng.integers(0, 255, size=(4, 3, 16, 24), dtype=np.uint8)  # T, C, H, W
    path = tmp_path / "tcyx.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TCYX"})
    with open_frames(path) as v:
        # three fluorescence channels are not RGB: C stays an axis
        assert v.shape == (4, 3, 16, 24) and not v.rgb
        assert v.metadata["axes"] == "TCYX" and v.metadata["channel_axis"] == 1
        np.testing.assert_array_equal(v[:], data)


def test_single_page_tiff_is_one_frame(tmp_path):
    path = tmp_path / "one.TIFF"
    tifffile.imwrite(path, np.arange(12, dtype=np.uint16).reshape(3, 4))
    with open_frames(path) as v:
        assert v.shape == (1, 3, 4) and v.dtype == np.uint16


@pytest.mark.parametrize("dtype", [np.float64, np.int16, np.uint32])
def test_tiff_unsupported_dtype(tmp_path, dtype):
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, np.zeros((3, 8, 8), dtype))
    with pytest.raises(UnsupportedDtypeError, match=str(np.dtype(dtype))) as info:
        open_frames(path)
    assert "bad.tif" in str(info.value) and isinstance(info.value, TypeError)


def test_tiff_any_channel_count(tmp_path, rng):
    data = rng.integers(0, 255, size=(2, 5, 8, 8), dtype=np.uint8)
    path = tmp_path / "c5.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TCYX"})
    with open_frames(path) as v:
        assert v.shape == (2, 5, 8, 8) and v.metadata["channel_names"] == [
            f"C{k}" for k in range(5)
        ]
        np.testing.assert_array_equal(v[1], data[1])
