"""The report of a collection (seeds or a sweep): every headline number as mean ± std over seeds, the study's
values beside them with the rule that says which differences exceed the spread, and for a sweep every headline
number plotted against the swept setting."""

from __future__ import annotations

import math
from pathlib import Path

from experiments import frey, headline, plots
from experiments.headline import Headline
from experiments.mnist import TITLES
from experiments.report import table
from experiments.run_folder import read_metrics
from experiments.study import STUDY

DIGITS = {
    "final_train_loss": 6,
    "test_mse": 6,
    "probe_accuracy": 4,
    "psnr": 2,
    "l2": 3,
    "blend_psnr": 2,
    "blend_latent_l2": 3,
    "test_elbo": 2,
    "test_reconstruction": 2,
    "test_kl": 2,
    "active_dimensions": 1,
}


def _value(value: float, digits: int) -> str:
    return "∞" if value == math.inf else ("–" if value is None or math.isnan(value) else f"{value:.{digits}f}")


def mean_std(stats: dict | None, digits: int) -> str:
    """``mean ± std`` of a :func:`~experiments.headline.spread` (``mean`` alone when there is no deviation)."""
    if stats is None:
        return "–"
    if stats["std"] is None:
        return _value(stats["mean"], digits)
    return f"{_value(stats['mean'], digits)} ± {_value(stats['std'], digits)}"


def _label(point: dict) -> str:
    return ", ".join(f"{name}={value}" for name, value in point.items()) or "all runs"


def _models(aggregate: dict, part: str) -> list[str]:
    found = {name.model for entry in aggregate.values() for name in entry["stats"] if name.part == part}
    order = list(TITLES) if part == "mnist" else list(frey.LIKELIHOODS)
    return [model for model in order if model in found]


def _alphas(aggregate: dict, model: str) -> list[float]:
    names = next(iter(aggregate.values()))["stats"]
    return sorted({name.alpha for name in names if (name.part, name.model, name.metric) == ("mnist", model, "psnr")})


def _tables(aggregate: dict) -> list[str]:
    lines = []
    sweep = len(aggregate) > 1
    mnist = _models(aggregate, "mnist")
    if mnist:
        header = (["setting"] if sweep else []) + ["model", *headline.MNIST_METRICS.values()]
        rows = [
            ([_label(entry["point"])] if sweep else [])
            + [
                TITLES[model],
                *[
                    mean_std(entry["stats"].get(Headline("mnist", model, metric)), DIGITS[metric])
                    for metric in headline.MNIST_METRICS
                ],
            ]
            for entry in aggregate.values()
            for model in mnist
        ]
        lines += ["### MNIST", ""] + table(header, rows)
        for metric, label in headline.INTERPOLATION.items():
            alphas = _alphas(aggregate, mnist[0])
            rows = [
                ([_label(entry["point"])] if sweep else [])
                + [
                    TITLES[model],
                    *[
                        mean_std(entry["stats"].get(Headline("mnist", model, metric, alpha)), DIGITS[metric])
                        for alpha in alphas
                    ],
                ]
                for entry in aggregate.values()
                for model in mnist
            ]
            lines += [f"{label}:", ""] + table(
                (["setting"] if sweep else []) + ["model", *[f"a={a:.1f}" for a in alphas]], rows
            )
    decoders = _models(aggregate, "frey")
    if decoders:
        header = (["setting"] if sweep else []) + ["decoder", *headline.FREY_METRICS.values()]
        rows = [
            ([_label(entry["point"])] if sweep else [])
            + [
                frey.TITLES[likelihood],
                *[
                    mean_std(entry["stats"].get(Headline("frey", likelihood, metric)), DIGITS[metric])
                    for metric in headline.FREY_METRICS
                ],
            ]
            for entry in aggregate.values()
            for likelihood in decoders
        ]
        lines += [
            "### Frey Face",
            "",
            "The two decoders' ELBOs are in different units (a Gaussian decoder's is a "
            "log density and can be positive) and are not comparable with each other.",
            "",
        ]
        lines += table(header, rows)
    return lines


