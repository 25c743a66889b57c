"""MNIST and Frey Face from local files, the user cache or the web, verified by checksum.

Files are looked for, in order, in the ``data_dir`` argument, ``$MINIDL_DATA`` and the user cache
(``$XDG_CACHE_HOME/minidl``, else ``~/.cache/minidl``), in the layout::

    mnist/train-images-idx3-ubyte[.gz]   mnist/train-labels-idx1-ubyte[.gz]
    mnist/t10k-images-idx3-ubyte[.gz]    mnist/t10k-labels-idx1-ubyte[.gz]
    frey/frey_rawface.mat

Every file's *content* is verified by sha256 on first use (the decompressed IDX bytes; the Frey array
in C order), and the verdict is remembered in the cache keyed by path, size and modification time.
Missing files are downloaded into the cache from public mirrors, each into a temporary file that is
renamed only once complete and verified. ``python -m experiments.datasets verify|fetch`` checks or
fetches everything.

Two errors tell apart what a caller must: :class:`DataUnavailable` (the file is nowhere and cannot be
downloaded, or a data folder the user named does not exist) and :class:`DataDamaged` (a file exists but
is truncated, corrupt or another version).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DatasetError(Exception):
    """A data file is missing, corrupt or unreadable; the message says what to do."""


class DataUnavailable(DatasetError):
    """The file is in no searched folder and could not be downloaded, or a named data folder does not exist."""


class DataDamaged(DatasetError):
    """A file was found but is truncated, corrupt or another version; the message names it."""


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: where it lives below a data folder, its content digest, where to get it."""

    relative: str
    sha256: str
    mirrors: tuple[str, ...]
    kind: str  # "idx" or "mat"


MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "https://yann.lecun.com/exdb/mnist/")


def _mnist(name: str, digest: str) -> DataFile:
    return DataFile(f"mnist/{name}", digest, tuple(f"{base}{name}.gz" for base in MNIST_MIRRORS), "idx")


