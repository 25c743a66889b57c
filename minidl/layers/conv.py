"""2-D convolution and its adjoint, the transposed convolution, as im2col + one GEMM per batch.

Both layers share one picture. A strided convolution with weight W of shape (F, C, kH, kW) maps an
image (C, H, W) to (F, OH, OW); with the columns of all N images side by side, the whole batch is
``W.reshape(F, -1) @ im2col(x) + b``. The transposed convolution is the *adjoint* of that map: it
multiplies by the transposed matrix and folds the columns back with ``col2im``. Forward of one is
backward of the other.
"""

from __future__ import annotations

import math

import numpy as np

from minidl.init import get_initializer
from minidl.kernels import col2im, im2col
from minidl.layers.base import Layer


def _positive_int(name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Expected {name} to be a positive integer. Received: {name}={value!r}")
    return int(value)


def _check_padding(padding) -> str | int:
    if padding in ("same", "valid"):
        return padding
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool) and padding >= 0:
        return int(padding)
    raise ValueError("Expected padding to be 'same', 'valid' or a non-negative integer. "
                     f"Received: padding={padding!r}")


def conv_geometry(size: int, kernel: int, stride: int, padding) -> tuple[int, int]:
    """Output size and leading padding of a convolution along one axis.

    ``"same"`` follows TensorFlow: out = ceil(size / stride), and the total padding
    max((out - 1) * stride + kernel - size, 0) is split with the extra row at the end
    (for a 3x3 kernel at stride 1 that is one row on each side, as PyTorch's ``padding=1``).
    ``"valid"`` is padding 0; an integer p pads p on both sides: out = (size + 2p - kernel) // stride + 1.
    """
    if padding == "same":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2
    pad = 0 if padding == "valid" else padding
    return (size + 2 * pad - kernel) // stride + 1, pad


def conv_transpose_geometry(size: int, kernel: int, stride: int, padding) -> tuple[int, int]:
    """Output size and cropped leading rows of a transposed convolution along one axis.

    ``"same"``: out = size * stride with (kernel - 1) // 2 rows cropped in front, the numbers of
    PyTorch's ``conv_transpose2d(padding=(k - 1) // 2, output_padding=stride - 1)`` for odd kernels.
    An integer p (or ``"valid"`` = 0): out = (size - 1) * stride + kernel - 2p, as PyTorch's ``padding=p``.
    """
    if padding == "same":
        return size * stride, (kernel - 1) // 2
    pad = 0 if padding == "valid" else padding
    return (size - 1) * stride + kernel - 2 * pad, pad


