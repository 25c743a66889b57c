"""Turn ``metrics.json`` into ``report.md``: every table and figure, beside the study's numbers."""

from __future__ import annotations

import math
from pathlib import Path

from autoencoders.checkpoints import differences
from experiments import frey, plots
from experiments.mnist import TITLES
from experiments.presets import PRESETS, settings
from experiments.run_folder import read_metrics, results_data
from experiments.study import STUDY

SATURATED_COLLAPSE = 0.9


def _format(value, digits=6) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "∞" if value == math.inf else f"{value:.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table and the blank line after it."""
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
    for key, label, digits in (
        ("final_train_loss", "final training loss", 6),
        ("test_mse", "test MSE", 6),
        ("probe_accuracy", "logistic-regression accuracy", 4),
    ):
        rows.append([label, *[_format(mnist[k][key], digits) for k in kinds]])
        study = [_format(STUDY["mnist"].get(k, {}).get(key), digits) for k in kinds]
        rows.append([f"{label} (study)", *study])
    rows.append(["seconds per epoch", *[f"{mnist[k]['seconds_per_epoch']:.1f}" for k in kinds]])
    lines += table(header, rows)

    lines += ["### Training loss per epoch", "", "![training loss](figures/mnist_training_loss.png)", ""]
    epochs = max(len(mnist[k]["history"]) for k in kinds)
    rows = [
        [
            str(e + 1),
            *[_format(mnist[k]["history"][e]["train_loss"]) if e < len(mnist[k]["history"]) else "–" for k in kinds],
        ]
        for e in range(epochs)
    ]
    lines += table(["epoch", *[TITLES[k] for k in kinds]], rows)

    lines += _contractive_diagnosis(mnist, reference)
    lines += _gradient_flow_section(
        {TITLES[k]: mnist[k]["history"] for k in kinds}, mnist.get("contractive"), figures / "mnist_gradient_flow.png"
    )

    lines += ["### Reconstructions", ""]
    lines += [f"![{TITLES[k]}](figures/reconstructions_{k}.png)" for k in kinds] + [""]
    lines += ["### t-SNE of the test codes", ""]
    degenerate = [TITLES[k] for k in kinds if mnist[k].get("codes_degenerate")]
    if degenerate:
        lines += [
            f"No t-SNE for {', '.join(degenerate)}: every test image has (nearly) the same code, so "
            "there is nothing to embed.",
            "",
        ]
    lines += [f"![{TITLES[k]}](figures/tsne_{k}.png)" for k in kinds] + [""]

    lines += [
        "### Latent interpolation",
        "",
        "For pairs of test images of different digits, the codes are blended, "
        "z = (1 - a) z_A + a z_B, and decoded. Each decoded image is compared with the pixel-space "
        "blend (1 - a) x_A + a x_B: at a = 0 and a = 1 that reference is the original image itself, so the "
        "endpoints measure the reconstruction error. PSNR = 10 log10(1 / MSE) in dB (pixels in [0, 1]); "
        "L2 is the Euclidean distance over the 784 pixels; both are means over the pairs. "
        "The study's tables show infinite PSNR at the endpoints. PSNR is infinite only where the MSE is "
        "exactly 0, i.e. where an image was compared with itself (a decoded endpoint against the decoding "
        "of the same code); no autoencoder reproduces its input exactly, so against the original every "
        "value here is finite and the endpoints report the reconstruction quality.",
        "",
    ]
    alphas = mnist[kinds[0]]["interpolation"]["alphas"]
    for metric, label in (("psnr", "PSNR (dB)"), ("l2", "L2 distance")):
        rows = [[TITLES[k], *[f"{v:.3f}" for v in mnist[k]["interpolation"][metric]]] for k in kinds]
        lines += [f"{label}:", ""] + table(["model", *[f"a={a:.1f}" for a in alphas]], rows)
    lines += [f"![{TITLES[k]}](figures/interpolation_{k}.png)" for k in kinds] + [""]
    lines += _study_interpolation(mnist, kinds, alphas)
    return lines


