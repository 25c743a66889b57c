"""Several runs of the main job and their aggregate: one run per seed (``run --seeds 0,1,2``) or per point of a
grid and seed (``sweep --grid sparsity_weight=1e-4,1e-3 --seeds 0,1``).

Each run is a resolved :class:`~experiments.presets.Preset` (validated like ``--set``) with its own sub-folder of
the collection's folder, a complete run folder with its own checkpoints, fingerprints and report. The
collection's ``collection.json`` (:mod:`experiments.collection_file`) holds what the collection is (preset,
overrides, grid, seeds), each finished run's headline numbers with the data and the fingerprints that made them,
and the aggregate (mean ± std over seeds per point); only the client writes it, atomically: what the collection
is before any run starts, then again after every finished run. So an interrupted collection resumes where it
stopped, whenever it was stopped: a finished run of the same settings is reused, an unfinished one continues
from its checkpoints, each run computed with the same number of threads as without the interruption. Runs
execute in this process, in local worker processes that split the cores, or on a Dask cluster
(:mod:`experiments.cluster`).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from autoencoders.checkpoints import differences, plain
from experiments import cluster, collection_file, collection_report, frey, headline, job, mnist, run_folder, workers
from experiments.errors import UsageError
from experiments.presets import (
    Preset,
    default_folder,
    overrides,
    parse_value,
    resolve_preset,
    safe_name,
    settable,
    settings,
    slug,
)

FORMAT = collection_file.FORMAT
PARTS = ("mnist", "frey")
HOLD_SIGNALS = hasattr(signal, "pthread_sigmask")  # not on Windows, where Ctrl-C reaches each process anyway


class CollectionError(run_folder.FolderError):
    """Some runs of a collection failed or disagree; the finished ones are kept and the message says which."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a collection: its sub-folder ``key``, the grid values and seed that make it, its settings,
    the parts and MNIST models it trains, and a digest of all of these."""

    key: str
    point: tuple[tuple[str, object], ...]
    seed: int
    preset: Preset
    parts: tuple[str, ...]
    models: tuple[str, ...] | None
    digest: str


# -- the command line ----------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> [0, 1, 2]; ValueError for anything but distinct non-negative integers."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        seeds = [int(item) for item in items]
    except ValueError:
        raise ValueError(f"--seeds {text}: expected comma-separated integers, e.g. --seeds 0,1,2.") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text}: expected distinct non-negative integers, e.g. --seeds 0,1,2.")
    return seeds


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["sparsity_weight=1e-4,1e-3"]`` -> {"sparsity_weight": [0.0001, 0.001]}, values parsed like ``--set``.

    Values of a setting that is itself a list (``alphas``, ``traversal_range``) are separated by ``;``.
    Raises ValueError for an unknown setting, a setting given twice, the seed (``--seeds`` sets it) or no values.
    """
    grid: dict[str, list] = {}
    for item in items:
        key, equals, text = item.partition("=")
        key = key.strip()
        if not equals:
            raise ValueError(f"--grid {item}: expected key=v1,v2,..., e.g. --grid sparsity_weight=1e-4,1e-3.")
        if key == "seed":
            raise ValueError("--grid seed=...: seeds are given with --seeds.")
        if key not in settable():
            raise ValueError(f"--grid {item}: unknown setting {key!r}; valid settings are: {', '.join(settable())}.")
        if key in grid:
            raise ValueError(f"--grid {key} is given twice; give all its values in one --grid {key}=v1,v2,....")
        separator = ";" if isinstance(getattr(Preset(name="x"), key), tuple) else ","
        texts = [value for value in text.split(separator) if value.strip()]
        if not texts:
            raise ValueError(f"--grid {item}: expected at least one value, e.g. --grid {key}=v1,v2.")
        grid[key] = [parse_value(key, value) for value in texts]
    return grid


