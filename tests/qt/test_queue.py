"""The Job queue widget as napari users get it: docked through the plugin manifest
(``viewer.window.add_plugin_dock_widget``), so it sees proxied viewers and layers.

Two jobs run one after another with the same output as the job runner; Stop leaves the
running job stopped with its finished part and the rest queued; Retry continues from the kept
store; Remove and reorder; a failing job does not stop the queue; a file's job on a local Dask
cluster; screenshots of the queue in several states.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_vsr.io import write_frames_to  # noqa: E402
from napari_vsr.jobs.queue import EntryState  # noqa: E402
from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions, Placement  # noqa: E402
from napari_vsr.jobs.results import open_result  # noqa: E402
from napari_vsr.jobs.runner import run  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 120_000
PLUGIN = "napari-vsr"
CLASSIC = MethodOptions(method="classic", preset="bicubic-x4")


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _dock(viewer):
    return viewer.window.add_plugin_dock_widget(PLUGIN, "Job queue")


def _clip(sample_frames_dir: Path, n: int = 6) -> np.ndarray:
    import cv2

    paths = sorted(sample_frames_dir.glob("*.png"))[:n]
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    return np.ascontiguousarray(np.stack(frames)[:, 150:198, 300:364])


def _video(sample_frames_dir: Path, folder: Path, n: int = 5) -> Path:
    """A real H.264 clip of sample frames, written by the project's writer."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_frames_to(folder / "street.mp4", _clip(sample_frames_dir, n), fps=25)


def _artifacts() -> Path:
    out = Path(os.environ.get("NAPARI_VSR_ARTIFACTS", REPO / "artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def _wait_idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.is_active, timeout=WAIT_MS)


def _layer_request(clip, store: Path, **kw) -> JobRequest:
    """What the Enhance widget queues for a layer "street" (a live store)."""
    base = dict(source=clip, output=str(store), method=CLASSIC, live=True, rgb=True,
                source_name="street", placement=Placement((1.0, 1.0, 1.0), (0.0, 0.0, 0.0)),
                engine=EngineOptions(chunk=1), segment=1)
    return JobRequest(**{**base, **kw})


def _history(widget) -> list[tuple[int, EntryState]]:
    """(entry id, state) each time an entry's state changes, in order."""
    seen: list[tuple[int, EntryState]] = []
    last: dict[int, EntryState] = {}

    def record():
        for e in widget.entries:
            if last.get(e.id) is not e.state:
                last[e.id] = e.state
                seen.append((e.id, e.state))

    widget.changed.connect(record)
    record()
    return seen


# --- layout ------------------------------------------------------------------------------------
def test_dock_is_compact_and_every_control_has_a_tooltip(viewer):
    from qtpy.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit

    dock, widget = _dock(viewer)
    assert type(widget).__name__ == "QueueWidget"
    # the same dock again, not a second one (the Enhance widget's "Add to queue" relies on it)
    _, again = _dock(viewer)
    assert again is widget
    assert widget.minimumSizeHint().height() <= 400, widget.minimumSizeHint()
    widget.method_panel.set_method("realbasicvsr")
    widget.set_output("file")
    widget.set_run_on("tcp://127.0.0.1:8786")
    widget.set_run_on("local:1")
    missing = [type(w).__name__ + ":" + (getattr(w, "text", lambda: "")() or w.objectName())
               for kind in (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit)
               for w in widget.findChildren(kind)
               if not w.toolTip() and not isinstance(w.parent(), QAbstractSpinBox)
               and not isinstance(w.parent(), QComboBox)
               and w.objectName() != "qt_tableview_cornerbutton"]  # hidden with the header
    assert not missing, missing
    assert widget.scheduler() == "local:1"
    assert not widget.start_button.isEnabled()  # nothing queued


def test_add_files_dialogs_queue_files_and_frame_folders(viewer, sample_frames_dir, tmp_path,
                                                        monkeypatch):
    from qtpy.QtWidgets import QFileDialog

    video = _video(sample_frames_dir, tmp_path / "v", n=2)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        lambda *a, **k: ([str(video)], "Videos and TIFF stacks"))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        lambda *a, **k: str(sample_frames_dir))
    _, widget = _dock(viewer)
    widget.method_panel.set_method("classic", "seed")
    widget.set_output("file", ".mkv", "-seed")
    widget.form.add_files_button.click()  # the button itself: files
    widget.set_output("store")
    folder_action = widget.form.add_files_button.menu().actions()[1]
    folder_action.trigger()  # its menu: a folder of frames
    files, frames = widget.entries
    assert files.output == os.fspath(video.parent / "street-seed.mkv")
    assert files.request.source == os.fspath(video) and files.method_label == "classic:seed"
    assert frames.title == "demo_000" and frames.output.endswith(".zarr")
    assert frames.request.live and frames.request.source == os.fspath(sample_frames_dir)
    assert [widget.table.item(r, 0).text() for r in range(2)] == ["street.mp4", "demo_000"]


