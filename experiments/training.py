"""Training one model of a run into its checkpoint, the same way for every part (:mod:`experiments.mnist`,
:mod:`experiments.frey`): resumed from its last completed epoch, or reused when finished, only when the
checkpoint carries the model's fingerprint and was made from the same data and training config.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoencoders.trainer import Trainer, TrainingConfig


@dataclass(frozen=True)
class Built:
    """A model of a run, built once from the preset's seed, and its fingerprint (see
    :mod:`experiments.provenance`), made before training from the model as built."""

    model: object
    fingerprint: dict


def fit(
    built: Built,
    config: TrainingConfig,
    checkpoint: Path,
    x_train: np.ndarray,
    x_test: np.ndarray,
    progress: bool = True,
    log=print,
) -> tuple[Trainer, float]:
    """Train (or resume, or reuse) ``built.model`` on ``x_train``, evaluating on ``x_test`` after each epoch;
    returns its trainer and the seconds this call took."""
    trainer = Trainer(built.model, config, checkpoint, progress=progress, log=log, fingerprint=built.fingerprint)
    started = time.perf_counter()
    trainer.fit(x_train, x_test, resume=True)
    return trainer, time.perf_counter() - started
