"""assert_layer_gradients: every gradient a layer computes, against central differences, in one call.

What is checked (L = sum(forward(x) * r) for a fixed random r; S = sum(jvp(t) * q) for random tangents
t and a random q):

* ``backward``: dL/dx returned, and dL/dparam added into ``grads`` for every parameter;
* the contract: ``backward`` *adds* into ``grads`` (a second forward/backward doubles them) and gives
  the same dx again; returned arrays have the shapes and dtype of what they are gradients of;
* where the layer has a tangent pass: ``jvp(t)`` against directional differences of ``forward``;
  ``jvp_backward(q)`` -> ``(dt, dx_extra)`` with dt = dS/dt, the parameter gradients of S added into
  ``grads``, and ``dx_extra`` = dS/dx, the second-order term (None must mean that S does not depend on x).

Each array is compared by the norm-wise relative error of :func:`minidl.gradcheck.relative_error`. On
failure the AssertionError is a table of every comparison, naming the worst entry of each array (its
index, the analytic and numeric values, their relative error) and the entry's distance to the nearest
kink, where the layer has kinks.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field

import numpy as np

from minidl.gradcheck import numerical_gradient, relative_error
from minidl.layers.base import Layer
from minidl.testing.kinks import NearestKink, kink_distance, smallest_kink_distance

TOLERANCE = 1e-6
STEP = 1e-6
# A central difference of a scalar S = sum(terms) cannot resolve a derivative below about eps |terms| / h:
# each evaluation of S carries rounding of at most about eps times the sum of the magnitudes of its terms
# (the margin covers the sums inside the forward pass). A gradient that nearly vanishes for a rare input (a
# probe r summing to 1e-5, a single input value of 1e-5) is then compared against that floor instead of
# against its own tiny norm, where rounding alone would exceed the tolerance.
ROUNDING_MARGIN = 4.0


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
    """One analytic array against its numerical estimate."""

    check: str
    array: str
    error: float
    index: tuple[int, ...]
    analytic: float
    numeric: float
    kink: float | None = None

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

    @property
    def failures(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.error <= self.tolerance]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def worst(self) -> Comparison:
        return max(self.comparisons, key=lambda c: c.error if np.isfinite(c.error) else np.inf)

    def __str__(self) -> str:
        verdict = "agree with" if self.passed else "DISAGREE with"
        lines = [f"{self.layer}: gradients {verdict} central differences "
                 f"(float64, h = {self.h:g}, tolerance {self.tolerance:g} on the relative error of each array)",
                 f"  {'check':<13}{'array':<14}{'rel. error':<12}{'worst entry':<22}{'analytic':>14}"
                 f"{'numeric':>14}  {'kink distance':<13}"]
        for c in self.comparisons:
            flag = "  <-- FAILS" if c in self.failures else ""
            kink = "-" if c.kink is None else f"{c.kink:.1e}"
            lines.append(f"  {c.check:<13}{c.array:<14}{c.error:<12.1e}{c.where():<22}{c.analytic:>14.6e}"
                         f"{c.numeric:>14.6e}  {kink:<13}{flag}")
        if self.nearest_kink is not None:
            lines.append(f"  nearest kink in the layer's inputs: {self.nearest_kink}")
        for c in self.failures:
            lines.append(self._explain(c))
        return "\n".join(lines)

    def _explain(self, c: Comparison) -> str:
        text = (f"Worst entry of {c.check} {c.array}: {c.where()} analytic {c.analytic:.9g}, numeric {c.numeric:.9g} "
                f"(relative error {c.entry_error:.2g}).")
        near = c.kink if c.kink is not None else (self.nearest_kink.distance if self.nearest_kink else None)
        if near is not None and near < 10 * self.h:
            text += (f" A kink lies {near:.1e} away, within 10 h: the central difference may straddle it and "
                     "measure a mix of the one-sided slopes. Draw inputs away from kinks "
                     "(minidl.testing.kink_free_inputs) before suspecting the backward pass.")
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


def compare(check: str, array: str, analytic: np.ndarray, numeric: np.ndarray,
            kinks: np.ndarray | None = None, floor: float = 0.0) -> Comparison:
    """The norm-wise relative error, and the entry with the largest absolute difference.

    ``floor`` is the smallest denominator of the relative error (see :func:`resolution_floor`).
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    difference = np.abs(analytic - numeric)
    flat = int(np.nanargmax(difference)) if difference.size and not np.all(np.isnan(difference)) else 0
    index = tuple(int(i) for i in np.unravel_index(flat, analytic.shape)) if analytic.size else ()
    a = float(analytic[index]) if analytic.size else 0.0
    n = float(numeric[index]) if numeric.size else 0.0
    error = (relative_error(analytic, numeric, tiny=max(floor, 1e-30)) if np.all(np.isfinite(analytic))
             else float("inf"))
    kink = float(kinks[index]) if kinks is not None and analytic.size else None
    return Comparison(check, array, error, index, a, n, kink)


