"""The output folder of a run: its ``metrics.json``, whether a run may write into it, moving old results aside.

``metrics.json`` holds a ``run`` section -- the preset, its overrides and every setting, which all results
in one folder share -- and the results, each with the fingerprint of what made it under ``provenance``
(see :mod:`experiments.provenance`). The file is RFC 8259 JSON, as ``experiments/schemas/metrics.schema.json``
describes it: a number that is not finite (the infinite PSNR of two identical images) is written as the string
``"Infinity"`` (``"-Infinity"``, ``"NaN"``), which :func:`read_metrics` turns back into a float.

A run writes into a folder only when the folder's settings are its own and every result and checkpoint it holds
of the parts being run was made from the same data; results of parts not being run stay, labelled with their
own provenance.

One command at a time writes into a folder: it holds an exclusive lock (``flock``) on the folder's ``.lock``
for as long as it runs, and a second command is refused naming the first. The kernel releases the lock when
its process ends however it ends, so a lock never outlives its process.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on Windows: there folders are not locked
    fcntl = None

from autoencoders.checkpoints import differences, read_checkpoint
from experiments.provenance import compare
from minidl.serialization import atomic_write

FORMAT = 3  # 3: a Frey Face result per decoder
COLLECTION = "collection.json"  # the file of a folder of seeds or a sweep (experiments/collection_file.py)
LOCK = ".lock"  # the file a command locks while it writes into the folder; it names the command
NON_FINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}  # RFC 8259 has no literal for them


class FolderError(Exception):
    """The output folder, or a file in it, cannot be used; the message names the path."""


class FolderConflict(FolderError):
    """The folder holds results made from other data or settings; ``problems`` says what differs."""

    def __init__(self, out_dir: Path, problems: list[str]) -> None:
        self.out_dir, self.problems = Path(out_dir), list(problems)
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(
            f"{out_dir} holds results made from other data or settings, so nothing was run:\n{lines}\n"
            f"Choose another --out, or add --move-aside to move the old results to a sibling folder "
            f"({out_dir}.moved-<time>); nothing is deleted."
        )


class FolderInUse(FolderError):
    """Another command is writing into the folder; nothing was run."""


class FolderLock:
    """The exclusive right to write into ``out_dir`` (created if needed), held until :meth:`release` or the end
    of this process; FolderInUse naming the process and command that hold it otherwise.

    The lock file keeps the holder's process id and command line, for the message another command gets.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._descriptor: int | None = os.open(self.out_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is None:
            return
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._descriptor, 4096, 0).decode(errors="replace").split("\n", 1)
            self.release()
            who = f"process {holder[0]} (command {holder[1].strip()})" if len(holder) == 2 else "another process"
            raise FolderInUse(
                f"{self.out_dir} is in use by {who}; nothing was run. Wait for it to end, or choose another --out."
            ) from None
        except OSError as error:  # a file system without locks: writing unlocked could mix two commands' results
            self.release()
            raise FolderError(
                f"{self.out_dir / LOCK}: cannot be locked ({error.strerror or error}); choose an --out "
                "on a local file system."
            ) from None
        except BaseException:
            self.release()
            raise
        os.ftruncate(self._descriptor, 0)
        os.pwrite(self._descriptor, f"{os.getpid()}\n{_command()}\n".encode(), 0)

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the file releases the lock
            self._descriptor = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _command() -> str:
    """This process's command line as it was typed (``python -m experiments run ...``)."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("-")
    if program.name == "__main__.py" and program.parent.name == "experiments":
        return shlex.join(["python", "-m", "experiments", *sys.argv[1:]])
    if program.name in ("-", "-c"):
        return shlex.join(["python", *sys.argv])
    return shlex.join(sys.argv)


def take(out_dir: Path, problems_of, move: bool = False, log=print) -> FolderLock:
    """Lock ``out_dir`` for this process when it may write there: ``problems_of()`` (what in the folder belongs to
    other data, settings or programs) is empty, or the old folder was moved to a sibling first (``move``, see
    :func:`move_aside`).

    The check is made while the lock is held, so that no other command can change the folder between the check
    and the writing. A folder that holds files but no metrics.json is not locked (no lock file is left in a
    folder that is not ours) unless ``problems_of`` accepts it. Raises FolderInUse, or FolderConflict with the
    problems when they are not moved aside.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FolderError(f"{out_dir}: is a file, not a folder; choose another --out.")
    ours = (
        not out_dir.exists()
        or any((out_dir / name).exists() for name in ("metrics.json", COLLECTION))
        or not entries(out_dir)
    )
    lock = FolderLock(out_dir) if ours else None
    try:
        problems = problems_of()
        if not problems and lock is None:
            lock = FolderLock(out_dir)
            problems = problems_of()
        if problems:
            if not move:
                raise FolderConflict(out_dir, problems)
            moved = move_aside(out_dir)  # our lock, if any, moves with it and is released below
            if lock is not None:
                lock.release()
            lock = FolderLock(out_dir)
            log(f"Moved the earlier results of {out_dir} to {moved}.")
        return lock
    except BaseException:
        if lock is not None:
            lock.release()
        raise


