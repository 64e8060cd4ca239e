"""The Enhance and Compare widgets in a real (offscreen/Xvfb) napari viewer.

Run: QT_QPA_PLATFORM=xcb xvfb-run -a .venv/bin/python -m pytest tests/qt/test_widgets.py
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.utils import progress as napari_progress  # noqa: E402
from napari.utils.notifications import notification_manager  # noqa: E402

from napari_vsr import compare, engine  # noqa: E402
from napari_vsr.widgets import CompareWidget, EnhanceWidget  # noqa: E402
from napari_vsr.widgets._compare_view import _grid_of  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 120_000


# --- fixtures -------------------------------------------------------------------------------
def _sample_frames(sample_frames_dir: Path, n: int) -> np.ndarray:
    """The first ``n`` real sample frames, RGB uint8 (T, 360, 640, 3)."""
    try:  # the shipped sample clip, when the I/O part provides it
        from napari_vsr._sample_data import make_sample_clip

        data = np.asarray(make_sample_clip()[0][0][:n])
        if data.ndim == 4:
            return data
    except ImportError:
        pass
    paths = sorted(sample_frames_dir.glob("*.png"))[:n]
    return np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths])


@pytest.fixture
def clip(sample_frames_dir) -> np.ndarray:
    """A small crop of the sample clip: (5, 40, 56, 3) uint8."""
    return np.ascontiguousarray(_sample_frames(sample_frames_dir, 5)[:, 150:190, 300:356])


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture(autouse=True)
def _no_progress_bars_left():
    yield
    assert len(napari_progress._all_instances) == 0, "a progress bar was left open"


def _wait_idle(qtbot, widget: EnhanceWidget) -> None:
    qtbot.waitUntil(lambda: not widget.is_running, timeout=WAIT_MS)


def _blob_clip(t: int = 3, h: int = 24, w: int = 32, y0: float = 9.3, x0: float = 17.6):
    yy, xx = np.mgrid[0:h, 0:w]
    blob = np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * 2.0**2))
    frame = (20 + 200 * blob).astype(np.uint8)
    return np.repeat(np.stack([frame] * 3, -1)[None], t, axis=0)


def _centroid(img: np.ndarray) -> np.ndarray:
    g = img[..., 0].astype(np.float64)
    g = np.clip(g - 0.5 * g.max(), 0, None)  # only the blob core
    yy, xx = np.mgrid[0 : g.shape[0], 0 : g.shape[1]]
    return np.array([(g * yy).sum(), (g * xx).sum()]) / g.sum()


def _errors_since(n: int) -> list[str]:
    return [str(r.message) for r in notification_manager.records[n:]
            if r.severity.name.lower() == "error"]


# --- Enhance widget -------------------------------------------------------------------------
def test_classic_preset_through_widget(viewer, qtbot, clip, tmp_path):
    src = viewer.add_image(clip, name="clip", scale=(2.0, 1.5, 1.5), translate=(10.0, 5.0, -3.0),
                           metadata={"fps": 12.5})
    widget = EnhanceWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_method("classic", "seed")
    widget.out_edit.setText(str(tmp_path / "results"))
    widget.start_spin.setValue(1)
    widget.stop_spin.setValue(3)  # the last frame, included
    widget.run()
    _wait_idle(qtbot, widget)

    layer = widget.result_layer
    assert layer is not None and layer.name == "clip [classic:seed x4]"
    t, h, w, c = clip.shape
    assert layer.data.shape == (3, 4 * h, 4 * w, c) and layer.data.dtype == np.uint8
    assert layer.rgb
    np.testing.assert_allclose(layer.scale, (2.0, 1.5 / 4, 1.5 / 4))
    np.testing.assert_allclose(layer.translate, (10.0 + 2.0, 5.0 - 1.5 * 3 / 8, -3.0 - 1.5 * 3 / 8))
    # frame-synced: result frame 0 is shown at the world time of source frame 1
    assert layer.data_to_world((0, 0, 0))[0] == pytest.approx(src.data_to_world((1, 0, 0))[0])
    # the zarr store behind the layer holds exactly what the engine computes directly
    from napari_vsr.enhancers import make_enhancer

    direct = dict(engine.enhance(clip, make_enhancer("classic", preset="seed"),
                                 frame_range=(1, 4)))
    for k in range(3):
        np.testing.assert_array_equal(np.asarray(layer.data[k]), direct[k + 1])
    md = layer.metadata
    assert md["method"] == "classic:seed" and md["frame_range"] == [1, 4]
    assert md["parameters"]["scale"] == 4 and md["partial"] is False
    assert md["fps"] == "25/2" and md["fps_float"] == 12.5  # the layer's rate, exact
    assert md["timing"]["elapsed_s"] > 0 and md["timing"]["segments_computed"] >= 1
    assert md["schema"] == "napari-vsr/result/1" and "job_dir" not in md
    store = Path(md["store_path"])
    assert store.parent == tmp_path / "results" and store.is_dir()
    from napari_vsr.io.zarr_store import open_result_store

    np.testing.assert_array_equal(open_result_store(store, mode="r")[2], direct[3])
    # the store can be reopened later as the same frame-synced layer, with its metadata
    from napari_vsr.widgets.enhance import open_result_layer

    again = open_result_layer(viewer, store)
    assert again.name.startswith(layer.name) and again.rgb  # napari adds " [1]" to repeats
    np.testing.assert_allclose(again.scale, layer.scale)
    np.testing.assert_allclose(again.translate, layer.translate)
    assert again.metadata["partial"] is False and again.metadata["fps_float"] == 12.5
    assert again.metadata["method"] == "classic:seed"
    np.testing.assert_array_equal(np.asarray(again.data[1]), direct[2])
    viewer.layers.remove(again)

    # preview of the current frame, placed on the same time step
    viewer.dims.set_point(0, src.data_to_world((2, 0, 0))[0])
    widget.preview()
    _wait_idle(qtbot, widget)
    prev = widget.preview_layer
    assert prev is not None and prev.name.endswith("preview") and prev.data.shape[0] == 1
    np.testing.assert_array_equal(np.asarray(prev.data[0]), direct[2])
    assert prev.data_to_world((0, 0, 0))[0] == pytest.approx(src.data_to_world((2, 0, 0))[0])


def test_result_overlays_source_in_world_coordinates(viewer, qtbot):
    y0, x0 = 9.3, 17.6
    src = viewer.add_image(_blob_clip(y0=y0, x0=x0), name="blob", rgb=True, scale=(1.0, 0.5, 0.5),
                           translate=(0.0, 100.0, 200.0))
    widget = EnhanceWidget(viewer)
    widget.set_method("classic", "seed")
    widget.run()
    _wait_idle(qtbot, widget)
    res = widget.result_layer
    src_world = np.asarray(src.data_to_world((0, *_centroid(src.data[0]))))
    res_world = np.asarray(res.data_to_world((0, *_centroid(np.asarray(res.data[0])))))
    assert res.data.shape == (3, 96, 128, 3)
    # the same feature lands at the same world position (to a few hundredths of a source pixel)
    np.testing.assert_allclose(res_world[1:], src_world[1:], atol=0.05 * 0.5)


def test_realbasicvsr_through_widget_matches_engine(viewer, qtbot, golden_dir):
    clip = np.load(golden_dir / "input_rgb_uint8.npy")[:4, :40, :48]
    weights = golden_dir / "realbasicvsr_random_mmedit_layout.pth"
    viewer.add_image(clip, name="golden")
    widget = EnhanceWidget(viewer)
    widget.set_method("realbasicvsr")
    widget.weights_combo.setCurrentIndex(widget.weights_combo.findData("file"))
    widget.weights_edit.setText(str(weights))
    widget.device_combo.setCurrentText("cpu")
    widget.precision_combo.setCurrentText("fp32")
    widget.chunk_spin.setValue(2)
    widget.overlap_spin.setValue(1)

    # responsiveness: a timer ticking in the main thread during the run
    from qtpy.QtCore import QTimer

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    widget.run()
    _wait_idle(qtbot, widget)
    timer.stop()
    gaps = np.diff(ticks)
    assert len(ticks) > 5 and gaps.max() < 1.0, f"event loop stalled for {gaps.max():.2f} s"

    layer = widget.result_layer
    assert layer.name == "golden [RealBasicVSR x4]"
    assert layer.data.shape == (4, 160, 192, 3) and layer.data.dtype == np.uint8
    from napari_vsr.enhancers import make_enhancer

    enh = make_enhancer("realbasicvsr", weights=weights, device="cpu", precision="fp32")
    direct = np.stack([f for _, f in engine.enhance(clip, enh, chunk=2, overlap=1)])
    got = np.asarray(layer.data[:])
    assert np.abs(got.astype(int) - direct.astype(int)).max() <= 1
    md = layer.metadata
    assert md["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert md["device"] == "cpu" and md["precision"] == "fp32" and md["method"] == "realbasicvsr"
    assert md["engine"]["chunk"] == 2 and md["engine"]["overlap"] == 1


class _GatedSlow:
    """Wraps an enhancer; its second chunk waits until the test has pressed Cancel."""

    def __init__(self, inner, gate: threading.Event):
        self._inner, self._gate, self.calls = inner, gate, 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def enhance(self, frames, *, step=None):
        self.calls += 1
        if self.calls == 2:
            assert self._gate.wait(30), "the test never cancelled"
        return self._inner.enhance(frames, step=step)


def test_one_chunk_realbasicvsr_shows_progress_per_frame(viewer, qtbot, golden_dir, tmp_path,
                                                         monkeypatch):
    """A run of a single chunk reports every finished frame while the chunk runs (before its
    frames reach the layer), through the widget's progress bar."""
    clip = np.load(golden_dir / "input_rgb_uint8.npy")[:, :16, :16]  # 6 frames, one chunk
    viewer.add_image(clip, name="golden", rgb=True)  # napari guesses gray planes at 16 px
    _, widget = viewer.window.add_plugin_dock_widget("napari-vsr", "Enhance video")
    widget.set_method("realbasicvsr")
    widget.weights_combo.setCurrentIndex(widget.weights_combo.findData("file"))
    widget.weights_edit.setText(str(golden_dir / "realbasicvsr_random_mmedit_layout.pth"))
    widget.device_combo.setCurrentText("cpu")
    widget.precision_combo.setCurrentText("fp32")
    widget.chunk_spin.setValue(6)
    widget.overlap_spin.setValue(0)
    widget.out_edit.setText(str(tmp_path))
    seen: list = []
    from napari_vsr.widgets.layer_job import LayerJob

    on_progress, on_event = LayerJob._on_progress, LayerJob._on_event
    monkeypatch.setattr(LayerJob, "_on_progress", lambda self, p: (
        seen.append(("progress", p.done)), on_progress(self, p)))
    monkeypatch.setattr(LayerJob, "_on_event", lambda self, e: (
        seen.append((type(e).__name__, None)), on_event(self, e)))
    widget.run()
    _wait_idle(qtbot, widget)
    first_frames = seen.index(("FramesDone", None))
    before = [done for kind, done in seen[:first_frames] if kind == "progress"]
    assert [d for d in before if d] == [1, 2, 3, 4, 5, 6], seen
    assert widget.result_layer.data.shape == (6, 64, 64, 3), widget.result_layer.data.shape
    assert widget.progress_bar.maximum() == 6 and not widget.progress_bar.isVisible()


