"""Bad inputs: each is refused with a project error that names the file and the cause."""

from __future__ import annotations

import av
import pytest

from napari_vsr import _reader
from napari_vsr.errors import (
    FrameStackError,
    SourceNotFoundError,
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
