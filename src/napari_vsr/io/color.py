"""Colour management for video: Y'CbCr matrices, ranges, tags, and the conversions.

Vocabulary (what ``metadata`` records and what the writer takes):

- ``color_matrix``: ``"bt601"`` (SMPTE 170M / BT.470BG), ``"bt709"``, ``"bt2020"`` (BT.2020
  non-constant luminance), ``"smpte240m"``, ``"fcc"``.
- ``color_range``: ``"limited"`` (Y' 16..235, Cb/Cr 16..240 at 8 bits, scaled by
  ``2 ** (bits - 8)``) or ``"full"`` (0..2**bits - 1).
- ``color_primaries`` and ``color_transfer``: FFmpeg's names (``"bt709"``, ``"smpte170m"``,
  ``"bt2020"``, ``"smpte2084"`` (PQ), ``"arib-std-b67"`` (HLG), ...), as ``ffprobe`` prints them.

Untagged streams follow the players (mpv, VLC, browsers): BT.709 when the picture is HD-sized
(width >= 1280 or height > 576), BT.601 below, limited range; which values were assumed is kept
in ``color_assumed``.

The conversions do the arithmetic themselves (OpenCV ``transform`` with a float matrix, which
rounds to nearest): swscale's fast YUV->RGB path is off by 2-3 levels on saturated colours and
its accurate path (``ACCURATE_RND | FULL_CHR_H_INT``) costs 10-15x; see BENCHMARKS.md (I/O).
The numpy reference formulas (:func:`rgb_to_ycbcr`, :func:`ycbcr_to_rgb`) are what the matrices
are derived from and what the tests check against.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import av
import cv2
import numpy as np
from av.video.reformatter import Colorspace, Interpolation

log = logging.getLogger(__name__)

#: matrix name -> (Kr, Kb) luma coefficients
MATRICES: dict[str, tuple[float, float]] = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
    "smpte240m": (0.212, 0.087),
    "fcc": (0.30, 0.11),
}
RANGES = ("limited", "full")

# FFmpeg enum values (AVColorSpace, AVColorRange, AVColorPrimaries, AVColorTransferCharacteristic)
_SPC_TO_MATRIX = {1: "bt709", 4: "fcc", 5: "bt601", 6: "bt601", 7: "smpte240m", 9: "bt2020"}
#: matrix name -> the AVColorSpace value written in tags
MATRIX_TO_SPC = {"bt709": 1, "fcc": 4, "bt601": 6, "smpte240m": 7, "bt2020": 9}
_SPC_NAMES = {0: "rgb", 3: "reserved", 8: "ycgco", 10: "bt2020c", 11: "smpte2085", 14: "ictcp"}
RANGE_TO_AV = {"limited": 1, "full": 2}
#: matrix name -> swscale's colorspace constant (for the swscale fallback)
MATRIX_TO_SWS = {
    "bt709": Colorspace.ITU709,
    "fcc": Colorspace.FCC,
    "bt601": Colorspace.ITU601,
    "smpte240m": Colorspace.SMPTE240M,
    "bt2020": Colorspace.BT2020,
}
#: swscale flags of its accurate (and slow) path: within 1 level, where the default is 2-3 off
SWS_ACCURATE = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
PRIMARIES = {
    1: "bt709",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "jedec-p22",
}
TRANSFERS = {
    1: "bt709",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    9: "log100",
    10: "log316",
    11: "iec61966-2-4",
    12: "bt1361e",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    17: "smpte428",
    18: "arib-std-b67",
}
PRIMARIES_TO_AV = {v: k for k, v in PRIMARIES.items()}
TRANSFERS_TO_AV = {v: k for k, v in TRANSFERS.items()}
#: transfers of high dynamic range video (PQ, HLG)
HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})
#: what the primaries and transfer are taken to be when a stream does not say
_DEFAULT_PRIMARIES = {
    "bt709": "bt709",
    "bt601": "smpte170m",
    "bt2020": "bt2020",
    "smpte240m": "smpte240m",
    "fcc": "bt470m",
}
_DEFAULT_TRANSFER = {
    "bt709": "bt709",
    "bt601": "smpte170m",
    "bt2020": "bt709",
    "smpte240m": "smpte240m",
    "fcc": "bt709",
}


def default_matrix(width: int, height: int) -> str:
    """The matrix players assume for an untagged picture of this size (BT.709 for HD)."""
    return "bt709" if width >= 1280 or height > 576 else "bt601"


@dataclass(frozen=True)
class ColorInfo:
    """How a stream's Y'CbCr values relate to R'G'B' (and which of it was assumed)."""

    matrix: str
    range: str
    primaries: str
    transfer: str
    assumed: tuple[str, ...] = field(default=())

    @property
    def is_hdr(self) -> bool:
        return self.transfer in HDR_TRANSFERS

    def as_metadata(self) -> dict[str, object]:
        return {
            "color_matrix": self.matrix,
            "color_range": self.range,
            "color_primaries": self.primaries,
            "color_transfer": self.transfer,
            "color_assumed": list(self.assumed),
        }


