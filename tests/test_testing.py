"""The gradient-check kit itself: it passes correct layers, catches planted bugs and names the worst entry,
reports kinks, and turns bad input into clear errors."""

import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minidl.gradcheck import check_layer
from minidl.layers import Conv2D, Conv2DTranspose, Dense, Layer, MaxPool2D, ReLU, Sequential, Sigmoid
from minidl.testing import (GradientMismatch, PrecisionWarning, assert_adjoint, assert_layer_gradients,
                            conv_geometries, kink_distance, kink_free_inputs, pool_geometries,
                            smallest_kink_distance)


class LeakyReLU(Layer):
    """A layer written the way a user would, with the kink hook."""

    def __init__(self, slope=0.1):
        super().__init__()
        self.slope = slope

    def forward(self, x, training=True):
        y = np.where(x > 0, x, self.slope * x)
        self._store(training, x, y, x=x)
        return y

    def backward(self, dy):
        return np.where(self._cached(dy)["x"] > 0, dy, self.slope * dy)

    def kink_distance(self, x):
        return np.abs(x)


def dense(rng, n_in=3, n_out=2):
    layer = Dense(n_in, n_out, rng=rng, dtype=np.float64)
    layer.params["b"][...] = rng.standard_normal(n_out)
    return layer


def mismatch(layer, x, **kwargs) -> GradientMismatch:
    with pytest.raises(GradientMismatch) as caught:
        assert_layer_gradients(layer, x, **kwargs)
    return caught.value


def failing(error: GradientMismatch) -> set[tuple[str, str]]:
    return {(c.check, c.array) for c in error.report.failures}


# -- planted bugs ---------------------------------------------------------------------------------

class ScaledInputGradient(Dense):
    def backward(self, dy):
        return 1.01 * super().backward(dy)


class MissingBiasGradient(Dense):
    def backward(self, dy):
        bias = self.grads["b"].copy()
        dx = super().backward(dy)
        self.grads["b"][...] = bias
        return dx


class LastSampleWrong(Dense):
    def backward(self, dy):
        dx = super().backward(dy)
        dx[-1] *= -1.0
        return dx


class WrongTangent(Dense):
    def jvp(self, t):
        return super().jvp(t) * 0.5


class TangentForgetsWeights(Dense):
    def jvp_backward(self, dt):
        grad = self.grads["W"].copy()
        result = super().jvp_backward(dt)
        self.grads["W"][...] = grad
        return result


class SigmoidWithoutSecondOrder(Sigmoid):
    def jvp_backward(self, dt):
        return super().jvp_backward(dt)[0], None


class StrideTwoFlipped(Conv2D):
    def backward(self, dy):
        dx = super().backward(dy)
        return dx[:, :, ::-1, :].copy() if self.stride == 2 else dx


@pytest.mark.parametrize("build, expected", [
    (ScaledInputGradient, {("backward", "x")}),
    (MissingBiasGradient, {("backward", "b")}),
    (LastSampleWrong, {("backward", "x")}),
    (WrongTangent, {("jvp", "t_out"), ("jvp_backward", "dt"), ("jvp_backward", "W")}),
    (TangentForgetsWeights, {("jvp_backward", "W")}),
])
def test_planted_dense_bugs_fail_where_they_are(build, expected):
    rng = np.random.default_rng(0)
    layer = build(3, 2, rng=rng, dtype=np.float64)
    layer.params["b"][...] = 1.0
    error = mismatch(layer, rng.standard_normal((4, 3)))
    assert failing(error) == expected
    worst = error.report.failures[0]
    assert f"{worst.where()} analytic" in str(error) and "numeric" in str(error)


def test_the_worst_entry_is_named_with_both_values():
    rng = np.random.default_rng(1)
    error = mismatch(LastSampleWrong(3, 2, rng=rng, dtype=np.float64), rng.standard_normal((5, 3)))
    worst = error.report.failures[0]
    assert worst.index[0] == 4  # the last sample
    assert worst.analytic == pytest.approx(-worst.numeric, rel=1e-6)
    assert f"x[4, {worst.index[1]}]" in str(error) and "Ratio analytic / numeric = -1" in str(error)


def test_a_vanishing_gradient_is_judged_against_the_rounding_floor():
    """dW = x^T r with x = 1e-5: rounding alone is a large fraction of so small a gradient, so it is
    compared against what a central difference can resolve; a wrong one of the same size still fails."""
    layer = Dense(1, 1, dtype=np.float64)
    layer.params["W"][...] = 2.0
    x = np.array([[1e-5]])
    assert_layer_gradients(layer, x)

    class ForgetsW(Dense):
        def backward(self, dy):
            dx = super().backward(dy)
            self.grads["W"][...] = 0.0
            return dx

    wrong = ForgetsW(1, 1, dtype=np.float64)
    wrong.params["W"][...] = 2.0
    with pytest.raises(GradientMismatch, match="W"):
        assert_layer_gradients(wrong, x)


