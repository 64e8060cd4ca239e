"""napari-vsr: video and frame-stack enhancement for napari.

The core (``io``, ``classic``, ``models``, ``engine``, ``compare``) imports neither Qt nor
napari; ``widgets`` and ``cli`` are thin front ends over it.
"""

from napari_vsr.errors import VsrError

__version__ = "0.1.0"
__all__ = ["VsrError", "__version__"]