def assert_layer_gradients(layer, x: np.ndarray, *, rng=0, h: float = STEP, tolerance: float = TOLERANCE,
                           tangents: int = 2, fast: bool = False) -> GradientReport:
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
        Source of the random probes and tangents.
    h : float
        The central-difference step.
    tolerance : float
        Bound on the norm-wise relative error of every array.
    tangents : int
        Number K of tangent directions for the checks of ``jvp`` and ``jvp_backward``; 0 skips them.
        Layers without a tangent pass are not asked for one.
    fast : bool
        Compare one random directional derivative per array (two evaluations each, as PyTorch's
        ``gradcheck(fast_mode=True)``) instead of the full gradient (two evaluations per entry); an
        array that fails is then checked in full, to name its worst entry.

    Returns
    -------
    GradientReport
        Printable table of every comparison.

    Raises
    ------
    GradientMismatch (an AssertionError)
        When any array's relative error exceeds ``tolerance``, or the layer breaks the contract
        (backward overwrites ``grads`` instead of adding, returns arrays of the wrong shape or dtype).
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
    rng = np.random.default_rng(rng)
    report = GradientReport(repr(layer), h, tolerance, nearest_kink=smallest_kink_distance(layer, x))
    report.comparisons += _check_backward(layer, x, rng, h, tolerance, fast)
    if tangents and has_tangent_pass(layer):
        report.comparisons += _check_tangent_pass(layer, x, rng, h, int(tangents), tolerance)
    if not report.passed:
        raise GradientMismatch(report)
    return report


# -- validation ------------------------------------------------------------------------------------

def prepare(layer, x, caller: str) -> tuple[Layer, np.ndarray]:
    """Validate the layer and input; return float64 versions (copies where a conversion was needed)."""
    missing = [name for name in ("forward", "backward", "params", "grads", "zero_grad") if not hasattr(layer, name)]
    if missing:
        raise TypeError(f"{caller}: expected a Layer (forward, backward, params, grads, zero_grad), received "
                        f"{type(layer).__name__} without {', '.join(missing)}.")
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{caller}: expected x as a numpy array, received {type(x).__name__}.")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{caller}: x has dtype {x.dtype}; a gradient check moves each entry by h = {STEP:g}, which "
                        f"a {x.dtype} array cannot hold. Pass floating-point values, e.g. x.astype(np.float64).")
    if x.ndim == 0:
        raise ValueError(f"{caller}: x must have a batch axis, received a 0-d array.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{caller}: x holds NaN or infinite values; central differences need finite inputs.")
    if set(layer.params) != set(layer.grads):
        raise ValueError(f"{caller}: {layer!r} has params {sorted(layer.params)} but grads {sorted(layer.grads)}; "
                         "every parameter needs a gradient array of the same name.")
    for name, param in layer.params.items():
        if not np.issubdtype(param.dtype, np.floating):
            raise TypeError(f"{caller}: {layer!r}.params[{name!r}] has dtype {param.dtype}; parameters must be "
                            "floating point.")
        if layer.grads[name].shape != param.shape:
            raise ValueError(f"{caller}: {layer!r}.grads[{name!r}] has shape {layer.grads[name].shape}, "
                             f"params[{name!r}] has {param.shape}; they must match.")
    low = sorted({str(p.dtype) for p in layer.params.values() if p.dtype != np.float64})
    if low:
        warnings.warn(f"{caller}: {layer!r} has {'/'.join(low)} parameters; {FLOAT32_MEANINGLESS}",
                      PrecisionWarning, stacklevel=3)
        layer = copy.deepcopy(layer).astype(np.float64)
    if x.dtype != np.float64:
        warnings.warn(f"{caller}: x is {x.dtype}; {FLOAT32_MEANINGLESS}", PrecisionWarning, stacklevel=3)
    return layer, np.array(x, dtype=np.float64, order="C")  # a contiguous copy we may perturb in place


