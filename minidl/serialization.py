"""Saving and loading parameters as ``.npz`` files, never through pickle.

Writing is atomic (:func:`atomic_write`, for any file): a locked temporary file beside the target, then a
rename, so an interrupted save leaves the previous file intact; the file gets the mode ``open()`` gives new
files (:func:`new_file_mode`). Reading checks everything before anything is used: a file that cannot be
read raises :class:`FileFormatError` naming it, and parameters are assigned only once every name, shape
and dtype matches the model. A model file records the model's kind (:func:`save_params`), and
:func:`load_params` refuses it to a model of another kind.
"""

from __future__ import annotations

import io
import os
import re
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, but it refuses to delete a file that is open elsewhere
    fcntl = None  # type: ignore[assignment]  # mypy gives an optional import the module's type, not Optional

ZIP_MAGIC = b"PK"
NPY_MAGIC = b"\x93NUMPY"
END_RECORD_MAGIC = b"PK\x05\x06"  # a zip archive's end-of-central-directory record
END_RECORD_SIZE = 22  # without an archive comment


class FileFormatError(ValueError):
    """A file that cannot be read as an ``.npz`` of plain arrays: missing, not a zip archive, truncated,
    damaged (a checksum does not match), a single ``.npy``, or holding arrays that only pickle can read.

    The message starts with the path, then says what is wrong and what to do.
    """


def new_file_mode() -> int:
    """The permission bits ``open()`` gives a new file: ``0o666`` less the process's umask.

    :func:`tempfile.mkstemp` creates its files ``0o600``; a file written through a temporary gets these bits
    instead, so that it is readable by whoever may read the files beside it.
    """
    return 0o666 & ~_umask()


def new_folder_mode() -> int:
    """The permission bits ``os.mkdir`` gives a new folder: ``0o777`` less the process's umask
    (:func:`tempfile.mkdtemp` creates its folders ``0o700``)."""
    return 0o777 & ~_umask()


def _umask() -> int:
    try:  # Linux reports it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere it can only be read by setting it; put back at once
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Replace ``path`` atomically: yield a temporary file beside it, renamed over ``path`` when the block
    ends without an error (and deleted when it raises). Text modes write UTF-8 unless told otherwise.

    The file gets the mode a new file gets (:func:`new_file_mode`), the folder is created if needed, and
    the temporaries ``<name>.<random>.tmp`` that killed writers of ``path`` left behind are removed first
    (:func:`remove_stale_temporaries`). While the block runs, the temporary is locked, so that no other
    process removes it.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_write(folder / "metrics.json", "w", encoding="utf-8") as handle:
    ...     json.dump({"loss": 0.5}, handle)
    >>> (folder / "metrics.json").read_text()
    '{"loss": 0.5}'
    """
    if "w" not in mode:
        raise ValueError(f"Expected a writing mode such as 'wb' or 'w'. Received: mode={mode!r}")
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    descriptor, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, mode, encoding=encoding) as handle:
            _lock(handle)
            _set_mode(handle, temporary)
            yield handle
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _set_mode(handle: IO[Any], temporary: str) -> None:
    if hasattr(os, "fchmod"):
        os.fchmod(handle.fileno(), new_file_mode())
    else:
        os.chmod(temporary, new_file_mode())


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` (an ``.npz``) atomically: a temporary file, then a rename
    (:func:`atomic_write`).

    An interrupted save leaves the previous file intact. A temporary left behind by a save that could
    not clean up (a process killed while writing) is removed by the next save to the same path; the
    temporary of a save still running in another process is locked and left alone. The file gets the
    mode ``open()`` gives new files (``0o666`` less the umask).
    """
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy's stubs: a key might be allow_pickle


