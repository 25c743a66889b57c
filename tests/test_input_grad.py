"""``Layer.needs_input_grad``: a layer whose input is data returns no input gradient, adds the same
parameter gradients, and a network's backward pass stops there."""

import numpy as np
import pytest

from autoencoders.architectures import conv_decoder, conv_encoder
from autoencoders.models import Autoencoder, VariationalAutoencoder
from minidl.contractive import contractive_penalty
from minidl.layers import Conv2D, Conv2DTranspose, Dense, Flatten, ReLU, Sequential


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
