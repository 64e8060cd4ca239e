"""Saving result layers (napari's File > Save and the "Save result…" dialog), opening result
stores with File > Open, and the result-store panel, in a real napari viewer.

Run: QT_QPA_PLATFORM=xcb xvfb-run -a .venv/bin/python -m pytest tests/qt/test_save_stores.py
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.utils.notifications import notification_manager  # noqa: E402
from qtpy.QtWidgets import QMessageBox  # noqa: E402

from napari_vsr._writer import save_layer_data  # noqa: E402
from napari_vsr.cli import main  # noqa: E402
from napari_vsr.errors import Cancelled  # noqa: E402
from napari_vsr.io import open_frames  # noqa: E402
from napari_vsr.io.zarr_store import open_result_store  # noqa: E402
from napari_vsr.jobs.progress import CancelToken  # noqa: E402
from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions  # noqa: E402
from napari_vsr.jobs.results import default_store_dir  # noqa: E402
from napari_vsr.jobs.runner import FramesDone, run_job  # noqa: E402
from napari_vsr.jobs.stores import finished_frames  # noqa: E402
from napari_vsr.widgets.save import SaveResultDialog, save_layer_dialog  # noqa: E402
from napari_vsr.widgets.stores import StoresPanel  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("NAPARI_VSR_ARTIFACTS", REPO / "artifacts"))
WAIT_MS = 60_000


def _media():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "vsr_test_media", Path(__file__).resolve().parents[1] / "io" / "media.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gray_source(tmp_path_factory) -> Path:
    """6 frames of 12x16 uint16 gray with low bits set (an 8-bit or lossy copy differs)."""
    path = tmp_path_factory.mktemp("save_src") / "cells.tif"
    rng = np.random.default_rng(11)
    ramp = np.linspace(3000, 61000, 12 * 16).reshape(12, 16)
    frames = np.stack([ramp + 37 * t + rng.integers(0, 40, ramp.shape) for t in range(6)])
    tifffile.imwrite(path, frames.astype(np.uint16))
    return path


@pytest.fixture(scope="module")
def gray_store(gray_source, tmp_path_factory) -> Path:
    """A uint16 gray result store made by the CLI (x4: 48x64)."""
    out = tmp_path_factory.mktemp("save_store") / "cells-x4.zarr"
    assert main(["enhance", str(gray_source), "-o", str(out), "--method", "classic", "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def rgb_store(tmp_path_factory) -> Path:
    """A uint8 RGB result store of a real H.264 clip with audio (x4: 96x128)."""
    d = tmp_path_factory.mktemp("save_rgb")
    video = _media().make_video(d / "street.mp4", n_frames=6, size=(24, 32), audio=True)
    out = d / "street-x4.zarr"
    assert main(["enhance", str(video), "-o", str(out), "--method", "classic", "-q"]) == 0
    return out


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _warnings_since(n: int) -> list[str]:
    return [str(r.message) for r in notification_manager.records[n:]
            if r.severity.name.lower() == "warning"]


def _open_result(viewer, store):
    [layer] = viewer.open(str(store), plugin="napari-vsr")
    viewer.layers.selection = {layer}
    return layer


def _interrupted(source, out, after: int = 2) -> Path:
    cancel = CancelToken()
    request = JobRequest(source=str(source), output=str(out), live=True,
                         method=MethodOptions(method="classic", preset="seed"),
                         engine=EngineOptions(chunk=2), segment=2)
    frames = 0
    with pytest.raises(Cancelled):
        for event in run_job(request, cancel):
            if isinstance(event, FramesDone):
                frames += event.count
                if frames >= after:
                    cancel.cancel()
    return Path(out)


# --- defect 1 and 11: File > Save Selected Layer(s) of a result layer ----------------------------
@pytest.mark.parametrize(
    ("ext", "exact", "channels", "lost"),
    [
        (".mkv", True, 1, None),
        (".tif", True, 1, None),
        (".frames", True, 1, None),
        (".mp4", False, 3, "16-bit samples are stored with 10 bits"),
        (".mov", False, 3, "reads back as RGB"),
    ],
)
def test_save_uint16_gray_result_layer_in_every_format(viewer, gray_store, tmp_path, ext, exact,
                                                      channels, lost):
    layer = _open_result(viewer, gray_store)
    assert type(layer.data).__module__.startswith("zarr")  # what the widget's layers hold
    out = tmp_path / f"saved{ext}"
    seen = len(notification_manager.records)
    written = viewer.layers.save(str(out), selected=True, plugin="napari-vsr")
    assert [Path(p).name for p in written] == [out.name]
    source = open_result_store(gray_store, mode="r")
    with open_frames(out) as back:
        assert back.shape[0] == 6 and back.shape[1:3] == (48, 64)
        assert back.dtype == np.uint16
        assert (back.shape[3] if back.rgb else 1) == channels
        got = np.asarray(back[0:6]).astype(np.int64)
    want = np.asarray(source[:]).astype(np.int64)
    if channels == 3:
        want = want[..., None]
    if exact:
        np.testing.assert_array_equal(got, np.broadcast_to(want, got.shape))
        assert not [w for w in _warnings_since(seen) if out.name in w]
    else:
        assert np.abs(got - want).mean() < 257  # 10-bit: well within one 8-bit step
        [warning] = [w for w in _warnings_since(seen) if out.name in w]
        assert lost in warning and "lossy" in warning


def test_save_rgb_result_layer_mkv_exact_mp4_warns_only_lossy(viewer, rgb_store, tmp_path):
    layer = _open_result(viewer, rgb_store)
    assert layer.rgb and layer.data.dtype == np.uint8
    seen = len(notification_manager.records)
    viewer.layers.save(str(tmp_path / "r.mkv"), selected=True)  # napari picks our writer
    viewer.layers.save(str(tmp_path / "r.mp4"), selected=True, plugin="napari-vsr")
    store = np.asarray(open_result_store(rgb_store, mode="r")[:])
    with open_frames(tmp_path / "r.mkv") as back:
        assert back.metadata["codec"] == "ffv1"
        np.testing.assert_array_equal(np.asarray(back[0:6]), store)
    with open_frames(tmp_path / "r.mp4") as back:
        assert back.shape == store.shape and back.metadata["codec"] == "h264"
    [warning] = _warnings_since(seen)
    assert warning.startswith("r.mp4: lossy H.264") and "16-bit" not in warning


def test_warning_comes_before_any_frame_is_written(gray_store, tmp_path):
    out = tmp_path / "early.mp4"
    data = open_result_store(gray_store, mode="r")
    lines = []

    def warn(line):
        assert not out.exists() and not list(tmp_path.iterdir())
        lines.append(line)

    save_layer_data(data, out, rgb=False, metadata={}, warn=warn)
    assert len(lines) == 1 and out.is_file()


def test_save_partial_result_layer_keeps_its_finished_frames(viewer, qtbot, gray_source,
                                                             tmp_path):
    part = _interrupted(gray_source, tmp_path / "part.zarr", after=2)
    layer = _open_result(viewer, part)
    assert layer.metadata["partial"] is True and layer.name.endswith("(partial)")
    n = finished_frames(part)
    assert 2 <= n < 6
    seen = len(notification_manager.records)
    viewer.layers.save(str(tmp_path / "part.tif"), selected=True, plugin="napari-vsr")
    with open_frames(tmp_path / "part.tif") as back:
        assert back.shape[0] == n
        np.testing.assert_array_equal(np.asarray(back[0:n]), np.asarray(layer.data[:n]))
        assert back.metadata["stored_metadata"]["napari_vsr"]["partial"] is False
    assert any(f"saving its {n} finished frames of 6" in w for w in _warnings_since(seen))
    dialog = SaveResultDialog(viewer, layer, folder=tmp_path)
    qtbot.addWidget(dialog)
    assert f"saving its {n} finished frames of 6" in dialog.summary_label.text()
    assert dialog.target().name == "cells-classic-seed-x4.mp4"


# --- defect 10: File > Open of a result store ---------------------------------------------------
def test_file_open_of_a_managed_store_gives_the_placed_layer(viewer, gray_store, qtbot):
    from napari.plugins.utils import get_preferred_reader

    folder = default_store_dir()
    folder.mkdir(parents=True)
    store = folder / gray_store.name
    shutil.copytree(gray_store, store)
    elsewhere = gray_store
    assert get_preferred_reader(str(store)) is None  # napari would ask which reader
    panel = StoresPanel(viewer)
    viewer.window.add_dock_widget(panel, name="Result stores")
    assert get_preferred_reader(str(store)) == "napari-vsr"
    assert get_preferred_reader(str(elsewhere)) is None  # only the managed folder
    # File > Open (and drag and drop) go through QtViewer._qt_open with no plugin chosen
    viewer.window._qt_viewer._qt_open([str(store)], stack=False)
    [layer] = list(viewer.layers)
    assert layer.name == "cells.tif [classic:seed x4]"
    np.testing.assert_allclose(layer.scale, (1.0, 0.25, 0.25))
    np.testing.assert_allclose(layer.translate, (0.0, -3 / 8, -3 / 8))
    assert layer.metadata["store_path"] == str(store)
    layers = viewer.open(str(store), plugin=None)  # the same without Qt
    assert layers[0].metadata["store_path"] == str(store)


# --- the result-store panel ---------------------------------------------------------------------
def _stores_in_managed_folder(source, names) -> list[Path]:
    folder = default_store_dir()
    paths = []
    for name in names:
        out = folder / f"{name}.zarr"
        assert main(["enhance", str(source), "-o", str(out), "--method", "classic", "-q"]) == 0
        paths.append(out)
    return paths


def test_panel_lists_opens_deletes_and_cleans_up(viewer, qtbot, gray_source, monkeypatch):
    a, b, c, d = _stores_in_managed_folder(gray_source, ["a", "b", "c", "d"])
    panel = StoresPanel(viewer)
    viewer.window.add_dock_widget(panel, name="Result stores")
    assert panel.store_list.count() == 4
    assert "4 results" in panel.location_label.text()
    assert str(default_store_dir()) in panel.location_label.text().replace("\u200b", "")
    for w in (panel.open_button, panel.delete_button, panel.cleanup_button, panel.keep_check,
              panel.store_list, panel.location_label, panel.status_label):
        assert w.toolTip(), w
    assert not panel.keep_check.isChecked() and not panel.open_button.isEnabled()

    # Open: placed result layers through our reader; opening again selects the layer
    panel.select([a, b])
    opened = panel.open_selected()
    assert sorted(str(p) for p in (a, b)) == sorted(
        layer.metadata["store_path"] for layer in viewer.layers)
    assert all(layer.scale[1] == 0.25 for layer in opened)
    panel.select([a])
    panel.open_selected()
    assert len(viewer.layers) == 2
    assert "(open)" in panel.store_list.item(
        [panel.store_list.item(i).data(256) for i in range(4)].index(str(a))).text()

    # Clean up: asks with count and size; keeps the stores of layers and of running jobs
    asked = []

    def answer(parent, title, text, *args):
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    panel.set_busy_paths(lambda: [str(c)])
    removed = panel.clean_up()
    assert [s.path for s in removed] == [d]
    assert "Delete 1 result (" in asked[-1] and "KB)" in asked[-1]
    assert a.exists() and b.exists() and c.exists() and not d.exists()
    assert "cleaned up 1 result" in panel.status_label.text_plain
    assert panel.clean_up() == [] and "nothing to clean up" in panel.status_label.text_plain

    # Delete: a running job's store is refused; a shown one closes its layer first
    panel.select([c])
    assert panel.delete_selected() == [] and "running job" in panel.status_label.text_plain
    assert c.exists()
    panel.select([b])
    [gone] = panel.delete_selected()
    assert gone.path == b and not b.exists() and "1 layer showing them" in asked[-1]
    assert [layer.metadata["store_path"] for layer in viewer.layers] == [str(a)]
    assert panel.store_list.count() == 2

    # another store folder (the Enhance widget's folder changed): listed and managed
    other = default_store_dir().parent / "elsewhere"
    [e] = [Path(shutil.copytree(a, other / "e.zarr"))]
    panel.set_folder(other)
    assert panel.store_list.count() == 1 and "1 result," in panel.location_label.text()
    from napari.plugins.utils import get_preferred_reader

    assert get_preferred_reader(str(e)) == "napari-vsr"
    panel.set_folder(default_store_dir())
    assert panel.store_list.count() == 2

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    panel.select([a])
    viewer.screenshot(str(ARTIFACTS / "stores_panel.png"), canvas_only=False)
    panel.grab().save(str(ARTIFACTS / "stores_panel_only.png"))
    assert panel.sizeHint().height() <= 240  # compact: a few rows of the Results section


def test_deleting_a_layer_deletes_its_managed_store_unless_kept(viewer, qtbot, gray_source,
                                                               gray_store):
    a, b, c = _stores_in_managed_folder(gray_source, ["a", "b", "c"])
    panel = StoresPanel(viewer)
    viewer.window.add_dock_widget(panel, name="Result stores")
    panel.set_busy_paths(lambda: [str(c)])
    for path in (a, b, c, gray_store):
        viewer.open(str(path), plugin="napari-vsr")
    by_store = {Path(layer.metadata["store_path"]).name: layer for layer in viewer.layers}

    viewer.add_image(np.zeros((2, 4, 4)), name="other")  # the viewer is never left empty
    viewer.layers.remove(by_store["a.zarr"])  # unchecked: the store goes with its layer
    qtbot.waitUntil(lambda: not a.exists(), timeout=5000)  # once the removal is over
    assert "deleted the store of" in panel.status_label.text_plain
    viewer.layers.remove(by_store["c.zarr"])  # a running job writes it: kept
    qtbot.waitUntil(lambda: "running" in panel.status_label.text_plain, timeout=5000)
    assert c.exists()
    viewer.layers.remove(by_store[gray_store.name])  # outside the managed folder: kept
    qtbot.wait(50)
    assert gray_store.exists()
    panel.keep_check.setChecked(True)
    viewer.layers.remove(by_store["b.zarr"])
    qtbot.wait(50)
    assert b.exists()
    assert panel.store_list.count() == 2
    # closing the viewer removes every layer: that deletes no store
    viewer.layers.remove("other")
    panel.keep_check.setChecked(False)
    [b_layer] = viewer.open(str(b), plugin="napari-vsr")
    viewer.layers.clear()
    qtbot.wait(50)
    assert b.exists()


def test_removing_a_layer_through_the_plugin_proxy(make_napari_viewer, qtbot, gray_source):
    """Layers reach plugins as proxies: matched by store path, the store still goes."""
    from napari.utils._proxies import PublicOnlyProxy

    viewer = make_napari_viewer()
    [a] = _stores_in_managed_folder(gray_source, ["p"])
    proxy = PublicOnlyProxy(viewer)
    panel = StoresPanel(proxy)
    viewer.window.add_dock_widget(panel, name="Result stores")
    panel.select([a])
    [layer] = panel.open_selected()
    viewer.add_image(np.zeros((2, 4, 4)), name="other")  # now the active layer
    panel.select([a])
    panel.open_selected()  # already open: made the active layer, not opened twice
    assert len(viewer.layers) == 2 and viewer.layers.selection.active.name == layer.name
    proxy.layers.remove(proxy.layers[0])
    qtbot.waitUntil(lambda: not a.exists(), timeout=5000)
    assert [x.name for x in viewer.layers] == ["other"]
    assert layer.metadata["store_path"] == str(a)


# --- the "Save result…" dialog ------------------------------------------------------------------
def test_save_dialog_shows_losses_asks_and_writes(viewer, qtbot, gray_store, tmp_path,
                                                  monkeypatch):
    layer = _open_result(viewer, gray_store)
    dialog = save_layer_dialog(viewer.window._qt_window, viewer, layer, folder=tmp_path)
    qtbot.addWidget(dialog)
    assert isinstance(dialog, SaveResultDialog) and dialog.isVisible()
    assert dialog.target() == tmp_path / "cells-classic-seed-x4.mp4"
    for w in (dialog.format_combo, dialog.path_edit, dialog.browse_button,
              dialog.lossless_check, dialog.save_button, dialog.cancel_button):
        assert w.toolTip(), w
    # mp4 of uint16 gray: the losses are shown before anything is written
    text = dialog.summary_label.text()
    assert "Loses:" in text and "10 bits" in text and "RGB" in text
    dialog.set_format("mp4", lossless=True)
    assert not dialog.save_button.isEnabled() and ".mkv" in dialog.summary_label.text()
    dialog.set_format("mkv")
    assert dialog.lossless_check.isChecked() and dialog.save_button.isEnabled()
    assert "Loses:" not in dialog.summary_label.text()
    assert "16-bit samples" in dialog.summary_label.text()
    assert dialog.target().suffix == ".mkv"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dialog.set_format("mp4")
    dialog.grab().save(str(ARTIFACTS / "save_dialog_mp4.png"))
    dialog.set_format("mkv")
    dialog.grab().save(str(ARTIFACTS / "save_dialog_mkv.png"))

    # an existing file: asked, and "No" writes nothing
    target = dialog.target()
    target.write_bytes(b"old")
    answers = [QMessageBox.StandardButton.No]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: answers.pop(0))
    assert dialog.save() is None and target.read_bytes() == b"old"
    answers.append(QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(dialog.finished, timeout=WAIT_MS):
        worker = dialog.save()
        assert worker is not None and dialog.is_saving
    assert dialog.saved_path == target and not dialog.isVisible()
    with open_frames(target) as back:
        assert back.dtype == np.uint16 and not back.rgb
        np.testing.assert_array_equal(np.asarray(back[0:6]),
                                      np.asarray(open_result_store(gray_store, mode="r")[:]))


class _Gate:
    """Array-like whose frame 1 waits for the test (a slow save to stop)."""

    def __init__(self, frames: np.ndarray):
        self._frames = frames
        self.shape, self.dtype = frames.shape, frames.dtype
        self.reached = threading.Event()
        self.release = threading.Event()

    def __getitem__(self, i):
        if i == 1:
            self.reached.set()
            assert self.release.wait(30)
        return self._frames[i]


def test_save_dialog_stop_leaves_nothing(qtbot, viewer, tmp_path):
    frames = np.random.default_rng(2).integers(0, 256, (4, 16, 20, 3), dtype=np.uint8)
    gate = _Gate(frames)
    layer = SimpleNamespace(name="slow", data=gate, rgb=True, metadata={})
    dialog = SaveResultDialog(viewer, layer, folder=tmp_path)
    qtbot.addWidget(dialog)
    dialog.set_format("mkv")
    worker = dialog.save()
    assert gate.reached.wait(30)
    assert dialog.cancel_button.text() == "Stop" and not dialog.save_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.progress_bar.value() == 1, timeout=WAIT_MS)
    assert dialog.progress_bar.maximum() == 4 and dialog._pbar.n == 1  # napari's bar too
    dialog.cancel_button.click()
    gate.release.set()
    qtbot.waitUntil(lambda: not dialog.is_saving, timeout=WAIT_MS)
    assert worker is not None and dialog.saved_path is None
    assert list(tmp_path.iterdir()) == []
    assert "nothing was written" in dialog.summary_label.text()
    assert dialog.cancel_button.text() == "Cancel" and dialog.save_button.isEnabled()
