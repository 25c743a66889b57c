"""NumPy reference for :mod:`minidl.kernels.im2col`: one strided slice per kernel offset."""

import numpy as np


def _padded_canvas(shape, kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w, dtype):
    """Zeros large enough for the image at (pad_top, pad_left) and for every window of the output."""
    n_images, channels, height, width = shape
    rows = max((out_h - 1) * stride + kernel_h, pad_top + height)
    columns = max((out_w - 1) * stride + kernel_w, pad_left + width)
    return np.zeros((n_images, channels, rows, columns), dtype=dtype)


def im2col(x, kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w, cols):
    """Same contract as :func:`minidl.kernels.im2col.im2col`."""
    n_images, channels, height, width = x.shape
    padded = _padded_canvas(x.shape, kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w, x.dtype)
    padded[:, :, pad_top:pad_top + height, pad_left:pad_left + width] = x
    view = cols.reshape(channels, kernel_h, kernel_w, n_images, out_h, out_w)
    for i in range(kernel_h):
        for j in range(kernel_w):
            patch = padded[:, :, i:i + stride * out_h:stride, j:j + stride * out_w:stride]  # (N, C, oh, ow)
            view[:, i, j] = patch.transpose(1, 0, 2, 3)


def col2im(cols, kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w, x):
    """Same contract as :func:`minidl.kernels.im2col.col2im`."""
    n_images, channels, height, width = x.shape
    padded = _padded_canvas(x.shape, kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w, x.dtype)
    view = cols.reshape(channels, kernel_h, kernel_w, n_images, out_h, out_w)
    for i in range(kernel_h):
        for j in range(kernel_w):
            padded[:, :, i:i + stride * out_h:stride, j:j + stride * out_w:stride] += view[:, i, j].transpose(1, 0, 2, 3)
    x[...] = padded[:, :, pad_top:pad_top + height, pad_left:pad_left + width]
