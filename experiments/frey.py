"""Frey Face part of the study: a variational autoencoder with the study's Bernoulli decoder and, beside it, a
Gaussian one; their ELBOs, how much of the latent each uses, reconstructions, samples and traversals.

The study's claims are judged from each decoder's numbers (:func:`claims`), with the thresholds below.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autoencoders.models import VariationalAutoencoder
from autoencoders.trainer import Trainer, TrainingConfig
from experiments import metrics, plots, training
from experiments.presets import Preset

LIKELIHOODS = ("bernoulli", "gaussian")
CHECKPOINT = "checkpoints/vae_{likelihood}.npz"  # inside the output folder
TITLES = {"bernoulli": "Bernoulli decoder (the study's)", "gaussian": "Gaussian decoder"}
# A latent dimension whose KL(q(z_d | x) || N(0, 1)), averaged over held-out faces, is below this many nats
# carries almost no information about the face: the decoder has learnt to ignore it.
ACTIVE_KL = 0.1
# Thresholds of the claims (see :func:`claims`); pixel distances are root-mean-square over the pixels.
FIDELITY_RATIO = 0.5  # reconstructions: RMS error at most this fraction of the mean face's
DIVERSITY_RATIO = 0.5  # generated faces differ from each other at least this fraction as much as real ones
RESEMBLANCE_RATIO = 1.5  # ... and lie at most this many times as far from a training face as held-out faces do
TRAVERSAL_RATIO = 0.25  # a traversal changes a face by at least this fraction of the typical face difference
N_TRAVERSED = 10  # held-out faces whose codes are traversed to measure the change
GREY_LEVEL = 1 / 255  # the quantisation step of the pixels: a finer sigma fits the density to the rounding


def split(images: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random split: the same held-out faces for a given seed."""
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(test_fraction * len(images)))
    return images[order[n_test:]], images[order[:n_test]]


def build_model(preset: Preset, image_shape=(1, 28, 20), likelihood: str = "bernoulli") -> VariationalAutoencoder:
    """The VAE of the study (``likelihood="bernoulli"``) or its Gaussian twin, initialised from the preset's seed."""
    return VariationalAutoencoder(
        image_shape, preset.vae_hidden, preset.vae_latent_dim, likelihood=likelihood, rng=preset.seed
    )


