"""Element-wise activations. Each backward multiplies by the derivative, written in terms of the
cached input or output, whichever is cheaper and more accurate.

Shapes (every class here)
-------------------------
x : any shape -> y : the same shape; tangents (K, *x.shape) -> the same shape.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from minidl.backend import kernels
from minidl.layers.base import Layer
from minidl.layers.memory import empty, flat, memory_axes


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow or underflow: exp is only ever taken of -|x|.

    For x >= 0 the usual form is safe; for x < 0 the equal form exp(x) / (1 + exp(x)) is used:
    ``np.where(x >= 0, 1, e) / (1 + e)`` with e = :func:`exp_negative_abs` (x), by a kernel (NumPy's
    where branches at every element). In x's floating dtype, float32 at least; laid out in memory as x.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import sigmoid
    >>> sigmoid(np.array([-800.0, 0.0, 800.0]))   # no overflow warning
    array([1.49166815e-154, 5.00000000e-001, 1.00000000e+000])
    """
    x = _at_least_float32(x)
    axes = memory_axes(x)
    e, y = _exp_negative_abs(x, axes), empty(x.shape, axes, x.dtype)
    kernels.sigmoid_from_exponential(flat(x, axes), flat(e, axes), flat(y, axes))
    return y


def exp_negative_abs(x: np.ndarray) -> np.ndarray:
    """exp(-|x|), in x's floating dtype (float32 at least) and laid out in memory as ``x``.

    |x| is capped at half the exponent range of the dtype (43 in float32, 354 in float64), where the
    sigmoid is already within 1e-19 of 0 or 1: the smallest output stays a normal number, so neither it
    nor the products of the backward pass underflow.
    """
    x = _at_least_float32(x)
    return _exp_negative_abs(x, memory_axes(x))


def _exp_negative_abs(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """:func:`exp_negative_abs` of a float32 or float64 ``x`` whose memory order ``axes`` is known."""
    bound = 0.5 * -np.log(np.finfo(x.dtype).tiny)
    e = empty(x.shape, axes, x.dtype)
    kernels.negative_capped_abs(flat(x, axes), bound, flat(e, axes))
    return np.exp(e, out=e)


def _at_least_float32(x: ArrayLike) -> np.ndarray:
    """``x`` as an array of float32 or float64 (the kernels' dtypes), in its own memory layout."""
    x = np.asarray(x)
    return x.astype(np.result_type(x, np.float32), copy=False)


def relu_and_mask(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x * (x > 0)`` and the mask ``x > 0``, in one pass of a kernel, laid out in memory as ``x``."""
    axes = memory_axes(x)
    y, mask = empty(x.shape, axes, x.dtype), empty(x.shape, axes, np.bool_)
    kernels.relu_forward(flat(x, axes), flat(y, axes), flat(mask, axes))
    return y, mask


def times_mask(dy: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``dy * mask``, one kernel pass per leading slice of ``dy`` when it has one axis more than ``mask``
    (tangents (K, N, ...)); each slice of the result is laid out in memory as ``mask``."""
    axes = memory_axes(mask)
    if dy.ndim == mask.ndim:
        dx = empty(mask.shape, axes, dy.dtype)
        kernels.relu_backward(flat(dy, axes), flat(mask, axes), flat(dx, axes))
        return dx
    dx = empty(dy.shape, (0,) + tuple(axis + 1 for axis in axes), dy.dtype)
    for k in range(len(dy)):
        kernels.relu_backward(flat(dy[k], axes), flat(mask, axes), flat(dx[k], axes))
    return dx


class ReLU(Layer):
    """y = max(x, 0); dy/dx = 1 where x > 0 and 0 elsewhere (0 at the kink x = 0).

    Both passes are one parallel kernel over the elements in memory order (:func:`relu_and_mask`,
    :func:`times_mask`); the output keeps the input's memory layout (see :mod:`minidl.layers.memory`).

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import ReLU
    >>> relu = ReLU()
    >>> relu.forward(np.array([[-1.0, 0.0, 2.0]]))
    array([[-0.,  0.,  2.]])
    >>> relu.backward(np.array([[5.0, 5.0, 5.0]]))   # 0 at the kink x = 0
    array([[0., 0., 5.]])
    """

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        y, mask = relu_and_mask(x)  # y = x * (x > 0), mask = x > 0
        self._store(training, x, y, mask=mask)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        mask = self._cached(dy)["mask"]
        return times_mask(dy, mask)  # dx = dy * mask

    def jvp(self, t: np.ndarray) -> np.ndarray:
        mask = self._start_tangent(t)["mask"]
        return times_mask(t, mask)  # t_out[k] = t[k] * mask

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        self._tangent_cached(dt)
        mask = self._cached()["mask"]
        # the Jacobian is piecewise constant in x: no second-order term
        return times_mask(dt, mask), None


class Sigmoid(Layer):
    """y = sigmoid(x); dy/dx = y (1 - y).

    Notes
    -----
    The tangent pass t_out = y (1 - y) t depends on x through y, with
    d/dx [y (1 - y)] = y (1 - y) (1 - 2 y), so its backward returns the second-order term
    dx_extra = sum_k dt[k] * t[k] * y (1 - y) (1 - 2 y).

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import Sigmoid
    >>> layer = Sigmoid()
    >>> layer.forward(np.array([[0.0, 2.0]]))
    array([[0.5       , 0.88079708]])
    >>> layer.backward(np.array([[1.0, 1.0]]))   # y (1 - y)
    array([[0.25      , 0.10499359]])
    """

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        y = sigmoid(x)
        self._store(training, x, y, y=y)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._cached(dy)["y"]
        return dy * y * (1 - y)

    def jvp(self, t: np.ndarray) -> np.ndarray:
        y = self._start_tangent(t)["y"]
        self._store_tangent(t=t)
        return t * (y * (1 - y))

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        t = self._tangent_cached(dt)["t"]
        y = self._cached()["y"]
        slope = y * (1 - y)
        return dt * slope, np.sum(dt * t, axis=0) * slope * (1 - 2 * y)


class Tanh(Layer):
    """y = tanh(x); dy/dx = 1 - y^2.

    Notes
    -----
    Second derivative: d/dx (1 - y^2) = -2 y (1 - y^2), the source of the tangent pass's ``dx_extra``.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import Tanh
    >>> layer = Tanh()
    >>> layer.forward(np.array([[0.0, 1.0]]))
    array([[0.        , 0.76159416]])
    >>> layer.backward(np.array([[1.0, 1.0]]))   # 1 - y^2
    array([[1.        , 0.41997434]])
    """

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        y = np.tanh(x)
        self._store(training, x, y, y=y)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._cached(dy)["y"]
        return dy * (1 - y * y)

    def jvp(self, t: np.ndarray) -> np.ndarray:
        y = self._start_tangent(t)["y"]
        self._store_tangent(t=t)
        return t * (1 - y * y)

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        t = self._tangent_cached(dt)["t"]
        y = self._cached()["y"]
        slope = 1 - y * y
        return dt * slope, np.sum(dt * t, axis=0) * slope * (-2 * y)


class Identity(Layer):
    """y = x (a linear latent layer).

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import Identity
    >>> Identity().forward(np.array([[1.5, -2.0]]))
    array([[ 1.5, -2. ]])
    """

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._store(training, x, x)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self._cached(dy)
        return dy

    def jvp(self, t: np.ndarray) -> np.ndarray:
        self._start_tangent(t)
        return t

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        self._tangent_cached(dt)
        return dt, None
