"""Conventions at the edges of the gradient code: clip boundaries, extreme log-variances and what their
bound guarantees, max pooling of NaN and half-precision inputs, dtype promotion, layer sizes, weight layouts
and initial weights, caches, and what a Sequential prints. Mutation testing (docs/testing.md) found many of
these unpinned: changing any of them passed the rest of the suite."""

import numpy as np
import pytest

from minidl import kernels, reference
from minidl.layers import (
    Conv2D,
    Conv2DTranspose,
    Dense,
    Flatten,
    MaxPool2D,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    ZeroPad2D,
    sigmoid,
)
from minidl.losses import (
    LOGVAR_BOUND,
    _exp_logvar,
    bce,
    bce_with_logits,
    gaussian_kl,
    gaussian_nll,
    reparameterize,
    reparameterize_backward,
)

# -- clips: where the clip is reached, the gradient is 0 (as ReLU's derivative at its kink) ---------------


def test_bce_gradient_is_zero_with_p_exactly_at_either_clip():
    eps = 1e-7
    _, grad = bce(np.array([[eps, 1 - eps, 0.5]]), np.array([[1.0, 0.0, 1.0]]), eps=eps)
    np.testing.assert_array_equal(grad[0, :2], 0.0)
    assert grad[0, 2] != 0


def test_log_variances_far_outside_the_bound_give_no_overflow_or_underflow():
    mu = np.zeros((1, 2))
    logvar = np.array([[-1000.0, 1000.0]])
    with np.errstate(all="raise"):
        kl, _, dlogvar = gaussian_kl(mu, logvar)
        nll, dmean, dlv = gaussian_nll(np.ones((1, 2)), np.zeros((1, 2)), logvar)
        z = reparameterize(mu, logvar, np.ones((1, 2)))
    # capped at +-80: KL = -(1 - 1000 - e^-80) / 2 - (1 + 1000 - e^80) / 2
    assert kl[0] == pytest.approx(0.5 * (np.exp(80.0) - 2.0), rel=1e-12)
    assert np.all(np.isfinite(nll)) and np.all(np.isfinite(z)) and np.all(np.isfinite(dlogvar))


def test_gradients_of_exactly_the_smallest_normal_float32_are_kept():
    tiny = np.finfo(np.float32).tiny
    # d/dmean = (mean - x) / var / N = tiny: representable in float32, so not flushed to 0
    _, dmean, _ = gaussian_nll(
        np.zeros((1, 1), np.float32), np.full((1, 1), tiny, np.float32), np.zeros((1, 1), np.float32)
    )
    assert dmean[0, 0] == tiny


# -- dtypes: mixed inputs promote as NumPy does ---------------------------------------------------------


@pytest.mark.parametrize("wide", ["x", "mean", "logvar"])
def test_gaussian_nll_gradients_take_the_widest_input_dtype(wide):
    arrays = {
        name: np.full((2, 3), 0.5, np.float64 if name == wide else np.float32) for name in ("x", "mean", "logvar")
    }
    arrays["x"] = arrays["x"] * 0.1
    _, dmean, dlogvar = gaussian_nll(arrays["x"], arrays["mean"], arrays["logvar"])
    assert dmean.dtype == np.float64 and dlogvar.dtype == np.float64


@pytest.mark.parametrize(
    "build",
    [
        lambda: Conv2D(16, 3, 3, 2),
        lambda: Conv2D(16, 3, 3, 1, algorithm="winograd"),
        lambda: Conv2DTranspose(16, 3, 3, 2),
    ],
    ids=["conv", "winograd", "convT"],
)
def test_convolutions_promote_a_float64_upstream_gradient(build):
    layer = build()
    y = layer.forward(np.ones((1, 16, 4, 4), np.float32))
    assert layer.backward(np.ones(y.shape, np.float64)).dtype == np.float64


# -- layers: settings, shapes and caches that a gradient check cannot see --------------------------------


def test_relu_passes_values_between_zero_and_one():
    layer = ReLU()
    np.testing.assert_array_equal(layer.forward(np.array([[0.25, -0.25, 0.5]])), [[0.25, 0.0, 0.5]])
    np.testing.assert_array_equal(layer.backward(np.ones((1, 3))), [[1.0, 0.0, 1.0]])


@pytest.mark.parametrize(
    "size, kernel, stride, padding, expected",
    [
        (7, 3, 2, "same", 4),
        (8, 3, 2, "same", 4),
        (7, 3, 2, "valid", 3),
        (7, 3, 2, 1, 4),
        (7, 3, 1, 2, 9),
        (5, 2, 3, 0, 2),
    ],
)
def test_conv_output_sizes(size, kernel, stride, padding, expected):
    """ceil(size / stride) for "same"; (size + 2 p - k) // s + 1 otherwise."""
    layer = Conv2D(1, 2, kernel, stride, padding)
    assert layer.output_shape((1, size, size + 1))[1] == expected
    assert layer.forward(np.ones((1, 1, size, size + 1), np.float32)).shape[2] == expected


