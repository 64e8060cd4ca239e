"""``napari-vsr recipes list|show|check|ops``: classic pipelines (presets and recipe files)."""

from __future__ import annotations

import argparse
import json
import re

from napari_vsr.classic import OPERATORS, PRESETS, Pipeline, get_preset
from napari_vsr.classic.operators import CATEGORIES
from napari_vsr.classic.pipeline import MAX_FRAME_PIXELS, MAX_FRAME_SIDE, REFERENCE_SIZE
from napari_vsr.errors import ParameterError


def _fmt_scale(pipeline: Pipeline) -> str:
    scale = pipeline.scale
    if scale is None:
        return "fixed size"
    return f"x{scale:g}"


def _list(args: argparse.Namespace) -> int:
    width = max(len(name) for name in PRESETS)
    for name, pipeline in PRESETS.items():
        print(f"{name:<{width}}  {_fmt_scale(pipeline):>4}  {pipeline.description}")
    return 0


def _show(args: argparse.Namespace) -> int:
    print(get_preset(args.name).to_text(args.format), end="")
    return 0


def parse_size(text: str) -> tuple[int, int]:
    """``"640x360"`` (width x height) -> ``(360, 640)`` as (height, width)."""
    m = re.fullmatch(r"\s*(\d{1,6})\s*[xX*]\s*(\d{1,6})\s*", text or "")
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise ParameterError(
            f"--size: expected WIDTHxHEIGHT in pixels (e.g. 640x360), got {text!r}"
        )
    return int(m[2]), int(m[1])


def _input_size(path: str) -> tuple[int, int]:
    """(height, width) of the frames of a source, read from its header."""
    from napari_vsr.jobs.source import open_source

    source = open_source(path)
    try:
        return int(source.shape[1]), int(source.shape[2])
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


def _check(args: argparse.Namespace) -> int:
    if args.size is not None and args.input is not None:
        raise ParameterError("give either --size or --input, not both")
    pipeline = Pipeline.from_file(args.file)
    origin = None
    if args.input is not None:
        height, width = _input_size(args.input)
        origin = args.input
    elif args.size is not None:
        height, width = parse_size(args.size)
    else:
        height, width = REFERENCE_SIZE
        origin = "the reference size; give --size or --input for yours"
    out_h, out_w = pipeline.check_size(height, width, source=origin)
    ops = " -> ".join(step.op for step in pipeline.steps)
    print(
        f"{args.file}: OK: recipe {pipeline.name!r}, {len(pipeline)} step(s) ({ops}), "
        f"scale {_fmt_scale(pipeline)}, temporal context {pipeline.context}, "
        f"output {out_w}x{out_h} for a {width}x{height} input"
    )
    return 0


def _ops(args: argparse.Namespace) -> int:
    for category, names in CATEGORIES.items():
        print(f"{category}:")
        for name in names:
            spec = OPERATORS[name]
            print(f"  {name}: {spec.summary}")
            for pname, param in spec.params.items():
                default = spec.defaults[pname]
                shown = list(default) if isinstance(default, tuple) else default
                print(
                    f"      {pname} = {json.dumps(shown)}: {param.description} ({param.allowed()})"
                )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``recipes`` sub-command and its actions."""
    parser = subparsers.add_parser(
        "recipes",
        help="list, show and check classic pipelines (presets and recipe files)",
        description=(
            "Classic pipelines.  Save a preset with 'napari-vsr recipes show NAME > my.yaml', "
            "edit it, check it with 'napari-vsr recipes check my.yaml' and run it with "
            "'napari-vsr enhance --method classic --recipe my.yaml ...'."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = actions.add_parser("list", help="the named presets, one line each")
    p.set_defaults(func=_list)

    p = actions.add_parser("show", help="print a preset as YAML or JSON, to save and edit")
    p.add_argument("name", metavar="NAME", help="preset name (see 'recipes list')")
    p.add_argument("--format", choices=["yaml", "json"], default="yaml")
    p.set_defaults(func=_show)

    p = actions.add_parser(
        "check",
        help="validate a recipe file (.json, .yaml, .yml) and its output size",
        description=(
            "Validate a recipe file and compute its output size for an input size (--size, "
            f"--input, or {REFERENCE_SIZE[1]}x{REFERENCE_SIZE[0]} by default).  A recipe whose "
            f"frames would grow past {MAX_FRAME_PIXELS:,} pixels or {MAX_FRAME_SIDE} pixels "
            "a side at any step is refused (exit 2); so is one that uses YAML anchors or "
            "aliases, is nested too deeply or is not UTF-8."
        ),
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "--size",
        metavar="WxH",
        help=f"input frame size, e.g. 640x360 (default {REFERENCE_SIZE[1]}x{REFERENCE_SIZE[0]})",
    )
    p.add_argument("--input", metavar="SOURCE", help="take the input size from this source")
    p.set_defaults(func=_check)

    p = actions.add_parser("ops", help="every operator with its parameters and allowed values")
    p.set_defaults(func=_ops)