def describe_stream(
    colorspace: int,
    color_range: int,
    primaries: int,
    transfer: int,
    *,
    width: int,
    height: int,
    pix_fmt: str | None = None,
    path=None,
) -> ColorInfo:
    """A stream's colour description from its FFmpeg tags, filling gaps as players do.

    Parameters
    ----------
    colorspace, color_range, primaries, transfer : int
        FFmpeg enum values (``frame.colorspace`` etc.; 2 / 0 = unspecified).
    width, height : int
        Coded picture size (decides the assumed matrix of an untagged stream).
    pix_fmt : str, optional
        ``yuvj*`` formats are full range whatever the range tag says.
    """
    assumed = []
    matrix = _SPC_TO_MATRIX.get(int(colorspace))
    if matrix is None:
        if int(colorspace) not in (2, 0) and int(colorspace) in _SPC_NAMES:
            log.warning(
                "%s: colour matrix %s is not supported; decoding as %s",
                path,
                _SPC_NAMES[int(colorspace)],
                default_matrix(width, height),
            )
        matrix = default_matrix(width, height)
        assumed.append("matrix")
    if pix_fmt and pix_fmt.startswith("yuvj"):
        rng = "full"
    elif int(color_range) == 2:
        rng = "full"
    elif int(color_range) == 1:
        rng = "limited"
    else:
        rng = "limited"
        assumed.append("range")
    prim = PRIMARIES.get(int(primaries))
    if prim is None:
        prim = _DEFAULT_PRIMARIES[matrix]
        assumed.append("primaries")
    trc = TRANSFERS.get(int(transfer))
    if trc is None:
        trc = _DEFAULT_TRANSFER[matrix]
        assumed.append("transfer")
    return ColorInfo(matrix, rng, prim, trc, tuple(assumed))


# --- reference formulas (numpy, float64) --------------------------------------------------
def _levels(full_range: bool, bits: int) -> tuple[float, float, float, float]:
    """(luma offset, luma span, chroma centre, chroma span) in code values."""
    if full_range:
        top = float(2**bits - 1)
        return 0.0, top, float(2 ** (bits - 1)), top
    s = float(2 ** (bits - 8))
    return 16.0 * s, 219.0 * s, 128.0 * s, 224.0 * s


def rgb_to_ycbcr(
    rgb: np.ndarray, matrix: str, *, full_range: bool = False, bits: int = 8
) -> np.ndarray:
    """Y'CbCr code values (unrounded) of R'G'B' in [0, 1].

    Parameters
    ----------
    rgb : ndarray, (..., 3) float in [0, 1]
    matrix : str
        A key of :data:`MATRICES`.

    Returns
    -------
    ndarray, (..., 3) float64: Y', Cb, Cr as code values of ``bits`` bits.
    """
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    e = np.asarray(rgb, dtype=np.float64)
    y = kr * e[..., 0] + kg * e[..., 1] + kb * e[..., 2]
    pb = (e[..., 2] - y) / (2.0 * (1.0 - kb))
    pr = (e[..., 0] - y) / (2.0 * (1.0 - kr))
    yo, ys, co, cs = _levels(full_range, bits)
    return np.stack([yo + ys * y, co + cs * pb, co + cs * pr], axis=-1)


