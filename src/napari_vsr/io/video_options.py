"""The options of a video output, travelling as one record from the CLI, the widgets and the
napari writer hook to :func:`~napari_vsr.io.open_writer` and the video writer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VideoOptions:
    """How a video output is encoded (see :class:`~napari_vsr.io.video_writer.VideoWriter`).

    Attributes
    ----------
    codec : str, optional
        h264 (default), h265, vp9, av1, prores, ffv1, an NVIDIA encoder (h264_nvenc,
        hevc_nvenc, av1_nvenc; ``nvenc`` = h264_nvenc) or an FFmpeg encoder name; ``"auto"``
        is the same as None (the default, NVENC on a CUDA job when ``prefer_hardware``).
    crf : int, optional
        Quality, 0..51 (lower is better).
    preset : str, optional
        Encoder speed preset: an x264 name (ultrafast .. veryslow) or an NVENC one (p1 .. p7),
        each mapped to the other's nearest; None: by output size for x264/x265 (see
        :func:`~napari_vsr.io.encode_presets.default_preset`), p5 for NVENC.
    lossless : bool
        FFV1 in .mkv, lossless x264 in .mp4/.mov.
    copy_streams_from : path-like, optional
        A source whose audio/subtitle streams are copied into the output.
    frame_times : sequence of float, optional
        Presentation times in seconds (a variable frame rate kept).
    color_matrix, color_range : str, optional
        Y'CbCr matrix ("bt601", "bt709", ...) and range ("limited"/"full"); None: automatic.
    color_primaries, color_transfer : str, optional
        FFmpeg names of the colour tags to write (a source's, passed on); ignored by
        non-video outputs.
    prefer_hardware : bool
        A hint from the job runner that the job runs on a CUDA device: with ``codec`` None or
        ``"auto"`` the video is encoded with NVENC when an NVENC encoder really opens here,
        else in software (one note says why).  Ignored by non-video outputs.
    """

    codec: str | None = None
    crf: int | None = None
    lossless: bool = False
    copy_streams_from: str | os.PathLike | None = None
    frame_times: Any = None
    color_matrix: str | None = None
    color_range: str | None = None
    color_primaries: str | None = None
    color_transfer: str | None = None
    preset: str | None = None
    prefer_hardware: bool = False

    def given_for_other_outputs(self) -> list[str]:
        """The options set here that a non-video output cannot honour (colour tags excluded:
        they describe a source and are simply not written there)."""
        given = [k for k in ("codec", "crf", "preset", "copy_streams_from", "frame_times",
                             "color_matrix", "color_range") if getattr(self, k) is not None]
        return given + (["lossless"] if self.lossless else [])
