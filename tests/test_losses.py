"""Losses: analytic gradients against central differences (float64), values against independent
formulas, and numerical hygiene at the extremes."""

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scipy import special, stats

from minidl.gradcheck import check_function
from minidl.layers import sigmoid
from minidl.losses import (
    bce,
    bce_logits_terms,
    bce_with_logits,
    elbo,
    gaussian_kl,
    gaussian_nll,
    kl_sparsity,
    mse,
    reparameterize,
    reparameterize_backward,
)

# every test here runs on both backends: the compiled kernels and their NumPy twins
pytestmark = pytest.mark.usefixtures("backend")

BOUND = 1e-6
seeds = st.integers(0, 2**32 - 1)
shapes = st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 3))


def assert_gradient(f, analytic, inputs):
    errors = check_function(f, analytic, inputs)
    assert max(errors.values()) < BOUND, errors


def resolvable(*gradients):
    """True when every gradient (its closed form, for the sum over the batch) has a norm above 1e-3.

    A central difference carries a rounding error of about 1e-16 |f| / h = 1e-10 |f| per coordinate, so it
    cannot check a gradient much smaller than 1e-4 |f| to a relative 1e-6. The gradients here vanish only
    at rare draws (a prediction equal to its target, a latent mean or log-variance of 0), and only in
    arrays of one or a few values, where |f| is of order 1: such draws are left out, not the bound raised.
    """
    return all(np.linalg.norm(gradient) > 1e-3 for gradient in gradients)


@settings(max_examples=25, deadline=None)
@given(shapes, seeds)
def test_mse_gradient_and_value(shape, seed):
    rng = np.random.default_rng(seed)
    y, target = rng.standard_normal(shape), rng.standard_normal(shape)
    value, dy = mse(y, target)
    assert value == pytest.approx(np.mean((y - target) ** 2))
    assert_gradient(lambda: mse(y, target)[0], {"y": dy}, {"y": y})


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@settings(max_examples=20, deadline=None)
@given(shape=shapes, seed=seeds)
@example(shape=(1, 1, 1), seed=1950)  # p = 1 - 1.1e-4: failed with a relative error of 1.4e-5 ("mean")
@example(shape=(1, 2, 3), seed=2873271)  # p = 1.7e-4: failed with 5.9e-6 ("sum")
def test_bce_gradients_and_agreement(reduction, shape, seed):
    rng = np.random.default_rng(seed)
    # |logit| <= 6 keeps p >= 2.5e-3: the truncation error of a central difference of log p grows as
    # (h / p)^2 / 3, which exceeds the bound below p ~ 1e-3 (seed 58799 drew p = 3.5e-4)
    logits = np.clip(rng.normal(0, 2, shape), -6, 6)
    target = rng.random(shape)
    p = sigmoid(logits)
    value, dp = bce(p, target, reduction)
    # The gradient in p is checked for p in [0.01, 0.99]: a central difference in p has a truncation error
    # of h^2 / (3 min(p, 1 - p)^2) relative to the gradient (the third derivative of log p grows as 1 / p^3),
    # below 4e-9 there but 1.4e-5 at 1 - p = 1e-4, which these logits reach. In the logits, checked below,
    # central differences are well conditioned everywhere.
    inner = np.clip(p, 0.01, 0.99)
    assume(resolvable((inner - target) / (inner * (1 - inner)), p - target))
    assert_gradient(lambda: bce(inner, target, reduction)[0], {"p": bce(inner, target, reduction)[1]}, {"p": inner})
    value_logits, dlogits = bce_with_logits(logits, target, reduction)
    assert_gradient(lambda: bce_with_logits(logits, target, reduction)[0], {"x": dlogits}, {"x": logits})
    assert value_logits == pytest.approx(value, rel=1e-9)
    per_pixel = -(target * np.log(p) + (1 - target) * np.log(1 - p))
    per_sample = per_pixel.reshape(shape[0], -1)
    expected = per_sample.mean(axis=1) if reduction == "mean" else per_sample.sum(axis=1)
    assert value == pytest.approx(expected.mean(), rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 30), st.sampled_from([1.0, 10.0, 50.0]), seeds)
def test_bce_logits_terms_is_the_cross_entropy_of_the_sigmoid_and_bce_with_logits_runs_it(rows, columns, spread, seed):
    """The formula written in losses.py against scipy's log-sigmoid: terms = -[t log s(x) + (1 - t) log(1 - s(x))]
    and dx = scale (s(x) - t); bce_with_logits, on either backend, gives its sum and exactly its gradient."""
    rng = np.random.default_rng(seed)
    x, t = rng.standard_normal((rows, columns)) * spread, rng.random((rows, columns))
    terms, dx = bce_logits_terms(x, t, np.exp(-np.abs(x)), 0.25)
    cross_entropy = -(t * special.log_expit(x) + (1 - t) * special.log_expit(-x))
    np.testing.assert_allclose(terms, cross_entropy, rtol=1e-12, atol=1e-13 * spread)
    np.testing.assert_allclose(dx, 0.25 * (special.expit(x) - t), rtol=1e-12, atol=1e-15)
    value, dlogits = bce_with_logits(x, t, "sum")
    assert value == pytest.approx(terms.sum() / rows, rel=1e-12)
    np.testing.assert_array_equal(dlogits, bce_logits_terms(x, t, np.exp(-np.abs(x)), 1 / rows)[1])
    x32, t32 = x.astype(np.float32), t.astype(np.float32)
    assert [a.dtype for a in bce_logits_terms(x32, t32, np.exp(-np.abs(x32)), 0.25)] == [np.float32] * 2


