"""im2col / col2im: the data movement that turns a convolution into one matrix product per batch.

Images are stored *images-last*, as (C, H, W, N) arrays (see :mod:`minidl.layers.memory`): the N
images of a batch sit side by side at every pixel, so every loop here ends in a contiguous run over
the batch. For a kernel of shape (kH, kW), ``cols[r, p * N + n]`` (with r = (c * kH + i) * kW + j the
kernel entry and p = oy * out_w + ox the output position) holds the value that kernel entry meets at
output position p of image n, namely ``x[c, oy * stride + i - pad_top, ox * stride + j - pad_left, n]``
(zero where that index falls outside the image). A convolution of the whole batch is then one matrix
product, ``W.reshape(F, -1) @ cols``, of shape (F, OH * OW * N), which is the output stored
images-last: one large GEMM runs much closer to the machine's peak than N small ones.

``col2im`` is the adjoint (transpose) of ``im2col``: it scatters every column entry back to the pixel
it came from, summing where receptive fields overlap. It is the backward pass of ``im2col`` and the
forward pass of a transposed convolution.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _check_cols_shape(
    cols_shape: tuple[int, ...], channels: int, kernel_h: int, kernel_w: int, out_h: int, out_w: int, n_images: int
) -> None:
    """Numba does not check bounds: a ``cols`` of another shape would be read or written outside it."""
    if cols_shape[0] != channels * kernel_h * kernel_w or cols_shape[1] != out_h * out_w * n_images:
        raise ValueError(
            "im2col/col2im: expected cols of shape (C * kernel_h * kernel_w, out_h * out_w * N) "
            "for images of shape (C, H, W, N)"
        )


@njit(cache=True, parallel=True)
def im2col(
    x: np.ndarray,
    kernel_h: int,
    kernel_w: int,
    stride: int,
    pad_top: int,
    pad_left: int,
    out_h: int,
    out_w: int,
    cols: np.ndarray,
) -> None:
    """Unfold image patches into columns.

    Parameters
    ----------
    x : ndarray, shape (C, H, W, N)
    kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w : int
        Geometry; bottom and right padding are implied by ``out_h`` and ``out_w``.
    cols : ndarray, shape (C * kernel_h * kernel_w, out_h * out_w * N)
        Output, overwritten. Each thread fills whole rows.
    """
    channels, height, width, n_images = x.shape
    _check_cols_shape(cols.shape, channels, kernel_h, kernel_w, out_h, out_w, n_images)
    for row in prange(channels * kernel_h * kernel_w):
        c = row // (kernel_h * kernel_w)
        i = (row // kernel_w) % kernel_h
        j = row % kernel_w
        for oy in range(out_h):
            iy = oy * stride + i - pad_top
            for ox in range(out_w):
                ix = ox * stride + j - pad_left
                base = (oy * out_w + ox) * n_images
                if 0 <= iy < height and 0 <= ix < width:
                    for n in range(n_images):
                        cols[row, base + n] = x[c, iy, ix, n]
                else:
                    for n in range(n_images):
                        cols[row, base + n] = 0.0


@njit(cache=True, parallel=True)
def col2im(
    cols: np.ndarray,
    kernel_h: int,
    kernel_w: int,
    stride: int,
    pad_top: int,
    pad_left: int,
    out_h: int,
    out_w: int,
    x: np.ndarray,
) -> None:
    """Fold columns back into images, summing overlaps (the adjoint of :func:`im2col`).

    Parameters
    ----------
    cols : ndarray, shape (C * kernel_h * kernel_w, out_h * out_w * N)
    kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w : int
        The same geometry that :func:`im2col` was (or would be) called with.
    x : ndarray, shape (C, H, W, N)
        Output, overwritten (zeroed first, then accumulated). Each thread owns whole channels.
    """
    channels, height, width, n_images = x.shape
    _check_cols_shape(cols.shape, channels, kernel_h, kernel_w, out_h, out_w, n_images)
    for c in prange(channels):
        x[c] = 0.0
        for i in range(kernel_h):
            for j in range(kernel_w):
                row = (c * kernel_h + i) * kernel_w + j
                for oy in range(out_h):
                    iy = oy * stride + i - pad_top
                    if iy < 0 or iy >= height:
                        continue
                    for ox in range(out_w):
                        ix = ox * stride + j - pad_left
                        if 0 <= ix < width:
                            base = (oy * out_w + ox) * n_images
                            for n in range(n_images):
                                x[c, iy, ix, n] += cols[row, base + n]
