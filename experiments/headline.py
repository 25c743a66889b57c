"""The headline numbers of a run, their spread over seeds, and which differ from the study beyond that spread.

A run's headline numbers are named ``<part>.<model>.<metric>`` (``mnist.sparse.test_mse``,
``mnist.sparse.psnr@0.2``, ``frey.gaussian.test_elbo``); :func:`spread` summarises the values of one name
over seeds, and :func:`versus_study` applies the stated rule to a difference from the study.
"""

from __future__ import annotations

import math

import numpy as np

MNIST_METRICS = {
    "final_train_loss": "final training loss",
    "test_mse": "test MSE",
    "probe_accuracy": "logistic-regression accuracy",
}
INTERPOLATION = {
    "psnr": "interpolation PSNR (dB)",
    "l2": "interpolation L2 (pixels)",
    "blend_psnr": "code-of-blend PSNR (dB)",
    "blend_latent_l2": "code-of-blend L2 (latent)",
}
FREY_METRICS = {
    "test_elbo": "held-out ELBO (nats)",
    "test_reconstruction": "held-out reconstruction term",
    "test_kl": "held-out KL (nats)",
    "active_dimensions": "active latent dimensions",
}
SPREAD_RULE = 2.0  # a difference from the study beyond this many sample standard deviations is flagged


def headline(metrics: dict) -> dict[str, float]:
    """The headline numbers of one run's ``metrics.json``, by name."""
    found = {}
    for kind, result in metrics.get("mnist", {}).items():
        for key in MNIST_METRICS:
            found[f"mnist.{kind}.{key}"] = result[key]
        interpolation = result["interpolation"]
        blend = interpolation.get("blend_consistency", {})
        series = {
            "psnr": interpolation["psnr"],
            "l2": interpolation["l2"],
            "blend_psnr": blend.get("psnr"),
            "blend_latent_l2": blend.get("latent_l2"),
        }
        for key, values in series.items():
            for alpha, value in zip(interpolation["alphas"], values or []):
                found[f"mnist.{kind}.{key}@{alpha:g}"] = value
    for likelihood, result in metrics.get("frey", {}).items():
        found[f"frey.{likelihood}.test_elbo"] = result["test"]["elbo"]
        found[f"frey.{likelihood}.test_reconstruction"] = result["test"]["reconstruction"]
        found[f"frey.{likelihood}.test_kl"] = result["test"]["kl"]
        found[f"frey.{likelihood}.active_dimensions"] = float(len(result["active_dimensions"]))
    return found


def split_name(name: str) -> tuple[str, str, str, float | None]:
    """``"mnist.sparse.psnr@0.2"`` -> ``("mnist", "sparse", "psnr", 0.2)``; the alpha is None when absent."""
    part, model, metric = name.split(".", 2)
    metric, at, alpha = metric.partition("@")
    return part, model, metric, float(alpha) if at else None


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (ddof = 1; None for a single value), n, min and max of ``values``.

    Infinite values (a PSNR of identical images) make the mean infinite and the deviation None.
    """
    values = [float(v) for v in values]
    n = len(values)
    if not all(math.isfinite(v) for v in values):
        mean = math.inf if all(v == math.inf for v in values) or math.inf in values else math.nan
        return {"mean": mean, "std": None, "n": n, "min": min(values), "max": max(values)}
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if n > 1 else None,
        "n": n,
        "min": min(values),
        "max": max(values),
    }


def prediction_half_width(std: float, n: int) -> float:
    """Half-width of the 95% prediction interval for one more run, t(0.975, n - 1) s sqrt(1 + 1 / n)."""
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1) * std * math.sqrt(1 + 1 / n))


def versus_study(summary: dict, study: float) -> str:
    """How our values (a :func:`spread`) compare with the study's single value, by the stated rule.

    ``"beyond the spread"`` when |mean - study| > 2 s, with ``", and beyond the 95% prediction interval"``
    when it also exceeds t s sqrt(1 + 1/n) (the range one more run of ours would fall in 95% of the time);
    ``"within the spread"`` otherwise. With one seed there is no spread to judge by.
    """
    mean, std, n = summary["mean"], summary["std"], summary["n"]
    if math.isinf(study) or math.isinf(mean):
        return "equal (both ∞)" if mean == study else "differs (∞ against a finite value)"
    if std is None:
        return "no spread (one seed)"
    gap = abs(mean - study)
    if gap == 0:
        return "equal"
    if gap <= SPREAD_RULE * std:
        return "within the spread"
    if gap > prediction_half_width(std, n):
        return "beyond the spread, and beyond the 95% prediction interval"
    return "beyond the spread"
