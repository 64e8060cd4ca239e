"""The project's exception family.

Every error a user can cause derives from :class:`VsrError` *and* from the matching builtin, so
callers may catch either (``except ValueError`` keeps working).  Messages name the file or
parameter, what was expected, what was found and, where there is one, what to do about it.
"""

from __future__ import annotations

import os


def _where(path: str | os.PathLike | None) -> str:
    return f"{os.fspath(path)}: " if path is not None else ""


class VsrError(Exception):
    """Base class of every napari-vsr error.

    Parameters
    ----------
    message : str
        What went wrong, and what to do about it.
    path : path-like, optional
        The file or folder concerned; prefixed to the message.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None):
        self.path = os.fspath(path) if path is not None else None
        super().__init__(f"{_where(path)}{message}")

    def __reduce__(self):
        # Rebuilt from the final message and the attributes (path, frame_index, ...), not by
        # calling ``__init__`` again: errors cross process borders (Dask workers) intact, even
        # subclasses with required keyword-only fields.
        return _rebuild, (type(self), str(self), dict(self.__dict__))


def _rebuild(cls: type, message: str, state: dict) -> VsrError:
    """Unpickle a :class:`VsrError` (see ``VsrError.__reduce__``)."""
    base = cls  # the builtin whose instance layout the class has (OSError, MemoryError, ...)
    while base.__module__ != "builtins":
        base = base.__base__
    error = base.__new__(cls)
    error.args = (message,)
    error.__dict__.update(state)
    return error


# --- input / output -------------------------------------------------------------------------
class SourceNotFoundError(VsrError, FileNotFoundError):
    """A file or folder that was asked for does not exist."""


class UnreadableMediaError(VsrError, ValueError):
    """A path was claimed but cannot be read: empty, not media, no video stream, corrupt."""


class TruncatedMediaError(UnreadableMediaError):
    """The media ends early or is corrupt part way; ``readable_frames`` says how far it got."""

    def __init__(self, message: str, *, path=None, readable_frames: int | None = None):
        self.readable_frames = readable_frames
        super().__init__(message, path=path)


class CorruptFrameError(TruncatedMediaError):
    """A frame in the middle of the media cannot be decoded; ``frame_index`` says which.

    ``skip_bad_frames=True`` (``--skip-bad-frames``) replaces such frames by the previous one
    instead of stopping.
    """

    def __init__(self, message: str, *, path=None, frame_index: int, readable_frames=None):
        self.frame_index = frame_index
        super().__init__(message, path=path, readable_frames=readable_frames)


class SourcePermissionError(VsrError, PermissionError):
    """A file or folder exists but this user may not read it."""


class FrameStackError(VsrError, ValueError):
    """A folder or stack of frames is inconsistent (empty, mixed sizes, mixed channels)."""


class UnsupportedDtypeError(VsrError, TypeError):
    """An array has a dtype that the operation does not support."""


class OutputExistsError(VsrError, FileExistsError):
    """The output path exists and overwriting was not asked for."""


class WriteError(VsrError, OSError):
    """Writing an output failed; nothing was left under the target name."""


# --- parameters -----------------------------------------------------------------------------
class ParameterError(VsrError, ValueError):
    """A parameter (CLI option, recipe step, widget value) is out of range or unknown."""


# --- weights --------------------------------------------------------------------------------
class WeightsError(VsrError, ValueError):
    """A checkpoint cannot be used."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """No checkpoint file at the given or resolved path."""


class CorruptWeightsError(WeightsError):
    """The file is empty, truncated or not a checkpoint at all."""


class ArchitectureMismatchError(WeightsError):
    """The checkpoint holds a different network (missing, unexpected or mis-shaped keys)."""


class ChecksumMismatchError(WeightsError):
    """The file's size or SHA-256 differs from the registry entry."""


class WeightsDownloadError(VsrError, ConnectionError):
    """The checkpoint could not be downloaded (offline, server error, interrupted)."""


class WeightsCacheError(VsrError, OSError):
    """The weights cache folder cannot be used: it is a file, not writable, or out of space."""


# --- running --------------------------------------------------------------------------------
class DeviceError(VsrError, RuntimeError):
    """The requested device or precision is not available."""


class SchedulerError(VsrError, ConnectionError):
    """The Dask scheduler cannot be reached, or its cluster cannot be started."""


class SegmentTaskError(VsrError, RuntimeError):
    """A segment failed on a Dask worker; the message names the segment, the worker and the
    worker's error (kept as ``__cause__``)."""


# --- wording per front end -------------------------------------------------------------------
#: the napari wording of what-to-do phrases that messages spell for the command line
_NAPARI_WORDING: dict[str, str] = {}


def hint(cli: str, napari: str) -> str:
    """Declare how a what-to-do phrase written for the command line reads in napari.

    Messages are built with the returned CLI phrase (the CLI prints them as they are); the
    widgets show :func:`napari_wording` of the message, with every declared phrase replaced.
    """
    _NAPARI_WORDING[cli] = napari
    return cli


def napari_wording(text: str) -> str:
    """``text`` with the command-line phrases declared by :func:`hint` in napari's words."""
    for cli in sorted(_NAPARI_WORDING, key=len, reverse=True):
        if cli in text:
            text = text.replace(cli, _NAPARI_WORDING[cli])
    return text


#: attribute set (``extra={NOTE_FLAG: True}``) on a warning log record whose text is also kept
#: in the object's ``notes`` (a reader's or writer's); the job runner yields those notes as
#: warnings, so the command line drops the flagged records instead of printing them twice
NOTE_FLAG = "napari_vsr_note"


class Cancelled(VsrError):
    """The user cancelled a running job.  Not a failure: callers usually just stop."""

    def __init__(self, message: str = "cancelled by the user", *, path=None):
        super().__init__(message, path=path)


# --- output safety --------------------------------------------------------------------------
class UnsafeOutputError(OutputExistsError):
    """Replacing the output would destroy data: a folder napari-vsr did not write, or a file
    target that exists as a folder (or the reverse)."""


class OutputIsInputError(VsrError, ValueError):
    """The output is the input (same path, symlink or hard link) or holds it."""


class InsufficientMemoryError(VsrError, MemoryError):
    """One frame or one chunk needs more memory than is available; refused before any work."""