class _Blocking:
    """Wraps an enhancer; its first chunk starts, says so, and waits for the test's gate."""

    def __init__(self, inner, started: threading.Event, gate: threading.Event):
        self._inner, self._started, self._gate = inner, started, gate

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def enhance(self, frames, *, step=None):
        self._started.set()
        assert self._gate.wait(30), "the test never released the chunk"
        return self._inner.enhance(frames, step=step)


def test_preview_can_be_cancelled(viewer, qtbot, clip, monkeypatch):
    import napari_vsr.enhancers as enhancers

    started, gate = threading.Event(), threading.Event()
    real = enhancers.make_enhancer
    monkeypatch.setattr(enhancers, "make_enhancer",
                        lambda *a, **k: _Blocking(real(*a, **k), started, gate))
    viewer.add_image(clip, name="clip")
    _, widget = viewer.window.add_plugin_dock_widget("napari-vsr", "Enhance video")
    widget.set_method("classic", "seed")
    widget.preview()
    qtbot.waitUntil(started.is_set, timeout=WAIT_MS)
    assert widget.cancel_button.isEnabled()
    widget.cancel()
    gate.set()  # the chunk runs on, and its first finished frame meets the cancel
    _wait_idle(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == ["clip"] and widget.preview_layer is None
    assert "cancelled" in widget.status_label.text_plain


@pytest.mark.parametrize("keep", [False, True])
def test_cancel_mid_run(viewer, qtbot, clip, monkeypatch, tmp_path, keep):
    import napari_vsr.enhancers as enhancers

    gate = threading.Event()
    real = enhancers.make_enhancer
    monkeypatch.setattr(enhancers, "make_enhancer",
                        lambda *a, **k: _GatedSlow(real(*a, **k), gate))
    viewer.add_image(clip, name="clip")
    widget = EnhanceWidget(viewer)
    widget.set_method("classic", "seed")
    widget.chunk_spin.setValue(1)
    widget.keep_partial.setChecked(keep)
    widget.out_edit.setText(str(tmp_path))
    widget.run()
    qtbot.waitUntil(lambda: widget.result_layer is not None and widget.job.frames >= 1,
                    timeout=WAIT_MS)
    store = Path(widget.result_layer.metadata["store_path"])
    widget.cancel()
    gate.set()
    _wait_idle(qtbot, widget)
    names = [layer.name for layer in viewer.layers]
    if keep:
        # the gated second chunk sees the cancel at its first frame: only the first is kept
        assert names == ["clip", "clip [classic:seed x4] (partial, 1 frame)"]
        assert viewer.layers[1].data.shape[0] == 1  # only the finished frame shows
        assert viewer.layers[1].metadata["partial"] is True and store.is_dir()
    else:
        assert names == ["clip"] and widget.result_layer is None and not store.exists()
    assert "cancelled" in widget.status_label.text_plain


def test_worker_error_is_notified_and_progress_closed(viewer, qtbot, clip, tmp_path):
    viewer.add_image(clip, name="clip")
    widget = EnhanceWidget(viewer)
    widget.set_method("realbasicvsr")
    widget.weights_combo.setCurrentIndex(widget.weights_combo.findData("file"))
    widget.weights_edit.setText(str(tmp_path / "missing.pth"))
    before = len(notification_manager.records)
    widget.run()
    _wait_idle(qtbot, widget)
    errors = _errors_since(before)
    assert len(errors) == 1 and "missing.pth" in errors[0]
    assert [layer.name for layer in viewer.layers] == ["clip"]
    assert len(napari_progress._all_instances) == 0
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()


# --- Compare widget -------------------------------------------------------------------------
def _pair_layers(viewer, clip):
    """Source layer and an aligned x4 (nearest) result layer."""
    src = viewer.add_image(clip, name="src")
    big = np.repeat(np.repeat(clip, 4, axis=1), 4, axis=2)
    big = (255 - big).astype(np.uint8)
    from napari_vsr.placement import result_placement

    scale, translate = result_placement(src.scale, src.translate, 4)
    res = viewer.add_image(big, name="res", scale=scale, translate=translate)
    return src, res


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 1.0])
def test_wipe_layer_and_divider(viewer, qtbot, clip, fraction):
    src, res = _pair_layers(viewer, clip)
    widget = CompareWidget(viewer)
    widget.set_layers("src", "res")
    widget.wipe_check.setChecked(True)
    widget.wipe_slider.setValue(round(fraction * 1000))
    viewer.dims.set_point(0, 3)
    x = round(fraction * clip.shape[2])  # a source column: the left layer is the source
    left = viewer.layers["wipe left"]
    if x:
        np.testing.assert_array_equal(left.data[3], clip[3][:, :x])
    assert left.visible == (x > 0)
    np.testing.assert_allclose(left.translate, src.translate)
    assert res.visible and not src.visible  # the result itself, the source through the window
    line = viewer.layers["wipe divider"]
    # the divider sits on the boundary between source columns x - 1 and x, in world units
    assert line.data[0][0, 1] + line.translate[1] == pytest.approx(
        src.data_to_world((0, 0, x - 0.5))[2])
    widget.wipe_check.setChecked(False)
    assert not {"wipe left", "wipe divider"} & {layer.name for layer in viewer.layers}
    assert src.visible and res.visible


