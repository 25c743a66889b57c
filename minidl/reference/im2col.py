"""NumPy reference for :mod:`minidl.kernels.im2col`: one strided slice per kernel offset."""

import numpy as np
from numpy.typing import DTypeLike


def _padded_canvas(
    shape: tuple[int, ...],
    kernel_h: int,
    kernel_w: int,
    stride: int,
    pad_top: int,
    pad_left: int,
    out_h: int,
    out_w: int,
    dtype: DTypeLike,
) -> np.ndarray:
    """Zeros large enough for the image at (pad_top, pad_left) and for every window of the output."""
    channels, height, width, n_images = shape
    rows = max((out_h - 1) * stride + kernel_h, pad_top + height)
    columns = max((out_w - 1) * stride + kernel_w, pad_left + width)
    return np.zeros((channels, rows, columns, n_images), dtype=dtype)


def _check_cols_shape(cols: np.ndarray, x: np.ndarray, kernel_h: int, kernel_w: int, out_h: int, out_w: int) -> None:
    channels, _, _, n_images = x.shape
    if cols.shape != (channels * kernel_h * kernel_w, out_h * out_w * n_images):
        raise ValueError(
            "im2col/col2im: expected cols of shape (C * kernel_h * kernel_w, out_h * out_w * N) "
            "for images of shape (C, H, W, N)"
        )


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
    """Same contract as :func:`minidl.kernels.im2col.im2col`."""
    _check_cols_shape(cols, x, kernel_h, kernel_w, out_h, out_w)
    channels, height, width, n_images = x.shape
    padded = _padded_canvas(x.shape, kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w, x.dtype)
    padded[:, pad_top : pad_top + height, pad_left : pad_left + width] = x
    view = cols.reshape(channels, kernel_h, kernel_w, out_h, out_w, n_images)
    for i in range(kernel_h):
        for j in range(kernel_w):
            view[:, i, j] = padded[
                :, i : i + stride * out_h : stride, j : j + stride * out_w : stride
            ]  # (C, oh, ow, N)


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
    """Same contract as :func:`minidl.kernels.im2col.col2im`."""
    _check_cols_shape(cols, x, kernel_h, kernel_w, out_h, out_w)
    channels, height, width, n_images = x.shape
    padded = _padded_canvas(x.shape, kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w, x.dtype)
    view = cols.reshape(channels, kernel_h, kernel_w, out_h, out_w, n_images)
    for i in range(kernel_h):
        for j in range(kernel_w):
            padded[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride] += view[:, i, j]
    x[...] = padded[:, pad_top : pad_top + height, pad_left : pad_left + width]
