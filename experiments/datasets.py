"""MNIST and Frey Face from local files, the user cache or the web, verified by checksum on every use.

Files are looked for, in order, in the ``data_dir`` argument, ``$MINIDL_DATA`` and the user cache
(``$XDG_CACHE_HOME/minidl``, else ``~/.cache/minidl``), in the layout::

    mnist/train-images-idx3-ubyte[.gz]   mnist/train-labels-idx1-ubyte[.gz]
    mnist/t10k-images-idx3-ubyte[.gz]    mnist/t10k-labels-idx1-ubyte[.gz]
    frey/frey_rawface.mat[.gz]

Every time a file is used, its *content* is verified by sha256 (the decompressed IDX bytes; the Frey
array in C order). The file is read once: the array returned is parsed from the very bytes that were
hashed. Missing files are downloaded into the cache from public mirrors with pooch's HTTP downloader,
each into a ``.part`` file that is renamed only once complete and verified.
``python -m experiments.datasets verify|fetch`` checks or fetches everything. docs/data.md tells the
whole story.

Two errors tell apart what a caller must: :class:`DataUnavailable` (the file is nowhere and cannot be
downloaded, or a data folder the user named does not exist) and :class:`DataDamaged` (a file exists but
is truncated, corrupt or another version).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import sys
import tempfile
import time
import urllib.parse
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minidl.serialization import new_file_mode


class DatasetError(Exception):
    """A data file is missing, corrupt or unreadable; the message says what to do."""


class DataUnavailable(DatasetError):
    """The file is in no searched folder and could not be downloaded, or a named data folder does not exist."""


class DataDamaged(DatasetError):
    """A file was found but is truncated, corrupt or another version; the message names it.

    ``problem`` is what is wrong, without the path and the advice (a failed download reports just that).
    """

    def __init__(self, message: str, problem: str | None = None):
        super().__init__(message)
        self.problem = problem or message


REFETCH = " Delete it and fetch it again (python -m experiments.datasets fetch)."


def _damaged(source, problem: str, advice: str = "") -> DataDamaged:
    return DataDamaged(f"{source}: {problem}.{advice}", problem)


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: where it lives below a data folder, its content digest, where to get it."""

    relative: str
    sha256: str
    mirrors: tuple[str, ...]
    kind: str  # "idx" or "mat"


MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)


def _mnist(name: str, digest: str) -> DataFile:
    return DataFile(f"mnist/{name}", digest, tuple(f"{base}{name}.gz" for base in MNIST_MIRRORS), "idx")


