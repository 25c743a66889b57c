"""assert_layer_gradients: every gradient a layer computes, against central differences, in one call.

What is checked (L_k = sum(forward(x) * r_k) for K random cotangents r_k; S_k = sum(jvp(t) * q_k) for
random tangents t and K random q_k):

* ``backward``: dL_k/dx returned, and dL_k/dparam added into ``grads`` for every parameter;
* the contract: ``backward`` *adds* into ``grads`` (a second forward/backward doubles them) and gives
  the same dx again; returned arrays have the shapes and dtype of what they are gradients of;
* where the layer has a tangent pass: ``jvp(t)`` against directional differences of ``forward``;
  ``jvp_backward(q)`` -> ``(dt, dx_extra)`` with dt = dS/dt, the parameter gradients of S added into
  ``grads``, and ``dx_extra`` = dS/dx, the second-order term (None must mean that S does not depend on x).

Each array passes when its norm-wise relative error is within the tolerance *and* every entry is within
a tolerance of its own, derived from the rounding floor of its central difference
(:mod:`minidl.testing.criteria`). The K cotangents share the central differences: two forward passes per
entry serve all of them. On failure the AssertionError is a table of every comparison, naming the worst
entry of each array (its index, the analytic and numeric values, the tolerance it was held to) and the
entry's distance to the nearest kink, where the layer has kinks.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from minidl.gradcheck import numerical_projections, numerical_vjp, relative_error
from minidl.layers.base import Layer
from minidl.testing import criteria
from minidl.testing.kinks import NearestKink, kink_distance, smallest_kink_distance

TOLERANCE = 1e-6
STEP = 1e-6
COTANGENTS = 3
FAST_DIRECTIONS = 3


class PrecisionWarning(UserWarning):
    """A float32 (or float16) layer or input was checked as a float64 copy."""


FLOAT32_MEANINGLESS = (
    "central differences in float32 are meaningless: every value of f carries a rounding error of up to "
    "6e-8 |f| (float32's unit roundoff), and the difference of two divided by 2h = 2e-6 turns it into up to 6e-2 |f| "
    "in the numerical gradient, above the 1e-6 tolerance and larger than many real bugs. The check runs on "
    "a float64 copy instead (the object you passed is not changed). The float32 path is held separately, "
    "against float64 on the same inputs (see docs/testing.md)."
)


@dataclass(frozen=True)
class Comparison:
    """One analytic array against its numerical estimate, for every cotangent.

    ``error`` is the norm-wise relative error (the worst over the cotangents, against ``bound``); the
    other fields describe the entry furthest beyond its own tolerance: its ``index`` in the array, the
    ``cotangent`` it was found with, both values, the ``tolerance`` it was held to (atol + tolerance
    |numeric|), ``excess`` = |analytic - numeric| / tolerance, and ``failing``, how many of the array's
    ``size`` entries exceed theirs. ``extrapolated`` is set where that entry was differenced again with
    2h: the Richardson value it was then held to.
    """

    check: str
    array: str
    error: float
    index: tuple[int, ...]
    analytic: float
    numeric: float
    tolerance: float = 0.0
    excess: float = 0.0
    failing: int = 0
    size: int = 1
    cotangent: int = 0
    bound: float = TOLERANCE
    kink: float | None = None
    extrapolated: float | None = None
    cotangents: int = 1

    @property
    def passed(self) -> bool:
        return self.error <= self.bound and self.failing == 0

    @property
    def entry_error(self) -> float:
        """|a - n| / max(|a|, |n|) at the worst entry."""
        scale = max(abs(self.analytic), abs(self.numeric))
        return abs(self.analytic - self.numeric) / scale if scale > 0 else 0.0

    def where(self) -> str:
        return f"{self.array}[{', '.join(str(i) for i in self.index)}]"


@dataclass
class GradientReport:
    """Every comparison made by :func:`assert_layer_gradients`, printable as a table."""

    layer: str
    h: float
    tolerance: float
    comparisons: list[Comparison] = field(default_factory=list)
    nearest_kink: NearestKink | None = None
    cotangents: int = COTANGENTS

    @property
    def failures(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.passed]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def worst(self) -> Comparison:
        return max(self.comparisons, key=lambda c: (not c.passed, c.excess if np.isfinite(c.excess) else np.inf))

    def __str__(self) -> str:
        verdict = "agree with" if self.passed else "DISAGREE with"
        lines = [
            f"{self.layer}: gradients {verdict} central differences (float64, h = {self.h:g}, "
            f"{self.cotangents} random cotangents; per array: norm-wise relative error <= {self.tolerance:g}, "
            f"every entry |a - n| <= atol + {self.tolerance:g} |n|, atol the rounding floor of its difference)",
            f"  {'check':<13}{'array':<14}{'norm error':<12}{'worst entry':<22}{'analytic':>14}"
            f"{'numeric':>14}{'|a-n| / tol':>13}  {'kink distance':<13}",
        ]
        for c in self.comparisons:
            flag = "" if c.passed else "  <-- FAILS"
            kink = "-" if c.kink is None else f"{c.kink:.1e}"
            lines.append(
                f"  {c.check:<13}{c.array:<14}{c.error:<12.1e}{c.where():<22}{c.analytic:>14.6e}"
                f"{c.numeric:>14.6e}{c.excess:>13.2g}  {kink:<13}{flag}"
            )
        if self.nearest_kink is not None:
            lines.append(f"  nearest kink in the layer's inputs: {self.nearest_kink}")
        for c in self.failures:
            lines.append(self._explain(c))
        return "\n".join(lines)

    def _explain(self, c: Comparison) -> str:
        which = f" (cotangent {c.cotangent + 1} of {c.cotangents})" if c.cotangents > 1 else ""
        text = (
            f"Worst entry of {c.check} {c.array}: {c.where()} analytic {c.analytic:.9g}, numeric {c.numeric:.9g}"
            f"{which}: |difference| {abs(c.analytic - c.numeric):.3g} against a tolerance of {c.tolerance:.3g}; "
            f"{c.failing} of {c.size} entries exceed theirs."
        )
        if c.extrapolated is not None and c.failing:
            text += f" Differenced again with 2h: h^2-free estimate {c.extrapolated:.9g}, so not curvature."
        if c.failing and c.error <= c.bound:
            text += (
                f" The norm-wise relative error of the array, {c.error:.2g}, is within {c.bound:g}: the entry "
                "is small beside the others, and only the element-wise criterion sees it."
            )
        elif c.error > c.bound and not c.failing:
            text += f" Every entry is within its tolerance, but the norm-wise relative error is {c.error:.2g}."
        near = c.kink if c.kink is not None else (self.nearest_kink.distance if self.nearest_kink else None)
        if near is not None and near < 10 * self.h:
            text += (
                f" A kink lies {near:.1e} away, within 10 h: the central difference may straddle it and "
                "measure a mix of the one-sided slopes. Draw inputs away from kinks "
                "(minidl.testing.kink_free_inputs) before suspecting the backward pass."
            )
        elif c.analytic != 0 and c.numeric != 0:
            text += f" Ratio analytic / numeric = {c.analytic / c.numeric:.6g}."
        elif c.analytic == 0 and c.numeric != 0:
            text += " The analytic gradient is 0 where the function does change: a missing term?"
        elif c.numeric == 0 and c.analytic != 0:
            text += " The function does not move with this entry, yet the analytic gradient is not 0."
        return text


class GradientMismatch(AssertionError):
    """Raised by :func:`assert_layer_gradients`; ``report`` holds every comparison."""

    def __init__(self, report: GradientReport) -> None:
        super().__init__(str(report))
        self.report = report


def compare(
    check: str,
    array: str,
    analytic: np.ndarray,
    numeric: np.ndarray,
    atol: float | np.ndarray,
    tolerance: float,
    kinks: np.ndarray | None = None,
    redifference: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Comparison:
    """Both criteria of :mod:`minidl.testing.criteria` for one array and K cotangents.

    ``redifference(flat_indices)`` returns the central differences of those entries with step 2h,
    shape (K, len(flat_indices)) (see :func:`minidl.testing.criteria.judge`).

    Shapes
    ------
    analytic, numeric : (K, *array shape); atol : scalar or (K,); kinks : array shape, or None
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    k, shape = len(analytic), analytic.shape[1:]
    atol = np.broadcast_to(np.asarray(atol, dtype=np.float64), (k,))
    size = int(np.prod(shape, dtype=np.int64))
    if size == 0:
        return Comparison(check, array, 0.0, (), 0.0, 0.0, size=0, bound=tolerance)
    flat_analytic, flat_numeric = analytic.reshape(k, size), numeric.reshape(k, size)
    estimate, tolerances, ratio = criteria.judge(flat_analytic, flat_numeric, atol, tolerance, redifference)
    if np.all(np.isfinite(analytic)):  # on the estimates: a re-differenced entry counts by its Richardson value
        error = max(
            relative_error(a, n, tiny=max(criteria.norm_floor(floor, size, tolerance), 1e-30))
            for a, n, floor in zip(flat_analytic, estimate, atol)
        )
    else:
        error = float("inf")
    ordered = np.where(np.isnan(ratio), np.inf, ratio)
    cotangent, flat = np.unravel_index(int(np.argmax(ordered)), ordered.shape)
    failing = int(np.sum(np.any(~(ratio <= 1.0), axis=0)))
    extrapolated = (
        float(estimate[cotangent, flat]) if estimate[cotangent, flat] != flat_numeric[cotangent, flat] else None
    )
    return Comparison(
        check,
        array,
        error,
        tuple(int(i) for i in np.unravel_index(flat, shape)),
        float(flat_analytic[cotangent, flat]),
        float(flat_numeric[cotangent, flat]),
        float(tolerances[cotangent, flat]),
        float(ordered[cotangent, flat]),
        failing,
        size,
        int(cotangent),
        tolerance,
        None if kinks is None else float(kinks.reshape(-1)[flat]),
        extrapolated,
        k,
    )


