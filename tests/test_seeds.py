"""``run --seeds``: one run per seed, each in its own folder, and every headline number as mean ± std over them,
beside the study's with the rule that says which differences exceed the spread."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from experiments import collection, headline, pipeline
from experiments.presets import PRESETS


def read(folder) -> dict:
    return json.loads((Path(folder) / "metrics.json").read_text())


def test_every_model_is_trained_once_per_seed_and_reported_as_mean_and_std(offline, capsys):
    args = ["run", "--preset", "smoke", "--models", "sparse", "--seeds", "0,1", "--workers", "1", "--no-progress"]
    assert pipeline.main(args) == 0
    folder = Path("runs/smoke-seeds=0,1-stand-in")
    metrics = read(folder)
    assert list(metrics["runs"]) == ["seed=0", "seed=1"]
    for seed in (0, 1):
        run = read(folder / f"seed={seed}")
        assert run["run"]["settings"]["seed"] == seed
        assert run["mnist"]["sparse"]["provenance"]["settings"]["seed"] == seed
        assert run["frey"]["gaussian"]["provenance"]["settings"]["seed"] == seed
        for name in ("sparse", "vae_bernoulli", "vae_gaussian"):
            assert (folder / f"seed={seed}" / "checkpoints" / f"{name}.npz").exists()
    stats = metrics["aggregate"]["all"]["stats"]
    values = [metrics["runs"][key]["headline"]["mnist.sparse.test_mse"] for key in ("seed=0", "seed=1")]
    assert stats["mnist.sparse.test_mse"]["values"] == values and values[0] != values[1]
    assert stats["mnist.sparse.test_mse"]["mean"] == pytest.approx(np.mean(values))
    assert stats["mnist.sparse.test_mse"]["std"] == pytest.approx(np.std(values, ddof=1))
    for name in (
        "frey.gaussian.test_elbo",
        "frey.bernoulli.test_kl",
        "mnist.sparse.psnr@0.4",
        "mnist.sparse.blend_latent_l2@0.2",
        "mnist.sparse.probe_accuracy",
    ):
        assert stats[name]["n"] == 2, name
    report = (folder / "report.md").read_text()
    assert "(ddof = 1, n = 2)" in report and "[seed=1](seed=1/report.md)" in report
    assert "in how many runs each holds" in report and "| Gaussian decoder | " in report
    assert "| Sparse AE: test MSE | 0.010388 | " in report  # the study's value in its own column
    shown = f"{stats['mnist.sparse.test_mse']['mean']:.6f} ± {stats['mnist.sparse.test_mse']['std']:.6f}"
    assert f"| Sparse AE | {stats['mnist.sparse.final_train_loss']['mean']:.6f} ± " in report and shown in report
    assert "WARNING" in report and "OFFLINE STAND-IN" in capsys.readouterr().err
    (folder / "report.md").unlink()
    assert pipeline.main(["report", "--out", str(folder)]) == 0 and (folder / "report.md").read_text() == report
    assert pipeline.main(["frey", "--preset", "smoke", "--out", str(folder)]) == 2  # a single run is not mixed in
    assert "the results of seeds or a sweep, not of a single run" in capsys.readouterr().err

    # finished runs are reused; a run missing from the collection runs again from its own checkpoints
    checkpoint = folder / "seed=1" / "checkpoints" / "sparse.npz"
    stamp = checkpoint.stat().st_mtime_ns
    del metrics["runs"]["seed=1"]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    assert pipeline.main(args) == 0
    assert "Reusing 1 finished run(s)" in capsys.readouterr().out
    assert checkpoint.stat().st_mtime_ns == stamp and list(read(folder)["runs"]) == ["seed=0", "seed=1"]
    assert read(folder)["aggregate"]["all"]["stats"]["mnist.sparse.test_mse"]["values"] == values


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
    (folder / "metrics.json").write_text(json.dumps({"format": collection.FORMAT, "collection": described}))
    assert pipeline.main(["run", "--preset", "smoke", "--seeds", "0,1,2", "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "collection: seeds: [0, 1] -> [0, 1, 2]" in err and "--move-aside" in err
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
