"""Checks on a source path before any reader opens it, and the translation of OS errors.

A reader must never block on, or be lied to by, what a path points at: a FIFO (named pipe)
blocks ``open`` until a writer appears and a character device never ends, so anything that is
not a regular file or a folder is refused from its ``stat`` alone, without opening it.  Symlink
loops, dangling symlinks and permission errors are named as such.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from napari_vsr.errors import SourceNotFoundError, SourcePermissionError, UnreadableMediaError

#: never wait in ``open`` (a file replaced by a FIFO after the ``stat``); absent on Windows
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)

#: what ``stat`` calls the file types a reader refuses
_NOT_REGULAR = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def translate_os_error(exc: OSError, path: str | os.PathLike, doing: str) -> Exception:
    """The project error for an ``OSError`` met while ``doing`` something with ``path``.

    Parameters
    ----------
    exc : OSError
        What the operating system said.
    path : path-like
        The source path the user gave (named in the message).
    doing : str
        What was being done, e.g. ``"opening"``; part of the message.

    Returns
    -------
    Exception
        A :class:`~napari_vsr.errors.VsrError` to raise ``from exc``: SourceNotFoundError
        (missing, dangling symlink, a path component that is a file), SourcePermissionError
        (EACCES/EPERM) or UnreadableMediaError (symlink loop, anything else).
    """
    p = Path(path)
    code = exc.errno
    if code == errno.ELOOP:
        return UnreadableMediaError(
            f"symlink loop while {doing} (the link leads back to itself); point it at a "
            "real file",
            path=p,
        )
    if code in (errno.ENOENT, errno.ENOTDIR):
        if p.is_symlink():
            try:
                target = os.readlink(p)
            except OSError:
                target = "?"
            return SourceNotFoundError(
                f"dangling symlink: it points to {target!r}, which does not exist", path=p
            )
        if code == errno.ENOTDIR:
            return SourceNotFoundError(
                "no such file or folder (a part of the path is a file, not a folder)", path=p
            )
        return SourceNotFoundError("no such file or folder", path=p)
    if code in (errno.EACCES, errno.EPERM):
        return SourcePermissionError(
            f"permission denied while {doing}; check that your user may read it "
            "(and enter the folders above it)",
            path=p,
        )
    if code == errno.ENAMETOOLONG:
        return UnreadableMediaError("the path is too long for this file system", path=p)
    reason = exc.strerror or str(exc)
    return UnreadableMediaError(f"cannot be read while {doing}: {reason}", path=p)


def check_source(path: str | os.PathLike) -> os.stat_result:
    """Refuse paths no reader should open; return the ``stat`` of the ones that may be.

    Cheap and never blocking: one ``stat`` (which follows symlinks) and, for a regular file,
    one non-blocking open-and-close, for a folder one listing handle, so that permission
    problems are reported here, naming the path, instead of deep inside a decoder.

    Raises
    ------
    SourceNotFoundError
        Missing path or dangling symlink.
    SourcePermissionError
        The file or folder may not be read by this user.
    UnreadableMediaError
        A FIFO, device or socket (refused without opening it), or a symlink loop.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise translate_os_error(exc, p, "looking it up") from exc
    mode = st.st_mode
    for test, kind in _NOT_REGULAR:
        if test(mode):
            raise UnreadableMediaError(
                f"not a regular file but {kind}; napari-vsr reads video and TIFF files and "
                "folders of images (a pipe or device cannot be indexed or seeked); copy the "
                "data into a file first",
                path=p,
            )
    try:
        if stat.S_ISDIR(mode):
            os.scandir(p).close()
        else:
            os.close(os.open(p, os.O_RDONLY | _NONBLOCK))
    except OSError as exc:
        raise translate_os_error(exc, p, "opening it") from exc
    return st