def test_grid_toggle(viewer, clip):
    _pair_layers(viewer, clip)
    other = viewer.add_image(clip[..., 0], name="other")
    widget = CompareWidget(viewer)
    widget.set_layers("src", "res")
    widget.grid_check.setChecked(True)
    assert _grid_of(viewer).enabled and not other.visible
    widget.grid_check.setChecked(False)
    assert not _grid_of(viewer).enabled and other.visible


def test_metrics_table_plot_csv(viewer, qtbot, clip, tmp_path):
    ref = clip.astype(np.int16)
    test = np.clip(ref + 4, 0, 255).astype(np.uint8)
    ref = np.clip(ref, 0, 251).astype(np.uint8)  # no clipping at 255: the offset is exactly 4
    viewer.add_image(ref, name="ref")
    viewer.add_image(test, name="test")
    widget = CompareWidget(viewer)
    widget.set_layers("ref", "test", reference="ref")
    widget.compute_metrics()
    qtbot.waitUntil(lambda: widget._metrics_worker is None, timeout=WAIT_MS)
    assert [m.index for m in widget.metrics] == list(range(len(clip)))
    for m in widget.metrics:
        assert m.psnr == pytest.approx(20 * np.log10(255 / 4), abs=1e-9)
        assert m.ssim == pytest.approx(compare.ssim(test[m.index], ref[m.index]))
    assert widget.table.rowCount() == len(clip)
    assert widget.table.item(0, 1).text() == f"{20 * np.log10(255 / 4):.2f}"
    out = tmp_path / "metrics.csv"
    widget.export_csv(out)
    lines = out.read_text().splitlines()
    assert lines[0] == "frame,reference_frame,psnr_db,ssim" and len(lines) == len(clip) + 1