def rms_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root-mean-square pixel distance between every image of ``a`` and every image of ``b``.

    Shapes
    ------
    a : (M, ...), b : (K, ...) -> (M, K)
    """
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0) / a.shape[1])


def mean_pairwise(images: np.ndarray) -> float:
    """Mean RMS pixel distance over the distinct pairs of ``images`` (N, ...)."""
    distances = rms_distances(images, images)
    return float(distances[np.triu_indices(len(images), 1)].mean())


def kl_per_dimension(model: VariationalAutoencoder, x: np.ndarray) -> np.ndarray:
    """KL(q(z_d | x) || N(0, 1)) of each latent dimension d, averaged over ``x``; sums to the KL term.

    Shapes: x (N, ...) -> (latent_dim,)
    """
    mu, logvar = (part.astype(np.float64) for part in model.encode_distribution(x))
    return np.mean(-0.5 * (1 + logvar - mu * mu - np.exp(logvar)), axis=0)


def traversal_change(model: VariationalAutoencoder, codes: np.ndarray, dim: int, low: float, high: float) -> float:
    """Mean over ``codes`` (K, latent_dim) of the RMS pixel change of the decoded face when latent ``dim``
    moves from ``low`` to ``high``, the other dimensions fixed."""
    ends = [
        model.decode(np.where(np.arange(codes.shape[1]) == dim, value, codes).astype(codes.dtype))
        for value in (low, high)
    ]
    return float(np.mean(np.sqrt(np.mean((ends[1].astype(np.float64) - ends[0]) ** 2, axis=(1, 2, 3)))))


def pixel_logvar(model: VariationalAutoencoder, x: np.ndarray) -> dict:
    """How the Gaussian decoder's per-pixel log-variance behaves on ``x``: its spread over pixels and faces,
    the pixels it is most confident about, and whether confidence follows the pixel's variability in the data.

    A collapsing variance shows as a log-variance running to large negative values (sigma of a fraction of a
    grey level) on pixels that hardly vary, each nat of which the likelihood pays for in density.
    """
    size = int(np.prod(model.image_shape))
    logvar = model.decoder.forward(model.encode(x), training=False)[:, size:].astype(np.float64)
    per_pixel = logvar.mean(axis=0)
    data_std = x.reshape(len(x), -1).std(axis=0)
    quiet = data_std <= np.quantile(data_std, 0.1)
    return {
        "min": float(logvar.min()),
        "median": float(np.median(logvar)),
        "max": float(logvar.max()),
        "sigma_min": float(np.exp(0.5 * logvar.min())),
        "sigma_median": float(np.exp(0.5 * np.median(logvar))),
        "below_grey_level": float(np.mean(logvar < 2 * np.log(GREY_LEVEL))),
        "quietest_pixels_median": float(np.median(logvar[:, quiet])),
        "quietest_pixels_data_std": float(np.median(data_std[quiet])),
        "correlation_with_log_data_std": float(np.corrcoef(per_pixel, np.log(data_std + 1e-6))[0, 1]),
    }


def evaluate(
    likelihood: str,
    model: VariationalAutoencoder,
    trainer: Trainer,
    preset: Preset,
    x_train: np.ndarray,
    x_test: np.ndarray,
    out_dir: Path,
) -> dict:
    """Every number and figure of one decoder's VAE."""
    figures, name = out_dir / "figures", f"frey_{likelihood}"
    rng = np.random.default_rng(preset.seed)
    result = {
        "likelihood": likelihood,
        "epochs": preset.vae_epochs,
        "history": trainer.history,
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in trainer.history])),
    }
    for split_name, data in (("train", x_train), ("test", x_test)):
        terms = trainer.evaluate(data)
        result[split_name] = {"elbo": -terms["loss"], "reconstruction": terms["reconstruction"], "kl": terms["kl"]}

    kl = kl_per_dimension(model, x_test)
    order = [int(d) for d in np.argsort(kl)[::-1]]
    result["kl_per_dimension"] = kl.tolist()
    result["active_dimensions"] = [d for d in order if kl[d] > ACTIVE_KL]

    reconstructions = np.concatenate([model.reconstruct(x_test[i : i + 500]) for i in range(0, len(x_test), 500)])
    mean_face = x_train.mean(axis=0, keepdims=True)
    result["reconstruction_rms"] = float(np.mean(np.diag(rms_distances(reconstructions, x_test))))
    result["mean_face_rms"] = float(np.mean(rms_distances(x_test, mean_face)))
    result["reconstruction_psnr"] = float(np.mean(metrics.psnr(reconstructions, x_test)))

    generated = model.sample(preset.n_faces, rng)
    result["generated"] = {
        "pairwise_rms": mean_pairwise(generated) if len(generated) > 1 else None,
        "held_out_pairwise_rms": mean_pairwise(x_test[: max(2, preset.n_faces)]),
        "nearest_training_rms": float(np.mean(rms_distances(generated, x_train).min(axis=1))),
        "held_out_nearest_training_rms": float(np.mean(rms_distances(x_test, x_train).min(axis=1))),
    }

    low, high = preset.traversal_range
    codes = model.encode(x_test[:N_TRAVERSED])
    traversed = list(dict.fromkeys([preset.traversal_dim, order[0]]))
    result["traversal"] = {
        "range": [low, high],
        "dims": traversed,
        "rms_change": [traversal_change(model, codes, d, low, high) for d in traversed],
    }
    if likelihood == "gaussian":
        result["pixel_logvar"] = pixel_logvar(model, x_test)

    plots.loss_curves(
        {
            "train": [{"v": r["train_loss"]} for r in trainer.history],
            "held out": [{"v": r["test_loss"]} for r in trainer.history],
        },
        "v",
        figures / f"{name}_loss.png",
        "negative ELBO (nats per image)",
        log_scale=likelihood == "bernoulli",
    )
    shown = x_test[:10]
    plots.image_grid(
        [shown, reconstructions[:10]],
        figures / f"{name}_reconstructions.png",
        ["held out", "reconstructed"],
        f"VAE reconstructions: {TITLES[likelihood]}",
    )
    columns = int(np.ceil(preset.n_faces / 3))
    plots.image_grid(
        [generated[i : i + columns] for i in range(0, preset.n_faces, columns)],
        figures / f"{name}_generated.png",
        title=f"Faces decoded from z ~ N(0, I): {TITLES[likelihood]}",
    )
    values = np.linspace(low, high, preset.traversal_steps)
    plots.image_grid(
        [model.traverse(codes[0], d, values) for d in traversed],
        figures / f"{name}_traversal.png",
        row_labels=[f"dim {d}" for d in traversed],
        column_labels=[f"{v:+.1f}" for v in values],
        title=f"Latent traversals of a held-out face: {TITLES[likelihood]}",
    )
    first, second = (order + order)[:2] if len(order) < 2 else order[:2]
    grid_values = np.linspace(low, high, preset.grid_steps)
    rows = []
    for row_value in grid_values[::-1]:
        grid_codes = np.zeros((preset.grid_steps, model.latent_dim), dtype=codes.dtype)
        grid_codes[:, first] = grid_values
        grid_codes[:, second] = row_value
        rows.append(model.decode(grid_codes))
    plots.image_grid(
        rows,
        figures / f"{name}_grid.png",
        title=f"Latent dimensions {first} (across) and {second} (down), others 0: {TITLES[likelihood]}",
    )
    result["grid_dims"] = [first, second]
    return result


