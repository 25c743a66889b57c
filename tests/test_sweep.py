"""Sweeps: the grid and its errors, runs in local worker processes, and on a loopback Dask cluster that loses a
worker mid-run."""

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from experiments import collection, collection_report, headline, pipeline
from experiments.headline import Headline
from experiments.presets import PRESETS

SMOKE = PRESETS["smoke"]


def error_of(capsys, *args) -> tuple[int, str]:
    code = pipeline.main(["sweep", "--preset", "smoke", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: "), err
    return code, err


def read(folder, name="metrics.json") -> dict:
    return json.loads((Path(folder) / name).read_text())


# -- the grid --------------------------------------------------------------------------------------


def test_the_grid_is_the_product_of_its_values_times_the_seeds():
    grid = collection.parse_grid(["sparsity_weight=1e-4,1e-2", "epochs=1,2,3", "alphas=0,1;0,0.5,1"])
    assert grid == {"sparsity_weight": [1e-4, 1e-2], "epochs": [1, 2, 3], "alphas": [(0.0, 1.0), (0.0, 0.5, 1.0)]}
    specs = collection.plan(SMOKE, grid, [0, 1], ["mnist"])
    assert len(specs) == 2 * 3 * 2 * 2 and len({spec.key for spec in specs}) == len(specs)
    assert specs[0].key == "sparsity_weight=0.0001,epochs=1,alphas=0.0_1.0,seed=0"
    assert (specs[1].preset.seed, specs[1].preset.sparsity_weight, specs[1].preset.alphas) == (1, 1e-4, (0.0, 1.0))
    assert len({spec.digest for spec in specs}) == len(specs)


@pytest.mark.parametrize(
    "grid, message",
    [
        (["bogus=1,2"], "unknown setting 'bogus'; valid settings are: seed, n_train"),
        (["sparsity_weight="], "expected at least one value"),
        (["sparsity_weight"], "expected key=v1,v2"),
        (["seed=0,1"], "seeds are given with --seeds"),
        (["epochs=1", "epochs=2"], "is given twice"),
        (["epochs=one"], "--set epochs=one: expected an integer"),
    ],
)
def test_a_bad_grid_is_a_clear_error(grid, message):
    with pytest.raises(ValueError, match=message):
        collection.parse_grid(grid)


def test_a_grid_value_is_validated_as_a_whole_setting():
    with pytest.raises(ValueError, match=r"--grid point sparsity_weight=-1.0: Expected sparsity_weight to be >= 0"):
        collection.plan(SMOKE, {"sparsity_weight": [1e-3, -1.0]}, [0], ["mnist"])
    with pytest.raises(ValueError, match="traversal_dim < vae_latent_dim"):
        collection.plan(SMOKE, {"vae_latent_dim": [2]}, [0], ["frey"])
    with pytest.raises(ValueError, match="are the same settings"):
        collection.plan(SMOKE, {"epochs": [1, 1]}, [0], ["mnist"])


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "sweep needs at least one --grid"),
        (["--grid", "rho=2"], "Expected rho to be a probability in (0, 1)"),
        (["--grid", "epochs="], "expected at least one value"),
        (["--grid", "epochs=1,2", "--checkpoint-dir", "somewhere"], "--checkpoint-dir goes with --scheduler"),
        (["--grid", "epochs=1,2", "--set", "epochs=3"], "--grid epochs=... and --set epochs=...: give epochs one way"),
        (["--grid", "epochs=1,2", "--set", "epochs=1"], "--grid epochs=... and --set epochs=...: give epochs one way"),
    ],
)
def test_a_bad_sweep_command_writes_nothing(offline, capsys, args, message):
    code, err = error_of(capsys, *args)
    assert code == 2 and message in err and not Path("runs").exists()


def test_an_unreachable_scheduler_fails_within_seconds_naming_it(offline, capsys):
    started = time.perf_counter()
    code, err = error_of(capsys, "--grid", "epochs=1,2", "--scheduler", "tcp://127.0.0.1:9")
    assert code == 1 and "Cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 5 s" in err
    assert time.perf_counter() - started < 30 and not Path("runs").exists()


