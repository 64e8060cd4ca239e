"""The weights manager: a registry of released checkpoints, a user cache, verified downloads.

Resolution order for the checkpoint of a model (:func:`resolve_weights`):

1. an explicit path given by the caller;
2. the environment variable ``NAPARI_VSR_WEIGHTS``;
3. the user cache (``NAPARI_VSR_CACHE_DIR`` or the platform's cache folder, ``.../napari-vsr/weights``);
4. a download from the registry URL, written to a ``.part`` file and renamed into the cache only
   after its size and SHA-256 match the registry.  A mismatched or partial file is deleted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from napari_vsr.errors import (
    ChecksumMismatchError,
    ParameterError,
    WeightsDownloadError,
    WeightsNotFoundError,
)

__all__ = [
    "DEFAULT_MODEL",
    "ENV_CACHE_DIR",
    "ENV_WEIGHTS",
    "REGISTRY",
    "WeightsEntry",
    "cache_dir",
    "cached_path",
    "fetch",
    "get_entry",
    "import_weights",
    "resolve_weights",
    "sha256_file",
    "verify",
]

log = logging.getLogger(__name__)

ENV_WEIGHTS = "NAPARI_VSR_WEIGHTS"
ENV_CACHE_DIR = "NAPARI_VSR_CACHE_DIR"
DEFAULT_MODEL = "realbasicvsr_x4"
#: seconds without data before a download is given up
DOWNLOAD_TIMEOUT = 30.0
_CHUNK = 1 << 20

#: ``progress(done_bytes, total_bytes_or_None)``
ProgressCallback = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class WeightsEntry:
    """A released checkpoint.

    Attributes
    ----------
    name : str
        Registry key (``"realbasicvsr_x4"``).
    url : str
        Where to download it.
    size : int
        Exact size in bytes.
    sha256 : str
        Lower-case hex SHA-256 of the file.
    filename : str
        Name of the file in the cache.
    """

    name: str
    url: str
    size: int
    sha256: str
    filename: str


REGISTRY: dict[str, WeightsEntry] = {
    DEFAULT_MODEL: WeightsEntry(
        name=DEFAULT_MODEL,
        url=(
            "https://download.openmmlab.com/mmediting/restorers/real_basicvsr/"
            "realbasicvsr_c64b20_1x30x8_lr5e-5_150k_reds_20211104-52f77c2c.pth"
        ),
        size=148_239_017,
        sha256="52f77c2c835aaa3fe675b3959b2f85010a6c6f63f77f7e279394646e55a4e376",
        filename="realbasicvsr_c64b20_1x30x8_lr5e-5_150k_reds_20211104-52f77c2c.pth",
    ),
}


def get_entry(name: str = DEFAULT_MODEL) -> WeightsEntry:
    """The registry entry called ``name``; :class:`ParameterError` listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ParameterError(f"unknown model {name!r}; known models: {known}") from None


def cache_dir() -> Path:
    """Folder of the weights cache (not created here).

    ``$NAPARI_VSR_CACHE_DIR`` when set, else the user cache folder of the platform,
    e.g. ``~/.cache/napari-vsr/weights`` on Linux.
    """
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    return platformdirs.user_cache_path("napari-vsr") / "weights"


