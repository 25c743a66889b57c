"""What a worker process does with one run of a collection: limit its threads, run the main job into a folder,
and hand back the run's files.

This module imports nothing heavy at its top, so that :func:`start_local_worker`, the initializer of a local worker
process, sets the thread counts in the environment before NumPy and Numba are first imported there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when the thread that started it ends
PARENT_POLL = 0.5  # seconds between two looks of the watchdog at the parent


def start_local_worker(threads: int | None, parent: int) -> None:
    """The initializer of a local worker process: it ends with ``parent`` (see :func:`end_with_parent`) and runs
    with ``threads`` threads (see :func:`limit_threads`)."""
    end_with_parent(parent)
    limit_threads(threads)


def end_with_parent(parent: int) -> None:
    """End this process when the process ``parent`` (the pid of the one that started it) ends.

    A worker whose parent was killed (SIGKILL, out of memory) would otherwise wait for tasks forever: each worker
    holds both ends of the pool's queues, so none of them sees the parent go. On Linux the kernel sends SIGTERM
    at once (prctl's PR_SET_PDEATHSIG); everywhere a daemon thread looks every :data:`PARENT_POLL` s whether
    the parent is still this process's parent, and ends the process when it is not.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # gone already, before the signal was asked for
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="minidl-parent-watchdog", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL)
    os._exit(1)  # the parent is gone: nobody will read this worker's results


def limit_threads(threads: int | None) -> None:
    """Give this process ``threads`` Numba and BLAS threads (None: leave them as they are).

    The environment is set for libraries not yet imported; Numba and the BLAS already loaded are limited at
    run time as well (Numba's limit holds for the calling thread, the one that runs the tasks).
    """
    if threads is None:
        return
    for name in THREAD_VARIABLES:
        if name != "NUMBA_NUM_THREADS" or "numba" not in _loaded():
            os.environ[name] = str(threads)
    import numba
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    threadpool_limits(limits=threads)


def _loaded() -> set[str]:
    import sys

    return {name.split(".")[0] for name in sys.modules}


def run_in_folder(spec, out_dir: Path, data_dir=None) -> dict:
    """Run the main job for ``spec`` (a :class:`~experiments.collection.RunSpec`) into ``out_dir``; returns
    the run's metrics.json as a dict, with where and how long it ran under ``"where"``."""
    import minidl

    minidl.tune_process()  # a fresh worker process: before NumPy is imported there
    # imported here, after the tuning and the thread limits, not at the top (see the module's docstring)
    from experiments.job import run_job
    from experiments.run_folder import read_metrics

    started = time.perf_counter()

    def log(message):
        print(f"[{spec.key}] {message}", flush=True)

    run_job(spec.preset, Path(out_dir), list(spec.parts), data_dir, list(spec.models) if spec.models else None, log=log)
    metrics = read_metrics(out_dir)
    metrics["where"] = {"host": socket.gethostname(), "pid": os.getpid(), "seconds": time.perf_counter() - started}
    return metrics


def run_local(spec, collection_dir: str, data_dir=None) -> dict:
    """A local worker's task: the run in its sub-folder of the collection, checkpoints included."""
    return run_in_folder(spec, Path(collection_dir) / spec.key, data_dir)


def run_remote(spec, data_dir=None, checkpoint_dir=None, threads: int | None = 1) -> dict:
    """A Dask task: the run in ``checkpoint_dir/<key>-<digest>`` (kept, so that a retried task resumes from
    the last epoch) or in a temporary folder of the worker; returns the run's metrics and every file of its
    folder but the checkpoints, as bytes, for the client to write."""
    limit_threads(threads)
    if checkpoint_dir is not None:
        folder = Path(checkpoint_dir) / f"{spec.key}-{spec.digest[:12]}"
        metrics = run_in_folder(spec, folder, data_dir)
        metrics["where"]["checkpoints"] = str(folder / "checkpoints")
        return {"metrics": metrics, "files": _files(folder)}
    with tempfile.TemporaryDirectory(prefix="minidl-run-") as temporary:
        metrics = run_in_folder(spec, Path(temporary), data_dir)
        metrics["where"]["checkpoints"] = None
        return {"metrics": metrics, "files": _files(Path(temporary))}


def _files(folder: Path) -> dict[str, bytes]:
    """The run's files but its checkpoints and its lock (the client locks the folder it writes them into)."""
    from experiments.run_folder import LOCK

    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "checkpoints" not in path.relative_to(folder).parts and path.name != LOCK
    }
