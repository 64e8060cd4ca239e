"""Host <-> CUDA copies of frame batches through page-locked (pinned) host memory.

Pageable host memory is copied to and from a GPU by the driver through a staging buffer of
its own, synchronously and at a fraction of the bus bandwidth.  :class:`CudaTransfer` keeps a
pinned input buffer (grown to the largest batch seen, reused across calls) and copies it to
the device asynchronously on a side stream, which the compute stream waits for with an event;
outputs come back into pinned buffers as well.

Used by :class:`~napari_vsr.enhancers.realbasicvsr.RealBasicVSREnhancer` on CUDA devices only;
the CPU path never comes here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["CudaTransfer"]

#: numpy dtypes the buffers carry, and the torch dtype of the same bytes on the device (uint16
#: travels as int16 bits: torch < 2.3 has no uint16)
_WIRE = {
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.uint16): torch.int16,
    np.dtype(np.float32): torch.float32,
}


class CudaTransfer:
    """Pinned staging buffers and a copy stream for one CUDA device.

    Parameters
    ----------
    device : torch.device
        A CUDA device.

    Notes
    -----
    Input: :meth:`upload` stacks the arrays of a batch into one pinned buffer (the only host
    copy), then copies it to the device with ``non_blocking=True`` on :attr:`stream`; the
    caller's current stream waits for that copy (an event), so work queued after ``upload``
    sees the data.  The buffer is rewritten by the next call only after the copy that read it
    has finished (the event is waited for first).

    Output: :meth:`download` copies a device tensor into a *fresh* pinned tensor from
    PyTorch's pinned-memory cache and waits for the copy; the arrays handed out are views of
    it.  A pinned block goes back to the cache (and is reused by a later call) only when the
    last array or view referring to it is gone, so no result is ever overwritten while its
    consumer still holds it; the cost is that results kept alive keep their page-locked
    memory (copy them, ``np.array(x)``, to keep many).  Not thread-safe: one caller at a
    time (the engine's inference thread).
    """

    def __init__(self, device: torch.device):
        device = torch.device(device)
        if device.type != "cuda":
            raise ValueError(f"CudaTransfer: expected a CUDA device, got {device}")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = device
        #: the stream host-to-device copies run on
        self.stream = torch.cuda.Stream(device)
        self._buffer: torch.Tensor | None = None  # pinned bytes, grown on demand
        self._read: torch.cuda.Event | None = None  # recorded after the copy that read it

    @property
    def buffer_bytes(self) -> int:
        """Size of the pinned input buffer (0 before the first upload)."""
        return 0 if self._buffer is None else self._buffer.numel()

    def upload(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        """Stack equal-shaped arrays on the device.

        Parameters
        ----------
        arrays : sequence of ndarray, each of shape S
            uint8, uint16 or float32; same shape and dtype.  Not modified.

        Returns
        -------
        Tensor, (len(arrays), *S)
            On the device: uint8, float32, or for uint16 input int16 holding the same bits
            (``x.to(torch.int32) & 0xFFFF`` restores the values).  Ready for the caller's
            current stream.
        """
        first = arrays[0]
        dtype = np.dtype(first.dtype)
        if dtype not in _WIRE:
            raise TypeError(f"CudaTransfer.upload: unsupported dtype {dtype}")
        shape = (len(arrays), *first.shape)
        nbytes = len(arrays) * first.nbytes
        if self._read is not None:
            self._read.synchronize()  # the previous copy has finished reading the buffer
        if self._buffer is None or self._buffer.numel() < nbytes:
            self._buffer = None  # give the old block back before taking a larger one
            self._buffer = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        staged = self._buffer[:nbytes]
        host = staged.numpy().view(dtype).reshape(shape)
        for k, a in enumerate(arrays):
            np.copyto(host[k], a, casting="no")
        current = torch.cuda.current_stream(self.device)
        # allocated on the current stream (its memory may still be in use by work queued there,
        # hence the wait), filled on the copy stream, then handed back to the current stream
        dev = torch.empty(nbytes, dtype=torch.uint8, device=self.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            dev.copy_(staged, non_blocking=True)
            self._read = self.stream.record_event()
        current.wait_event(self._read)
        return dev.view(_WIRE[dtype]).view(shape)

    def download(self, x: torch.Tensor) -> torch.Tensor:
        """Copy a device tensor into fresh pinned host memory and wait for it.

        Parameters
        ----------
        x : Tensor
            On the device; made contiguous first if it is not.

        Returns
        -------
        Tensor
            Same shape and dtype on the host, contiguous, page-locked; valid as long as it
            (or a numpy view of it) is referenced.
        """
        x = x.contiguous()
        host = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
        host.copy_(x, non_blocking=True)  # on the current stream, after the work that made x
        torch.cuda.current_stream(self.device).synchronize()
        return host

    def close(self) -> None:
        """Drop the pinned input buffer (back to PyTorch's pinned-memory cache)."""
        if self._read is not None:
            self._read.synchronize()
        self._buffer = None
        self._read = None
