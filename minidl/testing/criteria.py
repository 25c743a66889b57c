"""When an analytic gradient agrees with its central difference: the criteria of :mod:`minidl.testing`.

A layer is checked through scalars S = sum(terms), e.g. S = sum(forward(x) * r) for a random cotangent r.
Two criteria judge each array; it passes only when both hold.

**Norm-wise**: ||a - n|| / max(||a|| + ||n||, floor) <= tolerance, the measure of
:func:`minidl.gradcheck.relative_error`. It sees an error spread over many entries, and is blind to one
entry much smaller than the rest: 52% of an entry 1e6 times smaller than the others moves the norm by
about 3e-7.

**Element-wise**: every entry |a_i - n_i| <= atol + tolerance |n_i|, as PyTorch's gradcheck, but with
atol derived rather than fixed: a central difference of S carries the rounding of two evaluations of S,
each off by about eps sum|terms| (eps = 2.2e-16), so it resolves a derivative only to

    atol = ROUNDING_MARGIN * eps * sum|terms| / h

(:func:`rounding_floor`; the margin covers the sums inside the forward pass). An entry whose true value
vanishes (a dead unit) is judged against that floor, not against its own noise, and an entry of any
size is judged against its own value, not against the largest entry of the array.

**Re-differencing**: an entry that fails is differenced again with step 2h. The central difference is
n_h = g + c h^2 + rounding, so the Richardson combination (4 n_h - n_2h) / 3 cancels the h^2 term and
keeps a rounding of at most 1.5 atol; the entry fails only if it misses that value too. A layer curved
enough for h^2 to matter is told apart from a wrong backward pass.

**The fast screen** compares projections <a, v> against (S(a + h v) - S(a - h v)) / 2h for random sign
vectors v (entries +-1: a wrong entry enters every projection at its full size, never scaled down by a
small component of v). Two values of S resolve a projection only to the same atol as one entry, so the
screen passes an array only when every projection agrees within SCREEN_FRACTION of atol (plus the
rounding of the step a + h v itself, :func:`screen_bound`); anything else is handed to the full check,
which decides. The screen can thus be slower than hoped but never more
lenient than the full check on a bug that moves any projection by more than that.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

EPS = float(np.finfo(np.float64).eps)
ROUNDING_MARGIN = 4.0
SCREEN_FRACTION = 0.25
RICHARDSON_ROUNDING = 1.5  # (4 * rounding(n_h) + rounding(n_2h)) / 3, with rounding(n_2h) = rounding(n_h) / 2


def rounding_floor(terms: np.ndarray, h: float) -> float:
    """The smallest derivative a central difference of S = sum(terms) resolves with step ``h``.

    Shapes
    ------
    terms : any (the products summed into S, e.g. forward(x) * r)
    """
    return ROUNDING_MARGIN * EPS * float(np.sum(np.abs(terms))) / h


def excess(analytic: np.ndarray, numeric: np.ndarray, atol: float | np.ndarray, tolerance: float) -> np.ndarray:
    """|analytic - numeric| / (atol + tolerance |numeric|): an entry fails where this exceeds 1 (or is NaN).

    Equal values give 0, also where the tolerance is 0 (an output of exact zeros has no rounding floor).

    Shapes
    ------
    analytic, numeric : any, the same; atol : broadcastable to them
    """
    numeric = np.asarray(numeric, dtype=np.float64)
    difference = np.abs(np.asarray(analytic, dtype=np.float64) - numeric)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(difference == 0, 0.0, difference / (atol + tolerance * np.abs(numeric)))


def richardson(numeric_h: np.ndarray, numeric_2h: np.ndarray) -> np.ndarray:
    """(4 n_h - n_2h) / 3: central differences at h and 2h with their h^2 truncation term cancelled."""
    return (4.0 * np.asarray(numeric_h) - np.asarray(numeric_2h)) / 3.0


def screen_bound(atol: np.ndarray, gradients: np.ndarray, point: np.ndarray, h: float) -> np.ndarray:
    """What a projection on a sign vector may differ by and still pass the fast screen.

    SCREEN_FRACTION of the rounding floor, plus the rounding of the step itself: a + h v is stored with
    an error of up to eps/2 |a_i| in each entry, which moves the projection by up to eps sum|g_i a_i| / 2h
    (doubled here for a margin).

    Shapes
    ------
    atol : (K,); gradients : (K, M) for K cotangents; point : (M,), the array the directions perturb -> (K,)
    """
    return SCREEN_FRACTION * np.asarray(atol) + EPS * np.abs(gradients) @ np.abs(point) / h


def norm_floor(atol: float, size: int, tolerance: float) -> float:
    """The smallest denominator of the norm-wise relative error: below it the error measures rounding.

    Each of ``size`` entries resolves to ``atol``; in norm that is sqrt(size) atol, and dividing by
    ``tolerance`` lets an array whose difference stays within that resolution pass, however small.
    """
    return atol * np.sqrt(size) / tolerance


def judge(
    analytic: np.ndarray,
    numeric: np.ndarray,
    atol: np.ndarray,
    tolerance: float,
    redifference: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every entry's estimate, tolerance and excess, after re-differencing the entries that fail.

    ``redifference(flat_indices)`` returns the central differences of those entries with step 2h for
    every cotangent, shape (K, len(flat_indices)); a failing entry is then held to its Richardson value
    with RICHARDSON_ROUNDING times the rounding floor.

    Shapes
    ------
    analytic, numeric : (K, M) for K cotangents and M entries; atol : (K,)
    -> estimate, tolerances, excess : (K, M)
    """
    estimate = np.array(numeric, dtype=np.float64)
    floors = np.repeat(np.asarray(atol, dtype=np.float64)[:, None], estimate.shape[1], axis=1)
    ratio = excess(analytic, estimate, floors, tolerance)
    suspects = np.flatnonzero(np.any(~(ratio <= 1.0), axis=0))
    if suspects.size and redifference is not None and np.all(np.isfinite(analytic)):
        estimate[:, suspects] = richardson(estimate[:, suspects], redifference(suspects))
        floors[:, suspects] *= RICHARDSON_ROUNDING
        ratio[:, suspects] = excess(analytic[:, suspects], estimate[:, suspects], floors[:, suspects], tolerance)
    return estimate, floors + tolerance * np.abs(estimate), ratio
