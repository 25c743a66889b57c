"""The float32 path held to float64 on the same inputs, element by element, within a derived bound.

Every gradient check runs in float64, so a pass that is wrong only in float32 (a bad cast, a float32
accumulator, a branch taken only for float32) would pass all of them; training runs in float32. Here
every layer's, loss's, penalty's and optimizer's float32 forward, backward and tangent passes are
compared with float64 on the same inputs: float32 arrays, widened exactly to float64 for the reference.

The bound. IEEE arithmetic returns each exact result times (1 + delta) with |delta| <= u, the unit
roundoff: u = 2^-24 in float32, 2^-53 in float64. A result r computed from its inputs by +, - and * with
at most d roundings on any path from an input to r satisfies (Higham, Accuracy and Stability of Numerical
Algorithms, 2nd ed., sections 3.1 and 3.3)

    |fl(r) - r| <= gamma_d * r_abs,        gamma_d = d u / (1 - d u),

where r_abs is the same computation on the absolute values of the inputs with every subtraction made an
addition. For a sum of K products, r_abs = sum |terms| and d = K: the length of the reduction. The bound
holds in any summation order (BLAS blocking, pairwise sums, fused multiply-adds), so a fast path may
reorder a sum freely but may not lose precision. An elementary function (exp, log, log1p, tanh) adds its
own error, at most 4 ulp <= 8 u relative in NumPy's float32 (the tolerance of NumPy's own accuracy tests:
3 ulp for exp, 4 for log, 2 for log1p and tanh); it reaches r through the derivative of r with respect to
that function's value. Division and square root count as one rounding each. The float64 reference obeys
the same bound with u = 2^-53. So each comparison asserts, element-wise,

    |r32 - r64| <= (gamma_d(2^-24) + gamma_d(2^-53)) r_abs + sum_f |dr/df| Delta_f + d * tiny,

with tiny = 2^-126 (the smallest normal float32) covering underflow. Each test states d for its pass,
from the sizes of its sums, and computes r_abs: for the linear layers by running the float64 layer on
absolute values (|x| @ |W| + |b| is the abs-twin of x @ W + b, and likewise for every pass of a
convolution), for the rest by a written formula. Layers that only move or select numbers (ReLU, max
pooling, padding, reshapes) must agree exactly, on inputs with exact zeros and ties; functions computed
in float64 and rounded once to float32 (KL sparsity, the Gaussian likelihood) must agree to half an ulp,
|r32 - r64| <= u |r64|, and Adam, whose element-wise float64 arithmetic runs in the same order in both,
must store exactly the float64 result rounded to float32.

Inputs stay where both precisions compute the same function: logits and pre-activations within +-20 (the
float32 sigmoid is capped at |x| = 43, float64's at 354) and probabilities inside [1e-4, 1 - 1e-4] (in
float32 the clip 1 - 1e-7 itself rounds to 1 - 2^-23).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.contractive import contractive_penalty
from minidl.layers import (
    Conv2D,
    Conv2DTranspose,
    Dense,
    Flatten,
    Identity,
    MaxPool2D,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Tanh,
    ZeroPad2D,
)
from minidl.losses import (
    bce,
    bce_with_logits,
    elbo,
    gaussian_kl,
    gaussian_nll,
    kl_sparsity,
    mse,
    reparameterize,
    reparameterize_backward,
)
from minidl.optim import SGD, Adam
from minidl.testing import conv_geometries, pool_geometries, seeds

U32, U64 = 2.0**-24, 2.0**-53
FUNCTION = 8 * U32  # 4 ulp of NumPy's float32 exp / log / log1p / tanh, relative
TINY = float(np.finfo(np.float32).tiny)
SECOND_ORDER = 1 + 1e-4  # products of two errors (each below 1e-5 relative) that the first-order bounds omit
SIGMOID = 2 * FUNCTION + 3 * U32  # relative error of the float32 sigmoid: exp, 1 + e, and e / (1 + e)


def gamma(d: int, u: float = U32) -> float:
    return d * u / (1 - d * u)


def rounding(d: int, magnitude) -> np.ndarray:
    """The bound on d roundings of a computation whose abs-twin is ``magnitude``, in either precision."""
    return (gamma(d) + gamma(d, U64)) * np.asarray(magnitude, dtype=np.float64) + d * TINY


def assert_within(name: str, r32, r64, bound, dtype=np.float32) -> None:
    """|r32 - r64| <= bound element-wise; r32 must keep the float32 dtype."""
    if isinstance(r32, np.ndarray):
        assert r32.dtype == dtype, f"{name}: float32 input gave a {r32.dtype} result"
    r32, r64 = np.asarray(r32, dtype=np.float64), np.asarray(r64, dtype=np.float64)
    bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), r64.shape)
    assert r32.shape == r64.shape, f"{name}: shapes {r32.shape} and {r64.shape}"
    excess = np.abs(r32 - r64) - SECOND_ORDER * bound
    if np.any(excess > 0) or not np.all(np.isfinite(r32)):
        i = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(excess), excess, np.inf))), r64.shape)
        raise AssertionError(
            f"{name}: float32 {r32[i]!r} and float64 {r64[i]!r} at {i} differ by "
            f"{abs(r32[i] - r64[i]):.3g}, above the bound {bound[i]:.3g} "
            f"({np.sum(excess > 0)} of {excess.size} entries exceed it)"
        )


def pair(rng, shape, scale=1.0, low=None, high=None):
    """The same values as float32 and as float64 (widened exactly)."""
    values = scale * rng.standard_normal(shape)
    if low is not None:
        values = np.clip(values, low, high)
    x32 = values.astype(np.float32)
    return x32, x32.astype(np.float64)


def twins(layer32):
    """The float64 copy of a float32 layer (same parameters) and its abs-twin (absolute parameters)."""
    layer64 = copy.deepcopy(layer32).astype(np.float64)
    magnitude = copy.deepcopy(layer64)
    for name in magnitude.params:
        np.abs(magnitude.params[name], out=magnitude.params[name])
    return layer64, magnitude


# -- layers ---------------------------------------------------------------------------------------


def hold_linear_layer(layer32, x32, depth: dict, rng) -> None:
    """Forward, backward, jvp and jvp_backward of a linear layer in float32 against float64.

    ``depth`` gives d for each result: "y", "dx", "<param>" (backward), "t", "dt", "t.<param>" (tangent).
    """
    x64 = x32.astype(np.float64)
    for param in layer32.params.values():  # random biases too: a missing bias term must show
        param[...] = rng.standard_normal(param.shape).astype(np.float32)
    layer64, magnitude = twins(layer32)
    y32, y64, y_abs = layer32.forward(x32), layer64.forward(x64), magnitude.forward(np.abs(x64))
    assert_within(f"{layer32!r} forward", y32, y64, rounding(depth["y"], y_abs))

    dy32, dy64 = pair(rng, y32.shape)
    for layer in (layer32, layer64, magnitude):
        layer.zero_grad()
    dx32, dx64, dx_abs = layer32.backward(dy32), layer64.backward(dy64), magnitude.backward(np.abs(dy64))
    assert_within(f"{layer32!r} backward dx", dx32, dx64, rounding(depth["dx"], dx_abs))
    for name in layer32.params:
        assert_within(
            f"{layer32!r} backward d{name}",
            layer32.grads[name],
            layer64.grads[name],
            rounding(depth[name], magnitude.grads[name]),
        )

    t32, t64 = pair(rng, (2,) + x32.shape)
    out32, out64, out_abs = layer32.jvp(t32), layer64.jvp(t64), magnitude.jvp(np.abs(t64))
    assert_within(f"{layer32!r} jvp", out32, out64, rounding(depth["t"], out_abs))
    q32, q64 = pair(rng, out32.shape)
    for layer in (layer32, layer64, magnitude):
        layer.zero_grad()
    (dt32, extra32), (dt64, _), (dt_abs, _) = (
        layer32.jvp_backward(q32),
        layer64.jvp_backward(q64),
        magnitude.jvp_backward(np.abs(q64)),
    )
    assert extra32 is None
    assert_within(f"{layer32!r} jvp_backward dt", dt32, dt64, rounding(depth["dt"], dt_abs))
    for name in layer32.params:
        assert_within(
            f"{layer32!r} jvp_backward d{name}",
            layer32.grads[name],
            layer64.grads[name],
            rounding(depth["t." + name], magnitude.grads[name]),
        )


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 40), st.integers(1, 9), seeds)
def test_dense_float32(n, fan_in, fan_out, seed):
    rng = np.random.default_rng(seed)
    x32, _ = pair(rng, (n, fan_in))
    hold_linear_layer(
        Dense(fan_in, fan_out, rng=rng),
        x32,
        rng=rng,
        depth={"y": fan_in + 1, "dx": fan_out, "W": n, "b": n, "t": fan_in, "dt": fan_out, "t.W": 2 * n, "t.b": 0},
    )


def overlaps(kernel: int, stride: int) -> int:
    """The most kernel positions that cover one pixel: ceil(k / s) along each axis."""
    return math.ceil(kernel / stride) ** 2


@settings(max_examples=40, deadline=None)
@given(conv_geometries(max_channels=4), seeds)
def test_conv2d_float32(geometry, seed):
    rng = np.random.default_rng(seed)
    layer = Conv2D(**geometry.settings, rng=rng)
    x32, _ = pair(rng, geometry.input_shape)
    c, f, k = geometry.in_channels, geometry.out_channels, geometry.kernel_size
    positions = geometry.batch * int(np.prod(layer.output_shape(geometry.input_shape[1:])[1:]))
    hold_linear_layer(
        layer,
        x32,
        rng=rng,
        depth={
            "y": c * k * k + 1,
            "dx": f * overlaps(k, geometry.stride),
            "W": positions,
            "b": positions,
            "t": c * k * k,
            "dt": f * overlaps(k, geometry.stride),
            "t.W": 2 * positions,
            "t.b": 0,
        },
    )


@settings(max_examples=40, deadline=None)
@given(conv_geometries(transpose=True, max_channels=4, max_size=5), seeds)
def test_conv2d_transpose_float32(geometry, seed):
    rng = np.random.default_rng(seed)
    layer = Conv2DTranspose(**geometry.settings, rng=rng)
    x32, _ = pair(rng, geometry.input_shape)
    c, f, k = geometry.in_channels, geometry.out_channels, geometry.kernel_size
    pixels = geometry.batch * geometry.height * geometry.width
    outputs = geometry.batch * int(np.prod(layer.output_shape(geometry.input_shape[1:])[1:]))
    hold_linear_layer(
        layer,
        x32,
        rng=rng,
        depth={
            "y": c * overlaps(k, geometry.stride) + 1,
            "dx": f * k * k,
            "W": pixels,
            "b": outputs,
            "t": c * overlaps(k, geometry.stride),
            "dt": f * k * k,
            "t.W": 2 * pixels,
            "t.b": 0,
        },
    )


def hold_exactly(layer, x32, rng) -> None:
    """Layers that only move or select numbers: float32 equals float64 exactly, in every pass."""
    layer64 = copy.deepcopy(layer)
    x64 = x32.astype(np.float64)
    y32, y64 = layer.forward(x32), layer64.forward(x64)
    dy32, dy64 = pair(rng, y32.shape)
    t32, t64 = pair(rng, (2,) + x32.shape)
    results = [(y32, y64), (layer.backward(dy32), layer64.backward(dy64))]
    results.append((layer.jvp(t32), layer64.jvp(t64)))
    q32, q64 = pair(rng, results[-1][0].shape)
    results.append((layer.jvp_backward(q32)[0], layer64.jvp_backward(q64)[0]))
    for name, (a, b) in zip(["forward", "backward", "jvp", "jvp_backward"], results):
        assert_within(f"{layer!r} {name}", a, b, 0.0)


@settings(max_examples=30, deadline=None)
@given(pool_geometries(), seeds)
def test_moving_layers_are_exact_in_float32(geometry, seed):
    rng = np.random.default_rng(seed)
    shape = geometry.input_shape
    # half the entries from {-1, 0, 1}: exact zeros (ReLU's kink) and ties in the pooling windows
    x32 = np.where(rng.random(shape) < 0.5, rng.integers(-1, 2, shape), rng.standard_normal(shape)).astype(np.float32)
    for layer in (
        MaxPool2D(geometry.pool_size),
        ReLU(),
        Identity(),
        ZeroPad2D(((1, 0), (2, 1))),
        Flatten(),
        Reshape((geometry.channels * geometry.height, geometry.width)),
    ):
        hold_exactly(layer, x32, rng)


def hold_activation(layer, x32, rng, forward_error, abs_slope, slope_derivative, extra_abs, extra_derivative):
    """An element-wise activation: y has a relative error ``forward_error``; every backward product is a
    polynomial in y of 3 roundings (2 + K for dx_extra's sum over K directions), plus the effect of y's own
    error through the polynomial's derivative."""
    x64 = x32.astype(np.float64)
    layer64 = copy.deepcopy(layer)
    y32, y64 = layer.forward(x32), layer64.forward(x64)
    delta_y = (forward_error + forward_error * U64 / U32) * np.abs(y64)
    assert_within(f"{layer!r} forward", y32, y64, delta_y + TINY)
    dy32, dy64 = pair(rng, x32.shape)
    product = lambda d, v: rounding(d, np.abs(v) * abs_slope(y64)) + np.abs(v) * slope_derivative(y64) * delta_y  # noqa: E731
    assert_within(f"{layer!r} backward", layer.backward(dy32), layer64.backward(dy64), product(3, dy64))
    t32, t64 = pair(rng, (3,) + x32.shape)
    assert_within(f"{layer!r} jvp", layer.jvp(t32), layer64.jvp(t64), product(3, t64))
    q32, q64 = pair(rng, (3,) + x32.shape)
    (dt32, extra32), (dt64, extra64) = layer.jvp_backward(q32), layer64.jvp_backward(q64)
    assert_within(f"{layer!r} jvp_backward dt", dt32, dt64, product(3, q64))
    pairs = np.sum(np.abs(q64 * t64), axis=0)
    assert_within(
        f"{layer!r} jvp_backward dx_extra",
        extra32,
        extra64,
        rounding(3 + 2, pairs * extra_abs(y64)) + pairs * extra_derivative * delta_y,
    )


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=3), seeds)
def test_sigmoid_float32(shape, seed):
    rng = np.random.default_rng(seed)
    x32, _ = pair(rng, tuple(shape), scale=4.0, low=-20.0, high=20.0)
    # slope y (1 - y): abs-twin y (1 + y), derivative 1 - 2 y (|.| <= 1); second order y (1 - y)(1 - 2 y):
    # abs-twin y (1 + y)(1 + 2 y), derivative 1 - 6 y + 6 y^2 (|.| <= 1 on [0, 1])
    hold_activation(
        Sigmoid(),
        x32,
        rng,
        SIGMOID,
        lambda y: y * (1 + y),
        lambda y: np.abs(1 - 2 * y),
        lambda y: y * (1 + y) * (1 + 2 * y),
        1.0,
    )


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=3), seeds)
def test_tanh_float32(shape, seed):
    rng = np.random.default_rng(seed)
    x32, _ = pair(rng, tuple(shape), scale=2.0)
    # slope 1 - y^2: abs-twin 1 + y^2, derivative -2 y; second order -2 y (1 - y^2): abs-twin 2 |y| (1 + y^2),
    # derivative 6 y^2 - 2 (|.| <= 4 on [-1, 1])
    hold_activation(
        Tanh(),
        x32,
        rng,
        FUNCTION,
        lambda y: 1 + y * y,
        lambda y: 2 * np.abs(y),
        lambda y: 2 * np.abs(y) * (1 + y * y),
        4.0,
    )


