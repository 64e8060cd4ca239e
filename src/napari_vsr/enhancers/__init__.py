"""Enhancement methods behind one contract.

- :mod:`~napari_vsr.enhancers.base`: :class:`Enhancer` and its :class:`Capabilities` record;
- :mod:`~napari_vsr.enhancers.registry`: :func:`make_enhancer` and :data:`METHODS`;
- one module per method: :mod:`~napari_vsr.enhancers.classic` (:class:`ClassicEnhancer`),
  :mod:`~napari_vsr.enhancers.realbasicvsr` (:class:`RealBasicVSREnhancer`, imports PyTorch).

The method classes load on first use (PEP 562), so importing this package does not import
PyTorch or OpenCV.
"""

from __future__ import annotations

import importlib

from napari_vsr.enhancers.base import Capabilities, Enhancer, InputKind, StepCallback
from napari_vsr.enhancers.registry import METHODS, make_enhancer

#: lazily loaded public name -> the module that defines it
_LAZY = {
    "ClassicEnhancer": "napari_vsr.enhancers.classic",
    "RealBasicVSREnhancer": "napari_vsr.enhancers.realbasicvsr",
}

__all__ = [
    "METHODS",
    "Capabilities",
    "ClassicEnhancer",
    "Enhancer",
    "InputKind",
    "RealBasicVSREnhancer",
    "StepCallback",
    "make_enhancer",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_vsr.enhancers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
