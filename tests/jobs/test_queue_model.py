"""The job queue's model (no Qt): order, states, the remove/move/retry rules, output names, and
a retry that continues an interrupted job from its result store."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from napari_vsr.errors import Cancelled
from napari_vsr.jobs.progress import CancelToken
from napari_vsr.jobs.queue import (
    EntryState,
    JobQueue,
    QueueError,
    check_request,
    output_beside,
    retry_request,
    unique_output,
)
from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions
from napari_vsr.jobs.results import open_result
from napari_vsr.jobs.runner import SegmentDone, run
from napari_vsr.jobs.state import default_job_dir

CLASSIC = MethodOptions(method="classic", preset="bicubic-x4")


def _clip(sample_frames_dir: Path, n: int = 6) -> np.ndarray:
    import cv2

    paths = sorted(sample_frames_dir.glob("*.png"))[:n]
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    return np.ascontiguousarray(np.stack(frames)[:, 150:182, 300:340])


def _req(tmp_path: Path, name: str, **kw) -> JobRequest:
    base = dict(source=str(tmp_path / "in.mp4"), output=str(tmp_path / name), method=CLASSIC)
    return JobRequest(**{**base, **kw})


def test_entries_keep_their_order_and_ids(tmp_path):
    q = JobQueue()
    a = q.add(_req(tmp_path, "a.mp4"), method_label="classic:bicubic-x4")
    b = q.add(_req(tmp_path, "b.mp4"), title="second")
    c = q.add(_req(tmp_path, "c.mp4"))
    assert [e.id for e in q.entries] == [a, b, c] and len({a, b, c}) == 3
    assert q.get(a).title == "in.mp4" and q.get(b).title == "second"
    assert q.get(a).method_label == "classic:bicubic-x4" and q.get(c).method_label == "classic"
    assert all(e.state is EntryState.QUEUED for e in q.entries)
    assert q.next_queued().id == a
    assert q.get(a).output == os.path.abspath(tmp_path / "a.mp4")
    assert q.get(a).runs_on == "this computer"
    snapshot = q.entries
    q.mark_running(a)
    assert snapshot[0].state is EntryState.QUEUED  # records are frozen snapshots
    assert q.get(a).state is EntryState.RUNNING and q.get(a).attempts == 1
    assert q.running.id == a and q.next_queued().id == b


def test_requests_the_queue_refuses(tmp_path):
    q = JobQueue()
    with pytest.raises(QueueError, match="needs an output"):
        q.add(JobRequest(source=str(tmp_path / "in.mp4")))
    with pytest.raises(QueueError, match="job folder"):
        q.add(_req(tmp_path, "x.zarr", durable=False))
    array = np.zeros((3, 8, 8), np.uint8)
    with pytest.raises(QueueError, match="cannot run on a Dask cluster") as info:
        q.add(_req(tmp_path, "x.zarr", source=array, source_name="layer", scheduler="local:1"))
    assert "layer" in str(info.value) and "Add files" in str(info.value)
    with pytest.raises(QueueError, match="local:N"):
        check_request(_req(tmp_path, "x.zarr", scheduler="somewhere"))
    check_request(_req(tmp_path, "x.zarr", scheduler="local:1"))  # a file on Dask is fine
    check_request(_req(tmp_path, "x.zarr", source=array))  # an array here is fine
    q.add(_req(tmp_path, "same.mp4"))
    with pytest.raises(QueueError, match="already the output"):
        q.add(_req(tmp_path, "same.mp4"))
    assert len(q) == 1


def test_one_job_runs_at_a_time_and_ends_once(tmp_path):
    q = JobQueue()
    a = q.add(_req(tmp_path, "a.mp4"))
    b = q.add(_req(tmp_path, "b.mp4"))
    q.mark_running(a)
    with pytest.raises(QueueError, match="one job runs at a time"):
        q.mark_running(b)
    with pytest.raises(QueueError, match="is not running"):
        q.finish(b, EntryState.DONE, "done")
    with pytest.raises(ValueError, match="done, failed or cancelled"):
        q.finish(a, EntryState.QUEUED, "no")
    q.finish(a, EntryState.FAILED, "failed: boom", kept=False)
    assert q.get(a).state is EntryState.FAILED and q.get(a).message == "failed: boom"
    with pytest.raises(QueueError, match="only a queued job can start"):
        q.mark_running(a)
    q.mark_running(b)
    q.finish(b, EntryState.DONE, "done")
    counts = q.counts()
    assert counts[EntryState.DONE] == 1 and counts[EntryState.FAILED] == 1
    assert q.next_queued() is None and q.running is None


def test_remove_and_move_rules(tmp_path):
    q = JobQueue()
    a, b, c = (q.add(_req(tmp_path, f"{n}.mp4")) for n in "abc")
    q.move(c, -1)
    assert [e.id for e in q.entries] == [a, c, b]
    with pytest.raises(QueueError, match="already at that end"):
        q.move(a, -1)
    with pytest.raises(QueueError, match="already at that end"):
        q.move(b, 1)
    q.mark_running(a)
    assert not q.can_move(a, 1)
    with pytest.raises(QueueError, match="only queued jobs are reordered"):
        q.move(a, 1)
    with pytest.raises(QueueError, match="stop it before removing it"):
        q.remove(a)
    assert q.remove(c).id == c
    assert [e.id for e in q.entries] == [a, b]
    assert q.next_queued().id == b
    with pytest.raises(KeyError):
        q.get(c)


def test_output_names_never_collide(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    assert output_beside(video, "_enhanced", ".mkv") == tmp_path / "clip_enhanced.mkv"
    (tmp_path / "clip_enhanced.mkv").write_bytes(b"x")
    taken = {os.fspath(tmp_path / "clip_enhanced-2.mkv")}
    assert output_beside(video, "_enhanced", "mkv", taken) == tmp_path / "clip_enhanced-3.mkv"
    frames = tmp_path / "shots"
    frames.mkdir()
    assert output_beside(frames, "-x4", ".tif") == tmp_path / "shots-x4.tif"
    store = tmp_path / "a.zarr"
    store.mkdir()
    assert unique_output(store) == tmp_path / "a-2.zarr"


def test_retry_rules_without_a_kept_result(tmp_path):
    q = JobQueue()
    a = q.add(_req(tmp_path, "a.mp4"))
    with pytest.raises(QueueError, match="only a failed or stopped job"):
        q.retry(a)
    q.mark_running(a)
    q.finish(a, EntryState.FAILED, "failed: boom")
    entry = q.retry(a)  # nothing on disk: the same job again
    assert entry.state is EntryState.QUEUED and entry.run_request == entry.request
    assert not entry.resuming and "runs again" in entry.message

    # a file output whose job folder survived: continued
    q.mark_running(a)
    q.finish(a, EntryState.CANCELLED, "cancelled")
    default_job_dir(tmp_path / "a.mp4").mkdir()
    request, store = retry_request(q.get(a))
    assert request.resume and store is None and request.output == entry.request.output

    # an output that exists but cannot be continued is kept: the rerun writes beside it
    b = q.add(_req(tmp_path, "b.zarr", live=True))
    (tmp_path / "b.zarr").mkdir()
    q.mark_running(b)
    q.finish(b, EntryState.CANCELLED, "cancelled")
    entry = q.retry(b)
    assert entry.output == os.fspath(tmp_path / "b-2.zarr") and not entry.resuming


def test_retry_continues_an_interrupted_store_and_reuses_its_segments(sample_frames_dir,
                                                                      tmp_path):
    clip = _clip(sample_frames_dir, 6)
    common = dict(source=clip, method=CLASSIC, engine=EngineOptions(chunk=1), segment=2,
                  live=True, source_name="clip", rgb=True)
    expected = run(JobRequest(output=str(tmp_path / "straight.zarr"), **common))
    q = JobQueue()
    a = q.add(JobRequest(output=str(tmp_path / "queued.zarr"), **common),
              source_layer_name="clip")
    q.mark_running(a)
    token = CancelToken()

    def stop_after_first_segment(event):
        if isinstance(event, SegmentDone):
            token.cancel()

    with pytest.raises(Cancelled):
        run(q.get(a).run_request, cancel=token, on_event=stop_after_first_segment)
    q.finish(a, EntryState.CANCELLED, "cancelled; kept 2 frames", kept=True)
    _, metadata = open_result(tmp_path / "queued.zarr")
    assert metadata["partial"] is True

    entry = q.retry(a)
    assert entry.resuming and entry.resume_store == os.fspath(tmp_path / "queued.zarr")
    assert entry.run_request.source is clip  # a layer's job gets its array again
    assert "continues" in entry.message
    q.mark_running(a)
    result = run(entry.run_request)
    assert result.segments_reused == 1 and result.segments_computed == 2
    store, metadata = open_result(tmp_path / "queued.zarr")
    assert metadata["partial"] is False
    np.testing.assert_array_equal(np.asarray(store), np.asarray(expected.store))
