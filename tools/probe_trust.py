"""Probe, end to end, what a results folder can be trusted with: interrupted commands that continue, and two
commands on one folder.

    python tools/probe_trust.py [--models plain] [--keep]

Each command of ``python -m experiments`` (a run, ``run --seeds 0,1``, a sweep of two values) runs once without
interruption, then again into fresh folders, stopped by SIGINT (Ctrl-C, sent to its process group as a terminal
does) or SIGKILL at several moments -- each moment an event seen in the folder, not a time, so that a slow or
busy machine stops it at the same point -- and then given once more as it was. Every value of every
metrics.json and collection.json must then equal the uninterrupted run's, number for number (how long and where
each part ran excepted). Then two commands on one folder: the second must be refused at once naming the first,
and what the first writes must describe its own settings. One line per case, PASS or FAIL with its figures; the
exit code is the number of failures (0: all passed). Data: whatever the commands find (``MINIDL_DATA``,
``--data-dir``, the cache), as a user's command would.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMING = ("seconds", "where", "versions")  # what may differ between two runs of the same command
OVERRIDES = ["--set", "sparsity_weight=0.5", "--set", "vae_learning_rate=0.01"]


def commands(models: str | None) -> dict[str, list[str]]:
    common = ["--preset", "smoke", "--no-progress"] + (["--models", models] if models else [])
    return {
        "run": ["run", *common],
        "seeds": ["run", "--seeds", "0,1", *common],
        "sweep": ["sweep", "--grid", "sparsity_weight=1e-4,1e-3", *common],
    }


# -- moments: events in the folder ---------------------------------------------------------------------


def claimed(folder: Path) -> bool:
    """A run's folder holds metrics.json, and one of seeds or a sweep collection.json, from its first moment."""
    return (folder / "metrics.json").exists() or (folder / "collection.json").exists()


def checkpoint(name: str):
    def seen(folder: Path) -> bool:
        return (folder / "checkpoints" / name).exists() or any(folder.glob(f"*/checkpoints/{name}"))

    seen.__name__ = f"checkpoint {name} written"
    return seen


def any_checkpoint(folder: Path) -> bool:
    return any(folder.glob("*/checkpoints/*.npz"))


def run_recorded(folder: Path) -> bool:
    try:
        return bool(json.loads((folder / "collection.json").read_text())["runs"])
    except (OSError, ValueError, KeyError):
        return False


claimed.__name__, any_checkpoint.__name__, run_recorded.__name__ = (
    "folder claimed",
    "a run's first checkpoint",
    "a run recorded",
)
CASES = [  # command, signal, to the whole group (a terminal's Ctrl-C) or the parent process alone, moment
    ("run", signal.SIGINT, True, checkpoint("sparse.npz")),
    ("run", signal.SIGKILL, True, checkpoint("vae_bernoulli.npz")),
    ("seeds", signal.SIGINT, True, claimed),
    ("seeds", signal.SIGKILL, True, any_checkpoint),
    ("seeds", signal.SIGINT, False, any_checkpoint),
    ("seeds", signal.SIGKILL, True, run_recorded),
    ("sweep", signal.SIGKILL, True, claimed),
    ("sweep", signal.SIGINT, True, any_checkpoint),
    ("sweep", signal.SIGINT, True, run_recorded),
]


# -- running a command ---------------------------------------------------------------------------------


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a terminal, even when this probe runs in the background


