"""napari integration: open video, folder and TIFF through the plugin; save a layer back."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

pytest.importorskip("napari")

_spec = importlib.util.spec_from_file_location(
    "vsr_test_media", Path(__file__).resolve().parents[1] / "io" / "media.py"
)
media = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(media)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("napari_io")
    video = media.make_video(d / "clip.mp4", n_frames=20, gop=10, bframes=2, audio=True)
    folder = d / "frames"
    folder.mkdir()
    for i in (0, 1, 2, 10):
        cv2.imwrite(str(folder / f"f_{i}.png"), media.barcode_frame(i, 40, 144)[..., ::-1])
    tif = d / "stack.tif"
    tifffile.imwrite(tif, np.arange(6 * 8 * 10, dtype=np.uint16).reshape(6, 8, 10))
    return {"video": video, "folder": folder, "tiff": tif}


def test_open_video(make_napari_viewer, sources):
    viewer = make_napari_viewer()
    layers = viewer.open(str(sources["video"]), plugin="napari-vsr")
    assert len(layers) == 1 and len(viewer.layers) == 1
    layer = layers[0]
    assert layer.data.shape == (20, 96, 160, 3) and layer.data.dtype == np.uint8
    assert layer.rgb and layer.ndim == 3
    md = layer.metadata
    assert md["fps"] == 25.0 and md["n_frames"] == 20 and md["has_audio"] and md["kind"] == "video"
    # the viewer shows the frame the slider points at
    viewer.dims.set_point(0, 13)
    shown = np.asarray(layer._slice.image.view)
    assert media.read_barcode(shown) == 13


def test_open_folder_and_tiff(make_napari_viewer, sources):
    viewer = make_napari_viewer()
    [folder] = viewer.open(str(sources["folder"]), plugin="napari-vsr")
    assert folder.data.shape == (4, 40, 144, 3) and folder.rgb
    assert [media.read_barcode(folder.data[i]) for i in range(4)] == [0, 1, 2, 10]
    assert folder.metadata["kind"] == "folder"
    [stack] = viewer.open(str(sources["tiff"]), plugin="napari-vsr")
    assert stack.data.shape == (6, 8, 10) and stack.data.dtype == np.uint16 and not stack.rgb
    assert stack.metadata["kind"] == "tiff"


@pytest.mark.parametrize("ext", [".mp4", ".tif", ".frames"])
def test_save_layer_through_the_writer(make_napari_viewer, sources, tmp_path, ext):
    from napari_vsr.io import open_frames

    viewer = make_napari_viewer()
    [layer] = viewer.open(str(sources["video"]), plugin="napari-vsr")
    out = tmp_path / f"saved{ext}"
    written = viewer.layers.save(str(out), selected=False, plugin="napari-vsr")
    assert [Path(p).name for p in written] == [out.name]
    with open_frames(out) as back:
        assert back.shape[0] == 20
        assert back.shape[1:3] == (96, 160)
        idx = [media.read_barcode(back[i]) for i in (0, 7, 19)]
        assert idx == [0, 7, 19]
        if ext == ".mp4":
            assert back.metadata["fps"] == 25.0 and back.metadata["has_audio"]
        else:
            assert back.metadata["fps"] == 25.0


def test_sample_data(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-vsr", "demo_clip")
    assert viewer.layers[0].data.shape == (10, 360, 640, 3)


def _fluorescence(t: int = 5, z: int | None = None, h: int = 24, w: int = 32) -> np.ndarray:
    """A 2-channel uint16 stack whose pixels encode (frame, z, channel): checkable per layer."""
    zs = z or 1
    data = np.zeros((t, zs, 2, h, w), np.uint16)
    for i in range(t):
        for k in range(zs):
            for c in range(2):
                data[i, k, c] = 1000 * c + 100 * k + 10 * i + np.arange(w) % 7
    return data if z else data[:, 0]


def test_open_two_channel_imagej_tiff_one_layer_per_channel(make_napari_viewer, tmp_path):
    data = _fluorescence()
    path = tmp_path / "cells.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        metadata={"axes": "TCYX", "Labels": ["GFP", "mCherry"], "Ranges": (0, 500, 900, 1500)},
    )
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-vsr")
    assert [layer.name for layer in layers] == ["cells.tif [GFP]", "cells.tif [mCherry]"]
    assert [layer.colormap.name for layer in layers] == ["green", "magenta"]
    assert [tuple(layer.contrast_limits) for layer in layers] == [(0, 500), (900, 1500)]
    for c, layer in enumerate(layers):
        assert layer.data.shape == (5, 24, 32) and not layer.rgb
        assert not isinstance(layer.data, np.ndarray)  # still lazy: frames decode on demand
        assert layer.metadata["axes"] == "TCYX" and layer.metadata["channel_names"][c]
        # the layer shows its own channel of the frame the slider points at
        np.testing.assert_array_equal(np.asarray(layer.data[3]), data[3, c])
    viewer.dims.set_point(0, 4)
    shown = np.asarray(layers[1]._slice.image.view)
    np.testing.assert_array_equal(shown, data[4, 1])


def test_open_ome_tczyx_keeps_z_and_names(make_napari_viewer, tmp_path):
    data = _fluorescence(t=3, z=4)  # T, Z, C, Y, X
    path = tmp_path / "embryo.ome.tif"
    tifffile.imwrite(
        path,
        np.moveaxis(data, 2, 1),  # stored as TCZYX
        ome=True,
        metadata={"axes": "TCZYX", "Channel": {"Name": ["DAPI", "Actin"]}},
    )
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-vsr")
    assert [layer.name for layer in layers] == ["embryo.ome.tif [DAPI]", "embryo.ome.tif [Actin]"]
    for c, layer in enumerate(layers):
        assert layer.data.shape == (3, 4, 24, 32)  # T, Z, Y, X: one slider each
        np.testing.assert_array_equal(np.asarray(layer.data[2, 3]), data[2, 3, c])


def test_empty_folder_is_claimed_with_a_clear_error(make_napari_viewer, tmp_path):
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    viewer = make_napari_viewer()
    with pytest.raises(Exception, match="no image frames") as info:
        viewer.open(str(empty), plugin="napari-vsr")
    assert "nothing_here" in str(info.value)
    assert len(viewer.layers) == 0
