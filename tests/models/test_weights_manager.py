"""The weights manager against a real HTTP server on 127.0.0.1 started by the tests."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
from pathlib import Path

import pytest
import torch

from napari_vsr.errors import (
    Cancelled,
    ChecksumMismatchError,
    ParameterError,
    WeightsDownloadError,
    WeightsNotFoundError,
)
from napari_vsr.jobs.progress import CancelToken, Progress, format_progress
from napari_vsr.models import load_realbasicvsr
from napari_vsr.models import weights as wm


class _Server:
    """A threaded HTTP server: ``files[path] = bytes``; ``/cut/...`` stops half way."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.hits: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                outer.hits.append(self.path)
                name = self.path.removeprefix("/cut")
                data = outer.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.path.startswith("/cut"):
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                else:
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture
def payload(rng) -> bytes:
    return rng.integers(0, 256, size=300_000, dtype="uint8").tobytes()


def _register(monkeypatch, name, url, data, *, sha=None) -> wm.WeightsEntry:
    entry = wm.WeightsEntry(
        name=name,
        url=url,
        size=len(data),
        sha256=sha or hashlib.sha256(data).hexdigest(),
        filename=f"{name}.bin",
    )
    monkeypatch.setitem(wm.REGISTRY, name, entry)
    return entry


def _cache_files() -> list[str]:
    """The cache's files, less the notes of where each checkpoint came from."""
    folder = wm.cache_dir()
    names = os.listdir(folder) if folder.exists() else []
    return sorted(n for n in names if not n.endswith(".origin.json"))


