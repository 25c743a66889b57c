"""One run: load the data (or the offline stand-in), check the settings against it, train and evaluate each
part into a results folder, and write its report. The command line (:mod:`experiments.pipeline`) and the
workers of a collection of runs (:mod:`experiments.workers`) call :func:`run_job`.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import matplotlib
import numba
import numpy as np
import scipy
import sklearn

import minidl
from autoencoders.checkpoints import plain
from experiments import datasets, fit, frey, mnist, provenance, run_folder, training
from experiments.presets import default_folder, overrides, settings
from experiments.report import write_report

STAND_IN = "the OFFLINE STAND-IN (scikit-learn's 8x8 digits resized to 28x28)"
NOT_COMPARABLE = "Its numbers are NOT comparable with the study's."


def _versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "minidl": minidl.__version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "matplotlib": matplotlib.__version__,
    }


def _stand_in_allowed(error: datasets.DataUnavailable, data_dir, what: str) -> None:
    """Re-raise ``error`` when the user named a data folder: the stand-in is only for a user without data."""
    pointed = datasets.pointed_dirs(data_dir)
    if not all(path.is_dir() for path in pointed.values()):
        raise error  # a named folder that does not exist: the message says so
    if pointed:
        raise datasets.DataUnavailable(
            f"{error} (The offline stand-in replaces {what} only when no data folder is named; here "
            f"{' and '.join(pointed)} named {', '.join(str(path) for path in pointed.values())}.)"
        ) from None


def fetch_allowed() -> bool:
    """Whether missing data may be downloaded: not when ``MINIDL_OFFLINE=1`` (e.g. on cluster workers
    without internet access, which then fail fast or use the stand-in instead of waiting for mirrors)."""
    return not datasets.downloads_forbidden()


def load_mnist_or_stand_in(data_dir, log=print) -> tuple[dict, str, bool]:
    """MNIST, or (loudly) the offline digits stand-in split 80/20 when MNIST is unavailable and no data
    folder was named. A damaged file, or a file missing from a named folder, is an error."""
    try:
        x_train, y_train, x_test, y_test = datasets.load_mnist(data_dir, fetch=fetch_allowed())
        return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test), "MNIST", False
    except datasets.DataUnavailable as error:
        _stand_in_allowed(error, data_dir, "MNIST")
        log(f"{error}\n\nWARNING: MNIST could not be found or downloaded; using {STAND_IN}. {NOT_COMPARABLE}")
        images, labels = datasets.load_digits_28()
        order = np.random.default_rng(0).permutation(len(images))
        cut = int(0.8 * len(images))
        train, test = order[:cut], order[cut:]
        data = dict(x_train=images[train], y_train=labels[train], x_test=images[test], y_test=labels[test])
        return data, "offline stand-in: scikit-learn digits resized to 28x28", True


def load_frey_or_stand_in(data_dir, log=print) -> tuple[np.ndarray, str, bool]:
    """Frey Face, or (loudly) the digits stand-in cropped to 28x20, under the rules of MNIST's."""
    try:
        return datasets.load_frey_faces(data_dir, fetch=fetch_allowed()), "Frey Face", False
    except datasets.DataUnavailable as error:
        _stand_in_allowed(error, data_dir, "Frey Face")
        log(
            f"{error}\n\nWARNING: Frey Face could not be found or downloaded; using {STAND_IN}, cropped to "
            f"28x20. {NOT_COMPARABLE}"
        )
        images, _ = datasets.load_digits_28()
        return np.ascontiguousarray(images[:, :, :, 4:24]), "offline stand-in: digits cropped to 28x20", True


def prepare(part: str, preset, data_dir, log=print) -> dict:
    """The arrays one part trains and evaluates on (subset or split per the preset) and their identity.
    Raises UsageError for a setting that this data cannot honour (see :mod:`experiments.fit`)."""
    if part == "mnist":
        data, source, stand_in = load_mnist_or_stand_in(data_dir, log)
        fit.check_mnist(preset, data, stand_in, log)
        data = mnist.subset(data, preset)
    else:
        images, source, stand_in = load_frey_or_stand_in(data_dir, log)
        fit.check_frey(preset, len(images))
        x_train, x_test = frey.split(images, preset.test_fraction, preset.seed)
        data = {"x_train": x_train, "x_test": x_test}
    return {"data": data, "identity": provenance.data_identity(source, stand_in, **data)}


