"""``napari-vsr enhance``, ``split`` and ``merge`` on real generated media."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_vsr.cli import main
from napari_vsr.io import open_frames
from napari_vsr.jobs.metadata import result_metadata

_spec = importlib.util.spec_from_file_location("engine_clips", Path(__file__).with_name("clips.py"))
clips = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(clips)

REPO = Path(__file__).resolve().parents[2]


def _no_leftovers(folder: Path, keep: set[str]) -> None:
    extra = sorted(p.name for p in folder.iterdir() if p.name not in keep)
    assert extra == [], f"unexpected files left: {extra}"


@pytest.mark.parametrize("fps", ["25/2", "25", "30000/1001"])
def test_fps_and_timestamps_kept(tmp_path, fps):
    src = clips.make_video(tmp_path / "in.mp4", 6, fps=fps)
    out = tmp_path / "out.mp4"
    rc = main(
        ["enhance", str(src), "-o", str(out), "--method", "classic", "--preset", "bicubic-x4", "-q"]
    )
    assert rc == 0
    with open_frames(out) as res, open_frames(src) as inp:
        assert res.shape == (6, 128, 192, 3)
        assert Fraction(res.metadata["fps_fraction"]) == Fraction(fps)
        np.testing.assert_allclose(res.frame_times(), inp.frame_times(), atol=1e-3)


def test_audio_copied_with_same_duration(tmp_path):
    src = clips.make_video(tmp_path / "in.mp4", 25, fps=25, audio_s=1.0)
    out = tmp_path / "out.mkv"
    assert main(["enhance", str(src), "-o", str(out), "--method", "classic", "-q"]) == 0
    with open_frames(out) as res:
        assert res.metadata["has_audio"] and len(res) == 25
    assert clips.audio_duration(out) == pytest.approx(clips.audio_duration(src), abs=1e-3)
    out2 = tmp_path / "silent.mp4"
    assert (
        main(["enhance", str(src), "-o", str(out2), "--method", "classic", "--no-audio", "-q"]) == 0
    )
    assert clips.audio_duration(out2) is None


def test_audio_trimmed_to_a_frame_range(tmp_path):
    """``--frames`` keeps the audio of the selected frames only (the job assembles the video
    once, from its segments, with the source's streams cut to the range)."""
    src = clips.make_video(tmp_path / "in.mp4", 50, fps=25, audio_s=2.0)
    out = tmp_path / "part.mkv"
    args = ["enhance", str(src), "-o", str(out), "--method", "classic", "-q"]
    assert main([*args, "--frames", "10:35", "--segment", "8", "--chunk", "4"]) == 0
    with open_frames(out) as res:
        assert res.metadata["has_audio"] and len(res) == 25
    assert clips.audio_duration(out) == pytest.approx(1.0, abs=0.05)


def test_existing_output_refused_unless_overwrite(tmp_path, capsys):
    src = clips.make_video(tmp_path / "in.mp4", 3)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    rc = main(["enhance", str(src), "-o", str(out), "--method", "classic", "-q"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == b"keep me"
    assert (
        main(["enhance", str(src), "-o", str(out), "--method", "classic", "-q", "--overwrite"]) == 0
    )
    with open_frames(out) as res:
        assert len(res) == 3
    _no_leftovers(tmp_path, {"in.mp4", "out.mp4"})


def test_usage_errors_exit_2(tmp_path, capsys):
    src = clips.make_video(tmp_path / "in.mp4", 3)
    assert main(["enhance", str(src), "-o", str(tmp_path / "o.mp4"), "--frames", "x:y"]) == 2
    assert main(["enhance", str(src), "-o", str(tmp_path / "o.bad"), "--method", "classic"]) == 2
    assert (
        main(
            [
                "enhance",
                str(src),
                "-o",
                str(tmp_path / "o.tif"),
                "--method",
                "classic",
                "--crf",
                "20",
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "enhance",
                str(src),
                "-o",
                str(tmp_path / "o.tif"),
                "--method",
                "classic",
                "--weights",
                "w.pth",
            ]
        )
        == 2
    )
    assert main(["enhance", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o.mp4")]) == 1
    _no_leftovers(tmp_path, {"in.mp4"})


def test_uint16_gray_tiff_stack_keeps_dtype_and_ndim(tmp_path, golden_dir):
    rng = np.random.default_rng(3)
    stack = (rng.random((5, 12, 16)) * 40000 + 5000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", stack, photometric="minisblack")
    out = tmp_path / "out.tif"
    weights = golden_dir / "realbasicvsr_random_mmedit_layout.pth"
    rc = main(
        [
            "enhance",
            str(tmp_path / "in.tif"),
            "-o",
            str(out),
            "--weights",
            str(weights),
            "--device",
            "cpu",
            "-q",
        ]
    )
    assert rc == 0
    res = tifffile.imread(out)
    assert res.dtype == np.uint16 and res.shape == (5, 48, 64)


def test_frame_range_and_zarr_output(tmp_path):
    src = clips.make_video(tmp_path / "in.mp4", 10)
    out = tmp_path / "out.zarr"
    assert (
        main(
            [
                "enhance",
                str(src),
                "-o",
                str(out),
                "--method",
                "classic",
                "--preset",
                "bicubic-x4",
                "--frames",
                "2:7",
                "-q",
            ]
        )
        == 0
    )
    from napari_vsr.io.zarr_store import open_result_store

    arr = open_result_store(out, mode="r")
    assert arr.shape == (5, 128, 192, 3) and arr.dtype == np.uint8
    md = result_metadata(dict(arr.attrs))
    assert md["frame_range"] == [2, 7] and md["fps"] == "25/1" and arr.attrs["fps"] == 25


def test_classic_recipe_file(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "name: mine\nsteps:\n- op: gaussian_blur\n  ksize: 3\n  sigma: 0.0\n"
        "- op: resize\n  factor: 2.0\n  interpolation: bilinear\n"
    )
    frames = np.random.default_rng(0).integers(0, 255, (3, 10, 14, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "in.tif", frames, photometric="rgb")
    out = tmp_path / "out.tif"
    assert (
        main(
            [
                "enhance",
                str(tmp_path / "in.tif"),
                "-o",
                str(out),
                "--method",
                "classic",
                "--recipe",
                str(recipe),
                "-q",
            ]
        )
        == 0
    )
    res = tifffile.imread(out)
    assert res.shape == (3, 20, 28, 3) and res.dtype == np.uint8
    from napari_vsr.classic import Pipeline

    expect = np.stack([Pipeline.from_file(recipe).apply(f) for f in frames])
    np.testing.assert_array_equal(res, expect)
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n- op: no_such_operator\n")
    assert (
        main(
            [
                "enhance",
                str(tmp_path / "in.tif"),
                "-o",
                str(tmp_path / "x.tif"),
                "--method",
                "classic",
                "--recipe",
                str(bad),
                "-q",
            ]
        )
        == 2
    )


def test_split_and_merge_round_trip(tmp_path):
    src = clips.make_video(tmp_path / "in.mp4", 7, fps="30000/1001")
    assert main(["split", str(src), str(tmp_path / "frames"), "-q"]) == 0
    pngs = sorted((tmp_path / "frames").glob("*.png"))
    assert len(pngs) == 7
    assert (
        main(
            [
                "merge",
                str(tmp_path / "frames"),
                str(tmp_path / "back.mkv"),
                "--fps",
                "30000/1001",
                "--lossless",
                "-q",
            ]
        )
        == 0
    )
    with open_frames(tmp_path / "back.mkv") as back, open_frames(tmp_path / "frames") as frames:
        assert len(back) == 7 and Fraction(back.metadata["fps_fraction"]) == Fraction(30000, 1001)
        np.testing.assert_array_equal(back[:], frames[:])
    assert (
        main(["merge", str(tmp_path / "frames"), str(tmp_path / "back.mkv"), "--fps", "25", "-q"])
        == 1
    )
    assert (
        main(["merge", str(tmp_path / "frames"), str(tmp_path / "x.mp4"), "--fps", "0", "-q"]) == 2
    )


@pytest.mark.parametrize("fps", ["29.97", "30000/1001"])
def test_merge_fps_decimal_means_ntsc(tmp_path, fps, capsys):
    """``--fps 29.97`` is 30000/1001 (the one parser), not 2997/100."""
    src = clips.make_video(tmp_path / "in.mp4", 3, fps="30000/1001")
    assert main(["split", str(src), str(tmp_path / "frames"), "-q"]) == 0
    out = tmp_path / "back.mkv"
    assert main(["merge", str(tmp_path / "frames"), str(out), "--fps", fps, "-q"]) == 0
    with open_frames(out) as back:
        assert Fraction(back.metadata["fps_fraction"]) == Fraction(30000, 1001)
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "frames"), str(tmp_path / "x.mp4"), "--fps", "fast"]) == 2
    err = capsys.readouterr().err
    assert "--fps" in err and "'fast'" in err


def test_signal_handlers_are_restored_after_main(tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    src = clips.make_video(tmp_path / "in.mp4", 2)
    out = str(tmp_path / "o.tif")
    assert main(["enhance", str(src), "-o", out, "--method", "classic", "-q"]) == 0
    after = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    assert after == before


_PEAK_RSS = (
    "import resource, sys\n"
    "from napari_vsr.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    "sys.exit(rc)\n"
)


def _peak_rss_mb(*args: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_does_not_grow_with_length(tmp_path):
    n, h, w = 2000, 48, 64
    src = clips.make_video(tmp_path / "long.mp4", n, height=h, width=w)
    common = ["--method", "classic", "--preset", "bicubic-x4", "-q"]
    short = _peak_rss_mb(
        "enhance", str(src), "-o", str(tmp_path / "short.mp4"), "--frames", "0:20", *common
    )
    full = _peak_rss_mb("enhance", str(src), "-o", str(tmp_path / "full.mp4"), *common)
    with open_frames(tmp_path / "full.mp4") as res:
        assert len(res) == n
    whole_output_mb = n * 4 * h * 4 * w * 3 / 2**20  # what keeping every output would cost
    assert whole_output_mb > 250
    assert full - short < 120, f"peak RSS {full} MB for {n} frames vs {short} MB for 20"
