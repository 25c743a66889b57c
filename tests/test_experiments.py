"""The main job end to end on the smoke preset, plus the metrics it reports."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from autoencoders.trainer import Trainer
from experiments import datasets, metrics, mnist, pipeline, plots, training

REAL = os.environ.get("MINIDL_DATA")


def test_psnr_and_l2():
    a = np.zeros((2, 1, 2, 2))
    b = np.full((2, 1, 2, 2), 0.1)
    np.testing.assert_allclose(metrics.psnr(a, b), [20.0, 20.0])
    np.testing.assert_allclose(metrics.l2_distance(a, b), [0.2, 0.2])
    assert metrics.psnr(a, a)[0] == np.inf


def test_interpolation_pairs_have_different_labels():
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    pairs = metrics.interpolation_pairs(labels, 3, np.random.default_rng(0))
    assert pairs.shape == (3, 2)
    assert all(labels[a] != labels[b] for a, b in pairs)
    assert len(set(pairs.ravel())) == 6
    with pytest.raises(ValueError, match="Could only form"):
        metrics.interpolation_pairs(np.zeros(5, int), 1, np.random.default_rng(0))


class Identity:
    encode = staticmethod(lambda x: x.reshape(len(x), -1))
    decode = staticmethod(lambda z: z.reshape(len(z), 1, 2, 2))


def test_interpolation_of_a_perfect_autoencoder_matches_the_pixel_blend():
    rng = np.random.default_rng(0)
    x_a, x_b = rng.random((3, 1, 2, 2)), rng.random((3, 1, 2, 2))
    outcome = metrics.interpolate(Identity(), x_a, x_b, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(outcome["l2"], 0.0, atol=1e-12)
    assert outcome["images"].shape == (3, 3, 1, 2, 2)


def test_mosaic_puts_each_image_in_its_cell_with_white_between_and_after_a_short_row():
    rng = np.random.default_rng(0)
    first, second = rng.random((3, 1, 4, 5)), rng.random((2, 4, 5))  # (M, 1, H, W) and (M, H, W)
    tiled = plots.mosaic([first, second], gap=2)
    assert tiled.shape == (2 * 4 + 2, 3 * 5 + 2 * 2)
    for c in range(3):
        np.testing.assert_array_equal(tiled[:4, c * 7 : c * 7 + 5], first[c, 0])
    for c in range(2):
        np.testing.assert_array_equal(tiled[6:, c * 7 : c * 7 + 5], second[c])
    cells = np.zeros(tiled.shape, bool)
    for r, count in ((0, 3), (1, 2)):
        for c in range(count):
            cells[r * 6 : r * 6 + 4, c * 7 : c * 7 + 5] = True
    assert np.all(tiled[~cells] == 1.0)  # the gaps and the missing third cell of the second row


def smoke(out: Path, command="run", *more: str):
    return pipeline.main([command, "--preset", "smoke", "--out", str(out), "--no-progress", *more])


@pytest.mark.skipif(not REAL, reason="needs MINIDL_DATA")
def test_smoke_run_writes_report_metrics_and_figures_and_reuses_training(tmp_path):
    assert smoke(tmp_path) == 0
    report = (tmp_path / "report.md").read_text()
    values = json.loads((tmp_path / "metrics.json").read_text())
    assert "WARNING" not in report
    for kind in ("plain", "sparse", "contractive", "contractive_remedy"):
        result = values["mnist"][kind]
        assert np.isfinite(result["test_mse"]) and 0 <= result["probe_accuracy"] <= 1
        assert all(np.isfinite(result["interpolation"]["psnr"]))
        assert (tmp_path / "figures" / f"tsne_{kind}.png").stat().st_size > 1000
        assert f"figures/tsne_{kind}.png" in report
    assert values["frey"]["bernoulli"]["test"]["elbo"] < 0
    for likelihood in ("bernoulli", "gaussian"):
        for figure in ("generated", "traversal", "grid", "reconstructions", "loss"):
            assert (tmp_path / "figures" / f"frey_{likelihood}_{figure}.png").exists()
    assert (tmp_path / "figures" / "frey_kl_per_dimension.png").exists()
    for part in ("mnist", "frey"):
        figure = f"figures/{part}_gradient_flow.png"
        assert figure in report and (tmp_path / figure).exists()
    flow = values["mnist"]["contractive"]["history"][0]["gradient_flow"]  # kept in metrics.json
    assert flow["activations"]["encoder.sigmoid_1"]["saturated_fraction_trace"]
    assert "0.010388" in report and "96.49" not in report  # the study's values, as fractions
    checkpoint = tmp_path / "checkpoints" / "sparse.npz"
    stamp = checkpoint.stat().st_mtime_ns
    assert smoke(tmp_path, "mnist") == 0  # finished training is reused, not repeated
    assert checkpoint.stat().st_mtime_ns == stamp
    assert smoke(tmp_path, "report") == 0


def test_stand_in_is_used_and_announced_when_data_is_missing(tmp_path, monkeypatch, capsys):
    def unavailable(*args, **kwargs):
        raise datasets.DataUnavailable("not here (test)")

    monkeypatch.delenv("MINIDL_DATA", raising=False)
    monkeypatch.setattr(datasets, "load_mnist", unavailable)
    monkeypatch.setattr(datasets, "load_frey_faces", unavailable)
    assert smoke(tmp_path) == 0
    report = (tmp_path / "report.md").read_text()
    assert report.splitlines()[2].startswith("> **WARNING")
    assert "OFFLINE STAND-IN" in capsys.readouterr().err


def test_each_model_is_built_once_and_the_model_fingerprinted_is_the_one_trained(tmp_path, monkeypatch):
    built, trained, build_model = [], [], mnist.build_model

    def counted_build(*args, **kwargs):
        built.append(build_model(*args, **kwargs))
        return built[-1]

    def watched_trainer(model, *args, **kwargs):
        trained.append(model)
        return Trainer(model, *args, **kwargs)

    def unavailable(*args, **kwargs):
        raise datasets.DataUnavailable("not here (test)")

    monkeypatch.delenv("MINIDL_DATA", raising=False)
    monkeypatch.setattr(datasets, "load_mnist", unavailable)
    monkeypatch.setattr(mnist, "build_model", counted_build)
    monkeypatch.setattr(training, "Trainer", watched_trainer)
    assert smoke(tmp_path, "mnist", "--models", "sparse,plain") == 0
    # every kind once (all are fingerprinted, to check the folder), and the two trained are those built
    kinds = [type(model).__name__ for model in built]
    assert kinds == ["Autoencoder", "SparseAutoencoder", "ContractiveAutoencoder", "ContractiveAutoencoder"]
    assert trained == [built[1], built[0]]


def test_report_without_metrics_fails_clearly(tmp_path, capsys):
    assert smoke(tmp_path, "report") == 1
    assert "No metrics" in capsys.readouterr().err


def test_collapsed_codes_get_no_tsne_instead_of_a_crash():
    codes = np.ones((60, 8), dtype=np.float32)  # every unit saturated: the study's contractive model
    assert metrics.codes_are_degenerate(codes)
    assert metrics.tsne_embedding(codes, 30, 250, 0) is None
    assert not metrics.codes_are_degenerate(np.random.default_rng(0).random((60, 8)))


# -- the definition that reproduces the study's interpolation tables ---------------------------------


class Squares:
    """A nonlinear encoder (pixel squares) and a linear decoder: the blend of codes is not the code of the blend."""

    encode = staticmethod(lambda x: (x * x).reshape(len(x), -1))
    decode = staticmethod(lambda z: z.reshape(len(z), 1, 2, 2))


class Constant(Squares):
    """A decoder that ignores its code, as a collapsed model's does."""

    decode = staticmethod(lambda z: np.full((len(z), 1, 2, 2), 0.5))


