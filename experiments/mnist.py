"""MNIST part of the study: plain, sparse and contractive autoencoders, trained and evaluated.

Four models are trained with the same settings:

* ``plain`` -- linear latent, MSE only (the baseline column);
* ``sparse`` -- sigmoid latent, MSE + lambda KL sparsity;
* ``contractive`` -- the study's contractive model: sigmoid latent, Rifai's closed-form penalty;
* ``contractive_remedy`` -- linear latent with the full-Jacobian penalty (Hutchinson, one probe).

Each is evaluated by test MSE, a linear probe on its codes, a t-SNE plot and latent interpolation (measured
against the pixel blend and, as the study's tables can be reproduced, against the code of the pixel blend).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from autoencoders.architectures import conv_decoder, conv_encoder
from autoencoders.models import Autoencoder, ContractiveAutoencoder, SparseAutoencoder
from autoencoders.trainer import Trainer, TrainingConfig
from experiments import metrics, plots, training
from experiments.presets import MNIST_KINDS, Preset

MODEL_KINDS = MNIST_KINDS  # declared beside the settings that shape each
CHECKPOINT = "checkpoints/{kind}.npz"  # inside the output folder
TITLES = {
    "plain": "Plain AE (linear latent)",
    "sparse": "Sparse AE",
    "contractive": "Contractive AE (study: sigmoid, closed form)",
    "contractive_remedy": "Contractive AE remedy (linear, Hutchinson)",
}


def build_model(kind: str, preset: Preset, image_shape=(1, 28, 28)):
    """The model of one column of the study, initialised from the preset's seed."""
    rng = np.random.default_rng(preset.seed)
    latent = "sigmoid" if kind in ("sparse", "contractive") else "linear"
    encoder = conv_encoder(preset.latent_dim, image_shape, latent=latent, rng=rng)
    decoder = conv_decoder(preset.latent_dim, image_shape, rng=rng)
    if kind == "plain":
        return Autoencoder(encoder, decoder)
    if kind == "sparse":
        return SparseAutoencoder(encoder, decoder, rho=preset.rho, sparsity_weight=preset.sparsity_weight)
    if kind == "contractive":
        return ContractiveAutoencoder(
            encoder, decoder, contractive_weight=preset.contractive_weight, mode="closed_form"
        )
    if kind == "contractive_remedy":
        return ContractiveAutoencoder(
            encoder,
            decoder,
            contractive_weight=preset.contractive_weight,
            mode=preset.remedy_mode,
            n_probes=preset.remedy_probes,
            latent="linear",
        )
    raise ValueError(f"Unknown model kind {kind!r}; expected one of {MODEL_KINDS}.")


def subset(data: dict, preset: Preset) -> dict:
    """The preset's first ``n_train`` / ``n_test`` images (all when None)."""
    n_train, n_test = preset.n_train, preset.n_test
    return {
        "x_train": data["x_train"][:n_train],
        "y_train": data["y_train"][:n_train],
        "x_test": data["x_test"][:n_test],
        "y_test": data["y_test"][:n_test],
    }


