"""``napari-vsr enhance INPUT -o OUTPUT``: run an enhancer over a whole source through the engine.

The output kind follows its extension (video, ``.tif``/``.tiff`` stack, ``.zarr`` store, or a
folder of PNG frames); it appears under its name only when complete.  Ctrl-C leaves nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from napari_vsr.errors import OutputExistsError, ParameterError

if TYPE_CHECKING:  # the engine (and PyTorch) load only when a run starts, not for every command
    from napari_vsr.engine import Progress

log = logging.getLogger(__name__)


class ProgressBar:
    """A plain-text progress bar on a stream (stderr): frames, percent, fps and ETA.

    On a terminal the line is redrawn in place; otherwise a line is written at most every
    ``interval_s`` seconds and at the end, so logs stay short.
    """

    def __init__(
        self, label: str, *, stream: TextIO | None = None, width: int = 24, interval_s: float = 5.0
    ):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.interval_s = interval_s
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = -1e9
        self._shown = False

    def __call__(self, p: Progress) -> None:
        if p.message:
            self._write(f"{self.label}: {p.message}", newline=True)
        now = time.monotonic()
        final = p.done >= p.total
        if not (self.tty or final or now - self._last >= self.interval_s):
            return
        self._last = now
        frac = p.done / p.total if p.total else 1.0
        fill = int(round(frac * self.width))
        bar = "#" * fill + "." * (self.width - fill)
        eta = "--:--" if p.eta_s is None else _clock(p.eta_s)
        fps = f"{p.fps:.2f} fps" if p.fps else "-- fps"
        line = f"{self.label} [{bar}] {p.done}/{p.total} {frac:4.0%} {fps} ETA {eta}"
        self._write(line, newline=not self.tty or final)

    def _write(self, line: str, *, newline: bool) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if newline else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._shown = not newline

    def finish(self) -> None:
        """End a half-drawn terminal line (after an error or interrupt)."""
        if self._shown and self.tty:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def _clock(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
        if s >= 3600
        else f"{s // 60:02d}:{s % 60:02d}"
    )


def parse_frame_range(text: str | None) -> tuple[int | None, int | None] | None:
    """``"A:B"``, ``"A:"`` or ``":B"`` (half-open, 0-based) -> (start, stop); None for None."""
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) != 2:
        raise ParameterError(f"--frames: expected START:STOP (e.g. 10:50, 10:, :50), got {text!r}")
    try:
        start, stop = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise ParameterError(
            f"--frames: expected whole numbers in START:STOP, got {text!r}"
        ) from None
    if (start is not None and start < 0) or (stop is not None and stop < 0):
        raise ParameterError(f"--frames: expected non-negative frame numbers, got {text!r}")
    return start, stop


def open_source(path: str, *, skip_bad_frames: bool = False):
    """Any reader source, plus zarr arrays (``*.zarr``) written by this tool."""
    if Path(path).suffix.lower() == ".zarr":
        from napari_vsr.io.zarr_store import open_result_store

        return open_result_store(path, mode="r")
    from napari_vsr.io import open_frames

    return open_frames(path, skip_bad_frames=skip_bad_frames)


def warn(message: str) -> None:
    """One warning line on stderr, in the form of the CLI's error lines."""
    print(f"napari-vsr enhance: warning: {message}", file=sys.stderr)


#: realbasicvsr-only options: (namespace attribute, option, its default)
_NETWORK_OPTIONS = (
    ("device", "--device", "auto"),
    ("precision", "--precision", "auto"),
    ("weights", "--weights", None),
    ("compile", "--compile", False),
    ("no_channels_last", "--no-channels-last", False),
)


def _warn_ignored_options(args: argparse.Namespace) -> None:
    """Say which network options the classic method ignores, when any was given."""
    if args.method != "classic":
        return
    given = [opt for name, opt, default in _NETWORK_OPTIONS if getattr(args, name) != default]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        warn(f"{'/'.join(given)} {verb} to realbasicvsr only; ignored by the classic method")


def _replaced_line(indices: list[int], *, most: int = 10) -> str:
    shown = ", ".join(str(i) for i in indices[:most]) + (", ..." if len(indices) > most else "")
    word = "frame" if len(indices) == 1 else "frames"
    return f"replaced {len(indices)} undecodable {word} ({shown}) by the previous frame"


def source_fps(meta: dict):
    text = meta.get("fps_fraction")
    if text:
        try:
            return Fraction(text)
        except (ValueError, ZeroDivisionError):
            pass
    return meta.get("fps")


