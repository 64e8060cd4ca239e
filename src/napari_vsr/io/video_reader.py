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

from napari_vsr.errors import SourceNotFoundError, TruncatedMediaError, UnreadableMediaError
from napari_vsr.io import color
from napari_vsr.io.frame_array import DEFAULT_CACHE_MB, FrameArray
from napari_vsr.io.mp4_index import read_sample_table

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


class _IndexMismatch(Exception):
    """A decoded timestamp is not in an index built from sample tables."""


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
    ):
        self._apply_rotation = bool(apply_rotation)
        path = Path(path)
        if not path.exists():
            raise SourceNotFoundError("no such file", path=path)
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
        """Raise TruncatedMediaError when fewer frames arrived than the container declares."""
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
        """Demux once: sorted presentation timestamps and keyframe presentation indices."""
        stamps: list[tuple[int, bool]] = []
        complete = True
        discarded = 0
        try:
            for packet in self._container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.is_discard:  # cut by an edit list: never shown
                    discarded += 1
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    continue
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
        stamps.sort()
        pts = [s for s, _ in stamps]
        keys = [i for i, (_, k) in enumerate(stamps) if k] or [0]
        if len(set(pts)) != len(pts):  # duplicate timestamps: keep the first of each
            seen: set[int] = set()
            uniq = []
            for s, k in stamps:
                if s not in seen:
                    seen.add(s)
                    uniq.append((s, k))
            pts = [s for s, _ in uniq]
            keys = [i for i, (_, k) in enumerate(uniq) if k] or [0]
        return pts, keys, complete

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
        except av.error.FFmpegError as exc:
            raise TruncatedMediaError(
                f"the first frame cannot be decoded ({exc})", path=self._path, readable_frames=0
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
        if handle is None:
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
            yield from cc.decode(packet)
        if skipping:
            cc.skip_frame = "DEFAULT"

    def _convert(self, frame: av.VideoFrame) -> np.ndarray:
        if self._yuv is not None and frame.format.name == self._yuv_format:
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
            return self._decode_one_indexed(i)
        except _IndexMismatch:
            self._rebuild_index()
            return self._decode_one_indexed(i)

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
            result = self._decode_until(i, skip=self._skip and _attempt == 0, backfill=backfill)
            if result is not None:
                return result
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
        raise TruncatedMediaError(
            f"frame {i} of {len(self)} could not be decoded; the file is truncated or corrupt"
            + (f" after frame {last}" if last is not None else ""),
            path=self._path,
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
        except av.error.FFmpegError as exc:
            raise TruncatedMediaError(
                f"decoding failed before frame {i} ({exc}); the file is corrupt",
                path=self._path,
                readable_frames=self._next,
            ) from exc
        self._decoder = None
        return None

    def _close(self) -> None:
        self._decoder = None
        for container, _ in self._handles.values():
            container.close()
