"""Fixtures shared by the napari tests."""

from __future__ import annotations

import threading

import pytest


class Gate:
    """Wraps an enhancer: after ``free`` frames it blocks until the test opens the gate (the
    job's cancel is still seen: the engine's step runs before the wait)."""

    def __init__(self, inner, gate: threading.Event, free: int):
        self._inner, self._gate, self._free, self.frames = inner, gate, free, 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def enhance(self, frames, *, step=None):
        def gated(i=None):
            self.frames += 1
            if step is not None:
                step(i)
            if self.frames >= self._free:
                assert self._gate.wait(60), "the test never opened the gate"

        return self._inner.enhance(frames, step=gated)


@pytest.fixture
def gate_enhancers(monkeypatch):
    """``gate_enhancers(gate, free=1)``: every enhancer made from now on is a :class:`Gate`,
    by ``gate`` or by the next of a list of gates (one per job, in the order jobs start).
    Returns the list of the gates made; ``monkeypatch.undo()`` ends the gating."""
    import napari_vsr.enhancers as enhancers

    def install(gate: threading.Event | list[threading.Event], free: int = 1) -> list[Gate]:
        real = enhancers.make_enhancer
        made: list[Gate] = []

        def make(*a, **k):
            this = gate[len(made)] if isinstance(gate, list) else gate
            made.append(Gate(real(*a, **k), this, free))
            return made[-1]

        monkeypatch.setattr(enhancers, "make_enhancer", make)
        return made

    return install
