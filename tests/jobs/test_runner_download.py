"""A job whose checkpoint downloads: live progress before the job starts, and cancel."""

from __future__ import annotations

import hashlib
import http.server
import threading

import numpy as np
import pytest
import tifffile

from napari_vsr.errors import Cancelled
from napari_vsr.jobs.progress import STAGE_DOWNLOADING, CancelToken, Progress
from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions
from napari_vsr.jobs.runner import JobStarted, run, run_job
from napari_vsr.models import weights as wm


@pytest.fixture
def checkpoint_server(golden_dir, monkeypatch):
    """The golden checkpoint served on 127.0.0.1 as the default model, in small blocks."""
    data = (golden_dir / "realbasicvsr_random_mmedit_layout.pth").read_bytes()
    gate = threading.Event()
    gate.set()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for i in range(0, len(data), 256 * 1024):
                gate.wait(30)
                self.wfile.write(data[i : i + 256 * 1024])

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/w.pth"
    entry = wm.WeightsEntry(name=wm.DEFAULT_MODEL, url=url, size=len(data),
                            sha256=hashlib.sha256(data).hexdigest(), filename="w.pth")
    monkeypatch.setitem(wm.REGISTRY, wm.DEFAULT_MODEL, entry)
    monkeypatch.setattr(wm, "_CHUNK", 64 * 1024)
    yield gate
    gate.set()
    httpd.shutdown()
    httpd.server_close()


def _request(tmp_path, golden_dir) -> JobRequest:
    frames = np.load(golden_dir / "input_rgb_uint8.npy")[:2, :16, :16]
    tifffile.imwrite(tmp_path / "in.tif", frames, photometric="rgb")
    return JobRequest(source=tmp_path / "in.tif", output=tmp_path / "out.tif",
                      method=MethodOptions(device="cpu", precision="fp32"),
                      engine=EngineOptions(chunk=2, overlap=0))


def test_download_progress_is_live_before_the_job_starts(tmp_path, golden_dir,
                                                         checkpoint_server):
    seen = []
    run(_request(tmp_path, golden_dir), on_event=seen.append)
    started = next(i for i, e in enumerate(seen) if isinstance(e, JobStarted))
    downloads = [e for e in seen[:started]
                 if isinstance(e, Progress) and e.stage == STAGE_DOWNLOADING]
    assert len(downloads) > 2 and downloads[-1].unit == "bytes"
    assert downloads[0].done < downloads[-1].done == downloads[-1].total
    assert (tmp_path / "out.tif").is_file()


def test_cancel_during_the_download(tmp_path, golden_dir, checkpoint_server):
    cancel = CancelToken()
    gen = run_job(_request(tmp_path, golden_dir), cancel)
    for event in gen:
        if isinstance(event, Progress) and event.stage == STAGE_DOWNLOADING and event.done:
            checkpoint_server.clear()  # the server stalls: only cancel can end this
            cancel.cancel()
            checkpoint_server.set()
            break
    with pytest.raises(Cancelled):
        for _ in gen:
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]
    assert not any(wm.cache_dir().glob("*.pth"))