def _download_bar():
    state = {"last": -1.0}

    def show(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - state["last"] < 1.0 and (total is None or done < total):
            return
        state["last"] = now
        mb = done / 2**20
        tail = f" of {total / 2**20:.1f} MB" if total else " MB"
        sys.stderr.write(f"downloading weights: {mb:.1f}{tail}\n")
        sys.stderr.flush()

    return show


def _check_frame_layout(source, meta: dict, out_path: Path, in_path: str) -> None:
    """Refuse, before any work, a stack with channel/Z axes for a video or PNG-folder output."""
    from napari_vsr.io import writer_kind

    shape = tuple(source.shape)
    rgb = getattr(source, "rgb", None)
    if not isinstance(rgb, bool):
        rgb = len(shape) == 4 and shape[-1] in (3, 4)
    kind = writer_kind(out_path)
    if kind in ("video", "frames") and len(shape) > (4 if rgb else 3):
        raise ParameterError(
            f"{out_path}: a {kind} output holds (H, W) or RGB(A) frames, but {in_path} has axes "
            f"{meta.get('axes') or shape}; write a .tif or .zarr to keep them"
        )


def _frame_size(source) -> tuple[int, int]:
    """(H, W) of one source plane: the axes before channels-last RGB(A), else the last two."""
    shape = tuple(source.shape)
    rgb = getattr(source, "rgb", None)
    if not isinstance(rgb, bool):
        rgb = len(shape) == 4 and shape[-1] in (3, 4)
    return (shape[-3], shape[-2]) if rgb else (shape[-2], shape[-1])


def run(args: argparse.Namespace) -> int:
    from napari_vsr.engine import enhance, plan_output
    from napari_vsr.enhancers import make_enhancer
    from napari_vsr.host_memory import plan_enhancer_chunk
    from napari_vsr.io import open_writer, writer_kind
    from napari_vsr.io.color import source_color_tags
    from napari_vsr.io.writer_base import check_not_input, check_target

    out_path = Path(args.output)
    kind = writer_kind(out_path)  # an unknown output extension is a usage error, before any work
    if (out_path.exists() or out_path.is_symlink()) and not args.overwrite:
        raise OutputExistsError("already exists; add --overwrite to replace it", path=out_path)
    # before any work: never the input, never a user's folder, never a folder for a file
    check_not_input(out_path, args.input)
    check_target(out_path, overwrite=args.overwrite, folder=kind in ("frames", "zarr"))
    frame_range = parse_frame_range(args.frames)
    _warn_ignored_options(args)
    source = open_source(args.input, skip_bad_frames=args.skip_bad_frames)
    bar = None if args.quiet else ProgressBar("enhance")
    enhancer = None  # closed below: the engine leaves that to its caller
    try:
        meta = getattr(source, "metadata", None)
        meta = dict(meta) if isinstance(meta, dict) else dict(getattr(source, "attrs", {}) or {})
        n = int(source.shape[0])
        start = 0 if frame_range is None or frame_range[0] is None else frame_range[0]
        stop = n if frame_range is None or frame_range[1] is None else min(frame_range[1], n)
        if not 0 <= start < stop:
            raise ParameterError(
                f"--frames: {args.frames!r} selects no frames of the {n} in {args.input}"
            )
        if frame_range is not None and frame_range[1] is not None and frame_range[1] > n:
            warn(
                f"--frames {args.frames}: {args.input} has only {n} frames; enhancing frames "
                f"{start}:{stop}"
            )
        _check_frame_layout(source, meta, out_path, args.input)
        enhancer = make_enhancer(
            args.method,
            frame_size=_frame_size(source),
            preset=args.preset,
            recipe=args.recipe,
            weights=args.weights,
            device=args.device,
            precision=args.precision,
            channels_last=not args.no_channels_last,
            compile=args.compile,
            download_progress=None if args.quiet else _download_bar(),
        )
        video_out = writer_kind(out_path) == "video"
        times = None
        if video_out and hasattr(source, "frame_times"):
            times = np.asarray(source.frame_times(), dtype=np.float64)[start:stop]
        copy_from = None
        has_streams = meta.get("has_audio") or meta.get("has_subtitles")
        if video_out and meta.get("kind") == "video" and has_streams and not args.no_audio:
            if start == 0 and stop == n:
                copy_from = args.input
            else:
                log.warning(
                    "audio/subtitles are not copied when --frames selects part of the video"
                )
        metadata = {
            "source_path": str(Path(args.input).resolve()),
            "frames": [start, stop],
            **enhancer.describe(),
            # a TIFF stack's axes and channel names, so a .tif output keeps them
            **{k: meta[k] for k in ("axes", "channel_names") if meta.get(k)},
        }
        with open_writer(
            out_path,
            fps=source_fps(meta),
            overwrite=args.overwrite,
            codec=args.codec,
            crf=args.crf,
            lossless=args.lossless,
            copy_streams_from=copy_from,
            frame_times=times,
            metadata=metadata,
            color_matrix=None if args.color_matrix == "auto" else args.color_matrix,
            color_range=None if args.color_range == "auto" else args.color_range,
            **(source_color_tags(meta) if video_out else {}),
        ) as writer:
            out_shape, out_dtype = plan_output(
                source.shape, source.dtype, enhancer, rgb=getattr(source, "rgb", None)
            )
            writer.preflight(out_shape[1:], out_dtype, stop - start)
            chunk = plan_enhancer_chunk(
                enhancer,
                source.shape,
                out_shape,
                rgb=getattr(source, "rgb", None),
                chunk=args.chunk,
                overlap=args.overlap,
                source=args.input,
            )
            for _, frame in enhance(
                source,
                enhancer,
                chunk=chunk,
                overlap=args.overlap,
                tile=args.tile,
                tile_overlap=args.tile_overlap,
                rgb=getattr(source, "rgb", None),
                frame_range=(start, stop),
                progress=bar,
            ):
                writer.write(frame)
    finally:
        if bar is not None:
            bar.finish()
        if enhancer is not None:
            enhancer.close()
        close = getattr(source, "close", None)
        if close is not None:
            close()
    print(f"wrote {stop - start} frames to {out_path}", file=sys.stderr)
    replaced = list(getattr(source, "replaced_frames", None) or [])
    if replaced:
        warn(_replaced_line(replaced))
    return 0


def _positive(text: str) -> int:
    """argparse ``type=`` for counts: a whole number >= 0 (the error names the option)."""
    try:
        value = int(text.strip())
    except (ValueError, AttributeError):
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative whole number, got {text!r}")
    return value


def add_color_options(parser: argparse.ArgumentParser) -> None:
    """``--color-matrix`` and ``--color-range`` of a video output (enhance and merge)."""
    parser.add_argument(
        "--color-matrix",
        default="auto",
        choices=["auto", "bt601", "bt709", "bt2020", "smpte240m"],
        help="Y'CbCr matrix of a video output (auto: BT.709 for HD sizes, BT.601 below)",
    )
    parser.add_argument(
        "--color-range",
        default="auto",
        choices=["auto", "limited", "full"],
        help="Y'CbCr range of a video output (auto: limited, what players expect)",
    )


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "enhance",
        help="enhance a video or frame stack (RealBasicVSR x4 or a classic pipeline)",
        description=(
            "Enhance INPUT (video, folder of frames, TIFF stack or .zarr) into OUTPUT, whose kind "
            "follows its extension (.mp4/.mkv/.mov video, .tif stack, .zarr store, or a folder "
            "of PNG frames).  Video keeps the source fps, timestamps, audio and subtitles.  "
            "OUTPUT appears only when complete; Ctrl-C leaves nothing behind."
        ),
    )
    p.add_argument("input", metavar="INPUT", help="video, folder of images, TIFF stack or .zarr")
    p.add_argument(
        "-o", "--output", required=True, metavar="OUTPUT", help="where to write the result"
    )
    p.add_argument("--method", default="realbasicvsr", choices=["realbasicvsr", "classic"])
    p.add_argument("--preset", help="classic: a named pipeline (default: seed)")
    p.add_argument("--recipe", metavar="FILE", help="classic: a pipeline saved as JSON/YAML")
    p.add_argument(
        "--weights", metavar="FILE", help="realbasicvsr: checkpoint (default: cache/download)"
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "fp16", "bf16"],
        help="network precision (auto: fp16 on CUDA, fp32 elsewhere; bf16 is ~3x faster than "
        "fp32 on CPUs with AMX/AVX512-BF16)",
    )
    p.add_argument("--no-channels-last", action="store_true", help="keep the default memory format")
    p.add_argument(
        "--compile", action="store_true", help="torch.compile the network (experimental)"
    )
    p.add_argument("--chunk", type=_positive, metavar="L", help="output frames per temporal chunk")
    p.add_argument(
        "--overlap", type=_positive, metavar="O", help="context frames on each side of a chunk"
    )
    p.add_argument(
        "--tile",
        type=_positive,
        metavar="N",
        help="spatial tile side in input pixels (0: none; default: from free GPU memory)",
    )
    p.add_argument(
        "--tile-overlap", type=_positive, metavar="P", help="tile overlap in input pixels"
    )
    p.add_argument("--frames", metavar="A:B", help="only frames A..B-1 (0-based, half-open)")
    p.add_argument(
        "--codec",
        help="video codec: h264 (default), h265, vp9 (default in .webm), av1, prores (.mov/.mkv), "
        "ffv1, mpeg4 or any FFmpeg video encoder (FFV1 with --lossless in .mkv)",
    )
    add_color_options(p)
    p.add_argument("--crf", type=_positive, metavar="N", help="video quality (lower is better)")
    p.add_argument("--lossless", action="store_true", help="lossless video")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUTPUT if it exists: a file, or a folder napari-vsr wrote (never another "
        "folder, never the input)",
    )
    p.add_argument("--no-audio", action="store_true", help="do not copy audio/subtitle streams")
    p.add_argument(
        "--skip-bad-frames",
        action="store_true",
        help="replace video frames that cannot be decoded by the previous good frame (and say "
        "how many) instead of stopping",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