def ycbcr_to_rgb(
    ycbcr: np.ndarray, matrix: str, *, full_range: bool = False, bits: int = 8
) -> np.ndarray:
    """R'G'B' in [0, 1] (unclipped) of Y'CbCr code values: the inverse of :func:`rgb_to_ycbcr`."""
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    v = np.asarray(ycbcr, dtype=np.float64)
    yo, ys, co, cs = _levels(full_range, bits)
    y = (v[..., 0] - yo) / ys
    pb = (v[..., 1] - co) / cs
    pr = (v[..., 2] - co) / cs
    r = y + 2.0 * (1.0 - kr) * pr
    b = y + 2.0 * (1.0 - kb) * pb
    g = (y - kr * r - kb * b) / kg
    return np.stack([r, g, b], axis=-1)


def yuv_to_rgb_matrix(matrix: str, *, full_range: bool, bits: int, out_max: float) -> np.ndarray:
    """The affine (3, 4) float32 map of :func:`ycbcr_to_rgb`, scaled to ``0..out_max``."""
    basis = ycbcr_to_rgb(
        np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
        matrix,
        full_range=full_range,
        bits=bits,
    )
    offset = basis[0]
    linear = (basis[1:] - offset).T  # columns: d(rgb)/dY, d/dCb, d/dCr
    return (np.hstack([linear, offset[:, None]]) * out_max).astype(np.float32)


def rgb_to_yuv_matrix(matrix: str, *, full_range: bool, bits: int, in_max: float) -> np.ndarray:
    """The affine (3, 4) float32 map of :func:`rgb_to_ycbcr` for R'G'B' in ``0..in_max``."""
    basis = rgb_to_ycbcr(
        np.eye(4, 3, k=-1), matrix, full_range=full_range, bits=bits
    )  # rows: 0, R, G, B
    offset = basis[0]
    linear = (basis[1:] - offset).T / in_max
    return np.hstack([linear, offset[:, None]]).astype(np.float32)


# --- decoding: Y'CbCr frame -> RGB ndarray -------------------------------------------------
#: semi-planar Y'CbCr formats (a luma plane, then one plane of interleaved Cb, Cr) -> bits
#: each sample is stored in (deeper samples are left-aligned in 16-bit words).  Hardware
#: frames come down from the GPU in these (NVDEC: nv12, p010le, p016le), and NVENC takes them.
SEMI_PLANAR: dict[str, int] = {
    "nv12": 8, "nv16": 8, "nv24": 8,
    "p010le": 16, "p016le": 16, "p210le": 16, "p216le": 16, "p410le": 16, "p416le": 16,
}  # fmt: skip
#: planar 16-bit formats a GPU hands down for deep streams, the samples left-aligned (NVDEC
#: decodes 10/12-bit 4:4:4 into yuv444p16le)
LEFT_ALIGNED_PLANAR = frozenset({"yuv420p16le", "yuv422p16le", "yuv444p16le"})


def _plane(plane, dtype: np.dtype, samples: int = 1) -> np.ndarray:
    """A (height, width * samples) view of one plane of a frame (no copy); ``samples`` = 2
    for the interleaved Cb/Cr plane of a semi-planar format."""
    rows = np.frombuffer(plane, dtype=dtype)
    return rows.reshape(plane.height, plane.line_size // dtype.itemsize)[
        :, : plane.width * samples
    ]


