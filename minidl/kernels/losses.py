"""Binary cross-entropy from logits with its gradient, in one pass per sample.

The exponential exp(-|x|) and log(1 + exp(-|x|)) come in from NumPy, whose vectorised float32 exp
and log1p are several times faster than a call per element; everything else — the loss terms and
their sum per sample, the sigmoid and the gradient — is this one pass per sample, where NumPy needed
a dozen whole-array passes and a ``where`` that branches at every element.
"""

import numpy as np
from numba import njit, prange

from minidl.kernels.threads import SERIAL_BELOW, one_thread_below


@njit(fastmath={"reassoc"})
def _sum_float64(values: np.ndarray) -> float:
    """The sum of a 1-D array, in float64. ``reassoc`` is the only relaxation: it lets the compiler keep
    partial sums in vector lanes instead of adding one element at a time (a chain of dependent float64
    additions, two thirds of this kernel's time before). Only the order of the additions changes; NaN
    and infinity still propagate, and none of it reaches another expression (the flag is on this function
    alone)."""
    total = np.float64(0.0)  # float64, also as plain Python (NUMBA_DISABLE_JIT), where 0.0 + float32 is float32
    for i in range(values.shape[0]):
        total += np.float64(values[i])
    return total


@one_thread_below(SERIAL_BELOW, error_model="numpy")
def bce_logits_rows(
    x: np.ndarray,
    t: np.ndarray,
    e: np.ndarray,
    log1p_e: np.ndarray,
    scale: float,
    losses: np.ndarray,
    dx: np.ndarray,
    terms: np.ndarray,
) -> None:
    """Per sample n: the summed loss and the gradient, given e = exp(-|x|) and log1p(e).

    terms[n, d] = max(x, 0) - x t + log1p(e)    (in x's dtype)
    losses[n] = sum_d terms[n, d]                 (in float64)
    dx[n, d] = scale * (sigmoid(x) - t),  sigmoid(x) = 1 / (1 + e) if x >= 0 else e / (1 + e)

    Parameters
    ----------
    x, t, e, log1p_e : ndarray, shape (N, D)
    scale : float
    losses : ndarray of float64, shape (N,)
        Output, overwritten.
    dx : ndarray, shape (N, D)
        Output, overwritten.
    terms : ndarray of x's dtype, shape (N, D)
        Output, overwritten. An array of its own: over an input the results are the same, but the
        compiler's overlap check then sends the pass down its scalar loop (four times slower).
    """
    if not (
        t.shape == x.shape
        and e.shape == x.shape
        and log1p_e.shape == x.shape
        and dx.shape == x.shape
        and terms.shape == x.shape
        and losses.shape[0] == x.shape[0]
    ):
        raise ValueError(
            "bce_logits_rows: expected t, e, log1p_e, dx and terms of the shape of x, (N, D), and losses of shape (N,)"
        )
    real = dx.dtype.type
    one, zero, s = real(1.0), real(0.0), real(scale)
    for n in prange(x.shape[0]):
        for d in range(x.shape[1]):
            z = x[n, d]
            probability = (one if z >= 0 else e[n, d]) / (one + e[n, d])
            terms[n, d] = max(z, zero) - z * t[n, d] + log1p_e[n, d]
            dx[n, d] = s * (probability - t[n, d])
        losses[n] = _sum_float64(terms[n])
