"""Saving and loading parameters as ``.npz`` files, never through pickle."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` (an ``.npz``) atomically: a temporary file, then a rename.

    An interrupted save leaves the previous file intact and no partial file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file with ``allow_pickle=False``."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def check_params(params: dict[str, np.ndarray], loaded: dict[str, np.ndarray], source: str) -> None:
    """Raise ValueError unless ``loaded`` has exactly the names and shapes of ``params``."""
    missing = sorted(set(params) - set(loaded))
    unexpected = sorted(set(loaded) - set(params))
    if missing or unexpected:
        raise ValueError(f"{source}: parameter names do not match the model: "
                         f"missing {missing or 'none'}, unexpected {unexpected or 'none'}.")
    wrong = [f"{key}: model {params[key].shape}, file {loaded[key].shape}"
             for key in params if params[key].shape != loaded[key].shape]
    if wrong:
        raise ValueError(f"{source}: parameter shapes do not match the model: " + "; ".join(wrong))


def assign_params(params: dict[str, np.ndarray], loaded: dict[str, np.ndarray], source: str) -> None:
    """Copy ``loaded`` into ``params`` in place, after checking names and shapes of all of them.

    Nothing is changed unless every name and shape matches.
    """
    check_params(params, loaded, source)
    for key, value in loaded.items():
        params[key][...] = value
