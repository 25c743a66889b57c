"""Element-wise activation passes, parallel over flat arrays.

NumPy runs ``x * (x > 0)`` on one core and in two passes (the mask, then the product, each a new
array); these kernels make one pass on every core. They take 1-D arrays: the layer lines its arrays
up with :func:`minidl.layers.memory.flat`, so any memory layout works. No ``fastmath``: NaN and
infinity must come out as NumPy's expression gives them (a NaN input stays NaN and stops training).
"""

from numba import njit, prange


@njit(cache=True, parallel=True)
def relu_forward(x, y, mask):
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


@njit(cache=True, parallel=True)
def relu_backward(dy, mask, dx):
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