def _study_interpolation(mnist: dict, kinds: list[str], alphas: list[float]) -> list[str]:
    """The study's two tables beside ours and beside the definition that reproduces them."""
    kinds = [k for k in kinds if "blend_consistency" in mnist[k]["interpolation"]]
    if not kinds:
        return []
    study = STUDY["interpolation"]
    lines = [
        "### The study's interpolation tables, and the definition that reproduces them",
        "",
        f"The study reports PSNR = ∞ at a = 0 and 1 and an L2 of {_span(study['sparse']['l2'])} (sparse) and "
        f"{_span(study['contractive']['l2'])} (contractive) in between, with ∞ PSNR at every a for its "
        "contractive model. A decoded image compared with an original or a pixel blend is never identical to "
        "it, so its PSNR is finite at every a; the study's tables are reproduced when each blended code "
        "z = (1 - a) z_A + a z_B is compared with the code of the blended image E((1 - a) x_A + a x_B) — PSNR "
        "between their decodings, L2 between the codes themselves (in latent units). Both sides are the same "
        "computation at a = 0 and 1, so there PSNR is ∞ and L2 is 0 for any model, and a decoder whose output "
        "does not depend on its code gives ∞ at every a. We computed that definition for every model "
        '("code of blend" rows); the study\'s values are in the rows marked (study).',
        "",
    ]
    same_alphas = tuple(alphas) == tuple(study["alphas"])
    for metric, ours_key, label in (("psnr", "psnr", "PSNR (dB)"), ("l2", "latent_l2", "L2")):
        rows = [
            [f"{TITLES[k]}: our definition (pixels)", *[_format(v, 3) for v in mnist[k]["interpolation"][metric]]]
            for k in kinds
        ]
        rows += [
            [
                f"{TITLES[k]}: code of blend (latent)",
                *[_format(v, 3) for v in mnist[k]["interpolation"]["blend_consistency"][ours_key]],
            ]
            for k in kinds
        ]
        study_rows = [
            [f"{name} (study)", *[_format(v, 3) for v in study[name][metric]]] for name in ("sparse", "contractive")
        ]
        header = ["model", *[f"a={a:.1f}" for a in alphas]]
        if same_alphas:
            lines += [f"{label}:", ""] + table(header, rows + study_rows)
        else:
            lines += [f"{label}:", ""] + table(header, rows)
            lines += [f"{label}, the study's (its a):", ""] + table(
                ["model", *[f"a={a:.1f}" for a in study["alphas"]]], study_rows
            )
    flat = [
        TITLES[k] for k in kinds if all(v == math.inf for v in mnist[k]["interpolation"]["blend_consistency"]["psnr"])
    ]
    ends = all(
        mnist[k]["interpolation"]["blend_consistency"]["psnr"][i] == math.inf
        for k in kinds
        for i, a in enumerate(alphas)
        if a in (0.0, 1.0)
    )
    ranges = [f"{TITLES[k]} {_span(mnist[k]['interpolation']['blend_consistency']['latent_l2'])}" for k in kinds]
    lines += [
        (
            "Here too the code-of-blend PSNR is ∞ at both ends for every model"
            if ends
            else "Here the code-of-blend PSNR is not ∞ at both ends for every model (the encoder is not "
            "deterministic to the bit across batches)"
        )
        + "; "
        + (
            f"it is ∞ at every a for {', '.join(flat)}, whose decoded image does not change with its code, "
            "as for the study's contractive model. "
            if flat
            else "no model has ∞ at every a. "
        )
        + "Its L2 ranges (in latent units) are "
        + "; ".join(ranges)
        + ": a sigmoid code lives in [0, 1] per "
        "unit, a linear one is unbounded, so the L2 is not comparable across models.",
        "",
        "**Why we report ours.** The code-of-blend measures how far the encoder is from linear along a "
        "segment; it says nothing of how good the decoded images are (a model that ignores its code scores ∞), "
        "is ∞ at the ends by construction, and its L2 is in latent units that differ between a sigmoid and a "
        "linear code. Ours compares each decoded image with the pixel blend — with the original itself at the "
        "ends, which measures the reconstruction — in pixel units that mean the same for every model.",
        "",
    ]
    return lines


