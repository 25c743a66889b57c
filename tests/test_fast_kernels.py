"""The element-wise and Winograd kernels equal their NumPy twins (also run with NUMBA_DISABLE_JIT=1)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl import kernels, reference
from minidl.winograd import F2X2_3X3, F4X4_3X3, tile_grid

seeds = st.integers(0, 2**32 - 1)
dtypes = st.sampled_from([np.float32, np.float64])
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


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
    assert abs(np.sum(linear * dy, dtype=np.float64) - np.sum(M * dM_fast, dtype=np.float64)) <= TOLERANCE[dtype] * scale
    np.testing.assert_allclose(db_fast, dy.sum(axis=(1, 2, 3), dtype=np.float64), rtol=TOLERANCE[dtype],
                               atol=TOLERANCE[dtype])


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
    scalars = (0.9, 0.999, 1e-3 / (1 - 0.9 ** 3), 1 - 0.999 ** 3, 1e-8)
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
