"""Bad inputs that must neither hang nor lie: each is refused with one clear line, or read whole.

:func:`build` makes them in a folder; the property test that runs every corpus file through
``napari-vsr info`` and ``napari-vsr enhance --method classic`` imports it like ``media.py``::

    spec = importlib.util.spec_from_file_location("corpus_inputs", REPO / "tests/io/...")

Every file is made here from real media (barcoded frames from ``media.py``): nothing is
downloaded or stored in the repository.
"""

from __future__ import annotations

import importlib.util
import os
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

_spec = importlib.util.spec_from_file_location(
    "vsr_test_media_corpus", Path(__file__).with_name("media.py")
)
media = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(media)

#: frames in the corrupt-middle clips; keyframes every GOP frames
N_FRAMES, GOP = 31, 12


def packet_spans(path: Path) -> list[tuple[int, int, int, bool]]:
    """(presentation index, byte position, size, keyframe) of every video packet, file order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rows = [
            (p.pts, p.pos, p.size, p.is_keyframe)
            for p in container.demux(stream)
            if p.size and p.pts is not None
        ]
    order = {pts: i for i, pts in enumerate(sorted(r[0] for r in rows))}
    return [(order[pts], pos, size, key) for pts, pos, size, key in rows]


def corrupt_middle_mkv(path: Path, *, frame: int = 9, fps: Fraction | int = 25) -> Path:
    """A Matroska clip whose block of presentation frame ``frame`` (a P-frame) is overwritten.

    The damaged block header makes the demuxer resync at the next cluster, so every packet
    up to the next keyframe disappears from the demuxed stream (the measured case: 23 of 31
    frames read, exit code 0).
    """
    media.make_video(path, n_frames=N_FRAMES, gop=GOP, bframes=2, fps=fps)
    spans = packet_spans(path)
    _, pos, size, key = next(s for s in spans if s[0] == frame)
    assert not key, "the damaged frame must not be a keyframe"
    data = bytearray(path.read_bytes())
    start = pos - 7  # the SimpleBlock's ID and size in front of the frame data
    data[start : pos + size] = np.random.default_rng(9).integers(
        0, 256, pos + size - start, dtype=np.uint8
    ).tobytes()
    path.write_bytes(bytes(data))
    return path


def corrupt_middle_mp4(path: Path, *, frame: int = 14) -> Path:
    """An MP4 clip whose frame ``frame`` has an impossible NAL unit length (decoder refuses it).

    MP4 sample tables still list every sample, so the demuxer returns all packets; the
    decoder rejects the damaged one ("Invalid data found when processing input").
    """
    media.make_video(path, n_frames=N_FRAMES, gop=GOP, bframes=2)
    _, pos, _size, key = next(s for s in packet_spans(path) if s[0] == frame)
    assert not key, "the damaged frame must not be a keyframe"
    data = bytearray(path.read_bytes())
    data[pos : pos + 4] = b"\xff\xff\xff\xf0"  # AVCC length prefix far beyond the sample
    path.write_bytes(bytes(data))
    return path


def huge_header_avi(path: Path, *, side: int = 16000) -> Path:
    """An uncompressed AVI whose headers claim ``side`` x ``side`` pixels; it holds 32x32.

    Decoding must fail on the size mismatch without allocating frames of the claimed size.
    """
    with av.open(str(path), "w") as out:
        stream = out.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "bgr24"
        for i in range(3):
            img = media.barcode_frame(i, 32, 32)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = bytearray(path.read_bytes())
    avih = data.find(b"avih")  # main header: dwWidth, dwHeight at +8+32, +8+36
    struct.pack_into("<II", data, avih + 8 + 32, side, side)
    strf = data.find(b"strf")  # BITMAPINFOHEADER: biWidth, biHeight at +8+4, +8+8
    struct.pack_into("<ii", data, strf + 8 + 4, side, side)
    path.write_bytes(bytes(data))
    return path


def build(folder: Path) -> dict[str, Path]:
    """Create the bad inputs in ``folder``; name -> path.

    FIFO, symlink loop, dangling symlink, corrupt-middle MKV and MP4, zero-byte file, a text
    file named ``.mkv``, a directory named ``clip.mp4`` and an AVI whose header claims a
    16000 x 16000 picture.  The FIFO has no writer: opening it would block forever.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {}
    fifo = folder / "fifo.mp4"
    os.mkfifo(fifo)
    made["fifo"] = fifo
    loop = folder / "loop.mkv"
    os.symlink(loop.name, loop)
    made["symlink_loop"] = loop
    dangling = folder / "dangling.mp4"
    os.symlink("no-such-target.mp4", dangling)
    made["dangling_symlink"] = dangling
    made["corrupt_middle_mkv"] = corrupt_middle_mkv(folder / "corrupt_middle.mkv")
    made["corrupt_middle_mp4"] = corrupt_middle_mp4(folder / "corrupt_middle.mp4")
    zero = folder / "zero.mp4"
    zero.write_bytes(b"")
    made["zero_byte"] = zero
    text = folder / "notes.mkv"
    text.write_text("not a video, just text with a video extension\n" * 40)
    made["text_as_mkv"] = text
    directory = folder / "clip.mp4"
    directory.mkdir()
    made["dir_named_mp4"] = directory
    made["huge_header_avi"] = huge_header_avi(folder / "huge_header.avi")
    return made
