"""The KL sparsity penalty's push on a unit's pre-activation (docs/kl-sparsity.md): exactly
(1/N) (rho_hat - rho) h (1 - h) / (rho_hat (1 - rho_hat)), so about (rho_hat - rho) / N for a unit equally
active on every sample: not fading as the unit saturates, and 0 only past the clip. Summed over the batch
it is at most |rho_hat - rho| for any unit; one sample of a unevenly active unit can take nearly all of it.
At the clip of the mean activation the gradient is exactly 0, and a target on the boundary is refused."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.layers import Sigmoid
from minidl.losses import kl_sparsity

RHO, EPS = 0.05, 1e-6
CLIP_LOGIT = np.log((1 - EPS) / EPS)  # 13.8155...: a unit saturated on every sample reaches the clip here


def push_on_preactivation(u: np.ndarray, rho: float = RHO) -> tuple[np.ndarray, np.ndarray]:
    layer = Sigmoid()
    h = layer.forward(u)
    return layer.backward(kl_sparsity(h, rho=rho, eps=EPS)[1]), h


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.floats(0.01, 0.5), st.integers(0, 2**32 - 1))
def test_exact_form_through_the_sigmoid(n, k, rho, seed):
    u = np.random.default_rng(seed).normal(0, 4, (n, k))
    du, h = push_on_preactivation(u, rho)
    rho_hat = h.mean(axis=0)
    inside = (rho_hat > EPS) & (rho_hat < 1 - EPS)
    expected = np.where(inside, (rho_hat - rho) * h * (1 - h) / (rho_hat * (1 - rho_hat)) / n, 0.0)
    np.testing.assert_allclose(du, expected, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-9), (np.float32, 1e-5)])
def test_a_uniformly_active_unit_is_pushed_by_rho_hat_minus_rho_over_n_up_to_the_clip(dtype, rtol):
    n = 4
    u = np.linspace(-CLIP_LOGIT + 0.05, CLIP_LOGIT - 0.05, 41).astype(dtype)
    du, h = push_on_preactivation(np.tile(u, (n, 1)))
    expected = (h.mean(axis=0, dtype=np.float64) - RHO) / n
    np.testing.assert_allclose(du, np.tile(expected, (n, 1)), rtol=rtol)
    assert np.all(np.abs(du) <= max(RHO, 1 - RHO) / n)
    # saturation does not weaken it: near the clip the push is within 1e-5 of its limits
    assert du[0, -1] == pytest.approx((1 - RHO) / n, rel=1e-5)
    assert du[0, 0] == pytest.approx(-RHO / n, rel=1e-4)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 50), st.floats(0.01, 0.99), st.integers(0, 2**32 - 1))
def test_the_push_summed_over_the_batch_is_at_most_rho_hat_minus_rho(n, rho, seed):
    rng = np.random.default_rng(seed)
    u = rng.normal(rng.normal(0, 6), rng.uniform(0, 8), (n, 3))
    du, h = push_on_preactivation(u, rho)
    rho_hat = h.mean(axis=0)
    assert np.all(np.abs(du.sum(axis=0)) <= np.abs(rho_hat - rho) * (1 + 1e-12) + 1e-300)


def test_one_sample_of_an_unevenly_active_unit_is_pushed_far_more_than_rho_hat_minus_rho_over_n():
    n = 100
    h = np.array([0.5] + [1 - 1e-4] * (n - 1))[:, None]
    du, _ = push_on_preactivation(np.log(h / (1 - h)))
    rho_hat = h.mean()
    assert du[0, 0] == pytest.approx((rho_hat - RHO) / n * 0.25 / (rho_hat * (1 - rho_hat)), rel=1e-9)
    assert du[0, 0] > 40 * max(RHO, 1 - RHO) / n
    assert abs(du.sum()) <= rho_hat - RHO


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_push_is_exactly_zero_past_the_clip(dtype):
    u = np.array([[CLIP_LOGIT + 0.1, -CLIP_LOGIT - 0.1, 20.0, -20.0]] * 3, dtype)
    du, _ = push_on_preactivation(u)
    np.testing.assert_array_equal(du, 0.0)


def test_kl_sparsity_gradient_is_zero_with_the_mean_exactly_at_either_clip():
    eps = 1e-6
    h = np.array([[eps, 1 - eps, 0.3], [eps, 1 - eps, 0.1]])
    _, grad = kl_sparsity(h, rho=0.05, eps=eps)
    np.testing.assert_array_equal(grad[:, :2], 0.0)
    assert np.all(grad[:, 2] != 0)


@pytest.mark.parametrize("rho", [0.0, 1.0])
def test_kl_sparsity_rejects_a_target_on_the_boundary(rho):
    with pytest.raises(ValueError, match=f"rho={rho}"):
        kl_sparsity(np.full((2, 3), 0.5), rho=rho)


def test_kl_sparsity_clip_at_both_ends():
    """A dead unit (mean below eps) and a saturated unit (above 1 - eps): finite value, zero gradient;
    the clip keeps the penalty finite but does not push such units back."""
    h = np.array([[0.0, 1.0, 0.3], [1e-9, 1.0, 0.1]])
    value, dh = kl_sparsity(h, rho=0.05, eps=1e-6)
    assert np.isfinite(value)
    dead = 0.05 * np.log(0.05 / 1e-6) + 0.95 * np.log(0.95 / (1 - 1e-6))
    full = 0.05 * np.log(0.05 / (1 - 1e-6)) + 0.95 * np.log(0.95 / 1e-6)
    live = 0.05 * np.log(0.05 / 0.2) + 0.95 * np.log(0.95 / 0.8)
    assert value == pytest.approx(dead + full + live, rel=1e-9)
    np.testing.assert_array_equal(dh[:, :2], 0.0)
    assert np.all(dh[:, 2] == pytest.approx((-0.05 / 0.2 + 0.95 / 0.8) / 2))
