"""The contractive penalty: the squared Frobenius norm of an encoder's Jacobian, and its gradient.

For an encoder z = f(x) the penalty is the batch mean of ||dz/dx||_F^2 (Rifai et al., 2011). Three
ways to compute it, one API (:func:`contractive_penalty`):

``closed_form``
    Rifai's formula for an encoder that ends in ``Dense`` then ``Sigmoid``: with h = sigmoid(u W + b),
    ||dh/du||_F^2 = sum_k (h_k (1 - h_k))^2 ||W[:, k]||^2. It measures the Jacobian with respect to u,
    the input of that last dense layer, not the image; it is cheap (no extra pass).
``exact``
    The Jacobian with respect to the input image through the whole network, assembled from one tangent
    (forward-mode) pass per input pixel: ||J||_F^2 = sum_i ||J e_i||^2. For evaluation and tests.
``hutchinson``
    The unbiased estimate E_v ||J v||^2 = ||J||_F^2 for v ~ N(0, I), averaged over ``n_probes`` probes:
    one tangent pass per probe. Its variance is 2 ||J^T J||_F^2 / n_probes per sample.

Notes
-----
The tangent pass pushes directions t through the network's linearisation at the cached input
(``Layer.jvp``); the penalty P = (1/N) sum ||t_out||^2 then depends on the parameters in two ways:
directly, through the linear maps the tangents cross (``Layer.jvp_backward`` adds those gradients),
and through the primal activations where the Jacobian depends smoothly on x (a sigmoid's slope
y (1 - y) changes with x). The second path is a cotangent on each such layer's primal input, which
one ordinary backward sweep then carries down, fused with the backward of the reconstruction loss.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from minidl.layers import Dense, Sequential, Sigmoid

MODES = ("closed_form", "exact", "hutchinson")


def contractive_penalty(
    encoder: Sequential,
    x: np.ndarray,
    mode: str = "closed_form",
    *,
    dz: np.ndarray | None = None,
    weight: float = 1.0,
    n_probes: int = 1,
    rng: np.random.Generator | None = None,
    chunk_size: int = 64,
    backward: bool = True,
) -> tuple[float, np.ndarray | None]:
    """Value of the contractive penalty, and one backward sweep that adds its gradient.

    ``encoder.forward(x, training=True)`` must have been the encoder's last forward call. This function
    adds ``weight * dP/dtheta`` into the encoder's ``grads`` and, in the same sweep, backpropagates ``dz``
    (the cotangent of the latent from other loss terms, e.g. a decoder's reconstruction loss), so the
    encoder's backward runs once for both.

    Parameters
    ----------
    encoder : Sequential
        For ``closed_form`` it must end with ``Dense`` then ``Sigmoid``.
    x : ndarray, shape (N, ...)
        The batch of the last forward pass.
    mode : "closed_form", "exact" or "hutchinson"
    dz : ndarray, shape (N, latent_dim), optional
        Cotangent of the latent from other terms; zero when omitted.
    weight : float
        lambda: the penalty's gradient is scaled by it (the returned value is not).
    n_probes : int
        Hutchinson probes per sample.
    rng : np.random.Generator
        Required for ``hutchinson``.
    chunk_size : int
        Tangent directions pushed through at once (bounds memory in ``exact`` mode).
    backward : bool
        False computes the value only (no gradients, ``dx`` is None).

    Returns
    -------
    value : float
        P = (1/N) sum_n ||J_n||_F^2 (an unbiased estimate of it for ``hutchinson``).
    dx : ndarray, shape of x, or None
        Cotangent of the input: backward of ``dz`` plus ``weight * dP/dx``; None when the encoder's
        ``needs_input_grad`` is False.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import Dense, Sequential, Sigmoid
    >>> from minidl.contractive import contractive_penalty
    >>> encoder = Sequential(Dense(3, 2, rng=0, dtype=np.float64), Sigmoid())
    >>> x = np.random.default_rng(0).random((4, 3))
    >>> _ = encoder.forward(x)   # the penalty reads the encoder's last forward pass
    >>> value, dx = contractive_penalty(encoder, x, weight=1e-4)   # adds 1e-4 dP/dW into encoder.grads
    >>> round(value, 6), dx.shape
    (0.201495, (4, 3))
    """
    if mode not in MODES:
        raise ValueError(f"Unknown contractive mode {mode!r}; expected one of {MODES}.")
    if not isinstance(encoder, Sequential):
        raise TypeError(f"The contractive penalty needs a Sequential encoder, received {type(encoder).__name__}.")
    n = x.shape[0]
    if n == 0 or x.size == 0:
        raise ValueError(
            f"contractive_penalty: expected a non-empty batch (N, ...) (at least one sample, and at "
            f"least one value per sample), received shape {x.shape}."
        )
    encoder.layers[-1]._cached()  # fails clearly when no training forward pass precedes
    latent_shape = (n,) + encoder.output_shape(x.shape[1:])
    dz = np.zeros(latent_shape, dtype=x.dtype) if dz is None else dz
    if dz.shape != latent_shape:
        raise ValueError(f"dz: expected shape {latent_shape}, received {dz.shape}.")
    if mode == "closed_form":
        return _closed_form(encoder, n, dz, weight, backward)

    directions: Iterable[np.ndarray]
    if mode == "hutchinson":
        if rng is None:
            raise ValueError("The hutchinson mode needs an np.random.Generator: pass rng=...")
        if not isinstance(n_probes, (int, np.integer)) or n_probes < 1:
            raise ValueError(f"Expected n_probes to be a positive integer. Received: n_probes={n_probes!r}")
        probes = rng.standard_normal((n_probes,) + x.shape).astype(x.dtype, copy=False)
        directions = [probes[start : start + chunk_size] for start in range(0, n_probes, chunk_size)]
        scale = 1.0 / (n * n_probes)
    else:
        size = int(np.prod(x.shape[1:]))
        directions = (_basis_chunk(start, min(start + chunk_size, size), x) for start in range(0, size, chunk_size))
        scale = 1.0 / n

    layers = encoder.layers
    extras: list[np.ndarray | None] = [None] * len(layers)
    value = 0.0
    for t in directions:
        for layer in layers:
            t = layer.jvp(t)
        value += scale * float(np.sum(t.astype(np.float64) ** 2))
        if not backward:
            continue
        dt = (2.0 * scale * weight) * t
        for i in reversed(range(len(layers))):
            dt_in, extra = layers[i].jvp_backward(dt)
            if extra is not None:
                extras[i] = extra if extras[i] is None else extras[i] + extra
            if dt_in is None:  # a first layer that needs no input gradient (Layer.needs_input_grad)
                break
            dt = dt_in
    if not backward:
        return value, None
    dy = dz
    for i in reversed(range(len(layers))):
        dx = layers[i].backward(dy)
        if dx is None:
            return value, None
        dy = dx if extras[i] is None else dx + extras[i]  # dy of the layer below
    return value, dy


def _basis_chunk(start: int, stop: int, x: np.ndarray) -> np.ndarray:
    """Unit tangents e_start ... e_{stop-1} for every sample: shape (stop - start, N, *x.shape[1:])."""
    size = int(np.prod(x.shape[1:]))
    t = np.zeros((stop - start, x.shape[0], size), dtype=x.dtype)
    t[np.arange(stop - start), :, np.arange(start, stop)] = 1.0
    return t.reshape((stop - start,) + x.shape)


def _closed_form(
    encoder: Sequential, n: int, dz: np.ndarray, weight: float, backward: bool
) -> tuple[float, np.ndarray | None]:
    """Rifai's closed form on the last Dense + Sigmoid.

    With s = h (1 - h) and c_k = ||W[:, k]||^2, P = (1/N) sum_{n,k} s_nk^2 c_k, so
    dP/dW[:, k] (direct) = (2/N) W[:, k] sum_n s_nk^2 and dP/dh_nk = (2/N) s_nk (1 - 2 h_nk) c_k,
    the latter sent down with dz through the ordinary backward.
    """
    if len(encoder) < 2 or not isinstance(encoder[-1], Sigmoid) or not isinstance(encoder[-2], Dense):
        raise ValueError(
            "The closed_form contractive penalty needs an encoder ending in Dense then "
            f"Sigmoid; this one ends in {[type(layer).__name__ for layer in encoder.layers[-2:]]}. "
            "Use mode='exact' or 'hutchinson' for other encoders."
        )
    dense = encoder[-2]
    h = encoder[-1]._cached()["y"]
    W = dense.params["W"]
    slope = h * (1 - h)
    column_norms = np.sum(W * W, axis=0)
    value = float(np.sum(slope.astype(np.float64) ** 2 * column_norms) / n)
    if not backward:
        return value, None
    dense.grads["W"] += (weight * 2.0 / n) * W * np.sum(slope * slope, axis=0)
    dh = dz + (weight * 2.0 / n) * slope * (1 - 2 * h) * column_norms
    return value, encoder.backward(dh.astype(dz.dtype, copy=False))
