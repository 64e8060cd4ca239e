"""Running a job's segments as tasks on a Dask cluster (``--scheduler``).

Each pending segment is one task, :func:`napari_vsr.jobs.execute.segment_task` (wrapped to
report its worker's address), which reads the
job's manifest from the state folder, computes the segment and commits it there itself: the
workers and this process must share the filesystem of the source, the weights and the job
folder.  This process only schedules, waits and relays what finishes, in completion order.

Schedulers
----------
``"local"`` / ``"local:N"``
    A :class:`distributed.LocalCluster` of N single-threaded worker processes on 127.0.0.1,
    started for the job and closed when it ends (also on an error or a cancel).  Without N:
    one worker per GPU for a CUDA job on a CUDA machine, else one per core.  Each worker's
    ``OMP_NUM_THREADS`` is its share of the cores.  For a CUDA job every worker is pinned to
    one GPU through its own ``CUDA_VISIBLE_DEVICES`` (given to the worker's nanny, so a worker
    restarted after a crash keeps its GPU; round robin when N exceeds the GPUs) and declares
    the resource ``GPU=1``; each task asks for ``GPU=1``, so a GPU runs one segment at a time.
``"tcp://HOST:PORT"``
    A running scheduler (``dask scheduler``, dask-jobqueue, dask-cuda, ...).  Never shut down
    here.  A CUDA job asks for ``GPU=1`` only when some worker declares that resource (start
    workers with ``--resources GPU=1``), else tasks would wait forever.

A worker that dies while running a segment: the scheduler reruns its tasks elsewhere (up to
``distributed.scheduler.allowed-failures`` times); ``segment_task`` is idempotent, so a segment
committed before the death is not computed again.  A task that raised: one
:class:`~napari_vsr.errors.SegmentTaskError` naming the segment, the worker and its error.
Cancel (the :class:`~napari_vsr.jobs.progress.CancelToken`, Ctrl-C, or the generator being
closed) cancels every task of the job.  On an external cluster a segment already running
finishes and commits (Dask cannot stop a running task); a later ``--resume`` reuses it.

The result equals the single-process run frame for frame when the workers compute as this
process would: the same device and precision and, for a network on the CPU, the same number
of threads (float sums split over more threads may round a pixel one level differently).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from napari_vsr.errors import (
    Cancelled,
    ParameterError,
    SchedulerError,
    SegmentTaskError,
    SourceNotFoundError,
)
from napari_vsr.jobs.progress import CancelToken
from napari_vsr.jobs.request import parse_scheduler
from napari_vsr.jobs.segments import Segment
from napari_vsr.jobs.state import JobDir, JobStateError

log = logging.getLogger(__name__)

#: seconds to wait for a scheduler to answer, and for a local cluster's workers to start
CONNECT_TIMEOUT_S = 10.0
WORKERS_TIMEOUT_S = 120.0
#: how often the cancel token is polled while tasks run
POLL_S = 0.25
#: reruns of a task that raised (a worker's death is handled by the scheduler, not counted here)
TASK_RETRIES = 1


def _import_distributed():
    try:
        import distributed
    except ModuleNotFoundError as exc:
        raise ParameterError(
            "--scheduler: the Dask 'distributed' package is not installed; install it with "
            "pip install 'napari-vsr[distributed]'"
        ) from exc
    return distributed


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries ([] without CUDA)."""
    try:
        import torch
    except ModuleNotFoundError:
        return []
    if not torch.cuda.is_available():
        return []
    count = torch.cuda.device_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        entries = [e.strip() for e in listed.split(",") if e.strip()]
        return entries[:count]
    return [str(i) for i in range(count)]