def assert_layer_gradients(
    layer: Layer,
    x: np.ndarray,
    *,
    rng: np.random.Generator | int = 0,
    h: float = STEP,
    tolerance: float = TOLERANCE,
    cotangents: int = COTANGENTS,
    tangents: int = 2,
    fast: bool = False,
) -> GradientReport:
    """Check every gradient ``layer`` computes at ``x`` against central differences, in float64.

    Parameters
    ----------
    layer : Layer
        A single layer or a :class:`~minidl.layers.Sequential`; float32 parameters are checked on a
        float64 copy, with a :class:`PrecisionWarning` that says why.
    x : ndarray, shape (N, ...)
        Floating-point input (float32 is converted, with the warning). Draw it away from kinks
        (:func:`minidl.testing.kink_free_inputs`).
    rng : int or np.random.Generator
        Source of the random cotangents, tangents and directions.
    h : float
        The central-difference step.
    tolerance : float
        Bound on the norm-wise relative error of every array, and the relative part of every entry's
        tolerance: |analytic - numeric| <= atol + tolerance |numeric|, atol the rounding floor of the
        entry's central difference (see :mod:`minidl.testing.criteria`).
    cotangents : int
        Number K >= 1 of random cotangents r_k (and of random q_k for the tangent pass): each array is
        checked as the gradient of K scalars. The central differences are shared, so K costs K backward
        passes, not K times the forward passes.
    tangents : int
        Number of tangent directions for the checks of ``jvp`` and ``jvp_backward``; 0 skips them.
        Layers without a tangent pass are not asked for one.
    fast : bool
        Screen each backward array with projections on a few random sign vectors (two forward passes
        each, as PyTorch's ``gradcheck(fast_mode=True)``) instead of the full check (two per entry); an
        array the screen does not clearly pass is checked in full, which decides and names its worst
        entry.

    Returns
    -------
    GradientReport
        Printable table of every comparison.

    Raises
    ------
    GradientMismatch (an AssertionError)
        When any array fails either criterion, or the layer breaks the contract (backward overwrites
        ``grads`` instead of adding, returns arrays of the wrong shape or dtype).
    TypeError, ValueError
        For input the check cannot use: integer arrays, non-layers, NaN, mismatched shapes.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import Dense
    >>> from minidl.testing import assert_layer_gradients
    >>> rng = np.random.default_rng(0)
    >>> layer = Dense(3, 2, rng=rng, dtype=np.float64)
    >>> report = assert_layer_gradients(layer, rng.standard_normal((4, 3)))
    >>> report.passed, [c.array for c in report.comparisons if c.check == "backward"]
    (True, ['x', 'W', 'b'])
    """
    layer, x = prepare(layer, x, "assert_layer_gradients")
    if not isinstance(cotangents, (int, np.integer)) or cotangents < 1:
        raise ValueError(
            f"assert_layer_gradients: expected cotangents to be a positive integer. Received: cotangents={cotangents!r}"
        )
    rng = np.random.default_rng(rng)
    report = GradientReport(
        repr(layer), h, tolerance, nearest_kink=smallest_kink_distance(layer, x), cotangents=int(cotangents)
    )
    report.comparisons += _check_backward(layer, x, rng, h, tolerance, int(cotangents), fast)
    if tangents and has_tangent_pass(layer):
        report.comparisons += _check_tangent_pass(layer, x, rng, h, int(tangents), int(cotangents), tolerance)
    if not report.passed:
        raise GradientMismatch(report)
    return report


