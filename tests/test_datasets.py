"""Dataset loading: IDX and .mat parsing, checksums, search order, downloads that leave nothing
behind, and the real files when $MINIDL_DATA holds them."""

import gzip
import hashlib
import http.server
import os
import re
import socket
import struct
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from experiments import datasets
from experiments.datasets import DataDamaged, DatasetError, DataUnavailable

REAL = os.environ.get("MINIDL_DATA")
real_data = pytest.mark.skipif(
    not (REAL and Path(REAL, "mnist").is_dir()), reason="set MINIDL_DATA to a folder with the real datasets"
)


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No test reads the real environment's data or writes to the real user cache."""
    monkeypatch.delenv("MINIDL_DATA", raising=False)
    monkeypatch.delenv("MINIDL_OFFLINE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def write_mnist(folder: Path, n_train=5, n_test=3, compress=True, seed=0) -> dict:
    """Small fake MNIST files; returns the checksums to verify them with."""
    rng = np.random.default_rng(seed)
    contents = {
        "train-images": idx_bytes(rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)),
        "train-labels": idx_bytes(rng.integers(0, 10, n_train, dtype=np.uint8)),
        "test-images": idx_bytes(rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)),
        "test-labels": idx_bytes(rng.integers(0, 10, n_test, dtype=np.uint8)),
    }
    (folder / "mnist").mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        path = folder / (datasets.FILES[name].relative + (".gz" if compress else ""))
        path.write_bytes(gzip.compress(data) if compress else data)
    return {name: sha(data) for name, data in contents.items()}


@pytest.mark.parametrize("compress", [True, False])
def test_load_mnist_from_fixture(tmp_path, compress):
    checksums = write_mnist(tmp_path, compress=compress)
    x_train, y_train, x_test, y_test = datasets.load_mnist(tmp_path, fetch=False, checksums=checksums)
    assert x_train.shape == (5, 1, 28, 28) and x_test.shape == (3, 1, 28, 28)
    assert x_train.dtype == np.float32 and y_train.dtype == np.uint8
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0


