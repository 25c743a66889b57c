"""Command line and orchestration of the main job (see ``python -m experiments --help``)."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from experiments import datasets
from experiments.presets import PRESETS, get_preset

STAND_IN_WARNING = ("WARNING: MNIST/Frey Face could not be found or downloaded; using the OFFLINE STAND-IN "
                    "(scikit-learn's 8x8 digits resized to 28x28). The numbers will NOT be comparable with the study.")


def _versions() -> dict[str, str]:
    import matplotlib
    import numba
    import scipy
    import sklearn

    import minidl
    return {"python": platform.python_version(), "minidl": minidl.__version__, "numpy": np.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
            "matplotlib": matplotlib.__version__}


def load_mnist_or_stand_in(data_dir, log=print) -> tuple[dict, str, bool]:
    """MNIST, or (loudly) the offline digits stand-in split 80/20 when MNIST is unavailable."""
    try:
        x_train, y_train, x_test, y_test = datasets.load_mnist(data_dir)
        return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test), "MNIST", False
    except datasets.DatasetError as error:
        log(f"{error}\n\n{STAND_IN_WARNING}")
        images, labels = datasets.load_digits_28()
        order = np.random.default_rng(0).permutation(len(images))
        cut = int(0.8 * len(images))
        train, test = order[:cut], order[cut:]
        data = dict(x_train=images[train], y_train=labels[train], x_test=images[test], y_test=labels[test])
        return data, "offline stand-in: scikit-learn digits resized to 28x28", True


def load_frey_or_stand_in(data_dir, log=print) -> tuple[np.ndarray, str, bool]:
    """Frey Face, or (loudly) the digits stand-in cropped to 28x20 when it is unavailable."""
    try:
        return datasets.load_frey_faces(data_dir), "Frey Face", False
    except datasets.DatasetError as error:
        log(f"{error}\n\n{STAND_IN_WARNING}")
        images, _ = datasets.load_digits_28()
        return np.ascontiguousarray(images[:, :, :, 4:24]), "offline stand-in: digits cropped to 28x20", True


def _update_metrics(out_dir: Path, part: str, values: dict, run_info: dict) -> None:
    """Merge one part's results into ``metrics.json`` (MNIST results merge model by model)."""
    path = out_dir / "metrics.json"
    metrics = json.loads(path.read_text()) if path.exists() else {}
    metrics[part] = {**metrics.get(part, {}), **values} if part in ("mnist", "mnist_reference") else values
    previous = metrics.get("run", {})
    run_info["seconds"] = {**previous.get("seconds", {}), **run_info["seconds"]}
    run_info["stand_in"] = bool(previous.get("stand_in")) or run_info["stand_in"]
    sources = [source for source in previous.get("data_source", "").split("; ") if source]
    if run_info["data_source"] not in sources:
        sources.append(run_info["data_source"])
    run_info["data_source"] = "; ".join(sources)
    metrics["run"] = run_info
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(metrics, indent=1))
    temporary.replace(path)


def run_part(part: str, preset, out_dir: Path, data_dir, progress: bool, models=None, log=print) -> None:
    from dataclasses import asdict

    started = time.perf_counter()
    stage = part if part != "mnist" or not models else f"mnist ({', '.join(models)})"

    def info(source: str, stand_in: bool) -> dict:
        return {"preset": preset.name, "seed": preset.seed, "data_source": source, "stand_in": stand_in,
                "versions": _versions(), "settings": asdict(preset),
                "seconds": {stage: time.perf_counter() - started}}

    if part == "mnist":
        from experiments import mnist
        data, source, stand_in = load_mnist_or_stand_in(data_dir, log)
        # the level a collapsed model sits at: predicting the mean training image for every test image
        used = mnist.subset(data, preset)
        baseline = float(np.mean((used["x_test"] - used["x_train"].mean(axis=0)) ** 2))
        _update_metrics(out_dir, "mnist_reference", {"mean_image_test_mse": baseline}, info(source, stand_in))
        mnist.run(preset, data, out_dir, kinds=models or mnist.MODEL_KINDS, progress=progress, log=log,
                  store=lambda kind, result: _update_metrics(out_dir, "mnist", {kind: result},
                                                             info(source, stand_in)))
    else:
        from experiments import frey
        images, source, stand_in = load_frey_or_stand_in(data_dir, log)
        values = frey.run(preset, images, out_dir, progress=progress, log=log)
        _update_metrics(out_dir, part, values, info(source, stand_in))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__)
    parser.add_argument("command", choices=["run", "mnist", "frey", "report"],
                        help="run: everything; mnist / frey: one part; report: rewrite report.md")
    parser.add_argument("--preset", default="quick", choices=sorted(PRESETS),
                        help="quick (default): a subset in minutes; paper: the study's settings")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/<preset>)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with mnist/ and frey/ (default: $MINIDL_DATA, then the user cache)")
    parser.add_argument("--models", default=None,
                        help="MNIST models to train and evaluate, comma-separated (default: all of "
                             "plain,sparse,contractive,contractive_remedy); results merge into metrics.json")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    preset = get_preset(args.preset)
    out_dir = args.out if args.out is not None else Path("runs") / preset.name
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress and sys.stderr.isatty()
    parts = {"run": ["mnist", "frey"], "mnist": ["mnist"], "frey": ["frey"], "report": []}[args.command]
    models = None
    if args.models:
        from experiments.mnist import MODEL_KINDS
        models = [name.strip() for name in args.models.split(",") if name.strip()]
        unknown = sorted(set(models) - set(MODEL_KINDS))
        if unknown:
            print(f"Unknown model(s) {unknown}; expected some of {list(MODEL_KINDS)}.", file=sys.stderr)
            return 2
    for part in parts:
        run_part(part, preset, out_dir, args.data_dir, progress, models)
    from experiments.report import write_report
    if not (out_dir / "metrics.json").exists():
        print(f"No metrics in {out_dir} yet: run `python -m experiments run` first.", file=sys.stderr)
        return 1
    report = write_report(out_dir)
    if json.loads((out_dir / "metrics.json").read_text())["run"].get("stand_in"):
        print(STAND_IN_WARNING, file=sys.stderr)
    print(f"Report: {report}")
    return 0
