"""Bad inputs: each is refused with a project error that names the file and the cause."""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import pytest

from napari_vsr import _reader
from napari_vsr.errors import (
    CorruptFrameError,
    FrameStackError,
    SourceNotFoundError,
    SourcePermissionError,
    TruncatedMediaError,
    UnreadableMediaError,
    VsrError,
)
from napari_vsr.io import open_frames


@pytest.fixture(scope="module")
def bad(tmp_path_factory, media_mod):
    d = tmp_path_factory.mktemp("bad")
    full = media_mod.make_video(d / "full.mp4", n_frames=48, gop=12, bframes=2)
    data = full.read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])  # moov at the end: lost
    faststart = d / "faststart.mp4"
    with (
        av.open(str(full)) as src,
        av.open(str(faststart), "w", options={"movflags": "faststart"}) as out,
    ):
        s = out.add_stream_from_template(src.streams.video[0])
        for p in src.demux(src.streams.video[0]):
            if p.dts is not None:
                p.stream = s
                out.mux(p)
    fs = faststart.read_bytes()
    (d / "truncated_faststart.mp4").write_bytes(fs[: int(len(fs) * 0.6)])
    mkv = media_mod.make_video(d / "full.mkv", n_frames=48, gop=12).read_bytes()
    (d / "truncated.mkv").write_bytes(mkv[: int(len(mkv) * 0.6)])
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("this is a text file, not a video\n" * 20)
    media_mod.make_audio_only(d / "audio_only.mp4")
    return d


@pytest.mark.parametrize(
    "name,cls,words",
    [
        ("empty.mp4", UnreadableMediaError, "empty"),
        ("text.mp4", UnreadableMediaError, "not a readable video"),
        ("truncated.mp4", UnreadableMediaError, "truncated"),
        ("audio_only.mp4", UnreadableMediaError, "no video stream"),
        ("truncated_faststart.mp4", TruncatedMediaError, "truncated"),
        ("truncated.mkv", TruncatedMediaError, "truncated"),
    ],
)
def test_bad_file_is_refused_clearly(bad, name, cls, words):
    with pytest.raises(cls, match=words) as info:
        open_frames(bad / name)
    assert name in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, VsrError)


@pytest.mark.parametrize("name", ["truncated_faststart.mp4", "truncated.mkv"])
def test_truncation_says_how_many_frames_were_readable(bad, name):
    with pytest.raises(TruncatedMediaError) as info:
        open_frames(bad / name)
    n = info.value.readable_frames
    assert n is not None and 0 < n < 48
    assert f"only {n} frames" in str(info.value)


def test_audio_only_message_names_the_stream(bad):
    with pytest.raises(UnreadableMediaError, match=r"audio \(aac\)"):
        open_frames(bad / "audio_only.mp4")


def test_missing_path(tmp_path):
    with pytest.raises(SourceNotFoundError) as info:
        open_frames(tmp_path / "nope.mp4")
    assert isinstance(info.value, FileNotFoundError) and "nope.mp4" in str(info.value)


def test_unsupported_extension(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("x")
    with pytest.raises(UnreadableMediaError, match="unsupported file type"):
        open_frames(p)


def test_reader_hook_declines_without_raising(tmp_path, bad):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "lone.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    for path in (
        tmp_path / "notes.txt",
        tmp_path / "missing.xyz",
        tmp_path / "lone.png",  # single images are napari's built-in reader's job
        42,
        None,
        [str(tmp_path / "notes.txt")],
        [],
        [str(bad / "text.mp4"), "x.txt"],
    ):
        assert _reader.napari_get_reader(path) is None


def test_reader_hook_claims_then_raises_project_errors(bad, tmp_path):
    reader = _reader.napari_get_reader(str(bad / "text.mp4"))
    assert callable(reader)
    with pytest.raises(UnreadableMediaError, match="text.mp4"):
        reader(str(bad / "text.mp4"))
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    reader = _reader.napari_get_reader(str(empty))  # claimed, to say why it cannot be read
    with pytest.raises(FrameStackError, match="empty_dir: no image frames"):
        reader(str(empty))


# --- paths that are not regular files: refused at once, named ----------------------------------
REPO = Path(__file__).resolve().parents[2]
_corpus_spec = importlib.util.spec_from_file_location(
    "vsr_corpus_inputs", Path(__file__).with_name("corpus_inputs.py")
)
corpus = importlib.util.module_from_spec(_corpus_spec)
_corpus_spec.loader.exec_module(corpus)


def _run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return _run_python("import sys; from napari_vsr.cli import main; sys.exit(main())", *args)


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.mp4"
    os.mkfifo(path)
    return path


def test_fifo_is_refused_by_info_without_hanging(fifo):
    # a FIFO without a writer blocks whoever opens it: a hang shows up as TimeoutExpired
    result = _cli("info", str(fifo))
    assert result.returncode == 1, result.stderr
    assert "named pipe (FIFO)" in result.stderr and str(fifo) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_fifo_is_refused_by_enhance_without_hanging(fifo, tmp_path):
    out = tmp_path / "out.mp4"
    result = _cli("enhance", "--method", "classic", "-q", str(fifo), "-o", str(out))
    assert result.returncode == 1, result.stderr
    assert "named pipe (FIFO)" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["pipe.mp4"]