def has_tangent_pass(layer) -> bool:
    """True when the layer overrides :meth:`Layer.jvp` (the base class has none)."""
    if isinstance(layer, Layer):
        return type(layer).jvp is not Layer.jvp
    return callable(getattr(layer, "jvp", None))


def _call(layer, method: str, *args, **kwargs):
    """Call ``layer.method``, turning a missing-cache error into one that says what the kit did first."""
    try:
        return getattr(layer, method)(*args, **kwargs)
    except RuntimeError as error:
        done = {"backward": "forward(x, training=True)", "jvp": "forward(x, training=True)",
                "jvp_backward": "forward(x, training=True) and jvp(t)"}.get(method, "nothing")
        raise RuntimeError(f"{layer!r}.{method} failed right after {done}: {error} A layer must keep, when "
                           f"training, what {method} needs (Layer._store / _store_tangent).") from error


def _expect(layer, what: str, array, shape: tuple, dtype=np.float64) -> None:
    if not isinstance(array, np.ndarray):
        raise AssertionError(
            f"{layer!r}: {what} returned {type(array).__name__}, expected a numpy array of shape {shape}.")
    if array.shape != tuple(shape):
        raise AssertionError(f"{layer!r}: {what} has shape {array.shape}, expected {tuple(shape)}.")
    if array.dtype != dtype:
        raise AssertionError(f"{layer!r}: {what} has dtype {array.dtype} for float64 input; layers keep the "
                             "input dtype.")


# -- backward --------------------------------------------------------------------------------------

def resolution_floor(terms: np.ndarray, size: int, h: float, tolerance: float) -> float:
    """The denominator below which a relative error measures rounding, not the gradient.

    With S = sum(terms), a central difference resolves each entry only to ROUNDING_MARGIN * eps * sum|terms| / h;
    over ``size`` entries that is sqrt(size) times more in norm. Dividing by ``tolerance`` makes an array
    whose difference stays within that resolution pass, however small its gradient.
    """
    noise = ROUNDING_MARGIN * np.finfo(np.float64).eps * float(np.sum(np.abs(terms))) / h
    return noise * np.sqrt(size) / tolerance


def _check_backward(layer, x, rng, h, tolerance, fast) -> list[Comparison]:
    y = layer.forward(x, training=False)
    _expect(layer, "forward(x)", y, getattr(y, "shape", ()))
    probe = rng.standard_normal(y.shape)
    terms = np.asarray(y) * probe

    def loss() -> float:
        return float(np.sum(layer.forward(x, training=False) * probe))

    layer.zero_grad()
    layer.forward(x, training=True)
    dx = _call(layer, "backward", probe)
    _expect(layer, "backward(dy)", dx, x.shape)
    analytic = {"x": dx.copy(), **{name: grad.copy() for name, grad in layer.grads.items()}}
    for name, grad in layer.grads.items():
        _expect(layer, f"grads[{name!r}]", grad, layer.params[name].shape)
    _check_accumulation(layer, x, probe, analytic)

    kinks = kink_distance(layer, x)
    arrays = {"x": x, **layer.params}
    comparisons = []
    entry_floor = resolution_floor(terms, 1, h, tolerance)  # a directional derivative resolves as one entry
    for name, array in arrays.items():
        if fast:
            comparison = _directional(layer, "backward", name, loss, analytic[name], array, rng, h, entry_floor)
            if comparison.error <= tolerance:
                comparisons.append(comparison)
                continue
        comparisons.append(compare("backward", name, analytic[name], numerical_gradient(loss, array, h),
                                   kinks if name == "x" else None,
                                   floor=resolution_floor(terms, array.size, h, tolerance)))
    return comparisons