def _study_comparison(entry: dict) -> list[str]:
    """Each of our numbers that the study also published, its value, and the verdict of the rule."""
    stats, n = entry["stats"], len(entry["seeds"])
    rows = []
    for kind, values in STUDY["mnist"].items():
        for metric, study in values.items():
            found = stats.get(Headline("mnist", kind, metric))
            if found:
                rows.append(_against_study(f"{TITLES[kind]}: {headline.MNIST_METRICS[metric]}", study, found, metric))
    interpolation = STUDY["interpolation"]
    for kind in ("sparse", "contractive"):
        for metric, ours in (("psnr", "blend_psnr"), ("l2", "blend_latent_l2")):
            for alpha, study in zip(interpolation["alphas"], interpolation[kind][metric]):
                found = stats.get(Headline("mnist", kind, ours, alpha))
                if found:
                    label = f"{TITLES[kind]}: {headline.INTERPOLATION[ours]}, a={alpha:.1f}"
                    rows.append(_against_study(label, study, found, ours))
    if not rows:
        return []
    lines = [
        "## Our numbers against the study's",
        "",
        f"Rule: a difference is *beyond the spread* when |our mean − study| > {headline.SPREAD_RULE:g} s, s being "
        f"the sample standard deviation (ddof = 1) over our n = {n} seeds; it is also *beyond the 95% prediction "
        "interval* when it exceeds t(0.975, n − 1) · s · √(1 + 1/n), the range one more run of ours would fall in "
        "95% of the time. The study's interpolation values are compared with our code-of-blend values, the "
        "definition that reproduces its tables; its MNIST values are for its full settings.",
    ]
    if n >= 2:
        from scipy.stats import chi2

        low, high = (math.sqrt((n - 1) / chi2.ppf(q, n - 1)) for q in (0.975, 0.025))
        lines[-1] += (
            f" With n = {n} this is a weak test: s itself is uncertain (its 95% interval runs from "
            f"{low:.2f} s to {high:.2f} s), and the prediction interval is ± "
            f"{headline.prediction_half_width(1.0, n):.2f} s, so a difference between "
            f"{headline.SPREAD_RULE:g} s and that is only a hint."
        )
    else:
        lines[-1] += " With one seed there is no spread: run with --seeds to judge."
    lines += [""] + table(["quantity", "study", f"ours, mean ± s (n = {n})", "ours, min – max", "verdict"], rows)
    return lines


def _against_study(label: str, study: float, found: dict, metric: str) -> list[str]:
    """One row of :func:`_study_comparison`: the study's value, our spread (:func:`headline.spread`) and the verdict."""
    digits = DIGITS[metric]
    spread = f"{_value(found['min'], digits)} – {_value(found['max'], digits)}"
    return [label, _value(study, digits), mean_std(found, digits), spread, headline.versus_study(found, study)]


def log_axis(values: list[float]) -> bool:
    """A log axis for positive values that span two decades or more."""
    return min(values) > 0 and max(values) / min(values) >= 100


def _vae_claims(folder: Path, aggregate: dict) -> list[str]:
    """In how many runs of each point each claim of the study holds for each decoder (from each run's own
    numbers, read from its folder; see :func:`experiments.frey.claims`)."""
    rows = []
    for entry in aggregate.values():
        verdicts = [
            {
                likelihood: frey.claims(result)
                for likelihood, result in read_metrics(folder / key).get("frey", {}).items()
            }
            for key in entry["runs"]
        ]
        for likelihood in frey.LIKELIHOODS:
            found = [run[likelihood] for run in verdicts if likelihood in run]
            if found:
                rows.append(
                    ([_label(entry["point"])] if len(aggregate) > 1 else [])
                    + [
                        frey.TITLES[likelihood],
                        *[
                            f"{sum(run[claim]['holds'] for run in found)} of {len(found)}"
                            for claim in ("reconstruction", "generation", "traversal")
                        ],
                    ]
                )
    if not rows:
        return []
    header = (["setting"] if len(aggregate) > 1 else []) + [
        "decoder",
        *[f"study: “{STUDY['vae_claims'][claim]}”" for claim in ("reconstruction", "generation", "traversal")],
    ]
    return [
        "### The study's claims about its VAE: in how many runs each holds",
        "",
        "Judged in each run from its own numbers with the thresholds of its report.",
        "",
    ] + table(header, rows)


