"""Reading checkpoint files into a plain generator state dict.

Accepted layouts (recognised by their keys, in this order):

- mmedit: ``{"meta": ..., "state_dict": {"generator_ema.<k>", "generator.<k>",
  "discriminator.<k>", "step_counter"}}`` -- ``generator_ema.`` is used when present, else
  ``generator.``; everything else is ignored;
- BasicSR: ``{"params_ema": {...}}`` or ``{"params": {...}}`` (``params_ema`` preferred);
- a plain generator state dict, possibly under ``state_dict``;
- any of these with ``module.`` prefixes (DataParallel);
- ``.safetensors`` files holding any of the flat layouts.

Pickled files are always read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from napari_vsr.errors import (
    ArchitectureMismatchError,
    CorruptWeightsError,
    WeightsError,
    WeightsNotFoundError,
)

__all__ = ["check_architecture", "generator_state_dict", "read_checkpoint"]

#: how many keys of each kind an ArchitectureMismatchError lists
SHOWN_KEYS = 5


def read_checkpoint(path: str | os.PathLike) -> Mapping:
    """Load a checkpoint file as a mapping, without executing code.

    Parameters
    ----------
    path : path-like
        A ``.pth``/``.pt``/``.ckpt`` file written by ``torch.save`` or a ``.safetensors``
        file.

    Returns
    -------
    Mapping
        The top-level object of the file (tensors on the CPU).

    Raises
    ------
    WeightsNotFoundError
        No file at ``path``.
    CorruptWeightsError
        The file is empty, truncated or not a checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsNotFoundError("no checkpoint file here", path=p)
    if p.stat().st_size == 0:
        raise CorruptWeightsError(
            "the file is empty (an interrupted download?); delete it and fetch it again",
            path=p,
        )
    if p.suffix.lower() == ".safetensors":
        return _read_safetensors(p)
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError,
        EOFError,
        RuntimeError,
        ValueError,
        OSError,
        zipfile.BadZipFile,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
        TypeError,
        UnicodeDecodeError,
    ) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptWeightsError(
            f"not a readable PyTorch checkpoint, or truncated ({type(exc).__name__}: "
            f"{first[:200]}); download it again or check that it is a RealBasicVSR .pth file",
            path=p,
        ) from exc
    if not isinstance(obj, Mapping):
        raise CorruptWeightsError(
            f"holds a {type(obj).__name__}, not a state dict; expected a RealBasicVSR "
            "checkpoint (a dict of tensors)",
            path=p,
        )
    return obj


def _numpy_globals() -> list:
    """NumPy scalars and arrays that training loops leave in checkpoint metadata (seeds, best
    scores).  Allowing them keeps the restricted ``weights_only`` unpickler: they rebuild
    plain data and run no code."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    allowed: list = [np.dtype, np.ndarray]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed += [
            (multiarray.scalar, f"{mod}.scalar"),
            (multiarray._reconstruct, f"{mod}._reconstruct"),
        ]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [
            getattr(dtypes, n)
            for n in (
                "Float64DType",
                "Float32DType",
                "Float16DType",
                "Int64DType",
                "Int32DType",
                "Int16DType",
                "Int8DType",
                "UInt8DType",
                "BoolDType",
            )
            if hasattr(dtypes, n)
        ]
    return allowed


def _read_safetensors(p: Path) -> Mapping:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError as exc:
        raise WeightsError(
            "reading .safetensors needs the 'safetensors' package: "
            "pip install 'napari-vsr[safetensors]'",
            path=p,
        ) from exc
    try:
        return load_file(p, device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CorruptWeightsError(
            f"not a readable safetensors file, or truncated ({exc}); download or convert it again",
            path=p,
        ) from exc


def _tensors(d: Mapping) -> dict[str, torch.Tensor]:
    return {k: v for k, v in d.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}


def _strip(d: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in d.items() if k.startswith(prefix)}


def _strip_module(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    while d and all(k.startswith("module.") for k in d):
        d = _strip(d, "module.")
    return d


def generator_state_dict(
    obj: Mapping, *, path: str | os.PathLike | None = None
) -> dict[str, torch.Tensor]:
    """Extract the generator's parameters from any accepted checkpoint layout.

    Parameters
    ----------
    obj : Mapping
        What :func:`read_checkpoint` returned.
    path : path-like, optional
        Named in error messages.

    Returns
    -------
    dict of str to Tensor
        Keys as in :class:`~napari_vsr.models.RealBasicVSRNet` (``image_cleaning.*``,
        ``basicvsr.*``), not yet checked against the network.

    Raises
    ------
    CorruptWeightsError
        No tensors found.
    """
    for wrapper in ("params_ema", "params", "state_dict"):
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping) and inner:
            obj = inner
            break
    flat = _strip_module(_tensors(obj))
    for prefix in ("generator_ema.", "generator."):
        picked = _strip_module(_strip(flat, prefix))
        if picked:
            return picked
    if not flat:
        keys = ", ".join(map(str, list(obj)[:SHOWN_KEYS])) or "nothing"
        raise CorruptWeightsError(
            f"holds no tensors (top-level keys: {keys}); expected a RealBasicVSR checkpoint",
            path=path,
        )
    return flat


def _listing(label: str, items: list[str]) -> str:
    more = f" (+{len(items) - SHOWN_KEYS} more)" if len(items) > SHOWN_KEYS else ""
    return f"{len(items)} {label}: {', '.join(items[:SHOWN_KEYS])}{more}"


def check_architecture(
    net: nn.Module, state: Mapping[str, torch.Tensor], *, path: str | os.PathLike | None = None
) -> None:
    """Raise :class:`ArchitectureMismatchError` unless ``state`` fits ``net`` key for key.

    The message lists the first few missing, unexpected and mis-shaped keys.
    """
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or misshaped):
        return
    parts = []
    if missing:
        parts.append(_listing("missing keys", missing))
    if unexpected:
        parts.append(_listing("unexpected keys", unexpected))
    if misshaped:
        parts.append(_listing("shape mismatches", misshaped))
    raise ArchitectureMismatchError(
        f"this checkpoint is not a {type(net).__name__}({net.extra_repr()}): "
        + "; ".join(parts)
        + ". Use the released RealBasicVSR x4 checkpoint (`napari-vsr weights fetch`).",
        path=path,
    )