def test_comparison_video_export(viewer, qtbot, clip, tmp_path):
    io = pytest.importorskip("napari_vsr.io")
    if not hasattr(io, "open_frames"):
        pytest.skip("napari_vsr.io.open_frames not available yet")
    src, res = _pair_layers(viewer, clip)
    widget = CompareWidget(viewer)
    widget.set_layers("src", "res")
    widget.start_spin.setValue(1)
    widget.pause_spin.setValue(2)
    widget.pause_len_spin.setValue(2)
    widget.step_spin.setValue(40)
    widget.line_spin.setValue(3)
    widget.fps_spin.setValue(10)
    out = tmp_path / "cmp.mp4"
    widget.export_video(out)
    qtbot.waitUntil(lambda: widget._export_worker is None, timeout=WAIT_MS)
    assert widget.last_export[0] == "done", widget.last_export
    n = len(compare.wipe_timeline(len(clip), res.data.shape[2], start_frame=1, pause_frame=2,
                                  pause_length=2, slide_step=40, line_width=3))
    with io.open_frames(out) as video:
        assert video.shape[:3] == (n, res.data.shape[1], res.data.shape[2])


# --- screenshot ---------------------------------------------------------------------------------
def test_screenshot_with_result_and_widgets(viewer, qtbot, sample_frames_dir, tmp_path):
    from qtpy.QtWidgets import QApplication

    clip = np.ascontiguousarray(_sample_frames(sample_frames_dir, 3)[:, 120:264, 200:456])
    viewer.add_image(clip, name="clip")
    enh = EnhanceWidget(viewer)
    cmp_widget = CompareWidget(viewer)
    viewer.window.add_dock_widget(enh, name="Enhance video", area="right")
    viewer.window.add_dock_widget(cmp_widget, name="Compare layers", area="right")
    enh.set_method("classic", "seed")
    enh.out_edit.setText(str(tmp_path))
    enh.run()
    _wait_idle(qtbot, enh)
    cmp_widget.set_layers("clip", enh.result_layer.name)
    cmp_widget.wipe_check.setChecked(True)
    cmp_widget.wipe_slider.setValue(450)
    cmp_widget.compute_metrics()
    qtbot.waitUntil(lambda: cmp_widget._metrics_worker is None, timeout=WAIT_MS)
    viewer.window._qt_window.resize(1500, 950)
    QApplication.processEvents()
    viewer.reset_view()
    QApplication.processEvents()
    artifacts = Path(os.environ.get("NAPARI_VSR_ARTIFACTS", REPO / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(str(artifacts / "widgets.png"), canvas_only=False)
    assert shot.ndim == 3 and shot.shape[0] > 300 and shot.std() > 5
    # closing the viewer with the wipe on removes the wipe layers once (no re-adding loop)
    viewer.layers.clear()
    assert len(viewer.layers) == 0 and not cmp_widget.wipe_check.isChecked()


def test_enhance_lazy_video_layer_from_reader(viewer, qtbot, tmp_path):
    """The sample clip opened through the napari-vsr reader (lazy, decoded on demand)."""
    sample = pytest.importorskip("napari_vsr._sample_data")
    layers = viewer.open(str(sample.sample_clip_path()), plugin="napari-vsr")
    src = layers[0]
    assert not isinstance(src.data, np.ndarray)  # the lazy frame array itself
    widget = EnhanceWidget(viewer)
    widget.set_method("classic", "bicubic-x4")
    widget.out_edit.setText(str(tmp_path))
    widget.start_spin.setValue(7)
    widget.stop_spin.setValue(8)  # the last frame, included
    widget.run()
    _wait_idle(qtbot, widget)
    res = widget.result_layer
    assert res.data.shape == (2, 1440, 2560, 3)
    assert res.metadata["fps_float"] == pytest.approx(src.metadata["fps"])
    # the layer shows the whole file: the job read the file itself (resumable, named source)
    assert res.metadata["source"]["path"] == str(sample.sample_clip_path())
    frame8 = np.asarray(src.data[8])
    expected = cv2.resize(frame8, (2560, 1440), interpolation=cv2.INTER_CUBIC)
    assert np.abs(np.asarray(res.data[1]).astype(int) - expected.astype(int)).max() <= 1
    assert res.data_to_world((1, 0, 0))[0] == pytest.approx(src.data_to_world((8, 0, 0))[0])


def test_deleting_the_growing_layer_cancels_the_run(viewer, qtbot, clip, monkeypatch, tmp_path):
    import napari_vsr.enhancers as enhancers

    gate = threading.Event()
    real = enhancers.make_enhancer
    monkeypatch.setattr(enhancers, "make_enhancer",
                        lambda *a, **k: _GatedSlow(real(*a, **k), gate))
    viewer.add_image(clip, name="clip")
    widget = EnhanceWidget(viewer)
    widget.set_method("classic", "seed")
    widget.chunk_spin.setValue(1)
    widget.out_edit.setText(str(tmp_path))
    widget.run()
    qtbot.waitUntil(lambda: widget.result_layer is not None, timeout=WAIT_MS)
    store = Path(widget.result_layer.metadata["store_path"])
    viewer.layers.remove(widget.result_layer)
    gate.set()
    _wait_idle(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == ["clip"] and not store.exists()