# The digests are of the content, not of the files: of the decompressed IDX bytes (mirrors wrap them in
# different gzip streams) and of the Frey array in C order (the .mat header carries a creation date).
FILES = {
    "train-images": _mnist(
        "train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
    ),
    "train-labels": _mnist(
        "train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
    ),
    "test-images": _mnist("t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "test-labels": _mnist("t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    "frey": DataFile(
        "frey/frey_rawface.mat",
        "fbd70c2c992104024a20f4d253da1a1132eb6bf8ed142dccbe7d2b1743b705c4",
        ("https://cs.nyu.edu/~roweis/data/frey_rawface.mat",),
        "mat",
    ),
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
            raise DataUnavailable(
                f"{directory} (given as {how}) is not an existing folder. Point {how} at the "
                "folder that holds mnist/ and frey/, or leave it unset."
            )
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
    return (
        f"{file.relative} was not found in {', '.join(str(d) for d in dirs)} and could not be downloaded "
        f"({reason}). Put the file (or its .gz) at <folder>/{file.relative} and point MINIDL_DATA at "
        f"<folder> (e.g. `export MINIDL_DATA=/path/to/data`), pass --data-dir, or copy it into {cache_dir()}."
    )


# -- reading and verifying -----------------------------------------------------------------------------


def read_content(path: Path) -> bytes:
    """The file's bytes, decompressed when it ends in ``.gz``."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (EOFError, OSError, zlib.error) as error:
        raise _damaged(
            path, f"cannot be read or decompressed ({error}); the file is damaged or truncated", REFETCH
        ) from None


def parse_idx(content: bytes, source: str) -> np.ndarray:
    """Parse the IDX format: two zero bytes, type code 0x08 (uint8), rank, big-endian uint32 sizes, data."""
    if len(content) < 4 or content[0] != 0 or content[1] != 0:
        raise _damaged(source, f"not an IDX file (bad magic number {content[:4].hex() or 'empty'})")
    if content[2] != 0x08:
        raise _damaged(source, f"IDX type code 0x{content[2]:02x}, expected 0x08 (unsigned bytes)")
    rank = content[3]
    header = 4 + 4 * rank
    if len(content) < header:
        raise _damaged(source, f"IDX header announces {rank} dimensions but the file ends early")
    shape = tuple(int(v) for v in np.frombuffer(content, dtype=">u4", count=rank, offset=4))
    expected = int(np.prod(shape)) if shape else 1
    if len(content) - header != expected:
        raise _damaged(
            source, f"IDX dimensions {shape} need {expected:,} bytes of data, the file has {len(content) - header:,}"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(shape)


def parse_frey(content: bytes, source: str) -> np.ndarray:
    """The ``ff`` array, (560, N) uint8, of the bytes of a Frey Face .mat file."""
    from scipy.io import loadmat

    try:
        contents = loadmat(io.BytesIO(content))
    except Exception as error:  # scipy raises many types for damaged files
        raise _damaged(source, f"not a readable MATLAB file ({type(error).__name__}: {error})", REFETCH) from None
    if "ff" not in contents:
        found = sorted(key for key in contents if not key.startswith("__"))
        raise _damaged(source, f"has no variable 'ff' (found {found}); this is not frey_rawface.mat")
    ff = contents["ff"]
    if ff.ndim != 2 or ff.shape[0] != 28 * 20 or ff.dtype != np.uint8:
        raise _damaged(source, f"'ff' should be uint8 of shape (560, N), found {ff.dtype} {ff.shape}")
    return ff


def read_verified(file: DataFile, path: Path, expected: str | None = None) -> np.ndarray:
    """The array in ``path``, from one read of the file whose content digest was checked.

    Hashing on every use costs a few tens of milliseconds for all of MNIST, and is the only check that
    sees every byte: a file's size and modification time survive damage and can be set back by hand.
    An IDX file is hashed before it is parsed, so a corrupt one reports the checksum, not a parser error.

    Raises DataDamaged naming the expected and found digests when they differ.
    """
    expected = expected or file.sha256
    content = read_content(path)
    if file.kind == "idx":
        _require_digest(file, path, expected, hashlib.sha256(content).hexdigest())
        return parse_idx(content, str(path))
    ff = parse_frey(content, str(path))
    _require_digest(file, path, expected, hashlib.sha256(np.ascontiguousarray(ff).tobytes()).hexdigest())
    return ff


def _require_digest(file: DataFile, path: Path, expected: str, found: str) -> None:
    if found != expected:
        raise _damaged(
            path,
            f"checksum mismatch for {file.relative}: expected sha256 {expected}, found {found}",
            " The file is corrupt or a different version: delete it and fetch it again "
            "(python -m experiments.datasets fetch).",
        )


def verify(file: DataFile, path: Path, expected: str | None = None) -> None:
    """Check the content digest of ``path`` (reading and hashing the whole file); raises DataDamaged."""
    read_verified(file, path, expected)


# -- downloading ------------------------------------------------------------------------------------

# A reachable mirror completes the TCP and TLS handshakes well within a second; 5 s still allows for a
# lost SYN or two (Linux retransmits after 1 s and 3 s). Once connected, a server that sends no byte for
# 15 s has stalled: working mirrors send their headers within a few seconds and then stream continuously.
# A dead network thus costs about 20 s per host, not 30 s per file and mirror as a single timeout would,
# because a host that failed is skipped for the other files of the same dataset.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
# A live download writes its .part file at least every READ_TIMEOUT seconds; one untouched for this long
# was left by a killed process.
STALE_PART_SECONDS = 600.0
OFFLINE_VARIABLE = "MINIDL_OFFLINE"


def downloads_forbidden() -> bool:
    """Whether ``MINIDL_OFFLINE=1`` forbids downloads (machines without internet access fail fast)."""
    return os.environ.get(OFFLINE_VARIABLE, "") == "1"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _remove_stale_parts(folder: Path, name: str, log) -> None:
    """Delete ``<name>.*.part[.gz]`` files that no live download can still be writing (see STALE_PART_SECONDS)."""
    for part in [*folder.glob(f"{name}*.part"), *folder.glob(f"{name}*.part.gz")]:
        try:
            if time.time() - part.stat().st_mtime > STALE_PART_SECONDS:
                part.unlink()
                log(f"removed {part}, left by an interrupted download")
        except OSError:
            pass  # gone already, or not ours to delete


def _causes(error: BaseException):
    """``error`` and what it wraps: requests and urllib3 keep the socket's error in args, reason and __cause__."""
    seen, pending = set(), [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
        pending += [item for item in wrapped if isinstance(item, BaseException)]


def _failure(error: BaseException, connect_timeout: float, read_timeout: float) -> tuple[str, bool]:
    """What went wrong in a download, and whether the host itself failed (timed out, refused, unknown)."""
    import requests
    from urllib3.exceptions import HTTPError as Urllib3Error
    from urllib3.exceptions import IncompleteRead, ReadTimeoutError

    causes = list(_causes(error))
    if isinstance(error, DataDamaged):
        return error.problem, False
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code} {error.response.reason}", False
    if isinstance(error, requests.ConnectTimeout):
        return f"no connection within {connect_timeout:g} s", True
    if isinstance(error, requests.ReadTimeout) or any(isinstance(c, ReadTimeoutError) for c in causes):
        return f"connected, then no data for {read_timeout:g} s", True
    for cause in causes:
        if isinstance(cause, IncompleteRead):
            return f"connection closed after {cause.partial:,} of {cause.partial + cause.expected:,} bytes", False
    if isinstance(error, requests.ConnectionError):  # refused, unknown host, network down
        sockets = [
            c for c in causes if isinstance(c, OSError) and not isinstance(c, (requests.RequestException, Urllib3Error))
        ]
        return str(sockets[0] if sockets else error), True
    return str(error), False


def _transfer(url: str, output: Path, connect_timeout: float, read_timeout: float, progress: bool, label: str) -> None:
    """Stream the body at ``url`` into ``output`` with pooch's HTTP downloader (requests underneath).

    It raises for HTTP errors, timeouts and a body shorter than its Content-Length. The transfer is
    asked not to be encoded, so that a ``.gz`` arrives as the mirror stores it.
    """
    import pooch

    bar = _progress_bar(label) if progress else False
    downloader = pooch.HTTPDownloader(
        progressbar=bar,
        chunk_size=1 << 16,
        timeout=(connect_timeout, read_timeout),
        headers={"Accept-Encoding": "identity"},
    )
    try:
        downloader(url, str(output), None)
    finally:
        if bar:
            bar.close()


def _starts_like_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _progress_bar(label: str):
    """A tqdm bar for pooch to drive: pooch sets its total and updates it."""
    from tqdm.auto import tqdm

    class Bar(tqdm):
        def __bool__(self):  # tqdm has no truth value before its total is known; pooch tests the bar with `if`
            return True

    return Bar(desc=label, unit="B", unit_scale=True, leave=False)


def download(
    file: DataFile,
    destination: Path,
    mirrors=None,
    expected: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
    progress: bool = True,
    log=_stderr,
    unreachable: set[str] | None = None,
) -> Path:
    """Fetch ``file`` into ``destination`` from the first mirror that gives a verified copy.

    Each attempt streams into a ``.part`` file beside the target; only a complete copy whose content
    digest matches is renamed into place (named ``.gz`` when its bytes are gzip), so an interrupted or
    corrupt transfer leaves nothing behind (and ``.part`` files of killed processes are removed on the
    next attempt). ``log`` gets one line per
    attempt: the URL, the outcome and the seconds it took. Hosts (``host:port``) that time out or cannot
    be reached are added to ``unreachable``, and hosts already in it are skipped: a caller fetching
    several files passes one set to every call, so a dead network is waited for once. Raises DatasetError
    listing each mirror's failure when none succeeds.
    """
    import requests

    unreachable = set() if unreachable is None else unreachable
    mirrors = tuple(mirrors) if mirrors is not None else file.mirrors
    folder, name = (destination / file.relative).parent, Path(file.relative).name
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(folder, name, log)
    failures = []
    for url in mirrors:
        host = urllib.parse.urlsplit(url).netloc
        if host in unreachable:
            failures.append(f"{url}: skipped, {host} could not be reached earlier")
            log(f"download {url}: skipped ({host} could not be reached for an earlier file)")
            continue
        descriptor, temporary = tempfile.mkstemp(prefix=name + ".", suffix=".part", dir=folder)
        os.close(descriptor)
        temporary = Path(temporary)
        started = time.perf_counter()
        try:
            _transfer(url, temporary, connect_timeout, read_timeout, progress, name)
            received = temporary.stat().st_size
            # The stored name follows the content, not the URL: a server that labels a .gz with
            # "Content-Encoding: gzip" has it decoded in transit, and the plain bytes are kept as such.
            if _starts_like_gzip(temporary):
                temporary = temporary.rename(temporary.with_name(temporary.name + ".gz"))
            verify(file, temporary, expected)
            target = folder / (name + (".gz" if temporary.suffix == ".gz" else ""))
            temporary.chmod(new_file_mode())  # mkstemp's 0o600 would hide the cache from the user's group
            temporary.replace(target)
            log(f"download {url}: ok, {received:,} bytes ({time.perf_counter() - started:.1f} s)")
            return target
        except (OSError, DatasetError, ValueError, requests.RequestException) as error:
            reason, host_failed = _failure(error, connect_timeout, read_timeout)
            if host_failed:
                unreachable.add(host)
            failures.append(f"{url}: {reason}")
            log(f"download {url}: failed, {reason} ({time.perf_counter() - started:.1f} s)")
        finally:
            temporary.unlink(missing_ok=True)
    raise DatasetError("; ".join(failures) or "no mirror is known")


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


def locate(
    name: str,
    data_dir=None,
    fetch: bool = True,
    mirrors=None,
    expected: str | None = None,
    progress: bool = True,
    log=_stderr,
    unreachable: set[str] | None = None,
) -> tuple[Path, np.ndarray]:
    """The path of one of :data:`FILES` and the verified array it holds, downloading it into the cache
    when missing (unless ``fetch`` is false or ``MINIDL_OFFLINE=1``).

    The file is read once: the array is parsed from the bytes whose digest was checked.
    ``unreachable`` is passed on to :func:`download` (hosts that failed for an earlier file are skipped).

    Raises DataUnavailable when the file is nowhere and cannot be downloaded (or a named data folder does
    not exist), and DataDamaged when the first copy found fails verification -- naming a verified copy
    elsewhere in the search path when there is one.
    """
    file = FILES[name]
    dirs = search_dirs(data_dir)
    path = find(file, dirs)
    if path is None:
        if downloads_forbidden():
            raise DataUnavailable(_missing_message(file, dirs, f"{OFFLINE_VARIABLE}=1 forbids downloading"))
        if not fetch:
            raise DataUnavailable(_missing_message(file, dirs, "downloading was not allowed"))
        try:
            path = download(file, cache_dir(), mirrors, expected, progress=progress, log=log, unreachable=unreachable)
        except DatasetError as error:
            raise DataUnavailable(_missing_message(file, dirs, str(error))) from None
    try:
        return path, read_verified(file, path, expected)
    except DataDamaged as error:
        good = _verified_copy(file, dirs, expected, besides=path)
        if good is None:
            raise
        raise DataDamaged(
            f"{error} A verified copy exists at {good}: replace the damaged file with it, or "
            f"point --data-dir (or MINIDL_DATA) at {good.parent.parent}.",
            error.problem,
        ) from None


# -- the datasets ----------------------------------------------------------------------------------


def load_mnist(
    data_dir=None, fetch: bool = True, checksums: dict | None = None, mirrors: dict | None = None, log=_stderr
):
    """MNIST as float32 images in [0, 1] and uint8 labels.

    Returns
    -------
    x_train : (60000, 1, 28, 28), y_train : (60000,), x_test : (10000, 1, 28, 28), y_test : (10000,)
    """
    checksums, mirrors = checksums or {}, mirrors or {}
    arrays = {}
    unreachable: set[str] = set()  # the four files share their mirrors: wait for a dead host once
    for name in ("train-images", "train-labels", "test-images", "test-labels"):
        _, arrays[name] = locate(
            name, data_dir, fetch, mirrors.get(name), checksums.get(name), log=log, unreachable=unreachable
        )
    result = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}-images"], arrays[f"{split}-labels"]
        if images.ndim != 3 or labels.ndim != 1:
            raise DataDamaged(
                f"MNIST {split}: expected images (N, 28, 28) and labels (N,), found {images.shape} and {labels.shape}."
            )
        if len(images) != len(labels):
            raise DataDamaged(f"MNIST {split}: {len(images):,} images but {len(labels):,} labels.")
        result += [(images[:, None] / np.float32(255)).astype(np.float32), labels.copy()]
    return tuple(result)


def load_frey_faces(
    data_dir=None, fetch: bool = True, checksum: str | None = None, mirrors=None, log=_stderr
) -> np.ndarray:
    """Frey Face: float32 images (1965, 1, 28, 20) in [0, 1]."""
    _, ff = locate("frey", data_dir, fetch, mirrors, checksum, log=log)
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
    parser = argparse.ArgumentParser(
        prog="python -m experiments.datasets", description="Check (verify) or download (fetch) MNIST and Frey Face."
    )
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
                path, _ = locate(name, args.data_dir)
            elif path is None:
                raise DatasetError("missing")
            else:
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
        print(
            "\nSome files are missing or bad. Set MINIDL_DATA to a folder holding mnist/ and frey/, "
            "or run `python -m experiments.datasets fetch` with network access.",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
