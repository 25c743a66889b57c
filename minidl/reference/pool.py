"""NumPy reference for :mod:`minidl.kernels.pool`: windows as an extra axis, ``argmax`` picks the first maximum."""

import numpy as np


def maxpool_forward(x, pool, y, argmax):
    """Same contract as :func:`minidl.kernels.pool.maxpool_forward`."""
    n_images, channels, out_h, out_w = y.shape
    width = x.shape[3]
    cropped = x[:, :, :out_h * pool, :out_w * pool]
    windows = cropped.reshape(n_images, channels, out_h, pool, out_w, pool).transpose(0, 1, 2, 4, 3, 5)
    windows = windows.reshape(n_images, channels, out_h, out_w, pool * pool)
    first = windows.argmax(axis=-1)  # np.argmax returns the first occurrence of the maximum
    y[...] = np.take_along_axis(windows, first[..., None], axis=-1)[..., 0]
    rows = np.arange(out_h)[:, None] * pool + first // pool
    columns = np.arange(out_w)[None, :] * pool + first % pool
    argmax[...] = rows * width + columns


def maxpool_backward(dy, argmax, dx):
    """Same contract as :func:`minidl.kernels.pool.maxpool_backward`."""
    n_images, channels = dy.shape[:2]
    flat = np.zeros((n_images, channels, dx.shape[2] * dx.shape[3]), dtype=dx.dtype)
    np.add.at(flat, (np.arange(n_images)[:, None, None, None],
                     np.arange(channels)[None, :, None, None], argmax), dy)
    dx[...] = flat.reshape(dx.shape)
