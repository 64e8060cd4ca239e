"""Bad recipe files for the bad-input corpus: each one must be refused with one line.

``build(folder)`` writes them and returns ``{case name: path}``.  Every file is refused by
``napari-vsr recipes check FILE`` and by ``napari-vsr enhance CLIP --method classic --recipe
FILE`` with exit code 1 or 2, one stderr line and no traceback, before any output is written.
The files are small (the largest is just over the 256 KiB size cap).
"""

from __future__ import annotations

import json
from pathlib import Path

#: every case is a recipe file (run through ``recipes check`` and ``enhance --recipe``)
ROLE = "recipe"


def billion_laughs_yaml() -> str:
    """The classic alias bomb: 10 levels of 9 aliases, 9**10 strings once expanded (~1 KB)."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines.append("steps: *a9")
    return "\n".join(lines) + "\n"


def resize_bomb_yaml(factor: int = 16, steps: int = 4) -> str:
    """Resize steps whose product asks for terabytes per frame (x65536 by default)."""
    return "name: resize-bomb\nsteps:\n" + f"  - op: resize\n    factor: {factor}\n" * steps


def build(folder: Path) -> dict[str, Path]:
    """Write every bad recipe into ``folder``; returns ``{case: path}``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def put(name: str, data: str | bytes) -> None:
        path = folder / name
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        files[path.stem] = path

    put("recipe-billion-laughs.yaml", billion_laughs_yaml())
    put(
        "recipe-merge-alias.yaml",
        "base: &base {op: gaussian_blur, ksize: 5}\nsteps:\n  - <<: *base\n",
    )
    put("recipe-deep-nesting.yaml", "steps: " + "[" * 50_000 + "]" * 50_000 + "\n")
    put("recipe-deep-nesting-json.json", '{"steps": ' + "[" * 50_000 + "]" * 50_000 + "}")
    put("recipe-many-values.yaml", "steps: [" + ", ".join(["1"] * 20_000) + "]\n")
    put(
        "recipe-latin1.yaml",
        "name: caf\xe9\nsteps:\n  - op: laplacian_sharpen\n".encode("latin-1"),
    )
    put("recipe-utf16.json", json.dumps({"steps": [{"op": "equalize_hist"}]}).encode("utf-16"))
    put("recipe-oversize.yaml", "steps:\n  - op: laplacian_sharpen\n" + "#" * 300_000 + "\n")
    put("recipe-huge-int.json", '{"steps": [{"op": "resize", "factor": ' + "9" * 5000 + "}]}")
    put("recipe-python-tag.yaml", "steps: !!python/object/apply:os.system ['true']\n")
    put("recipe-resize-bomb.yaml", resize_bomb_yaml())
    put(
        "recipe-resize-peak.json",
        json.dumps(
            {
                "name": "peak",
                "steps": [{"op": "resize", "factor": 16}] * 3
                + [{"op": "resize", "factor": 0.0625}] * 3,
            }
        ),
    )
    put(
        "recipe-fixed-size-bomb.yaml",
        "steps:\n  - op: resize\n    size: [65536, 65536]\n  - op: resize\n    factor: 1\n",
    )
    return files