def _span(values: list[float]) -> str:
    inner = [v for v in values if v != 0.0] or values
    return f"{min(inner):.3f}–{max(inner):.3f}"


def _contractive_diagnosis(mnist: dict, reference: dict) -> list[str]:
    if "contractive" not in mnist:
        return []
    history = mnist["contractive"]["history"]
    lines = [
        "### Why the study's contractive model fails, and a remedy",
        "",
        "Latent health of the study's contractive model per epoch (test codes): mean activation, "
        "fraction of sigmoid units saturated (h < 1e-3 or h > 1 - 1e-3), and the penalty.",
        "",
    ]
    rows = [
        [
            str(r["epoch"]),
            _format(r["train_mse"]),
            _format(r.get("latent_mean"), 4),
            _format(r.get("latent_saturated"), 4),
            _format(r.get("train_contractive"), 4),
        ]
        for r in history
    ]
    lines += table(["epoch", "train MSE", "latent mean", "saturated fraction", "penalty ‖J‖²"], rows)
    saturated = history[-1].get("latent_saturated", 0.0)
    sparse = mnist.get("sparse", {}).get("history", [{}])[-1].get("latent_saturated")
    if saturated >= SATURATED_COLLAPSE:
        first_collapsed = next(r["epoch"] for r in history if r.get("latent_saturated", 0) >= SATURATED_COLLAPSE)
        mean_level = reference.get("mean_image_test_mse")
        level = (
            (
                f" (predicting the mean training image for every test image gives a test MSE of "
                f"{mean_level:.4f}; this model's is {history[-1]['test_mse']:.4f})"
            )
            if mean_level
            else ""
        )
        lines += [
            f"**Diagnosis.** {saturated:.1%} of the latent units are saturated at the end of training"
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
            "the code with respect to the image estimated by Hutchinson's method (one probe per image).",
            "",
        ]
    else:
        lines += [
            f"In this run only {saturated:.1%} of the latent units ended saturated, so the study's "
            "contractive model did not collapse here; compare its numbers with the remedy's.",
            "",
        ]
    return lines


def _gradient_flow_section(histories: dict[str, list[dict]], contractive: dict | None, path: Path) -> list[str]:
    """The figure of the gradient flow of every model and a sentence on what it shows (nothing for histories
    recorded without it)."""
    if not any("gradient_flow" in record for history in histories.values() for record in history):
        return []
    plots.gradient_flow(histories, path, "Gradient flow: weight gradients (above) and dead or saturated units (below)")
    lines = [
        "### Gradient flow",
        "",
        f"![gradient flow](figures/{path.name})",
        "",
        "Per layer, the norm of each weight's gradient on a training batch (above; 0 drawn as 0) and the "
        "fraction of ReLU units dead for a whole batch or of sigmoid outputs within 10⁻³ of 0 or 1 (below), "
        "the first epoch in up to ten consecutive parts of its steps and each later epoch as its mean: where a "
        "line drops to 0, no gradient passes that layer.",
    ]
    first = (contractive or {}).get("history", [{}])[0].get("gradient_flow", {})
    code = first.get("activations", {}).get("encoder.sigmoid_1", {}).get("saturated_fraction_trace")
    encoder = [name for name in first.get("parameters", {}) if name.startswith("encoder.") and name.endswith(".W")]
    if code and encoder:
        norms = first["parameters"][encoder[-1]]["grad_norm_trace"]
        parts, steps = len(norms), first["trace_steps"]
        vanished = next((part for part, value in enumerate(norms) if value == 0.0), None)
        lines[-1] += (
            f" In the study's contractive model the saturated fraction of the code goes from {code[0]:.0%} in "
            f"the first of the {parts} parts of epoch 1 to {code[-1]:.0%} in its last, and the gradient of "
            f"the weights below the code ({encoder[-1][:-2]}) from {norms[0]:.2g} to "
            + (
                f"exactly 0 from part {vanished + 1} on (after step {sum(steps[:vanished])} of {sum(steps)}): "
                "no gradient reaches the encoder any more."
                if vanished
                else f"{norms[-1]:.2g}."
            )
        )
    return lines + [""]


