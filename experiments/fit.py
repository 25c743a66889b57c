"""Settings checked against the data, once it is loaded and before anything trains.

:class:`~experiments.presets.Preset` validates each setting alone; whether ``n_train=100000`` or ``n_pairs=1000``
can be honoured depends on the data. Each check here names the setting, its value and the range this data
allows, so that a run never trains for minutes and then fails in its evaluation, and never reports a setting
it did not use (a subset larger than the data, t-SNE with a lowered perplexity).

One exception: the named presets are made for the real datasets, and the offline stand-in is smaller, so a
preset's own ``n_train``, ``n_test`` or ``tsne_points`` beyond the stand-in's size takes all of it (said in
the log, and the report's data table gives the sizes used); the same values given with ``--set`` or
``--grid`` are refused.
"""

from __future__ import annotations

import math

import numpy as np

from experiments import metrics
from experiments.errors import UsageError
from experiments.presets import Preset, overrides

MIN_HELD_OUT_FACES = 2  # the diversity of held-out faces, the baseline of the generated ones, needs a pair
MIN_TRAINING_FACES = 1


def _shown(value) -> str:
    return "none" if value is None else str(value)


def _capped(preset: Preset, name: str, stand_in: bool) -> bool:
    """Whether a value of ``name`` beyond the data is taken as "all of it" (see the module's docstring)."""
    return stand_in and name not in overrides(preset)


def check_mnist(preset: Preset, data: dict, stand_in: bool, log=print) -> None:
    """Refuse (the command line's UsageError) the MNIST settings that ``data`` (the whole set, before
    :func:`experiments.mnist.subset`) cannot honour: the subset sizes, the linear probe's classes, t-SNE's
    points and perplexity, and the interpolation pairs."""
    source = "the offline stand-in" if stand_in else "MNIST"
    sizes = {}
    for name, split, what in (("n_train", "y_train", "training"), ("n_test", "y_test", "test")):
        available, wanted = len(data[split]), getattr(preset, name)
        sizes[name] = available if wanted is None else min(wanted, available)
        if wanted is not None and wanted > available:
            if not _capped(preset, name, stand_in):
                raise UsageError(
                    f"{name}={wanted}: {source} has {available:,} {what} images; expected "
                    f"1 <= {name} <= {available}, or none (all)."
                )
            log(
                f"note: the {preset.name} preset's {name}={wanted} is more than the {available:,} {what} images "
                f"of {source}: all {available:,} are used."
            )
    n_train, n_test = sizes["n_train"], sizes["n_test"]

    labels = data["y_train"][:n_train]
    if len(np.unique(labels)) < 2:
        other = np.flatnonzero(data["y_train"] != labels[0])
        needed = f"expected n_train >= {other[0] + 1} here" if len(other) else "this data has a single digit"
        raise UsageError(
            f"n_train={_shown(preset.n_train)}: the linear probe on the codes needs training images of "
            f"two digits at least, and the first {n_train:,} of {source} are all {labels[0]}s; {needed}."
        )

    points = n_test if preset.tsne_points is None else min(preset.tsne_points, n_test)
    if preset.tsne_points is not None and preset.tsne_points > n_test and not _capped(preset, "tsne_points", stand_in):
        raise UsageError(
            f"tsne_points={preset.tsne_points}: the test set has {n_test:,} images "
            f"(n_test={_shown(preset.n_test)}); expected 2 <= tsne_points <= {n_test}, or none (the whole "
            "test set)."
        )
    if points < 2:
        raise UsageError(
            f"n_test={_shown(preset.n_test)}: t-SNE of the test codes needs 2 points at least (tsne_points="
            f"{_shown(preset.tsne_points)}); expected n_test >= 2."
        )
    most = (points - 1) / 3  # t-SNE's neighbourhoods need 3 x perplexity < points
    if preset.tsne_perplexity > most:
        raise UsageError(
            f"tsne_perplexity={preset.tsne_perplexity:g}: t-SNE of {points:,} points takes a perplexity of "
            f"at most (points - 1) / 3 = {math.floor(most * 1000) / 1000:g}; lower it, or give t-SNE more "
            "points (tsne_points, n_test)."
        )

    pairs = metrics.most_interpolation_pairs(data["y_test"][:n_test], np.random.default_rng(preset.seed))
    if preset.n_pairs > pairs:
        raise UsageError(
            f"n_pairs={preset.n_pairs}: the {n_test:,} test images (n_test={_shown(preset.n_test)}) give "
            f"at most {pairs:,} pairs of different digits with seed {preset.seed}; expected "
            f"1 <= n_pairs <= {pairs}."
        )


def check_frey(preset: Preset, n_images: int) -> None:
    """Refuse a ``test_fraction`` that leaves fewer than two held-out faces or no training face of ``n_images``."""
    held_out = int(round(preset.test_fraction * n_images))
    if MIN_HELD_OUT_FACES <= held_out <= n_images - MIN_TRAINING_FACES:
        return
    low = math.ceil(MIN_HELD_OUT_FACES / n_images * 1e5) / 1e5
    high = math.floor((n_images - MIN_TRAINING_FACES) / n_images * 1e5) / 1e5
    raise UsageError(
        f"test_fraction={preset.test_fraction:g}: holds out {held_out:,} of the {n_images:,} faces and "
        f"trains on {n_images - held_out:,}; the evaluation needs {MIN_HELD_OUT_FACES} held out and "
        f"{MIN_TRAINING_FACES} to train on at least: expected {low:g} <= test_fraction <= {high:g}."
    )
