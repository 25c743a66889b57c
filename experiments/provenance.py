"""What made each model and result: its data, its settings, its kind and architecture, as one fingerprint.

A fingerprint is a plain JSON-able dict stored in the model's checkpoint (see
:class:`~autoencoders.trainer.Trainer`) and beside its numbers in ``metrics.json``::

    {"kind": "sparse",
     "architecture": {"class": "SparseAutoencoder", "networks": {"encoder": "Sequential(...)", ...},
                      "parameters": {"encoder.conv2d_1.W": [[16, 1, 3, 3], "float32"], ...}},
     "settings": {"seed": 0, "epochs": 2, "rho": 0.05, ...},      # every setting that shapes it
     "data": {"source": "MNIST", "stand_in": false,
              "x_train": {"shape": [10000, 1, 28, 28], "dtype": "float32", "sha256": "..."}, ...},
     "digest": "<sha256 of all of the above>"}

Data identity is the sha256 of the arrays actually used (after subsetting and splitting), so a
checkpoint or result is reused only when it was made from the very same numbers.
"""

from __future__ import annotations

import hashlib
import json

from autoencoders.checkpoints import array_identity, differences
from experiments.presets import Preset, shaping


def data_identity(source: str, stand_in: bool, **arrays) -> dict:
    """The source's name, whether it is the offline stand-in, and shape, dtype and sha256 of each array."""
    return {
        "source": source,
        "stand_in": bool(stand_in),
        **{name: array_identity(array) for name, array in arrays.items()},
    }


def settings_of(kind: str, preset: Preset) -> dict:
    """The values of the settings that shape the model ``kind`` (an MNIST model kind, or ``"vae_<likelihood>"``
    for a VAE) and its results, as each field of :class:`~experiments.presets.Preset` declares."""
    return json.loads(json.dumps({name: getattr(preset, name) for name in shaping(kind)}))


def architecture(model) -> dict:
    """The model's class, the layer list of each sub-network, and each parameter's shape and dtype."""
    return {
        "class": type(model).__name__,
        "networks": {name: repr(network) for name, network in model.networks.items()},
        "parameters": {name: [list(param.shape), str(param.dtype)] for name, param, _ in model.parameters()},
    }


def fingerprint(kind: str, model, preset: Preset, data: dict) -> dict:
    """The fingerprint of ``model`` of ``kind`` trained with ``preset`` on the data identified by ``data``."""
    content = {"kind": kind, "architecture": architecture(model), "settings": settings_of(kind, preset), "data": data}
    return {**content, "digest": hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()}


def compare(old: dict | None, new: dict) -> list[str]:
    """Each field in which two fingerprints differ, as ``"field: old -> new"`` (empty when they match)."""
    if not isinstance(old, dict):
        return ["no fingerprint recorded (made by an older version)"]
    return differences({k: v for k, v in old.items() if k != "digest"}, {k: v for k, v in new.items() if k != "digest"})


def describe(data: dict) -> str:
    """One line for the report: source, then each array's size and sha256 prefix."""
    arrays = [
        f"{name} {identity['shape'][0]:,} (sha256 {identity['sha256'][:12]})"
        for name, identity in data.items()
        if isinstance(identity, dict)
    ]
    return f"{data['source']}: " + ", ".join(arrays)