# --- two jobs ----------------------------------------------------------------------------------
def test_a_layer_and_a_file_run_one_after_another(viewer, qtbot, sample_frames_dir, tmp_path):
    import tifffile

    clip = _clip(sample_frames_dir, 6)
    video = _video(sample_frames_dir, tmp_path / "videos")
    viewer.add_image(clip, name="street", rgb=True)
    _, widget = _dock(viewer)
    widget.method_panel.set_method("classic", "bicubic-x4")
    viewer.layers.selection.active = viewer.layers["street"]
    first = widget.add_layer()
    widget.set_output("file", ".tif", "_x4")
    (second,) = widget.add_files([video, tmp_path / "notes.txt"])
    assert "notes.txt" in widget.status_label.text_plain  # said, not queued
    assert [e.id for e in widget.entries] == [first, second]
    assert widget.entry(second).output == os.fspath(video.parent / "street_x4.tif")
    assert widget.entry(first).output.endswith(".zarr")
    history = _history(widget)
    assert widget.start_button.isEnabled()
    widget.start()
    assert widget.stop_button.isEnabled() and not widget.start_button.isEnabled()
    _wait_idle(qtbot, widget)

    # each went queued -> running -> done, the second only after the first had ended
    assert [s for i, s in history if i == first] == [EntryState.QUEUED, EntryState.RUNNING,
                                                     EntryState.DONE]
    assert [s for i, s in history if i == second] == [EntryState.QUEUED, EntryState.RUNNING,
                                                      EntryState.DONE]
    assert history.index((first, EntryState.DONE)) < history.index((second, EntryState.RUNNING))
    assert widget.table.item(0, 2).text() == "done" and widget.table.item(1, 2).text() == "done"
    assert "queue finished: 2 done" in widget.status_label.text_plain

    # the same results as the job runner's
    expected_layer = run(JobRequest(source=clip, output=str(tmp_path / "ref.zarr"),
                                    method=CLASSIC, live=True, rgb=True))
    layer = viewer.layers[widget.entry(first).layer_name]
    assert layer.name == "street [classic:bicubic-x4 x4]" and "partial" not in layer.name
    np.testing.assert_array_equal(np.asarray(layer.data), np.asarray(expected_layer.store))
    run(JobRequest(source=str(video), output=str(tmp_path / "ref.tif"), method=CLASSIC))
    got = tifffile.imread(video.parent / "street_x4.tif")
    assert got.shape == (5, 48 * 4, 64 * 4, 3)
    np.testing.assert_array_equal(got, tifffile.imread(tmp_path / "ref.tif"))
    assert widget.entry(second).layer_name is None  # a file output makes no layer


