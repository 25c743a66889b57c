"""Binary cross-entropy from logits with its gradient, in one pass per sample.

The exponential exp(-|x|) and log(1 + exp(-|x|)) come in from NumPy, whose vectorised float32 exp
and log1p are several times faster than a call per element; everything else — the loss terms and
their sum per sample, the sigmoid and the gradient — is this one loop, where NumPy needed a dozen
whole-array passes and a ``where`` that branches at every element.
"""

import numpy as np
from numba import njit, prange


@njit(inline="always")
def _bce_row(x, t, e, log1p_e, scale, losses, dx, n):
    real = dx.dtype.type
    one, zero, s = real(1.0), real(0.0), real(scale)
    total = np.float64(0.0)  # float64, also as plain Python (NUMBA_DISABLE_JIT), where 0.0 + float32 is float32
    for d in range(x.shape[1]):
        z = x[n, d]
        total += np.float64(max(z, zero) - z * t[n, d] + log1p_e[n, d])
        probability = (one if z >= 0 else e[n, d]) / (one + e[n, d])
        dx[n, d] = s * (probability - t[n, d])
    losses[n] = total


@njit(cache=True, parallel=True, error_model="numpy")
def bce_logits_rows(x, t, e, log1p_e, scale, losses, dx):
    """Per sample n: the summed loss and the gradient, given e = exp(-|x|) and log1p(e).

    losses[n] = sum_d max(x, 0) - x t + log1p(e)    (each term in x's dtype, the sum in float64)
    dx[n, d] = scale * (sigmoid(x) - t),  sigmoid(x) = 1 / (1 + e) if x >= 0 else e / (1 + e)

    Parameters
    ----------
    x, t, e, log1p_e : ndarray, shape (N, D)
    scale : float
    losses : ndarray of float64, shape (N,)
        Output, overwritten.
    dx : ndarray, shape (N, D)
        Output, overwritten.
    """
    if x.size < 131_072:
        for n in range(x.shape[0]):
            _bce_row(x, t, e, log1p_e, scale, losses, dx, n)
    else:
        for n in prange(x.shape[0]):
            _bce_row(x, t, e, log1p_e, scale, losses, dx, n)
