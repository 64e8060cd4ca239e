"""Qt-free network definitions, checkpoint loading and the weights registry.

``RealBasicVSRNet`` is the network; ``load_realbasicvsr`` builds it from a checkpoint (resolved
through :mod:`napari_vsr.models.weights` when none is given).
"""

from napari_vsr.models import weights
from napari_vsr.models.basicvsr import BasicVSRNet
from napari_vsr.models.checkpoint import (
    check_architecture,
    check_values,
    generator_state_dict,
    read_checkpoint,
)
from napari_vsr.models.loader import load_realbasicvsr, parse_dtype
from napari_vsr.models.realbasicvsr import RealBasicVSRNet
from napari_vsr.models.spynet import SPyNet

__all__ = [
    "BasicVSRNet",
    "RealBasicVSRNet",
    "SPyNet",
    "check_architecture",
    "check_values",
    "generator_state_dict",
    "load_realbasicvsr",
    "parse_dtype",
    "read_checkpoint",
    "weights",
]
