"""Overlapped pipeline stages: a producer or a consumer in its own thread, linked to the caller
by a bounded queue.

A video job has stages of very different kinds (decoding, the network, device copies, encoding
the x4 output) that each leave the others idle when run one after another.  Running each in its
own thread, with a queue of a few items between neighbours, makes a run as fast as its slowest
stage while memory stays bounded by the queue depths (never by the video's length).

Two shapes, both with the same guarantees (the exception of a stage is re-raised in the caller
with its own traceback; closing early stops the stage at its next check and joins its thread;
nothing is left running):

* :func:`produce` runs a generator in a thread and yields its items: decoding ahead, or running
  the network ahead of whoever writes its frames.
* :class:`Consumer` takes items with :meth:`Consumer.put` and hands each to a function in a
  thread: encoding a video while the next frames are computed.

The work of a stage is the same code as in a serial run (only the thread differs), so an
overlapped run gives exactly the output of a serial one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from napari_vsr.jobs.progress import CancelToken

T = TypeVar("T")

#: how often a blocked stage looks at its stop flag, in seconds
_POLL_S = 0.05
_END = object()


class _Failure:
    """A stage's exception, carried through the queue to the caller."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def produce(
    make: Callable[[CancelToken], Iterator[T]],
    *,
    depth: int,
    name: str,
    cancel: CancelToken | None = None,
) -> Iterator[T]:
    """Run ``make(stop)`` in a thread and yield its items, at most ``depth`` items ahead.

    Parameters
    ----------
    make : callable
        Called once in the stage's thread with a :class:`CancelToken` that is set when the
        caller stops early (closes this generator or fails) or when ``cancel`` is set; the
        iterator it returns should check that token where it can block for long (e.g. between
        network time steps) and raise :class:`~napari_vsr.errors.Cancelled`.
    depth : int
        Items the stage may run ahead of the caller (>= 1).
    name : str
        Thread name (shows in stack dumps and profilers).
    cancel : CancelToken, optional
        The job's token, passed on to the stage.

    Yields
    ------
    The items of ``make(stop)``, in order.  Its exception is re-raised here.
    """
    if depth < 1:
        raise ValueError(f"depth: expected >= 1, got {depth}")
    stop = CancelToken(parent=cancel)
    closing = threading.Event()  # the caller has stopped taking items
    items: queue.Queue = queue.Queue(maxsize=depth)

    def offer(item) -> bool:
        while not closing.is_set():
            try:
                items.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def body() -> None:
        try:
            for item in make(stop):
                if not offer(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            offer(_Failure(exc))
            return
        offer(_END)

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                break
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        closing.set()
        stop.cancel()
        _drain(items)
        thread.join()
        _drain(items)


def _drain(items: queue.Queue) -> None:
    while True:
        try:
            items.get_nowait()
        except queue.Empty:
            return


class Consumer(Generic[T]):
    """Hands items to ``handle`` in a thread, at most ``depth`` items behind the caller.

    Parameters
    ----------
    handle : callable
        Called with each item, in order, in the stage's thread (e.g. a writer's ``write``).
    depth : int
        Items the caller may run ahead of the stage (>= 1): :meth:`put` blocks beyond that.
    name : str
        Thread name.

    Notes
    -----
    An exception of ``handle`` stops the stage; the next :meth:`put` or :meth:`close`
    re-raises it in the caller.  :meth:`close` waits for every item to be handled;
    :meth:`abort` drops what is queued and waits only for the item in hand.  Used as a
    context manager, a clean exit closes and an exception aborts.
    """

    def __init__(self, handle: Callable[[T], object], *, depth: int, name: str):
        if depth < 1:
            raise ValueError(f"depth: expected >= 1, got {depth}")
        self._handle = handle
        self._items: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._body, name=name, daemon=True)
        self._thread.start()

    def _body(self) -> None:
        while True:
            item = self._items.get()
            if item is _END or self._stop.is_set():
                return
            try:
                self._handle(item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                self._error = exc
                self._stop.set()
                _drain(self._items)
                return

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, item: T) -> None:
        """Queue ``item`` (blocks while the stage is ``depth`` items behind)."""
        if self._closed:
            raise RuntimeError("put() on a closed stage")
        while True:
            self._raise()
            if self._stop.is_set():
                raise RuntimeError("the stage has stopped")
            try:
                self._items.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait until every queued item is handled; re-raise the stage's exception."""
        if self._closed:
            self._raise()
            return
        self._closed = True
        while self._thread.is_alive():
            try:
                self._items.put(_END, timeout=_POLL_S)
                break
            except queue.Full:
                continue
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Drop the queued items and stop after the item in hand (errors are dropped too)."""
        self._closed = True
        self._stop.set()
        _drain(self._items)
        try:
            self._items.put_nowait(_END)
        except queue.Full:  # pragma: no cover - just drained
            pass
        self._thread.join()
        self._error = None

    def __enter__(self) -> Consumer[T]:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