# -- losses ---------------------------------------------------------------------------------------

shapes = st.tuples(st.integers(1, 6), st.integers(1, 12), st.integers(1, 3))


def float64_sum(values, count) -> np.ndarray:
    """The float64 rounding of a float64 sum of ``count`` terms."""
    return gamma(count + 2, U64) * values


@settings(max_examples=30, deadline=None)
@given(shapes, seeds)
def test_mse_float32(shape, seed):
    rng = np.random.default_rng(seed)
    (y32, y64), (t32, t64) = pair(rng, shape), pair(rng, shape)
    (v32, g32), (v64, g64) = mse(y32, t32), mse(y64, t64)
    size = y64.size
    # the difference rounds once in float32 (relative u), then is squared and averaged in float64
    squares = np.mean((y64 - t64) ** 2)
    assert_within("mse value", v32, v64, gamma(2) * squares + float64_sum(squares, size), dtype=None)
    # 2 / M rounded to float32, times the rounded difference: 3 roundings of (2 / M)(|y| + |t|)
    assert_within("mse gradient", g32, g64, rounding(3, 2.0 / size * (np.abs(y64) + np.abs(t64))))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=seeds)
def test_bce_float32(reduction, shape, seed):
    rng = np.random.default_rng(seed)
    p64 = np.clip(1 / (1 + np.exp(-2 * rng.standard_normal(shape))), 1e-4, 1 - 1e-4)
    p32 = p64.astype(np.float32)
    p64 = p32.astype(np.float64)
    t32 = rng.random(shape).astype(np.float32)
    t64 = t32.astype(np.float64)
    (v32, g32), (v64, g64) = bce(p32, t32, reduction), bce(p64, t64, reduction)
    scale = 1 / p64.size if reduction == "mean" else 1 / shape[0]
    # per pixel t log p + (1 - t) log1p(-p): two functions (FUNCTION each) and 4 roundings
    terms = np.abs(t64 * np.log(p64)) + (1 + t64) * np.abs(np.log1p(-p64))
    per_pixel = (FUNCTION + gamma(4)) * terms
    assert_within(
        "bce value", v32, v64, scale * np.sum(per_pixel) + float64_sum(scale * np.sum(terms), p64.size), dtype=None
    )
    # s (p - t) / (p (1 - p)): a product and quotient of once-rounded differences of exact inputs: 6 roundings
    assert_within("bce gradient", g32, g64, rounding(6, np.abs(g64)))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=seeds)
