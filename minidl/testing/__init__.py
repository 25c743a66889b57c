"""A gradient-check kit for your own layers.

A test of a new layer is three lines::

    @given(kink_free_inputs(LeakyReLU(0.1), (2, 3, 4)))
    def test_leaky_relu(x):
        assert_layer_gradients(LeakyReLU(0.1), x)

* :func:`assert_layer_gradients` -- the input gradient and every parameter's, the tangent pass and its
  backward (with the second-order ``dx_extra``), the add-into-``grads`` contract; float64, three random
  cotangents; each array judged norm-wise and entry by entry (:mod:`minidl.testing.criteria`); a failure
  names the worst entry of each array, both values, its tolerance and its distance to the nearest kink;
* :func:`assert_adjoint` -- <A x, y> = <x, A^T y> for a linear map and its claimed transpose;
* :func:`kink_distance`, :func:`smallest_kink_distance` -- how close an input is to a kink (ReLU at 0,
  max-pool ties, or your layer's ``kink_distance(x)`` hook);
* hypothesis strategies (need the ``test`` extra): :func:`conv_geometries`, :func:`pool_geometries`,
  :func:`kink_free_inputs`, :func:`away_from_zero`, :func:`distinct_values`, ``seeds``.

The low-level central differences are in :mod:`minidl.gradcheck`; docs/testing.md compares the kit with
``torch.autograd.gradcheck``.
"""

from typing import Any

from minidl.testing.adjoint import assert_adjoint
from minidl.testing.gradients import (
    Comparison,
    GradientMismatch,
    GradientReport,
    PrecisionWarning,
    assert_layer_gradients,
)
from minidl.testing.kinks import NearestKink, kink_distance, smallest_kink_distance

STRATEGIES = (
    "conv_geometries",
    "pool_geometries",
    "kink_free_inputs",
    "away_from_zero",
    "distinct_values",
    "seeds",
    "ConvGeometry",
    "PoolGeometry",
)

__all__ = [
    "assert_layer_gradients",
    "assert_adjoint",
    "GradientReport",
    "GradientMismatch",
    "Comparison",
    "PrecisionWarning",
    "kink_distance",
    "smallest_kink_distance",
    "NearestKink",
    *STRATEGIES,
]


def __getattr__(name: str) -> Any:
    # the strategies need hypothesis, which only the test extra installs: import them when asked for
    if name in STRATEGIES:
        from minidl.testing import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module 'minidl.testing' has no attribute {name!r}")
