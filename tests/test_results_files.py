"""The files of a results folder as other programs meet them: metrics.json readable by the group like report.md,
and strict RFC 8259 JSON that the schema in experiments/schemas describes."""

import json
import math
import os
import stat
from pathlib import Path

import pytest

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

SCHEMA = Path(run_folder.__file__).parent / "schemas" / "metrics.schema.json"


def strict(text: str):
    """RFC 8259 JSON only: the NaN and Infinity literals Python accepts by default are refused."""

    def refuse(literal):
        raise ValueError(f"{literal} is not JSON")

    return json.loads(text, parse_constant=refuse)


def validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = strict(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_non_finite_numbers_are_written_as_strings_and_read_back_as_floats(tmp_path):
    metrics = {"format": 1, "runs": {}, "values": [math.inf, -math.inf, 1.5], "mean": math.nan, "name": "x"}
    run_folder.write_metrics(tmp_path, metrics)
    stored = strict((tmp_path / "metrics.json").read_text())
    assert stored["values"] == ["Infinity", "-Infinity", 1.5] and stored["mean"] == "NaN"
    back = run_folder.read_metrics(tmp_path)
    assert back["values"] == [math.inf, -math.inf, 1.5] and math.isnan(back["mean"]) and back["name"] == "x"


def test_the_schema_refuses_another_spelling_of_infinity():
    check = validator()
    spread = {
        "mean": "Infinity",
        "std": None,
        "n": 2,
        "min": "Infinity",
        "max": "Infinity",
        "values": ["Infinity", "Infinity"],
    }
    document = {
        "format": 1,
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
        "runs": {},
        "aggregate": {"all": {"point": {}, "seeds": [0, 1], "runs": [], "stats": {"x": spread}}},
    }
    check.validate(document)
    spread["values"][0] = "inf"
    assert not check.is_valid(document)


def test_every_metrics_json_of_a_collection_is_strict_json_that_the_schema_describes(offline):
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
    assert len(files) == 3  # the collection's and one per seed
    check = validator()
    for path in files:
        check.validate(strict(path.read_text()))
    run = strict((folder / "seed=0" / "metrics.json").read_text())
    assert run["mnist"]["plain"]["interpolation"]["blend_consistency"]["psnr"][0] == "Infinity"
    assert (
        run_folder.read_metrics(folder / "seed=0")["mnist"]["plain"]["interpolation"]["blend_consistency"]["psnr"][0]
        == math.inf
    )
    aggregate = strict((folder / "metrics.json").read_text())["aggregate"]["all"]["stats"]
    assert aggregate["mnist.plain.blend_psnr@0"]["mean"] == "Infinity"
    assert "∞" in (folder / "report.md").read_text()


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_a_run_folder_written_whole_gets_the_mode_the_umask_gives_new_folders(tmp_path, umask):
    before = os.umask(umask)
    try:
        folder = cluster.write_run_files(tmp_path / "runs" / "seed=0", {"metrics.json": b"{}"})
    finally:
        os.umask(before)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask
