"""NumPy reference for :mod:`minidl.kernels.losses`."""

import numpy as np


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
    """Same contract as :func:`minidl.kernels.losses.bce_logits_rows`."""
    if not (t.shape == e.shape == log1p_e.shape == dx.shape == terms.shape == x.shape and losses.shape == x.shape[:1]):
        raise ValueError(
            "bce_logits_rows: expected t, e, log1p_e, dx and terms of the shape of x, (N, D), and losses of shape (N,)"
        )
    real = dx.dtype.type
    terms[...] = np.maximum(x, real(0)) - x * t + log1p_e
    losses[...] = np.sum(terms.astype(np.float64), axis=1)
    dx[...] = real(scale) * (np.where(x >= 0, 1, e) / (1 + e) - t)
