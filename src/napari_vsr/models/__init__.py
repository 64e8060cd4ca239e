"""Qt-free network definitions, checkpoint loading and the weights registry.

``RealBasicVSRNet`` is the network; ``load_realbasicvsr`` builds it from a checkpoint (resolved
through :mod:`napari_vsr.models.weights` when none is given).

The names below load on first use (PEP 562), so ``napari_vsr.models.weights`` (the registry
and downloads, no PyTorch) does not pay for importing PyTorch.
"""

from __future__ import annotations

import importlib

#: public name -> the module that defines it
_EXPORTS = {
    "BasicVSRNet": "napari_vsr.models.basicvsr",
    "RealBasicVSRNet": "napari_vsr.models.realbasicvsr",
    "SPyNet": "napari_vsr.models.spynet",
    "check_architecture": "napari_vsr.models.checkpoint",
    "check_values": "napari_vsr.models.checkpoint",
    "generator_state_dict": "napari_vsr.models.checkpoint",
    "read_checkpoint": "napari_vsr.models.checkpoint",
    "load_realbasicvsr": "napari_vsr.models.loader",
    "weights": "napari_vsr.models.weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_vsr.models' has no attribute {name!r}")
    value = importlib.import_module(module)
    if name != "weights":
        value = getattr(value, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
