"""The CLI's one-line answers to input mistakes: ranges, counts, ignored options, bad frames,
running out of host memory."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_vsr.cli import main
from napari_vsr.engine import enhance
from napari_vsr.errors import DeviceError
from napari_vsr.io import open_frames
from napari_vsr.models.device import is_out_of_memory, memory_kind

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


clips = _load("engine_clips_inputs", HERE / "clips.py")
toy = _load("engine_toy_inputs", HERE / "toy_enhancers.py")
corpus = _load("io_corpus_inputs", REPO / "tests" / "io" / "corpus_inputs.py")


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run(
        [sys.executable, "-m", "napari_vsr", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _lines(text: str) -> list[str]:
    return text.strip().splitlines()


@pytest.fixture(scope="module")
def three(tmp_path_factory) -> Path:
    return clips.make_video(tmp_path_factory.mktemp("three") / "three.mp4", 3)


# --- --frames beyond the end -------------------------------------------------------------------
def test_frames_past_the_end_warns_with_the_real_length(three, tmp_path):
    out = tmp_path / "out.mp4"
    result = _cli("enhance", str(three), "-o", str(out), "--method", "classic", "--frames", "1:200")
    assert result.returncode == 0, result.stderr
    warning = [line for line in _lines(result.stderr) if "warning" in line]
    assert warning == [
        f"napari-vsr enhance: warning: --frames 1:200: {three} has only 3 frames; enhancing "
        "frames 1:3"
    ]
    with open_frames(out) as res:
        assert len(res) == 2


def test_frames_wholly_past_the_end_is_a_usage_error(three, tmp_path):
    out = tmp_path / "out.mp4"
    result = _cli("enhance", str(three), "-o", str(out), "--method", "classic", "--frames", "5:200")
    assert result.returncode == 2
    assert _lines(result.stderr) == [
        f"napari-vsr enhance: error: --frames: '5:200' selects no frames of the 3 in {three}"
    ]
    assert not out.exists()


def test_frames_within_the_clip_give_no_warning(three, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    rc = main(["enhance", str(three), "-o", str(out), "--method", "classic", "--frames", "0:3"])
    assert rc == 0 and "warning" not in capsys.readouterr().err


# --- count options -------------------------------------------------------------------------------
@pytest.mark.parametrize("option", ["--chunk", "--overlap", "--tile", "--tile-overlap", "--crf"])
@pytest.mark.parametrize("value", ["abc", "-1", "1.5", ""])
def test_bad_count_names_the_option_not_a_function(three, tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as info:
        main(["enhance", str(three), "-o", str(tmp_path / "o.mp4"), option, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: expected a non-negative whole number, got {value!r}" in err
    assert "_positive" not in err and "invalid" not in err


def test_count_options_accept_zero_and_spaces(three, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    args = ["enhance", str(three), "-o", str(out), "--method", "classic", "--chunk", " 2 "]
    assert main([*args, "--overlap", "0", "-q"]) == 0


# --- options the classic method ignores ---------------------------------------------------------
def test_classic_warns_about_network_options(three, tmp_path):
    out = tmp_path / "out.mp4"
    result = _cli(
        "enhance", str(three), "-o", str(out), "--method", "classic", "-q",
        "--device", "cuda", "--precision", "fp16",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _lines(result.stderr)[0] == (
        "napari-vsr enhance: warning: --device/--precision apply to realbasicvsr only; ignored "
        "by the classic method"
    )
    assert out.exists()


def test_classic_without_network_options_does_not_warn(three, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert main(["enhance", str(three), "-o", str(out), "--method", "classic", "-q"]) == 0
    assert "warning" not in capsys.readouterr().err


# --- frames that do not decode --------------------------------------------------------------
@pytest.fixture(scope="module")
def corrupt_mkv(tmp_path_factory) -> Path:
    return corpus.corrupt_middle_mkv(tmp_path_factory.mktemp("bad") / "middle.mkv", frame=9)


@pytest.fixture(scope="module")
def corrupt_mp4(tmp_path_factory) -> Path:
    return corpus.corrupt_middle_mp4(tmp_path_factory.mktemp("bad") / "middle.mp4", frame=14)


def test_enhance_stops_at_lost_frames_naming_them(corrupt_mkv, tmp_path):
    out = tmp_path / "out.mp4"
    result = _cli("enhance", str(corrupt_mkv), "-o", str(out), "--method", "classic", "-q")
    assert result.returncode == 1
    (line,) = _lines(result.stderr)
    assert "frames 9, 10, 11 of 31 are missing" in line and str(corrupt_mkv) in line
    assert list(tmp_path.iterdir()) == []


def test_enhance_stops_at_an_undecodable_frame_naming_it(corrupt_mp4, tmp_path):
    out = tmp_path / "out.mkv"
    result = _cli("enhance", str(corrupt_mp4), "-o", str(out), "--method", "classic", "-q")
    assert result.returncode == 1
    (line,) = _lines(result.stderr)
    assert "frame 14 of 31 is unreadable" in line and "--skip-bad-frames" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["mkv", "mp4"])
def test_skip_bad_frames_replaces_and_reports(corrupt_mkv, corrupt_mp4, tmp_path, name):
    src = {"mkv": corrupt_mkv, "mp4": corrupt_mp4}[name]
    out = tmp_path / "out.mkv"
    result = _cli(
        "enhance", str(src), "-o", str(out), "--method", "classic", "--preset", "bicubic-x4",
        "-q", "--skip-bad-frames", "--lossless",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    wrote, warning = _lines(result.stderr)
    assert wrote == f"wrote 31 frames to {out}"
    if name == "mkv":
        assert warning == (
            "napari-vsr enhance: warning: replaced 3 undecodable frames (9, 10, 11) by the "
            "previous frame"
        )
    else:
        assert warning.startswith("napari-vsr enhance: warning: replaced ")
        assert "(14, " in warning and warning.endswith(") by the previous frame")
    with open_frames(out) as res, open_frames(src, skip_bad_frames=True) as inp:
        assert len(res) == 31
        # the output frames of the replaced inputs repeat the last good one's output
        replaced = {"mkv": [9, 10, 11], "mp4": [14]}[name]
        for i in replaced:
            np.testing.assert_array_equal(res[i], res[replaced[0] - 1])
        assert inp.metadata["skip_bad_frames"] is True


def test_info_names_lost_frames_and_lists_them_with_skip(corrupt_mkv):
    refused = _cli("info", str(corrupt_mkv))
    assert refused.returncode == 1 and len(_lines(refused.stderr)) == 1
    assert "frames 9, 10, 11 of 31 are missing" in refused.stderr
    shown = _cli("info", "--skip-bad-frames", str(corrupt_mkv))
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == ""
    (row,) = [line for line in _lines(shown.stdout) if line.startswith("missing frames")]
    assert row.split(None, 2)[2].startswith("3 (9, 10, 11): lost to corrupt data")
    js = _cli("info", "--skip-bad-frames", "--json", str(corrupt_mkv))
    assert '"missing_frames": [\n  9,\n  10,\n  11\n ]' in js.stdout


# --- out of host memory ------------------------------------------------------------------------
def _cpu_allocator_failure() -> RuntimeError:
    """A real failure of PyTorch's CPU allocator (1 PiB)."""
    try:
        torch.empty(2**50, dtype=torch.uint8)
    except RuntimeError as exc:
        return exc
    pytest.skip("this machine allocated 1 PiB")


