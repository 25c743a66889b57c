"""Command line and orchestration of the main job (see ``python -m experiments --help``).

Exit codes: 0 done; 1 the data, a file in the output folder or the training failed (one line naming the
path), or the Dask scheduler could not be reached; 2 the command line was wrong (a setting that does not fit
the data, a ``--scheduler`` address that is malformed or not a Dask scheduler), the output folder holds results
of other data or settings, or another command is writing into it; 130 interrupted (Ctrl-C), and the same
command continues.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

from autoencoders.checkpoints import CheckpointError, plain
from autoencoders.trainer import TrainingDiverged
from experiments import datasets, provenance, run_folder
from experiments.presets import PRESETS, default_folder, overrides, resolve_preset, settable, settings

STAND_IN = "the OFFLINE STAND-IN (scikit-learn's 8x8 digits resized to 28x28)"
NOT_COMPARABLE = "Its numbers are NOT comparable with the study's."


class UsageError(Exception):
    """The command line asks for something impossible; nothing was run or written."""


def _versions() -> dict[str, str]:
    import matplotlib
    import numba
    import scipy
    import sklearn

    import minidl
    return {"python": platform.python_version(), "minidl": minidl.__version__, "numpy": np.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
            "matplotlib": matplotlib.__version__}


def _stand_in_allowed(error: datasets.DataUnavailable, data_dir, what: str) -> None:
    """Re-raise ``error`` when the user named a data folder: the stand-in is only for a user without data."""
    pointed = datasets.pointed_dirs(data_dir)
    if not all(path.is_dir() for path in pointed.values()):
        raise error  # a named folder that does not exist: the message says so
    if pointed:
        raise datasets.DataUnavailable(
            f"{error} (The offline stand-in replaces {what} only when no data folder is named; here "
            f"{' and '.join(pointed)} named {', '.join(str(path) for path in pointed.values())}.)") from None


def fetch_allowed() -> bool:
    """Whether missing data may be downloaded: not when ``MINIDL_OFFLINE=1`` (e.g. on cluster workers
    without internet access, which then fail fast or use the stand-in instead of waiting for mirrors)."""
    return not datasets.downloads_forbidden()


def load_mnist_or_stand_in(data_dir, log=print) -> tuple[dict, str, bool]:
    """MNIST, or (loudly) the offline digits stand-in split 80/20 when MNIST is unavailable and no data
    folder was named. A damaged file, or a file missing from a named folder, is an error."""
    try:
        x_train, y_train, x_test, y_test = datasets.load_mnist(data_dir, fetch=fetch_allowed())
        return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test), "MNIST", False
    except datasets.DataUnavailable as error:
        _stand_in_allowed(error, data_dir, "MNIST")
        log(f"{error}\n\nWARNING: MNIST could not be found or downloaded; using {STAND_IN}. {NOT_COMPARABLE}")
        images, labels = datasets.load_digits_28()
        order = np.random.default_rng(0).permutation(len(images))
        cut = int(0.8 * len(images))
        train, test = order[:cut], order[cut:]
        data = dict(x_train=images[train], y_train=labels[train], x_test=images[test], y_test=labels[test])
        return data, "offline stand-in: scikit-learn digits resized to 28x28", True


def load_frey_or_stand_in(data_dir, log=print) -> tuple[np.ndarray, str, bool]:
    """Frey Face, or (loudly) the digits stand-in cropped to 28x20, under the rules of MNIST's."""
    try:
        return datasets.load_frey_faces(data_dir, fetch=fetch_allowed()), "Frey Face", False
    except datasets.DataUnavailable as error:
        _stand_in_allowed(error, data_dir, "Frey Face")
        log(f"{error}\n\nWARNING: Frey Face could not be found or downloaded; using {STAND_IN}, cropped to "
            f"28x20. {NOT_COMPARABLE}")
        images, _ = datasets.load_digits_28()
        return np.ascontiguousarray(images[:, :, :, 4:24]), "offline stand-in: digits cropped to 28x20", True


