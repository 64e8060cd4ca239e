"""Device and precision choice for the networks (the one precision parser of the project).

``"auto"`` means CUDA, then Apple MPS, then CPU for the device, and float16 on CUDA (tensor
cores), float32 elsewhere for the precision.  Explicit choices that the machine cannot honour
raise :class:`~napari_vsr.errors.DeviceError` naming what was asked and what exists.
"""

from __future__ import annotations

import logging

import torch

from napari_vsr.errors import DeviceError, ParameterError, hint

log = logging.getLogger(__name__)

#: accepted ``precision`` names and the dtype each one means
PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}
#: the short names, one per dtype, in the order the CLI offers them
PRECISION_NAMES = ("fp32", "fp16", "bf16")


def parse_precision(precision: str | torch.dtype) -> torch.dtype:
    """The one precision parser: a name or a float dtype -> float32, float16 or bfloat16.

    Parameters
    ----------
    precision : str or torch.dtype
        ``fp32``, ``fp16``, ``bf16`` (``float32``, ``float16``/``half``, ``bfloat16`` also
        accepted, any case), or one of the three dtypes.  ``"auto"`` is resolved by
        :func:`choose_dtype`, not here.

    Raises
    ------
    ParameterError
        Anything else.
    """
    if isinstance(precision, torch.dtype):
        if precision not in PRECISIONS.values():
            raise ParameterError(
                f"precision: expected float32, float16 or bfloat16, got {precision}"
            )
        return precision
    key = str(precision).strip().lower()
    if key not in PRECISIONS:
        raise ParameterError(
            f"precision: expected one of {', '.join(PRECISION_NAMES)}, got {precision!r}"
        )
    return PRECISIONS[key]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def choose_device(name: str | torch.device | None = "auto") -> torch.device:
    """Resolve a device name.

    Parameters
    ----------
    name : str or torch.device, optional
        ``"auto"`` (or None): CUDA if available, then MPS, then CPU.  Otherwise anything
        :class:`torch.device` accepts (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).

    Returns
    -------
    torch.device

    Raises
    ------
    ParameterError
        The name is not a device name.
    DeviceError
        The device exists as a name but not on this machine.
    """
    if name is None or (isinstance(name, str) and name.strip().lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name.strip().lower() if isinstance(name, str) else name)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(
            f"device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}"
        ) from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                "device 'cuda' was asked for but PyTorch sees no CUDA GPU "
                f"(torch {torch.__version__}); "
                + hint("use --device cpu or auto", "choose Device: auto or cpu")
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {device} was asked for but only {count} CUDA GPU(s) exist")
    elif device.type == "mps" and not _mps_available():
        raise DeviceError("device 'mps' was asked for but MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ParameterError(
            f"device: unsupported device type {device.type!r}; use cpu, cuda or mps"
        )
    return device


def choose_dtype(
    precision: str | torch.dtype | None = "auto", device: torch.device | str = "cpu"
) -> torch.dtype:
    """Resolve a precision name for a device.

    Parameters
    ----------
    precision : str or torch.dtype, optional
        ``"auto"`` (or None): float16 on CUDA, float32 elsewhere.  Or one of ``fp32``, ``fp16``,
        ``bf16`` (``float32``, ``float16``/``half``, ``bfloat16`` also accepted).
    device : torch.device or str
        The device the network runs on.

    Returns
    -------
    torch.dtype
        float32, float16 or bfloat16.

    Raises
    ------
    ParameterError
        Unknown precision name.
    DeviceError
        bfloat16 asked for on a CUDA GPU that does not support it.
    """
    device = torch.device(device)
    if precision is None or (isinstance(precision, str) and precision.strip().lower() == "auto"):
        return torch.float16 if device.type == "cuda" else torch.float32
    dtype = parse_precision(precision)
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(
            f"bf16 is not supported by the GPU {device}; use --precision fp16 or fp32"
        )
    if dtype == torch.float16 and device.type == "cpu":
        log.warning(
            "float16 on CPU is slow and only partly supported; fp32 or bf16 is better there"
        )
    return dtype


def precision_name(dtype: torch.dtype) -> str:
    """Short name (``fp32``, ``fp16``, ``bf16``) of a float dtype, for metadata and logs."""
    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}.get(
        dtype, str(dtype)
    )


def free_memory_bytes(device: torch.device | str) -> int | None:
    """Free memory on a CUDA device in bytes (driver view plus PyTorch's cached blocks).

    Returns None for devices where it is unknown or not the limiting factor (CPU, MPS).
    """
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info(device)
    reserved = torch.cuda.memory_reserved(device)
    allocated = torch.cuda.memory_allocated(device)
    return int(free + max(0, reserved - allocated))


def release_memory(device: torch.device | str) -> None:
    """Give cached device memory back (after a cancel, an out-of-memory error or the end of a run)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device.type == "mps" and _mps_available():
        torch.mps.empty_cache()


#: words of the out-of-memory messages of CUDA/MPS ("out of memory"), PyTorch's CPU allocator
#: ("DefaultCPUAllocator: can't allocate memory"), numpy ("Unable to allocate 3.1 GiB for an
#: array") and OpenCV ("Insufficient memory")
_OOM_WORDS = (
    "out of memory",
    "can't allocate memory",
    "cannot allocate memory",
    "unable to allocate",
    "insufficient memory",
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is an out-of-memory error, on a device or in host memory.

    True for ``torch.cuda.OutOfMemoryError``, any ``MemoryError`` (numpy's "Unable to
    allocate" is one), and a ``RuntimeError`` (PyTorch: CUDA, MPS, the CPU allocator) or an
    OpenCV error whose message says memory ran out.
    """
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    opencv = type(exc).__module__.split(".")[0] == "cv2"
    if not (isinstance(exc, RuntimeError) or opencv):
        return False
    text = str(exc).lower()
    return any(words in text for words in _OOM_WORDS)


def memory_kind(exc: BaseException) -> str:
    """What ran out, for a message about an out-of-memory ``exc``: "device memory" or "memory".

    "device memory" for CUDA and MPS errors, "memory" for host (CPU) allocations.
    """
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "device memory"
    text = str(exc).lower()
    return "device memory" if ("cuda" in text or "mps" in text) else "memory"
