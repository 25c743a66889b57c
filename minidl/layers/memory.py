"""Memory layouts of the arrays that pass between layers, and scratch buffers that live across calls.

Every layer takes and returns arrays of the documented logical shape, (N, C, H, W) for images, but
not always C-contiguous. The convolution and pooling kernels work on images stored *images-last*,
as a C-contiguous (C, H, W, N) array: the N images of the batch sit side by side at every pixel, so
every kernel loop ends in a contiguous, vectorisable run over the batch, and a convolution's matrix
product, whose columns run over (output position, image), produces exactly that layout. Those layers
return the (N, C, H, W) view ``stored.transpose(3, 0, 1, 2)`` instead of copying, element-wise
layers keep whatever layout they receive, and so the next layer finds its input, and its backward
pass its gradient, already in place. A layer given another layout copies once
(:func:`images_last`).

``memory_axes`` names a layout, ``empty`` allocates in one, and ``flat`` lines the elements of any
array up in one, as a 1-D array an element-wise kernel can walk with ``prange``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

IMAGES_LAST = (1, 2, 3, 0)  # memory order of an (N, C, H, W) array stored as (C, H, W, N)


def images_last(x: np.ndarray, dtype: DTypeLike | None = None) -> np.ndarray:
    """The images of ``x`` (N, C, H, W) as a C-contiguous (C, H, W, N) array: a view when ``x`` is
    stored images-last (and of ``dtype``), a copy otherwise."""
    return np.ascontiguousarray(x.transpose(IMAGES_LAST), dtype=dtype)


def as_images(stored: np.ndarray) -> np.ndarray:
    """The (N, C, H, W) view of images stored images-last, as (C, H, W, N)."""
    return stored.transpose(3, 0, 1, 2)


def memory_axes(x: np.ndarray) -> tuple[int, ...]:
    """The axes of ``x`` from the slowest-varying in memory to the fastest: (0, 1, ..., ndim - 1) for C order.

    Axes of size 1 do not move in memory; they keep their logical place.
    """
    moving = sorted((axis for axis in range(x.ndim) if x.shape[axis] > 1), key=lambda axis: -abs(x.strides[axis]))
    order = iter(moving)
    return tuple(axis if x.shape[axis] <= 1 else next(order) for axis in range(x.ndim))


def empty(shape: tuple[int, ...], axes: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
    """An uninitialised array of logical ``shape`` whose memory is laid out in the order ``axes``."""
    stored = np.empty(tuple(shape[axis] for axis in axes), dtype=dtype)
    return stored.transpose(np.argsort(axes))


def flat(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """The elements of ``x`` as a 1-D array in the order ``axes``: a view when ``x`` is laid out that way,
    a copy otherwise. For two arrays of one shape, ``flat(a, axes)[i]`` and ``flat(b, axes)[i]`` are
    the same logical element."""
    return x.transpose(axes).reshape(-1)


class Workspace:
    """Named scratch arrays kept from one call to the next.

    A fresh array of tens of megabytes is mapped afresh by the allocator at every call (glibc maps
    anything over 32 MiB directly) and pays page faults the first time it is written; a training step
    would do that for every im2col or Winograd buffer. ``get`` returns the array kept under ``name``
    when its shape and dtype still fit, and allocates a new one otherwise. Its contents are whatever
    the last user left there.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
        array = self._arrays.get(name)
        if array is None or array.shape != tuple(shape) or array.dtype != np.dtype(dtype):
            array = self._arrays[name] = np.empty(shape, dtype=dtype)
        return array
