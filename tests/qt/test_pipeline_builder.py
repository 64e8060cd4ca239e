"""The pipeline builder in a real (Xvfb) napari viewer: build by clicking, save, load, run like
the CLI with that recipe, live preview of the frame under the time slider.

Run: QT_QPA_PLATFORM=xcb xvfb-run -a .venv/bin/python -m pytest tests/qt/test_pipeline_builder.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, SpinBox  # noqa: E402
from napari.utils._proxies import PublicOnlyProxy  # noqa: E402
from qtpy.QtCore import QCoreApplication, QEvent, QModelIndex, Qt  # noqa: E402
from qtpy.QtWidgets import (  # noqa: E402
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QFileDialog,
    QLineEdit,
    QListWidget,
    QSpinBox,
)

from napari_vsr.classic import PRESETS, Pipeline  # noqa: E402
from napari_vsr.errors import ParameterError  # noqa: E402
from napari_vsr.jobs.request import EngineOptions, JobRequest  # noqa: E402
from napari_vsr.jobs.runner import JobResult, run_job  # noqa: E402
from napari_vsr.widgets import _pipeline_preview  # noqa: E402
from napari_vsr.widgets._pipeline_preview import preview_placement  # noqa: E402
from napari_vsr.widgets.pipeline import PipelineBuilder  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("NAPARI_VSR_ARTIFACTS", REPO / "artifacts"))
WAIT_MS = 60_000


# --- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frames(sample_frames_dir) -> np.ndarray:
    """Seven real sample frames cropped to 48x64, RGB uint8."""
    paths = sorted(sample_frames_dir.glob("*.png"))[:7]
    stack = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths])
    return np.ascontiguousarray(stack[:, 140:188, 290:354])


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def builder(viewer, qtbot):
    widget = PipelineBuilder()
    viewer.window.add_dock_widget(widget, name="Pipeline builder")
    return widget


def _menu_action(builder: PipelineBuilder, op: str):
    return next(a for a in builder.add_menu.actions() if a.data() == op)


def _click(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, "-m", "napari_vsr", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


def _drain(gen) -> JobResult:
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _getter(viewer, name: str):
    """The preview's source: the layer called ``name`` while there is one."""
    return lambda: viewer.layers[name] if name in viewer.layers else None


def _wait_preview(qtbot, builder: PipelineBuilder) -> None:
    qtbot.waitUntil(lambda: not builder.preview.busy, timeout=WAIT_MS)
    qtbot.wait(20)  # the worker's returned signal, delivered on this thread


