"""Frame-accurate, lazy video reading with PyAV.

Index: at open the presentation timestamp of every frame is learnt without decoding, by one
demux pass (about 6 us per packet) or, for long MP4/MOV files, from the sample tables
(:mod:`napari_vsr.io.mp4_index`).  That gives the exact frame count and the presentation order
even with B-frames, long GOPs and variable frame rate.

Reads: frame ``i`` is the ``i``-th presented frame.  A read seeks to the last keyframe at or
before it and decodes forward, without decoding the non-reference frames before it (nothing
depends on them); reading on from the last decoded frame just keeps decoding (the sequential
fast path).

Two decoders: a seek decodes a chain of reference frames one after the other, which FFmpeg's
frame threads slow down (they add a pipeline delay and hand-overs at every frame: -30 % latency
without them at 1080p on 2 cores), while reading on benefits from them (+15 %).  So seeks use
an unthreaded decoder, and when reading on reaches a keyframe (or a seek lands exactly on one)
decoding moves to a second, threaded decoder on its own handle of the file, which costs nothing
there because a keyframe needs no earlier frame.  Both decode bit-identical frames.

Hardware decoding (``hwaccel="cuda"`` or ``"auto"``): the frames are decoded by NVDEC through
FFmpeg's ``cuda`` hwaccel in the same decoders (same seeks, timestamps and error handling),
copied back to host memory (``nv12``/``p010le``: the same sample values a software decoder
gives, only packed differently) and converted to RGB by the same code, so they come out as the
software path's.  The file is opened and indexed in software; only the two decoders run on
the GPU.  When no CUDA device opens, or the GPU cannot decode the stream (a codec, profile or
size NVDEC lacks), decoding stays in software and one line in :attr:`VideoFrames.notes` (also
logged as a warning) says why.

Decoded frames go into a small byte-bounded LRU cache
(:class:`~napari_vsr.io.frame_array.FrameCache`), which, when the reads step backwards,
also receives the few frames before the target after a seek, so each step back does not seek.
"""

from __future__ import annotations

import bisect
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from napari_vsr.errors import (
    NOTE_FLAG,
    CorruptFrameError,
    TruncatedMediaError,
    UnreadableMediaError,
)
from napari_vsr.io import color, hardware
from napari_vsr.io.frame_array import DEFAULT_CACHE_MB, FrameArray
from napari_vsr.io.mp4_index import read_sample_table
from napari_vsr.io.source_checks import check_source

log = logging.getLogger(__name__)

#: keep decoding forward instead of seeking when the target is at most this many frames ahead
FORWARD_WINDOW = 16
#: when the reads step backwards, a seek also keeps up to this many frames just before the
#: target in the cache, so napari's slider or the left arrow key does not seek on every step
BACKFILL = 4
#: a read at most this many frames before the previous decoded read counts as stepping
#: backwards (the frames in between came from the backfilled cache)
STEP_BACK_WINDOW = 2 * (BACKFILL + 1)
#: files with at least this many frames are indexed from MP4/MOV sample tables when possible
#: (reading a few boxes instead of demuxing the whole file)
FAST_INDEX_MIN_FRAMES = 2000
#: a gap of more than this many bytes between the packets of a Matroska/WebM file is data the
#: demuxer skipped as corrupt (container overhead between packets is under 64 bytes)
LOST_BYTES = 256
#: a missing timestamp counts as lost in such a gap when it is at most this many frames from
#: the packets next to it (B-frame reordering puts presentation and file order apart)
LOST_REORDER = 16


def _frame_list(indices: list[int], *, most: int = 10) -> str:
    """``"frame 4"``, ``"frames 9, 10, 11"`` or ``"frames 1, 2, ... (25 in all)"``."""
    if len(indices) == 1:
        return f"frame {indices[0]}"
    shown = ", ".join(str(i) for i in indices[:most])
    more = f", ... ({len(indices)} in all)" if len(indices) > most else ""
    return f"frames {shown}{more}"


def _av_reason(exc: BaseException) -> str:
    """FFmpeg's words for what went wrong (``strerror``), from ``exc`` or its cause."""
    for e in (exc, exc.__cause__):
        if isinstance(e, av.error.FFmpegError):
            return e.strerror or str(e)
    return str(exc)


def _decoded_after(order: list[int], ts: int, key_ts: set[int]) -> set[int]:
    """Timestamps decoded after the packet ``ts`` and before the next keyframe, in ``order``."""
    try:
        start = order.index(ts)
    except ValueError:
        return set()
    out = set()
    for t in order[start + 1 :]:
        if t in key_ts:
            break
        out.add(t)
    return out


class _IndexMismatch(Exception):
    """A decoded timestamp is not in an index built from sample tables."""


class _ThreadedDecodeError(Exception):
    """The threaded decoder refused a packet: frame threads report an error some packets
    late, so which frame failed is learnt by decoding the stretch again unthreaded."""


