"""The bad-input corpus, run as a user would: every file through the real command line.

Each ``tests/io/corpus_*.py`` module defines ``build(folder) -> {name: path}``, the inputs of
one area (videos, stacks, outputs, inputs, recipes).  Every input goes through
``napari-vsr info`` and ``napari-vsr enhance --method classic`` in a subprocess; recipe files
(``.json``/``.yaml``/``.yml``, or a module with ``ROLE = "recipe"``) go through
``napari-vsr recipes check`` and ``enhance --recipe``.  The property, for every case:

- the exit code is 0, 1 or 2 and the command ends within the time limit (no hang);
- no ``Traceback`` on stderr; a failure says exactly one line on stderr;
- nothing is left beside the output: the output folder holds the output after success, and
  nothing at all (no hidden ``.partial`` file) after a failure;
- the input is untouched (same size and modification time).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODULES = sorted(HERE.glob("corpus_*.py"))
RECIPE_SUFFIXES = (".json", ".yaml", ".yml")
TIME_LIMIT_S = 240


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"corpus_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Outcome:
    args: list[str]
    rc: int | None
    stderr: str
    leftovers: list[str]

    def problems(self, *, expect_rc: tuple[int, ...] = (0, 1, 2)) -> list[str]:
        cmd = "napari-vsr " + " ".join(self.args)
        if self.rc is None:
            return [f"{cmd}: no answer within {TIME_LIMIT_S} s (hang)"]
        found = []
        if self.rc not in expect_rc:
            found.append(f"{cmd}: exit code {self.rc}, expected one of {expect_rc}")
        if "Traceback" in self.stderr:
            found.append(f"{cmd}: a traceback on stderr:\n{self.stderr[-1500:]}")
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        if self.rc not in (0, None) and len(lines) != 1:
            found.append(f"{cmd}: {len(lines)} stderr lines, expected one: {lines[-6:]!r}")
        if self.leftovers:
            found.append(f"{cmd}: left beside the output: {self.leftovers}")
        return found


def _cli(args: list[str], out_dir: Path | None, expected: str | None) -> Outcome:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "napari_vsr", *args],
            capture_output=True,
            text=True,
            timeout=TIME_LIMIT_S,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        rc, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, err = None, (exc.stderr or b"").decode(errors="replace")
    leftovers = []
    if out_dir is not None and out_dir.exists():
        keep = {expected} if rc == 0 and expected else set()
        leftovers = sorted(p.name for p in out_dir.iterdir() if p.name not in keep)
    return Outcome(args, rc, err, leftovers)


def _fingerprint(path: Path):
    try:
        st = path.lstat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def _output_name(path: Path) -> str:
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in (".tif", ".tiff", ".png", ".zarr"):
        return "out.tif"
    return "out.mkv"


def _check_input(name: str, path: Path, work: Path, clip: Path, recipe: bool) -> list[str]:
    out_dir = work / "out" / name.replace(os.sep, "_")
    out_dir.mkdir(parents=True)
    before = _fingerprint(path)
    problems = []
    if recipe:
        problems += _cli(["recipes", "check", str(path)], None, None).problems()
        target = out_dir / "out.mkv"
        args = [
            "enhance",
            str(clip),
            "-o",
            str(target),
            "--method",
            "classic",
            "--recipe",
            str(path),
            "-q",
        ]
        problems += _cli(args, out_dir, target.name).problems()
    else:
        problems += _cli(["info", str(path)], None, None).problems()
        target = out_dir / _output_name(path)
        args = ["enhance", str(path), "-o", str(target), "--method", "classic", "-q"]
        problems += _cli(args, out_dir, target.name).problems()
    if _fingerprint(path) != before:
        problems.append(f"{name}: the input was changed or removed")
    return problems


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    base = _load(HERE / "corpus_base.py")
    return base.build(tmp_path_factory.mktemp("clip"))["good.mp4"]


@pytest.mark.slow
@pytest.mark.parametrize("module_path", MODULES, ids=[p.stem for p in MODULES])
def test_every_corpus_input_ends_cleanly(module_path, tmp_path, clip):
    module = _load(module_path)
    cases = module.build(tmp_path / "corpus")
    assert cases, f"{module_path.name} builds no cases"
    recipe_role = getattr(module, "ROLE", "input") == "recipe"
    work = tmp_path / "work"
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(
                _check_input,
                name,
                Path(path),
                work,
                clip,
                recipe_role or Path(path).suffix.lower() in RECIPE_SUFFIXES,
            )
            for name, path in cases.items()
        }
        problems = [p for f in futures.values() for p in f.result()]
    assert not problems, "\n".join(problems)


def test_good_inputs_enhance_successfully(tmp_path):
    """The runner itself: the good cases of corpus_base must end with exit code 0."""
    cases = _load(HERE / "corpus_base.py").build(tmp_path / "c")
    name, path = next(iter(cases.items()))
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    target = out_dir / "out.mkv"
    result = _cli(
        ["enhance", str(path), "-o", str(target), "--method", "classic", "-q"], out_dir, target.name
    )
    assert result.rc == 0, result.stderr
    assert target.exists() and not result.leftovers
