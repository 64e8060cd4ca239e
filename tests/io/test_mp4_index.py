"""The MP4/MOV sample-table index used for long files must equal the demuxed one."""

from __future__ import annotations

import av
import numpy as np
import pytest

import napari_vsr.io.video_reader as video_reader
from napari_vsr.errors import TruncatedMediaError
from napari_vsr.io import VideoOptions, open_frames, write_frames_to
from napari_vsr.io.mp4_index import read_sample_table


def _open(path, *, table: bool, monkeypatch):
    monkeypatch.setattr(video_reader, "FAST_INDEX_MIN_FRAMES", 0 if table else 10**12)
    return open_frames(path, cache_mb=0)


@pytest.fixture(scope="module")
def mp4s(videos, tmp_path_factory, media_mod):
    d = tmp_path_factory.mktemp("mp4s")
    clip = np.stack([media_mod.barcode_frame(i, 48, 160) for i in range(20)])
    frag = d / "fragmented.mp4"
    with (
        av.open(str(videos["h264_bframes"])) as src,
        av.open(str(frag), "w", options={"movflags": "frag_keyframe+empty_moov"}) as out,
    ):
        s = out.add_stream_from_template(src.streams.video[0])
        for p in src.demux(src.streams.video[0]):
            if p.dts is not None:
                p.stream = s
                out.mux(p)
    return {
        "bframes": videos["h264_bframes"],
        "vfr": videos["vfr_mp4"],
        "mov_ntsc": write_frames_to(d / "ntsc.mov", clip, fps=29.97),
        "lossless_rgb": write_frames_to(d / "ll.mp4", clip, video=VideoOptions(lossless=True)),
        "fragmented": frag,
    }


@pytest.mark.parametrize("name", ["bframes", "vfr", "mov_ntsc", "lossless_rgb", "fragmented"])
def test_table_index_matches_demux(mp4s, name, monkeypatch, media_mod, rng):
    with (
        _open(mp4s[name], table=False, monkeypatch=monkeypatch) as a,
        _open(mp4s[name], table=True, monkeypatch=monkeypatch) as b,
    ):
        assert b._from_table == (name != "fragmented")  # fragmented files are declined
        assert a._pts_list == b._pts_list and a._keys == b._keys
        np.testing.assert_array_equal(a.frame_times(), b.frame_times())
        order = rng.permutation(len(b))
        assert [media_mod.read_barcode(b[int(i)]) for i in order] == [int(i) for i in order]


def test_declines_when_counts_disagree(mp4s):
    assert read_sample_table(mp4s["bframes"], expected_frames=59) is None
    assert read_sample_table(mp4s["bframes"], expected_frames=60) is not None


def test_truncated_file_still_reports_readable_frames(tmp_path, mp4s, monkeypatch):
    # faststart: the tables come first and promise all frames, the data is cut short
    fs = tmp_path / "fs.mp4"
    with (
        av.open(str(mp4s["bframes"])) as src,
        av.open(str(fs), "w", options={"movflags": "faststart"}) as out,
    ):
        s = out.add_stream_from_template(src.streams.video[0])
        for p in src.demux(src.streams.video[0]):
            if p.dts is not None:
                p.stream = s
                out.mux(p)
    data = fs.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    monkeypatch.setattr(video_reader, "FAST_INDEX_MIN_FRAMES", 0)
    with pytest.raises(TruncatedMediaError) as info:
        open_frames(cut)
    assert 0 < info.value.readable_frames < 60


def test_wrong_table_falls_back_to_demuxing(mp4s, monkeypatch, media_mod, caplog):
    real = video_reader.read_sample_table

    def skewed(path, *, expected_frames):
        table = real(path, expected_frames=expected_frames)
        table.pts = table.pts.copy()
        table.pts[5:] += 1  # timestamps the decoder will never produce
        return table

    monkeypatch.setattr(video_reader, "read_sample_table", skewed)
    with _open(mp4s["bframes"], table=True, monkeypatch=monkeypatch) as v:
        assert v._from_table
        assert [media_mod.read_barcode(v[i]) for i in (30, 7, 59)] == [30, 7, 59]
        assert not v._from_table
    assert "disagree" in caplog.text
