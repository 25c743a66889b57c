"""The layers' fast paths give the plain paths' results: any memory layout in, the same numbers out; views
stored images-last, scratch arrays reused and kept apart between passes; ReLU after pooling as before it;
the logit loss's shared exponential. And ``Layer.needs_input_grad``: a layer whose input is data returns no
input gradient, adds the same parameter gradients, and a network's backward pass stops there."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoencoders.architectures import conv_decoder, conv_encoder
from autoencoders.models import Autoencoder, VariationalAutoencoder
from minidl.contractive import contractive_penalty
from minidl.layers import Conv2D, Conv2DTranspose, Dense, Flatten, MaxPool2D, ReLU, Sequential, sigmoid
from minidl.layers.memory import IMAGES_LAST, Workspace, empty, flat, memory_axes
from minidl.losses import bce_with_logits

seeds = st.integers(0, 2**32 - 1)
LAYOUTS = {
    "C order": (0, 1, 2, 3),
    "images last": IMAGES_LAST,
    "channel-major": (1, 0, 2, 3),
    "channels last": (0, 2, 3, 1),
}


def in_layout(x, axes):
    """The same logical array, stored in the memory order ``axes``."""
    y = empty(x.shape, axes, x.dtype)
    y[...] = x
    return y


def image_layers(rng, channels):
    return {
        "conv": lambda: Conv2D(channels, 3, 3, padding="same", rng=rng, dtype=np.float64),
        "strided conv": lambda: Conv2D(channels, 2, 3, stride=2, padding="valid", rng=rng, dtype=np.float64),
        "conv transpose": lambda: Conv2DTranspose(channels, 2, 3, stride=2, rng=rng, dtype=np.float64),
        "pool": lambda: MaxPool2D(2),
        "relu": lambda: ReLU(),
    }


@pytest.mark.parametrize("kind", ["conv", "strided conv", "conv transpose", "pool", "relu"])
@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 3), channels=st.integers(1, 3), size=st.integers(4, 7), seed=seeds)
def test_layers_give_the_same_numbers_for_every_input_layout(kind, n, channels, size, seed):
    rng = np.random.default_rng(seed)
    layer = image_layers(rng, channels)[kind]()
    for name in layer.params:
        layer.params[name][...] = rng.standard_normal(layer.params[name].shape)
    x = rng.permutation(n * channels * size * size).reshape(n, channels, size, size) * 0.1 - 1.0  # no ties
    dy = rng.standard_normal((n,) + layer.output_shape(x.shape[1:]))
    results = {}
    for name, axes in LAYOUTS.items():
        layer.zero_grad()
        y = layer.forward(in_layout(x, axes))
        dx = layer.backward(in_layout(dy, axes))
        results[name] = (y, dx, {key: grad.copy() for key, grad in layer.grads.items()})
    y0, dx0, grads0 = results["C order"]
    for y, dx, grads in results.values():
        np.testing.assert_allclose(y, y0, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, dx0, rtol=1e-12, atol=1e-12)
        for key in grads0:
            np.testing.assert_allclose(grads[key], grads0[key], rtol=1e-12, atol=1e-12)


def test_convolutions_and_pooling_return_images_last_views_and_elementwise_layers_keep_them():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    for algorithm in ("im2col", "winograd"):
        y = Conv2D(3, 5, 3, rng=rng, algorithm=algorithm).forward(x)
        assert memory_axes(y) == IMAGES_LAST and y.base is not None  # a view: no copy was made
    assert memory_axes(ReLU().forward(y)) == IMAGES_LAST
    assert memory_axes(MaxPool2D(2).forward(y)) == IMAGES_LAST
    assert memory_axes(Conv2DTranspose(3, 5, 3, rng=rng).forward(x)) == IMAGES_LAST


def test_flat_lines_up_elements_of_any_two_layouts():
    x = np.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    for axes in LAYOUTS.values():
        stored = in_layout(x, axes)
        assert np.shares_memory(flat(stored, axes), stored)
        np.testing.assert_array_equal(flat(stored, axes), flat(x, axes))


def test_workspace_reuses_an_array_until_shape_or_dtype_change():
    workspace = Workspace()
    a = workspace.get("cols", (3, 4), np.float32)
    assert workspace.get("cols", (3, 4), np.float32) is a
    assert workspace.get("cols", (3, 5), np.float32) is not a
    assert workspace.get("cols", (3, 5), np.float64).dtype == np.float64
    assert workspace.get("other", (3, 5), np.float64) is not workspace.get("cols", (3, 5), np.float64)


@pytest.mark.parametrize("algorithm", ["im2col", "winograd"])
def test_a_tangent_pass_between_forward_and_backward_changes_nothing(algorithm):
    """The contractive penalty runs jvp between a forward pass and its backward pass: the scratch
    arrays of the two must be separate (here the tangents fill buffers of the forward pass's shapes)."""
    rng = np.random.default_rng(0)
    layer = Conv2D(2, 3, 3, rng=rng, dtype=np.float64, algorithm=algorithm)
    x, t = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((1, 2, 2, 6, 6))
    dy = rng.standard_normal((2, 3, 6, 6))
    layer.forward(x)
    expected_dx = layer.backward(dy).copy()
    expected_dW = layer.grads["W"].copy()
    layer.zero_grad()
    layer.forward(x)
    layer.jvp(t)
    np.testing.assert_array_equal(layer.backward(dy), expected_dx)
    np.testing.assert_array_equal(layer.grads["W"], expected_dW)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), channels=st.integers(1, 3), size=st.integers(2, 7), ties=st.booleans(), seed=seeds)
