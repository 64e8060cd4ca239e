"""An inline recipe (what the pipeline builder makes) runs like a recipe file: the same frames
as the CLI with that recipe saved as YAML, recorded in the manifest and the provenance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from napari_vsr.classic import Pipeline
from napari_vsr.enhancers import make_enhancer
from napari_vsr.errors import ParameterError
from napari_vsr.jobs.metadata import result_metadata
from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions
from napari_vsr.jobs.results import open_result, resume_request
from napari_vsr.jobs.runner import JobMismatchError, JobStarted, run
from napari_vsr.jobs.source import open_source, source_metadata

REPO = Path(__file__).resolve().parents[2]

#: not a preset: a temporal step (context), per-frame steps on both sides of a x2 resize
RECIPE = Pipeline(
    [
        ("temporal_mean", {"radius": 1}),
        ("gaussian_blur", {"ksize": 3, "sigma": 0.8}),
        ("resize", {"factor": 2, "interpolation": "bilinear"}),
        ("unsharp_mask", {"radius": 1.2, "amount": 0.7}),
    ],
    name="built",
    description="made in the pipeline builder",
)


@pytest.fixture(scope="module")
def crop_stack(tmp_path_factory, sample_frames_dir) -> Path:
    """Six real sample frames cropped to 40x56 (RGB uint8), as a TIFF stack."""
    paths = sorted(sample_frames_dir.glob("*.png"))[:6]
    frames = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths])
    path = tmp_path_factory.mktemp("inline") / "crop.tif"
    tifffile.imwrite(path, np.ascontiguousarray(frames[:, 150:190, 300:356]), photometric="rgb")
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, "-m", "napari_vsr", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


def test_options_keep_the_recipe_as_plain_data():
    options = MethodOptions(method="classic", pipeline=RECIPE)
    assert options.pipeline == RECIPE.to_dict()
    doc = json.loads(json.dumps(options.to_dict()))  # what a manifest stores
    again = MethodOptions.from_dict(doc)
    assert again == options and hash(again) == hash(options)
    assert Pipeline.from_dict(again.pipeline) == RECIPE
    # a caller's dict is copied, not kept
    mine = RECIPE.to_dict()
    from_dict = MethodOptions(method="classic", pipeline=mine)
    mine["steps"].pop()
    assert from_dict.pipeline == RECIPE.to_dict()
    with pytest.raises(ParameterError, match="'pipeline' must be a recipe"):
        MethodOptions(method="classic", pipeline=["resize"])
    with pytest.raises(ParameterError, match="not plain data"):
        MethodOptions(method="classic", pipeline={"steps": [{"op": "resize", "factor": {1}}]})


def test_make_enhancer_builds_the_inline_recipe():
    with make_enhancer("classic", pipeline=RECIPE.to_dict()) as enhancer:
        assert enhancer.pipeline == RECIPE and enhancer.name == "classic:built"
        assert enhancer.capabilities.scale == 2 and enhancer.capabilities.context == 1
    with pytest.raises(ParameterError, match="got a preset and a built pipeline"):
        make_enhancer("classic", preset="seed", pipeline=RECIPE)
    with pytest.raises(ParameterError, match="belongs to the classic method"):
        make_enhancer("realbasicvsr", pipeline=RECIPE)
    bad = RECIPE.to_dict()
    bad["steps"][1]["ksize"] = 4
    with pytest.raises(ParameterError, match=r"step 2 \(gaussian_blur\).*'ksize' = 4"):
        make_enhancer("classic", pipeline=bad)


def test_inline_recipe_job_equals_the_cli_with_the_yaml(tmp_path, crop_stack):
    recipe_file = tmp_path / "r.yaml"
    RECIPE.to_file(recipe_file)
    cli_out = tmp_path / "cli.tif"
    done = _cli("enhance", str(crop_stack), "-o", str(cli_out), "--method", "classic",
                "--recipe", str(recipe_file), "--chunk", "3", "-q")
    assert done.returncode == 0, done.stderr
    seen = []
    job_out = tmp_path / "job.tif"
    request = JobRequest(source=crop_stack, output=job_out,
                         method=MethodOptions(method="classic", pipeline=RECIPE.to_dict()),
                         engine=EngineOptions(chunk=3), keep_job=True)
    result = run(request, on_event=seen.append)
    expected = tifffile.imread(cli_out)
    got = tifffile.imread(job_out)
    assert got.shape == (6, 80, 112, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)
    # against the pipeline itself, on the whole (short) stack
    source = tifffile.imread(crop_stack)
    np.testing.assert_array_equal(got, RECIPE.apply_stack(source))
    # the manifest holds the recipe, so a resume or a Dask worker rebuilds it
    started = next(e for e in seen if isinstance(e, JobStarted))
    manifest = json.loads((Path(started.job_dir) / "manifest.json").read_text())
    assert manifest["method"]["pipeline"] == RECIPE.to_dict()
    rebuilt = MethodOptions.from_dict(manifest["method"]).build()
    assert rebuilt.pipeline == RECIPE
    rebuilt.close()
    # provenance: the chosen options and the enhancer's description both carry the recipe,
    # as they do for a recipe file
    md = result.metadata
    assert md["options"]["pipeline"] == RECIPE.to_dict()
    assert md["parameters"]["pipeline"] == RECIPE.to_dict()
    assert md["method"] == "classic:built"
    written = open_source(job_out)  # read back as the reader does
    assert result_metadata(source_metadata(written))["options"]["pipeline"] == RECIPE.to_dict()


def test_resume_refuses_other_steps(tmp_path, crop_stack):
    out = tmp_path / "out.zarr"
    method = MethodOptions(method="classic", pipeline=RECIPE)
    request = JobRequest(source=crop_stack, output=out, method=method,
                         engine=EngineOptions(chunk=3), segment=3, live=True)

    class Stop(Exception):
        pass

    def stop_after_first_segment(event):
        if type(event).__name__ == "SegmentDone":
            raise Stop

    with pytest.raises(Stop):
        run(request, on_event=stop_after_first_segment)
    other = Pipeline([(s.op, s.params) for s in RECIPE.steps[:-1]], name="built")
    with pytest.raises(JobMismatchError, match="recipe steps"):
        run(JobRequest(source=crop_stack, output=out, resume=True, overwrite=True, live=True,
                       segment=3,
                       method=MethodOptions(method="classic", pipeline=other),
                       engine=EngineOptions(chunk=3)))
    # the result store's own record rebuilds the same request, and it finishes the job
    _, metadata = open_result(out)
    again = resume_request(out, metadata)
    assert again.method.pipeline == RECIPE.to_dict()
    result = run(again)
    assert result.segments_reused == 1
    store, _ = open_result(out)
    np.testing.assert_array_equal(np.asarray(store), RECIPE.apply_stack(tifffile.imread(crop_stack)))


def test_dask_workers_rebuild_the_inline_recipe(tmp_path, crop_stack):
    pytest.importorskip("distributed")
    from napari_vsr.jobs.runner import SegmentDone

    seen = []
    out = tmp_path / "dask.tif"
    request = JobRequest(source=crop_stack, output=out, scheduler="local:1", segment=3,
                         method=MethodOptions(method="classic", pipeline=RECIPE),
                         engine=EngineOptions(chunk=3))
    result = run(request, on_event=seen.append)
    done = [e for e in seen if isinstance(e, SegmentDone)]
    assert len(done) == 2 and all(e.worker.startswith("tcp://") for e in done)
    assert result.segments_computed == 2
    np.testing.assert_array_equal(tifffile.imread(out),
                                  RECIPE.apply_stack(tifffile.imread(crop_stack)))
