"""The files of a results folder as other programs meet them: metrics.json readable by the group like report.md,
and metrics.json, collection.json and the checkpoints' metadata strict RFC 8259 JSON that the schemas in
experiments/schemas and autoencoders/schemas describe."""

import math
import os
import stat
from pathlib import Path

import pytest
from file_schemas import check_checkpoint, check_json, strict, validator

from experiments import cluster, pipeline, run_folder


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(Path(path).stat().st_mode)


def test_metrics_json_gets_the_mode_of_any_new_file(tmp_path, umask):
    run_folder.write_metrics(tmp_path, {"format": 3})
    (tmp_path / "plain.txt").write_text("")
    assert mode(tmp_path / "metrics.json") == 0o666 & ~umask == mode(tmp_path / "plain.txt")


def test_a_run_writes_metrics_json_with_the_mode_of_its_report(offline, umask):
    assert pipeline.main(["frey", "--preset", "smoke", "--set", "vae_epochs=1", "--out", "w", "--no-progress"]) == 0
    assert mode("w/metrics.json") == mode("w/report.md") == 0o666 & ~umask


# -- strict JSON, as the schema describes it -------------------------------------------------------------


def test_non_finite_numbers_are_written_as_strings_and_read_back_as_floats(tmp_path):
    metrics = {"format": 1, "runs": {}, "values": [math.inf, -math.inf, 1.5], "mean": math.nan, "name": "x"}
    run_folder.write_metrics(tmp_path, metrics)
    stored = strict((tmp_path / "metrics.json").read_text())
    assert stored["values"] == ["Infinity", "-Infinity", 1.5] and stored["mean"] == "NaN"
    back = run_folder.read_metrics(tmp_path)
    assert back["values"] == [math.inf, -math.inf, 1.5] and math.isnan(back["mean"]) and back["name"] == "x"


def a_collection(spread: dict, value) -> dict:
    psnr = {"part": "mnist", "model": "sparse", "metric": "blend_psnr", "alpha": 0.0}
    return {
        "format": 2,
        "collection": {
            "kind": "seeds",
            "preset": "smoke",
            "overrides": {},
            "settings": {},
            "grid": {},
            "seeds": [0, 1],
            "parts": ["mnist"],
            "models": None,
        },
        "runs": {
            "seed=0": {
                "point": {},
                "seed": 0,
                "digest": "0" * 64,
                "data": {"mnist/sparse": {"source": "MNIST", "stand_in": False}},
                "fingerprints": {"mnist/sparse": "1" * 64},
                "headline": [{**psnr, "value": value}],
                "where": {},
            }
        },
        "aggregate": {"all": {"point": {}, "seeds": [0], "runs": ["seed=0"], "stats": [{**psnr, **spread}]}},
    }


SPREAD = {"mean": "Infinity", "std": None, "n": 1, "min": "Infinity", "max": "Infinity", "values": ["Infinity"]}


def test_the_schema_refuses_another_spelling_of_infinity():
    check = validator("collection")
    check.validate(a_collection(SPREAD, "Infinity"))
    assert not check.is_valid(a_collection({**SPREAD, "values": ["inf"]}, "Infinity"))
    assert not check.is_valid(a_collection(SPREAD, "inf"))


def _headline(record: dict, **changes) -> dict:
    document = a_collection(SPREAD, 1.0)
    document["runs"]["seed=0"]["headline"][0] = {**record, **changes}
    return document


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: {k: v for k, v in d.items() if k != "collection"},
        lambda d: {**d, "format": 1},
        lambda d: {**d, "metrics": {}},
        lambda d: {**d, "runs": {"seed=0": {k: v for k, v in d["runs"]["seed=0"].items() if k != "fingerprints"}}},
        lambda d: {**d, "runs": {"seed=0": {**d["runs"]["seed=0"], "seed": "0"}}},
        lambda d: {**d, "runs": {"seed=0": {**d["runs"]["seed=0"], "headline": {"mnist.sparse.blend_psnr@0": 1.0}}}},
        lambda d: _headline(d["runs"]["seed=0"]["headline"][0], alpha=None),  # an interpolation metric needs alpha
        lambda d: _headline(d["runs"]["seed=0"]["headline"][0], metric="test_mse"),  # has none
        lambda d: _headline(d["runs"]["seed=0"]["headline"][0], part="frey"),
        lambda d: _headline(d["runs"]["seed=0"]["headline"][0], value="1.0"),
        lambda d: _headline({k: v for k, v in d["runs"]["seed=0"]["headline"][0].items() if k != "model"}),
        lambda d: _headline(d["runs"]["seed=0"]["headline"][0], name="mnist.sparse.blend_psnr@0"),
        lambda d: {**d, "aggregate": {"all": {**d["aggregate"]["all"], "stats": [{**SPREAD, "n": 1}]}}},
    ],
    ids=[
        "no description",
        "format 1",
        "unknown key",
        "run without fingerprints",
        "seed a string",
        "headline by name",
        "psnr without alpha",
        "test_mse with alpha",
        "a Frey metric of MNIST",
        "value a string",
        "no model",
        "an extra field",
        "spread without its headline",
    ],
)
def test_the_collection_schema_refuses_a_damaged_file(damage):
    check = validator("collection")
    document = a_collection(SPREAD, 1.0)
    check.validate(document)
    assert not check.is_valid(damage(document))


def test_every_file_of_a_collection_is_strict_json_that_its_schema_describes(offline):
    assert (
        pipeline.main(
            [
                "run",
                "--preset",
                "smoke",
                "--models",
                "plain",
                "--set",
                "vae_epochs=1",
                "--seeds",
                "0,1",
                "--workers",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    folder = Path("runs/smoke-vae_epochs=1-seeds=0,1-stand-in")
    files = sorted(folder.rglob("metrics.json"))
    assert [path.parent.name for path in files] == ["seed=0", "seed=1"]  # the collection's has its own name
    for path in files:
        check_json(path, "metrics")
    stored = check_json(folder / "collection.json", "collection")
    checkpoints = sorted(folder.rglob("*.npz"))
    assert len(checkpoints) == 6  # plain and both VAEs, per seed
    for path in checkpoints:
        assert (
            check_checkpoint(path)["fingerprint"]["digest"]
            in stored["runs"][path.parents[1].name]["fingerprints"].values()
        )
    run = strict((folder / "seed=0" / "metrics.json").read_text())
    assert run["mnist"]["plain"]["interpolation"]["blend_consistency"]["psnr"][0] == "Infinity"
    assert (
        run_folder.read_metrics(folder / "seed=0")["mnist"]["plain"]["interpolation"]["blend_consistency"]["psnr"][0]
        == math.inf
    )
    [blend] = [
        record
        for record in stored["aggregate"]["all"]["stats"]
        if (record["model"], record["metric"], record["alpha"]) == ("plain", "blend_psnr", 0)
    ]
    assert blend["mean"] == "Infinity" and blend["values"] == ["Infinity", "Infinity"]
    assert "∞" in (folder / "report.md").read_text()


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_a_run_folder_written_whole_gets_the_mode_the_umask_gives_new_folders(tmp_path, umask):
    before = os.umask(umask)
    try:
        folder = cluster.write_run_files(tmp_path / "runs" / "seed=0", {"metrics.json": b"{}"})
    finally:
        os.umask(before)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask
