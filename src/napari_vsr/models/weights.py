"""The weights manager: a registry of released checkpoints, a user cache, verified downloads.

Resolution order for the checkpoint of a model (:func:`resolve_weights`):

1. an explicit path given by the caller;
2. the environment variable ``NAPARI_VSR_WEIGHTS``;
3. the user cache (``NAPARI_VSR_CACHE_DIR`` or the platform's cache folder, ``.../napari-vsr/weights``);
4. a download from the registry URL, written to a ``.part`` file and renamed into the cache only
   after its size and SHA-256 match the registry.  A mismatched or partial file is deleted.

A cached file is checked against the registry's size and SHA-256 each time it is used (the hash
is remembered per path, size and mtime within a process); one that no longer matches is not
used: a downloaded one is fetched again, an imported one must be imported again.

Downloads are bounded (:class:`DownloadLimits`): never more than the registry's size (the
transfer stops at the first byte past it), an overall deadline, a socket timeout and a minimum
rate over a sliding window, so a server that stalls or drips ends with a clear message.  An HTML
page served instead of the file (a moved link, a login page) is named as such.
"""

from __future__ import annotations

import errno
import hashlib
import json
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
    VsrError,
    WeightsCacheError,
    WeightsDownloadError,
    WeightsNotFoundError,
    hint,
)
from napari_vsr.jobs.progress import STAGE_DOWNLOADING, CancelToken, ProgressCallback, RateClock

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_MODEL",
    "DownloadLimits",
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


@dataclass(frozen=True)
class DownloadLimits:
    """Bounds on one download (see :func:`fetch`).

    Attributes
    ----------
    timeout_s : float
        Seconds without any data (or to connect) before giving up.
    deadline_s : float
        Seconds for the whole transfer.
    min_rate : float
        Bytes per second that must arrive, averaged over each ``window_s``.
    window_s : float
        Length of the window over which ``min_rate`` is measured.
    """

    timeout_s: float = DOWNLOAD_TIMEOUT
    deadline_s: float = 3600.0
    min_rate: float = 16 * 1024
    window_s: float = 60.0

    @classmethod
    def from_env(cls) -> DownloadLimits:
        """The defaults, each replaced by its environment variable when set:
        ``NAPARI_VSR_DOWNLOAD_TIMEOUT``, ``..._DEADLINE`` (seconds), ``..._MIN_RATE``
        (bytes per second) and ``..._WINDOW`` (seconds).

        Raises
        ------
        ParameterError
            A variable that is not a non-negative number (naming it).
        """
        values = {}
        for field_name, suffix in _LIMIT_ENV.items():
            var = f"NAPARI_VSR_DOWNLOAD_{suffix}"
            text = os.environ.get(var)
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                value = -1.0
            if not value >= 0 or value == float("inf"):
                raise ParameterError(
                    f"${var} = {text!r} is invalid; expected seconds or bytes/s >= 0"
                )
            values[field_name] = value
        return cls(**values)


_LIMIT_ENV = {
    "timeout_s": "TIMEOUT",
    "deadline_s": "DEADLINE",
    "min_rate": "MIN_RATE",
    "window_s": "WINDOW",
}

#: 30 s without data, 1 hour in all, at least 16 KiB/s over every minute
DEFAULT_LIMITS = DownloadLimits()



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


def _translate_cache_error(exc: OSError, folder: Path, doing: str) -> WeightsCacheError:
    """The one place where file-system errors of the weights cache become project errors."""
    fix = f"set ${ENV_CACHE_DIR} to a writable folder"
    if isinstance(exc, FileExistsError | NotADirectoryError) or exc.errno == errno.ENOTDIR:
        return WeightsCacheError(
            f"the weights cache folder (or a folder above it) is a file, not a folder, while "
            f"{doing}; remove that file or {fix}",
            path=folder,
        )
    if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
        return WeightsCacheError(
            f"cannot write to the weights cache folder (permission denied) while {doing}; {fix}",
            path=folder,
        )
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return WeightsCacheError(
            f"no space left on the device of the weights cache folder while {doing}; free some "
            f"space or {fix}",
            path=folder,
        )
    return WeightsCacheError(
        f"cannot use the weights cache folder ({exc.strerror or type(exc).__name__}) while "
        f"{doing}; {fix}",
        path=folder,
    )


