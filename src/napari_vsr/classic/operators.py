"""Every operator in one namespace; importing this module registers them all."""

from napari_vsr.classic.contrast import adjust_gamma, clahe, equalize_hist
from napari_vsr.classic.edges import canny, sobel_magnitude
from napari_vsr.classic.filters import (
    bilateral_filter,
    gaussian_blur,
    mean_filter,
    median_filter,
    nl_means,
)
from napari_vsr.classic.resize import resize
from napari_vsr.classic.sharpen import laplacian_sharpen, unsharp_mask
from napari_vsr.classic.temporal import temporal_mean, temporal_median

#: operator names grouped by purpose, for listings
CATEGORIES: dict[str, tuple[str, ...]] = {
    "sharpening": ("laplacian_sharpen", "unsharp_mask"),
    "filtering": ("mean_filter", "gaussian_blur", "median_filter", "bilateral_filter", "nl_means"),
    "temporal": ("temporal_median", "temporal_mean"),
    "interpolation": ("resize",),
    "contrast": ("equalize_hist", "clahe", "adjust_gamma"),
    "edges": ("sobel_magnitude", "canny"),
}

__all__ = [
    "CATEGORIES",
    "adjust_gamma",
    "bilateral_filter",
    "canny",
    "clahe",
    "equalize_hist",
    "gaussian_blur",
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
