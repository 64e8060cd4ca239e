"""``napari-vsr weights path|fetch|verify|import``: manage the RealBasicVSR checkpoint."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from napari_vsr.models import weights as wm


class _ByteProgress:
    """A one-line download progress display on stderr (redrawn at most 10 times a second)."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and done != total:
            return
        self.last = now
        mb = done / 1e6
        if total:
            text = f"\rdownloading {mb:7.1f} / {total / 1e6:.1f} MB ({100 * done / total:3.0f}%)"
        else:
            text = f"\rdownloading {mb:7.1f} MB"
        self.stream.write(text)
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _path(args: argparse.Namespace) -> int:
    print(wm.resolve_weights(name=args.name, download=False))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    bar = None if args.quiet or not sys.stderr.isatty() else _ByteProgress()
    try:
        path = wm.fetch(args.name, progress=bar)
    finally:
        if bar is not None:
            bar.finish()
    print(path)
    return 0


def _verify(args: argparse.Namespace) -> int:
    if args.file is not None:
        target = args.file
    else:
        target = wm.cache_dir() / wm.get_entry(args.name).filename
    digest = wm.verify(target, args.name)
    print(f"{target}: OK ({args.name}, sha256 {digest})")
    return 0


def _import(args: argparse.Namespace) -> int:
    print(wm.import_weights(args.file, args.name))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``weights`` sub-command and its actions."""
    parser = subparsers.add_parser(
        "weights",
        help="locate, download, verify or import the RealBasicVSR checkpoint",
        description=(
            "Manage the RealBasicVSR checkpoint.  It is looked up in this order: an explicit "
            f"--weights path, ${wm.ENV_WEIGHTS}, the cache (${wm.ENV_CACHE_DIR} or the user "
            "cache folder), then a download."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str):
        p = actions.add_parser(name, help=help_, description=help_)
        p.add_argument(
            "--name",
            default=wm.DEFAULT_MODEL,
            choices=sorted(wm.REGISTRY),
            help=f"registry entry (default {wm.DEFAULT_MODEL})",
        )
        p.set_defaults(func=func)
        return p

    add("path", _path, "print the checkpoint that would be used (never downloads)")
    fetch = add("fetch", _fetch, "download the checkpoint into the cache if it is not there")
    fetch.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    verify = add("verify", _verify, "check a file (default: the cached one) against the registry")
    verify.add_argument("file", nargs="?", default=None, help="checkpoint file to check")
    imp = add("import", _import, "copy a checkpoint obtained elsewhere into the cache, verified")
    imp.add_argument("file", help="the downloaded checkpoint file")
