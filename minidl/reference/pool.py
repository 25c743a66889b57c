"""NumPy reference for :mod:`minidl.kernels.pool`: windows as an extra axis, ``argmax`` picks the first
maximum (and the first NaN, which ``np.argmax`` takes for the maximum)."""

import numpy as np


def maxpool_forward(x, pool, y, argmax):
    """Same contract as :func:`minidl.kernels.pool.maxpool_forward`."""
    n_images, channels, out_h, out_w = y.shape
    height, width = x.shape[2], x.shape[3]
    if pool < 1:
        raise ValueError("maxpool_forward: pool must be a positive integer")
    if (x.shape[:2] != (n_images, channels) or (out_h, out_w) != (height // pool, width // pool)
            or argmax.shape != y.shape):
        raise ValueError("maxpool_forward: expected y and argmax of shape (N, C, H // pool, W // pool) "
                         "for x of shape (N, C, H, W)")
    cropped = x[:, :, :out_h * pool, :out_w * pool]
    windows = cropped.reshape(n_images, channels, out_h, pool, out_w, pool).transpose(0, 1, 2, 4, 3, 5)
    windows = windows.reshape(n_images, channels, out_h, out_w, pool * pool)
    first = windows.argmax(axis=-1)  # np.argmax returns the first occurrence of the maximum, or the first NaN
    y[...] = np.take_along_axis(windows, first[..., None], axis=-1)[..., 0]
    rows = np.arange(out_h)[:, None] * pool + first // pool
    columns = np.arange(out_w)[None, :] * pool + first % pool
    argmax[...] = rows * width + columns


def maxpool_backward(dy, argmax, dx):
    """Same contract as :func:`minidl.kernels.pool.maxpool_backward`."""
    n_images, channels = dy.shape[:2]
    if argmax.shape != dy.shape or dx.shape[:2] != (n_images, channels):
        raise ValueError("maxpool_backward: expected argmax of the shape of dy, (N, C, OH, OW), "
                         "and dx of shape (N, C, H, W)")
    if argmax.size and (argmax.min() < 0 or argmax.max() >= dx.shape[2] * dx.shape[3]):
        raise ValueError("maxpool_backward: argmax holds an index outside [0, H * W)")
    flat = np.zeros((n_images, channels, dx.shape[2] * dx.shape[3]), dtype=dx.dtype)
    np.add.at(flat, (np.arange(n_images)[:, None, None, None],
                     np.arange(channels)[None, :, None, None], argmax), dy)
    dx[...] = flat.reshape(dx.shape)
