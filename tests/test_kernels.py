"""Each Numba kernel equals its NumPy twin on hypothesis-drawn shapes and geometries.

Image arrays are stored images-last, (C, H, W, N), as the kernels take them.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl import kernels, reference

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


@st.composite
def conv_geometries(draw):
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 3))
    kernel = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    height = draw(st.integers(1, 9))
    width = draw(st.integers(1, 9))
    pad_top = draw(st.integers(0, kernel - 1))
    pad_left = draw(st.integers(0, kernel - 1))
    # outputs may overhang the bottom/right edge (implicit padding) but must start inside the padded image
    out_h = draw(st.integers(1, (height + pad_top + kernel - 1) // stride + 1))
    out_w = draw(st.integers(1, (width + pad_left + kernel - 1) // stride + 1))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return n, c, height, width, kernel, stride, pad_top, pad_left, out_h, out_w, dtype


@settings(max_examples=60, deadline=None)
@given(conv_geometries(), st.integers(0, 2**32 - 1))
def test_im2col_matches_reference(geometry, seed):
    n, c, height, width, kernel, stride, pad_top, pad_left, out_h, out_w, dtype = geometry
    x = np.random.default_rng(seed).standard_normal((c, height, width, n)).astype(dtype)
    fast = np.full((c * kernel * kernel, out_h * out_w * n), np.nan, dtype=dtype)
    slow = np.full_like(fast, np.nan)
    kernels.im2col(x, kernel, kernel, stride, pad_top, pad_left, out_h, out_w, fast)
    reference.im2col(x, kernel, kernel, stride, pad_top, pad_left, out_h, out_w, slow)
    assert not np.isnan(fast).any()
    np.testing.assert_array_equal(fast, slow)  # pure copies: no arithmetic, so exactly equal


@settings(max_examples=60, deadline=None)
@given(conv_geometries(), st.integers(0, 2**32 - 1))
def test_col2im_matches_reference(geometry, seed):
    n, c, height, width, kernel, stride, pad_top, pad_left, out_h, out_w, dtype = geometry
    cols = np.random.default_rng(seed).standard_normal((c * kernel * kernel, out_h * out_w * n)).astype(dtype)
    fast = np.full((c, height, width, n), np.nan, dtype=dtype)
    slow = np.full_like(fast, np.nan)
    kernels.col2im(cols, kernel, kernel, stride, pad_top, pad_left, out_h, out_w, fast)
    reference.col2im(cols, kernel, kernel, stride, pad_top, pad_left, out_h, out_w, slow)
    assert not np.isnan(fast).any()
    np.testing.assert_allclose(fast, slow, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@settings(max_examples=30, deadline=None)
@given(conv_geometries(), st.integers(0, 2**32 - 1))
def test_col2im_is_the_adjoint_of_im2col(geometry, seed):
    n, c, height, width, kernel, stride, pad_top, pad_left, out_h, out_w, _ = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c, height, width, n))
    cols = rng.standard_normal((c * kernel * kernel, out_h * out_w * n))
    unfolded = np.empty_like(cols)
    folded = np.empty_like(x)
    kernels.im2col(x, kernel, kernel, stride, pad_top, pad_left, out_h, out_w, unfolded)
    kernels.col2im(cols, kernel, kernel, stride, pad_top, pad_left, out_h, out_w, folded)
    assert np.isclose(np.sum(unfolded * cols), np.sum(x * folded), rtol=1e-12, atol=1e-12)


@st.composite
def pool_cases(draw):
    pool = draw(st.integers(1, 3))
    shape = (draw(st.integers(1, 3)), draw(st.integers(pool, 9)), draw(st.integers(pool, 9)),
             draw(st.integers(1, 3)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    values = draw(st.sampled_from(["distinct", "ties", "nan"]))
    return pool, shape, dtype, values


@settings(max_examples=60, deadline=None)
@given(pool_cases(), st.integers(0, 2**32 - 1))
def test_maxpool_matches_reference(case, seed):
    pool, shape, dtype, values = case
    rng = np.random.default_rng(seed)
    # "ties": values from {0, 1, 2}, so most windows hold repeated maxima; "nan": about one NaN in five
    x = (rng.integers(0, 3, shape) if values == "ties" else rng.standard_normal(shape)).astype(dtype)
    if values == "nan":
        x[rng.random(shape) < 0.2] = np.nan
    out_shape = (shape[0], shape[1] // pool, shape[2] // pool, shape[3])  # (C, H, W, N)
    y_fast, y_slow = np.empty(out_shape, dtype), np.empty(out_shape, dtype)
    index_dtype = np.int32 if seed % 2 else np.int64  # the layer keeps int32 indices
    arg_fast, arg_slow = np.empty(out_shape, index_dtype), np.empty(out_shape, index_dtype)
    kernels.maxpool_forward(x, pool, y_fast, arg_fast)
    reference.maxpool_forward(x, pool, y_slow, arg_slow)
    np.testing.assert_array_equal(y_fast, y_slow)
    np.testing.assert_array_equal(arg_fast, arg_slow)

    dy = rng.standard_normal(out_shape).astype(dtype)
    dx_fast, dx_slow = np.full(shape, np.nan, dtype), np.full(shape, np.nan, dtype)
    kernels.maxpool_backward(dy, arg_fast, pool, dx_fast)
    reference.maxpool_backward(dy, arg_slow, pool, dx_slow)
    assert not np.isnan(dx_fast).any()
    np.testing.assert_allclose(dx_fast, dx_slow, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@pytest.mark.parametrize("implementation", [kernels, reference], ids=["numba", "numpy"])
def test_maxpool_routes_ties_to_first_maximum_in_row_major_order(implementation):
    x = np.array([[1.0, 3.0, 0.0, 0.0, 9.0],
                  [3.0, 3.0, 0.0, 0.0, 9.0],
                  [5.0, 2.0, 7.0, 7.0, 9.0]]).reshape(1, 3, 5, 1)  # one channel, one image
    y = np.empty((1, 1, 2, 1))
    argmax = np.empty((1, 1, 2, 1), np.int64)
    implementation.maxpool_forward(x, 2, y, argmax)
    np.testing.assert_array_equal(y.ravel(), [3.0, 0.0])
    np.testing.assert_array_equal(argmax.ravel(), [1, 2])  # (0, 1) and (0, 2): the first of the ties
    dx = np.empty_like(x)
    implementation.maxpool_backward(np.array([10.0, 20.0]).reshape(1, 1, 2, 1), argmax, 2, dx)
    expected = np.zeros_like(x)
    expected[0, 0, 1, 0] = 10.0
    expected[0, 0, 2, 0] = 20.0
    np.testing.assert_array_equal(dx, expected)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.sampled_from([np.float32, np.float64]), st.integers(1, 50),
       st.floats(0.0, 0.99), st.floats(0.9, 0.9999), st.integers(0, 2**32 - 1))
def test_adam_update_matches_reference(size, dtype, t, beta1, beta2, seed):
    rng = np.random.default_rng(seed)
    param, grad = (rng.standard_normal(size).astype(dtype) for _ in range(2))
    m = rng.standard_normal(size).astype(dtype)
    v = rng.random(size).astype(dtype)
    scalars = (beta1, beta2, 1e-3 / (1 - beta1 ** t), 1 - beta2 ** t, 1e-8)
    fast = [a.copy() for a in (param, m, v)]
    slow = [a.copy() for a in (param, m, v)]
    kernels.adam_update(fast[0], grad, fast[1], fast[2], *scalars)
    reference.adam_update(slow[0], grad, slow[1], slow[2], *scalars)
    assert not np.array_equal(fast[0], param)  # the update moved the parameter
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a, b, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@settings(max_examples=40, deadline=None)
@given(pool_cases(), st.integers(0, 2**32 - 1))
def test_maxpool_gather_matches_reference_and_is_the_adjoint_of_the_backward_pass(case, seed):
    pool, shape, dtype, values = case
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 3, shape) if values == "ties" else rng.standard_normal(shape)).astype(dtype)
    if values == "nan":
        x[rng.random(shape) < 0.2] = np.nan
    out_shape = (shape[0], shape[1] // pool, shape[2] // pool, shape[3])
    argmax = np.empty(out_shape, np.int32)
    kernels.maxpool_forward(x, pool, np.empty(out_shape, dtype), argmax)
    t = rng.standard_normal(shape).astype(dtype)
    fast, slow = np.full(out_shape, np.nan, dtype), np.full(out_shape, np.nan, dtype)
    kernels.maxpool_gather(t, argmax, pool, fast)
    reference.maxpool_gather(t, argmax, pool, slow)
    np.testing.assert_array_equal(fast, slow)  # pure copies
    dy = rng.standard_normal(out_shape).astype(dtype)
    dx = np.empty(shape, dtype)
    kernels.maxpool_backward(dy, argmax, pool, dx)
    assert np.isclose(np.sum(fast * dy, dtype=np.float64), np.sum(t * dx, dtype=np.float64),
                      rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 30), st.integers(1, 40), st.floats(0.0, 1.0), st.sampled_from([np.bool_, np.uint64]),
       st.integers(0, 2**32 - 1))
def test_any_per_row_matches_reference(units, width, density, dtype, seed):
    rng = np.random.default_rng(seed)
    rows = (rng.random((units, width)) < density) & (rng.random((units, 1)) < 0.6)  # whole rows off too
    rows = rows.astype(dtype) * (rng.integers(1, 2**8, rows.shape).astype(dtype) if dtype is np.uint64 else True)
    fast, slow = np.ones(units, dtype=bool), np.ones(units, dtype=bool)
    kernels.any_per_row(rows, fast)
    reference.any_per_row(rows, slow)
    np.testing.assert_array_equal(fast, slow)
