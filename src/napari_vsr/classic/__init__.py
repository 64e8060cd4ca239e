"""Classic (non-learned) enhancement: per-frame operators, temporal filters and pipelines.

Qt-free.  Every operator has the form ``op(image, params..., *, channel_axis=None)``, works on
one frame ``(H, W)`` or ``(H, W, C)`` (temporal operators: on a stack ``(T, H, W[, C])``) in
uint8, uint16 or float32, returns a new array of the same dtype and shape (``resize`` changes
the size) and never modifies its input.  The dtype and layout policy is written once, in
:mod:`napari_vsr.classic.dtypes`: in short, intensity parameters are fractions of full scale
(255, 65535 or 1.0), integers are rounded and saturated, float32 is not clipped except by the
contrast operators, and unsupported dtypes raise ``UnsupportedDtypeError``.

Operators (recipe names equal the function names):

=====================  ====================================================
sharpening             ``laplacian_sharpen``, ``unsharp_mask``
filtering              ``mean_filter``, ``gaussian_blur``, ``median_filter``,
                       ``bilateral_filter``, ``nl_means``
temporal (+-radius)    ``temporal_median``, ``temporal_mean``
interpolation          ``resize`` (nearest, bilinear, bicubic, lanczos, area)
contrast               ``equalize_hist``, ``clahe``, ``adjust_gamma``
edges (analysis)       ``sobel_magnitude``, ``canny``
=====================  ====================================================

:class:`Pipeline` chains them and reads/writes JSON/YAML recipes; :data:`PRESETS` holds named
pipelines (``"seed"`` reproduces the original tool's traditional method bit for bit);
:class:`~napari_vsr.enhancers.ClassicEnhancer` runs a pipeline through the engine with frames in
parallel threads.
"""

from napari_vsr.classic.contrast import adjust_gamma, clahe, equalize_hist
from napari_vsr.classic.dtypes import SUPPORTED_DTYPES, full_scale
from napari_vsr.classic.edges import canny, sobel_magnitude
from napari_vsr.classic.filters import (
    bilateral_filter,
    gaussian_blur,
    mean_filter,
    median_filter,
    nl_means,
)
from napari_vsr.classic.pipeline import Pipeline, Step
from napari_vsr.classic.presets import PRESETS, get_preset
from napari_vsr.classic.registry import OPERATORS, Operator, Param, get_operator
from napari_vsr.classic.resize import INTERPOLATIONS, resize
from napari_vsr.classic.sharpen import laplacian_sharpen, unsharp_mask
from napari_vsr.classic.temporal import temporal_mean, temporal_median

__all__ = [
    "INTERPOLATIONS",
    "OPERATORS",
    "PRESETS",
    "SUPPORTED_DTYPES",
    "Operator",
    "Param",
    "Pipeline",
    "Step",
    "adjust_gamma",
    "bilateral_filter",
    "canny",
    "clahe",
    "equalize_hist",
    "full_scale",
    "gaussian_blur",
    "get_operator",
    "get_preset",
    "laplacian_sharpen",
    "mean_filter",
    "median_filter",
    "nl_means",
    "resize",
    "sobel_magnitude",
    "temporal_mean",
    "temporal_median",
    "unsharp_mask",
]