def test_bce_with_logits_float32(reduction, shape, seed):
    rng = np.random.default_rng(seed)
    x32, x64 = pair(rng, shape, scale=4.0, low=-20.0, high=20.0)
    t32 = rng.random(shape).astype(np.float32)
    t64 = t32.astype(np.float64)
    (v32, g32), (v64, g64) = bce_with_logits(x32, t32, reduction), bce_with_logits(x64, t64, reduction)
    scale = 1 / x64.size if reduction == "mean" else 1 / shape[0]
    # max(x, 0) - x t + log1p(exp(-|x|)): 3 roundings, and two functions on the log term
    softplus = np.log1p(np.exp(-np.abs(x64)))
    terms = np.maximum(x64, 0) + np.abs(x64 * t64) + softplus
    per_pixel = gamma(3) * terms + 2 * FUNCTION * softplus
    assert_within(
        "bce_with_logits value",
        v32,
        v64,
        scale * np.sum(per_pixel) + float64_sum(scale * np.sum(terms), x64.size),
        dtype=None,
    )
    sigma = 1 / (1 + np.exp(-x64))
    # s (sigmoid(x) - t): sigmoid's error, the difference, the scale's rounding and the product
    assert_within("bce_with_logits gradient", g32, g64, rounding(3, scale * (sigma + t64)) + scale * SIGMOID * sigma)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 64), st.integers(1, 6), st.floats(0.02, 0.5), seeds)
