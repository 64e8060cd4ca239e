"""Reading recipe files safely: bounded size, UTF-8 only, YAML without aliases, bounded nesting.

A recipe is a few hundred bytes of plain data, so anything far beyond that is refused before it
is parsed: files over :data:`MAX_RECIPE_BYTES`, text that is not UTF-8, YAML anchors and aliases
(the "billion laughs" expansion), more than :data:`MAX_NODES` values and nesting deeper than
:data:`MAX_DEPTH` (which would otherwise end in a ``RecursionError``).  Every refusal is a
:class:`~napari_vsr.errors.ParameterError` (or, for file-system errors, a
:class:`~napari_vsr.errors.SourceNotFoundError` / :class:`~napari_vsr.errors.UnreadableMediaError`)
that names the file, the cause and what to do.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from napari_vsr.errors import ParameterError, SourceNotFoundError, UnreadableMediaError, VsrError

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_RECIPE_BYTES", "load_recipe_data", "read_recipe_text"]

log = logging.getLogger(__name__)

#: largest recipe file read (bytes); the presets are under 1 KB
MAX_RECIPE_BYTES = 256 * 1024
#: most YAML/JSON values (scalars, lists, mappings) in one recipe
MAX_NODES = 10_000
#: deepest nesting of lists and mappings (a recipe needs 4: top, steps, step, a size pair)
MAX_DEPTH = 32


def _translate_os_error(exc: OSError, path: Path, doing: str) -> VsrError:
    """The one place where file-system errors of recipe loading become project errors."""
    if isinstance(exc, FileNotFoundError):
        return SourceNotFoundError("recipe file not found", path=path)
    if isinstance(exc, PermissionError):
        return UnreadableMediaError(
            f"permission denied while {doing}; check the file's permissions", path=path
        )
    if exc.errno == errno.ELOOP:
        return UnreadableMediaError(f"symbolic link loop while {doing}", path=path)
    if isinstance(exc, IsADirectoryError):
        return ParameterError("is a folder, not a recipe file", path=path)
    reason = exc.strerror or type(exc).__name__
    return UnreadableMediaError(f"cannot read the recipe ({reason}) while {doing}", path=path)


def read_recipe_text(path: str | os.PathLike) -> str:
    """The text of a recipe file, after the size, file-type and encoding checks.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    str
        The decoded text (a UTF-8 byte-order mark is dropped).

    Raises
    ------
    SourceNotFoundError
        No such file.
    ParameterError
        Not a regular file, larger than :data:`MAX_RECIPE_BYTES`, or not UTF-8 text
        (``"<file>: not UTF-8 text (byte 0xff at offset 12)"``).
    UnreadableMediaError
        Permission denied or another read error.
    """
    p = Path(path)
    try:
        st = p.stat()
        if not p.is_file():
            kind = "a folder" if p.is_dir() else "not a regular file (a FIFO, device or socket)"
            raise ParameterError(f"is {kind}; give a .json or .yaml recipe file", path=p)
        if st.st_size > MAX_RECIPE_BYTES:
            raise ParameterError(
                f"is {st.st_size:,} bytes; recipe files are limited to {MAX_RECIPE_BYTES:,} "
                "bytes (a recipe is a short list of steps)",
                path=p,
            )
        with open(p, "rb") as f:
            data = f.read(MAX_RECIPE_BYTES + 1)
    except OSError as exc:
        raise _translate_os_error(exc, p, "reading it") from None
    if len(data) > MAX_RECIPE_BYTES:  # grew while being read
        raise ParameterError(f"recipe files are limited to {MAX_RECIPE_BYTES:,} bytes", path=p)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParameterError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the recipe as UTF-8",
            path=p,
        ) from None


class _Refused(Exception):
    """Raised inside the YAML composer; turned into a ParameterError with the position."""

    def __init__(self, message: str, mark: Any = None):
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        super().__init__(message + where)


class _RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors and aliases and bounds nodes and nesting.

    The pure-Python loader is used on purpose: its composer can be checked node by node, and
    recipes are tiny.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self._nodes = 0
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: D102 - PyYAML hook
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                f"YAML alias '*{event.anchor}' found; recipes may not use anchors or aliases",
                event.start_mark,
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise _Refused(
                f"YAML anchor '&{anchor}' found; recipes may not use anchors or aliases",
                event.start_mark,
            )
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(f"more than {MAX_NODES:,} values", event.start_mark)
        nested = isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            if nested:
                self._depth -= 1


def _json_shape_check(text: str) -> None:
    """Refuse JSON nested deeper than :data:`MAX_DEPTH` or with more than :data:`MAX_NODES`
    containers, before ``json.loads`` recurses into it."""
    depth = containers = 0
    in_string = escaped = False
    for offset, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            containers += 1
            if depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels (at offset {offset})")
            if containers > MAX_NODES:
                raise _Refused(f"more than {MAX_NODES:,} lists and objects")
        elif ch in "]}":
            depth -= 1


def load_recipe_data(text: str, fmt: str, *, path: str | os.PathLike | None = None) -> Any:
    """Parse recipe text as ``"json"`` or ``"yaml"`` into plain data, safely.

    Parameters
    ----------
    text : str
        What :func:`read_recipe_text` returned.
    fmt : {"json", "yaml"}
    path : path-like, optional
        Named in error messages.

    Returns
    -------
    object
        Plain data (dicts, lists, str, int, float, bool, None); not yet validated as a recipe.

    Raises
    ------
    ParameterError
        Unparsable text, YAML anchors/aliases, too many values or too deep nesting.
    """
    label = fmt.upper()
    try:
        if fmt == "json":
            _json_shape_check(text)
            return json.loads(text)
        loader = _RecipeLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _Refused as exc:
        raise ParameterError(f"refused: {exc}; write the recipe out in full", path=path) from None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = " ".join(str(exc).split())
        raise ParameterError(f"not valid {label}: {first}", path=path) from None
    except (ValueError, RecursionError, OverflowError) as exc:
        # Python's own text for these carries its advice (sys.set_int_max_str_digits): not ours
        cause = (
            "a number has thousands of digits"
            if "digits" in str(exc)
            else f"a value cannot be represented ({type(exc).__name__})"
        )
        raise ParameterError(f"not a usable {label} recipe: {cause}", path=path) from None
