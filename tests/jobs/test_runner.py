"""The job runner: segments equal to a single pass, resume without recomputing, refusals."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from napari_vsr.engine import enhance
from napari_vsr.enhancers import make_enhancer
from napari_vsr.errors import ParameterError
from napari_vsr.io import VideoOptions, open_frames
from napari_vsr.jobs.metadata import result_fps, result_layer, result_metadata
from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions
from napari_vsr.jobs.runner import (
    InterruptedJobError,
    JobMismatchError,
    JobStarted,
    SegmentDone,
    run,
    run_job,
)
from napari_vsr.jobs.state import default_job_dir

CLASSIC = MethodOptions(method="classic", preset="temporal-denoise")


def _single_pass(source, method: MethodOptions, chunk: int, frames=None, overlap=None):
    with open_frames(source) as src:
        enh = method.build()
        try:
            return np.stack([f for _, f in enhance(src, enh, chunk=chunk, overlap=overlap,
                                                    frame_range=frames)])
        finally:
            enh.close()


def _events(request):
    seen = []
    result = run(request, on_event=seen.append)
    return result, seen


def test_segmented_job_equals_the_single_pass(tmp_path, sample_frames_dir):
    out = tmp_path / "out.tif"
    req = JobRequest(source=sample_frames_dir, output=out, method=CLASSIC,
                     engine=EngineOptions(chunk=4), segment=8, frame_range=(2, 29))
    result, seen = _events(req)
    assert result.frames == 27 and result.segments_computed == 4
    done = [e for e in seen if isinstance(e, SegmentDone)]
    assert [(e.start, e.stop) for e in done] == [(2, 10), (10, 18), (18, 26), (26, 29)]
    expected = _single_pass(sample_frames_dir, CLASSIC, 4, (2, 29))
    np.testing.assert_array_equal(tifffile.imread(out), expected)
    assert not default_job_dir(out).exists()  # removed after success
    # per-frame progress, with segments
    frames_progress = [e for e in seen if getattr(e, "stage", None) == "enhancing"]
    assert [p.done for p in frames_progress if p.done][:3] == [1, 2, 3]
    assert frames_progress[-1].done == 27 and frames_progress[-1].segments_done == 4


def test_resume_after_a_failure_recomputes_nothing_done(tmp_path, sample_frames_dir,
                                                         monkeypatch):
    enhancer_type = type(make_enhancer("classic", preset="seed"))

    out = tmp_path / "out.tif"
    req = JobRequest(source=sample_frames_dir, output=out, method=CLASSIC,
                     engine=EngineOptions(chunk=4), segment=8)
    calls: list[int] = []
    real = enhancer_type.enhance

    def failing(self, frames, **kwargs):
        calls.append(len(frames))
        if len(calls) == 5:  # the 5th chunk: the 3rd segment
            raise RuntimeError("injected failure")
        return real(self, frames, **kwargs)

    monkeypatch.setattr(enhancer_type, "enhance", failing)
    with pytest.raises(RuntimeError, match="injected"):
        run(req)
    job = default_job_dir(out)
    assert sorted(p.name for p in job.glob("segment-*.npy")) == [
        "segment-000000.npy", "segment-000001.npy"]
    assert not out.exists()
    # without --resume: reported, nothing touched
    with pytest.raises(InterruptedJobError, match="add --resume to continue or --overwrite"):
        run(req)
    calls.clear()
    monkeypatch.setattr(enhancer_type, "enhance", real)
    seen = []
    result = run(JobRequest(**{**req.__dict__, "resume": True}), on_event=seen.append)
    assert result.segments_reused == 2 and result.segments_computed == 2
    started = next(e for e in seen if isinstance(e, JobStarted))
    assert started.resumed == 2 and started.segments == 4
    assert [e.computed for e in seen if isinstance(e, SegmentDone)] == [False, False, True, True]
    np.testing.assert_array_equal(tifffile.imread(out), _single_pass(sample_frames_dir, CLASSIC, 4))
    assert not job.exists()


def test_resume_refuses_another_command(tmp_path, sample_frames_dir):
    out = tmp_path / "out.tif"
    req = JobRequest(source=sample_frames_dir, output=out, method=CLASSIC,
                     engine=EngineOptions(chunk=4), segment=8, keep_job=True)
    gen = run_job(req)
    for event in gen:  # stop after the first committed segment, like a kill
        if isinstance(event, SegmentDone):
            break
    gen.close()
    assert (default_job_dir(out) / "segment-000000.npy").is_file()
    other = JobRequest(**{**req.__dict__, "resume": True,
                          "method": MethodOptions(method="classic", preset="seed")})
    with pytest.raises(JobMismatchError, match="preset: 'temporal-denoise' in the job, 'seed' now"):
        run(other)
    shorter = JobRequest(**{**req.__dict__, "resume": True, "frame_range": (0, 20)})
    with pytest.raises(JobMismatchError, match="frame range"):
        run(shorter)
    # --overwrite without --resume starts over
    result = run(JobRequest(**{**req.__dict__, "overwrite": True}))
    assert result.segments_reused == 0 and result.segments_computed == 4
    assert default_job_dir(out).exists()  # --keep-job


def test_failure_before_any_segment_leaves_nothing(tmp_path, sample_frames_dir):
    out = tmp_path / "out.mp4"
    req = JobRequest(source=sample_frames_dir, output=out, method=CLASSIC,
                     video=VideoOptions(crf=900))
    with pytest.raises(ParameterError):
        run(req)
    assert list(tmp_path.iterdir()) == []


def test_live_store_and_file_store_share_one_schema(tmp_path, sample_frames_dir):
    from napari_vsr.io.zarr_store import open_result_store
    from napari_vsr.jobs.request import Placement

    live = tmp_path / "live.zarr"
    req = JobRequest(source=sample_frames_dir, output=live, live=True, method=CLASSIC,
                     frame_range=(4, 10), placement=Placement((2.0, 1.0, 1.0), (0, 5.0, 5.0)))
    gen = run_job(req)
    started = next(e for e in gen if isinstance(e, JobStarted))
    store = open_result_store(live, mode="r")
    assert result_metadata(dict(store.attrs))["partial"] is True  # visible while running
    for _ in gen:
        pass
    assert started.store.shape == (6, 360, 640, 3)
    file_out = tmp_path / "file.zarr"
    run(JobRequest(**{**req.__dict__, "output": file_out, "live": False}))
    a, b = open_result_store(live, mode="r"), open_result_store(file_out, mode="r")
    np.testing.assert_array_equal(a[:], b[:])
    for store in (a, b):
        attrs = dict(store.attrs)
        md = result_metadata(attrs)
        assert md["partial"] is False and md["frame_range"] == [4, 10]
        assert md["source"]["path"] == os.path.abspath(sample_frames_dir) and md["options"]["method"] == "classic"
        assert result_layer(attrs)["scale"] == [2.0, 1.0, 1.0]
        assert result_layer(attrs)["translate"][0] == 8.0  # time: first frame 4 at scale 2
        assert md["timing"]["elapsed_s"] > 0 and md["engine"]["segment"] >= 1
    assert result_fps(dict(a.attrs)) == result_fps(dict(b.attrs))


def test_preview_keeps_nothing_on_disk(tmp_path, sample_frames_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(JobRequest(source=np.asarray(open_frames(sample_frames_dir)[:6]),
                            method=CLASSIC, durable=False))
    assert result.store.shape == (6, 360, 640, 3) and result.store.any()
    assert list(tmp_path.iterdir()) == []


def test_realbasicvsr_segments_equal_the_single_pass(tmp_path, golden_dir):
    frames = np.load(golden_dir / "input_rgb_uint8.npy")[:, :24, :32]  # 6 real frames
    tifffile.imwrite(tmp_path / "in.tif", frames, photometric="rgb")
    method = MethodOptions(weights=str(golden_dir / "realbasicvsr_random_mmedit_layout.pth"),
                           device="cpu", precision="fp32")
    out = tmp_path / "out.tif"
    result = run(JobRequest(source=tmp_path / "in.tif", output=out, method=method,
                            engine=EngineOptions(chunk=2, overlap=2), segment=4))
    assert result.segments_computed == 2
    np.testing.assert_array_equal(
        tifffile.imread(out), _single_pass(tmp_path / "in.tif", method, 2, overlap=2))
    with open_frames(out) as back:
        md = result_metadata(back.metadata)
    assert md["weights_sha256"] == result.metadata["weights_sha256"] is not None
    assert md["precision"] == "fp32" and md["device"] == "cpu"