def test_blend_consistency_is_infinite_at_the_ends_by_construction_and_finite_between():
    rng = np.random.default_rng(0)
    x_a, x_b = rng.random((3, 1, 2, 2)), rng.random((3, 1, 2, 2))
    outcome = metrics.encoder_blend_consistency(Squares(), x_a, x_b, [0.0, 0.5, 1.0])
    assert outcome["psnr"][0] == outcome["psnr"][2] == np.inf and np.isfinite(outcome["psnr"][1])
    np.testing.assert_array_equal(outcome["latent_l2"][[0, 2]], 0.0)
    # z(0.5) - E(x(0.5)) = ((x_a - x_b) / 2)^2 per pixel
    expected = np.mean(np.sqrt(np.sum(((x_a - x_b) / 2) ** 4, axis=(1, 2, 3))))
    np.testing.assert_allclose(outcome["latent_l2"][1], expected)


def test_blend_consistency_of_a_linear_encoder_is_perfect_and_of_a_collapsed_decoder_infinite_everywhere():
    rng = np.random.default_rng(1)
    x_a, x_b = rng.random((3, 1, 2, 2)), rng.random((3, 1, 2, 2))
    linear = metrics.encoder_blend_consistency(Identity(), x_a, x_b, [0.0, 0.3, 1.0])
    np.testing.assert_allclose(linear["latent_l2"], 0.0, atol=1e-12)
    collapsed = metrics.encoder_blend_consistency(Constant(), x_a, x_b, [0.0, 0.3, 0.6, 1.0])
    assert np.all(collapsed["psnr"] == np.inf)  # the study's contractive table: inf at every alpha ...
    assert np.all(collapsed["latent_l2"][1:3] > 0)  # ... with a non-zero latent distance in between
