"""Named, ready-made pipelines (``napari-vsr recipes list``)."""

from __future__ import annotations

from napari_vsr.classic.pipeline import Pipeline
from napari_vsr.errors import ParameterError


def _preset(name: str, description: str, *steps: tuple[str, dict]) -> Pipeline:
    return Pipeline(list(steps), name=name, description=description)


#: presets by name; each is an immutable :class:`Pipeline`
PRESETS: dict[str, Pipeline] = {
    p.name: p
    for p in (
        _preset(
            "seed",
            "the original tool's traditional x4: Laplacian sharpen, Gaussian 5x5, bicubic x4",
            ("laplacian_sharpen", {}),
            ("gaussian_blur", {"ksize": 5, "sigma": 0.0}),
            ("resize", {"factor": 4, "interpolation": "bicubic"}),
        ),
        _preset(
            "bicubic-x4",
            "plain bicubic x4 upscaling (the usual super-resolution baseline)",
            ("resize", {"factor": 4, "interpolation": "bicubic"}),
        ),
        _preset(
            "lanczos-x4",
            "Lanczos x4 upscaling, then a light unsharp mask",
            ("resize", {"factor": 4, "interpolation": "lanczos"}),
            ("unsharp_mask", {"radius": 1.5, "amount": 0.5}),
        ),
        _preset(
            "denoise-sharpen",
            "non-local means denoising, then an unsharp mask (same size)",
            ("nl_means", {"h": 0.03}),
            ("unsharp_mask", {"radius": 1.0, "amount": 0.8, "threshold": 0.01}),
        ),
        _preset(
            "temporal-denoise",
            "median over +-1 frames (static noise, flicker), then a light unsharp mask",
            ("temporal_median", {"radius": 1}),
            ("unsharp_mask", {"radius": 1.0, "amount": 0.5}),
        ),
        _preset(
            "microscopy-clahe",
            "for noisy 8/16-bit microscopy: non-local means, then CLAHE (keeps the dtype)",
            ("nl_means", {"h": 0.04}),
            ("clahe", {"clip_limit": 2.0, "tile_grid": (8, 8)}),
        ),
    )
}


def get_preset(name: str) -> Pipeline:
    """The preset called ``name``.

    Raises
    ------
    ParameterError
        Unknown name; the message lists the known presets.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ParameterError(
            f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}"
        ) from None
