"""The runs of a collection on a Dask distributed cluster (``sweep ... --scheduler ADDRESS``).

Each run is one task (:func:`experiments.workers.run_remote`) that returns the run's metrics and the files of its
folder -- report and figures, as bytes -- to this client, which writes them into the collection's folder
(each run's sub-folder appears whole, by a rename) and records the run. Checkpoints stay where the workers can
reach them (``--checkpoint-dir``), or in a temporary folder of the worker that is gone with the task.

A worker lost mid-run is Dask's to handle: its nanny starts a new worker process and the scheduler runs the
task again elsewhere (``distributed.scheduler.allowed-failures`` times, 3 by default, before it gives up with
KilledWorker). Results are keyed by run, so a run is recorded once however often it ran.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from experiments import run_folder, workers

CONNECT_TIMEOUT = 5  # seconds to reach the scheduler before giving up
INSTALL = "pip install -e '.[cluster]' (or pip install 'dask[distributed]')"


class ClusterError(run_folder.FolderError):
    """The Dask scheduler cannot be reached, or Dask is not installed; nothing was run."""


def _dask():
    try:
        from distributed import Client, KilledWorker, as_completed
    except ImportError:
        raise ClusterError(f"--scheduler runs the sweep on a Dask cluster, and Dask is not installed here: {INSTALL}.") \
            from None
    return Client, KilledWorker, as_completed


def connect(address: str, timeout: float = CONNECT_TIMEOUT):
    """A Dask client of the scheduler at ``address``; ClusterError naming it when it cannot be reached in time."""
    Client, _, _ = _dask()
    try:
        return Client(address, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise ClusterError(f"Cannot reach the Dask scheduler at {address} within {timeout:g} s "
                           f"({type(error).__name__}: {error}); nothing was run. Start it (dask scheduler) or check "
                           "the address.") from None


def write_run_files(folder: Path, files: dict[str, bytes]) -> Path:
    """Write a run's files into ``folder`` whole: into a temporary sibling first, renamed into place at the end.
    A folder already there (an unfinished earlier attempt) is moved aside, never deleted."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    for relative, content in files.items():
        path = temporary / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    if folder.exists():
        run_folder.move_aside(folder)
    os.rename(temporary, folder)
    return folder


def run_on_dask(client, collection, specs, data_dir=None, checkpoint_dir=None, threads: int = 1, log=print) -> None:
    """Every run in ``specs`` as a task on the cluster of ``client`` (see :func:`connect`), recorded in
    ``collection`` as it ends."""
    _, KilledWorker, as_completed = _dask()
    checkpoint_dir = str(Path(checkpoint_dir).resolve()) if checkpoint_dir is not None else None
    data_dir = str(Path(data_dir).resolve()) if data_dir is not None else None
    log(f"{len(specs)} run(s) on the Dask cluster at {client.scheduler.address} "
        f"({len(client.scheduler_info()['workers'])} worker(s)), {threads} thread(s) per run; checkpoints "
        + (f"in {checkpoint_dir}" if checkpoint_dir else "in temporary folders of the workers (a lost run trains "
           "again; give --checkpoint-dir to resume it)"))
    futures = {client.submit(workers.run_remote, spec, data_dir, checkpoint_dir, threads,
                             key=f"minidl-run-{spec.key}-{spec.digest[:16]}"): spec for spec in specs}
    for future in as_completed(futures, loop=client.loop):  # this client's loop: it is not the default client
        spec = futures[future]
        try:
            outcome = future.result()
        except KilledWorker as error:
            collection.fail(spec.key, f"its worker died each time it ran it ({error}); the cluster gave up")
            continue
        except Exception as error:  # noqa: BLE001  (a failed run is reported; the others go on)
            collection.fail(spec.key, f"{type(error).__name__}: {error}")
            continue
        write_run_files(collection.folder / spec.key, outcome["files"])
        collection.record(spec, outcome["metrics"])