def evaluate(kind: str, model, trainer: Trainer, preset: Preset, data: dict, out_dir: Path) -> dict:
    """Every number and figure of one model."""
    figures = out_dir / "figures"
    rng = np.random.default_rng(preset.seed)
    x_test, y_test = data["x_test"], data["y_test"]
    last = trainer.history[-1]
    result = {
        "history": trainer.history,
        "final_train_loss": last["train_loss"],
        "test_mse": last["test_mse"],
        "seconds_per_epoch": float(np.mean([record["seconds"] for record in trainer.history])),
    }

    shown = x_test[:10]
    plots.image_grid(
        [shown, model.reconstruct(shown)],
        figures / f"reconstructions_{kind}.png",
        ["original", "reconstructed"],
        TITLES[kind],
    )

    started = time.perf_counter()
    train_codes = trainer.encode(data["x_train"])
    # the last epoch's evaluation already encoded the test set, unless training was reused from a checkpoint
    test_codes = trainer.test_codes if trainer.test_codes is not None else trainer.encode(x_test)
    result["probe_accuracy"] = metrics.linear_probe_accuracy(
        train_codes, data["y_train"], test_codes, y_test, seed=preset.seed
    )
    result["probe_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    points = rng.permutation(len(x_test))[: preset.tsne_points]
    embedding = metrics.tsne_embedding(test_codes[points], preset.tsne_perplexity, preset.tsne_iterations, preset.seed)
    plots.tsne_scatter(embedding, y_test[points], figures / f"tsne_{kind}.png", f"t-SNE of test codes: {TITLES[kind]}")
    result["tsne_seconds"] = time.perf_counter() - started
    result["codes_degenerate"] = embedding is None

    pairs = metrics.interpolation_pairs(y_test, preset.n_pairs, np.random.default_rng(preset.seed))
    outcome = metrics.interpolate(model, x_test[pairs[:, 0]], x_test[pairs[:, 1]], preset.alphas)
    study_definition = metrics.encoder_blend_consistency(model, x_test[pairs[:, 0]], x_test[pairs[:, 1]], preset.alphas)
    result["interpolation"] = {
        "alphas": list(preset.alphas),
        "psnr": outcome["psnr"].tolist(),
        "l2": outcome["l2"].tolist(),
        "blend_consistency": {
            "psnr": study_definition["psnr"].tolist(),
            "latent_l2": study_definition["latent_l2"].tolist(),
        },
    }
    shown_pairs = range(min(4, len(pairs)))
    rows = [np.concatenate([x_test[pairs[p, :1]], outcome["images"][:, p], x_test[pairs[p, 1:]]]) for p in shown_pairs]
    plots.image_grid(
        rows,
        figures / f"interpolation_{kind}.png",
        column_labels=["A"] + [f"a={alpha:.1f}" for alpha in preset.alphas] + ["B"],
        title=f"Latent interpolation (originals A and B at the ends): {TITLES[kind]}",
    )
    return result


def run(
    preset: Preset,
    data: dict,
    out_dir: Path,
    models: dict[str, training.Built],
    progress: bool = True,
    log=print,
    store=None,
) -> dict:
    """Train and evaluate each of ``models`` (by kind, in order) on ``data`` (already :func:`subset`); writes the
    figures and returns every number, each model's with its fingerprint as ``provenance``. Each model is taken out
    of ``models`` as it is trained, so that it is freed once evaluated (its layers keep workspaces of a batch).

    ``store(kind, result)``, when given, is called as soon as each model is evaluated, so that a
    failure in a later model loses nothing of the earlier ones.
    """
    config = TrainingConfig(
        epochs=preset.epochs, batch_size=preset.batch_size, learning_rate=preset.learning_rate, seed=preset.seed
    )
    results = {}
    for kind in list(models):
        built = models.pop(kind)
        log(f"[mnist] {TITLES[kind]}: training {preset.epochs} epoch(s) on {len(data['x_train']):,} images")
        checkpoint = out_dir / CHECKPOINT.format(kind=kind)
        trainer, seconds = training.fit(built, config, checkpoint, data["x_train"], data["x_test"], progress, log)
        log(
            f"[mnist] {kind}: final train loss {trainer.history[-1]['train_loss']:.6f}, "
            f"test MSE {trainer.history[-1]['test_mse']:.6f}; evaluating"
        )
        results[kind] = evaluate(kind, built.model, trainer, preset, data, out_dir)
        results[kind]["train_seconds_this_run"] = seconds
        results[kind]["provenance"] = built.fingerprint
        if store is not None:
            store(kind, results[kind])
        log(f"[mnist] {kind}: probe accuracy {results[kind]['probe_accuracy']:.4f}")
    return results
