"""Layers with one planted backward bug each, and the input each is checked at, built from a seed.

Each bug is one a real backward pass could have, and each is sized so that some earlier version of the
gradient check missed it for some seeds: a wrong entry hidden among entries 1e6 times larger, an epsilon
in the wrong place that changes the gradient by a few parts per million, a scale error of 1e-5. The kit
must fail every one of them, in full and in fast mode, for any seed; tests/test_testing.py holds it to
that.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from minidl.layers import Conv2D, Dense, Layer, Tanh


def with_random_biases(layer: Layer, rng: np.random.Generator) -> Layer:
    """Zero biases hide a missing bias gradient; random ones do not."""
    if "b" in layer.params:
        layer.params["b"][...] = rng.standard_normal(layer.params["b"].shape)
    return layer


class MatMul(Layer):
    """y = x @ W, the layer of the wrong-first-weight bug (no bias, so dW is all there is)."""

    def __init__(self, in_features: int, out_features: int, rng) -> None:
        super().__init__()
        self._add_param("W", np.random.default_rng(rng).standard_normal((in_features, out_features)))

    def forward(self, x, training=True):
        y = x @ self.params["W"]
        self._store(training, x, y, x=x)
        return y

    def backward(self, dy):
        self.grads["W"] += self._cached(dy)["x"].T @ dy
        return dy @ self.params["W"].T


class FirstWeightWrong(MatMul):
    """dW[0, 0] 52% too large."""

    def backward(self, dy):
        before = self.grads["W"][0, 0]
        dx = super().backward(dy)
        self.grads["W"][0, 0] += 0.52 * (self.grads["W"][0, 0] - before)
        return dx


def first_weight_wrong(rng: np.random.Generator) -> tuple[Layer, np.ndarray]:
    """Input feature 0 is 1e-3 where the others are 1e3: dW[0, :] is 1e6 times smaller than the rest of dW,
    so 52% of dW[0, 0] moves the norm of dW by about 1e-7, and dW[0, 0] stays some 100 times above the
    rounding floor of its central difference (at 1e-4 an unlucky seed brings it down to the floor)."""
    x = rng.standard_normal((4, 3)) * np.array([1e-3, 1e3, 1e3])
    return FirstWeightWrong(3, 2, rng), x


class RMSNorm(Layer):
    """y = x / sqrt(mean(x^2) + eps) over the last axis.

    Notes
    -----
    With s = sqrt(m + eps), m = mean(x^2):  dx = dy / s - x * sum(dy * x) / (n s^3).
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def scale(self, mean_square: np.ndarray) -> np.ndarray:
        return np.sqrt(mean_square + self.eps)

    def forward(self, x, training=True):
        y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps)
        self._store(training, x, y, x=x)
        return y

    def backward(self, dy):
        x = self._cached(dy)["x"]
        s = self.scale(np.mean(x * x, axis=-1, keepdims=True))
        return dy / s - x * np.sum(dy * x, axis=-1, keepdims=True) / (x.shape[-1] * s**3)


class EpsilonOutsideSqrt(RMSNorm):
    """The backward pass uses sqrt(m) + eps where the forward pass has sqrt(m + eps)."""

    def scale(self, mean_square):
        return np.sqrt(mean_square) + self.eps


def epsilon_outside_sqrt(rng: np.random.Generator) -> tuple[Layer, np.ndarray]:
    """Activations of size 20, where the misplaced eps = 1e-5 changes dx by a few parts per million."""
    return EpsilonOutsideSqrt(), 20.0 * rng.standard_normal((3, 5))


class TransposedWeight(Dense):
    """dx = dy @ W instead of dy @ W.T (a square layer, so the shapes still fit)."""

    def backward(self, dy):
        super().backward(dy)
        return dy @ self.params["W"]


def transposed_weight(rng):
    return with_random_biases(TransposedWeight(4, 4, rng=rng, dtype=np.float64), rng), rng.standard_normal((3, 4))


class MissingBiasGradient(Dense):
    """grads["b"] is never added to."""

    def backward(self, dy):
        bias = self.grads["b"].copy()
        dx = super().backward(dy)
        self.grads["b"][...] = bias
        return dx


def missing_bias_gradient(rng):
    return with_random_biases(MissingBiasGradient(3, 2, rng=rng, dtype=np.float64), rng), rng.standard_normal((4, 3))


class TanhSignFlip(Tanh):
    """dy (1 + y^2) instead of dy (1 - y^2)."""

    def backward(self, dy):
        y = self._cached(dy)["y"]
        return dy * (1 + y * y)


def tanh_sign_flip(rng):
    return TanhSignFlip(), rng.standard_normal((2, 5))


class SlightlyScaledInputGradient(Dense):
    """dx 1e-5 too large, as a constant folded in wrongly would make it."""

    def backward(self, dy):
        return (1 + 1e-5) * super().backward(dy)


def scaled_input_gradient(rng):
    return (
        with_random_biases(SlightlyScaledInputGradient(3, 2, rng=rng, dtype=np.float64), rng),
        rng.standard_normal((4, 3)),
    )


class LastSampleSignFlipped(Dense):
    """The last sample's dx has the wrong sign."""

    def backward(self, dy):
        dx = super().backward(dy)
        dx[-1] *= -1.0
        return dx


def last_sample_sign_flipped(rng):
    return with_random_biases(LastSampleSignFlipped(3, 2, rng=rng, dtype=np.float64), rng), rng.standard_normal((4, 3))


class FlippedKernelGradient(Conv2D):
    """dW rotated by 180 degrees: the convolution-versus-correlation mix-up."""

    def backward(self, dy):
        before = self.grads["W"].copy()
        dx = super().backward(dy)
        self.grads["W"][...] = before + (self.grads["W"] - before)[:, :, ::-1, ::-1]
        return dx


def flipped_kernel_gradient(rng):
    layer = with_random_biases(FlippedKernelGradient(2, 2, 3, padding="same", rng=rng, dtype=np.float64), rng)
    return layer, rng.standard_normal((2, 2, 5, 5))


# name -> (build(rng) -> (layer, x), the backward arrays the bug is in)
PLANTED: dict[str, tuple[Callable[[np.random.Generator], tuple[Layer, np.ndarray]], set[str]]] = {
    "dW[0, 0] 52% wrong among entries 1e6 larger": (first_weight_wrong, {"W"}),
    "eps outside the sqrt of a normalisation": (epsilon_outside_sqrt, {"x"}),
    "transposed weight in dx": (transposed_weight, {"x"}),
    "missing bias gradient": (missing_bias_gradient, {"b"}),
    "sign flip in tanh's derivative": (tanh_sign_flip, {"x"}),
    "dx scaled by 1 + 1e-5": (scaled_input_gradient, {"x"}),
    "last sample's dx sign-flipped": (last_sample_sign_flipped, {"x"}),
    "convolution kernel gradient rotated 180 degrees": (flipped_kernel_gradient, {"W"}),
}