# --- stop, retry, reorder, remove --------------------------------------------------------------
def test_stop_keeps_the_finished_part_and_retry_continues_it(viewer, qtbot, sample_frames_dir,
                                                            tmp_path, monkeypatch, gate_enhancers):
    gate = threading.Event()
    gate_enhancers(gate, free=3)
    clip = _clip(sample_frames_dir, 6)
    viewer.add_image(clip, name="street", rgb=True)
    _, widget = _dock(viewer)
    store = tmp_path / "street.zarr"
    first = widget.add_request(_layer_request(clip, store), source_layer_name="street")
    widget.method_panel.set_method("classic", "bicubic-x4")
    widget.set_output("file", ".tif")
    (second,) = widget.add_files([_video(sample_frames_dir, tmp_path / "v", n=2)])
    widget.start()
    qtbot.waitUntil(lambda: widget.job is not None and widget.job.frames >= 2, timeout=WAIT_MS)
    assert widget.entry(first).state is EntryState.RUNNING
    qtbot.waitUntil(lambda: bool(re.match(r"running [23]/6", widget.table.item(0, 2).text())),
                    timeout=WAIT_MS)
    widget.stop()
    gate.set()
    _wait_idle(qtbot, widget)

    a, b = widget.entry(first), widget.entry(second)
    assert a.state is EntryState.CANCELLED and a.kept and b.state is EntryState.QUEUED
    assert widget.table.item(0, 2).text() == "stopped (partial)"
    assert "Retry continues it" in a.message and "Resume" not in a.message
    assert "1 job still queued" in widget.status_label.text_plain
    partial = viewer.layers[a.layer_name]
    assert "(partial" in partial.name and 2 <= partial.data.shape[0] < 6
    _, metadata = open_result(store)
    assert metadata["partial"] is True

    # reorder: only queued jobs move
    widget.select(second)
    assert widget.up_button.isEnabled() and not widget.down_button.isEnabled()
    widget.up_button.click()
    assert [e.id for e in widget.entries] == [second, first]
    widget.select(first)
    assert not widget.up_button.isEnabled()  # a stopped job keeps its place
    widget.move(first, step=-1)
    assert [e.id for e in widget.entries] == [second, first]  # refused, said why
    assert "only queued jobs are reordered" in widget.status_label.text_plain
    widget.select(second)
    widget.down_button.click()
    assert [e.id for e in widget.entries] == [first, second]

    # retry: continues the store (finished segments reused), then the queue goes on
    widget.select(first)
    assert widget.retry_button.isEnabled()
    widget.retry_button.click()
    assert widget.entry(first).resuming
    _wait_idle(qtbot, widget)
    a, b = widget.entry(first), widget.entry(second)
    assert a.state is EntryState.DONE and b.state is EntryState.DONE
    assert a.result.segments_reused >= 2 and a.result.segments_computed <= 4
    assert a.attempts == 2 and b.attempts == 1
    layer = viewer.layers[a.layer_name]
    assert "partial" not in layer.name and layer.data.shape[0] == 6
    expected = run(JobRequest(source=clip, output=str(tmp_path / "ref.zarr"), method=CLASSIC,
                              live=True, rgb=True))
    np.testing.assert_array_equal(np.asarray(layer.data), np.asarray(expected.store))

    # remove finished entries
    widget.select(second)
    widget.remove_button.click()
    assert [e.id for e in widget.entries] == [first]
    widget.remove(first)
    assert widget.entries == () and widget.table.rowCount() == 0


def test_removing_the_running_job_asks_then_discards_it_and_goes_on(
        viewer, qtbot, sample_frames_dir, tmp_path, monkeypatch, gate_enhancers):
    from qtpy.QtWidgets import QMessageBox

    gate = threading.Event()
    gate_enhancers(gate, free=2)
    clip = _clip(sample_frames_dir, 4)
    viewer.add_image(clip, name="street", rgb=True)
    _, widget = _dock(viewer)
    store = tmp_path / "first.zarr"
    first = widget.add_request(_layer_request(clip, store), source_layer_name="street")
    second = widget.add_request(_layer_request(clip[:1], tmp_path / "second.zarr"),
                                title="one frame")
    widget.start()
    qtbot.waitUntil(lambda: widget.job is not None and widget.job.frames >= 1, timeout=WAIT_MS)
    asked: list[str] = []

    def answer(parent, title, text, *a, **k):
        asked.append(text)
        return QMessageBox.StandardButton.No if len(asked) == 1 else \
            QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    widget.select(first)
    widget.remove()  # "No": nothing happens
    assert widget.entry(first).state is EntryState.RUNNING and not widget.job._token.cancelled
    widget.remove()  # "Yes"
    assert len(asked) == 2 and "is running" in asked[0]
    assert not widget.remove_button.isEnabled()  # already on its way out
    gate.set()
    _wait_idle(qtbot, widget)
    assert [e.id for e in widget.entries] == [second]
    assert widget.entry(second).state is EntryState.DONE
    assert not store.exists()  # the unfinished result went with it
    assert [layer.name for layer in viewer.layers] == ["street",
                                                       "street [classic:bicubic-x4 x4]"]
    assert viewer.layers[-1].data.shape[0] == 1


