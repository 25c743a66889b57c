"""NumPy reference for :mod:`minidl.kernels.winograd`: tiles as strided views, transforms as ``einsum``.

Index letters: c channel, f filter, n image, u and v tile row and column, i j input-tile entries,
p q transformed (or output-tile) entries.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import DTypeLike


def _canvas(
    shape: tuple[int, ...], m: int, pad_top: int, pad_left: int, tiles_h: int, tiles_w: int, dtype: DTypeLike
) -> np.ndarray:
    """Zeros large enough for the image at (pad_top, pad_left) and for every (m + 2)-tile of the grid."""
    channels, height, width, n_images = shape
    rows = max(tiles_h * m + 2, pad_top + height)
    columns = max(tiles_w * m + 2, pad_left + width)
    return np.zeros((channels, rows, columns, n_images), dtype=dtype)


def winograd_input_tiles(
    x: np.ndarray, BT: np.ndarray, pad_top: int, pad_left: int, tiles_h: int, tiles_w: int, V: np.ndarray
) -> None:
    """Same contract as :func:`minidl.kernels.winograd.winograd_input_tiles`."""
    channels, height, width, n_images = x.shape
    a = BT.shape[0]
    m = a - 2
    canvas = _canvas(x.shape, m, pad_top, pad_left, tiles_h, tiles_w, V.dtype)
    canvas[:, pad_top : pad_top + height, pad_left : pad_left + width] = x
    # tiles[c, u, v, n] is the a x a window whose corner is at (u m, v m) of the canvas
    tiles = sliding_window_view(canvas, (a, a), axis=(1, 2))[:, : tiles_h * m : m, : tiles_w * m : m]
    V[...] = np.einsum("pi,cuvnij,qj->pqcuvn", BT, tiles, BT, optimize=True).reshape(a * a, channels, -1)


def winograd_input_tiles_adjoint(
    dV: np.ndarray, BT: np.ndarray, pad_top: int, pad_left: int, tiles_h: int, tiles_w: int, dx: np.ndarray
) -> None:
    """Same contract as :func:`minidl.kernels.winograd.winograd_input_tiles_adjoint`."""
    channels, height, width, n_images = dx.shape
    a = BT.shape[0]
    m = a - 2
    per_tile = dV.reshape(a, a, channels, tiles_h, tiles_w, n_images)
    e = np.einsum("pi,pqcuvn,qj->ijcuvn", BT, per_tile, BT, optimize=True)  # B dV B^T per tile
    canvas = _canvas(dx.shape, m, pad_top, pad_left, tiles_h, tiles_w, dx.dtype)
    for i in range(a):
        for j in range(a):
            canvas[:, i : i + tiles_h * m : m, j : j + tiles_w * m : m] += e[i, j]
    dx[...] = canvas[:, pad_top : pad_top + height, pad_left : pad_left + width]


def winograd_output_tiles(M: np.ndarray, AT: np.ndarray, bias: np.ndarray, y: np.ndarray) -> None:
    """Same contract as :func:`minidl.kernels.winograd.winograd_output_tiles`."""
    filters, out_h, out_w, n_images = y.shape
    m, a = AT.shape
    tiles_h, tiles_w = -(-out_h // m), -(-out_w // m)
    per_tile = M.reshape(a, a, filters, tiles_h, tiles_w, n_images)
    Y = np.einsum("pi,ijfuvn,qj->fupvqn", AT, per_tile, AT, optimize=True)  # A^T M A per tile
    Y = Y.reshape(filters, tiles_h * m, tiles_w * m, n_images)
    y[...] = Y[:, :out_h, :out_w] + bias[:, None, None, None]


def winograd_output_tiles_adjoint(dy: np.ndarray, AT: np.ndarray, dM: np.ndarray, db: np.ndarray) -> None:
    """Same contract as :func:`minidl.kernels.winograd.winograd_output_tiles_adjoint`."""
    filters, out_h, out_w, n_images = dy.shape
    m, a = AT.shape
    tiles_h, tiles_w = -(-out_h // m), -(-out_w // m)
    padded = np.zeros((filters, tiles_h * m, tiles_w * m, n_images), dtype=dM.dtype)
    padded[:, :out_h, :out_w] = dy
    per_tile = padded.reshape(filters, tiles_h, m, tiles_w, m, n_images)  # [f, u, p, v, q, n]
    dM[...] = np.einsum("pi,fupvqn,qj->ijfuvn", AT, per_tile, AT, optimize=True).reshape(a * a, filters, -1)
    db[...] = dy.sum(axis=(1, 2, 3), dtype=np.float64)