def _check_cache_folder(folder: Path) -> None:
    """Raise :class:`WeightsCacheError` when the cache folder exists but is not a folder."""
    if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
        raise _translate_cache_error(
            NotADirectoryError(errno.ENOTDIR, "Not a directory"), folder, "looking for weights"
        )


def _origin_file(path: Path) -> Path:
    return path.with_name(path.name + ".origin.json")


def _write_origin(path: Path, how: str, source: str) -> None:
    """Record beside a cached file whether it was ``"downloaded"`` or ``"imported"``, and from
    where (read back when the file stops matching the registry)."""
    try:
        _origin_file(path).write_text(json.dumps({"how": how, "from": source}) + "\n")
    except OSError as exc:  # the checkpoint itself is in place; only the note is missing
        log.warning("could not record where %s came from: %s", path, exc)


def _read_origin(path: Path) -> dict:
    try:
        data = json.loads(_origin_file(path).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _cache_problem(entry: WeightsEntry, path: Path) -> str | None:
    """Why the cached file ``path`` (which exists) cannot be used, or None if it matches."""
    size = path.stat().st_size
    if size != entry.size:
        return f"its size is {size:,} bytes, the registry's {entry.size:,}"
    digest = sha256_file(path)
    if digest != entry.sha256:
        return f"its SHA-256 is {digest}, the registry's {entry.sha256}"
    return None


def _cached(entry: WeightsEntry) -> tuple[Path | None, str | None]:
    """``(path, None)``: a usable cached file; ``(path, why)``: a cached file that no longer
    matches (refused; an imported one raises); ``(None, None)``: nothing cached."""
    path = cache_dir() / entry.filename
    try:
        if not path.is_file():
            return None, None
        problem = _cache_problem(entry, path)
    except OSError:
        return None, None
    if problem is None:
        return path, None
    origin = _read_origin(path)
    if origin.get("how") == "imported":
        raise ChecksumMismatchError(
            f"the cached {entry.name} checkpoint no longer matches the registry ({problem}); "
            f"it was imported from {origin.get('from')}: "
            + hint("run `napari-vsr weights import FILE` again with a good copy",
                   "choose a good copy under Weights: choose file…"),
            path=path,
        )
    log.warning(
        "%s: the cached %s checkpoint no longer matches the registry (%s); it is not used",
        path,
        entry.name,
        problem,
    )
    return path, problem


def cached_path(name: str = DEFAULT_MODEL) -> Path | None:
    """The cached checkpoint of ``name``, or None if it is absent or no longer matches.

    The size and SHA-256 are checked against the registry (the hash is remembered per path,
    size and mtime, so repeated calls in a process cost one hash).  A downloaded file that no
    longer matches is not used (a warning is logged; :func:`fetch` replaces it).

    Raises
    ------
    ChecksumMismatchError
        The cached file was imported (:func:`import_weights`) and no longer matches: it
        cannot be downloaded again, so the message says to import it again.
    """
    path, problem = _cached(get_entry(name))
    return path if problem is None else None


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
    cancel: CancelToken | None = None,
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
    progress : ProgressCallback, optional
        Receives :class:`~napari_vsr.jobs.progress.Progress` records (stage "downloading
        weights", unit "bytes") during a download.
    cancel : CancelToken, optional
        Stops a download (see :func:`fetch`).

    Returns
    -------
    Path

    Raises
    ------
    WeightsNotFoundError
        An explicit or ``$NAPARI_VSR_WEIGHTS`` path that does not exist; nothing cached and
        ``download=False``.
    ChecksumMismatchError
        The cached file no longer matches the registry and cannot be fetched again here.
    WeightsCacheError
        The cache folder is a file, not writable, or out of space.
    WeightsDownloadError
        See :func:`fetch`.
    """
    if weights is not None:
        return _check_explicit(weights, "given path")
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        return _check_explicit(env, f"from ${ENV_WEIGHTS}")
    entry = get_entry(name)
    _check_cache_folder(cache_dir())
    cached, problem = _cached(entry)
    if cached is not None and problem is None:
        return cached
    if not download:
        if problem is not None:
            raise ChecksumMismatchError(
                f"the cached {name} checkpoint no longer matches the registry ({problem}); it "
                "is not used: " + hint("run `napari-vsr weights fetch` to download it again",
                                        "choose Weights: download now"),
                path=cached,
            )
        raise WeightsNotFoundError(
            f"the {name} checkpoint is not in the cache; "
            + hint(f"run `napari-vsr weights fetch`, or download {entry.url} yourself and run "
                   "`napari-vsr weights import FILE`",
                   f"choose Weights: download now, or download {entry.url} yourself and "
                   "choose it under Weights: choose file…"),
            path=cache_dir() / entry.filename,
        )
    return fetch(name, progress=progress, cancel=cancel)


def _offline_hint(entry: WeightsEntry) -> str:
    return hint(
        f"if this machine is offline, download {entry.url} elsewhere and run "
        "`napari-vsr weights import FILE` (or set $NAPARI_VSR_WEIGHTS to its path)",
        "if this machine is offline, download that file on another machine and choose it "
        "under Weights: choose file…",
    )


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:16].lower()
    return start.startswith((b"<!doctype", b"<html", b"<head", b"<?xml"))


def _translate_download_error(
    exc: BaseException, entry: WeightsEntry, limits: DownloadLimits
) -> WeightsDownloadError:
    """The one place where urllib/socket/http.client errors of a download become ours."""
    if isinstance(exc, urllib.error.HTTPError):
        reason = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
        reason = f"no data for {limits.timeout_s:g} s"
    elif isinstance(exc, urllib.error.URLError | OSError | ValueError):
        reason = getattr(exc, "reason", None) or exc
    else:  # http.client.IncompleteRead and friends
        reason = f"{type(exc).__name__}: {exc}"
    return WeightsDownloadError(
        f"could not download {entry.url} ({reason}); {_offline_hint(entry)}"
    )


def _download(
    entry: WeightsEntry,
    part: Path,
    progress: ProgressCallback | None,
    limits: DownloadLimits = DEFAULT_LIMITS,
    cancel: CancelToken | None = None,
) -> None:
    """Stream ``entry.url`` into ``part``; check size and SHA-256 (the file is left in place).

    Reads what arrives (``read1``) so that the deadline and the rate are checked between reads,
    and never asks for more than one byte past the registry size.  ``cancel`` is checked before
    every read (raising :class:`~napari_vsr.errors.Cancelled`); ``progress`` gets a record at
    the start and after every block.
    """
    request = urllib.request.Request(entry.url, headers={"User-Agent": "napari-vsr"})
    h = hashlib.sha256()
    done = 0
    folder = part.parent
    try:
        with urllib.request.urlopen(request, timeout=limits.timeout_s) as resp:
            kind = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if kind in ("text/html", "application/xhtml+xml"):
                raise WeightsDownloadError(
                    f"{entry.url} answered with an HTML page (Content-Type {kind}), not the "
                    "checkpoint: the link may have moved or need a login; "
                    f"{_offline_hint(entry)}"
                )
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > entry.size:
                raise WeightsDownloadError(
                    f"{entry.url} announces {total:,} bytes but the {entry.name} checkpoint has "
                    f"{entry.size:,}; nothing was downloaded. {_offline_hint(entry)}"
                )
            clock = RateClock(total, stage=STAGE_DOWNLOADING, unit="bytes")
            if progress is not None:
                progress(clock.progress(0))
            t0 = window_t = time.monotonic()
            window_done = 0
            with open(part, "wb") as out:
                while True:
                    if cancel is not None:
                        cancel.raise_if_cancelled()
                    chunk = resp.read1(min(_CHUNK, entry.size + 1 - done))
                    if not chunk:
                        break
                    if done == 0 and _looks_like_html(chunk):
                        raise WeightsDownloadError(
                            f"{entry.url} sent an HTML page, not the checkpoint: the link may "
                            f"have moved or need a login; {_offline_hint(entry)}"
                        )
                    done += len(chunk)
                    if done > entry.size:
                        raise WeightsDownloadError(
                            f"{entry.url} sent more than the {entry.size:,} bytes of the "
                            f"{entry.name} checkpoint; stopped there and deleted the file. "
                            f"{_offline_hint(entry)}"
                        )
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise _translate_cache_error(exc, folder, "downloading") from None
                    h.update(chunk)
                    if progress is not None:
                        progress(clock.progress(done))
                    now = time.monotonic()
                    if now - t0 > limits.deadline_s:
                        raise WeightsDownloadError(
                            f"download of {entry.url} took longer than {limits.deadline_s:g} s "
                            f"(got {done:,} of {entry.size:,} bytes); try again later, or "
                            f"{_offline_hint(entry)}"
                        )
                    if limits.min_rate > 0 and now - window_t >= max(limits.window_s, 1e-3):
                        rate = (done - window_done) / (now - window_t)
                        if rate < limits.min_rate:
                            raise WeightsDownloadError(
                                f"download of {entry.url} stalled: {rate:,.0f} bytes/s over "
                                f"the last {now - window_t:.1f} s, below the minimum of "
                                f"{limits.min_rate:,.0f} (got {done:,} of {entry.size:,} "
                                f"bytes); try again later, or {_offline_hint(entry)}"
                            )
                        window_t, window_done = now, done
    except VsrError:
        raise
    except Exception as exc:  # urllib, socket, http.client: translated in one place
        raise _translate_download_error(exc, entry, limits) from exc
    if done != entry.size:
        raise WeightsDownloadError(
            f"download of {entry.url} was interrupted: got {done:,} of {entry.size:,} bytes; "
            + hint("run `napari-vsr weights fetch` again", "try again")
            + f", or {_offline_hint(entry)}"
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


def _install(entry: WeightsEntry, fill: Callable[[Path], None], how: str, source: str) -> Path:
    """Create a ``.part`` file in the cache, let ``fill`` write it, rename it into place and
    note ``how`` (``"downloaded"``/``"imported"``) it got there and from where.

    The ``.part`` file is removed whatever happens in ``fill`` (errors, Ctrl-C).

    Raises
    ------
    WeightsCacheError
        The cache folder is a file, is not writable, or is out of space.
    """
    folder = cache_dir()
    dest = folder / entry.filename
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _check_cache_folder(folder)
        _remove_stale_parts(folder, entry.filename)
        fd, tmp = tempfile.mkstemp(prefix=f".{entry.filename}.", suffix=".part", dir=folder)
        os.close(fd)
    except OSError as exc:
        raise _translate_cache_error(exc, folder, "creating a file in it") from None
    part = Path(tmp)
    try:
        fill(part)
        try:
            os.replace(part, dest)
        except OSError as exc:
            raise _translate_cache_error(exc, folder, "moving the file into place") from None
    finally:
        part.unlink(missing_ok=True)
    _write_origin(dest, how, source)
    return dest


def fetch(
    name: str = DEFAULT_MODEL,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    limits: DownloadLimits | None = None,
) -> Path:
    """Download the checkpoint ``name`` into the cache unless it is already there (and still
    matches the registry).

    Parameters
    ----------
    name : str
        Registry entry.
    progress : ProgressCallback, optional
        Receives a :class:`~napari_vsr.jobs.progress.Progress` (stage "downloading weights",
        unit "bytes", ``total`` None without a Content-Length) at the start and after every
        block read.
    cancel : CancelToken, optional
        Checked before every block read; when set the download stops with
        :class:`~napari_vsr.errors.Cancelled` and nothing is left in the cache.
    limits : DownloadLimits, optional
        Timeout, deadline and minimum rate; default :data:`DEFAULT_LIMITS` with any
        ``$NAPARI_VSR_DOWNLOAD_*`` overrides (:meth:`DownloadLimits.from_env`).

    Returns
    -------
    Path
        The cached, verified file.

    Raises
    ------
    WeightsDownloadError
        No connection, HTTP error, timeout, stall, deadline, an HTML page, more bytes than the
        registry's size, or an interrupted transfer (names the URL and how to place the file
        by hand).
    ChecksumMismatchError
        The downloaded file differs from the registry (it is not kept), or the cached file
        was imported and no longer matches.
    WeightsCacheError
        The cache folder is a file, not writable, or out of space.
    Cancelled
        ``cancel`` was set during the download.
    """
    cached = cached_path(name)
    if cached is not None:
        return cached
    entry = get_entry(name)
    limits = limits or DownloadLimits.from_env()
    log.info("downloading %s from %s", entry.name, entry.url)
    dest = _install(
        entry, lambda part: _download(entry, part, progress, limits, cancel), "downloaded",
        entry.url,
    )
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
        try:
            shutil.copyfile(src, part)
        except OSError as exc:
            raise _translate_cache_error(exc, part.parent, f"copying {src}") from None
        if sha256_file(part) != entry.sha256:  # the source changed while copying
            raise ChecksumMismatchError("the copy differs from the source; try again", path=src)

    return _install(entry, copy, "imported", os.fspath(src.resolve()))