def _numpy_failure() -> MemoryError:
    try:
        np.empty(2**62, dtype=np.uint8)
    except MemoryError as exc:
        return exc
    pytest.skip("this machine allocated 4 EiB")


def test_host_allocation_failures_are_out_of_memory():
    cpu = _cpu_allocator_failure()
    assert "DefaultCPUAllocator: can't allocate memory" in str(cpu)
    assert is_out_of_memory(cpu) and memory_kind(cpu) == "memory"
    numpy_error = _numpy_failure()
    assert "Unable to allocate" in str(numpy_error)
    assert is_out_of_memory(numpy_error) and memory_kind(numpy_error) == "memory"
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))  # not an allocation failure


class HostOomAbove(toy.UpscaleNearest):
    """Really fails to allocate host memory (PyTorch or numpy) for inputs above ``limit`` px."""

    def __init__(self, limit: int, *, how: str = "torch", tileable: bool = True):
        super().__init__(scale=2, chunk=4, tileable=tileable)
        self.limit, self.how = limit, how

    def enhance(self, frames: np.ndarray, *, step=None) -> np.ndarray:
        if max(frames.shape[1:3]) > self.limit:
            if self.how == "torch":
                torch.empty(2**50, dtype=torch.uint8)
            else:
                np.empty(2**62, dtype=np.uint8)
        return super().enhance(frames, step=step)


@pytest.mark.parametrize("how", ["torch", "numpy"])
def test_host_out_of_memory_retries_with_tiles(how):
    frames = np.random.default_rng(0).integers(0, 256, (4, 80, 100, 3), dtype=np.uint8)
    messages = []
    enh = HostOomAbove(60, how=how)
    out = np.stack(
        [
            f
            for _, f in enhance(
                frames,
                enh,
                tile=0,
                tile_overlap=4,
                progress=lambda p: p.message and messages.append(p.message),
            )
        ]
    )
    np.testing.assert_array_equal(out, frames.repeat(2, 1).repeat(2, 2))
    assert messages == ["out of memory: retrying the chunk with 50 px tiles"]


@pytest.mark.parametrize("how", ["torch", "numpy"])
def test_host_out_of_memory_untileable_is_one_clear_error(how):
    enh = HostOomAbove(4, how=how, tileable=False)
    with pytest.raises(DeviceError, match=r"out of memory on 2 frames of 8x8; use a smaller --chunk$"):
        list(enhance(np.zeros((2, 8, 8), np.uint8), enh))


def test_cli_host_out_of_memory_is_one_line(three, tmp_path, capsys, monkeypatch):
    import napari_vsr.enhancers as enhancers

    monkeypatch.setattr(
        enhancers, "make_enhancer", lambda *a, **k: HostOomAbove(4, tileable=False)
    )
    out = tmp_path / "out.mp4"
    assert main(["enhance", str(three), "-o", str(out), "--method", "classic", "-q"]) == 1
    (line,) = _lines(capsys.readouterr().err)
    assert line.startswith("napari-vsr enhance: error: out of memory on ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fails", [False, True])
def test_cli_closes_its_enhancer(three, tmp_path, monkeypatch, fails):
    import napari_vsr.enhancers as enhancers

    made = []

    def make(*a, **k):
        made.append(HostOomAbove(4 if fails else 10_000, tileable=False))
        return made[-1]

    monkeypatch.setattr(enhancers, "make_enhancer", make)
    out = tmp_path / "out.mp4"
    code = main(["enhance", str(three), "-o", str(out), "--method", "classic", "-q"])
    assert code == (1 if fails else 0)
    assert made and made[0].closed == 1  # the engine leaves closing to its caller, the CLI
