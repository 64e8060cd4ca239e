"""Encoder speed presets: one vocabulary for x264/x265 and NVENC, and the automatic choice.

Names: the x264/x265 presets (``ultrafast`` .. ``placebo``) and the NVENC ones (``p1`` fastest
.. ``p7`` best).  Either kind is accepted for either encoder and mapped to the other's nearest
(:data:`X264_TO_NVENC`, :data:`NVENC_TO_X264`).

When none is given, x264/x265 follow the output size (:func:`default_preset`), so that the
encoder's cost per frame stays about the same at every size instead of growing with the pixels
(an x4 output has 16 times the input's); benchmarks/notes_video_presets.md has the measured
table behind the thresholds.  The rule depends on the size only, not on the machine, so the
same command writes the same file everywhere.  NVENC gets ``p5`` (a quality/speed middle;
the hardware encoder is not the bottleneck of a run at any preset).
"""

from __future__ import annotations

from napari_vsr.errors import ParameterError

X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium", "slow", "slower", "veryslow", "placebo",
)
NVENC_PRESETS = ("p1", "p2", "p3", "p4", "p5", "p6", "p7")
X264_TO_NVENC = {
    "ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p4",
    "medium": "p5", "slow": "p6", "slower": "p7", "veryslow": "p7", "placebo": "p7",
}
NVENC_TO_X264 = {
    "p1": "superfast", "p2": "veryfast", "p3": "faster", "p4": "fast",
    "p5": "medium", "p6": "slow", "p7": "slower",
}
#: the NVENC preset when none is given
NVENC_DEFAULT = "p5"
#: (largest output area in pixels, x264/x265 preset) of the automatic rule, in order
SIZE_RULE: tuple[tuple[int, str], ...] = (
    (1280 * 720, "medium"),
    (1920 * 1080, "faster"),
)
#: above the last area of :data:`SIZE_RULE`
LARGE_PRESET = "veryfast"


def check_preset(name: str | None) -> str | None:
    """The preset name, lower case; None stays None.

    Raises
    ------
    ParameterError
        Not an x264/x265 or NVENC preset name.
    """
    if name is None:
        return None
    key = str(name).strip().lower()
    if key not in X264_TO_NVENC and key not in NVENC_TO_X264:
        raise ParameterError(
            f"--encode-preset {name}: expected an x264/x265 preset ({', '.join(X264_PRESETS)}) "
            f"or an NVENC one ({', '.join(NVENC_PRESETS)})"
        )
    return key


def default_preset(width: int, height: int) -> str:
    """The x264/x265 preset for an output of ``width`` x ``height`` when none is given.

    Up to 1280x720 pixels (area): ``medium``, the x264 default; up to 1920x1080: ``faster``;
    larger (1440p, 4K): ``veryfast``.  Measured with x4-upscaled footage at CRF 18
    (benchmarks/notes_video_presets.md, x264, CPU seconds per frame): 720p medium 0.105;
    1080p medium 0.236, faster 0.146 (-38 %, 0.6 dB lower PSNR, same size); 1440p medium
    0.430, veryfast 0.184 (-57 %, 1.1 dB lower, 4 % smaller).  So each size costs at most
    about 0.19 CPU s per frame (0.1 s on two cores), where ``medium`` at 1440p made the
    encoder, not the network, the slowest stage of a GPU run.  Give ``preset`` (CLI
    ``--encode-preset``) for smaller files or more speed.
    """
    area = int(width) * int(height)
    for most, preset in SIZE_RULE:
        if area <= most:
            return preset
    return LARGE_PRESET


def x264_preset(name: str | None, width: int, height: int) -> str:
    """The x264/x265 preset for a given name (an NVENC one mapped), or by output size."""
    if name is None:
        return default_preset(width, height)
    return NVENC_TO_X264.get(name, name)


def nvenc_preset(name: str | None) -> str:
    """The NVENC preset (p1..p7) for a given name (an x264 one mapped), else ``p5``."""
    if name is None:
        return NVENC_DEFAULT
    return X264_TO_NVENC.get(name, name)
