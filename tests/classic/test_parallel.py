"""The runner's threads and memory: output buffer reuse, frame scheduling, OpenCV's pool."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from napari_vsr.classic import Pipeline, get_preset, resize, temporal_median
from napari_vsr.classic import pipeline as pipeline_module
from napari_vsr.classic.parallel import BufferRecycler, for_each, opencv_serial
from napari_vsr.enhancers import ClassicEnhancer
from napari_vsr.errors import ParameterError


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


# --- BufferRecycler ---------------------------------------------------------------------------
def test_recycler_reuses_only_what_the_caller_dropped():
    rec = BufferRecycler()
    a = rec.get((3, 4, 5), np.uint8)
    assert a.shape == (3, 4, 5) and a.dtype == np.uint8 and a.flags.c_contiguous
    b = rec.get((3, 4, 5), np.uint8)  # ``a`` still held: fresh memory
    assert not np.shares_memory(a, b)
    address = _address(b)
    del a, b
    c = rec.get((3, 4, 5), np.uint8)  # the last one handed out is free again
    assert _address(c) == address
    view = c[1:]
    del c
    d = rec.get((3, 4, 5), np.uint8)  # a view still references the array: fresh again
    assert not np.shares_memory(d, view)


def test_recycler_hands_out_the_same_memory_once_released():
    rec = BufferRecycler()
    a = rec.get((4, 2, 2), np.float32)
    address = _address(a)
    del a
    b = rec.get((4, 2, 2), np.float32)
    assert _address(b) == address
    del b
    shorter = rec.get((2, 2, 2), np.float32)  # a shorter chunk: the leading frames
    assert shorter.shape == (2, 2, 2) and shorter.flags.c_contiguous
    assert _address(shorter) == address
    del shorter
    other = rec.get((4, 2, 2), np.uint16)  # another dtype: fresh
    assert other.dtype == np.uint16 and _address(other) != address
    rec.clear()
    assert rec.get((4, 2, 2), np.uint16) is not other


# --- for_each ---------------------------------------------------------------------------------
@pytest.mark.parametrize("tasks", [1, 2, 5])
def test_for_each_runs_every_index_once(tasks):
    seen = []
    lock = threading.Lock()

    def record(i: int) -> None:
        with lock:
            seen.append(i)

    with ThreadPoolExecutor(2) as pool:
        for_each(record, 7, pool, tasks)
    assert sorted(seen) == list(range(7))
    seen.clear()
    for_each(record, 3, None, tasks)
    assert seen == [0, 1, 2]


def test_for_each_raises_the_first_error_after_every_task_stopped():
    started = []

    def fail_on_three(i: int) -> None:
        started.append(i)
        if i == 3:
            raise ValueError("frame 3")

    with ThreadPoolExecutor(2) as pool, pytest.raises(ValueError, match="frame 3"):
        for_each(fail_on_three, 50, pool, 2)
    assert len(started) < 50  # the others stopped taking frames


# --- opencv_serial ----------------------------------------------------------------------------
@pytest.fixture
def opencv_threads():
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    yield
    cv2.setNumThreads(before)


def test_opencv_serial_is_scoped_counted_and_restores(opencv_threads):
    with opencv_serial():
        assert cv2.getNumThreads() == 1
        with opencv_serial():  # overlapping users (another enhancer, another thread)
            assert cv2.getNumThreads() == 1
        assert cv2.getNumThreads() == 1  # still in use by the outer one
    assert cv2.getNumThreads() == 3


def test_opencv_serial_leaves_a_setting_changed_meanwhile(opencv_threads):
    with opencv_serial():
        cv2.setNumThreads(2)
    assert cv2.getNumThreads() == 2


def test_runner_switches_opencv_pool_off_only_while_frames_run_in_parallel(opencv_threads):
    seen = []

    class Probe(Pipeline):
        @staticmethod
        def _run_frame(frame, steps):
            seen.append(cv2.getNumThreads())
            return Pipeline._run_frame(frame, steps)

    probe = Probe([("gaussian_blur", {}), ("laplacian_sharpen", {})], name="probe")
    stack = np.zeros((4, 8, 8, 3), np.uint8)
    with ClassicEnhancer(probe, workers=2) as enh:
        enh.enhance(stack)
        assert set(seen) == {1}
        seen.clear()
        enh.enhance(stack[:1])  # one frame: OpenCV may parallelise inside it
        assert seen == [3]
    assert cv2.getNumThreads() == 3


# --- ClassicEnhancer and apply_stack(out=...) -------------------------------------------------
def test_enhancer_reuses_its_output_only_after_the_caller_let_go(make_stack):
    stack = make_stack(np.uint8, "rgb", frames=4)
    pipeline = get_preset("seed")
    expected = pipeline.apply_stack(stack)
    with ClassicEnhancer(pipeline, workers=2) as enh:
        first = enh.enhance(stack)
        second = enh.enhance(stack[::-1])  # ``first`` is held: must not be overwritten
        np.testing.assert_array_equal(first, expected)
        np.testing.assert_array_equal(second, expected[::-1])
        address = _address(second)
        del first, second
        third = enh.enhance(stack)
        assert _address(third) == address
        np.testing.assert_array_equal(third, expected)
        held = third[1:3]  # a view keeps it alive too
        del third
        fourth = enh.enhance(stack[::-1])
        np.testing.assert_array_equal(held, expected[1:3])
        np.testing.assert_array_equal(fourth, expected[::-1])


def test_enhancer_output_memory_is_reused_when_dropped(make_stack):
    stack = make_stack(np.uint16, "gray", frames=3)
    with ClassicEnhancer(get_preset("seed"), workers=2) as enh:
        addresses = set()
        for _ in range(3):
            out = enh.enhance(stack)
            addresses.add(_address(out))
            del out
        assert len(addresses) == 1


STEPS = {
    "frame-last": [
        ("unsharp_mask", {}),
        ("temporal_mean", {"radius": 1}),
        ("resize", {"factor": 2}),
    ],
    "temporal-last": [("resize", {"factor": 2}), ("temporal_median", {"radius": 1})],
}


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("executor", [None, "pool"])
def test_apply_stack_writes_into_out(executor, steps, make_stack):
    stack = make_stack(np.float32, "rgb", frames=3)
    p = Pipeline(STEPS[steps])
    expected = p.apply_stack(stack)
    out = np.full(expected.shape, np.nan, np.float32)
    with ThreadPoolExecutor(2) as pool:
        got = p.apply_stack(stack, executor=pool if executor else None, workers=2, out=out)
    assert got is out
    np.testing.assert_array_equal(out, expected)


def test_apply_stack_out_with_channel_axis_and_wrong_out(make_stack):
    stack = make_stack(np.uint8, "rgb", frames=2)
    p = Pipeline([("resize", {"factor": 2})])
    moved = np.moveaxis(stack, -1, 1)  # (T, C, H, W)
    expected = p.apply_stack(moved, channel_axis=1)
    out = np.zeros(expected.shape, np.uint8)
    assert p.apply_stack(moved, channel_axis=1, out=out) is out
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ParameterError, match=r"out must be a \(2, 32, 40, 3\) uint8"):
        p.apply_stack(stack, out=np.zeros((2, 16, 20, 3), np.uint8))
    with pytest.raises(ParameterError, match="out must be"):
        p.apply_stack(stack, out=np.zeros((2, 32, 40, 3), np.uint16))


def test_default_workers_follow_the_cpu_affinity(monkeypatch):
    monkeypatch.setattr(
        pipeline_module.os, "sched_getaffinity", lambda pid: {0, 5, 7}, raising=False
    )
    assert pipeline_module.usable_cpus() == 3
    assert ClassicEnhancer(get_preset("seed")).workers == 3


@pytest.mark.parametrize("workers", [1, 2])
def test_temporal_step_after_a_resize_covers_the_whole_frame(workers, make_stack):
    # regression: the temporal bands were cut from the input height, so a temporal step after
    # a x2 resize returned only the top half of the frames
    stack = make_stack(np.uint8, "rgb", frames=4)
    p = Pipeline([("resize", {"factor": 2}), ("temporal_median", {"radius": 1})])
    resized = np.stack([resize(f, factor=2) for f in stack])
    expected = temporal_median(resized, radius=1)
    with ClassicEnhancer(p, workers=workers) as enh:
        np.testing.assert_array_equal(enh.enhance(stack), expected)
    np.testing.assert_array_equal(p.apply_stack(stack), expected)
