"""Checkpoint files of the :class:`~autoencoders.trainer.Trainer`: reading them safely and comparing what made them.

A checkpoint is one ``.npz`` (no pickle) holding ``param/<name>`` and ``optim/<key>`` arrays and a ``meta``
entry, a JSON string with the format number, the epoch, the per-epoch history, the generator state, the
training config, the model's kind and settings, the identity of the data it was trained on and an optional
caller-supplied fingerprint. Everything is read and checked before anything is assigned, and every error
names the file.

Formats: 3 records the model (``{"kind": "SparseAutoencoder", "rho": 0.05, ...}``). 2 (and the unnumbered
1) did not: such a checkpoint is still read and resumed when everything else matches, its model kind
unchecked, and the trainer's next save writes it as format 3. A format newer than :data:`FORMAT` is refused.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from minidl.serialization import load_arrays

FORMAT = 3
_MISSING = "(not recorded)"


class CheckpointError(ValueError):
    """A checkpoint cannot be read, is damaged, does not fit the trainer, or cannot be written where asked;
    the message starts with its path."""


class CheckpointMismatch(CheckpointError):
    """The checkpoint was made by another kind of model or from other data or settings; ``differences``
    lists each field, old -> new (``model.kind: SparseAutoencoder -> Autoencoder``)."""

    def __init__(self, path, differences: list[str]) -> None:
        self.path, self.differences = Path(path), list(differences)
        super().__init__(
            f"{path}: made from another model, data or settings, so it is not resumed (nothing was "
            f"changed): {'; '.join(differences)}. Use another checkpoint path, or delete or "
            "move this file to start afresh."
        )


def model_description(model) -> dict:
    """What a checkpoint records of a model: ``{"kind": ..., **settings}``, from its ``kind()`` and
    ``settings()`` (see :mod:`autoencoders.models`); a model without them is described by its class name."""
    kind = model.kind() if hasattr(model, "kind") else type(model).__name__
    settings = model.settings() if hasattr(model, "settings") else {}
    return plain({"kind": kind, **settings})


def model_differences(old: dict | None, new: dict) -> list[str]:
    """How the model a checkpoint recorded (None before format 3: nothing to compare) differs from ``new``:
    only the kind when the kinds differ, else each setting."""
    if old is None:
        return []
    if old.get("kind") != new["kind"]:
        return [f"model.kind: {old.get('kind')} -> {new['kind']}"]
    return differences(old, new, "model")


def check_writable(path) -> None:
    """Raise CheckpointError unless a checkpoint can be written at ``path``: not a folder, and its folder
    (created if missing) accepts new files. Nothing is left behind."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path}: is a folder, not a file; give the checkpoint a file name such as {path / 'checkpoint.npz'}."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise CheckpointError(
            f"{path}: its folder {path.parent} cannot be written ({reason}); choose a "
            "checkpoint path in a writable folder."
        ) from None


def array_identity(x: np.ndarray | None) -> dict | None:
    """Shape, dtype and sha256 of an array's bytes in C order: equal identities mean equal arrays."""
    if x is None:
        return None
    x = np.ascontiguousarray(x)
    digest = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
    digest.update(x.reshape(-1).view(np.uint8))  # the bytes themselves, without a copy
    return {"shape": list(x.shape), "dtype": str(x.dtype), "sha256": digest.hexdigest()}


def plain(value):
    """``value`` as JSON would give it back (tuples become lists), so that stored and new values compare."""
    return json.loads(json.dumps(value))


def differences(old, new, prefix: str = "") -> list[str]:
    """Every leaf where two JSON-like values differ, as ``"a.b: old -> new"`` (long strings shortened).

    Keys missing on one side show as ``(not recorded)``.
    """
    old, new = plain(old), plain(new)
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in [*new, *(key for key in old if key not in new)]:
            found += differences(old.get(key, _MISSING), new.get(key, _MISSING), f"{prefix}.{key}" if prefix else key)
        return found
    return [] if old == new else [f"{prefix or 'value'}: {_show(old)} -> {_show(new)}"]


