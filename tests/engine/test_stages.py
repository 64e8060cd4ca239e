"""Overlapped pipeline stages (napari_vsr.stages) and the engine's use of them: the same frames
as a serial run, errors and cancels surfacing in the caller, threads never left running."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from napari_vsr.engine import enhance
from napari_vsr.errors import Cancelled
from napari_vsr.jobs.progress import CancelToken
from napari_vsr.stages import Consumer, produce

from . import toy_enhancers as toy


def _stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("napari-vsr-", "t-"))]


def test_produce_yields_in_order_and_runs_ahead_by_at_most_depth():
    made: list[int] = []

    def make(stop):
        for i in range(20):
            made.append(i)
            yield i

    got = []
    for item in produce(make, depth=3, name="t-produce"):
        time.sleep(0.01)
        # the producer is at most depth items in the queue + one in hand ahead of us
        assert len(made) - len(got) <= 3 + 2
        got.append(item)
    assert got == list(range(20))
    assert not _stage_threads()


def test_produce_reraises_the_stage_error_with_its_type():
    def make(stop):
        yield 1
        raise KeyError("bad frame 7")

    gen = produce(make, depth=2, name="t-error")
    assert next(gen) == 1
    with pytest.raises(KeyError, match="bad frame 7"):
        next(gen)
    assert not _stage_threads()


def test_closing_early_stops_the_stage_and_joins_it():
    stopped = []

    def make(stop):
        i = 0
        try:
            while True:
                stop.raise_if_cancelled()
                yield i
                i += 1
        finally:
            stopped.append(True)

    gen = produce(make, depth=2, name="t-close")
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    gen.close()
    assert stopped == [True] and not _stage_threads()


def test_a_stage_sees_the_jobs_cancel():
    token = CancelToken()

    def make(stop):
        for i in range(1000):
            stop.raise_if_cancelled()
            yield i

    gen = produce(make, depth=1, name="t-cancel", cancel=token)
    next(gen)
    token.cancel()
    with pytest.raises(Cancelled):
        for _ in gen:
            pass
    assert not _stage_threads()


def test_consumer_handles_in_order_and_close_waits():
    seen = []
    with Consumer(lambda x: (time.sleep(0.005), seen.append(x)), depth=2, name="t-c") as c:
        for i in range(15):
            c.put(i)
    assert seen == list(range(15)) and not _stage_threads()


def test_consumer_error_reaches_the_caller_at_the_next_put_or_close():
    def handle(x):
        if x == 3:
            raise OSError("disk full")

    c = Consumer(handle, depth=1, name="t-err")
    with pytest.raises(OSError, match="disk full"):
        for i in range(100):
            c.put(i)
    c.abort()
    c2 = Consumer(handle, depth=8, name="t-err2")
    for i in range(5):
        c2.put(i)
    with pytest.raises(OSError, match="disk full"):
        c2.close()
    assert not _stage_threads()


def test_consumer_abort_drops_the_queue():
    seen = []
    gate = threading.Event()

    def handle(x):
        gate.wait(5)
        seen.append(x)

    c = Consumer(handle, depth=4, name="t-abort")
    for i in range(4):
        c.put(i)
    gate.set()
    c.abort()
    assert len(seen) <= 2 and not _stage_threads()


# --- the engine --------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: toy.UpscaleNearest(scale=2, chunk=3),
    lambda: toy.TemporalMean(k=2, chunk=4),
    lambda: toy.TinyRecurrent(),
])
def test_overlapped_engine_equals_serial(make, rng):
    frames = (rng.random((17, 12, 10, 3)) * 255).astype(np.uint8)
    serial = [(i, f.copy()) for i, f in enhance(frames, make(), serial=True)]
    overlapped = [(i, f.copy()) for i, f in enhance(frames, make())]
    assert [i for i, _ in serial] == [i for i, _ in overlapped] == list(range(17))
    for (_, a), (_, b) in zip(serial, overlapped, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not _stage_threads()


def test_overlapped_engine_reads_ahead_of_a_slow_consumer():
    src = toy.LazyFrames(40, 8, 8)
    enh = toy.UpscaleNearest(scale=1, chunk=4)
    gen = enhance(src, enh, chunk=4)
    next(gen)
    deadline = time.monotonic() + 5
    while src.reads < 12 and time.monotonic() < deadline:
        time.sleep(0.01)
    # the reader and the enhancer ran ahead while the caller held its first frame, but only
    # by a few chunks (bounded queues), never through the whole source
    assert 8 <= src.reads <= 24
    gen.close()
    assert not _stage_threads()


def test_overlapped_engine_error_names_itself_in_the_caller():
    class Broken(toy.UpscaleNearest):
        def enhance(self, frames, *, step=None):
            if len(self.calls) == 2:
                raise ValueError("enhancer broke on chunk 3")
            return super().enhance(frames, step=step)

    with pytest.raises(ValueError, match="chunk 3"):
        list(enhance(np.zeros((20, 4, 4), np.uint8), Broken(chunk=4)))
    assert not _stage_threads()


# --- batches -----------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [2, 3, 4])
def test_batched_equals_unbatched_per_chunk(batch, rng):
    frames = rng.random((31, 10, 12, 3), dtype=np.float32)
    one = toy.BatchedRecurrent()
    ref = np.stack([f for _, f in enhance(frames, one, chunk=5, overlap=2, batch=1)])
    assert one.batches == [1] * 7  # one chunk per call
    many = toy.BatchedRecurrent()
    progress = []
    out = np.stack([f for _, f in enhance(frames, many, chunk=5, overlap=2, batch=batch,
                                          progress=lambda p: progress.append(p.done))])
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
    # the 4 interior chunks (5 + 2 x 2 frames) go together; the first and the last two
    # (shorter) do not
    assert max(many.batches) == batch and sum(many.batches) == 7
    assert progress == sorted(progress) and progress[-1] == 31
    assert set(range(32)) <= set(progress)  # every frame reported, inside the batch too


def test_batch_is_capped_by_the_method_and_one_on_the_cpu(rng):
    frames = rng.random((30, 6, 6, 3), dtype=np.float32)
    enh = toy.BatchedRecurrent(max_batch=2)
    list(enhance(frames, enh, chunk=4, overlap=1, batch=8))
    assert max(enh.batches) == 2
    auto = toy.BatchedRecurrent(max_batch=4, device="cpu")
    list(enhance(frames, auto, chunk=4, overlap=1))
    assert set(auto.batches) == {1}  # automatic: no batching on the CPU


def test_out_of_memory_halves_the_batch_and_says_so(rng):
    frames = rng.random((40, 6, 6, 3), dtype=np.float32)
    ref = np.stack([f for _, f in enhance(frames, toy.TinyRecurrent(), chunk=4, overlap=1)])
    enh = toy.BatchedRecurrent(max_batch=4, oom_above=1)
    messages = []
    out = np.stack([f for _, f in enhance(frames, enh, chunk=4, overlap=1, batch=4,
                                          progress=lambda p: messages.append(p.message))])
    np.testing.assert_allclose(out, ref, atol=1e-6)
    assert any("chunk(s) at a time" in m for m in messages)
    assert set(enh.batches) == {1}


def test_cancel_inside_a_batch_stops_every_chunk_of_it(rng):
    frames = rng.random((30, 6, 6, 3), dtype=np.float32)
    token = CancelToken()
    enh = toy.BatchedRecurrent(max_batch=4)

    def on_progress(p):
        if p.done >= 2:
            token.cancel()

    with pytest.raises(Cancelled):
        list(enhance(frames, enh, chunk=4, overlap=1, batch=4, progress=on_progress,
                     cancel=token))
    assert not _stage_threads()
