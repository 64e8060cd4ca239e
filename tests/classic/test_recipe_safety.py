"""Recipe files are safe to load: bounded size, UTF-8, no YAML aliases, bounded nesting, and
no recipe may ask for frames beyond the documented size limit (checked before any work)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_vsr.classic import Pipeline
from napari_vsr.classic.pipeline import MAX_FRAME_PIXELS, REFERENCE_SIZE
from napari_vsr.classic.recipe_text import MAX_DEPTH, MAX_RECIPE_BYTES
from napari_vsr.cli import main
from napari_vsr.enhancers import ClassicEnhancer, make_enhancer
from napari_vsr.errors import ParameterError, SourceNotFoundError, UnreadableMediaError

REPO = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


corpus = _load("vsr_corpus_safety", REPO / "tests" / "io" / "corpus_safety.py")
clips = _load("vsr_engine_clips", REPO / "tests" / "engine" / "clips.py")


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    return corpus.build(tmp_path_factory.mktemp("bad-recipes"))


def _refused(path: Path, match: str) -> ParameterError:
    with pytest.raises(ParameterError, match=match) as info:
        Pipeline.from_file(path)
    assert str(path) in str(info.value)
    return info.value


# --- the text of the file -------------------------------------------------------------------
def test_billion_laughs_is_refused_at_the_first_anchor(bad):
    t0 = time.perf_counter()
    _refused(bad["recipe-billion-laughs"], r"YAML anchor '&a0' found;.*\(line 1, column 5\)")
    assert time.perf_counter() - t0 < 1.0


def test_billion_laughs_under_a_memory_limit(bad):
    """What plain ``yaml.safe_load`` would expand into ~3.5 billion strings stays refused
    within a 2 GiB address-space limit (the process would die of MemoryError otherwise)."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from napari_vsr.classic.pipeline import Pipeline\n"
        "from napari_vsr.errors import ParameterError\n"
        "try:\n"
        "    Pipeline.from_file(sys.argv[1])\n"
        "except ParameterError as exc:\n"
        "    print('refused:', exc)\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", code, str(bad["recipe-billion-laughs"])],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "anchors or aliases" in done.stdout


def test_aliases_are_refused_even_as_merge_keys(bad):
    _refused(bad["recipe-merge-alias"], "anchor '&base'")
    # an alias without an anchor is refused by name too (not PyYAML's "undefined alias")
    path = bad["recipe-merge-alias"].with_name("alias-only.yaml")
    path.write_text("steps:\n  - *nowhere\n")
    _refused(path, r"alias '\*nowhere' found")


@pytest.mark.parametrize("case", ["recipe-deep-nesting", "recipe-deep-nesting-json"])
def test_deep_nesting_is_refused_without_recursion_error(bad, case):
    _refused(bad[case], f"nested deeper than {MAX_DEPTH} levels")


def test_nesting_inside_json_strings_is_not_counted(tmp_path):
    path = tmp_path / "brackets.json"
    path.write_text('{"name": "' + "[{" * 100 + '", "steps": [{"op": "equalize_hist"}]}')
    assert Pipeline.from_file(path).name == "[{" * 100


def test_too_many_values(bad):
    _refused(bad["recipe-many-values"], "more than 10,000 values")


def test_non_utf8_names_the_byte_and_offset(bad):
    err = _refused(bad["recipe-latin1"], r"not UTF-8 text \(byte 0xe9 at offset 9\)")
    assert str(err).startswith(f"{bad['recipe-latin1']}: not UTF-8 text")
    _refused(bad["recipe-utf16"], r"byte 0xff at offset 0")


def test_utf8_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf{"steps": [{"op": "equalize_hist"}]}')
    assert [s.op for s in Pipeline.from_file(path).steps] == ["equalize_hist"]


def test_size_cap(bad):
    assert bad["recipe-oversize"].stat().st_size > MAX_RECIPE_BYTES
    _refused(bad["recipe-oversize"], f"limited to {MAX_RECIPE_BYTES:,} bytes")


def test_huge_integer_is_refused_without_pythons_advice(bad):
    err = _refused(bad["recipe-huge-int"], "a number has thousands of digits")
    assert "set_int_max_str_digits" not in str(err)


def test_python_tags_are_refused(bad):
    _refused(bad["recipe-python-tag"], "not valid YAML")


