"""Fixtures for the classic operator tests: seeded frames of every dtype and layout."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

DTYPES = (np.uint8, np.uint16, np.float32)
LAYOUTS = {"gray": (), "rgb": (3,), "rgba": (4,)}
TOP = {np.uint8: 255.0, np.uint16: 65535.0, np.float32: 1.0}


def _frame(rng: np.random.Generator, dtype, layout: str, shape=(24, 32)) -> np.ndarray:
    """A seeded frame with structure (smoothed noise plus a bright square) and some noise."""
    full = shape + LAYOUTS[layout]
    sigma = (1.5, 1.5) + (0,) * len(LAYOUTS[layout])
    base = ndi.gaussian_filter(rng.random(full), sigma)
    base = (base - base.min()) / (np.ptp(base) + 1e-12)
    base[6:14, 10:20] = 0.6 * base[6:14, 10:20] + 0.4
    x = np.clip(0.8 * base + 0.1 + 0.05 * rng.standard_normal(full), 0, 1)
    if dtype == np.float32:
        return x.astype(np.float32)
    return np.rint(x * TOP[dtype]).astype(dtype)


@pytest.fixture
def make_frame(rng):
    """``make_frame(dtype, layout, shape=(24, 32))`` -> a seeded test frame."""

    def make(dtype, layout: str, shape=(24, 32)) -> np.ndarray:
        return _frame(rng, dtype, layout, shape)

    return make


@pytest.fixture
def make_stack(rng):
    """``make_stack(dtype, layout, frames=7, shape=(16, 20))`` -> a seeded (T, H, W[, C]) stack."""

    def make(dtype, layout: str, frames: int = 7, shape=(16, 20)) -> np.ndarray:
        return np.stack([_frame(rng, dtype, layout, shape) for _ in range(frames)])

    return make