def test_kl_sparsity_float32(n, k, rho, seed):
    """Computed in float64 from the float32 activations and rounded once: half an ulp."""
    rng = np.random.default_rng(seed)
    h64 = 1 / (1 + np.exp(-1.5 * rng.standard_normal((n, k))))
    h32 = h64.astype(np.float32)
    h64 = h32.astype(np.float64)
    (v32, g32), (v64, g64) = kl_sparsity(h32, rho), kl_sparsity(h64, rho)
    rho_hat = h64.mean(axis=0)
    slope = rho / rho_hat + (1 - rho) / (1 - rho_hat)
    mean_error = gamma(n + 1, U64) * rho_hat  # the float64 means may be summed in different orders
    terms = rho * np.abs(np.log(rho / rho_hat)) + (1 - rho) * np.abs(np.log((1 - rho) / (1 - rho_hat)))
    assert_within(
        "kl_sparsity value",
        v32,
        v64,
        np.sum(slope * mean_error) + gamma(k + 8, U64) * np.sum(terms + slope),
        dtype=None,
    )
    curvature = rho / rho_hat**2 + (1 - rho) / (1 - rho_hat) ** 2
    assert_within(
        "kl_sparsity gradient",
        g32,
        g64,
        U32 * np.abs(g64) + (curvature * mean_error + gamma(8, U64) * slope) / n + TINY,
    )


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 8), seeds)
def test_reparameterization_and_gaussian_kl_float32(n, k, seed):
    rng = np.random.default_rng(seed)
    (mu32, mu64), (lv32, lv64), (eps32, eps64), (dz32, dz64) = (pair(rng, (n, k)) for _ in range(4))
    sigma = np.exp(0.5 * lv64)
    # mu + eps sqrt(exp(logvar)): exp, then sqrt (half exp's error, plus a rounding), the product and the sum
    assert_within(
        "reparameterize",
        reparameterize(mu32, lv32, eps32),
        reparameterize(mu64, lv64, eps64),
        rounding(3, np.abs(mu64) + np.abs(eps64) * sigma) + FUNCTION / 2 * np.abs(eps64) * sigma,
    )
    dmu32, dlv32 = reparameterize_backward(dz32, lv32, eps32)
    dmu64, dlv64 = reparameterize_backward(dz64, lv64, eps64)
    assert_within("reparameterize_backward dmu", dmu32, dmu64, 0.0)
    assert_within(
        "reparameterize_backward dlogvar", dlv32, dlv64, rounding(4, np.abs(dlv64)) + FUNCTION / 2 * np.abs(dlv64)
    )

    (kl32, dm32, dv32), (kl64, dm64, dv64) = gaussian_kl(mu32, lv32), gaussian_kl(mu64, lv64)
    variance = np.exp(lv64)
    terms = 1 + np.abs(lv64) + mu64**2 + variance
    # per latent unit 1 + logvar - mu^2 - exp(logvar) in float32 (4 roundings and exp), summed in float64
    assert_within(
        "gaussian_kl value",
        kl32,
        kl64,
        0.5 * np.sum(gamma(4) * terms + FUNCTION * variance + gamma(k + 2, U64) * terms, axis=1),
        dtype=np.float64,
    )
    assert_within("gaussian_kl dmu", dm32, dm64, rounding(1, np.abs(dm64)))
    assert_within(
        "gaussian_kl dlogvar", dv32, dv64, rounding(2, (variance + 1) / (2 * n)) + FUNCTION * variance / (2 * n)
    )


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 12), seeds)
def test_gaussian_nll_float32(n, d, seed):
    """Computed in float64 from the float32 inputs and rounded once (values below float32's smallest normal
    flushed to 0): half an ulp."""
    rng = np.random.default_rng(seed)
    x32 = rng.random((n, d)).astype(np.float32)
    mean32 = rng.random((n, d)).astype(np.float32)
    lv32, _ = pair(rng, (n, d), scale=2.0)
    x64, mean64, lv64 = (a.astype(np.float64) for a in (x32, mean32, lv32))
    (nll32, dm32, dv32), (nll64, dm64, dv64) = gaussian_nll(x32, mean32, lv32), gaussian_nll(x64, mean64, lv64)
    scaled = (x64 - mean64) ** 2 * np.exp(-lv64)
    assert_within(
        "gaussian_nll value",
        nll32,
        nll64,
        gamma(d + 8, U64) * np.sum(np.log(2 * np.pi) + np.abs(lv64) + scaled, axis=1),
        dtype=np.float64,
    )
    assert_within("gaussian_nll dmean", dm32, dm64, U32 * np.abs(dm64) + gamma(6, U64) * np.abs(dm64) + TINY)
    assert_within(
        "gaussian_nll dlogvar", dv32, dv64, U32 * np.abs(dv64) + gamma(6, U64) * (1 + scaled) / (2 * n) + TINY
    )


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 5), d=st.integers(1, 10), k=st.integers(1, 4), seed=seeds)
def test_elbo_float32(likelihood, n, d, k, seed):
    rng = np.random.default_rng(seed)
    x32 = rng.random((n, d)).astype(np.float32)
    x64 = x32.astype(np.float64)
    out32, out64 = pair(rng, (n, d if likelihood == "bernoulli" else 2 * d), scale=3.0, low=-20.0, high=20.0)
    (mu32, mu64), (lv32, lv64) = pair(rng, (n, k)), pair(rng, (n, k))
    e32, e64 = elbo(x32, out32, mu32, lv32, likelihood), elbo(x64, out64, mu64, lv64, likelihood)
    variance = np.exp(lv64)
    kl_terms = 1 + np.abs(lv64) + mu64**2 + variance
    kl_bound = 0.5 * np.sum(gamma(4) * kl_terms + FUNCTION * variance + gamma(k + 2, U64) * kl_terms, axis=1)
    assert_within("elbo kl", e32.kl, e64.kl, kl_bound, dtype=np.float64)
    assert_within("elbo d_mu", e32.d_mu, e64.d_mu, rounding(1, np.abs(e64.d_mu)))
    assert_within(
        "elbo d_logvar",
        e32.d_logvar,
        e64.d_logvar,
        rounding(2, (variance + 1) / (2 * n)) + FUNCTION * variance / (2 * n),
    )
    if likelihood == "bernoulli":
        softplus = np.log1p(np.exp(-np.abs(out64)))
        terms = np.maximum(out64, 0) + np.abs(out64 * x64) + softplus
        recon_bound = np.sum(gamma(3) * terms + 2 * FUNCTION * softplus + gamma(d + 2, U64) * terms, axis=1)
        sigma = 1 / (1 + np.exp(-out64))
        decoder_bound = rounding(2, (sigma + x64) / n) + SIGMOID * sigma / n
    else:
        mean = 1 / (1 + np.exp(-out64[:, :d]))
        precision = np.exp(-out64[:, d:])
        delta_mean = 2 * SIGMOID * mean  # the float32 sigmoid's error, in either run
        gap = np.abs(mean - x64)
        scaled = gap**2 * precision
        # the likelihood is computed in float64 from the float32 mean: its error enters through
        # d nll / d mean = (mean - x) precision (and half the second derivative, precision)
        recon_bound = np.sum(
            gap * precision * delta_mean
            + precision * delta_mean**2
            + gamma(d + 8, U64) * (np.log(2 * np.pi) + np.abs(out64[:, d:]) + scaled),
            axis=1,
        )
        d_mean = np.abs(gap * precision / n)
        d_mean_error = U32 * d_mean + precision / n * delta_mean + TINY
        slope = mean * (1 - mean)
        decoder_mean = (
            rounding(3, d_mean * mean * (1 + mean)) + d_mean_error * slope + d_mean * np.abs(1 - 2 * mean) * delta_mean
        )
        decoder_logvar = U32 * (1 + scaled) / (2 * n) + gap * precision / n * delta_mean + TINY
        decoder_bound = np.concatenate([decoder_mean, decoder_logvar], axis=1)
    assert_within("elbo reconstruction", e32.reconstruction, e64.reconstruction, recon_bound, dtype=np.float64)
    assert_within(
        "elbo total", e32.total, e64.total, recon_bound + kl_bound + gamma(1, U64) * np.abs(e64.total), dtype=np.float64
    )
    assert_within("elbo d_decoder", e32.d_decoder, e64.d_decoder, decoder_bound)


