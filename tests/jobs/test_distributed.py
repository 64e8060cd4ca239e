"""Jobs on Dask: real clusters on 127.0.0.1 (a LocalCluster of worker processes, and an external
``dask scheduler`` + ``dask worker``), compared with the single-process run frame for frame."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_vsr.errors import Cancelled, SchedulerError, SegmentTaskError
from napari_vsr.jobs.progress import CancelToken
from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions
from napari_vsr.jobs.runner import SegmentDone, run, run_job
from napari_vsr.jobs.state import JobDir, default_job_dir

distributed = pytest.importorskip("distributed")

SRC = Path(__file__).resolve().parents[2] / "src"
CLASSIC = MethodOptions(method="classic", preset="temporal-denoise")
#: 12 frames of 640x360 in six segments of one 2-frame chunk
FRAMES = (3, 15)


def _env() -> dict[str, str]:
    """The environment of a worker or CLI subprocess: this worktree's package first."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), path]))}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(source, out, **kwargs) -> JobRequest:
    base = dict(source=source, output=out, method=CLASSIC, engine=EngineOptions(chunk=2),
                segment=2, frame_range=FRAMES)
    return JobRequest(**{**base, **kwargs})


def _events(request: JobRequest):
    seen: list = []
    result = run(request, on_event=seen.append)
    return result, [e for e in seen if isinstance(e, SegmentDone)]


@pytest.fixture(scope="module")
def expected(sample_frames_dir, tmp_path_factory) -> np.ndarray:
    """The single-process result of the classic job."""
    out = tmp_path_factory.mktemp("single") / "out.tif"
    run(_request(sample_frames_dir, out))
    return tifffile.imread(out)


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of two worker processes (its nanny restarts a killed worker) and a client
    of it; the tests pass its address as an external scheduler."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as c, \
            distributed.Client(c) as client:
        client.wait_for_workers(2, timeout=120)
        yield c.scheduler_address, client


def _idle(client, timeout=60.0) -> None:
    """Wait until no task of an earlier job runs on the cluster (a cancelled external job's
    running segment still finishes), and the workers are back to two."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.scheduler_info(n_workers=-1)
        busy = any(client.processing().values())
        if not busy and len(info["workers"]) == 2:
            return
        time.sleep(0.2)
    raise AssertionError("the cluster did not become idle")


# --- results equal the single process -----------------------------------------------------------
def test_local_cluster_equals_the_single_process(tmp_path, sample_frames_dir, expected):
    out = tmp_path / "out.tif"
    environ = dict(os.environ)
    result, done = _events(_request(sample_frames_dir, out, scheduler="local:2"))
    assert dict(os.environ) == environ  # the workers' thread settings stay theirs
    assert result.segments_computed == 6 and result.segments_reused == 0
    assert sorted(e.index for e in done) == list(range(6)) and all(e.computed for e in done)
    assert all(e.worker.startswith("tcp://127.0.0.1:") for e in done)
    np.testing.assert_array_equal(tifffile.imread(out), expected)
    assert not default_job_dir(out).exists()


@pytest.fixture
def one_torch_thread():
    """A CPU network's float sums depend on how many threads split them (a pixel may differ by
    one level): the cluster's workers run one thread each (Dask's OMP_NUM_THREADS=1), and so
    does the reference run here."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_realbasicvsr_on_workers_equals_the_single_process(tmp_path, golden_dir, cluster,
                                                           one_torch_thread):
    import torch

    assert set(cluster[1].run(torch.get_num_threads).values()) == {1}
    frames = np.load(golden_dir / "input_rgb_uint8.npy")[:, :24, :32]  # 6 real frames
    tifffile.imwrite(tmp_path / "in.tif", frames, photometric="rgb")
    method = MethodOptions(weights=str(golden_dir / "realbasicvsr_random_mmedit_layout.pth"),
                           device="cpu", precision="fp32")
    outs = {}
    for name, scheduler in (("single", None), ("dask", cluster[0])):
        outs[name] = tmp_path / f"{name}.tif"
        result = run(JobRequest(source=tmp_path / "in.tif", output=outs[name], method=method,
                                engine=EngineOptions(chunk=2, overlap=2), segment=2,
                                scheduler=scheduler))
        assert result.segments_computed == 3
    single, dask = tifffile.imread(outs["single"]), tifffile.imread(outs["dask"])
    assert dask.shape == (6, 96, 128, 3)
    np.testing.assert_array_equal(dask, single)


