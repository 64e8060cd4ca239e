"""Shared fixtures.  ``../shared`` holds the golden data and sample frames.  Tests that need it
skip with a clear reason when it is absent on a developer's machine; under CI (``CI=true``) its
absence is a failure, so a broken checkout can never pass by skipping."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NAPARI_VSR_SHARED", REPO.parent / "shared"))


def _missing(what: str) -> None:
    """Skip (developer machine) or fail (CI) because ``what`` is missing."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} (required under CI=true)", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        _missing(f"shared data folder not found at {SHARED} (set NAPARI_VSR_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def golden_dir(shared_dir: Path) -> Path:
    d = shared_dir / "golden" / "realbasicvsr"
    if not d.is_dir():
        _missing(f"golden RealBasicVSR data not found at {d}")
    return d


@pytest.fixture(scope="session")
def sample_frames_dir(shared_dir: Path) -> Path:
    d = shared_dir / "samples" / "demo_000"
    if not d.is_dir():
        _missing(f"sample frames not found at {d}")
    return d


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's real weights cache or env from tests."""
    cache = tmp_path_factory.mktemp("vsr-cache")
    monkeypatch.setenv("NAPARI_VSR_CACHE_DIR", str(cache))
    monkeypatch.delenv("NAPARI_VSR_WEIGHTS", raising=False)
