"""Whole training runs against PyTorch (float64): every model follows its PyTorch twin step by step.

Each model is trained with minidl's Adam and, from the same initial weights, its PyTorch twin
(:mod:`autoencoders.torch_twin`) with ``torch.optim.Adam``, on the same batches and the same noise (the
VAE's eps, Hutchinson's probes). After every one of 25 steps, each loss term and each parameter must agree
to 1e-9 relative; they agree to about 1e-13. The MNIST batches have blank borders, which put a
freshly initialised network's pre-activations at exactly 0, the kink of ReLU: a path that rounded them to
+-1e-17 would take ReLU's derivative from the sign of a rounding error and miss by 100% after one step
(docs/winograd.md, "The kink at zero").

Skipped when PyTorch is not installed; it is never a requirement of the project.
"""

import numpy as np
import pytest

from autoencoders import (
    Autoencoder,
    ContractiveAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
    conv_decoder,
    conv_encoder,
)
from autoencoders.torch_twin import follow
from experiments import datasets

torch = pytest.importorskip("torch")

STEPS, BATCH, TOLERANCE = 25, 8, 1e-9


def _mnist(n: int) -> np.ndarray:
    """The first n training images of MNIST (float64), or of the offline stand-in (whose digits also sit
    on a blank background) when MNIST is not on this machine."""
    try:
        images = datasets.load_mnist(fetch=False, log=lambda line: None)[0]
    except Exception:  # no data here: the stand-in bundled with scikit-learn
        images = datasets.load_digits_28()[0]
    return images[:n].astype(np.float64)


def _frey(n: int) -> np.ndarray:
    try:
        images = datasets.load_frey_faces(fetch=False, log=lambda line: None)
    except Exception:  # the VAE has no convolution: any images in [0, 1] exercise it
        images = np.random.default_rng(0).random((n, 1, 28, 20))
    return images[:n].astype(np.float64)


def _small_exact_model():
    """The exact-Jacobian penalty takes one tangent pass per pixel: a small network on 8x8 images
    (MNIST's, subsampled)."""
    rng = np.random.default_rng(0)
    return ContractiveAutoencoder(
        encoder=conv_encoder(16, (1, 8, 8), filters=(8, 16, 32), latent="linear", rng=rng),
        decoder=conv_decoder(16, (1, 8, 8), filters=(32, 16, 8), rng=rng),
        mode="exact",
    )


MODELS = {
    "plain": (lambda: Autoencoder(rng=0), "mnist"),
    "sparse": (lambda: SparseAutoencoder(rng=0), "mnist"),
    "contractive_closed_form": (lambda: ContractiveAutoencoder(rng=0), "mnist"),
    "contractive_hutchinson": (lambda: ContractiveAutoencoder(rng=0, latent="linear", mode="hutchinson"), "mnist"),
    "vae_bernoulli": (lambda: VariationalAutoencoder(rng=0), "frey"),
    "vae_gaussian": (lambda: VariationalAutoencoder(rng=0, likelihood="gaussian"), "frey"),
}


def _batches(kind: str, steps: int = STEPS) -> list[np.ndarray]:
    n = steps * BATCH
    images = {"mnist": _mnist, "frey": _frey}[kind](n)
    return [images[start : start + BATCH] for start in range(0, n, BATCH)]


@pytest.mark.parametrize("name", list(MODELS))
def test_a_float64_model_follows_its_pytorch_twin_for_25_adam_steps(name):
    build, data = MODELS[name]
    model = build().astype(np.float64)
    records = follow(model, _batches(data), seed=3)
    assert len(records) == STEPS
    for step, record in enumerate(records, start=1):
        assert set(record["minidl"]) == set(record["torch"])
        worst_term = max(record["terms"], key=record["terms"].get)
        assert record["terms"][worst_term] <= TOLERANCE, (
            f"step {step}: {worst_term} = {record['minidl'][worst_term]!r} here, "
            f"{record['torch'][worst_term]!r} in PyTorch"
        )
        worst = max(record["params"], key=record["params"].get)
        assert record["params"][worst] <= TOLERANCE, (
            f"step {step}: parameter {worst} differs from PyTorch's by {record['params'][worst]:.2e} of its scale"
        )


def test_the_exact_jacobian_penalty_and_its_step_match_pytorch():
    """The exact mode, on a small network, for a few steps.

    Over more steps this pair parts at a tie: two max-pool candidates equal in exact arithmetic (windows
    holding the same pixel at the same offset) that PyTorch rounds one ulp apart, so that its pool picks the
    other one; the Jacobian then runs through another window (docs/winograd.md, "The kink at zero").
    """
    model = _small_exact_model().astype(np.float64)
    images = _mnist(5 * BATCH)[:, :, 2:26:3, 2:26:3]  # every third pixel: 8x8 images, blank borders kept
    records = follow(model, [images[start : start + BATCH] for start in range(0, len(images), BATCH)], seed=3)
    assert max(max(record["terms"].values()) for record in records) <= TOLERANCE
    assert max(record["worst_parameter"] for record in records) <= TOLERANCE
