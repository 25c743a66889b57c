"""Every layer: analytic backward against central differences (float64), contracts and errors."""

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from minidl.gradcheck import check_layer
from minidl.layers import (Conv2D, Conv2DTranspose, Dense, Flatten, Identity, MaxPool2D, ReLU,
                           Reshape, Sequential, Sigmoid, Tanh, ZeroPad2D)

BOUND = 1e-6
seeds = st.integers(0, 2**32 - 1)


def assert_gradients_agree(layer, x, seed):
    errors = check_layer(layer.astype(np.float64), x, rng=seed)
    assert max(errors.values()) < BOUND, errors


def away_from_zero(rng, shape, margin=0.1):
    """Normal values pushed at least ``margin`` away from 0, the kink of ReLU."""
    x = rng.standard_normal(shape)
    return x + margin * np.sign(x)


def distinct_values(rng, shape, gap=0.01):
    """A random permutation of well separated values: no ties in any pooling window."""
    size = int(np.prod(shape))
    return (rng.permutation(size) * gap - size * gap / 2).reshape(shape)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), seeds)
@example(4, 1, 1, 3904)  # the four r summed to -1.4e-5: db was checked to only 2.4e-6
def test_dense_gradients(n, fan_in, fan_out, seed):
    rng = np.random.default_rng(seed)
    layer = Dense(fan_in, fan_out, rng=rng)
    layer.params["b"][...] = rng.standard_normal(fan_out)
    x = rng.standard_normal((n, fan_in))
    # dx = r W^T, dW = x^T r and db = the sum of r over the batch, for check_layer's r (the first draw of
    # default_rng(seed)). A central difference resolves a gradient only to ~1e-10 |L| (rounding), so one
    # that all but vanishes (a rare draw, in the smallest layers) cannot be checked to 1e-6: leave those out.
    r = np.random.default_rng(seed).standard_normal((n, fan_out))
    assume(min(np.linalg.norm(r @ layer.params["W"].T), np.linalg.norm(x.T @ r), np.linalg.norm(r.sum(axis=0))) > 1e-3)
    assert_gradients_agree(layer, x, seed)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3),
       st.sampled_from(["same", "valid", 0, 1, 2]), st.integers(3, 8), st.integers(3, 8), seeds)
def test_conv2d_gradients(n, c_in, c_out, kernel, stride, padding, height, width, seed):
    assume(padding in ("same", "valid") or padding < kernel)
    assume(padding == "same" or (height + 2 * (padding if padding != "valid" else 0)) >= kernel)
    assume(padding == "same" or (width + 2 * (padding if padding != "valid" else 0)) >= kernel)
    rng = np.random.default_rng(seed)
    layer = Conv2D(c_in, c_out, kernel, stride, padding, rng=rng)
    layer.params["b"][...] = rng.standard_normal(c_out)
    assert_gradients_agree(layer, rng.standard_normal((n, c_in, height, width)), seed)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3),
       st.sampled_from(["same", "valid", 0, 1]), st.integers(1, 5), st.integers(1, 5), seeds)
@example(1, 1, 3, 1, 1, "same", 1, 1, 30844)  # x = 1.4e-5, a single value: dW = x r was checked to only 3.1e-6
def test_conv2d_transpose_gradients(n, c_in, c_out, kernel, stride, padding, height, width, seed):
    rng = np.random.default_rng(seed)
    layer = Conv2DTranspose(c_in, c_out, kernel, stride, padding, rng=rng)
    assume(output_or_none(layer, (c_in, height, width)) is not None)
    layer.params["b"][...] = rng.standard_normal(c_out)
    # x away from 0: where x is a single value, dW is x times r, and a central difference resolves a
    # gradient only to ~1e-10 |L| (rounding), so a tiny x cannot be checked to 1e-6
    assert_gradients_agree(layer, away_from_zero(rng, (n, c_in, height, width)), seed)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3),
       st.sampled_from(["same", "valid", 0, 1]), seeds)
def test_conv2d_transpose_is_the_adjoint_of_conv2d(c_in, c_out, kernel, stride, height, padding, seed):
    """<conv(x), y> = <x, conv_transpose(y)> for the same W: the transposed layer is the true adjoint."""
    rng = np.random.default_rng(seed)
    transpose = Conv2DTranspose(c_in, c_out, kernel, stride, padding, rng=rng, dtype=np.float64)
    small = (c_in, height, height + 1)
    big = output_or_none(transpose, small)
    assume(big is not None)
    conv_padding = padding
    if padding == "same":
        # the strided convolution whose adjoint a "same" transposed convolution is: crop (k-1)//2
        conv_padding = (kernel - 1) // 2
    conv = Conv2D(c_out, c_in, kernel, stride, conv_padding, rng=rng, dtype=np.float64)
    assume(output_or_none(conv, big) == small)
    # Conv2D's W is (out, in, k, k) = (c_in, c_out, k, k): the same array as the transposed layer's.
    conv.params["W"][...] = transpose.params["W"]
    x = rng.standard_normal((2,) + big)
    y = rng.standard_normal((2,) + small)
    lhs = np.sum(conv.forward(x) * y)
    rhs = np.sum(x * transpose.forward(y))
    assert np.isclose(lhs, rhs, rtol=1e-10, atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), seeds)