def test_too_many_steps(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text("steps:\n" + "  - op: equalize_hist\n" * 300)
    _refused(path, "300 steps; a recipe has at most 256 steps")


def test_not_a_regular_file(tmp_path):
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    _refused(folder, "is a folder")
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    _refused(fifo, "not a regular file")  # never opened, so it cannot hang
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(SourceNotFoundError, match="recipe file not found"):
        Pipeline.from_file(tmp_path / "missing.yaml")
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    with pytest.raises(UnreadableMediaError, match="symbolic link loop"):
        Pipeline.from_file(tmp_path / "a.yaml")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_permission_denied_names_the_file(tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text("steps:\n  - op: equalize_hist\n")
    path.chmod(0)
    with pytest.raises(UnreadableMediaError, match="permission denied") as info:
        Pipeline.from_file(path)
    assert str(path) in str(info.value)


# --- the size it would produce --------------------------------------------------------------
def test_check_size_returns_the_output_size():
    p = Pipeline([("resize", {"factor": 4}), ("resize", {"factor": 0.5})], name="x2")
    assert p.check_size(360, 640) == (720, 1280)


def test_check_size_refuses_the_first_step_past_the_limit(bad):
    p = Pipeline.from_file(bad["recipe-resize-bomb"])
    assert p.scale == 16**4
    with pytest.raises(ParameterError, match=r"step 2 \(resize\): frames of 491520x276480") as e:
        p.check_size(*REFERENCE_SIZE)
    assert f"{MAX_FRAME_PIXELS:,} pixels per frame" in str(e.value)
    # x256 fits on a small input and not on a wide one
    small = Pipeline([("resize", {"factor": 16})] * 2, name="x256")
    assert small.check_size(8, 8) == (2048, 2048)
    with pytest.raises(ParameterError, match="65536 per side"):
        small.check_size(8, 300)


def test_peak_in_the_middle_counts_although_the_scale_is_one(bad):
    p = Pipeline.from_file(bad["recipe-resize-peak"])
    assert p.scale == 1.0
    with pytest.raises(ParameterError, match=r"step 3 \(resize\).*total scale x1\)"):
        p.check_size(16, 16)  # 65536 a side is allowed, 65536 x 65536 pixels are not


def test_enhancer_checks_before_allocating(bad):
    p = Pipeline.from_file(bad["recipe-resize-peak"])
    enhancer = ClassicEnhancer(p, workers=1)
    frames = np.zeros((2, 64, 64), np.uint8)  # 64 * 4096 = 262144 pixels a side in between
    with pytest.raises(ParameterError, match="step 3"):
        enhancer.enhance(frames)
    ok = ClassicEnhancer(Pipeline([("resize", {"factor": 2})], name="x2"), workers=1)
    assert ok.enhance(frames).shape == (2, 128, 128)


def test_make_enhancer_checks_a_given_frame_size(bad):
    with pytest.raises(ParameterError, match="step 2"):
        make_enhancer("classic", recipe=bad["recipe-resize-bomb"], frame_size=(360, 640))
    enhancer = make_enhancer("classic", preset="seed", frame_size=(360, 640))
    assert enhancer.scale == 4


# --- the command line -----------------------------------------------------------------------
def test_recipes_check_prints_the_output_size(capsys, tmp_path):
    path = tmp_path / "x4.yaml"
    path.write_text("steps:\n  - op: resize\n    factor: 4\n")
    assert main(["recipes", "check", str(path), "--size", "640x360"]) == 0
    assert "scale x4" in (out := capsys.readouterr().out) and "output 2560x1440" in out
    assert "for a 640x360 input" in out
    assert main(["recipes", "check", str(path)]) == 0
    assert "output 7680x4320 for a 1920x1080 input" in capsys.readouterr().out
    clip = clips.make_video(tmp_path / "clip.mp4", 2, height=48, width=64)
    assert main(["recipes", "check", str(path), "--input", str(clip)]) == 0
    assert "output 256x192 for a 64x48 input" in capsys.readouterr().out
    assert main(["recipes", "check", str(path), "--size", "640"]) == 2
    assert "expected WIDTHxHEIGHT" in capsys.readouterr().err


def test_recipes_check_refuses_with_the_input_named(capsys, tmp_path, bad):
    clip = clips.make_video(tmp_path / "clip.mp4", 2, height=48, width=64)
    path = bad["recipe-resize-bomb"]
    assert main(["recipes", "check", str(path), "--input", str(clip)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"from a 64x48 input ({clip})" in err
    assert main(["recipes", "check", str(path), "--size", "1x1"]) == 2  # x65536: 4.3 Gpx
    assert "frames of 65536x65536" in capsys.readouterr().err


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "napari_vsr", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )


@pytest.mark.parametrize("case", ["recipe-billion-laughs", "recipe-resize-bomb"])
def test_cli_check_and_enhance_refuse_with_one_line(tmp_path, bad, case):
    clip = clips.make_video(tmp_path / "clip.mp4", 3, height=36, width=64)
    done = _cli("recipes", "check", str(bad[case]))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"error: {bad[case]}: " in done.stderr
    out = tmp_path / "out" / "result.mp4"
    out.parent.mkdir()
    recipe = str(bad[case])
    # -q: without it the progress bar's first line comes before the enhancer's own check on
    # the first chunk, unless the CLI passes make_enhancer(frame_size=...)
    done = _cli(
        "enhance", str(clip), "-o", str(out), "--method", "classic", "--recipe", recipe, "-q"
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert list(out.parent.iterdir()) == []
