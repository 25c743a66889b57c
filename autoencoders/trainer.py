"""Mini-batch training with Adam, per-epoch history, atomic checkpoints and exact resumption.

A checkpoint is one ``.npz`` written after every epoch (temporary file, then rename) holding the
parameters, the optimizer state, the state of the random generator and the history; it loads with
``allow_pickle=False``. Resuming from the checkpoint of epoch k and training on gives, bit for bit,
the parameters of an uninterrupted run with the same seed and thread count.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from minidl.optim import Adam
from minidl.serialization import assign_params, check_params, load_arrays, save_arrays

SATURATION = 1e-3


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is left in place."""


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
    """

    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    eval_batch_size: int = 500

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected {name} to be a positive integer. Received: {name}={value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"Expected learning_rate > 0. Received: learning_rate={self.learning_rate!r}")


def latent_health(codes: np.ndarray) -> dict[str, float]:
    """Mean activation of the codes and, for codes in [0, 1], the fraction of saturated units.

    A unit is saturated where h < 1e-3 or h > 1 - 1e-3: a sigmoid there passes almost no gradient.

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
    """Train a model that offers ``parameters()``, ``loss_and_grads(x, rng)``, ``evaluate(x, rng)``
    and ``encode(x)`` (see :mod:`autoencoders.models`).

    Parameters
    ----------
    model
        The autoencoder.
    config : TrainingConfig
    checkpoint_path : path or None
        Where the checkpoint of the last finished epoch is kept; None keeps none.
    progress : bool
        Show a progress bar with the running loss and images per second.
    log : callable or None
        Called with a one-line summary after every epoch (e.g. ``print``).

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

    def __init__(self, model, config: TrainingConfig, checkpoint_path=None, progress: bool = True,
                 log=None) -> None:
        self.model = model
        self.log = log
        self.config = config
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.progress = progress
        self.optimizer = Adam(model.parameters(), lr=config.learning_rate)
        self.rng = np.random.default_rng(config.seed)
        self.epoch = 0
        self.history: list[dict] = []

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, path=None) -> None:
        """Write parameters, optimizer state, generator state and history atomically."""
        path = Path(path) if path is not None else self.checkpoint_path
        arrays = {f"param/{name}": param for name, param, _ in self.model.parameters()}
        arrays.update({f"optim/{key}": value for key, value in self.optimizer.state_dict().items()})
        meta = {"epoch": self.epoch, "history": self.history, "config": asdict(self.config),
                "rng": self.rng.bit_generator.state}
        arrays["meta"] = np.array(json.dumps(meta))
        save_arrays(path, arrays)

    def load_checkpoint(self, path=None) -> None:
        """Restore everything :meth:`save_checkpoint` wrote; a mismatched file changes nothing."""
        path = Path(path) if path is not None else self.checkpoint_path
        arrays = load_arrays(path)
        meta = json.loads(str(arrays.pop("meta")))
        params = {key[len("param/"):]: value for key, value in arrays.items() if key.startswith("param/")}
        optim = {key[len("optim/"):]: value for key, value in arrays.items() if key.startswith("optim/")}
        model_params = {name: param for name, param, _ in self.model.parameters()}
        check_params(model_params, params, source=str(path))  # before the optimizer changes anything
        self.optimizer.load_state_dict(optim)
        assign_params(model_params, params, source=str(path))
        self.rng.bit_generator.state = meta["rng"]
        self.epoch = int(meta["epoch"])
        self.history = list(meta["history"])

    # -- training ----------------------------------------------------------------------------
    def fit(self, x_train: np.ndarray, x_test: np.ndarray | None = None, resume: bool = False) -> list[dict]:
        """Train up to ``config.epochs`` epochs; with ``resume=True`` continue from the checkpoint.

        Returns the history: one dict per epoch with the mean of every loss term on the training
        batches (``train_<term>``), on ``x_test`` (``test_<term>``), the latent health of the test (or
        training) codes, and the wall time of the epoch.
        """
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load_checkpoint()
        n = len(x_train)
        batch_size = self.config.batch_size
        while self.epoch < self.config.epochs:
            started = time.perf_counter()
            order = self.rng.permutation(n)
            sums: dict[str, float] = {}
            bar = self._progress_bar(n)
            for batch_index, start in enumerate(range(0, n, batch_size)):
                batch = x_train[order[start:start + batch_size]]
                self.model.zero_grad()
                terms = self.model.loss_and_grads(batch, self.rng)
                if not all(math.isfinite(value) for value in terms.values()):
                    if bar is not None:
                        bar.close()
                    kept = (f"the checkpoint of epoch {self.epoch} is kept at {self.checkpoint_path}"
                            if self.checkpoint_path is not None and self.checkpoint_path.exists()
                            else "no checkpoint was written yet")
                    raise TrainingDiverged(
                        f"Non-finite loss at epoch {self.epoch + 1}, batch {batch_index + 1}: "
                        f"{ {k: float(v) for k, v in terms.items()} }; {kept}. The parameters were not updated "
                        "with this batch; lower the learning rate or check the data.")
                self.optimizer.step()
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value * len(batch)
                if bar is not None:
                    bar.update(len(batch))
                    seen = min(start + batch_size, n)
                    bar.set_postfix(loss=f"{sums['loss'] / seen:.5f}",
                                    img_s=f"{seen / (time.perf_counter() - started):.0f}")
            if bar is not None:
                bar.close()
            self.epoch += 1
            record = {"epoch": self.epoch}
            record.update({f"train_{key}": value / n for key, value in sums.items()})
            probe_set = x_test if x_test is not None else x_train[: self.config.eval_batch_size * 4]
            if x_test is not None:
                test_terms = self.evaluate(x_test)
                record.update({f"test_{key}": value for key, value in test_terms.items()})
            record.update(latent_health(self.encode(probe_set)))
            record["seconds"] = time.perf_counter() - started
            self.history.append(record)
            if self.checkpoint_path is not None:
                self.save_checkpoint()
            if self.log is not None:
                shown = ", ".join(f"{key} {value:.6g}" for key, value in record.items()
                                  if key not in ("epoch", "seconds"))
                self.log(f"epoch {self.epoch}/{self.config.epochs} ({record['seconds']:.0f} s, "
                         f"{n / record['seconds']:.0f} img/s): {shown}")
        return self.history

    def evaluate(self, x: np.ndarray) -> dict[str, float]:
        """Mean of every loss term over ``x``, in batches, without touching the training generator."""
        rng = np.random.default_rng(self.config.seed + 1)  # fixed: evaluations are comparable across epochs
        sums: dict[str, float] = {}
        for start in range(0, len(x), self.config.eval_batch_size):
            batch = x[start:start + self.config.eval_batch_size]
            for key, value in self.model.evaluate(batch, rng).items():
                sums[key] = sums.get(key, 0.0) + value * len(batch)
        return {key: value / len(x) for key, value in sums.items()}

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes of ``x`` in batches. Shapes: (N, ...) -> (N, latent_dim)."""
        return np.concatenate([self.model.encode(x[start:start + self.config.eval_batch_size])
                               for start in range(0, len(x), self.config.eval_batch_size)])

    def _progress_bar(self, total: int):
        if not self.progress:
            return None
        from tqdm.auto import tqdm
        return tqdm(total=total, desc=f"epoch {self.epoch + 1}/{self.config.epochs}", unit="img", leave=False)