def test_fifo_through_the_napari_reader_hook_raises_without_hanging(fifo):
    code = (
        "import sys\n"
        "from napari_vsr import _reader\n"
        "reader = _reader.napari_get_reader(sys.argv[1])\n"
        "try:\n"
        "    reader(sys.argv[1])\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = _run_python(code, str(fifo))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("UnreadableMediaError") and "FIFO" in result.stdout


def test_fifo_video_frames_directly_refused(fifo):
    code = "import sys\nfrom napari_vsr.io.video_reader import VideoFrames\nVideoFrames(sys.argv[1])"
    result = _run_python(code, str(fifo))
    assert result.returncode == 1 and "named pipe (FIFO)" in result.stderr


def test_character_device_is_refused():
    with pytest.raises(UnreadableMediaError, match="character device") as info:
        open_frames("/dev/null")
    assert "/dev/null" in str(info.value)


def test_socket_is_refused(tmp_path):
    path = tmp_path / "s.mkv"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
        with pytest.raises(UnreadableMediaError, match="socket"):
            open_frames(path)


@pytest.mark.parametrize("links", [1, 2])
def test_symlink_loop_is_named(tmp_path, links):
    names = [tmp_path / f"loop{k}.mkv" for k in range(links)]
    for k, name in enumerate(names):
        os.symlink(names[(k + 1) % links].name, name)
    with pytest.raises(UnreadableMediaError, match="symlink loop") as info:
        open_frames(names[0])
    assert str(names[0]) in str(info.value)


def test_dangling_symlink_names_its_target(tmp_path):
    link = tmp_path / "clip.mp4"
    os.symlink("gone.mp4", link)
    with pytest.raises(SourceNotFoundError, match="dangling symlink.*gone.mp4") as info:
        open_frames(link)
    assert isinstance(info.value, FileNotFoundError) and str(link) in str(info.value)


def test_path_through_a_file_is_not_found(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SourceNotFoundError, match="part of the path is a file"):
        open_frames(tmp_path / "file" / "clip.mp4")


def test_permission_error_names_the_path(videos, monkeypatch):
    # root reads everything: the OS error is simulated where the check opens the file
    path = videos["vfr_mkv"]
    real_open = os.open

    def refuse(p, flags, *args, **kwargs):
        if os.fspath(p) == os.fspath(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(p))
        return real_open(p, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(SourcePermissionError, match="permission denied") as info:
        open_frames(path)
    assert isinstance(info.value, PermissionError) and isinstance(info.value, VsrError)
    assert str(path) in str(info.value)


def _unprivileged_prefix() -> list[str] | None:
    """A command prefix that runs without the right to bypass file permissions, or None."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    probe = subprocess.run(
        [setpriv, "--bounding-set=-dac_override,-dac_read_search", "true"], capture_output=True
    )
    return (
        [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
        if probe.returncode == 0
        else None
    )


@pytest.mark.parametrize("what", ["file", "folder"])
def test_permission_denied_for_real(tmp_path, media_mod, what):
    prefix = _unprivileged_prefix()
    if prefix is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    if what == "file":
        target = media_mod.make_video(tmp_path / "secret.mkv", n_frames=4)
    else:
        target = tmp_path / "frames"
        target.mkdir()
    os.chmod(target, 0)
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "napari_vsr", "info", str(target)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    finally:
        os.chmod(target, 0o700)
    assert result.returncode == 1, result.stderr
    assert f"{target}: permission denied" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- corrupt data in the middle: never silently fewer or wrong frames ------------------------
@pytest.fixture(scope="module")
def corrupt(tmp_path_factory):
    d = tmp_path_factory.mktemp("corrupt")
    return {
        "mkv": corpus.corrupt_middle_mkv(d / "middle.mkv", frame=9),
        "mp4": corpus.corrupt_middle_mp4(d / "middle.mp4", frame=14),
    }


def _assert_no_lies(frames, media_mod):
    """Every frame shows its own barcode, or, if replaced, the last good frame before it."""
    codes = [media_mod.read_barcode(frames[i]) for i in range(len(frames))]
    replaced = set(frames.replaced_frames)  # complete once every frame was read
    last_good = None
    for i, code in enumerate(codes):
        if i in replaced:
            assert code == last_good, (i, codes)
        else:
            assert code == i, (i, codes)
            last_good = i
    return codes, sorted(replaced)


def test_matroska_frames_lost_in_the_middle_are_named(corrupt):
    # the demuxer resyncs past the damaged block: before, 28 of 31 frames came out, rc 0
    with pytest.raises(CorruptFrameError, match=r"frames 9, 10, 11 of 31 are missing") as info:
        open_frames(corrupt["mkv"])
    assert info.value.frame_index == 9 and isinstance(info.value, TruncatedMediaError)
    assert "middle.mkv" in str(info.value) and "--skip-bad-frames" in str(info.value)


def test_matroska_lost_frames_replaced_with_skip_bad_frames(corrupt, media_mod):
    with open_frames(corrupt["mkv"], skip_bad_frames=True) as frames:
        assert len(frames) == corpus.N_FRAMES  # what the container's timing says
        assert frames.metadata["missing_frames"] == [9, 10, 11]
        codes, replaced = _assert_no_lies(frames, media_mod)
        assert replaced == [9, 10, 11] and codes[9:12] == [8, 8, 8]
        assert frames.metadata["replaced_frames"] == replaced


def test_matroska_lost_frames_found_at_ntsc_rates(tmp_path, media_mod):
    # millisecond timestamps at 30000/1001 fps step by 33 and 34: still a regular grid
    path = corpus.corrupt_middle_mkv(tmp_path / "ntsc.mkv", frame=9, fps=Fraction(30000, 1001))
    with pytest.raises(CorruptFrameError, match=r"frames 9, 10, 11 of 31 are missing"):
        open_frames(path)
    with open_frames(path, skip_bad_frames=True) as frames:
        _, replaced = _assert_no_lies(frames, media_mod)
    assert replaced == [9, 10, 11]


def test_dropped_frames_in_the_timing_alone_are_not_corruption(tmp_path, media_mod):
    # a screen recording that dropped frames: a hole in the timestamps, but no data lost
    times = [i / 25 for i in range(31) if i not in (9, 10, 11)]
    path = media_mod.make_video(tmp_path / "drops.mkv", n_frames=len(times), frame_times=times)
    with open_frames(path) as frames:
        assert len(frames) == 28 and frames.metadata["missing_frames"] == []
        assert [media_mod.read_barcode(f) for f in frames] == list(range(28))


def test_undecodable_mp4_frame_stops_reading_with_its_index(corrupt, media_mod):
    with open_frames(corrupt["mp4"]) as frames:
        assert len(frames) == corpus.N_FRAMES
        got = []
        with pytest.raises(CorruptFrameError, match="frame 14 of 31 is unreadable") as info:
            for i in range(len(frames)):
                got.append(media_mod.read_barcode(frames[i]))
    assert info.value.frame_index == 14
    assert got == list(range(len(got))) and len(got) <= 14  # nothing wrong before it


def test_undecodable_frame_seeked_to_directly(corrupt, media_mod):
    with open_frames(corrupt["mp4"]) as frames:
        assert media_mod.read_barcode(frames[26]) == 26  # the next GOP decodes
        with pytest.raises(CorruptFrameError) as info:
            frames[14]
        assert info.value.frame_index == 14
        with pytest.raises(CorruptFrameError) as info:  # it refers to frame 14
            frames[20]
        assert info.value.frame_index == 14
        with pytest.raises(CorruptFrameError):  # known bad: refused again at once
            frames[14]


def test_undecodable_mp4_frame_replaced_with_skip_bad_frames(corrupt, media_mod):
    with open_frames(corrupt["mp4"], skip_bad_frames=True) as frames:
        codes, replaced = _assert_no_lies(frames, media_mod)
    # the refused frame and the ones decoded after it from its broken references, up to the
    # next keyframe (24), are replaced; the frames of the other GOPs are untouched
    assert 14 in replaced and all(14 <= i < 24 for i in replaced)
    assert codes[24:] == list(range(24, corpus.N_FRAMES))


def test_undecodable_frame_seeked_with_skip_bad_frames(corrupt, media_mod):
    with open_frames(corrupt["mp4"], skip_bad_frames=True) as frames:
        assert media_mod.read_barcode(frames[14]) == 13
        assert frames.replaced_frames == [14]
        assert media_mod.read_barcode(frames[13]) == 13


def test_intact_files_have_no_missing_or_replaced_frames(videos):
    for name in ("vfr_mkv", "h264_bframes", "mpeg4_avi"):
        with open_frames(videos[name], skip_bad_frames=True) as frames:
            frames[:]
            assert frames.metadata["missing_frames"] == [] and frames.replaced_frames == []


def test_header_claiming_a_huge_picture_is_refused(tmp_path):
    path = corpus.huge_header_avi(tmp_path / "huge.avi")
    with pytest.raises(TruncatedMediaError, match="headers do not match its data"):
        open_frames(path)


def test_every_corpus_input_is_refused_by_a_project_error_or_read(tmp_path):
    made = corpus.build(tmp_path / "corpus")
    assert set(made) >= {"fifo", "symlink_loop", "corrupt_middle_mkv", "dir_named_mp4"}
    outcomes = {}
    for name, path in made.items():
        try:
            with open_frames(path) as frames:
                frames[:]  # every frame decodes, or the error names the bad one
            outcomes[name] = "read"
        except VsrError as exc:
            assert str(path) in str(exc), (name, exc)
            outcomes[name] = type(exc).__name__
    assert outcomes["fifo"] == "UnreadableMediaError"
    assert outcomes["corrupt_middle_mkv"] == outcomes["corrupt_middle_mp4"] == "CorruptFrameError"
    assert outcomes["dangling_symlink"] == "SourceNotFoundError"
    assert "read" not in outcomes.values()
