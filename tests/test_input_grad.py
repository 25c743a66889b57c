"""``Layer.needs_input_grad``: a layer whose input is data returns no input gradient, adds the same
parameter gradients, and a network's backward pass stops there."""

import numpy as np
import pytest

from autoencoders.models import Autoencoder, VariationalAutoencoder
from minidl.layers import Dense, Flatten, ReLU, Sequential


@pytest.mark.parametrize("make", [
    lambda rng: Dense(5, 4, rng=rng, dtype=np.float64),
], ids=["dense"])
def test_no_input_gradient_when_not_needed_and_the_same_parameter_gradients(make):
    rng = np.random.default_rng(1)
    layer = make(rng)
    x = rng.standard_normal((3, 2, 5, 5) if not isinstance(layer, Dense) else (3, 5))
    dy = rng.standard_normal((3,) + layer.output_shape(x.shape[1:]))
    layer.forward(x)
    assert layer.backward(dy) is not None
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


def test_models_skip_the_gradient_of_the_images():
    assert not Autoencoder(rng=0).encoder.needs_input_grad
    assert not VariationalAutoencoder(rng=0).trunk.needs_input_grad
