"""NumPy reference for :mod:`minidl.kernels.adam`: the update written as whole-array operations."""

import numpy as np


def adam_update(
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
    """Same contract as :func:`minidl.kernels.adam.adam_update` (float64 arithmetic, stored in place)."""
    g = grad.astype(np.float64)
    m_new = beta1 * m.astype(np.float64) + (1.0 - beta1) * g
    v_new = beta2 * v.astype(np.float64) + (1.0 - beta2) * g * g
    m[...] = m_new
    v[...] = v_new
    param[...] = param - step_size * m_new / (np.sqrt(v_new) * (1.0 / np.sqrt(correction2)) + eps)
