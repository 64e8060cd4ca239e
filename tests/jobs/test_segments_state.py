"""Segment plans and the job folder's durable files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_vsr.errors import ParameterError
from napari_vsr.jobs.manifest import mismatch
from napari_vsr.jobs.segments import Segment, default_segment, plan_segments, whole_chunks
from napari_vsr.jobs.state import JobDir, JobStateError, default_job_dir


def test_plan_covers_the_range_in_whole_chunks():
    segs = plan_segments(3, 50, 4, 12)
    assert segs[0] == Segment(0, 3, 15) and segs[-1] == Segment(3, 39, 50)
    assert [s.start for s in segs[1:]] == [s.stop for s in segs[:-1]]
    assert all((s.start - 3) % 4 == 0 for s in segs)  # on the single pass's chunk grid
    with pytest.raises(ParameterError, match="whole number of 4-frame chunks"):
        plan_segments(0, 10, 4, 6)
    assert whole_chunks(6, 4) == 8 and whole_chunks(8, 4) == 8
    with pytest.raises(ParameterError, match="--segment"):
        whole_chunks(0, 4)


def test_default_segment_is_whole_chunks_and_spreads_over_workers():
    assert default_segment(20, 1000) == 40
    assert default_segment(16, 1000) == 48
    assert default_segment(16, 1000, workers=2) == 48
    assert default_segment(4, 60, workers=2) == 8  # 15 chunks over 2 workers: 3+ segments each
    assert default_segment(20, 10, workers=4) == 20


def test_segment_commit_is_atomic_and_checked(tmp_path):
    job = JobDir(default_job_dir(tmp_path / "out.mp4"))
    assert job.path == tmp_path / ".out.mp4.vsr-job"
    job.create({"segments": [[0, 4], [4, 6]]})
    segs = [Segment(0, 0, 4), Segment(1, 4, 6)]
    with job.segment_writer(segs[0], (5, 6, 3), np.uint8) as part:
        for _ in range(4):
            part.write(np.full((5, 6, 3), 7, np.uint8))
        assert job.committed(segs, (5, 6, 3), np.uint8) == set()  # not before commit
        part.commit()
    assert job.committed(segs, (5, 6, 3), np.uint8) == {0}
    assert job.committed(segs, (5, 6, 3), np.uint16) == set()  # another dtype: not this job's
    np.testing.assert_array_equal(job.load(segs[0]), np.full((4, 5, 6, 3), 7, np.uint8))
    # an exception while writing leaves no file behind
    with pytest.raises(RuntimeError), job.segment_writer(segs[1], (5, 6, 3), np.uint8) as part:
        part.write(np.ones((5, 6, 3), np.uint8))
        raise RuntimeError("boom")
    assert sorted(p.name for p in job.path.iterdir()) == [
        ".napari-vsr-output", "manifest.json", "segment-000000.npy"]
    # a truncated segment file (e.g. copied by hand) is not taken as committed
    job.segment_path(1).write_bytes(job.segment_path(0).read_bytes()[:100])
    assert job.committed(segs, (5, 6, 3), np.uint8) == {0}
    job.remove()
    assert not job.path.exists()


def test_unreadable_manifest_is_named(tmp_path):
    job = JobDir(tmp_path / "j")
    job.path.mkdir()
    (job.path / "manifest.json").write_text("{not json")
    with pytest.raises(JobStateError, match="unreadable job manifest") as err:
        job.read_manifest()
    assert str(job.path) in str(err.value)
    (tmp_path / "x").mkdir()
    with pytest.raises(JobStateError, match="not removed"):
        JobDir(tmp_path / "x").remove()  # no marker: never deleted


def test_mismatch_names_the_field():
    a = {"version": 1, "method": {"method": "classic", "preset": "seed"}, "engine": {"chunk": 4}}
    b = json.loads(json.dumps(a))
    assert mismatch(a, b) is None
    b["method"]["preset"] = "bicubic-x4"
    assert mismatch(a, b) == "preset: 'seed' in the job, 'bicubic-x4' now"


def test_a_job_fixes_the_automatic_tile_once(monkeypatch):
    """Workers with other free memory must cut the same tiles: the job resolves ``tile=None``
    once, from the driver's device (0 on the CPU: no tiles)."""
    import importlib.util
    from pathlib import Path

    from napari_vsr.engine import resolve_tile
    from napari_vsr.models import device as device_module

    spec = importlib.util.spec_from_file_location(
        "toy_enhancers", Path(__file__).parents[1] / "engine" / "toy_enhancers.py")
    toys = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toys)

    class Hungry(toys.UpscaleNearest):
        def estimate_memory(self, n_frames, height, width):
            return n_frames * height * width * 1000

    assert resolve_tile(Hungry(device="cpu"), (40, 200, 300, 3), 4, 2) == 0
    assert resolve_tile(Hungry(device=None), (40, 200, 300, 3), 4, 2) == 0
    monkeypatch.setattr(device_module, "free_memory_bytes", lambda device: 8 * 128 * 128 * 1000)
    tile = resolve_tile(Hungry(device="cuda"), (40, 200, 300, 3), 4, 2)
    assert 32 <= tile < 200 and tile % 8 == 0
    assert 8 * tile * tile * 1000 <= 0.6 * 8 * 128 * 128 * 1000
    assert resolve_tile(Hungry(device="cuda", tileable=False), (40, 200, 300, 3), 4, 2) == 0
