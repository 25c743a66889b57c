"""The file of a collection (seeds or a sweep): ``collection.json``, laid out as
``experiments/schemas/collection.schema.json`` describes.

It holds what the collection is (``collection``), each finished run's headline numbers with the data and
fingerprints that made them (``runs``) and, once every run has finished, the spread of each headline number over
the seeds of each grid point (``aggregate``). Each headline number is a record of its part, model, metric and
alpha beside its value (:func:`experiments.headline.to_records`). The file is RFC 8259 JSON like a run's
``metrics.json`` (non-finite numbers as strings, see :func:`experiments.run_folder.to_json`).

Older versions wrote the same content as the folder's ``metrics.json`` (told apart from a run's by its
``collection`` key) and named each headline number by a string, ``"mnist.sparse.psnr@0.2"`` (format 1).
:func:`read` reads both: it renames such a ``metrics.json`` to ``collection.json`` (one atomic rename, saying
so in one line) and converts format 1 as it reads it; the collection's next write stores format 2. Call it
while holding the folder's lock (:class:`experiments.run_folder.FolderLock`), as every command does.
"""

from __future__ import annotations

import os
from pathlib import Path

from experiments import headline, run_folder

FORMAT = 2  # 2: collection.json, headline numbers as records; 1: metrics.json, headline numbers by name
NAME = run_folder.COLLECTION
OLD_NAME = "metrics.json"


def read(folder: Path, log=print) -> dict:
    """The collection's file in ``folder`` as format 2 ({} when the folder holds none); FolderError naming the
    file when it cannot be read or is of a format this version does not know."""
    folder = Path(folder)
    path, old = folder / NAME, folder / OLD_NAME
    if not path.exists() and old.exists() and "collection" in run_folder.read_metrics(folder):
        os.replace(old, path)  # one step: the folder never holds the collection under both names, or neither
        log(f"{old}: the file of seeds or a sweep, renamed {NAME}.")
    return upgrade(run_folder.read_document(path), path)


def write(folder: Path, document: dict) -> None:
    """Replace ``folder/collection.json`` atomically (:func:`experiments.run_folder.write_document`)."""
    run_folder.write_document(Path(folder) / NAME, document)


def upgrade(document: dict, path: Path) -> dict:
    """``document`` in format 2: a format 1 document's headline names become records (:func:`old_headline`)."""
    if not document:
        return document
    version = document.get("format")
    if version == FORMAT:
        return document
    if version != 1:
        raise run_folder.FolderError(
            f"{path}: format {version!r}, not one this version reads (1 or {FORMAT}); "
            + ("update minidl to read it." if isinstance(version, int) and version > FORMAT else "repair or remove it.")
        )
    try:
        runs = {
            key: {"where": {}, **entry, "headline": headline.to_records(_renamed(entry["headline"]))}
            for key, entry in document.get("runs", {}).items()
        }
        aggregate = {
            key: {**entry, "stats": headline.to_records(_renamed(entry["stats"]))}
            for key, entry in document.get("aggregate", {}).items()
        }
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise run_folder.FolderError(
            f"{path}: a format 1 file whose headline numbers cannot be read ({type(error).__name__}: {error}); "
            "repair or remove it."
        ) from None
    upgraded = {**document, "format": FORMAT, "runs": runs}
    if "aggregate" in document:
        upgraded["aggregate"] = aggregate
    return upgraded


def _renamed(by_name: dict) -> dict:
    return {old_headline(name): value for name, value in by_name.items()}


def old_headline(name: str) -> headline.Headline:
    """The headline a format 1 file named ``<part>.<model>.<metric>[@<alpha>]``.

    >>> old_headline("mnist.sparse.psnr@0.2")
    Headline(part='mnist', model='sparse', metric='psnr', alpha=0.2)
    """
    part, model, metric = name.split(".", 2)
    metric, at, alpha = metric.partition("@")
    return headline.Headline(part, model, metric, float(alpha) if at else None)
