"""Qt-free reading and writing of videos, image folders and TIFF stacks.

Readers: :func:`open_frames` returns a lazy :class:`FrameArray`; :func:`is_supported` says
cheaply whether a path would be claimed.  Writers: :func:`open_writer` picks a :class:`Writer`
by extension; :func:`write_frames_to` writes a whole stack.  Every writer commits atomically.
"""

from napari_vsr.io.fps import fps_of_metadata, parse_fps
from napari_vsr.io.frame_array import FrameArray
from napari_vsr.io.sources import is_supported, open_frames, source_kind
from napari_vsr.io.video_options import VideoOptions
from napari_vsr.io.writer_base import Writer
from napari_vsr.io.writers import open_writer, write_frames_to, writer_kind

__all__ = [
    "FrameArray",
    "VideoOptions",
    "Writer",
    "is_supported",
    "fps_of_metadata",
    "open_frames",
    "open_writer",
    "parse_fps",
    "source_kind",
    "write_frames_to",
    "writer_kind",
]