# --- failures -----------------------------------------------------------------------------------
def test_a_killed_worker_is_replaced_and_the_job_completes(tmp_path, sample_frames_dir,
                                                           expected, cluster):
    address, client = cluster
    _idle(client)
    out = tmp_path / "out.tif"
    gen = run_job(_request(sample_frames_dir, out, scheduler=address))
    seen, killed = [], None
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        seen.append(event)
        if isinstance(event, SegmentDone) and killed is None:
            pids = client.run(os.getpid)
            victim = next(a for a in pids if a != event.worker)  # the other one: busy
            killed = pids[victim]
            os.kill(killed, signal.SIGKILL)
    assert killed is not None
    assert result.segments_computed == 6
    assert sorted(e.index for e in seen if isinstance(e, SegmentDone)) == list(range(6))
    np.testing.assert_array_equal(tifffile.imread(out), expected)
    _idle(client)  # the nanny restarted it
    assert killed not in client.run(os.getpid).values()


def test_a_failing_task_names_the_segment_and_the_worker(tmp_path, sample_frames_dir, cluster):
    address, client = cluster
    out = tmp_path / "out.tif"
    run(_request(sample_frames_dir, out, frame_range=(0, 4), keep_job=True))
    job = JobDir(default_job_dir(out))
    manifest = job.read_manifest()
    manifest["source"]["path"] = str(tmp_path / "moved-away")
    from napari_vsr.jobs.manifest import manifest_segments
    from napari_vsr.jobs.state import write_json_durably

    write_json_durably(job.path / "manifest.json", manifest)
    for seg_file in job.path.glob("segment-*.npy"):
        seg_file.unlink()
    from napari_vsr.jobs.distributed import run_distributed

    with pytest.raises(SegmentTaskError) as info:
        list(run_distributed(job, manifest_segments(manifest), address, cancel=CancelToken()))
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("segment ") and "failed on worker tcp://127.0.0.1:" in text
    assert "moved-away" in text and "shared filesystem" in text
    assert isinstance(info.value.__cause__, FileNotFoundError)  # the worker's error, unpickled


def test_cancel_stops_every_task(tmp_path, sample_frames_dir, cluster):
    address, client = cluster
    _idle(client)
    out = tmp_path / "out.tif"
    cancel = CancelToken()
    gen = run_job(_request(sample_frames_dir, out, scheduler=address, frame_range=(0, 30)),
                  cancel)
    with pytest.raises(Cancelled):
        for event in gen:
            if isinstance(event, SegmentDone):
                cancel.cancel()
    _idle(client)
    assert not client.who_has()  # no task of the job is left on the cluster
    done = len(list(default_job_dir(out).glob("segment-*.npy")))
    assert 1 <= done < 15 and not out.exists()


def test_unreachable_scheduler_is_one_line(tmp_path, sample_frames_dir, monkeypatch):
    import napari_vsr.jobs.distributed as dist

    monkeypatch.setattr(dist, "CONNECT_TIMEOUT_S", 1.0)
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(SchedulerError) as info:
        run(_request(sample_frames_dir, tmp_path / "out.tif", scheduler=address))
    assert str(info.value).startswith(f"--scheduler: cannot reach the Dask scheduler at {address}")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing to resume: the job folder is gone


# --- resume across the two ways of running ------------------------------------------------------
def _interrupt_after_first_segment(request: JobRequest) -> None:
    gen = run_job(request)
    for event in gen:  # like a kill after the first committed segment
        if isinstance(event, SegmentDone):
            break
    gen.close()