def test_deleting_the_growing_layer_skips_to_the_next_job(viewer, qtbot, sample_frames_dir,
                                                          tmp_path, monkeypatch, gate_enhancers):
    """Deleting the running job's layer cancels that job only (its store goes with it); the
    queue goes on with the next."""
    gates = [threading.Event() for _ in range(2)]
    gate_enhancers(gates, free=2)
    clip = _clip(sample_frames_dir, 4)
    viewer.add_image(clip, name="street", rgb=True)
    _, widget = _dock(viewer)
    stores = [tmp_path / f"{n}.zarr" for n in ("first", "second")]
    ids = [widget.add_request(_layer_request(clip, s), source_layer_name="street")
           for s in stores]
    widget.start()
    qtbot.waitUntil(lambda: widget.job is not None and widget.job.layer is not None
                    and widget.job.frames >= 1, timeout=WAIT_MS)
    viewer.layers.remove(widget.job.layer.name)  # napari's own removal path, by name
    gates[0].set()
    qtbot.waitUntil(lambda: widget.entry(ids[1]).state is EntryState.RUNNING, timeout=WAIT_MS)
    first = widget.entry(ids[0])
    assert first.state is EntryState.CANCELLED and not first.kept
    assert not stores[0].exists()
    gates[1].set()
    _wait_idle(qtbot, widget)
    second = widget.entry(ids[1])
    assert second.state is EntryState.DONE
    assert viewer.layers[second.layer_name].data.shape[0] == 4


def test_closing_the_window_stops_the_queue_and_keeps_the_running_job_resumable(
        make_napari_viewer, qtbot, sample_frames_dir, tmp_path, monkeypatch, gate_enhancers):
    """napari's task status knows the running job: closing the window cancels it (its store
    stays partial and resumable) and the next job never starts."""
    from napari_vsr.jobs.results import is_resumable

    gate = threading.Event()
    gate_enhancers(gate, free=2)
    viewer = make_napari_viewer()
    clip = _clip(sample_frames_dir, 4)
    viewer.add_image(clip, name="street", rgb=True)
    _, widget = _dock(viewer)
    first_store, second_store = tmp_path / "first.zarr", tmp_path / "second.zarr"
    widget.add_request(_layer_request(clip, first_store), source_layer_name="street")
    widget.add_request(_layer_request(clip, second_store), source_layer_name="street")
    widget.start()
    qtbot.waitUntil(lambda: widget.job is not None and widget.job.frames >= 1, timeout=WAIT_MS)
    job = widget.job
    manager = viewer.window._task_status_manager
    assert manager.is_busy() and any("street" in s for s in manager.get_status())
    manager.cancel_all()  # what the window does on close, after the user agreed
    gate.set()
    viewer.close()
    qtbot.waitUntil(lambda: not job.running, timeout=10_000)
    qtbot.wait(500)  # time for a next job to start, if the queue wrongly went on
    _, metadata = open_result(first_store)
    assert metadata["partial"] is True and is_resumable(metadata)
    assert not second_store.exists()


# --- failures, Dask, screenshots ---------------------------------------------------------------
def test_a_failing_job_shows_its_message_and_the_queue_goes_on(
        make_napari_viewer, qtbot, sample_frames_dir, tmp_path, monkeypatch, gate_enhancers):
    """Also the screenshots: entries done, failed, running, stopped and queued."""
    from qtpy.QtWidgets import QApplication

    gate = threading.Event()
    gate_enhancers(gate, free=3)
    viewer = make_napari_viewer(show=True)
    clip = _clip(sample_frames_dir, 6)
    viewer.add_image(clip, name="street", rgb=True)
    dock, widget = _dock(viewer)
    viewer.window._qt_window.resize(1400, 900)
    short = widget.add_request(_layer_request(clip[:2], tmp_path / "short.zarr"),
                               title="street (2 frames)")
    missing = tmp_path / "weights" / "missing_realbasicvsr.pth"
    failing = widget.add_request(_layer_request(
        clip, tmp_path / "deep.zarr",
        method=MethodOptions(method="realbasicvsr", weights=str(missing), device="cpu")),
        source_layer_name="street")
    long = widget.add_request(_layer_request(clip, tmp_path / "long.zarr"),
                              source_layer_name="street")
    widget.method_panel.set_method("classic", "bicubic-x4")
    widget.set_output("file", ".mp4")
    (queued,) = widget.add_files([_video(sample_frames_dir, tmp_path / "v", n=2)])
    widget.start()
    qtbot.waitUntil(lambda: widget.entry(long).state is EntryState.RUNNING
                    and widget.job is not None and widget.job.frames >= 2, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "left" in widget.table.item(2, 2).text(), timeout=WAIT_MS)

    bad = widget.entry(failing)
    assert widget.entry(short).state is EntryState.DONE
    assert bad.state is EntryState.FAILED and "missing_realbasicvsr.pth" in bad.message
    assert "--" not in bad.message  # napari's words, not the command line's
    assert widget.table.item(1, 2).text() == "failed"
    assert widget.table.item(1, 2).toolTip() == bad.message
    widget.select(failing)
    assert bad.message in widget.details_label.text_plain
    assert widget.retry_button.isEnabled() and widget.remove_button.isEnabled()
    QApplication.processEvents()
    # the long message wraps and scrolls: neither the dock nor the window grows for it
    assert widget.minimumSizeHint().height() <= 400, widget.minimumSizeHint()
    assert viewer.window._qt_window.minimumSizeHint().height() <= 1000
    viewer.screenshot(str(_artifacts() / "queue_running.png"), canvas_only=False)

    widget.stop()
    gate.set()
    _wait_idle(qtbot, widget)
    assert widget.entry(long).state is EntryState.CANCELLED and widget.entry(long).kept
    assert widget.entry(queued).state is EntryState.QUEUED
    widget.select(long)
    QApplication.processEvents()
    viewer.screenshot(str(_artifacts() / "queue_states.png"), canvas_only=False)
    assert [widget.table.item(r, 2).text() for r in range(4)] == [
        "done", "failed", "stopped (partial)", "queued"]