def test_bce_clip_zeroes_the_gradient_where_active():
    p = np.array([[0.0, 1.0, 0.5]])
    target = np.array([[1.0, 0.0, 1.0]])
    value, dp = bce(p, target, "sum")
    assert np.isfinite(value) and value == pytest.approx(2 * -np.log(1e-7) + np.log(2), rel=1e-6)
    np.testing.assert_array_equal(dp[0, :2], [0.0, 0.0])
    assert dp[0, 2] == pytest.approx(-2.0)


def test_a_confidently_wrong_pixel_is_stuck_at_minus_log_eps_in_float64_and_23_ln_2_in_float32():
    """docs/sigmoid-and-bce.md: in float32 the clip's 1 - eps rounds to 1 - 2**-23."""
    for dtype, stuck in ((np.float64, -np.log(1e-7)), (np.float32, 23 * np.log(2))):
        value, dp = bce(sigmoid(np.full((1, 3), [17.0, 20.0, 30.0], dtype)), np.zeros((1, 3), dtype), "sum")
        assert value == pytest.approx(3 * stuck, rel=1e-6)
        np.testing.assert_array_equal(dp, 0.0)
    assert -np.log(1e-7) == pytest.approx(16.118, abs=5e-4) and 23 * np.log(2) == pytest.approx(15.942, abs=5e-4)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 6), st.integers(1, 5), st.floats(0.02, 0.5), seeds)
