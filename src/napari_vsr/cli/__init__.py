"""The ``napari-vsr`` command line: a thin layer over the Qt-free core.

Each sub-command lives in its own module with a ``register(subparsers)`` function that adds
its parser and sets ``func`` (called with the parsed namespace; returns an exit code).

Exit codes: 0 ok, 1 failure (one line on stderr naming the cause), 2 usage error,
130 interrupted (Ctrl-C; no partial output is left behind).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from napari_vsr.errors import ParameterError, VsrError

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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except ParameterError as exc:
        print(f"napari-vsr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except VsrError as exc:
        print(f"napari-vsr {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"napari-vsr {args.command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
