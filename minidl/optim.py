"""Optimizers: they read the gradients and update the parameters in place.

An optimizer is built from ``model.parameters()`` (triples ``(name, param, grad)``) and keeps its
state keyed by parameter name, so :meth:`state_dict` can be checkpointed as plain arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from minidl.backend import kernels


def adam_formula(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    beta1: float,
    beta2: float,
    step_size: float,
    correction2: float,
    eps: float,
) -> None:
    """One Adam update of one parameter, in place, with g = grad:

        m = b1 m + (1 - b1) g
        v = b2 v + (1 - b2) g^2
        param -= step_size m / (sqrt(v / correction2) + eps),

    step_size = lr / (1 - b1^t) and correction2 = 1 - b2^t being the bias corrections of step t.
    Arithmetic in float64, results stored in the arrays' dtypes.

    The definition the kernel ``adam_update`` computes in one pass over the arrays (:class:`Adam` calls it
    through :mod:`minidl.backend`), and what the NumPy backend runs.

    Shapes
    ------
    param, grad, m, v : (M,), one dtype
    """
    g = grad.astype(np.float64)
    m[...] = m_new = beta1 * m.astype(np.float64) + (1.0 - beta1) * g
    v[...] = v_new = beta2 * v.astype(np.float64) + (1.0 - beta2) * g * g
    param[...] = param - step_size * m_new / (np.sqrt(v_new) * (1.0 / np.sqrt(correction2)) + eps)


class Optimizer:
    """Shared bookkeeping: the parameter list and a flat, checkpointable state."""

    def __init__(self, parameters: Iterable[tuple[str, np.ndarray, np.ndarray]], lr: float) -> None:
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)):
            raise TypeError(f"Expected lr to be a finite positive number. Received: lr={lr!r}")
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"Expected lr to be a finite positive number. Received: lr={lr!r}")
        self.lr = float(lr)
        self.parameters = list(parameters)
        if not self.parameters:
            raise ValueError("The optimizer received no parameters.")
        self.state: dict[str, np.ndarray] = {}

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every state array (copied), keyed ``"<slot>/<parameter name>"``."""
        return {key: np.array(value, copy=True) for key, value in self.state.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned.

        Names, shapes and dtypes (floating arrays for floating state, integer arrays for the step count)
        must all match before anything is assigned, so a mismatched state changes nothing.
        """
        if set(state) != set(self.state):
            raise ValueError(
                f"{type(self).__name__} state keys do not match: expected "
                f"{sorted(self.state)}, received {sorted(state)}."
            )
        for key, value in state.items():
            target = self.state[key]
            kind = np.floating if np.issubdtype(target.dtype, np.floating) else np.integer
            if not (isinstance(value, np.ndarray) and np.issubdtype(value.dtype, kind)):
                received = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
                raise ValueError(
                    f"{type(self).__name__} state {key!r}: expected an array of {target.dtype}, received {received}."
                )
            if value.shape != target.shape:
                raise ValueError(
                    f"{type(self).__name__} state {key!r}: expected shape {target.shape}, received {value.shape}."
                )
        for key, value in state.items():
            self.state[key][...] = value


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum, as PyTorch: v = m v + g; p -= lr v.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.optim import SGD
    >>> w, dw = np.array([1.0]), np.array([0.5])
    >>> SGD([("w", w, dw)], lr=0.1).step()
    >>> w   # w - lr dw
    array([0.95])
    """

    def __init__(
        self, parameters: Iterable[tuple[str, np.ndarray, np.ndarray]], lr: float = 0.01, momentum: float = 0.0
    ) -> None:
        super().__init__(parameters, lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"Expected momentum in [0, 1). Received: momentum={momentum!r}")
        self.momentum = float(momentum)
        for name, param, _ in self.parameters:
            self.state[f"velocity/{name}"] = np.zeros_like(param)

    def step(self) -> None:
        for name, param, grad in self.parameters:
            velocity = self.state[f"velocity/{name}"]
            velocity *= self.momentum
            velocity += grad
            param -= self.lr * velocity


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias correction.

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    Each parameter is updated by :func:`adam_formula`, whose body is this formula, computed by the kernel
    ``adam_update`` in one pass (float64 arithmetic, stored in the parameter's dtype). Epsilon follows PyTorch
    (added to the bias-corrected root, default 1e-8). Keras adds its 1e-7 to the root of the *uncorrected* v, which
    differs only in the first steps.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.optim import Adam
    >>> w, dw = np.array([1.0]), np.array([0.5])
    >>> optimizer = Adam([("w", w, dw)], lr=0.1)
    >>> optimizer.step()
    >>> w.round(6)   # the first step moves each weight by lr, against the sign of its gradient
    array([0.9])
    """

    def __init__(
        self,
        parameters: Iterable[tuple[str, np.ndarray, np.ndarray]],
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(parameters, lr)
        for name, value in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= value < 1:
                raise ValueError(f"Expected {name} in [0, 1). Received: {name}={value!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.state["step"] = np.zeros((), dtype=np.int64)
        for name, param, grad in self.parameters:
            # the update runs on flat views, which only a contiguous array has
            if not (param.flags.c_contiguous and grad.flags.c_contiguous and param.shape == grad.shape):
                raise ValueError(
                    f"Adam: parameter {name!r} and its gradient must be C-contiguous arrays "
                    f"of one shape; received {param.shape} and {grad.shape}."
                )
            self.state[f"m/{name}"] = np.zeros_like(param)
            self.state[f"v/{name}"] = np.zeros_like(param)

    def step(self) -> None:
        """Step t: :func:`adam_formula` of every parameter (by the kernel ``adam_update``) with this step's bias
        corrections."""
        self.state["step"] += 1
        t = int(self.state["step"])
        correction1 = 1.0 - self.beta1**t
        correction2 = 1.0 - self.beta2**t
        step_size = self.lr / correction1
        for name, param, grad in self.parameters:
            kernels.adam_update(
                param.reshape(-1),
                grad.reshape(-1),
                self.state[f"m/{name}"].reshape(-1),
                self.state[f"v/{name}"].reshape(-1),
                self.beta1,
                self.beta2,
                step_size,
                correction2,
                self.eps,
            )
