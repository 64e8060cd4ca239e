"""Video encoding with PyAV (mp4, m4v, mov, mkv).

Encoding rules (the defaults give files every player opens):

- **Default (lossy):** H.264 (libx264), ``yuv420p``, CRF 18 (``crf`` 0..51, lower is better),
  preset ``medium``.  yuv420p needs even sizes: an odd width or height is padded by one
  edge-replicated column/row (logged), so the file is at most one pixel larger.
- **Lossless:** ``.mkv`` -> FFV1 (``bgr0`` for uint8 RGB, ``gbrp16le`` for uint16 RGB,
  ``gray``/``gray16le`` for gray; exact size, bit-exact round trip).  ``.mp4``/``.mov`` ->
  x264 with qp 0 on RGB (``libx264rgb``) or gray (``libx264`` ``gray``), 8-bit only, exact
  size; bit-exact but not every player decodes 4:4:4 / 4:0:0 H.264.
- **dtype:** uint8 as is; uint16 -> uint8 by ``round(x / 257)`` for 8-bit encoders (kept in
  16 bits by lossless FFV1); float32/float64 are taken as [0, 1] and scaled to the target
  range with rounding and clipping; bool -> 0/255.  Gray frames are encoded as luma (they read
  back as RGB with equal channels from a lossy file, as gray from a lossless one).  RGBA loses
  its alpha.
- **Timing:** ``fps`` (float, int, ``Fraction`` or ``"30000/1001"``) is kept as an exact
  rational; a float within 0.002 of an NTSC rate (n * 1000/1001) is taken as that rate, so
  29.97 is stored as 30000/1001.  ``frame_times`` (seconds, increasing) give each frame its own
  timestamp (variable frame rate kept).
- **Other streams:** ``copy_streams_from=source`` copies the source's audio and subtitle
  streams packet by packet when the container accepts their codec; otherwise audio is
  re-encoded to AAC and unsupported subtitles are skipped (logged).
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

from napari_vsr.errors import ParameterError, SourceNotFoundError, UnsupportedDtypeError, WriteError
from napari_vsr.io.writer_base import Writer, temp_path_beside

log = logging.getLogger(__name__)

VIDEO_OUT_EXTENSIONS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
DEFAULT_FPS = Fraction(25)
DEFAULT_CRF = 18
#: codecs each container takes by stream copy (anything else: audio -> AAC, subtitles skipped)
_COPYABLE = {
    "mp4": {"aac", "mp3", "alac", "flac", "opus", "ac3", "eac3", "mov_text"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le", "pcm_f32le", "mov_text"},
    "matroska": None,  # everything except mov_text
}
_VFR_TIME_BASE = Fraction(1, 90000)


def parse_fps(fps: float | int | str | Fraction) -> Fraction:
    """An exact frame rate from a float, int, Fraction or "num/den" string.

    Floats (and decimal strings) within 0.002 of ``n * 1000 / 1001`` become that NTSC rate;
    other values are kept exactly (12.5 -> 25/2).

    Raises
    ------
    ParameterError
        Not a positive number.
    """
    try:
        if isinstance(fps, Fraction):
            rate = fps
        elif isinstance(fps, str) and "/" in fps:
            rate = Fraction(fps.strip())
        else:
            value = float(fps)
            rate = Fraction(str(value)) if isinstance(fps, (str, float)) else Fraction(fps)
            k = round(value * 1.001)
            ntsc = Fraction(k * 1000, 1001)
            if k > 0 and rate != k and abs(value - float(ntsc)) < 0.002:
                rate = ntsc
            rate = rate.limit_denominator(1_000_000)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise ParameterError(f"fps must be a positive number or 'num/den', got {fps!r}") from exc
    if rate <= 0:
        raise ParameterError(f"fps must be positive, got {fps!r}")
    return rate


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


class VideoWriter(Writer):
    """Encodes frames into an mp4/m4v/mov/mkv file (see the module notes for the rules).

    Parameters
    ----------
    path : path-like
        Target; the extension picks the container.
    fps : float, Fraction or str, optional
        Frame rate; default: the rate of ``copy_streams_from`` when given, else 25.
    overwrite : bool
        Replace an existing file at commit.
    codec : str, optional
        FFmpeg encoder name overriding the default (e.g. ``"libx265"``, ``"mpeg4"``); encoded
        as yuv420p.  ``crf`` applies to libx264/libx265; other encoders get a bit rate of
        about 0.2 bit per pixel.
    crf : int, optional
        x264/x265 constant rate factor 0..51 (default 18).
    lossless : bool
        Bit-exact encoding (FFV1 in mkv, x264 qp 0 otherwise).
    copy_streams_from : path-like, optional
        A source video whose audio/subtitle streams are copied into the output.
    frame_times : sequence of float, optional
        Presentation time of each frame in seconds (keeps variable frame rate).
    metadata : dict, optional
        Stored as JSON in the container's ``comment`` tag.
    preset : str
        x264 speed preset.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float | str | Fraction | None = None,
        overwrite: bool = False,
        codec: str | None = None,
        crf: int | None = None,
        lossless: bool = False,
        copy_streams_from: str | os.PathLike | None = None,
        frame_times=None,
        metadata: dict[str, Any] | None = None,
        preset: str = "medium",
    ):
        target = Path(path)
        fmt = VIDEO_OUT_EXTENSIONS.get(target.suffix.lower())
        if fmt is None:
            raise ParameterError(
                f"{target}: unsupported video extension {target.suffix!r}; use "
                f"{', '.join(VIDEO_OUT_EXTENSIONS)}"
            )
        if crf is not None and not 0 <= int(crf) <= 51:
            raise ParameterError(f"crf must be in 0..51 (x264), got {crf}")
        if codec is not None and codec not in av.codecs_available:
            raise ParameterError(
                f"unknown video encoder {codec!r} in this FFmpeg build "
                "(e.g. libx264, libx265, mpeg4, ffv1)"
            )
        if lossless and codec is not None:
            raise ParameterError("give either lossless=True or a codec, not both")
        if copy_streams_from is not None and not Path(copy_streams_from).is_file():
            raise SourceNotFoundError("source for copied streams not found", path=copy_streams_from)
        super().__init__(target, overwrite=overwrite)
        self._format = fmt
        self._codec = codec
        self._crf = DEFAULT_CRF if crf is None else int(crf)
        self._lossless = bool(lossless)
        self._preset = preset
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
        self._prep = None  # frame -> (ndarray, av format)

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

    # --- opening the encoder on the first frame ------------------------------------------
    def _plan(self, frame: np.ndarray) -> tuple[str, str, dict[str, str], str]:
        """(encoder, encoder pix_fmt, options, input av format) for this kind of frame."""
        gray = frame.ndim == 2
        deep = frame.dtype == np.uint16 or frame.dtype.kind == "f"
        if self._lossless and self._format == "matroska":
            if gray:
                return (
                    ("ffv1", "gray16le", {}, "gray16le") if deep else ("ffv1", "gray", {}, "gray")
                )
            return ("ffv1", "gbrp16le", {}, "rgb48le") if deep else ("ffv1", "bgr0", {}, "rgb24")
        if self._lossless:
            if deep:
                raise ParameterError(
                    f"{self.path}: lossless 16-bit video needs FFV1 in .mkv; write a .mkv, "
                    "or a .tif/.zarr stack"
                )
            opts = {"qp": "0", "preset": self._preset}
            return (
                ("libx264", "gray", opts, "gray")
                if gray
                else ("libx264rgb", "rgb24", opts, "rgb24")
            )
        codec = self._codec or "libx264"
        opts = {"preset": self._preset} if codec in ("libx264", "libx265") else {}
        if codec in ("libx264", "libx265"):
            opts["crf"] = str(self._crf)
        return codec, "yuv420p", opts, "gray" if gray else "rgb24"

    def _open(self, frame: np.ndarray) -> None:
        codec, pix_fmt, opts, in_fmt = self._plan(frame)
        height, width = frame.shape[:2]
        pad = pix_fmt == "yuv420p" and (height % 2 or width % 2)
        if pad:
            log.info(
                "%s: odd size %dx%d padded to %dx%d for yuv420p",
                self.path,
                width,
                height,
                width + width % 2,
                height + height % 2,
            )
        deep = in_fmt in ("gray16le", "rgb48le")

        def prep(arr: np.ndarray) -> av.VideoFrame:
            arr = _to_uint16(arr) if deep else _to_uint8(arr)
            if arr.ndim == 3 and arr.shape[2] == 4:
                arr = arr[..., :3]
            if pad:
                spec = ((0, height % 2), (0, width % 2)) + (((0, 0),) if arr.ndim == 3 else ())
                arr = np.pad(arr, spec, mode="edge")
            return av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format=in_fmt)

        self._prep = prep
        try:
            out = av.open(str(self._tmp), "w", format=self._format)
        except av.error.FFmpegError as exc:
            raise WriteError(f"cannot create the video file ({exc})", path=self.path) from exc
        self._out = out
        vfr = self._times is not None
        stream = out.add_stream(codec, rate=self._rate)
        stream.width, stream.height = (
            width + (width % 2 if pad else 0),
            height + (height % 2 if pad else 0),
        )
        stream.pix_fmt = pix_fmt
        stream.codec_context.time_base = _VFR_TIME_BASE if vfr else 1 / self._rate
        stream.thread_type = "AUTO"
        if codec == "ffv1":
            opts = {"level": "3", "slices": "4", "slicecrc": "1"}
        elif "crf" not in opts and "qp" not in opts:
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
                o = self._out.add_stream("aac", rate=s.codec_context.sample_rate or 48000)
                n_ch = s.codec_context.layout.nb_channels or 2
                o.layout = {1: "mono", 2: "stereo"}.get(n_ch, f"{n_ch}.0" if n_ch < 5 else "5.1")
                self._copies.append((s, o, "aac"))
                log.info("%s: audio stream %d (%s) re-encoded to AAC", self.path, s.index, name)
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