def test_a_distributed_job_resumes_locally(tmp_path, sample_frames_dir, expected):
    import psutil

    out = tmp_path / "out.tif"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    _interrupt_after_first_segment(_request(sample_frames_dir, out, scheduler="local:2"))
    # closing the job closed its cluster: no worker process is left
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    psutil.wait_procs(left, timeout=30)
    assert not [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    committed = len(list(default_job_dir(out).glob("segment-*.npy")))
    assert 1 <= committed < 6
    result, done = _events(_request(sample_frames_dir, out, resume=True))
    assert (result.segments_reused, result.segments_computed) == (committed, 6 - committed)
    assert sum(not e.computed for e in done) == committed
    np.testing.assert_array_equal(tifffile.imread(out), expected)


def test_a_local_job_resumes_on_dask(tmp_path, sample_frames_dir, expected, cluster):
    address, client = cluster
    _idle(client)
    out = tmp_path / "out.tif"
    _interrupt_after_first_segment(_request(sample_frames_dir, out))
    assert [p.name for p in default_job_dir(out).glob("segment-*.npy")] == ["segment-000000.npy"]
    result, done = _events(_request(sample_frames_dir, out, resume=True, scheduler=address))
    assert (result.segments_reused, result.segments_computed) == (1, 5)
    assert [e.worker for e in done if not e.computed] == [None]
    assert all(e.worker.startswith("tcp://") for e in done if e.computed)
    np.testing.assert_array_equal(tifffile.imread(out), expected)


# --- the command line against an external scheduler ---------------------------------------------
def _dask_command(*args: str) -> list[str]:
    dask = Path(sys.executable).parent / "dask"
    if dask.exists():
        return [str(dask), *args]
    module = {"scheduler": "dask_scheduler", "worker": "dask_worker"}[args[0]]
    return [sys.executable, "-m", f"distributed.cli.{module}", *args[1:]]


@pytest.fixture
def external_scheduler(tmp_path):
    """``dask scheduler`` and one ``dask worker`` as subprocesses, killed by pid at the end."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    try:
        procs.append(subprocess.Popen(
            _dask_command("scheduler", "--host", "127.0.0.1", "--port", str(port),
                          "--no-dashboard"),
            env=_env(), stdout=subprocess.DEVNULL, stderr=open(logs / "scheduler.log", "w")))
        procs.append(subprocess.Popen(
            _dask_command("worker", address, "--nthreads", "1", "--no-dashboard", "--host",
                          "127.0.0.1", "--no-nanny"),
            env=_env(), stdout=subprocess.DEVNULL, stderr=open(logs / "worker.log", "w")))
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(timeout=30)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "napari_vsr", *args], capture_output=True,
                          text=True, timeout=300, env=_env())


def test_cli_runs_on_an_external_scheduler(tmp_path, sample_frames_dir, expected,
                                           external_scheduler):
    out = tmp_path / "out.tif"
    done = _cli("enhance", str(sample_frames_dir), "-o", str(out), "--method", "classic",
                "--preset", "temporal-denoise", "--chunk", "2", "--segment", "2",
                "--frames", f"{FRAMES[0]}:{FRAMES[1]}", "--scheduler", external_scheduler,
                "-q")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [f"wrote 12 frames to {out}"]  # no Dask chatter
    np.testing.assert_array_equal(tifffile.imread(out), expected)
    # the scheduler keeps running for the next job
    with distributed.Client(external_scheduler, timeout=30) as client:
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == 1


def test_cli_unreachable_scheduler_exits_1_with_one_line(tmp_path, sample_frames_dir):
    address = f"tcp://127.0.0.1:{_free_port()}"
    done = _cli("enhance", str(sample_frames_dir), "-o", str(tmp_path / "out.tif"),
                "--method", "classic", "--frames", "0:2", "--scheduler", address, "-q")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    assert lines[0].startswith("napari-vsr enhance: error: --scheduler: cannot reach the Dask "
                               f"scheduler at {address}")


# --- GPU pinning (the mechanism, checked without GPUs) ------------------------------------------
def test_local_workers_are_pinned_to_their_own_gpu():
    from napari_vsr.jobs.distributed import start_local_cluster, worker_envs

    envs = worker_envs(2, ["3", "5"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["3", "5"]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in worker_envs(3, ["3", "5"])] == ["3", "5", "3"]
    cluster = start_local_cluster(2, envs, gpu=True)
    try:
        with distributed.Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
            assert sorted(seen.values()) == ["3", "5"]
            workers = client.scheduler_info(n_workers=-1)["workers"]
            assert all(w["resources"] == {"GPU": 1} for w in workers.values())
            # a worker restarted by its nanny keeps its GPU
            victim = next(a for a, gpu in seen.items() if gpu == "5")
            os.kill(client.run(os.getpid, workers=[victim])[victim], signal.SIGKILL)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                now = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"),
                                 on_error="ignore")
                if len(now) == 2 and victim not in now:
                    break
                time.sleep(0.2)
            assert sorted(now.values()) == ["3", "5"] and victim not in now
    finally:
        cluster.close()


def test_nothing_imports_distributed_unless_asked():
    code = ("import sys, napari_vsr.jobs.runner, napari_vsr.cli.enhance; "
            "assert 'distributed' not in sys.modules, 'imported'")
    done = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr



def test_cli_on_a_local_cluster_prints_only_its_own_lines(tmp_path, sample_frames_dir, expected):
    out = tmp_path / "out.tif"
    done = _cli("enhance", str(sample_frames_dir), "-o", str(out), "--method", "classic",
                "--preset", "temporal-denoise", "--chunk", "2", "--segment", "2",
                "--frames", f"{FRAMES[0]}:{FRAMES[1]}", "--scheduler", "local:2", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [f"wrote 12 frames to {out}"]
    np.testing.assert_array_equal(tifffile.imread(out), expected)


def test_a_task_of_an_earlier_job_commits_nothing(tmp_path, sample_frames_dir):
    """A worker still running a segment after its job folder was started over (another
    command, --overwrite) must not commit into the new job."""
    from napari_vsr.jobs.execute import segment_task

    out = tmp_path / "out.tif"
    run(_request(sample_frames_dir, out, frame_range=(0, 4), keep_job=True))
    job = JobDir(default_job_dir(out))
    old_id = job.read_manifest()["job_id"]
    run(_request(sample_frames_dir, out, frame_range=(0, 4), keep_job=True, overwrite=True))
    assert job.read_manifest()["job_id"] != old_id
    job.segment_path(0).unlink()
    assert segment_task(str(job.path), 0, old_id)["stale"] is True
    assert not job.segment_path(0).exists()
    assert segment_task(str(job.path), 0, job.read_manifest()["job_id"])["computed"] is True
