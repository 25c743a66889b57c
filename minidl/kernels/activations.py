"""Element-wise activation passes over flat arrays, parallel when the array is large.

NumPy runs ``x * (x > 0)`` on one core and in two passes (the mask, then the product, each a new
array); these kernels make one pass, on every core. They take 1-D arrays: the layer lines its arrays
up with :func:`minidl.layers.memory.flat`, so any memory layout works. Below about 131,000 elements
a kernel runs on one thread: waking the others costs tens of microseconds, more than they would save.
No ``fastmath``: NaN and infinity must come out as NumPy's expressions give them (a NaN input stays
NaN and stops training).
"""

import numpy as np
from numba import njit, prange

from minidl.kernels.threads import SERIAL_BELOW, one_thread_below


@one_thread_below(SERIAL_BELOW)
def relu_forward(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> None:
    """y = x * (x > 0) and mask = x > 0.

    Parameters
    ----------
    x : ndarray, shape (M,)
    y : ndarray, shape (M,)
        Output, overwritten.
    mask : ndarray of bool, shape (M,)
        Output, overwritten.
    """
    for i in prange(x.shape[0]):
        positive = x[i] > 0
        mask[i] = positive
        # x * 0 rather than 0: a NaN stays NaN, as in NumPy's x * mask
        y[i] = x[i] if positive else x[i] * 0.0


@one_thread_below(SERIAL_BELOW)
def relu_backward(dy: np.ndarray, mask: np.ndarray, dx: np.ndarray) -> None:
    """dx = dy * mask.

    Parameters
    ----------
    dy : ndarray, shape (M,)
    mask : ndarray of bool, shape (M,)
    dx : ndarray, shape (M,)
        Output, overwritten.
    """
    for i in prange(dy.shape[0]):
        dx[i] = dy[i] if mask[i] else dy[i] * 0.0


@one_thread_below(SERIAL_BELOW)
def negative_capped_abs(x: np.ndarray, bound: float, out: np.ndarray) -> None:
    """out = -min(|x|, bound): the argument of the exponential in the sigmoid and in BCE from logits.

    NumPy's ``-np.minimum(np.abs(x), bound)`` makes three passes and two temporary arrays; this is one.
    A NaN stays NaN.

    Parameters
    ----------
    x : ndarray, shape (M,)
    bound : float
    out : ndarray of x's dtype, shape (M,)
        Output, overwritten.
    """
    if out.shape != x.shape:
        raise ValueError("negative_capped_abs: expected out of the shape of x")
    cap = out.dtype.type(bound)
    for i in prange(x.shape[0]):
        magnitude = abs(x[i])
        # written as a comparison, not min(): a NaN fails it and stays NaN, as in np.minimum
        out[i] = -(cap if magnitude > cap else magnitude)


@one_thread_below(SERIAL_BELOW, error_model="numpy")
def sigmoid_from_exponential(x: np.ndarray, e: np.ndarray, y: np.ndarray) -> None:
    """y = sigmoid(x), given e = exp(-|x|): 1 / (1 + e) where x >= 0 and e / (1 + e) where x < 0.

    The exponential comes in from NumPy, whose vectorised exp is faster than a per-element call;
    the choice between the two forms, a data-dependent branch that NumPy's ``where`` takes at every
    element (3.5 ns each), becomes a select here. Arithmetic in the dtype of ``y``, as NumPy's;
    ``error_model="numpy"`` divides as NumPy does (IEEE, no Python zero-division check, which would
    keep the loop from vectorising).

    Parameters
    ----------
    x, e : ndarray, shape (M,)
    y : ndarray, shape (M,)
        Output, overwritten.
    """
    one = y.dtype.type(1.0)
    for i in prange(x.shape[0]):
        y[i] = (one if x[i] >= 0 else e[i]) / (one + e[i])


@njit(cache=True)
def any_per_row(rows: np.ndarray, out: np.ndarray) -> None:
    """out[u] = True where row u of ``rows`` holds a nonzero element (a ReLU unit active on some sample).

    Each row is read only up to its first nonzero element, so a live unit costs a few reads and only a
    dead one is read to the end; NumPy's ``any(axis=1)`` reads everything. Given the flags of a unit as
    64-bit words (8 samples each), a dead unit of a batch of 128 is 16 reads.

    Parameters
    ----------
    rows : ndarray, shape (U, M), bool or integer
    out : ndarray of bool, shape (U,)
        Output, overwritten.
    """
    for u in range(rows.shape[0]):
        found = False
        for n in range(rows.shape[1]):
            if rows[u, n] != 0:
                found = True
                break
        out[u] = found
