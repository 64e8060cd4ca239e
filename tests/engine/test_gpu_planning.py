"""Planning for a GPU without one: tiles and batches chosen from the device's free memory for
RealBasicVSR (golden checkpoint), as on a 24 GB card and on an H200-class one."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from napari_vsr.engine import MEMORY_HEADROOM, resolve_batch, resolve_tile
from napari_vsr.enhancers import make_enhancer

GIB = 1 << 30


@pytest.fixture(scope="module")
def fp16_on_cuda(golden_dir):
    """The golden-checkpoint enhancer as it would plan on CUDA in fp16 (the automatic choice
    there): only the declared device and the element size matter for the plan."""
    enh = make_enhancer("realbasicvsr", weights=golden_dir / "realbasicvsr_random_mmedit_layout.pth",
                        device="cpu")
    enh.capabilities = replace(enh.capabilities, device="cuda:0")
    enh.dtype = torch.float16
    enh.fused = False
    return enh


def _free(monkeypatch, gib: float):
    import napari_vsr.models.device as device

    monkeypatch.setattr(device, "free_memory_bytes", lambda dev: int(gib * GIB))


def test_1080p_input_fits_a_24_gb_card_with_tiles(fp16_on_cuda, monkeypatch):
    _free(monkeypatch, 22)  # a 24 GB card with the weights and the CUDA context loaded
    shape, chunk, overlap = (3000, 1080, 1920, 3), 20, 4
    tile = resolve_tile(fp16_on_cuda, shape, chunk, overlap, rgb=True)
    n = chunk + 2 * overlap
    assert 0 < tile < 1920
    side_h, side_w = min(tile, 1080), min(tile, 1920)
    assert fp16_on_cuda.estimate_memory(n, side_h, side_w) <= MEMORY_HEADROOM * 22 * GIB
    # and the plan does not depend on the video's length
    assert resolve_tile(fp16_on_cuda, (30, 1080, 1920, 3), chunk, overlap, rgb=True) == tile
    assert resolve_batch(fp16_on_cuda, shape, chunk, overlap, tile, rgb=True) == 1


def test_640x360_is_batched_on_a_large_gpu_and_not_tiled(fp16_on_cuda, monkeypatch):
    _free(monkeypatch, 130)  # an H200
    shape, chunk, overlap = (1500, 360, 640, 3), 20, 4
    tile = resolve_tile(fp16_on_cuda, shape, chunk, overlap, rgb=True)
    assert tile == 0
    batch = resolve_batch(fp16_on_cuda, shape, chunk, overlap, tile, rgb=True)
    assert 1 < batch <= fp16_on_cuda.capabilities.max_batch
    need = fp16_on_cuda.estimate_memory(chunk + 2 * overlap, 360, 640)
    assert batch * need <= MEMORY_HEADROOM * 130 * GIB
