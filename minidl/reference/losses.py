"""NumPy reference for :mod:`minidl.kernels.losses`: the formula itself, :func:`minidl.losses.bce_logits_terms`."""

import numpy as np

from minidl.losses import bce_logits_terms


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
    """Same contract as :func:`minidl.kernels.losses.bce_logits_rows`: :func:`minidl.losses.bce_logits_terms`
    per element, the terms summed per row in float64.

    ``log1p_e`` (NumPy's log1p(e), handed to the kernel because a vectorised log1p is faster than its
    own call per element) is not read: ``bce_logits_terms`` takes log1p(e) itself, the same numbers.
    """
    if not (t.shape == e.shape == log1p_e.shape == dx.shape == terms.shape == x.shape and losses.shape == x.shape[:1]):
        raise ValueError(
            "bce_logits_rows: expected t, e, log1p_e, dx and terms of the shape of x, (N, D), and losses of shape (N,)"
        )
    terms[...], dx[...] = bce_logits_terms(x, t, e, scale)
    losses[...] = np.sum(terms.astype(np.float64), axis=1)