def test_maxpool_gradients(n, c, pool, height, width, seed):
    assume(height >= pool and width >= pool)
    rng = np.random.default_rng(seed)
    assert_gradients_agree(MaxPool2D(pool), distinct_values(rng, (n, c, height, width)), seed)


def test_maxpool_floor_mode_and_tie_routing():
    layer = MaxPool2D(2)
    x = np.zeros((1, 1, 7, 7), dtype=np.float32)  # every window ties (a blank MNIST background)
    assert layer.forward(x).shape == (1, 1, 3, 3)
    dx = layer.backward(np.ones((1, 1, 3, 3), dtype=np.float32))
    expected = np.zeros((7, 7), dtype=np.float32)
    expected[0:6:2, 0:6:2] = 1.0  # the top-left corner of each window, and nothing else
    np.testing.assert_array_equal(dx[0, 0], expected)


@pytest.mark.parametrize("activation", [ReLU, Sigmoid, Tanh, Identity])
@settings(max_examples=15, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=seeds)
def test_activation_gradients(activation, shape, seed):
    rng = np.random.default_rng(seed)
    assert_gradients_agree(activation(), away_from_zero(rng, tuple(shape)), seed)


def test_relu_derivative_is_zero_at_zero():
    layer = ReLU()
    layer.forward(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(layer.backward(np.ones(3)), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_silent_and_exact_at_extremes(dtype):
    layer = Sigmoid()
    with np.errstate(all="raise"):
        y = layer.forward(np.array([-1e4, -50.0, 0.0, 50.0, 1e4], dtype=dtype))
        dx = layer.backward(np.ones(5, dtype=dtype))
    assert y.dtype == dtype
    assert 0.0 < y[0] < 1e-18 and y[2] == 0.5 and y[-1] == 1.0
    assert np.all(np.isfinite(dx))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), seeds)
def test_shape_layer_gradients(top, bottom, left, right, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 4, 5))
    assert_gradients_agree(ZeroPad2D(((top, bottom), (left, right))), x, seed)
    assert_gradients_agree(Flatten(), x, seed)
    assert_gradients_agree(Reshape((5, 4, 3)), x, seed)


def output_or_none(layer, input_shape):
    """The layer's output shape, or None where the geometry leaves no output."""
    try:
        return layer.output_shape(input_shape)
    except ValueError:
        return None


def small_stack(rng):
    """conv -> relu -> pool -> dense -> reshape -> conv_transpose -> sigmoid, in float64."""
    return Sequential(Conv2D(2, 3, rng=rng), ReLU(), MaxPool2D(), Flatten(), Dense(27, 12, rng=rng),
                      Reshape((3, 2, 2)), Conv2DTranspose(3, 2, rng=rng), Sigmoid()).astype(np.float64)


@settings(max_examples=10, deadline=None)
@given(seeds)
def test_small_stack_gradients(seed):
    rng = np.random.default_rng(seed)
    model = small_stack(rng)
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"][...] = rng.standard_normal(layer.params["b"].shape)
    x = rng.standard_normal((2, 2, 7, 7))
    # Keep away from ReLU kinks and pooling ties at the inputs that matter: check the margins first.
    conv_out = model.layers[0].forward(x, training=False)
    assume(np.min(np.abs(conv_out)) > 1e-3)
    pooled = np.sort(conv_out[:, :, :6, :6].reshape(2, 3, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5)
                     .reshape(2, 3, 3, 3, 4), axis=-1)
    assume(np.min(pooled[..., -1] - pooled[..., -2]) > 1e-3)
    errors = check_layer(model, x, rng=seed)
    assert max(errors.values()) < BOUND, errors


