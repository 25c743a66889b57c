"""An interrupted command continues when it is given again: seeds and sweeps stopped by Ctrl-C (SIGINT) or SIGKILL
at several moments, then the same command, give number for number the results of an uninterrupted run.

The commands run as subprocesses, as a user runs them, on the offline stand-in with the smoke preset."""

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import collection
from experiments.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--preset", "smoke", "--models", "plain", "--set", "vae_epochs=1", "--no-progress"]
COMMANDS = {"seeds": ["run", "--seeds", "0,1", *FAST], "sweep": ["sweep", "--grid", "learning_rate=1e-3,1e-2", *FAST]}
THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS")


def _probe_module():
    """tools/probe_trust.py, whose readers of a results folder these tests share."""
    spec = importlib.util.spec_from_file_location("probe_trust", ROOT / "tools" / "probe_trust.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PROBE = _probe_module()
numbers = PROBE.numbers  # every value of every metrics.json and collection.json of a folder but timings, by path
a_checkpoint, a_run_recorded = PROBE.any_checkpoint, PROBE.run_recorded


def environment(home: Path) -> dict:
    """No data, no network; the threads left to the command (a resumed run must choose the same as before)."""
    env = {key: value for key, value in os.environ.items() if key != "MINIDL_DATA" and key not in THREADS}
    env.update(PYTHONPATH=str(ROOT), MINIDL_OFFLINE="1", XDG_CACHE_HOME=str(home / "cache"))
    return env


def start(args: list[str], folder: Path) -> subprocess.Popen:
    """The command in a process group of its own (as a terminal runs it: Ctrl-C reaches its workers too)."""
    return subprocess.Popen(
        [sys.executable, "-m", "experiments", *args, "--out", str(folder)],
        cwd=folder.parent,
        env=environment(folder.parent),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=answer_ctrl_c,
    )


def answer_ctrl_c() -> None:
    """SIGINT as in a terminal, also when this test runs in the background (which ignores it, and so would the
    command: an ignored signal stays ignored across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The numbers of each command run without interruption."""
    found = {}
    for name, args in COMMANDS.items():
        folder = tmp_path_factory.mktemp(name) / "out"
        code, err = finish(start(args, folder))
        assert code == 0, err
        found[name] = numbers(folder)
    return found


@pytest.mark.parametrize(
    "command, sent, moment",
    [
        ("seeds", signal.SIGINT, a_checkpoint),
        ("seeds", signal.SIGKILL, a_run_recorded),
        ("sweep", signal.SIGKILL, a_checkpoint),
        ("sweep", signal.SIGINT, a_run_recorded),
    ],
    ids=[
        "seeds-SIGINT-at-a-checkpoint",
        "seeds-SIGKILL-after-a-run",
        "sweep-SIGKILL-at-a-checkpoint",
        "sweep-SIGINT-after-a-run",
    ],
)
def test_an_interrupted_collection_continues_with_the_same_command(tmp_path, uninterrupted, command, sent, moment):
    folder = tmp_path / "out"
    process = start(COMMANDS[command], folder)
    deadline = time.monotonic() + 300
    while not moment(folder) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, f"the command ended before {moment.__name__}: nothing was interrupted"
    os.killpg(process.pid, sent)
    code, err = finish(process)
    if sent == signal.SIGINT:  # one line, no traceback, the conventional code of a Ctrl-C
        assert (code, err) == (130, "interrupted; run the same command again to continue\n")
    else:
        assert code == -signal.SIGKILL
    assert not (folder / "report.md").exists()
    code, err = finish(start(COMMANDS[command], folder))
    assert code == 0, err
    again = numbers(folder)
    assert again.keys() == uninterrupted[command].keys()
    differ = [path for path, value in again.items() if value != uninterrupted[command][path]]
    assert not differ, f"{len(differ)} of {len(again)} values differ, e.g. {differ[:3]}"
    assert any(value == "Infinity" for value in again.values())  # the comparison includes the infinite PSNRs


def test_a_folder_left_without_its_file_by_an_earlier_version_is_continued_only_if_all_of_it_is_ours(tmp_path):
    specs = collection.plan(PRESETS["smoke"], {"learning_rate": [1e-3, 1e-2]}, [0], ["mnist", "frey"])
    described = collection.description(PRESETS["smoke"], {"learning_rate": [1e-3, 1e-2]}, [0], ["mnist", "frey"], None)
    (tmp_path / specs[0].key / "checkpoints").mkdir(parents=True)
    (tmp_path / "metrics.json.x1y2.tmp").write_text("{")  # left by a process killed while writing
    (tmp_path / "collection.json.x3y4.tmp").write_text("{")
    assert collection.conflicts(tmp_path, described, specs) == []
    (tmp_path / "notes.txt").write_text("mine")
    assert collection.conflicts(tmp_path, described, specs) == [
        "files ['notes.txt'] but no collection.json: not a results folder"
    ]


def test_ctrl_c_while_the_workers_start_is_never_lost(tmp_path):
    """The moment the folder is claimed the local workers are being spawned; a Ctrl-C then must still stop the
    command (it was once ignored in that window, and the command ran to its end)."""
    for attempt, delay in enumerate([0, 0, 0, 0.01, 0.02, 0.05]):
        folder = tmp_path / str(attempt) / "out"
        folder.parent.mkdir()
        process = start(COMMANDS["seeds"], folder)
        while not PROBE.claimed(folder) and process.poll() is None:
            time.sleep(0.001)
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGINT)
        assert finish(process) == (130, "interrupted; run the same command again to continue\n"), delay
