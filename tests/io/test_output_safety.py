"""Outputs never destroy data: overwrite rules, the input as output, leftovers of killed runs,
parent folders, pre-flight checks (writable folder, free space, memory) and one-line sink
errors (read-only folder, disk full), through the library and through the real CLI."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_vsr.errors import (
    InsufficientMemoryError,
    OutputExistsError,
    OutputIsInputError,
    ParameterError,
    UnsafeOutputError,
    WriteError,
)
from napari_vsr.host_memory import (
    MEMORY_ENV,
    available_memory_bytes,
    chunk_memory_bytes,
    parse_size,
    plan_chunk,
)
from napari_vsr.io import VideoOptions, open_frames, open_writer, write_frames_to, writer_kind
from napari_vsr.io.writer_base import (
    MARKER_NAME,
    check_not_input,
    is_own_folder,
    sweep_partials,
    temp_path_beside,
    translate_os_error,
)

REPO = Path(__file__).resolve().parents[2]
KINDS = ["x.mp4", "x.mkv", "x.tif", "x.frames", "x.zarr"]


@pytest.fixture
def clip(media_mod) -> np.ndarray:
    return np.stack([media_mod.barcode_frame(i, 48, 64) for i in range(4)])


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _user_folder(path: Path) -> dict[str, bytes]:
    path.mkdir(parents=True)
    files = {"thesis.txt": b"years of work", "frame_000000.png": b"not ours"}
    for name, data in files.items():
        (path / name).write_bytes(data)
    return files


def _assert_untouched(path: Path, files: dict[str, bytes]) -> None:
    assert sorted(p.name for p in path.iterdir()) == sorted(files)
    for name, data in files.items():
        assert (path / name).read_bytes() == data


# --- markers and overwrite rules -------------------------------------------------------------
@pytest.mark.parametrize("name", ["x.frames", "x.zarr"])
def test_folder_outputs_carry_the_marker_and_can_be_replaced(tmp_path, clip, name):
    target = tmp_path / name
    w = open_writer(target)
    w.write(clip[0])
    assert is_own_folder(w.temp_path)  # the partial is marked too
    w.write(clip[1])
    w.close()
    doc = json.loads((target / MARKER_NAME).read_text())
    assert doc["tool"] == "napari-vsr" and doc["kind"] in ("frames", "zarr") and doc["version"]
    write_frames_to(target, clip[:3], overwrite=True)
    with open_frames(target) if name.endswith(".frames") else _zarr(target) as v:
        assert v.shape[0] == 3
    assert _listing(tmp_path) == [name]


class _zarr:
    def __init__(self, path):
        from napari_vsr.io.zarr_store import open_result_store

        self.array = open_result_store(path, mode="r")

    def __enter__(self):
        return self.array

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("name", ["x.frames", "x.zarr", "plain_folder"])
def test_a_users_folder_is_never_replaced(tmp_path, clip, name):
    target = tmp_path / name
    files = _user_folder(target)
    with pytest.raises(UnsafeOutputError, match="napari-vsr did not write; refusing") as info:
        write_frames_to(target, clip[:2], overwrite=True)
    assert isinstance(info.value, FileExistsError) and str(target) in str(info.value)
    _assert_untouched(target, files)
    assert _listing(tmp_path) == [name]


@pytest.mark.parametrize("name", ["x.mp4", "x.mkv", "x.tif"])
def test_a_file_target_never_becomes_a_folder(tmp_path, clip, name):
    target = tmp_path / name
    files = _user_folder(target)
    assert writer_kind(target) != "frames"
    with pytest.raises(UnsafeOutputError, match="is a folder"):
        write_frames_to(target, clip[:2], overwrite=True)
    with pytest.raises(OutputExistsError):
        write_frames_to(target, clip[:2])
    _assert_untouched(target, files)
    assert _listing(tmp_path) == [name]


def test_a_folder_target_never_replaces_a_file(tmp_path, clip):
    target = tmp_path / "frames_out"
    target.write_bytes(b"a file")
    with pytest.raises(UnsafeOutputError, match="is a file"):
        write_frames_to(target, clip[:2], overwrite=True)
    assert target.read_bytes() == b"a file" and _listing(tmp_path) == ["frames_out"]


def test_a_marker_appearing_in_a_users_folder_must_be_ours(tmp_path, clip):
    target = tmp_path / "out.frames"
    files = _user_folder(target)
    (target / MARKER_NAME).write_text('{"tool": "something-else"}')
    files[MARKER_NAME] = (target / MARKER_NAME).read_bytes()
    with pytest.raises(UnsafeOutputError):
        write_frames_to(target, clip[:2], overwrite=True)
    _assert_untouched(target, files)


def test_output_equal_to_input_is_refused(tmp_path):
    src = tmp_path / "in.mp4"
    src.write_bytes(b"source")
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    hard = tmp_path / "hard.mp4"
    os.link(src, hard)
    for target in (src, link, hard, tmp_path / "sub" / ".." / "in.mp4"):
        with pytest.raises(OutputIsInputError, match="is also the input"):
            check_not_input(target, src)
    # a folder output that holds the input
    with pytest.raises(OutputIsInputError, match="holds the input"):
        check_not_input(tmp_path, src)
    check_not_input(tmp_path / "other.mp4", src, None)  # fine
    assert src.read_bytes() == b"source"


# --- leftovers of killed runs ------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_dead_runs_are_swept_live_ones_kept(tmp_path, clip, caplog):
    target = tmp_path / "out.tif"
    dead = _dead_pid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead_file = tmp_path / f".out.tif.partial-{dead}-deadbeef.tif"
        dead_file.write_bytes(b"half a tiff")
        live_file = tmp_path / f".out.tif.partial-{sleeper.pid}-cafe0001.tif"
        live_file.write_bytes(b"being written")
        other = tmp_path / f".other.tif.partial-{dead}-deadbeef.tif"
        other.write_bytes(b"another target's")
        user_dir = tmp_path / f".out.tif.partial-{dead}-0000beef"  # no marker: not ours
        user_dir.mkdir()
        with caplog.at_level(logging.WARNING, logger="napari_vsr.io.writer_base"):
            write_frames_to(target, clip[:2])
        assert not dead_file.exists()
        assert live_file.exists() and other.exists() and user_dir.exists()
        assert any(str(dead_file) in r.getMessage() for r in caplog.records)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_partial_folders_of_dead_runs_are_swept(tmp_path, clip):
    from napari_vsr.io.writer_base import write_marker

    target = tmp_path / "out.zarr"
    w = open_writer(target)
    w.write(clip[0])
    assert f".partial-{os.getpid()}-" in w.temp_path.name and is_own_folder(w.temp_path)
    w.abort()
    assert _listing(tmp_path) == []
    left = tmp_path / f".out.zarr.partial-{_dead_pid()}-12345678"
    left.mkdir()
    write_marker(left, "zarr")
    (left / "zarr.json").write_text("{}")
    assert sweep_partials(target) == [left] and _listing(tmp_path) == []


def test_temp_names_carry_the_pid(tmp_path):
    p = temp_path_beside(tmp_path / "a.mp4")
    assert p.name.startswith(f".a.mp4.partial-{os.getpid()}-") and p.suffix == ".mp4"


# --- parent folders ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", KINDS)
def test_every_sink_creates_parents_and_removes_them_on_failure(tmp_path, clip, name):
    target = tmp_path / "a" / "b" / name
    with pytest.raises(RuntimeError):
        with open_writer(target) as w:
            w.write(clip[0])
            raise RuntimeError("stop")
    assert _listing(tmp_path) == []
    write_frames_to(target, clip[:2])
    assert target.exists() and _listing(target.parent) == [name]


# --- pre-flight ---------------------------------------------------------------------------------
def _mount(args: list[str]) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a test file system needs root and mount(8)")
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")


@pytest.fixture
def small_fs(tmp_path):
    """A real 1 MiB tmpfs, to fill up."""
    d = tmp_path / "small"
    d.mkdir()
    _mount(["-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)])
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


@pytest.fixture
def readonly_dir(tmp_path):
    """A real read-only folder (read-only bind mount: root ignores permission bits)."""
    d = tmp_path / "ro"
    d.mkdir()
    (d / "existing.txt").write_text("x")
    _mount(["--bind", str(d), str(d)])
    done = subprocess.run(["mount", "-o", "remount,bind,ro", str(d)], capture_output=True)
    if done.returncode != 0:
        subprocess.run(["umount", "-l", str(d)], check=False)
        pytest.skip("cannot remount read-only here")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


@pytest.mark.parametrize("name", KINDS)
def test_read_only_folder_is_one_line_before_any_work(readonly_dir, clip, name):
    target = readonly_dir / name
    with pytest.raises(WriteError, match="read-only file system") as info:
        w = open_writer(target)
        w.preflight(clip.shape[1:], clip.dtype, len(clip))
    assert "\n" not in str(info.value) and str(target) in str(info.value)
    with pytest.raises(WriteError, match="read-only file system"):
        open_writer(readonly_dir / "new" / name)  # creating the parent fails the same way
    assert _listing(readonly_dir) == ["existing.txt"]


@pytest.mark.parametrize("name", KINDS)
def test_disk_full_says_no_space_left(small_fs, name, rng):
    frames = rng.integers(0, 256, (64, 192, 256, 3), dtype=np.uint8)  # 9 MB of noise
    with pytest.raises(WriteError) as info:
        write_frames_to(small_fs / name, frames, video=VideoOptions(lossless=name == "x.mkv"))
    text = str(info.value)
    assert f"no space left on {small_fs}" in text and "\n" not in text, text
    assert _listing(small_fs) == []


def test_free_space_warning(small_fs, clip, caplog):
    w = open_writer(small_fs / "x.tif")
    with caplog.at_level(logging.WARNING, logger="napari_vsr.io.writer_base"):
        w.preflight(clip.shape[1:], clip.dtype, 10)
        assert not caplog.records  # 90 KB fit
        w.preflight(clip.shape[1:], clip.dtype, 1000)  # ~9 MB do not
    [record] = caplog.records
    assert "may need about" in record.getMessage() and str(small_fs) in record.getMessage()
    w.abort()
    assert _listing(small_fs) == []


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "no space left on"),
        (errno.EDQUOT, "no space left on"),
        (errno.EROFS, "read-only file system"),
        (errno.EACCES, "no permission to write in"),
        (errno.EFBIG, "too large"),
    ],
)
def test_translate_os_error(tmp_path, code, words):
    target = tmp_path / "out.tif"
    cause = OSError(code, os.strerror(code), str(target))
    err = translate_os_error(cause, target, "writing frame 3")
    assert isinstance(err, WriteError) and isinstance(err, OSError)
    assert words in str(err) and str(target) in str(err) and "\n" not in str(err)
    # a project error that wraps an OS error (PyAV, zarr) is translated by its cause
    try:
        try:
            raise cause
        except OSError as exc:
            raise WriteError("encoding frame 3 failed", path=target) from exc
    except WriteError as wrapped:
        assert words in str(translate_os_error(wrapped, target, "encoding"))
    plain = WriteError("no frames", path=target)
    assert translate_os_error(plain, target, "x") is plain


# --- memory --------------------------------------------------------------------------------------
def test_parse_size():
    assert parse_size("8G") == 8 * 2**30 and parse_size("512m") == 512 * 2**20
    assert parse_size("1000") == 1000 and parse_size("1.5K") == 1536
    with pytest.raises(ParameterError, match=MEMORY_ENV):
        parse_size("lots")


def test_available_memory_follows_meminfo_and_the_cap(monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    avail = available_memory_bytes()
    text = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    if "MemAvailable" in text:
        kb = int(text.split("MemAvailable:")[1].split()[0])
        assert 0 < avail <= kb * 1024 * 1.05
    monkeypatch.setenv(MEMORY_ENV, "64M")
    assert available_memory_bytes() == 64 * 2**20


def test_a_huge_frame_is_refused_before_any_work():
    # the crafted 16000x16000 header of the issue, x4: refused on any real machine
    with pytest.raises(InsufficientMemoryError, match="one frame") as info:
        plan_chunk(
            (16000, 16000, 3), (64000, 64000, 3), length=10, chunk=4, overlap=1,
            explicit=False, source="crafted.mkv",
        )  # fmt: skip
    assert isinstance(info.value, MemoryError) and "crafted.mkv" in str(info.value)


def test_chunk_memory_plan():
    one = chunk_memory_bytes((100, 100, 3), (400, 400, 3), 3, 1)
    assert one == 16 * 3 * 30000 + 8 * 480000
    avail = chunk_memory_bytes((100, 100, 3), (400, 400, 3), 6, 4) / 0.85 + 1
    args = dict(length=50, overlap=1, available=int(avail))
    assert plan_chunk((100, 100, 3), (400, 400, 3), chunk=4, explicit=True, **args) == 4
    assert plan_chunk((100, 100, 3), (400, 400, 3), chunk=16, explicit=False, **args) == 4
    with pytest.raises(InsufficientMemoryError, match=r"--chunk 16 .* use --chunk 4 or less"):
        plan_chunk((100, 100, 3), (400, 400, 3), chunk=16, explicit=True, **args)


# --- the CLI, as a user runs it -------------------------------------------------------------------
def _video(path: Path, n: int = 4, size=(48, 64)) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("m", Path(__file__).with_name("media.py"))
    media = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(media)
    return media.make_video(path, n_frames=n, size=size)


def _run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "napari_vsr", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, **(env or {})),
        timeout=timeout,
    )


def _one_error_line(done: subprocess.CompletedProcess, rc: int, *words: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == rc, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


class _Done:
    """An in-process ``main()`` run in the shape of a CompletedProcess (for the variants; the
    main case of each rule runs as a real subprocess)."""

    def __init__(self, argv: list[str], capsys):
        from napari_vsr.cli import main

        capsys.readouterr()
        self.returncode = main(argv)
        self.stderr = capsys.readouterr().err


def test_cli_refuses_a_users_folder_and_a_folder_for_a_file(tmp_path, capsys):
    src = _video(tmp_path / "in.mp4")
    users = tmp_path / "results"
    files = _user_folder(users)
    done = _run("enhance", str(src), "-o", str(users), "--method", "classic", "-q", "--overwrite")
    _one_error_line(done, 1, str(users), "napari-vsr did not write; refusing to replace it")
    _assert_untouched(users, files)
    as_mp4 = tmp_path / "out.mp4"
    files2 = _user_folder(as_mp4)
    argv = ["enhance", str(src), "-o", str(as_mp4), "--method", "classic", "-q", "--overwrite"]
    _one_error_line(_Done(argv, capsys), 1, "is a folder")
    _assert_untouched(as_mp4, files2)
    done = _Done(["split", str(src), str(users), "-q", "--overwrite"], capsys)
    _one_error_line(done, 1, "napari-vsr did not write")
    _assert_untouched(users, files)
    # a folder napari-vsr wrote is replaced
    own = tmp_path / "own"
    assert _Done(["split", str(src), str(own), "-q"], capsys).returncode == 0
    done = _run("split", str(src), str(own), "-q", "--overwrite")
    assert done.returncode == 0, done.stderr
    assert is_own_folder(own) and len(list(own.glob("*.png"))) == 4
    assert _listing(tmp_path) == ["in.mp4", "out.mp4", "own", "results"]


def test_cli_refuses_the_input_as_output(tmp_path, capsys):
    src = _video(tmp_path / "in.mp4")
    before = src.read_bytes()
    (tmp_path / "link.mp4").symlink_to(src)
    os.link(src, tmp_path / "hard.mp4")
    done = _run("enhance", str(src), "-o", str(tmp_path / "hard.mp4"), "--method", "classic",
                "--overwrite")  # fmt: skip
    _one_error_line(done, 1, "is also the input")
    for out in (src, tmp_path / "link.mp4"):
        argv = ["enhance", str(src), "-o", str(out), "--method", "classic", "--overwrite"]
        _one_error_line(_Done(argv, capsys), 1, "is also the input")
    argv = ["merge", str(tmp_path / "link.mp4"), str(src), "--fps", "25", "--overwrite"]
    _one_error_line(_Done(argv, capsys), 1, "is also the input")
    assert src.read_bytes() == before
    assert _listing(tmp_path) == ["hard.mp4", "in.mp4", "link.mp4"]


def test_cli_memory_check_before_any_work(tmp_path, capsys, monkeypatch):
    src = _video(tmp_path / "in.mp4", n=6)
    out = tmp_path / "out.zarr"
    common = ["enhance", str(src), "-o", str(out), "--method", "classic", "-q"]
    done = _run(*common, "--preset", "bicubic-x4", env={MEMORY_ENV: "1M"})
    _one_error_line(done, 1, str(src), "one frame", "memory")
    monkeypatch.setenv(MEMORY_ENV, "2M")
    _one_error_line(_Done([*common, "--chunk", "6"], capsys), 1, "--chunk 6 needs", "use --chunk")
    assert _listing(tmp_path) == ["in.mp4"]
    monkeypatch.setenv(MEMORY_ENV, "4G")
    assert _Done(common, capsys).returncode == 0


def test_cli_read_only_output_folder(tmp_path, readonly_dir, capsys):
    src = _video(tmp_path / "in.mp4")
    done = _run("enhance", str(src), "-o", str(readonly_dir / "o.mp4"), "--method", "classic")
    _one_error_line(done, 1, "read-only file system", str(readonly_dir))
    for name in ("o.tif", "o.zarr", "o.frames", "sub/o.tif"):
        argv = ["enhance", str(src), "-o", str(readonly_dir / name), "--method", "classic"]
        _one_error_line(_Done(argv, capsys), 1, "read-only file system")
    assert _listing(readonly_dir) == ["existing.txt"]


def test_cli_disk_full(tmp_path, small_fs):
    src = _video(tmp_path / "in.mp4", n=20, size=(96, 128))
    done = _run(
        "enhance", str(src), "-o", str(small_fs / "o.tif"), "--method", "classic",
        "--preset", "bicubic-x4", "-q",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    # the pre-flight warning about free space, then the one error line
    assert "may need about" in lines[0] and len(lines) == 2, done.stderr
    assert f"no space left on {small_fs}" in lines[1] and "Traceback" not in done.stderr
    assert _listing(small_fs) == []


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "napari_vsr", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def _wait_for_partial(proc: subprocess.Popen, folder: Path, target: str) -> Path:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        found = [p for p in folder.iterdir() if p.name.startswith(f".{target}.partial-")]
        if found:
            return found[0]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no partial output appeared: {proc.stderr.read()}")


def test_sigkill_leftover_is_recognisable_and_swept(tmp_path):
    src = _video(tmp_path / "in.mp4", n=600)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start("enhance", str(src), "-o", str(out_dir / "r.mp4"), "--method", "classic")
    try:
        partial = _wait_for_partial(proc, out_dir, "r.mp4")
        time.sleep(0.3)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert partial.exists() and partial.name.startswith(f".r.mp4.partial-{proc.pid}-")
    # killed while assembling: every segment is in the job folder; a new command starts over
    done = _run(
        "enhance", str(src), "-o", str(out_dir / "r.mp4"), "--method", "classic", "-q",
        "--frames", "0:5", "--overwrite",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"removed {partial}" in done.stderr and str(proc.pid) in done.stderr
    assert _listing(out_dir) == ["r.mp4"]


# --- the napari writer hooks -------------------------------------------------------------------
def test_writer_hooks_never_replace_the_source_or_a_users_folder(tmp_path, clip):
    from napari_vsr import _writer

    src = write_frames_to(tmp_path / "src.tif", clip)
    before = src.read_bytes()
    meta = {"rgb": True, "metadata": {"source_path": str(src)}}
    with pytest.raises(OutputIsInputError):
        _writer.write_tiff(str(src), clip, meta)
    assert src.read_bytes() == before
    users = tmp_path / "mine"
    files = _user_folder(users)
    with pytest.raises(UnsafeOutputError):
        _writer.write_frames(str(users), clip, {"rgb": True, "metadata": {}})
    _assert_untouched(users, files)
    # napari has asked the user already: a file, or a folder napari-vsr wrote, is replaced
    [out] = _writer.write_frames(str(tmp_path / "f.frames"), clip, {"rgb": True})
    [out] = _writer.write_frames(out, clip[:2], {"rgb": True})
    with open_frames(out) as v:
        assert len(v) == 2
    assert _listing(tmp_path) == ["f.frames", "mine", "src.tif"]


def test_corpus_outputs_builds(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "corpus_outputs", Path(__file__).with_name("corpus_outputs.py")
    )
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    made = corpus.build(tmp_path)
    assert set(made) == {
        "own_store.zarr",
        "not_a_store.zarr",
        "folder_named.mp4",
        "partial_leftover",
    }
    assert all(p.exists() for p in made.values())
    assert is_own_folder(made["own_store.zarr"]) and is_own_folder(made["folder_named.mp4"])


def test_result_store_follows_the_same_rules(tmp_path):
    from napari_vsr.io.zarr_store import create_result_store

    store = tmp_path / "a" / "b" / "r.zarr"
    arr = create_result_store(store, (3, 8, 10, 3), np.uint8)
    arr[1] = 7
    assert is_own_folder(store) and _listing(store.parent) == ["r.zarr"]
    create_result_store(store, (2, 8, 10, 3), np.uint8, overwrite=True)  # ours: replaced
    users = tmp_path / "users.zarr"
    files = _user_folder(users)
    with pytest.raises(UnsafeOutputError):
        create_result_store(users, (2, 8, 10), np.uint8, overwrite=True)
    _assert_untouched(users, files)


def test_result_store_in_a_read_only_folder(readonly_dir):
    from napari_vsr.io.zarr_store import create_result_store

    with pytest.raises(WriteError, match="read-only file system"):
        create_result_store(readonly_dir / "new" / "r.zarr", (2, 8, 10), np.uint8)
    assert _listing(readonly_dir) == ["existing.txt"]


def test_signals_wait_while_a_replaced_folder_is_swapped():
    import signal

    from napari_vsr.io.writer_base import _signals_held

    class Stop(Exception):
        pass

    def handler(signum, frame):
        raise Stop

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        reached = False
        with pytest.raises(Stop):
            with _signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                reached = True  # the signal did not cut in
        assert reached and signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_enhancer_chunk_plan_and_in_memory_previews(monkeypatch):
    from napari_vsr.enhancers import make_enhancer
    from napari_vsr.host_memory import check_in_memory_result, plan_enhancer_chunk

    enhancer = make_enhancer("classic", preset="bicubic-x4")
    in_shape, out_shape = (50, 100, 100, 3), (50, 400, 400, 3)
    monkeypatch.setenv(MEMORY_ENV, "4G")
    assert plan_enhancer_chunk(enhancer, in_shape, out_shape) is None  # the default fits
    assert plan_enhancer_chunk(enhancer, in_shape, out_shape, chunk=3) == 3
    monkeypatch.setenv(MEMORY_ENV, "3M")
    with pytest.raises(InsufficientMemoryError, match="one frame"):
        plan_enhancer_chunk(enhancer, in_shape, out_shape, source="clip.mp4")
    check_in_memory_result((2, 100, 100, 3), np.uint8)
    with pytest.raises(InsufficientMemoryError, match="the preview .* result folder"):
        check_in_memory_result((50, 400, 400, 3), np.uint8, what="the preview")
