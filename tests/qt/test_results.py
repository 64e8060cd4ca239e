"""Result stores between the CLI, the reader and the Enhance widget; Resume of a partial run.

Run: QT_QPA_PLATFORM=xcb xvfb-run -a .venv/bin/python -m pytest tests/qt/test_results.py
"""

from __future__ import annotations

import importlib.util
import os
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.utils.notifications import notification_manager  # noqa: E402

from napari_vsr._reader import napari_get_reader  # noqa: E402
from napari_vsr.cli import main  # noqa: E402
from napari_vsr.io import open_frames  # noqa: E402
from napari_vsr.io.zarr_store import open_result_store  # noqa: E402
from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions, Placement  # noqa: E402
from napari_vsr.jobs.runner import run  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 120_000
NTSC = Fraction(30000, 1001)

_spec = importlib.util.spec_from_file_location(
    "vsr_test_media", Path(__file__).resolve().parents[1] / "io" / "media.py"
)
media = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(media)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A real 12-frame 48x64 H.264 clip at 30000/1001 fps."""
    return media.make_video(tmp_path_factory.mktemp("results") / "clip.mp4", n_frames=12,
                            size=(48, 64), fps=NTSC)


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _enhance_widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-vsr", "Enhance video")
    return widget


def _wait_idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.is_running, timeout=WAIT_MS)


def _warnings_since(n: int) -> list[str]:
    return [str(r.message) for r in notification_manager.records[n:]
            if r.severity.name.lower() == "warning"]


class _Gated:
    """Wraps an enhancer; its ``stop_at``-th chunk waits until the test has pressed Cancel."""

    def __init__(self, inner, gate: threading.Event, stop_at: int):
        self._inner, self._gate, self._stop_at, self.calls = inner, gate, stop_at, 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def enhance(self, frames, *, step=None):
        self.calls += 1
        if self.calls == self._stop_at:
            assert self._gate.wait(30), "the test never cancelled"
        return self._inner.enhance(frames, step=step)


# --- the reader and the widget open what the CLI writes ---------------------------------------
def test_cli_store_opens_through_reader_and_widget(viewer, video, tmp_path):
    out = tmp_path / "x.zarr"
    assert main(["enhance", str(video), "-o", str(out), "--method", "classic", "-q"]) == 0
    assert napari_get_reader(str(out)) is not None
    layers = viewer.open(str(out), plugin="napari-vsr")
    assert len(layers) == 1
    layer = layers[0]
    assert layer.name == "clip.mp4 [classic:seed x4]" and layer.rgb
    assert layer.data.shape == (12, 192, 256, 3) and layer.data.dtype == np.uint8
    np.testing.assert_allclose(layer.scale, (1.0, 0.25, 0.25))
    np.testing.assert_allclose(layer.translate, (0.0, -3 / 8, -3 / 8))
    assert list(layer.contrast_limits) == [0, 255]
    assert layer.metadata["fps"] == "30000/1001"
    assert layer.metadata["fps_float"] == pytest.approx(float(NTSC))
    assert layer.metadata["partial"] is False and layer.metadata["method"] == "classic:seed"
    np.testing.assert_array_equal(np.asarray(layer.data[5]), open_result_store(out, mode="r")[5])
    # frame-synced with the source opened through the same reader
    src = viewer.open(str(video), plugin="napari-vsr")[0]
    assert layer.data_to_world((5, 0, 0))[0] == pytest.approx(src.data_to_world((5, 0, 0))[0])

    widget = _enhance_widget(viewer)
    again = widget.open_result(out)
    np.testing.assert_allclose(again.scale, layer.scale)
    np.testing.assert_allclose(again.translate, layer.translate)
    assert not again.name.endswith("(partial)") and not widget.resume_button.isEnabled()


def test_reader_leaves_other_zarr_folders(tmp_path):
    import zarr

    plain = tmp_path / "plain.zarr"
    zarr.open_array(store=str(plain), mode="w", shape=(2, 4, 4), dtype="u1")
    assert napari_get_reader(str(plain)) is None
    from napari_vsr.io.writer_base import write_marker

    write_marker(plain, "zarr")  # ours, but without a provenance record: not a result
    assert napari_get_reader(str(plain)) is None
    assert napari_get_reader(str(tmp_path / "missing.zarr")) is None


def test_widget_store_as_cli_input_keeps_its_fps(viewer, qtbot, tmp_path):
    rng = np.random.default_rng(3)
    clip = rng.integers(0, 256, (4, 24, 32, 3), dtype=np.uint8)
    viewer.add_image(clip, name="noise", rgb=True, metadata={"fps": 12.5})
    widget = _enhance_widget(viewer)
    widget.set_method("classic", "seed")
    widget.out_edit.setText(str(tmp_path))
    widget.run()
    _wait_idle(qtbot, widget)
    store = Path(widget.result_layer.metadata["store_path"])
    assert widget.result_layer.metadata["fps"] == "25/2"
    out = tmp_path / "again.mp4"
    assert main(["enhance", str(store), "-o", str(out), "--method", "classic",
                 "--preset", "temporal-denoise", "-q"]) == 0
    with open_frames(out) as frames:
        assert frames.shape[:3] == (4, 96, 128)
        assert frames.metadata["fps"] == pytest.approx(12.5)


# --- Resume -------------------------------------------------------------------------------------
def test_cancelled_run_resumes_into_the_same_store(viewer, qtbot, video, tmp_path, monkeypatch):
    import napari_vsr.enhancers as enhancers

    gate = threading.Event()
    real = enhancers.make_enhancer
    monkeypatch.setattr(enhancers, "make_enhancer",
                        lambda *a, **k: _Gated(real(*a, **k), gate, stop_at=3))
    src = viewer.open(str(video), plugin="napari-vsr")[0]
    src.scale = (2.0, 1.5, 1.5)
    src.translate = (4.0, 10.0, -2.0)
    widget = _enhance_widget(viewer)
    widget.set_method("classic", "seed")
    widget.chunk_spin.setValue(2)
    widget.segment_spin.setValue(2)
    widget.start_spin.setValue(1)
    widget.stop_spin.setValue(10)  # the last frame, included
    widget.out_edit.setText(str(tmp_path / "results"))
    widget.run()
    qtbot.waitUntil(lambda: widget.job is not None and widget.job.frames >= 4,
                    timeout=WAIT_MS)
    widget.cancel()
    gate.set()
    _wait_idle(qtbot, widget)
    first = widget.result_layer
    store = Path(first.metadata["store_path"])
    job_dir = Path(first.metadata["job_dir"])
    assert "(partial" in first.name and store.is_dir() and job_dir.is_dir()
    assert len(list(job_dir.glob("segment-*.npy"))) >= 2  # committed segments kept
    assert widget.resume_button.isEnabled()
    viewer.layers.remove(first)
    assert not widget.resume_button.isEnabled()

    # reopen the store the way a user does after a restart
    before = len(notification_manager.records)
    layer = widget.open_result(store)
    assert layer.name.endswith(" (partial)") and layer.metadata["partial"] is True
    assert 4 <= layer.data.shape[0] < 10  # only the finished frames, no black ones
    assert any("interrupted" in w for w in _warnings_since(before))
    assert widget.resume_button.isEnabled()

    # screenshot of the widget with the partial result
    from qtpy.QtWidgets import QApplication

    viewer.window._qt_window.resize(1500, 950)
    viewer.reset_view()
    viewer.dims.set_point(0, layer.data_to_world((1, 0, 0))[0])  # a finished result frame
    assert "Resume" in widget.status_label.text_plain
    QApplication.processEvents()
    artifacts = Path(os.environ.get("NAPARI_VSR_ARTIFACTS", REPO / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(str(artifacts / "widgets_partial_result.png"), canvas_only=False)
    assert shot.ndim == 3 and shot.std() > 5

    widget.resume_button.click()
    _wait_idle(qtbot, widget)
    result = widget.last_result
    assert result is not None and result.segments_reused >= 2
    assert result.segments_computed + result.segments_reused == 5
    assert layer in viewer.layers and not layer.name.endswith("(partial)")
    assert layer.metadata["partial"] is False and not job_dir.exists()
    assert not widget.resume_button.isEnabled()

    # the resumed store equals an uninterrupted run of the same request
    monkeypatch.setattr(enhancers, "make_enhancer", real)
    ref = tmp_path / "ref.zarr"
    expected = run(JobRequest(
        source=str(video), output=ref, live=True, rgb=True,
        method=MethodOptions(method="classic", preset="seed"),
        engine=EngineOptions(chunk=2), segment=2, frame_range=(1, 11),
        placement=Placement((2.0, 1.5, 1.5), (4.0, 10.0, -2.0))))
    got = open_result_store(store, mode="r")
    want = open_result_store(ref, mode="r")
    assert got.shape == want.shape == (10, 192, 256, 3)
    np.testing.assert_array_equal(got[:], want[:])
    np.testing.assert_array_equal(np.asarray(layer.data[:]), want[:])
    md, ref_md = got.attrs["napari_vsr"], expected.metadata
    assert md["partial"] is False and md["fps"] == ref_md["fps"] == "30000/1001"
    assert md["frame_range"] == [1, 11] and md["options"] == ref_md["options"]
    np.testing.assert_allclose(md["layer"]["scale"], ref_md["layer"]["scale"])
    np.testing.assert_allclose(md["layer"]["translate"], ref_md["layer"]["translate"])
    np.testing.assert_allclose(layer.translate, ref_md["layer"]["translate"])
