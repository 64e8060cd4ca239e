"""Colour management against an independent reference.

Y'CbCr planes are built in numpy from known RGB patches with the textbook formulas (the Kr/Kb
constants typed in here, not taken from the package and not from swscale), encoded losslessly
with and without tags, and read back; the writer is checked by decoding the stream's own
Y'CbCr planes and converting them with the same formulas, using the tags the stream carries.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from napari_vsr.errors import ParameterError
from napari_vsr.io import VideoOptions, open_frames
from napari_vsr.io import color as color_mod
from napari_vsr.io.video_writer import VideoWriter

#: textbook luma coefficients (Kr, Kb): BT.601, BT.709, BT.2020, SMPTE 240M, FCC 73.682
KRKB = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
    "smpte240m": (0.212, 0.087),
    "fcc": (0.30, 0.11),
}
#: AVColorSpace values of those matrices
SPC = {"bt601": 6, "bt709": 1, "bt2020": 9, "smpte240m": 7, "fcc": 4}
PATCH = 16  # patch size; the borders of each patch (chroma blending) are not compared


def _patches(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) float RGB in [0, 1]: primaries, secondaries, grays and random colours."""
    rng = np.random.default_rng(seed)
    fixed = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1), (1, 1, 1), (0, 0, 0)]
    rows, cols = height // PATCH, width // PATCH
    colours = np.vstack([np.array(fixed, float), rng.random((rows * cols, 3))])
    img = np.zeros((height, width, 3))
    for k in range(rows * cols):
        r, c = divmod(k, cols)
        img[r * PATCH : (r + 1) * PATCH, c * PATCH : (c + 1) * PATCH] = colours[k]
    return img


def _interior(height: int, width: int, margin: int = 3) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    for r in range(height // PATCH):
        for c in range(width // PATCH):
            mask[
                r * PATCH + margin : (r + 1) * PATCH - margin,
                c * PATCH + margin : (c + 1) * PATCH - margin,
            ] = True
    return mask


def _levels(full: bool, bits: int):
    if full:
        top = 2**bits - 1
        return 0.0, top, 2 ** (bits - 1), top
    s = 2 ** (bits - 8)
    return 16.0 * s, 219.0 * s, 128.0 * s, 224.0 * s


def encode_ycbcr(rgb: np.ndarray, matrix: str, full: bool, bits: int) -> np.ndarray:
    """Textbook R'G'B' [0, 1] -> Y'CbCr code values (rounded), (H, W, 3) int."""
    kr, kb = KRKB[matrix]
    y = kr * rgb[..., 0] + (1 - kr - kb) * rgb[..., 1] + kb * rgb[..., 2]
    pb = (rgb[..., 2] - y) / (2 * (1 - kb))
    pr = (rgb[..., 0] - y) / (2 * (1 - kr))
    yo, ys, co, cs = _levels(full, bits)
    out = np.stack([yo + ys * y, co + cs * pb, co + cs * pr], axis=-1)
    return np.clip(np.rint(out), 0, 2**bits - 1).astype(np.int64)


def decode_ycbcr(ycc: np.ndarray, matrix: str, full: bool, bits: int) -> np.ndarray:
    """Textbook Y'CbCr code values -> R'G'B' in [0, 1], clipped."""
    kr, kb = KRKB[matrix]
    yo, ys, co, cs = _levels(full, bits)
    y = (ycc[..., 0] - yo) / ys
    pb = (ycc[..., 1] - co) / cs
    pr = (ycc[..., 2] - co) / cs
    r = y + 2 * (1 - kr) * pr
    b = y + 2 * (1 - kb) * pb
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.stack([r, g, b], axis=-1), 0, 1)


def _put_planes(frame: av.VideoFrame, ycc: np.ndarray, dtype) -> None:
    """Write (H, W, 3) code values into a planar frame, subsampling chroma by point sampling
    (the patches are flat, so any filter gives the same interior values)."""
    height, width = ycc.shape[:2]
    for k, plane in enumerate(frame.planes[:3]):
        sy, sx = height // plane.height, width // plane.width
        rows = np.frombuffer(plane, dtype=dtype).reshape(plane.height, -1)
        rows[:, : plane.width] = ycc[::sy, ::sx, k]


def write_ycbcr_clip(
    path: Path, ycc: np.ndarray, pix_fmt: str, *, codec: str = "ffv1", tags=None, n: int = 2
) -> Path:
    """A lossless clip of ``n`` identical frames holding exactly these Y'CbCr planes."""
    height, width = ycc.shape[:2]
    dtype = np.uint16 if "p1" in pix_fmt else np.uint8
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            s.options = {"qp": "0", "preset": "ultrafast"}
        if tags:
            for key, value in tags.items():
                setattr(s.codec_context, key, value)
        for i in range(n):
            f = av.VideoFrame(width, height, pix_fmt)
            _put_planes(f, ycc, dtype)
            if tags:
                for key, value in tags.items():
                    setattr(f, key, value)
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


# --- the reader -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "matrix,full,pix_fmt,codec",
    [
        ("bt601", False, "yuv420p", "ffv1"),
        ("bt709", False, "yuv420p", "ffv1"),
        ("bt709", True, "yuv444p", "libx264"),
        ("bt2020", False, "yuv420p10le", "ffv1"),
        ("bt709", False, "yuv422p10le", "ffv1"),
        ("bt601", True, "yuv420p12le", "ffv1"),
        ("smpte240m", False, "yuv444p", "ffv1"),
        ("fcc", False, "yuv420p", "ffv1"),
    ],
)
def test_reader_decodes_tagged_streams_within_one_level(tmp_path, matrix, full, pix_fmt, codec):
    bits = 12 if "12" in pix_fmt else 10 if "10" in pix_fmt else 8
    rgb = _patches(96, 160)
    ycc = encode_ycbcr(rgb, matrix, full, bits)
    tags = {"colorspace": SPC[matrix], "color_range": 2 if full else 1}
    ext = ".mp4" if codec == "libx264" else ".mkv"
    path = write_ycbcr_clip(tmp_path / f"tagged{ext}", ycc, pix_fmt, codec=codec, tags=tags)
    with open_frames(path) as v:
        got = v[1].astype(np.float64)
        md = v.metadata
    top = 255.0 if bits == 8 else 65535.0
    assert got.dtype == np.float64 and v.dtype == (np.uint8 if bits == 8 else np.uint16)
    reference = decode_ycbcr(ycc.astype(float), matrix, full, bits) * top
    err = np.abs(got - reference)[_interior(96, 160)]
    assert err.max() <= top / 255.0, f"max error {err.max() / (top / 255):.2f} levels"
    assert md["color_matrix"] == matrix and md["color_range"] == ("full" if full else "limited")
    assert "matrix" not in md["color_assumed"] and "range" not in md["color_assumed"]
    assert md["bit_depth"] == bits