def test_without_dask_the_scheduler_option_says_how_to_install_it(offline, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now fails
    code, err = error_of(capsys, "--grid", "epochs=1,2", "--scheduler", "tcp://127.0.0.1:9")
    assert code == 1 and "pip install -e '.[cluster]'" in err and not Path("runs").exists()


def test_the_cores_are_split_among_the_workers(monkeypatch):
    monkeypatch.setattr(collection, "cores", lambda: 8)
    assert collection.split_cores(3, None, None) == (3, 2)
    assert collection.split_cores(20, None, None) == (8, 1)
    assert collection.split_cores(1, None, None) == (1, 8)
    notes = []
    assert collection.split_cores(4, 4, 4, notes.append) == (4, 4) and "exceeds the 8 cores" in notes[0]


def test_a_log_axis_when_the_values_span_decades():
    assert collection_report.log_axis([1e-4, 1e-3, 1e-2]) and not collection_report.log_axis([1, 2, 50])
    assert not collection_report.log_axis([0.0, 1e-3, 1.0])


# -- end to end --------------------------------------------------------------------------------------


def test_a_local_sweep_in_worker_processes_plots_and_tabulates_every_headline_number(offline, capsys):
    args = [
        "sweep",
        "--preset",
        "smoke",
        "--models",
        "plain",
        "--grid",
        "learning_rate=1e-4,1e-2",
        "--workers",
        "2",
        "--no-progress",
    ]
    assert pipeline.main(args) == 0
    assert "2 run(s) in 2 local worker(s) of 1 thread(s) each" in capsys.readouterr().out
    folder = Path("runs/sweep-smoke-learning_rate=0.0001_0.01-seeds=0-stand-in")
    metrics = read(folder, "collection.json")
    assert sorted(metrics["runs"]) == ["learning_rate=0.0001,seed=0", "learning_rate=0.01,seed=0"]
    assert {key: entry["seeds"] for key, entry in metrics["aggregate"].items()} == {
        "learning_rate=0.0001": [0],
        "learning_rate=0.01": [0],
    }
    assert all(entry["where"]["pid"] != os.getpid() for entry in metrics["runs"].values())  # in worker processes
    test_mse = Headline("mnist", "plain", "test_mse")
    stats = headline.from_records(metrics["aggregate"]["learning_rate=0.01"]["stats"])[test_mse]
    assert stats["n"] == 1 and stats["std"] is None
    run = headline.from_records(metrics["runs"]["learning_rate=0.01,seed=0"]["headline"])
    assert stats["values"] == [run[test_mse]]
    report = (folder / "report.md").read_text()
    assert "(log axis: the values span decades)" in report and f"| {stats['mean']:.6f} |" in report
    for figure in ("sweep_mnist_plain.png", "sweep_frey.png"):
        assert f"(figures/{figure})" in report and (folder / "figures" / figure).stat().st_size > 10_000


def test_a_sweep_on_a_loopback_dask_cluster_survives_a_worker_killed_mid_run(offline, capsys):
    distributed = pytest.importorskip("distributed", reason="the cluster extra: pip install -e '.[cluster]'")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    checkpoints, killed = offline / "checkpoints", {}

    def kill_a_worker_with_a_running_task():
        """Kill the process of a worker whose run has started (its folder exists) and is still running."""
        with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
            deadline = time.monotonic() + 120
            while not killed and time.monotonic() < deadline:
                started = {path.parent.name for path in checkpoints.glob("*/metrics.json")}
                for worker, keys in client.processing().items():
                    running = [
                        key for key in keys if any(key.startswith(f"minidl-run-{name[:-13]}-") for name in started)
                    ]
                    if running:
                        killed.update(key=running[0], pid=client.run(os.getpid, workers=[worker])[worker])
                        os.kill(killed["pid"], 9)
                        break
                time.sleep(0.05)

    try:
        killer = threading.Thread(target=kill_a_worker_with_a_running_task, daemon=True)
        killer.start()
        out = offline / "sweep"
        assert (
            pipeline.main(
                [
                    "frey",
                    "--preset",
                    "smoke",
                    "--grid",
                    "vae_epochs=1,2",
                    "--scheduler",
                    cluster.scheduler_address,
                    "--checkpoint-dir",
                    str(checkpoints),
                    "--out",
                    str(out),
                    "--no-progress",
                ]
            )
            == 0
        )
        killer.join(timeout=5)
    finally:
        cluster.close()
    assert killed, "no worker was killed: the runs ended before one was seen running"
    metrics = read(out, "collection.json")
    assert sorted(metrics["runs"]) == ["vae_epochs=1,seed=0", "vae_epochs=2,seed=0"]  # each run once
    [lost] = [key for key in metrics["runs"] if killed["key"].startswith(f"minidl-run-{key}-")]
    assert metrics["runs"][lost]["where"]["pid"] != killed["pid"]  # it ran again, in another process
    elbo = Headline("frey", "gaussian", "test_elbo")
    assert all(headline.from_records(entry["stats"])[elbo]["n"] == 1 for entry in metrics["aggregate"].values())
    for key, entry in metrics["runs"].items():
        run = read(out / key)  # the client wrote each run's files, whole
        assert run["frey"]["bernoulli"]["provenance"]["digest"] == entry["fingerprints"]["frey/bernoulli"]
        assert (out / key / "report.md").exists() and not (out / key / "checkpoints").exists()
        assert Path(entry["where"]["checkpoints"], "vae_gaussian.npz").exists()
    assert "vae_epochs=2" in (out / "report.md").read_text()


def test_a_duplicate_result_is_recorded_once_and_must_agree(offline):
    spec = collection.plan(SMOKE, {}, [0], ["frey"])[0]
    folder = offline / "c"
    described = collection.description(SMOKE, {}, [0], ["frey"], None)
    records = collection.Collection(folder, described, [spec], log=lambda message: None)
    frey_result = {
        "test": {"elbo": -1.0, "reconstruction": 1.0, "kl": 0.0},
        "active_dimensions": [],
        "provenance": {"digest": "a" * 64, "data": {"source": "Frey Face", "stand_in": False}},
    }
    metrics = {
        "run": {"settings": json.loads(json.dumps(spec.preset.__dict__))},
        "frey": {"bernoulli": frey_result, "gaussian": frey_result},
    }
    assert records.record(spec, metrics) is True
    before = (folder / "collection.json").read_bytes()
    assert records.record(spec, metrics) is False and (folder / "collection.json").read_bytes() == before
    other = json.loads(json.dumps(metrics))
    other["frey"]["gaussian"]["provenance"]["digest"] = "b" * 64
    with pytest.raises(collection.CollectionError, match="two results were made from different data or models"):
        records.record(spec, other)