def plan(base: Preset, grid: dict[str, list], seeds: list[int], parts, models=None) -> list[RunSpec]:
    """Every run of the collection: the product of the grid's values, each with every seed, each validated
    as a whole preset. Raises ValueError naming the grid point whose settings are invalid or repeat another's."""
    runs, seen = [], {}
    names = list(grid)
    for values in itertools.product(*(grid[name] for name in names)):
        point = tuple(zip(names, values))
        for seed in seeds:
            try:
                preset = resolve_preset(base.name, {**overrides(base), **dict(point), "seed": seed})
            except ValueError as error:
                shown = ", ".join(f"{name}={value}" for name, value in point)
                raise ValueError(f"--grid point {shown}: {error}") from None
            key = run_key(point, seed)
            if preset in seen:
                raise ValueError(f"--grid: {key} and {seen[preset]} are the same settings; give each value once.")
            seen[preset] = key
            identity = {"settings": settings(preset), "parts": list(parts), "models": list(models) if models else None}
            digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
            runs.append(RunSpec(key, point, seed, preset, tuple(parts), tuple(models) if models else None, digest))
    return runs


def run_key(point, seed: int) -> str:
    """The sub-folder of a run: its grid values and seed, e.g. ``sparsity_weight=0.001,seed=0``."""
    return safe_name(slug([*point, ("seed", seed)]))


def point_key(point) -> str:
    return safe_name(slug(list(point))) if point else "all"


def default_collection_folder(base: Preset, grid: dict, seeds: list[int], stand_in: dict, root=Path("runs")) -> Path:
    """``runs/[sweep-]<preset>[-<overrides>][-<grid>]-seeds=<seeds>[-stand-in]``: one folder per collection."""
    plain_base = default_folder(base, root=root).name
    grid_slug = (
        safe_name(
            ";".join(f"{name}={'_'.join(map(str, values))}" for name, values in grid.items()).replace(";", "+"), 80
        )
        if grid
        else ""
    )
    name = (
        ("sweep-" if grid else "")
        + plain_base
        + (f"-{grid_slug}" if grid_slug else "")
        + f"-seeds={','.join(map(str, seeds))}"
    )
    suffix = default_folder(base, stand_in, root=root).name[len(plain_base) :]
    return root / (name + suffix)


# -- the collection's own file, collection.json -----------------------------------------------------


def description(base: Preset, grid: dict, seeds: list[int], parts, models) -> dict:
    """What the collection is; a folder holding another description is refused."""
    base_settings = {k: v for k, v in settings(base).items() if k != "seed"}
    return plain(
        {
            "kind": "sweep" if grid else "seeds",
            "preset": base.name,
            "overrides": {k: v for k, v in overrides(base).items() if k != "seed"},
            "settings": base_settings,
            "grid": grid,
            "seeds": seeds,
            "parts": list(parts),
            "models": list(models) if models else None,
        }
    )


def conflicts(folder: Path, described: dict, specs: list[RunSpec] = (), log=print) -> list[str]:
    """What in ``folder`` belongs to another collection (or is not a collection); empty when it may be written.

    A folder without collection.json whose only entries are sub-folders of the runs in ``specs`` is this
    collection, interrupted by a version that recorded what a collection is only after its first finished run;
    it is continued. A collection.json of an older version is read as :func:`experiments.collection_file.read`
    says (call this while holding the folder's lock).
    """
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise run_folder.FolderError(f"{folder}: is a file, not a folder; choose another --out.")
    stored = collection_file.read(folder, log)
    if not stored and (folder / "metrics.json").exists():
        return ["the results of a single run, not of seeds or a sweep"]
    if not stored:
        found = run_folder.entries(folder)
        ours = {spec.key for spec in specs}
        strangers = [name for name in found if name not in ours or not (folder / name).is_dir()]
        return [f"files {strangers[:4]} but no {collection_file.NAME}: not a results folder"] if strangers else []
    if "collection" not in stored:
        return [f"a {collection_file.NAME} that does not say what the collection is"]
    return [f"collection: {difference}" for difference in differences(stored["collection"], described)]


