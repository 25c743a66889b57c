"""Turn ``metrics.json`` into ``report.md``: every table and figure, beside the study's numbers."""

from __future__ import annotations

import json
from pathlib import Path

from experiments import plots
from experiments.mnist import TITLES

# The study's published values (sparse and contractive autoencoders on MNIST).
STUDY = {
    "sparse": {"test_mse": 0.010388, "probe_accuracy": 0.9649, "final_train_loss": 0.018814},
    "contractive": {"test_mse": 0.078306, "probe_accuracy": 0.8479, "final_train_loss": 0.084900},
}
SATURATED_COLLAPSE = 0.9


def _format(value, digits=6) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _mnist_section(mnist: dict, reference: dict, figures: Path) -> list[str]:
    kinds = [kind for kind in TITLES if kind in mnist]
    # drawn here, from all models in metrics.json, since models may be trained by separate runs
    histories = {TITLES[k]: mnist[k]["history"] for k in kinds}
    plots.loss_curves(histories, "train_loss", figures / "mnist_training_loss.png", "training loss")
    plots.loss_curves(histories, "train_mse", figures / "mnist_training_mse.png", "training MSE")
    lines = ["## MNIST: plain, sparse and contractive autoencoders", ""]
    header = ["", *[TITLES[k] for k in kinds]]
    rows = []
    for key, label, digits in (("final_train_loss", "final training loss", 6), ("test_mse", "test MSE", 6),
                               ("probe_accuracy", "logistic-regression accuracy", 4)):
        rows.append([label, *[_format(mnist[k][key], digits) for k in kinds]])
        study = [_format(STUDY.get(k, {}).get(key), digits) if k in STUDY else "–" for k in kinds]
        rows.append([f"{label} (study)", *study])
    rows.append(["seconds per epoch", *[f"{mnist[k]['seconds_per_epoch']:.1f}" for k in kinds]])
    lines += _table(header, rows)

    lines += ["### Training loss per epoch", "", "![training loss](figures/mnist_training_loss.png)", ""]
    epochs = max(len(mnist[k]["history"]) for k in kinds)
    rows = [[str(e + 1), *[_format(mnist[k]["history"][e]["train_loss"]) if e < len(mnist[k]["history"]) else "–"
                           for k in kinds]] for e in range(epochs)]
    lines += _table(["epoch", *[TITLES[k] for k in kinds]], rows)

    lines += _contractive_diagnosis(mnist, reference)

    lines += ["### Reconstructions", ""]
    lines += [f"![{TITLES[k]}](figures/reconstructions_{k}.png)" for k in kinds] + [""]
    lines += ["### t-SNE of the test codes", ""]
    degenerate = [TITLES[k] for k in kinds if mnist[k].get("codes_degenerate")]
    if degenerate:
        lines += [f"No t-SNE for {', '.join(degenerate)}: every test image has (nearly) the same code, so "
                  "there is nothing to embed.", ""]
    lines += [f"![{TITLES[k]}](figures/tsne_{k}.png)" for k in kinds] + [""]

    lines += ["### Latent interpolation", "",
              "For pairs of test images of different digits, the codes are blended, "
              "z = (1 - a) z_A + a z_B, and decoded. Each decoded image is compared with the pixel-space "
              "blend (1 - a) x_A + a x_B: at a = 0 and a = 1 that reference is the original image itself, so the "
              "endpoints measure the reconstruction error. PSNR = 10 log10(1 / MSE) in dB (pixels in [0, 1]); "
              "L2 is the Euclidean distance over the 784 pixels; both are means over the pairs. "
              "The study's tables show infinite PSNR at the endpoints. PSNR is infinite only where the MSE is "
              "exactly 0, i.e. where an image was compared with itself (a decoded endpoint against the decoding "
              "of the same code); no autoencoder reproduces its input exactly, so against the original every "
              "value here is finite and the endpoints report the reconstruction quality.", ""]
    alphas = mnist[kinds[0]]["interpolation"]["alphas"]
    for metric, label in (("psnr", "PSNR (dB)"), ("l2", "L2 distance")):
        rows = [[TITLES[k], *[f"{v:.3f}" for v in mnist[k]["interpolation"][metric]]] for k in kinds]
        lines += [f"{label}:", ""] + _table(["model", *[f"a={a:.1f}" for a in alphas]], rows)
    lines += [f"![{TITLES[k]}](figures/interpolation_{k}.png)" for k in kinds] + [""]
    return lines