def test_kl_sparsity_gradient_and_value(n, k, rho, seed):
    rng = np.random.default_rng(seed)
    h = sigmoid(rng.normal(0, 1.5, (n, k)))
    value, dh = kl_sparsity(h, rho)
    rho_hat = h.mean(axis=0)
    expected = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    assert value == pytest.approx(expected, rel=1e-10)
    assert_gradient(lambda: kl_sparsity(h, rho)[0], {"h": dh}, {"h": h})


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), seeds)
@example(1, 1, 1409816)  # logvar = -9e-6: the KL's gradient in logvar, 5e-6, was checked to only 1.8e-6
def test_reparameterization_and_gaussian_kl_gradients(n, k, seed):
    rng = np.random.default_rng(seed)
    mu, logvar, eps = rng.standard_normal((n, k)), rng.normal(0, 1, (n, k)), rng.standard_normal((n, k))
    probe = rng.standard_normal((n, k))
    # the gradients in mu and logvar of the reparameterization's probe, then of the KL
    assume(resolvable(probe, probe * eps * np.exp(0.5 * logvar) / 2, mu, np.expm1(logvar) / 2))
    z = reparameterize(mu, logvar, eps)
    np.testing.assert_allclose(z, mu + eps * np.exp(0.5 * logvar))
    dmu, dlogvar = reparameterize_backward(probe, logvar, eps)
    f = lambda: float(np.sum(reparameterize(mu, logvar, eps) * probe))  # noqa: E731
    assert_gradient(f, {"mu": dmu, "logvar": dlogvar}, {"mu": mu, "logvar": logvar})

    kl, dmu, dlogvar = gaussian_kl(mu, logvar)
    sigma = np.exp(0.5 * logvar)
    # KL of independent normals, from the general formula log(s2/s1) + (s1^2 + m1^2) / (2 s2^2) - 1/2
    expected = np.sum(-np.log(sigma) + (sigma**2 + mu**2) / 2 - 0.5, axis=1)
    np.testing.assert_allclose(kl, expected, rtol=1e-10)
    assert_gradient(
        lambda: float(np.mean(gaussian_kl(mu, logvar)[0])), {"mu": dmu, "logvar": dlogvar}, {"mu": mu, "logvar": logvar}
    )


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), seeds)
def test_gaussian_nll_gradient_and_value(n, d, seed):
    rng = np.random.default_rng(seed)
    x, mean, logvar = rng.random((n, d)), rng.random((n, d)), rng.normal(-1, 1, (n, d))
    assume(resolvable((mean - x) * np.exp(-logvar), (1 - (x - mean) ** 2 * np.exp(-logvar)) / 2))
    nll, dmean, dlogvar = gaussian_nll(x, mean, logvar)
    expected = -stats.norm.logpdf(x, mean, np.exp(0.5 * logvar)).sum(axis=1)
    np.testing.assert_allclose(nll, expected, rtol=1e-10)
    assert_gradient(
        lambda: float(np.mean(gaussian_nll(x, mean, logvar)[0])),
        {"mean": dmean, "logvar": dlogvar},
        {"mean": mean, "logvar": logvar},
    )


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 4), d=st.integers(1, 6), k=st.integers(1, 3), seed=seeds)
@example(n=1, d=1, k=1, seed=1610)  # sigmoid(output) = x - 4e-6: 3.5e-6 for the decoder's gradient (Bernoulli)
@example(n=1, d=5, k=1, seed=288445213)  # mu = -3e-5: 1.2e-6 for mu's gradient (Gaussian)
def test_elbo_gradients_and_terms(likelihood, n, d, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    output = rng.standard_normal((n, d if likelihood == "bernoulli" else 2 * d))
    mu, logvar = rng.standard_normal((n, k)), rng.normal(0, 1, (n, k))
    mean = sigmoid(output[:, :d])
    if likelihood == "bernoulli":
        decoder = mean - x
    else:  # the gradients in the mean logits and in the pixel log-variances
        precision = np.exp(-output[:, d:])
        decoder = np.concatenate(
            [(mean - x) * mean * (1 - mean) * precision, (1 - (x - mean) ** 2 * precision) / 2], axis=1
        )
    assume(resolvable(decoder, mu, np.expm1(logvar) / 2))
    terms = elbo(x, output, mu, logvar, likelihood)
    np.testing.assert_allclose(terms.total, terms.reconstruction + terms.kl)
    if likelihood == "bernoulli":
        np.testing.assert_allclose(terms.reconstruction.mean(), bce_with_logits(output, x, "sum")[0], rtol=1e-10)
    f = lambda: float(np.mean(elbo(x, output, mu, logvar, likelihood).total))  # noqa: E731
    assert_gradient(
        f,
        {"out": terms.d_decoder, "mu": terms.d_mu, "logvar": terms.d_logvar},
        {"out": output, "mu": mu, "logvar": logvar},
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_warning_nan_or_inf_at_extremes(dtype):
    logits = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=dtype)
    target = np.array([[1.0, 0.0, 1.0, 1.0, 0.0]], dtype=dtype)
    p = np.array([[0.0, 1.0, 0.5, 0.0, 1.0]], dtype=dtype)
    logvar = np.array([[-50.0, 50.0, 0.0, -50.0, 50.0]], dtype=dtype)
    mu = np.array([[0.0, 1.0, -1.0, 3.0, 0.5]], dtype=dtype)
    with np.errstate(all="raise"):
        results = [
            mse(logits, target),
            bce(p, target),
            bce(p, target, "sum"),
            bce_with_logits(logits, target),
            bce_with_logits(logits, target, "sum"),
            kl_sparsity(sigmoid(logits)),
            gaussian_kl(mu, logvar),
            gaussian_nll(target, sigmoid(logits), logvar),
            (reparameterize(mu, logvar, mu), *reparameterize_backward(mu, logvar, mu)),
        ]
        terms = elbo(target, logits, mu, logvar)
        terms_gauss = elbo(target, np.concatenate([logits, logvar], axis=1), mu, logvar, "gaussian")
    for result in results:
        for array in result:
            assert np.all(np.isfinite(array))
    for t in (terms, terms_gauss):
        for array in (t.total, t.d_decoder, t.d_mu, t.d_logvar):
            assert np.all(np.isfinite(array))
    # float32 in, float32 out for the gradients
    assert bce_with_logits(logits, target)[1].dtype == dtype
    assert mse(logits, target)[1].dtype == dtype
    assert kl_sparsity(sigmoid(logits))[1].dtype == dtype


def test_extreme_logits_give_the_exact_limits():
    value, grad = bce_with_logits(np.array([[1e4, -1e4]]), np.array([[0.0, 1.0]]), "sum")
    assert value == pytest.approx(2e4)
    np.testing.assert_array_equal(grad, [[1.0, -1.0]])


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: mse(np.zeros((2, 3)), np.zeros((2, 4))),
            r"mse: prediction and target shapes differ: \(2, 3\) and \(2, 4\)",
        ),
        (lambda: bce(np.zeros((2, 3)), np.zeros((2, 3)), "max"), "Unknown reduction 'max'"),
        (lambda: kl_sparsity(np.zeros((2, 3, 1))), r"\(N, K\)"),
        (lambda: kl_sparsity(np.zeros((2, 3)), rho=1.5), "rho=1.5"),
        (
            lambda: elbo(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 1)), np.zeros((2, 1)), "gaussian"),
            "Gaussian decoder must output",
        ),
        (
            lambda: elbo(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 1)), np.zeros((2, 1)), "poisson"),
            "Unknown likelihood",
        ),
    ],
)
def test_bad_arguments_are_rejected(call, message):
    with pytest.raises(ValueError, match=message):
        call()