def claims(result: dict) -> dict[str, dict]:
    """The study's three claims about its VAE, judged from one decoder's numbers.

    Each entry: ``holds`` (bool) and ``because`` (the numbers and the threshold, as a sentence).
    """
    fidelity = result["reconstruction_rms"] / result["mean_face_rms"]
    generated = result["generated"]
    diversity = (generated["pairwise_rms"] or 0.0) / generated["held_out_pairwise_rms"]
    resemblance = generated["nearest_training_rms"] / generated["held_out_nearest_training_rms"]
    traversal = result["traversal"]
    dim, change = traversal["dims"][0], traversal["rms_change"][0]
    relative = change / generated["held_out_pairwise_rms"]
    kl = result["kl_per_dimension"][dim]
    return {
        "reconstruction": {
            "holds": fidelity <= FIDELITY_RATIO,
            "because": f"held-out faces are reconstructed with an RMS error of {result['reconstruction_rms']:.4f} "
            f"({result['reconstruction_psnr']:.1f} dB), {fidelity:.2f} times that of predicting the mean "
            f"face ({result['mean_face_rms']:.4f}); the claim needs at most {FIDELITY_RATIO}",
        },
        "generation": {
            "holds": diversity >= DIVERSITY_RATIO and resemblance <= RESEMBLANCE_RATIO,
            "because": f"the generated faces differ from each other by {generated['pairwise_rms'] or 0:.4f} RMS, "
            f"{diversity:.2f} times as much as held-out faces do (the claim needs at least "
            f"{DIVERSITY_RATIO}), and lie {generated['nearest_training_rms']:.4f} from their nearest "
            f"training face, {resemblance:.2f} times the held-out faces' distance (at most "
            f"{RESEMBLANCE_RATIO})",
        },
        "traversal": {
            "holds": kl > ACTIVE_KL and relative >= TRAVERSAL_RATIO,
            "because": f"moving dimension {dim} (KL {kl:.2f} nats, {'active' if kl > ACTIVE_KL else 'inactive'}) "
            f"over {traversal['range']} changes a held-out face by {change:.4f} RMS, {relative:.2f} of the "
            f"typical difference between two held-out faces (the claim needs an active dimension and at "
            f"least {TRAVERSAL_RATIO}); whether the change is head pose is for the eye to judge in the figure",
        },
    }


def run(
    preset: Preset,
    x_train: np.ndarray,
    x_test: np.ndarray,
    out_dir: Path,
    models: dict[str, training.Built],
    progress: bool = True,
    log=print,
    store=None,
) -> dict:
    """Train (or reuse) both decoders' VAEs (``models`` by likelihood) on a :func:`split` and produce their
    numbers (each with its fingerprint as ``provenance``) and figures. Each model is taken out of ``models`` as it
    is trained, so that it is freed once evaluated.

    ``store(likelihood, result)``, when given, is called as soon as each decoder is evaluated.
    """
    config = TrainingConfig(
        epochs=preset.vae_epochs,
        batch_size=preset.vae_batch_size,
        learning_rate=preset.vae_learning_rate,
        seed=preset.seed,
    )
    results = {}
    for likelihood in LIKELIHOODS:
        log(
            f"[frey] VAE, {TITLES[likelihood]}: training {preset.vae_epochs} epochs on {len(x_train):,} faces, "
            f"{len(x_test):,} held out"
        )
        built, checkpoint = models.pop(likelihood), out_dir / CHECKPOINT.format(likelihood=likelihood)
        trainer, seconds = training.fit(built, config, checkpoint, x_train, x_test, progress, log)
        result = evaluate(likelihood, built.model, trainer, preset, x_train, x_test, out_dir)
        result.update(
            {
                "n_train": len(x_train),
                "n_test": len(x_test),
                "test_fraction": preset.test_fraction,
                "train_seconds_this_run": seconds,
                "provenance": built.fingerprint,
            }
        )
        results[likelihood] = result
        log(
            f"[frey] {likelihood}: test ELBO {result['test']['elbo']:.2f} nats (reconstruction "
            f"{result['test']['reconstruction']:.2f}, KL {result['test']['kl']:.2f}), "
            f"{len(result['active_dimensions'])} active dimensions"
        )
        if store is not None:
            store(likelihood, result)
    plots.kl_bars(
        {TITLES[k]: r["kl_per_dimension"] for k, r in results.items()},
        out_dir / "figures" / "frey_kl_per_dimension.png",
        ACTIVE_KL,
    )
    return results
