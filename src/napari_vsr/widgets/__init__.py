"""napari dock widgets (Qt): thin front ends over the Qt-free core.

- :class:`EnhanceWidget`: run a classic pipeline or RealBasicVSR on a layer in a thread worker,
  into a frame-synced, zarr-backed result layer.
- :class:`CompareWidget`: wipe, side by side, PSNR/SSIM per frame, comparison video export.
"""

from napari_vsr.widgets.compare import CompareWidget
from napari_vsr.widgets.enhance import EnhanceWidget

__all__ = ["CompareWidget", "EnhanceWidget"]