# --- building, saving, loading, running ------------------------------------------------------
def test_build_save_load_and_run_like_the_cli(viewer, builder, qtbot, tmp_path, frames,
                                               monkeypatch):
    assert builder.pipeline() == PRESETS["seed"]  # where it starts
    # clear it with the Remove button
    while builder.step_list.count():
        builder.step_list.setCurrentRow(0)
        _click(qtbot, builder.remove_button)
    assert "no steps" in builder.error() and "no steps" in builder.message.text()
    with pytest.raises(ParameterError, match="no steps"):
        builder.pipeline()
    assert not builder.save_button.isEnabled()
    # add steps from the menu; each lands after the selected one and is selected
    for op in ("gaussian_blur", "resize", "temporal_median"):
        _menu_action(builder, op).trigger()
    assert [s.op for s in builder.pipeline().steps] == ["gaussian_blur", "resize",
                                                        "temporal_median"]
    assert builder.step_list.currentRow() == 2
    # reorder: the temporal step first (Up twice), then a drag of the blur below the resize
    _click(qtbot, builder.up_button)
    _click(qtbot, builder.up_button)
    assert [s.op for s in builder.pipeline().steps] == ["temporal_median", "gaussian_blur",
                                                        "resize"]
    assert not builder.up_button.isEnabled()
    model = builder.step_list.model()
    assert model.moveRow(QModelIndex(), 1, QModelIndex(), 3)
    builder.step_list.setCurrentRow(2)
    builder.step_list.reordered.emit()  # what a drop does after Qt moved the row
    assert [s.op for s in builder.pipeline().steps] == ["temporal_median", "resize",
                                                        "gaussian_blur"]
    # edit parameters through the magicgui forms (the Qt widgets underneath)
    builder.step_list.setCurrentRow(2)
    form = builder.form
    assert isinstance(form["ksize"], SpinBox) and isinstance(form["sigma"], FloatSpinBox)
    assert (form["ksize"].min, form["ksize"].max, form["ksize"].step) == (1, 99, 2)
    assert "Kernel size" in form["ksize"].tooltip and "odd integer" in form["ksize"].tooltip
    form["ksize"].native.setValue(4)  # even: refused by the registry, shown, not raised
    assert "'ksize' = 4" in builder.error() and "odd integer" in builder.message.text()
    assert builder.message.wordWrap()
    assert builder.step_list.item(2).text().startswith("⚠")
    with pytest.raises(ParameterError, match="step 3"):
        builder.pipeline()
    with qtbot.waitSignal(builder.changed, timeout=1000):
        form["ksize"].native.setValue(7)
    form["sigma"].native.setValue(1.25)
    assert builder.error() is None
    builder.step_list.setCurrentRow(1)
    form = builder.form
    assert isinstance(form["interpolation"], ComboBox)
    assert form["interpolation"].choices == ("nearest", "bilinear", "bicubic", "lanczos", "area")
    assert isinstance(builder.form.toggle("size"), CheckBox)
    form["interpolation"].native.setCurrentText("bilinear")
    form.toggle("size").native.setChecked(True)  # factor and size both set: invalid
    assert "exactly one of 'factor' and 'size'" in builder.message.text()
    form.toggle("size").native.setChecked(False)
    form["factor"].native.setValue(2.0)
    builder.step_list.setCurrentRow(0)
    builder.form["radius"].native.setValue(2)
    builder.name_edit.setText("")
    qtbot.keyClicks(builder.name_edit, "builder-test")
    built = builder.pipeline()
    assert built.to_dict() == {
        "name": "builder-test",
        "description": "edited from the 'seed' preset",
        "steps": [{"op": "temporal_median", "radius": 2},
                  {"op": "resize", "factor": 2.0, "interpolation": "bilinear"},
                  {"op": "gaussian_blur", "ksize": 7, "sigma": 1.25}],
    }
    assert "enlarges x2" in builder.message.text() and "2 frames" in builder.message.text()
    # Save… (the dialog answered by the test) writes the YAML the CLI takes
    recipe = tmp_path / "built.yaml"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(recipe), "")))
    _click(qtbot, builder.save_button)
    assert recipe.read_text() == built.to_text("yaml")
    assert f"Saved to {recipe}" in builder.message.text()
    # a fresh builder loads it: the same pipeline
    fresh = PipelineBuilder()
    viewer.window.add_dock_widget(fresh, name="Pipeline builder 2")
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(recipe), "")))
    _click(qtbot, fresh.load_button)
    assert fresh.pipeline() == built and fresh.name_edit.text() == "builder-test"
    assert fresh.step_list.count() == 3 and fresh.step_list.currentRow() == 0
    assert fresh.pipeline().to_text() == recipe.read_text()
    # the CLI accepts the file and runs it; the inline recipe through run_job gives the same
    check = _cli("recipes", "check", str(recipe), "--size", "64x48")
    assert check.returncode == 0 and "OK" in check.stdout and "output 128x96" in check.stdout
    source = tmp_path / "crop.tif"
    tifffile.imwrite(source, frames, photometric="rgb")
    cli_out = tmp_path / "cli.tif"
    done = _cli("enhance", str(source), "-o", str(cli_out), "--method", "classic",
                "--recipe", str(recipe), "--chunk", "4", "-q")
    assert done.returncode == 0, done.stderr
    job_out = tmp_path / "job.tif"
    result = _drain(run_job(JobRequest(source=source, output=job_out,
                                       method=fresh.method_options(),
                                       engine=EngineOptions(chunk=4))))
    assert result.frames == len(frames)
    got = tifffile.imread(job_out)
    assert got.shape == (7, 96, 128, 3)
    np.testing.assert_array_equal(got, tifffile.imread(cli_out))
    np.testing.assert_array_equal(got, built.apply_stack(frames))
    assert result.metadata["options"]["pipeline"] == built.to_dict()


def test_presets_and_load_errors_name_the_file(builder, qtbot, tmp_path, monkeypatch):
    combo = builder.preset_combo
    index = combo.findText("temporal-denoise")
    combo.activated.emit(index)
    assert builder.pipeline() == PRESETS["temporal-denoise"]
    assert combo.currentIndex() == 0  # back to the prompt, ready for the next choice
    builder.load_preset("lanczos-x4")
    assert builder.pipeline() == PRESETS["lanczos-x4"]
    with pytest.raises(ParameterError, match="unknown preset 'nope'"):
        builder.load_preset("nope")
    before = builder.pipeline()
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - op: sharpen_more\n")
    with pytest.raises(ParameterError) as info:
        builder.load(bad)
    assert str(bad) in str(info.value) and "unknown operator 'sharpen_more'" in str(info.value)
    assert builder.pipeline() == before  # nothing changed
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(bad), "")))
    _click(qtbot, builder.load_button)
    shown = builder.message.text()
    assert shown.startswith("Could not load the recipe") and str(bad) in shown
    assert "sharpen_more" in shown and "Traceback" not in shown
    missing = tmp_path / "missing.yaml"
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        builder.load(missing)
    assert builder.pipeline() == before


