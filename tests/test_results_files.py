"""The files of a results folder as other programs meet them: metrics.json readable by the group like report.md,
and strict RFC 8259 JSON that the schema in experiments/schemas describes."""

import json
import os
import stat
from pathlib import Path

import pytest

from experiments import pipeline, run_folder


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
    assert run_folder.new_file_mode() == 0o666 & ~umask


def test_a_run_writes_metrics_json_with_the_mode_of_its_report(offline, umask):
    assert pipeline.main(["frey", "--preset", "smoke", "--set", "vae_epochs=1", "--out", "w", "--no-progress"]) == 0
    assert mode("w/metrics.json") == mode("w/report.md") == 0o666 & ~umask
