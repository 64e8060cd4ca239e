"""The pair of layers the Compare widget compares, as its tabs see it: the chosen layers looked
up by name, the frames they share in world time, and the names of the layers the widget adds
itself (never offered for comparison)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from napari.layers import Image

from napari_vsr.placement import frame_index

if TYPE_CHECKING:
    import napari

WIPE_LEFT_NAME = "wipe left"
DIVIDER_NAME = "wipe divider"
PREVIEW_NAME = "comparison preview"
WIPE_LAYERS = (WIPE_LEFT_NAME, DIVIDER_NAME)
OWN_LAYERS = (*WIPE_LAYERS, PREVIEW_NAME)


def aligned_pairs(a: Image, b: Image) -> list[tuple[int, int]]:
    """(frame of ``a``, frame of ``b``) pairs showing the same world time, in ``a``'s order."""
    n_b = int(b.data.shape[0])
    pairs = []
    for i in range(int(a.data.shape[0])):
        world_t = a.translate[0] + i * a.scale[0]
        j = frame_index(world_t, b.scale[0], b.translate[0], n_b)
        if j is not None:
            pairs.append((i, j))
    return pairs


def larger(a: Image, b: Image) -> Image:
    """The layer with more pixels per frame (``a`` on a tie)."""
    pa = a.data.shape[1] * a.data.shape[2]
    pb = b.data.shape[1] * b.data.shape[2]
    return a if pa >= pb else b


def current_frame(viewer: napari.viewer.Viewer, layer: Image) -> int | None:
    """The frame of ``layer`` at the time slider's position, or None outside the layer."""
    axis = viewer.dims.ndim - layer.ndim
    return frame_index(viewer.dims.point[axis], layer.scale[0], layer.translate[0],
                       int(layer.data.shape[0]))


class LayerPair:
    """The left and right layers chosen in the Compare widget.

    Layers are looked up by name on every access, so a renamed or removed layer is never held
    on to.  Only the viewer's 3D (T, H, W[, C]), single-scale image layers count, less the
    layers the widget adds itself (:data:`OWN_LAYERS`).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    left_name, right_name : callable
        Return the chosen names (the widget's layer choices).
    """

    def __init__(self, viewer: napari.viewer.Viewer, left_name: Callable[[], str],
                 right_name: Callable[[], str]):
        self.viewer = viewer
        self._left_name, self._right_name = left_name, right_name

    def images(self) -> list[Image]:
        """The layers that can be compared, in the viewer's order."""
        return [layer for layer in self.viewer.layers
                if isinstance(layer, Image) and layer.name not in OWN_LAYERS
                and not layer.multiscale and layer.ndim == 3]

    def find(self, name: str) -> Image | None:
        """The comparable layer called ``name``, or None."""
        for layer in self.images():
            if layer.name == name:
                return layer
        return None

    @property
    def names(self) -> tuple[str, str]:
        """(left, right) as chosen, whether or not such layers exist."""
        return self._left_name(), self._right_name()

    @property
    def left(self) -> Image | None:
        return self.find(self._left_name())

    @property
    def right(self) -> Image | None:
        return self.find(self._right_name())
