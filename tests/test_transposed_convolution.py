"""Exactly when a transposed convolution is the adjoint of a convolution, and exactly when minidl's
``"same"`` equals a PyTorch ``conv_transpose2d`` setting: each rule is checked on both sides, where it
holds and where it fails (docs/transposed-convolution.md)."""

import numpy as np
import pytest

from minidl.layers import Conv2D, Conv2DTranspose

KERNELS_AND_STRIDES = [(k, s) for k in range(1, 7) for s in range(1, 5)]


def padding_rule(k: int, s: int) -> bool:
    """Conv2D(padding=(k - 1) // 2) is the adjoint of a "same" Conv2DTranspose."""
    return k % 2 == 1 or s >= 2


def same_rule(k: int, s: int) -> bool:
    """Conv2D("same") is the adjoint of a "same" Conv2DTranspose."""
    return s == 1 or k <= 2 or (k % 2 == 0 and s == 2)


def adjoint_holds(k: int, s: int, conv_padding, size: int, seed: int = 0) -> bool:
    rng = np.random.default_rng(seed)
    transpose = Conv2DTranspose(2, 3, k, s, "same", rng=rng, dtype=np.float64)
    small = (2, size, size + 1)
    big = transpose.output_shape(small)
    conv = Conv2D(3, 2, k, s, conv_padding, dtype=np.float64)
    if conv.output_shape(big) != small:
        return False
    conv.params["W"][...] = transpose.params["W"]
    x, y = rng.standard_normal((2,) + big), rng.standard_normal((2,) + small)
    return bool(np.isclose(np.sum(conv.forward(x) * y), np.sum(x * transpose.forward(y)), rtol=1e-10, atol=1e-10))


@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("k, s", KERNELS_AND_STRIDES)
def test_same_transpose_is_the_adjoint_of_conv_exactly_under_the_stated_conditions(k, s, size):
    assert adjoint_holds(k, s, (k - 1) // 2, size) == padding_rule(k, s)
    assert adjoint_holds(k, s, "same", size) == same_rule(k, s)


def test_both_sides_of_each_rule_occur():
    assert {padding_rule(k, s) for k, s in KERNELS_AND_STRIDES} == {True, False}
    assert {same_rule(k, s) for k, s in KERNELS_AND_STRIDES} == {True, False}
    assert not same_rule(3, 2)  # the study's layers: a "same" convolution is not their adjoint


@pytest.mark.parametrize("padding", ["valid", 0, 1, 2])
@pytest.mark.parametrize("k, s", KERNELS_AND_STRIDES)
def test_integer_padding_transpose_is_always_the_adjoint(k, s, padding):
    rng = np.random.default_rng(k * 10 + s)
    transpose = Conv2DTranspose(2, 3, k, s, padding, rng=rng, dtype=np.float64)
    small = (2, 3, 4)
    pad = 0 if padding == "valid" else padding
    if (small[1] - 1) * s + k - 2 * pad <= 0:
        pytest.skip("the padding leaves no output")
    big = transpose.output_shape(small)
    conv = Conv2D(3, 2, k, s, padding, dtype=np.float64)
    assert conv.output_shape(big) == small
    conv.params["W"][...] = transpose.params["W"]
    x, y = rng.standard_normal((2,) + big), rng.standard_normal((2,) + small)
    assert np.isclose(np.sum(conv.forward(x) * y), np.sum(x * transpose.forward(y)), rtol=1e-10, atol=1e-10)


# -- PyTorch (optional) ---------------------------------------------------------------------------------


def torch_same(x, weight, k, s, output_padding, crop_last=False):
    torch = pytest.importorskip("torch")
    result = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(weight), stride=s, padding=(k - 1) // 2, output_padding=output_padding
    ).numpy()
    return result[:, :, :-1, :-1] if crop_last else result


def minidl_same(k, s):
    rng = np.random.default_rng(k * 10 + s)
    layer = Conv2DTranspose(2, 3, k, s, "same", rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 2, 3, 4))
    return layer.forward(x), x, layer.params["W"]


@pytest.mark.parametrize("k, s", KERNELS_AND_STRIDES)
def test_same_is_torch_with_output_padding_s_plus_2p_minus_k(k, s):
    pytest.importorskip("torch")
    y, x, weight = minidl_same(k, s)
    output_padding = s + 2 * ((k - 1) // 2) - k
    if k % 2 == 0 and s == 1:
        # output_padding would be -1: PyTorch has no such setting; one row and column too many, then crop
        assert output_padding == -1
        with pytest.raises(RuntimeError):
            torch_same(x, weight, k, s, output_padding)
        np.testing.assert_allclose(torch_same(x, weight, k, s, 0, crop_last=True), y, rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_allclose(torch_same(x, weight, k, s, output_padding), y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k, s", KERNELS_AND_STRIDES)
def test_the_odd_kernel_rule_output_padding_s_minus_1_fails_for_even_kernels(k, s):
    pytest.importorskip("torch")
    y, x, weight = minidl_same(k, s)
    reference = torch_same(x, weight, k, s, s - 1)
    agrees = reference.shape == y.shape and np.allclose(reference, y, rtol=1e-12, atol=1e-12)
    assert agrees == (k % 2 == 1)


def test_the_input_matrix_has_the_channel_axis_first_and_the_image_axis_last():
    """docs/transposed-convolution.md: X is x as a (C_in, H W N) matrix, column (i W + j) N + n."""
    n, c, h, w = 3, 2, 4, 5
    x = np.random.default_rng(0).standard_normal((n, c, h, w))
    layer = Conv2DTranspose(c, 1, dtype=np.float64)
    layer.forward(x)
    X = layer._cached()["X"]
    assert X.shape == (c, h * w * n)
    for image, channel, row, column in np.ndindex(x.shape):
        assert X[channel, (row * w + column) * n + image] == x[image, channel, row, column]
