"""Fully connected layer."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from minidl.init import Initializer, get_initializer
from minidl.layers.base import Layer, positive_int


class Dense(Layer):
    """y = x @ W + b.

    Parameters
    ----------
    in_features, out_features : int
    rng : np.random.Generator or int or None
        Source of the initial weights.
    kernel_initializer : str or callable
        Default ``"glorot_uniform"`` (as Keras); the bias starts at zero.
    dtype : float32 by default.

    Shapes
    ------
    x : (N, in_features) -> y : (N, out_features)
    W : (in_features, out_features), b : (out_features,)

    Notes
    -----
    With upstream gradient dy = dL/dy:  dL/dx = dy @ W.T,  dL/dW = x.T @ dy,  dL/db = sum_n dy[n].

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import Dense
    >>> layer = Dense(3, 2, rng=0, dtype=np.float64)
    >>> x = np.ones((4, 3))
    >>> y = layer.forward(x)
    >>> y.shape
    (4, 2)
    >>> dx = layer.backward(np.ones_like(y))   # dx = dy @ W.T, and fills layer.grads
    >>> dx.shape, layer.grads['b']
    ((4, 3), array([4., 4.]))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rng: np.random.Generator | int | None = None,
        kernel_initializer: str | Initializer = "glorot_uniform",
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        rng = np.random.default_rng(rng)
        init = get_initializer(kernel_initializer)
        self._add_param(
            "W", init((self.in_features, self.out_features), self.in_features, self.out_features, rng, dtype=dtype)
        )
        self._add_param("b", np.zeros(self.out_features, dtype=dtype))

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._check_input(x, (None, self.in_features), f"(N, {self.in_features})")
        y = x @ self.params["W"]
        y += self.params["b"]
        self._store(training, x, y, x=x)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        x = self._cached(dy)["x"]
        self.grads["W"] += x.T @ dy
        self.grads["b"] += dy.sum(axis=0)
        return dy @ self.params["W"].T if self.needs_input_grad else None

    def jvp(self, t: np.ndarray) -> np.ndarray:
        """Tangents (K, N, in) -> (K, N, out): t @ W (the bias does not move with the input)."""
        self._start_tangent(t)
        self._store_tangent(t=t)
        return t @ self.params["W"]

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray | None, None]:
        t = self._tangent_cached(dt)["t"]
        self.grads["W"] += self._merge(t).T @ self._merge(dt)
        return (dt @ self.params["W"].T if self.needs_input_grad else None), None

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.out_features,)

    def __repr__(self) -> str:
        return f"Dense({self.in_features}->{self.out_features})"