class _Convolution(Layer):
    """What :class:`Conv2D` and :class:`Conv2DTranspose` share: validated settings, a weight and a bias,
    and each layer's own linear map, ``_linear`` (the forward pass with the bias, and the tangent pass,
    which is the same map without it) and ``_linear_backward``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, rng, kernel_initializer,
                 dtype, weight_shape: str) -> None:
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.out_channels = _positive_int("out_channels", out_channels)
        self.kernel_size = _positive_int("kernel_size", kernel_size)
        self.stride = _positive_int("stride", stride)
        self.padding = _check_padding(padding)
        k = self.kernel_size
        init = get_initializer(kernel_initializer)
        rng = np.random.default_rng(rng)
        # Keras's fans: receptive field x input channels (fan in) and x output channels (fan out).
        fan_in, fan_out = self.in_channels * k * k, self.out_channels * k * k
        if weight_shape == "out_in":
            shape = (self.out_channels, self.in_channels, k, k)
        else:  # a transposed kernel (in, out, k, k): Keras counts its fans the other way round
            shape, fan_in, fan_out = (self.in_channels, self.out_channels, k, k), fan_out, fan_in
        self._add_param("W", init(shape, fan_in, fan_out, rng, dtype=dtype))
        self._add_param("b", np.zeros(self.out_channels, dtype=dtype))

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._check_input(x, (None, self.in_channels, None, None), f"(N, {self.in_channels}, H, W)")
        y, cache = self._linear(x, self.params["b"])
        self._store(training, x, y, **cache)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        cache = self._cached(dy)
        self.grads["b"] += dy.sum(axis=(0, 2, 3))
        return self._linear_backward(cache, dy)

    def jvp(self, t: np.ndarray) -> np.ndarray:
        """Tangents (K, N, C_in, H, W) -> (K, N, C_out, OH, OW): the linear map without the bias."""
        self._start_tangent(t)
        y, cache = self._linear(self._merge(t))
        self._store_tangent(**cache)
        return y.reshape(t.shape[:2] + y.shape[1:])

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray, None]:
        dx = self._linear_backward(self._tangent_cached(dt), self._merge(dt))
        return dx.reshape(dt.shape[:2] + dx.shape[1:]), None

    def output_shape(self, input_shape):
        _, height, width = input_shape
        out_h, out_w, _, _ = self._geometry(height, width)
        return (self.out_channels, out_h, out_w)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}->{self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r})")


class Conv2D(_Convolution):
    """2-D convolution (cross-correlation, as every framework computes it).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
        Square kernels only.
    stride : int
    padding : "same", "valid" or int
        See :func:`conv_geometry`.
    rng : np.random.Generator, int or None
    kernel_initializer : str or callable, default "glorot_uniform"
    dtype : float32 by default.

    Shapes
    ------
    x : (N, C, H, W) -> y : (N, F, OH, OW),
        OH = (H + pad_top + pad_bottom - kH) // stride + 1 (see :func:`conv_geometry`).
    W : (F, C, kH, kW), b : (F,)

    Notes
    -----
    With cols = im2col(x) of shape (C kH kW, N OH OW) and W2 = W.reshape(F, C kH kW), the whole batch is
    one product Y = W2 @ cols + b, with Y of shape (F, N OH OW) (the batch axis is moved back to the front).
    With dY the upstream gradient in the same layout, the backward pass is three products:
    dW2 = dY @ cols.T,  db = the sum of dY over its columns,  dx = col2im(W2.T @ dY).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding="same", rng=None, kernel_initializer="glorot_uniform",
                 dtype=np.float32) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, rng, kernel_initializer,
                         dtype, weight_shape="out_in")

    def _geometry(self, height: int, width: int) -> tuple[int, int, int, int]:
        out_h, pad_top = conv_geometry(height, self.kernel_size, self.stride, self.padding)
        out_w, pad_left = conv_geometry(width, self.kernel_size, self.stride, self.padding)
        if out_h <= 0 or out_w <= 0:
            raise ValueError(f"{self!r}: input of {height}x{width} is smaller than the kernel "
                             f"({self.kernel_size}x{self.kernel_size}) allows.")
        return out_h, out_w, pad_top, pad_left

    def _linear(self, x: np.ndarray, bias: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
        """W * x (+ bias), and what the backward pass of the linear part needs."""
        n, _, height, width = x.shape
        out_h, out_w, pad_top, pad_left = self._geometry(height, width)
        k = self.kernel_size
        W = self.params["W"]
        dtype = np.result_type(x, W)
        cols = np.empty((self.in_channels * k * k, n * out_h * out_w), dtype=dtype)
        im2col(np.ascontiguousarray(x, dtype=dtype), k, k, self.stride, pad_top, pad_left,
               out_h, out_w, cols)
        product = W.reshape(self.out_channels, -1).astype(dtype, copy=False) @ cols  # (F, N * OH * OW)
        product = product.reshape(self.out_channels, n, out_h, out_w).transpose(1, 0, 2, 3)
        # one pass moves the batch axis to the front and adds the bias
        y = np.empty((n, self.out_channels, out_h, out_w), dtype=dtype)
        if bias is None:
            y[...] = product
        else:
            np.add(product, bias.astype(dtype, copy=False)[:, None, None], out=y)
        cache = dict(cols=cols, input_shape=x.shape, geometry=(out_h, out_w, pad_top, pad_left))
        return y, cache

    def _linear_backward(self, cache: dict, dy: np.ndarray) -> np.ndarray:
        """Add dL/dW of the linear part into ``grads`` and return dL/dx."""
        cols = cache["cols"]
        out_h, out_w, pad_top, pad_left = cache["geometry"]
        dy2 = dy.transpose(1, 0, 2, 3).reshape(self.out_channels, -1)  # (F, N * OH * OW)
        W2 = self.params["W"].reshape(self.out_channels, -1)
        self.grads["W"] += (dy2 @ cols.T).reshape(self.params["W"].shape)
        dcols = W2.T @ dy2
        dx = np.empty(cache["input_shape"], dtype=dcols.dtype)
        k = self.kernel_size
        col2im(dcols, k, k, self.stride, pad_top, pad_left, out_h, out_w, dx)
        return dx


class Conv2DTranspose(_Convolution):
    """Transposed convolution: the adjoint of a strided :class:`Conv2D` with the same weight.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int, default 3
    stride : int, default 2
    padding : "same", "valid" or int
        See :func:`conv_transpose_geometry`.
    rng, kernel_initializer, dtype : as :class:`Conv2D`.

    Shapes
    ------
    x : (N, C_in, H, W) -> y : (N, C_out, OH, OW), with OH = H * stride for ``"same"``.
    W : (C_in, C_out, kH, kW)  (PyTorch's layout for ``conv_transpose2d``), b : (C_out,)

    Notes
    -----
    Let A be the strided convolution that maps a (C_out, OH, OW) image to (C_in, H, W) with weight W.
    This layer computes y = A^T x + b: with X the input as a (C_in, N H W) matrix, cols = W2.T @ X and
    y = col2im(cols). Its backward is A itself: dX = W2 @ im2col(dy), dW2 = X @ im2col(dy).T.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 2,
                 padding="same", rng=None, kernel_initializer="glorot_uniform",
                 dtype=np.float32) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, rng, kernel_initializer,
                         dtype, weight_shape="in_out")

    def _geometry(self, height: int, width: int) -> tuple[int, int, int, int]:
        out_h, crop_top = conv_transpose_geometry(height, self.kernel_size, self.stride, self.padding)
        out_w, crop_left = conv_transpose_geometry(width, self.kernel_size, self.stride, self.padding)
        if out_h <= 0 or out_w <= 0:
            raise ValueError(f"{self!r}: padding leaves no output for a {height}x{width} input.")
        return out_h, out_w, crop_top, crop_left

    def _linear(self, x: np.ndarray, bias: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
        """A^T x (+ bias), and what the backward pass of the linear part needs."""
        n, _, height, width = x.shape
        out_h, out_w, crop_top, crop_left = self._geometry(height, width)
        k = self.kernel_size
        W = self.params["W"]
        dtype = np.result_type(x, W)
        x2 = np.ascontiguousarray(x.transpose(1, 0, 2, 3), dtype=dtype).reshape(self.in_channels, -1)
        cols = W.reshape(self.in_channels, -1).T.astype(dtype, copy=False) @ x2  # (C_out k k, N H W)
        y = np.empty((n, self.out_channels, out_h, out_w), dtype=dtype)
        col2im(cols, k, k, self.stride, crop_top, crop_left, height, width, y)
        if bias is not None:
            y += bias.astype(dtype, copy=False)[:, None, None]
        return y, dict(x2=x2, input_shape=x.shape, geometry=(out_h, out_w, crop_top, crop_left))

    def _linear_backward(self, cache: dict, dy: np.ndarray) -> np.ndarray:
        """Add dL/dW of the linear part into ``grads`` and return dL/dx."""
        x2 = cache["x2"]
        n, _, height, width = cache["input_shape"]
        _, _, crop_top, crop_left = cache["geometry"]
        k = self.kernel_size
        dcols = np.empty((self.out_channels * k * k, n * height * width), dtype=np.result_type(dy, x2))
        im2col(np.ascontiguousarray(dy, dtype=dcols.dtype), k, k, self.stride, crop_top, crop_left,
               height, width, dcols)
        W2 = self.params["W"].reshape(self.in_channels, -1)
        self.grads["W"] += (x2 @ dcols.T).reshape(self.params["W"].shape)
        dx = (W2 @ dcols).reshape(self.in_channels, n, height, width).transpose(1, 0, 2, 3)
        return np.ascontiguousarray(dx)
