"""``napari-vsr recipes list|show|check|ops``: classic pipelines (presets and recipe files)."""

from __future__ import annotations

import argparse
import json

from napari_vsr.classic import OPERATORS, PRESETS, Pipeline, get_preset
from napari_vsr.classic.operators import CATEGORIES


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


def _check(args: argparse.Namespace) -> int:
    pipeline = Pipeline.from_file(args.file)
    ops = " -> ".join(step.op for step in pipeline.steps)
    print(
        f"{args.file}: OK: recipe {pipeline.name!r}, {len(pipeline)} step(s) ({ops}), "
        f"scale {_fmt_scale(pipeline)}, temporal context {pipeline.context}"
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

    p = actions.add_parser("check", help="validate a recipe file (.json, .yaml, .yml)")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=_check)

    p = actions.add_parser("ops", help="every operator with its parameters and allowed values")
    p.set_defaults(func=_ops)
