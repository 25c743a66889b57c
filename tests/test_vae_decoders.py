"""The Frey Face part with both decoders: how much of the latent each uses, traversals, the claims judged from the
numbers, and each decoder's own checkpoint and fingerprint."""

import copy
from pathlib import Path

import numpy as np
import pytest

from autoencoders.trainer import Trainer, TrainingConfig
from experiments import frey, job, provenance, report
from experiments.presets import PRESETS

SMOKE = PRESETS["smoke"]


def faces(n=40, seed=0):
    return np.random.default_rng(seed).random((n, 1, 28, 20), dtype=np.float32)


@pytest.mark.parametrize("likelihood", frey.LIKELIHOODS)
def test_the_kl_of_the_dimensions_adds_up_to_the_kl_term(likelihood):
    model = frey.build_model(SMOKE, likelihood=likelihood)
    trainer = Trainer(model, TrainingConfig(epochs=1, batch_size=16, seed=0), progress=False)
    x = faces()
    trainer.fit(x)
    per_dimension = frey.kl_per_dimension(model, x)
    assert per_dimension.shape == (SMOKE.vae_latent_dim,) and np.all(per_dimension >= 0)
    np.testing.assert_allclose(per_dimension.sum(), trainer.evaluate(x)["kl"], rtol=1e-5)


def test_a_dimension_the_decoder_ignores_does_not_change_the_face():
    model = frey.build_model(SMOKE, likelihood="gaussian")
    model.decoder.layers[0].params["W"][3] = 0.0  # latent dimension 3 no longer reaches the decoder
    codes = model.encode(faces(5))
    assert frey.traversal_change(model, codes, 3, -2.0, 2.0) == 0.0
    assert frey.traversal_change(model, codes, 4, -2.0, 2.0) > 0.0


def test_rms_distances_are_those_of_the_definition():
    a, b = faces(3, 1), faces(4, 2)
    brute = np.array([[np.sqrt(np.mean((a[i].astype(np.float64) - b[j]) ** 2)) for j in range(4)] for i in range(3)])
    np.testing.assert_allclose(frey.rms_distances(a, b), brute, rtol=1e-9)
    assert frey.mean_pairwise(np.stack([a[0], a[0]])) == pytest.approx(0.0, abs=1e-6)


def result(**changes):
    """A decoder's result with numbers that make every claim hold; ``changes`` breaks one."""
    base = {
        "reconstruction_rms": 0.04,
        "mean_face_rms": 0.1,
        "reconstruction_psnr": 28.0,
        "generated": {
            "pairwise_rms": 0.15,
            "held_out_pairwise_rms": 0.16,
            "nearest_training_rms": 0.05,
            "held_out_nearest_training_rms": 0.045,
        },
        "traversal": {"range": [-2.0, 2.0], "dims": [4, 7], "rms_change": [0.1, 0.12]},
        "kl_per_dimension": [1.0] * 20,
    }
    made = copy.deepcopy(base)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        target = made
        for key in parents:
            target = target[key]
        target[leaf] = value
    return made


@pytest.mark.parametrize(
    "changes, claim",
    [
        ({"reconstruction_rms": 0.06}, "reconstruction"),  # 0.6 of the mean face's error
        ({"generated.pairwise_rms": 0.05}, "generation"),  # all alike
        ({"generated.nearest_training_rms": 0.1}, "generation"),  # far from any training face
        ({"traversal.rms_change": [0.02, 0.12]}, "traversal"),  # hardly changes the face
        ({"kl_per_dimension": [1.0] * 4 + [0.05] + [1.0] * 15}, "traversal"),  # the dimension is inactive
    ],
)
def test_each_claim_fails_exactly_when_its_numbers_miss_the_threshold(changes, claim):
    assert all(verdict["holds"] for verdict in frey.claims(result()).values())
    verdicts = frey.claims(result(**changes))
    assert [name for name, verdict in verdicts.items() if not verdict["holds"]] == [claim]
    assert "needs" in verdicts[claim]["because"]


def test_the_report_states_the_verdicts_and_the_variance_from_the_numbers():
    good, poor = result(), result(reconstruction_rms=0.09)
    for item, likelihood in ((good, "gaussian"), (poor, "bernoulli")):
        item.update(
            {
                "n_train": 100,
                "n_test": 10,
                "test_fraction": 0.1,
                "epochs": 2,
                "seconds_per_epoch": 0.1,
                "train": {"elbo": 1.0, "reconstruction": -2.0, "kl": 1.0},
                "test": {"elbo": 1.0, "reconstruction": -2.0, "kl": 1.0},
                "active_dimensions": list(range(20)),
                "grid_dims": [0, 1],
                "likelihood": likelihood,
            }
        )
    good["pixel_logvar"] = {
        "min": -13.0,
        "median": -7.5,
        "max": -0.6,
        "sigma_min": float(np.exp(-6.5)),
        "sigma_median": 0.023,
        "below_grey_level": 0.01,
        "quietest_pixels_median": -9.3,
        "quietest_pixels_data_std": 0.034,
        "correlation_with_log_data_std": 0.79,
    }
    text = "\n".join(report._frey_section({"bernoulli": poor, "gaussian": good}, Path("figures")))
    assert "**does not hold**: held-out faces are reconstructed with an RMS error of 0.0900" in text
    assert "**holds**: held-out faces are reconstructed with an RMS error of 0.0400" in text
    assert "is below one grey level" in text and "1.00% of all pixel variances" in text
    assert "NOT comparable" in text
    good["pixel_logvar"]["sigma_min"] = 0.01
    assert "stays above one grey level" in "\n".join(report._frey_section({"gaussian": good}, Path("figures")))


def test_each_decoder_has_its_own_checkpoint_and_fingerprint():
    x = faces(30)
    prepared = {
        "data": {"x_train": x[:20], "x_test": x[20:]},
        "identity": provenance.data_identity("test", False, x_train=x[:20], x_test=x[20:]),
    }
    found = job.expectations("frey", prepared, job.build("frey", SMOKE, prepared))
    assert [item.checkpoint for item in found] == ["checkpoints/vae_bernoulli.npz", "checkpoints/vae_gaussian.npz"]
    assert [item.entry for item in found] == [("frey", "bernoulli"), ("frey", "gaussian")]
    bernoulli, gaussian = (item.provenance for item in found)
    assert bernoulli["digest"] != gaussian["digest"] and gaussian["kind"] == "vae_gaussian"
    assert bernoulli["settings"] == gaussian["settings"]


def test_the_gaussian_decoders_variance_is_measured_per_pixel():
    model = frey.build_model(SMOKE, likelihood="gaussian")
    stats = frey.pixel_logvar(model, faces(12))
    assert stats["min"] <= stats["median"] <= stats["max"] and 0 <= stats["below_grey_level"] <= 1
    assert -1 <= stats["correlation_with_log_data_std"] <= 1
    assert stats["sigma_min"] == pytest.approx(np.exp(0.5 * stats["min"]))
