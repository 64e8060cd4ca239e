"""Result stores without Qt: recognition, ``napari-vsr info``, the resume request."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_vsr.cli import main
from napari_vsr.errors import Cancelled
from napari_vsr.jobs.progress import CancelToken
from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions, Placement
from napari_vsr.jobs.results import (
    describe_result,
    is_result_store,
    resume_request,
    source_placement,
)
from napari_vsr.jobs.runner import FramesDone, run, run_job

CLASSIC = MethodOptions(method="classic", preset="seed")


def _request(source, out, **kw):
    return JobRequest(source=str(source), output=out, live=True, method=CLASSIC,
                      engine=EngineOptions(chunk=2), segment=2, frame_range=(3, 11),
                      placement=Placement((2.0, 0.5, 0.5), (1.0, 7.0, -3.0)), **kw)


def _interrupted(source, out) -> None:
    """Start a live job and cancel it after 5 frames (at least 2 committed segments)."""
    cancel = CancelToken()
    gen = run_job(_request(source, out), cancel)
    frames = 0
    with pytest.raises(Cancelled):
        for event in gen:
            if isinstance(event, FramesDone):
                frames += event.count
                if frames == 5:
                    cancel.cancel()


def test_info_describes_complete_and_partial_stores(tmp_path, sample_frames_dir, capsys):
    done = tmp_path / "done.zarr"
    run(_request(sample_frames_dir, done))
    assert is_result_store(done) and not is_result_store(sample_frames_dir)
    facts = describe_result(done)
    assert facts["kind"] == "result store" and facts["frames"] == 8
    assert facts["partial"] is False and facts["method"] == "classic:seed"
    assert facts["frame_range"] == [3, 11] and facts["source"] == str(sample_frames_dir)
    assert main(["info", str(done)]) == 0
    text = capsys.readouterr().out
    assert "holds no image frames" not in text
    for line in ("kind         result store", "frames       8", "method       classic:seed",
                 "frame range  3:11", "state        complete"):
        assert line in text, text

    part = tmp_path / "part.zarr"
    _interrupted(sample_frames_dir, part)
    assert main(["info", str(part), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["partial"] is True and facts["resumable"] is True and facts["frames"] == 8
    assert main(["info", str(part)]) == 0
    assert "partial: its job was interrupted; resumable from" in capsys.readouterr().out


def test_resume_request_rebuilds_the_job(tmp_path, sample_frames_dir):
    part = tmp_path / "part.zarr"
    _interrupted(sample_frames_dir, part)
    from napari_vsr.jobs.results import open_result

    _, md = open_result(part)
    req = resume_request(part, md)
    assert req.resume and req.live and req.output == str(part)
    assert req.method == CLASSIC and req.frame_range == (3, 11) and req.segment == 2
    np.testing.assert_allclose(req.placement.scale, (2.0, 0.5, 0.5))
    np.testing.assert_allclose(req.placement.translate, (1.0, 7.0, -3.0))
    assert source_placement(md) == req.placement
    result = run(req)
    assert result.segments_reused >= 2 and result.segments_reused + result.segments_computed == 4
    ref = tmp_path / "ref.zarr"
    run(_request(sample_frames_dir, ref))
    from napari_vsr.io.zarr_store import open_result_store

    np.testing.assert_array_equal(open_result_store(part, mode="r")[:],
                                  open_result_store(ref, mode="r")[:])
    assert not describe_result(part)["partial"]
