"""NVIDIA hardware video through FFmpeg (PyAV): NVENC encoders, NVDEC decoding, and the probes
that say whether they really work on this machine.

A PyAV wheel lists ``h264_nvenc``, ``hevc_nvenc``, ``av1_nvenc`` and the ``cuda`` hardware
device whether or not the machine has an NVIDIA driver (``libcuda``, ``libnvidia-encode``) and
a GPU with the engine: data-centre GPUs such as the A100, H100 and H200 have NVDEC but no
NVENC, H.264 10-bit encoding needs a recent (Blackwell) GPU, AV1 encoding an Ada or newer one.
So availability is learnt by trying, once per process:

- **NVENC** (:func:`nvenc_failure`): an encoder context of the output's size, pixel format and
  options is opened and freed; the answer is cached per (encoder, size, format, options).
- **NVDEC** (:func:`cuda_decode_failure`): a CUDA device context is created for a decoder;
  cached.  Whether the GPU decodes a given stream (codec, profile, size) is FFmpeg's call at
  the first frame: it decodes in software when it cannot (see the video reader).

The reasons returned are FFmpeg's own words, shortened to one line (e.g. ``Cannot load
libcuda.so.1``, ``OpenEncodeSessionEx failed: unsupported device (2)``, ``10 bit encode not
supported``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from fractions import Fraction

import av
import av.logging

from napari_vsr.errors import ParameterError

log = logging.getLogger(__name__)

#: NVENC encoder -> the bitstream it writes
NVENC_ENCODERS: dict[str, str] = {"h264_nvenc": "h264", "hevc_nvenc": "hevc", "av1_nvenc": "av1"}
#: NVENC encoder -> software encoders of the same bitstream, first available wins
SOFTWARE_EQUIVALENT: dict[str, tuple[str, ...]] = {
    "h264_nvenc": ("libx264",),
    "hevc_nvenc": ("libx265",),
    "av1_nvenc": ("libsvtav1", "libaom-av1", "librav1e"),
}
#: software encoder -> the NVENC encoder an automatic hardware choice puts in its place
HARDWARE_EQUIVALENT: dict[str, str] = {"libx264": "h264_nvenc", "libx265": "hevc_nvenc"}
#: NVENC input formats: 8-bit planar 4:2:0 (what :func:`~napari_vsr.io.color.rgb_to_yuv_frame`
#: writes directly) and 10-bit semi-planar 4:2:0
NVENC_FORMATS = {False: "yuv420p", True: "p010le"}
#: the values of ``hwaccel`` the reader and the job runner take
HWACCEL_CHOICES = ("none", "auto", "cuda")
_REASON_CHARS = 160

_lock = threading.Lock()
_encoder_probes: dict[tuple, str | None] = {}
_decoder_probe: dict[str, str | None] = {}


def is_nvenc(encoder: str | None) -> bool:
    """Whether ``encoder`` names an NVENC encoder."""
    return encoder in NVENC_ENCODERS


def software_encoder(nvenc: str) -> str | None:
    """The first software encoder of ``nvenc``'s bitstream in this FFmpeg build (or None)."""
    return next((e for e in SOFTWARE_EQUIVALENT[nvenc] if e in av.codecs_available), None)


@contextlib.contextmanager
def _ffmpeg_errors() -> Iterator[list]:
    """Capture FFmpeg's error lines in this thread (PyAV drops them by default)."""
    previous, skip = av.logging.get_level(), av.logging.get_skip_repeated()
    raise_level = previous is None or previous < av.logging.ERROR
    if raise_level:
        av.logging.set_level(av.logging.ERROR)
    av.logging.set_skip_repeated(False)  # the same error as the previous probe's is wanted too
    try:
        with av.logging.Capture(local=True) as logs:
            yield logs
    finally:
        av.logging.set_skip_repeated(skip)
        if raise_level:
            av.logging.set_level(previous)


