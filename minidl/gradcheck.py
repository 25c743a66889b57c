"""Gradient checking by central differences: the low-level functions that :mod:`minidl.testing` builds on.

For a scalar function f and each coordinate i,

    df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2 h),

whose error has two parts. Truncation: the first neglected Taylor term is h^2 f_iii / 6 (f_iii the third
derivative along e_i), h^2 / 6 = 1.7e-13 relative at h = 1e-6 when f_iii is of the size of the gradient.
Rounding: each value of f carries an error of up to u |f| (unit roundoff u = 1.1e-16 in float64), and the
difference of two divided by 2 h turns it into up to u |f| / h, 1.1e-10 relative. A correct analytic gradient
therefore agrees to about 1e-10, far inside the test bound of 1e-6. In float32 (u = 6e-8) the rounding term
alone is up to 6e-2, and x +- h is itself rounded: always check in float64.

The agreement is measured as ``relative_error(a, n) = ||a - n|| / max(||a|| + ||n||, tiny)`` over a whole
array (Euclidean norms). Taken element by element the same formula is dominated by entries whose true
value is zero (a dead ReLU), where rounding noise alone gives a relative error of 1; :mod:`minidl.testing`
adds an element-wise criterion whose absolute part is the rounding floor of each difference instead
(:mod:`minidl.testing.criteria`). :func:`numerical_vjp` differences an array-valued function once per entry
for several cotangents at once, :func:`numerical_projections` along whole-array directions.

A layer is checked through the scalar L = sum(forward(x) * r) for a fixed random r, whose gradient
with respect to the output is exactly r: ``backward(r)`` must return dL/dx and add dL/dparam.
Functions with kinks (ReLU at 0, max-pool at ties) are only differentiable away from them. A central
difference whose interval [x - h, x + h] holds a kink at x + s h (-1 < s < 1), with one-sided slopes
g- below it and g+ above, measures ((1 + s) g- + (1 - s) g+) / 2: a mix of the two slopes weighted by
where the kink falls in the interval, their average only when the kink sits exactly at x. Draw test
inputs away from kinks instead of loosening the bound; :mod:`minidl.testing` has hypothesis strategies
for that, and reports the distance to the nearest kink when a check fails.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from minidl.layers.base import Layer


def relative_error(analytic: np.ndarray, numeric: np.ndarray, tiny: float = 1e-30) -> float:
    """||a - n|| / max(||a|| + ||n||, tiny); 0 when both are zero."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"Shapes differ: analytic {analytic.shape}, numeric {numeric.shape}.")
    scale = max(float(np.linalg.norm(analytic) + np.linalg.norm(numeric)), tiny)
    return float(np.linalg.norm(analytic - numeric) / scale)


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the scalar ``f()`` with respect to the array ``x``.

    ``x`` is perturbed in place (and restored), so ``f`` may read it through any reference, e.g. a
    layer's weight. ``x`` must be float64 for a meaningful result.

    Shapes
    ------
    x : any -> gradient : same as x
    """
    if x.dtype != np.float64:
        raise TypeError(f"Gradient checks need float64 arrays, received {x.dtype}.")
    gradient = np.empty_like(x)
    flat, grad_flat = x.reshape(-1), gradient.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient needs a contiguous array it can perturb in place.")
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + h
        plus = f()
        flat[i] = original - h
        minus = f()
        flat[i] = original
        grad_flat[i] = (plus - minus) / (2.0 * h)
    return gradient


BLOCK_ENTRIES = 256  # differences kept before they are multiplied by the cotangents: one product per block


def numerical_vjp(
    f: Callable[[], np.ndarray],
    x: np.ndarray,
    cotangents: np.ndarray,
    h: float = 1e-6,
    entries: np.ndarray | None = None,
) -> np.ndarray:
    """Central-difference vector-Jacobian products of the array function ``f()`` for K cotangents at once.

    Entry [k, i] is sum(cotangents[k] * (f(x + h e_i) - f(x - h e_i))) / (2 h), the derivative of
    S_k = sum(f() * cotangents[k]) along e_i: two evaluations of ``f`` per entry serve all K cotangents.
    ``x`` is perturbed in place (and restored), as in :func:`numerical_gradient`. With ``entries`` (flat
    indices into x) only those entries are differenced.

    Shapes
    ------
    x : any; f() : Y; cotangents : (K, *Y) -> (K, *x.shape), or (K, len(entries)) with ``entries``
    """
    if x.dtype != np.float64:
        raise TypeError(f"Gradient checks need float64 arrays, received {x.dtype}.")
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_vjp needs a contiguous array it can perturb in place.")
    indices = np.arange(flat.size) if entries is None else np.asarray(entries, dtype=np.intp).reshape(-1)
    weights = np.asarray(cotangents, dtype=np.float64).reshape(len(cotangents), -1)
    result = np.empty((len(weights), indices.size))
    block = np.empty((min(indices.size, BLOCK_ENTRIES), weights.shape[1]))  # f(x + h e_i) - f(x - h e_i), by rows
    for start in range(0, indices.size, len(block)):
        chunk = indices[start : start + len(block)]
        for row, i in enumerate(chunk):
            original = flat[i]
            flat[i] = original + h
            block[row] = f().reshape(-1)  # copied now: f may return a view of x or a reused buffer
            flat[i] = original - h
            block[row] -= f().reshape(-1)
            flat[i] = original
        result[:, start : start + len(chunk)] = weights @ block[: len(chunk)].T / (2.0 * h)
    return result.reshape((len(weights),) + x.shape) if entries is None else result


def numerical_projections(
    f: Callable[[], np.ndarray], x: np.ndarray, directions: np.ndarray, cotangents: np.ndarray, h: float = 1e-6
) -> np.ndarray:
    """Central differences of S_k = sum(f() * cotangents[k]) along whole-array directions.

    Entry [k, j] is sum(cotangents[k] * (f(x + h v_j) - f(x - h v_j))) / (2 h), the derivative of S_k
    along directions[j]: two evaluations of ``f`` per direction, whatever the size of x.

    Shapes
    ------
    x : any; directions : (J, *x.shape); f() : Y; cotangents : (K, *Y) -> (K, J)
    """
    if x.dtype != np.float64:
        raise TypeError(f"Gradient checks need float64 arrays, received {x.dtype}.")
    weights = np.asarray(cotangents, dtype=np.float64).reshape(len(cotangents), -1)
    original = x.copy()
    result = np.empty((len(weights), len(directions)))
    for j, direction in enumerate(directions):
        x[...] = original + h * direction
        plus = np.array(f(), dtype=np.float64)
        x[...] = original - h * direction
        result[:, j] = weights @ (plus - np.asarray(f(), dtype=np.float64)).reshape(-1) / (2.0 * h)
    x[...] = original
    return result


def check_layer(
    layer: Layer, x: np.ndarray, rng: np.random.Generator | int | None = None, h: float = 1e-6
) -> dict[str, float]:
    """Relative errors of ``layer.backward`` for the input and every parameter.

    The layer (a single layer or a whole :class:`~minidl.layers.Sequential`) must hold float64
    parameters (``layer.astype(np.float64)``). Returns ``{"x": err, "<param>": err, ...}``.

    Shapes
    ------
    x : whatever ``layer.forward`` takes.
    """
    rng = np.random.default_rng(rng)
    x = np.array(x, dtype=np.float64, order="C")  # a contiguous copy numerical_gradient can perturb
    probe = rng.standard_normal(layer.forward(x, training=False).shape)

    def loss() -> float:
        return float(np.sum(layer.forward(x, training=False) * probe))

    layer.zero_grad()
    layer.forward(x, training=True)
    dx = layer.backward(probe)
    if dx is None:
        raise ValueError(
            f"check_layer: {layer!r} returns no input gradient to check (needs_input_grad is "
            "False); set layer.needs_input_grad = True first."
        )
    errors = {"x": relative_error(dx, numerical_gradient(loss, x, h))}
    for name, param in layer.params.items():
        errors[name] = relative_error(layer.grads[name], numerical_gradient(loss, param, h))
    return errors


def check_function(
    f: Callable[[], float], analytic: dict[str, np.ndarray], inputs: dict[str, np.ndarray], h: float = 1e-6
) -> dict[str, float]:
    """Relative errors of analytic gradients of the scalar ``f()`` with respect to named float64 arrays.

    ``f`` reads ``inputs[name]`` (perturbed in place); ``analytic[name]`` is its claimed gradient.
    """
    return {name: relative_error(analytic[name], numerical_gradient(f, inputs[name], h)) for name in analytic}
