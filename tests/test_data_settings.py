"""Settings that depend on the data are checked once it is loaded, before anything trains: one line naming the
setting, its value and the range this data allows, exit code 2, nothing written."""

import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments import job, metrics, pipeline, report
from experiments.presets import resolve_preset


def refused(capsys, *args) -> str:
    started = time.perf_counter()
    code = pipeline.main([*args, "--preset", "smoke", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert time.perf_counter() - started < 10 and not Path("runs").exists()  # refused before training
    return err


# the offline stand-in: 1,437 training and 360 test digits, 1,797 "faces"
@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["frey", "--set", "test_fraction=0.0001"],
            "test_fraction=0.0001: holds out 0 of the 1,797 faces and trains on "
            "1,797; the evaluation needs 2 held out and 1 to train on at least: "
            "expected 0.00112 <= test_fraction <= 0.99944.",
        ),
        (["frey", "--set", "test_fraction=0.9999"], "holds out 1,797 of the 1,797 faces and trains on 0"),
        (
            ["mnist", "--set", "n_pairs=1000"],
            "n_pairs=1000: the 128 test images (n_test=128) give at most 63 pairs of "
            "different digits with seed 0; expected 1 <= n_pairs <= 63.",
        ),
        (
            ["mnist", "--set", "n_test=1", "--set", "tsne_points=none"],
            "n_test=1: t-SNE of the test codes needs 2 points at least (tsne_points=none); expected n_test >= 2.",
        ),
        (
            ["mnist", "--set", "n_train=100000"],
            "n_train=100000: the offline stand-in has 1,437 training images; "
            "expected 1 <= n_train <= 1437, or none (all).",
        ),
        (["mnist", "--set", "n_test=400"], "n_test=400: the offline stand-in has 360 test images"),
        (
            ["mnist", "--set", "tsne_points=500"],
            "tsne_points=500: the test set has 128 images (n_test=128); expected "
            "2 <= tsne_points <= 128, or none (the whole test set).",
        ),
        (
            ["mnist", "--set", "tsne_points=40"],
            "tsne_perplexity=30: t-SNE of 40 points takes a perplexity of at most (points - 1) / 3 = 13; lower it",
        ),
        (
            ["mnist", "--set", "n_train=1"],
            "n_train=1: the linear probe on the codes needs training images of two digits "
            "at least, and the first 1 of the offline stand-in are all",
        ),
        (["run", "--set", "n_pairs=64"], "n_pairs=64"),  # the whole job: refused before MNIST trains
    ],
)
def test_a_setting_the_data_cannot_honour_is_refused_before_training(offline, capsys, args, message):
    assert message in refused(capsys, *args)


def test_the_settings_at_the_edge_of_the_data_are_accepted(offline):
    log = []
    for overrides in (["test_fraction=0.00112"], ["test_fraction=0.99944"]):
        prepared = job.prepare("frey", resolve_preset("smoke", overrides), None, log.append)
        assert len(prepared["data"]["x_test"]) >= 2 and len(prepared["data"]["x_train"]) >= 1
    for overrides in (["n_pairs=63"], ["n_train=1437", "n_test=360", "tsne_points=none"], ["tsne_points=91"]):
        preset = resolve_preset("smoke", overrides)
        prepared = job.prepare("mnist", preset, None, log.append)
        assert (
            len(metrics.interpolation_pairs(prepared["data"]["y_test"], preset.n_pairs, np.random.default_rng(0)))
            == preset.n_pairs
        )
    assert not [line for line in log if line.startswith("note:")]


def test_a_presets_own_sizes_take_all_of_the_smaller_stand_in_and_say_so(offline):
    log = []
    prepared = job.prepare("mnist", resolve_preset("quick"), None, log.append)  # n_train=10,000, n_test=2,000
    assert len(prepared["data"]["x_train"]) == 1437 and len(prepared["data"]["x_test"]) == 360
    notes = [line for line in log if line.startswith("note:")]
    assert notes == [
        "note: the quick preset's n_train=10000 is more than the 1,437 training images of the offline "
        "stand-in: all 1,437 are used.",
        "note: the quick preset's n_test=2000 is more than the 360 test images of the offline stand-in: "
        "all 360 are used.",
    ]


@pytest.mark.skipif(not os.environ.get("MINIDL_DATA"), reason="needs the real MNIST ($MINIDL_DATA)")
def test_on_mnist_a_subset_larger_than_mnist_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = refused(capsys, "mnist", "--set", "n_train=100000")
    assert "n_train=100000: MNIST has 60,000 training images; expected 1 <= n_train <= 60000, or none (all)." in err


def greedy_pairs(labels, n_pairs, rng):
    """The plain walk that :func:`metrics.interpolation_pairs` does in O(labels) per pair."""
    pairs, order, used = [], rng.permutation(len(labels)), set()
    for i in order:
        if len(pairs) == n_pairs:
            break
        if i in used:
            continue
        partner = next((j for j in order if j not in used and j != i and labels[j] != labels[i]), None)
        if partner is None:
            break
        pairs.append((int(i), int(partner)))
        used.update((i, partner))
    return pairs


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 4), max_size=40), st.integers(0, 25), st.integers(0, 2**32 - 1))
def test_the_pairs_are_those_of_the_plain_walk(labels, n_pairs, seed):
    labels = np.array(labels, dtype=int)
    expected = greedy_pairs(labels, n_pairs, np.random.default_rng(seed))
    assert metrics.most_interpolation_pairs(labels, np.random.default_rng(seed)) == len(
        greedy_pairs(labels, len(labels), np.random.default_rng(seed))
    )
    if len(expected) < n_pairs:
        with pytest.raises(ValueError, match=f"Could only form {len(expected)} pairs"):
            metrics.interpolation_pairs(labels, n_pairs, np.random.default_rng(seed))
    else:
        found = metrics.interpolation_pairs(labels, n_pairs, np.random.default_rng(seed))
        assert [tuple(map(int, pair)) for pair in found] == expected


def test_the_report_gives_the_subset_sizes_the_models_were_made_from():
    data = {"x_train": {"shape": [1000, 1, 28, 28]}, "x_test": {"shape": [500, 1, 28, 28]}}
    results = {"mnist": {"plain": {"provenance": {"data": data}}}}
    assert report._sizes_used(results) == {"n_train": 1000, "n_test": 500}
    assert report._sizes_used({"frey": {}}) == {}
