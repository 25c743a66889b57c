"""NumPy reference for :mod:`minidl.kernels.pool`: windows as an extra axis, ``argmax`` picks the first maximum."""

import numpy as np


def maxpool_forward(x, pool, y, argmax):
    """Same contract as :func:`minidl.kernels.pool.maxpool_forward`."""
    channels, out_h, out_w, n_images = y.shape
    width = x.shape[2]
    cropped = x[:, :out_h * pool, :out_w * pool]
    windows = cropped.reshape(channels, out_h, pool, out_w, pool, n_images).transpose(0, 1, 3, 5, 2, 4)
    windows = windows.reshape(channels, out_h, out_w, n_images, pool * pool)
    first = windows.argmax(axis=-1)  # np.argmax returns the first occurrence of the maximum
    y[...] = np.take_along_axis(windows, first[..., None], axis=-1)[..., 0]
    rows = np.arange(out_h)[:, None, None] * pool + first // pool
    columns = np.arange(out_w)[None, :, None] * pool + first % pool
    argmax[...] = rows * width + columns


def maxpool_backward(dy, argmax, pool, dx):
    """Same contract as :func:`minidl.kernels.pool.maxpool_backward`."""
    channels, _, _, n_images = dy.shape
    flat = np.zeros((channels, dx.shape[1] * dx.shape[2], n_images), dtype=dx.dtype)
    np.add.at(flat, (np.arange(channels)[:, None, None, None], argmax, np.arange(n_images)), dy)
    dx[...] = flat.reshape(dx.shape)


def maxpool_gather(x, argmax, pool, y):
    """Same contract as :func:`minidl.kernels.pool.maxpool_gather`."""
    channels, height, width, n_images = x.shape
    y[...] = np.take_along_axis(x.reshape(channels, height * width, n_images),
                                argmax.reshape(channels, -1, n_images), axis=1).reshape(y.shape)