def prepare(part: str, preset, data_dir, log=print) -> dict:
    """The arrays one part trains and evaluates on (subset or split per the preset) and their identity.
    Raises UsageError for a setting that this data cannot honour (see :mod:`experiments.fit`)."""
    from experiments import fit, frey, mnist

    if part == "mnist":
        data, source, stand_in = load_mnist_or_stand_in(data_dir, log)
        fit.check_mnist(preset, data, stand_in, log)
        data = mnist.subset(data, preset)
    else:
        images, source, stand_in = load_frey_or_stand_in(data_dir, log)
        fit.check_frey(preset, len(images))
        x_train, x_test = frey.split(images, preset.test_fraction, preset.seed)
        data = {"x_train": x_train, "x_test": x_test}
    return {"data": data, "identity": provenance.data_identity(source, stand_in, **data)}


def expectations(part: str, preset, prepared: dict) -> list[run_folder.Expected]:
    """Every result and checkpoint of ``part`` with the fingerprint this run gives it (all MNIST models, not
    only those being trained: the models of one part are compared side by side, so they share their data)."""
    from experiments import frey, mnist

    identity, shape = prepared["identity"], prepared["data"]["x_train"].shape[1:]
    if part == "frey":
        return [run_folder.Expected(f"Frey Face VAE ({likelihood})", ("frey", likelihood), provenance.fingerprint(
            f"vae_{likelihood}", frey.build_model(preset, shape, likelihood), preset, identity),
            frey.CHECKPOINT.format(likelihood=likelihood)) for likelihood in frey.LIKELIHOODS]
    found = [run_folder.Expected("MNIST mean-image reference", ("mnist_reference",), {"data": identity})]
    for kind in mnist.MODEL_KINDS:
        made = provenance.fingerprint(kind, mnist.build_model(kind, preset, shape), preset, identity)
        found.append(run_folder.Expected(f"MNIST {kind}", ("mnist", kind), made, mnist.CHECKPOINT.format(kind=kind)))
    return found


