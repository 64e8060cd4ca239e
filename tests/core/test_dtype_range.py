"""The one value-range policy (napari_vsr.dtype_range), for every dtype."""

from __future__ import annotations

import numpy as np
import pytest

from napari_vsr.classic.dtypes import cast_like
from napari_vsr.classic.dtypes import full_scale as classic_full_scale
from napari_vsr.dtype_range import dtype_range, from_float01, full_scale, saturate, to_float01
from napari_vsr.errors import UnsupportedDtypeError


def test_dtype_range_per_dtype():
    assert dtype_range(np.uint8) == (0.0, 255.0)
    assert dtype_range(np.uint16) == (0.0, 65535.0)
    assert dtype_range(np.int16) == (-32768.0, 32767.0)
    assert dtype_range(np.float32) == (0.0, 1.0) == dtype_range(np.float64)
    for dt in (np.uint8, np.uint16, np.float32):
        assert full_scale(dt) == classic_full_scale(dt) == dtype_range(dt)[1]
    for bad in (np.bool_, np.complex64, object):
        with pytest.raises(UnsupportedDtypeError):
            dtype_range(bad)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_float01_round_trip_is_exact(dtype):
    x = np.arange(0, np.iinfo(dtype).max + 1, 1 if dtype == np.uint8 else 7, dtype=dtype)
    f = to_float01(x)
    assert f.dtype == np.float32 and f.min() >= 0 and f.max() <= 1
    np.testing.assert_array_equal(from_float01(f, np.dtype(dtype)), x)
    # out of range and halfway values: clipped, rounded half to even
    y = from_float01(np.array([-0.5, 1.5, 0.5 / 255], np.float32), np.dtype(np.uint8))
    assert y.tolist() == [0, 255, 0]


def test_float_is_cast_not_clipped():
    f = np.array([-0.25, 1.25], np.float32)
    assert to_float01(f) is f
    np.testing.assert_array_equal(from_float01(f, np.dtype(np.float32)), f)


def test_saturate_matches_policy_and_keeps_input():
    v = np.array([-3.0, 0.5, 1.5, 2.5, 300.0], np.float32)
    keep = v.copy()
    out = saturate(v, np.uint8)
    assert out.dtype == np.uint8 and out.tolist() == [0, 0, 2, 2, 255]
    np.testing.assert_array_equal(v, keep)
    assert cast_like is saturate
    assert saturate(v, np.float32) is v
