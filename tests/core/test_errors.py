"""The error family crosses process borders (Dask workers pickle a task's exception)."""

from __future__ import annotations

import inspect
import pickle

import pytest

import napari_vsr.errors as errors
from napari_vsr.jobs.runner import InterruptedJobError, JobMismatchError
from napari_vsr.jobs.state import JobStateError

FAMILY = [cls for cls in vars(errors).values()
          if inspect.isclass(cls) and issubclass(cls, errors.VsrError)]
FAMILY += [InterruptedJobError, JobMismatchError, JobStateError]


@pytest.mark.parametrize("cls", FAMILY, ids=lambda c: c.__name__)
def test_every_error_round_trips_through_pickle(cls):
    kwargs = {"frame_index": 7, "readable_frames": 7} if cls is errors.CorruptFrameError else {}
    error = cls("what went wrong; what to do", path="/data/clip.mp4", **kwargs)
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is cls
    assert str(back) == str(error) == "/data/clip.mp4: what went wrong; what to do"
    assert back.path == "/data/clip.mp4" and back.args == error.args
    assert vars(back) == vars(error)
    for builtin in cls.__mro__[1:]:  # still caught as its builtin (ValueError, OSError, ...)
        assert isinstance(back, builtin)


def test_corrupt_frame_keeps_its_fields():
    error = errors.CorruptFrameError("frame 7 cannot be decoded", path="a.mp4", frame_index=7,
                                     readable_frames=7)
    back = pickle.loads(pickle.dumps(error))
    assert (back.frame_index, back.readable_frames, back.path) == (7, 7, "a.mp4")