# -- validation ------------------------------------------------------------------------------------


def prepare(layer: Layer, x: np.ndarray, caller: str) -> tuple[Layer, np.ndarray]:
    """Validate the layer and input; return float64 versions (copies where a conversion was needed)."""
    missing = [name for name in ("forward", "backward", "params", "grads", "zero_grad") if not hasattr(layer, name)]
    if missing:
        raise TypeError(
            f"{caller}: expected a Layer (forward, backward, params, grads, zero_grad), received "
            f"{type(layer).__name__} without {', '.join(missing)}."
        )
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{caller}: expected x as a numpy array, received {type(x).__name__}.")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"{caller}: x has dtype {x.dtype}; a gradient check moves each entry by h = {STEP:g}, which "
            f"a {x.dtype} array cannot hold. Pass floating-point values, e.g. x.astype(np.float64)."
        )
    if x.ndim == 0:
        raise ValueError(f"{caller}: x must have a batch axis, received a 0-d array.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{caller}: x holds NaN or infinite values; central differences need finite inputs.")
    if set(layer.params) != set(layer.grads):
        raise ValueError(
            f"{caller}: {layer!r} has params {sorted(layer.params)} but grads {sorted(layer.grads)}; "
            "every parameter needs a gradient array of the same name."
        )
    for name, param in layer.params.items():
        if not np.issubdtype(param.dtype, np.floating):
            raise TypeError(
                f"{caller}: {layer!r}.params[{name!r}] has dtype {param.dtype}; parameters must be floating point."
            )
        if layer.grads[name].shape != param.shape:
            raise ValueError(
                f"{caller}: {layer!r}.grads[{name!r}] has shape {layer.grads[name].shape}, "
                f"params[{name!r}] has {param.shape}; they must match."
            )
    low = sorted({str(p.dtype) for p in layer.params.values() if p.dtype != np.float64})
    if low:
        warnings.warn(
            f"{caller}: {layer!r} has {'/'.join(low)} parameters; {FLOAT32_MEANINGLESS}", PrecisionWarning, stacklevel=3
        )
        layer = copy.deepcopy(layer).astype(np.float64)
    if x.dtype != np.float64:
        warnings.warn(f"{caller}: x is {x.dtype}; {FLOAT32_MEANINGLESS}", PrecisionWarning, stacklevel=3)
    return layer, np.array(x, dtype=np.float64, order="C")  # a contiguous copy we may perturb in place


