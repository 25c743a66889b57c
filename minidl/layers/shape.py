"""Layers that only move numbers around: padding, flattening, reshaping."""

from __future__ import annotations

import numpy as np

from minidl.layers.base import Layer


class ZeroPad2D(Layer):
    """Zero padding of the two spatial axes.

    Parameters
    ----------
    pad : int or ((top, bottom), (left, right))

    Shapes
    ------
    x : (N, C, H, W) -> y : (N, C, H + top + bottom, W + left + right)

    Notes
    -----
    The backward pass crops: the padded border does not depend on x.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import ZeroPad2D
    >>> pad = ZeroPad2D(((0, 1), (0, 1)))
    >>> pad.forward(np.ones((1, 1, 2, 2)))[0, 0]
    array([[1., 1., 0.],
           [1., 1., 0.],
           [0., 0., 0.]])
    >>> pad.backward(np.arange(9.0).reshape(1, 1, 3, 3))[0, 0]   # the crop
    array([[0., 1.],
           [3., 4.]])
    """

    def __init__(self, pad: int | tuple[tuple[int, int], tuple[int, int]]) -> None:
        super().__init__()
        if isinstance(pad, (int, np.integer)):
            pad = ((pad, pad), (pad, pad))
        try:
            (top, bottom), (left, right) = pad
            values = [int(v) for v in (top, bottom, left, right)]
        except (TypeError, ValueError):
            raise ValueError(
                f"Expected pad to be an int or ((top, bottom), (left, right)). Received: pad={pad!r}"
            ) from None
        if min(values) < 0:
            raise ValueError(f"Expected non-negative padding. Received: pad={pad!r}")
        self.top, self.bottom, self.left, self.right = values

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._check_input(x, (None, None, None, None), "(N, C, H, W)")
        y = np.pad(x, ((0, 0), (0, 0), (self.top, self.bottom), (self.left, self.right)))
        self._store(training, x, y)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _, _, height, width = self._cached(dy)["input_shape"]
        return dy[:, :, self.top : self.top + height, self.left : self.left + width]

    def jvp(self, t: np.ndarray) -> np.ndarray:
        self._start_tangent(t)
        return np.pad(t, ((0, 0), (0, 0), (0, 0), (self.top, self.bottom), (self.left, self.right)))

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        self._tangent_cached(dt)
        _, _, height, width = self._cached()["input_shape"]
        return dt[..., self.top : self.top + height, self.left : self.left + width], None

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        c, height, width = input_shape
        return (c, height + self.top + self.bottom, width + self.left + self.right)

    def __repr__(self) -> str:
        return f"ZeroPad2D((({self.top}, {self.bottom}), ({self.left}, {self.right})))"


class _Reshaping(Layer):
    """A layer that only gives the same numbers another shape: its gradients take the input's shape back."""

    def backward(self, dy: np.ndarray) -> np.ndarray:
        input_shape = self._cached(dy)["input_shape"]
        return dy.reshape(input_shape)

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        self._tangent_cached(dt)
        return dt.reshape(dt.shape[:2] + self._cached()["input_shape"][1:]), None


class Flatten(_Reshaping):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...), in C order.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import Flatten
    >>> flatten = Flatten()
    >>> flatten.forward(np.zeros((2, 3, 4, 4))).shape
    (2, 48)
    >>> flatten.backward(np.zeros((2, 48))).shape
    (2, 3, 4, 4)
    """

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        if x.ndim < 2:
            raise ValueError(f"{self!r}: expected input of shape (N, ...), received {x.shape}.")
        y = x.reshape(x.shape[0], -1)
        self._store(training, x, y)
        return y

    def jvp(self, t: np.ndarray) -> np.ndarray:
        self._start_tangent(t)
        return t.reshape(t.shape[0], t.shape[1], -1)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (int(np.prod(input_shape)),)


class Reshape(_Reshaping):
    """(N, ...) -> (N, *shape); ``shape`` excludes the batch axis.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import Reshape
    >>> reshape = Reshape((256, 3, 3))
    >>> reshape.forward(np.zeros((2, 2304))).shape
    (2, 256, 3, 3)
    >>> reshape.backward(np.zeros((2, 256, 3, 3))).shape
    (2, 2304)
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        if not self.shape or min(self.shape) <= 0:
            raise ValueError(f"Expected a non-empty shape of positive sizes. Received: shape={shape!r}")

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        size = int(np.prod(self.shape))
        if x.ndim < 1 or x[:1].size != size:
            raise ValueError(f"{self!r}: expected input with {size} values per sample, received {x.shape}.")
        y = x.reshape((x.shape[0],) + self.shape)
        self._store(training, x, y)
        return y

    def jvp(self, t: np.ndarray) -> np.ndarray:
        self._start_tangent(t)
        return t.reshape(t.shape[:2] + self.shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if int(np.prod(input_shape)) != int(np.prod(self.shape)):
            raise ValueError(f"{self!r}: cannot reshape {input_shape} to {self.shape}.")
        return self.shape

    def __repr__(self) -> str:
        return f"Reshape({self.shape})"
