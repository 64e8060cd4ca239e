"""``napari-vsr enhance INPUT -o OUTPUT``: run an enhancer over a whole source through the engine.

The output kind follows its extension (video, ``.tif``/``.tiff`` stack, ``.zarr`` store, or a
folder of PNG frames); it appears under its name only when complete.  The run is a job
(:mod:`napari_vsr.jobs`): an interrupted one keeps its finished segments for ``--resume``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from napari_vsr.cli.progress import ProgressBar
from napari_vsr.errors import ParameterError

if TYPE_CHECKING:  # the engine (and PyTorch) load only when a run starts, not for every command
    pass

log = logging.getLogger(__name__)


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


def job_request(args: argparse.Namespace):
    """The :class:`~napari_vsr.jobs.request.JobRequest` of an ``enhance`` command line."""
    from napari_vsr.errors import ParameterError
    from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions

    if args.no_job:
        clash = [flag for flag, given in (("--resume", args.resume), ("--job-dir", args.job_dir),
                                          ("--keep-job", args.keep_job),
                                          ("--segment", args.segment),
                                          ("--scheduler", args.scheduler)) if given]
        if clash:
            raise ParameterError(f"--no-job cannot be combined with {', '.join(clash)} (they "
                                 "need the job folder)")
    return JobRequest(
        source=args.input,
        output=args.output,
        method=MethodOptions(
            method=args.method,
            preset=args.preset,
            recipe=args.recipe,
            weights=args.weights,
            device=args.device,
            precision=args.precision,
            channels_last=not args.no_channels_last,
            compile=args.compile,
        ),
        engine=EngineOptions(
            chunk=args.chunk, overlap=args.overlap, tile=args.tile, tile_overlap=args.tile_overlap,
            batch=args.batch, serial=args.serial,
        ),
        frame_range=parse_frame_range(args.frames),
        segment=args.segment,
        job_dir=args.job_dir,
        resume=args.resume,
        overwrite=args.overwrite,
        keep_job=args.keep_job,
        durable=not args.no_job,
        scheduler=args.scheduler,
        video=video_options(args),
        no_audio=args.no_audio,
        skip_bad_frames=args.skip_bad_frames,
        hwaccel=None if args.hwaccel == "none" else args.hwaccel,
    )


def run(args: argparse.Namespace) -> int:
    from napari_vsr.io import writer_kind
    from napari_vsr.jobs.runner import JobStarted, JobWarning, run

    writer_kind(Path(args.output))  # an unknown output extension is a usage error, first
    _warn_ignored_options(args)
    request = job_request(args)
    bar = None if args.quiet else ProgressBar("enhance")
    state = {"job_dir": None, "segments": 0}

    def on_event(event) -> None:
        if isinstance(event, JobWarning):
            warn(event.message)
        elif isinstance(event, JobStarted):
            state.update(job_dir=event.job_dir, segments=event.segments)
            if event.resumed:
                print(
                    f"napari-vsr enhance: resuming: {event.resumed} of {event.segments} segments "
                    f"already done in {event.job_dir}",
                    file=sys.stderr,
                )

    try:
        result = run(request, progress=bar, on_event=on_event)
    except KeyboardInterrupt:
        if bar is not None:
            bar.finish()
        # counted in the folder: Dask workers may have committed more than was reported
        saved = len(list(Path(state["job_dir"]).glob("segment-*.npy"))) if state["job_dir"] else 0
        if saved:
            print(
                f"napari-vsr enhance: {saved} of {state['segments']} segments are saved "
                f"in {state['job_dir']}; run the same command with --resume to continue",
                file=sys.stderr,
            )
        raise
    finally:
        if bar is not None:
            bar.finish()
    n = result.segments_reused
    reused = f" ({n} segment{'' if n == 1 else 's'} resumed)" if n else ""
    print(f"wrote {result.frames} frames to {args.output}{reused}", file=sys.stderr)
    if result.replaced_frames:
        warn(_replaced_line(result.replaced_frames))
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


def _at_least_one(text: str) -> int:
    """argparse ``type=`` for sizes: a whole number >= 1."""
    value = _positive(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def video_options(args: argparse.Namespace):
    """The :class:`~napari_vsr.io.VideoOptions` of a command line with ``--codec``, ``--crf``,
    ``--encode-preset``, ``--lossless`` and the colour options (enhance and merge)."""
    from napari_vsr.io.video_options import VideoOptions

    return VideoOptions(
        codec=args.codec,
        crf=args.crf,
        preset=args.encode_preset,
        lossless=args.lossless,
        color_matrix=None if args.color_matrix == "auto" else args.color_matrix,
        color_range=None if args.color_range == "auto" else args.color_range,
    )


def add_encode_preset_option(parser: argparse.ArgumentParser) -> None:
    """``--encode-preset`` of a video output (enhance and merge)."""
    parser.add_argument(
        "--encode-preset",
        metavar="NAME",
        help="video encoder speed preset: x264/x265 ultrafast..veryslow or NVENC p1..p7 (each "
        "mapped to the other's nearest); default: by output size for x264/x265 (medium up to "
        "1280x720, faster up to 1920x1080, veryfast above), p5 for NVENC",
    )


def add_hwaccel_option(parser: argparse.ArgumentParser) -> None:
    """``--hwaccel`` of a video input (enhance)."""
    parser.add_argument(
        "--hwaccel",
        default="none",
        choices=["none", "auto", "cuda"],
        help="decode a video input on an NVIDIA GPU (NVDEC); auto/cuda fall back to software "
        "decoding with a warning when no GPU decoder is usable (default: none)",
    )


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
            "OUTPUT appears only when complete; an interrupted run (Ctrl-C, kill, crash) keeps "
            "its finished segments in a job folder beside OUTPUT and continues with --resume."
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
    p.add_argument(
        "--batch",
        type=_at_least_one,
        metavar="B",
        help="chunks run through the network together (default: as many as the free GPU "
        "memory holds; 1 on the CPU)",
    )
    p.add_argument(
        "--serial",
        action="store_true",
        help="decode, enhance and encode one after another in one thread instead of "
        "overlapping them (slower; the same output; for comparison)",
    )
    p.add_argument("--frames", metavar="A:B", help="only frames A..B-1 (0-based, half-open)")
    p.add_argument(
        "--codec",
        help="video codec: h264 (default), h265, vp9 (default in .webm), av1, prores (.mov/.mkv), "
        "ffv1, mpeg4, NVIDIA h264_nvenc/hevc_nvenc/av1_nvenc (software of the same kind when "
        "NVENC does not open), auto (NVENC on a CUDA run when it opens, else h264) or any "
        "FFmpeg video encoder (FFV1 with --lossless in .mkv)",
    )
    add_color_options(p)
    p.add_argument("--crf", type=_positive, metavar="N", help="video quality (lower is better)")
    add_encode_preset_option(p)
    add_hwaccel_option(p)
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
    add_job_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def add_job_options(p: argparse.ArgumentParser) -> None:
    """Segments, the job's state folder, resume and the Dask scheduler."""
    g = p.add_argument_group(
        "jobs",
        "The frame range is cut into segments of whole chunks; each finished segment is saved "
        "in a job folder, so an interrupted run (Ctrl-C, kill, crash, power loss, a Slurm time "
        "limit) continues where it stopped with --resume.",
    )
    g.add_argument(
        "--segment", type=_at_least_one, metavar="N",
        help="output frames per segment, rounded up to whole chunks (default: about 48)",
    )
    g.add_argument(
        "--job-dir", metavar="DIR",
        help="the job's state folder (default: .OUTPUT.vsr-job beside OUTPUT; on a filesystem "
        "the Dask workers share for --scheduler)",
    )
    g.add_argument(
        "--resume", action="store_true",
        help="continue an interrupted job of OUTPUT: finished segments are not recomputed",
    )
    g.add_argument(
        "--keep-job", action="store_true", help="keep the job folder after success"
    )
    g.add_argument(
        "--no-job", action="store_true",
        help="keep no job folder: frames go straight to OUTPUT (saves writing every x4 frame "
        "to disk twice, which can limit a fast GPU); an interrupted run starts over",
    )
    g.add_argument(
        "--scheduler", metavar="ADDR",
        help="run segments on Dask: local:N (a local cluster of N worker processes; one per "
        "GPU on a CUDA machine) or tcp://HOST:PORT (a running scheduler; default: "
        "$NAPARI_VSR_SCHEDULER)",
    )
