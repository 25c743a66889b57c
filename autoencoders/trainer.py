"""Mini-batch training with Adam, per-epoch history, atomic checkpoints and exact resumption.

A checkpoint is one ``.npz`` written after every epoch (temporary file, then rename) holding the
parameters, the optimizer state, the state of the random generator, the history, the config, the identity
of the training and test data and an optional fingerprint (see :mod:`autoencoders.checkpoints`); it loads
with ``allow_pickle=False``. Resuming from the checkpoint of epoch k and training on gives, bit for bit,
the parameters of an uninterrupted run with the same seed and thread count. A checkpoint made from other
data, another config or another fingerprint is never resumed, and no checkpoint holds non-finite values.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from autoencoders.checkpoints import (
    FORMAT,
    CheckpointMismatch,
    array_identity,
    check_arrays,
    check_writable,
    differences,
    model_description,
    model_differences,
    read_checkpoint,
)
from minidl.flow import SATURATION, FlowRecorder
from minidl.optim import Adam
from minidl.serialization import assign_params, remove_stale_temporaries, save_arrays


class TrainingDiverged(RuntimeError):
    """A loss, an evaluation or the trained state became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of one training run.

    Examples
    --------
    >>> from autoencoders import TrainingConfig
    >>> config = TrainingConfig(epochs=2, batch_size=64)
    >>> config.learning_rate, config.seed
    (0.001, 0)
    >>> TrainingConfig(batch_size=0)
    Traceback (most recent call last):
    ...
    ValueError: Expected batch_size to be a positive integer. Received: batch_size=0
    >>> TrainingConfig(learning_rate="0.1")
    Traceback (most recent call last):
    ...
    TypeError: Expected learning_rate to be a finite positive number. Received: learning_rate='0.1'

    Every field is checked: integers (not bools; NumPy integers are accepted and stored as ``int``) for
    ``epochs``, ``batch_size`` and ``eval_batch_size`` (>= 1) and ``seed`` (>= 0), and a finite number > 0
    for ``learning_rate`` (stored as ``float``). A value of the wrong type raises TypeError, one out of
    range ValueError.
    """

    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    eval_batch_size: int = 500

    def __post_init__(self) -> None:
        # bools are ints to Python, but epochs=True is a mistake; NumPy numbers become plain ones (JSON-able)
        for name, low, allowed in (
            ("epochs", 1, "a positive integer"),
            ("batch_size", 1, "a positive integer"),
            ("seed", 0, "a non-negative integer"),
            ("eval_batch_size", 1, "a positive integer"),
        ):
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"Expected {name} to be {allowed}. Received: {name}={value!r}")
            if value < low:
                raise ValueError(f"Expected {name} to be {allowed}. Received: {name}={value!r}")
            object.__setattr__(self, name, int(value))
        value, allowed = self.learning_rate, "a finite positive number"
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"Expected learning_rate to be {allowed}. Received: learning_rate={value!r}")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            number = math.inf
        if not (math.isfinite(number) and number > 0):
            raise ValueError(f"Expected learning_rate to be {allowed}. Received: learning_rate={value!r}")
        object.__setattr__(self, "learning_rate", number)


def latent_health(codes: np.ndarray) -> dict[str, float]:
    """Mean activation of the codes and, for codes in [0, 1], the fraction of saturated units.

    A unit is saturated where h < SATURATION or h > 1 - SATURATION (1e-3, :mod:`minidl.flow`'s threshold):
    a sigmoid there passes almost no gradient.

    Shapes
    ------
    codes : (N, latent_dim)
    """
    health = {"latent_mean": float(np.mean(codes))}
    if codes.size and codes.min() >= 0.0 and codes.max() <= 1.0:
        saturated = (codes < SATURATION) | (codes > 1.0 - SATURATION)
        health["latent_saturated"] = float(np.mean(saturated))
    return health


class Trainer:
    """Train a model that offers ``parameters()``, ``loss_and_grads(x, rng)``,
    ``evaluate_and_encode(x, rng)`` and ``encode(x)`` (see :mod:`autoencoders.models`).

    Parameters
    ----------
    model
        The autoencoder. If it has an ``input_range`` attribute ``(low, high)``, :meth:`fit` checks that
        the data lies within it.
    config : TrainingConfig
    checkpoint_path : path or None
        Where the checkpoint of the last finished epoch is kept; None keeps none.
    progress : bool
        Show a progress bar with the running loss and images per second.
    log : callable or None
        Called with a one-line summary after every epoch (e.g. ``print``).
    fingerprint : dict or None
        JSON-serialisable description of what made this model (e.g. settings, architecture, data
        source); stored in every checkpoint, and a checkpoint with another one is not resumed.

    Examples
    --------
    >>> import numpy as np
    >>> from autoencoders import SparseAutoencoder, Trainer, TrainingConfig
    >>> images = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    >>> trainer = Trainer(SparseAutoencoder(rng=0), TrainingConfig(epochs=1, batch_size=4), progress=False)
    >>> history = trainer.fit(images)  # one dict per epoch; checkpoint_path=... makes it resumable
    >>> len(history), sorted(key for key in history[0] if key.startswith("train_"))
    (1, ['train_kl_sparsity', 'train_loss', 'train_mse'])
    """

    def __init__(
        self,
        model,
        config: TrainingConfig,
        checkpoint_path=None,
        progress: bool = True,
        log=None,
        fingerprint: dict | None = None,
    ) -> None:
        self.model = model
        self.log = log
        self.config = config
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.progress = progress
        self.fingerprint = fingerprint
        self.optimizer = Adam(model.parameters(), lr=config.learning_rate)
        self.flow = FlowRecorder(self.optimizer.parameters, getattr(model, "networks", None))
        self.rng = np.random.default_rng(config.seed)
        self.epoch = 0
        self.history: list[dict] = []
        # the codes of x_test after the last epoch the latest fit trained (None when it trained none)
        self.test_codes: np.ndarray | None = None
        self.data: dict | None = None  # identity of the data of the current fit (set by fit)
        self._checkpoint_epoch: int | None = None  # epoch of the checkpoint this trainer wrote or loaded

    # -- checkpoints -------------------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"param/{name}": param for name, param, _ in self.model.parameters()}
        arrays.update({f"optim/{key}": value for key, value in self.optimizer.state.items()})
        return arrays

    def save_checkpoint(self, path=None) -> None:
        """Write parameters, optimizer state, generator state, history and provenance atomically.

        Raises TrainingDiverged, writing nothing, when a parameter or optimizer state is not finite.
        """
        path = Path(path) if path is not None else self.checkpoint_path
        self._check_state(f"at epoch {self.epoch}")
        arrays = self._state_arrays()
        meta = {
            "format": FORMAT,
            "epoch": self.epoch,
            "history": self.history,
            "config": asdict(self.config),
            "model": model_description(self.model),
            "rng": self.rng.bit_generator.state,
            "data": self.data,
            "fingerprint": self.fingerprint,
        }
        save_arrays(path, {**arrays, "meta": np.array(json.dumps(meta))})
        if path == self.checkpoint_path:
            self._checkpoint_epoch = self.epoch

    def mismatches(self, meta: dict, data: dict | None = None) -> list[str]:
        """How a checkpoint's ``meta`` differs from this trainer (and from ``data``, the identity of the data
        about to be trained on, when given): one ``"field: old -> new"`` per difference.

        The model's kind must match (``model.kind: SparseAutoencoder -> Autoencoder``; only the kind is
        listed when it differs), and so must its settings (``model.rho``, ...); a checkpoint older than
        format 3 recorded neither, and its model is not compared. Every config field must match except
        ``epochs``, which may grow: continuing for more epochs is exact, but a checkpoint that trained
        further than ``config.epochs`` is a mismatch.
        """
        config = asdict(self.config)
        found = model_differences(meta.get("model"), model_description(self.model))
        found += differences(
            {k: v for k, v in meta["config"].items() if k != "epochs"},
            {k: v for k, v in config.items() if k != "epochs"},
            "config",
        )
        if meta["epoch"] > self.config.epochs:
            found.append(f"config.epochs: trained {meta['epoch']} -> {self.config.epochs}")
        found += differences(meta.get("fingerprint"), self.fingerprint, "fingerprint")
        if data is not None:
            found += differences(meta.get("data"), data, "data")
        return found

    def load_checkpoint(self, path=None, data: dict | None = None) -> None:
        """Restore everything :meth:`save_checkpoint` wrote.

        The whole file is checked first -- readable, metadata, generator state, the names, shapes, dtypes
        and finiteness of every parameter and optimizer array, and :meth:`mismatches` -- and nothing is
        changed unless all of it fits. Raises CheckpointError (CheckpointMismatch for other data or
        settings) naming the file.
        """
        path = Path(path) if path is not None else self.checkpoint_path
        meta, arrays = read_checkpoint(path)
        found = self.mismatches(meta, data)
        if found:
            raise CheckpointMismatch(path, found)
        check_arrays(path, self._state_arrays(), arrays)
        params = {key[len("param/") :]: value for key, value in arrays.items() if key.startswith("param/")}
        self.optimizer.load_state_dict(
            {key[len("optim/") :]: value for key, value in arrays.items() if key.startswith("optim/")}
        )
        assign_params({name: param for name, param, _ in self.model.parameters()}, params, source=str(path))
        self.rng.bit_generator.state = meta["rng"]
        self.epoch = meta["epoch"]
        self.history = list(meta["history"])
        if path == self.checkpoint_path:
            self._checkpoint_epoch = self.epoch

    def _check_state(self, when: str) -> None:
        """Raise TrainingDiverged unless every parameter and optimizer array is finite."""
        non_finite = [key for key, value in self._state_arrays().items() if not np.isfinite(value).all()]
        if non_finite:
            raise TrainingDiverged(
                f"Non-finite values {when} in {', '.join(non_finite[:4])}"
                f"{' and more' if len(non_finite) > 4 else ''}; {self._kept()}. "
                "Lower the learning rate or check the data."
            )

    def _kept(self) -> str:
        """Which checkpoint is left on disk, for the messages of TrainingDiverged."""
        path = self.checkpoint_path
        if path is None:
            return "no checkpoint is kept (checkpoint_path is None)"
        if self._checkpoint_epoch is not None:
            return f"the checkpoint of epoch {self._checkpoint_epoch} is kept at {path}"
        if path.exists():
            return f"{path}, which this run neither wrote nor resumed, was left as it was"
        return "no checkpoint was written yet"

    # -- data --------------------------------------------------------------------------------
    def check_data(self, x_train: np.ndarray, x_test: np.ndarray | None = None) -> None:
        """Raise ValueError (TypeError for non-arrays) unless the data can be trained on: floating point,
        non-empty, finite, train and test samples of one shape, and within the model's ``input_range``."""
        arrays = {"x_train": x_train} if x_test is None else {"x_train": x_train, "x_test": x_test}
        low, high = getattr(self.model, "input_range", None) or (-np.inf, np.inf)
        expected = "floating-point values" + (f" in [{low}, {high}]" if np.isfinite([low, high]).all() else "")
        for name, x in arrays.items():
            if not isinstance(x, np.ndarray):
                raise TypeError(f"Expected {name} to be a numpy array. Received: {type(x).__name__}.")
            if x.dtype.kind != "f":
                hint = " (divide uint8 pixels by 255: x.astype(np.float32) / 255)" if x.dtype == np.uint8 else ""
                raise ValueError(f"Expected {name} to hold {expected}. Received dtype {x.dtype}; convert it{hint}.")
            if x.ndim < 2 or len(x) == 0 or x[0].size == 0:
                raise ValueError(
                    f"Expected {name} to hold at least one sample, (N, ...) with N >= 1 and "
                    f"non-empty samples. Received shape {x.shape}."
                )
            if not np.isfinite(x).all():
                count = int(x.size - np.count_nonzero(np.isfinite(x)))
                raise ValueError(f"{name} holds {count:,} NaN or infinite value(s); remove or repair those samples.")
            found_low, found_high = float(x.min()), float(x.max())
            if found_low < low or found_high > high:
                hint = " (divide uint8 pixels by 255)" if found_high > 1.0 and high == 1.0 else ""
                raise ValueError(
                    f"{type(self.model).__name__} expects {name} in [{low}, {high}]. Received "
                    f"values in [{found_low:g}, {found_high:g}]; rescale the data{hint}."
                )
        if x_test is not None and x_test.shape[1:] != x_train.shape[1:]:
            raise ValueError(f"x_train and x_test samples differ in shape: {x_train.shape[1:]} and {x_test.shape[1:]}.")

    # -- training ----------------------------------------------------------------------------
    def fit(self, x_train: np.ndarray, x_test: np.ndarray | None = None, resume: bool = False) -> list[dict]:
        """Train up to ``config.epochs`` epochs; with ``resume=True`` continue from the checkpoint.

        The data is checked first (:meth:`check_data`), then the checkpoint path (CheckpointError when it is a
        folder or its folder cannot be written), and the temporaries that saves killed while writing this
        checkpoint left behind are removed (not one a running save holds locked). A checkpoint is resumed only
        when it was made by the same kind of model from the same data, config and fingerprint
        (:meth:`load_checkpoint`). Training stops with TrainingDiverged on a non-finite loss, evaluation or
        state, keeping the last good checkpoint.

        Returns the history: one dict per epoch with the mean of every loss term on the training
        batches (``train_<term>``), on ``x_test`` (``test_<term>``), the latent health of the test (or
        training) codes, ``gradient_flow`` (per parameter and activation layer, the means over the epoch's
        steps of :class:`minidl.flow.FlowRecorder`'s statistics; the first epoch also their trace), and the
        wall time of the epoch.
        """
        self.check_data(x_train, x_test)
        if self.checkpoint_path is not None:
            check_writable(self.checkpoint_path)
            remove_stale_temporaries(self.checkpoint_path)
        self.test_codes = None
        self.data = {"x_train": array_identity(x_train), "x_test": array_identity(x_test)}
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load_checkpoint(data=self.data)
        n = len(x_train)
        batch_size = self.config.batch_size
        while self.epoch < self.config.epochs:
            started = time.perf_counter()
            order = self.rng.permutation(n)
            sums: dict[str, float] = {}
            self.flow.reset()
            bar = self._progress_bar(n)
            for batch_index, start in enumerate(range(0, n, batch_size)):
                batch = x_train[order[start : start + batch_size]]
                self.model.zero_grad()
                terms = self.model.loss_and_grads(batch, self.rng)
                if not all(math.isfinite(value) for value in terms.values()):
                    if bar is not None:
                        bar.close()
                    raise TrainingDiverged(
                        f"Non-finite loss at epoch {self.epoch + 1}, batch {batch_index + 1}: "
                        f"{ {k: float(v) for k, v in terms.items()} }; {self._kept()}. The parameters were not "
                        "updated with this batch; lower the learning rate or check the data."
                    )
                self.flow.before_step()
                self.optimizer.step()
                self.flow.after_step()
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value * len(batch)
                if bar is not None:
                    bar.update(len(batch))
                    seen = min(start + batch_size, n)
                    bar.set_postfix(
                        loss=f"{sums['loss'] / seen:.5f}", img_s=f"{seen / (time.perf_counter() - started):.0f}"
                    )
            if bar is not None:
                bar.close()
            self._check_state(f"after the updates of epoch {self.epoch + 1}")
            record = {"epoch": self.epoch + 1}
            record.update({f"train_{key}": value / n for key, value in sums.items()})
            if x_test is not None:
                test_terms, codes = self.evaluate_and_encode(x_test)
                if not all(math.isfinite(value) for value in test_terms.values()):
                    raise TrainingDiverged(
                        f"Non-finite evaluation of x_test after epoch {self.epoch + 1}: "
                        f"{test_terms}; {self._kept()}. Lower the learning rate."
                    )
                record.update({f"test_{key}": value for key, value in test_terms.items()})
                self.test_codes = codes
            else:
                codes = self.encode(x_train[: self.config.eval_batch_size * 4])
            record.update(latent_health(codes))
            record["gradient_flow"] = self.flow.summary(with_trace=self.epoch == 0)
            record["seconds"] = time.perf_counter() - started
            self.epoch += 1
            self.history.append(record)
            if self.checkpoint_path is not None:
                self.save_checkpoint()
            if self.log is not None:
                shown = ", ".join(
                    f"{key} {value:.6g}"
                    for key, value in record.items()
                    if key not in ("epoch", "seconds", "gradient_flow")
                )
                self.log(
                    f"epoch {self.epoch}/{self.config.epochs} ({record['seconds']:.0f} s, "
                    f"{n / record['seconds']:.0f} img/s): {shown}"
                )
        return self.history

    def evaluate(self, x: np.ndarray) -> dict[str, float]:
        """Mean of every loss term over ``x``, in batches, without touching the training generator."""
        return self.evaluate_and_encode(x)[0]

    def evaluate_and_encode(self, x: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        """:meth:`evaluate` and :meth:`encode` of ``x`` from one forward pass per batch.

        Shapes: x (N, ...) -> codes (N, latent_dim).
        """
        rng = np.random.default_rng(self.config.seed + 1)  # fixed: evaluations are comparable across epochs
        sums: dict[str, float] = {}
        codes = []
        for start in range(0, len(x), self.config.eval_batch_size):
            batch = x[start : start + self.config.eval_batch_size]
            terms, batch_codes = self.model.evaluate_and_encode(batch, rng)
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value * len(batch)
            codes.append(batch_codes)
        return {key: value / len(x) for key, value in sums.items()}, np.concatenate(codes)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes of ``x`` in batches. Shapes: (N, ...) -> (N, latent_dim)."""
        return np.concatenate(
            [
                self.model.encode(x[start : start + self.config.eval_batch_size])
                for start in range(0, len(x), self.config.eval_batch_size)
            ]
        )

    def _progress_bar(self, total: int):
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=f"epoch {self.epoch + 1}/{self.config.epochs}", unit="img", leave=False)
