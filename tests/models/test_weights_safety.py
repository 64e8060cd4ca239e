"""Downloads and checkpoints are safe: bounded size, time and rate; HTML pages named; compressed
zip members, NaN/Inf and non-float tensors refused; a cache file that no longer matches is not
used; an unusable cache folder is one line.  Against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch

from napari_vsr.errors import (
    ChecksumMismatchError,
    CorruptWeightsError,
    ParameterError,
    WeightsCacheError,
    WeightsDownloadError,
)
from napari_vsr.models import load_realbasicvsr, read_checkpoint
from napari_vsr.models import weights as wm

REPO = Path(__file__).resolve().parents[2]
SIZE = 200_000


class _Server:
    """``/ok`` the payload; ``/endless`` zeros until the client hangs up (no Content-Length);
    ``/announce`` a Content-Length 10x too big; ``/drip`` one byte every 50 ms; ``/silent``
    headers, then nothing for 3 s; ``/slow`` 2 KB every 50 ms; ``/html`` an error page as
    text/html; ``/html-octet`` the same page as application/octet-stream."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.hits: list[str] = []
        self.sent: dict[str, int] = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _head(self, kind="application/octet-stream", length=None):
                self.send_response(200)
                self.send_header("Content-Type", kind)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.flush()

            def _send(self, data: bytes) -> bool:
                try:
                    self.wfile.write(data)
                    self.wfile.flush()
                except OSError:  # the client hung up, as it should
                    return False
                outer.sent[self.path] = outer.sent.get(self.path, 0) + len(data)
                return True

            def do_GET(self):  # noqa: N802 - http.server API
                outer.hits.append(self.path)
                path, data = self.path, outer.payload
                page = b"<!DOCTYPE html>\n<html><body>Sign in to continue</body></html>\n"
                if path == "/ok":
                    self._head(length=len(data))
                    self._send(data)
                elif path == "/endless":
                    self.close_connection = True
                    self._head()
                    t0 = time.monotonic()
                    while time.monotonic() - t0 < 20 and self._send(bytes(64 * 1024)):
                        pass
                elif path == "/announce":
                    self._head(length=10 * len(data))
                    self._send(data)
                elif path in ("/drip", "/slow"):
                    self._head(length=len(data))
                    step = 1 if path == "/drip" else 2048
                    for i in range(0, min(len(data), 400 * step), step):
                        if not self._send(data[i : i + step]):
                            break
                        time.sleep(0.05)
                elif path == "/silent":
                    self._head(length=len(data))
                    time.sleep(3)
                elif path == "/html":
                    self._head("text/html; charset=utf-8", len(page))
                    self._send(page)
                elif path == "/html-octet":
                    self._head(length=len(page))
                    self._send(b"\n  " + page)
                else:
                    self.send_error(404)

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
def payload(rng) -> bytes:
    return rng.integers(0, 256, size=SIZE, dtype="uint8").tobytes()


@pytest.fixture
def server(payload):
    srv = _Server(payload)
    yield srv
    srv.close()


def _register(monkeypatch, url: str, data: bytes) -> wm.WeightsEntry:
    entry = wm.WeightsEntry(
        name="tiny",
        url=url,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        filename="tiny.bin",
    )
    monkeypatch.setitem(wm.REGISTRY, "tiny", entry)
    return entry


def _cache_listing() -> list[str]:
    folder = wm.cache_dir()
    return sorted(os.listdir(folder)) if folder.is_dir() else []


FAST = wm.DownloadLimits(timeout_s=2.0, deadline_s=10.0, min_rate=1000.0, window_s=0.3)


def _fails(monkeypatch, server, route, match, limits=FAST) -> WeightsDownloadError:
    entry = _register(monkeypatch, server.url + route, server.payload)
    t0 = time.monotonic()
    with pytest.raises(WeightsDownloadError, match=match) as info:
        wm.fetch("tiny", limits=limits)
    assert time.monotonic() - t0 < 5.0
    assert entry.url in str(info.value)
    assert _cache_listing() == []  # no .part, nothing cached
    return info.value


# --- downloads ------------------------------------------------------------------------------
def test_a_good_download_still_works_and_notes_its_origin(monkeypatch, server, payload):
    _register(monkeypatch, server.url + "/ok", payload)
    path = wm.fetch("tiny", limits=FAST)
    assert path.read_bytes() == payload
    assert _cache_listing() == ["tiny.bin", "tiny.bin.origin.json"]


