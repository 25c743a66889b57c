"""NumPy reference for :mod:`minidl.kernels.pool`: windows as an extra axis, ``argmax`` picks the first
maximum (and the first NaN, which ``np.argmax`` takes for the maximum)."""

import numpy as np


def _check_shapes(
    name: str, x: np.ndarray, y: np.ndarray, argmax: np.ndarray, pool: int, x_name: str = "x", y_name: str = "y"
) -> None:
    """x (C, H, W, N) against y and argmax (C, H // pool, W // pool, N), as the kernels check them."""
    channels, height, width, n_images = x.shape
    if pool < 1 or y.shape != (channels, height // pool, width // pool, n_images) or argmax.shape != y.shape:
        raise ValueError(
            f"{name}: expected a positive pool, and {y_name} and argmax of shape "
            f"(C, H // pool, W // pool, N) for {x_name} of shape (C, H, W, N)"
        )


def _check_indices(name: str, argmax: np.ndarray, pool: int, width: int) -> None:
    rows, columns = argmax // width, argmax % width
    out_h, out_w = argmax.shape[1:3]
    if argmax.size and (
        (argmax < 0).any()
        or (rows // pool != np.arange(out_h)[:, None, None]).any()
        or (columns // pool != np.arange(out_w)[None, :, None]).any()
    ):
        raise ValueError(f"{name}: argmax holds an index outside its window")


def maxpool_forward(x: np.ndarray, pool: int, y: np.ndarray, argmax: np.ndarray) -> None:
    """Same contract as :func:`minidl.kernels.pool.maxpool_forward`."""
    _check_shapes("maxpool_forward", x, y, argmax, pool)
    channels, out_h, out_w, n_images = y.shape
    width = x.shape[2]
    cropped = x[:, : out_h * pool, : out_w * pool]
    windows = cropped.reshape(channels, out_h, pool, out_w, pool, n_images).transpose(0, 1, 3, 5, 2, 4)
    windows = windows.reshape(channels, out_h, out_w, n_images, pool * pool)
    first = windows.argmax(axis=-1)  # np.argmax returns the first occurrence of the maximum, or the first NaN
    y[...] = np.take_along_axis(windows, first[..., None], axis=-1)[..., 0]
    rows = np.arange(out_h)[:, None, None] * pool + first // pool
    columns = np.arange(out_w)[None, :, None] * pool + first % pool
    argmax[...] = rows * width + columns


def maxpool_backward(dy: np.ndarray, argmax: np.ndarray, pool: int, dx: np.ndarray) -> None:
    """Same contract as :func:`minidl.kernels.pool.maxpool_backward`."""
    _check_shapes("maxpool_backward", dx, dy, argmax, pool, "dx", "dy")
    _check_indices("maxpool_backward", argmax, pool, dx.shape[2])
    channels, _, _, n_images = dy.shape
    flat = np.zeros((channels, dx.shape[1] * dx.shape[2], n_images), dtype=dx.dtype)
    np.add.at(flat, (np.arange(channels)[:, None, None, None], argmax, np.arange(n_images)), dy)
    dx[...] = flat.reshape(dx.shape)


def maxpool_gather(x: np.ndarray, argmax: np.ndarray, pool: int, y: np.ndarray) -> None:
    """Same contract as :func:`minidl.kernels.pool.maxpool_gather`."""
    _check_shapes("maxpool_gather", x, y, argmax, pool)
    _check_indices("maxpool_gather", argmax, pool, x.shape[2])
    channels, height, width, n_images = x.shape
    y[...] = np.take_along_axis(
        x.reshape(channels, height * width, n_images), argmax.reshape(channels, -1, n_images), axis=1
    ).reshape(y.shape)
