"""The ``napari-vsr`` command line: a thin layer over the Qt-free core.

Each sub-command lives in its own module with a ``register(subparsers)`` function that adds
its parser and sets ``func`` (called with the parsed namespace; returns an exit code).

Exit codes: 0 ok, 1 failure (one line on stderr naming the cause), 2 usage error,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM: ``timeout``, Slurm, docker stop), 129 hung
up (SIGHUP: the terminal closed).  Interrupted or terminated, no partial output is left behind:
SIGTERM and SIGHUP raise :class:`Terminated`, a ``KeyboardInterrupt``, so every ``with writer:``
block aborts exactly as on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator

from napari_vsr.errors import NOTE_FLAG, ParameterError, VsrError

log = logging.getLogger(__name__)

#: modules under napari_vsr.cli that contribute sub-commands, in help order
SUBCOMMAND_MODULES = ("info", "enhance", "split_merge", "weights", "recipes", "view")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-vsr",
        description="Video and frame-stack enhancement (classic filters, RealBasicVSR x4).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"napari_vsr.cli.{name}")
        except ModuleNotFoundError as exc:  # a sub-command not built yet
            if exc.name == f"napari_vsr.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived; raised like Ctrl-C's KeyboardInterrupt so clean-up runs.

    Attributes
    ----------
    signum : int
        The signal number (exit code ``128 + signum``).
    """

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(f"terminated by {signal.Signals(self.signum).name}")


#: sub-commands that run a Qt event loop (see :func:`main`)
GUI_COMMANDS = frozenset({"view"})
#: signals that end a run cleanly, like Ctrl-C
CLEAN_EXIT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread.

    The first such signal raises; later ones are ignored while its clean-up runs (a second
    signal must not cut the removal of a partial output short).  The previous handlers are
    restored on exit.  Outside the main thread this does nothing (Python allows handlers only
    there).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise Terminated(signum)

    try:
        for sig in CLEAN_EXIT_SIGNALS:
            previous[sig] = signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    before = list(logging.getLogger().handlers)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:  # notes come back as the job's own warnings
        if handler not in before:  # only our own handler (never an embedding program's)
            handler.addFilter(lambda record: not getattr(record, NOTE_FLAG, False))
    # the viewer keeps the default handling: Python signal handlers wait for the interpreter,
    # which Qt's event loop seldom gives back, so SIGTERM would no longer end it promptly
    guard = signals_as_interrupts if args.command not in GUI_COMMANDS else contextlib.nullcontext
    try:
        with guard():
            return int(args.func(args) or 0)
    except ParameterError as exc:
        print(f"napari-vsr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except VsrError as exc:
        print(f"napari-vsr {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:  # host memory ran out outside the engine's own handling
        detail = f" ({exc})" if str(exc) else ""
        print(
            f"napari-vsr {args.command}: error: out of memory{detail}; use a smaller --chunk or "
            "--tile, or a shorter --frames range",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:  # an operating-system failure no module translated: still one line
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        cause = exc.strerror or str(exc) or type(exc).__name__
        print(f"napari-vsr {args.command}: error: {where}{cause}", file=sys.stderr)
        log.debug("untranslated OSError", exc_info=True)
        return 1
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        what = "interrupted" if signum == signal.SIGINT else f"{exc}"
        print(f"napari-vsr {args.command}: {what}; no partial output was kept", file=sys.stderr)
        return 128 + int(signum)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
