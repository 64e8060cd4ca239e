"""Result stores in a folder, without Qt: listing, sizes, safe removal, clean-up, the finished
frames of a partial result."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_vsr.errors import Cancelled
from napari_vsr.jobs.progress import CancelToken
from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions
from napari_vsr.jobs.results import open_result
from napari_vsr.jobs.runner import FramesDone, run, run_job
from napari_vsr.jobs.state import JobDir
from napari_vsr.jobs.stores import (
    StoreRemovalError,
    clean_up,
    clean_up_candidates,
    describe_age,
    finished_frames,
    human_size,
    job_is_running,
    list_stores,
    remove_store,
    store_info,
    total_size,
)

CLASSIC = MethodOptions(method="classic", preset="seed")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """8 frames of 12x16 uint16 gray, every frame different and none black."""
    path = tmp_path_factory.mktemp("stores") / "clip.tif"
    rng = np.random.default_rng(5)
    tifffile.imwrite(path, rng.integers(1000, 60000, (8, 12, 16), dtype=np.uint16))
    return path


def _request(source, out) -> JobRequest:
    return JobRequest(source=str(source), output=str(out), live=True, method=CLASSIC,
                      engine=EngineOptions(chunk=2), segment=2)


def _complete(source, out) -> Path:
    run(_request(source, out))
    return Path(out)


def _interrupted(source, out, after: int = 3) -> Path:
    """A live job cancelled after ``after`` frames: a partial store with its job folder."""
    cancel = CancelToken()
    frames = 0
    with pytest.raises(Cancelled):
        for event in run_job(_request(source, out), cancel):
            if isinstance(event, FramesDone):
                frames += event.count
                if frames >= after:
                    cancel.cancel()
    return Path(out)


def _age(path: Path, days: float) -> None:
    """Set every mtime of a folder tree ``days`` into the past."""
    when = time.time() - days * 86400
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (when, when), follow_symlinks=False)
    os.utime(path, (when, when))


def test_list_measures_and_describes_only_result_stores(source, tmp_path):
    done = _complete(source, tmp_path / "done.zarr")
    part = _interrupted(source, tmp_path / "part.zarr")
    _age(done, 2)
    plain = tmp_path / "plain.zarr"
    zarr.open_array(store=str(plain), mode="w", shape=(2, 4, 4), dtype="u1")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    (tmp_path / "video.mp4").write_bytes(b"x")
    os.symlink(done, tmp_path / "link.zarr")

    stores = list_stores(tmp_path)
    assert [s.path.name for s in stores] == ["part.zarr", "done.zarr"]  # newest first
    new, old = stores
    assert new.partial and not old.partial
    assert new.job_dir is not None and new.job_dir.is_dir()
    assert old.job_dir is None
    assert old.name == "clip.tif [classic:seed x4]" and old.source_name == "clip.tif"
    assert old.method == "classic:seed" and old.frames == 8
    assert old.size_bytes > 8 * 48 * 64 // 10  # the chunks are on disk
    on_disk = lambda folder: sum(f.lstat().st_blocks * 512 for f in folder.rglob("*"))  # noqa: E731
    assert new.size_bytes == on_disk(part) + on_disk(new.job_dir)  # the job folder counts
    assert total_size(stores) == new.size_bytes + old.size_bytes
    assert 1.9 < old.age_days < 2.1
    assert list_stores(tmp_path / "missing") == []
    assert human_size(512) == "512 B" and human_size(1536) == "1.5 KB"
    assert human_size(3 * 1024**3) == "3.0 GB"
    now = time.time()
    assert describe_age(now, short=True) == time.strftime("%H:%M", time.localtime(now))
    two_days = time.localtime(now - 2 * 86400)
    assert describe_age(now - 2 * 86400, short=True) == (
        f"{two_days.tm_mday} {time.strftime('%b', two_days)}")
    assert describe_age(now) == time.strftime("%Y-%m-%d %H:%M", time.localtime(now))


def test_remove_refuses_everything_but_a_result_store(source, tmp_path):
    user = tmp_path / "user.zarr"
    user.mkdir()
    (user / "data.txt").write_text("a user's folder named like a store")
    plain = tmp_path / "plain.zarr"
    zarr.open_array(store=str(plain), mode="w", shape=(2, 4, 4), dtype="u1")
    done = _complete(source, tmp_path / "done.zarr")
    link = tmp_path / "link.zarr"
    os.symlink(done, link)
    for path in (user, plain, link, tmp_path / "missing.zarr", tmp_path):
        with pytest.raises(StoreRemovalError) as info:
            remove_store(path)
        assert str(path) in str(info.value)
    assert (user / "data.txt").read_text().startswith("a user's")
    assert (plain / "zarr.json").is_file() and link.is_symlink() and done.is_dir()


def test_remove_takes_the_store_and_its_job_folder_only(source, tmp_path):
    part = _interrupted(source, tmp_path / "part.zarr")
    job = store_info(part).job_dir
    beside = tmp_path / "keep.txt"
    beside.write_text("stays")
    info = remove_store(part)
    assert info.partial and info.size_bytes > 0
    assert not part.exists() and not job.exists()
    assert beside.read_text() == "stays"


def test_a_running_job_keeps_its_store(source, tmp_path):
    part = _interrupted(source, tmp_path / "part.zarr")
    job = JobDir(store_info(part).job_dir)
    job.lock()  # what a running job holds (any process, this one too)
    try:
        assert job_is_running(job.path)
        with pytest.raises(StoreRemovalError, match="running"):
            remove_store(part)
        assert clean_up_candidates(tmp_path) == []
    finally:
        job.unlock()
    assert not job_is_running(job.path)
    assert [s.path for s in clean_up_candidates(tmp_path)] == [part]


def test_clean_up_keeps_stores_in_use_and_filters(source, tmp_path):
    a = _complete(source, tmp_path / "a.zarr")
    b = _complete(source, tmp_path / "b.zarr")
    c = _interrupted(source, tmp_path / "c.zarr")
    _age(a, 10)
    names = lambda infos: sorted(s.path.name for s in infos)  # noqa: E731
    assert names(clean_up_candidates(tmp_path, [b])) == ["a.zarr", "c.zarr"]
    assert names(clean_up_candidates(tmp_path, [], partial_only=True)) == ["c.zarr"]
    assert names(clean_up_candidates(tmp_path, [], older_than_days=5)) == ["a.zarr"]
    # a path in use given with a trailing slash, or through a symlinked folder, still counts
    os.symlink(tmp_path, tmp_path.parent / f"{tmp_path.name}-link")
    via_link = tmp_path.parent / f"{tmp_path.name}-link" / "c.zarr"
    result = clean_up(tmp_path, [str(b) + os.sep, via_link])
    assert names(result.removed) == ["a.zarr"] and result.failed == []
    assert result.freed_bytes == result.removed[0].size_bytes > 0
    assert not a.exists() and b.exists() and c.exists()


def test_finished_frames_of_a_partial_store(source, tmp_path):
    done = _complete(source, tmp_path / "done.zarr")
    assert finished_frames(done) == 8
    part = _interrupted(source, tmp_path / "part.zarr", after=3)
    n = finished_frames(part)
    store, md = open_result(part)
    assert md["partial"] and 3 <= n < 8
    assert all(np.asarray(store[t]).any() for t in range(n))
    assert not np.asarray(store[n]).any()  # the first unfinished frame is still zeros
    # a finished segment counts even when its frames were never put into the store
    job = store_info(part).job_dir
    segments = sorted(job.glob("segment-*.npy"))
    assert segments, "the cancelled job committed no segment"
    for t in range(n):
        chunk = part / "c" / str(t) / "0" / "0"
        if chunk.is_file():
            chunk.unlink()
    assert [p.name for p in segments] == [f"segment-{i:06d}.npy" for i in range(len(segments))]
    assert finished_frames(part) == 2 * len(segments)  # segments of 2 frames, in order