@dataclass(frozen=True)
class Expected:
    """A result a run is about to write: at ``entry`` of metrics.json, with ``provenance``, and optionally a
    checkpoint (a path inside the folder) whose stored fingerprint must be the same."""

    label: str
    entry: tuple[str, ...]
    provenance: dict
    checkpoint: str | None = None


def read_metrics(out_dir: Path) -> dict:
    """The folder's ``metrics.json`` ({} when there is none); FolderError naming it when it is unreadable."""
    return read_document(Path(out_dir) / "metrics.json")


def read_document(path: Path) -> dict:
    """The JSON object in the file ``path`` ({} when there is none), non-finite numbers as floats
    (:func:`from_json`); FolderError naming it when it is unreadable."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        metrics = from_json(json.loads(path.read_text()))
    except (OSError, ValueError) as error:
        raise FolderError(
            f"{path}: cannot be read ({type(error).__name__}: {error}). Repair or remove it, or choose another --out."
        ) from None
    if not isinstance(metrics, dict):
        raise FolderError(
            f"{path}: expected a JSON object, found {type(metrics).__name__}. Repair or remove it, "
            "or choose another --out."
        )
    return metrics


def _entry(metrics: dict, path: tuple[str, ...]):
    for key in path:
        metrics = metrics.get(key) if isinstance(metrics, dict) else None
    return metrics


def conflicts(out_dir: Path, settings: dict, expected: list[Expected]) -> list[str]:
    """What in ``out_dir`` was made from other settings or data than a run with ``settings`` that is about to
    write ``expected``; empty when the run may write there.

    Raises FolderError when the folder is a file or its metrics.json is unreadable, and CheckpointError
    when one of the checkpoints involved is.
    """
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return []
    if not out_dir.is_dir():
        raise FolderError(f"{out_dir}: is a file, not a folder; choose another --out.")
    if (out_dir / COLLECTION).exists():
        return ["the results of seeds or a sweep, not of a single run"]
    metrics = read_metrics(out_dir)
    if not metrics:
        found = entries(out_dir)
        return [f"files {found[:4]} but no metrics.json: not a results folder"] if found else []
    if "collection" in metrics:  # a collection's file, by its name before it had its own
        return ["the results of seeds or a sweep, not of a single run"]
    if metrics.get("format") != FORMAT:
        return ["results of an older version (metrics.json of another layout)"]
    problems = [
        f"settings: {difference}" for difference in differences(_entry(metrics, ("run", "settings")) or {}, settings)
    ]
    if problems:
        return problems  # every result then differs in the same way; the settings say it once
    labels_by_difference: dict[tuple, list[str]] = {}  # results that differ alike are named together
    for item in expected:
        found = []
        stored = _entry(metrics, item.entry)
        if stored is not None:
            found += compare(stored.get("provenance"), item.provenance)
        if item.checkpoint is not None and (out_dir / item.checkpoint).exists():
            meta, _ = read_checkpoint(out_dir / item.checkpoint)
            found += [d for d in compare(meta.get("fingerprint"), item.provenance) if d not in found]
        if found:
            labels_by_difference.setdefault(tuple(found), []).append(item.label)
    for found, labels in labels_by_difference.items():
        more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
        problems.append(f"{', '.join(labels)}: " + "; ".join(found[:3]) + more)
    return problems


def entries(folder: Path) -> list[str]:
    """The names in ``folder``, less its lock file and a metrics.json or collection.json temporary left by a
    process killed while writing it."""
    return sorted(path.name for path in Path(folder).iterdir() if path.name != LOCK and not _temporary(path.name))


def _temporary(name: str) -> bool:
    return name.startswith(("metrics.json.", COLLECTION + ".")) and name.endswith(".tmp")


def move_aside(out_dir: Path) -> Path:
    """Rename ``out_dir`` to a sibling ``<name>.moved-<YYYYmmdd-HHMMSS>`` (never deleting); returns the new path."""
    out_dir = Path(out_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, count = out_dir.with_name(f"{out_dir.name}.moved-{stamp}"), 1
    while target.exists():
        count += 1
        target = out_dir.with_name(f"{out_dir.name}.moved-{stamp}-{count}")
    os.rename(out_dir, target)
    return target


def claim(out_dir: Path, run: dict) -> None:
    """Create the folder if needed and record the run's preset, overrides, settings and versions.

    Call only while holding the folder (:func:`take`), whose check found no conflict: the settings are then the
    folder's already, or it is new.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = read_metrics(out_dir)
    metrics["format"] = FORMAT
    metrics["run"] = {**metrics.get("run", {}), **run}
    _write(out_dir, metrics)


