"""Every layer through minidl.testing: the analytic backward, the tangent pass and its backward against
central differences (float64), the adjoint of the transposed convolution; contracts and errors."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

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
from minidl.testing import (
    assert_adjoint,
    assert_layer_gradients,
    away_from_zero,
    conv_geometries,
    distinct_values,
    kink_free_inputs,
    pool_geometries,
    seeds,
)

# every test here runs on both backends: the compiled kernels and their NumPy twins
pytestmark = pytest.mark.usefixtures("backend")


def random_biases(layer, rng):
    """Zero biases hide a missing bias term; random ones do not."""
    for inner in getattr(layer, "layers", [layer]):
        if "b" in inner.params:
            inner.params["b"][...] = rng.standard_normal(inner.params["b"].shape)
    return layer


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), seeds)
def test_dense_gradients(n, fan_in, fan_out, seed):
    rng = np.random.default_rng(seed)
    layer = random_biases(Dense(fan_in, fan_out, rng=rng, dtype=np.float64), rng)
    assert_layer_gradients(layer, rng.standard_normal((n, fan_in)), rng=seed)


@settings(max_examples=30, deadline=None)
@given(conv_geometries(), seeds)
def test_conv2d_gradients(geometry, seed):
    rng = np.random.default_rng(seed)
    layer = random_biases(Conv2D(**geometry.settings, rng=rng, dtype=np.float64), rng)
    assert_layer_gradients(layer, rng.standard_normal(geometry.input_shape), rng=seed)


@settings(max_examples=30, deadline=None)
@given(conv_geometries(transpose=True, max_size=5), seeds)
def test_conv2d_transpose_gradients(geometry, seed):
    rng = np.random.default_rng(seed)
    layer = random_biases(Conv2DTranspose(**geometry.settings, rng=rng, dtype=np.float64), rng)
    assert_layer_gradients(layer, rng.standard_normal(geometry.input_shape), rng=seed)


@settings(max_examples=30, deadline=None)
@given(conv_geometries(transpose=True, max_size=4, paddings=("same", "valid", 0, 1)), seeds)
def test_conv2d_transpose_is_the_adjoint_of_conv2d(geometry, seed):
    """The linear part of Conv2DTranspose is the adjoint of Conv2D's with the same W, wherever the
    convolution maps the transposed layer's output size back to its input size. Its padding is the
    transposed layer's integer padding, and (k - 1) // 2 for "same"."""
    rng = np.random.default_rng(seed)
    transpose = Conv2DTranspose(**geometry.settings, rng=rng, dtype=np.float64)
    small = geometry.input_shape
    big = (small[0],) + transpose.output_shape(small[1:])
    padding = (geometry.kernel_size - 1) // 2 if geometry.padding == "same" else geometry.padding
    conv = Conv2D(
        geometry.out_channels, geometry.in_channels, geometry.kernel_size, geometry.stride, padding, dtype=np.float64
    )
    conv.params["W"] = transpose.params["W"]  # (out, in, k, k) of the convolution = (in, out, k, k) here
    try:
        maps_back = conv.output_shape(big[1:]) == small[1:]
    except ValueError:
        maps_back = False
    assume(maps_back)
    # both biases are zero, so each forward pass is the linear map
    assert_adjoint(
        lambda x: conv.forward(x, training=False), lambda y: transpose.forward(y, training=False), big, small, rng=seed
    )


@settings(max_examples=30, deadline=None)
@given(pool_geometries(), st.data(), seeds)
def test_maxpool_gradients(geometry, data, seed):
    x = data.draw(distinct_values(geometry.input_shape))  # no ties anywhere
    assert_layer_gradients(MaxPool2D(geometry.pool_size), x, rng=seed)


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
@given(x=away_from_zero(st.lists(st.integers(1, 4), min_size=1, max_size=4)), seed=seeds)
def test_activation_gradients(activation, x, seed):
    assert_layer_gradients(activation(), x, rng=seed)


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
    x = np.random.default_rng(seed).standard_normal((2, 3, 4, 5))
    assert_layer_gradients(ZeroPad2D(((top, bottom), (left, right))), x, rng=seed)
    assert_layer_gradients(Flatten(), x, rng=seed)
    assert_layer_gradients(Reshape((5, 4, 3)), x, rng=seed)


def small_stack(rng):
    """conv -> relu -> pool -> dense -> reshape -> conv_transpose -> sigmoid, in float64."""
    return Sequential(
        Conv2D(2, 3, rng=rng),
        ReLU(),
        MaxPool2D(),
        Flatten(),
        Dense(27, 12, rng=rng),
        Reshape((3, 2, 2)),
        Conv2DTranspose(3, 2, rng=rng),
        Sigmoid(),
    ).astype(np.float64)


