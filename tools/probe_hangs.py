"""Repeat, end to end, the ways ``python -m experiments`` could hang or leave processes behind, and time each.

Each ``--scheduler`` case runs ``python -m experiments sweep ... --scheduler ADDRESS`` against something on this
machine's loopback that is not a Dask scheduler -- a malformed address, a closed port, a listener that never
answers, an HTTP server, a listener that answers with a huge length prefix -- and passes when the command ends
with one line on stderr and the expected exit code, at most 5 s (the README's promise) and a second to exit
after it connected to the listener, and within the command's start-up and those 5 s in all (the start-up
varies with the machine's load, so that bound is loose: it catches a hang, the first bound the promise). The
SIGINT case interrupts the command while it waits on the silent listener and passes when it ends at once
with exit code 130. The orphan case starts a local sweep in two worker processes, SIGKILLs the command once
the workers run, and passes when no process of its session is left a few seconds later.

    python tools/probe_hangs.py            # every case; exit 1 if any fails
    python tools/probe_hangs.py orphans    # the cases whose names contain "orphans"

Prints one line per case: PASS or FAIL, the measured seconds, and what was seen.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMISED = 5.0  # seconds the README promises for an answer from the scheduler's address
START_UP = 8.0  # the command's start-up (Python, NumPy, Numba): 1.5-6.5 s measured on 2 shared cores
SLACK = 1.0  # for the command to print its error and exit (0.2-0.5 s) once the 5 s are over
KILL_AFTER = 30.0  # a case still running then has hung: it is killed and fails
ORPHAN_GRACE = 5.0  # seconds for the workers to end after their parent was killed


def command_env(scratch: Path) -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MINIDL_OFFLINE": "1",
        "XDG_CACHE_HOME": str(scratch / "cache"),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "NUMBA_NUM_THREADS": "1",
    }


def experiments(scratch: Path, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "experiments", *args],
        cwd=scratch,
        env=command_env(scratch),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


# -- things on the loopback that are not Dask schedulers --------------------------------------------------


class Listener:
    """A TCP listener on 127.0.0.1 whose connections get ``answer`` (bytes, or None for silence) and are held open."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer, self.held, self.connected = answer, [], []
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.socket.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.socket.accept()
                self.connected.append(time.monotonic())
                self.held.append(connection)
                if self.answer is not None:
                    connection.sendall(self.answer)

    def close(self) -> None:
        for connection in self.held:
            connection.close()
        self.socket.close()


class HttpServer:
    """``python -m http.server`` in a thread, on 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.connected = []

        class Server(http.server.ThreadingHTTPServer):
            def verify_request(server, request, client_address) -> bool:  # noqa: N805
                self.connected.append(time.monotonic())
                return True

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def __init__(handler, *args):  # noqa: N805
                super().__init__(*args, directory=str(folder))

            def log_message(handler, *args):  # noqa: N805
                pass

        self.server = Server(("127.0.0.1", 0), Quiet)
        self.address = f"tcp://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> str:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


# -- the cases ---------------------------------------------------------------------------------------------


def sweep_args(scratch: Path, address: str) -> list[str]:
    return ["sweep", "--preset", "smoke", "--grid", "epochs=1,2", "--scheduler", address, "--out", str(scratch / "out")]


def finish(process: subprocess.Popen, limit: float) -> tuple[int | None, str, float]:
    """Wait for ``process`` up to ``limit`` seconds (killing it then); its exit code (None: killed), stderr, and
    when it ended (time.monotonic)."""
    try:
        _, err = process.communicate(timeout=limit)
        return process.returncode, err, time.monotonic()
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        return None, err, time.monotonic()


def judge(
    name: str, code: int | None, err: str, seconds: float, expected_code: int, limit: float, waited: float | None = None
) -> bool:
    """PASS when the command ended with ``expected_code`` within ``limit`` seconds (and within the promised
    5 s of connecting, when ``waited`` says how long after its connection it ended), with one line on stderr."""
    lines = [line for line in err.splitlines() if line.strip()]
    problems = []
    if code is None:
        problems.append(f"still running after {seconds:.0f} s, killed")
    elif code != expected_code:
        problems.append(f"exit code {code}, expected {expected_code}")
    if seconds > limit:
        problems.append(f"took more than {limit:g} s")
    if waited is not None and waited > PROMISED + SLACK:
        problems.append(f"ended {waited:.2f} s after connecting, more than the promised {PROMISED:g} s")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr")
    if "Traceback" in err or "Exception ignored" in err:
        problems.append("a traceback")
    shown = lines[-1] if lines else "(no output)"
    after = f" ({waited:5.2f} s after connecting)" if waited is not None else " " * 27
    print(
        f"{'FAIL' if problems else 'PASS'} {name:<19} {seconds:6.2f} s{after}  exit {code}  "
        f"{'; '.join(problems) + ' | ' if problems else ''}{shown[:140]}",
        flush=True,
    )
    return not problems


def scheduler_case(scratch: Path, name: str, address: str, expected_code: int, limit: float, server=None) -> bool:
    """The sweep with ``--scheduler address``; ``server``, when there is one, tells when the command connected."""
    connections = len(server.connected) if server is not None else 0
    started = time.monotonic()
    code, err, ended = finish(experiments(scratch, *sweep_args(scratch, address)), KILL_AFTER)
    waited = (
        ended - server.connected[connections] if server is not None and len(server.connected) > connections else None
    )
    return judge(name, code, err, ended - started, expected_code, limit, waited)


def sigint_case(scratch: Path, silent: Listener) -> bool:
    """Ctrl-C while the command waits for the silent listener's answer: it must end at once, exit code 130."""
    connections = len(silent.connected)
    process = experiments(scratch, *sweep_args(scratch, silent.address))
    deadline = time.monotonic() + KILL_AFTER
    while len(silent.connected) == connections and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until the command has connected and waits for an answer
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    interrupted = time.monotonic()
    code, err, ended = finish(process, KILL_AFTER)
    return judge("SIGINT (silent)", code, err, ended - interrupted, 130, 2.0)


