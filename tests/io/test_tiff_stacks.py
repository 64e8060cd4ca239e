"""Microscopy TIFF stacks: channel and Z axes, metadata, compression, damaged files, writing back.

Every TIFF is written in the test by tifffile (ImageJ hyperstacks, OME-TIFF, compressed,
shaped) and read back through :func:`napari_vsr.io.open_frames`; damaged files are real files
cut or overwritten in the test.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_vsr.errors import (
    FrameStackError,
    TruncatedMediaError,
    UnreadableMediaError,
    VsrError,
)
from napari_vsr.io import open_frames, write_frames_to
from napari_vsr.io.stack_writers import TiffStackWriter

_spec = importlib.util.spec_from_file_location(
    "corpus_stacks", Path(__file__).with_name("corpus_stacks.py")
)
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)


def _tzcyx(t=4, z=3, c=2, h=16, w=20) -> np.ndarray:
    """uint16 values that encode (t, z, c) and the column: any mix-up shows."""
    data = np.empty((t, z, c, h, w), np.uint16)
    for idx in np.ndindex(t, z, c):
        data[idx] = 1000 * idx[2] + 100 * idx[1] + 10 * idx[0] + np.arange(w)
    return data


# --- axes and metadata ---------------------------------------------------------------------------
def test_two_channel_imagej_stack_keeps_c_with_names_and_ranges(tmp_path):
    data = corpus.fluorescence(t=6, c=2)
    path = tmp_path / "cells.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        metadata={"axes": "TCYX", "Labels": ["GFP", "mCherry"], "Ranges": (0, 900, 100, 4000)},
    )
    with open_frames(path) as v:
        assert v.shape == (6, 2, 24, 32) and v.dtype == np.uint16 and not v.rgb
        md = v.metadata
        assert md["axes"] == "TCYX" and md["channel_axis"] == 1
        assert md["channel_names"] == ["GFP", "mCherry"]
        assert md["channel_colors"] == ["green", "magenta"]
        assert md["channel_ranges"] == [[0.0, 900.0], [100.0, 4000.0]]
        np.testing.assert_array_equal(v[4], data[4])
        np.testing.assert_array_equal(v[:], data)


def test_imagej_hyperstack_tzcyx(tmp_path):
    data = _tzcyx()
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX", "fps": 2.5})
    with open_frames(path) as v:
        assert v.shape == data.shape and v.metadata["axes"] == "TZCYX"
        assert v.metadata["channel_axis"] == 2 and v.metadata["fps"] == 2.5
        for i in (3, 0, 2):  # random access, frame by frame
            np.testing.assert_array_equal(v[i], data[i])
        np.testing.assert_array_equal(v[1:3, 2, 1], data[1:3, 2, 1])


def test_ome_axes_put_in_one_order_with_channel_names_and_colours(tmp_path):
    data = _tzcyx()
    path = tmp_path / "embryo.ome.tif"
    stored = np.moveaxis(data, 2, 1)  # TCZYX on disk
    tifffile.imwrite(
        path,
        stored,
        ome=True,
        metadata={
            "axes": "TCZYX",
            "Channel": {"Name": ["DAPI", "Actin"], "Color": [0x0000FFFF, 0x00FF00FF]},
        },
    )
    with open_frames(path) as v:
        md = v.metadata
        assert md["file_axes"] == "TCZYX" and md["axes"] == "TZCYX"
        assert v.shape == data.shape
        assert md["channel_names"] == ["DAPI", "Actin"]
        assert md["channel_colors"] == ["blue", "green"]
        np.testing.assert_array_equal(v[:], data)


def test_z_stack_without_time_is_a_sequence_of_planes(tmp_path):
    data = _tzcyx(t=1, z=5, c=1)[0, :, 0]  # Z, Y, X
    path = tmp_path / "z.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZYX"})
    with open_frames(path) as v:
        assert v.shape == (5, 16, 20) and v.metadata["axes"] == "TYX"
        assert v.metadata["file_axes"] == "ZYX" and "channel_axis" not in v.metadata
        np.testing.assert_array_equal(v[:], data)


def test_rgb_tiff_stays_rgb(tmp_path, rng):
    data = rng.integers(0, 255, size=(3, 10, 12, 3), dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, data, photometric="rgb")
    with open_frames(path) as v:
        assert v.rgb and v.shape == data.shape and v.metadata["axes"] == "TYXS"
        assert "channel_axis" not in v.metadata


# --- compression --------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", ["lzw", "deflate", "zstd", "zlib", "lzma", "packbits"])
@pytest.mark.parametrize("imagej", [False, True])
def test_compressed_tiffs_are_read(tmp_path, compression, imagej):
    data = corpus.fluorescence(t=5, c=2)
    path = tmp_path / f"{compression}.tif"
    kwargs = {"imagej": True, "metadata": {"axes": "TCYX"}} if imagej else {}
    tifffile.imwrite(path, data, compression=compression, **kwargs)
    with tifffile.TiffFile(path) as t:  # really compressed
        assert t.pages[0].compression != 1
    with open_frames(path) as v:
        assert v.metadata["compression"] not in ("", "none")
        np.testing.assert_array_equal(v[:].reshape(data.shape), data)


# --- truncated and corrupt files ----------------------------------------------------------------
def _sources(tmp_path: Path) -> dict[str, tuple[Path, np.ndarray]]:
    data = corpus.fluorescence(t=8, c=2)
    out = {}
    for name, kwargs in {
        "imagej": {"imagej": True, "metadata": {"axes": "TCYX"}},
        "shaped": {},
        "ome": {"ome": True, "metadata": {"axes": "TCYX"}},
        "deflate": {"compression": "zlib"},
        "tiled": {"tile": (16, 16)},
    }.items():
        path = tmp_path / f"{name}.tif"
        tifffile.imwrite(path, data, **kwargs)
        out[name] = (path, data)
    return out


@pytest.mark.parametrize("fraction", [0.002, 0.05, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_truncated_tiffs_are_refused_at_open_or_read_exactly(tmp_path, fraction):
    """Cut anywhere: either refused when opened (naming the file) or every value is right."""
    for name, (path, data) in _sources(tmp_path).items():
        raw = path.read_bytes()
        cut = tmp_path / f"cut_{name}.tif"
        cut.write_bytes(raw[: max(1, int(len(raw) * fraction))])
        try:
            v = open_frames(cut)
        except TruncatedMediaError as exc:
            assert str(cut) in str(exc) and "truncated" in str(exc), (name, str(exc))
            assert "\n" not in str(exc)
            continue
        with v:  # only the page directory of contiguous data was lost: all data is there
            np.testing.assert_array_equal(v[:].reshape(data.shape), data, err_msg=name)


def test_truncated_pixel_data_names_the_bytes_missing(tmp_path):
    data = corpus.fluorescence(t=40, c=1)[:, 0]
    path = tmp_path / "long.tif"
    tifffile.imwrite(path, data, compression="zlib")  # one page per frame
    raw = path.read_bytes()
    with tifffile.TiffFile(path) as t:
        page = t.pages[16]
        cut_at = int(page.dataoffsets[0]) + 3  # inside page 17's data
    path.write_bytes(raw[:cut_at])
    with pytest.raises(TruncatedMediaError) as info:
        open_frames(path)
    text = str(info.value)
    assert text.startswith(f"{path}: page 17 of 40 needs bytes up to ")
    assert f"but the file has {cut_at}: the file is truncated" in text


def test_uncompressed_truncated_imagej_names_the_bytes_missing(tmp_path):
    data = _tzcyx(t=6)
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(TruncatedMediaError, match=r"promises 36 images.*file is truncated"):
        open_frames(path)


def test_corrupt_compressed_page_fails_on_access_naming_page_and_frame(tmp_path):
    data = corpus.fluorescence(t=6, c=2)
    path = tmp_path / "bad_page.tif"
    tifffile.imwrite(path, data, compression="zlib", imagej=True, metadata={"axes": "TCYX"})
    with tifffile.TiffFile(path) as t:
        offset, count = int(t.pages[7].dataoffsets[0]), int(t.pages[7].databytecounts[0])
    raw = bytearray(path.read_bytes())
    raw[offset : offset + count] = b"\xff" * count  # same size: not detectable at open
    path.write_bytes(bytes(raw))
    with open_frames(path) as v:  # frame 3 = pages 7 and 8 (T, C order)
        np.testing.assert_array_equal(v[2], data[2])  # lazy: the other frames still read
        with pytest.raises(UnreadableMediaError) as info:
            v[3]
    text = str(info.value)
    assert text.startswith(f"{path}: reading page 8 of 12 (frame 3) failed: ")
    assert "corrupt" in text and "\n" not in text


@pytest.mark.parametrize(
    "content,match",
    [
        (b"II*\x00" + b"\xff" * 4, "truncated or"),
        (b"MM\x00*" + b"garbage!" * 20, "truncated or corrupt"),
        (b"hello, this is not a TIFF file at all", "not a TIFF file"),
    ],
)
def test_corrupt_headers(tmp_path, content, match):
    path = tmp_path / "bad.tif"
    path.write_bytes(content)
    with pytest.raises(UnreadableMediaError, match=match) as info:
        open_frames(path)
    assert str(info.value).startswith(f"{path}: ") and isinstance(info.value, VsrError)


# --- writing back -------------------------------------------------------------------------------
def test_hyperstack_round_trip_keeps_axes_names_and_values(tmp_path):
    data = _tzcyx()
    out = tmp_path / "out.tif"
    with TiffStackWriter(out, fps=5.0, axes="TZCYX", channel_names=["GFP", "RFP"]) as w:
        for frame in data:
            w.write(frame)
    with tifffile.TiffFile(out) as t:  # an ImageJ hyperstack other software reads
        assert t.is_imagej and t.series[0].axes == "TZCYX"
        assert t.imagej_metadata["Labels"][:2] == ["GFP", "RFP"]
        assert json.loads(t.imagej_metadata["Info"])["napari_vsr"]["fps"] == 5.0
    with open_frames(out) as back:
        assert back.metadata["axes"] == "TZCYX"
        assert back.metadata["channel_names"] == ["GFP", "RFP"]
        assert back.metadata["fps"] == 5.0
        np.testing.assert_array_equal(back[:], data)


def test_axes_and_names_taken_from_reader_metadata(tmp_path):
    data = corpus.fluorescence(t=4, c=3)
    src = tmp_path / "src.tif"
    tifffile.imwrite(src, data, imagej=True, metadata={"axes": "TCYX", "Labels": ["a", "b", "c"]})
    with open_frames(src) as v:
        out = write_frames_to(tmp_path / "copy.tif", v, metadata=dict(v.metadata))
    with open_frames(out) as back:
        assert back.metadata["axes"] == "TCYX" and back.metadata["channel_names"] == ["a", "b", "c"]
        np.testing.assert_array_equal(back[:], data)


def test_axes_imagej_cannot_hold_are_written_as_shaped(tmp_path):
    data = _tzcyx(c=1)[:, :, 0]  # T, Z, Y, X named T Q Y X (an unknown axis)
    out = tmp_path / "q.tif"
    with TiffStackWriter(out, axes="TQYX") as w:
        for frame in data:
            w.write(frame)
    with tifffile.TiffFile(out) as t:
        assert not t.is_imagej and t.series[0].axes == "TQYX"
    with open_frames(out) as back:
        assert back.metadata["axes"] == "TQYX"
        np.testing.assert_array_equal(back[:], data)


def test_nd_frames_without_axes_are_refused(tmp_path):
    from napari_vsr.errors import WriteError

    with pytest.raises(WriteError, match="a frame must be"):
        with TiffStackWriter(tmp_path / "x.tif") as w:
            w.write(np.zeros((2, 8, 8), np.uint16))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_big_endian_contiguous_stack_read_by_offset(tmp_path, rng, dtype):
    data = (rng.random((5, 2, 9, 11)) * 1000).astype(dtype)
    path = tmp_path / "be.tif"
    tifffile.imwrite(path, data, byteorder=">", imagej=True, metadata={"axes": "TCYX"})
    with open_frames(path) as v:
        assert v.dtype == dtype and v.shape == data.shape
        np.testing.assert_array_equal(v[3], data[3])
        np.testing.assert_array_equal(v[:], data)


def test_one_channel_of_a_stack_keeps_its_z_axis(tmp_path):
    """Frames of one channel of a TZCYX stack, with the stack's metadata, are written TZYX."""
    data = _tzcyx()
    out = tmp_path / "one_channel.tif"
    meta = {"axes": "TZCYX", "channel_names": ["GFP", "RFP"]}  # what the reader reported
    write_frames_to(out, data[:, :, 1], metadata=meta)
    with open_frames(out) as back:
        assert back.metadata["axes"] == "TZYX" and "channel_names" not in back.metadata
        np.testing.assert_array_equal(back[:], data[:, :, 1])