def store(out_dir: Path, entry: tuple[str, ...], value: dict, seconds: dict[str, float]) -> None:
    """Write one result at ``entry`` (e.g. ``("mnist", "sparse")``) and the wall time of its stage."""
    metrics = read_metrics(out_dir)
    parent = metrics
    for key in entry[:-1]:
        parent = parent.setdefault(key, {})
    parent[entry[-1]] = value
    run = metrics.setdefault("run", {})
    run["seconds"] = {**run.get("seconds", {}), **seconds}
    _write(out_dir, metrics)


def results_data(metrics: dict) -> dict[str, dict]:
    """The data identity of every stored model, by label (``mnist/<kind>``, ``frey/<likelihood>``)."""
    found = {
        f"{part}/{kind}": result.get("provenance", {}).get("data")
        for part in ("mnist", "frey")
        for kind, result in metrics.get(part, {}).items()
    }
    return {label: data for label, data in found.items() if data}


def _write(out_dir: Path, metrics: dict) -> None:
    """Replace metrics.json atomically, with the folder's data sources derived from the results it holds."""
    data = results_data(metrics)
    run = metrics.setdefault("run", {})
    run["stand_in"] = any(identity["stand_in"] for identity in data.values())
    run["data_source"] = "; ".join(dict.fromkeys(identity["source"] for identity in data.values()))
    write_metrics(out_dir, metrics)


def to_json(value):
    """``value`` with every non-finite float replaced by its string in :data:`NON_FINITE`."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    return value


def from_json(value):
    """The inverse of :func:`to_json`: the strings of :data:`NON_FINITE` become floats again."""
    if isinstance(value, str):
        return NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {key: from_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_json(item) for item in value]
    return value


def write_metrics(out_dir: Path, metrics: dict) -> None:
    """Replace ``out_dir/metrics.json`` (see :func:`write_document`)."""
    write_document(Path(out_dir) / "metrics.json", metrics)


def write_document(path: Path, document: dict) -> None:
    """Replace the file ``path`` atomically (never half written, with the mode of any new file: see
    :func:`minidl.serialization.atomic_write`), as RFC 8259 JSON (:func:`to_json`)."""
    with atomic_write(Path(path), "w") as handle:
        json.dump(to_json(document), handle, indent=1, allow_nan=False)