# -- the contractive penalty ----------------------------------------------------------------------


def widened(model: Sequential) -> Sequential:
    """A float64 copy of a float32 model *with its caches*, so both precisions start from the same
    activations: the comparison then measures the penalty's own arithmetic, not the forward pass's."""
    wide = copy.deepcopy(model)
    for layer in wide.layers:
        cache = layer._cache
        layer.astype(np.float64)
        layer._cache = {
            key: value.astype(np.float64) if isinstance(value, np.ndarray) and value.dtype == np.float32 else value
            for key, value in cache.items()
        }
    wide._link_params()
    return wide


@pytest.mark.parametrize("mode", ["closed_form", "exact", "hutchinson"])
@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), fan_in=st.integers(1, 12), latent=st.integers(1, 5), seed=seeds)
def test_contractive_penalty_float32(mode, n, fan_in, latent, seed):
    """Dense + Sigmoid, the closed form's encoder. Given the same cached x and y, every mode is a polynomial
    in (x, y, W, dz, probes): the bound is gamma_d of its abs-twin, written out below."""
    rng = np.random.default_rng(seed)
    model32 = Sequential(Dense(fan_in, latent, rng=rng), Sigmoid())
    model32.layers[0].params["b"][...] = rng.standard_normal(latent)
    x32, x64 = pair(rng, (n, fan_in))
    dz32, dz64 = pair(rng, (n, latent))
    model32.forward(x32)
    model64 = widened(model32)
    weight, probes, chunk = 0.7, 3, 2
    results = []
    for model, x, dz in ((model32, x32, dz32), (model64, x64, dz64)):
        model.zero_grad()
        value, dx = contractive_penalty(
            model, x, mode, dz=dz, weight=weight, n_probes=probes, chunk_size=chunk, rng=np.random.default_rng(seed)
        )
        results.append((value, dx, {key: grad.copy() for key, grad in model.grads.items()}))
    (value32, dx32, grads32), (value64, dx64, grads64) = results

    y = model64.layers[1]._cache["y"]
    W = np.abs(model64.params["dense_1.W"])
    s, s_abs = y * (1 - y), y * (1 + y)
    ax, adz = np.abs(x64), np.abs(dz64)
    if mode == "closed_form":
        norms = np.sum(W * W, axis=0)
        c = weight * 2.0 / n
        # the slope (2 roundings) and the column norms (fan_in) are float32; the rest is float64
        value_bound = (
            np.sum((np.abs(s) + gamma(2) * s_abs) ** 2 * (1 + gamma(fan_in)) * norms - s**2 * norms) / n
            + gamma(n * latent + 4, U64) * np.sum(s_abs**2 * norms) / n
        )
        direct = c * W * np.sum(s_abs**2, axis=0)
        g = (adz + c * s_abs * (1 + 2 * y) * norms) * s_abs
        depth = fan_in + n + latent + 12
    else:
        if mode == "hutchinson":
            t = np.abs(np.random.default_rng(seed).standard_normal((probes, n, fan_in)))
            scale = 1.0 / (n * probes)
        else:
            t = np.broadcast_to(np.eye(fan_in)[:, None, :], (fan_in, n, fan_in))
            scale = 1.0 / n
        c = 2 * scale * weight
        t1 = t @ W
        t2 = t1 * s_abs
        delta_t2 = gamma(fan_in + 4) * t2  # the product, the slope's two roundings, the probe's own rounding
        value_bound = scale * np.sum(2 * np.abs(t2) * delta_t2 + delta_t2**2) + gamma(t.size + 4, U64) * scale * np.sum(
            t2**2
        )
        direct = np.einsum("knd,knj->dj", t, c * t2 * s_abs)
        g = adz * s_abs + np.sum(c * t2 * t1, axis=0) * s_abs * (1 + 2 * y)
        depth = fan_in + t.shape[0] * n + n + t.shape[0] + latent + 16
    assert_within(f"contractive {mode} value", value32, value64, value_bound, dtype=None)
    assert_within(
        f"contractive {mode} dW", grads32["dense_1.W"], grads64["dense_1.W"], rounding(depth, direct + ax.T @ g)
    )
    assert_within(f"contractive {mode} db", grads32["dense_1.b"], grads64["dense_1.b"], rounding(depth, g.sum(axis=0)))
    assert_within(f"contractive {mode} dx", dx32, dx64, rounding(depth, g @ W.T))