def test_planar_rgba_is_rgb_and_two_samples_are_channels(tmp_path):
    rgba = np.arange(3 * 4 * 16 * 32, dtype=np.uint8).reshape(3, 4, 16, 32)
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, rgba, photometric="rgb", planarconfig="separate")
    with open_frames(path) as v:  # stored (S, Y, X) per page: samples moved last
        assert v.rgb and v.metadata["axes"] == "TYXS"
        np.testing.assert_array_equal(v[:], np.moveaxis(rgba, 1, -1))
    two = np.arange(3 * 16 * 32 * 2, dtype=np.uint16).reshape(3, 16, 32, 2)
    path = tmp_path / "two_samples.tif"
    tifffile.imwrite(path, two, photometric="minisblack", planarconfig="contig")
    with open_frames(path) as v:  # two interleaved samples are not a colour image
        assert not v.rgb and v.metadata["axes"] == "TCYX" and v.metadata["channel_axis"] == 1
        np.testing.assert_array_equal(v[:], np.moveaxis(two, -1, 1))


def test_volume_in_one_page_is_loaded_whole_up_to_a_limit(tmp_path, monkeypatch):
    import napari_vsr.io.stack_reader as stack_reader

    data = np.arange(4 * 16 * 32, dtype=np.uint8).reshape(4, 16, 32)
    path = tmp_path / "volume.tif"  # one SGI-style volumetric page holding all 4 planes
    tifffile.imwrite(path, data, volumetric=True, tile=(4, 16, 16), photometric="minisblack")
    with open_frames(path) as v:
        assert v.shape == (4, 16, 32)
        np.testing.assert_array_equal(v[:], data)
    monkeypatch.setattr(stack_reader, "WHOLE_LOAD_LIMIT", 1024)
    with pytest.raises(FrameStackError, match=r"read whole: 0\.0 MiB, more than the 0\.0 MiB"):
        open_frames(path)
