"""Max-pooling kernels (non-overlapping windows, floor mode).

The forward pass records, for every output, the flat index ``iy * W + ix`` of the *first* maximum of
its window in row-major order (a strict ``>`` comparison). The backward pass sends each output
gradient to that one position only, which is the derivative of the pool almost everywhere and the
convention of PyTorch and TensorFlow at ties.
"""

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
    width = x.shape[3]
    for n in prange(n_images):
        for c in range(channels):
            for oy in range(out_h):
                for ox in range(out_w):
                    y0 = oy * pool
                    x0 = ox * pool
                    best = x[n, c, y0, x0]
                    best_index = y0 * width + x0
                    for i in range(pool):
                        for j in range(pool):
                            value = x[n, c, y0 + i, x0 + j]
                            if value > best:
                                best = value
                                best_index = (y0 + i) * width + x0 + j
                    y[n, c, oy, ox] = best
                    argmax[n, c, oy, ox] = best_index


@njit(cache=True, parallel=True)
def maxpool_backward(dy, argmax, dx):
    """Route each output gradient to the recorded maximum.

    Parameters
    ----------
    dy : ndarray, shape (N, C, OH, OW)
    argmax : ndarray of int64, shape (N, C, OH, OW)
    dx : ndarray, shape (N, C, H, W)
        Output, overwritten.
    """
    n_images, channels, out_h, out_w = dy.shape
    width = dx.shape[3]
    for n in prange(n_images):
        for c in range(channels):
            dx[n, c] = 0.0
            for oy in range(out_h):
                for ox in range(out_w):
                    index = argmax[n, c, oy, ox]
                    dx[n, c, index // width, index % width] += dy[n, c, oy, ox]