def session_processes(session: int) -> list[int]:
    """The pids of the processes of ``session`` (Linux's /proc), zombies excluded."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
            if int(fields[3]) == session and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def orphan_case(scratch: Path) -> bool:
    """SIGKILL a local sweep with two worker processes once both run; its session must empty within seconds."""
    out = scratch / "orphans"
    process = experiments(
        scratch,
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
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and len(list(out.glob("*/metrics.json"))) < 2:
        time.sleep(0.2)  # each worker writes its run's metrics.json when the run starts
    if process.poll() is not None:
        print(
            f"FAIL {'orphans (SIGKILL)':<19}   0.00 s  the sweep ended (exit {process.returncode}) before its "
            f"workers were seen running: {process.stderr.read().strip()[-150:]}"
        )
        return False
    before = [pid for pid in session_processes(process.pid) if pid != process.pid]
    process.kill()
    process.wait()
    killed_at = time.monotonic()
    left = session_processes(process.pid)
    while left and time.monotonic() - killed_at < ORPHAN_GRACE:
        time.sleep(0.1)
        left = session_processes(process.pid)
    seconds = time.monotonic() - killed_at
    names = []
    for pid in left:  # ours: the processes of the session this script started
        with contextlib.suppress(OSError):
            names.append(Path(f"/proc/{pid}/cmdline").read_bytes()[:70].replace(b"\0", b" ").decode())
            os.kill(pid, signal.SIGKILL)
    print(
        f"{'FAIL' if left else 'PASS'} {'orphans (SIGKILL)':<19} {seconds:6.2f} s{' ' * 27}  {len(before)} "
        f"process(es) beside the command; {len(left)} left {ORPHAN_GRACE:g} s after it was killed"
        + (f": {names}" if names else ""),
        flush=True,
    )
    return not left


def main(argv=None) -> int:
    wanted = (argv if argv is not None else sys.argv[1:]) or [""]
    limit = PROMISED + START_UP
    results = []
    with tempfile.TemporaryDirectory(prefix="probe-hangs-") as folder:
        scratch = Path(folder)
        silent, huge = Listener(None), Listener(struct.pack("<Q", 0x30 << 56) + b"\xff" * 64)
        web = HttpServer(scratch)
        cases = [
            ("malformed address", lambda: scheduler_case(scratch, "malformed address", "not-an-address", 2, START_UP)),
            ("closed port", lambda: scheduler_case(scratch, "closed port", closed_port(), 1, limit)),
            ("silent listener", lambda: scheduler_case(scratch, "silent listener", silent.address, 2, limit, silent)),
            ("http.server", lambda: scheduler_case(scratch, "http.server", web.address, 2, limit, web)),
            ("huge length prefix", lambda: scheduler_case(scratch, "huge length prefix", huge.address, 2, limit, huge)),
            ("SIGINT (silent)", lambda: sigint_case(scratch, silent)),
            ("orphans (SIGKILL)", lambda: orphan_case(scratch)),
        ]
        try:
            for name, case in cases:
                if any(word in name for word in wanted):
                    results.append(case())
        finally:
            silent.close()
            huge.close()
            web.close()
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