def _output_format(
    pix_fmt: str | None, *, keep_alpha: bool = True
) -> tuple[str | None, int, np.dtype]:
    """Pick the ndarray layout for a source pixel format: (av format, channels, dtype).

    The av format is None for planar Y'CbCr[A] formats, which :class:`~napari_vsr.io.color.
    YuvToRgb` converts with the stream's matrix and range; 4 channels for formats with alpha
    (unless not ``keep_alpha``: GIF decodes to BGRA whether or not a colour is transparent).
    """
    if not pix_fmt:
        return "rgb24", 3, np.dtype(np.uint8)
    fmt = av.VideoFormat(pix_fmt)
    bits = max(c.bits for c in fmt.components) if fmt.components else 8
    gray = pix_fmt.startswith(("gray", "ya")) or (len(fmt.components) <= 2 and not fmt.has_palette)
    if gray:
        return ("gray16le", 1, np.dtype(np.uint16)) if bits > 8 else ("gray", 1, np.dtype(np.uint8))
    alpha = keep_alpha and len(fmt.components) == 4
    channels = 4 if alpha else 3
    deep = bits > 8 and not fmt.has_palette
    dtype = np.dtype(np.uint16) if deep else np.dtype(np.uint8)
    if color.is_yuv_format(pix_fmt):
        return None, channels, dtype
    if alpha:
        return ("rgba64le" if deep else "rgba"), 4, dtype
    return ("rgb48le" if deep else "rgb24"), 3, dtype


def _rotation(stream: av.video.stream.VideoStream, frame: av.VideoFrame | None) -> int:
    """Counter-clockwise rotation (0, 90, 180 or 270) a player applies to show the frames."""
    try:
        rot = float(frame.rotation) if frame is not None else 0.0  # display matrix, ccw
    except Exception:  # pragma: no cover - older PyAV
        rot = 0.0
    if not rot:
        try:  # legacy tag: clockwise degrees
            rot = -float(stream.metadata.get("rotate", 0))
        except ValueError:
            rot = 0.0
    return (int(round(rot / 90.0)) % 4) * 90


