"""Video encoding with PyAV (mp4, m4v, mov, mkv, webm).

Encoding rules (the defaults give files every player opens and shows in the right colours):

- **Default (lossy):** H.264 (libx264), ``yuv420p``, CRF 18 (``crf`` 0..51, lower is better),
  preset by output size (``medium`` up to 1280x720, ``faster`` up to 1920x1080, ``veryfast``
  above: :func:`~napari_vsr.io.encode_presets.default_preset`) unless ``preset`` is given;
  ``.webm`` -> VP9 (libvpx-vp9).  yuv420p needs even sizes: an odd width or
  height is padded by one edge-replicated column/row (logged), so the file is at most one pixel
  larger.
- **Codecs** (``codec=``, FFmpeg encoder names or aliases): ``h264``/``libx264``,
  ``h265``/``hevc``/``libx265``, ``vp9``/``libvpx-vp9`` (mkv, webm, mp4), ``av1``
  (``libsvtav1`` or ``libaom-av1``, whichever this FFmpeg has), ``prores``/``prores_ks``
  (``.mov``/``.mkv``: 10-bit 4:2:2 HQ; 4:4:4:4 with alpha for RGBA frames), ``ffv1``
  (lossless), ``mpeg4`` and other FFmpeg video encoders.  An encoder missing from this FFmpeg
  build, a codec that is not a video encoder, a codec the container cannot hold or a frame size
  beyond the codec's limit is refused before any frame is encoded (:meth:`VideoWriter.validate`).
- **NVIDIA (NVENC):** ``h264_nvenc`` (alias ``nvenc``), ``hevc_nvenc``, ``av1_nvenc``: rate
  control ``vbr`` with ``cq`` = ``crf`` (AV1: ``crf + 13``, its 0..63 scale) and no bit-rate
  cap (``b`` 0), preset ``p5`` (or ``preset`` mapped), tune ``hq``; 8-bit input as
  ``yuv420p``, 10-bit (uint16 frames) as ``p010le``, both converted here with the same matrix
  and tags as the software path.  Whether the encoder really opens (driver, GPU, an NVENC
  engine on the chip, the frame size and bit depth) is tried before any frame is encoded
  (:mod:`~napari_vsr.io.hardware`); when it does not, the software encoder of the same
  bitstream is used (libx264, libx265, SVT-AV1/libaom) and a one-line note says what was asked,
  why it failed and what is used (:attr:`VideoWriter.notes`, also logged as a warning).
  With ``codec`` None or ``"auto"`` and ``prefer_hardware`` (the job runner sets it for CUDA
  jobs), mp4/mov/mkv outputs are encoded with ``h264_nvenc`` when it opens (16-bit frames:
  10-bit ``h264_nvenc``, else 10-bit ``hevc_nvenc``), else with the software default (noted).
- **Colour:** RGB -> Y'CbCr with an explicit matrix, and every stream tagged (colorspace, range,
  primaries, transfer): BT.709 for HD-sized output (width >= 1280 or height > 576), BT.601
  below, limited range, unless ``color_matrix``/``color_range`` say otherwise;
  ``color_primaries``/``color_transfer`` carry a source's tags (HDR PQ/HLG code values are
  written as they are, with their tags: no tone mapping).
- **Deep colour:** uint16 frames are encoded at 10 bits when the codec can (x264 High 10, x265,
  AV1, ProRes; VP9 in this FFmpeg build is 8-bit only, so ``.webm`` switches to AV1); a codec
  that cannot is refused when it was asked for by name, and logs a warning when it was the
  default.  uint16 -> uint8 is ``round(x / 257)``.
- **Lossless:** ``.mkv`` -> FFV1 (``bgr0`` for uint8 RGB, ``gbrp16le`` for uint16 RGB, ``bgra`` /
  ``rgba64le`` for RGBA, ``gray``/``gray16le`` for gray; exact size, bit-exact round trip).
  ``.mp4``/``.mov`` -> x264 with qp 0 on RGB (``libx264rgb``) or gray (``libx264`` ``gray``),
  8-bit only, exact size; bit-exact but not every player decodes 4:4:4 / 4:0:0 H.264.
- **dtype:** float32/float64 are taken as [0, 1] and scaled to the target range with rounding
  and clipping; bool -> 0/255.  Gray frames are encoded as luma (they read back as RGB with
  equal channels from a lossy file, as gray from a lossless one).  RGBA keeps its alpha with
  ProRes 4444, VP9 and FFV1; other codecs drop it (logged).
- **Timing:** ``fps`` (float, int, ``Fraction`` or ``"30000/1001"``) is kept as an exact
  rational; a float within 0.002 of an NTSC rate (n * 1000/1001) is taken as that rate, so
  29.97 is stored as 30000/1001.  ``frame_times`` (seconds, increasing) give each frame its own
  timestamp (variable frame rate kept).
- **Other streams:** ``copy_streams_from=source`` copies the source's audio and subtitle
  streams packet by packet when the container accepts their codec; otherwise audio is
  re-encoded to AAC (Opus in webm) and unsupported subtitles are skipped (logged).
"""