def _lock(handle: IO[Any]) -> None:
    """Mark a temporary as being written: an exclusive lock, released when the file is closed or its
    process dies. Where locks are unsupported (no fcntl, some network file systems) nothing is marked."""
    if fcntl is None:
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries ``<name>.<random>.tmp`` of ``path`` that no running save holds locked, and
    return them. A missing folder has none.

    A save that is between creating its temporary and locking it, or between closing and renaming it
    (microseconds each), can lose its temporary to a concurrent save of the same path; its rename then
    fails with FileNotFoundError rather than writing anything wrong.
    """
    path = Path(path)
    pattern = re.compile(re.escape(path.name) + r"\.[a-z0-9_]+\.tmp")
    try:
        candidates = [candidate for candidate in path.parent.iterdir() if pattern.fullmatch(candidate.name)]
    except OSError:  # no folder (yet), or not a folder: nothing to clean
        return []
    removed = []
    for candidate in candidates:
        try:
            with open(candidate, "rb") as handle:
                if fcntl is not None:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while a save runs
            candidate.unlink()
        except OSError:
            continue
        removed.append(candidate)
    return removed


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file, without pickle.

    Every member's CRC-32 is checked before it is parsed, so a damaged file is reported as such.

    Raises
    ------
    FileFormatError
        When the file is missing or unreadable, empty, a single ``.npy``, not a zip archive, truncated,
        damaged, holds something other than ``.npy`` arrays, or holds object arrays (which need pickle).
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            start = handle.read(len(NPY_MAGIC))
    except OSError as error:
        reason = "no such file" if isinstance(error, FileNotFoundError) else f"cannot be read ({error.strerror})"
        raise FileFormatError(f"{path}: {reason}; check the path.") from error
    if not start:
        raise FileFormatError(f"{path}: the file is empty (a save that never finished?); write it again.")
    if start.startswith(NPY_MAGIC):
        raise FileFormatError(
            f"{path}: this is a single .npy array, not an .npz archive of named arrays; "
            "write it with minidl.serialization.save_arrays (or np.savez)."
        )
    if not start.startswith(ZIP_MAGIC):
        raise FileFormatError(
            f"{path}: not an .npz file (it does not start as a zip archive); "
            "expected a file written by save_arrays or np.savez."
        )
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            declared = _declared_entries(path)
            if declared is not None and declared != len(archive.infolist()):
                raise zipfile.BadZipFile(f"the directory lists {len(archive.infolist())} of {declared} members")
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise FileFormatError(
                        f"{path}: holds {info.filename!r}, which is not a NumPy array; "
                        "expected an .npz written by save_arrays or np.savez."
                    )
                data = archive.read(info)  # raises on a CRC-32 mismatch
                name = info.filename[: -len(".npy")]
                arrays[name] = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except FileFormatError:
        raise
    except Exception as error:  # any failure to decode these bytes means the file cannot be used
        raise FileFormatError(f"{path}: {_describe_damage(error)}") from error
    return arrays


def _declared_entries(path: Path) -> int | None:
    """The member count in the archive's end record, which :mod:`zipfile` does not compare with the
    members it finds (a damaged directory size would silently hide some); None where the record is not
    the last 22 bytes (an archive comment, or a zip64 archive)."""
    with open(path, "rb") as handle:
        handle.seek(-min(END_RECORD_SIZE, path.stat().st_size), os.SEEK_END)
        record = handle.read()
    if len(record) != END_RECORD_SIZE or not record.startswith(END_RECORD_MAGIC):
        return None
    return struct.unpack("<H", record[10:12])[0]


def _describe_damage(error: Exception) -> str:
    """What went wrong while decoding an archive, and what to do."""
    if "allow_pickle" in str(error):
        return (
            "holds object arrays, which only pickle can read, and minidl never unpickles a file; "
            "save plain numeric arrays instead."
        )
    if isinstance(error, zipfile.BadZipFile) and "CRC" in str(error):
        what = f"damaged: a checksum does not match ({error})"
    elif isinstance(error, (zipfile.BadZipFile, EOFError)):
        what = f"truncated or damaged ({str(error) or type(error).__name__})"
    else:
        what = f"damaged ({type(error).__name__}: {error})"
    return f"the file is {what}; restore a good copy or write it again."


def check_params(params: dict[str, np.ndarray], loaded: dict[str, np.ndarray], source: str) -> None:
    """Raise ValueError unless ``loaded`` matches ``params`` exactly: the same names, and for each an
    array of the same shape with a real floating dtype that casts to the parameter's.

    Every mismatch found is listed in one message that starts with ``source``.
    """
    problems = []
    missing = sorted(set(params) - set(loaded))
    unexpected = sorted(set(loaded) - set(params))
    if missing or unexpected:
        problems.append(
            f"parameter names do not match the model: missing {missing or 'none'}, unexpected {unexpected or 'none'}."
        )
    common = [key for key in params if key in loaded]
    wrong_type = [
        f"{key}: model {params[key].dtype}, file {_dtype_of(loaded[key])}"
        for key in common
        if not _castable(loaded[key], params[key].dtype)
    ]
    if wrong_type:
        problems.append(
            "parameter dtypes do not match the model (a real floating dtype is needed): " + "; ".join(wrong_type) + "."
        )
    wrong_shape = [
        f"{key}: model {params[key].shape}, file {loaded[key].shape}"
        for key in common
        if isinstance(loaded[key], np.ndarray) and loaded[key].shape != params[key].shape
    ]
    if wrong_shape:
        problems.append("parameter shapes do not match the model: " + "; ".join(wrong_shape))
    if problems:
        raise ValueError(f"{source}: " + " ".join(problems))


def _castable(value: object, dtype: np.dtype) -> bool:
    return (
        isinstance(value, np.ndarray)
        and np.issubdtype(value.dtype, np.floating)
        and np.can_cast(value.dtype, dtype, casting="same_kind")
    )


def _dtype_of(value: object) -> str:
    return str(value.dtype) if isinstance(value, np.ndarray) else type(value).__name__


def assign_params(params: dict[str, np.ndarray], loaded: dict[str, np.ndarray], source: str) -> None:
    """Copy ``loaded`` into ``params`` in place, after :func:`check_params` has passed for all of them.

    Nothing is changed unless every name, shape and dtype matches; the arrays in ``params`` stay the same
    objects (an optimizer may hold them).
    """
    check_params(params, loaded, source)
    for key, value in loaded.items():
        params[key][...] = value


KIND_ENTRY = "__kind__"  # a model file's record of the class that saved it; no parameter is named so


def save_params(path: str | os.PathLike, params: dict[str, np.ndarray], kind: str | None = None) -> None:
    """Write a model's parameters to ``path`` (atomically, :func:`save_arrays`), with the model's ``kind``
    (e.g. its class name) when given, so that :func:`load_params` refuses the file to a model of another kind.
    """
    arrays = dict(params)
    if kind is not None:
        arrays[KIND_ENTRY] = np.array(kind)
    save_arrays(path, arrays)


def load_params(path: str | os.PathLike, params: dict[str, np.ndarray], kind: str) -> None:
    """Read a file written by :func:`save_params` into ``params`` (:func:`assign_params`), for a model of
    ``kind``.

    A file that records another kind raises ValueError naming both, whatever its arrays; a file that
    records none (written by :func:`save_arrays`, ``np.savez`` or before kinds were recorded) loads into
    any model whose parameter names, shapes and dtypes match. Nothing is changed unless all of it fits.
    """
    loaded = load_arrays(path)
    recorded = loaded.pop(KIND_ENTRY, None)
    if recorded is not None:
        if recorded.ndim != 0 or recorded.dtype.kind != "U":
            raise FileFormatError(
                f"{path}: its {KIND_ENTRY!r} entry should be a 0-d string, found "
                f"{recorded.dtype} {recorded.shape}; write the file again."
            )
        if str(recorded) != kind:
            raise ValueError(
                f"{path}: holds the parameters of a model of kind {recorded}, not {kind}; load it "
                f"into a {recorded} model."
            )
    assign_params(params, loaded, source=str(path))
