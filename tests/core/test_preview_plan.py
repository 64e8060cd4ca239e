"""The preview plan (region, context frames, device) and the time estimate shown before a
preview starts: Qt-free, so tested without napari."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_vsr.jobs import estimate as estimates
from napari_vsr.jobs.request import MethodOptions
from napari_vsr.widgets._preview_plan import Crop, clamp, plan_preview


def _layer(t=20, h=360, w=640, corners=((0, 0, 0), (0, 359, 639)), translate=(0, 0, 0)):
    data = np.arange(t * h * w * 3, dtype=np.uint32).reshape(t, h, w, 3)
    return SimpleNamespace(data=data, translate=translate, scale=(1.0, 1.0, 1.0),
                           corner_pixels=np.array(corners))


def test_realbasicvsr_preview_is_a_middle_window_of_the_view_with_its_context():
    plan = plan_preview(_layer(), 10.0, MethodOptions(device="cpu"), None)
    assert plan.t == 10 and plan.frames == 9 and plan.overlap == 4 and plan.device == "cpu"
    assert (plan.y.stop - plan.y.start, plan.x.stop - plan.x.start) == (256, 256)
    assert plan.x.start == 320 - 128 and plan.y.start == 180 - 128
    frame = plan.source[10]
    np.testing.assert_array_equal(frame, _layer().data[10, plan.y, plan.x])
    assert plan.source[9:11].shape == (2, 256, 256, 3)


def test_context_is_cut_at_the_ends_and_the_view_bounds_the_region():
    view = ((0, 100, 200), (0, 149, 279))  # 50 x 80 pixels visible
    plan = plan_preview(_layer(corners=view), 1.0, MethodOptions(device="cpu"), 2)
    assert plan.frames == 4 and plan.overlap == 2  # frames 0..3
    assert (plan.y, plan.x) == (slice(100, 150), slice(200, 280))
    classic = plan_preview(_layer(corners=view), 1.0, MethodOptions(method="classic",
                                                                    preset="seed"), None)
    assert classic.frames == 1 and classic.device == "cpu" and classic.overlap is None


def test_whole_small_frame_needs_no_crop_and_time_is_clipped():
    plan = plan_preview(_layer(t=3, h=40, w=50, corners=((0, 0, 0), (0, 39, 49))), 99.0,
                        MethodOptions(device="cpu"), 1)
    assert plan.t == 2 and plan.source is None and plan.frames == 2


def test_crop_refuses_other_indexing():
    crop = Crop(np.zeros((2, 10, 10)), slice(2, 4), slice(0, 5))
    assert crop.shape == (2, 2, 5) and len(crop) == 2
    with pytest.raises(IndexError):
        crop[0, 1]


def test_clamp_keeps_the_middle():
    assert clamp(slice(0, 100), 40) == slice(30, 70)
    assert clamp(slice(10, 20), 40) == slice(10, 20)


def test_estimate_uses_the_benchmark_then_a_measured_rate(monkeypatch):
    monkeypatch.setattr(estimates, "_measured", {})
    est = estimates.estimate("realbasicvsr", "cpu", 9, 256, 256)
    assert est.seconds == pytest.approx(9 * 256 * 256 / (640 * 360 / 11.77))
    assert "9 frames of 256x256 px, about" in est.text() and "benchmark" in est.text()
    unknown = estimates.estimate("realbasicvsr", "cuda", 9, 256, 256)
    assert unknown.seconds is None and "time unknown" in unknown.text()
    estimates.record_rate("realbasicvsr", "cuda", 1_000_000, 2.0)
    assert estimates.estimate("realbasicvsr", "cuda", 1, 1000, 500).seconds == pytest.approx(1.0)