FILES = {
    "train-images": _mnist("train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels": _mnist("train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "test-images": _mnist("t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "test-labels": _mnist("t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    "frey": DataFile("frey/frey_rawface.mat", "fbd70c2c992104024a20f4d253da1a1132eb6bf8ed142dccbe7d2b1743b705c4",
                     ("https://cs.nyu.edu/~roweis/data/frey_rawface.mat",), "mat"),
}


# -- where files are ---------------------------------------------------------------------------------

def cache_dir() -> Path:
    """The user cache: ``$XDG_CACHE_HOME/minidl``, else ``~/.cache/minidl``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "minidl"


def pointed_dirs(data_dir=None) -> dict[str, Path]:
    """The data folders the user named, by how: ``data_dir`` (``--data-dir``) and ``$MINIDL_DATA``."""
    dirs = {"--data-dir": Path(data_dir)} if data_dir is not None else {}
    if os.environ.get("MINIDL_DATA"):
        dirs["MINIDL_DATA"] = Path(os.environ["MINIDL_DATA"])
    return dirs


def search_dirs(data_dir=None) -> list[Path]:
    """The folders searched, in order: ``data_dir``, ``$MINIDL_DATA``, the user cache.

    Raises DataUnavailable when a folder the user named does not exist (a typo must not pass unnoticed).
    """
    pointed = pointed_dirs(data_dir)
    for how, directory in pointed.items():
        if not directory.is_dir():
            raise DataUnavailable(f"{directory} (given as {how}) is not an existing folder. Point {how} at the "
                                  "folder that holds mnist/ and frey/, or leave it unset.")
    return [*pointed.values(), cache_dir()]


def find(file: DataFile, dirs: list[Path]) -> Path | None:
    """The first existing copy of ``file`` (plain or ``.gz``) in ``dirs``."""
    for directory in dirs:
        for suffix in ("", ".gz"):
            path = directory / (file.relative + suffix)
            if path.is_file():
                return path
    return None


def _missing_message(file: DataFile, dirs: list[Path], reason: str) -> str:
    return (f"{file.relative} was not found in {', '.join(str(d) for d in dirs)} and could not be downloaded "
            f"({reason}). Put the file (or its .gz) at <folder>/{file.relative} and point MINIDL_DATA at "
            f"<folder> (e.g. `export MINIDL_DATA=/path/to/data`), pass --data-dir, or copy it into {cache_dir()}.")


# -- reading and verifying -----------------------------------------------------------------------------

def read_content(path: Path) -> bytes:
    """The file's bytes, decompressed when it ends in ``.gz``."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (EOFError, OSError, zlib.error) as error:
        raise DataDamaged(f"{path}: cannot be read or decompressed ({error}); the file is damaged or "
                           "truncated. Delete it and fetch it again (python -m experiments.datasets fetch).") from None


def parse_idx(content: bytes, source: str) -> np.ndarray:
    """Parse the IDX format: two zero bytes, type code 0x08 (uint8), rank, big-endian uint32 sizes, data."""
    if len(content) < 4 or content[0] != 0 or content[1] != 0:
        raise DataDamaged(f"{source}: not an IDX file (bad magic number {content[:4].hex() or 'empty'}).")
    if content[2] != 0x08:
        raise DataDamaged(f"{source}: IDX type code 0x{content[2]:02x}, expected 0x08 (unsigned bytes).")
    rank = content[3]
    header = 4 + 4 * rank
    if len(content) < header:
        raise DataDamaged(f"{source}: IDX header announces {rank} dimensions but the file ends early.")
    shape = tuple(int(v) for v in np.frombuffer(content, dtype=">u4", count=rank, offset=4))
    expected = int(np.prod(shape)) if shape else 1
    if len(content) - header != expected:
        raise DataDamaged(f"{source}: IDX dimensions {shape} need {expected:,} bytes of data, the file has "
                           f"{len(content) - header:,}.")
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(shape)


def read_frey_array(path: Path) -> np.ndarray:
    """The ``ff`` array, (560, N) uint8, of a Frey Face .mat file."""
    from scipy.io import loadmat

    try:
        contents = loadmat(path)
    except Exception as error:  # scipy raises many types for damaged files
        raise DataDamaged(f"{path}: not a readable MATLAB file ({type(error).__name__}: {error}). "
                           "Delete it and fetch it again.") from None
    if "ff" not in contents:
        found = sorted(key for key in contents if not key.startswith("__"))
        raise DataDamaged(f"{path}: has no variable 'ff' (found {found}); this is not frey_rawface.mat.")
    ff = contents["ff"]
    if ff.ndim != 2 or ff.shape[0] != 28 * 20 or ff.dtype != np.uint8:
        raise DataDamaged(f"{path}: 'ff' should be uint8 of shape (560, N), found {ff.dtype} {ff.shape}.")
    return ff


def content_digest(file: DataFile, path: Path) -> str:
    if file.kind == "idx":
        return hashlib.sha256(read_content(path)).hexdigest()
    return hashlib.sha256(np.ascontiguousarray(read_frey_array(path)).tobytes()).hexdigest()


def _memo_path() -> Path:
    return cache_dir() / "verified.json"


def _memo_key(path: Path) -> str:
    status = path.stat()
    return f"{path.resolve()}|{status.st_size}|{status.st_mtime_ns}"


def _read_memo() -> dict:
    try:
        return json.loads(_memo_path().read_text())
    except (OSError, ValueError):
        return {}


def verify(file: DataFile, path: Path, expected: str | None = None) -> None:
    """Check the content digest of ``path``; remember success so later loads skip the hashing."""
    expected = expected or file.sha256
    key = _memo_key(path)
    memo = _read_memo()
    if memo.get(key) == expected:
        return
    found = content_digest(file, path)
    if found != expected:
        raise DataDamaged(f"{path}: checksum mismatch for {file.relative}: expected sha256 {expected}, found "
                           f"{found}. The file is corrupt or a different version: delete it and fetch it "
                           "again (python -m experiments.datasets fetch).")
    memo[key] = expected
    try:
        _memo_path().parent.mkdir(parents=True, exist_ok=True)
        temporary = _memo_path().with_suffix(".tmp")
        temporary.write_text(json.dumps(memo, indent=0))
        temporary.replace(_memo_path())
    except OSError:
        pass  # a read-only cache only costs the hashing next time


# -- downloading ------------------------------------------------------------------------------------

# A reachable mirror completes the TCP and TLS handshakes well within a second; 5 s still allows for a
# lost SYN or two (Linux retransmits after 1 s and 3 s). Once connected, a server that sends no byte for
# 15 s has stalled: working mirrors send their headers within a few seconds and then stream continuously.
# A dead network thus costs about 20 s per host, not 30 s per file and mirror as a single urllib timeout
# would, because a host that failed is skipped for the other files of the same dataset.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
# A live download writes its .part file at least every READ_TIMEOUT seconds; one untouched for this long
# was left by a killed process.
STALE_PART_SECONDS = 600.0

def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _opener(read_timeout: float) -> urllib.request.OpenerDirector:
    """urllib with a read timeout of its own: ``open(url, timeout=connect)`` bounds the handshakes, and each
    read after them waits at most ``read_timeout`` (urllib alone uses one timeout for both)."""
    def patient(connection_class):
        class Connection(connection_class):
            def connect(self):
                super().connect()
                self.sock.settimeout(read_timeout)
        return Connection

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, request):
            return self.do_open(patient(http.client.HTTPConnection), request)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, request):
            return self.do_open(patient(http.client.HTTPSConnection), request, context=self._context)

    return urllib.request.build_opener(HTTP, HTTPS)


