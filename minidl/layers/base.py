"""The contract every layer follows.

A layer is a small object with two methods that mirror each other:

* ``forward(x, training=True)`` computes the output and, when training, caches what the backward pass
  needs (``_store``, which also records the shapes of x and y);
* ``backward(dy)`` takes dL/dy, returns dL/dx and *adds* dL/dparam into ``grads`` (so that a
  penalty may send a second gradient into the same weights before the optimizer step).

``params`` and ``grads`` are dicts with the same keys; ``zero_grad`` clears the gradients in place, so
an optimizer may hold on to the arrays.

``needs_input_grad`` (True unless set otherwise) says whether anything uses dL/dx. The first layer of
a network sees only data, whose gradient nobody reads; with ``needs_input_grad = False`` its
``backward`` (and ``jvp_backward``) still adds the parameter gradients but returns None in place of
dL/dx, skipping that product (as PyTorch does for inputs that do not require a gradient). A
:class:`~minidl.layers.Sequential` stops its backward pass at a None. Layers without parameters ignore
the flag.

For penalties on the Jacobian of a network (the contractive autoencoder), every layer also has a
*tangent* (forward-mode) pass through its linearisation at the cached input, and that pass's backward:

* ``jvp(t)`` maps tangents ``t`` of shape (K, N, *input_shape) (K directions for each of the N cached
  samples) to (K, N, *output_shape): ``t_out[k, n] = J_layer(x[n]) @ t[k, n]``;
* ``jvp_backward(dt)`` returns ``(dt_in, dx_extra)``: the cotangent of the input tangents, after adding
  the parameter gradients of the tangent pass into ``grads``; ``dx_extra`` (or None) is the cotangent of the
  layer's *primal input* that the tangent pass creates, which exists only where the Jacobian itself
  depends on x smoothly (the second derivative of a sigmoid or tanh). Piecewise-linear layers have None.

Every one of these three checks the array it receives before any arithmetic or kernel runs, in the base
class: ``backward`` reads its cache with ``_cached(dy)``, which demands dy of the cached output's shape;
``jvp`` with ``_start_tangent(t)``, which demands (K, N, *input_shape) of the cached input; and
``jvp_backward`` with ``_tangent_cached(dt)``, which demands the shape that ``jvp`` returned. Each must be
a NumPy array of a floating dtype. A wrong shape is a ValueError naming the layer, the shape expected and
the shape received; a wrong type is a TypeError. A missing cache (no training forward pass, or no
``jvp`` before ``jvp_backward``) is a RuntimeError, never a silent zero; a new forward pass ends the
tangent pass of the previous one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike


class Layer:
    """Base class: parameter bookkeeping, cache checks and shape validation."""

    needs_input_grad: bool = True

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._cache: dict[str, Any] | None = None
        self._tangent_cache: dict[str, Any] | None = None

    # -- to be provided by every layer -------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def jvp(self, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no tangent pass.")

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        raise NotImplementedError(f"{type(self).__name__} has no tangent pass.")

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output sample for one input sample of ``input_shape`` (no batch axis)."""
        return tuple(input_shape)

    # -- shared machinery ------------------------------------------------------------------
    def _add_param(self, name: str, value: np.ndarray) -> None:
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)

    def zero_grad(self) -> None:
        """Set every gradient to zero, in place."""
        for grad in self.grads.values():
            grad.fill(0.0)

    def astype(self, dtype: DTypeLike) -> Layer:
        """Convert parameters and gradients to ``dtype`` (in place) and return the layer."""
        for name in self.params:
            self.params[name] = self.params[name].astype(dtype)
            self.grads[name] = self.grads[name].astype(dtype)
        self._cache = self._tangent_cache = None
        return self

    @property
    def n_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def _store(self, training: bool, x: np.ndarray, y: np.ndarray, /, **cache: Any) -> None:
        """Keep ``cache`` and the shapes of ``x`` and ``y`` for the backward pass (only when training).

        A new forward pass also ends any tangent pass through the previous one.
        """
        self._cache = dict(cache, input_shape=x.shape, output_shape=y.shape) if training else None
        self._tangent_cache = None

    def _cached(self, dy: np.ndarray | None = None) -> dict[str, Any]:
        """The cache of the last training forward pass, after checking ``dy`` (when given) against it.

        Shapes
        ------
        dy : the output of that forward pass, (N, *output_shape)
        """
        if self._cache is None:
            raise RuntimeError(
                f"{self!r}: backward or jvp called without a cached forward pass: call "
                "forward(x, training=True) first (each forward caches for one backward)."
            )
        if dy is not None:
            self._check_upstream("backward", "dy", dy, self._cache["output_shape"])
        return self._cache

    def _start_tangent(self, t: np.ndarray) -> dict[str, Any]:
        """Check tangents ``t`` against the cached input, begin a tangent pass and return the forward cache.

        Shapes
        ------
        t : (K, N, *input_shape) for the cached input (N, *input_shape); any K
        """
        cache = self._cached()
        self._check_upstream("jvp", "t", t, (None,) + cache["input_shape"])
        self._tangent_cache = {"tangent_output_shape": (t.shape[0],) + cache["output_shape"]}
        return cache

    def _store_tangent(self, **cache: Any) -> None:
        """Keep what ``jvp_backward`` needs; called by ``jvp`` after ``_start_tangent``."""
        if self._tangent_cache is None:
            raise RuntimeError(f"{self!r}.jvp must call _start_tangent(t) before _store_tangent.")
        self._tangent_cache.update(cache)

    def _tangent_cached(self, dt: np.ndarray) -> dict[str, Any]:
        """The cache of the last ``jvp``, after checking ``dt`` against the tangents it returned.

        Shapes
        ------
        dt : (K, N, *output_shape), the shape of the last ``jvp``'s result
        """
        if self._tangent_cache is None:
            raise RuntimeError(f"{self!r}.jvp_backward called without a preceding jvp (after the last forward pass).")
        self._check_upstream("jvp_backward", "dt", dt, self._tangent_cache["tangent_output_shape"])
        return self._tangent_cache

    def _check_upstream(self, method: str, name: str, array: object, expected: tuple[int | None, ...]) -> None:
        """Raise unless ``array`` is a floating-point NumPy array of shape ``expected`` (None: any size)."""
        if not isinstance(array, np.ndarray):
            raise TypeError(
                f"{self!r}.{method}: expected {name} to be a numpy array of floats, received {type(array).__name__}."
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"{self!r}.{method}: expected {name} of a floating dtype, received {array.dtype}.")
        if not _shape_matches(array.shape, expected):
            wanted = str(tuple("K" if e is None else e for e in expected)).replace("'", "")
            raise ValueError(f"{self!r}.{method}: expected {name} of shape {wanted}, received {array.shape}.")

    @staticmethod
    def _merge(t: np.ndarray) -> np.ndarray:
        """(K, N, ...) -> (K * N, ...): tangents as one batch for a batch-independent linear map."""
        return t.reshape((t.shape[0] * t.shape[1],) + t.shape[2:])

    def _check_input(self, x: np.ndarray, expected: tuple[int | None, ...], description: str) -> None:
        """Raise ValueError unless ``x.shape`` matches ``expected`` (``None`` matches any size)."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self!r}: expected a numpy array, received {type(x).__name__}.")
        if not _shape_matches(x.shape, expected):
            raise ValueError(f"{self!r}: expected input of shape {description}, received {x.shape}.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def positive_int(name: str, value: object) -> int:
    """``value`` as an int, or a ValueError naming the argument: a layer's sizes are positive integers."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Expected {name} to be a positive integer. Received: {name}={value!r}")
    return int(value)


def _shape_matches(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    """Same number of axes, and equal sizes wherever ``expected`` is not None."""
    return len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