def entry_of(spec: RunSpec, metrics: dict) -> dict:
    """What the collection keeps of a finished run: its headline numbers, data and fingerprints.

    Raises CollectionError when the run's folder holds other settings than ``spec`` or lacks a result.
    """
    found = differences(metrics.get("run", {}).get("settings"), settings(spec.preset))
    if found:
        raise CollectionError(f"run {spec.key}: its folder holds other settings ({'; '.join(found[:3])}).")
    data = run_folder.results_data(metrics)
    expected = [f"mnist/{kind}" for kind in (spec.models or mnist.MODEL_KINDS)] if "mnist" in spec.parts else []
    expected += [f"frey/{likelihood}" for likelihood in frey.LIKELIHOODS] if "frey" in spec.parts else []
    missing = [label for label in expected if label not in data]
    if missing:
        raise CollectionError(f"run {spec.key}: finished without results for {', '.join(missing)}.")
    fingerprints = {
        label: metrics[label.split("/")[0]][label.split("/")[1]]["provenance"]["digest"] for label in expected
    }
    return {
        "point": dict(spec.point),
        "seed": spec.seed,
        "digest": spec.digest,
        "data": {label: {"source": data[label]["source"], "stand_in": data[label]["stand_in"]} for label in expected},
        "fingerprints": fingerprints,
        "headline": headline.to_records(headline.headline(metrics)),
        "where": metrics.get("where", {}),
    }


class Collection:
    """The client's view of a collection folder: records finished runs (once each) and writes its files."""

    def __init__(self, folder: Path, described: dict, specs: list[RunSpec], log=print) -> None:
        self.folder, self.specs, self.log = Path(folder), {spec.key: spec for spec in specs}, log
        self.folder.mkdir(parents=True, exist_ok=True)
        stored = collection_file.read(self.folder, log)
        self.metrics = {"format": FORMAT, "collection": described, "runs": stored.get("runs", {})}
        self.failures: dict[str, str] = {}
        # what the collection is, before any run writes into it: an interruption at any moment leaves a folder
        # that the same command recognises and continues
        collection_file.write(self.folder, self.metrics)

    def finished(self, spec: RunSpec) -> bool:
        """Whether ``spec`` was already recorded with the same settings, parts and models (then it is reused)."""
        return self.metrics["runs"].get(spec.key, {}).get("digest") == spec.digest

    def record(self, spec: RunSpec, metrics: dict) -> bool:
        """Keep a finished run's entry and rewrite collection.json; returns False for a duplicate, which is kept
        out after checking that the same things made it (CollectionError otherwise, as for a run made from
        other data than the collection's other runs)."""
        entry = entry_of(spec, metrics)
        old = self.metrics["runs"].get(spec.key)
        if old is not None and old.get("digest") == spec.digest:
            if old["fingerprints"] != entry["fingerprints"]:
                raise CollectionError(
                    f"run {spec.key}: two results were made from different data or models: "
                    f"{'; '.join(differences(old['fingerprints'], entry['fingerprints'])[:3])}."
                )
            if headline.from_records(old["headline"]) != headline.from_records(entry["headline"]):
                self.log(f"[{spec.key}] a second result (a retried task) differs in its numbers; the first is kept.")
            return False
        for key, other in self.metrics["runs"].items():
            if key in self.specs and key != spec.key and other["data"] != entry["data"]:
                found = differences(other["data"], entry["data"])
                raise CollectionError(
                    f"run {spec.key} was made from other data than run {key} ({'; '.join(found[:2])}); "
                    "it was not recorded. Give every worker the same data (--data-dir or MINIDL_DATA)."
                )
        self.metrics["runs"][spec.key] = entry
        collection_file.write(self.folder, self.metrics)
        return True

    def fail(self, key: str, reason: str) -> None:
        self.failures[key] = reason
        self.log(f"[{key}] FAILED: {reason}")

    def finish(self) -> Path:
        """The aggregate and the report when every run finished; CollectionError naming the failed ones otherwise."""
        if self.failures:
            done = sum(1 for key in self.specs if key in self.metrics["runs"])
            lines = "\n".join(f"  {key}: {reason}" for key, reason in self.failures.items())
            raise CollectionError(
                f"{len(self.failures)} of {len(self.specs)} runs failed:\n{lines}\n{done} finished "
                f"runs are kept in {self.folder}; run the same command again to finish the others "
                "(finished runs are reused)."
            )
        self.metrics["aggregate"] = aggregate([self.specs[key] for key in self.specs], self.metrics["runs"])
        collection_file.write(self.folder, self.metrics)
        return collection_report.write_report(self.folder, self.metrics)


