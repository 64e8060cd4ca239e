"""The one frame-rate parser: every front end reads 29.97 as 30000/1001."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from napari_vsr.errors import ParameterError
from napari_vsr.io import fps_of_metadata, parse_fps


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (29.97, Fraction(30000, 1001)),
        ("29.97", Fraction(30000, 1001)),
        (23.976, Fraction(24000, 1001)),
        ("23.976", Fraction(24000, 1001)),
        (59.94, Fraction(60000, 1001)),
        ("30000/1001", Fraction(30000, 1001)),
        (" 60000/1001 ", Fraction(60000, 1001)),
        (Fraction(30000, 1001), Fraction(30000, 1001)),
        (29.97002997, Fraction(30000, 1001)),  # a measured rate, as a reader gives it
        (np.float64(29.97002997), Fraction(30000, 1001)),
        (Fraction(2997, 100), Fraction(30000, 1001)),
        ("25", Fraction(25)),
        (25, Fraction(25)),
        (30.0, Fraction(30)),
        (12.5, Fraction(25, 2)),
        ("12.5", Fraction(25, 2)),
        ("24000/1000", Fraction(24)),
    ],
)
def test_parse_fps(value, expected):
    rate = parse_fps(value)
    assert isinstance(rate, Fraction)
    assert rate == expected


@pytest.mark.parametrize("bad", [0, -5, "0", "fast", "", None, "1/0", float("nan"), float("inf"),
                                 True, "30/-1"])
def test_parse_fps_rejects_and_names_the_option(bad):
    with pytest.raises(ParameterError) as info:
        parse_fps(bad, option="--fps")
    assert str(info.value).startswith("--fps:")
    assert repr(bad) in str(info.value)


def test_fps_of_metadata():
    assert fps_of_metadata({"fps_fraction": "30000/1001", "fps": 29.97}) == Fraction(30000, 1001)
    assert fps_of_metadata({"fps": 29.97002997}) == Fraction(30000, 1001)
    assert fps_of_metadata({"fps_fraction": "broken", "fps": 25.0}) == 25
    assert fps_of_metadata({"fps_fraction": None, "fps": None}) is None
    assert fps_of_metadata({}) is None and fps_of_metadata(None) is None
