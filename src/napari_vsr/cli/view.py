"""``napari-vsr view [PATH] [--sample]``: open napari with a video and the widgets docked.

The one-line way to start working: ``napari-vsr view`` opens the shipped sample clip,
``napari-vsr view clip.mp4`` opens a video (or frame folder, or TIFF stack) through the
napari-vsr reader; the Enhance, Compare and Job queue widgets are docked on the right, as tabs of
one dock so that the window fits a 1600x1000 screen.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from napari_vsr.errors import SourceNotFoundError, VsrError

if TYPE_CHECKING:
    import napari

PLUGIN = "napari-vsr"
SAMPLE_KEY = "demo_clip"
WIDGETS = ("Enhance video", "Compare layers", "Job queue")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "view",
        help="open napari with a video (default: the sample clip) and the widgets docked",
        description="Open napari with PATH (a video, frame folder or TIFF stack) or the shipped "
        "sample clip, and dock the Enhance, Compare and Job queue widgets.  Needs a display "
        "(or xvfb-run).",
    )
    p.add_argument("path", nargs="?", help="video, frame folder or TIFF stack to open")
    p.add_argument("--sample", action="store_true",
                   help="also open the sample clip (the default when no PATH is given)")
    p.set_defaults(func=_run)


def _check_display() -> None:
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        or os.environ.get("QT_QPA_PLATFORM")
    ):
        raise VsrError(
            "no display found (DISPLAY is not set); run it on a desktop, or headless with "
            "`xvfb-run -a napari-vsr view ...`"
        )


def open_viewer(
    path: str | os.PathLike | None = None, *, sample: bool = False, show: bool = True
) -> napari.Viewer:
    """Create a napari viewer with ``path`` and/or the sample clip and the widgets docked.

    Parameters
    ----------
    path : path-like, optional
        Opened with the napari-vsr reader.
    sample : bool
        Open the sample clip (also done when ``path`` is None).
    show : bool
        Show the window (False for tests).

    Returns
    -------
    napari.Viewer
    """
    if path is not None and not os.path.exists(path):
        raise SourceNotFoundError("no such file or folder", path=path)
    import napari

    viewer = napari.Viewer(title="napari-vsr", show=show)
    if sample or path is None:
        viewer.open_sample(PLUGIN, SAMPLE_KEY)
    if path is not None:
        viewer.open(os.fspath(path), plugin=PLUGIN)
    dock_widgets(viewer)
    return viewer


def dock_widgets(viewer: napari.Viewer) -> None:
    """Dock the napari-vsr widgets on the right as tabs of one dock, the first in front (side
    by side they would need more height than a 1080p screen has)."""
    docks = [viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=i > 0)[0]
             for i, name in enumerate(WIDGETS)]
    docks[0].show()
    docks[0].raise_()


def _run(args: argparse.Namespace) -> int:
    _check_display()
    import napari

    open_viewer(args.path, sample=args.sample)
    napari.run()
    return 0