def test_search_order_argument_then_environment_then_cache(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    checksums_first = write_mnist(first, seed=1)
    checksums_second = write_mnist(second, seed=2)
    monkeypatch.setenv("MINIDL_DATA", str(second))
    datasets.load_mnist(first, fetch=False, checksums=checksums_first)
    datasets.load_mnist(None, fetch=False, checksums=checksums_second)
    monkeypatch.delenv("MINIDL_DATA")
    checksums_cache = write_mnist(datasets.cache_dir(), seed=3)
    datasets.load_mnist(None, fetch=False, checksums=checksums_cache)


def test_checksum_mismatch_names_file_and_digests(tmp_path):
    checksums = write_mnist(tmp_path)
    wrong = dict(checksums, **{"test-labels": "0" * 64})
    with pytest.raises(DatasetError, match=r"t10k-labels.*expected sha256 0{64}, found [0-9a-f]{64}.*fetch"):
        datasets.load_mnist(tmp_path, fetch=False, checksums=wrong)


def flip_bytes_keeping_mtime(path: Path, start: int, count: int = 64) -> None:
    """Damage ``path`` in place and set its modification time back: only its content tells."""
    status = path.stat()
    data = bytearray(path.read_bytes())
    data[start : start + count] = bytes(byte ^ 0xFF for byte in data[start : start + count])
    path.write_bytes(bytes(data))
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert path.stat().st_size == status.st_size and path.stat().st_mtime_ns == status.st_mtime_ns


def test_damage_after_a_successful_load_is_noticed_by_loading_and_by_verify(tmp_path, capsys):
    checksums = write_mnist(tmp_path, compress=False)
    datasets.load_mnist(tmp_path, fetch=False, checksums=checksums)  # verified once, and then damaged
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte"
    flip_bytes_keeping_mtime(path, start=100)
    found = sha(path.read_bytes())
    with pytest.raises(DataDamaged, match=f"expected sha256 {checksums['test-images']}, found {found}"):
        datasets.load_mnist(tmp_path, fetch=False, checksums=checksums)
    with pytest.raises(DataDamaged, match=f"expected sha256 {checksums['test-images']}, found {found}"):
        datasets.verify(datasets.FILES["test-images"], path, checksums["test-images"])


def cli_rows(capsys) -> dict[str, str]:
    """The table of ``python -m experiments.datasets verify``: status by file."""
    rows = capsys.readouterr().out.splitlines()[1:]
    return {row.split()[0]: row for row in rows if row.strip()}


def test_a_damaged_frey_file_with_its_old_mtime_fails_verify_and_loading(tmp_path, monkeypatch, capsys):
    digests = {**write_mnist(tmp_path), "frey": write_frey(tmp_path)}
    digest = digests["frey"]
    monkeypatch.setattr(
        datasets, "FILES", {name: replace(file, sha256=digests[name]) for name, file in datasets.FILES.items()}
    )
    datasets.load_frey_faces(tmp_path, fetch=False)
    assert datasets.main(["verify", "--data-dir", str(tmp_path)]) == 0
    assert cli_rows(capsys)["frey/frey_rawface.mat"].endswith("  ok")
    path = tmp_path / "frey" / "frey_rawface.mat"
    flip_bytes_keeping_mtime(path, start=path.stat().st_size - 200)  # inside the array's data
    assert datasets.main(["verify", "--data-dir", str(tmp_path)]) == 1
    row = cli_rows(capsys)["frey/frey_rawface.mat"]
    assert re.search(f"FAILED: .*checksum mismatch .*expected sha256 {digest}, found [0-9a-f]{{64}}", row), row
    with pytest.raises(DataDamaged, match=f"expected sha256 {digest}, found [0-9a-f]{{64}}"):
        datasets.load_frey_faces(tmp_path, fetch=False)


def test_each_file_is_read_once_per_load(tmp_path, monkeypatch):
    checksums = write_mnist(tmp_path)
    digest = write_frey(tmp_path)
    reads = []
    monkeypatch.setattr(
        Path, "read_bytes", lambda self, original=Path.read_bytes: reads.append(self.name) or original(self)
    )
    datasets.load_mnist(tmp_path, fetch=False, checksums=checksums)
    datasets.load_frey_faces(tmp_path, fetch=False, checksum=digest)
    assert sorted(reads) == sorted(
        [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "frey_rawface.mat",
        ]
    )
    assert not datasets.cache_dir().exists()  # nothing is remembered between uses


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: gzip.compress(data)[:-20], "damaged or truncated"),
        (lambda data: gzip.compress(b"\x01\x02" + data[2:]), "bad magic"),
        (lambda data: gzip.compress(data[:2] + b"\x0d" + data[3:]), "type code 0x0d"),
        (lambda data: gzip.compress(data[:-1]), "need 3 bytes of data, the file has 2"),
    ],
)
def test_bad_idx_files_get_clear_errors(tmp_path, damage, message):
    checksums = write_mnist(tmp_path)
    path = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(damage(data))
    try:  # let the damaged content pass the checksum, so that the parser's own error is tested
        checksums["test-labels"] = sha(gzip.decompress(path.read_bytes()))
    except EOFError:
        pass  # a truncated gzip cannot even be decompressed
    with pytest.raises(DatasetError, match=message):
        datasets.load_mnist(tmp_path, fetch=False, checksums=checksums)


def test_image_and_label_counts_must_agree(tmp_path):
    checksums = write_mnist(tmp_path)
    labels = idx_bytes(np.zeros(4, dtype=np.uint8))
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    checksums["test-labels"] = sha(labels)
    with pytest.raises(DatasetError, match="3 images but 4 labels"):
        datasets.load_mnist(tmp_path, fetch=False, checksums=checksums)


def write_frey(folder: Path, variable="ff", n=7) -> str:
    ff = np.random.default_rng(0).integers(0, 256, (560, n), dtype=np.uint8)
    (folder / "frey").mkdir(parents=True, exist_ok=True)
    savemat(folder / "frey" / "frey_rawface.mat", {variable: ff})
    return sha(np.ascontiguousarray(ff).tobytes())


def test_load_frey_from_fixture(tmp_path):
    digest = write_frey(tmp_path)
    faces = datasets.load_frey_faces(tmp_path, fetch=False, checksum=digest)
    assert faces.shape == (7, 1, 28, 20) and faces.dtype == np.float32 and faces.max() <= 1.0


def test_mat_without_ff_is_rejected(tmp_path):
    write_frey(tmp_path, variable="faces")
    with pytest.raises(DatasetError, match="no variable 'ff'.*faces"):
        datasets.load_frey_faces(tmp_path, fetch=False)


def test_missing_files_without_download_say_what_to_do(tmp_path):
    advice = r"Put the file \(or its .gz\) at <folder>/frey/frey_rawface.mat.*MINIDL_DATA"
    with pytest.raises(DataUnavailable, match=advice):
        datasets.load_frey_faces(tmp_path, fetch=False)