def _reason(exc: BaseException, logs: list) -> str:
    """One short line: FFmpeg's error lines, else the exception's words."""
    lines: list[str] = []
    for level, _, message in logs:
        line = " ".join(message.split())
        if level <= av.logging.ERROR and line and line not in lines:
            lines.append(line)
    fallback = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    text = "; ".join(lines) if lines else " ".join(fallback.split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


def nvenc_failure(
    encoder: str,
    width: int,
    height: int,
    *,
    ten_bit: bool = False,
    options: dict[str, str] | None = None,
) -> str | None:
    """Why ``encoder`` cannot encode ``width`` x ``height`` frames here; None when it can.

    Opens (and frees at once) an encoder context of that size, of the input format the writer
    hands over (:data:`NVENC_FORMATS`) and with ``options``; the answer is cached for the
    process.  Costs about 0.1-0.3 s on a GPU the first time, microseconds without a driver.

    Parameters
    ----------
    encoder : str
        ``h264_nvenc``, ``hevc_nvenc`` or ``av1_nvenc``.
    width, height : int
        The encoded size (even).
    ten_bit : bool
        10-bit input (``p010le``) rather than 8-bit (``yuv420p``).
    options : dict, optional
        The encoder options the writer will use (preset, rate control).
    """
    opts = dict(options or {})
    key = (encoder, int(width), int(height), bool(ten_bit), tuple(sorted(opts.items())))
    with _lock:
        if key in _encoder_probes:
            return _encoder_probes[key]
        if encoder not in av.codecs_available:
            reason = f"this FFmpeg build has no {encoder} encoder"
        else:
            reason = _open_encoder(encoder, int(width), int(height), NVENC_FORMATS[bool(ten_bit)],
                                   opts)
        _encoder_probes[key] = reason
    if reason is None:
        log.debug("%s opens for %dx%d%s", encoder, width, height, " 10-bit" if ten_bit else "")
    else:
        log.debug("%s does not open for %dx%d: %s", encoder, width, height, reason)
    return reason


def _open_encoder(encoder: str, width: int, height: int, pix_fmt: str,
                  options: dict[str, str]) -> str | None:
    cc = None
    logs: list = []
    try:
        with _ffmpeg_errors() as logs:
            cc = av.CodecContext.create(encoder, "w")
            cc.width, cc.height = width, height
            cc.pix_fmt = pix_fmt
            cc.time_base = Fraction(1, 25)
            cc.framerate = Fraction(25)
            cc.options = options
            cc.open()
    except (av.error.FFmpegError, ValueError, OSError, RuntimeError) as exc:
        return _reason(exc, logs)
    finally:
        del cc  # frees the encoder session (consumer GPUs allow only a few at a time)
    return None


def cuda_decode_failure() -> str | None:
    """Why decoding on the GPU (NVDEC through FFmpeg's ``cuda`` hwaccel) is not possible here;
    None when a CUDA device context opens.  Cached for the process."""
    with _lock:
        if "cuda" in _decoder_probe:
            return _decoder_probe["cuda"]
        reason = _open_cuda_device()
        _decoder_probe["cuda"] = reason
    return reason


def _open_cuda_device() -> str | None:
    from av.codec.hwaccel import HWAccel, hwdevices_available

    if "cuda" not in hwdevices_available():
        return "this FFmpeg build has no CUDA support"
    logs: list = []
    try:
        with _ffmpeg_errors() as logs:
            HWAccel("cuda").create(av.codec.Codec("h264", "r"))
    except (av.error.FFmpegError, NotImplementedError, ValueError, OSError, RuntimeError) as exc:
        return _reason(exc, logs)
    return None


def check_hwaccel(hwaccel: str | None) -> str | None:
    """``hwaccel`` normalised: None (software, also for ``"none"``), ``"auto"`` or ``"cuda"``.

    Raises
    ------
    ParameterError
        Any other value.
    """
    if hwaccel is None:
        return None
    key = str(hwaccel).strip().lower()
    if key not in HWACCEL_CHOICES:
        raise ParameterError(
            f"--hwaccel {hwaccel}: expected one of {', '.join(HWACCEL_CHOICES)}"
        )
    return None if key == "none" else key


def decode_hwaccel(hwaccel: str | None):
    """The :class:`av.codec.hwaccel.HWAccel` to decode with, and a note.

    Parameters
    ----------
    hwaccel : {None, "none", "auto", "cuda"}
        None/"none": software.  "cuda" and "auto": NVDEC when a CUDA device context opens,
        else software (the same thing today: NVDEC is the only hardware decoder wired in;
        "auto" may take others later).

    Returns
    -------
    (HWAccel or None, str or None)
        The settings for ``av.open(..., hwaccel=)`` (None: decode in software) and, when
        hardware decoding was asked for but cannot be used, why (FFmpeg's words), for a
        one-line message.
    """
    key = check_hwaccel(hwaccel)
    if key is None:
        return None, None
    reason = cuda_decode_failure()
    if reason is not None:
        return None, reason
    from av.codec.hwaccel import HWAccel

    # allow_software_fallback: a stream the GPU cannot decode (a codec, profile or size NVDEC
    # lacks) is decoded in software by the same decoder instead of failing
    return HWAccel("cuda", allow_software_fallback=True), None


def reset_probes() -> None:
    """Forget the cached answers (tests; a driver installed while the process runs)."""
    with _lock:
        _encoder_probes.clear()
        _decoder_probe.clear()