def _check_accumulation(layer, x, probe, first: dict) -> None:
    """A second forward/backward must give the same dx and double every parameter gradient."""
    layer.forward(x, training=True)
    dx = _call(layer, "backward", probe)
    if not np.allclose(dx, first["x"], rtol=1e-12, atol=0):
        raise AssertionError(f"{layer!r}: backward is not repeatable: the same forward and dy gave a dx that "
                             f"differs by {np.max(np.abs(dx - first['x'])):.3g} the second time.")
    for name, grad in layer.grads.items():
        once = first[name]
        if not np.allclose(grad, 2 * once, rtol=1e-12, atol=1e-300):
            ratio = float(np.sum(grad * once) / np.sum(once * once)) if np.any(once) else float("nan")
            raise AssertionError(
                f"{layer!r}: backward must ADD dL/d{name} into grads[{name!r}], but after two backward passes "
                f"it holds {ratio:.3g} times the gradient of one (expected 2). Write `grads[{name!r}] += ...`, "
                "not `=`: a penalty adds a second gradient into the same array.")
    layer.zero_grad()


def _directional(layer, check, name, scalar, analytic, array, rng, h, floor) -> Comparison:
    """(S(a + h v) - S(a - h v)) / 2h against <dS/da, v> for one random direction v.

    The difference of two values of S resolves the derivative only as finely as one entry of the full
    check does, whatever v: ``floor`` (:func:`resolution_floor` of one entry) keeps a directional
    derivative that happens to nearly cancel from being judged on its rounding.
    """
    direction = rng.standard_normal(array.shape)
    original = array.copy()
    array += h * direction
    plus = scalar()
    array[...] = original - h * direction
    minus = scalar()
    array[...] = original
    numeric = (plus - minus) / (2 * h)
    projected = float(np.sum(analytic * direction))
    return compare(check, f"{name} (fast)", np.array([projected]), np.array([numeric]), floor=floor)


# -- tangent pass ----------------------------------------------------------------------------------

def _check_tangent_pass(layer, x, rng, h, n_directions, tolerance) -> list[Comparison]:
    layer.zero_grad()
    y = layer.forward(x, training=True)
    t = rng.standard_normal((n_directions,) + x.shape)
    t_out = _call(layer, "jvp", t)
    _expect(layer, "jvp(t)", t_out, (n_directions,) + y.shape)
    q = rng.standard_normal(t_out.shape)
    result = _call(layer, "jvp_backward", q)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise AssertionError(f"{layer!r}: jvp_backward must return (dt, dx_extra), received {type(result).__name__}.")
    dt, dx_extra = result
    _expect(layer, "jvp_backward(dt)[0]", dt, t.shape)
    if dx_extra is not None:
        _expect(layer, "jvp_backward(dt)[1] (dx_extra)", dx_extra, x.shape)
    analytic_grads = {name: grad.copy() for name, grad in layer.grads.items()}
    layer.zero_grad()

    def forward() -> np.ndarray:
        return np.array(layer.forward(x, training=False))  # a copy: the output may be a view of x

    numeric_jvp = np.empty_like(t_out)
    for k in range(n_directions):
        x += h * t[k]
        plus = forward()
        x -= 2 * h * t[k]
        minus = forward()
        x += h * t[k]
        numeric_jvp[k] = (plus - minus) / (2 * h)
    comparisons = [compare("jvp", "t_out", t_out, numeric_jvp)]
    floor = lambda size: resolution_floor(t_out * q, size, h, tolerance)  # noqa: E731

    def tangent_scalar() -> float:
        layer.forward(x, training=True)
        return float(np.sum(layer.jvp(t) * q))

    comparisons.append(compare("jvp_backward", "dt", dt, numerical_gradient(tangent_scalar, t, h),
                               floor=floor(t.size)))
    for name, param in layer.params.items():
        comparisons.append(compare("jvp_backward", name, analytic_grads[name],
                                   numerical_gradient(tangent_scalar, param, h), floor=floor(param.size)))
    extra = np.zeros_like(x) if dx_extra is None else dx_extra
    comparisons.append(compare("jvp_backward", "x (dx_extra)", extra, numerical_gradient(tangent_scalar, x, h),
                               kink_distance(layer, x), floor=floor(x.size)))
    layer.zero_grad()
    return comparisons
