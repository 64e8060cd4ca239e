"""Interrupting ``napari-vsr enhance`` (Ctrl-C, SIGTERM, SIGKILL) and resuming it: the output is
identical to an uninterrupted run and the finished segments are not recomputed."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "engine_clips", REPO / "tests" / "engine" / "clips.py")
clips = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(clips)

ARGS = ["--method", "classic", "--preset", "temporal-denoise", "--chunk", "4", "--segment", "8"]


def _cli(*args: str, wait: bool = True):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "napari_vsr.cli", "enhance", *args, *ARGS]
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=env, cwd=REPO)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    src = clips.make_video(folder / "in.mp4", 160, height=240, width=320)
    reference = folder / "reference.tif"
    done = _cli(str(src), "-o", str(reference), "-q")
    assert done.returncode == 0, done.stderr
    return src, tifffile.imread(reference)


def _segments(job: Path) -> list[str]:
    return sorted(p.name for p in job.glob("segment-*.npy")) if job.is_dir() else []


@pytest.mark.parametrize(("sig", "rc"), [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                         (signal.SIGKILL, -9)])
def test_interrupt_then_resume(tmp_path, clip, sig, rc):
    src, reference = clip
    out = tmp_path / "out.tif"
    job = tmp_path / ".out.tif.vsr-job"
    proc = _cli(str(src), "-o", str(out), wait=False)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and len(_segments(job)) < 2:
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == rc, err
    saved = _segments(job)
    assert 2 <= len(saved) < 20 and not out.exists()
    if sig != signal.SIGKILL:
        assert "Traceback" not in err
        assert f"segments are saved in {job}" in err and "--resume" in err
    # nothing beside the output but its job folder; the output is written while segments are
    # computed, so a killed run (which cannot clean up) leaves its hidden partial file, which
    # the next run of this output sweeps (asserted at the end)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != ".out.tif.vsr-job")
    if sig == signal.SIGKILL:
        assert len(left) <= 1 and all(n.startswith(".out.tif.partial-") for n in left), left
    else:
        assert left == []

    again = _cli(str(src), "-o", str(out), "-q")
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        f"napari-vsr enhance: error: {out}: an interrupted job of this output exists in {job} "
        f"({len(saved)} of 20 segments done); add --resume to continue or --overwrite to start "
        "over"]

    resumed = _cli(str(src), "-o", str(out), "-q", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {len(saved)} of 20 segments already done" in resumed.stderr
    assert f"wrote 160 frames to {out} ({len(saved)} segments resumed)" in resumed.stderr
    np.testing.assert_array_equal(tifffile.imread(out), reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]


def test_resume_with_other_options_is_refused(tmp_path, clip):
    src, _ = clip
    out = tmp_path / "out.tif"
    first = _cli(str(src), "-o", str(out), "-q", "--frames", "0:16", "--keep-job")
    assert first.returncode == 0
    out.unlink()  # as if the job had been interrupted at its very end
    other = subprocess.run(
        [sys.executable, "-m", "napari_vsr.cli", "enhance", str(src), "-o", str(out), "-q",
         "--frames", "0:16", "--resume", "--method", "classic", "--preset", "seed"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert other.returncode == 1
    line, = other.stderr.strip().splitlines()
    assert "does not match this command" in line and "preset: 'temporal-denoise'" in line
    same = _cli(str(src), "-o", str(out), "-q", "--frames", "0:16", "--resume")
    assert same.returncode == 0 and "(2 segments resumed)" in same.stderr


def test_a_job_another_process_runs_is_refused(tmp_path, clip):
    """Two commands on one output: the second is told the first is running (not offered to
    resume it), and nothing of the first is touched; a killed holder frees the job."""
    from napari_vsr.jobs.state import JobDir

    src, _ = clip
    out = tmp_path / "out.tif"
    job = JobDir(tmp_path / ".out.tif.vsr-job")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from napari_vsr.jobs.state import JobDir; "
         f"j = JobDir({str(job.path)!r}); j.lock(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for extra in ([], ["--resume"], ["--overwrite"]):
            done = _cli(str(src), "-o", str(out), "-q", "--frames", "0:8", *extra)
            assert done.returncode == 1, done.stderr
            line, = done.stderr.strip().splitlines()
            assert f"another napari-vsr process (pid {holder.pid}) is running this job" in line
        assert job.path.is_dir() and not out.exists()
    finally:
        holder.kill()
        holder.wait()
    done = _cli(str(src), "-o", str(out), "-q", "--frames", "0:8", "--overwrite")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]


def test_job_dir_never_takes_a_users_folder(tmp_path, clip):
    """``--job-dir .`` or any folder with other files is refused before any work (a job
    folder is deleted when its job ends); an empty or new folder is used and removed."""
    src, _ = clip
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "thesis.txt").write_text("precious")
    out = tmp_path / "out.tif"
    for job_dir in (mine, tmp_path):
        done = _cli(str(src), "-o", str(out), "-q", "--frames", "0:8", "--job-dir", str(job_dir))
        assert done.returncode == 1, done.stderr
        line, = done.stderr.strip().splitlines()
        assert "--job-dir: the folder holds other files" in line and str(job_dir) in line
    assert (mine / "thesis.txt").read_text() == "precious" and (mine / "sub").is_dir()
    assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    done = _cli(str(src), "-o", str(out), "-q", "--frames", "0:8", "--job-dir", str(empty))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "out.tif"]
