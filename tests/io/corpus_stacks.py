"""Bad (and awkward) frame-stack inputs for the bad-input corpus: TIFFs and frame folders.

:func:`build` writes every case into a folder and returns ``{name: path}``.  Each one must go
through ``napari-vsr info`` and ``napari-vsr enhance --method classic`` with exit code 0, 1 or
2, exactly one line on stderr, no traceback and no file left beside the output (see
``tests/io/test_corpus_stacks.py``).  Nothing here is hard-coded bytes of a real file: the
TIFFs are written by tifffile and then cut or damaged, the PNGs by OpenCV.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tifffile


def fluorescence(t: int = 6, c: int = 2, h: int = 24, w: int = 32) -> np.ndarray:
    """A (T, C, H, W) uint16 stack: a bright moving spot per channel over a dim ramp.

    Values depend on the frame and the channel, so each channel of each frame is distinct.
    """
    yy, xx = np.mgrid[0:h, 0:w]
    data = np.empty((t, c, h, w), np.uint16)
    for i in range(t):
        for k in range(c):
            cy, cx = (h // 3 + i) % h, (w // 4 + 3 * k + 2 * i) % w
            spot = 3000.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)
            data[i, k] = (200 + 50 * k + 10 * i + xx + spot).astype(np.uint16)
    return data


def _cut(src: Path, dst: Path, fraction: float) -> Path:
    raw = src.read_bytes()
    dst.write_bytes(raw[: int(len(raw) * fraction)])
    return dst


def build(folder: Path) -> dict[str, Path]:
    """Write the stack corpus into ``folder`` (created if needed).

    Returns
    -------
    dict of str to Path
        ``two_channel_imagej`` (TCYX, labels GFP/mCherry), ``hyperstack_tzcyx``,
        ``compressed_lzw``, ``compressed_zstd``, ``truncated_data`` (cut in the pixel data),
        ``truncated_ifd`` (cut in the page directories of a compressed stack),
        ``truncated_header`` (the first 6 bytes), ``corrupt_header`` (a TIFF's header bytes
        over text), ``empty_folder``, ``text_only_folder``, ``corrupt_png_folder`` (one
        frame of three is not a PNG), ``mixed_size_folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    data = fluorescence()

    p = folder / "two_channel_imagej.tif"
    tifffile.imwrite(
        p, data, imagej=True, metadata={"axes": "TCYX", "Labels": ["GFP", "mCherry"], "fps": 4.0}
    )
    out["two_channel_imagej"] = p

    p = folder / "hyperstack_tzcyx.tif"
    tifffile.imwrite(
        p, np.stack([data[:3], data[3:]], axis=1), imagej=True, metadata={"axes": "TZCYX"}
    )
    out["hyperstack_tzcyx"] = p

    for codec in ("lzw", "zstd"):
        p = folder / f"compressed_{codec}.tif"
        tifffile.imwrite(p, data[:, 0], compression=codec)
        out[f"compressed_{codec}"] = p

    plain = folder / "plain_source.tmp"
    tifffile.imwrite(plain, data, imagej=True, metadata={"axes": "TCYX"})
    out["truncated_data"] = _cut(plain, folder / "truncated_data.tif", 0.6)
    packed = folder / "packed_source.tmp"
    tifffile.imwrite(packed, data, compression="zlib")
    out["truncated_ifd"] = _cut(packed, folder / "truncated_ifd.tif", 0.97)
    out["truncated_header"] = _cut(plain, folder / "truncated_header.tif", 6 / plain.stat().st_size)
    plain.unlink()
    packed.unlink()

    p = folder / "corrupt_header.tif"
    p.write_bytes(b"II*\x00" + b"this is not an image file directory " * 8)
    out["corrupt_header"] = p

    p = folder / "empty_folder"
    p.mkdir(exist_ok=True)
    out["empty_folder"] = p

    p = folder / "text_only_folder"
    p.mkdir(exist_ok=True)
    (p / "notes.txt").write_text("frames will go here\n")
    out["text_only_folder"] = p

    p = folder / "corrupt_png_folder"
    p.mkdir(exist_ok=True)
    for i in range(3):
        cv2.imwrite(str(p / f"frame_{i}.png"), (data[i, 0] >> 4).astype(np.uint8))
    (p / "frame_1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    out["corrupt_png_folder"] = p

    p = folder / "mixed_size_folder"
    p.mkdir(exist_ok=True)
    cv2.imwrite(str(p / "frame_0.png"), np.zeros((24, 32), np.uint8))
    cv2.imwrite(str(p / "frame_1.png"), np.zeros((26, 32), np.uint8))
    out["mixed_size_folder"] = p
    return out