def planar_samples(frame: av.VideoFrame, bits: int) -> list[np.ndarray]:
    """The Y', Cb, Cr planes of a planar, semi-planar or left-aligned 16-bit frame, as
    samples of ``bits`` bits (what a software decoder of the stream gives).

    Parameters
    ----------
    frame : av.VideoFrame
        Y'CbCr 4:2:0/4:2:2/4:4:4: planar (``yuv420p``, ``yuv420p10le``, ...), semi-planar
        (:data:`SEMI_PLANAR`) or planar 16-bit with left-aligned samples
        (:data:`LEFT_ALIGNED_PLANAR`).
    bits : int
        The stream's bit depth (8..16).

    Returns
    -------
    list of ndarray
        Three (rows, cols) arrays, uint8 for ``bits`` <= 8 else uint16 (0..2**bits - 1),
        chroma at its subsampled size; views into the frame for planar formats, copies
        otherwise.
    """
    name = frame.format.name
    dtype = np.dtype(np.uint8) if bits <= 8 else np.dtype(np.uint16)
    store = SEMI_PLANAR.get(name)
    if store is not None:
        sdtype = np.dtype(np.uint8) if store == 8 else np.dtype(np.uint16)
        shift = store - bits if store == 16 else 0
        y = _plane(frame.planes[0], sdtype)
        uv = _plane(frame.planes[1], sdtype, samples=2)
        planes = [y, uv[:, 0::2], uv[:, 1::2]]
    else:
        fmt_bits = max(c.bits for c in frame.format.components)
        sdtype = np.dtype(np.uint8) if fmt_bits <= 8 else np.dtype(np.uint16)
        shift = 16 - bits if name in LEFT_ALIGNED_PLANAR else 0
        planes = [_plane(p, sdtype) for p in frame.planes[:3]]
    if shift:
        return [np.ascontiguousarray(p >> shift).astype(dtype, copy=False) for p in planes]
    if sdtype != dtype:
        return [p.astype(dtype) for p in planes]
    return [np.ascontiguousarray(p) if store is not None else p for p in planes]


def is_yuv_format(pix_fmt: str | None) -> bool:
    """Whether :class:`YuvToRgb` converts this pixel format (planar Y'CbCr[A], native endian)."""
    if not pix_fmt or not pix_fmt.startswith("yuv") or pix_fmt.endswith("be"):
        return False
    try:
        fmt = av.VideoFormat(pix_fmt)
    except (ValueError, av.error.FFmpegError):
        return False
    comps = fmt.components
    return len(comps) in (3, 4) and len({c.plane for c in comps}) == len(comps)