def gzip_file(path: Path) -> Path:
    """Replace ``path`` by its .gz, as a user following the missing-file message might."""
    packed = path.with_name(path.name + ".gz")
    packed.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return packed


def test_a_gzipped_frey_file_is_read_and_verified(tmp_path):
    digest = write_frey(tmp_path)
    plain = datasets.load_frey_faces(tmp_path, fetch=False, checksum=digest)
    packed = gzip_file(tmp_path / "frey" / "frey_rawface.mat")
    assert datasets.find(datasets.FILES["frey"], [tmp_path]) == packed
    np.testing.assert_array_equal(datasets.load_frey_faces(tmp_path, fetch=False, checksum=digest), plain)
    with pytest.raises(DataDamaged, match=f"frey_rawface.mat.gz: checksum mismatch .*expected sha256 {'0' * 64}"):
        datasets.load_frey_faces(tmp_path, fetch=False, checksum="0" * 64)


# -- damaged is not unavailable ---------------------------------------------------------------------


def test_a_truncated_file_is_damaged_and_a_verified_copy_elsewhere_is_named(tmp_path, monkeypatch):
    good, damaged = tmp_path / "good", tmp_path / "damaged"
    checksums = write_mnist(good)
    write_mnist(damaged)
    path = damaged / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataDamaged, match=f"^{path}: cannot be read or decompressed") as caught:
        datasets.load_mnist(damaged, fetch=False, checksums=checksums)
    assert "verified copy" not in str(caught.value)
    monkeypatch.setenv("MINIDL_DATA", str(good))
    with pytest.raises(DataDamaged, match=f"^{path}: .*A verified copy exists at {good}/mnist/train-images"):
        datasets.load_mnist(damaged, fetch=False, checksums=checksums)


def test_a_file_of_another_version_is_damaged(tmp_path):
    checksums = write_mnist(tmp_path)
    with pytest.raises(DataDamaged, match="checksum mismatch"):
        datasets.load_mnist(tmp_path, fetch=False, checksums={**checksums, "train-labels": "0" * 64})


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_named_data_folder_that_does_not_exist_is_an_error(tmp_path, monkeypatch, how):
    missing = tmp_path / "typo"
    write_mnist(datasets.cache_dir())  # the cache has data, but the user named another folder
    if how == "environment":
        monkeypatch.setenv("MINIDL_DATA", str(missing))
    given = "MINIDL_DATA" if how == "environment" else "--data-dir"
    with pytest.raises(DataUnavailable, match=f"^{missing} \\(given as {given}\\) is not an existing folder"):
        datasets.load_mnist(missing if how == "argument" else None, fetch=False)


# -- downloads against a local server -------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}

    def do_GET(self):  # noqa: N802 (the http.server API)
        body, declared, *headers = self.routes.get(self.path, (None, None))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        for header in headers:
            self.send_header(*header)
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True  # a short body with a longer Content-Length is a cut connection

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", Handler.routes
    httpd.shutdown()
    httpd.server_close()
    Handler.routes = {}


def cache_files():
    cache = datasets.cache_dir()
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())