def test_an_endless_body_stops_at_the_first_byte_past_the_registry_size(monkeypatch, server):
    _fails(monkeypatch, server, "/endless", f"sent more than the {SIZE:,} bytes")
    # the client hung up at once: the server did not get to send megabytes more
    assert server.sent["/endless"] < SIZE + 8 * 2**20


def test_an_announced_oversize_body_is_refused_before_reading(monkeypatch, server):
    _fails(monkeypatch, server, "/announce", f"announces {10 * SIZE:,} bytes.*nothing was")


def test_a_dripping_server_is_a_stall(monkeypatch, server):
    _fails(
        monkeypatch,
        server,
        "/drip",
        r"stalled: \d+ bytes/s over the last 0.\d s, below the minimum of 1,000",
    )


def test_limits_from_the_environment(monkeypatch, server):
    monkeypatch.setenv("NAPARI_VSR_DOWNLOAD_MIN_RATE", "1000")
    monkeypatch.setenv("NAPARI_VSR_DOWNLOAD_WINDOW", "0.3")
    assert wm.DownloadLimits.from_env() == wm.DownloadLimits(min_rate=1000.0, window_s=0.3)
    _fails(monkeypatch, server, "/drip", "stalled", limits=None)
    monkeypatch.setenv("NAPARI_VSR_DOWNLOAD_DEADLINE", "soon")
    with pytest.raises(ParameterError, match=r"\$NAPARI_VSR_DOWNLOAD_DEADLINE = 'soon'"):
        wm.fetch("tiny")


def test_a_silent_server_times_out(monkeypatch, server):
    limits = wm.DownloadLimits(timeout_s=0.5, deadline_s=10.0, min_rate=0.0, window_s=60.0)
    _fails(monkeypatch, server, "/silent", r"no data for 0.5 s", limits)


def test_the_overall_deadline(monkeypatch, server):
    limits = wm.DownloadLimits(timeout_s=2.0, deadline_s=0.5, min_rate=100.0, window_s=0.2)
    _fails(monkeypatch, server, "/slow", r"took longer than 0.5 s \(got [\d,]+ of", limits)


def test_html_pages_are_named(monkeypatch, server):
    _fails(monkeypatch, server, "/html", r"HTML page \(Content-Type text/html\)")
    _fails(monkeypatch, server, "/html-octet", r"sent an HTML page, not the checkpoint")


# --- the cache ------------------------------------------------------------------------------
def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(1, 1))  # a different mtime: the remembered hash does not apply


def test_a_downloaded_cache_file_that_no_longer_matches_is_fetched_again(
    monkeypatch, server, payload
):
    _register(monkeypatch, server.url + "/ok", payload)
    path = wm.fetch("tiny")
    _flip_a_byte(path)
    assert wm.cached_path("tiny") is None
    with pytest.raises(ChecksumMismatchError, match="no longer matches.*SHA-256.*weights fetch"):
        wm.resolve_weights(name="tiny", download=False)
    assert wm.resolve_weights(name="tiny") == path  # downloaded again, replaced
    assert path.read_bytes() == payload
    assert server.hits == ["/ok", "/ok"]


def test_an_imported_cache_file_that_no_longer_matches_asks_for_a_new_import(
    monkeypatch, tmp_path, payload
):
    _register(monkeypatch, "http://127.0.0.1:9/never", payload)
    src = tmp_path / "by-hand.bin"
    src.write_bytes(payload)
    path = wm.import_weights(src, "tiny")
    _flip_a_byte(path)
    with pytest.raises(ChecksumMismatchError, match="imported from .*weights import FILE") as e:
        wm.resolve_weights(name="tiny")
    assert str(src) in str(e.value) and str(path) in str(e.value)


def test_cache_folder_that_is_a_file(monkeypatch, server, payload, tmp_path):
    _register(monkeypatch, server.url + "/ok", payload)
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("x")
    for where in (blocker, blocker / "weights"):
        monkeypatch.setenv("NAPARI_VSR_CACHE_DIR", str(where))
        with pytest.raises(WeightsCacheError, match="is a file, not a folder") as info:
            wm.fetch("tiny")
        assert str(where) in str(info.value)
        with pytest.raises(WeightsCacheError):
            wm.resolve_weights(name="tiny")
    assert server.hits == []  # refused before any download


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_cache_folder(monkeypatch, payload, tmp_path):
    _register(monkeypatch, "http://127.0.0.1:9/never", payload)
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    monkeypatch.setenv("NAPARI_VSR_CACHE_DIR", str(folder))
    src = tmp_path / "w.bin"
    src.write_bytes(payload)
    with pytest.raises(WeightsCacheError, match="permission denied") as info:
        wm.import_weights(src, "tiny")
    assert str(folder) in str(info.value)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "napari_vsr", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def test_cli_cache_folder_that_is_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("x")
    done = _cli("weights", "fetch", "-q", env={"NAPARI_VSR_CACHE_DIR": str(blocker)})
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"{blocker}: the weights cache folder" in done.stderr


