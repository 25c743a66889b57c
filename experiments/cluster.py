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

import contextlib
import importlib.util
import os
import pickle
import re
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

from experiments import run_folder, workers
from experiments.errors import UsageError
from minidl.serialization import new_folder_mode

CONNECT_TIMEOUT = 5  # seconds for the scheduler's address to answer as a Dask scheduler, whatever is there
INSTALL = "pip install -e '.[cluster]' (or pip install 'dask[distributed]')"
ADDRESS = re.compile(r"(?:tcp://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})/?")
HANDSHAKE_LIMIT = 1 << 16  # bytes: a scheduler's handshake is a few dozen; a larger length prefix is not Dask's


class ClusterError(run_folder.FolderError):
    """The Dask scheduler cannot be reached, or Dask is not installed; nothing was run."""


def _dask():
    try:
        from distributed import Client, KilledWorker, as_completed
    except ImportError:
        raise ClusterError(
            f"--scheduler runs the sweep on a Dask cluster, and Dask is not installed here: {INSTALL}."
        ) from None
    return Client, KilledWorker, as_completed


def parse_address(address: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` or ``HOST:PORT`` -> (HOST, PORT); the command line's UsageError otherwise."""
    match = ADDRESS.fullmatch(address.strip())
    port = int(match["port"]) if match else 0
    if not match or not 0 < port < 65536:
        scheme = address.partition("://")[0] if "://" in address else None
        why = (
            f"the port {port} is not in 1-65535"
            if match
            else f"the scheme {scheme}:// is not supported"
            if scheme not in (None, "tcp")
            else "not an address"
        )
        raise UsageError(
            f"--scheduler {address}: {why}; expected tcp://HOST:PORT or HOST:PORT with a port in "
            "1-65535, e.g. --scheduler tcp://10.0.0.5:8786."
        )
    return match["host"].strip("[]"), port


def connect(address: str, timeout: float = CONNECT_TIMEOUT):
    """A Dask client of the scheduler at ``address``, which must answer as one within ``timeout`` seconds.

    Raises the command line's UsageError for a malformed address or a peer that is not a Dask scheduler, and
    ClusterError when nothing answers there (or Dask is not installed). The address is probed before any
    Dask client exists (see :func:`probe`), so no answer -- silence, an HTTP page, garbage -- can keep it
    waiting past ``timeout``, and Ctrl-C ends the wait at once.
    """
    host, port = parse_address(address)
    if importlib.util.find_spec("distributed") is None:
        _dask()  # raises, saying how to install it
    probe(host, port, address, timeout)
    Client, _, _ = _dask()
    try:
        return Client(address, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise ClusterError(
            f"Cannot reach the Dask scheduler at {address} within {timeout:g} s "
            f"({type(error).__name__}: {error}); nothing was run. Start it (dask scheduler) or check "
            "the address."
        ) from None


def probe(host: str, port: int, address: str, timeout: float = CONNECT_TIMEOUT) -> dict:
    """The handshake of the Dask scheduler at ``host:port``, read within ``timeout`` seconds; raises otherwise.

    The exchange runs in a daemon thread while this one waits for it with a hard deadline, so that neither a
    slow name lookup nor a peer that never answers can outlast ``timeout``, and Ctrl-C (KeyboardInterrupt,
    raised in this thread) ends the wait at any moment. What the peer announces is checked before it is
    trusted: a length prefix beyond :data:`HANDSHAKE_LIMIT` is refused, never allocated.
    """
    deadline = time.monotonic() + timeout
    outcome: dict = {}
    finished = threading.Event()

    def attempt():
        try:
            outcome["handshake"] = _handshake(host, port, address, timeout, deadline)
        except BaseException as error:  # noqa: BLE001  (handed to the waiting thread)
            outcome["error"] = error
        finally:
            finished.set()

    threading.Thread(target=attempt, name="minidl-scheduler-probe", daemon=True).start()
    if not finished.wait(max(0.0, deadline - time.monotonic()) + 0.25):
        raise ClusterError(
            f"Cannot reach the Dask scheduler at {address} within {timeout:g} s (no answer); nothing "
            "was run. Start it (dask scheduler) or check the address."
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["handshake"]


def _handshake(host: str, port: int, address: str, timeout: float, deadline: float) -> dict:
    """Connect, send a Dask client's handshake and read the scheduler's, every step before ``deadline``."""
    import msgpack  # Dask's wire format (a dependency of distributed)

    try:
        connection = socket.create_connection((host, port), timeout=_left(deadline))
    except OSError as error:
        reason = "no answer" if isinstance(error, TimeoutError) else f"{type(error).__name__}: {error}"
        raise ClusterError(
            f"Cannot reach the Dask scheduler at {address} within {timeout:g} s ({reason}); nothing "
            "was run. Start it (dask scheduler) or check the address."
        ) from None
    with connection:
        received = b""
        try:
            connection.settimeout(_left(deadline))
            connection.sendall(
                _frame(
                    {
                        "compression": None,
                        "python": tuple(sys.version_info)[:3],
                        "pickle-protocol": pickle.HIGHEST_PROTOCOL,
                    },
                    msgpack,
                )
            )
            received = _receive(connection, 8, deadline)
            (size,) = struct.unpack("Q", received)
            if not 16 <= size <= HANDSHAKE_LIMIT:
                with contextlib.suppress(OSError):  # a little more of its answer, to show what it is
                    connection.settimeout(0.2)
                    received += connection.recv(64)
                raise ValueError(
                    f"it answered {_shown(received)}"
                    if received[:4].isascii() and received[:4].isalpha()
                    else f"its answer announces {size:,} bytes, where a Dask handshake has a few dozen"
                )
            received += _receive(connection, size, deadline)
            return _unframe(received[8:], msgpack)
        except TimeoutError:
            sent = f"; it sent {_shown(received)}" if received else ""
            raise UsageError(
                f"--scheduler {address}: not a Dask scheduler (it accepted the connection but "
                f"gave no Dask handshake within {timeout:g} s{sent}); nothing was run."
            ) from None
        except (ConnectionResetError, BrokenPipeError):  # a peer that hangs up at once may reset instead
            raise UsageError(
                f"--scheduler {address}: not a Dask scheduler (it closed the connection without "
                "answering); nothing was run."
            ) from None
        except (OSError, ValueError, struct.error, msgpack.UnpackException) as error:
            raise UsageError(f"--scheduler {address}: not a Dask scheduler ({error}); nothing was run.") from None


def _left(deadline: float) -> float:
    """Seconds to ``deadline``; TimeoutError once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _receive(connection: socket.socket, size: int, deadline: float) -> bytes:
    """Exactly ``size`` bytes before ``deadline``; TimeoutError, or ValueError when the peer closes first."""
    chunks, count = [], 0
    while count < size:
        connection.settimeout(_left(deadline))
        chunk = connection.recv(min(size - count, 1 << 16))
        if not chunk:
            got = b"".join(chunks)
            raise ValueError(
                "it closed the connection " + (f"after sending {_shown(got)}" if got else "without answering")
            )
        chunks.append(chunk)
        count += len(chunk)
    return b"".join(chunks)


def _frame(message: dict, msgpack) -> bytes:
    """``message`` as Dask's TCP comm sends a small message: the byte count of what follows, the number of
    frames and their sizes (unsigned 64-bit each), then the one msgpack frame."""
    frame = msgpack.packb(message)
    header = struct.pack("QQ", 1, len(frame))
    return struct.pack("Q", len(header) + len(frame)) + header + frame


def _unframe(payload: bytes, msgpack) -> dict:
    """The handshake in ``payload`` (what follows the byte count); ValueError unless it is a Dask handshake."""
    (count,) = struct.unpack_from("Q", payload)
    sizes = struct.unpack_from(f"{count}Q", payload, 8) if 0 < count <= 16 else ()
    start = 8 + 8 * len(sizes)
    if not sizes or start + sum(sizes) > len(payload):
        raise ValueError(f"its answer {_shown(payload[:24])} is framed otherwise than Dask's")
    message = msgpack.unpackb(payload[start : start + sizes[0]])
    if not isinstance(message, dict) or not {"python", "pickle-protocol"} <= set(message):
        raise ValueError(f"its answer {str(message)[:60]!r} is not a Dask handshake")
    return message


def _shown(data: bytes) -> str:
    """The first bytes of an answer, printable: ``'HTTP/1.0 400 Bad request'``."""
    text = " ".join("".join(chr(b) if 32 <= b < 127 or b in b"\t\r\n" else "." for b in data[:48]).split())
    return repr(text + ("..." if len(data) > 48 else ""))


def write_run_files(folder: Path, files: dict[str, bytes]) -> Path:
    """Write a run's files into ``folder`` whole: into a temporary sibling first, renamed into place at the end.
    A folder already there (an unfinished earlier attempt) is moved aside, never deleted."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    temporary.chmod(new_folder_mode())  # mkdtemp's 0o700 would hide the run from the user's group
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
    log(
        f"{len(specs)} run(s) on the Dask cluster at {client.scheduler.address} "
        f"({len(client.scheduler_info()['workers'])} worker(s)), {threads} thread(s) per run; checkpoints "
        + (
            f"in {checkpoint_dir}"
            if checkpoint_dir
            else "in temporary folders of the workers (a lost run trains again; give --checkpoint-dir to resume it)"
        )
    )
    futures = {
        client.submit(
            workers.run_remote, spec, data_dir, checkpoint_dir, threads, key=f"minidl-run-{spec.key}-{spec.digest[:16]}"
        ): spec
        for spec in specs
    }
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
