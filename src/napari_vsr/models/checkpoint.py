"""Reading checkpoint files into a plain generator state dict.

Accepted layouts (recognised by their keys, in this order):

- mmedit: ``{"meta": ..., "state_dict": {"generator_ema.<k>", "generator.<k>",
  "discriminator.<k>", "step_counter"}}`` -- ``generator_ema.`` is used when present, else
  ``generator.``; everything else is ignored;
- BasicSR: ``{"params_ema": {...}}`` or ``{"params": {...}}`` (``params_ema`` preferred);
- a plain generator state dict, possibly under ``state_dict``;
- any of these with ``module.`` prefixes (DataParallel);
- ``.safetensors`` files holding any of the flat layouts.

Pickled files are always read with ``torch.load(..., weights_only=True)``, and a zip-format
``.pth`` is opened with :mod:`zipfile` first: a compressed member (``torch.save`` never
compresses) is refused before anything is decompressed, so a zip bomb costs nothing.  Errors of
``torch.load`` are translated in one place (:func:`_translate_load_error`) and never pass on
PyTorch's own advice (such as loading with ``weights_only=False``).  :func:`check_values`
refuses non-float tensors and NaN/Inf values, which would otherwise make a black video.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
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
    hint,
)

__all__ = ["check_architecture", "check_values", "generator_state_dict", "read_checkpoint"]

log = logging.getLogger(__name__)

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
        The file is empty, truncated, compressed inside, holds Python objects other than
        tensors and plain data, or is not a checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsNotFoundError("no checkpoint file here", path=p)
    size = p.stat().st_size
    if size == 0:
        raise CorruptWeightsError(
            "the file is empty (an interrupted download?); delete it and fetch it again",
            path=p,
        )
    if p.suffix.lower() == ".safetensors":
        return _read_safetensors(p)
    _check_zip_members(p, size)
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
        MemoryError,
    ) as exc:
        raise _translate_load_error(exc, p) from None
    if not isinstance(obj, Mapping):
        raise CorruptWeightsError(
            f"holds a {type(obj).__name__}, not a state dict; expected a RealBasicVSR "
            "checkpoint (a dict of tensors)",
            path=p,
        )
    return obj


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _translate_load_error(exc: BaseException, path: Path) -> CorruptWeightsError:
    """The one place where ``torch.load`` errors become project errors.

    PyTorch's text is logged (debug) but not shown: it suggests ``weights_only=False`` and
    similar steps that would run code from the file.
    """
    text = str(exc)
    log.debug("torch.load(%s) failed: %s: %s", path, type(exc).__name__, text)
    if isinstance(exc, pickle.UnpicklingError) and "weights only" in text.lower():
        found = _GLOBAL.search(text)
        what = f" ({found[1]})" if found else ""
        return CorruptWeightsError(
            f"holds Python objects{what} besides tensors and plain data; napari-vsr never "
            "runs code from a checkpoint, so it cannot use this file: use the released "
            "RealBasicVSR checkpoint (`napari-vsr weights fetch`) or one saved as a plain "
            "dict of tensors",
            path=path,
        )
    if isinstance(exc, MemoryError):
        return CorruptWeightsError(
            "declares more data than fits in memory; it is not a RealBasicVSR checkpoint",
            path=path,
        )
    truncated = isinstance(exc, EOFError | zipfile.BadZipFile) or any(
        s in text for s in ("central directory", "zip archive", "EOF", "truncated")
    )
    if truncated:
        cause = "truncated or damaged"
    elif not zipfile.is_zipfile(path):
        cause = "neither the zip format of torch.save nor its legacy pickle format"
    else:
        cause = f"its contents cannot be read ({type(exc).__name__})"
    return CorruptWeightsError(
        f"not a readable PyTorch checkpoint: {cause}; download it again or check that it is "
        "a RealBasicVSR .pth file",
        path=path,
    )


def _check_zip_members(path: Path, size: int) -> None:
    """Refuse a zip-format checkpoint with compressed or oversized members, before reading.

    ``torch.save`` stores every member uncompressed; a compressed one can only come from
    another tool, and decompressing it is how a small file asks for gigabytes.
    """
    try:
        if not zipfile.is_zipfile(path):
            return  # the legacy (pre-1.6) pickle format, or not a checkpoint: torch.load says
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        raise CorruptWeightsError(
            "not a readable PyTorch checkpoint: its zip directory is damaged; download it again",
            path=path,
        ) from None
    for info in members:
        if info.compress_type != zipfile.ZIP_STORED:
            method = {zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2"}.get(
                info.compress_type, f"method {info.compress_type}"
            )
            raise CorruptWeightsError(
                f"member {info.filename!r} is compressed ({method}); torch.save never "
                "compresses, so this file was made by another tool and is refused unread. "
                "Use the released checkpoint (`napari-vsr weights fetch`)",
                path=path,
            )
        if info.file_size > size or info.file_size != info.compress_size:
            raise CorruptWeightsError(
                f"member {info.filename!r} declares {info.file_size:,} bytes in a file of "
                f"{size:,} bytes; the file is damaged or crafted and is refused unread",
                path=path,
            )


def check_values(
    state: Mapping[str, torch.Tensor], *, path: str | os.PathLike | None = None
) -> None:
    """Refuse tensors that are not floating point or that hold NaN or infinite values.

    Parameters
    ----------
    state : mapping of str to Tensor
        A generator state dict (any device; checked where it lies).
    path : path-like, optional
        Named in the message.

    Raises
    ------
    CorruptWeightsError
        Naming the first few offending tensors.
    """
    not_float = [
        f"{k} ({str(v.dtype).removeprefix('torch.')})"
        for k, v in state.items()
        if not v.dtype.is_floating_point
    ]
    if not_float:
        raise CorruptWeightsError(
            f"{_listing('tensors that are not floating point', not_float)}; a RealBasicVSR "
            "checkpoint holds float32/float16/bfloat16 weights",
            path=path,
        )
    bad = []
    for k, v in state.items():
        finite = torch.isfinite(v)
        if not bool(finite.all()):
            bad.append(f"{k} ({int(finite.numel() - finite.sum())} of {v.numel()})")
    if bad:
        raise CorruptWeightsError(
            f"{_listing('tensors with NaN or infinite values', bad)}; the weights are damaged "
            "(a diverged training run?) and would give black frames",
            path=path,
        )


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
    return hint(f"{len(items)} {label}: {', '.join(items[:SHOWN_KEYS])}{more}",
                f"{len(items)} {label}")


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
        + ". Use the released RealBasicVSR x4 checkpoint ("
        + hint("`napari-vsr weights fetch`", "Weights: download now") + ").",
        path=path,
    )
