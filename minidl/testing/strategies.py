"""Hypothesis strategies for gradient tests: valid layer geometries and inputs away from kinks.

Values come from ``np.random.default_rng(seed)`` with a drawn seed, so a failing example is reproduced
by its seed and the arrays are always of moderate size (hypothesis's own float arrays would include
1e308 and subnormals, where a gradient check fails for reasons that are not bugs).

Needs hypothesis (the ``test`` extra); :mod:`minidl.testing` imports this module only when asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from minidl.layers.base import Layer
from minidl.layers.conv import conv_geometry, conv_transpose_geometry
from minidl.testing.kinks import smallest_kink_distance

seeds = st.integers(0, 2**32 - 1)

# a shape, or a strategy that draws one
Shape = tuple[int, ...] | st.SearchStrategy[tuple[int, ...]]


@dataclass(frozen=True)
class ConvGeometry:
    """Settings of a convolution (or transposed convolution) and a batch shape it accepts."""

    batch: int
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    padding: str | int
    height: int
    width: int

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """(N, C_in, H, W)."""
        return (self.batch, self.in_channels, self.height, self.width)

    @property
    def settings(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~minidl.layers.Conv2D` / :class:`~minidl.layers.Conv2DTranspose`."""
        return dict(
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
        )


@st.composite
def conv_geometries(
    draw: st.DrawFn,
    transpose: bool = False,
    max_batch: int = 2,
    max_channels: int = 3,
    max_kernel: int = 4,
    max_stride: int = 3,
    max_size: int = 8,
    paddings: Sequence[str | int] = ("same", "valid", 0, 1, 2),
) -> ConvGeometry:
    """Geometries whose output is non-empty: for :class:`Conv2D`, or :class:`Conv2DTranspose` when
    ``transpose``. Every padding mode, even and odd kernels, strides above the kernel size."""
    kernel = draw(st.integers(1, max_kernel))
    stride = draw(st.integers(1, max_stride))
    padding = draw(st.sampled_from(paddings))
    size = conv_transpose_geometry if transpose else conv_geometry
    low = 1 if transpose else max(1, kernel - 2 * (padding if isinstance(padding, int) else 0))
    low = 1 if padding == "same" else low
    assume(low <= max_size)
    height = draw(st.integers(low, max_size))
    width = draw(st.integers(low, max_size))
    assume(size(height, kernel, stride, padding)[0] > 0 and size(width, kernel, stride, padding)[0] > 0)
    return ConvGeometry(
        draw(st.integers(1, max_batch)),
        draw(st.integers(1, max_channels)),
        draw(st.integers(1, max_channels)),
        kernel,
        stride,
        padding,
        height,
        width,
    )


@dataclass(frozen=True)
class PoolGeometry:
    """A pooling size and a batch shape with at least one window."""

    batch: int
    channels: int
    pool_size: int
    height: int
    width: int

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.channels, self.height, self.width)


@st.composite
def pool_geometries(
    draw: st.DrawFn, max_batch: int = 3, max_channels: int = 3, max_pool: int = 3, max_size: int = 9
) -> PoolGeometry:
    """Pool sizes with inputs at least one window large, including sizes that floor mode crops (7 -> 3)."""
    pool = draw(st.integers(1, max_pool))
    return PoolGeometry(
        draw(st.integers(1, max_batch)),
        draw(st.integers(1, max_channels)),
        pool,
        draw(st.integers(pool, max(pool, max_size))),
        draw(st.integers(pool, max(pool, max_size))),
    )


def _shape(draw: st.DrawFn, shape: Shape) -> tuple[int, ...]:
    return tuple(draw(shape)) if isinstance(shape, st.SearchStrategy) else tuple(shape)


@st.composite
def away_from_zero(draw: st.DrawFn, shape: Shape, margin: float = 0.1) -> np.ndarray:
    """Standard normal values pushed ``margin`` away from 0 (the kink of ReLU), float64."""
    x = np.random.default_rng(draw(seeds)).standard_normal(_shape(draw, shape))
    return x + margin * np.where(x >= 0, 1.0, -1.0)


@st.composite
def distinct_values(draw: st.DrawFn, shape: Shape, gap: float = 0.01) -> np.ndarray:
    """A random permutation of values ``gap`` apart, centred on 0: no two entries anywhere are closer than
    ``gap``, so no pooling window has a near-tie. float64."""
    shape = _shape(draw, shape)
    size = int(np.prod(shape))
    values = np.random.default_rng(draw(seeds)).permutation(size) * gap - (size - 1) * gap / 2
    return values.reshape(shape)


@st.composite
def kink_free_inputs(
    draw: st.DrawFn, layer: Layer, shape: Shape, margin: float = 1e-3, scale: float = 1.0
) -> np.ndarray:
    """Normal inputs (standard deviation ``scale``) on which every kink of ``layer`` is at least ``margin``
    away, by :func:`minidl.testing.smallest_kink_distance` (the built-in layers, a Sequential of them, or
    your layer's ``kink_distance`` hook). Inputs too near a kink are rejected, not moved.

    The default margin, 1e-3, is a thousand steps h: no central difference of the check crosses a kink.
    """
    x = scale * np.random.default_rng(draw(seeds)).standard_normal(_shape(draw, shape))
    nearest = smallest_kink_distance(layer, x)
    assume(nearest is None or nearest.distance >= margin)
    return x
