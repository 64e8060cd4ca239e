"""Fixtures for the model tests: the golden checkpoint, its generator weights, the clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

GOLDEN_CKPT = "realbasicvsr_random_mmedit_layout.pth"


@pytest.fixture(scope="session")
def golden_ckpt(golden_dir: Path) -> Path:
    return golden_dir / GOLDEN_CKPT


@pytest.fixture(scope="session")
def golden_raw(golden_ckpt: Path) -> dict:
    """The golden file as stored: {"meta": ..., "state_dict": {...}} (do not modify)."""
    return torch.load(golden_ckpt, map_location="cpu", weights_only=True)


def _prefixed(raw: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in raw["state_dict"].items() if k.startswith(prefix)}


@pytest.fixture(scope="session")
def golden_ema(golden_raw) -> dict[str, torch.Tensor]:
    """EMA generator weights (the ones the golden outputs were computed with)."""
    return _prefixed(golden_raw, "generator_ema.")


@pytest.fixture(scope="session")
def golden_generator(golden_raw) -> dict[str, torch.Tensor]:
    """Training generator weights (differ from the EMA ones on purpose)."""
    return _prefixed(golden_raw, "generator.")


@pytest.fixture(scope="session")
def golden_input(golden_dir: Path) -> torch.Tensor:
    """(1, 6, 3, 72, 100) float32 in [0, 1]."""
    frames = np.load(golden_dir / "input_rgb_uint8.npy")
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255.0).unsqueeze(0)
