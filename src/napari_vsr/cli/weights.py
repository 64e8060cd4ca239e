"""``napari-vsr weights path|fetch|verify|import``: manage the RealBasicVSR checkpoint."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from napari_vsr.cli.progress import ProgressBar
from napari_vsr.models import weights as wm


def _path(args: argparse.Namespace) -> int:
    print(wm.resolve_weights(name=args.name, download=False))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    bar = None if args.quiet or not sys.stderr.isatty() else ProgressBar("fetch")
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
