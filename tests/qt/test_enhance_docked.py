"""The Enhance widget as napari users get it: docked through the plugin manifest
(``viewer.window.add_plugin_dock_widget``), so it sees proxied viewers and layers.

Covers the defects found by trying the plugin as a user (issue 12): window height with both
docks, cancel within a chunk, deleting the growing layer, closing the window mid-run,
renaming, long errors, partial results, napari wording, devices offered, preview estimate.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.utils.notifications import notification_manager  # noqa: E402

from napari_vsr.jobs.results import open_result  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 120_000
PLUGIN = "napari-vsr"


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _dock(viewer, name: str = "Enhance video"):
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return dock, widget


def _wait_idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.is_running, timeout=WAIT_MS)


def _clip(sample_frames_dir: Path, n: int = 6) -> np.ndarray:
    import cv2

    paths = sorted(sample_frames_dir.glob("*.png"))[:n]
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    return np.ascontiguousarray(np.stack(frames)[:, 150:198, 300:364])


def _artifacts() -> Path:
    out = Path(os.environ.get("NAPARI_VSR_ARTIFACTS", REPO / "artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def _errors_since(n: int) -> list[str]:
    return [str(r.message) for r in notification_manager.records[n:]
            if getattr(r, "severity", None) and str(r.severity).lower().endswith("error")]


# --- layout --------------------------------------------------------------------------------------
def test_both_docks_fit_a_1600x1000_screen(make_napari_viewer, qtbot):
    """`napari-vsr view` docks Enhance and Compare as tabs: the window's minimum height stays
    under 1000 px and the time slider and buttons are on screen."""
    from qtpy.QtWidgets import QApplication

    from napari_vsr.cli.view import PLUGIN as VIEW_PLUGIN
    from napari_vsr.cli.view import SAMPLE_KEY, dock_widgets

    viewer = make_napari_viewer(show=True)
    viewer.open_sample(VIEW_PLUGIN, SAMPLE_KEY)
    dock_widgets(viewer)
    window = viewer.window._qt_window
    QApplication.processEvents()
    assert window.minimumSizeHint().height() <= 1000, window.minimumSizeHint()
    window.resize(1600, 1000)
    QApplication.processEvents()
    docks = viewer.window.dock_widgets
    enhance = docks["Enhance video (napari-vsr)"]
    compare = docks["Compare layers (napari-vsr)"]
    # tabbed together: one is in front, the other behind its tab
    assert window.tabifiedDockWidgets(viewer.window._wrapped_dock_widgets[
        "Enhance video (napari-vsr)"])
    assert not enhance.visibleRegion().isEmpty() and compare.visibleRegion().isEmpty()
    widget = enhance
    assert widget.run_button.isVisible()
    bottom = widget.run_button.mapTo(window, widget.run_button.rect().bottomLeft()).y()
    assert bottom < window.height()
    viewer.screenshot(str(_artifacts() / "view_enhance_tab.png"), canvas_only=False)


def test_every_control_has_a_tooltip(viewer):
    from qtpy.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit

    _, widget = _dock(viewer)
    widget.set_method("realbasicvsr")
    widget.weights_combo.setCurrentIndex(widget.weights_combo.findData("file"))
    missing = [type(w).__name__ + ":" + (getattr(w, "text", lambda: "")() or w.objectName())
               for kind in (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit)
               for w in widget.findChildren(kind)
               if not w.toolTip() and not isinstance(w.parent(), QAbstractSpinBox)
               and not isinstance(w.parent(), QComboBox)]
    assert not missing, missing


def test_only_devices_and_precisions_this_machine_has(viewer):
    import torch

    _, widget = _dock(viewer)
    devices = [widget.device_combo.itemData(i) for i in range(widget.device_combo.count())]
    assert devices[:2] == ["auto", "cpu"]
    assert any(d.startswith("cuda") for d in devices) == torch.cuda.is_available()
    widget.device_combo.setCurrentIndex(devices.index("cpu"))
    precisions = [widget.precision_combo.itemText(i)
                  for i in range(widget.precision_combo.count())]
    assert "fp16" not in precisions and "fp32" in precisions


# --- source list -------------------------------------------------------------------------------
def test_renaming_the_source_keeps_it_chosen(viewer, qtbot, sample_frames_dir, tmp_path):
    _, widget = _dock(viewer)
    viewer.add_image(_clip(sample_frames_dir, 3), name="other")
    viewer.add_image(_clip(sample_frames_dir, 4), name="clip")
    widget.source_combo.setCurrentText("clip")
    viewer.layers["clip"].name = "street"
    assert widget.source_combo.currentText() == "street"
    assert [widget.source_combo.itemText(i) for i in range(widget.source_combo.count())] == [
        "other", "street"]
    widget.set_method("classic", "bicubic-x4")
    widget.out_edit.setText(str(tmp_path))
    widget.run()
    _wait_idle(qtbot, widget)
    assert widget.result_layer.name == "street [classic:bicubic-x4 x4]"
    assert widget.result_layer.data.shape[0] == 4


def test_empty_viewer_says_what_to_open(viewer):
    _, widget = _dock(viewer)
    n = len(notification_manager.records)
    widget.run()
    text = widget.status_label.text_plain
    assert "open a video or a frame stack first" in text and "0:0" not in text
    assert _errors_since(n)


# --- running, cancelling, deleting ------------------------------------------------------------
def test_cancel_inside_a_one_chunk_realbasicvsr_run(viewer, qtbot, golden_dir, tmp_path):
    """Cancel acts at the next frame, not at the end of the chunk (golden checkpoint)."""
    clip = np.load(golden_dir / "input_rgb_uint8.npy")  # 6 frames of 72x100
    viewer.add_image(clip, name="golden", rgb=True)
    _, widget = _dock(viewer)
    widget.set_method("realbasicvsr")
    widget.weights_combo.setCurrentIndex(widget.weights_combo.findData("file"))
    widget.weights_edit.setText(str(golden_dir / "realbasicvsr_random_mmedit_layout.pth"))
    widget.device_combo.setCurrentIndex(widget.device_combo.findData("cpu"))
    widget.chunk_spin.setValue(len(clip))
    widget.overlap_spin.setValue(0)
    widget.out_edit.setText(str(tmp_path))
    widget.run()
    # inside the chunk: the network has started its propagation (a record of 0/6 frames)
    qtbot.waitUntil(lambda: widget.job is not None and widget.job.last_progress is not None
                    and widget.job.last_progress.total == len(clip), timeout=WAIT_MS)
    qtbot.wait(300)
    t0 = time.perf_counter()
    widget.cancel()
    job = widget.job
    _wait_idle(qtbot, widget)
    assert time.perf_counter() - t0 < 5.0
    assert "cancelled" in widget.status_label.text_plain and job.frames == 0


def test_deleting_the_growing_layer_stops_the_job(viewer, qtbot, sample_frames_dir, tmp_path,
                                                   monkeypatch, gate_enhancers):
    gate = threading.Event()
    made = gate_enhancers(gate, free=2)
    viewer.add_image(_clip(sample_frames_dir, 6), name="clip")
    _, widget = _dock(viewer)
    widget.set_method("classic", "seed")
    widget.chunk_spin.setValue(1)
    widget.out_edit.setText(str(tmp_path))
    widget.run()
    qtbot.waitUntil(lambda: widget.result_layer is not None, timeout=WAIT_MS)
    store = Path(widget.result_layer.metadata["store_path"])
    viewer.layers.remove(widget.result_layer.name)  # napari's own removal path, by name
    gate.set()
    _wait_idle(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == ["clip"]
    assert not store.exists() and made[0].frames < 6
    assert "removed" in widget.status_label.text_plain


def test_a_kept_partial_result_shows_only_finished_frames(viewer, qtbot, sample_frames_dir,
                                                          tmp_path, monkeypatch, gate_enhancers):
    gate = threading.Event()
    gate_enhancers(gate, free=3)
    viewer.add_image(_clip(sample_frames_dir, 6), name="clip")
    _, widget = _dock(viewer)
    widget.set_method("classic", "bicubic-x4")
    widget.chunk_spin.setValue(1)
    widget.segment_spin.setValue(1)
    widget.out_edit.setText(str(tmp_path))
    widget.run()
    qtbot.waitUntil(lambda: widget.job is not None and widget.job.frames >= 2, timeout=WAIT_MS)
    widget.cancel()
    gate.set()
    _wait_idle(qtbot, widget)
    layer = widget.result_layer
    assert layer is not None and "(partial" in layer.name
    done = layer.data.shape[0]
    assert 2 <= done < 6
    assert np.asarray(layer.data[done - 1]).max() > 0  # finished frames, no black ones
    assert widget.resume_button.isEnabled()
    widget.resume()
    _wait_idle(qtbot, widget)
    assert widget.result_layer.data.shape[0] == 6 and "partial" not in widget.result_layer.name


def test_closing_the_window_mid_run_cancels_and_keeps_a_partial_store(
        make_napari_viewer, qtbot, sample_frames_dir, tmp_path, monkeypatch, gate_enhancers):
    """napari's task status knows the job: closing asks (the dialog is napari's), cancels the
    job at once and leaves a partial, resumable store."""
    from napari_vsr.jobs.results import is_resumable

    gate = threading.Event()
    gate_enhancers(gate, free=2)
    viewer = make_napari_viewer()
    viewer.add_image(_clip(sample_frames_dir, 6), name="clip")
    _, widget = _dock(viewer)
    widget.set_method("classic", "seed")
    widget.chunk_spin.setValue(1)
    widget.out_edit.setText(str(tmp_path))
    widget.run()
    qtbot.waitUntil(lambda: widget.result_layer is not None, timeout=WAIT_MS)
    store = widget.result_layer.metadata["store_path"]
    manager = viewer.window._task_status_manager
    assert manager.is_busy() and any("clip" in s for s in manager.get_status())
    job = widget.job
    manager.cancel_all()  # what the window does on close, after the user agreed
    t0 = time.perf_counter()
    gate.set()  # the job is blocked inside frame 2: it must stop at the next frame
    viewer.close()
    qtbot.waitUntil(lambda: not job.running, timeout=10_000)
    assert time.perf_counter() - t0 < 5.0
    _, metadata = open_result(store)
    assert metadata["partial"] is True and is_resumable(metadata)


# --- messages ------------------------------------------------------------------------------------
def test_a_long_error_wraps_without_widening_the_dock(viewer, qtbot, sample_frames_dir,
                                                      tmp_path):
    from qtpy.QtWidgets import QApplication

    dock, widget = _dock(viewer)
    viewer.window._qt_window.resize(1500, 950)
    QApplication.processEvents()
    width = dock.width()
    viewer.add_image(_clip(sample_frames_dir, 3), name="clip")
    widget.set_method("realbasicvsr")
    widget.weights_combo.setCurrentIndex(widget.weights_combo.findData("file"))
    bad = tmp_path / ("x" * 120) / "not_a_checkpoint.pth"
    bad.parent.mkdir()
    bad.write_bytes(b"not a checkpoint")
    widget.weights_edit.setText(str(bad))
    widget.device_combo.setCurrentIndex(widget.device_combo.findData("cpu"))
    widget.out_edit.setText(str(tmp_path))
    widget.run()
    _wait_idle(qtbot, widget)
    QApplication.processEvents()
    assert "failed" in widget.status_label.text_plain and len(widget.status_label.text_plain) > 100
    assert dock.width() == width
    widget.run_button.setFocus()
    widget.set_method("classic", "bicubic-x4")
    widget.run()
    assert "failed" not in widget.status_label.text_plain  # a new action clears the old line
    _wait_idle(qtbot, widget)


def test_messages_use_napari_words():
    from napari_vsr.errors import napari_wording
    from napari_vsr.models import weights

    with pytest.raises(Exception) as info:
        weights.resolve_weights(download=False)
    text = napari_wording(str(info.value))
    assert "`napari-vsr" not in text and "Weights: download now" in text
    entry = weights.get_entry()
    offline = napari_wording("could not download x; " + weights._offline_hint(entry))
    assert entry.url not in offline and "choose file" in offline


# --- preview ------------------------------------------------------------------------------------
def test_realbasicvsr_preview_shows_an_estimate_first_and_covers_the_visible_region(
        viewer, qtbot, golden_dir, sample_frames_dir, monkeypatch):
    import cv2

    from napari_vsr.widgets import enhance

    monkeypatch.setattr(enhance, "PREVIEW_CONFIRM_S", 0.05)  # the small region is quick here

    paths = sorted(sample_frames_dir.glob("*.png"))[:5]
    clip = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths])
    viewer.add_image(clip, name="street")
    _, widget = _dock(viewer)
    widget.set_method("realbasicvsr")
    widget.weights_combo.setCurrentIndex(widget.weights_combo.findData("file"))
    widget.weights_edit.setText(str(golden_dir / "realbasicvsr_random_mmedit_layout.pth"))
    widget.device_combo.setCurrentIndex(widget.device_combo.findData("cpu"))
    widget.overlap_spin.setValue(1)
    viewer.dims.set_point(0, 2)
    viewer.camera.center = (0, 180, 320)
    viewer.camera.zoom = 8.0  # about 100 x 60 source pixels visible
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    widget.preview()
    assert not widget.is_running, "a slow preview must show its estimate before starting"
    text = widget.status_label.text_plain
    assert "3 frames of" in text and "about" in text and "Start preview" in text
    widget.preview()  # the second click starts it
    _wait_idle(qtbot, widget)
    layer = widget.preview_layer
    assert layer is not None and layer.name == "street [RealBasicVSR x4] preview"
    _, h, w, _ = layer.data.shape
    assert layer.data.shape[0] == 1 and h < 360 * 4 and w < 640 * 4 and h <= 256 * 4
    # placed over the visible region of the source, in world coordinates
    corner = np.asarray(layer.data_to_world((0, 0, 0)))
    src = viewer.layers["street"]
    y0, x0 = src.world_to_data(corner)[1:3]
    assert 0 < y0 < 360 and 0 < x0 < 640


# --- the pipeline builder inside the Enhance widget -------------------------------------------
def test_pipeline_built_in_the_enhance_widget_runs_like_the_cli(viewer, qtbot, sample_frames_dir,
                                                                 tmp_path):
    """Build a pipeline in the docked Enhance widget, save it, load it back, run it: the result
    layer equals the command line's output with the saved recipe."""
    import subprocess
    import sys

    import tifffile

    clip = _clip(sample_frames_dir, 4)
    tifffile.imwrite(tmp_path / "clip.tif", clip, photometric="rgb")
    viewer.add_image(clip, name="clip")
    _, widget = _dock(viewer)
    widget.set_method("builder")
    builder = widget.method_panel.builder
    assert builder is not None and builder.isVisibleTo(widget)
    builder.set_pipeline(builder.pipeline().__class__.from_dict(
        {"name": "mine", "steps": [{"op": "resize", "factor": 2.0}]}))
    builder.add_step("unsharp_mask")
    builder.set_params(1, amount=0.8)
    recipe = tmp_path / "mine.yaml"
    builder.save(recipe)
    builder.load_preset("seed")
    builder.load(recipe)
    widget.out_edit.setText(str(tmp_path / "stores"))
    widget.run()
    _wait_idle(qtbot, widget)
    layer = widget.result_layer
    assert layer is not None and layer.name == "clip [classic:mine x2]", layer.name
    out = tmp_path / "cli.tif"
    done = subprocess.run([sys.executable, "-m", "napari_vsr", "enhance", str(tmp_path / "clip.tif"),
                           "-o", str(out), "--method", "classic", "--recipe", str(recipe)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.asarray(layer.data[:]), tifffile.imread(out))


# --- the job queue from the Enhance widget ------------------------------------------------------
def test_queue_button_adds_the_form_to_the_docked_job_queue(viewer, qtbot, sample_frames_dir,
                                                              tmp_path):
    viewer.add_image(_clip(sample_frames_dir, 4), name="clip")
    viewer.add_image(_clip(sample_frames_dir, 3)[:, ::-1], name="flipped")
    _, widget = _dock(viewer)
    widget.set_method("classic", "bicubic-x4")
    widget.out_edit.setText(str(tmp_path))
    widget.source_combo.setCurrentText("clip")
    queue = widget.add_to_queue()
    widget.source_combo.setCurrentText("flipped")
    assert widget.add_to_queue() is queue  # the same docked queue
    assert [e.state.value for e in queue.entries] == ["queued", "queued"]
    assert "Job queue" in widget.status_label.text_plain
    queue.start()
    qtbot.waitUntil(lambda: all(e.state.value == "done" for e in queue.entries),
                    timeout=WAIT_MS)
    names = [layer.name for layer in viewer.layers]
    assert "clip [classic:bicubic-x4 x4]" in names and "flipped [classic:bicubic-x4 x4]" in names
    assert viewer.layers["flipped [classic:bicubic-x4 x4]"].data.shape == (3, 192, 256, 3)