def _figures(aggregate: dict, grid: dict, figures: Path) -> list[str]:
    """Every headline number against the first swept setting (one line per value of the others)."""
    swept = list(grid)[0]
    logarithmic = log_axis([float(v) for v in grid[swept]])
    lines = [
        "## Against the swept setting",
        "",
        f"Mean ± s over the seeds against `{swept}`"
        + (" (log axis: the values span decades)" if logarithmic else "")
        + (f"; one line per value of {', '.join(f'`{name}`' for name in list(grid)[1:])}" if len(grid) > 1 else "")
        + ".",
        "",
    ]
    groups: dict[str, list[dict]] = {}
    for entry in aggregate.values():
        rest = {k: v for k, v in entry["point"].items() if k != swept}
        groups.setdefault(_label(rest) if rest else "", []).append(entry)

    def series(name: Headline) -> dict[str, tuple[list, list, list]]:
        found = {}
        for label, entries in groups.items():
            points = sorted((float(e["point"][swept]), e["stats"].get(name)) for e in entries)
            found[label] = (
                [x for x, _ in points],
                [s["mean"] if s else math.nan for _, s in points],
                [s["std"] or 0.0 if s else 0.0 for _, s in points],
            )
        return found

    for model in _models(aggregate, "mnist"):
        panels = {label: series(Headline("mnist", model, metric)) for metric, label in headline.MNIST_METRICS.items()}
        for metric, label in headline.INTERPOLATION.items():
            for alpha in _alphas(aggregate, model):
                for group, line in series(Headline("mnist", model, metric, alpha)).items():
                    panels.setdefault(label, {})[f"{group} a={alpha:.1f}".strip()] = line
        name = f"sweep_mnist_{model}.png"
        plots.sweep_panels(panels, swept, logarithmic, figures / name, f"{TITLES[model]} against {swept}")
        lines += [f"![{TITLES[model]}](figures/{name})", ""]
    decoders = _models(aggregate, "frey")
    if decoders:
        panels = {
            f"{frey.TITLES[likelihood]}: {label}": series(Headline("frey", likelihood, metric))
            for likelihood in decoders
            for metric, label in headline.FREY_METRICS.items()
        }
        plots.sweep_panels(panels, swept, logarithmic, figures / "sweep_frey.png", f"Frey Face VAEs against {swept}")
        lines += ["![Frey Face](figures/sweep_frey.png)", ""]
    return lines


def write_report(folder: Path, metrics: dict) -> Path:
    """Write ``folder/report.md`` (and its figures) from the collection's file (format 2, see
    :mod:`experiments.collection_file`)."""
    described, runs = metrics["collection"], metrics["runs"]
    aggregate = {  # each point's spreads by headline
        key: {**entry, "stats": headline.from_records(entry["stats"])} for key, entry in metrics["aggregate"].items()
    }
    seeds = described["seeds"]
    sweep = described["kind"] == "sweep"
    title = (
        f"Sweep of {', '.join(described['grid'])}" if sweep else "Seeds"
    ) + f": preset `{described['preset']}`, {len(seeds)} seed(s)"
    overrides = described["overrides"]
    lines = [f"# {title}", ""]
    stand_in = sorted({label for entry in runs.values() for label, data in entry["data"].items() if data["stand_in"]})
    if stand_in:
        lines += [
            f"> **WARNING: {', '.join(stand_in)} were trained and evaluated on the offline stand-in, so those "
            "numbers are NOT comparable with the study's.**",
            "",
        ]
    lines += [
        f"Overrides of the preset: {', '.join(f'`{k}={v}`' for k, v in overrides.items()) or 'none'}. "
        + (f"Grid: {'; '.join(f'`{k}` = {v}' for k, v in described['grid'].items())}. " if sweep else "")
        + f"Seeds: {', '.join(map(str, seeds))}. Parts: {', '.join(described['parts'])}.",
        "",
        f"Each number is the mean ± s over the seeds, s the sample standard deviation (ddof = 1, n = {len(seeds)}"
        "); the per-seed values are in collection.json (`aggregate.<point>.stats`: a record per headline number, "
        "with its `values`). Each run has a "
        "folder of its own with its report, figures and fingerprints:",
        "",
    ]
    rows = [
        [
            f"[{key}]({key}/report.md)",
            ", ".join(sorted({d["source"] for d in entry["data"].values()})),
            f"{entry['where'].get('seconds', 0):.0f} s",
            str(entry["where"].get("host", "–")),
        ]
        for key, entry in runs.items()
        if key in {k for e in aggregate.values() for k in e["runs"]}
    ]
    lines += table(["run", "data", "wall time", "host"], rows)
    if not sweep:
        lines += _study_comparison(next(iter(aggregate.values())))
    lines += ["## Headline numbers", ""] + _tables(aggregate) + _vae_claims(folder, aggregate)
    if sweep:
        lines += _figures(aggregate, described["grid"], folder / "figures")
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