def run_part(part: str, preset, out_dir: Path, prepared: dict, expected: list, progress: bool, models=None,
             log=print) -> None:
    """Train and evaluate one part, storing each result in metrics.json as soon as it exists."""
    from experiments import frey, mnist

    started = time.perf_counter()
    stage = part if part != "mnist" or not models else f"mnist ({', '.join(models)})"
    fingerprints = {item.entry[-1]: item.provenance for item in expected}

    def store(entry, value):
        run_folder.store(out_dir, entry, value, {stage: time.perf_counter() - started})

    data = prepared["data"]
    if part == "mnist":
        # the level a collapsed model sits at: predicting the mean training image for every test image
        baseline = float(np.mean((data["x_test"] - data["x_train"].mean(axis=0)) ** 2))
        store(("mnist_reference",), {"mean_image_test_mse": baseline, "provenance": fingerprints["mnist_reference"]})
        mnist.run(preset, data, out_dir, kinds=models or mnist.MODEL_KINDS, progress=progress, log=log,
                  fingerprints=fingerprints, store=lambda kind, result: store(("mnist", kind), result))
    else:
        frey.run(preset, data["x_train"], data["x_test"], out_dir, progress=progress, log=log,
                 fingerprints=fingerprints, store=lambda likelihood, result: store(("frey", likelihood), result))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "mnist", "frey", "report", "sweep"],
                        help="run: everything; mnist / frey: one part; report: rewrite report.md; sweep: one run "
                             "per point of --grid and seed, and a report of every headline number against the grid "
                             "(mnist or frey with --grid sweep that part alone)")
    parser.add_argument("--preset", default="quick", choices=sorted(PRESETS),
                        help="quick (default): a subset in minutes; paper: the study's settings")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting of the preset (repeatable), e.g. --set epochs=3; tuples take "
                             f"commas, optional counts take none. Settings: {', '.join(settable())}")
    parser.add_argument("--out", default=None,
                        help="output folder (default runs/<preset>[-<overrides>][-stand-in]; one per setting "
                             "and kind of data)")
    parser.add_argument("--move-aside", action="store_true",
                        help="when --out holds results of other data or settings, rename it to "
                             "<out>.moved-<time> and start afresh (nothing is deleted)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with mnist/ and frey/ (default: $MINIDL_DATA, then the user cache)")
    parser.add_argument("--models", default=None,
                        help="MNIST models to train and evaluate, comma-separated (default: all of "
                             "plain,sparse,contractive,contractive_remedy); results merge into metrics.json")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    runs = parser.add_argument_group("several runs (seeds and sweeps)")
    runs.add_argument("--seeds", default=None, metavar="S1,S2,...",
                      help="train every model once per seed, each run in a sub-folder of its own, and report every "
                           "headline number as mean ± std over the seeds (e.g. --seeds 0,1,2)")
    runs.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                      help="sweep: the values of one setting (repeatable: several give their product), e.g. "
                           "--grid sparsity_weight=1e-4,1e-3,1e-2")
    runs.add_argument("--workers", type=int, default=None,
                      help="runs at a time in local worker processes (default: as many as cores and runs allow)")
    runs.add_argument("--threads", type=int, default=None,
                      help="Numba and BLAS threads of each run (default: the cores divided among the local workers; "
                           "1 on a Dask cluster, as Dask's workers set for BLAS)")
    runs.add_argument("--scheduler", default=None, metavar="ADDRESS",
                      help="run on the Dask distributed cluster whose scheduler is at ADDRESS (e.g. "
                           "tcp://10.0.0.5:8786); needs the cluster extra: pip install -e '.[cluster]'")
    runs.add_argument("--checkpoint-dir", type=Path, default=None,
                      help="with --scheduler: a folder every worker can reach where each run keeps its checkpoints, "
                           "so that a run lost with its worker resumes from its last epoch (without it, each run "
                           "trains in a temporary folder of its worker and a lost run starts again)")
    return parser


def _models(text: str | None) -> list[str] | None:
    from experiments.mnist import MODEL_KINDS

    if not text:
        return None
    models = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(models) - set(MODEL_KINDS))
    if unknown:
        raise UsageError(f"Unknown model(s) {unknown}; expected some of {list(MODEL_KINDS)}.")
    return models


def _out_folder(text: str | None, move_aside: bool) -> Path | None:
    """``--out`` as a folder; UsageError for an empty name, and for ``--move-aside`` of the current folder or one
    that holds it (renaming it would move this command's own working folder)."""
    if text is None:
        return None
    if not text.strip():
        raise UsageError(f"--out {text!r}: expected a folder name, e.g. --out runs/mine.")
    folder = Path(text)
    here = Path.cwd().resolve()
    if move_aside and (folder.resolve() == here or folder.resolve() in here.parents):
        raise UsageError(f"--out {text} --move-aside: {folder.resolve()} holds the current folder and cannot be moved "
                         "aside; choose another --out.")
    return folder


def _report(out_dir: Path, preset) -> int:
    """Rewrite the report of ``out_dir`` (default: the preset's real-data folder, else a stand-in one)."""
    from experiments.report import write_report

    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise run_folder.FolderError(f"{out_dir}: is a file, not a folder; choose another --out.")
    kinds = [{}, {"mnist": True, "frey": True}, {"mnist": False, "frey": True}, {"mnist": True, "frey": False}]
    candidates = [out_dir] if out_dir is not None else [default_folder(preset, kind) for kind in kinds]
    found = next((folder for folder in candidates if (folder / "metrics.json").is_file()), None)
    if found is None:
        raise run_folder.FolderError(f"No metrics in {' or '.join(map(str, candidates))} yet: run "
                                     "`python -m experiments run` first.")
    metrics = run_folder.read_metrics(found)
    if "collection" in metrics:
        if "aggregate" not in metrics:
            raise run_folder.FolderError(f"{found}: not every run of these seeds or this sweep has finished; run the "
                                         "same command again to finish them (finished runs are reused).")
        from experiments.collection_report import write_report as write_collection_report
        with run_folder.FolderLock(found):
            print(f"Report: {write_collection_report(found, metrics)}")
        return 0
    if metrics.get("format") != run_folder.FORMAT:
        raise run_folder.FolderError(f"{found / 'metrics.json'}: written by an older version (another layout); "
                                     "run the experiments again into a new --out.")
    with run_folder.FolderLock(found):
        print(f"Report: {write_report(found)}")
    return 0