def _contractive_diagnosis(mnist: dict, reference: dict) -> list[str]:
    if "contractive" not in mnist:
        return []
    history = mnist["contractive"]["history"]
    lines = ["### Why the study's contractive model fails, and a remedy", "",
             "Latent health of the study's contractive model per epoch (test codes): mean activation, "
             "fraction of sigmoid units saturated (h < 1e-3 or h > 1 - 1e-3), and the penalty.", ""]
    rows = [[str(r["epoch"]), _format(r["train_mse"]), _format(r.get("latent_mean"), 4),
             _format(r.get("latent_saturated"), 4), _format(r.get("train_contractive"), 4)] for r in history]
    lines += _table(["epoch", "train MSE", "latent mean", "saturated fraction", "penalty ‖J‖²"], rows)
    saturated = history[-1].get("latent_saturated", 0.0)
    sparse = mnist.get("sparse", {}).get("history", [{}])[-1].get("latent_saturated")
    if saturated >= SATURATED_COLLAPSE:
        first_collapsed = next(r["epoch"] for r in history if r.get("latent_saturated", 0) >= SATURATED_COLLAPSE)
        mean_level = reference.get("mean_image_test_mse")
        level = (f" (predicting the mean training image for every test image gives a test MSE of "
                 f"{mean_level:.4f}; this model's is {history[-1]['test_mse']:.4f})") if mean_level else ""
        lines += [f"**Diagnosis.** {saturated:.1%} of the latent units are saturated at the end of training"
                  + (f" (sparse model: {sparse:.1%})" if sparse is not None else "")
                  + f", from epoch {first_collapsed} on. "
                  "A saturated sigmoid has slope h (1 - h) ≈ 0, so no gradient passes the code: the encoder stops "
                  "learning and the decoder can only learn the mean image" + level + ". The penalty is not what "
                  "holds the units there: it is the sum of the same squared slopes, so it vanished with them "
                  f"(‖J‖² = {history[-1].get('train_contractive', 0):.4f} in the last epoch) and exerts no force "
                  "at all; nothing pulls a saturated unit back. The sparse model's KL term does: through the sigmoid its "
                  "push on a unit's pre-activation is about (mean activation - rho) / N, which does not fade as "
                  "the unit saturates (docs/kl-sparsity.md). The remedy "
                  "keeps the contractive idea on a linear latent, which cannot saturate, with the full Jacobian of "
                  "the code with respect to the image estimated by Hutchinson's method (one probe per image).", ""]
    else:
        lines += [f"In this run only {saturated:.1%} of the latent units ended saturated, so the study's "
                  "contractive model did not collapse here; compare its numbers with the remedy's.", ""]
    return lines


def _frey_section(frey: dict) -> list[str]:
    lines = ["## Frey Face: variational autoencoder", "",
             f"{frey['n_train']:,} training and {frey['n_test']:,} held-out faces (a fixed "
             f"{frey['test_fraction']:.0%}); {frey['likelihood']} decoder; values in nats per image.", ""]
    rows = [[split, _format(frey[split]["elbo"], 2), _format(frey[split]["reconstruction"], 2),
             _format(frey[split]["kl"], 2)] for split in ("train", "test")]
    lines += _table(["", "ELBO", "reconstruction (BCE)", "KL"], rows)
    lines += [f"Training: {frey['epochs']} epochs, {frey['seconds_per_epoch']:.2f} s per epoch.", "",
              "![loss](figures/frey_loss.png)", "", "Reconstructions (top: held-out faces):", "",
              "![reconstructions](figures/frey_reconstructions.png)", "",
              "Faces generated from z ~ N(0, I):", "", "![generated](figures/frey_generated.png)", "",
              f"Traversal of latent dimension {frey['traversal_dim']} over {frey['traversal_range']}, "
              "other dimensions at the code of a held-out face:", "", "![traversal](figures/frey_traversal.png)", "",
              f"2-D grid over latent dimensions {frey['grid_dims'][0]} and {frey['grid_dims'][1]}, the two with "
              "the largest average KL (other dimensions 0):", "", "![grid](figures/frey_grid.png)", ""]
    return lines