def test_a_layer_cannot_go_to_dask_but_its_file_can(viewer, qtbot, sample_frames_dir,
                                                    tmp_path, monkeypatch):
    import tifffile

    pytest.importorskip("distributed")
    import napari_vsr.jobs.distributed as distributed

    schedulers: list[str] = []
    real = distributed.run_distributed

    def spy(job, pending, scheduler, **kw):
        schedulers.append(scheduler)
        return real(job, pending, scheduler, **kw)

    monkeypatch.setattr(distributed, "run_distributed", spy)
    clip = _clip(sample_frames_dir, 4)
    viewer.add_image(clip, name="street", rgb=True)
    _, widget = _dock(viewer)
    widget.method_panel.set_method("classic", "bicubic-x4")
    widget.set_run_on("local:1")
    viewer.layers.selection.active = viewer.layers["street"]
    assert widget.add_layer() is None and widget.entries == ()
    assert "cannot run on a Dask cluster" in widget.status_label.text_plain
    assert "this computer" in widget.status_label.text_plain

    video = _video(sample_frames_dir, tmp_path / "v", n=4)
    widget.set_output("file", ".tif", "_dask")
    (entry_id,) = widget.add_files([video])
    assert widget.entry(entry_id).runs_on == "local:1"
    widget.start()
    _wait_idle(qtbot, widget)
    entry = widget.entry(entry_id)
    assert entry.state is EntryState.DONE, entry.message
    assert schedulers == ["local:1"]  # its segments ran as tasks of the cluster
    run(JobRequest(source=str(video), output=str(tmp_path / "ref.tif"), method=CLASSIC))
    np.testing.assert_array_equal(tifffile.imread(video.parent / "street_dask.tif"),
                                  tifffile.imread(tmp_path / "ref.tif"))


def test_a_stopped_file_job_keeps_its_job_folder_and_retry_resumes_it(
        viewer, qtbot, sample_frames_dir, tmp_path, monkeypatch, gate_enhancers):
    """A file output appears only when complete; a stopped job keeps its committed segments,
    and Retry continues from them into the same file."""
    gate = threading.Event()
    gate_enhancers(gate, free=3)
    video = _video(sample_frames_dir, tmp_path / "in", n=6)
    out = tmp_path / "out.tif"
    _, widget = _dock(viewer)
    entry = widget.add_request(JobRequest(source=str(video), output=str(out), method=CLASSIC,
                                          engine=EngineOptions(chunk=1), segment=1))
    widget.start()
    qtbot.waitUntil(lambda: widget.entry(entry).done >= 2, timeout=WAIT_MS)
    widget.stop()
    gate.set()
    _wait_idle(qtbot, widget)
    stopped = widget.entry(entry)
    assert stopped.state is EntryState.CANCELLED and stopped.kept, stopped.message
    assert not out.exists() and "Retry continues it" in stopped.message
    monkeypatch.undo()  # the retry runs ungated
    widget.retry(entry)
    qtbot.waitUntil(lambda: widget.entry(entry).state is EntryState.DONE, timeout=WAIT_MS)
    result = widget.entry(entry).result
    assert result is not None and result.segments_reused >= 2
    from napari_vsr.io import open_frames

    run(JobRequest(source=str(video), output=str(tmp_path / "ref.tif"), method=CLASSIC))
    with open_frames(out) as back, open_frames(tmp_path / "ref.tif") as ref:
        np.testing.assert_array_equal(np.asarray(back[:]), np.asarray(ref[:]))