def run_job(preset, out_dir: Path | None, parts: list[str], data_dir=None, models=None, move_aside: bool = False,
            progress: bool = False, log=print) -> Path:
    """Train and evaluate ``parts`` (``"mnist"``, ``"frey"``) of one run with ``preset`` into ``out_dir`` (None:
    the default folder of its settings and data) and write its report; returns the folder.

    Holds the folder's lock while it writes (see :class:`~experiments.run_folder.FolderLock`). Raises FolderInUse
    when another command holds it, FolderConflict when the folder holds results of other data or settings (unless
    ``move_aside``), and the errors of the data, the checkpoints and the training.
    """
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise run_folder.FolderError(f"{out_dir}: is a file, not a folder; choose another --out.")
    prepared = {part: prepare(part, preset, data_dir, log) for part in parts}
    stand_in = {part: values["identity"]["stand_in"] for part, values in prepared.items()}
    out_dir = out_dir if out_dir is not None else default_folder(preset, stand_in)
    expected = {part: expectations(part, preset, prepared[part]) for part in parts}
    everything = [item for part in parts for item in expected[part]]
    with run_folder.take(out_dir, lambda: run_folder.conflicts(out_dir, settings(preset), everything), move_aside, log):
        run_folder.claim(out_dir, {"preset": preset.name, "overrides": plain(overrides(preset)),
                                   "settings": settings(preset), "versions": _versions()})
        for part in parts:
            run_part(part, preset, out_dir, prepared[part], expected[part], progress, models, log)
        from experiments.report import write_report
        write_report(out_dir)
    return out_dir


def execute(args, log=print) -> int:
    """Everything :func:`main` does, raising instead of printing errors."""
    if args.scheduler is not None:  # first: a malformed address is refused before anything slow is loaded
        from experiments.cluster import parse_address
        parse_address(args.scheduler)
    try:
        preset = resolve_preset(args.preset, args.set)
    except ValueError as error:
        raise UsageError(str(error)) from None
    models = _models(args.models)
    args = argparse.Namespace(**{**vars(args), "out": _out_folder(args.out, args.move_aside)})
    if args.command == "sweep" or args.seeds is not None or args.grid:
        from experiments import collection
        return collection.execute(args, preset, models, log)
    if args.command == "report":
        return _report(args.out, preset)
    parts = {"run": ["mnist", "frey"], "mnist": ["mnist"], "frey": ["frey"]}[args.command]
    progress = not args.no_progress and sys.stderr.isatty()
    out_dir = run_job(preset, args.out, parts, args.data_dir, models, args.move_aside, progress, log)
    on_stand_in = [label for label, data in run_folder.results_data(run_folder.read_metrics(out_dir)).items()
                   if data["stand_in"]]
    if on_stand_in:
        print(f"WARNING: {', '.join(on_stand_in)} in {out_dir} {'was' if len(on_stand_in) == 1 else 'were'} trained "
              f"on {STAND_IN}; those numbers are NOT comparable with the study's.", file=sys.stderr)
    print(f"Report: {out_dir / 'report.md'}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return execute(args)
    except (UsageError, run_folder.FolderConflict, run_folder.FolderInUse) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (datasets.DatasetError, CheckpointError, run_folder.FolderError, TrainingDiverged, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: every checkpoint and finished result is kept
        print("interrupted; run the same command again to continue", file=sys.stderr)
        return 130