def _provenance_section(metrics: dict) -> list[str]:
    """What each model was trained and evaluated on, from the fingerprints stored with its results."""
    rows = []
    models = [(TITLES[kind], metrics["mnist"][kind]) for kind in TITLES if kind in metrics.get("mnist", {})]
    if "frey" in metrics:
        models.append(("Frey Face VAE", metrics["frey"]))
    for title, result in models:
        made = result.get("provenance") or {}
        data = made.get("data") or {}
        sets = [f"{data[name]['shape'][0]:,} images, sha256 `{data[name]['sha256'][:12]}`" if name in data else "–"
                for name in ("x_train", "x_test")]
        rows.append([title, data.get("source", "unknown") + (" (**stand-in**)" if data.get("stand_in") else ""),
                     *sets, f"`{made.get('digest', '')[:12]}`"])
    lines = ["## What each model was trained and evaluated on", "",
             "Each model's checkpoint and results carry a fingerprint of the data (sha256 of the arrays used, "
             "after subsetting), the settings and the architecture; a checkpoint is resumed only when all of "
             "them match.", ""]
    return lines + _table(["model", "data", "trained on", "evaluated on", "fingerprint"], rows)


def write_report(out_dir: Path) -> Path:
    """Read ``out_dir/metrics.json`` and write ``out_dir/report.md``."""
    from experiments.run_folder import results_data

    metrics = json.loads((out_dir / "metrics.json").read_text())
    info = metrics["run"]
    lines = ["# Sparse, contractive and variational autoencoders with minidl", ""]
    on_stand_in = [label for label, data in results_data(metrics).items() if data["stand_in"]]
    if on_stand_in:
        lines += [f"> **WARNING: {', '.join(on_stand_in)} {'was' if len(on_stand_in) == 1 else 'were'} trained "
                  "and evaluated on the offline stand-in (scikit-learn's 8x8 digits resized to 28x28), because "
                  "the real dataset could not be found or downloaded, so those numbers are NOT comparable with "
                  "the study's.**", ""]
    changed = info.get("overrides") or {}
    lines += [f"Preset `{info['preset']}`, seed {info['settings']['seed']}, data: {info['data_source'] or 'none yet'}. "
              "Overrides of the preset: "
              + (", ".join(f"`{key}={value}`" for key, value in changed.items()) if changed else "none") + ".", "",
              "Software: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".", "",
              "Wall time of the latest run of each stage (training reused from checkpoints is not repeated): "
              + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in info.get("seconds", {}).items()) + ".", ""]
    trained = [(name, sum(record["seconds"] for record in values["history"]), len(values["history"]))
               for name, values in [*metrics.get("mnist", {}).items(), ("vae", metrics.get("frey"))] if values]
    lines += ["Training time (all epochs, from the checkpoints' histories): "
              + ", ".join(f"{name} {seconds:.0f} s ({epochs} epochs)" for name, seconds, epochs in trained) + ".", ""]
    lines += ["Settings: " + ", ".join(f"`{key}={value}`" for key, value in info["settings"].items()) + ".", ""]
    if info["preset"] != "paper" or changed:
        lines += [f"> The `{info['preset']}` preset{' with overrides' if changed else ''} differs from the study's "
                  "settings; the study's values beside ours are for its full settings (`--preset paper`).", ""]
    lines += _provenance_section(metrics)
    if "mnist" in metrics:
        lines += _mnist_section(metrics["mnist"], metrics.get("mnist_reference", {}), out_dir / "figures")
    if "frey" in metrics:
        lines += _frey_section(metrics["frey"])
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