@pytest.mark.parametrize("size,expected", [((240, 320), "bt601"), ((720, 1280), "bt709")])
def test_untagged_streams_follow_the_players(tmp_path, size, expected):
    # what mpv/VLC/browsers do: BT.709 when width >= 1280 or height > 576, BT.601 below
    height, width = size
    rgb = _patches(height, width)
    ycc = encode_ycbcr(rgb, expected, False, 8)
    path = write_ycbcr_clip(tmp_path / "untagged.mkv", ycc, "yuv420p", n=1)
    with open_frames(path) as v:
        got = v[0].astype(float)
        md = v.metadata
    err = np.abs(got - decode_ycbcr(ycc.astype(float), expected, False, 8) * 255)
    assert err[_interior(height, width)].max() <= 1.0
    assert md["color_matrix"] == expected and md["color_range"] == "limited"
    assert set(md["color_assumed"]) == {"matrix", "range", "primaries", "transfer"}


def test_reader_records_primaries_and_transfer(tmp_path):
    ycc = encode_ycbcr(_patches(64, 96), "bt2020", False, 10)
    tags = {"colorspace": 9, "color_range": 1, "color_primaries": 9, "color_trc": 16}
    path = write_ycbcr_clip(tmp_path / "hdr.mkv", ycc, "yuv420p10le", tags=tags, n=1)
    with open_frames(path) as v:
        md = v.metadata
    assert (md["color_primaries"], md["color_transfer"]) == ("bt2020", "smpte2084")
    assert md["color_assumed"] == []


