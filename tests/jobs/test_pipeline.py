"""The file output is written while segments are computed (encode overlapped with the work);
serial and overlapped runs give the same output; a failure leaves no output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_vsr.io import open_frames
from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions
from napari_vsr.jobs.runner import SegmentDone, run, run_job

CLASSIC = MethodOptions(method="classic", preset="temporal-denoise")
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("serial", [False, True])
def test_output_is_written_while_later_segments_are_computed(tmp_path, sample_frames_dir,
                                                             serial):
    out = tmp_path / "out.tif"
    req = JobRequest(source=sample_frames_dir, output=out, method=CLASSIC,
                     engine=EngineOptions(chunk=4, serial=serial), segment=8)
    gen = run_job(req)
    sizes = []
    for event in gen:
        if isinstance(event, SegmentDone):
            partial = [p for p in tmp_path.iterdir() if p.name.startswith(".out.tif.partial-")]
            assert not out.exists()  # the output appears only when complete
            sizes.append(partial[0].stat().st_size if partial else 0)
    assert out.exists() and not [p for p in tmp_path.iterdir() if "partial" in p.name]
    # by the time the second segment is committed the first one's frames are in the file
    # (the writer's thread is at most a chunk behind): nothing waits for the last segment
    assert sizes[1] > 0 and sizes == sorted(sizes)


def test_serial_and_overlapped_jobs_write_the_same_file(tmp_path, sample_frames_dir):
    outs = []
    for serial in (True, False):
        out = tmp_path / f"out-{serial}.tif"
        run(JobRequest(source=sample_frames_dir, output=out, method=CLASSIC,
                       engine=EngineOptions(chunk=5, serial=serial), segment=10))
        outs.append(tifffile.imread(out))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_a_failing_writer_leaves_no_output_and_keeps_the_segments(tmp_path, sample_frames_dir,
                                                                   monkeypatch):
    from napari_vsr.io import stack_writers

    real = stack_writers.TiffStackWriter._write
    calls = []

    def broken(self, frame):
        calls.append(1)
        if len(calls) == 6:
            raise OSError(28, "No space left on device")
        return real(self, frame)

    monkeypatch.setattr(stack_writers.TiffStackWriter, "_write", broken)
    out = tmp_path / "out.tif"
    req = JobRequest(source=sample_frames_dir, output=out, method=CLASSIC,
                     engine=EngineOptions(chunk=4), segment=4)
    with pytest.raises(Exception, match="space"):
        run(req)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".out.tif.vsr-job"], names  # no output, no partial file
    assert any((tmp_path / ".out.tif.vsr-job").glob("segment-*.npy"))


def test_cli_serial_and_default_give_the_same_video_frames(tmp_path, sample_frames_dir):
    outs = []
    for extra in ([], ["--serial"]):
        out = tmp_path / f"out{len(extra)}.mkv"
        done = subprocess.run(
            [sys.executable, "-m", "napari_vsr.cli", "enhance", str(sample_frames_dir), "-o",
             str(out), "--method", "classic", "--preset", "seed", "--frames", "0:12",
             "--lossless", "-q", *extra],
            capture_output=True, text=True, cwd=REPO, timeout=300)
        assert done.returncode == 0, done.stderr
        with open_frames(out) as frames:
            outs.append(np.asarray(frames[:]))
    assert outs[0].shape[0] == 12
    np.testing.assert_array_equal(outs[0], outs[1])


def test_no_job_streams_to_the_output_without_a_job_folder(tmp_path, sample_frames_dir):
    ref = tmp_path / "ref.tif"
    run(JobRequest(source=sample_frames_dir, output=ref, method=CLASSIC,
                   engine=EngineOptions(chunk=4), segment=8, frame_range=(0, 20)))
    out = tmp_path / "out.tif"
    req = JobRequest(source=sample_frames_dir, output=out, method=CLASSIC,
                     engine=EngineOptions(chunk=4), segment=8, frame_range=(0, 20),
                     durable=False)
    for event in run_job(req):
        if isinstance(event, SegmentDone):
            assert not any(p.name.endswith(".vsr-job") for p in tmp_path.iterdir())
    np.testing.assert_array_equal(tifffile.imread(out), tifffile.imread(ref))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif", "ref.tif"]


def test_cli_no_job_refuses_the_options_that_need_a_job_folder(tmp_path, sample_frames_dir):
    done = subprocess.run(
        [sys.executable, "-m", "napari_vsr.cli", "enhance", str(sample_frames_dir), "-o",
         str(tmp_path / "o.tif"), "--method", "classic", "--no-job", "--resume", "-q"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith(
        "--no-job cannot be combined with --resume (they need the job folder)")
    assert not any(tmp_path.iterdir())


def test_cli_gpu_video_options_fall_back_with_one_line_each(tmp_path, sample_frames_dir):
    """No NVENC/NVDEC here: --codec h264_nvenc and --hwaccel cuda each say so once, before
    any work, and the job writes the software encoder's file."""
    src = tmp_path / "in.mp4"
    made = subprocess.run(
        [sys.executable, "-m", "napari_vsr.cli", "enhance", str(sample_frames_dir), "-o",
         str(src), "--method", "classic", "--preset", "temporal-denoise", "--frames", "0:6", "-q"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert made.returncode == 0, made.stderr
    out = tmp_path / "out.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "napari_vsr.cli", "enhance", str(src), "-o", str(out),
         "--method", "classic", "--preset", "seed", "--codec", "h264_nvenc", "--hwaccel",
         "cuda", "-q"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert sum("h264_nvenc" in line for line in lines) == 1, lines
    assert sum("decoding in software" in line for line in lines) == 1, lines
    assert "Traceback" not in done.stderr
    with open_frames(out) as frames:
        assert len(frames) == 6 and frames.metadata["codec"] in ("h264", "libx264")