def test_missing_second_order_term_is_caught():
    error = mismatch(SigmoidWithoutSecondOrder(), np.random.default_rng(2).standard_normal((3, 4)))
    assert failing(error) == {("jvp_backward", "x (dx_extra)")}
    assert "a missing term?" in str(error)


def test_a_bug_only_at_stride_two_is_caught_and_stride_one_passes():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 1, 6, 6))
    assert_layer_gradients(StrideTwoFlipped(1, 2, 3, 1, rng=rng, dtype=np.float64), x)
    assert ("backward", "x") in failing(mismatch(StrideTwoFlipped(1, 2, 3, 2, rng=rng, dtype=np.float64), x))


def test_overwriting_instead_of_adding_into_grads_is_a_contract_failure():
    class Overwrites(Dense):
        def backward(self, dy):
            self.grads["W"][...] = 0.0
            return super().backward(dy)

    with pytest.raises(AssertionError, match=r"must ADD dL/dW into grads\['W'\].*1 times.*expected 2"):
        assert_layer_gradients(Overwrites(3, 2, rng=0, dtype=np.float64), np.ones((2, 3)))


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1))
@example(1027)  # a direction whose derivative nearly cancels (-8.5e-5): judged against the rounding floor
def test_fast_mode_passes_correct_layers_and_localises_failures(seed):
    rng = np.random.default_rng(seed)
    report = assert_layer_gradients(dense(rng), rng.standard_normal((3, 3)), fast=True, rng=seed)
    assert {c.array for c in report.comparisons if c.check == "backward"} == {"x (fast)", "W (fast)", "b (fast)"}
    error = mismatch(ScaledInputGradient(3, 2, rng=rng, dtype=np.float64), rng.standard_normal((3, 3)), fast=True)
    assert failing(error) == {("backward", "x")}  # the full check named the entry


# -- kinks ----------------------------------------------------------------------------------------

def test_a_failure_at_a_kink_says_so():
    error = mismatch(ReLU(), np.array([[3e-7, 1.0, -2.0]]))
    assert error.report.failures[0].kink == pytest.approx(3e-7)
    assert "A kink lies 3.0e-07 away" in str(error) and "mix of the one-sided slopes" in str(error)


def test_maxpool_kink_distance_worked_example():
    x = np.array([[[[1.0, 4.0, 0.0, 0.0, 9.0],
                    [3.0, 3.5, 0.0, 0.0, 9.0]]]])
    distances = kink_distance(MaxPool2D(2), x)
    # window 1: max 4 (second 3.5) -> 0.5; others 4 - x. window 2: four tied zeros -> 0. Column 4: no window.
    np.testing.assert_allclose(distances[0, 0], [[3.0, 0.5, 0.0, 0.0, np.inf], [1.0, 0.5, 0.0, 0.0, np.inf]])


def test_kink_distance_of_a_network_skips_zero_windows_after_a_relu():
    x = -np.ones((1, 1, 4, 4))
    x[0, 0, 0, 0] = 2.0  # one live window; the other three are all negative: zeros after the ReLU
    model = Sequential(ReLU(), MaxPool2D(2))
    nearest = smallest_kink_distance(model, x)
    assert nearest.distance == 1.0 and nearest.layer == "re_lu_1"
    assert smallest_kink_distance(MaxPool2D(2), np.maximum(x, 0)).distance == 0.0


@settings(max_examples=15, deadline=None)
@given(kink_free_inputs(LeakyReLU(), (3, 4)))
def test_a_users_layer_in_three_lines(x):
    assert np.min(np.abs(x)) >= 1e-3
    assert_layer_gradients(LeakyReLU(), x)


def test_an_input_in_any_memory_layout_is_checked():
    """A convolution returns its output as a view of an images-last array: the next layer's check gets it."""
    rng = np.random.default_rng(0)
    conv = Conv2D(1, 2, kernel_size=3, rng=rng, dtype=np.float64)
    x = conv.forward(rng.standard_normal((2, 1, 5, 5)), training=False)
    assert not x.flags.c_contiguous
    assert_layer_gradients(Conv2D(2, 3, kernel_size=3, rng=rng, dtype=np.float64), x)
    assert max(check_layer(Dense(10, 2, rng=rng).astype(np.float64), x[:, 0].reshape(2, -1)[:, :20:2]).values()) < 1e-6


@settings(max_examples=30, deadline=None)
@given(conv_geometries(), conv_geometries(transpose=True), pool_geometries())
def test_strategies_draw_only_valid_geometries(conv, transpose, pool):
    for layer, geometry in ((Conv2D(**conv.settings), conv), (Conv2DTranspose(**transpose.settings), transpose)):
        assert min(layer.output_shape(geometry.input_shape[1:])) >= 1
    assert min(MaxPool2D(pool.pool_size).output_shape(pool.input_shape[1:])) >= 1


