"""The contract every layer follows.

A layer is a small object with two methods that mirror each other:

* ``forward(x, training=True)`` computes the output and, when training, caches what the backward pass
  needs;
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
"""

from __future__ import annotations

import numpy as np


class Layer:
    """Base class: parameter bookkeeping, cache checks and shape validation."""

    needs_input_grad: bool = True

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._cache: dict | None = None
        self._tangent_cache: dict | None = None

    # -- to be provided by every layer -------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def jvp(self, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no tangent pass.")

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
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

    def astype(self, dtype) -> "Layer":
        """Convert parameters and gradients to ``dtype`` (in place) and return the layer."""
        for name in self.params:
            self.params[name] = self.params[name].astype(dtype)
            self.grads[name] = self.grads[name].astype(dtype)
        self._cache = self._tangent_cache = None
        return self

    @property
    def n_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def _store(self, training: bool, **cache) -> None:
        self._cache = cache if training else None

    def _cached(self) -> dict:
        if self._cache is None:
            raise RuntimeError(
                f"{self!r}.backward called without a cached forward pass: call "
                "forward(x, training=True) first (each forward caches for one backward).")
        return self._cache

    def _store_tangent(self, **cache) -> None:
        self._tangent_cache = cache

    def _tangent_cached(self) -> dict:
        if self._tangent_cache is None:
            raise RuntimeError(f"{self!r}.jvp_backward called without a preceding jvp.")
        return self._tangent_cache

    @staticmethod
    def _merge(t: np.ndarray) -> np.ndarray:
        """(K, N, ...) -> (K * N, ...): tangents as one batch for a batch-independent linear map."""
        return t.reshape((t.shape[0] * t.shape[1],) + t.shape[2:])

    def _check_input(self, x: np.ndarray, expected: tuple, description: str) -> None:
        """Raise ValueError unless ``x.shape`` matches ``expected`` (``None`` matches any size)."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self!r}: expected a numpy array, received {type(x).__name__}.")
        if x.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected, x.shape)):
            raise ValueError(f"{self!r}: expected input of shape {description}, received {x.shape}.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
