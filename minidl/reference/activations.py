"""NumPy reference for :mod:`minidl.kernels.activations`."""

import numpy as np


def relu_forward(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> None:
    """Same contract as :func:`minidl.kernels.activations.relu_forward`."""
    np.greater(x, 0, out=mask)
    np.multiply(x, mask, out=y)


def relu_backward(dy: np.ndarray, mask: np.ndarray, dx: np.ndarray) -> None:
    """Same contract as :func:`minidl.kernels.activations.relu_backward`."""
    np.multiply(dy, mask, out=dx)


def negative_capped_abs(x: np.ndarray, bound: float, out: np.ndarray) -> None:
    """Same contract as :func:`minidl.kernels.activations.negative_capped_abs`."""
    if out.shape != x.shape:
        raise ValueError("negative_capped_abs: expected out of the shape of x")
    np.negative(np.minimum(np.abs(x), out.dtype.type(bound)), out=out)


def sigmoid_from_exponential(x: np.ndarray, e: np.ndarray, y: np.ndarray) -> None:
    """Same contract as :func:`minidl.kernels.activations.sigmoid_from_exponential`."""
    y[...] = np.where(x >= 0, 1, e) / (1 + e)


def any_per_row(rows: np.ndarray, out: np.ndarray) -> None:
    """Same contract as :func:`minidl.kernels.activations.any_per_row`."""
    np.any(rows != 0, axis=1, out=out)