def has_tangent_pass(layer: Layer) -> bool:
    """True when the layer overrides :meth:`Layer.jvp` (the base class has none)."""
    if isinstance(layer, Layer):
        return type(layer).jvp is not Layer.jvp
    return callable(getattr(layer, "jvp", None))


def _call(layer: Layer, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``layer.method``, turning a missing-cache error into one that says what the kit did first."""
    try:
        return getattr(layer, method)(*args, **kwargs)
    except RuntimeError as error:
        done = {
            "backward": "forward(x, training=True)",
            "jvp": "forward(x, training=True)",
            "jvp_backward": "forward(x, training=True) and jvp(t)",
        }.get(method, "nothing")
        raise RuntimeError(
            f"{layer!r}.{method} failed right after {done}: {error} A layer must keep, when "
            f"training, what {method} needs (Layer._store / _store_tangent)."
        ) from error


def _expect(layer: Layer, what: str, array: object, shape: tuple[int, ...], dtype: DTypeLike = np.float64) -> None:
    if not isinstance(array, np.ndarray):
        raise AssertionError(
            f"{layer!r}: {what} returned {type(array).__name__}, expected a numpy array of shape {shape}."
        )
    if array.shape != tuple(shape):
        raise AssertionError(f"{layer!r}: {what} has shape {array.shape}, expected {tuple(shape)}.")
    if array.dtype != dtype:
        raise AssertionError(
            f"{layer!r}: {what} has dtype {array.dtype} for float64 input; layers keep the input dtype."
        )


# -- backward --------------------------------------------------------------------------------------


def _check_backward(
    layer: Layer, x: np.ndarray, rng: np.random.Generator, h: float, tolerance: float, n_cotangents: int, fast: bool
) -> list[Comparison]:
    y = layer.forward(x, training=False)
    _expect(layer, "forward(x)", y, getattr(y, "shape", ()))
    probes = rng.standard_normal((n_cotangents,) + y.shape)
    atol = np.array([criteria.rounding_floor(np.asarray(y) * probe, h) for probe in probes])

    def forward() -> np.ndarray:
        return layer.forward(x, training=False)

    analytic: dict[str, list[np.ndarray]] = {}
    for k, probe in enumerate(probes):
        layer.zero_grad()
        layer.forward(x, training=True)
        dx = _call(layer, "backward", probe)
        _expect(layer, "backward(dy)", dx, x.shape)
        for name, grad in layer.grads.items():
            _expect(layer, f"grads[{name!r}]", grad, layer.params[name].shape)
        for name, value in (("x", dx), *layer.grads.items()):
            analytic.setdefault(name, []).append(value.copy())
        if k == 0:
            _check_accumulation(layer, x, probe, {name: values[0] for name, values in analytic.items()})
    layer.zero_grad()

    kinks = kink_distance(layer, x)
    comparisons = []
    for name, array in {"x": x, **layer.params}.items():
        gradients = np.stack(analytic[name])
        if fast:
            screened = _screen(name, forward, gradients, array, probes, atol, rng, h, tolerance)
            if screened.passed:
                comparisons.append(screened)
                continue
        comparisons.append(
            compare(
                "backward",
                name,
                gradients,
                numerical_vjp(forward, array, probes, h),
                atol,
                tolerance,
                kinks if name == "x" else None,
                redifference=partial(numerical_vjp, forward, array, probes, 2 * h),
            )
        )
    return comparisons


def _check_accumulation(layer: Layer, x: np.ndarray, probe: np.ndarray, first: dict[str, np.ndarray]) -> None:
    """A second forward/backward must give the same dx and double every parameter gradient."""
    layer.forward(x, training=True)
    dx = _call(layer, "backward", probe)
    if not np.allclose(dx, first["x"], rtol=1e-12, atol=0):
        raise AssertionError(
            f"{layer!r}: backward is not repeatable: the same forward and dy gave a dx that "
            f"differs by {np.max(np.abs(dx - first['x'])):.3g} the second time."
        )
    for name, grad in layer.grads.items():
        once = first[name]
        if not np.allclose(grad, 2 * once, rtol=1e-12, atol=1e-300):
            ratio = float(np.sum(grad * once) / np.sum(once * once)) if np.any(once) else float("nan")
            raise AssertionError(
                f"{layer!r}: backward must ADD dL/d{name} into grads[{name!r}], but after two backward passes "
                f"it holds {ratio:.3g} times the gradient of one (expected 2). Write `grads[{name!r}] += ...`, "
                "not `=`: a penalty adds a second gradient into the same array."
            )


def _screen(
    name: str,
    forward: Callable[[], np.ndarray],
    gradients: np.ndarray,
    array: np.ndarray,
    probes: np.ndarray,
    atol: np.ndarray,
    rng: np.random.Generator,
    h: float,
    tolerance: float,
) -> Comparison:
    """Projections of every cotangent's gradient on FAST_DIRECTIONS random sign vectors.

    Passes (``passed``) only when every projection agrees with its central difference within
    :func:`minidl.testing.criteria.screen_bound`; the caller then checks the array in full.
    """
    directions = rng.integers(0, 2, size=(FAST_DIRECTIONS,) + array.shape) * 2.0 - 1.0
    flat = gradients.reshape(len(gradients), -1)
    analytic = flat @ directions.reshape(FAST_DIRECTIONS, -1).T
    numeric = numerical_projections(forward, array, directions, probes, h)
    bound = criteria.screen_bound(atol, flat, array.reshape(-1), h)
    ratio = criteria.excess(analytic, numeric, bound[:, None], 0.0)
    cotangent, direction = np.unravel_index(int(np.argmax(np.where(np.isnan(ratio), np.inf, ratio))), ratio.shape)
    error = max(
        relative_error(a, n, tiny=max(criteria.norm_floor(floor, FAST_DIRECTIONS, tolerance), 1e-30))
        for a, n, floor in zip(analytic, numeric, atol)
    )
    screened = bool(np.all(ratio <= 1.0))
    return Comparison(
        "backward",
        f"{name} (fast)",
        error,
        (int(direction),),
        float(analytic[cotangent, direction]),
        float(numeric[cotangent, direction]),
        float(bound[cotangent]),
        float(ratio[cotangent, direction]),
        0 if screened else 1,
        FAST_DIRECTIONS,
        int(cotangent),
        tolerance,
        cotangents=len(probes),
    )


# -- tangent pass ----------------------------------------------------------------------------------


def _check_tangent_pass(
    layer: Layer,
    x: np.ndarray,
    rng: np.random.Generator,
    h: float,
    n_directions: int,
    n_cotangents: int,
    tolerance: float,
) -> list[Comparison]:
    layer.zero_grad()
    y = np.array(layer.forward(x, training=True))
    t = rng.standard_normal((n_directions,) + x.shape)
    t_out = _call(layer, "jvp", t)
    _expect(layer, "jvp(t)", t_out, (n_directions,) + y.shape)
    t_out = np.array(t_out)
    q = rng.standard_normal((n_cotangents,) + t_out.shape)
    analytic: dict[str, list[np.ndarray]] = {}
    for k in range(n_cotangents):
        if k:
            layer.zero_grad()
            layer.forward(x, training=True)
            layer.jvp(t)
        result = _call(layer, "jvp_backward", q[k])
        if not (isinstance(result, tuple) and len(result) == 2):
            raise AssertionError(
                f"{layer!r}: jvp_backward must return (dt, dx_extra), received {type(result).__name__}."
            )
        dt, dx_extra = result
        _expect(layer, "jvp_backward(dt)[0]", dt, t.shape)
        if dx_extra is not None:
            _expect(layer, "jvp_backward(dt)[1] (dx_extra)", dx_extra, x.shape)
        for name, value in (
            ("dt", dt),
            *layer.grads.items(),
            ("x (dx_extra)", np.zeros_like(x) if dx_extra is None else dx_extra),
        ):
            analytic.setdefault(name, []).append(np.array(value))
    layer.zero_grad()

    def forward() -> np.ndarray:
        return layer.forward(x, training=False)

    def jvp_at(step: float) -> np.ndarray:
        """(forward(x + step t_j) - forward(x - step t_j)) / 2 step for every direction j."""
        differences, original = np.empty_like(t_out), x.copy()
        for j, direction in enumerate(t):
            x[...] = original + step * direction
            plus = np.array(forward())  # a copy: the output may be a view of x
            x[...] = original - step * direction
            differences[j] = (plus - forward()) / (2 * step)
        x[...] = original
        return differences

    # each output entry of a difference of forward passes carries rounding of about eps |y| / h
    jvp_floor = criteria.ROUNDING_MARGIN * criteria.EPS * float(np.max(np.abs(y), initial=0.0)) / h
    comparisons = [
        compare(
            "jvp",
            "t_out",
            t_out[None],
            jvp_at(h).reshape((1,) + t_out.shape),
            jvp_floor,
            tolerance,
            redifference=lambda entries: jvp_at(2 * h).reshape(1, -1)[:, entries],
        )
    ]

    def tangent_output() -> np.ndarray:
        layer.forward(x, training=True)
        return layer.jvp(t)

    atol = np.array([criteria.rounding_floor(t_out * q_k, h) for q_k in q])
    for name, array in {"dt": t, **layer.params, "x (dx_extra)": x}.items():
        comparisons.append(
            compare(
                "jvp_backward",
                name,
                np.stack(analytic[name]),
                numerical_vjp(tangent_output, array, q, h),
                atol,
                tolerance,
                kink_distance(layer, x) if array is x else None,
                redifference=partial(numerical_vjp, tangent_output, array, q, 2 * h),
            )
        )
    layer.zero_grad()
    return comparisons
