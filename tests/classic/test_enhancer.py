"""ClassicEnhancer: parallel chunks equal the per-frame loop; temporal context is exact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_vsr.classic import Pipeline, get_preset, temporal_median
from napari_vsr.enhancers import Capabilities, ClassicEnhancer, Enhancer
from napari_vsr.errors import ParameterError


def _ref_temporal_median(stack: np.ndarray, radius: int) -> np.ndarray:
    out = np.empty_like(stack)
    for t in range(len(stack)):
        window = stack[max(0, t - radius) : t + radius + 1].astype(np.float64)
        med = np.median(window, axis=0)
        out[t] = med if stack.dtype.kind == "f" else np.rint(med)
    return out


def _chunked(enhancer: Enhancer, stack: np.ndarray, chunk: int, overlap: int) -> np.ndarray:
    """What the engine does: outputs [s, s+chunk) from inputs [s-overlap, s+chunk+overlap)."""
    outs = []
    for s in range(0, len(stack), chunk):
        lo, hi = max(0, s - overlap), min(len(stack), s + chunk + overlap)
        result = enhancer.enhance(stack[lo:hi])
        outs.append(result[s - lo : s - lo + min(chunk, len(stack) - s)])
    return np.concatenate(outs)


def test_is_an_enhancer_with_the_pipeline_attributes():
    enh = ClassicEnhancer(get_preset("seed"), workers=2)
    assert isinstance(enh, Enhancer)
    assert enh.name == "classic:seed" and enh.scale == 4
    assert enh.capabilities == Capabilities(
        scale=4,
        context=0,
        tileable=False,
        default_chunk=max(4, 16 // 16),
        default_overlap=0,
        input_kind="native",
        accepts_integer_rgb=False,
        device=None,
        precisions=(),
    )
    info = enh.describe()
    assert info["method"] == "classic:seed" and info["scale"] == 4
    assert info["pipeline"] == get_preset("seed").to_dict()
    json.dumps(info)
    enh.close()


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize(
    "dtype,layout", [(np.uint8, "rgb"), (np.uint16, "gray"), (np.float32, "rgba")]
)
def test_stack_equals_per_frame_loop(workers, dtype, layout, make_stack):
    stack = make_stack(dtype, layout, frames=6)
    before = stack.copy()
    pipeline = get_preset("seed")
    with ClassicEnhancer(pipeline, workers=workers) as enh:
        out = enh.enhance(stack)
        again = enh.enhance(stack[:2])
    np.testing.assert_array_equal(stack, before)
    expected = np.stack([pipeline.apply(f) for f in stack])
    assert out.dtype == stack.dtype and out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(again, expected[:2])


def test_single_channel_stack_keeps_its_axis(make_stack):
    stack = make_stack(np.uint16, "gray", frames=3)[..., np.newaxis]
    with ClassicEnhancer(get_preset("seed"), workers=2) as enh:
        out = enh.enhance(stack)
    assert out.shape == (3, 64, 80, 1)
    np.testing.assert_array_equal(out[..., 0], get_preset("seed").apply_stack(stack[..., 0]))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("radius", [1, 2, 3])
def test_temporal_median_with_context_equals_numpy(radius, dtype, make_stack):
    stack = make_stack(dtype, "rgb", frames=11)
    ref = _ref_temporal_median(stack, radius)
    np.testing.assert_array_equal(temporal_median(stack, radius), ref)
    pipeline = Pipeline([("temporal_median", {"radius": radius})], name="tmed")
    enh = ClassicEnhancer(pipeline, workers=2)
    caps = enh.capabilities
    assert caps.context == radius and caps.default_overlap >= radius
    for chunk in (1, 3, 4, 11):
        np.testing.assert_array_equal(_chunked(enh, stack, chunk, radius), ref)
    # too little context is visibly wrong (the test can fail)
    assert not np.array_equal(_chunked(enh, stack, 3, 0), ref)
    enh.close()


def test_temporal_then_spatial_through_the_engine(make_stack):
    engine = pytest.importorskip("napari_vsr.engine")
    stack = make_stack(np.uint8, "rgb", frames=9)
    pipeline = get_preset("temporal-denoise")
    expected = pipeline.apply_stack(stack)
    enh = ClassicEnhancer(pipeline, workers=2)
    frames = dict(engine.enhance(stack, enh, chunk=2, overlap=1))
    np.testing.assert_array_equal(np.stack([frames[i] for i in range(9)]), expected)


def test_close_shuts_the_pool_and_reuse_recreates_it(make_stack):
    enh = ClassicEnhancer(get_preset("bicubic-x4"), workers=2)
    stack = make_stack(np.uint8, "gray", frames=2)
    first = enh.enhance(stack)
    pool = enh._pool
    enh.close()
    assert enh._pool is None and pool._shutdown
    np.testing.assert_array_equal(enh.enhance(stack), first)
    enh.close()


def test_rejects_scales_the_engine_cannot_use():
    with pytest.raises(ParameterError, match="overall scale is 1.5"):
        ClassicEnhancer(Pipeline([("resize", {"factor": 1.5})]))
    with pytest.raises(ParameterError, match="overall scale is None"):
        ClassicEnhancer(Pipeline([("resize", {"size": (10, 10)})]))
    with pytest.raises(ParameterError, match="workers"):
        ClassicEnhancer(get_preset("seed"), workers=0)
    with pytest.raises(ParameterError, match="needs a Pipeline"):
        ClassicEnhancer("seed")


def test_uneven_factors_are_caught_at_run_time(make_stack):
    pipeline = Pipeline(
        [("resize", {"factor": 0.5}), ("resize", {"factor": 2})], name="half-double"
    )
    enh = ClassicEnhancer(pipeline, workers=1)
    assert enh.scale == 1
    with pytest.raises(ParameterError, match="do not divide this frame size evenly"):
        enh.enhance(make_stack(np.uint8, "gray", frames=1, shape=(15, 20)))


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize(
    "steps, last_reports",
    [
        ([("unsharp_mask", {})], "frames"),  # per-frame steps: each frame as it finishes
        ([("unsharp_mask", {}), ("temporal_median", {"radius": 1})], "end"),
        ([("temporal_median", {"radius": 1}), ("resize", {"factor": 2})], "frames"),
    ],
)
def test_step_called_once_per_output_frame(make_stack, workers, steps, last_reports):
    stack = make_stack(np.uint8, "rgb", frames=7, shape=(12, 16))
    pipeline = Pipeline(steps, name="p")
    calls: list[int | None] = []
    with ClassicEnhancer(pipeline, workers=workers) as enh:
        out = enh.enhance(stack, step=calls.append)
        np.testing.assert_array_equal(out, enh.enhance(stack))
    frames = [c for c in calls if c is not None]
    assert sorted(frames) == list(range(7))
    if last_reports == "end":  # a temporal last step finishes every frame at once
        assert calls[-7:] == list(range(7)) and None in calls[:-7]
    elif len(steps) > 1:  # the temporal first step gives check points, no frames
        assert None in calls


def test_step_may_cancel(make_stack):
    from napari_vsr.errors import Cancelled

    stack = make_stack(np.uint8, "gray", frames=9, shape=(12, 16))
    calls = []

    def step(i):
        calls.append(i)
        if len(calls) == 3:
            raise Cancelled()

    with ClassicEnhancer(get_preset("seed"), workers=1) as enh, pytest.raises(Cancelled):
        enh.enhance(stack, step=step)
    assert calls == [0, 1, 2]