def test_compact_with_tooltips_on_every_control(viewer, builder, qtbot):
    assert builder.minimumSizeHint().height() <= 300
    many = Pipeline([("unsharp_mask", {})] * 30, name="long")
    builder.set_pipeline(many)  # the list scrolls instead of growing
    assert builder.minimumSizeHint().height() <= 300
    builder.load_preset("microscopy-clahe")
    builder.step_list.setCurrentRow(1)  # clahe: a float and a pair
    kinds = (QAbstractButton, QComboBox, QLineEdit, QListWidget, QSpinBox)
    controls = [w for w in builder.findChildren(kinds) if w.isVisibleTo(builder)
                and not isinstance(w.parent(), QAbstractSpinBox)]  # its own line edit
    assert len(controls) >= 10
    missing = [f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}" for w in controls
               if not w.toolTip()]
    assert not missing, missing
    for action in builder.add_menu.actions():
        if action.data():
            assert action.toolTip() and " — " in action.text()
    assert "--" not in builder.message.text()  # no CLI flags for napari users


# --- live preview ---------------------------------------------------------------------------
def test_live_preview_follows_edits_and_the_time_slider(viewer, builder, qtbot, frames):
    source = viewer.add_image(frames, name="clip", rgb=True, scale=(1.0, 0.5, 0.5),
                              translate=(0.0, 10.0, -4.0))
    builder.set_pipeline(Pipeline([("unsharp_mask", {"amount": 0.6}),
                                   ("resize", {"factor": 2})], name="sharp-x2"))
    assert not builder.preview_check.isEnabled()
    # the viewer as plugins get it (napari's proxy: private access warns, layers are proxies)
    proxied = PublicOnlyProxy(viewer)
    builder.set_preview_target(proxied, _getter(proxied, "clip"))
    viewer.dims.set_current_step(0, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no private attribute through the proxy
        builder.preview_check.setChecked(True)
        _wait_preview(qtbot, builder)
    name = "clip pipeline preview"
    assert name in viewer.layers
    layer = viewer.layers[name]
    np.testing.assert_array_equal(layer.data[0], builder.pipeline().apply(frames[2]))
    assert layer.rgb and layer.data.shape == (1, 96, 128, 3)
    # placement: over the source in world coordinates (frame 2, pixel centres x2)
    assert tuple(layer.scale) == (1.0, 0.25, 0.25)
    for y, x in ((0, 0), (10, 20), (47, 63)):
        world = source.data_to_world((2, y, x))
        np.testing.assert_allclose(layer.world_to_data(world), (0, 2 * y + 0.5, 2 * x + 0.5))
    # the time slider: the new frame replaces it (one layer)
    viewer.dims.set_current_step(0, 5)
    _wait_preview(qtbot, builder)
    assert [lyr.name for lyr in viewer.layers].count(name) == 1
    np.testing.assert_array_equal(viewer.layers[name].data[0],
                                  builder.pipeline().apply(frames[5]))
    assert viewer.layers[name].translate[0] == 5.0
    # a parameter edit through the form
    builder.step_list.setCurrentRow(0)
    builder.form["amount"].native.setValue(1.5)
    _wait_preview(qtbot, builder)
    assert builder.pipeline().steps[0].params["amount"] == 1.5
    np.testing.assert_array_equal(viewer.layers[name].data[0],
                                  builder.pipeline().apply(frames[5]))
    # an invalid edit is shown and leaves the last good preview
    builder.step_list.setCurrentRow(1)
    builder.form.toggle("size").native.setChecked(True)
    _wait_preview(qtbot, builder)
    assert "exactly one of" in builder.message.text()
    builder.form.toggle("size").native.setChecked(False)
    _wait_preview(qtbot, builder)
    # a temporal step: the neighbours of the frame are its context
    builder.add_step("temporal_mean", {"radius": 2}, index=0)
    _wait_preview(qtbot, builder)
    expected = builder.pipeline().apply_stack(frames[3:7])[2]  # frames 3..7 around frame 5
    np.testing.assert_array_equal(viewer.layers[name].data[0], expected)
    # switched off: removed
    builder.preview_check.setChecked(False)
    assert name not in viewer.layers
    viewer.dims.set_current_step(0, 1)
    qtbot.wait(200)
    assert name not in viewer.layers


def test_live_preview_of_gray_uint16_and_fixed_size(viewer, builder, qtbot, frames,
                                                     monkeypatch):
    gray = (frames[..., 1].astype(np.uint16) * 257)
    viewer.add_image(gray, name="gray", contrast_limits=(1000, 60000), colormap="magma")
    builder.set_pipeline(Pipeline([("resize", {"size": (60, 100)})], name="fixed"))
    assert "fixed size" in builder.message.text() and "whole number" in builder.message.text()
    builder.set_preview_target(viewer, _getter(viewer, "gray"))
    viewer.dims.set_current_step(0, 4)
    builder.preview_check.setChecked(True)
    _wait_preview(qtbot, builder)
    layer = viewer.layers["gray pipeline preview"]
    assert layer.data.dtype == np.uint16 and layer.data.shape == (1, 60, 100)
    np.testing.assert_array_equal(layer.data[0], builder.pipeline().apply(gray[4]))
    assert tuple(layer.contrast_limits) == (1000, 60000) and layer.colormap.name == "magma"
    scale, translate = preview_placement((1, 1, 1), (0, 0, 0), (48, 64), (60, 100), 4)
    assert tuple(layer.scale) == scale and tuple(layer.translate) == translate
    assert scale == (1.0, 0.8, 0.64) and translate[0] == 4.0
    # the builder deleted with the preview on: the time slider calls nothing deleted
    calls = []
    monkeypatch.setattr(_pipeline_preview.LivePreview, "request",
                        lambda self, event=None: calls.append(event))
    viewer.window.remove_dock_widget(builder)
    builder.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    with pytest.raises(RuntimeError, match="deleted"):
        builder.isVisible()
    viewer.dims.set_current_step(0, 1)
    assert calls == []
    qtbot.wait(100)
    assert viewer.layers["gray pipeline preview"].metadata["napari_vsr_preview"]["frame"] == 4


def test_live_preview_of_a_single_image(viewer, builder, qtbot, frames):
    image = viewer.add_image(frames[3], name="still", rgb=True, translate=(5.0, 7.0))
    builder.set_pipeline(Pipeline([("resize", {"factor": 3, "interpolation": "nearest"})],
                                  name="x3"))
    builder.set_preview_target(viewer, _getter(viewer, "still"))
    builder.preview_check.setChecked(True)
    _wait_preview(qtbot, builder)
    layer = viewer.layers["still pipeline preview"]
    assert layer.data.shape == (144, 192, 3)
    np.testing.assert_array_equal(layer.data, builder.pipeline().apply(frames[3]))
    # nearest x3: output pixel 3 * y + 1 is the centre of source pixel y
    np.testing.assert_allclose(layer.world_to_data(image.data_to_world((10, 20))), (31, 61))
    # the source removed: its preview goes with it
    viewer.layers.remove("still")
    qtbot.waitUntil(lambda: "still pipeline preview" not in viewer.layers, timeout=5000)
    # another float image: its dtype is refused in words, not a traceback
    viewer.add_image(frames[3].astype(np.float64), name="floaty", rgb=True)
    builder.set_preview_target(viewer, _getter(viewer, "floaty"))
    _wait_preview(qtbot, builder)
    assert builder.message.text().startswith("Preview:") and "float64" in builder.message.text()
    assert "Traceback" not in builder.message.text()


def test_preview_latest_request_wins(viewer, builder, qtbot, frames, monkeypatch):
    viewer.add_image(frames, name="clip", rgb=True)
    builder.set_pipeline(Pipeline([("median_filter", {"size": 3})], name="median"))
    builder.set_preview_target(viewer, _getter(viewer, "clip"))
    computed: list[int] = []
    gate = threading.Event()
    real = _pipeline_preview.compute

    def slow(request):
        computed.append(request.t)
        gate.wait(10)
        return real(request)

    monkeypatch.setattr(_pipeline_preview, "compute", slow)
    viewer.dims.set_current_step(0, 0)
    builder.preview_check.setChecked(True)
    qtbot.waitUntil(lambda: computed == [0], timeout=WAIT_MS)
    for t in (1, 2, 3, 4):  # while frame 0 computes
        viewer.dims.set_current_step(0, t)
    builder.form["size"].native.setValue(5)
    gate.set()
    _wait_preview(qtbot, builder)
    assert computed == [0, 4]  # the first, then only the newest
    np.testing.assert_array_equal(viewer.layers["clip pipeline preview"].data[0],
                                  builder.pipeline().apply(frames[4]))
    assert builder.pipeline().steps[0].params["size"] == 5


def test_screenshot_docked(viewer, builder, qtbot, frames):
    viewer.add_image(frames, name="clip", rgb=True)
    builder.load_preset("seed")
    builder.step_list.setCurrentRow(2)  # resize: a choice, a pair and optional values
    builder.set_preview_target(viewer, _getter(viewer, "clip"))
    builder.preview_check.setChecked(True)
    _wait_preview(qtbot, builder)
    viewer.window._qt_window.resize(1400, 900)
    qtbot.wait(200)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "pipeline_builder.png"
    viewer.screenshot(str(path), canvas_only=False)
    assert path.stat().st_size > 10_000
