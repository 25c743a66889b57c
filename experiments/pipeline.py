"""The command line (``python -m experiments --help``): one run (:mod:`experiments.job`) or a collection of runs
(:mod:`experiments.collection`), and the report of a results folder.

Exit codes: 0 done; 1 the data, a file in the output folder or the training failed (one line naming the
path), or the Dask scheduler could not be reached; 2 the command line was wrong (a setting that does not fit
the data, a ``--scheduler`` address that is malformed or not a Dask scheduler), the output folder holds results
of other data or settings, or another command is writing into it; 130 interrupted (Ctrl-C), and the same
command continues.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autoencoders.checkpoints import CheckpointError
from autoencoders.trainer import TrainingDiverged
from experiments import (
    cluster,
    collection,
    collection_file,
    collection_report,
    datasets,
    job,
    mnist,
    report,
    run_folder,
)
from experiments.errors import UsageError
from experiments.presets import PRESETS, default_folder, resolve_preset, settable

__all__ = ["UsageError", "build_parser", "execute", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "command",
        choices=["run", "mnist", "frey", "report", "sweep"],
        help="run: everything; mnist / frey: one part; report: rewrite report.md; sweep: one run "
        "per point of --grid and seed, and a report of every headline number against the grid "
        "(mnist or frey with --grid sweep that part alone)",
    )
    parser.add_argument(
        "--preset",
        default="quick",
        choices=sorted(PRESETS),
        help="quick (default): a subset in minutes; paper: the study's settings",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting of the preset (repeatable), e.g. --set epochs=3; tuples take "
        f"commas, optional counts take none. Settings: {', '.join(settable())}",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default runs/<preset>[-<overrides>][-stand-in]; one per setting and kind of data)",
    )
    parser.add_argument(
        "--move-aside",
        action="store_true",
        help="when --out holds results of other data or settings, rename it to "
        "<out>.moved-<time> and start afresh (nothing is deleted)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with mnist/ and frey/ (default: $MINIDL_DATA, then the user cache)",
    )
    parser.add_argument(
        "--models",
        default=None,
        help="MNIST models to train and evaluate, comma-separated (default: all of "
        "plain,sparse,contractive,contractive_remedy); results merge into metrics.json",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    runs = parser.add_argument_group("several runs (seeds and sweeps)")
    runs.add_argument(
        "--seeds",
        default=None,
        metavar="S1,S2,...",
        help="train every model once per seed, each run in a sub-folder of its own, and report every "
        "headline number as mean ± std over the seeds (e.g. --seeds 0,1,2)",
    )
    runs.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="sweep: the values of one setting (repeatable: several give their product), e.g. "
        "--grid sparsity_weight=1e-4,1e-3,1e-2",
    )
    runs.add_argument(
        "--workers",
        type=int,
        default=None,
        help="runs at a time in local worker processes (default: as many as cores and runs allow)",
    )
    runs.add_argument(
        "--threads",
        type=int,
        default=None,
        help="Numba and BLAS threads of each run (default: the cores divided among the local workers; "
        "1 on a Dask cluster, as Dask's workers set for BLAS)",
    )
    runs.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on the Dask distributed cluster whose scheduler is at ADDRESS (e.g. "
        "tcp://10.0.0.5:8786); needs the cluster extra: pip install -e '.[cluster]'",
    )
    runs.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="with --scheduler: a folder every worker can reach where each run keeps its checkpoints, "
        "so that a run lost with its worker resumes from its last epoch (without it, each run "
        "trains in a temporary folder of its worker and a lost run starts again)",
    )
    return parser


def _models(text: str | None) -> list[str] | None:
    if not text:
        return None
    models = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(models) - set(mnist.MODEL_KINDS))
    if unknown:
        raise UsageError(f"Unknown model(s) {unknown}; expected some of {list(mnist.MODEL_KINDS)}.")
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
        raise UsageError(
            f"--out {text} --move-aside: {folder.resolve()} holds the current folder and cannot be moved "
            "aside; choose another --out."
        )
    return folder


def _report(out_dir: Path, preset) -> int:
    """Rewrite the report of ``out_dir`` (default: the preset's real-data folder, else a stand-in one)."""
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise run_folder.FolderError(f"{out_dir}: is a file, not a folder; choose another --out.")
    kinds = [{}, {"mnist": True, "frey": True}, {"mnist": False, "frey": True}, {"mnist": True, "frey": False}]
    candidates = [out_dir] if out_dir is not None else [default_folder(preset, kind) for kind in kinds]
    names = ("metrics.json", collection_file.NAME)
    found = next((folder for folder in candidates if any((folder / name).is_file() for name in names)), None)
    if found is None:
        raise run_folder.FolderError(
            f"No metrics in {' or '.join(map(str, candidates))} yet: run `python -m experiments run` first."
        )
    with run_folder.FolderLock(found):
        described = collection_file.read(found)  # a collection's file of an older version is renamed first
        if described:
            if "aggregate" not in described:
                raise run_folder.FolderError(
                    f"{found}: not every run of these seeds or this sweep has finished; run the "
                    "same command again to finish them (finished runs are reused)."
                )
            print(f"Report: {collection_report.write_report(found, described)}")
            return 0
        if run_folder.read_metrics(found).get("format") != run_folder.FORMAT:
            raise run_folder.FolderError(
                f"{found / 'metrics.json'}: written by an older version (another layout); "
                "run the experiments again into a new --out."
            )
        print(f"Report: {report.write_report(found)}")
    return 0


def execute(args, log=print) -> int:
    """Everything :func:`main` does, raising instead of printing errors."""
    if args.scheduler is not None:  # first: a malformed address is refused before anything slow is loaded
        cluster.parse_address(args.scheduler)
    try:
        preset = resolve_preset(args.preset, args.set)
    except ValueError as error:
        raise UsageError(str(error)) from None
    models = _models(args.models)
    args = argparse.Namespace(**{**vars(args), "out": _out_folder(args.out, args.move_aside)})
    if args.command == "sweep" or args.seeds is not None or args.grid:
        return collection.execute(args, preset, models, log)
    if args.command == "report":
        return _report(args.out, preset)
    parts = {"run": ["mnist", "frey"], "mnist": ["mnist"], "frey": ["frey"]}[args.command]
    progress = not args.no_progress and sys.stderr.isatty()
    out_dir = job.run_job(preset, args.out, parts, args.data_dir, models, args.move_aside, progress, log)
    on_stand_in = [
        label for label, data in run_folder.results_data(run_folder.read_metrics(out_dir)).items() if data["stand_in"]
    ]
    if on_stand_in:
        print(
            f"WARNING: {', '.join(on_stand_in)} in {out_dir} {'was' if len(on_stand_in) == 1 else 'were'} trained "
            f"on {job.STAND_IN}; those numbers are NOT comparable with the study's.",
            file=sys.stderr,
        )
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
