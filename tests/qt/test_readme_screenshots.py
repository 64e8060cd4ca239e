"""The screenshots in the README, taken the way a user sees the plugin: napari under Xvfb with
the sample clip, the widgets docked through the plugin manifest, a real enhancement.

They are written to ``$NAPARI_VSR_ARTIFACTS/readme/`` (default ``artifacts/readme``);
``scripts/update_screenshots.sh`` runs this file and copies them to ``docs/screenshots/``.
Each test checks what the picture must show, so a broken layout fails here, not in the README.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

REPO = Path(__file__).resolve().parents[2]
PLUGIN = "napari-vsr"
WAIT_MS = 180_000


def _out() -> Path:
    out = Path(os.environ.get("NAPARI_VSR_ARTIFACTS", REPO / "artifacts")) / "readme"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def viewer(make_napari_viewer):
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 900)
    QApplication.processEvents()
    return viewer


def _sample(viewer, frames: int = 4):
    """The shipped sample clip, cut to a few frames (a quick classic x4 run)."""
    layer = viewer.open_sample(PLUGIN, "demo_clip")[0]
    data = np.asarray(layer.data[:frames])
    viewer.layers.remove(layer)
    return viewer.add_image(data, name="street", metadata={"fps": 25.0})


def _settle(qtbot) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(3):
        QApplication.processEvents()
        qtbot.wait(50)


def _shot(viewer, name: str) -> np.ndarray:
    image = viewer.screenshot(str(_out() / name), canvas_only=False)
    assert image.ndim == 3 and image.shape[0] >= 800 and image.std() > 10
    return image


def _enhanced(viewer, qtbot, tmp_path):
    _, enhance = viewer.window.add_plugin_dock_widget(PLUGIN, "Enhance video")
    enhance.set_method("classic", "seed")
    enhance.out_edit.setText(str(tmp_path))
    enhance.run()
    qtbot.waitUntil(lambda: not enhance.is_running, timeout=WAIT_MS)
    assert enhance.result_layer is not None
    return enhance


def test_screenshot_enhance(viewer, qtbot, tmp_path):
    _sample(viewer)
    enhance = _enhanced(viewer, qtbot, tmp_path)
    enhance.range_section.set_expanded(True)
    viewer.dims.set_point(0, 2)
    viewer.reset_view()
    _settle(qtbot)
    assert enhance.run_button.isVisible() and "done" in enhance.status_label.text_plain
    _shot(viewer, "enhance.png")


def test_screenshot_pipeline_builder(viewer, qtbot):
    _sample(viewer)
    _, enhance = viewer.window.add_plugin_dock_widget(PLUGIN, "Enhance video")
    enhance.set_method("builder")
    builder = enhance.method_panel.builder
    builder.step_list.setCurrentRow(0)
    builder.preview_check.setChecked(True)
    qtbot.waitUntil(lambda: any(layer.name.endswith("pipeline preview")
                                for layer in viewer.layers), timeout=WAIT_MS)
    viewer.reset_view()
    _settle(qtbot)
    _shot(viewer, "pipeline_builder.png")
    builder.preview_check.setChecked(False)


def test_screenshot_wipe_comparison(viewer, qtbot, tmp_path):
    source = _sample(viewer)
    enhance = _enhanced(viewer, qtbot, tmp_path)
    _, compare = viewer.window.add_plugin_dock_widget(PLUGIN, "Compare layers", tabify=True)
    compare.set_layers(source.name, enhance.result_layer.name)
    compare.wipe_check.setChecked(True)
    compare.wipe_slider.setValue(compare.wipe_slider.maximum() // 2)
    viewer.dims.set_point(0, 2)
    viewer.reset_view()
    viewer.camera.zoom *= 2.5  # close enough to see the detail on both sides of the divider
    qtbot.wait(500)  # a wipe computed off the GUI thread lands
    _settle(qtbot)
    _shot(viewer, "compare_wipe.png")


def test_screenshot_job_queue(viewer, qtbot, tmp_path):
    source = _sample(viewer, frames=3)
    _, enhance = viewer.window.add_plugin_dock_widget(PLUGIN, "Enhance video")
    enhance.out_edit.setText(str(tmp_path))
    for preset in ("bicubic-x4", "seed"):
        enhance.set_method("classic", preset)
        queue = enhance.add_to_queue()
    enhance.set_method("realbasicvsr")
    enhance.weights_combo.setCurrentIndex(enhance.weights_combo.findData("file"))
    enhance.weights_edit.setText(str(tmp_path / "missing.pth"))
    enhance.add_to_queue()
    queue.start()
    qtbot.waitUntil(lambda: not queue.is_active, timeout=WAIT_MS)
    states = [e.state.value for e in queue.entries]
    assert states == ["done", "done", "failed"], states
    assert source.name in queue.entries[0].title
    viewer.reset_view()
    _settle(qtbot)
    _shot(viewer, "job_queue.png")
