"""What the Bernoulli decoder's "nats" mean on continuous pixels (docs/vae.md): the cross-entropy is not a
normalised density, and even a perfect reconstruction pays every gray pixel's entropy."""

import os

import numpy as np
import pytest
from scipy import integrate

from minidl.losses import bce_with_logits


def pixel_entropy(x: np.ndarray) -> np.ndarray:
    """-x log x - (1 - x) log(1 - x), the smallest binary cross-entropy of a pixel x (reached at p = x)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -(np.where(x > 0, x * np.log(x), 0.0) + np.where(x < 1, (1 - x) * np.log1p(-x), 0.0))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_the_bernoulli_likelihood_of_a_gray_pixel_does_not_integrate_to_one(p):
    mass, _ = integrate.quad(lambda x: p**x * (1 - p) ** (1 - x), 0, 1)
    expected = 0.5 if p == 0.5 else (2 * p - 1) / (np.log(p) - np.log(1 - p))
    assert mass == pytest.approx(expected, rel=1e-9)
    assert mass < 1


def test_a_perfect_reconstruction_pays_the_pixel_entropy():
    x = np.array([[0.0, 0.25, 0.5, 1.0]])
    logits = np.log(np.clip(x, 1e-300, None)) - np.log(np.clip(1 - x, 1e-300, None))
    value, _ = bce_with_logits(logits, x, reduction="sum")
    assert value == pytest.approx(pixel_entropy(x).sum(), rel=1e-9)
    assert pixel_entropy(np.array([0.5]))[0] == pytest.approx(np.log(2))


@pytest.mark.skipif(not os.environ.get("MINIDL_DATA"), reason="needs MINIDL_DATA")
def test_the_frey_face_bce_floor_is_337_nats_per_image():
    from experiments.datasets import load_frey_faces

    faces = load_frey_faces(fetch=False).reshape(-1, 560).astype(np.float64)
    assert faces.shape == (1965, 560)
    assert pixel_entropy(faces).sum(axis=1).mean() == pytest.approx(337.06, abs=0.01)
