"""``napari-vsr split VIDEO DIR`` and ``napari-vsr merge DIR VIDEO --fps F``: thin commands over
the same readers and writers (the jobs of the original seed scripts, without their limits)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from napari_vsr.cli.enhance import add_color_options, add_encode_preset_option, video_options
from napari_vsr.cli.progress import ProgressBar
from napari_vsr.errors import OutputExistsError
from napari_vsr.jobs.progress import RateClock


def _check_output(out: Path, source: str, *, overwrite: bool, folder: bool) -> None:
    """Before any work: the output exists only with --overwrite, is never the source (nor holds
    it), and replaces only a file or a folder napari-vsr wrote."""
    from napari_vsr.io.writer_base import check_not_input, check_target

    if (out.exists() or out.is_symlink()) and not overwrite:
        raise OutputExistsError("already exists; add --overwrite to replace it", path=out)
    check_not_input(out, source)
    check_target(out, overwrite=overwrite, folder=folder)


def _copy(source, writer, bar: ProgressBar | None, *, batch: int = 16) -> int:
    n = int(source.shape[0])
    clock = RateClock(n)
    for lo in range(0, n, batch):
        for frame in source[lo : min(n, lo + batch)]:
            writer.write(frame)
        if bar is not None:
            bar(clock.progress(min(n, lo + batch)))
    return n


def run_split(args: argparse.Namespace) -> int:
    from napari_vsr.io import fps_of_metadata, open_frames, open_writer

    out = Path(args.dir)
    _check_output(out, args.video, overwrite=args.overwrite, folder=True)
    source = open_frames(args.video)
    bar = None if args.quiet else ProgressBar("split")
    try:
        # a trailing separator makes the target a folder of frames whatever its name
        target = os.fspath(out) + os.sep
        with open_writer(
            target, overwrite=args.overwrite, fps=fps_of_metadata(source.metadata)
        ) as writer:
            writer.preflight(source.shape[1:], source.dtype, source.shape[0])
            n = _copy(source, writer, bar)
    finally:
        if bar is not None:
            bar.finish()
        source.close()
    print(f"wrote {n} frames to {out}", file=sys.stderr)
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from napari_vsr.io import open_frames, open_writer, parse_fps, writer_kind

    out = Path(args.video)
    kind = writer_kind(out)  # an unknown extension is a usage error, before any work
    _check_output(out, args.dir, overwrite=args.overwrite, folder=kind in ("frames", "zarr"))
    fps = parse_fps(args.fps, option="--fps")
    source = open_frames(args.dir)
    bar = None if args.quiet else ProgressBar("merge")
    try:
        with open_writer(
            out,
            fps=fps,
            overwrite=args.overwrite,
            video=video_options(args),
        ) as writer:
            writer.preflight(source.shape[1:], source.dtype, source.shape[0])
            n = _copy(source, writer, bar)
    finally:
        if bar is not None:
            bar.finish()
        source.close()
    print(f"wrote {n} frames to {out} at {float(fps):g} fps", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    s = subparsers.add_parser(
        "split",
        help="write every frame of a video as numbered PNG files",
        description="Write every frame of VIDEO to DIR as numbered PNG files (uint8/uint16 kept).",
    )
    s.add_argument("video", metavar="VIDEO")
    s.add_argument("dir", metavar="DIR", help="folder to create")
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="replace DIR if it exists and napari-vsr wrote it (never another folder)",
    )
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run_split)

    m = subparsers.add_parser(
        "merge",
        help="encode a folder of frames (or a TIFF stack) as a video",
        description="Encode the images in DIR (natural sort order) as VIDEO at --fps.",
    )
    m.add_argument("dir", metavar="DIR", help="folder of images or a TIFF stack")
    m.add_argument("video", metavar="VIDEO")
    m.add_argument("--fps", required=True, help="frame rate, e.g. 25, 29.97 or 30000/1001")
    m.add_argument("--codec", help="video codec: h264 (default), h265, vp9, av1, prores, ffv1")
    add_color_options(m)
    m.add_argument("--crf", type=int, metavar="N", help="quality (lower is better)")
    add_encode_preset_option(m)
    m.add_argument("--lossless", action="store_true", help="lossless video")
    m.add_argument("--overwrite", action="store_true", help="replace VIDEO if it exists")
    m.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=run_merge)