def _show(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text[:12] + "…"  # a sha256
    return text if len(text) <= 60 else text[:57] + "…"


# -- reading --------------------------------------------------------------------------------------


def read_checkpoint(path) -> tuple[dict, dict[str, np.ndarray]]:
    """The meta dict and the arrays of a checkpoint, after checking that the file is whole and well formed.

    Raises CheckpointError (naming ``path``) for a file that cannot be read, has no or unparseable ``meta``,
    or whose epoch, history, generator state or config are malformed.
    """
    path = Path(path)
    try:
        arrays = load_arrays(path)
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        detail = str(error)  # a loader that names the path already is not repeated
        detail = (
            detail[len(str(path)) :].lstrip(": ")
            if detail.startswith(str(path))
            else f"{type(error).__name__}: {detail}"
        )
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint ({detail}); the file is damaged, "
            "truncated or not a checkpoint. Delete it to train afresh."
        ) from None
    if "meta" not in arrays:
        raise CheckpointError(
            f"{path}: not a trainer checkpoint: it has no 'meta' entry (found "
            f"{sorted(arrays)[:6]}). Delete it to train afresh."
        )
    entry = arrays.pop("meta")
    try:
        if entry.ndim != 0 or entry.dtype.kind != "U":
            raise ValueError(f"'meta' should be a 0-d string, found {entry.dtype} {entry.shape}")
        meta = json.loads(str(entry))
        _check_meta(meta)
    except ValueError as error:
        raise CheckpointError(f"{path}: damaged checkpoint metadata ({error}). Delete it to train afresh.") from None
    return meta, arrays


def _check_meta(meta) -> None:
    if not isinstance(meta, dict):
        raise ValueError(f"expected a JSON object, found {type(meta).__name__}")
    version = meta.get("format", 1)  # the first checkpoints carried no number
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"format should be an integer >= 1, found {version!r}")
    if version > FORMAT:
        raise ValueError(
            f"format {version}, newer than the format {FORMAT} this version reads; update minidl to resume it"
        )
    required = ("epoch", "history", "rng", "config") + (("model",) if version >= 3 else ())
    missing = [key for key in required if key not in meta]
    if missing:
        raise ValueError(f"missing {missing}")
    if version >= 3 and not (isinstance(meta["model"], dict) and isinstance(meta["model"].get("kind"), str)):
        raise ValueError(f"model should be an object with a 'kind', found {meta['model']!r}")
    epoch, history = meta["epoch"], meta["history"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(f"epoch should be a non-negative integer, found {epoch!r}")
    if not isinstance(history, list) or len(history) != epoch or not all(isinstance(r, dict) for r in history):
        raise ValueError(
            f"history should be a list of {epoch} records, found {type(history).__name__} "
            f"of length {len(history) if isinstance(history, list) else '?'}"
        )
    if not isinstance(meta["config"], dict):
        raise ValueError(f"config should be a JSON object, found {meta['config']!r}")
    try:
        np.random.default_rng().bit_generator.state = meta["rng"]  # a throwaway generator tries it
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"the generator state cannot be restored ({type(error).__name__}: {error})") from None


def check_arrays(path, expected: dict[str, np.ndarray], found: dict[str, np.ndarray]) -> None:
    """Raise CheckpointError unless ``found`` has exactly the names, shapes and dtypes of ``expected`` and
    only finite values (a checkpoint of a diverged run is not resumed)."""
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: its arrays do not match this model and optimizer: missing "
            f"{missing or 'none'}, unexpected {unexpected or 'none'}."
        )
    wrong = [
        f"{key}: expected {expected[key].dtype} {expected[key].shape}, file has {found[key].dtype} {found[key].shape}"
        for key in expected
        if (found[key].shape, found[key].dtype) != (expected[key].shape, expected[key].dtype)
    ]
    if wrong:
        raise CheckpointError(f"{path}: its arrays do not match this model and optimizer: " + "; ".join(wrong))
    non_finite = sorted(key for key, value in found.items() if value.dtype.kind == "f" and not np.isfinite(value).all())
    if non_finite:
        raise CheckpointError(
            f"{path}: holds non-finite values in {non_finite}; it cannot be resumed. Delete it to train afresh."
        )