def test_relu_after_pooling_is_the_same_function_and_gradient_as_before_it(n, channels, size, ties, seed):
    """The encoder applies ReLU after max-pooling: values, gradients and tangents equal the study's
    order exactly, on tie-heavy inputs with zeros and negative windows too."""
    rng = np.random.default_rng(seed)
    shape = (n, channels, size, size)
    x = (rng.integers(-2, 3, shape) if ties else rng.standard_normal(shape)).astype(np.float64)
    study, ours = (ReLU(), MaxPool2D(2)), (MaxPool2D(2), ReLU())
    y_study = study[1].forward(study[0].forward(x))
    y_ours = ours[1].forward(ours[0].forward(x))
    np.testing.assert_array_equal(y_ours, y_study)
    dy = rng.standard_normal(y_study.shape)
    np.testing.assert_array_equal(ours[0].backward(ours[1].backward(dy)), study[0].backward(study[1].backward(dy)))
    t = rng.standard_normal((2,) + shape)
    np.testing.assert_array_equal(ours[1].jvp(ours[0].jvp(t)), study[1].jvp(study[0].jvp(t)))


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([np.float32, np.float64]), st.sampled_from([1.0, 30.0, 1000.0]), seeds)
def test_bce_with_logits_shares_one_exponential_and_gives_the_sigmoid_bit_for_bit(dtype, spread, seed):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((4, 9)) * spread).astype(dtype)
    target = rng.random((4, 9)).astype(dtype)
    _, dlogits = bce_with_logits(logits, target, reduction="sum")
    np.testing.assert_array_equal(dlogits, ((sigmoid(logits) - target) / 4).astype(dtype))


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: Conv2D(2, 3, 3, rng=rng, dtype=np.float64),
        lambda rng: Conv2DTranspose(2, 3, 3, rng=rng, dtype=np.float64),
        lambda rng: Dense(5, 4, rng=rng, dtype=np.float64),
    ],
    ids=["conv", "conv transpose", "dense"],
)
def test_no_input_gradient_when_not_needed_and_the_same_parameter_gradients(make):
    rng = np.random.default_rng(1)
    layer = make(rng)
    x = rng.standard_normal((3, 2, 5, 5) if not isinstance(layer, Dense) else (3, 5))
    dy = rng.standard_normal((3,) + layer.output_shape(x.shape[1:]))
    layer.forward(x)
    assert layer.backward(dy).shape == x.shape
    expected = {key: grad.copy() for key, grad in layer.grads.items()}
    layer.zero_grad()
    layer.needs_input_grad = False
    layer.forward(x)
    assert layer.backward(dy) is None
    for key, grad in layer.grads.items():
        np.testing.assert_array_equal(grad, expected[key])
    layer.jvp(rng.standard_normal((2,) + x.shape))
    dt_in, _ = layer.jvp_backward(rng.standard_normal((2,) + dy.shape))
    assert dt_in is None


def test_sequential_stops_its_backward_pass_at_the_first_layer_with_parameters():
    rng = np.random.default_rng(2)
    network = Sequential(Flatten(), Dense(6, 4, rng=rng), ReLU(), Dense(4, 2, rng=rng))
    assert network.needs_input_grad
    x = rng.standard_normal((3, 2, 3))
    network.forward(x)
    assert network.backward(np.ones((3, 2), np.float32)).shape == x.shape
    network.needs_input_grad = False
    assert not network.layers[1].needs_input_grad and network.layers[3].needs_input_grad
    network.forward(x)
    assert network.backward(np.ones((3, 2), np.float32)) is None


def test_models_skip_the_gradient_of_the_images_but_the_penalty_still_sees_the_data_gradient_when_asked():
    assert not Autoencoder(rng=0).encoder.needs_input_grad
    assert not VariationalAutoencoder(rng=0).trunk.needs_input_grad
    rng = np.random.default_rng(3)
    encoder = conv_encoder(latent_dim=3, image_shape=(1, 8, 8), filters=(2, 2), latent="sigmoid", rng=rng)
    decoder = conv_decoder(latent_dim=3, image_shape=(1, 8, 8), filters=(2, 2), rng=rng)
    x = rng.random((2, 1, 8, 8)).astype(np.float32)
    encoder.forward(x)
    _, dx = contractive_penalty(encoder, x, "hutchinson", rng=rng)
    assert dx.shape == x.shape
    Autoencoder(encoder, decoder)
    encoder.forward(x)
    assert contractive_penalty(encoder, x, "hutchinson", rng=rng)[1] is None