def _frey_section(results: dict, figures: Path) -> list[str]:
    likelihoods = [k for k in frey.LIKELIHOODS if k in results]
    first = results[likelihoods[0]]
    lines = [
        "## Frey Face: variational autoencoders with two decoders",
        "",
        f"{first['n_train']:,} training and {first['n_test']:,} held-out faces (a fixed "
        f"{first['test_fraction']:.0%}), values in nats per face. The study's decoder is Bernoulli: each pixel's "
        "grey level is scored by binary cross-entropy against the decoded mean. Beside it, a Gaussian decoder "
        "gives each pixel a mean and its own variance (Kingma and Welling's decoder for Frey Face). Its "
        "reconstruction term is a negative log *density* of continuous values, which is negative once the "
        "variances are small, so its ELBO can be positive: the two decoders' ELBOs are in different units and "
        "are NOT comparable with each other.",
        "",
    ]
    header = ["", *[f"{TITLES_SHORT[k]} {term}" for k in likelihoods for term in ("ELBO", "reconstruction", "KL")]]
    rows = [
        [
            split,
            *[_format(results[k][split][term], 2) for k in likelihoods for term in ("elbo", "reconstruction", "kl")],
        ]
        for split in ("train", "test")
    ]
    lines += table(header, rows)
    lines += [
        "Training: "
        + "; ".join(
            f"{TITLES_SHORT[k]} {results[k]['epochs']} epochs, {results[k]['seconds_per_epoch']:.2f} s per epoch"
            for k in likelihoods
        )
        + ".",
        "",
    ]
    histories = {f"{TITLES_SHORT[k]} decoder": results[k].get("history", []) for k in likelihoods}
    lines += _gradient_flow_section(histories, None, figures / "frey_gradient_flow.png")
    lines += [
        "### How much of its latent each decoder uses",
        "",
        f"KL of each latent dimension, averaged over the held-out faces (the bars of one decoder add up to its "
        f"test KL). A dimension is *active* when its KL exceeds {frey.ACTIVE_KL} nat; below that the decoder "
        "ignores it.",
        "",
        "![KL per dimension](figures/frey_kl_per_dimension.png)",
        "",
    ]
    for k in likelihoods:
        kl, active = results[k]["kl_per_dimension"], results[k]["active_dimensions"]
        shown = ", ".join(f"{d}: {kl[d]:.2f}" for d in active[:8]) + (", …" if len(active) > 8 else "")
        lines.append(
            f"- {frey.TITLES[k]}: {len(active)} of {len(kl)} dimensions active"
            + (f" ({shown})" if active else "")
            + "."
        )
    lines += [
        "",
        "### The study's claims, decoder by decoder",
        "",
        "Each claim is judged from this run's numbers with the thresholds stated beside it.",
        "",
    ]
    verdicts = {k: frey.claims(results[k]) for k in likelihoods}
    rows = [
        [
            f"study: “{STUDY['vae_claims'][claim]}”",
            *[
                f"**{'holds' if verdicts[k][claim]['holds'] else 'does not hold'}**: {verdicts[k][claim]['because']}"
                for k in likelihoods
            ],
        ]
        for claim in ("reconstruction", "generation", "traversal")
    ]
    lines += table(["claim", *[TITLES_SHORT[k] for k in likelihoods]], rows)
    if "gaussian" in results and "pixel_logvar" in results["gaussian"]:
        lines += _variance_note(results["gaussian"]["pixel_logvar"])
    for k in likelihoods:
        result = results[k]
        traversal = result["traversal"]
        lines += [
            f"### {frey.TITLES[k]}",
            "",
            f"![loss](figures/frey_{k}_loss.png)",
            "",
            "Reconstructions (top: held-out faces):",
            "",
            f"![reconstructions](figures/frey_{k}_reconstructions.png)",
            "",
            "Faces generated from z ~ N(0, I) (decoded means):",
            "",
            f"![generated](figures/frey_{k}_generated.png)",
            "",
            "Traversals over "
            + str(traversal["range"])
            + " of "
            + " and ".join(
                f"dimension {d} (RMS change {c:.4f})" for d, c in zip(traversal["dims"], traversal["rms_change"])
            )
            + ", other dimensions at the code of a held-out face (the first row is the study's dimension "
            f"{traversal['dims'][0]}; a second row is this decoder's most active dimension):",
            "",
            f"![traversal](figures/frey_{k}_traversal.png)",
            "",
            f"2-D grid over latent dimensions {result['grid_dims'][0]} and {result['grid_dims'][1]}, the two "
            "with the largest KL (other dimensions 0):",
            "",
            f"![grid](figures/frey_{k}_grid.png)",
            "",
        ]
    return lines