def build(part: str, preset, prepared: dict) -> dict[str, training.Built]:
    """Every model of ``part`` (by MNIST kind, or by the VAE decoder's likelihood), each built once from the
    preset's seed for the arrays of ``prepared``, with its fingerprint; the same model is then trained."""
    identity, shape = prepared["identity"], prepared["data"]["x_train"].shape[1:]
    if part == "frey":
        models = {name: (f"vae_{name}", frey.build_model(preset, shape, name)) for name in frey.LIKELIHOODS}
    else:
        models = {name: (name, mnist.build_model(name, preset, shape)) for name in mnist.MODEL_KINDS}
    return {
        name: training.Built(model, provenance.fingerprint(kind, model, preset, identity))
        for name, (kind, model) in models.items()
    }


def expectations(part: str, prepared: dict, built: dict[str, training.Built]) -> list[run_folder.Expected]:
    """Every result and checkpoint of ``part`` with the fingerprint this run gives it (all MNIST models, not
    only those being trained: the models of one part are compared side by side, so they share their data)."""
    if part == "frey":
        return [
            run_folder.Expected(
                f"Frey Face VAE ({likelihood})",
                ("frey", likelihood),
                built[likelihood].fingerprint,
                frey.CHECKPOINT.format(likelihood=likelihood),
            )
            for likelihood in frey.LIKELIHOODS
        ]
    reference = run_folder.Expected("MNIST mean-image reference", ("mnist_reference",), {"data": prepared["identity"]})
    return [reference] + [
        run_folder.Expected(
            f"MNIST {kind}", ("mnist", kind), built[kind].fingerprint, mnist.CHECKPOINT.format(kind=kind)
        )
        for kind in mnist.MODEL_KINDS
    ]


def run_part(
    part: str,
    preset,
    out_dir: Path,
    prepared: dict,
    built: dict[str, training.Built],
    progress: bool,
    models=None,
    log=print,
) -> None:
    """Train and evaluate one part (its ``models``, MNIST kinds, when given; else all) from the models ``built``
    for it, storing each result in metrics.json as soon as it exists. The models trained are taken out of
    ``built`` and handed to the part, which frees each once evaluated."""
    started = time.perf_counter()
    stage = part if part != "mnist" or not models else f"mnist ({', '.join(models)})"

    def store(entry, value):
        run_folder.store(out_dir, entry, value, {stage: time.perf_counter() - started})

    data = prepared["data"]
    if part == "mnist":
        # the level a collapsed model sits at: predicting the mean training image for every test image
        baseline = float(np.mean((data["x_test"] - data["x_train"].mean(axis=0)) ** 2))
        store(("mnist_reference",), {"mean_image_test_mse": baseline, "provenance": {"data": prepared["identity"]}})
        mnist.run(
            preset,
            data,
            out_dir,
            {kind: built.pop(kind) for kind in models or mnist.MODEL_KINDS},
            progress=progress,
            log=log,
            store=lambda kind, result: store(("mnist", kind), result),
        )
    else:
        frey.run(
            preset,
            data["x_train"],
            data["x_test"],
            out_dir,
            built,
            progress=progress,
            log=log,
            store=lambda likelihood, result: store(("frey", likelihood), result),
        )


def run_job(
    preset,
    out_dir: Path | None,
    parts: list[str],
    data_dir=None,
    models=None,
    move_aside: bool = False,
    progress: bool = False,
    log=print,
) -> Path:
    """Train and evaluate ``parts`` (``"mnist"``, ``"frey"``) of one run with ``preset`` into ``out_dir`` (None:
    the default folder of its settings and data) and write its report; returns the folder.

    Holds the folder's lock while it writes (see :class:`~experiments.run_folder.FolderLock`). Raises FolderInUse
    when another command holds it, FolderConflict when the folder holds results of other data or settings (unless
    ``move_aside``), and the errors of the data, the checkpoints and the training.
    """
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise run_folder.FolderError(f"{out_dir}: is a file, not a folder; choose another --out.")
    prepared = {part: prepare(part, preset, data_dir, log) for part in parts}
    stand_in = {part: values["identity"]["stand_in"] for part, values in prepared.items()}
    out_dir = out_dir if out_dir is not None else default_folder(preset, stand_in)
    built = {part: build(part, preset, prepared[part]) for part in parts}
    everything = [item for part in parts for item in expectations(part, prepared[part], built[part])]
    with run_folder.take(out_dir, lambda: run_folder.conflicts(out_dir, settings(preset), everything), move_aside, log):
        run_folder.claim(
            out_dir,
            {
                "preset": preset.name,
                "overrides": plain(overrides(preset)),
                "settings": settings(preset),
                "versions": _versions(),
            },
        )
        for part in parts:  # each part's models handed over, to be freed as it goes
            run_part(part, preset, out_dir, prepared[part], built.pop(part), progress, models, log)
        write_report(out_dir)
    return out_dir
