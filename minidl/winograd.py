"""Winograd minimal filtering for stride-1 3x3 convolutions (Lavin and Gray, 2016).

A 3x3 correlation of an (m + 2) x (m + 2) input tile d with a filter g gives an m x m output tile,

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* element by element),

with (m + 2)^2 multiplications instead of 9 m^2: 16 instead of 36 for F(2x2, 3x3), 36 instead of 144
for F(4x4, 3x3). Over C input channels the element-wise products become, for each of the (m + 2)^2
positions xi of the transformed tile, one matrix product over channels:

    M[xi] = U[xi] @ V[xi],   U[xi] = (G g G^T)[xi] as an (F, C) matrix,   V[xi] = (B^T d B)[xi] as (C, T),

T running over every tile of every image. The backward passes are the adjoints of these linear maps
(docs/winograd.md derives them):

    dM = A dY A^T per tile,   dU[xi] = dM[xi] @ V[xi]^T,  dg = G^T dU G,   dV[xi] = U[xi]^T @ dM[xi],
    dd = B dV B^T, added back into the overlapping input tiles.

This module holds the transform matrices and the weight transform and its adjoint (small arrays,
plain NumPy); the tile transforms over the whole batch are kernels in :mod:`minidl.kernels.winograd`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class WinogradTransform:
    """The three matrices of F(m x m, 3 x 3), in float64.

    Attributes
    ----------
    m : int
        Output tile size; input tiles are (m + 2) x (m + 2).
    BT : ndarray, shape (m + 2, m + 2)
        Input transform B^T.
    G : ndarray, shape (m + 2, 3)
        Filter transform.
    AT : ndarray, shape (m, m + 2)
        Output transform A^T.
    """

    m: int
    BT: np.ndarray
    G: np.ndarray
    AT: np.ndarray

    @property
    def tile(self) -> int:
        return self.m + 2


# Lavin and Gray (2016), interpolation points 0, 1, -1 (and infinity).
F2X2_3X3 = WinogradTransform(
    m=2,
    BT=np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64),
    G=np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]], dtype=np.float64),
    AT=np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64),
)

# Lavin and Gray (2016), points 0, 1, -1, 2, -2 (and infinity).
F4X4_3X3 = WinogradTransform(
    m=4,
    BT=np.array(
        [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ],
        dtype=np.float64,
    ),
    G=np.array(
        [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ],
        dtype=np.float64,
    ),
    AT=np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=np.float64),
)


def tile_grid(out_h: int, out_w: int, m: int) -> tuple[int, int]:
    """Tiles per column and per row that cover an out_h x out_w output with m x m tiles."""
    return math.ceil(out_h / m), math.ceil(out_w / m)


def transform_weights(W: np.ndarray, G: np.ndarray) -> np.ndarray:
    """U = G g G^T for every filter g = W[f, c], laid out for the products over channels.

    Shapes
    ------
    W : (F, C, 3, 3), G : (a, 3) -> U : (a * a, F, C), U[p * a + q, f, c] = (G W[f, c] G^T)[p, q]

    Notes
    -----
    Entry (p, q) of G g G^T is sum_{k, l} G[p, k] g[k, l] G[q, l]: with g flattened to 9 numbers, the
    whole transform is one product with the Kronecker matrix kron(G, G) of shape (a * a, 9), and for
    every filter at once, kron(G, G) @ W.reshape(F C, 9).T.
    """
    filters, channels = W.shape[:2]
    G2 = np.kron(G, G).astype(W.dtype)
    return (G2 @ W.reshape(filters * channels, 9).T).reshape(-1, filters, channels)


def transform_weights_adjoint(dU: np.ndarray, G: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`transform_weights`: dW[f, c] = G^T dU[:, f, c] G, the gradient of the filters.

    Shapes
    ------
    dU : (a * a, F, C), G : (a, 3) -> dW : (F, C, 3, 3)

    Notes
    -----
    The adjoint of the product with kron(G, G) is the product with its transpose.
    """
    _, filters, channels = dU.shape
    G2 = np.kron(G, G).astype(dU.dtype)
    return (G2.T @ dU.reshape(-1, filters * channels)).T.reshape(filters, channels, 3, 3)
