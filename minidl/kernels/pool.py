"""Max-pooling kernels (non-overlapping windows, floor mode), on images stored images-last.

Arrays are (C, H, W, N): the N images of the batch sit side by side at every pixel, so each loop
ends in a contiguous run over the batch, which the compiler vectorises.

The forward pass records, for every output, the flat index ``iy * W + ix`` of the *first* maximum of
its window in row-major order (a strict ``>`` comparison). The backward pass sends each output
gradient to that one position only, which is the derivative of the pool almost everywhere and the
convention of PyTorch and TensorFlow at ties. The tangent pass (the pool's Jacobian applied to a
tangent) reads each window's recorded position: ``maxpool_gather``, whose adjoint is the backward pass.

A NaN counts as larger than every number: the maximum of a window holding a NaN is NaN, as in
PyTorch, and its index is that of the first NaN (the rule for ties). A plain ``>`` would skip a NaN
unless it came first, since every comparison with NaN is false.

Every kernel checks the shapes it is given before any loop runs, and the two that follow recorded
indices check that each lies inside its window, so that inconsistent arguments raise ValueError
instead of writing outside an array or dropping a gradient.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _shapes_fit(x_shape: tuple[int, ...], y_shape: tuple[int, ...], argmax_shape: tuple[int, ...], pool: int) -> bool:
    """Whether y and argmax are (C, H // pool, W // pool, N) for x of shape (C, H, W, N)."""
    return (
        pool >= 1
        and x_shape[0] == y_shape[0]
        and x_shape[3] == y_shape[3]
        and y_shape[1] == x_shape[1] // pool
        and y_shape[2] == x_shape[2] // pool
        and argmax_shape == y_shape
    )


@njit(cache=True, parallel=True)
def _indices_inside_windows(argmax: np.ndarray, pool: int, width: int) -> bool:
    """Whether every recorded index lies inside its own window.

    An index ``iy * W + ix`` lies in the window at (oy, ox) when, for one row i < pool, it is at most
    pool - 1 past the window's first entry in row oy * pool + i. Comparisons only (no division), so
    the loop over the batch vectorises; an exception cannot leave a prange loop, so each channel
    counts its bad indices and the caller raises.
    """
    channels, out_h, out_w, n_images = argmax.shape
    bad = np.zeros(channels, dtype=np.int64)
    for c in prange(channels):
        count = 0
        for oy in range(out_h):
            for ox in range(out_w):
                for n in range(n_images):
                    offset = argmax[c, oy, ox, n] - (oy * pool * width + ox * pool)
                    inside = 0
                    for i in range(pool):
                        inside += (offset >= i * width) & (offset < i * width + pool)
                    count += 1 - inside
        bad[c] = count
    return bad.sum() == 0


@njit(cache=True, parallel=True)
def maxpool_forward(x: np.ndarray, pool: int, y: np.ndarray, argmax: np.ndarray) -> None:
    """Max over ``pool x pool`` windows.

    Parameters
    ----------
    x : ndarray, shape (C, H, W, N)
    pool : int
    y : ndarray, shape (C, H // pool, W // pool, N)
        Output, overwritten.
    argmax : ndarray of int32 or int64, shape (C, H // pool, W // pool, N)
        Output, overwritten: flat index into the image ``x[c, :, :, n]`` of the first maximum.
    """
    if not _shapes_fit(x.shape, y.shape, argmax.shape, pool):
        raise ValueError(
            "maxpool_forward: expected a positive pool, and y and argmax of shape "
            "(C, H // pool, W // pool, N) "
            "for x of shape (C, H, W, N)"
        )
    channels, out_h, out_w, n_images = y.shape
    width = x.shape[2]
    for c in prange(channels):
        for oy in range(out_h):
            for ox in range(out_w):
                y0 = oy * pool
                x0 = ox * pool
                for n in range(n_images):
                    y[c, oy, ox, n] = x[c, y0, x0, n]
                    argmax[c, oy, ox, n] = y0 * width + x0
                for i in range(pool):
                    for j in range(pool):
                        index = (y0 + i) * width + x0 + j
                        for n in range(n_images):
                            value = x[c, y0 + i, x0 + j, n]
                            best = y[c, oy, ox, n]
                            # value > best, or value is the window's first NaN (once best is NaN it stays)
                            if not value <= best and best == best:
                                y[c, oy, ox, n] = value
                                argmax[c, oy, ox, n] = index


@njit(cache=True, parallel=True)
def maxpool_backward(dy: np.ndarray, argmax: np.ndarray, pool: int, dx: np.ndarray) -> None:
    """Route each output gradient to the recorded maximum; every other input gets zero.

    Parameters
    ----------
    dy : ndarray, shape (C, OH, OW, N)
    argmax : ndarray of int, shape (C, OH, OW, N)
        Flat indices ``iy * W + ix``, each inside its window.
    pool : int
    dx : ndarray, shape (C, H, W, N)
        Output, overwritten.
    """
    if not _shapes_fit(dx.shape, dy.shape, argmax.shape, pool):
        raise ValueError(
            "maxpool_backward: expected a positive pool, and dy and argmax of shape "
            "(C, H // pool, W // pool, N) "
            "for dx of shape (C, H, W, N)"
        )
    if not _indices_inside_windows(argmax, pool, dx.shape[2]):
        raise ValueError("maxpool_backward: argmax holds an index outside its window")
    channels, out_h, out_w, n_images = dy.shape
    height, width = dx.shape[1], dx.shape[2]
    for c in prange(channels):
        # rows and columns that floor mode leaves outside every window
        for iy in range(out_h * pool, height):
            dx[c, iy] = 0.0
        for iy in range(out_h * pool):
            for ix in range(out_w * pool, width):
                dx[c, iy, ix] = 0.0
        for oy in range(out_h):
            for ox in range(out_w):
                for i in range(pool):
                    for j in range(pool):
                        iy = oy * pool + i
                        ix = ox * pool + j
                        index = iy * width + ix
                        for n in range(n_images):
                            # 0 + dy, as the sum into zeros of the reference (a -0.0 becomes 0.0)
                            dx[c, iy, ix, n] = 0.0 + dy[c, oy, ox, n] if argmax[c, oy, ox, n] == index else 0.0


@njit(cache=True, parallel=True)
def maxpool_gather(x: np.ndarray, argmax: np.ndarray, pool: int, y: np.ndarray) -> None:
    """Read each window at its recorded position: y = x[argmax] (the pool's Jacobian applied to x).

    Parameters
    ----------
    x : ndarray, shape (C, H, W, N)
    argmax : ndarray of int, shape (C, OH, OW, N)
        Flat indices ``iy * W + ix`` inside each window, as :func:`maxpool_forward` records them.
    pool : int
    y : ndarray, shape (C, OH, OW, N)
        Output, overwritten.
    """
    if not _shapes_fit(x.shape, y.shape, argmax.shape, pool):
        raise ValueError(
            "maxpool_gather: expected a positive pool, and y and argmax of shape "
            "(C, H // pool, W // pool, N) "
            "for x of shape (C, H, W, N)"
        )
    if not _indices_inside_windows(argmax, pool, x.shape[2]):
        raise ValueError("maxpool_gather: argmax holds an index outside its window")
    channels, out_h, out_w, n_images = y.shape
    width = x.shape[2]
    for c in prange(channels):
        for oy in range(out_h):
            for ox in range(out_w):
                for n in range(n_images):
                    y[c, oy, ox, n] = 0.0
                for i in range(pool):
                    for j in range(pool):
                        iy = oy * pool + i
                        ix = ox * pool + j
                        index = iy * width + ix
                        for n in range(n_images):
                            if argmax[c, oy, ox, n] == index:
                                y[c, oy, ox, n] = x[c, iy, ix, n]
