"""Weight initialisers. Each takes the shape, the fans and an explicit ``np.random.Generator``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import DTypeLike


def glorot_uniform(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator, dtype: DTypeLike = np.float32
) -> np.ndarray:
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), the Keras default for Dense and Conv kernels."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator, dtype: DTypeLike = np.float32
) -> np.ndarray:
    """N(0, 2 / fan_in) truncated at two standard deviations, as Keras' ``he_normal``.

    ``fan_out`` is accepted (and ignored) so that every initialiser has one signature.
    """
    std = np.sqrt(2.0 / fan_in) / 0.87962566103423978  # std of a unit normal truncated to [-2, 2]
    values = rng.standard_normal(size=shape)
    outside = np.abs(values) > 2.0
    while outside.any():  # resample, as truncated_normal does, rather than clip (which piles up at +-2)
        values[outside] = rng.standard_normal(size=int(outside.sum()))
        outside = np.abs(values) > 2.0
    return (values * std).astype(dtype)


def zeros(
    shape: tuple[int, ...],
    fan_in: int = 0,
    fan_out: int = 0,
    rng: np.random.Generator | None = None,
    dtype: DTypeLike = np.float32,
) -> np.ndarray:
    """All zeros (the default for biases)."""
    return np.zeros(shape, dtype=dtype)


# (shape, fan_in, fan_out, rng, dtype=...) -> the initial array, as the functions above
Initializer = Callable[..., np.ndarray]

INITIALIZERS: dict[str, Initializer] = {"glorot_uniform": glorot_uniform, "he_normal": he_normal, "zeros": zeros}


def get_initializer(name_or_function: str | Initializer) -> Initializer:
    """Look an initialiser up by name, or pass a callable through."""
    if callable(name_or_function):
        return name_or_function
    try:
        return INITIALIZERS[name_or_function]
    except KeyError:
        raise ValueError(
            f"Unknown initializer {name_or_function!r}; expected one of {sorted(INITIALIZERS)} or a callable."
        ) from None