# --- checkpoint files -----------------------------------------------------------------------
def _deflate(src: Path, dest: Path, *, extra: bytes = b"") -> None:
    """Rewrite a ``torch.save`` zip with every member deflated (plus an optional extra one)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info), compress_type=zipfile.ZIP_DEFLATED)
        if extra:
            prefix = zin.namelist()[0].split("/")[0]
            zout.writestr(f"{prefix}/data/99", extra, compress_type=zipfile.ZIP_DEFLATED)


def test_compressed_members_are_refused_before_torch_reads_them(tmp_path, monkeypatch):
    plain = tmp_path / "plain.pth"
    torch.save({"w": torch.ones(4, 4)}, plain)
    bomb = tmp_path / "bomb.pth"
    _deflate(plain, bomb, extra=bytes(64 * 2**20))  # 64 MiB of zeros in ~64 KB
    assert bomb.stat().st_size < 2**20
    assert torch.load(plain, weights_only=True)["w"].shape == (4, 4)

    def never(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", never)
    with pytest.raises(CorruptWeightsError, match=r"member '.*' is compressed \(deflate\)") as e:
        read_checkpoint(bomb)
    assert str(bomb) in str(e.value)


def test_pytorchs_advice_is_not_passed_on(tmp_path):
    path = tmp_path / "objects.pth"
    torch.save({"w": torch.ones(2), "opt": zipfile.ZipInfo("x")}, path)
    with pytest.raises(CorruptWeightsError, match=r"Python objects \(zipfile.ZipInfo\)") as e:
        read_checkpoint(path)
    text = str(e.value)
    assert "weights_only" not in text and "torch.load" not in text and "\n" not in text


def test_truncated_zip_message_is_ours(tmp_path):
    path = tmp_path / "half.pth"
    torch.save({"w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CorruptWeightsError, match="truncated or damaged") as e:
        read_checkpoint(path)
    assert "miniz" not in str(e.value) and "internal" not in str(e.value)


@pytest.fixture
def golden_state(golden_ema) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in golden_ema.items()}


def test_nan_weights_are_refused_at_load(tmp_path, golden_state):
    key = next(k for k in golden_state if k.endswith("weight"))
    golden_state[key].view(-1)[:3] = float("nan")
    golden_state[key].view(-1)[3] = float("inf")
    path = tmp_path / "nan.pth"
    torch.save({"params": golden_state}, path)
    with pytest.raises(CorruptWeightsError, match=rf"NaN or infinite values: {key} \(4 of"):
        load_realbasicvsr(path)


def test_integer_weights_are_refused_at_load(tmp_path, golden_state):
    key = next(k for k in golden_state if k.endswith("bias"))
    golden_state[key] = golden_state[key].round().to(torch.int32)
    path = tmp_path / "int.pth"
    torch.save({"params": golden_state}, path)
    with pytest.raises(CorruptWeightsError, match=rf"not floating point: {key} \(int32\)"):
        load_realbasicvsr(path)


def test_cli_enhance_with_nan_weights_is_one_line_and_no_output(tmp_path, golden_state):
    import importlib.util

    spec = importlib.util.spec_from_file_location("clips", REPO / "tests/engine/clips.py")
    clips = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(clips)
    clip = clips.make_video(tmp_path / "clip.mp4", 2, height=32, width=32)
    for v in golden_state.values():
        v.fill_(float("nan"))
    weights = tmp_path / "nan.pth"
    torch.save(golden_state, weights)
    out = tmp_path / "out" / "x4.mp4"
    out.parent.mkdir()
    done = _cli("enhance", str(clip), "-o", str(out), "--weights", str(weights), "-q")
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"{weights}: " in done.stderr and "NaN" in done.stderr
    assert list(out.parent.iterdir()) == []
