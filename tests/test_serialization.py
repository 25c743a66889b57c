"""Saving and loading a model's parameters: round trip, no pickle, mismatches rejected untouched."""

import numpy as np
import pytest

from minidl.layers import Conv2D, Dense, Flatten, ReLU, Sequential


def model(seed, hidden=4):
    rng = np.random.default_rng(seed)
    return Sequential(Conv2D(1, 2, rng=rng), ReLU(), Flatten(), Dense(2 * 5 * 5, hidden, rng=rng))


def test_save_load_round_trip(tmp_path):
    source, target = model(0), model(1)
    source.save(tmp_path / "weights.npz")
    target.load(tmp_path / "weights.npz")
    for (name, a, _), (_, b, _) in zip(source.parameters(), target.parameters()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    x = np.random.default_rng(2).random((3, 1, 5, 5), dtype=np.float32)
    np.testing.assert_array_equal(source.forward(x), target.forward(x))
    assert not list(tmp_path.glob("*.tmp"))


def test_load_keeps_the_arrays_the_optimizer_holds(tmp_path):
    source, target = model(0), model(1)
    held = target.params["dense_1.W"]
    source.save(tmp_path / "w.npz")
    target.load(tmp_path / "w.npz")
    assert target.params["dense_1.W"] is held
    assert target.layers[3].params["W"] is held


def test_mismatched_shapes_are_rejected_and_nothing_changes(tmp_path):
    model(0, hidden=5).save(tmp_path / "other.npz")
    target = model(1)
    before = {k: v.copy() for k, v in target.params.items()}
    with pytest.raises(ValueError, match=r"dense_1.W: model \(50, 4\), file \(50, 5\)"):
        target.load(tmp_path / "other.npz")
    for key, value in before.items():
        np.testing.assert_array_equal(target.params[key], value)


def test_mismatched_names_are_rejected(tmp_path):
    Sequential(Dense(3, 3)).save(tmp_path / "dense.npz")
    with pytest.raises(ValueError, match="missing.*conv2d_1.W"):
        model(0).load(tmp_path / "dense.npz")


def test_files_needing_pickle_are_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, **{"conv2d_1.W": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match="pickle"):
        model(0).load(path)