def _remove_stale_parts(folder: Path, name: str, log) -> None:
    """Delete ``<name>.*.part[.gz]`` files that no live download can still be writing (see STALE_PART_SECONDS)."""
    for part in [*folder.glob(f"{name}*.part"), *folder.glob(f"{name}*.part.gz")]:
        try:
            if time.time() - part.stat().st_mtime > STALE_PART_SECONDS:
                part.unlink()
                log(f"removed {part}, left by an interrupted download")
        except OSError:
            pass  # gone already, or not ours to delete


def _failure(error: BaseException, connect_timeout: float, read_timeout: float) -> tuple[str, bool]:
    """What went wrong in a download, and whether the host itself failed (timed out, refused, unknown)."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}", False
    if isinstance(error, urllib.error.URLError):  # raised while connecting
        if isinstance(error.reason, TimeoutError):
            return f"no connection within {connect_timeout:g} s", True
        return str(error.reason), isinstance(error.reason, OSError)
    if isinstance(error, TimeoutError):  # connected, then silence
        return f"connected, then no data for {read_timeout:g} s", True
    return str(error), False


def download(file: DataFile, destination: Path, mirrors=None, expected: str | None = None,
             connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT,
             progress: bool = True, log=_stderr, unreachable: set[str] | None = None) -> Path:
    """Fetch ``file`` into ``destination`` from the first mirror that gives a verified copy.

    Each attempt streams into a temporary file beside the target; only a complete, verified download is
    renamed into place, so an interrupted or corrupt transfer leaves nothing behind (and ``.part`` files of
    killed processes are removed on the next attempt). ``log`` gets one line per attempt: the URL, the
    outcome and the seconds it took. Hosts (``host:port``) that time out or cannot be reached are added to
    ``unreachable``, and hosts already in it are skipped: a caller fetching several files passes one set to
    every call, so a dead network is waited for once. Raises DatasetError listing each mirror's failure when
    none succeeds.
    """
    unreachable = set() if unreachable is None else unreachable
    mirrors = tuple(mirrors) if mirrors is not None else file.mirrors
    (destination / file.relative).parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts((destination / file.relative).parent, Path(file.relative).name, log)
    opener = _opener(read_timeout)
    failures = []
    for url in mirrors:
        host = urllib.parse.urlsplit(url).netloc
        if host in unreachable:
            failures.append(f"{url}: skipped, {host} could not be reached earlier")
            log(f"download {url}: skipped ({host} could not be reached for an earlier file)")
            continue
        suffix = ".gz" if url.endswith(".gz") else ""
        target = destination / (file.relative + suffix)
        descriptor, temporary = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
        temporary = Path(temporary)
        started = time.perf_counter()
        try:
            with os.fdopen(descriptor, "wb") as handle:
                received = _stream(opener, url, handle, connect_timeout, progress, target.name)
            # verify the temporary copy under the final name's rules (gz or not)
            checked = temporary.with_name(temporary.name + suffix)
            temporary.replace(checked)
            temporary = checked
            found = content_digest(file, temporary)
            if found != (expected or file.sha256):
                raise DatasetError(f"checksum mismatch (expected {expected or file.sha256}, found {found})")
            temporary.replace(target)
            log(f"download {url}: ok, {received:,} bytes ({time.perf_counter() - started:.1f} s)")
            return target
        except (OSError, DatasetError, ValueError, http.client.HTTPException) as error:
            reason, host_failed = _failure(error, connect_timeout, read_timeout)
            if host_failed:
                unreachable.add(host)
            failures.append(f"{url}: {reason}")
            log(f"download {url}: failed, {reason} ({time.perf_counter() - started:.1f} s)")
        finally:
            temporary.unlink(missing_ok=True)
    raise DatasetError("; ".join(failures) or "no mirror is known")


def _stream(opener, url: str, handle, connect_timeout: float, progress: bool, label: str) -> int:
    """Copy the body at ``url`` into ``handle``; returns the number of bytes."""
    with opener.open(url, timeout=connect_timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False)
        received = 0
        try:
            while chunk := response.read(1 << 16):
                handle.write(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        if total is not None and received != total:
            raise OSError(f"connection closed after {received:,} of {total:,} bytes")
        return received


def _verified_copy(file: DataFile, dirs: list[Path], expected: str | None, besides: Path) -> Path | None:
    """Another copy of ``file`` in ``dirs`` that passes verification, if there is one."""
    for directory in dirs:
        for suffix in ("", ".gz"):
            path = directory / (file.relative + suffix)
            if path.is_file() and path.resolve() != besides.resolve():
                try:
                    verify(file, path, expected)
                    return path
                except DatasetError:
                    continue
    return None


def locate(name: str, data_dir=None, fetch: bool = True, mirrors=None, expected: str | None = None,
           progress: bool = True, log=_stderr, unreachable: set[str] | None = None) -> Path:
    """The verified path of one of :data:`FILES`, downloading it into the cache when missing.

    ``unreachable`` is passed on to :func:`download` (hosts that failed for an earlier file are skipped).

    Raises DataUnavailable when the file is nowhere and cannot be downloaded (or a named data folder does
    not exist), and DataDamaged when the first copy found fails verification -- naming a verified copy
    elsewhere in the search path when there is one.
    """
    file = FILES[name]
    dirs = search_dirs(data_dir)
    path = find(file, dirs)
    if path is None:
        if not fetch:
            raise DataUnavailable(_missing_message(file, dirs, "downloading was not allowed"))
        try:
            path = download(file, cache_dir(), mirrors, expected, progress=progress, log=log,
                            unreachable=unreachable)
        except DatasetError as error:
            raise DataUnavailable(_missing_message(file, dirs, str(error))) from None
    try:
        verify(file, path, expected)
    except DataDamaged as error:
        good = _verified_copy(file, dirs, expected, besides=path)
        if good is None:
            raise
        raise DataDamaged(f"{error} A verified copy exists at {good}: replace the damaged file with it, or "
                          f"point --data-dir (or MINIDL_DATA) at {good.parent.parent}.") from None
    return path


# -- the datasets ----------------------------------------------------------------------------------

def load_mnist(data_dir=None, fetch: bool = True, checksums: dict | None = None, mirrors: dict | None = None,
               log=_stderr):
    """MNIST as float32 images in [0, 1] and uint8 labels.

    Returns
    -------
    x_train : (60000, 1, 28, 28), y_train : (60000,), x_test : (10000, 1, 28, 28), y_test : (10000,)
    """
    checksums, mirrors = checksums or {}, mirrors or {}
    arrays = {}
    unreachable: set[str] = set()  # the four files share their mirrors: wait for a dead host once
    for name in ("train-images", "train-labels", "test-images", "test-labels"):
        path = locate(name, data_dir, fetch, mirrors.get(name), checksums.get(name), log=log,
                      unreachable=unreachable)
        arrays[name] = parse_idx(read_content(path), str(path))
    result = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}-images"], arrays[f"{split}-labels"]
        if images.ndim != 3 or labels.ndim != 1:
            raise DataDamaged(f"MNIST {split}: expected images (N, 28, 28) and labels (N,), found "
                               f"{images.shape} and {labels.shape}.")
        if len(images) != len(labels):
            raise DataDamaged(f"MNIST {split}: {len(images):,} images but {len(labels):,} labels.")
        result += [(images[:, None] / np.float32(255)).astype(np.float32), labels.copy()]
    return tuple(result)


def load_frey_faces(data_dir=None, fetch: bool = True, checksum: str | None = None, mirrors=None,
                    log=_stderr) -> np.ndarray:
    """Frey Face: float32 images (1965, 1, 28, 20) in [0, 1]."""
    path = locate("frey", data_dir, fetch, mirrors, checksum, log=log)
    ff = read_frey_array(path)
    return (ff.T.reshape(-1, 1, 28, 20) / np.float32(255)).astype(np.float32)


def load_digits_28() -> tuple[np.ndarray, np.ndarray]:
    """The offline stand-in: scikit-learn's bundled 8x8 digits, resized to 28x28 (bilinear).

    Returns
    -------
    images : (1797, 1, 28, 28) float32 in [0, 1], labels : (1797,) uint8
    """
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = digits.images.astype(np.float32) / 16.0
    images = np.clip(zoom(small, (1, 28 / 8, 28 / 8), order=1), 0.0, 1.0)
    return images[:, None].astype(np.float32), digits.target.astype(np.uint8)


# -- command line ----------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.datasets",
                                     description="Check (verify) or download (fetch) MNIST and Frey Face.")
    parser.add_argument("command", choices=["verify", "fetch"])
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    rows, failed = [], False
    try:
        dirs = search_dirs(args.data_dir)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for name, file in FILES.items():
        path = find(file, dirs)
        try:
            if path is None and args.command == "fetch":
                path = locate(name, args.data_dir)
            if path is None:
                raise DatasetError("missing")
            verify(file, path)
            status = "ok"
        except DatasetError as error:
            status, failed = f"FAILED: {error}", True
        size = f"{path.stat().st_size:,}" if path is not None and path.exists() else "–"
        rows.append((file.relative, str(path) if path else "–", size, status))
    widths = [max(len(row[i]) for row in rows + [("file", "path", "bytes", "status")]) for i in range(3)]
    print(f"{'file':<{widths[0]}}  {'path':<{widths[1]}}  {'bytes':>{widths[2]}}  status")
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}")
    if failed:
        print("\nSome files are missing or bad. Set MINIDL_DATA to a folder holding mnist/ and frey/, "
              "or run `python -m experiments.datasets fetch` with network access.", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
