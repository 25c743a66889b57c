"""Max pooling."""

from __future__ import annotations

import numpy as np

from minidl.kernels import maxpool_backward, maxpool_forward
from minidl.layers.base import Layer


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
        x_kernel = np.ascontiguousarray(x, dtype=self._kernel_dtype(x.dtype, "x"))
        y = np.empty((n, c, height // p, width // p), dtype=x_kernel.dtype)
        argmax = np.empty(y.shape, dtype=np.int64)
        maxpool_forward(x_kernel, p, y, argmax)
        y = y.astype(x.dtype, copy=False)
        self._store(training, x, y, argmax=argmax)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        cache = self._cached(dy)
        dy_kernel = np.ascontiguousarray(dy, dtype=self._kernel_dtype(dy.dtype, "dy"))
        dx = np.empty(cache["input_shape"], dtype=dy_kernel.dtype)
        maxpool_backward(dy_kernel, cache["argmax"], dx)
        return dx.astype(dy.dtype, copy=False)

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
        cache = self._start_tangent(t)
        k, n, c = t.shape[:3]
        index = np.broadcast_to(cache["argmax"].reshape(1, n, c, -1), (k, n, c, cache["argmax"][0, 0].size))
        self._store_tangent(index=index, shape=t.shape)
        y = np.take_along_axis(t.reshape(k, n, c, -1), index, axis=-1)
        return y.reshape((k,) + cache["argmax"].shape)

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray, None]:
        cache = self._tangent_cached(dt)
        k, n, c = cache["shape"][:3]
        dx = np.zeros((k, n, c, int(np.prod(cache["shape"][3:]))), dtype=dt.dtype)
        # windows do not overlap, so every index occurs once per (k, n, c): no accumulation needed
        np.put_along_axis(dx, cache["index"], dt.reshape(k, n, c, -1), axis=-1)
        return dx.reshape(cache["shape"]), None

    def output_shape(self, input_shape):
        c, height, width = input_shape
        return (c, height // self.pool_size, width // self.pool_size)

    def __repr__(self) -> str:
        return f"MaxPool2D(pool_size={self.pool_size})"