@settings(max_examples=10, deadline=None)
@given(st.data(), seeds)
def test_small_stack_gradients(data, seed):
    model = random_biases(small_stack(np.random.default_rng(seed)), np.random.default_rng(seed))
    x = data.draw(kink_free_inputs(model, (2, 2, 7, 7)))
    assert_layer_gradients(model, x, rng=seed)


def test_study_encoder_and_decoder_parameter_counts():
    rng = np.random.default_rng(0)
    encoder = Sequential(
        Conv2D(1, 64, rng=rng),
        ReLU(),
        MaxPool2D(),
        Conv2D(64, 128, rng=rng),
        ReLU(),
        MaxPool2D(),
        Conv2D(128, 256, rng=rng),
        ReLU(),
        MaxPool2D(),
        Flatten(),
        Dense(2304, 128, rng=rng),
    )
    text = encoder.summary((1, 28, 28), print_fn=None)
    assert encoder.n_params == 664_704
    assert "Total params: 664,704" in text and "(None, 256, 3, 3)" in text
    decoder = Sequential(
        Dense(128, 2304, rng=rng),
        ReLU(),
        Reshape((256, 3, 3)),
        Conv2DTranspose(256, 128, rng=rng),
        ReLU(),
        Conv2DTranspose(128, 64, rng=rng),
        ReLU(),
        Conv2DTranspose(64, 1, rng=rng),
        Sigmoid(),
        ZeroPad2D(2),
    )
    assert decoder.n_params == 666_625
    assert decoder.output_shape((128,)) == (1, 28, 28)


def test_sequential_parameters_share_the_layer_arrays():
    model = small_stack(np.random.default_rng(0))
    names = [name for name, _, _ in model.parameters()]
    assert names == [
        "conv2d_1.W",
        "conv2d_1.b",
        "dense_1.W",
        "dense_1.b",
        "conv2d_transpose_1.W",
        "conv2d_transpose_1.b",
    ]
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


@pytest.mark.parametrize(
    "layer",
    [
        Dense(2, 2),
        Conv2D(1, 1),
        Conv2DTranspose(1, 1),
        MaxPool2D(),
        ReLU(),
        Sigmoid(),
        Tanh(),
        Identity(),
        ZeroPad2D(1),
        Flatten(),
        Reshape((4,)),
    ],
    ids=repr,
)
def test_backward_without_forward_is_an_error(layer):
    with pytest.raises(RuntimeError, match="without a cached forward"):
        layer.backward(np.ones((1, 1)))


def test_forward_in_inference_mode_keeps_no_cache():
    layer = Conv2D(1, 2)
    layer.forward(np.ones((1, 1, 4, 4), np.float32), training=False)
    with pytest.raises(RuntimeError):
        layer.backward(np.ones((1, 2, 4, 4), np.float32))


@pytest.mark.parametrize(
    "layer, x, message",
    [
        (Dense(2304, 128), np.ones((4, 2300), np.float32), r"Dense\(2304->128\).*\(N, 2304\).*\(4, 2300\)"),
        (Conv2D(1, 64), np.ones((4, 3, 28, 28), np.float32), r"Conv2D\(1->64.*\(N, 1, H, W\).*\(4, 3, 28, 28\)"),
        (Conv2D(1, 64), np.ones((28, 28), np.float32), r"Conv2D.*\(28, 28\)"),
        (Conv2DTranspose(256, 128), np.ones((4, 128, 3, 3), np.float32), r"Conv2DTranspose\(256->128"),
        (MaxPool2D(), np.ones((4, 8, 8), np.float32), r"MaxPool2D.*\(4, 8, 8\)"),
        (Reshape((256, 3, 3)), np.ones((4, 2300), np.float32), r"Reshape.*2304.*\(4, 2300\)"),
    ],
)
def test_wrong_input_shape_names_layer_and_shapes(layer, x, message):
    with pytest.raises(ValueError, match=message):
        layer.forward(x)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Conv2D(1, 64, kernel_size=0), "kernel_size=0"),
        (lambda: Conv2D(1, 64, padding="full"), "padding='full'"),
        (lambda: Dense(0, 3), "in_features=0"),
        (lambda: MaxPool2D(0), "pool_size=0"),
        (lambda: Conv2DTranspose(2, 2, stride=-1), "stride=-1"),
        (lambda: Sequential(Dense(2, 2), "relu"), "Layer instances"),
    ],
)
def test_constructors_validate_their_arguments(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()