def cached_path(name: str = DEFAULT_MODEL) -> Path | None:
    """The cached checkpoint of ``name``, or None if it is absent or has the wrong size.

    Files only enter the cache after a full SHA-256 check (:func:`fetch`,
    :func:`import_weights`), so only the size is checked here.
    """
    entry = get_entry(name)
    path = cache_dir() / entry.filename
    try:
        if path.is_file() and path.stat().st_size == entry.size:
            return path
    except OSError:
        return None
    return None


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """Lower-case hex SHA-256 of a file (remembered per path, size and mtime)."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise WeightsNotFoundError("no such file", path=p) from None
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    digest = _HASH_MEMO.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        digest = h.hexdigest()
        _HASH_MEMO[key] = digest
    return digest


def verify(path: str | os.PathLike, name: str = DEFAULT_MODEL) -> str:
    """Check a file against the registry entry ``name``.

    Returns
    -------
    str
        The file's SHA-256 (equal to the registry's).

    Raises
    ------
    WeightsNotFoundError
        No file at ``path``.
    ChecksumMismatchError
        Size or SHA-256 differ from the registry.
    """
    entry = get_entry(name)
    p = Path(path)
    if not p.is_file():
        raise WeightsNotFoundError("no checkpoint file here", path=p)
    size = p.stat().st_size
    if size != entry.size:
        raise ChecksumMismatchError(
            f"size is {size:,} bytes but the {entry.name} checkpoint has {entry.size:,} bytes; "
            "the file is incomplete or a different checkpoint",
            path=p,
        )
    digest = sha256_file(p)
    if digest != entry.sha256:
        raise ChecksumMismatchError(
            f"SHA-256 is {digest} but the {entry.name} checkpoint has {entry.sha256}; "
            "the file is corrupt or a different checkpoint",
            path=p,
        )
    return digest


def _check_explicit(path: str | os.PathLike, origin: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(
            f"no checkpoint file here ({origin}); give the path of a RealBasicVSR .pth or "
            ".safetensors file",
            path=p,
        )
    return p


def resolve_weights(
    weights: str | os.PathLike | None = None,
    *,
    name: str = DEFAULT_MODEL,
    download: bool = True,
    progress: ProgressCallback | None = None,
) -> Path:
    """Find the checkpoint to use: explicit path, ``$NAPARI_VSR_WEIGHTS``, cache, download.

    Parameters
    ----------
    weights : path-like, optional
        A checkpoint chosen by the user; must exist (no fallback when it does not).
    name : str
        Registry entry used for the cache and the download.
    download : bool
        Whether a missing checkpoint may be downloaded.
    progress : callable, optional
        ``progress(done_bytes, total_bytes_or_None)`` during a download.

    Returns
    -------
    Path
    """
    if weights is not None:
        return _check_explicit(weights, "given path")
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        return _check_explicit(env, f"from ${ENV_WEIGHTS}")
    cached = cached_path(name)
    if cached is not None:
        return cached
    if not download:
        entry = get_entry(name)
        raise WeightsNotFoundError(
            f"the {name} checkpoint is not in the cache; run `napari-vsr weights fetch`, or "
            f"download {entry.url} yourself and run `napari-vsr weights import FILE`",
            path=cache_dir() / entry.filename,
        )
    return fetch(name, progress=progress)


def _offline_hint(entry: WeightsEntry) -> str:
    return (
        f"if this machine is offline, download {entry.url} elsewhere and run "
        "`napari-vsr weights import FILE` (or set $NAPARI_VSR_WEIGHTS to its path)"
    )


def _download(entry: WeightsEntry, part: Path, progress: ProgressCallback | None) -> None:
    """Stream ``entry.url`` into ``part``; check size and SHA-256 (the file is left in place)."""
    request = urllib.request.Request(entry.url, headers={"User-Agent": "napari-vsr"})
    h = hashlib.sha256()
    done = 0
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if progress is not None:
                progress(0, total)
            with open(part, "wb") as out:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code} {exc.reason}"
        else:
            reason = getattr(exc, "reason", None) or exc
        raise WeightsDownloadError(
            f"could not download {entry.url} ({reason}); {_offline_hint(entry)}"
        ) from exc
    except Exception as exc:  # http.client.IncompleteRead and friends
        raise WeightsDownloadError(
            f"download of {entry.url} failed ({exc!r}); {_offline_hint(entry)}"
        ) from exc
    if done != entry.size:
        raise WeightsDownloadError(
            f"download of {entry.url} was interrupted: got {done:,} of {entry.size:,} bytes; "
            f"run `napari-vsr weights fetch` again, or {_offline_hint(entry)}"
        )
    digest = h.hexdigest()
    if digest != entry.sha256:
        raise ChecksumMismatchError(
            f"the file downloaded from {entry.url} has SHA-256 {digest}, expected "
            f"{entry.sha256}; it was deleted. Try again later, or {_offline_hint(entry)}"
        )


#: ``.part`` files older than this (left by a killed process) are deleted by the next download
STALE_PART_SECONDS = 24 * 3600


def _remove_stale_parts(folder: Path, filename: str) -> None:
    now = time.time()
    for part in folder.glob(f".{filename}.*.part"):
        try:
            if now - part.stat().st_mtime > STALE_PART_SECONDS:
                part.unlink()
        except OSError:
            pass


def _install(entry: WeightsEntry, fill: Callable[[Path], None]) -> Path:
    """Create a ``.part`` file in the cache, let ``fill`` write it, rename it into place.

    The ``.part`` file is removed whatever happens in ``fill`` (errors, Ctrl-C).
    """
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / entry.filename
    _remove_stale_parts(folder, entry.filename)
    fd, tmp = tempfile.mkstemp(prefix=f".{entry.filename}.", suffix=".part", dir=folder)
    os.close(fd)
    part = Path(tmp)
    try:
        fill(part)
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


def fetch(name: str = DEFAULT_MODEL, *, progress: ProgressCallback | None = None) -> Path:
    """Download the checkpoint ``name`` into the cache unless it is already there.

    Parameters
    ----------
    name : str
        Registry entry.
    progress : callable, optional
        ``progress(done_bytes, total_bytes_or_None)``, called once at the start and after
        every chunk.

    Returns
    -------
    Path
        The cached, verified file.

    Raises
    ------
    WeightsDownloadError
        No connection, HTTP error, timeout or interrupted transfer (names the URL and how to
        place the file by hand).
    ChecksumMismatchError
        The downloaded file differs from the registry (it is not kept).
    """
    cached = cached_path(name)
    if cached is not None:
        return cached
    entry = get_entry(name)
    log.info("downloading %s from %s", entry.name, entry.url)
    dest = _install(entry, lambda part: _download(entry, part, progress))
    log.info("saved %s to %s", entry.name, dest)
    return dest


def import_weights(src: str | os.PathLike, name: str = DEFAULT_MODEL) -> Path:
    """Copy a checkpoint obtained elsewhere into the cache after checking it.

    Parameters
    ----------
    src : path-like
        The file (e.g. downloaded by hand on another machine).
    name : str
        Registry entry it must match.

    Returns
    -------
    Path
        The cached copy.

    Raises
    ------
    WeightsNotFoundError, ChecksumMismatchError
        ``src`` is missing or is not the registry's file (nothing is copied).
    """
    entry = get_entry(name)
    src = Path(src).expanduser()
    verify(src, name)
    dest = cache_dir() / entry.filename
    if dest.exists() and dest.resolve() == src.resolve():
        return dest

    def copy(part: Path) -> None:
        shutil.copyfile(src, part)
        if sha256_file(part) != entry.sha256:  # the source changed while copying
            raise ChecksumMismatchError("the copy differs from the source; try again", path=src)

    return _install(entry, copy)
