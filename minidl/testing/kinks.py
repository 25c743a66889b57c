"""Distances to kinks: how far an input entry can move before a layer's derivative jumps.

A central difference with step h measures the derivative only where no kink lies within h of the entry
it moves; closer than that it measures a mix of the one-sided slopes (see :mod:`minidl.gradcheck`). These
functions say how close each entry is, so that a failed check can tell a wrong backward pass from an
input drawn too near a kink, and so that strategies can draw inputs away from kinks.

The hook for your own layer: give it a method ``kink_distance(x)`` returning, for every entry of ``x``,
the distance that entry alone can move before the layer's derivative jumps (``np.inf`` where it never
does). :func:`kink_distance` calls it; the built-in layers with kinks (:class:`~minidl.layers.ReLU`,
:class:`~minidl.layers.MaxPool2D`) are known here, so the layers themselves carry no test code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minidl.layers import Layer, MaxPool2D, ReLU, Sequential


def relu_kink_distance(x: np.ndarray) -> np.ndarray:
    """max(x, 0) bends at 0: each entry is |x| from it.

    Shapes
    ------
    x : any -> distances : same as x
    """
    return np.abs(x)


def maxpool_kink_distance(x: np.ndarray, pool_size: int, zero_windows_are_flat: bool = False) -> np.ndarray:
    """Distances to the ties of non-overlapping ``pool_size`` windows (floor mode).

    The maximum of a window changes its routing when it drops to the second largest value (distance
    m1 - m2); any other entry when it rises to the maximum (distance m1 - x). Entries that no window
    covers, and 1x1 windows, have no kink (inf). With ``zero_windows_are_flat`` a window whose maximum is
    exactly 0 counts as flat: after a ReLU such a window holds zeros only and passes no gradient on either
    side of its ties (a pre-activation near 0 is the ReLU's kink, measured there).

    Shapes
    ------
    x : (N, C, H, W) -> distances : (N, C, H, W)
    """
    n, c, height, width = x.shape
    p = int(pool_size)
    out_h, out_w = height // p, width // p
    distances = np.full(x.shape, np.inf)
    if p == 1 or out_h == 0 or out_w == 0:
        return distances
    windows = x[:, :, : out_h * p, : out_w * p].reshape(n, c, out_h, p, out_w, p).transpose(0, 1, 2, 4, 3, 5)
    windows = windows.reshape(n, c, out_h, out_w, p * p)
    ordered = np.sort(windows, axis=-1)
    top, second = ordered[..., -1], ordered[..., -2]
    gaps = top[..., None] - windows
    first = np.argmax(windows, axis=-1)[..., None]  # the entry the gradient is routed to
    np.put_along_axis(gaps, first, (top - second)[..., None], axis=-1)
    if zero_windows_are_flat:
        gaps[top == 0] = np.inf
    gaps = gaps.reshape(n, c, out_h, out_w, p, p).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, out_h * p, out_w * p)
    distances[:, :, : out_h * p, : out_w * p] = gaps
    return distances


def kink_distance(layer: Layer, x: np.ndarray) -> np.ndarray | None:
    """For each entry of ``x``, its distance to the nearest kink of ``layer`` along that entry; None when
    the layer is smooth (or unknown here and without a ``kink_distance`` hook).

    A :class:`~minidl.layers.Sequential` has kinks inside, in the inputs of its layers rather than in x:
    use :func:`smallest_kink_distance` for it.
    """
    hook = getattr(layer, "kink_distance", None)
    if callable(hook):
        return np.asarray(hook(x), dtype=np.float64)
    if isinstance(layer, ReLU):
        return relu_kink_distance(x)
    if isinstance(layer, MaxPool2D):
        return maxpool_kink_distance(x, layer.pool_size)
    return None


@dataclass(frozen=True)
class NearestKink:
    """The smallest kink distance found in a layer or network, and where."""

    distance: float
    layer: str

    def __str__(self) -> str:
        return f"{self.distance:.1e} (in the input of {self.layer})"


def smallest_kink_distance(layer: Layer, x: np.ndarray) -> NearestKink | None:
    """The smallest distance to a kink over every layer of ``layer`` (a single layer or a Sequential),
    each measured in that layer's own input; None when no layer has kinks.

    Runs ``forward(..., training=False)``, so no cache is disturbed.
    """
    if not isinstance(layer, Sequential):
        distances = kink_distance(layer, x)
        if distances is None or distances.size == 0:
            return None
        return NearestKink(float(np.min(distances)), repr(layer))
    nearest = None
    previous = None
    for name, inner in zip(layer.names, layer.layers):
        if isinstance(inner, MaxPool2D) and isinstance(previous, ReLU):
            distances = maxpool_kink_distance(x, inner.pool_size, zero_windows_are_flat=True)
        else:
            distances = kink_distance(inner, x)
        if distances is not None and distances.size and (nearest is None or np.min(distances) < nearest.distance):
            nearest = NearestKink(float(np.min(distances)), name)
        x = inner.forward(x, training=False)
        previous = inner
    return nearest
