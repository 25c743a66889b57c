"""The headline numbers of a run, their spread over seeds, and which differ from the study beyond that spread.

A headline number is named by a :class:`Headline`: its part, model, metric and, for the interpolation
metrics, the alpha (``Headline("mnist", "sparse", "psnr", 0.2)``, shown as ``mnist.sparse.psnr@0.2``). Files
store each as a record with these four fields beside its value (:func:`to_records`), never as a name to parse.
:func:`spread` summarises the values of one headline over seeds, and :func:`versus_study` applies the stated
rule to a difference from the study.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

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
FIELDS = ("part", "model", "metric", "alpha")


@dataclass(frozen=True)
class Headline:
    """Which headline number: ``part`` ("mnist" or "frey"), ``model`` (an MNIST model kind or a VAE's
    likelihood), ``metric`` (a key of :data:`MNIST_METRICS`, :data:`INTERPOLATION` or :data:`FREY_METRICS`)
    and ``alpha``, the interpolation weight of an :data:`INTERPOLATION` metric (None for the others).

    >>> Headline("mnist", "sparse", "psnr", 0.2).label
    'mnist.sparse.psnr@0.2'
    >>> Headline("mnist", "sparse", "psnr", 0.1 + 0.2) == Headline("mnist", "sparse", "psnr", 0.3)
    True
    """

    part: str
    model: str
    metric: str
    alpha: float | None = None

    def __post_init__(self) -> None:
        # alphas come from settings and from the study's tables: 0.1 + 0.2 and 0.3 name the same column
        if self.alpha is not None:
            object.__setattr__(self, "alpha", float(f"{float(self.alpha):.12g}"))

    @property
    def label(self) -> str:
        """For people: ``part.model.metric``, with ``@alpha`` for an interpolation metric."""
        shown = f"{self.part}.{self.model}.{self.metric}"
        return shown if self.alpha is None else f"{shown}@{self.alpha:g}"

    @classmethod
    def of(cls, record: dict) -> Headline:
        """The headline a record (:func:`to_records`) is about."""
        return cls(*(record[field] for field in FIELDS))


def headline(metrics: dict) -> dict[Headline, float]:
    """The headline numbers of one run's ``metrics.json``."""
    found = {}
    for kind, result in metrics.get("mnist", {}).items():
        for key in MNIST_METRICS:
            found[Headline("mnist", kind, key)] = result[key]
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
                found[Headline("mnist", kind, key, alpha)] = value
    for likelihood, result in metrics.get("frey", {}).items():
        for key in ("elbo", "reconstruction", "kl"):
            found[Headline("frey", likelihood, f"test_{key}")] = result["test"][key]
        found[Headline("frey", likelihood, "active_dimensions")] = float(len(result["active_dimensions"]))
    return found


def to_records(numbers: dict[Headline, float | dict]) -> list[dict]:
    """As stored in JSON: one record per headline, its four fields and its ``value`` (a number), or the
    fields of its :func:`spread` (a dict).

    >>> to_records({Headline("frey", "gaussian", "test_kl"): 3.5})
    [{'part': 'frey', 'model': 'gaussian', 'metric': 'test_kl', 'alpha': None, 'value': 3.5}]
    """
    return [
        {**asdict(name), **(value if isinstance(value, dict) else {"value": value})} for name, value in numbers.items()
    ]


def from_records(records: list[dict]) -> dict[Headline, float | dict]:
    """The inverse of :func:`to_records`: a record with a ``value`` gives the number, any other the dict of
    its other fields."""
    found: dict[Headline, float | dict] = {}
    for record in records:
        rest = {key: item for key, item in record.items() if key not in FIELDS}
        found[Headline.of(record)] = rest["value"] if list(rest) == ["value"] else rest
    return found


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
