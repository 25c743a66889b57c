"""Frey Face part of the study: a variational autoencoder, its ELBO, reconstructions and samples."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from autoencoders.models import VariationalAutoencoder
from autoencoders.trainer import Trainer, TrainingConfig
from experiments import plots
from experiments.presets import Preset

CHECKPOINT = "checkpoints/vae.npz"  # inside the output folder


def split(images: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random split: the same held-out faces for a given seed."""
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(test_fraction * len(images)))
    return images[order[n_test:]], images[order[:n_test]]


def build_model(preset: Preset, image_shape=(1, 28, 20)) -> VariationalAutoencoder:
    """The VAE of the study, initialised from the preset's seed."""
    return VariationalAutoencoder(image_shape, preset.vae_hidden, preset.vae_latent_dim, rng=preset.seed)


def run(preset: Preset, x_train: np.ndarray, x_test: np.ndarray, out_dir: Path, progress: bool = True, log=print,
        fingerprint: dict | None = None) -> dict:
    """Train (or reuse) the VAE on a :func:`split` and produce its numbers (with ``fingerprint`` as
    ``provenance``) and figures. The checkpoint is resumed only when made with the same fingerprint and data."""
    figures = out_dir / "figures"
    model = build_model(preset, x_train.shape[1:])
    config = TrainingConfig(epochs=preset.vae_epochs, batch_size=preset.vae_batch_size,
                            learning_rate=preset.vae_learning_rate, seed=preset.seed)
    log(f"[frey] VAE: training {preset.vae_epochs} epochs on {len(x_train):,} faces, {len(x_test):,} held out")
    trainer = Trainer(model, config, out_dir / CHECKPOINT, progress=progress, log=log, fingerprint=fingerprint)
    started = time.perf_counter()
    trainer.fit(x_train, x_test, resume=True)
    train_seconds = time.perf_counter() - started

    result = {"n_train": len(x_train), "n_test": len(x_test), "test_fraction": preset.test_fraction,
              "likelihood": model.likelihood, "epochs": preset.vae_epochs, "history": trainer.history,
              "seconds_per_epoch": float(np.mean([r["seconds"] for r in trainer.history])),
              "train_seconds_this_run": train_seconds, "provenance": fingerprint}
    for name, data in (("train", x_train), ("test", x_test)):
        terms = trainer.evaluate(data)
        result[name] = {"elbo": -terms["loss"], "reconstruction": terms["reconstruction"], "kl": terms["kl"]}
    log(f"[frey] test ELBO {result['test']['elbo']:.2f} nats (BCE {result['test']['reconstruction']:.2f}, "
        f"KL {result['test']['kl']:.2f})")

    plots.loss_curves({"train": [{"v": r["train_loss"]} for r in trainer.history],
                       "held out": [{"v": r["test_loss"]} for r in trainer.history]}, "v",
                      figures / "frey_loss.png", "negative ELBO (nats per image)")
    shown = x_test[:10]
    plots.image_grid([shown, model.reconstruct(shown)], figures / "frey_reconstructions.png",
                     ["held out", "reconstructed"], "VAE reconstructions")
    generated = model.sample(preset.n_faces, np.random.default_rng(preset.seed))
    columns = int(np.ceil(preset.n_faces / 3))
    plots.image_grid([generated[i:i + columns] for i in range(0, preset.n_faces, columns)],
                     figures / "frey_generated.png", title="Faces decoded from z ~ N(0, I)")

    low, high = preset.traversal_range
    values = np.linspace(low, high, preset.traversal_steps)
    code = model.encode(x_test[:1])[0]
    traversal = model.traverse(code, preset.traversal_dim, values)
    plots.image_grid([traversal], figures / "frey_traversal.png", column_labels=[f"{v:+.1f}" for v in values],
                     title=f"Latent dimension {preset.traversal_dim} from {low} to {high}")

    mu, logvar = model.encode_distribution(x_train)
    per_dimension_kl = np.mean(-0.5 * (1 + logvar - mu * mu - np.exp(logvar)), axis=0)
    first, second = (int(d) for d in np.argsort(per_dimension_kl)[::-1][:2])
    grid_values = np.linspace(low, high, preset.grid_steps)
    rows = []
    for row_value in grid_values[::-1]:
        codes = np.zeros((preset.grid_steps, model.latent_dim), dtype=np.float32)
        codes[:, first] = grid_values
        codes[:, second] = row_value
        rows.append(model.decode(codes))
    plots.image_grid(rows, figures / "frey_grid.png",
                     title=f"Latent dimensions {first} (across) and {second} (down), others 0")
    result.update({"traversal_dim": preset.traversal_dim, "traversal_range": [low, high],
                   "grid_dims": [first, second], "kl_per_dimension": per_dimension_kl.tolist()})
    return result
