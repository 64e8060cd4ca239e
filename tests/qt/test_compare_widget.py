"""The Compare widget as napari users get it: docked through the plugin manifest (proxied viewer
and layers), with results made by the job runner.

Run: QT_QPA_PLATFORM=xcb xvfb-run -a .venv/bin/python -m pytest tests/qt/test_compare_widget.py
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qtpy.QtCore import QPoint, Qt  # noqa: E402
from qtpy.QtWidgets import (  # noqa: E402
    QAbstractButton,
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLineEdit,
    QMessageBox,
    QSlider,
    QSpinBox,
    QTabBar,
    QTableWidget,
)

from napari_vsr import compare  # noqa: E402
from napari_vsr.jobs.request import JobRequest, MethodOptions, Placement  # noqa: E402
from napari_vsr.jobs.results import layer_kwargs, open_result  # noqa: E402
from napari_vsr.jobs.runner import run_job  # noqa: E402
from napari_vsr.placement import result_placement  # noqa: E402
from napari_vsr.widgets.compare import (  # noqa: E402
    DIVIDER_NAME,
    PREVIEW_NAME,
    WIPE_LEFT_NAME,
)

REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 120_000
ARTIFACTS = Path(os.environ.get("NAPARI_VSR_ARTIFACTS", REPO / "artifacts"))


# --- helpers --------------------------------------------------------------------------------
def _sample(sample_frames_dir: Path, n: int) -> np.ndarray:
    paths = sorted(sample_frames_dir.glob("*.png"))[:n]
    return np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths])


@pytest.fixture
def clip(sample_frames_dir) -> np.ndarray:
    """A small crop of the sample clip: (6, 40, 56, 3) uint8."""
    return np.ascontiguousarray(_sample(sample_frames_dir, 6)[:, 150:190, 300:356])


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _dock(viewer):
    """The Compare widget docked the way napari users get it (proxied viewer and layers)."""
    dock, widget = viewer.window.add_plugin_dock_widget("napari-vsr", "Compare layers")
    return dock, widget


def _enhance(source_layer, out: Path, *, preset: str = "bicubic-x4", frame_range=None):
    """Run the classic ``preset`` on a layer's data through the job runner into a result store
    and return the napari keywords its layer gets (what the reader and the widgets add)."""
    request = JobRequest(
        source=np.asarray(source_layer.data), output=str(out),
        method=MethodOptions(method="classic", preset=preset), source_name=source_layer.name,
        rgb=source_layer.rgb, frame_range=frame_range,
        placement=Placement(tuple(source_layer.scale), tuple(source_layer.translate)))
    gen = run_job(request)
    while True:
        try:
            next(gen)
        except StopIteration:
            break
    store, record = open_result(out)
    return store, layer_kwargs(out, store, record)


def _add_result(viewer, source_layer, out: Path, **kwargs):
    store, kw = _enhance(source_layer, out, **kwargs)
    return viewer.add_image(store, **kw)


def _pick_by_hand(combo: QComboBox, name: str) -> None:
    """What a click on an entry of the combo box does: select it and emit ``activated``."""
    index = combo.findText(name)
    assert index >= 0, name
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


# --- defect 6: left = source, right = newest result ------------------------------------------
def test_docked_after_an_enhancement_shows_source_and_result(viewer, clip, tmp_path):
    src = viewer.add_image(clip, name="clip")
    viewer.add_image(clip[..., 0], name="unrelated gray")
    res = _add_result(viewer, src, tmp_path / "a.zarr")
    assert res.name != "clip" and "store_path" in res.metadata
    viewer.layers.move(viewer.layers.index(res.name), 0)  # the result is not the last layer
    _, widget = _dock(viewer)
    assert widget.left_combo.currentText() == "clip"
    assert widget.right_combo.currentText() == res.name
    assert widget.reference_combo.currentText() == "clip"


def test_right_follows_new_results_until_a_pick_by_hand(viewer, clip, tmp_path):
    _, widget = _dock(viewer)  # docked first, as `napari-vsr view` does
    src = viewer.add_image(clip, name="clip")
    other = viewer.add_image(np.ascontiguousarray(clip[:, ::-1]), name="mirrored")
    assert widget.follow_check.isChecked()
    first = _add_result(viewer, src, tmp_path / "first.zarr")
    assert (widget.left_combo.currentText(), widget.right_combo.currentText()) == (
        "clip", first.name)
    # a result of another source: left becomes that source
    second = _add_result(viewer, other, tmp_path / "second.zarr", preset="seed")
    assert (widget.left_combo.currentText(), widget.right_combo.currentText()) == (
        "mirrored", second.name)
    # a result whose source is not in the viewer: right follows, left stays
    store, kw = _enhance(src, tmp_path / "third.zarr", preset="seed")
    kw["name"] = "from a closed layer"
    kw["metadata"]["source"] = {"name": "gone", "path": None}
    third = viewer.add_image(store, **kw)
    assert (widget.left_combo.currentText(), widget.right_combo.currentText()) == (
        "mirrored", third.name)
    # the user picks by hand: results no longer take over
    _pick_by_hand(widget.right_combo, first.name)
    assert not widget.follow_check.isChecked()
    _add_result(viewer, src, tmp_path / "fourth.zarr")
    assert widget.right_combo.currentText() == first.name
    assert widget.left_combo.currentText() == "mirrored"


def test_plain_layers_and_renames(viewer, clip, tmp_path):
    _, widget = _dock(viewer)
    viewer.add_image(clip, name="a")
    assert widget.left_combo.currentText() == widget.right_combo.currentText() == "a"
    viewer.add_image(clip, name="b")  # two plain layers: one on each side
    assert (widget.left_combo.currentText(), widget.right_combo.currentText()) == ("a", "b")
    widget.wipe_check.setChecked(True)
    viewer.layers.move(1, 0)  # reordering changes no choice
    viewer.layers["b"].name = "b renamed"  # defect 5 in this widget: renames are followed
    assert widget.right_combo.currentText() == "b renamed"
    assert widget.left_combo.currentText() == "a"
    assert widget.wipe_check.isChecked() and WIPE_LEFT_NAME in viewer.layers
    widget.wipe_check.setChecked(False)
    assert viewer.layers["b renamed"].visible and viewer.layers["a"].visible


def test_result_records_and_their_sources(tmp_path):
    from types import SimpleNamespace

    from napari_vsr.widgets.compare import result_record, source_layer

    def layer(name, metadata=None, path=None):
        return SimpleNamespace(name=name, metadata=metadata or {},
                               source=SimpleNamespace(path=path))

    record = {"method": "classic", "source": {"name": "clip.mp4", "path": str(tmp_path / "c")}}
    plain = layer("clip.mp4 (1)", path=str(tmp_path / "c"))
    assert result_record(plain) is None
    assert result_record(layer("r", dict(record))) == record  # the Enhance widget's layers
    assert result_record(layer("r", {"enhancement": record, "other": 1})) == record
    assert result_record(layer("r", {"store_path": "/x.zarr"})) == {}  # a bare result store
    # by name first, else by the source file
    named = layer("clip.mp4")
    assert source_layer(record, [plain, named]).name == "clip.mp4"
    assert source_layer(record, [plain]).name == "clip.mp4 (1)"
    assert source_layer({"source": {"name": "gone", "path": None}}, [plain, named]) is None
    assert source_layer({}, [plain]) is None


# --- defect 12: the wipe composites nothing, and follows the divider ------------------------
def _flat_pair(viewer, *, dark=40, bright=220, t=4, h=30, w=40):
    """A flat dark source and its flat bright x4 'result', placed like a real result."""
    src = viewer.add_image(np.full((t, h, w, 3), dark, np.uint8), name="src", rgb=True)
    scale, translate = result_placement(src.scale, src.translate, 4)
    res = viewer.add_image(np.full((t, 4 * h, 4 * w, 3), bright, np.uint8), name="res",
                           scale=scale, translate=translate, rgb=True,
                           metadata={"store_path": "/nowhere.zarr",
                                     "source": {"name": "src", "path": None}})
    return src, res


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 1.0])
def test_wipe_shows_left_columns_over_the_right_layer(viewer, clip, fraction, monkeypatch):
    src = viewer.add_image(clip, name="src")
    scale, translate = result_placement(src.scale, src.translate, 4)
    big = (255 - np.repeat(np.repeat(clip, 4, 1), 4, 2)).astype(np.uint8)
    res = viewer.add_image(big, name="res", scale=scale, translate=translate)
    other = viewer.add_image(clip[..., 1], name="other on top")
    _, widget = _dock(viewer)
    widget.set_layers("src", "res")

    def no_composite(*args, **kwargs):
        raise AssertionError("the wipe must not composite frames on the GUI thread")

    for name in ("wipe_composite", "match_sizes", "resize_frame"):
        monkeypatch.setattr(compare, name, no_composite)
    widget.wipe_slider.setValue(round(fraction * 1000))
    widget.wipe_check.setChecked(True)
    viewer.dims.set_point(0, 3)
    column = round(fraction * clip.shape[2])
    left = viewer.layers[WIPE_LEFT_NAME]
    shown = max(column, 1)  # napari takes no empty layer: column 0 hides one column
    assert left.data.shape == (len(clip), clip.shape[1], shown, 3)
    assert left.visible == (column > 0)
    np.testing.assert_array_equal(left.data[3], clip[3][:, :shown])
    # the left columns keep the source's placement: the same world coordinates
    np.testing.assert_allclose(left.scale, src.scale)
    np.testing.assert_allclose(left.translate, src.translate)
    assert viewer.layers.index(WIPE_LEFT_NAME) > viewer.layers.index("res")
    # the right side is the result layer itself (a growing result keeps updating)
    assert res.visible and not src.visible and not other.visible
    # the divider sits on the boundary between source columns column - 1 and column
    line = viewer.layers[DIVIDER_NAME]
    x = line.data[0][0, 1] + line.translate[1]
    assert x == pytest.approx(src.data_to_world((0, 0, column - 0.5))[2])
    assert x == pytest.approx(res.data_to_world((0, 0, 4 * column - 0.5))[2])
    assert left.interpolation2d == "nearest"
    widget.interp_combo.setCurrentText("bicubic")  # the source's pixels drawn smooth
    assert viewer.layers[WIPE_LEFT_NAME].interpolation2d == "cubic"
    widget.wipe_check.setChecked(False)
    assert not any(name in viewer.layers for name in (WIPE_LEFT_NAME, DIVIDER_NAME))
    assert src.visible and res.visible and other.visible


def test_wipe_renders_left_and_right_of_the_divider(viewer):
    src, res = _flat_pair(viewer)
    _, widget = _dock(viewer)
    widget.wipe_slider.setValue(300)
    widget.wipe_check.setChecked(True)
    viewer.window._qt_window.resize(1200, 800)
    viewer.window._qt_window.show()
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    # the image spans the canvas width or height; find its columns by the non-background
    cols = np.flatnonzero(shot.max(axis=(0, 2)) > 30)
    lo, hi = cols.min(), cols.max()
    row = shot[shot.shape[0] // 2]
    at = lambda f: row[int(lo + f * (hi - lo))].mean()  # noqa: E731
    assert abs(at(0.1) - 40) < 8 and abs(at(0.25) - 40) < 8  # left of 30 %: the source
    assert abs(at(0.4) - 220) < 8 and abs(at(0.9) - 220) < 8  # right of it: the result
    widget.wipe_slider.setValue(800)
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    row = shot[shot.shape[0] // 2]
    assert abs(at(0.6) - 40) < 8 and abs(at(0.9) - 220) < 8


class _CountingFrames:
    """A (T, H, W, C) array-like that records which frames are read."""

    def __init__(self, data):
        self._data = data
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim
        self.reads: list = []

    def __getitem__(self, key):
        first = key[0] if isinstance(key, tuple) else key
        self.reads.append(first.start if isinstance(first, slice) else first)
        return self._data[key]


def test_wipe_shows_a_growing_result_as_it_fills(viewer):
    src, res = _flat_pair(viewer, bright=0)  # a result store still empty (black)
    _, widget = _dock(viewer)
    widget.wipe_slider.setValue(300)
    widget.wipe_check.setChecked(True)
    viewer.window._qt_window.resize(1200, 800)
    viewer.window._qt_window.show()
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    cols = np.flatnonzero(shot.max(axis=(0, 2)) > 30)  # the dark source part only
    x_right = cols.max() + 40
    mid = shot.shape[0] // 2
    assert shot[mid, x_right].mean() < 10
    # the job writes frames into the store and refreshes its layer, as the Enhance widget does
    res.data[:] = 200
    res.refresh()
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    assert abs(shot[mid, x_right].mean() - 200) < 8
    assert abs(shot[mid, cols.min() + 5].mean() - 40) < 8


def test_wipe_reads_each_frame_once_and_time_steps_need_no_handler(viewer, clip):
    counted = _CountingFrames(clip)
    src = viewer.add_image(counted, name="src", rgb=True, contrast_limits=[0, 255])
    scale, translate = result_placement(src.scale, src.translate, 4)
    viewer.add_image(np.repeat(np.repeat(clip, 4, 1), 4, 2), name="res", scale=scale,
                     translate=translate)
    _, widget = _dock(viewer)
    widget.set_layers("src", "res")
    viewer.dims.set_point(0, 0)
    widget.wipe_check.setChecked(True)
    counted.reads.clear()
    viewer.dims.set_point(0, 2)
    for v in (100, 400, 700, 950):
        widget.wipe_slider.setValue(v)
    assert counted.reads == [2]  # one read of frame 2, then slices of it for every position
    viewer.dims.set_point(0, 4)
    assert counted.reads == [2, 4]
    np.testing.assert_array_equal(viewer.layers[WIPE_LEFT_NAME].data[4], clip[4][:, :53])


def test_wipe_follows_a_new_pair(viewer, clip):
    src, res = _flat_pair(viewer)
    viewer.add_image(np.full((4, 30, 40, 3), 120, np.uint8), name="third", rgb=True)
    _, widget = _dock(viewer)
    widget.set_layers("src", "res")
    widget.wipe_check.setChecked(True)
    _pick_by_hand(widget.right_combo, "third")  # another right layer: the wipe stays on
    assert widget.wipe_check.isChecked()
    assert [n for n in (WIPE_LEFT_NAME, DIVIDER_NAME) if n in viewer.layers] == [
        WIPE_LEFT_NAME, DIVIDER_NAME]
    assert viewer.layers["third"].visible and not res.visible and not src.visible
    widget.swap_layers()  # third | src
    assert widget.wipe_check.isChecked() and WIPE_LEFT_NAME in viewer.layers
    assert viewer.layers[WIPE_LEFT_NAME].data.dtype == np.uint8
    assert src.visible and not viewer.layers["third"].visible and not res.visible
    widget.wipe_check.setChecked(False)
    assert src.visible and res.visible and viewer.layers["third"].visible


def test_wipe_turns_off_when_a_layer_goes_and_with_side_by_side(viewer, clip):
    src, res = _flat_pair(viewer)
    _, widget = _dock(viewer)
    widget.wipe_check.setChecked(True)
    widget.grid_check.setChecked(True)  # side by side replaces the wipe
    assert not widget.wipe_check.isChecked() and WIPE_LEFT_NAME not in viewer.layers
    widget.grid_check.setChecked(False)
    widget.wipe_check.setChecked(True)
    viewer.layers.remove("res")
    assert not widget.wipe_check.isChecked()
    assert [layer.name for layer in viewer.layers] == ["src"] and src.visible


# --- metrics: a row or a point moves the time slider -----------------------------------------
def test_metrics_row_and_plot_point_move_the_time_slider(viewer, qtbot, clip, tmp_path):
    src = viewer.add_image(clip, name="clip", scale=(2.0, 1.0, 1.0), translate=(10.0, 0, 0))
    res = _add_result(viewer, src, tmp_path / "r.zarr", preset="seed", frame_range=(2, 6))
    dock, widget = _dock(viewer)
    viewer.window._qt_window.resize(1500, 950)
    viewer.window._qt_window.show()
    widget.tabs.setCurrentIndex(1)
    widget.compute_metrics()
    qtbot.waitUntil(lambda: widget._metrics_worker is None, timeout=WAIT_MS)
    assert [m.index for m in widget.metrics] == [0, 1, 2, 3]  # frames of the result
    assert [m.reference_index for m in widget.metrics] == [2, 3, 4, 5]
    QApplication.processEvents()
    # a click on row 2 shows result frame 2 = source frame 4 = world time 10 + 2 * 4
    rect = widget.table.visualItemRect(widget.table.item(2, 1))
    qtbot.mouseClick(widget.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert viewer.dims.point[0] == pytest.approx(res.data_to_world((2, 0, 0))[0]) == 18.0
    # a click near the point of frame 1 on the plot
    plot = widget.plot
    assert plot.width() > 100
    qtbot.mouseClick(plot, Qt.MouseButton.LeftButton,
                     pos=QPoint(round(plot.x_of(1)) + 3, plot.height() // 2))
    assert viewer.dims.point[0] == pytest.approx(16.0)
    assert widget.table.currentRow() == 1 and plot._current == 1


# --- status line, tooltips, size --------------------------------------------------------------
def _controls(widget):
    kinds = (QAbstractButton, QComboBox, QSpinBox, QLineEdit, QSlider, QTableWidget)
    return [w for w in widget.findChildren(kinds)
            if not w.objectName().startswith("qt_")
            and not isinstance(w.parent(), QTabBar | QTableWidget)]


def test_tooltips_labels_and_compact_size(viewer, clip):
    viewer.add_image(clip, name="clip")
    dock, widget = _dock(viewer)
    missing = [f"{type(w).__name__} {getattr(w, 'text', lambda: '')()}"
               for w in _controls(widget) if not w.toolTip()]
    assert missing == []
    texts = [w.toolTip() for w in _controls(widget)] + [
        label.text_plain for label in widget.findChildren(type(widget.status_label))]
    assert not any("--" in t or "overwrite=" in t for t in texts)
    assert widget.minimumSizeHint().height() <= 420
    assert dock.minimumSizeHint().height() <= 450


def test_long_error_wraps_and_never_widens_the_dock(viewer, qtbot, clip, tmp_path):
    viewer.add_image(clip, name="a")
    viewer.add_image(255 - clip, name="b")
    dock, widget = _dock(viewer)
    viewer.window._qt_window.resize(1500, 950)
    viewer.window._qt_window.show()
    QApplication.processEvents()
    width, hint = dock.width(), widget.minimumSizeHint().width()
    widget.compute_metrics()
    qtbot.waitUntil(lambda: widget._metrics_worker is None, timeout=WAIT_MS)
    long_dir = tmp_path / ("no-such-folder-" * 18)
    widget.export_csv(long_dir / "metrics.csv")
    message = widget.status_label.text_plain
    assert len(message) >= 300 and "could not save the metrics" in message
    QApplication.processEvents()
    assert widget.status_label.wordWrap()
    assert dock.width() == width and widget.minimumSizeHint().width() == hint
    # a new action clears the old failure
    widget.wipe_check.setChecked(True)
    assert "could not save" not in widget.status_label.text_plain


# --- defect 7: comparison video --------------------------------------------------------------
def _frames_of(path: Path) -> np.ndarray:
    from napari_vsr.io import open_frames

    with open_frames(path) as video:
        return np.asarray(video[:])


def test_default_slide_step_crosses_the_frame_within_the_clip(viewer, qtbot, tmp_path):
    _flat_pair(viewer, t=10, h=24, w=64)
    _, widget = _dock(viewer)
    assert widget.step_spin.value() == 0 and widget.step_spin.text().startswith("auto (28")
    widget.pause_len_spin.setValue(0)
    widget.captions_check.setChecked(False)
    out = tmp_path / "cmp.mp4"
    widget.export_video(out)
    qtbot.waitUntil(lambda: widget._export_worker is None, timeout=WAIT_MS)
    assert widget.last_export[0] == "done", widget.last_export
    video = _frames_of(out)
    # output frames 0..9 are input frames 0..9; the dark (left) part grows to the full width
    dark = (video[:10, 12, :, 1] < 130).mean(axis=1)
    np.testing.assert_allclose(dark, np.arange(10) / 9, atol=0.03)


def test_export_asks_before_replacing_and_always_opens_a_dialog(viewer, qtbot, tmp_path,
                                                                 monkeypatch):
    _flat_pair(viewer, t=3, h=24, w=40)
    _, widget = _dock(viewer)
    widget.pause_len_spin.setValue(1)
    out = tmp_path / "cmp.mp4"
    widget.video_edit.setText(str(out))
    asked, answers = [], []

    def save_dialog(parent, caption, start, filters, *args, **kwargs):
        asked.append(start)
        return str(out), filters

    def question(parent, title, text, *args, **kwargs):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_dialog))
    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    widget.export_button.click()  # Output is filled in: still a dialog, prefilled with it
    qtbot.waitUntil(lambda: widget._export_worker is None, timeout=WAIT_MS)
    assert asked == [str(out)] and widget.last_export[0] == "done"
    first = len(_frames_of(out))
    # again, to the same file: the widget asks; "No" leaves the file alone
    widget.pause_len_spin.setValue(4)
    answers.append(QMessageBox.StandardButton.No)
    widget.export_button.click()
    qtbot.waitUntil(lambda: widget._export_worker is None, timeout=WAIT_MS)
    assert widget.last_export[0] == "declined" and len(_frames_of(out)) == first
    assert "cmp.mp4" in asked[-1] and "Replace" in asked[-1]
    # "Yes" replaces it
    answers.append(QMessageBox.StandardButton.Yes)
    widget.export_button.click()
    qtbot.waitUntil(lambda: widget._export_worker is None, timeout=WAIT_MS)
    assert widget.last_export[0] == "done", widget.last_export
    assert len(_frames_of(out)) == first + 3 * 2  # three more frames at each of two holds
    for text in [*asked, widget.status_label.text_plain, widget.last_export[1]]:
        assert "--" not in text and "overwrite=" not in text and "CLI" not in text


def test_captions_are_burned_in_by_default(viewer, qtbot, tmp_path):
    _flat_pair(viewer, dark=40, bright=220, t=3, h=60, w=80)
    _, widget = _dock(viewer)
    assert widget.captions_check.isChecked()
    assert (widget.left_caption.text(), widget.right_caption.text()) == ("original",
                                                                         "enhanced")
    widget.right_caption.setText("RealBasicVSR")
    widget.pause_len_spin.setValue(0)
    out = tmp_path / "cmp.mkv"
    widget.export_video(out)
    qtbot.waitUntil(lambda: widget._export_worker is None, timeout=WAIT_MS)
    assert widget.last_export[0] == "done", widget.last_export
    first = _frames_of(out)[0].astype(int)  # divider at 0: the right layer and its caption
    h, w = first.shape[:2]
    expected = compare.comparison_frame(np.full((3, 60, 80, 3), 40, np.uint8),
                                        np.full((3, 240, 320, 3), 220, np.uint8), 0,
                                        widget.comparison_options())
    assert expected.shape == first.shape
    assert np.abs(first - expected).mean() < 4
    assert np.abs(first[: h // 8, w // 2:] - 220).mean() > 20  # the caption is there
    assert np.abs(first[: h // 8, 8: w // 2] - 220).mean() < 4  # "original" is hidden


def test_preview_shows_the_video_frame_of_the_current_time(viewer, qtbot, clip):
    src = viewer.add_image(clip, name="src")
    scale, translate = result_placement(src.scale, src.translate, 4)
    res = viewer.add_image(np.repeat(np.repeat(255 - clip, 4, 1), 4, 2), name="res",
                           scale=scale, translate=translate)
    _, widget = _dock(viewer)
    widget.set_layers("src", "res")
    widget.start_spin.setValue(1)
    viewer.dims.set_point(0, 2)
    widget.preview_frame()
    viewer.dims.set_point(0, 4)
    widget.preview_frame()  # asked again while the first runs: the newest request wins
    qtbot.waitUntil(lambda: widget._preview_worker is None and not widget._preview_again,
                    timeout=WAIT_MS)
    preview = viewer.layers[PREVIEW_NAME]
    expected = compare.comparison_frame(clip, np.asarray(res.data), 4,
                                        widget.comparison_options())
    np.testing.assert_array_equal(preview.data[0], expected)
    assert preview.data_to_world((0, 0, 0))[0] == pytest.approx(4.0)
    np.testing.assert_allclose(preview.scale[1:], res.scale[1:])
    np.testing.assert_allclose(preview.translate[1:], res.translate[1:])
    assert "frame 4" in widget.status_label.text_plain


# --- screenshots --------------------------------------------------------------------------------
def _median_ms(action, values) -> float:
    out = []
    for v in values:
        t0 = time.perf_counter()
        action(v)
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def test_screenshot_wipe_of_a_real_clip(viewer, qtbot, sample_frames_dir, tmp_path):
    frames = _sample(sample_frames_dir, 10)
    src = viewer.add_image(frames, name="demo_000")
    res = _add_result(viewer, src, tmp_path / "demo_000-bicubic.zarr")
    assert res.data.shape == (10, 1440, 2560, 3)
    dock, widget = _dock(viewer)
    assert (widget.left_combo.currentText(), widget.right_combo.currentText()) == (
        "demo_000", res.name)
    win = viewer.window._qt_window
    win.resize(1500, 950)
    win.show()
    viewer.dims.set_point(0, 6)
    widget.wipe_slider.setValue(500)
    widget.wipe_check.setChecked(True)
    QApplication.processEvents()
    # time per divider move on 1440x2560 frames (the change itself, before the draw)
    ms = _median_ms(widget.wipe_slider.setValue, [300, 400, 450, 550, 600, 520])
    print(f"divider move on 1440x2560: median {ms:.1f} ms")
    # the divider through the lettering on the tram: blocky source pixels | smooth bicubic
    widget.wipe_slider.setValue(352)
    viewer.camera.center = (0, 195, 232)
    viewer.camera.zoom = 4.0
    QApplication.processEvents()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(str(ARTIFACTS / "compare_wipe.png"), canvas_only=False,
                             flash=False)
    assert shot.shape[0] >= 900 and shot.std() > 20
    widget.tabs.setCurrentIndex(1)
    widget.compute_metrics()
    qtbot.waitUntil(lambda: widget._metrics_worker is None, timeout=WAIT_MS)
    assert len(widget.metrics) == 10
    QApplication.processEvents()
    assert widget.grab().save(str(ARTIFACTS / "compare_widget_metrics.png"))
    widget.tabs.setCurrentIndex(2)
    QApplication.processEvents()
    assert widget.grab().save(str(ARTIFACTS / "compare_widget_video.png"))
    assert isinstance(dock, QDockWidget)
