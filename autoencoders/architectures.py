"""Builders for the study's networks.

MNIST (sparse, contractive and plain autoencoders)::

    encoder  Conv 1->64, 64->128, 128->256 (3x3 same, ReLU, each followed by MaxPool 2), Flatten,
             Dense 2304->128, latent activation                              664,704 parameters
             (built as Conv, MaxPool, ReLU: the same function and gradient, see conv_encoder)
    decoder  Dense 128->2304 ReLU, Reshape 256x3x3, Conv2DTranspose 256->128 ReLU, 128->64 ReLU,
             64->1 sigmoid (3x3 stride 2), ZeroPad2D(2) to 28x28             666,625 parameters

Frey Face (variational autoencoder)::

    encoder  Flatten 560 -> Dense 256 ReLU -> two heads: mu (20) and log sigma^2 (20)
    decoder  Dense 20->256 ReLU -> Dense 256->560 -> sigmoid, reshaped to the image

Image and latent sizes are arguments, so the builders serve other inputs too.
"""

from __future__ import annotations

import numpy as np

from minidl.layers import (
    Conv2D,
    Conv2DTranspose,
    Dense,
    Flatten,
    Identity,
    Layer,
    MaxPool2D,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Tanh,
    ZeroPad2D,
)

LATENT_ACTIVATIONS = {"sigmoid": Sigmoid, "linear": Identity, "tanh": Tanh, "relu": ReLU}


def latent_activation(name: str) -> Layer:
    """The layer for a latent activation name: ``"sigmoid"``, ``"linear"``, ``"tanh"`` or ``"relu"``."""
    try:
        return LATENT_ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"Unknown latent activation {name!r}; expected one of {sorted(LATENT_ACTIVATIONS)}.") from None


def _bottleneck(image_shape: tuple[int, int, int], n_pools: int) -> tuple[int, int]:
    _, height, width = image_shape
    for _ in range(n_pools):
        height, width = height // 2, width // 2
    if height < 1 or width < 1:
        raise ValueError(f"An image of {image_shape[1]}x{image_shape[2]} is too small for {n_pools} poolings.")
    return height, width


def conv_encoder(
    latent_dim: int = 128,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    filters: tuple[int, ...] = (64, 128, 256),
    latent: str = "sigmoid",
    rng=None,
) -> Sequential:
    """The study's convolutional encoder.

    Shapes
    ------
    x : (N, C, H, W) -> z : (N, latent_dim)

    Notes
    -----
    Each block is the study's convolution, ReLU and max-pooling, with the ReLU applied after the
    pooling: ReLU is monotone, so max(relu(x)) = relu(max(x)), and both orders pick the same first
    maximum and pass the same gradient (zero where the window's maximum is not positive), ties
    included. Applied after the pooling, the ReLU touches a quarter of the values.
    """
    rng = np.random.default_rng(rng)
    layers: list[Layer] = []
    channels = image_shape[0]
    for width in filters:
        layers += [Conv2D(channels, width, 3, padding="same", rng=rng), MaxPool2D(2), ReLU()]
        channels = width
    height, width_ = _bottleneck(image_shape, len(filters))
    layers += [Flatten(), Dense(channels * height * width_, latent_dim, rng=rng), latent_activation(latent)]
    return Sequential(*layers)


def conv_decoder(
    latent_dim: int = 128,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    filters: tuple[int, ...] = (256, 128, 64),
    rng=None,
) -> Sequential:
    """The study's decoder: three stride-2 transposed convolutions, then zero padding to the image size.

    The bottleneck is the encoder's (H // 8 x W // 8 for three poolings); the transposed convolutions
    grow it by 8, and the rest (4 rows and columns for MNIST) is zero padding, split evenly.

    Shapes
    ------
    z : (N, latent_dim) -> x : (N, C, H, W), values in (0, 1) except the zero border
    """
    rng = np.random.default_rng(rng)
    channels, height, width = image_shape
    small_h, small_w = _bottleneck(image_shape, len(filters))
    layers: list[Layer] = [
        Dense(latent_dim, filters[0] * small_h * small_w, rng=rng),
        ReLU(),
        Reshape((filters[0], small_h, small_w)),
    ]
    widths = list(filters[1:]) + [channels]
    previous = filters[0]
    for i, out in enumerate(widths):
        layers.append(Conv2DTranspose(previous, out, 3, stride=2, padding="same", rng=rng))
        layers.append(Sigmoid() if i == len(widths) - 1 else ReLU())
        previous = out
    scale = 2 ** len(widths)
    pad_h, pad_w = height - small_h * scale, width - small_w * scale
    layers.append(ZeroPad2D(((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))))
    return Sequential(*layers)


def vae_encoder(
    input_shape: tuple[int, ...] = (1, 28, 20), hidden: int = 256, latent_dim: int = 20, rng=None
) -> tuple[Sequential, Dense, Dense]:
    """The Frey Face VAE encoder: a shared trunk and the two heads.

    Returns
    -------
    trunk : Sequential
        (N, *input_shape) -> (N, hidden)
    mu_head, logvar_head : Dense
        (N, hidden) -> (N, latent_dim) each.
    """
    rng = np.random.default_rng(rng)
    size = int(np.prod(input_shape))
    trunk = Sequential(Flatten(), Dense(size, hidden, rng=rng), ReLU())
    return trunk, Dense(hidden, latent_dim, rng=rng), Dense(hidden, latent_dim, rng=rng)


def vae_decoder(
    output_shape: tuple[int, ...] = (1, 28, 20), hidden: int = 256, latent_dim: int = 20, n_outputs: int = 1, rng=None
) -> Sequential:
    """The Frey Face VAE decoder, returning *logits* (the sigmoid is applied by the loss or by ``decode``).

    ``n_outputs=2`` doubles the last layer for a Gaussian decoder: mean logits and per-pixel log-variance.

    Shapes
    ------
    z : (N, latent_dim) -> (N, n_outputs * prod(output_shape))
    """
    rng = np.random.default_rng(rng)
    size = int(np.prod(output_shape))
    return Sequential(Dense(latent_dim, hidden, rng=rng), ReLU(), Dense(hidden, n_outputs * size, rng=rng))
