"""``napari-vsr info PATH``: what the reader sees in a video, image folder, TIFF stack or
napari-vsr result store."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def describe(path: str, *, skip_bad_frames: bool = False) -> dict[str, Any]:
    """The facts ``info`` prints, as a JSON-serialisable dict.

    With ``skip_bad_frames``, a video whose demuxer lost frames to corrupt data opens anyway
    and ``missing_frames`` lists them (they would be replaced by the previous frame on
    reading); without it such a video raises CorruptFrameError.  A napari-vsr result store
    (``.zarr``) is described from its provenance record (method, source, frame range, partial
    or complete).
    """
    from napari_vsr.io import open_frames
    from napari_vsr.jobs.results import describe_result, is_result_store

    if is_result_store(path):
        return describe_result(path)

    with open_frames(path, skip_bad_frames=skip_bad_frames) as frames:
        md = frames.metadata
        t, h, w = frames.shape[:3]
        facts: dict[str, Any] = {
            "path": md.get("source_path", path),
            "kind": md.get("kind"),
            "frames": t,
            "width": w,
            "height": h,
            "channels": frames.shape[3] if frames.ndim == 4 else 1,
            "dtype": str(frames.dtype),
            "fps": md.get("fps"),
        }
        if md.get("kind") == "video":
            facts.update(
                {
                    "fps_fraction": md.get("fps_fraction"),
                    "nominal_fps": md.get("nominal_fps"),
                    "duration_s": md.get("duration_s"),
                    "codec": md.get("codec"),
                    "pix_fmt": md.get("pix_fmt"),
                    "bit_depth": md.get("bit_depth"),
                    "color_matrix": md.get("color_matrix"),
                    "color_range": md.get("color_range"),
                    "color_primaries": md.get("color_primaries"),
                    "color_transfer": md.get("color_transfer"),
                    "color_assumed": list(md.get("color_assumed") or []),
                    "container": md.get("container"),
                    "time_base": md.get("time_base"),
                    "rotation": md.get("rotation"),
                    "rotation_applied": md.get("rotation_applied"),
                    "audio_streams": md.get("audio_streams", []),
                    "subtitle_streams": md.get("subtitle_streams", []),
                    "missing_frames": md.get("missing_frames", []),
                }
            )
        elif md.get("axes"):
            facts["axes"] = md["axes"]
            axes = str(md["axes"])
            if len(axes) == frames.ndim and "Y" in axes and "X" in axes:
                # stacks with channel / Z axes: (T, [Z,] [C,] Y, X[, S])
                shape = frames.shape
                facts["height"], facts["width"] = shape[axes.index("Y")], shape[axes.index("X")]
                facts["channels"] = (
                    shape[axes.index("C")]
                    if "C" in axes
                    else shape[-1]
                    if axes.endswith("S")
                    else 1
                )
                facts["shape"] = list(shape)
                if md.get("channel_names"):
                    facts["channel_names"] = list(md["channel_names"])
    return facts


def _stream_line(s: dict[str, Any]) -> str:
    parts = [str(s.get("codec"))]
    if s.get("sample_rate"):
        parts.append(f"{s['sample_rate']} Hz")
    if s.get("channels"):
        parts.append(f"{s['channels']} ch")
    if s.get("language") and s["language"] != "und":
        parts.append(s["language"])
    return ", ".join(parts)


def _colour_text(facts: dict[str, Any]) -> str:
    """``bt709 limited, primaries bt709, transfer bt709 (matrix, range assumed: untagged)``."""
    text = (
        f"{facts.get('color_matrix')} {facts.get('color_range')}, primaries "
        f"{facts.get('color_primaries')}, transfer {facts.get('color_transfer')}"
    )
    if facts.get("bit_depth"):
        text = f"{facts['bit_depth']}-bit {text}"
    assumed = facts.get("color_assumed") or []
    if assumed:
        text += f" ({', '.join(assumed)} assumed: not declared by the file)"
    return text


def format_facts(facts: dict[str, Any]) -> str:
    """Human-readable lines for :func:`describe`'s dict."""
    fps = facts.get("fps")
    fps_text = "unknown" if fps is None else f"{fps:.6g}"
    if facts.get("fps_fraction") and not facts["fps_fraction"].endswith("/1"):
        fps_text += f" ({facts['fps_fraction']})"
    rows = [
        ("path", facts["path"]),
        ("kind", facts["kind"]),
        ("frames", facts["frames"]),
        (
            "size",
            f"{facts['width']}x{facts['height']} (width x height), {facts['channels']} channel(s)",
        ),
        ("dtype", facts["dtype"]),
        ("fps", fps_text),
    ]
    if facts.get("kind") == "video":
        dur = facts.get("duration_s")
        rows += [
            ("duration", "unknown" if dur is None else f"{dur:.3f} s"),
            ("codec", facts.get("codec")),
            ("pixel format", facts.get("pix_fmt")),
        ]
        if facts.get("color_matrix"):
            rows.append(("colour", _colour_text(facts)))
        rows += [
            ("container", facts.get("container")),
            ("time base", facts.get("time_base")),
        ]
        if facts.get("rotation"):
            done = "applied" if facts.get("rotation_applied") else "not applied"
            rows.append(("rotation", f"{facts['rotation']} degrees counter-clockwise ({done})"))
        audio = facts.get("audio_streams") or []
        rows.append(("audio streams", len(audio)))
        rows += [(f"  audio #{k}", _stream_line(s)) for k, s in enumerate(audio)]
        subs = facts.get("subtitle_streams") or []
        if subs:
            rows.append(("subtitle streams", len(subs)))
        missing = facts.get("missing_frames") or []
        if missing:
            shown = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
            rows.append(
                (
                    "missing frames",
                    f"{len(missing)} ({shown}): lost to corrupt data; replaced by the previous "
                    "frame on reading",
                )
            )
    if facts.get("kind") == "result store":
        rng = facts.get("frame_range")
        if facts.get("partial"):
            state = "partial: its job was interrupted"
            state += (f"; resumable from {facts['job_dir']}" if facts.get("resumable")
                      else "; its job folder is gone")
        else:
            state = "complete"
        rows += [
            ("method", facts.get("method")),
            ("source", facts.get("source")),
            ("frame range", "unknown" if not rng else f"{rng[0]}:{rng[1]}"),
            ("state", state),
        ]
    if facts.get("axes"):
        shape = facts.get("shape")
        rows.append(("axes", f"{facts['axes']} {tuple(shape)}" if shape else facts["axes"]))
    if facts.get("channel_names"):
        rows.append(("channel names", ", ".join(facts["channel_names"])))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run(args: argparse.Namespace) -> int:
    facts = describe(args.path, skip_bad_frames=args.skip_bad_frames)
    if args.json:
        json.dump(facts, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(format_facts(facts))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="show what the reader sees in a video, image folder, TIFF stack or result store",
        description="Print frames, size, dtype, fps, duration, codec, pixel format and audio "
        "streams of PATH, as napari-vsr reads it.",
    )
    p.add_argument("path", metavar="PATH",
                   help="video file, folder of images, TIFF stack or .zarr result store")
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.add_argument(
        "--skip-bad-frames",
        action="store_true",
        help="open a video whose demuxer lost frames to corrupt data, and list them",
    )
    p.set_defaults(func=run)