def aggregate(specs: list[RunSpec], runs: dict) -> dict:
    """Per grid point: the seeds, and each headline number's :func:`~experiments.headline.spread` with the
    per-seed values."""
    points: dict[str, dict] = {}
    for spec in specs:
        entry = points.setdefault(point_key(spec.point), {"point": plain(dict(spec.point)), "seeds": [], "runs": []})
        entry["seeds"].append(spec.seed)
        entry["runs"].append(spec.key)
    for entry in points.values():
        numbers = [headline.from_records(runs[key]["headline"]) for key in entry["runs"]]
        names = [name for name in numbers[0] if all(name in run for run in numbers)]
        entry["stats"] = headline.to_records(
            {
                name: {**headline.spread([run[name] for run in numbers]), "values": [run[name] for run in numbers]}
                for name in names
            }
        )
    return points


# -- executing the runs -----------------------------------------------------------------------------


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def split_cores(n_runs: int, workers_wanted: int | None, threads_wanted: int | None, log=print) -> tuple[int, int]:
    """Local workers and threads per worker for a collection of ``n_runs`` runs: by default as many workers as
    cores and runs allow, and the cores divided among them, so that workers x threads <= cores.

    ``n_runs`` counts every run of the collection, finished or not: the threads of a run then do not depend
    on how many were left to do, and a run resumed after an interruption is computed as it would have been
    without it (parallel sums, and so the last digits, depend on the thread count)."""
    available = cores()
    count = workers_wanted or max(1, min(n_runs, available))
    threads = threads_wanted or max(1, available // count)
    if count * threads > available:
        log(
            f"note: {count} workers x {threads} threads = {count * threads} exceeds the {available} cores; "
            "the runs will compete for them."
        )
    return count, threads


def run_locally(collection: Collection, specs: list[RunSpec], data_dir, count: int, threads: int) -> None:
    """Every run in ``specs``, in this process (``count`` 1) or in ``count`` spawned worker processes, each with
    ``threads`` threads.

    The workers leave Ctrl-C to this process, which then stops them and raises KeyboardInterrupt: the runs
    stop at once, their checkpoints kept, and no worker goes on with the runs still queued."""
    if count == 1:
        workers.limit_threads(threads)
        for spec in specs:
            try:
                collection.record(spec, workers.run_local(spec, str(collection.folder), data_dir))
            except CollectionError:
                raise
            except Exception as error:  # noqa: BLE001  (a failed run is reported; the others go on)
                collection.fail(spec.key, f"{type(error).__name__}: {error}")
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: thread limits set before imports
    with ProcessPoolExecutor(
        count, mp_context=context, initializer=workers.start_local_worker, initargs=(threads, os.getpid())
    ) as pool:
        try:
            with _interrupts_held():  # the workers are spawned by submit
                futures = {
                    pool.submit(workers.run_local, spec, str(collection.folder), data_dir): spec for spec in specs
                }
            for future in as_completed(futures):
                spec = futures[future]
                try:
                    collection.record(spec, future.result())
                except CollectionError:
                    raise
                except BrokenProcessPool:
                    collection.fail(spec.key, "its worker process died (killed, or out of memory)")
                except Exception as error:  # noqa: BLE001
                    collection.fail(spec.key, f"{type(error).__name__}: {error}")
        except BaseException:  # Ctrl-C, or a run that disagrees: the runs still going are stopped, not awaited
            _stop_workers(pool)
            raise


@contextlib.contextmanager
def _interrupts_held():
    """Spawn worker processes that never see a Ctrl-C, and keep one that comes meanwhile for the end of the block.

    SIGINT is blocked in this thread, and processes started here inherit the blocked signal through exec; a
    Ctrl-C delivered meanwhile to another thread of this process (a BLAS thread) is recorded by a handler of
    this block instead of interrupting a worker's start half-way, and raised as KeyboardInterrupt at its end.
    """
    if not HOLD_SIGNALS or threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    handler = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a Ctrl-C held by the mask reaches the handler now
        signal.signal(signal.SIGINT, handler)
    if caught:
        raise KeyboardInterrupt


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the runs not started and end the worker processes (each run keeps the checkpoint of its last
    finished epoch)."""
    pool.shutdown(wait=False, cancel_futures=True)
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()


def _prepare_folder(args, base, grid, seeds, parts, models, specs, log) -> tuple[Collection, run_folder.FolderLock]:
    """The collection's folder (``--out``, or the default of its settings and data), checked, locked for this
    process (see :func:`experiments.run_folder.take`) and claimed."""
    described = description(base, grid, seeds, parts, models)
    folder = args.out
    if folder is None:
        stand_in = {
            part: job.prepare(part, specs[0].preset, args.data_dir, lambda message: None)["identity"]["stand_in"]
            for part in parts
        }
        folder = default_collection_folder(base, grid, seeds, stand_in)
    lock = run_folder.take(folder, lambda: conflicts(folder, described, specs, log), args.move_aside, log)
    try:
        return Collection(folder, described, specs, log), lock
    except BaseException:
        lock.release()
        raise


def execute(args, base: Preset, models, log=print) -> int:
    """``run --seeds`` and ``sweep``: plan, check the folder, run what is not finished, aggregate, report."""
    try:
        if args.command not in ("run", "sweep", "mnist", "frey"):
            raise ValueError(f"--seeds and --grid go with run, mnist, frey or sweep, not {args.command}.")
        if "seed" in overrides(base):
            raise ValueError("--set seed=... and --seeds: give the seeds with --seeds only.")
        seeds = parse_seeds(args.seeds) if args.seeds is not None else [base.seed]
        grid = parse_grid(args.grid)
        both = [key for key in grid if key in {item.partition("=")[0].strip() for item in args.set}]
        if both:
            raise ValueError(
                f"--grid {both[0]}=... and --set {both[0]}=...: give {both[0]} one way, its values to "
                f"sweep with --grid or one value for every run with --set."
            )
        if args.command == "sweep" and not grid:
            raise ValueError("sweep needs at least one --grid KEY=V1,V2,... (for seeds alone: run --seeds).")
        parts = {"mnist": ["mnist"], "frey": ["frey"]}.get(args.command, list(PARTS))
        specs = plan(base, grid, seeds, parts, models)
        if args.scheduler is None and args.checkpoint_dir is not None:
            raise ValueError(
                "--checkpoint-dir goes with --scheduler (local runs keep their checkpoints in their sub-folders)."
            )
        for name in ("workers", "threads"):
            if getattr(args, name) is not None and getattr(args, name) < 1:
                raise ValueError(f"--{name} {getattr(args, name)}: expected a positive integer.")
    except ValueError as error:
        raise UsageError(str(error)) from None
    client, lock = None, None
    if args.scheduler is not None:  # first: an unreachable scheduler fails before anything is written
        client = cluster.connect(args.scheduler)
    try:
        collection, lock = _prepare_folder(args, base, grid, seeds, parts, models, specs, log)
        todo = [spec for spec in specs if not collection.finished(spec)]
        if len(todo) < len(specs):
            log(f"Reusing {len(specs) - len(todo)} finished run(s) of {collection.folder}.")
        if todo and client is not None:
            cluster.run_on_dask(client, collection, todo, args.data_dir, args.checkpoint_dir, args.threads or 1, log)
        elif todo:
            count, threads = split_cores(len(specs), args.workers, args.threads, log)
            count = min(count, len(todo))
            log(f"{len(todo)} run(s) in {count} local worker(s) of {threads} thread(s) each, into {collection.folder}")
            run_locally(collection, todo, args.data_dir, count, threads)
        report = collection.finish()
    finally:
        if client is not None:
            client.close()
        if lock is not None:
            lock.release()
    folder = collection.folder
    stand_in = sorted(
        {
            label
            for entry in collection.metrics["runs"].values()
            for label, data in entry["data"].items()
            if data["stand_in"]
        }
    )
    if stand_in:
        print(
            f"WARNING: {', '.join(stand_in)} in {folder} were trained on the OFFLINE STAND-IN; those numbers are "
            "NOT comparable with the study's.",
            file=sys.stderr,
        )
    print(f"Report: {report}")
    return 0
