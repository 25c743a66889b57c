"""The local worker processes of a sweep end with the command that started them, even when it is SIGKILLed."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import workers

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the processes from /proc")


def session_processes(session: int) -> list[int]:
    """The live processes of ``session`` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, pgrp, session
                if int(fields[3]) == session and fields[0] != "Z":
                    found.append(int(entry.name))
    return found


def wait_for_none(session: int, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    left = session_processes(session)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = session_processes(session)
    return left


def test_a_sigkilled_sweep_leaves_no_worker_behind(offline):
    out = offline / "sweep"
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "NUMBA_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    command = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "experiments",
            "sweep",
            "--preset",
            "smoke",
            "--models",
            "plain",
            "--grid",
            "learning_rate=1e-4,1e-2",
            "--workers",
            "2",
            "--threads",
            "1",
            "--no-progress",
            "--out",
            str(out),
        ],
        cwd=offline,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    left = []
    try:
        deadline = time.monotonic() + 180
        while command.poll() is None and time.monotonic() < deadline and len(list(out.glob("*/metrics.json"))) < 2:
            time.sleep(0.1)  # each worker writes its run's metrics.json as the run starts
        assert command.poll() is None, f"the sweep ended before its workers ran: {command.stderr.read()}"
        assert len(session_processes(command.pid)) >= 3  # the command and its two workers at least
        command.kill()
        command.wait()
        left = wait_for_none(command.pid, 5)
        assert not left, f"processes left behind: {[Path(f'/proc/{pid}/cmdline').read_bytes()[:90] for pid in left]}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            command.kill()
        for pid in left or session_processes(command.pid):  # the processes this test started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_without_prctl_the_watchdog_ends_a_worker_whose_parent_is_gone(monkeypatch):
    """The portable half (as on macOS, where prctl does not exist): a thread that watches the parent's pid."""
    parent, ended = {"pid": 4321}, []
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(workers, "PARENT_POLL", 0.02)
    monkeypatch.setattr(workers.os, "getppid", lambda: parent["pid"])
    monkeypatch.setattr(workers.os, "_exit", ended.append)
    workers.end_with_parent(4321)
    time.sleep(0.2)
    assert ended == []  # the parent lives
    parent["pid"] = 1  # the parent died: the worker was re-parented to init
    deadline = time.monotonic() + 5
    while not ended and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ended == [1]


def test_a_worker_whose_parent_died_before_it_started_ends_at_once(monkeypatch):
    ended = []
    monkeypatch.setattr(sys, "platform", "darwin")  # no prctl on the test runner itself
    monkeypatch.setattr(workers.os, "getppid", lambda: 1)
    monkeypatch.setattr(workers.os, "_exit", ended.append)
    monkeypatch.setattr(workers.threading, "Thread", lambda *args, **kwargs: pytest.fail("no watchdog needed"))
    with pytest.raises(pytest.fail.Exception):  # the fake _exit returns, so the code goes on to the watchdog
        workers.end_with_parent(4321)
    assert ended == [1]