def test_cache_dir_follows_env_then_platform(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_VSR_CACHE_DIR", str(tmp_path / "c"))
    assert wm.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("NAPARI_VSR_CACHE_DIR")
    assert wm.cache_dir().parts[-2:] == ("napari-vsr", "weights")


def test_registry_entry_of_the_released_model():
    entry = wm.REGISTRY[wm.DEFAULT_MODEL]
    assert entry.size == 148_239_017
    assert entry.sha256.startswith("52f77c2c")
    assert entry.url.endswith(entry.filename)


def test_unknown_model_name():
    with pytest.raises(ParameterError, match="known models: realbasicvsr_x4"):
        wm.cached_path("nope")


def test_fetch_success_with_progress(server, payload, monkeypatch):
    server.files["/w.bin"] = payload
    entry = _register(monkeypatch, "tiny", server.url + "/w.bin", payload)
    monkeypatch.setattr(wm, "_CHUNK", 64 * 1024)
    records: list[Progress] = []
    path = wm.fetch("tiny", progress=records.append)
    assert path == wm.cache_dir() / entry.filename
    assert path.read_bytes() == payload
    assert _cache_files() == [entry.filename]  # no .part left
    assert all(isinstance(p, Progress) for p in records)
    assert {(p.stage, p.unit, p.total) for p in records} == {
        ("downloading weights", "bytes", len(payload))
    }
    calls = [p.done for p in records]
    assert calls[0] == 0 and calls[-1] == len(payload)
    # several records before the end, in order
    assert len([d for d in calls if 0 < d < len(payload)]) >= 2 and calls == sorted(calls)
    assert format_progress(records[-1]).startswith("downloading weights: 0.3 MB")
    # now cached: no second request, and resolution finds it
    assert wm.fetch("tiny") == path
    assert wm.resolve_weights(name="tiny", download=False) == path
    assert server.hits == ["/w.bin"]


def test_fetch_cancelled_mid_download_leaves_nothing(server, payload, monkeypatch):
    server.files["/w.bin"] = payload
    _register(monkeypatch, "tiny", server.url + "/w.bin", payload)
    monkeypatch.setattr(wm, "_CHUNK", 16 * 1024)
    token = CancelToken()
    seen: list[int] = []

    def progress(p: Progress) -> None:
        seen.append(p.done)
        if p.done >= 32 * 1024:
            token.cancel()

    with pytest.raises(Cancelled):
        wm.fetch("tiny", progress=progress, cancel=token)
    # stopped at the next block read, half way, with nothing in the cache (no .part either)
    assert 32 * 1024 <= seen[-1] < len(payload)
    folder = wm.cache_dir()
    assert (sorted(os.listdir(folder)) if folder.exists() else []) == []
    assert wm.cached_path("tiny") is None
    # a token cancelled before the start: nothing is kept
    with pytest.raises(Cancelled):
        wm.resolve_weights(name="tiny", cancel=token)
    assert (sorted(os.listdir(folder)) if folder.exists() else []) == []
    # and a fresh token downloads it
    assert wm.fetch("tiny", cancel=CancelToken()).read_bytes() == payload


def test_stale_part_files_are_cleaned_up(server, payload, monkeypatch):
    server.files["/w.bin"] = payload
    entry = _register(monkeypatch, "tiny", server.url + "/w.bin", payload)
    folder = wm.cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stale = folder / f".{entry.filename}.old.part"
    fresh = folder / f".{entry.filename}.busy.part"  # maybe another process downloading
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(stale, (1, 1))
    wm.fetch("tiny")
    assert not stale.exists() and fresh.exists()


def test_checksum_mismatch_keeps_nothing(server, payload, monkeypatch):
    server.files["/w.bin"] = payload
    _register(monkeypatch, "tiny", server.url + "/w.bin", payload, sha="0" * 64)
    with pytest.raises(ChecksumMismatchError, match="it was deleted"):
        wm.fetch("tiny")
    assert _cache_files() == []
    assert wm.cached_path("tiny") is None


def test_interrupted_transfer_leaves_no_usable_file(server, payload, monkeypatch):
    server.files["/w.bin"] = payload
    entry = _register(monkeypatch, "tiny", server.url + "/cut/w.bin", payload)
    with pytest.raises(WeightsDownloadError, match="interrupted: got 150,000 of 300,000") as info:
        wm.fetch("tiny")
    assert entry.url in str(info.value)
    assert _cache_files() == []
    with pytest.raises(WeightsNotFoundError):
        wm.resolve_weights(name="tiny", download=False)


def test_http_error_names_the_url(server, payload, monkeypatch):
    entry = _register(monkeypatch, "tiny", server.url + "/missing.bin", payload)
    with pytest.raises(WeightsDownloadError, match="HTTP 404") as info:
        wm.fetch("tiny")
    assert entry.url in str(info.value)
    assert _cache_files() == []


def test_server_down_gives_the_offline_remedy(payload, monkeypatch):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/w.bin"
    _register(monkeypatch, "tiny", url, payload)
    with pytest.raises(WeightsDownloadError) as info:
        wm.resolve_weights(name="tiny")
    msg = str(info.value)
    assert url in msg and "napari-vsr weights import FILE" in msg
    assert isinstance(info.value, ConnectionError)
    assert _cache_files() == []


def test_resolution_order(tmp_path, payload, monkeypatch):
    entry = _register(monkeypatch, "tiny", "http://127.0.0.1:9/never", payload)
    explicit = tmp_path / "explicit.bin"
    explicit.write_bytes(b"x")
    from_env = tmp_path / "env.bin"
    from_env.write_bytes(b"y")
    cached = wm.cache_dir() / entry.filename
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(payload)

    assert wm.resolve_weights(name="tiny") == cached
    monkeypatch.setenv("NAPARI_VSR_WEIGHTS", str(from_env))
    assert wm.resolve_weights(name="tiny") == from_env
    assert wm.resolve_weights(explicit, name="tiny") == explicit
    # an explicit path that does not exist is an error, not a reason to fall back
    with pytest.raises(WeightsNotFoundError, match="given path"):
        wm.resolve_weights(tmp_path / "missing.bin", name="tiny")
    monkeypatch.setenv("NAPARI_VSR_WEIGHTS", str(tmp_path / "gone.bin"))
    with pytest.raises(WeightsNotFoundError, match="NAPARI_VSR_WEIGHTS"):
        wm.resolve_weights(name="tiny")


def test_cache_file_of_the_wrong_size_is_ignored(payload, monkeypatch):
    entry = _register(monkeypatch, "tiny", "http://127.0.0.1:9/never", payload)
    stale = wm.cache_dir() / entry.filename
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(payload[:10])
    assert wm.cached_path("tiny") is None
    with pytest.raises(ChecksumMismatchError, match="size is 10 bytes.*weights fetch"):
        wm.resolve_weights(name="tiny", download=False)


def test_verify(tmp_path, payload, monkeypatch):
    _register(monkeypatch, "tiny", "http://127.0.0.1:9/never", payload)
    good = tmp_path / "good.bin"
    good.write_bytes(payload)
    assert wm.verify(good, "tiny") == hashlib.sha256(payload).hexdigest()
    short = tmp_path / "short.bin"
    short.write_bytes(payload[:-1])
    with pytest.raises(ChecksumMismatchError, match="size"):
        wm.verify(short, "tiny")
    flipped = tmp_path / "flipped.bin"
    flipped.write_bytes(bytes([payload[0] ^ 1]) + payload[1:])
    with pytest.raises(ChecksumMismatchError, match="SHA-256"):
        wm.verify(flipped, "tiny")
    with pytest.raises(WeightsNotFoundError):
        wm.verify(tmp_path / "none.bin", "tiny")


def test_import_weights(tmp_path, payload, monkeypatch):
    entry = _register(monkeypatch, "tiny", "http://127.0.0.1:9/never", payload)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(payload[::-1])
    with pytest.raises(ChecksumMismatchError):
        wm.import_weights(bad, "tiny")
    assert _cache_files() == []
    src = tmp_path / "downloaded.bin"
    src.write_bytes(payload)
    dest = wm.import_weights(src, "tiny")
    assert dest == wm.cache_dir() / entry.filename
    assert dest.read_bytes() == payload and src.exists()
    assert _cache_files() == [entry.filename]
    assert wm.import_weights(dest, "tiny") == dest  # importing the cached file is a no-op


def test_sha256_file(tmp_path, payload):
    path = tmp_path / "f.bin"
    path.write_bytes(payload)
    assert wm.sha256_file(path) == hashlib.sha256(payload).hexdigest()
    path.write_bytes(payload[:5])
    os.utime(path, ns=(1, 1))
    assert wm.sha256_file(path) == hashlib.sha256(payload[:5]).hexdigest()


def test_load_realbasicvsr_downloads_through_the_registry(
    server, golden_ckpt: Path, golden_ema, monkeypatch
):
    data = golden_ckpt.read_bytes()
    server.files["/rbvsr.pth"] = data
    _register(monkeypatch, wm.DEFAULT_MODEL, server.url + "/rbvsr.pth", data)
    net = load_realbasicvsr()
    assert Path(net.weights_path).parent == wm.cache_dir()
    assert net.weights_sha256 == hashlib.sha256(data).hexdigest()
    assert torch.equal(
        net.state_dict()["basicvsr.conv_last.weight"], golden_ema["basicvsr.conv_last.weight"]
    )
    # the second load uses the cache
    load_realbasicvsr()
    assert server.hits == ["/rbvsr.pth"]


def test_load_realbasicvsr_uses_the_env_variable(golden_ckpt, monkeypatch):
    monkeypatch.setenv("NAPARI_VSR_WEIGHTS", str(golden_ckpt))
    assert load_realbasicvsr().weights_path == str(golden_ckpt)
