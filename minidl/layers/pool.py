"""Max pooling."""

from __future__ import annotations

import numpy as np

from minidl.backend import kernels
from minidl.layers.base import Layer, positive_int
from minidl.layers.memory import as_images, images_last


class MaxPool2D(Layer):
    """Max over non-overlapping ``pool_size x pool_size`` windows, floor mode (7 -> 3).

    Shapes
    ------
    x : (N, C, H, W) -> y : (N, C, H // pool_size, W // pool_size)

    Notes
    -----
    The gradient of each output goes to the *first* maximum of its window in row-major order, and
    nowhere else (PyTorch's and TensorFlow's rule). Ties are common: on MNIST's blank background the
    first convolution outputs exactly its bias, so whole windows tie. Splitting the gradient equally
    among the tied positions is also a valid gradient (and measurably changes nothing on MNIST);
    copying it whole to each would inflate the gradients of the layers below
    (``benchmarks/maxpool_ties.py``, docs/max-pooling.md).
    A NaN in a window is its maximum, as in PyTorch, so a NaN upstream is never hidden by the pool; its
    gradient goes to the first NaN.

    float16 inputs are pooled in float32 and returned as float16 (exact: the pool only selects values);
    other dtypes than float16, float32 and float64 are a TypeError.

    The kernels work on images stored images-last (see :mod:`minidl.layers.memory`), as a convolution
    leaves them; output and input gradient are returned in that layout, as (N, C, H, W) views.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import MaxPool2D
    >>> pool = MaxPool2D(2)
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> pool.forward(x)
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    >>> pool.backward(np.ones((1, 1, 2, 2)))   # the gradient goes to each window's maximum
    array([[[[0., 0., 0., 0.],
             [0., 1., 0., 1.],
             [0., 0., 0., 0.],
             [0., 1., 0., 1.]]]])
    """

    def __init__(self, pool_size: int = 2) -> None:
        super().__init__()
        self.pool_size = positive_int("pool_size", pool_size)

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._check_input(x, (None, None, None, None), "(N, C, H, W)")
        n, c, height, width = x.shape
        p = self.pool_size
        if height < p or width < p:
            raise ValueError(f"{self!r}: input of {height}x{width} is smaller than one window.")
        stored = images_last(x, dtype=self._kernel_dtype(x.dtype, "x"))  # (C, H, W, N)
        y = np.empty((c, height // p, width // p, n), dtype=stored.dtype)
        argmax = np.empty(y.shape, dtype=np.int32)  # a flat index into one image: int32 is plenty
        # y[c, i, j, n] = max over the window x[c, p i : p i + p, p j : p j + p, n]; argmax = where it sits
        kernels.maxpool_forward(stored, p, y, argmax)
        y = as_images(y).astype(x.dtype, copy=False)
        self._store(training, x, y, argmax=argmax)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        cache = self._cached(dy)
        n, c, height, width = cache["input_shape"]
        stored = images_last(dy, dtype=self._kernel_dtype(dy.dtype, "dy"))
        dx = np.empty((c, height, width, n), dtype=stored.dtype)
        # dx = 0, but at each window's argmax: dx[argmax of window (i, j)] = dy[i, j]
        kernels.maxpool_backward(stored, cache["argmax"], self.pool_size, dx)
        return as_images(dx).astype(dy.dtype, copy=False)

    def _kernel_dtype(self, dtype: np.dtype, name: str) -> np.dtype:
        """float32 for float16 (Numba has no float16 arithmetic; a max only selects values and the
        backward pass only moves them, so both are exact in float32 and cast back), else the dtype."""
        if dtype == np.float16:
            return np.dtype(np.float32)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"{self!r}: expected {name} of dtype float16, float32 or float64, received {dtype}.")
        return dtype

    def jvp(self, t: np.ndarray) -> np.ndarray:
        """Tangents (K, N, C, H, W) -> (K, N, C, OH, OW): each window passes its argmax's tangent."""
        argmax = self._start_tangent(t)["argmax"]  # (C, OH, OW, N)
        k, n, c, height, width = t.shape
        # the K tangents of image n are merged images k N + n: the recorded positions repeat K times
        argmax = np.tile(argmax, (1, 1, 1, k)) if k > 1 else argmax
        stored = images_last(self._merge(t), dtype=self._kernel_dtype(t.dtype, "t"))
        y = np.empty(argmax.shape, dtype=stored.dtype)
        kernels.maxpool_gather(stored, argmax, self.pool_size, y)
        self._store_tangent(argmax=argmax, shape=t.shape)
        return as_images(y).reshape((k, n) + y.shape[:3]).astype(t.dtype, copy=False)

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray, None]:
        """The adjoint of :meth:`jvp`: the backward pass of the merged tangents."""
        cache = self._tangent_cached(dt)
        k, n, c, height, width = cache["shape"]
        stored = images_last(self._merge(dt), dtype=self._kernel_dtype(dt.dtype, "dt"))
        dx = np.empty((c, height, width, k * n), dtype=stored.dtype)
        # the same routing for each tangent: dt_in[argmax of window (i, j)] = dt[i, j], 0 elsewhere
        kernels.maxpool_backward(stored, cache["argmax"], self.pool_size, dx)
        return as_images(dx).reshape(cache["shape"]).astype(dt.dtype, copy=False), None

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        c, height, width = input_shape
        return (c, height // self.pool_size, width // self.pool_size)

    def __repr__(self) -> str:
        return f"MaxPool2D(pool_size={self.pool_size})"