TITLES_SHORT = {"bernoulli": "Bernoulli", "gaussian": "Gaussian"}
GREY_LEVEL = frey.GREY_LEVEL


def _variance_note(stats: dict) -> list[str]:
    """What the Gaussian decoder's per-pixel variances did, from their measured spread."""
    collapsed = stats["sigma_min"] < GREY_LEVEL
    return [
        "**The Gaussian decoder's per-pixel variance.** On the held-out faces its log-variance ranges from "
        f"{stats['min']:.2f} to {stats['max']:.2f} (median {stats['median']:.2f}: σ = {stats['sigma_median']:.4f} "
        f"of the grey range). On the 10% of pixels that vary least in the data (their standard deviation "
        f"{stats['quietest_pixels_data_std']:.4f}) the median log-variance is {stats['quietest_pixels_median']:.2f}; "
        "across pixels, the mean log-variance correlates with the log of the pixel's standard deviation in the data "
        f"with r = {stats['correlation_with_log_data_std']:.2f}. "
        + (
            f"The smallest σ, {stats['sigma_min']:.5f}, is below one grey level (1/255 = {GREY_LEVEL:.5f}), as are "
            f"{stats['below_grey_level']:.2%} of all pixel variances: on those the density is fitted more finely "
            "than the pixels are quantised — the start of the variance collapse that a continuous likelihood "
            "allows on near-constant pixels, and one reason its ELBO is not comparable with the Bernoulli's."
            if collapsed
            else f"The smallest σ, {stats['sigma_min']:.5f}, stays above one grey level (1/255 = {GREY_LEVEL:.5f}): no "
            "variance collapsed onto the quantisation of near-constant pixels in this run."
        ),
        "",
    ]


def _provenance_section(metrics: dict) -> list[str]:
    """What each model was trained and evaluated on, from the fingerprints stored with its results."""
    rows = []
    models = [(TITLES[kind], metrics["mnist"][kind]) for kind in TITLES if kind in metrics.get("mnist", {})]
    models += [
        (f"Frey Face VAE, {TITLES_SHORT[k]} decoder", metrics["frey"][k])
        for k in frey.LIKELIHOODS
        if k in metrics.get("frey", {})
    ]
    for title, result in models:
        made = result.get("provenance") or {}
        data = made.get("data") or {}
        sets = [
            f"{data[name]['shape'][0]:,} images, sha256 `{data[name]['sha256'][:12]}`" if name in data else "–"
            for name in ("x_train", "x_test")
        ]
        rows.append(
            [
                title,
                data.get("source", "unknown") + (" (**stand-in**)" if data.get("stand_in") else ""),
                *sets,
                f"`{made.get('digest', '')[:12]}`",
            ]
        )
    lines = [
        "## What each model was trained and evaluated on",
        "",
        "Each model's checkpoint and results carry a fingerprint of the data (sha256 of the arrays used, "
        "after subsetting), the settings and the architecture; a checkpoint is resumed only when all of "
        "them match.",
        "",
    ]
    return lines + table(["model", "data", "trained on", "evaluated on", "fingerprint"], rows)


def _overrides(info: dict) -> dict:
    """The settings stored in the folder that differ from those of its named preset (derived from what the folder
    holds, never from a command line)."""
    base = settings(PRESETS[info["preset"]]) if info["preset"] in PRESETS else {}
    return {key: value for key, value in info["settings"].items() if key != "name" and base.get(key) != value}