def test_study_encoder_and_decoder_parameter_counts():
    rng = np.random.default_rng(0)
    encoder = Sequential(Conv2D(1, 64, rng=rng), ReLU(), MaxPool2D(), Conv2D(64, 128, rng=rng), ReLU(),
                         MaxPool2D(), Conv2D(128, 256, rng=rng), ReLU(), MaxPool2D(), Flatten(),
                         Dense(2304, 128, rng=rng))
    text = encoder.summary((1, 28, 28), print_fn=None)
    assert encoder.n_params == 664_704
    assert "Total params: 664,704" in text and "(None, 256, 3, 3)" in text
    decoder = Sequential(Dense(128, 2304, rng=rng), ReLU(), Reshape((256, 3, 3)),
                         Conv2DTranspose(256, 128, rng=rng), ReLU(), Conv2DTranspose(128, 64, rng=rng),
                         ReLU(), Conv2DTranspose(64, 1, rng=rng), Sigmoid(), ZeroPad2D(2))
    assert decoder.n_params == 666_625
    assert decoder.output_shape((128,)) == (1, 28, 28)


def test_sequential_parameters_share_the_layer_arrays():
    model = small_stack(np.random.default_rng(0))
    names = [name for name, _, _ in model.parameters()]
    assert names == ["conv2d_1.W", "conv2d_1.b", "dense_1.W", "dense_1.b",
                     "conv2d_transpose_1.W", "conv2d_transpose_1.b"]
    for name, param, grad in model.parameters():
        layer_name, key = name.split(".")
        layer = model.layers[model.names.index(layer_name)]
        assert param is layer.params[key] and grad is layer.grads[key]
    assert "conv2d_transpose_1" in repr(model)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_keep_the_input_dtype(dtype):
    rng = np.random.default_rng(0)
    model = small_stack(rng).astype(dtype)
    x = rng.standard_normal((2, 2, 7, 7)).astype(dtype)
    y = model.forward(x)
    assert y.dtype == dtype
    assert model.backward(np.ones_like(y)).dtype == dtype
    assert all(grad.dtype == dtype for _, _, grad in model.parameters())


def test_backward_adds_into_gradients_and_zero_grad_clears_in_place():
    rng = np.random.default_rng(0)
    layer = Dense(3, 2, rng=rng)
    x, dy = rng.standard_normal((4, 3)).astype(np.float32), np.ones((4, 2), np.float32)
    grad = layer.grads["W"]
    layer.forward(x)
    layer.backward(dy)
    once = grad.copy()
    layer.forward(x)
    layer.backward(dy)
    np.testing.assert_allclose(grad, 2 * once, rtol=1e-6)
    layer.zero_grad()
    assert layer.grads["W"] is grad and not grad.any()


@pytest.mark.parametrize("layer", [Dense(2, 2), Conv2D(1, 1), Conv2DTranspose(1, 1), MaxPool2D(),
                                   ReLU(), Sigmoid(), Tanh(), Identity(), ZeroPad2D(1), Flatten(),
                                   Reshape((4,))], ids=repr)
def test_backward_without_forward_is_an_error(layer):
    with pytest.raises(RuntimeError, match="without a cached forward"):
        layer.backward(np.ones((1, 1)))


def test_forward_in_inference_mode_keeps_no_cache():
    layer = Conv2D(1, 2)
    layer.forward(np.ones((1, 1, 4, 4), np.float32), training=False)
    with pytest.raises(RuntimeError):
        layer.backward(np.ones((1, 2, 4, 4), np.float32))


@pytest.mark.parametrize("layer, x, message", [
    (Dense(2304, 128), np.ones((4, 2300), np.float32), r"Dense\(2304->128\).*\(N, 2304\).*\(4, 2300\)"),
    (Conv2D(1, 64), np.ones((4, 3, 28, 28), np.float32), r"Conv2D\(1->64.*\(N, 1, H, W\).*\(4, 3, 28, 28\)"),
    (Conv2D(1, 64), np.ones((28, 28), np.float32), r"Conv2D.*\(28, 28\)"),
    (Conv2DTranspose(256, 128), np.ones((4, 128, 3, 3), np.float32), r"Conv2DTranspose\(256->128"),
    (MaxPool2D(), np.ones((4, 8, 8), np.float32), r"MaxPool2D.*\(4, 8, 8\)"),
    (Reshape((256, 3, 3)), np.ones((4, 2300), np.float32), r"Reshape.*2304.*\(4, 2300\)"),
])
def test_wrong_input_shape_names_layer_and_shapes(layer, x, message):
    with pytest.raises(ValueError, match=message):
        layer.forward(x)


@pytest.mark.parametrize("build, message", [
    (lambda: Conv2D(1, 64, kernel_size=0), "kernel_size=0"),
    (lambda: Conv2D(1, 64, padding="full"), "padding='full'"),
    (lambda: Dense(0, 3), "in_features=0"),
    (lambda: MaxPool2D(0), "pool_size=0"),
    (lambda: Conv2DTranspose(2, 2, stride=-1), "stride=-1"),
    (lambda: Sequential(Dense(2, 2), "relu"), "Layer instances"),
])
def test_constructors_validate_their_arguments(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()
