"""The JSON Schemas of the files the project writes, as validators: conftest.py checks every checkpoint,
metrics.json and collection.json the tests write through the project's writers, and the tests of each file
call these directly.

The files are strict RFC 8259 JSON: :func:`strict` refuses the NaN and Infinity literals Python accepts by
default.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = {
    "checkpoint": ROOT / "autoencoders" / "schemas" / "checkpoint.schema.json",
    "metrics": ROOT / "experiments" / "schemas" / "metrics.schema.json",
    "collection": ROOT / "experiments" / "schemas" / "collection.schema.json",
}


def strict(text: str):
    """RFC 8259 JSON only: the NaN and Infinity literals Python accepts by default are refused."""

    def refuse(literal):
        raise ValueError(f"{literal} is not JSON")

    return json.loads(text, parse_constant=refuse)


def available() -> bool:
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def validator(name: str):
    """The Draft 2020-12 validator of the schema ``name`` (a key of :data:`SCHEMAS`), the schema checked first."""
    import jsonschema

    schema = strict(SCHEMAS[name].read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def checkpoint_meta(path) -> dict:
    """The metadata of a checkpoint file, parsed as strict JSON."""
    with np.load(path, allow_pickle=False) as arrays:
        return strict(str(arrays["meta"]))


def check_checkpoint(path) -> dict:
    """Raise jsonschema.ValidationError unless the checkpoint at ``path`` has the metadata its schema describes."""
    meta = checkpoint_meta(path)
    validator("checkpoint").validate(meta)
    return meta


def check_json(path, name: str) -> dict:
    """Raise unless the file at ``path`` is strict JSON that the schema ``name`` describes; returns it."""
    document = strict(Path(path).read_text())
    validator(name).validate(document)
    return document
