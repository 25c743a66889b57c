"""assert_adjoint: a claimed transpose of a linear map against the dot-product identity.

For a linear map A and its transpose, <A x, y> = <x, A^T y> for every x and y. Random x and y test the
identity in a few products; when it fails on small maps, both matrices are built column by column and
the worst entry (A[j, i] against A^T[i, j]) is named.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

MAX_ENTRIES_TO_LOCATE = 200_000  # build both matrices on failure only up to this many entries


def _apply(
    function: Callable[[np.ndarray], np.ndarray], argument: np.ndarray, expected: tuple[int, ...], name: str
) -> np.ndarray:
    result = function(argument)
    if not isinstance(result, np.ndarray):
        raise TypeError(f"assert_adjoint: {name} returned {type(result).__name__}, expected a numpy array.")
    if result.shape != expected:
        raise ValueError(f"assert_adjoint: {name} maps {argument.shape} to {result.shape}, expected {expected}.")
    return result.astype(np.float64, copy=False)


def assert_adjoint(
    forward: Callable[[np.ndarray], np.ndarray],
    transpose: Callable[[np.ndarray], np.ndarray],
    x_shape: tuple[int, ...],
    y_shape: tuple[int, ...],
    *,
    rng: np.random.Generator | int = 0,
    trials: int = 3,
    tolerance: float = 1e-10,
) -> float:
    """Check that ``transpose`` is the adjoint of the linear map ``forward``.

    Parameters
    ----------
    forward : callable
        x of shape ``x_shape`` -> A x of shape ``y_shape``. Must be linear: a layer with its bias
        included is affine, and is rejected with a message saying so.
    transpose : callable
        y of shape ``y_shape`` -> A^T y of shape ``x_shape``.
    x_shape, y_shape : tuple of int
    rng : int or np.random.Generator
    trials : int
        Random pairs (x, y) tried.
    tolerance : float
        Bound on |<A x, y> - <x, A^T y>| / (||A x|| ||y|| + ||x|| ||A^T y||), the mismatch relative to
        the largest value either product could take.

    Returns
    -------
    float
        The largest relative mismatch found.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.testing import assert_adjoint
    >>> M = np.arange(6.0).reshape(2, 3)
    >>> assert_adjoint(lambda x: M @ x, lambda y: M.T @ y, (3,), (2,)) < 1e-15
    True
    """
    x_shape, y_shape = tuple(x_shape), tuple(y_shape)
    rng = np.random.default_rng(rng)
    x1, x2 = rng.standard_normal(x_shape), rng.standard_normal(x_shape)
    a1, a2 = _apply(forward, x1, y_shape, "forward"), _apply(forward, x2, y_shape, "forward")
    combined = _apply(forward, 2.0 * x1 - 3.0 * x2, y_shape, "forward")
    scale = float(2.0 * np.linalg.norm(a1) + 3.0 * np.linalg.norm(a2))
    if np.linalg.norm(combined - (2.0 * a1 - 3.0 * a2)) > tolerance * max(scale, 1e-300):
        at_zero = _apply(forward, np.zeros(x_shape), y_shape, "forward")
        hint = (
            f" forward(0) is not 0 (max |forward(0)| = {np.max(np.abs(at_zero)):.3g}): a bias? Check the map "
            "without it."
            if np.any(at_zero)
            else ""
        )
        raise AssertionError(
            f"assert_adjoint: forward is not linear: A(2 x1 - 3 x2) differs from 2 A x1 - 3 A x2 "
            f"by {np.linalg.norm(combined - (2 * a1 - 3 * a2)):.3g} (norm).{hint}"
        )
    worst = 0.0
    for _ in range(trials):
        x, y = rng.standard_normal(x_shape), rng.standard_normal(y_shape)
        ax, aty = _apply(forward, x, y_shape, "forward"), _apply(transpose, y, x_shape, "transpose")
        lhs, rhs = float(np.sum(ax * y)), float(np.sum(x * aty))
        bound = float(np.linalg.norm(ax) * np.linalg.norm(y) + np.linalg.norm(x) * np.linalg.norm(aty))
        mismatch = abs(lhs - rhs) / max(bound, 1e-300)
        worst = max(worst, mismatch)
        if mismatch > tolerance:
            where = _locate(forward, transpose, x_shape, y_shape)
            raise AssertionError(
                f"assert_adjoint: <A x, y> = {lhs:.12g} but <x, A^T y> = {rhs:.12g}: relative "
                f"mismatch {mismatch:.2g} > {tolerance:g}.{where}"
            )
    return worst


def _locate(
    forward: Callable[[np.ndarray], np.ndarray],
    transpose: Callable[[np.ndarray], np.ndarray],
    x_shape: tuple[int, ...],
    y_shape: tuple[int, ...],
) -> str:
    """Name the entry where the matrix of ``transpose`` differs most from the transposed matrix of ``forward``."""
    n_in, n_out = int(np.prod(x_shape)), int(np.prod(y_shape))
    if n_in * n_out > MAX_ENTRIES_TO_LOCATE:
        return ""
    matrix = np.empty((n_out, n_in))
    for i in range(n_in):
        basis = np.zeros(n_in)
        basis[i] = 1.0
        matrix[:, i] = forward(basis.reshape(x_shape)).reshape(-1)
    claimed = np.empty((n_in, n_out))
    for j in range(n_out):
        basis = np.zeros(n_out)
        basis[j] = 1.0
        claimed[:, j] = transpose(basis.reshape(y_shape)).reshape(-1)
    difference = np.abs(claimed - matrix.T)
    i, j = map(int, np.unravel_index(int(np.argmax(difference)), difference.shape))
    x_index = tuple(int(v) for v in np.unravel_index(i, x_shape))
    y_index = tuple(int(v) for v in np.unravel_index(j, y_shape))
    wrong = int(np.sum(difference > 1e-12 * max(np.max(np.abs(matrix)), 1e-300)))
    return (
        f" Worst entry: x{list(x_index)} <- y{list(y_index)}: the transpose gives {claimed[i, j]:.6g}, "
        f"A's entry y{list(y_index)} <- x{list(x_index)} is {matrix[j, i]:.6g} "
        f"({wrong} of {n_in * n_out} entries differ)."
    )
