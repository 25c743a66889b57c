"""Winograd tile transforms over a whole batch (the math is in :mod:`minidl.winograd` and docs/winograd.md).

Images are stored images-last, (C, H, W, N), so every loop ends in a contiguous run over the N images
of the batch and vectorises. Tiles cover the output in m x m squares: the tile at tile row ty and
tile column tx starts at output row ``ty * m`` and column ``tx * m``, and its (m + 2) x (m + 2) input
tile at row ``ty * m - pad_top`` and column ``tx * m - pad_left`` of the image (zero outside it).
Transformed tiles are stored position-major, ``V[p * a + q, c, (ty * tiles_w + tx) * N + n]`` with
a = m + 2: each of the a * a positions of a transformed tile is one (C, tiles * N) matrix for the
products over channels.

Each kernel runs over channels in parallel: a thread owns whole channels, so no two threads write
one element and no sum crosses threads. A transform combines rows, then columns, of a tile with
coefficients of the transform matrix (passed in, in the data's dtype); zero coefficients, half of
them, are skipped.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def winograd_input_tiles(
    x: np.ndarray, BT: np.ndarray, pad_top: int, pad_left: int, tiles_h: int, tiles_w: int, V: np.ndarray
) -> None:
    """Transform every input tile: V_t = B^T d_t B.

    Parameters
    ----------
    x : ndarray, shape (C, H, W, N)
    BT : ndarray, shape (a, a)
        B^T, in the dtype of ``V``.
    pad_top, pad_left, tiles_h, tiles_w : int
    V : ndarray, shape (a * a, C, tiles_h * tiles_w * N)
        Output, overwritten.
    """
    channels, height, width, n_images = x.shape
    a = BT.shape[0]
    m = a - 2
    for c in prange(channels):
        d = np.empty((a, a, n_images), dtype=V.dtype)
        rows = np.empty((a, a, n_images), dtype=V.dtype)
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                for i in range(a):
                    iy = ty * m + i - pad_top
                    for j in range(a):
                        ix = tx * m + j - pad_left
                        if 0 <= iy < height and 0 <= ix < width:
                            for n in range(n_images):
                                d[i, j, n] = x[c, iy, ix, n]
                        else:
                            for n in range(n_images):
                                d[i, j, n] = 0.0
                # rows = B^T d
                for p in range(a):
                    for j in range(a):
                        for n in range(n_images):
                            rows[p, j, n] = 0.0
                    for i in range(a):
                        coefficient = BT[p, i]
                        if coefficient != 0.0:
                            for j in range(a):
                                for n in range(n_images):
                                    rows[p, j, n] += coefficient * d[i, j, n]
                # V = rows B
                base = (ty * tiles_w + tx) * n_images
                for p in range(a):
                    for q in range(a):
                        out = V[p * a + q, c, base : base + n_images]
                        out[:] = 0.0
                        for j in range(a):
                            coefficient = BT[q, j]
                            if coefficient != 0.0:
                                for n in range(n_images):
                                    out[n] += coefficient * rows[p, j, n]


@njit(cache=True, parallel=True)
def winograd_input_tiles_adjoint(
    dV: np.ndarray, BT: np.ndarray, pad_top: int, pad_left: int, tiles_h: int, tiles_w: int, dx: np.ndarray
) -> None:
    """The adjoint of :func:`winograd_input_tiles`: dx = the sum over tiles of B dV_t B^T, each added
    where its input tile lies (overlapping tiles add up; what falls in the padding is dropped).

    Parameters
    ----------
    dV : ndarray, shape (a * a, C, tiles_h * tiles_w * N)
    BT : ndarray, shape (a, a)
    pad_top, pad_left, tiles_h, tiles_w : int
    dx : ndarray, shape (C, H, W, N)
        Output, overwritten (zeroed first, then accumulated).
    """
    channels, height, width, n_images = dx.shape
    a = BT.shape[0]
    m = a - 2
    for c in prange(channels):
        dx[c] = 0.0
        rows = np.empty((a, a, n_images), dtype=dx.dtype)
        e = np.empty((a, n_images), dtype=dx.dtype)
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                base = (ty * tiles_w + tx) * n_images
                # rows = B dV  (B = (B^T)^T: rows[i, q] = sum_p BT[p, i] dV[p, q])
                for i in range(a):
                    for q in range(a):
                        for n in range(n_images):
                            rows[i, q, n] = 0.0
                    for p in range(a):
                        coefficient = BT[p, i]
                        if coefficient != 0.0:
                            for q in range(a):
                                tile = dV[p * a + q, c, base : base + n_images]
                                for n in range(n_images):
                                    rows[i, q, n] += coefficient * tile[n]
                # row i of B dV B^T, added where it lies in the image
                for i in range(a):
                    iy = ty * m + i - pad_top
                    if iy < 0 or iy >= height:
                        continue
                    for j in range(a):
                        for n in range(n_images):
                            e[j, n] = 0.0
                        for q in range(a):
                            coefficient = BT[q, j]
                            if coefficient != 0.0:
                                for n in range(n_images):
                                    e[j, n] += coefficient * rows[i, q, n]
                    for j in range(a):
                        ix = tx * m + j - pad_left
                        if 0 <= ix < width:
                            for n in range(n_images):
                                dx[c, iy, ix, n] += e[j, n]


@njit(cache=True, parallel=True)
def winograd_output_tiles(M: np.ndarray, AT: np.ndarray, bias: np.ndarray, y: np.ndarray) -> None:
    """Transform every product tile back and add the bias: y_t = A^T M_t A + b, cropped to y.

    Parameters
    ----------
    M : ndarray, shape (a * a, F, tiles_h * tiles_w * N)
        ``M[i * a + j, f, (ty * tiles_w + tx) * N + n]`` is entry (i, j) of a product tile.
    AT : ndarray, shape (m, a)
        A^T, in the dtype of ``y``.
    bias : ndarray, shape (F,)
    y : ndarray, shape (F, OH, OW, N)
        Output, overwritten; tiles_h = ceil(OH / m), tiles_w = ceil(OW / m).
    """
    filters, out_h, out_w, n_images = y.shape
    m, a = AT.shape
    tiles_h = (out_h + m - 1) // m
    tiles_w = (out_w + m - 1) // m
    for f in prange(filters):
        rows = np.empty((m, a, n_images), dtype=y.dtype)
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                base = (ty * tiles_w + tx) * n_images
                # rows = A^T M
                for p in range(m):
                    for j in range(a):
                        for n in range(n_images):
                            rows[p, j, n] = 0.0
                    for i in range(a):
                        coefficient = AT[p, i]
                        if coefficient != 0.0:
                            for j in range(a):
                                tile = M[i * a + j, f, base : base + n_images]
                                for n in range(n_images):
                                    rows[p, j, n] += coefficient * tile[n]
                # y = rows A + b, where the tile lies inside the output
                for p in range(min(m, out_h - ty * m)):
                    for q in range(min(m, out_w - tx * m)):
                        out = y[f, ty * m + p, tx * m + q]
                        out[:] = bias[f]
                        for j in range(a):
                            coefficient = AT[q, j]
                            if coefficient != 0.0:
                                for n in range(n_images):
                                    out[n] += coefficient * rows[p, j, n]


@njit(cache=True, parallel=True)
def winograd_output_tiles_adjoint(dy: np.ndarray, AT: np.ndarray, dM: np.ndarray, db: np.ndarray) -> None:
    """The adjoint of :func:`winograd_output_tiles`: dM_t = A dY_t A^T, and db = the sum of dy per channel.

    Parameters
    ----------
    dy : ndarray, shape (F, OH, OW, N)
        The gradient of the output; tile entries beyond its edge count as zero.
    AT : ndarray, shape (m, a)
    dM : ndarray, shape (a * a, F, tiles_h * tiles_w * N)
        Output, overwritten.
    db : ndarray, shape (F,)
        Output, overwritten (summed in float64, per image first).
    """
    filters, out_h, out_w, n_images = dy.shape
    m, a = AT.shape
    tiles_h = (out_h + m - 1) // m
    tiles_w = (out_w + m - 1) // m
    for f in prange(filters):
        rows = np.empty((a, m, n_images), dtype=dM.dtype)
        per_image = np.zeros(n_images, dtype=np.float64)
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                base = (ty * tiles_w + tx) * n_images
                # rows = A dY  (A = (A^T)^T: rows[i, q] = sum_p AT[p, i] dY[p, q]); dY is 0 beyond the edge
                for i in range(a):
                    for q in range(m):
                        for n in range(n_images):
                            rows[i, q, n] = 0.0
                for p in range(min(m, out_h - ty * m)):
                    for q in range(min(m, out_w - tx * m)):
                        g = dy[f, ty * m + p, tx * m + q]
                        for n in range(n_images):
                            per_image[n] += g[n]
                        for i in range(a):
                            coefficient = AT[p, i]
                            if coefficient != 0.0:
                                for n in range(n_images):
                                    rows[i, q, n] += coefficient * g[n]
                # dM = rows A^T
                for i in range(a):
                    for j in range(a):
                        out = dM[i * a + j, f, base : base + n_images]
                        out[:] = 0.0
                        for q in range(m):
                            coefficient = AT[q, j]
                            if coefficient != 0.0:
                                for n in range(n_images):
                                    out[n] += coefficient * rows[i, q, n]
        db[f] = per_image.sum()