@pytest.mark.parametrize(
    "size, kernel, stride, padding, expected",
    [
        (3, 3, 2, "same", 6),
        (3, 3, 2, "valid", 7),
        (3, 3, 2, 1, 5),
        (4, 2, 1, 1, 3),
        (2, 3, 3, 0, 6),
    ],
)
def test_conv_transpose_output_sizes(size, kernel, stride, padding, expected):
    """size * stride for "same"; (size - 1) s + k - 2 p otherwise."""
    layer = Conv2DTranspose(1, 2, kernel, stride, padding)
    assert layer.output_shape((1, size, size + 1))[1] == expected
    assert layer.forward(np.ones((1, 1, size, size + 1), np.float32)).shape[2] == expected


def test_weight_layouts_and_dtypes():
    assert Conv2D(2, 3, 3).params["W"].shape == (3, 2, 3, 3)  # (out, in, k, k)
    assert Conv2DTranspose(2, 3, 3).params["W"].shape == (2, 3, 3, 3)  # (in, out, k, k), as PyTorch
    for layer in (
        Dense(2, 3, dtype=np.float64),
        Conv2D(2, 3, dtype=np.float64),
        Conv2DTranspose(2, 3, dtype=np.float64),
    ):
        assert all(p.dtype == np.float64 for p in layer.params.values())


@pytest.mark.parametrize(
    "build",
    [
        lambda rng: Dense(30, 40, rng=rng),
        lambda rng: Conv2D(8, 9, 3, rng=rng),
        lambda rng: Conv2DTranspose(8, 9, 3, rng=rng),
    ],
    ids=["dense", "conv", "convT"],
)
def test_initial_weights_follow_the_generator_and_the_glorot_limit(build):
    W = build(0).params["W"]
    np.testing.assert_array_equal(W, build(np.random.default_rng(0)).params["W"])
    fan_in, fan_out = (30, 40) if W.ndim == 2 else (8 * 9, 9 * 9) if W.shape[0] == 9 else (9 * 9, 8 * 9)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    assert 0.95 * limit < np.max(np.abs(W)) <= limit


def test_flatten_and_reshape_accept_the_smallest_inputs():
    np.testing.assert_array_equal(Flatten().forward(np.ones((2, 3))), np.ones((2, 3)))
    assert Reshape((1,)).forward(np.ones(3)).shape == (3, 1)


def test_sequential_inference_keeps_no_cache_and_names_layers_as_keras():
    model = Sequential(Dense(2, 2), ReLU(), Sigmoid(), Conv2DTranspose(1, 1), MaxPool2D(), ZeroPad2D(1))
    assert model.names == ["dense_1", "re_lu_1", "sigmoid_1", "conv2d_transpose_1", "max_pool2d_1", "zero_pad2d_1"]
    dense = Sequential(Dense(2, 2), Sigmoid())
    dense.forward(np.ones((1, 2), np.float32), training=False)
    with pytest.raises(RuntimeError, match="without a cached forward"):
        dense.backward(np.ones((1, 2), np.float32))


@pytest.mark.parametrize(
    "build",
    [lambda dtype: Conv2D(2, 3, 3, 2, dtype=dtype), lambda dtype: Conv2DTranspose(2, 3, 3, 2, dtype=dtype)],
    ids=["conv", "convT"],
)
@pytest.mark.parametrize("layer_dtype, input_dtype", [(np.float32, np.float64), (np.float64, np.float32)])
def test_convolutions_compute_in_the_wider_of_input_and_weight(build, layer_dtype, input_dtype):
    layer = build(layer_dtype)
    y = layer.forward(np.ones((1, 2, 4, 4), input_dtype))
    assert y.dtype == np.float64
    assert layer.backward(np.ones(y.shape, input_dtype)).dtype == np.float64


def test_integer_inputs_to_the_sigmoid_and_logit_loss_are_computed_in_floating_point():
    np.testing.assert_allclose(sigmoid(np.array([0, 2])), [0.5, 1 / (1 + np.exp(-2.0))], rtol=1e-15)
    value, _ = bce_with_logits(np.array([[0, 2]]), np.array([[1.0, 1.0]]), "sum")
    assert value == pytest.approx(np.log(2) + np.log1p(np.exp(-2.0)), rel=1e-15)


def test_float16_sigmoid_and_logit_loss_are_computed_in_float32():
    rng = np.random.default_rng(0)
    logits, target = rng.standard_normal((3, 5)).astype(np.float16) * 8, rng.random((3, 5)).astype(np.float16)
    y = sigmoid(logits)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, sigmoid(logits.astype(np.float32)))
    value, dlogits = bce_with_logits(logits, target)
    value32, dlogits32 = bce_with_logits(logits.astype(np.float32), target.astype(np.float32))
    assert value == value32
    assert dlogits.dtype == np.float16  # the gradient of a float16 array is float16
    np.testing.assert_array_equal(dlogits, dlogits32.astype(np.float16))