class YuvToRgb:
    """Converts decoded planar Y'CbCr frames to RGB(A) ndarrays with a stream's matrix and range.

    Parameters
    ----------
    pix_fmt : str
        The frames' format (see :func:`is_yuv_format`).
    info : ColorInfo
        Matrix and range to decode with.

    Notes
    -----
    Output: uint8 (0..255) for 8-bit formats, uint16 scaled to the full 0..65535 for deeper
    ones; ``(H, W, 3)``, or ``(H, W, 4)`` with the alpha plane for ``yuva*`` formats.  Chroma
    is upsampled bilinearly.  Within 0.5 level of :func:`ycbcr_to_rgb` on flat areas.
    """

    def __init__(self, pix_fmt: str, info: ColorInfo):
        self.pix_fmt = pix_fmt
        fmt = av.VideoFormat(pix_fmt)
        self.bits = max(c.bits for c in fmt.components)
        self.alpha = len(fmt.components) == 4
        self.dtype = np.dtype(np.uint8) if self.bits <= 8 else np.dtype(np.uint16)
        out_max = 255.0 if self.bits <= 8 else 65535.0
        self._matrix = yuv_to_rgb_matrix(
            info.matrix, full_range=info.range == "full", bits=self.bits, out_max=out_max
        )
        self._alpha_scale = out_max / (2**self.bits - 1)
        self._buffers: dict[tuple, np.ndarray] = {}

    def _buffer(self, key: tuple, shape: tuple[int, ...]) -> np.ndarray:
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape:
            buf = self._buffers[key] = np.empty(shape, self.dtype)
        return buf

    def _upsample(self, plane: np.ndarray, k: int, height: int, width: int) -> np.ndarray:
        ch, cw = plane.shape
        if (ch, cw) == (height, width):
            return plane
        sy, sx = -(-height // ch), -(-width // cw)
        out = self._buffer(("chroma", k), (ch * sy, cw * sx))
        cv2.resize(plane, (cw * sx, ch * sy), dst=out, interpolation=cv2.INTER_LINEAR)
        return out[:height, :width]

    def accepts(self, pix_fmt: str) -> bool:
        """Whether frames of ``pix_fmt`` are converted here: the stream's own format, or the
        semi-planar / left-aligned forms a GPU decoder hands down for it (not with alpha)."""
        if pix_fmt == self.pix_fmt:
            return True
        return not self.alpha and (pix_fmt in SEMI_PLANAR or pix_fmt in LEFT_ALIGNED_PLANAR)

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        """RGB(A) of a frame of the stream's format or of a form :meth:`accepts` (the same
        sample values, so the same result)."""
        if frame.format.name == self.pix_fmt:
            planes = [_plane(p, self.dtype) for p in frame.planes]
        else:
            planes = planar_samples(frame, self.bits)
        y = planes[0]
        height, width = y.shape
        u = self._upsample(planes[1], 1, height, width)
        v = self._upsample(planes[2], 2, height, width)
        yuv = self._buffer(("yuv",), (height, width, 3))
        cv2.merge([y, u, v], dst=yuv)
        rgb = cv2.transform(yuv, self._matrix)
        if not self.alpha:
            return rgb
        a = planes[3]
        if self._alpha_scale != 1.0:
            a = cv2.multiply(a, 1.0, scale=self._alpha_scale, dtype=cv2.CV_16U)
        return cv2.merge([rgb, np.ascontiguousarray(a)])


# --- encoding: RGB ndarray -> Y'CbCr frame -------------------------------------------------
def rgb_to_yuv_frame(
    rgb: np.ndarray,
    pix_fmt: str,
    info: ColorInfo,
    *,
    alpha: np.ndarray | None = None,
) -> av.VideoFrame:
    """A planar Y'CbCr[A] frame of ``pix_fmt`` from RGB, with the matrix, range and tags of ``info``.

    Parameters
    ----------
    rgb : ndarray, (H, W, 3) uint8 (0..255) or uint16 (0..65535)
        H and W must suit the chroma subsampling (even for 4:2:0).
    pix_fmt : str
        e.g. ``yuv420p``, ``yuv420p10le``, ``yuv422p10le``, ``yuva444p10le``, or a semi-planar
        one (``nv12``, ``p010le``: what NVENC takes; the same samples, packed).
    alpha : ndarray, (H, W), same dtype as ``rgb``, optional
        For ``yuva*`` formats (opaque when not given).

    Returns
    -------
    av.VideoFrame
        Tagged with ``info``'s colorspace, range, primaries and transfer.  Chroma is the mean
        of each subsampled block.
    """
    fmt = av.VideoFormat(pix_fmt)
    bits = max(c.bits for c in fmt.components)
    in_max = 255.0 if rgb.dtype == np.uint8 else 65535.0
    height, width = rgb.shape[:2]
    m = rgb_to_yuv_matrix(info.matrix, full_range=info.range == "full", bits=bits, in_max=in_max)
    frame = av.VideoFrame(width, height, pix_fmt)
    out_dtype = np.dtype(np.uint8) if bits <= 8 else np.dtype(np.uint16)
    top = 2**bits - 1
    store = SEMI_PLANAR.get(pix_fmt)
    chroma = frame.planes[1]
    y, cb, cr = _ycbcr_planes(rgb, m, (chroma.height, chroma.width), top, out_dtype)
    if store is not None:  # chroma plane: Cb and Cr interleaved; deep samples left-aligned
        shift = store - bits if store == 16 else 0
        _plane(frame.planes[0], out_dtype)[:] = y << shift
        uv = _plane(chroma, out_dtype, samples=2)
        uv[:, 0::2] = cb << shift
        uv[:, 1::2] = cr << shift
        tag_frame(frame, info)
        return frame
    for plane, samples in zip(frame.planes[:3], (y, cb, cr), strict=True):
        _plane(plane, out_dtype)[:] = samples
    if len(frame.planes) == 4:
        if alpha is None:
            a = np.full((height, width), top, out_dtype)
        else:
            a = np.rint(alpha.astype(np.float64) * (top / in_max)).astype(out_dtype)
        _plane(frame.planes[3], out_dtype)[:] = a
    tag_frame(frame, info)
    return frame


def _ycbcr_planes(rgb: np.ndarray, m: np.ndarray, chroma_hw: tuple[int, int], top: int,
                  out_dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y' at full size and Cb, Cr at ``chroma_hw`` from RGB with the 3x4 matrix ``m``.

    The matrix is linear, so the mean of each subsampled block of Cb/Cr equals Cb/Cr of the
    block's mean RGB: chroma is computed from the RGB frame box-averaged to the chroma size
    (a quarter of the work at 4:2:0), and an 8-bit Y' from uint8 RGB in one OpenCV pass that
    rounds and saturates like ``clip(rint(.))``.  Same values as converting every pixel and
    averaging afterwards, to float32 rounding (a sample in ~10^5 may land on the other side
    of a .5 and differ by one code); about 3x faster at 2560x1440.
    """
    height, width = rgb.shape[:2]
    rgb_f = None
    if out_dtype == np.uint8 and rgb.dtype == np.uint8:
        y = cv2.transform(rgb, m[0:1])
    else:
        rgb_f = rgb.astype(np.float32)
        y = np.clip(np.rint(cv2.transform(rgb_f, m[0:1])), 0, top).astype(out_dtype)
    if rgb_f is None:
        rgb_f = rgb.astype(np.float32)
    ch, cw = chroma_hw
    if (ch, cw) != (height, width):
        rgb_f = cv2.resize(rgb_f, (cw, ch), interpolation=cv2.INTER_AREA)
    c = np.clip(np.rint(cv2.transform(rgb_f, m[1:3])), 0, top).astype(out_dtype)
    return y.reshape(height, width), np.ascontiguousarray(c[..., 0]), np.ascontiguousarray(
        c[..., 1])


def tag_frame(frame: av.VideoFrame, info: ColorInfo) -> None:
    """Set a frame's colorspace, range, primaries and transfer tags from ``info``."""
    frame.colorspace = MATRIX_TO_SPC[info.matrix]
    frame.color_range = RANGE_TO_AV[info.range]
    frame.color_primaries = PRIMARIES_TO_AV.get(info.primaries, 2)
    frame.color_trc = TRANSFERS_TO_AV.get(info.transfer, 2)


def tag_codec_context(cc, info: ColorInfo) -> None:
    """Set an encoder's colour tags (written into the bitstream and the container)."""
    cc.colorspace = MATRIX_TO_SPC[info.matrix]
    cc.color_range = RANGE_TO_AV[info.range]
    cc.color_primaries = PRIMARIES_TO_AV.get(info.primaries, 2)
    cc.color_trc = TRANSFERS_TO_AV.get(info.transfer, 2)


def output_color(
    width: int,
    height: int,
    *,
    matrix: str | None = None,
    color_range: str | None = None,
    primaries: str | None = None,
    transfer: str | None = None,
) -> ColorInfo:
    """The colour description of an output: given values, else HD/SD defaults, limited range.

    BT.2020 primaries (a wide-gamut or HDR source's, passed on) imply the BT.2020 matrix.
    """
    m = matrix or ("bt2020" if primaries == "bt2020" else default_matrix(width, height))
    return ColorInfo(
        m,
        color_range or "limited",
        primaries or _DEFAULT_PRIMARIES[m],
        transfer or _DEFAULT_TRANSFER[m],
    )


def source_color_tags(metadata: dict) -> dict[str, str]:
    """``color_primaries``/``color_transfer`` a source declared (not assumed), for a writer.

    Parameters
    ----------
    metadata : dict
        A frame array's ``metadata`` (video sources record ``color_*``; others record none).
    """
    assumed = metadata.get("color_assumed") or ()
    tags = {}
    for key, name in (("color_primaries", "primaries"), ("color_transfer", "transfer")):
        value = metadata.get(key)
        if isinstance(value, str) and name not in assumed:
            tags[key] = value
    return tags
