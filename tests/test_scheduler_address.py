"""``--scheduler ADDRESS`` against anything that is not a Dask scheduler: a one-line error within the 5 s the
README promises, never a hang, a traceback or a huge allocation, and Ctrl-C ends the wait at once."""

import contextlib
import http.server
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from experiments import cluster, pipeline

ROOT = Path(__file__).resolve().parents[1]
PROMISED = cluster.CONNECT_TIMEOUT + 1.0  # the 5 s, and a second to print the error and return

pytest.importorskip("distributed", reason="the cluster extra: pip install -e '.[cluster]'")


class Listener:
    """A TCP listener on 127.0.0.1 that answers each connection with ``answer`` (None: nothing) and holds it open."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer, self.held = answer, []
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.socket.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.socket.accept()
                self.held.append(connection)
                if self.answer is not None:
                    connection.sendall(self.answer)

    def close(self) -> None:
        for connection in self.held:
            connection.close()
        self.socket.close()


@contextlib.contextmanager
def listening(answer: bytes | None):
    listener = Listener(answer)
    try:
        yield listener
    finally:
        listener.close()


@contextlib.contextmanager
def http_server(folder: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args):
            super().__init__(*args, directory=str(folder))

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def sweep(capsys, address: str) -> tuple[int, str, float]:
    """The sweep's exit code, its one line of stderr and its seconds, with ``--scheduler address``."""
    started = time.perf_counter()
    code = pipeline.main(["sweep", "--preset", "smoke", "--grid", "epochs=1,2", "--scheduler", address])
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert not Path("runs").exists()  # nothing written
    return code, err, seconds


@pytest.mark.parametrize(
    "address, message",
    [
        ("not-an-address", "--scheduler not-an-address: not an address; expected tcp://HOST:PORT"),
        ("tcp://127.0.0.1", "not an address"),
        ("tcp://127.0.0.1:70000", "the port 70000 is not in 1-65535"),
        ("tls://127.0.0.1:8786", "the scheme tls:// is not supported"),
    ],
)
def test_a_malformed_address_is_a_usage_error_at_once(offline, capsys, address, message):
    code, err, seconds = sweep(capsys, address)
    assert code == 2 and message in err and seconds < 1


def test_a_closed_port_cannot_be_reached(offline, capsys):
    with socket.create_server(("127.0.0.1", 0)) as closed:
        address = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
    code, err, seconds = sweep(capsys, address)
    assert code == 1 and f"Cannot reach the Dask scheduler at {address}" in err and seconds < PROMISED


def test_a_silent_listener_is_not_a_scheduler(offline, capsys):
    with listening(None) as silent:
        code, err, seconds = sweep(capsys, silent.address)
    assert code == 2 and f"--scheduler {silent.address}: not a Dask scheduler" in err
    assert "no Dask handshake within 5 s" in err and seconds < PROMISED


def test_an_http_server_is_not_a_scheduler(offline, capsys):
    with http_server(offline) as address:
        code, err, seconds = sweep(capsys, address)
    assert code == 2 and f"--scheduler {address}: not a Dask scheduler" in err and seconds < PROMISED


def test_an_answer_that_announces_exabytes_is_refused_unread(offline, capsys):
    with listening(struct.pack("Q", 0x30 << 56) + b"\xff" * 64) as garbage:  # ~3 EiB to follow, it says
        code, err, seconds = sweep(capsys, garbage.address)
    assert code == 2 and "not a Dask scheduler (its answer announces 3,458,764,513,820,540,928 bytes" in err
    assert seconds < PROMISED


def test_an_http_answer_is_shown(offline, capsys):
    with listening(b"HTTP/1.0 400 Bad request\r\n\r\n") as web:
        code, err, _ = sweep(capsys, web.address)
    assert code == 2 and "not a Dask scheduler (it answered 'HTTP/1.0 400 Bad request')" in err


def test_a_peer_that_hangs_up_is_not_a_scheduler(offline, capsys):
    with socket.create_server(("127.0.0.1", 0)) as server:

        def hang_up():
            connection, _ = server.accept()
            connection.close()

        threading.Thread(target=hang_up, daemon=True).start()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        code, err, _ = sweep(capsys, address)
    assert code == 2 and "not a Dask scheduler (it closed the connection without answering)" in err


def test_a_real_scheduler_answers_the_probe():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1", dashboard_address=None
    ) as local:
        host, port = cluster.parse_address(local.scheduler_address)
        handshake = cluster.probe(host, port, local.scheduler_address)
        assert list(handshake["python"]) == list(sys.version_info[:3])
        client = cluster.connect(local.scheduler_address)
        try:
            assert client.scheduler.address == local.scheduler_address
        finally:
            client.close()


def test_ctrl_c_ends_the_wait_for_a_silent_listener_at_once(offline):
    with listening(None) as silent:
        environment = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1"}
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "experiments",
                "sweep",
                "--preset",
                "smoke",
                "--grid",
                "epochs=1,2",
                "--scheduler",
                silent.address,
            ],
            cwd=offline,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not silent.held and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # until the command has connected and waits for an answer
        assert silent.held, "the command never connected"
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        try:
            _, err = process.communicate(timeout=10)
        finally:
            process.kill()
        assert time.monotonic() - interrupted < 3
    assert process.returncode == 130 and err.strip() == "interrupted; run the same command again to continue", err