def test_download_tries_mirrors_until_a_verified_copy(server):
    base, routes = server
    good = idx_bytes(np.arange(6, dtype=np.uint8))
    packed = gzip.compress(good)
    corrupt = gzip.compress(idx_bytes(np.zeros(6, np.uint8)))
    routes["/corrupt.gz"] = (corrupt, len(corrupt))
    routes["/cut.gz"] = (packed[: len(packed) // 2], len(packed))
    routes["/good.gz"] = (packed, len(packed))
    mirrors = [f"{base}/missing.gz", f"{base}/corrupt.gz", f"{base}/cut.gz", f"{base}/good.gz"]
    lines = []
    path, labels = datasets.locate(
        "test-labels", None, mirrors=mirrors, expected=sha(good), progress=False, log=lines.append
    )
    assert path == datasets.cache_dir() / "mnist" / "t10k-labels-idx1-ubyte.gz"
    assert gzip.decompress(path.read_bytes()) == good and labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert cache_files() == ["mnist/t10k-labels-idx1-ubyte.gz"]
    assert [line.split(" (")[0] for line in lines] == [
        f"download {base}/missing.gz: failed, HTTP 404 Not Found",
        f"download {base}/corrupt.gz: failed, checksum mismatch for mnist/t10k-labels-idx1-ubyte: expected sha256 "
        f"{sha(good)}, found {sha(idx_bytes(np.zeros(6, np.uint8)))}",
        f"download {base}/cut.gz: failed, connection closed after {len(packed) // 2} of {len(packed)} bytes",
        f"download {base}/good.gz: ok, {len(packed)} bytes",
    ]


def test_a_gz_decoded_in_transit_is_stored_plain(server):
    """A server that sends a .gz with "Content-Encoding: gzip": the client decodes it, and the plain
    IDX bytes must not be stored under the .gz name."""
    base, routes = server
    good = idx_bytes(np.arange(6, dtype=np.uint8))
    packed = gzip.compress(good)
    routes["/t10k-labels-idx1-ubyte.gz"] = (packed, len(packed), ("Content-Encoding", "gzip"))
    path, labels = datasets.locate(
        "test-labels", None, mirrors=[f"{base}/t10k-labels-idx1-ubyte.gz"], expected=sha(good), progress=False
    )
    assert path == datasets.cache_dir() / "mnist" / "t10k-labels-idx1-ubyte"
    assert path.read_bytes() == good and labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert cache_files() == ["mnist/t10k-labels-idx1-ubyte"]


def test_failed_downloads_leave_nothing_behind(server):
    base, routes = server
    packed = gzip.compress(idx_bytes(np.arange(6, dtype=np.uint8)))
    routes["/cut.gz"] = (packed[:10], len(packed))
    routes["/corrupt.gz"] = (packed, len(packed))
    with pytest.raises(
        DatasetError, match=r"cut.gz: connection closed after 10 of .*corrupt.gz: checksum mismatch.*MINIDL_DATA"
    ):
        datasets.locate(
            "test-labels", None, mirrors=[f"{base}/cut.gz", f"{base}/corrupt.gz"], expected="0" * 64, progress=False
        )
    assert cache_files() == []


class Silent:
    """A server on loopback that accepts connections and never answers; counts the connections."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.accepted = []
        threading.Thread(target=self._accept, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def _accept(self):
        while True:
            try:
                self.accepted.append(self.socket.accept()[0])
            except OSError:
                return

    def close(self):
        for connection in self.accepted:
            connection.close()
        self.socket.close()


@pytest.fixture
def silent():
    server = Silent()
    yield server
    server.close()


def test_a_server_that_never_answers_costs_one_short_timeout_and_is_skipped_afterwards(silent, server):
    import time

    base, routes = server
    good = idx_bytes(np.arange(6, dtype=np.uint8))
    routes["/good.gz"] = (gzip.compress(good), len(gzip.compress(good)))
    lines, unreachable = [], set()
    started = time.perf_counter()
    for name in ("test-labels", "train-labels"):
        path = datasets.download(
            datasets.FILES[name],
            datasets.cache_dir(),
            [f"{silent.url}/{name}.gz", f"{base}/good.gz"],
            expected=sha(good),
            read_timeout=0.3,
            progress=False,
            log=lines.append,
            unreachable=unreachable,
        )
        assert gzip.decompress(path.read_bytes()) == good
    assert time.perf_counter() - started < 5
    assert len(silent.accepted) == 1  # the second file did not wait for the silent host again
    assert lines[0].startswith(f"download {silent.url}/test-labels.gz: failed, connected, then no data for 0.3 s (")
    assert lines[1].startswith(f"download {base}/good.gz: ok, ")
    assert lines[2] == (
        f"download {silent.url}/train-labels.gz: skipped ({silent.url[7:]} could not be reached for an earlier file)"
    )
    assert not [f for f in cache_files() if ".part" in f]


def test_stale_part_files_are_removed_and_live_ones_kept(server):
    base, routes = server
    good = idx_bytes(np.arange(6, dtype=np.uint8))
    routes["/good.gz"] = (gzip.compress(good), len(gzip.compress(good)))
    folder = datasets.cache_dir() / "mnist"
    folder.mkdir(parents=True)
    stale, live = folder / "t10k-labels-idx1-ubyte.gz.x1.part", folder / "t10k-labels-idx1-ubyte.gz.x2.part"
    stale.write_bytes(b"")
    live.write_bytes(b"")
    os.utime(stale, (1, 1))
    lines = []
    datasets.download(
        datasets.FILES["test-labels"],
        datasets.cache_dir(),
        [f"{base}/good.gz"],
        expected=sha(good),
        progress=False,
        log=lines.append,
    )
    assert not stale.exists() and live.exists()
    assert lines[0] == f"removed {stale}, left by an interrupted download"


def test_minidl_offline_forbids_downloads_and_says_so(monkeypatch, tmp_path):
    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(datasets, "download", no_download)
    monkeypatch.setenv("MINIDL_OFFLINE", "1")
    for fetch in (True, False):
        with pytest.raises(
            DataUnavailable,
            match=r"frey/frey_rawface.mat was not found .*could not be downloaded "
            r"\(MINIDL_OFFLINE=1 forbids downloading\).*MINIDL_DATA",
        ):
            datasets.load_frey_faces(None, fetch=fetch)
    assert datasets.main(["fetch", "--data-dir", str(tmp_path)]) == 1


def test_an_interrupted_download_leaves_nothing_behind(monkeypatch):
    import pooch

    def killed_midway(self, url, output_file, pooch_instance):
        Path(output_file).write_bytes(b"\x1f\x8b partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        datasets.locate("test-labels", None, mirrors=["http://127.0.0.1:9/t10k-labels-idx1-ubyte.gz"], progress=False)
    assert cache_files() == []


def test_offline_error_explains_where_to_put_files():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(
        DatasetError, match=r"frey/frey_rawface.mat was not found.*could not be downloaded.*MINIDL_DATA"
    ):
        datasets.locate("frey", None, mirrors=[f"http://127.0.0.1:{port}/frey_rawface.mat"], progress=False)


# -- the real files --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_mnist():
    return datasets.load_mnist(REAL, fetch=False)


@real_data
def test_real_mnist(real_mnist):
    x_train, y_train, x_test, y_test = real_mnist
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert y_train.dtype == np.uint8 and x_train.dtype == np.float32
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert int(np.sum(y_train == 0)) == 5923
    assert int(y_test[0]) == 7


@real_data
def test_real_frey_faces():
    faces = datasets.load_frey_faces(REAL, fetch=False)
    assert faces.shape == (1965, 1, 28, 20) and faces.dtype == np.float32
    assert 0.0 <= faces.min() and faces.max() <= 1.0


@real_data
def test_real_frey_gzipped_loads_equal(tmp_path):
    (tmp_path / "frey").mkdir()
    original = Path(REAL, "frey", "frey_rawface.mat").read_bytes()
    (tmp_path / "frey" / "frey_rawface.mat.gz").write_bytes(gzip.compress(original))
    np.testing.assert_array_equal(
        datasets.load_frey_faces(tmp_path, fetch=False), datasets.load_frey_faces(REAL, fetch=False)
    )


@real_data
def test_real_frey_damaged_after_verification_is_refused(tmp_path, capsys):
    """A verified copy of the data, bytes flipped in frey_rawface.mat, its mtime set back."""
    for folder in ("mnist", "frey"):
        (tmp_path / folder).mkdir()
        for source in Path(REAL, folder).iterdir():
            (tmp_path / folder / source.name).write_bytes(source.read_bytes())
    assert datasets.main(["verify", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    path = tmp_path / "frey" / "frey_rawface.mat"
    flip_bytes_keeping_mtime(path, start=path.stat().st_size // 2)
    assert datasets.main(["verify", "--data-dir", str(tmp_path)]) == 1
    expected = datasets.FILES["frey"].sha256
    row = cli_rows(capsys)["frey/frey_rawface.mat"]
    assert re.search(f"FAILED: .*expected sha256 {expected}, found [0-9a-f]{{64}}", row), row
    with pytest.raises(DataDamaged, match=f"{path}: checksum mismatch .*expected sha256 {expected}"):
        datasets.load_frey_faces(tmp_path, fetch=False)


@real_data
def test_cli_verify_on_real_data(capsys):
    assert datasets.main(["verify", "--data-dir", REAL]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok") == 5 and "frey/frey_rawface.mat" in out


def test_cli_reports_missing_files(tmp_path, capsys):
    assert datasets.main(["verify", "--data-dir", str(tmp_path)]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_digits_stand_in():
    images, labels = datasets.load_digits_28()
    assert images.shape == (1797, 1, 28, 28) and labels.shape == (1797,)
    assert images.dtype == np.float32 and 0.0 <= images.min() and images.max() <= 1.0


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_a_downloaded_file_gets_the_mode_the_umask_gives_new_files(server, umask):
    base, routes = server
    good = idx_bytes(np.arange(6, dtype=np.uint8))
    packed = gzip.compress(good)
    routes["/good.gz"] = (packed, len(packed))
    before = os.umask(umask)
    try:
        path, _ = datasets.locate("test-labels", None, mirrors=[f"{base}/good.gz"], expected=sha(good), progress=False)
    finally:
        os.umask(before)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
