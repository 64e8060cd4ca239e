"""Reader/writer hooks without a viewer, the sample clip, and ``napari-vsr info``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_vsr import _reader, _sample_data, _writer
from napari_vsr.cli import main
from napari_vsr.io import open_frames


def test_reader_hook_layer_data(videos):
    reader = _reader.napari_get_reader(str(videos["h264_bframes"]))
    [(data, kwargs, kind)] = reader(str(videos["h264_bframes"]))
    assert kind == "image" and kwargs["rgb"] is True and kwargs["name"] == "h264.mp4"
    assert data.shape == (60, 96, 160, 3) and kwargs["metadata"]["fps"] == 25.0
    assert kwargs["contrast_limits"] == [0, 255]
    data.close()
    [(gray, kwargs, _)] = _reader.read_layers([str(videos["gray_ffv1"])])
    assert kwargs["rgb"] is False and gray.ndim == 3
    gray.close()


def test_writer_hooks(tmp_path, videos, media_mod):
    with open_frames(videos["h264_bframes"]) as src:
        meta = {"rgb": True, "metadata": dict(src.metadata), "name": "clip"}
        [out] = _writer.write_video(str(tmp_path / "v.mkv"), src, meta)
        with open_frames(out) as v:
            assert len(v) == 60 and v.metadata["fps"] == 25.0
            assert v.metadata["has_audio"]  # same frame count as the source: audio copied
        [out] = _writer.write_tiff(
            str(tmp_path / "s.tif"), src[:4], {"rgb": True, "metadata": {"fps": 12.5}}
        )
        with open_frames(out) as v:
            assert v.shape == (4, 96, 160, 3) and v.metadata["fps"] == 12.5
    gray = np.zeros((3, 8, 10), np.uint16)
    [out] = _writer.write_frames(str(tmp_path / "g.frames"), gray, {"rgb": False, "metadata": {}})
    with open_frames(out) as v:
        assert v.shape == gray.shape and v.dtype == np.uint16
    # a single 2-D image is one frame
    [out] = _writer.write_tiff(str(tmp_path / "one.tif"), gray[0], {"rgb": False})
    with open_frames(out) as v:
        assert v.shape == (1, 8, 10)


def test_sample_clip(sample_frames_dir):
    [(data, kwargs, kind)] = _sample_data.make_sample_clip()
    assert kind == "image" and kwargs["rgb"]
    assert data.shape == (10, 360, 640, 3) and data.dtype == np.uint8
    assert _sample_data.sample_clip_path().stat().st_size < 4_000_000
    with open_frames(sample_frames_dir) as src:  # lossless: identical to the source PNGs
        np.testing.assert_array_equal(data[[0, 9]], src[[0, 9]])


def test_info_prints_what_the_reader_sees(videos, capsys):
    assert main(["info", str(videos["h264_bframes"])]) == 0
    out = capsys.readouterr().out
    for words in (
        "frames",
        "60",
        "160x96",
        "uint8",
        "25",
        "2.400 s",
        "h264",
        "yuv420p",
        "audio streams",
        "aac, 44100 Hz, 1 ch",
        # an untagged 160x96 stream: read as players read SD video, and said to be assumed
        "8-bit bt601 limited, primaries smpte170m, transfer smpte170m (matrix, range",
    ):
        assert words in out
    assert main(["info", "--json", str(videos["vfr_mkv"])]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["frames"] == 16 and facts["codec"] == "h264" and facts["audio_streams"] == []
    assert facts["color_matrix"] == "bt601" and "matrix" in facts["color_assumed"]


def test_info_on_stacks_and_errors(tmp_path, capsys):
    (tmp_path / "bad.mp4").write_bytes(b"")
    assert main(["info", str(tmp_path / "bad.mp4")]) == 1
    err = capsys.readouterr().err
    assert "bad.mp4" in err and "empty" in err and len(err.strip().splitlines()) == 1
    from napari_vsr.io import write_frames_to

    write_frames_to(tmp_path / "s.tif", np.zeros((3, 4, 5), np.float32), fps=10)
    assert main(["info", str(tmp_path / "s.tif")]) == 0
    out = capsys.readouterr().out
    assert "float32" in out and "tiff" in out and "5x4" in out


@pytest.mark.parametrize("argv", [["info"], ["info", "--bogus", "x"]])
def test_info_usage_errors(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
