"""Max pooling."""

from __future__ import annotations

import numpy as np

from minidl.kernels import maxpool_backward, maxpool_forward, maxpool_gather
from minidl.layers.base import Layer
from minidl.layers.memory import as_images, images_last


class MaxPool2D(Layer):
    """Max over non-overlapping ``pool_size x pool_size`` windows, floor mode (7 -> 3).

    Shapes
    ------
    x : (N, C, H, W) -> y : (N, C, H // pool_size, W // pool_size)

    Notes
    -----
    The gradient of each output goes to the *first* maximum of its window in row-major order, and
    nowhere else. Ties are common: on MNIST's blank background the first convolution outputs exactly
    its bias, so whole windows tie; sharing the gradient among tied positions would inflate the
    weight gradients of the layers below.

    The kernels work on images stored images-last (see :mod:`minidl.layers.memory`), as a convolution
    leaves them; output and input gradient are returned in that layout, as (N, C, H, W) views.
    """

    def __init__(self, pool_size: int = 2) -> None:
        super().__init__()
        if not isinstance(pool_size, (int, np.integer)) or pool_size <= 0:
            raise ValueError(f"Expected pool_size to be a positive integer. Received: pool_size={pool_size!r}")
        self.pool_size = int(pool_size)

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._check_input(x, (None, None, None, None), "(N, C, H, W)")
        n, c, height, width = x.shape
        p = self.pool_size
        if height < p or width < p:
            raise ValueError(f"{self!r}: input of {height}x{width} is smaller than one window.")
        stored = images_last(x)  # (C, H, W, N)
        y = np.empty((c, height // p, width // p, n), dtype=x.dtype)
        argmax = np.empty(y.shape, dtype=np.int32)  # a flat index into one image: int32 is plenty
        maxpool_forward(stored, p, y, argmax)
        self._store(training, argmax=argmax, input_shape=x.shape)
        return as_images(y)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        cache = self._cached()
        n, c, height, width = cache["input_shape"]
        dx = np.empty((c, height, width, n), dtype=dy.dtype)
        maxpool_backward(images_last(dy), cache["argmax"], self.pool_size, dx)
        return as_images(dx)

    def jvp(self, t: np.ndarray) -> np.ndarray:
        """Tangents (K, N, C, H, W) -> (K, N, C, OH, OW): each window passes its argmax's tangent."""
        argmax = self._cached()["argmax"]  # (C, OH, OW, N)
        k, n, c, height, width = t.shape
        # the K tangents of image n are merged images k N + n: the recorded positions repeat K times
        argmax = np.tile(argmax, (1, 1, 1, k)) if k > 1 else argmax
        y = np.empty(argmax.shape, dtype=t.dtype)
        maxpool_gather(images_last(self._merge(t)), argmax, self.pool_size, y)
        self._store_tangent(argmax=argmax, shape=t.shape)
        return as_images(y).reshape((k, n) + y.shape[:3])

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray, None]:
        """The adjoint of :meth:`jvp`: the backward pass of the merged tangents."""
        cache = self._tangent_cached()
        k, n, c, height, width = cache["shape"]
        dx = np.empty((c, height, width, k * n), dtype=dt.dtype)
        maxpool_backward(images_last(self._merge(dt)), cache["argmax"], self.pool_size, dx)
        return as_images(dx).reshape(cache["shape"]), None

    def output_shape(self, input_shape):
        c, height, width = input_shape
        return (c, height // self.pool_size, width // self.pool_size)

    def __repr__(self) -> str:
        return f"MaxPool2D(pool_size={self.pool_size})"