def test_logit_loss_keeps_float64_accuracy_far_from_zero():
    # log(1 + e^-50) = 1.93e-22: float64 computes it, however small
    value, _ = bce_with_logits(np.array([[-50.0]]), np.array([[0.0]]), "sum")
    assert value == pytest.approx(np.exp(-50.0), rel=1e-12, abs=0)


# -- what a Sequential shows ----------------------------------------------------------------------


def test_summary_repr_and_names_exactly():
    model = Sequential(Dense(2, 3), ReLU())
    printed = []
    text = model.summary((2,), print_fn=printed.append)
    rule = "=" * 40
    assert text == "\n".join(
        [
            rule,
            "Layer (type)     Output Shape  Param #  ",
            rule,
            "dense_1 (Dense)  (None, 3)     9        ",
            "re_lu_1 (ReLU)   (None, 3)     0        ",
            rule,
            "Total params: 9",
            rule,
        ]
    )
    assert printed == [text]
    assert repr(model) == "Sequential(\n  (dense_1): Dense(2->3),\n  (re_lu_1): ReLU()\n)"
    assert repr(Sigmoid()) == "Sigmoid()"


# -- max pooling: NaN inputs and half precision --------------------------------------------------

NAN = np.nan


@pytest.mark.parametrize("implementation", [kernels, reference], ids=["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_nan_anywhere_in_a_window_is_its_maximum(implementation, dtype):
    """Four windows: NaN first, NaN after the maximum, two NaNs, no NaN. The maximum of a window that
    holds a NaN is NaN (as in PyTorch), and its index is the first NaN's (our rule for ties)."""
    x = np.array(
        [[NAN, 9.0, 1.0, 9.0, NAN, 2.0, 1.0, 2.0], [1.0, 1.0, 2.0, NAN, 3.0, NAN, 5.0, 3.0]], dtype=dtype
    ).reshape(1, 2, 8, 1)  # (C, H, W, N)
    y = np.empty((1, 1, 4, 1), dtype)
    argmax = np.empty((1, 1, 4, 1), np.int64)
    implementation.maxpool_forward(x, 2, y, argmax)
    np.testing.assert_array_equal(y.ravel(), [NAN, NAN, NAN, 5.0])
    np.testing.assert_array_equal(argmax.ravel(), [0, 11, 4, 14])
    dx = np.empty_like(x)
    implementation.maxpool_backward(np.array([1.0, 2.0, 3.0, 4.0], dtype).reshape(1, 1, 4, 1), argmax, 2, dx)
    expected = np.zeros((2, 8), dtype)
    expected[0, 0], expected[1, 3], expected[0, 4], expected[1, 6] = 1.0, 2.0, 3.0, 4.0
    np.testing.assert_array_equal(dx.reshape(2, 8), expected)


def test_the_layer_propagates_nan_and_routes_its_gradient_to_it():
    layer = MaxPool2D()
    x = np.zeros((1, 1, 2, 2), np.float32)
    x[0, 0, 1, 0] = NAN
    assert np.isnan(layer.forward(x)).all()
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1), np.float32)), [[[[0, 0], [1, 0]]]])


def test_float16_is_pooled_exactly_and_kept():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 7)).astype(np.float16)
    half, single = MaxPool2D(), MaxPool2D()
    y = half.forward(x)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, single.forward(x.astype(np.float32)))
    dy = rng.standard_normal(y.shape).astype(np.float16)
    dx = half.backward(dy)
    assert dx.dtype == np.float16
    np.testing.assert_array_equal(dx, single.backward(dy.astype(np.float32)))


# -- what clipping logvar to +-LOGVAR_BOUND guarantees (the comment on LOGVAR_BOUND in minidl/losses.py) ---


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_variance_deviation_and_precision_stay_finite_and_normal(dtype):
    logvar = np.array([[-1e4, -LOGVAR_BOUND, 0.0, LOGVAR_BOUND, 1e4]], dtype)
    tiny, huge = np.finfo(dtype).tiny, np.finfo(dtype).max
    with np.errstate(all="raise"):
        for value in (_exp_logvar(logvar), np.sqrt(_exp_logvar(logvar)), _exp_logvar(-logvar)):
            assert value.dtype == dtype and np.all((value >= tiny) & (value <= huge))
        ones = np.ones_like(logvar)
        assert np.all(np.isfinite(reparameterize(0 * ones, logvar, ones)))
        assert all(np.all(np.isfinite(g)) for g in reparameterize_backward(ones, logvar, ones))
        assert all(np.all(np.isfinite(part)) for part in gaussian_kl(0 * ones, logvar))


def test_the_square_of_the_bound_would_not_fit_in_float32():
    with np.errstate(over="ignore", under="ignore"):
        assert np.isinf(np.square(_exp_logvar(np.float32(LOGVAR_BOUND))))
        assert np.square(_exp_logvar(np.float32(-LOGVAR_BOUND))) == 0