class VideoFrames(FrameArray):
    """A video file as a lazy ``(T, H, W, 3)`` / ``(T, H, W)`` array.

    Parameters
    ----------
    path : path-like
        A video file PyAV (FFmpeg) can demux and decode.
    cache_mb : float
        Budget of the decoded-frame cache.
    threads : bool
        Let FFmpeg decode with frame and slice threads when reading on (seeks are always
        decoded without frame threads, which is faster for them; see the module notes).
    skip_bad_frames : bool
        Replace a frame that does not decode (refused by the decoder, flagged corrupt, lost by
        the demuxer, or decoded after such a frame from its broken references, up to the next
        keyframe) by the last good frame before it, instead of raising CorruptFrameError.
        :attr:`replaced_frames` and ``metadata["replaced_frames"]`` list those read so far.
    hwaccel : {None, "none", "auto", "cuda"}
        Decode on the GPU (NVDEC) when one is usable (see the module notes); None/"none":
        in software.  The frames are the same either way.

    Attributes
    ----------
    hwaccel : str or None
        ``"cuda"`` while frames are decoded on the GPU, else None.
    notes : list of str
        One line for each thing the user should know about how the file is read (hardware
        decoding asked for but not possible, and why); each also logged as a warning.

    Notes
    -----
    dtype is uint8 (0..255) for 8-bit sources and uint16 (0..65535, scaled to the full range)
    for deeper ones; gray sources give ``(T, H, W)``, sources with alpha (ProRes 4444, PNG or
    QuickTime RLE in MOV, VP8/VP9 with alpha) ``(T, H, W, 4)`` RGBA.  Y'CbCr is converted with
    the stream's matrix (BT.601/709/2020, SMPTE 240M, FCC), range and bit depth, within one
    level of the formula (:mod:`napari_vsr.io.color`); untagged streams are read as players
    read them (BT.709 when HD-sized, BT.601 below, limited range).  ``metadata`` records
    ``color_matrix``, ``color_range``, ``color_primaries``, ``color_transfer`` and
    ``color_assumed`` (which of those the stream did not declare), and ``bit_depth``.  Rotation metadata (phone videos) is applied like a
    player does, so frames are upright and ``(H, W)`` are the displayed ones;
    ``metadata["rotation"]`` gives the counter-clockwise angle and ``rotation_applied`` whether
    it was applied (``apply_rotation=False`` gives the stored pixels).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        cache_mb: float = DEFAULT_CACHE_MB,
        threads: bool = True,
        apply_rotation: bool = True,
        skip_bad_frames: bool = False,
        hwaccel: str | None = None,
    ):
        self.notes: list[str] = []
        self.hwaccel: str | None = None
        self._hw = None  # the av HWAccel of the decoders (None: software)
        self._hw_checked = True  # whether the first hardware-decoded frame was looked at
        asked = hardware.check_hwaccel(hwaccel)
        self._apply_rotation = bool(apply_rotation)
        self._skip_bad = bool(skip_bad_frames)
        self._missing: set[int] = set()  # frames the demuxer lost (see _index)
        self._bad: set[int] = set()  # frames known not to decode
        self._replaced: set[int] = set()  # bad frames read so far, replaced by a previous one
        self._why: dict[int, str] = {}  # why a bad frame is bad, for its error message
        self._order: list[int] = []  # pts in decode order (demux index only)
        self._key_ts: set[int] = set()  # pts of keyframes (demux index only)
        self._after_holes: list[int] = []  # pts of the first packet after lost data
        path = Path(path)
        check_source(path)  # a FIFO or device would block av.open; loops and permissions named
        if path.is_file() and path.stat().st_size == 0:
            raise UnreadableMediaError("the file is empty (0 bytes)", path=path)
        try:
            container = av.open(str(path), "r")
        except av.error.FFmpegError as exc:
            raise UnreadableMediaError(
                f"not a readable video file ({exc.strerror or exc}); it may be truncated or "
                "not a video at all",
                path=path,
            ) from exc
        self._container = container
        try:
            self._setup(path, threads=threads, cache_mb=cache_mb)
        except BaseException:
            container.close()
            raise
        self.metadata["skip_bad_frames"] = self._skip_bad
        self.metadata["missing_frames"] = sorted(self._missing)
        self.metadata["replaced_frames"] = []
        if asked is not None:
            self._use_hardware(asked)

    # --- hardware decoding --------------------------------------------------------------------
    def _note(self, message: str) -> None:
        # logged flagged as a note: the job runner shows :attr:`notes` as its own warnings, and
        # the command line drops flagged records so that a line is not printed twice
        self.notes.append(message)
        log.warning("%s", message, extra={NOTE_FLAG: True})

    def _use_hardware(self, asked: str) -> None:
        """Decode on the GPU from now on when a CUDA device opens; else say why not."""
        if self._alpha_codec is not None:
            self._note(f"{self._path}: decoding in software: hardware decoding (--hwaccel "
                       f"{asked}) does not keep the alpha channel of this video")
            return
        hw, why = hardware.decode_hwaccel(asked)
        if hw is None:
            self._note(f"{self._path}: decoding in software: hardware decoding (--hwaccel "
                       f"{asked}) is not available here ({why})")
            return
        self._hw, self.hwaccel, self._hw_checked = hw, "cuda", False
        # the handle opened at setup stays for indexing; decoders open on the GPU on first use
        self._decoder, self._next = None, None
        self._handles = {}

    def _hardware_off(self, why: str) -> None:
        """Back to software decoding for the rest of the reads (one note says why)."""
        self._note(f"{self._path}: decoding in software: {why}")
        self._hw, self.hwaccel, self._hw_checked = None, None, True
        for container, _ in self._handles.values():
            container.close()
        self._handles = {False: (self._container, self._stream)}
        self._decoder, self._next = None, None

    def _check_hardware_used(self, cc) -> None:
        """After the first frame from a GPU decoder: did FFmpeg keep the stream on the GPU?

        It decodes in software, silently, when NVDEC lacks the codec, profile or size; then
        the reads go back to the reader's own software decoders (threaded when reading on),
        and the frame is decoded again there (raises _ThreadedDecodeError, which does that).
        """
        self._hw_checked = True
        if cc.pix_fmt != "cuda":
            name = self._stream.codec_context.name
            self._hardware_off(f"the GPU cannot decode this {name} stream ({self._yuv_format}, "
                               f"{self.shape[2]}x{self.shape[1]})")
            raise _ThreadedDecodeError

    def _setup(self, path: Path, *, threads: bool, cache_mb: float) -> None:
        container = self._container
        if not container.streams.video:
            kinds = ", ".join(f"{s.type} ({s.codec_context.name})" for s in container.streams)
            raise UnreadableMediaError(
                f"no video stream in this file (found: {kinds or 'no streams'})", path=path
            )
        stream = container.streams.video[0]
        self._stream = stream
        self._threads = bool(threads)
        # (container, stream) per decoder: False = unthreaded (seeks; also indexes the file),
        # True = threaded (reading on), opened on first use
        self._handles: dict[bool, tuple] = {False: (container, stream)}
        self._active = False  # which decoder self._decoder belongs to
        self._path = path
        table = self._sample_table(path, stream)
        if table is None:
            pts, keys, complete = self._index(stream)
            if not pts:
                raise UnreadableMediaError("the video stream holds no frames", path=path)
            self._check_complete(stream, pts, complete)
        else:  # raw table timestamps; aligned with the decoder's after the first frame
            pts, keys = table.pts.tolist(), table.keyframes.tolist()
        self._set_index(pts, keys)
        self._from_table = table is not None
        self._next: int | None = None  # presentation index of the next frame the decoder yields
        self._decoder = None
        self._skip = True  # skip non-reference frames before the target (see _frames)
        self._skip_before: int | None = None
        self._expect = 0
        self._last_read: int | None = None  # the frame the previous decoding read returned
        self._sws_options: dict[str, int] = {"threads": 1}  # see _convert
        self._alpha_codec = self._alpha_decoder(path, stream)
        self._alpha_contexts: dict[int, Any] = {}  # id(stream) -> libvpx decoder
        first = self._probe_first(seek=table is None)
        if table is not None:
            if first.pts is None:
                self._rebuild_index()
            elif first.pts != pts[0]:
                shift = first.pts - pts[0]
                self._set_index([p + shift for p in pts], keys)
        cc = stream.codec_context
        pix_fmt = cc.pix_fmt or (first.format.name if first is not None else None)
        if self._alpha_codec is not None and first is not None:
            pix_fmt = first.format.name  # libvpx's yuva420p, where the stream says yuv420p
        self._av_format, channels, dtype = _output_format(pix_fmt, keep_alpha=cc.name != "gif")
        height, width = cc.height or first.height, cc.width or first.width
        self._color = self._color_info(first, cc, width, height, pix_fmt)
        self._yuv = None
        if self._av_format is None:
            self._yuv = color.YuvToRgb(pix_fmt, self._color)
        self._yuv_format = pix_fmt
        self._rot_k = _rotation(stream, first) // 90 if self._apply_rotation else 0
        if self._rot_k % 2:
            height, width = width, height
        shape = (len(pts), height, width) if channels == 1 else (len(pts), height, width, channels)
        meta = self._metadata(path, stream, pix_fmt, first)
        super().__init__(shape, dtype, meta, cache_mb=cache_mb)

    def _color_info(self, first, cc, width: int, height: int, pix_fmt: str | None):
        """The stream's colour description: the first frame's tags, else the codec's."""

        def tag(name: str, unspecified: int) -> int:
            value = getattr(first, name, unspecified) if first is not None else unspecified
            if value in (unspecified, None):
                value = getattr(cc, name, unspecified)
            return unspecified if value is None else int(value)

        return color.describe_stream(
            tag("colorspace", 2),
            tag("color_range", 0),
            tag("color_primaries", 2),
            tag("color_trc", 2),
            width=width,
            height=height,
            pix_fmt=pix_fmt,
            path=self._path,
        )

    @staticmethod
    def _alpha_decoder(path: Path, stream) -> str | None:
        """The libvpx decoder for a VP8/VP9 stream with alpha (FFmpeg's own drops the alpha)."""
        if str(stream.metadata.get("alpha_mode", "")) != "1":
            return None
        name = {"vp9": "libvpx-vp9", "vp8": "libvpx"}.get(stream.codec_context.name)
        if name is None:
            return None
        try:
            av.codec.Codec(name, "r")
        except (ValueError, av.error.FFmpegError):
            log.warning(
                "%s: the video has an alpha channel (%s alpha_mode) but this FFmpeg build has no "
                "%s decoder to read it; reading RGB only, without the alpha",
                path,
                stream.codec_context.name,
                name,
            )
            return None
        return name

    def _codec_context(self, stream):
        """The decoder of a stream: its own, or a libvpx one that keeps the alpha channel."""
        if self._alpha_codec is None:
            return stream.codec_context
        cc = self._alpha_contexts.get(id(stream))
        if cc is None:
            cc = av.CodecContext.create(self._alpha_codec, "r")
            cc.thread_type = stream.thread_type
            self._alpha_contexts[id(stream)] = cc
        return cc

    def _check_complete(self, stream, pts: list[int], complete: bool) -> None:
        """Raise TruncatedMediaError when fewer frames arrived than the container declares.

        Frames the demuxer lost in the middle (``self._missing``) raise CorruptFrameError
        naming them, unless bad frames are to be skipped.
        """
        if self._missing and not self._skip_bad:
            missing = sorted(self._missing)
            raise CorruptFrameError(
                f"{_frame_list(missing)} of {len(pts)} are missing: the data around them is "
                "corrupt and the demuxer skipped it; add --skip-bad-frames "
                "(skip_bad_frames=True) to replace them by the previous frame",
                path=self._path,
                frame_index=missing[0],
                readable_frames=missing[0],
            )
        declared = stream.frames or 0
        lead_frames, lead_span = getattr(self, "_lead", (0, 0))
        problem = None
        if not complete:
            problem = "demuxing stopped with an error"
        elif (
            declared
            and len(pts) + lead_frames < declared
            and self._container.format.name.startswith(("mov", "avi"))
        ):
            problem = f"the container declares {declared} frames"
        elif "DURATION" in stream.metadata and len(pts) > 1:
            try:
                h, m, sec = stream.metadata["DURATION"].split(":")
                declared_s = int(h) * 3600 + int(m) * 60 + float(sec)
            except ValueError:
                declared_s = None
            tb = float(stream.time_base)
            step = (pts[-1] - pts[0]) * tb / (len(pts) - 1)
            have_s = (pts[-1] - pts[0] + lead_span) * tb + step
            if declared_s is not None and declared_s - have_s > 2 * step + 0.05:
                problem = f"the container declares {declared_s:.3f} s of video"
        if problem:
            raise TruncatedMediaError(
                f"the file is truncated or corrupt: {problem} but only {len(pts)} frames could "
                "be read",
                path=self._path,
                readable_frames=len(pts),
            )

    def _index(self, stream) -> tuple[list[int], list[int], bool]:
        """Demux once: sorted presentation timestamps and keyframe presentation indices.

        Also sets ``self._missing`` (presentation indices of frames whose packets the demuxer
        lost to corrupt data: see :meth:`_lost_frames`) and ``self._bad`` (frames whose
        packets the demuxer flagged as corrupt).
        """
        stamps: list[tuple[int, bool]] = []
        complete = True
        discarded = 0
        corrupt_ts: set[int] = set()
        try:
            for packet in self._container.demux(stream):
                if packet.size == 0:
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                if packet.is_discard:  # cut by an edit list: never shown
                    discarded += 1
                    continue
                if ts is None:
                    continue
                if packet.is_corrupt:
                    corrupt_ts.add(ts)
                stamps.append((ts, packet.is_keyframe))
        except av.error.FFmpegError as exc:
            log.warning("%s: demuxing stopped early: %s", self._container.name, exc)
            complete = False
        first_key = next((ts for ts, k in stamps if k), None)
        self._lead = (discarded, 0)  # (frames, timestamp span) not indexed at the start
        if first_key is not None and any(ts < first_key for ts, _ in stamps):
            # a stream cut mid-GOP: frames shown before the first keyframe cannot be decoded
            before = sum(ts < first_key for ts, _ in stamps)
            self._lead = (discarded + before, first_key - min(ts for ts, _ in stamps))
            log.warning(
                "%s: %d frames before the first keyframe cannot be decoded; skipped",
                self._container.name,
                before,
            )
            stamps = [(ts, k) for ts, k in stamps if ts >= first_key]
        order = [ts for ts, _ in stamps]  # decode (file) order
        key_ts = {ts for ts, k in stamps if k}
        stamps.sort()
        if len({s for s, _ in stamps}) != len(stamps):  # duplicate timestamps: keep the first
            seen: set[int] = set()
            uniq = []
            for s, k in stamps:
                if s not in seen:
                    seen.add(s)
                    uniq.append((s, k))
            stamps = uniq
        lost = self._lost_frames(stream, [s for s, _ in stamps])
        missing_ts = set(lost)
        if lost:
            stamps = sorted(stamps + [(ts, False) for ts in lost])
        pts = [s for s, _ in stamps]
        keys = [i for i, (_, k) in enumerate(stamps) if k] or [0]
        self._missing = {i for i, s in enumerate(pts) if s in missing_ts}
        self._order, self._key_ts = order, key_ts
        bad_ts = set(corrupt_ts)
        for ts in corrupt_ts:
            bad_ts |= _decoded_after(order, ts, key_ts)
        if lost:  # frames decoded after lost data refer to what was lost, up to a keyframe
            for ts in self._after_holes:
                if ts in key_ts:
                    continue
                bad_ts.add(ts)
                bad_ts |= _decoded_after(order, ts, key_ts)
        self._bad = {i for i, s in enumerate(pts) if s in bad_ts}
        return pts, keys, complete

    def _lost_frames(self, stream, pts: list[int]) -> list[int]:
        """Timestamps of the frames a Matroska/WebM demuxer dropped with corrupt data.

        Those demuxers resync silently past corrupt data: the packets in it are just not
        returned.  Two facts must agree, so that neither a stream with dropped frames in its
        timing (screen recordings) nor a container with extra data between packets is taken
        for corrupt: the video's timestamps, on the regular grid of a constant-frame-rate
        stream, have holes, and the packets of all streams leave a hole of more than
        ``LOST_BYTES`` in the file next to them (within ``LOST_REORDER`` frames).  The second
        look (a demux of every stream) is taken only when the first shows holes.  With a
        variable frame rate lost frames cannot be located; they are not looked for.

        Parameters
        ----------
        stream : av.video.stream.VideoStream
        pts : list of int
            Sorted presentation timestamps of the video packets present.
        """
        self._after_holes = []  # the first video packet after each hole in the file
        if not self._container.format.name.startswith("matroska") or len(pts) < 3:
            return []
        deltas = np.diff(np.asarray(pts, dtype=np.float64))
        median = float(np.median(deltas))
        if median <= 0:
            return []
        single = deltas[deltas < 1.5 * median]
        step = float(single.mean())  # 33.37 for 29.97 fps in milliseconds (deltas 33 and 34)
        ratio = deltas / step
        mult = np.rint(ratio)
        regular = len(single) >= 0.8 * len(deltas) and bool(np.all(np.abs(ratio - mult) < 0.25))
        if not regular or mult.max() < 2:
            return []  # variable frame rate, or no hole in the timing
        spans = []  # (pos, end, video ts or None) of every packet of every stream
        try:
            self._container.seek(0)
            for packet in self._container.demux():
                if packet.size and packet.pos is not None and packet.pos >= 0:
                    video = packet.stream.index == stream.index
                    ts = (packet.pts if packet.pts is not None else packet.dts) if video else None
                    spans.append((packet.pos, packet.pos + packet.size, ts))
        except av.error.FFmpegError:
            pass  # demuxing stopped early: the index pass has said so
        spans.sort()
        holes = []  # (byte offset, size, video ts next to it)
        last_end, last_ts, after = None, None, False
        for pos, end, ts in spans:
            if last_end is not None and pos - last_end > LOST_BYTES:
                holes.append((last_end, pos - last_end, ts if ts is not None else last_ts))
                after = True
            if after and ts is not None:
                self._after_holes.append(ts)
                after = False
            last_end = max(end, last_end or 0)
            if ts is not None:
                last_ts = ts
        for offset, size, _ in holes:
            log.info(
                "%s: %d bytes of corrupt data at byte %d were skipped by the demuxer",
                self._path,
                size,
                offset,
            )
        window = LOST_REORDER * step
        absent = [
            pts[k] + round(j * deltas[k] / mult[k])
            for k in np.flatnonzero(mult >= 2)
            for j in range(1, int(mult[k]))
        ]
        return [
            ts
            for ts in absent
            if any(near is not None and abs(ts - near) <= window for _, _, near in holes)
        ]

    def _set_index(self, pts: list[int], keys: list[int]) -> None:
        self._pts = np.asarray(pts, dtype=np.int64)
        self._pts_list = pts
        self._pos = {int(p): i for i, p in enumerate(pts)}
        self._keys = keys  # presentation indices of keyframes, sorted

    def _sample_table(self, path: Path, stream):
        """The MP4/MOV sample tables as an index, for long files only (None: demux instead)."""
        n = stream.frames or 0
        if n < FAST_INDEX_MIN_FRAMES or not self._container.format.name.startswith("mov"):
            return None
        table = read_sample_table(path, expected_frames=n)
        if table is None or Fraction(1, table.timescale) != stream.time_base:
            return None
        if path.stat().st_size < table.data_end:
            return None  # truncated: the demux pass says how many frames are readable
        log.debug("%s: frame index from the sample tables (%d frames)", path, n)
        return table

    def _rebuild_index(self) -> None:
        """Replace a sample-table index by a demuxed one (the tables did not match)."""
        log.warning("%s: sample tables disagree with the decoder; indexing by demuxing", self._path)
        n = len(self._pts_list)
        self._container.seek(0)
        pts, keys, complete = self._index(self._stream)
        if len(pts) != n or not complete:
            raise UnreadableMediaError(
                f"the frame index changed on a second look ({n} -> {len(pts)} frames); reopen "
                "the file",
                path=self._path,
            )
        self._set_index(pts, keys)
        self._from_table = False
        self._decoder, self._next = None, None

    def _probe_first(self, *, seek: bool = True) -> av.VideoFrame:
        try:
            if seek:
                self._seek_to_key(0)
            else:
                self._decoder = self._frames(self._container, self._stream)
            for frame in self._decoder:
                self._decoder, self._next = None, None
                return frame
        except (av.error.FFmpegError, CorruptFrameError) as exc:
            raise TruncatedMediaError(
                f"the first frame cannot be decoded ({_av_reason(exc)}); the file is corrupt "
                "or its headers do not match its data",
                path=self._path,
                readable_frames=0,
            ) from exc
        raise TruncatedMediaError("no frame could be decoded", path=self._path, readable_frames=0)

    def _metadata(self, path: Path, stream, pix_fmt: str | None, first) -> dict[str, Any]:
        tb = stream.time_base or Fraction(1, 1)
        pts = self._pts
        n = len(pts)
        if n > 1:
            step = Fraction(int(pts[-1] - pts[0]), n - 1) * tb
            duration = float((pts[-1] - pts[0]) * tb + step)
        else:
            duration = float(stream.duration * tb) if stream.duration else 0.0
        avg = stream.average_rate
        if not avg and duration > 0:
            avg = Fraction(n / duration).limit_denominator(100000)
        nominal = stream.guessed_rate or stream.base_rate or avg
        audio = [
            {
                "index": s.index,
                "codec": s.codec_context.name,
                "sample_rate": s.codec_context.sample_rate,
                "channels": s.codec_context.layout.nb_channels,
                "language": s.language,
            }
            for s in self._container.streams.audio
        ]
        subs = [
            {"index": s.index, "codec": s.codec_context.name, "language": s.language}
            for s in self._container.streams.subtitles
        ]
        return {
            "kind": "video",
            "source_path": str(path.resolve()),
            "n_frames": n,
            "fps": float(avg) if avg else None,
            "fps_fraction": f"{avg.numerator}/{avg.denominator}" if avg else None,
            "nominal_fps": float(nominal) if nominal else None,
            "time_base": f"{tb.numerator}/{tb.denominator}",
            "duration_s": duration,
            "codec": stream.codec_context.name,
            "pix_fmt": pix_fmt,
            "bit_rate": stream.codec_context.bit_rate or self._container.bit_rate,
            "container": self._container.format.name,
            "rotation": _rotation(stream, first),
            "rotation_applied": bool(self._rot_k),
            "has_audio": bool(audio),
            "has_subtitles": bool(subs),
            "audio_streams": audio,
            "subtitle_streams": subs,
            "bit_depth": max((c.bits for c in av.VideoFormat(pix_fmt).components), default=8)
            if pix_fmt
            else 8,
            **self._color.as_metadata(),
        }

    # --- decoding -----------------------------------------------------------------------
    def frame_times(self) -> np.ndarray:
        """Presentation time of every frame in seconds from the first frame.

        Returns
        -------
        ndarray, (T,) float64
            Non-uniform steps for variable-frame-rate sources are kept.
        """
        tb = self._stream.time_base
        return (self._pts - self._pts[0]).astype(np.float64) * float(tb)

    def _key_for(self, i: int) -> int:
        """Position in ``self._keys`` of the last keyframe at or before frame ``i``."""
        return max(0, bisect.bisect_right(self._keys, i) - 1)

    def _handle(self, threaded: bool) -> tuple:
        """(container, stream) of the threaded or unthreaded decoder, opened on first use.

        The unthreaded one is the handle the reader was opened (and indexed) with.
        """
        handle = self._handles.get(threaded)
        if handle is None and self._hw is not None:
            try:
                container = av.open(str(self._path), "r", hwaccel=self._hw)
            except av.error.FFmpegError as exc:
                self._hardware_off(f"the GPU decoder did not open ({_av_reason(exc)})")
                return self._handle(threaded)
            # no frame threads: NVDEC does the work, and FFmpeg's frame threads with a
            # hardware decoder only add latency
            handle = self._handles[threaded] = (container, container.streams.video[0])
        elif handle is None:
            container = av.open(str(self._path), "r")
            stream = container.streams.video[0]  # the stream this reader reads
            if threaded:
                stream.thread_type = "AUTO"
            handle = self._handles[threaded] = (container, stream)
        return handle

    def _seek_to_key(self, key_pos: int, *, threaded: bool = False) -> None:
        threaded = threaded and self._threads
        try:
            container, stream = self._handle(threaded)
        except av.error.FFmpegError as exc:  # the file changed or vanished since it was opened
            log.warning("%s: no second decoder (%s); reading on unthreaded", self._path, exc)
            self._threads = threaded = False
            container, stream = self._handle(False)
        target = self._pts_list[self._keys[key_pos]]
        try:
            if key_pos == 0:  # the first keyframe: from the very start, whatever edit lists say
                container.seek(0)
            else:
                container.seek(target, stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            container.seek(target, stream=stream, backward=True, any_frame=True)
        self._active = threaded
        self._decoder = self._frames(container, stream)
        self._next = None
        self._expect = self._keys[key_pos]  # first frame out, for streams without timestamps

    def _frames(self, container, stream):
        """Decoded frames from the current position.

        Non-reference frames presented before the frame being looked for
        (``self._skip_before``, a pts) are not decoded at all: no other frame depends on them,
        so skipping them cannot change the frame returned, and it saves a large share of the
        work of a seek with B-frames.
        """
        cc = self._codec_context(stream)
        if cc is not stream.codec_context:
            cc.flush_buffers()  # a seek flushes only the stream's own decoder
        skipping = False
        for packet in container.demux(stream):
            if packet.pts is not None:
                skip = self._skip_before is not None and packet.pts < self._skip_before
                if skip != skipping:
                    cc.skip_frame = "NONREF" if skip else "DEFAULT"
                    skipping = skip
            try:
                decoded = cc.decode(packet)
                if decoded and not self._hw_checked:
                    self._check_hardware_used(cc)
            except av.error.EOFError:
                raise
            except av.error.FFmpegError as exc:
                if self._hw is not None:  # the GPU's failure or the file's: software decides
                    self._hardware_off(f"the GPU decoder failed ({_av_reason(exc)})")
                    raise _ThreadedDecodeError from exc
                if self._active:  # threaded: the error may belong to an earlier packet
                    raise _ThreadedDecodeError from exc
                self._packet_failed(packet, exc)
                continue
            yield from decoded
        if skipping:
            cc.skip_frame = "DEFAULT"

    def _convert(self, frame: av.VideoFrame) -> np.ndarray:
        if self._yuv is not None and self._yuv.accepts(frame.format.name):
            arr = self._yuv(frame)
        else:
            arr = self._convert_sws(frame)
        if self._rot_k:
            arr = np.ascontiguousarray(np.rot90(arr, self._rot_k))
        expected = self.frame_shape
        if arr.shape != expected:
            raise UnreadableMediaError(
                f"a frame of size {arr.shape} does not match the stream size {expected} "
                "(resolution changes mid-stream are not supported)",
                path=self._path,
            )
        return arr

    def _convert_sws(self, frame: av.VideoFrame) -> np.ndarray:
        """swscale's conversion, for non-Y'CbCr formats (RGB, palette) and format changes."""
        fmt = self._av_format
        if fmt is None:  # a Y'CbCr stream whose frames changed format mid-stream
            channels = self.frame_shape[-1] if len(self.frame_shape) == 3 else 1
            deep = self.dtype == np.uint16
            fmt = {3: "rgb48le" if deep else "rgb24", 4: "rgba64le" if deep else "rgba"}.get(
                channels, "gray16le" if deep else "gray"
            )
            options = dict(
                self._sws_options,
                src_colorspace=color.MATRIX_TO_SWS[self._color.matrix],
                src_color_range=color.RANGE_TO_AV[self._color.range],
                interpolation=color.SWS_ACCURATE,
            )
            return frame.to_ndarray(format=fmt, **options)
        # One swscale thread: with the default (automatic) count each call sets up a new
        # scaler with its own thread pool, which at 1080p costs 3-4x the conversion itself
        # (0.6 ms; see benchmarks/notes_io.md).  Threads do not change the pixels.
        try:
            arr = frame.to_ndarray(format=self._av_format, **self._sws_options)
        except TypeError:  # an older PyAV without the threads argument
            if not self._sws_options:
                raise
            self._sws_options = {}
            arr = frame.to_ndarray(format=self._av_format)
        return arr

    def _read_frames(self, indices: list[int]):
        for i in indices:
            yield i, self._decode_one(i)

    def _decode_one(self, i: int) -> np.ndarray:
        try:
            if i in self._bad or i in self._missing:
                raise self._bad_frame_error(i)
            try:
                return self._decode_one_indexed(i)
            except _IndexMismatch:
                self._rebuild_index()
                return self._decode_one_indexed(i)
        except CorruptFrameError as exc:
            if not self._skip_bad or exc.frame_index != i:
                raise
            return self._replace(i)

    # --- frames that do not decode ------------------------------------------------------
    def _packet_failed(self, packet, exc: av.error.FFmpegError) -> None:
        """The decoder refused a packet: its frame is bad (an error unless skipping)."""
        idx = self._pos.get(packet.pts) if packet.pts is not None else None
        if idx is None:
            if not self._skip_bad:
                raise CorruptFrameError(
                    f"decoding failed near frame {self._next or 0} ({_av_reason(exc)}); the file is "
                    "corrupt; add --skip-bad-frames (skip_bad_frames=True) to replace "
                    "undecodable frames by the previous one",
                    path=self._path,
                    frame_index=self._next or 0,
                    readable_frames=self._next,
                ) from exc
            log.info("%s: a packet without a frame index failed to decode: %s", self._path, exc)
            return
        self._frame_failed(idx, f"the decoder refused its data ({_av_reason(exc)})", cause=exc)

    def _frame_failed(self, idx: int, why: str, *, cause: BaseException | None = None) -> None:
        """Frame ``idx`` is bad; so are the frames decoded after it up to the next keyframe.

        Those refer to it (or to frames that do) and come out of the decoder with wrong
        pictures and no error flag, so they are replaced too.
        """
        self._bad.add(idx)
        self._why[idx] = why
        if not self._skip_bad:
            raise self._bad_frame_error(idx) from cause
        log.info("%s: frame %d is bad: %s", self._path, idx, why)
        if self._order:
            after = _decoded_after(self._order, self._pts_list[idx], self._key_ts)
            self._bad.update(self._pos[t] for t in after if t in self._pos)

    def _bad_frame_error(self, i: int) -> CorruptFrameError:
        why = self._why.get(i)
        if why is None:
            why = (
                "its data is missing (the demuxer skipped corrupt data)"
                if i in self._missing
                else "it cannot be decoded"
            )
        return CorruptFrameError(
            f"frame {i} of {len(self._pts_list)} is unreadable: {why}; add --skip-bad-frames "
            "(skip_bad_frames=True) to replace undecodable frames by the previous one",
            path=self._path,
            frame_index=i,
            readable_frames=i,
        )

    def _replace(self, i: int) -> np.ndarray:
        """The frame shown instead of bad frame ``i``: the last good one before it.

        Black (zeros) when no frame before ``i`` decodes.
        """
        self._bad.add(i)
        if i not in self._replaced:
            self._replaced.add(i)
            self.metadata["replaced_frames"] = sorted(self._replaced)
            log.info("%s: frame %d replaced by the previous good frame", self._path, i)
        for j in range(i - 1, -1, -1):
            if j in self._bad or j in self._missing:
                continue
            frame = self._cache.get(j)
            return frame if frame is not None else self._decode_one(j)
        return np.zeros(self.frame_shape, self.dtype)

    @property
    def replaced_frames(self) -> list[int]:
        """Indices of the bad frames read so far and replaced (``skip_bad_frames=True``)."""
        return sorted(self._replaced)

    def _decode_one_indexed(self, i: int) -> np.ndarray:
        key_pos = self._key_for(i)
        # forward path: the decoder will reach i without passing a keyframe we could seek to
        near = (
            self._decoder is not None
            and self._next is not None
            and self._next <= i
            and (i - self._next <= FORWARD_WINDOW or self._keys[key_pos] <= self._next)
        )
        key = self._keys[key_pos]
        if not near:
            # a seek decodes a reference chain: unthreaded, unless the target is the keyframe
            # itself (nothing to chain; reading on from a keyframe is the sequential start)
            self._seek_to_key(key_pos, threaded=key == i)
        elif key == i and self._threads and not self._active:
            # reading on has reached a keyframe: continue on the threaded decoder from here
            self._seek_to_key(key_pos, threaded=True)
        # backfill only when stepping backwards: on a jump the frames before the target are
        # rarely wanted next, and converting them (and decoding the skippable ones among them)
        # made a 1080p jump 10-15 % slower
        last, self._last_read = self._last_read, i
        stepping_back = last is not None and 0 < last - i <= STEP_BACK_WINDOW
        backfill = min(BACKFILL, self._cache_frames() // 4) if stepping_back and not near else 0
        for _attempt in range(4):
            # retries decode every frame, in case a skipped one was what went wrong
            skip = self._skip and _attempt == 0
            try:
                result = self._decode_until(i, skip=skip, backfill=backfill)
            except _ThreadedDecodeError:
                log.debug("%s: decode error near frame %d; decoding again unthreaded", self._path, i)
                self._seek_to_key(key_pos, threaded=False)
                result = self._decode_until(i, skip=skip, backfill=backfill)
            if result is not None:
                return result
            if i in self._bad:
                raise self._bad_frame_error(i)
            if key_pos == 0 and _attempt > 0:
                break
            log.debug(
                "%s: frame %d not reached from keyframe %d; stepping back",
                self._path,
                i,
                self._keys[key_pos],
            )
            key_pos = max(0, key_pos - 1)  # seek landed late (open GOP / inexact index)
            self._seek_to_key(key_pos)
        last = self._next - 1 if self._next else None
        raise CorruptFrameError(
            f"frame {i} of {len(self)} could not be decoded; the file is truncated or corrupt"
            + (f" after frame {last}" if last is not None else ""),
            path=self._path,
            frame_index=i,
            readable_frames=last + 1 if last is not None else None,
        )

    def _cache_frames(self) -> int:
        """How many frames the cache holds."""
        frame_bytes = max(1, int(np.prod(self.frame_shape)) * self.dtype.itemsize)
        return self._cache.max_bytes // frame_bytes

    def _decode_until(self, i: int, *, skip: bool, backfill: int = 0) -> np.ndarray | None:
        """Decode forward until frame ``i``; None if the decoder overshot or ran dry.

        The ``backfill`` frames before ``i`` are decoded too and put in the cache.
        """
        target = self._pts_list[i]
        first_kept = max(0, i - backfill)
        self._skip_before = self._pts_list[first_kept] if skip else None
        try:
            for frame in self._decoder:
                ts = frame.pts
                idx = self._pos.get(ts) if ts is not None else None
                if idx is None and self._from_table:
                    raise _IndexMismatch
                if idx is not None and (frame.is_corrupt or idx in self._bad):
                    # flagged frames shown before the keyframe a seek started at (open GOP)
                    # lack their references because of the seek, not because of the file
                    if frame.is_corrupt and idx >= self._expect:  # decoded with errors
                        self._frame_failed(idx, "it decodes only with errors (corrupt data)")
                    self._next = idx + 1
                    if idx >= i:
                        return None
                    continue
                if (
                    idx is None
                    and ts is not None
                    and not (self._pts_list[0] <= ts <= self._pts_list[-1])
                ):
                    continue  # a frame outside the index (undecodable lead-in): not ours
                if idx is None:
                    idx = (
                        bisect.bisect_left(self._pts_list, ts)
                        if ts is not None
                        else (self._next if self._next is not None else self._expect)
                    )
                self._next = idx + 1
                if idx == i or (ts is not None and ts >= target and idx <= i):
                    return self._convert(frame)
                if idx > i:
                    return None
                if first_kept <= idx < i and self._cache.get(idx) is None:
                    self._cache.put(idx, self._convert(frame))
        except av.error.EOFError:
            pass
        except av.error.FFmpegError as exc:  # from demuxing (decode errors: _packet_failed)
            raise CorruptFrameError(
                f"reading failed before frame {i} ({exc}); the file is corrupt",
                path=self._path,
                frame_index=i,
                readable_frames=self._next,
            ) from exc
        self._decoder = None
        return None

    def _close(self) -> None:
        self._decoder = None
        for container, _ in self._handles.values():
            container.close()
        self._container.close()  # the indexing handle (also in _handles unless on the GPU)