from __future__ import annotations

import json
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from napari_vsr.errors import (
    NOTE_FLAG,
    ParameterError,
    SourceNotFoundError,
    UnsupportedDtypeError,
    WriteError,
)
from napari_vsr.io import color, hardware
from napari_vsr.io.encode_presets import check_preset, nvenc_preset, x264_preset
from napari_vsr.io.fps import parse_fps
from napari_vsr.io.video_options import VideoOptions
from napari_vsr.io.writer_base import Writer, temp_path_beside

log = logging.getLogger(__name__)

VIDEO_OUT_EXTENSIONS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
}
DEFAULT_FPS = Fraction(25)
DEFAULT_CRF = 18
#: codecs each container takes by stream copy (anything else: audio -> AAC, subtitles skipped)
_COPYABLE = {
    "mp4": {"aac", "mp3", "alac", "flac", "opus", "ac3", "eac3", "mov_text"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le", "pcm_f32le", "mov_text"},
    "matroska": None,  # everything except mov_text
    "webm": {"opus", "vorbis"},
}
#: short names -> FFmpeg encoders, first available wins
CODEC_ALIASES: dict[str, tuple[str, ...]] = {
    "h264": ("libx264",),
    "x264": ("libx264",),
    "h265": ("libx265",),
    "hevc": ("libx265",),
    "x265": ("libx265",),
    "vp9": ("libvpx-vp9",),
    "vp8": ("libvpx",),
    "av1": ("libsvtav1", "libaom-av1", "librav1e"),
    "prores": ("prores_ks", "prores"),
    "nvenc": ("h264_nvenc",),
}
#: the containers an automatic NVENC choice applies to (webm keeps its VP9 default)
_AUTO_HARDWARE_FORMATS = ("mp4", "mov", "matroska")
#: the codecs each container can hold (None: no restriction known to us)
_CONTAINER_CODECS: dict[str, frozenset[str] | None] = {
    "webm": frozenset({"vp8", "vp9", "av1"}),
    "mp4": frozenset(
        {"h264", "hevc", "av1", "vp9", "mpeg4", "mpeg2video", "mpeg1video", "mjpeg", "png"}
    ),
    "mov": None,
    "matroska": None,
}
#: encoder -> (max width, max height, max width * height or None): refused before any work
SIZE_LIMITS: dict[str, tuple[int, int, int | None]] = {
    "libx264": (16384, 16384, None),
    "libx264rgb": (16384, 16384, None),
    "libx265": (16888, 16888, 35_651_584),  # HEVC level 6.2
    "libvpx-vp9": (65536, 65536, None),
    "libvpx": (16383, 16383, None),
    "libsvtav1": (16384, 8704, None),
    "libaom-av1": (65536, 65536, None),
    "prores_ks": (65535, 65535, None),
    "mpeg4": (8191, 8191, None),
    "mpeg2video": (16383, 16383, None),
    "mpeg1video": (4095, 4095, None),
}
#: pixel formats tried, in order, for (deep, alpha) frames
_YUV_PREFERENCE = {
    (False, False): ("yuv420p", "yuv422p10le", "yuv422p", "yuv444p"),
    (True, False): ("yuv420p10le", "yuv422p10le", "yuv444p10le", "yuv420p12le"),
    (False, True): ("yuva420p", "yuva444p10le", "yuva444p"),
    (True, True): ("yuva444p10le", "yuva420p10le", "yuva444p12le"),
}
_VFR_TIME_BASE = Fraction(1, 90000)
#: notes already logged by a writer of this process (see VideoWriter._note)
_LOGGED_NOTES: set[str] = set()
#: the frame sizes DV can hold (width, height)
DV_SIZES = frozenset({(720, 480), (720, 576), (960, 720), (1280, 1080), (1440, 1080), (1920, 1080)})


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == np.uint16:
        return ((frame.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if frame.dtype == np.bool_:
        return frame.astype(np.uint8) * 255
    if frame.dtype.kind == "f":
        return np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8)
    raise UnsupportedDtypeError(f"cannot encode frames of dtype {frame.dtype} as video")


def _to_uint16(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint16:
        return frame
    if frame.dtype == np.uint8:
        return frame.astype(np.uint16) * 257
    if frame.dtype.kind == "f":
        return np.clip(np.rint(frame * 65535.0), 0, 65535).astype(np.uint16)
    return _to_uint8(frame).astype(np.uint16) * 257


def _resolve_codec(name: str) -> str:
    """The FFmpeg encoder for a codec name or alias; ParameterError when there is none."""
    key = name.strip().lower()
    candidates = CODEC_ALIASES.get(key, (name.strip(),))
    if hardware.is_nvenc(candidates[0].lower()):
        return candidates[0].lower()  # missing from this build: the writer falls back, noted
    for enc in candidates:
        try:
            codec = av.codec.Codec(enc, "w")
        except (ValueError, av.error.FFmpegError):
            continue
        if codec.type != "video":
            raise ParameterError(
                f"--codec {name}: {enc!r} is {'an' if codec.type[0] in 'aeiou' else 'a'} "
                f"{codec.type} encoder, not a video one; use e.g. "
                "h264, h265, vp9, av1, prores or ffv1"
            )
        return codec.name
    known = ", ".join(candidates)
    raise ParameterError(
        f"--codec {name}: no such video encoder in this FFmpeg build (looked for {known}); "
        f"available here: {', '.join(_available_video_codecs())}"
    )


def _available_video_codecs() -> list[str]:
    found = []
    for alias, encs in CODEC_ALIASES.items():
        if alias in ("x264", "x265", "hevc", "vp8") or alias in found:
            continue
        if any(e in av.codecs_available for e in encs):
            found.append(alias)
    return found + ["ffv1", "mpeg4"]


#: encoder -> the bitstream it writes, where the names differ
_FAMILY = {
    "libx264": "h264",
    "libx264rgb": "h264",
    "libx265": "hevc",
    "libvpx-vp9": "vp9",
    "libvpx": "vp8",
    "libsvtav1": "av1",
    "libaom-av1": "av1",
    "librav1e": "av1",
    "prores_ks": "prores",
    **hardware.NVENC_ENCODERS,
}


def _even(n: int) -> int:
    """``n`` rounded up to even (4:2:0 frames are padded to even sizes)."""
    return int(n) + int(n) % 2


def _codec_family(encoder: str) -> str:
    """The bitstream an encoder writes (``libx264`` -> ``h264``), for container checks."""
    return _FAMILY.get(encoder, encoder)


def _pixel_formats(encoder: str) -> list[str]:
    return [f.name for f in (av.codec.Codec(encoder, "w").video_formats or [])]


def _bits(pix_fmt: str) -> int:
    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


def _subsampling(pix_fmt: str) -> tuple[int, int]:
    """(horizontal, vertical) chroma subsampling factors of a Y'CbCr format."""
    fmt = av.VideoFormat(pix_fmt, 64, 64)
    if len(fmt.components) < 3:
        return 1, 1
    c = fmt.components[1]
    return 64 // max(1, c.width), 64 // max(1, c.height)


class VideoWriter(Writer):
    """Encodes frames into an mp4/m4v/mov/mkv/webm file (see the module notes for the rules).

    Parameters
    ----------
    path : path-like
        Target; the extension picks the container.
    fps : float, Fraction or str, optional
        Frame rate; default: the rate of ``copy_streams_from`` when given, else 25.
    overwrite : bool
        Replace an existing file at commit.
    metadata : dict, optional
        Stored as JSON in the container's ``comment`` tag.
    video : VideoOptions, optional
        How the video is encoded; default: all fields unset.  Here:

        - ``codec``: FFmpeg encoder name or alias overriding the default (``"h264"``,
          ``"h265"``, ``"vp9"``, ``"av1"``, ``"prores"``, ``"ffv1"``, ``"mpeg4"``,
          ``"h264_nvenc"``, ``"hevc_nvenc"``, ``"av1_nvenc"``, ...); ``"auto"`` = None.
          ``crf`` applies to x264/x265/VP9/AV1/NVENC; ProRes uses its HQ profile; other
          encoders get a bit rate of about 0.2 bit per pixel.
        - ``preset``: x264/x265 or NVENC speed preset (see
          :mod:`~napari_vsr.io.encode_presets`); default by output size (x264/x265), ``p5``
          (NVENC).
        - ``prefer_hardware``: with no codec, encode with NVENC when it opens (see the module
          notes).
        - ``crf``: constant rate factor 0..51 (x264 scale, default 18); VP9/AV1 get
          ``crf + 13``.
        - ``lossless``: bit-exact encoding (FFV1 in mkv, x264 qp 0 otherwise).
        - ``copy_streams_from``: a source video whose audio/subtitle streams are copied into
          the output.
        - ``frame_times``: presentation time of each frame in seconds (keeps variable frame
          rate).
        - ``color_matrix`` ({"bt601", "bt709", "bt2020", "smpte240m", "fcc"}): Y'CbCr matrix;
          default by output size (BT.709 when width >= 1280 or height > 576).
        - ``color_range`` ({"limited", "full"}): default limited.
        - ``color_primaries``, ``color_transfer``: FFmpeg names of the tags to write (e.g. a
          source's ``"bt2020"``, ``"smpte2084"``); default: those of the matrix
          (BT.709 / SMPTE 170M).
    preset : str, optional
        x264/x265/NVENC speed preset, when ``video.preset`` is not given.

    Attributes
    ----------
    notes : list of str
        One line for each thing the user should know about how the video is encoded (NVENC
        unavailable and the software encoder used instead, alpha dropped, 16-bit written as
        8-bit, ...), filled by :meth:`validate` / :meth:`preflight` (before any work) or by
        the first frame; each also logged as a warning.  The job runner shows them.
    encoder : str or None
        The FFmpeg encoder chosen, once :meth:`validate` or the first frame has run.

    Raises
    ------
    ParameterError
        Unknown extension, encoder missing from this FFmpeg, not a video codec, a codec the
        container cannot hold, crf out of range, unknown colour names.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float | str | Fraction | None = None,
        overwrite: bool = False,
        metadata: dict[str, Any] | None = None,
        video: VideoOptions | None = None,
        preset: str | None = None,
    ):
        video = video or VideoOptions()
        codec, crf, lossless = video.codec, video.crf, video.lossless
        if codec is not None and codec.strip().lower() == "auto":
            codec = None
        copy_streams_from, frame_times = video.copy_streams_from, video.frame_times
        color_matrix, color_range = video.color_matrix, video.color_range
        color_primaries, color_transfer = video.color_primaries, video.color_transfer
        target = Path(path)
        fmt = VIDEO_OUT_EXTENSIONS.get(target.suffix.lower())
        if fmt is None:
            raise ParameterError(
                f"{target}: unsupported video extension {target.suffix!r}; use "
                f"{', '.join(VIDEO_OUT_EXTENSIONS)}"
            )
        if crf is not None and not 0 <= int(crf) <= 51:
            raise ParameterError(f"crf must be in 0..51 (x264), got {crf}")
        if lossless and codec is not None:
            raise ParameterError("give either lossless=True or a codec, not both")
        if lossless and fmt == "webm":
            raise ParameterError(
                f"{target}: lossless video needs .mkv (FFV1) or .mp4/.mov (x264); webm cannot"
            )
        encoder = _resolve_codec(codec) if codec is not None else None
        if encoder is not None:
            allowed = _CONTAINER_CODECS[fmt]
            family = _codec_family(encoder)
            if allowed is not None and family not in allowed:
                raise ParameterError(
                    f"{target}: a {target.suffix} file cannot hold {family} video; use "
                    f"{', '.join(sorted(allowed))}, or a .mkv/.mov file"
                )
        for name, value, choices in (
            ("color_matrix", color_matrix, color.MATRICES),
            ("color_range", color_range, color.RANGES),
            ("color_primaries", color_primaries, color.PRIMARIES_TO_AV),
            ("color_transfer", color_transfer, color.TRANSFERS_TO_AV),
        ):
            if value is not None and value not in choices:
                raise ParameterError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
        if copy_streams_from is not None and not Path(copy_streams_from).is_file():
            raise SourceNotFoundError("source for copied streams not found", path=copy_streams_from)
        super().__init__(target, overwrite=overwrite)
        self._format = fmt
        self._codec = encoder
        self._crf = DEFAULT_CRF if crf is None else int(crf)
        self._lossless = bool(lossless)
        self._preset = check_preset(video.preset if video.preset is not None else preset)
        self._prefer_hardware = bool(video.prefer_hardware)
        self._color_args = {
            "matrix": color_matrix,
            "color_range": color_range,
            "primaries": color_primaries,
            "transfer": color_transfer,
        }
        self._copy_from = Path(copy_streams_from) if copy_streams_from is not None else None
        self._times = None if frame_times is None else np.asarray(frame_times, dtype=np.float64)
        if fps is None and self._copy_from is not None:
            fps = self._source_rate(self._copy_from)
        self._rate = DEFAULT_FPS if fps is None else parse_fps(fps)
        self._metadata = metadata
        self._tmp = temp_path_beside(self.path)
        self._out: av.container.OutputContainer | None = None
        self._stream = None
        self._copies: list[tuple[Any, Any, str]] = []
        self._src: av.container.InputContainer | None = None
        self._prep = None  # frame -> av.VideoFrame
        self._warned: set[str] = set()
        self.notes: list[str] = []
        self.encoder: str | None = None
        self.color: color.ColorInfo | None = None  # what was written, once the first frame came

    @staticmethod
    def _source_rate(source: Path) -> Fraction | None:
        try:
            with av.open(str(source)) as c:
                return c.streams.video[0].average_rate if c.streams.video else None
        except av.error.FFmpegError:
            return None

    @property
    def temp_path(self) -> Path:
        return self._tmp

    @property
    def fps(self) -> Fraction:
        """The exact frame rate written."""
        return self._rate

    # --- checks before any work ---------------------------------------------------------------
    def validate(self, frame_shape: tuple[int, ...], dtype) -> None:
        """Refuse, before any work, frames this writer could not encode.

        Parameters
        ----------
        frame_shape : tuple
            ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` of the frames to come.
        dtype : numpy dtype
            Their dtype.

        Raises
        ------
        ParameterError
            The size is beyond the codec's limit (named), or the codec asked for by name cannot
            carry these frames (deep colour, HDR).
        """
        shape = tuple(int(n) for n in frame_shape)
        if len(shape) == 3 and shape[2] == 1:
            shape = shape[:2]
        if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (3, 4)):
            raise ParameterError(
                f"{self.path}: video frames must be (H, W), (H, W, 3) or (H, W, 4); got {shape}"
            )
        self._plan(shape, np.dtype(dtype))

    def _check_size(self, encoder: str, width: int, height: int) -> None:
        limit = SIZE_LIMITS.get(encoder)
        if encoder == "dvvideo" and (width, height) not in DV_SIZES:
            sizes = ", ".join(f"{w}x{h}" for w, h in sorted(DV_SIZES))
            raise ParameterError(
                f"{self.path}: DV video has fixed frame sizes ({sizes}); the frames are "
                f"{width}x{height}: resize them, or use another codec"
            )
        if limit is None:
            return
        max_w, max_h, max_area = limit
        if width > max_w or height > max_h or (max_area and width * height > max_area):
            area = f", {max_area:,} pixels" if max_area else ""
            raise ParameterError(
                f"{self.path}: {width}x{height} frames are beyond what {encoder} can encode "
                f"(at most {max_w}x{max_h}{area}); use a smaller scale, a tiled output "
                "(.tif/.zarr/frames), or another codec (e.g. vp9 in .mkv/.webm up to 65536 px)"
            )

    # --- choosing the encoding ----------------------------------------------------------------
    def _plan(
        self, shape: tuple[int, ...], dtype: np.dtype
    ) -> tuple[str, str, dict[str, str], str]:
        """(encoder, encoder pix_fmt, options, input kind) for frames of this shape and dtype.

        The input kind is ``"yuv"`` (converted by :func:`~napari_vsr.io.color.rgb_to_yuv_frame`)
        or the av format the frames are handed over in (RGB/gray formats).
        """
        height, width = shape[:2]
        gray = len(shape) == 2
        alpha = len(shape) == 3 and shape[2] == 4
        deep = dtype == np.uint16
        if self._lossless or self._codec == "ffv1":
            if self._format != "matroska" and (self._codec == "ffv1" or deep or alpha):
                what = "FFV1" if self._codec == "ffv1" else "lossless 16-bit or RGBA video"
                raise ParameterError(
                    f"{self.path}: {what} needs a .mkv file; write a .mkv, or a .tif/.zarr stack"
                )
            if self._format == "matroska":
                if gray:
                    kind = "gray16le" if deep else "gray"
                    return "ffv1", kind, {}, kind
                if alpha:
                    return (
                        ("ffv1", "rgba64le", {}, "rgba64le")
                        if deep
                        else ("ffv1", "bgra", {}, "rgba")
                    )
                return (
                    ("ffv1", "gbrp16le", {}, "rgb48le") if deep else ("ffv1", "bgr0", {}, "rgb24")
                )
            self._check_size("libx264", width, height)
            opts = {"qp": "0", "preset": x264_preset(self._preset, width, height)}
            if gray:
                return "libx264", "gray", opts, "gray"
            return "libx264rgb", "rgb24", opts, "rgb24"
        explicit = self._codec is not None
        if explicit:
            encoder = self._codec
        elif self._format == "webm":
            encoder = "libvpx-vp9"
            if deep and not any("10" in f for f in _pixel_formats(encoder)):
                av1 = next((e for e in CODEC_ALIASES["av1"] if e in av.codecs_available), None)
                if av1 is not None and any("10" in f for f in _pixel_formats(av1)):
                    self._note(
                        "deep",
                        "%s: VP9 is 8-bit only in this FFmpeg build; 16-bit frames are "
                        "encoded as 10-bit AV1 (%s)",
                        av1,
                    )
                    encoder = av1
        else:
            encoder = "libx264"
        encoder = self._hardware_choice(encoder, explicit, width, height, deep)
        nvenc = hardware.is_nvenc(encoder)
        if nvenc:  # its size limits are the GPU's: the probe at this size has answered
            formats = [hardware.NVENC_FORMATS[deep]]
        else:
            self._check_size(encoder, width, height)
            formats = _pixel_formats(encoder)
        want_alpha = alpha and any(f.startswith("yuva") for f in formats)
        if alpha and not want_alpha:
            self._note(
                "alpha",
                "%s: %s cannot store alpha; the alpha channel is dropped (use --codec prores "
                "in .mov/.mkv, vp9, or --lossless in .mkv to keep it)",
                encoder,
            )
        pix_fmt = (formats[0] if nvenc else None) or next(
            (f for f in _YUV_PREFERENCE[(deep, want_alpha)] if f in formats), None
        ) or next((f for f in _YUV_PREFERENCE[(False, want_alpha)] if f in formats), None)
        if pix_fmt is None:
            yuv = [f for f in formats if color.is_yuv_format(f)]
            if not yuv:
                raise ParameterError(
                    f"{self.path}: the {encoder} encoder takes no Y'CbCr format "
                    f"({', '.join(formats) or 'none listed'}); choose another codec"
                )
            pix_fmt = yuv[0]
        if deep and _bits(pix_fmt) <= 8:
            message = (
                f"{encoder} encodes 8 bits per sample only, and these frames are 16-bit "
                "(a 10/12-bit source)"
            )
            if explicit and self._codec == encoder:
                raise ParameterError(
                    f"{self.path}: {message}; use h264, h265, av1 or prores, or --lossless in "
                    ".mkv, to keep the bit depth"
                )
            self._note("deep8", "%s: %s; writing 8-bit", message)
        info = self._output_color(width, height)
        if info.is_hdr and _bits(pix_fmt) <= 8:
            message = (
                f"{info.transfer} (HDR) video needs at least 10 bits and {encoder} writes {pix_fmt}"
            )
            if explicit or deep:
                raise ParameterError(
                    f"{self.path}: {message}; use h265, av1 or prores, or give 16-bit frames"
                )
            self._note("hdr", "%s: %s; the HDR tags are kept but the picture will band", message)
        opts: dict[str, str] = {}
        if encoder in ("libx264", "libx265"):
            opts = {"preset": x264_preset(self._preset, width, height), "crf": str(self._crf)}
            if encoder == "libx265":
                opts["x265-params"] = "log-level=error"  # x265 prints its statistics otherwise
        elif encoder in ("libvpx-vp9", "libvpx"):
            opts = {
                "crf": str(min(63, self._crf + 13)),
                "b": "0",
                "deadline": "good",
                "cpu-used": "4",
                "row-mt": "1",
            }
        elif encoder == "libsvtav1":
            opts = {"crf": str(min(63, self._crf + 13)), "preset": "8"}
        elif encoder == "libaom-av1":
            opts = {"crf": str(min(63, self._crf + 13)), "b": "0", "cpu-used": "6"}
        elif nvenc:
            opts = self._nvenc_options(encoder, _even(width), _even(height))
        elif encoder in ("prores_ks", "prores"):
            opts = {"profile": "4" if pix_fmt.startswith(("yuva", "yuv444")) else "3"}
            if encoder == "prores_ks":
                opts["vendor"] = "apl0"
        self.encoder = encoder
        return encoder, pix_fmt, opts, "yuv"

    # --- NVENC ----------------------------------------------------------------------------------
    def _nvenc_options(self, encoder: str, width: int, height: int) -> dict[str, str]:
        """Constant quality (``rc`` vbr, ``cq`` from ``crf``, no bit-rate cap), preset, tune hq.

        ``cq`` is the x264-scale ``crf`` for H.264/HEVC and ``crf + 13`` for AV1 (0..63, as
        for the software AV1 encoders); at least 1, because NVENC reads 0 as "automatic".
        """
        top = 63 if encoder == "av1_nvenc" else 51
        cq = self._crf + 13 if encoder == "av1_nvenc" else self._crf
        return {
            "preset": nvenc_preset(self._preset),
            "tune": "hq",
            "rc": "vbr",
            "cq": str(max(1, min(top, cq))),
            "b": "0",
        }

    def _hardware_choice(
        self, encoder: str, explicit: bool, width: int, height: int, deep: bool
    ) -> str:
        """The encoder to use: an NVENC one asked for when it opens here, else the software
        encoder of its bitstream (noted); with ``prefer_hardware`` and no codec asked for,
        NVENC in place of the H.264 default when it opens (noted when it does not)."""
        w, h = _even(width), _even(height)

        def failure(nvenc: str) -> str | None:
            return hardware.nvenc_failure(
                nvenc, w, h, ten_bit=deep, options=self._nvenc_options(nvenc, w, h)
            )

        depth = " 10-bit" if deep else ""
        if hardware.is_nvenc(encoder):
            why = failure(encoder)
            if why is None:
                return encoder
            fallback = hardware.software_encoder(encoder)
            if fallback is None:
                raise ParameterError(
                    f"{self.path}: {encoder} cannot encode here ({why}) and this FFmpeg build "
                    f"has no software {_codec_family(encoder)} encoder "
                    f"({', '.join(hardware.SOFTWARE_EQUIVALENT[encoder])}); choose another codec"
                )
            hint = ""
            if deep and encoder == "h264_nvenc" and failure("hevc_nvenc") is None:
                hint = " (hevc_nvenc encodes 10-bit on this GPU)"
            self._note(
                "nvenc",
                "%s: %s%s %dx%d was asked for but cannot encode here (%s); encoding with %s "
                "(software) instead%s",
                encoder, depth, w, h, why, fallback, hint,
            )
            return fallback
        if explicit or not self._prefer_hardware or self._format not in _AUTO_HARDWARE_FORMATS:
            return encoder
        candidate = hardware.HARDWARE_EQUIVALENT.get(encoder)
        if candidate is None:
            return encoder
        why = failure(candidate)
        if why is None:
            log.info("%s: encoding with %s (NVENC)", self.path, candidate)
            return candidate
        if deep and failure("hevc_nvenc") is None:
            self._note(
                "nvenc-auto",
                "%s: %s cannot encode 10-bit here (%s); encoding 10-bit HEVC with hevc_nvenc",
                candidate, why,
            )
            return "hevc_nvenc"
        self._note(
            "nvenc-auto",
            "%s: NVENC (%s%s %dx%d) cannot encode here (%s); encoding with %s (software)",
            candidate, depth, w, h, why, encoder,
        )
        return encoder

    def _output_color(self, width: int, height: int) -> color.ColorInfo:
        a = self._color_args
        return color.output_color(
            width,
            height,
            matrix=a["matrix"],
            color_range=a["color_range"],
            primaries=a["primaries"],
            transfer=a["transfer"],
        )

    def _note(self, key: str, message: str, *args) -> None:
        """Add a line to :attr:`notes` and log it as a warning (flagged as a note, see
        :data:`~napari_vsr.errors.NOTE_FLAG`: the job runner shows notes itself), once per
        writer and key.

        ``message`` is a %-format whose first field is this writer's path.  A line already
        logged by an earlier writer of this process (the job runner's pre-flight writer, then
        the writer that assembles the output) is not logged again.
        """
        if key in self._warned:
            return
        self._warned.add(key)
        text = message % (self.path, *args)
        self.notes.append(text)
        if text not in _LOGGED_NOTES:
            _LOGGED_NOTES.add(text)
            log.warning("%s", text, extra={NOTE_FLAG: True})

    # --- opening the encoder on the first frame ------------------------------------------
    def _open(self, frame: np.ndarray) -> None:
        codec, pix_fmt, opts, kind = self._plan(frame.shape, frame.dtype)
        height, width = frame.shape[:2]
        sx, sy = _subsampling(pix_fmt) if kind == "yuv" else (1, 1)
        pad_w, pad_h = -width % sx, -height % sy
        if pad_w or pad_h:
            log.info(
                "%s: size %dx%d padded to %dx%d for %s",
                self.path,
                width,
                height,
                width + pad_w,
                height + pad_h,
                pix_fmt,
            )
        out_w, out_h = width + pad_w, height + pad_h
        info = self._output_color(out_w, out_h)
        if kind != "yuv":  # RGB or gray coded streams: tagged as such
            info = color.ColorInfo(info.matrix, "full", info.primaries, info.transfer)
        self.color = info
        bits = _bits(pix_fmt)
        deep = bits > 8 or kind in ("gray16le", "rgb48le", "rgba64le")
        gray = frame.ndim == 2

        def prep(arr: np.ndarray) -> av.VideoFrame:
            arr = _to_uint16(arr) if deep else _to_uint8(arr)
            if pad_w or pad_h:
                spec = ((0, pad_h), (0, pad_w)) + (((0, 0),) if arr.ndim == 3 else ())
                arr = np.pad(arr, spec, mode="edge")
            if kind == "yuv":
                rgb = np.repeat(arr[..., None], 3, axis=2) if gray else arr
                a = rgb[..., 3] if rgb.shape[2] == 4 else None
                return color.rgb_to_yuv_frame(
                    np.ascontiguousarray(rgb[..., :3]), pix_fmt, info, alpha=a
                )
            if arr.ndim == 3 and arr.shape[2] == 4 and kind not in ("rgba", "rgba64le"):
                arr = arr[..., :3]
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format=kind)
            color.tag_frame(vf, info)
            if kind not in ("gray", "gray16le"):
                vf.colorspace = 0  # RGB
            return vf

        self._prep = prep
        try:
            out = av.open(str(self._tmp), "w", format=self._format)
        except av.error.FFmpegError as exc:
            raise WriteError(f"cannot create the video file ({exc})", path=self.path) from exc
        self._out = out
        vfr = self._times is not None
        try:
            stream = out.add_stream(codec, rate=self._rate)
        except (ValueError, av.error.FFmpegError) as exc:
            raise WriteError(
                f"{self._format} cannot hold {codec} video ({exc})", path=self.path
            ) from exc
        stream.width, stream.height = out_w, out_h
        stream.pix_fmt = pix_fmt
        stream.codec_context.time_base = _VFR_TIME_BASE if vfr else 1 / self._rate
        stream.thread_type = "AUTO"
        color.tag_codec_context(stream.codec_context, info)
        if kind not in ("yuv", "gray", "gray16le"):
            stream.codec_context.colorspace = 0  # RGB
        if codec == "ffv1":
            opts = {"level": "3", "slices": "4", "slicecrc": "1"}
        elif not opts or not {"crf", "qp", "cq", "profile"} & set(opts):
            # encoders without a quality mode: ~0.2 bit per pixel, generous for MPEG-4 etc.
            stream.bit_rate = int(stream.width * stream.height * float(self._rate) * 0.2)
        stream.options = opts
        self._stream = stream
        if self._metadata:
            try:
                out.metadata["comment"] = json.dumps(self._metadata, default=str)
            except (TypeError, ValueError):
                log.warning("%s: metadata not JSON-serialisable; not stored", self.path)
        if self._copy_from is not None:
            self._add_copied_streams()

    def _add_copied_streams(self) -> None:
        try:
            src = av.open(str(self._copy_from))
        except av.error.FFmpegError as exc:
            raise WriteError(
                f"cannot open {self._copy_from} to copy its streams ({exc})", path=self.path
            ) from exc
        self._src = src
        allowed = _COPYABLE[self._format]
        for s in src.streams:
            if s.type not in ("audio", "subtitle"):
                continue
            name = s.codec_context.name
            ok = name != "mov_text" if allowed is None else name in allowed
            if ok:
                self._copies.append((s, self._out.add_stream_from_template(s), "copy"))
            elif s.type == "audio":
                if self._format == "webm":
                    acodec = "libopus" if "libopus" in av.codecs_available else "opus"
                    o = self._out.add_stream(acodec, rate=48000)
                else:
                    acodec = "aac"
                    o = self._out.add_stream("aac", rate=s.codec_context.sample_rate or 48000)
                n_ch = s.codec_context.layout.nb_channels or 2
                o.layout = {1: "mono", 2: "stereo"}.get(n_ch, f"{n_ch}.0" if n_ch < 5 else "5.1")
                self._copies.append((s, o, acodec))
                log.info(
                    "%s: audio stream %d (%s) re-encoded to %s", self.path, s.index, name, acodec
                )
            else:
                log.warning(
                    "%s: subtitle stream %d (%s) cannot go into %s; skipped",
                    self.path,
                    s.index,
                    name,
                    self._format,
                )

    # --- writing ----------------------------------------------------------------------------
    def _write(self, frame: np.ndarray) -> None:
        if self._out is None:
            self._open(frame)
        if self._times is not None and self.frames_written >= len(self._times):
            raise WriteError(f"more frames than frame_times ({len(self._times)})", path=self.path)
        vf = self._prep(frame)
        if self._times is not None:
            vf.pts = round(
                float(self._times[self.frames_written] - self._times[0]) / _VFR_TIME_BASE
            )
            vf.time_base = _VFR_TIME_BASE
        else:
            vf.pts = self.frames_written
            vf.time_base = 1 / self._rate
        try:
            for packet in self._stream.encode(vf):
                self._out.mux(packet)
        except av.error.FFmpegError as exc:
            raise WriteError(
                f"encoding frame {self.frames_written} failed ({exc})", path=self.path
            ) from exc

    def _finish(self) -> None:
        try:
            for packet in self._stream.encode():
                self._out.mux(packet)
            self._copy_streams()
            self._out.close()
        except av.error.FFmpegError as exc:
            raise WriteError(f"finishing the video failed ({exc})", path=self.path) from exc
        finally:
            self._close_source()

    def _span(self) -> tuple[float, float]:
        """(start, end) in source seconds of the written video, for cutting the copied streams.

        ``frame_times`` are taken as source times relative to the source's first video frame
        (what ``VideoFrames.frame_times()`` returns), so a sub-range keeps its own audio.
        """
        vstart = 0.0
        if self._src.streams.video:
            vs = self._src.streams.video[0]
            if vs.start_time is not None and vs.time_base is not None:
                vstart = float(vs.start_time * vs.time_base)
        if self._times is not None:
            n = self.frames_written
            t0 = float(self._times[0])
            last = float(self._times[n - 1])
            step = (last - t0) / (n - 1) if n > 1 else float(1 / self._rate)
            return vstart + t0, vstart + last + step
        return vstart, vstart + self.frames_written / float(self._rate)

    def _copy_streams(self) -> None:
        if not self._copies:
            return
        by_index = {s.index: (o, mode) for s, o, mode in self._copies}
        start, end = self._span()
        self._src.seek(max(0, int((start - 1.0) * av.time_base)))  # container-level, backward
        for packet in self._src.demux([s for s, _, _ in self._copies]):
            target = by_index.get(packet.stream.index)
            if target is None or packet.dts is None:
                continue
            tb = packet.time_base
            ts = packet.pts if packet.pts is not None else packet.dts
            t = float(ts * tb)
            if t < start - 0.05 or t >= end:
                continue  # outside the written span (keeping a codec's priming packet)
            shift = round(start / tb)
            out_stream, mode = target
            if mode == "copy":
                packet.pts = None if packet.pts is None else packet.pts - shift
                packet.dts = packet.dts - shift
                packet.stream = out_stream
                self._out.mux(packet)
            else:
                for af in packet.decode():
                    if af.pts is not None:
                        af.pts -= round(start / af.time_base)
                    for p in out_stream.encode(af):
                        self._out.mux(p)
        for _, out_stream, mode in self._copies:
            if mode != "copy":
                for p in out_stream.encode():
                    self._out.mux(p)

    def _close_source(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None

    def _discard(self) -> None:
        self._close_source()
        if self._out is not None:
            try:
                self._out.close()
            except Exception:  # pragma: no cover - closing a broken file
                pass