# --- the writer -----------------------------------------------------------------------------
def _decoded_planes(path: Path):
    """(Y'CbCr code values upsampled by repetition (H, W, 3), the first frame, the stream)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        cc = stream.codec_context
        frame = next(c.decode(stream))
        fmt = frame.format.name
        dtype = np.uint16 if "p1" in fmt else np.uint8
        planes = []
        for p in frame.planes[:3]:
            rows = np.frombuffer(p, dtype=dtype).reshape(p.height, -1)[:, : p.width]
            sy, sx = frame.height // p.height, frame.width // p.width
            planes.append(np.repeat(np.repeat(rows, sy, 0), sx, 1).astype(float))
        tags = {
            "frame": (frame.colorspace, frame.color_range, frame.color_primaries, frame.color_trc),
            "stream": (cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc),
            "pix_fmt": fmt,
        }
    return np.stack(planes, axis=-1), tags


_MATRIX_OF = {1: "bt709", 6: "bt601", 5: "bt601", 9: "bt2020", 7: "smpte240m"}


@pytest.mark.parametrize(
    "size,kwargs,expected",
    [
        ((720, 1280), {}, (1, 1, 1, 1)),  # HD: BT.709, limited
        ((240, 320), {}, (6, 1, 6, 6)),  # SD: BT.601 (SMPTE 170M), limited
        ((240, 320), {"color_matrix": "bt709", "color_range": "full"}, (1, 2, 1, 1)),
        ((96, 160), {"color_primaries": "bt2020", "color_transfer": "bt2020-10"}, (9, 1, 9, 14)),
        ((96, 160), {"color_matrix": "bt601", "color_primaries": "bt2020"}, (6, 1, 9, 6)),
    ],
)
def test_writer_encodes_with_an_explicit_matrix_and_tags_the_stream(
    tmp_path, size, kwargs, expected
):
    height, width = size
    rgb = _patches(height, width, seed=1)
    frames = np.rint(rgb * 255).astype(np.uint8)
    path = tmp_path / "out.mp4"
    video = VideoOptions(crf=0, **kwargs)  # crf 0: lossless x264
    with VideoWriter(path, video=video, preset="ultrafast") as w:
        w.write(frames)
        w.write(frames)
    ycc, tags = _decoded_planes(path)
    assert tags["frame"] == expected, tags
    assert tags["stream"] == expected, tags
    matrix = _MATRIX_OF[tags["frame"][0]]
    full = tags["frame"][1] == 2
    inner = _interior(height, width)
    expected_ycc = encode_ycbcr(frames / 255.0, matrix, full, 8)
    assert np.abs(ycc - expected_ycc)[inner].max() <= 1  # the planes hold the formula's values
    back = decode_ycbcr(ycc, matrix, full, 8) * 255
    err = np.abs(back - frames)[inner]
    assert err.max() <= 2.0, f"max error {err.max():.2f} levels"  # 8-bit Y'CbCr quantisation


def test_uint16_frames_are_written_at_10_bits(tmp_path):
    rgb = _patches(96, 160, seed=2)
    frames = np.rint(rgb * 65535).astype(np.uint16)
    path = tmp_path / "deep.mp4"
    with VideoWriter(path, video=VideoOptions(crf=0), preset="ultrafast") as w:
        w.write(frames)
    ycc, tags = _decoded_planes(path)
    assert tags["pix_fmt"] == "yuv420p10le"
    inner = _interior(96, 160)
    # 10-bit code values (x264 crf 0 is near-lossless, not lossless, at 10 bits)
    expected = encode_ycbcr(frames / 65535.0, "bt601", False, 10)
    assert np.abs(ycc - expected)[inner].max() <= 2
    assert np.any(expected[inner] % 4 != 0)  # the planes really use the two extra bits
    back = decode_ycbcr(ycc, "bt601", False, 10) * 65535
    err = np.abs(back - frames)[inner] / 257
    assert err.max() <= 1.0, f"max error {err.max():.2f} 8-bit levels"
    with open_frames(path) as v:
        assert v.dtype == np.uint16
        assert np.abs(v[0].astype(float) - frames)[inner].max() / 257 <= 1.0


def test_prores_4444_keeps_alpha_and_depth(tmp_path):
    rgb = np.rint(_patches(64, 96, seed=3) * 65535).astype(np.uint16)
    yy, xx = np.mgrid[0:64, 0:96]
    alpha = ((xx * 65535) // 95).astype(np.uint16)
    rgba = np.concatenate([rgb, alpha[..., None]], axis=-1)
    path = tmp_path / "alpha.mov"
    with VideoWriter(path, video=VideoOptions(codec="prores")) as w:
        w.write(rgba)
        w.write(rgba)
    with open_frames(path) as v:
        assert v.shape == (2, 64, 96, 4) and v.dtype == np.uint16
        assert v.metadata["pix_fmt"].startswith("yuva444p")  # the decoder gives 12 bits
        got = v[1].astype(float)
    inner = _interior(64, 96)
    assert np.abs(got[..., :3] - rgb)[inner].mean() / 257 < 1.0  # ProRes is near-lossless
    assert np.abs(got[..., 3] - alpha).max() <= 65535 / 1023  # alpha: exact at 10 bits


def _rgba_clip(n: int, height: int = 64, width: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(n):
        rgb = np.rint(_patches(height, width, seed=i) * 255).astype(np.uint8)
        alpha = ((xx + 4 * i) * 255 // (width + 4 * n)).astype(np.uint8)
        frames.append(np.concatenate([rgb, alpha[..., None]], axis=-1))
    return np.stack(frames)


def test_vp9_alpha_is_kept_as_rgba(tmp_path):
    clip = _rgba_clip(6)
    path = tmp_path / "alpha.webm"
    with VideoWriter(path, video=VideoOptions(crf=0)) as w:
        for f in clip:
            w.write(f)
    with open_frames(path) as v:
        assert v.shape == (6, 64, 96, 4) and v.metadata["pix_fmt"] == "yuva420p"
        for i in (4, 1, 5):  # seeks and reading on, with the libvpx decoder
            got = v[i].astype(int)
            assert np.abs(got[..., 3] - clip[i, ..., 3]).mean() < 3, f"frame {i} alpha"
            assert np.abs(got[..., :3] - clip[i, ..., :3]).mean() < 6, f"frame {i} colour"


def test_vp9_alpha_without_a_libvpx_decoder_is_named(tmp_path, monkeypatch, caplog):
    clip = _rgba_clip(3)
    path = tmp_path / "alpha.webm"
    with VideoWriter(path) as w:
        for f in clip:
            w.write(f)
    real = av.codec.Codec

    def no_libvpx(name, mode="r"):
        if name == "libvpx-vp9" and mode == "r":
            raise ValueError(name)
        return real(name, mode)

    monkeypatch.setattr(av.codec, "Codec", no_libvpx)
    with caplog.at_level("WARNING"), open_frames(path) as v:
        assert v.shape[-1] == 3
    assert any(str(path) in r.getMessage() and "alpha" in r.getMessage() for r in caplog.records)


def test_prores_default_is_10_bit_422(tmp_path):
    frames = np.rint(_patches(64, 96) * 255).astype(np.uint8)
    path = tmp_path / "p.mov"
    with VideoWriter(path, video=VideoOptions(codec="prores")) as w:
        w.write(frames)
    _, tags = _decoded_planes(path)
    assert tags["pix_fmt"] == "yuv422p10le"
    assert tags["stream"][:2] == (6, 1)


# --- refusals before any work ----------------------------------------------------------------
def test_validate_names_the_size_limit(tmp_path):
    w = VideoWriter(tmp_path / "wide.mp4")
    with pytest.raises(ParameterError, match="16384x16384"):
        w.validate((1088, 16400, 3), np.uint8)
    w.validate((1080, 1920, 3), np.uint8)  # fine
    w.abort()
    assert not any(tmp_path.iterdir())


def test_validate_refuses_8_bit_codec_for_deep_frames_when_asked_by_name(tmp_path):
    w = VideoWriter(tmp_path / "m.mp4", video=VideoOptions(codec="mpeg4"))
    with pytest.raises(ParameterError, match="8 bits"):
        w.validate((96, 160, 3), np.uint16)
    w.validate((96, 160, 3), np.uint8)
    w.abort()


def test_hdr_into_an_8_bit_codec_is_refused_or_named(tmp_path, caplog):
    hdr = VideoOptions(color_primaries="bt2020", color_transfer="smpte2084")
    w = VideoWriter(tmp_path / "m.mp4", video=replace(hdr, codec="mpeg4"))
    with pytest.raises(ParameterError, match="HDR"):
        w.validate((96, 160, 3), np.uint8)
    w.abort()
    w = VideoWriter(tmp_path / "h.mp4", video=hdr)  # default x264: 10-bit for 16-bit frames
    w.validate((96, 160, 3), np.uint16)
    with caplog.at_level("WARNING"):
        w.validate((96, 160, 3), np.uint8)  # 8-bit frames with HDR tags: said, not refused
    assert any("HDR" in r.getMessage() for r in caplog.records)
    assert any("HDR" in note for note in w.notes)  # what the job runner shows
    w.abort()


def test_unknown_or_non_video_codecs_are_refused_at_once(tmp_path):
    with pytest.raises(ParameterError, match="audio encoder"):
        VideoWriter(tmp_path / "a.mp4", video=VideoOptions(codec="aac"))
    with pytest.raises(ParameterError, match="no such video encoder"):
        VideoWriter(tmp_path / "a.mp4", video=VideoOptions(codec="nope264"))
    with pytest.raises(ParameterError, match="cannot hold"):
        VideoWriter(tmp_path / "a.webm", video=VideoOptions(codec="h264"))
    with pytest.raises(ParameterError, match="color_matrix"):
        VideoWriter(tmp_path / "a.mp4", video=VideoOptions(color_matrix="bt2021"))
    assert not any(tmp_path.iterdir())


REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run(
        [sys.executable, "-m", "napari_vsr", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_cli_codec_aac_is_one_line(tmp_path, media_mod):
    src = media_mod.make_video(tmp_path / "in.mp4", n_frames=4)
    out = tmp_path / "out.mp4"
    r = _cli("enhance", str(src), "-o", str(out), "--method", "classic", "--codec", "aac", "-q")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "aac" in lines[0] and "Traceback" not in r.stderr
    assert not out.exists()


def test_cli_enhance_keeps_hdr_code_values_tags_and_depth(tmp_path):
    # a 10-bit BT.2020 PQ source through the classic method: 10-bit, same tags, no tone mapping
    ycc = encode_ycbcr(_patches(64, 96, seed=4), "bt2020", False, 10)
    tags = {"colorspace": 9, "color_range": 1, "color_primaries": 9, "color_trc": 16}
    src = write_ycbcr_clip(tmp_path / "hdr.mkv", ycc, "yuv420p10le", tags=tags, n=3)
    out = tmp_path / "out.mkv"
    r = _cli("enhance", str(src), "-o", str(out), "--method", "classic", "-q")
    assert r.returncode == 0, r.stderr
    _, got = _decoded_planes(out)
    assert got["pix_fmt"] == "yuv420p10le"
    assert got["stream"] == (9, 1, 9, 16)
    with open_frames(src) as a, open_frames(out) as b:
        assert b.metadata["color_transfer"] == "smpte2084"
        assert b.dtype == np.uint16 and b.shape[-1] == 3
        # no tone mapping: the mean code values stay where they were
        assert abs(float(a[0].mean()) - float(b[0].mean())) < 0.02 * 65535


@pytest.mark.parametrize("planar,packed,bits", [("yuv420p", "nv12", 8),
                                                ("yuv420p10le", "p010le", 10)])
def test_semi_planar_frames_hold_the_planar_samples(rng, planar, packed, bits):
    dtype = np.uint8 if bits == 8 else np.uint16
    rgb = rng.integers(0, np.iinfo(dtype).max, (48, 64, 3), dtype=dtype, endpoint=True)
    info = color_mod.output_color(64, 48, matrix="bt709")
    a = color_mod.rgb_to_yuv_frame(rgb, planar, info)
    b = color_mod.rgb_to_yuv_frame(rgb, packed, info)
    assert b.format.name == packed and (b.colorspace, b.color_range) == (1, 1)
    swscaled = b.reformat(format=planar)  # FFmpeg's own unpacking: a pure reshuffle
    for p, q, s in zip(color_mod.planar_samples(a, bits), color_mod.planar_samples(b, bits),
                       color_mod.planar_samples(swscaled, bits), strict=True):
        np.testing.assert_array_equal(p, q)
        np.testing.assert_array_equal(p, s)
    to_rgb = color_mod.YuvToRgb(planar, info)
    assert to_rgb.accepts(packed) and to_rgb.accepts("yuv444p16le")
    np.testing.assert_array_equal(to_rgb(a), to_rgb(b))
