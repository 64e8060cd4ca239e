"""``napari-vsr weights ...`` through the real command-line entry point."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from napari_vsr.cli import main
from napari_vsr.models import weights as wm


@pytest.fixture
def payload(rng) -> bytes:
    return rng.integers(0, 256, size=50_000, dtype="uint8").tobytes()


@pytest.fixture
def tiny(monkeypatch, payload):
    """Register a small entry named "tiny" served by a local HTTP server."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    entry = wm.WeightsEntry(
        name="tiny",
        url=f"http://127.0.0.1:{httpd.server_address[1]}/tiny.bin",
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        filename="tiny.bin",
    )
    monkeypatch.setitem(wm.REGISTRY, "tiny", entry)
    yield entry
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_path_when_nothing_is_cached(capsys):
    assert main(["weights", "path"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("napari-vsr weights: error: ")
    assert "weights fetch" in err and "weights import FILE" in err
    assert len(err.strip().splitlines()) == 1


def test_path_follows_the_env_variable(capsys, monkeypatch, tmp_path):
    f = tmp_path / "mine.pth"
    f.write_bytes(b"x")
    monkeypatch.setenv("NAPARI_VSR_WEIGHTS", str(f))
    assert main(["weights", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(f)


def test_fetch_then_path_then_verify(capsys, tiny, payload):
    assert main(["weights", "fetch", "--name", "tiny", "--quiet"]) == 0
    cached = wm.cache_dir() / tiny.filename
    assert capsys.readouterr().out.strip() == str(cached)
    assert cached.read_bytes() == payload
    assert main(["weights", "path", "--name", "tiny"]) == 0
    assert capsys.readouterr().out.strip() == str(cached)
    assert main(["weights", "verify", "--name", "tiny"]) == 0
    assert tiny.sha256 in capsys.readouterr().out


def test_verify_and_import_a_file(capsys, tiny, payload, tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(payload[:-3] + b"abc")
    assert main(["weights", "verify", "--name", "tiny", str(bad)]) == 1
    assert "SHA-256" in capsys.readouterr().err
    assert main(["weights", "import", "--name", "tiny", str(bad)]) == 1
    assert not (wm.cache_dir() / tiny.filename).exists()

    good = tmp_path / "good.bin"
    good.write_bytes(payload)
    assert main(["weights", "import", "--name", "tiny", str(good)]) == 0
    dest = wm.cache_dir() / tiny.filename
    assert capsys.readouterr().out.strip() == str(dest)
    assert dest.read_bytes() == payload


def test_import_of_a_missing_file(capsys, tmp_path):
    assert main(["weights", "import", str(tmp_path / "nope.pth")]) == 1
    assert "nope.pth" in capsys.readouterr().err


def test_unknown_model_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["weights", "path", "--name", "nope"])
    assert info.value.code == 2
