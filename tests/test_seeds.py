"""``run --seeds``: one run per seed, each in its own folder, and every headline number as mean ± std over them,
beside the study's with the rule that says which differences exceed the spread."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from experiments import collection, collection_file, headline, pipeline, run_folder
from experiments.headline import Headline
from experiments.presets import PRESETS


def read(folder, name="metrics.json") -> dict:
    return json.loads((Path(folder) / name).read_text())


def numbers(records: list[dict]) -> dict:
    """A stored list of headline records by :class:`Headline`."""
    return headline.from_records(records)


TEST_MSE = Headline("mnist", "sparse", "test_mse")


def test_every_model_is_trained_once_per_seed_and_reported_as_mean_and_std(offline, capsys):
    args = ["run", "--preset", "smoke", "--models", "sparse", "--seeds", "0,1", "--workers", "1", "--no-progress"]
    assert pipeline.main(args) == 0
    folder = Path("runs/smoke-seeds=0,1-stand-in")
    assert not (folder / "metrics.json").exists()  # a run's file; the collection's has its own name
    metrics = read(folder, "collection.json")
    assert list(metrics["runs"]) == ["seed=0", "seed=1"]
    for seed in (0, 1):
        run = read(folder / f"seed={seed}")
        assert run["run"]["settings"]["seed"] == seed
        assert run["mnist"]["sparse"]["provenance"]["settings"]["seed"] == seed
        assert run["frey"]["gaussian"]["provenance"]["settings"]["seed"] == seed
        for name in ("sparse", "vae_bernoulli", "vae_gaussian"):
            assert (folder / f"seed={seed}" / "checkpoints" / f"{name}.npz").exists()
    stats = numbers(metrics["aggregate"]["all"]["stats"])
    values = [numbers(metrics["runs"][key]["headline"])[TEST_MSE] for key in ("seed=0", "seed=1")]
    assert stats[TEST_MSE]["values"] == values and values[0] != values[1]
    assert stats[TEST_MSE]["mean"] == pytest.approx(np.mean(values))
    assert stats[TEST_MSE]["std"] == pytest.approx(np.std(values, ddof=1))
    for name in (
        Headline("frey", "gaussian", "test_elbo"),
        Headline("frey", "bernoulli", "test_kl"),
        Headline("mnist", "sparse", "psnr", 0.4),
        Headline("mnist", "sparse", "blend_latent_l2", 0.2),
        Headline("mnist", "sparse", "probe_accuracy"),
    ):
        assert stats[name]["n"] == 2, name
    report = (folder / "report.md").read_text()
    assert "(ddof = 1, n = 2)" in report and "[seed=1](seed=1/report.md)" in report
    assert "in how many runs each holds" in report and "| Gaussian decoder | " in report
    assert "| Sparse AE: test MSE | 0.010388 | " in report  # the study's value in its own column
    shown = f"{stats[TEST_MSE]['mean']:.6f} ± {stats[TEST_MSE]['std']:.6f}"
    final_loss = stats[Headline("mnist", "sparse", "final_train_loss")]["mean"]
    assert f"| Sparse AE | {final_loss:.6f} ± " in report and shown in report
    assert "WARNING" in report and "OFFLINE STAND-IN" in capsys.readouterr().err
    (folder / "report.md").unlink()
    assert pipeline.main(["report", "--out", str(folder)]) == 0 and (folder / "report.md").read_text() == report
    assert pipeline.main(["frey", "--preset", "smoke", "--out", str(folder)]) == 2  # a single run is not mixed in
    assert "the results of seeds or a sweep, not of a single run" in capsys.readouterr().err

    # finished runs are reused; a run missing from the collection runs again from its own checkpoints
    checkpoint = folder / "seed=1" / "checkpoints" / "sparse.npz"
    stamp = checkpoint.stat().st_mtime_ns
    del metrics["runs"]["seed=1"]
    (folder / "collection.json").write_text(json.dumps(metrics))
    assert pipeline.main(args) == 0
    assert "Reusing 1 finished run(s)" in capsys.readouterr().out
    metrics = read(folder, "collection.json")
    assert checkpoint.stat().st_mtime_ns == stamp and list(metrics["runs"]) == ["seed=0", "seed=1"]
    assert numbers(metrics["aggregate"]["all"]["stats"])[TEST_MSE]["values"] == values

    # the file as an earlier version wrote it: metrics.json, each headline number named by a string (format 1)
    report = (folder / "report.md").read_text()
    (folder / "collection.json").rename(folder / "metrics.json")
    (folder / "metrics.json").write_text(json.dumps(as_format_1(metrics)))
    (folder / "report.md").unlink()
    assert pipeline.main(["report", "--out", str(folder)]) == 0
    assert capsys.readouterr().out.startswith(f"{folder / 'metrics.json'}: the file of seeds or a sweep, renamed")
    assert not (folder / "metrics.json").exists() and (folder / "report.md").read_text() == report
    assert read(folder, "collection.json") == as_format_1(metrics)  # renamed as it was; converted when written
    assert pipeline.main(args) == 0
    assert "Reusing 2 finished run(s)" in capsys.readouterr().out
    assert read(folder, "collection.json") == metrics and (folder / "report.md").read_text() == report


def as_format_1(document: dict) -> dict:
    """``document`` as format 1 stored it: headline numbers by name, ``<part>.<model>.<metric>[@<alpha>]``."""

    def by_name(records: list[dict], value) -> dict:
        return {
            f"{r['part']}.{r['model']}.{r['metric']}" + (f"@{r['alpha']:g}" if r["alpha"] is not None else ""): value(r)
            for r in records
        }

    def spread(record: dict) -> dict:
        return {key: item for key, item in record.items() if key not in ("part", "model", "metric", "alpha")}

    return {
        **document,
        "format": 1,
        "runs": {
            key: {**entry, "headline": by_name(entry["headline"], lambda r: r["value"])}
            for key, entry in document["runs"].items()
        },
        "aggregate": {
            key: {**entry, "stats": by_name(entry["stats"], spread)} for key, entry in document["aggregate"].items()
        },
    }


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "0,0"], "distinct non-negative integers"),
        (["--seeds", "a,b"], "expected comma-separated integers"),
        (["--seeds", "0,1", "--set", "seed=3"], "give the seeds with --seeds only"),
        (["--seeds", "0,1", "--set", "epochs=0"], "Expected epochs to be a positive integer"),
        (["--seeds", "0,1", "--workers", "0"], "--workers 0: expected a positive integer"),
        (["--seeds", "0,1", "--checkpoint-dir", "x"], "--checkpoint-dir goes with --scheduler"),
    ],
)
def test_bad_seeds_are_a_clear_error_before_anything_runs(offline, capsys, args, message):
    assert pipeline.main(["run", "--preset", "smoke", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not Path("runs").exists()


def test_a_folder_of_another_collection_or_a_single_run_is_refused(offline, capsys):
    folder = offline / "mine"
    folder.mkdir()
    base = PRESETS["smoke"]
    described = collection.description(base, {}, [0, 1], ["mnist", "frey"], None)
    (folder / "collection.json").write_text(json.dumps({"format": collection.FORMAT, "collection": described}))
    assert pipeline.main(["run", "--preset", "smoke", "--seeds", "0,1,2", "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "collection: seeds: [0, 1] -> [0, 1, 2]" in err and "--move-aside" in err
    (folder / "collection.json").unlink()
    (folder / "metrics.json").write_text(json.dumps({"format": 3, "run": {"settings": {}}}))
    assert pipeline.main(["run", "--preset", "smoke", "--seeds", "0,1", "--out", str(folder)]) == 2
    assert "the results of a single run, not of seeds or a sweep" in capsys.readouterr().err


# -- the spread and the rule -----------------------------------------------------------------------


def test_the_spread_is_the_sample_standard_deviation():
    summary = headline.spread([1.0, 2.0, 4.0])
    assert summary["mean"] == pytest.approx(7 / 3) and summary["std"] == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert (summary["n"], summary["min"], summary["max"]) == (3, 1.0, 4.0)
    assert headline.spread([5.0])["std"] is None
    assert headline.spread([math.inf, math.inf]) == {
        "mean": math.inf,
        "std": None,
        "n": 2,
        "min": math.inf,
        "max": math.inf,
    }


def test_the_rule_flags_differences_beyond_two_standard_deviations_and_the_prediction_interval():
    summary = {"mean": 10.0, "std": 1.0, "n": 3}
    assert headline.prediction_half_width(1.0, 3) == pytest.approx(4.303 * math.sqrt(4 / 3), rel=1e-3)
    assert headline.versus_study(summary, 11.9) == "within the spread"
    assert headline.versus_study(summary, 12.5) == "beyond the spread"
    assert headline.versus_study(summary, 15.5) == "beyond the spread, and beyond the 95% prediction interval"
    assert headline.versus_study({"mean": 10.0, "std": None, "n": 1}, 20.0) == "no spread (one seed)"
    assert headline.versus_study({"mean": math.inf, "std": None, "n": 3}, math.inf) == "equal (both ∞)"
    assert headline.versus_study({"mean": 30.0, "std": 1.0, "n": 3}, math.inf).startswith("differs")


# -- the collection's file of earlier versions ------------------------------------------------------------


def test_a_format_1_file_is_renamed_once_and_read_as_records(tmp_path):
    old = {
        "format": 1,
        "collection": {"kind": "seeds"},
        "runs": {"seed=0": {"headline": {"mnist.sparse.psnr@0.2": 17.5, "frey.gaussian.test_kl": 3.0}}},
        "aggregate": {"all": {"stats": {"mnist.sparse.blend_psnr@0": {"mean": math.inf, "n": 1}}}},
    }
    (tmp_path / "metrics.json").write_text(json.dumps(old).replace("Infinity", '"Infinity"'))
    said = []
    document = collection_file.read(tmp_path, said.append)
    assert said == [f"{tmp_path / 'metrics.json'}: the file of seeds or a sweep, renamed collection.json."]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["collection.json"]
    assert document["format"] == 2
    assert numbers(document["runs"]["seed=0"]["headline"]) == {
        Headline("mnist", "sparse", "psnr", 0.2): 17.5,
        Headline("frey", "gaussian", "test_kl"): 3.0,
    }
    assert document["aggregate"]["all"]["stats"] == [
        {"part": "mnist", "model": "sparse", "metric": "blend_psnr", "alpha": 0.0, "mean": math.inf, "n": 1}
    ]
    assert collection_file.read(tmp_path, said.append) == document and len(said) == 1


def test_a_run_folder_is_not_a_collection_and_its_metrics_json_keeps_its_name(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"format": 3, "run": {}}))
    assert collection_file.read(tmp_path, print) == {} and (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize(
    "stored, message",
    [
        ({"format": 3, "runs": {}}, r"format 3, not one this version reads \(1 or 2\); update minidl"),
        ({"format": "2", "runs": {}}, r"format '2', not one this version reads \(1 or 2\); repair or remove it"),
        (
            {"format": 1, "runs": {"seed=0": {"headline": {"test_mse": 1.0}}}},
            "a format 1 file whose headline numbers cannot be read",
        ),
    ],
)
def test_a_collection_file_of_another_format_is_refused_naming_it(tmp_path, stored, message):
    (tmp_path / "collection.json").write_text(json.dumps(stored))
    with pytest.raises(run_folder.FolderError, match=f"^{tmp_path / 'collection.json'}: {message}"):
        collection_file.read(tmp_path)