# -- bad input ------------------------------------------------------------------------------------

def test_float32_is_checked_on_a_float64_copy_with_a_warning_that_says_why():
    layer = Dense(3, 2, rng=0)
    with pytest.warns(PrecisionWarning, match="central differences in float32 are meaningless") as record:
        assert_layer_gradients(layer, np.ones((2, 3), np.float32))
    assert len(record) == 2  # one for the parameters, one for x
    assert layer.params["W"].dtype == np.float32  # the caller's layer is untouched


@pytest.mark.parametrize("layer, x, error, message", [
    (Dense(3, 2, dtype=np.float64), np.ones((2, 3), np.int64), TypeError, "dtype int64.*h = 1e-06"),
    (Dense(3, 2, dtype=np.float64), [[1.0, 2.0, 3.0]], TypeError, "numpy array, received list"),
    (Dense(3, 2, dtype=np.float64), np.full((2, 3), np.nan), ValueError, "NaN"),
    (Dense(3, 2, dtype=np.float64), np.ones((2, 4)), ValueError, r"Dense\(3->2\).*\(N, 3\).*\(2, 4\)"),
    ("relu", np.ones((2, 3)), TypeError, "expected a Layer"),
])
def test_bad_input_is_a_clear_error(layer, x, error, message):
    with pytest.raises(error, match=message):
        assert_layer_gradients(layer, x)


def test_a_layer_that_keeps_no_cache_is_named():
    class Forgetful(LeakyReLU):
        def forward(self, x, training=True):
            return np.where(x > 0, x, self.slope * x)

    with pytest.raises(RuntimeError, match=r"Forgetful\(\)\.backward failed right after forward\(x, training=True\)"):
        assert_layer_gradients(Forgetful(), np.ones((2, 3)))


def test_wrong_shapes_and_dtypes_from_the_layer_are_named():
    class Transposed(LeakyReLU):
        def backward(self, dy):
            return super().backward(dy).T

    class Downcasts(LeakyReLU):
        def backward(self, dy):
            return super().backward(dy).astype(np.float32)

    with pytest.raises(AssertionError, match=r"backward\(dy\) has shape \(3, 2\), expected \(2, 3\)"):
        assert_layer_gradients(Transposed(), np.ones((2, 3)))
    with pytest.raises(AssertionError, match="dtype float32 for float64 input"):
        assert_layer_gradients(Downcasts(), np.ones((2, 3)))


# -- adjoint --------------------------------------------------------------------------------------

def test_adjoint_passes_a_true_transpose_and_names_the_wrong_entry():
    M = np.random.default_rng(0).standard_normal((3, 4))
    assert assert_adjoint(lambda x: M @ x, lambda y: M.T @ y, (4,), (3,)) < 1e-14
    wrong = M.T.copy()
    wrong[2, 1] += 1.0
    with pytest.raises(AssertionError, match=r"x\[2\] <- y\[1\].*\(1 of 12 entries differ\)"):
        assert_adjoint(lambda x: M @ x, lambda y: wrong @ y, (4,), (3,))


def test_adjoint_of_an_affine_map_says_bias():
    with pytest.raises(AssertionError, match="not linear.*a bias"):
        assert_adjoint(lambda x: x + 1.0, lambda y: y, (3,), (3,))


def test_adjoint_shape_mismatch_is_named():
    with pytest.raises(ValueError, match=r"transpose maps \(3,\) to \(2,\), expected \(4,\)"):
        assert_adjoint(lambda x: x[:3], lambda y: y[:2], (4,), (3,))


def test_same_padding_at_stride_two_is_not_the_adjoint_on_an_even_input():
    """'same' convolution of a 6x6 input at stride 2 pads 0 in front; the transposed layer crops (k-1)//2 = 1:
    the two are adjoint only with the convolution padded (k - 1) // 2."""
    rng = np.random.default_rng(0)
    transpose = Conv2DTranspose(2, 1, 3, 2, "same", rng=rng, dtype=np.float64)
    for padding, adjoint in (("same", False), (1, True)):
        conv = Conv2D(1, 2, 3, 2, padding, dtype=np.float64)
        conv.params["W"] = transpose.params["W"]
        check = lambda: assert_adjoint(lambda x: conv.forward(x, training=False),  # noqa: E731
                                       lambda y: transpose.forward(y, training=False), (1, 1, 6, 6), (1, 2, 3, 3))
        if adjoint:
            check()
        else:
            with pytest.raises(AssertionError, match="relative mismatch"):
                check()


def test_no_warning_for_float64():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_layer_gradients(dense(np.random.default_rng(4)), np.ones((2, 3)))