# -- optimizers -----------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 200), st.integers(1, 30), st.floats(0.0, 0.99), st.floats(0.9, 0.9999), seeds)
def test_adam_float32_is_float64_rounded_once(size, steps, beta1, beta2, seed):
    """The update is computed in float64 and stored in float32: each stored value is the float64 result of
    the same float32 state, rounded once."""
    rng = np.random.default_rng(seed)
    (p32, p64), (g32, g64) = pair(rng, size), pair(rng, size)
    adam32 = Adam([("p", p32, g32)], lr=1e-2, beta1=beta1, beta2=beta2)
    adam64 = Adam([("p", p64, g64)], lr=1e-2, beta1=beta1, beta2=beta2)
    for _ in range(steps):  # the float32 state drifts by its roundings: restart float64 from it each step
        for key, value in adam32.state.items():
            adam64.state[key][...] = value
        p64[...] = p32
        g32[...] = rng.standard_normal(size)
        g64[...] = g32
        adam32.step()
        adam64.step()
        # element-wise arithmetic in the same order on the same float64 values: the float32 state is the
        # float64 state rounded once, exactly (round to nearest)
        for name, stored, reference in (
            ("m", adam32.state["m/p"], adam64.state["m/p"]),
            ("v", adam32.state["v/p"], adam64.state["v/p"]),
            ("parameter", p32, p64),
        ):
            assert stored.dtype == np.float32
            np.testing.assert_array_equal(stored, reference.astype(np.float32), err_msg=f"adam {name}")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 100), st.floats(0.0, 0.95), seeds)
def test_sgd_float32(size, momentum, seed):
    rng = np.random.default_rng(seed)
    (p32, p64), (g32, g64), (v32, v64) = pair(rng, size), pair(rng, size), pair(rng, size)
    sgd32, sgd64 = SGD([("p", p32, g32)], lr=0.1, momentum=momentum), SGD([("p", p64, g64)], lr=0.1, momentum=momentum)
    sgd32.state["velocity/p"][...] = v32
    sgd64.state["velocity/p"][...] = v64
    sgd32.step()
    sgd64.step()
    velocity = momentum * np.abs(v64) + np.abs(g64)
    # v = m v + g: the momentum's own rounding to float32, the product and the sum
    assert_within("sgd velocity", sgd32.state["velocity/p"], sgd64.state["velocity/p"], rounding(3, velocity))
    # p - lr v: lr rounded, the product, the difference, and v's error times lr
    assert_within("sgd parameter", p32, p64, rounding(3, np.abs(p64) + 0.1 * velocity) + 0.1 * rounding(3, velocity))