def _disagreements(metrics: dict) -> list[str]:
    """A warning for each model whose fingerprint records other settings than the folder's (which one command
    writing at a time and the check of every checkpoint should make impossible)."""
    folder = metrics["run"]["settings"]
    found = []
    for part, models in (("mnist", metrics.get("mnist", {})), ("frey", metrics.get("frey", {}))):
        for kind, result in models.items():
            made = (result.get("provenance") or {}).get("settings") or {}
            differ = differences({key: folder.get(key) for key in made}, made)
            if differ:
                found.append(f"{part}/{kind} ({'; '.join(differ[:3])})")
    if not found:
        return []
    return [
        f"> **WARNING: results made with other settings than the folder's: {', '.join(found)} (folder's -> "
        "the model's own, from its fingerprint). Their numbers are shown as they are; run them again into "
        "this folder or another --out.**",
        "",
    ]


def _sizes_used(metrics: dict) -> dict[str, int]:
    """The MNIST subset sizes the models were trained and tested on, from their fingerprints' data: a named
    preset's own size beyond a smaller data set (the offline stand-in) takes all of it (experiments/fit.py)."""
    for result in metrics.get("mnist", {}).values():
        data = ((result or {}).get("provenance") or {}).get("data") or {}
        if "x_train" in data and "x_test" in data:
            return {"n_train": data["x_train"]["shape"][0], "n_test": data["x_test"]["shape"][0]}
    return {}


def write_report(out_dir: Path) -> Path:
    """Read ``out_dir/metrics.json`` and write ``out_dir/report.md``."""
    metrics = read_metrics(out_dir)
    info = metrics["run"]
    lines = ["# Sparse, contractive and variational autoencoders with minidl", ""]
    on_stand_in = [label for label, data in results_data(metrics).items() if data["stand_in"]]
    if on_stand_in:
        lines += [
            f"> **WARNING: {', '.join(on_stand_in)} {'was' if len(on_stand_in) == 1 else 'were'} trained "
            "and evaluated on the offline stand-in (scikit-learn's 8x8 digits resized to 28x28), because "
            "the real dataset could not be found or downloaded, so those numbers are NOT comparable with "
            "the study's.**",
            "",
        ]
    changed = _overrides(info)
    lines += _disagreements(metrics)
    lines += [
        f"Preset `{info['preset']}`, seed {info['settings']['seed']}, data: {info['data_source'] or 'none yet'}. "
        "Overrides of the preset: "
        + (", ".join(f"`{key}={value}`" for key, value in changed.items()) if changed else "none")
        + ".",
        "",
        "Software: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
        "",
        "Wall time of the latest run of each stage (training reused from checkpoints is not repeated): "
        + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in info.get("seconds", {}).items())
        + ".",
        "",
    ]
    trained = [
        (name, sum(record["seconds"] for record in values["history"]), len(values["history"]))
        for name, values in [
            *metrics.get("mnist", {}).items(),
            *((f"vae_{k}", v) for k, v in metrics.get("frey", {}).items()),
        ]
        if values
    ]
    lines += [
        "Training time (all epochs, from the checkpoints' histories): "
        + ", ".join(f"{name} {seconds:.0f} s ({epochs} epochs)" for name, seconds, epochs in trained)
        + ".",
        "",
    ]
    used = _sizes_used(metrics)
    lines += [
        "Settings: "
        + ", ".join(
            f"`{key}={value}`"
            + (f" ({used[key]:,} used: all the data has)" if key in used and used[key] != value else "")
            for key, value in info["settings"].items()
        )
        + ".",
        "",
    ]
    if info["preset"] != "paper" or changed:
        lines += [
            f"> The `{info['preset']}` preset{' with overrides' if changed else ''} differs from the study's "
            "settings; the study's values beside ours are for its full settings (`--preset paper`).",
            "",
        ]
    lines += _provenance_section(metrics)
    if "mnist" in metrics:
        lines += _mnist_section(metrics["mnist"], metrics.get("mnist_reference", {}), out_dir / "figures")
    if "frey" in metrics:
        lines += _frey_section(metrics["frey"], out_dir / "figures")
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
