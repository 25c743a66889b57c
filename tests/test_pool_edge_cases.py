"""Max pooling at the edges of its domain: NaN inputs and half precision."""

import numpy as np
import pytest

from minidl import kernels, reference
from minidl.layers import MaxPool2D

NAN = np.nan


@pytest.mark.parametrize("implementation", [kernels, reference], ids=["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_nan_anywhere_in_a_window_is_its_maximum(implementation, dtype):
    """Four windows: NaN first, NaN after the maximum, two NaNs, no NaN. The maximum of a window that
    holds a NaN is NaN (as in PyTorch), and its index is the first NaN's (our rule for ties)."""
    x = np.array(
        [[NAN, 9.0, 1.0, 9.0, NAN, 2.0, 1.0, 2.0], [1.0, 1.0, 2.0, NAN, 3.0, NAN, 5.0, 3.0]], dtype=dtype
    ).reshape(1, 2, 8, 1)  # (C, H, W, N)
    y = np.empty((1, 1, 4, 1), dtype)
    argmax = np.empty((1, 1, 4, 1), np.int64)
    implementation.maxpool_forward(x, 2, y, argmax)
    np.testing.assert_array_equal(y.ravel(), [NAN, NAN, NAN, 5.0])
    np.testing.assert_array_equal(argmax.ravel(), [0, 11, 4, 14])
    dx = np.empty_like(x)
    implementation.maxpool_backward(np.array([1.0, 2.0, 3.0, 4.0], dtype).reshape(1, 1, 4, 1), argmax, 2, dx)
    expected = np.zeros((2, 8), dtype)
    expected[0, 0], expected[1, 3], expected[0, 4], expected[1, 6] = 1.0, 2.0, 3.0, 4.0
    np.testing.assert_array_equal(dx.reshape(2, 8), expected)


def test_the_layer_propagates_nan_and_routes_its_gradient_to_it():
    layer = MaxPool2D()
    x = np.zeros((1, 1, 2, 2), np.float32)
    x[0, 0, 1, 0] = NAN
    assert np.isnan(layer.forward(x)).all()
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1), np.float32)), [[[[0, 0], [1, 0]]]])


def test_float16_is_pooled_exactly_and_kept():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 7)).astype(np.float16)
    half, single = MaxPool2D(), MaxPool2D()
    y = half.forward(x)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, single.forward(x.astype(np.float32)))
    dy = rng.standard_normal(y.shape).astype(np.float16)
    dx = half.backward(dy)
    assert dx.dtype == np.float16
    np.testing.assert_array_equal(dx, single.backward(dy.astype(np.float32)))


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, bool, np.complex128, np.longdouble])
def test_other_dtypes_are_a_clear_type_error(dtype):
    if np.dtype(dtype) == np.float64:  # platforms whose long double is a double
        pytest.skip("long double is float64 here")
    with pytest.raises(
        TypeError,
        match=r"MaxPool2D\(pool_size=2\): expected x of dtype float16, float32 "
        rf"or float64, received {np.dtype(dtype)}",
    ):
        MaxPool2D().forward(np.zeros((1, 1, 2, 2), dtype))