def worker_envs(n_workers: int, gpus: list[str] | None) -> list[dict[str, str]]:
    """Environment of each local worker: its share of the cores for OpenMP/MKL and, with
    ``gpus``, its own GPU (round robin)."""
    threads = str(max(1, _cpu_count() // max(1, n_workers)))
    envs = []
    for i in range(n_workers):
        env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "OPENBLAS_NUM_THREADS": threads, "NAPARI_VSR_THREADS": threads}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        envs.append(env)
    return envs


def start_local_cluster(n_workers: int, envs: list[dict[str, str]], *, gpu: bool,
                        quiet: bool = False):
    """A :class:`distributed.LocalCluster` of ``n_workers`` single-threaded worker processes on
    127.0.0.1, worker ``i`` spawned with ``envs[i]`` (kept when its nanny restarts it), each
    declaring ``GPU=1`` when ``gpu``."""
    distributed = _import_distributed()

    class PinnedLocalCluster(distributed.LocalCluster):
        """LocalCluster whose worker ``i`` gets its own environment (as dask-cuda's
        LocalCUDACluster pins its workers)."""

        def new_worker_spec(self):
            spec = super().new_worker_spec()
            ((name, worker),) = spec.items()
            env = {**worker["options"].get("env", {}), **envs[int(name) % len(envs)]}
            return {name: {**worker, "options": {**worker["options"], "env": env}}}

    from distributed.worker_memory import parse_memory_limit

    options: dict[str, Any] = {"resources": {"GPU": 1}} if gpu else {}
    # started empty and scaled, so that every worker comes from new_worker_spec; the memory
    # limit is what LocalCluster(n_workers=n) would give each worker (a share of the host's)
    cluster = PinnedLocalCluster(
        n_workers=0, threads_per_worker=1, processes=True, host="127.0.0.1",
        # the dashboard on a free loopback port (None still serves it, on 8787 of every host)
        dashboard_address="127.0.0.1:0",
        memory_limit=parse_memory_limit("auto", 1, n_workers, logger=log),
        silence_logs=logging.CRITICAL if quiet else logging.WARNING,
        **options,
    )
    try:
        cluster.scale(n_workers)
    except BaseException:
        cluster.close()
        raise
    return cluster


def _restore_environ(saved: dict[str, str]) -> None:
    """Put this process's environment back as it was (the workers have theirs already)."""
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _dashboard(client) -> str | None:
    try:
        services = client.scheduler_info(n_workers=0).get("services", {})
    except Exception:  # an older scheduler: no n_workers argument
        services = client.scheduler_info().get("services", {})
    return client.dashboard_link if "dashboard" in services else None


def _n_workers(client) -> tuple[int, bool]:
    """(workers connected, whether any declares the GPU resource)."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    gpu = any("GPU" in (w.get("resources") or {}) for w in workers.values())
    return len(workers), gpu


@contextmanager
def _quiet_dask_logs():
    """Dask's own log lines (INFO on every connection, tracebacks of connections closed at
    shutdown) stay out of the user's terminal unless napari-vsr logs at INFO (``-v``): a job's
    failures reach the user as napari-vsr errors."""
    logger = logging.getLogger("distributed")
    level = logger.level
    quiet = not log.isEnabledFor(logging.INFO)
    if quiet:
        logger.setLevel(logging.CRITICAL)
    try:
        yield quiet
    finally:
        logger.setLevel(level)


@contextmanager
def connect(scheduler: str, *, cuda: bool):
    """A :class:`distributed.Client` for ``scheduler`` ("local[:N]" or "tcp://HOST:PORT");
    a local cluster is started here and closed on exit, an external one left running."""
    parsed = parse_scheduler(scheduler)
    if parsed is None:
        raise ParameterError("--scheduler: no scheduler given")
    distributed = _import_distributed()
    with _quiet_dask_logs() as quiet:
        yield from _connect(distributed, parsed, scheduler, cuda=cuda, quiet=quiet)


def _connect(distributed, parsed, scheduler: str, *, cuda: bool, quiet: bool):
    kind, value = parsed
    if kind == "local":
        gpus = visible_gpus() if cuda else []
        n = int(value) or (len(gpus) if gpus else _cpu_count())
        log.info("starting a Dask LocalCluster of %d worker process%s%s", n,
                 "" if n == 1 else "es", f" pinned to GPUs {gpus}" if gpus else "")
        # distributed sets OMP_NUM_THREADS & co. in this process's environment before it
        # spawns workers; the caller (napari, a script) must get its own back
        saved_environ = dict(os.environ)
        try:
            cluster = start_local_cluster(n, worker_envs(n, gpus), gpu=bool(gpus),
                                          quiet=quiet)
        except Exception as exc:
            _restore_environ(saved_environ)
            raise SchedulerError(f"--scheduler {scheduler}: cannot start a local Dask "
                                 f"cluster ({type(exc).__name__}: {exc})") from exc
        try:
            with distributed.Client(cluster, timeout=CONNECT_TIMEOUT_S) as client:
                try:
                    client.wait_for_workers(n, timeout=WORKERS_TIMEOUT_S)
                except TimeoutError as exc:
                    raise SchedulerError(
                        f"--scheduler {scheduler}: the local Dask workers did not start "
                        f"within {WORKERS_TIMEOUT_S:.0f} s") from exc
                finally:
                    _restore_environ(saved_environ)
                log.info("Dask LocalCluster %s: %d workers", cluster.scheduler_address, n)
                yield client
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(value, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SchedulerError(
            f"--scheduler: cannot reach the Dask scheduler at {value} within "
            f"{CONNECT_TIMEOUT_S:.0f} s ({reason}); start it, or check the address"
        ) from None
    try:
        n, _ = _n_workers(client)
        link = _dashboard(client)
        log.info("Dask scheduler %s: %d workers%s", value, n,
                 f", dashboard {link}" if link else "")
        if n == 0:
            log.warning("the Dask scheduler at %s has no workers yet; the job waits for them",
                        value)
        yield client
    finally:
        client.close()  # only this client: the scheduler and its workers keep running


def worker_segment_task(job_dir: str, index: int, job_id: str | None = None
                        ) -> dict[str, Any]:
    """The Dask task: :func:`~napari_vsr.jobs.execute.segment_task` plus the address of the
    worker running it, in the result as ``"worker"`` and on an error as its ``vsr_worker``
    attribute (pickled with it)."""
    from distributed import get_worker

    from napari_vsr.jobs.execute import segment_task

    try:
        address = get_worker().address
    except ValueError:  # not in a worker (called directly)
        address = None
    try:
        info = segment_task(job_dir, index, job_id)
    except Exception as exc:
        try:
            exc.vsr_worker = address
        except AttributeError:  # an exception without a __dict__
            pass
        raise
    return {**info, "worker": address}


def _task_error(seg: Segment, future) -> SegmentTaskError:
    exc = future.exception()
    worker = getattr(exc, "vsr_worker", None)
    where = f" on worker {worker}" if worker else ""
    text = f"{type(exc).__name__}: {exc}"
    if type(exc).__name__ == "KilledWorker":
        text = "the workers running it died (out of memory? killed?): " + str(exc)
    hint = ""
    if isinstance(exc, JobStateError | SourceNotFoundError):
        hint = "; do the workers see this machine's files at the same paths (a shared filesystem)?"
    error = SegmentTaskError(
        f"segment {seg.index} (frames {seg.start}:{seg.stop}) failed{where}: {text}{hint}")
    error.__cause__ = exc
    return error


def _segment_result(future, seg: Segment, job: JobDir, output) -> dict[str, Any]:
    """A finished task's small result dict; when it cannot be fetched (it was held by a worker
    that died since, and Dask is recomputing it), the committed segment file is the answer."""
    try:
        info = dict(future.result(timeout=CONNECT_TIMEOUT_S))
    except Exception as exc:
        if job.is_committed(seg, *output):
            log.info("segment %d: its task result was lost with its worker (%s); the segment "
                     "is committed", seg.index, exc)
            return {"index": seg.index, "frames": seg.length, "computed": True, "worker": None}
        raise SegmentTaskError(
            f"segment {seg.index} (frames {seg.start}:{seg.stop}) finished but neither its "
            f"result nor its file can be found ({type(exc).__name__}: {exc})") from exc
    if info.get("stale"):
        raise SegmentTaskError(
            f"segment {seg.index}: the job folder {job.path} now holds another job (was it "
            "started over by another command?)")
    return info


def run_distributed(job: JobDir, pending: list[Segment], scheduler: str, *,
                    cancel: CancelToken) -> Iterator[tuple[Segment, dict[str, Any]]]:
    """Compute ``pending`` segments of ``job`` as Dask tasks; yield each as it is committed.

    Parameters
    ----------
    job : JobDir
        The job's state folder (manifest written), on a filesystem the workers share.
    pending : list of Segment
        The segments not yet committed.
    scheduler : str
        ``"local"``, ``"local:N"`` or ``"tcp://HOST:PORT"`` (see the module docstring).
    cancel : CancelToken
        Polled while the tasks run; when set, every task is cancelled and
        :class:`~napari_vsr.errors.Cancelled` raised.

    Yields
    ------
    segment : Segment
    info : dict
        The task's result (``computed``, ``elapsed_s``, ``pid``, ``device``, ...) plus
        ``worker``, the address of the worker that ran it (None if unknown).

    Raises
    ------
    SchedulerError
        The scheduler cannot be reached (one line naming the address) or a local cluster not
        started.
    SegmentTaskError
        A segment failed on a worker (names the segment, the worker and its error).
    Cancelled
        ``cancel`` was set.
    """
    if not pending:
        return
    distributed = _import_distributed()
    manifest = job.read_manifest()
    cuda = manifest.get("device_type") == "cuda"
    output = (tuple(manifest["output"]["frame_shape"]), manifest["output"]["dtype"])
    with connect(scheduler, cuda=cuda) as client:
        resources = None
        if cuda:
            _, has_gpu = _n_workers(client)
            if has_gpu:
                resources = {"GPU": 1}
            else:
                log.warning("no Dask worker declares the GPU resource (start workers with "
                            "--resources GPU=1); segments are not limited to one per GPU")
        token = uuid.uuid4().hex[:8]
        futures = {}
        for seg in pending:
            future = client.submit(
                worker_segment_task, os.fspath(job.path.resolve()), seg.index,
                manifest.get("job_id"),
                key=f"napari-vsr-segment-{seg.index:06d}-{token}", pure=False,
                resources=resources, retries=TASK_RETRIES,
            )
            futures[future] = seg
        remaining = set(futures)
        try:
            while remaining:
                cancel.raise_if_cancelled()
                try:
                    done, _ = distributed.wait(list(remaining), timeout=POLL_S,
                                               return_when="FIRST_COMPLETED")
                except TimeoutError:
                    continue
                for future in done:
                    remaining.discard(future)
                    seg = futures[future]
                    if future.status == "error":
                        raise _task_error(seg, future)
                    if future.status == "cancelled":
                        raise SegmentTaskError(
                            f"segment {seg.index} (frames {seg.start}:{seg.stop}) was cancelled "
                            "on the Dask scheduler")
                    info = _segment_result(future, seg, job, output)
                    future.release()
                    yield seg, info
        except Cancelled:
            log.info("cancelling %d Dask task%s", len(remaining),
                     "" if len(remaining) == 1 else "s")
            raise
        finally:
            if remaining:  # cancelled, interrupted, closed or failed: stop the rest
                try:
                    client.cancel(list(remaining))
                except Exception as exc:  # the scheduler may be gone already
                    log.debug("cancelling the Dask tasks failed: %s", exc)