def start(args: list[str], folder: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-m", "experiments", *args, "--out", str(folder)],
        cwd=folder.parent,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def finish(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=900)
    return process.returncode, err


def numbers(folder: Path) -> dict:
    """Every value of every metrics.json and collection.json under ``folder`` but timings, by path (RFC 8259 JSON
    only)."""
    found = {}

    def refuse(literal):
        raise ValueError(f"{literal} is not JSON")

    def walk(value, path):
        if isinstance(value, dict):
            for key, item in value.items():
                if not any(word in key for word in TIMING):
                    walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        else:
            found[path] = value

    for path in sorted([*folder.rglob("metrics.json"), *folder.rglob("collection.json")]):
        walk(json.loads(path.read_text(), parse_constant=refuse), str(path.relative_to(folder)))
    return found


def compare(found: dict, expected: dict) -> str | None:
    """None when equal, else what differs."""
    if found.keys() != expected.keys():
        missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
        return f"{len(missing)} values missing (e.g. {missing[:2]}), {len(extra)} extra (e.g. {extra[:2]})"
    differ = [path for path, value in found.items() if value != expected[path]]
    if differ:
        first = differ[0]
        return f"{len(differ)} of {len(found)} values differ, e.g. {first}: {expected[first]!r} -> {found[first]!r}"
    return None


# -- the cases -----------------------------------------------------------------------------------------


def interrupted(
    work: Path, name: str, args: list[str], sent: signal.Signals, group: bool, moment, reference: dict
) -> tuple[bool, str]:
    folder = work / f"{name}-{sent.name}-{'group' if group else 'parent'}-{moment.__name__.replace(' ', '_')}" / "out"
    folder.parent.mkdir(parents=True)
    started = time.monotonic()
    process = start(args, folder)
    while not moment(folder) and process.poll() is None:
        time.sleep(0.01)
    at = time.monotonic() - started
    if process.poll() is not None:
        return False, f"the command ended (exit {process.returncode}) before {moment.__name__}: nothing interrupted"
    (os.killpg if group else os.kill)(process.pid, sent)
    code, err = finish(process)
    expected_code = 130 if sent == signal.SIGINT else -signal.SIGKILL
    if code != expected_code or (
        sent == signal.SIGINT and err != "interrupted; run the same command again to continue\n"
    ):
        return False, f"stopped at {at:.1f} s: exit {code} (expected {expected_code}), stderr {err[-300:]!r}"
    again = time.monotonic()
    code, err = finish(start(args, folder))
    took = time.monotonic() - again
    if code != 0:
        return False, (
            f"stopped at {at:.1f} s (exit {expected_code}); the same command again: exit {code}: {err[-400:]!r}"
        )
    found = numbers(folder)
    difference = compare(found, reference)
    if difference:
        return False, f"stopped at {at:.1f} s, continued (exit 0, {took:.1f} s), but {difference}"
    return True, (
        f"stopped at {at:.1f} s (exit {expected_code}), the same command again: exit 0 in {took:.1f} s; "
        f"{len(found)} values equal to the uninterrupted run's"
    )


def two_writers_together(work: Path, args: list[str], reference: dict) -> tuple[bool, str]:
    """The same folder, the preset and the preset with two overrides, started at the same moment."""
    folder = work / "together" / "out"
    folder.parent.mkdir(parents=True)
    first, second = start(args, folder), start(args + OVERRIDES, folder)
    started = time.monotonic()
    outcome = {}
    while len(outcome) < 2:
        for name, process in (("plain", first), ("overrides", second)):
            if name not in outcome and process.poll() is not None:
                outcome[name] = (*finish(process), time.monotonic() - started)
        time.sleep(0.02)
    codes = sorted(code for code, _, _ in outcome.values())
    if codes != [0, 2]:
        return False, f"exit codes {codes}, expected one 0 and one 2: {[err[-200:] for _, err, _ in outcome.values()]}"
    winner = next(name for name, (code, _, _) in outcome.items() if code == 0)
    loser = "overrides" if winner == "plain" else "plain"
    pid = (first if winner == "plain" else second).pid
    _, err, seconds = outcome[loser]
    if f"is in use by process {pid} (command python -m experiments " not in err or err.count("\n") != 1:
        return False, f"the refused command did not name process {pid} in one line: {err!r}"
    metrics = json.loads((folder / "metrics.json").read_text())
    settings = metrics["run"]["settings"]
    disagree = [
        f"{part}/{kind}"
        for part in ("mnist", "frey")
        for kind, result in metrics.get(part, {}).items()
        if any(settings.get(key) != value for key, value in result["provenance"]["settings"].items())
    ]
    report = (folder / "report.md").read_text()
    said = "`sparsity_weight=0.5`, `vae_learning_rate=0.01`" if winner == "overrides" else "none"
    if disagree or f"Overrides of the preset: {said}." not in report:
        return False, f"the {winner} command's folder mislabels its results: {disagree or 'overrides in report'}"
    difference = compare(numbers(folder), reference) if winner == "plain" else None
    if difference:
        return False, f"the plain command won, but {difference}"
    return True, (
        f"the {winner} command ran (exit 0), the other was refused with exit 2 after {seconds:.1f} s "
        f"naming process {pid}; every model's fingerprint agrees with the report's overrides ({said})"
    )


def second_writer_on_a_collection(work: Path, args: list[str], reference: dict) -> tuple[bool, str]:
    folder = work / "second-collection" / "out"
    folder.parent.mkdir(parents=True)
    first = start(args, folder)
    while not claimed(folder) and first.poll() is None:
        time.sleep(0.01)
    started = time.monotonic()
    code, err = finish(start(args, folder))
    seconds = time.monotonic() - started
    still = first.poll() is None
    first_code, first_err = finish(first)
    if code != 2 or f"is in use by process {first.pid} " not in err or not still:
        return False, (
            f"second command: exit {code} after {seconds:.1f} s ({err[-200:]!r}); first still running: {still}"
        )
    difference = compare(numbers(folder), reference) if first_code == 0 else f"first command exit {first_code}"
    if difference:
        return False, f"the second was refused, but {difference}"
    return True, (
        f"the same command again while the first ran: exit 2 after {seconds:.1f} s naming process "
        f"{first.pid}; the first: exit 0, its {len(numbers(folder))} values equal to an undisturbed run's"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None, help="MNIST models of every command (default: all four)")
    parser.add_argument("--keep", action="store_true", help="keep the folders (printed) instead of deleting them")
    options = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="probe-trust-"))
    failures, began = 0, time.monotonic()

    def report(passed: bool, case: str, detail: str) -> None:
        nonlocal failures
        failures += not passed
        print(f"{'PASS' if passed else 'FAIL'}  {case}: {detail}", flush=True)

    try:
        references = {}
        for name, args in commands(options.models).items():
            folder = work / f"{name}-uninterrupted" / "out"
            folder.parent.mkdir(parents=True)
            started = time.monotonic()
            code, err = finish(start(args, folder))
            if code != 0:
                report(False, f"{name} uninterrupted", f"exit {code}: {err[-400:]!r}")
                return failures
            references[name] = numbers(folder)
            print(
                f"      {name} uninterrupted: {time.monotonic() - started:.1f} s, {len(references[name])} values "
                f"(python -m experiments {' '.join(args)})",
                flush=True,
            )
        for name, sent, group, moment in CASES:
            case = f"{name} {sent.name} to the {'process group' if group else 'parent alone'} at {moment.__name__}"
            passed, detail = interrupted(
                work, name, commands(options.models)[name], sent, group, moment, references[name]
            )
            report(passed, case, detail)
        passed, detail = two_writers_together(work, commands(options.models)["run"], references["run"])
        report(passed, "run: two writers on one folder started together", detail)
        passed, detail = second_writer_on_a_collection(work, commands(options.models)["seeds"], references["seeds"])
        report(passed, "seeds: a second writer while the first runs", detail)
    finally:
        if options.keep:
            print(f"      folders kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{len(CASES) + 2 - failures} passed, {failures} failed in {time.monotonic() - began:.0f} s")
    return min(failures, 100)


if __name__ == "__main__":
    raise SystemExit(main())
