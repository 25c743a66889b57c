"""Each Numba kernel equals its NumPy twin (bit for bit where the arithmetic is the same), on hypothesis-drawn
shapes, geometries and special values; the Winograd kernels are also adjoint in pairs. `make test` runs this file
a second time with NUMBA_DISABLE_JIT=1, so that the kernels are right as plain Python too.

Image arrays are stored images-last, (C, H, W, N), as the kernels take them.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl import kernels, reference
from minidl.layers.conv import conv_geometry, conv_transpose_geometry
from minidl.testing import conv_geometries, pool_geometries, seeds
from minidl.winograd import F2X2_3X3, F4X4_3X3, tile_grid

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}
dtypes = st.sampled_from([np.float32, np.float64])


@st.composite
def im2col_geometries(draw):
    """im2col's arguments for a layer geometry of the testing kit: a convolution's, or a transposed
    convolution's, whose output col2im folds into with the cropped rows as leading padding (an output
    that ends before the last window, whose rest overhangs the bottom and right edges)."""
    transpose = draw(st.booleans())
    geometry = draw(conv_geometries(transpose=transpose, max_batch=3, max_size=9))
    k, stride, padding = geometry.kernel_size, geometry.stride, geometry.padding
    if transpose:
        (height, pad_top), (width, pad_left) = (
            conv_transpose_geometry(size, k, stride, padding) for size in (geometry.height, geometry.width)
        )
        channels, out_h, out_w = geometry.out_channels, geometry.height, geometry.width
    else:
        (out_h, pad_top), (out_w, pad_left) = (
            conv_geometry(size, k, stride, padding) for size in (geometry.height, geometry.width)
        )
        channels, height, width = geometry.in_channels, geometry.height, geometry.width
    return geometry.batch, channels, height, width, k, stride, pad_top, pad_left, out_h, out_w, draw(dtypes)


@settings(max_examples=60, deadline=None)
@given(im2col_geometries(), seeds)
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
@given(im2col_geometries(), seeds)
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
@given(im2col_geometries(), seeds)
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
    """A pool geometry of the testing kit, as the kernels take it ((C, H, W, N)), a dtype and a kind of values."""
    geometry = draw(pool_geometries())
    shape = (geometry.channels, geometry.height, geometry.width, geometry.batch)
    return geometry.pool_size, shape, draw(dtypes), draw(st.sampled_from(["distinct", "ties", "nan"]))


@settings(max_examples=60, deadline=None)
@given(pool_cases(), seeds)
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
    x = np.array([[1.0, 3.0, 0.0, 0.0, 9.0], [3.0, 3.0, 0.0, 0.0, 9.0], [5.0, 2.0, 7.0, 7.0, 9.0]]).reshape(
        1, 3, 5, 1
    )  # one channel, one image
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
@given(
    st.integers(1, 300),
    dtypes,
    st.integers(1, 50),
    st.floats(0.0, 0.99),
    st.floats(0.9, 0.9999),
    seeds,
)
def test_adam_update_matches_reference(size, dtype, t, beta1, beta2, seed):
    rng = np.random.default_rng(seed)
    param, grad = (rng.standard_normal(size).astype(dtype) for _ in range(2))
    m = rng.standard_normal(size).astype(dtype)
    v = rng.random(size).astype(dtype)
    scalars = (beta1, beta2, 1e-3 / (1 - beta1**t), 1 - beta2**t, 1e-8)
    fast = [a.copy() for a in (param, m, v)]
    slow = [a.copy() for a in (param, m, v)]
    kernels.adam_update(fast[0], grad, fast[1], fast[2], *scalars)
    reference.adam_update(slow[0], grad, slow[1], slow[2], *scalars)
    assert not np.array_equal(fast[0], param)  # the update moved the parameter
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a, b, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@settings(max_examples=40, deadline=None)
@given(pool_cases(), seeds)
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
    assert np.isclose(
        np.sum(fast * dy, dtype=np.float64),
        np.sum(t * dx, dtype=np.float64),
        rtol=TOLERANCE[dtype],
        atol=TOLERANCE[dtype],
    )


def special_values(rng, size, dtype):
    """Normal values with zeros, signed zeros, infinities and NaN mixed in."""
    x = rng.standard_normal(size).astype(dtype)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=dtype)
    where = rng.random(size) < 0.2
    x[where] = rng.choice(specials, where.sum())
    return x


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 300), dtypes, seeds)
def test_relu_kernels_match_reference_bit_for_bit(size, dtype, seed):
    """No arithmetic but x * 0: equal to the last bit, signed zeros and NaN included."""
    rng = np.random.default_rng(seed)
    x = special_values(rng, size, dtype)
    y_fast, y_slow = np.empty_like(x), np.empty_like(x)
    mask_fast, mask_slow = np.empty(size, np.bool_), np.empty(size, np.bool_)
    kernels.relu_forward(x, y_fast, mask_fast)
    with np.errstate(invalid="ignore"):  # inf * 0 is NaN, on purpose
        reference.relu_forward(x, y_slow, mask_slow)
    np.testing.assert_array_equal(mask_fast, mask_slow)
    np.testing.assert_array_equal(y_fast, y_slow)
    np.testing.assert_array_equal(np.signbit(y_fast), np.signbit(y_slow))

    dy = special_values(rng, size, dtype)
    dx_fast, dx_slow = np.empty_like(dy), np.empty_like(dy)
    kernels.relu_backward(dy, mask_fast, dx_fast)
    with np.errstate(invalid="ignore"):
        reference.relu_backward(dy, mask_slow, dx_slow)
    np.testing.assert_array_equal(dx_fast, dx_slow)
    np.testing.assert_array_equal(np.signbit(dx_fast), np.signbit(dx_slow))


@st.composite
def winograd_cases(draw):
    transform = draw(st.sampled_from([F2X2_3X3, F4X4_3X3]))
    channels, n_images = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    pad_top, pad_left = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    # any output size a 3x3 window fits, with the bottom and right padding it implies
    out_h = draw(st.integers(1, height + pad_top + 1))
    out_w = draw(st.integers(1, width + pad_left + 1))
    dtype = draw(dtypes)
    return transform, channels, n_images, height, width, pad_top, pad_left, out_h, out_w, dtype


@settings(max_examples=40, deadline=None)
@given(winograd_cases(), seeds)
def test_winograd_input_kernels_match_reference_and_are_adjoint(case, seed):
    transform, channels, n_images, height, width, pad_top, pad_left, out_h, out_w, dtype = case
    rng = np.random.default_rng(seed)
    tiles_h, tiles_w = tile_grid(out_h, out_w, transform.m)
    a = transform.tile
    BT = transform.BT.astype(dtype)
    x = rng.standard_normal((channels, height, width, n_images)).astype(dtype)
    fast = np.full((a * a, channels, tiles_h * tiles_w * n_images), np.nan, dtype)
    slow = np.full_like(fast, np.nan)
    kernels.winograd_input_tiles(x, BT, pad_top, pad_left, tiles_h, tiles_w, fast)
    reference.winograd_input_tiles(x, BT, pad_top, pad_left, tiles_h, tiles_w, slow)
    np.testing.assert_allclose(fast, slow, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])

    dV = rng.standard_normal(fast.shape).astype(dtype)
    dx_fast, dx_slow = np.full_like(x, np.nan), np.full_like(x, np.nan)
    kernels.winograd_input_tiles_adjoint(dV, BT, pad_top, pad_left, tiles_h, tiles_w, dx_fast)
    reference.winograd_input_tiles_adjoint(dV, BT, pad_top, pad_left, tiles_h, tiles_w, dx_slow)
    np.testing.assert_allclose(dx_fast, dx_slow, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    # <V(x), dV> = <x, V^T(dV)>
    scale = np.sum(np.abs(fast) * np.abs(dV), dtype=np.float64)
    assert abs(np.sum(fast * dV, dtype=np.float64) - np.sum(x * dx_fast, dtype=np.float64)) <= TOLERANCE[dtype] * scale


@settings(max_examples=40, deadline=None)
@given(winograd_cases(), seeds)
def test_winograd_output_kernels_match_reference_and_are_adjoint(case, seed):
    transform, filters, n_images, _, _, _, _, out_h, out_w, dtype = case
    rng = np.random.default_rng(seed)
    tiles_h, tiles_w = tile_grid(out_h, out_w, transform.m)
    a = transform.tile
    AT = transform.AT.astype(dtype)
    M = rng.standard_normal((a * a, filters, tiles_h * tiles_w * n_images)).astype(dtype)
    bias = rng.standard_normal(filters).astype(dtype)
    fast = np.full((filters, out_h, out_w, n_images), np.nan, dtype)
    slow = np.full_like(fast, np.nan)
    kernels.winograd_output_tiles(M, AT, bias, fast)
    reference.winograd_output_tiles(M, AT, bias, slow)
    np.testing.assert_allclose(fast, slow, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])

    dy = rng.standard_normal(fast.shape).astype(dtype)
    dM_fast, dM_slow = np.full_like(M, np.nan), np.full_like(M, np.nan)
    db_fast, db_slow = np.full(filters, np.nan, dtype), np.full(filters, np.nan, dtype)
    kernels.winograd_output_tiles_adjoint(dy, AT, dM_fast, db_fast)
    reference.winograd_output_tiles_adjoint(dy, AT, dM_slow, db_slow)
    np.testing.assert_allclose(dM_fast, dM_slow, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    np.testing.assert_allclose(db_fast, db_slow, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    # <A^T M A, dy> = <M, A dy A^T> (bias aside), and db is the bias's share
    linear = fast - bias[:, None, None, None]
    scale = np.sum(np.abs(linear) * np.abs(dy), dtype=np.float64) + np.sum(np.abs(M) * np.abs(dM_fast))
    mismatch = abs(np.sum(linear * dy, dtype=np.float64) - np.sum(M * dM_fast, dtype=np.float64))
    assert mismatch <= TOLERANCE[dtype] * scale
    np.testing.assert_allclose(
        db_fast, dy.sum(axis=(1, 2, 3), dtype=np.float64), rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype]
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 300), dtypes, seeds)
def test_sigmoid_from_exponential_matches_reference_bit_for_bit(size, dtype, seed):
    rng = np.random.default_rng(seed)
    x = special_values(rng, size, dtype) * dtype(rng.choice([1.0, 30.0, 1000.0]))
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(-np.minimum(np.abs(x), dtype(40.0)))
    fast, slow = np.full_like(x, np.nan), np.full_like(x, np.nan)
    kernels.sigmoid_from_exponential(x, e, fast)
    reference.sigmoid_from_exponential(x, e, slow)
    np.testing.assert_array_equal(fast, slow)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 300), dtypes, st.sampled_from([0.5, 43.0, 354.0]), seeds)
def test_negative_capped_abs_matches_reference_bit_for_bit(size, dtype, bound, seed):
    """No arithmetic but a comparison and a sign: equal to the last bit; NaN stays NaN, -0.0 becomes -0.0."""
    rng = np.random.default_rng(seed)
    x = special_values(rng, size, dtype) * dtype(rng.choice([1.0, 30.0, 1000.0]))
    fast, slow = np.full_like(x, 7.0), np.full_like(x, 7.0)
    kernels.negative_capped_abs(x, bound, fast)
    reference.negative_capped_abs(x, bound, slow)
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(np.signbit(fast), np.signbit(slow))
    assert np.array_equal(np.isnan(fast), np.isnan(x))


@pytest.mark.parametrize("size", [1000, 200_000], ids=["one thread", "all threads"])
def test_elementwise_kernels_agree_on_both_sides_of_their_parallel_threshold(size):
    rng = np.random.default_rng(size)
    x = rng.standard_normal(size).astype(np.float32)
    y, mask, dx = np.empty_like(x), np.empty(size, np.bool_), np.empty_like(x)
    kernels.relu_forward(x, y, mask)
    kernels.relu_backward(x, mask, dx)
    np.testing.assert_array_equal(y, x * (x > 0))
    np.testing.assert_array_equal(dx, x * mask)
    e = np.exp(-np.abs(x))
    kernels.sigmoid_from_exponential(x, e, y)
    np.testing.assert_array_equal(y, np.where(x >= 0, 1, e) / (1 + e))
    kernels.negative_capped_abs(x * 30, 43.0, y)
    np.testing.assert_array_equal(y, -np.minimum(np.abs(x * 30), np.float32(43.0)))
    rows = x.reshape(-1, 100)
    t = np.abs(np.sin(rows))
    losses, terms, e = np.empty(len(rows)), np.empty_like(rows), np.exp(-np.abs(rows))
    expected_terms = np.maximum(rows, 0) - rows * t + np.log1p(e)
    kernels.bce_logits_rows(rows, t, e, np.log1p(e), 0.5, losses, dx.reshape(rows.shape), terms)
    np.testing.assert_array_equal(terms, expected_terms)
    np.testing.assert_allclose(losses, expected_terms.astype(np.float64).sum(axis=1), rtol=1e-12)
    # Adam goes parallel from 262,144 elements: 2,000 and 400,000 fall on either side
    param, grad, m, v = rng.standard_normal((4, 2 * size)).astype(np.float32)
    fast, slow = [(param.copy(), m.copy(), np.abs(v)) for _ in range(2)]
    scalars = (0.9, 0.999, 1e-3 / (1 - 0.9**3), 1 - 0.999**3, 1e-8)
    kernels.adam_update(fast[0], grad, fast[1], fast[2], *scalars)
    reference.adam_update(slow[0], grad, slow[1], slow[2], *scalars)
    for a, b in zip(fast, slow):  # the same float64 arithmetic, rounded once to float32
        np.testing.assert_array_equal(a, b)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 40), dtypes, st.sampled_from([1.0, 30.0, 1000.0]), seeds)
def test_bce_logits_rows_matches_reference(rows, columns, dtype, spread, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, columns)) * spread).astype(dtype)
    t = rng.random((rows, columns)).astype(dtype)
    e = np.exp(-np.minimum(np.abs(x), dtype(40.0)))
    losses_fast, losses_slow = np.full(rows, np.nan), np.full(rows, np.nan)
    d_fast, d_slow = np.full_like(x, np.nan), np.full_like(x, np.nan)
    terms_fast, terms_slow = np.full_like(x, np.nan), np.full_like(x, np.nan)
    kernels.bce_logits_rows(x, t, e, np.log1p(e), 0.25, losses_fast, d_fast, terms_fast)
    reference.bce_logits_rows(x, t, e, np.log1p(e), 0.25, losses_slow, d_slow, terms_slow)
    # the same terms, summed in float64 in another order: a relative 1e-12 covers 40 terms
    np.testing.assert_allclose(losses_fast, losses_slow, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(d_fast, d_slow)
    np.testing.assert_array_equal(terms_fast, terms_slow)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 30), st.integers(1, 40), st.floats(0.0, 1.0), st.sampled_from([np.bool_, np.uint64]), seeds)
def test_any_per_row_matches_reference(units, width, density, dtype, seed):
    rng = np.random.default_rng(seed)
    rows = (rng.random((units, width)) < density) & (rng.random((units, 1)) < 0.6)  # whole rows off too
    rows = rows.astype(dtype) * (rng.integers(1, 2**8, rows.shape).astype(dtype) if dtype is np.uint64 else True)
    fast, slow = np.ones(units, dtype=bool), np.ones(units, dtype=bool)
    kernels.any_per_row(rows, fast)
    reference.any_per_row(rows, slow)
    np.testing.assert_array_equal(fast, slow)
