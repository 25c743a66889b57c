# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Writing a new layer, and checking it with `minidl.testing`
#
# A layer is a class with `forward` and `backward` side by side. This notebook writes one that minidl
# does not have, **average pooling**, computes its gradient by hand on a 4x4 image, gets the backward
# pass wrong on purpose, and shows what the gradient-check kit prints. Then it writes the three-line
# property test that guards the layer from then on.
#
# Notation as in the rest of the docs: x is (N, C, H, W), windows are p x p and do not overlap, floor mode
# (a 5x5 image pools to 2x2 and the last row and column are dropped).
#
#     y[n, c, i, j] = (1 / p^2) * sum_{a, b < p} x[n, c, p i + a, p j + b]
#
# Every input in a window moves its output by 1 / p^2, so the backward pass spreads each dy over its
# window divided by p^2, and sends 0 to the dropped border.

# %%
import numpy as np

from minidl.layers import Layer
from minidl.testing import GradientMismatch, assert_adjoint, assert_layer_gradients

# %% [markdown]
# ## By hand first
#
# x = 0, 1, ..., 15 on a 4x4 grid and p = 2. The top-left window holds 0, 1, 4, 5: mean 2.5. With dy = 1
# everywhere, every pixel gets 1/4.

# %%
x = np.arange(16.0).reshape(1, 1, 4, 4)
by_hand_y = np.array([[(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4], [(8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4]])
by_hand_dx = np.full((4, 4), 1 / 4)
print(by_hand_y)

# %% [markdown]
# ## The layer
#
# `_store(training, x, y, ...)` keeps, when training, the shapes of x and y and whatever else backward
# needs (here nothing more); `_cached(dy)` fails loudly when backward comes without a forward or with a
# `dy` of the wrong shape, and `_start_tangent(t)` / `_tangent_cached(dt)` do the same for the tangent
# pass. The tangent pass `jvp` is the same linear map applied to K
# tangent directions at once; its backward is the layer's backward, and there is no second-order term
# (`dx_extra` is None): the map does not depend on x.


# %%
class AvgPool2D(Layer):
    """Mean over non-overlapping ``pool_size x pool_size`` windows, floor mode.

    Shapes: x (N, C, H, W) -> y (N, C, H // p, W // p).
    """

    def __init__(self, pool_size: int = 2) -> None:
        super().__init__()
        self.pool_size = pool_size

    def _windows(self, x):
        """(..., H, W) -> (..., OH, p, OW, p), the border that floor mode drops cut off."""
        p = self.pool_size
        out_h, out_w = x.shape[-2] // p, x.shape[-1] // p
        cropped = x[..., : out_h * p, : out_w * p]
        return cropped.reshape(x.shape[:-2] + (out_h, p, out_w, p))

    def forward(self, x, training=True):
        y = self._windows(x).mean(axis=(-3, -1))
        self._store(training, x, y)
        return y

    def _spread(self, dy, input_shape):
        """The adjoint of the mean: each dy / p^2 over its window, 0 on the dropped border."""
        p = self.pool_size
        dx = np.zeros(input_shape, dtype=dy.dtype)
        spread = np.repeat(np.repeat(dy, p, axis=-2), p, axis=-1) / (p * p)
        dx[..., : spread.shape[-2], : spread.shape[-1]] = spread
        return dx

    def backward(self, dy):
        return self._spread(dy, self._cached(dy)["input_shape"])

    def jvp(self, t):
        self._start_tangent(t)
        return self._windows(t).mean(axis=(-3, -1))

    def jvp_backward(self, dt):
        self._tangent_cached(dt)
        input_shape = self._cached()["input_shape"]
        return self._spread(dt, dt.shape[:2] + input_shape[1:]), None


layer = AvgPool2D(2)
y = layer.forward(x)
dx = layer.backward(np.ones_like(y))
assert np.array_equal(y[0, 0], by_hand_y) and np.array_equal(dx[0, 0], by_hand_dx)
print(y[0, 0], dx[0, 0], sep="\n")

# %% [markdown]
# ## The kit
#
# `assert_layer_gradients` compares, in float64, the input gradient (and every parameter's, where there
# are parameters), the tangent pass and its backward with central differences. It returns a report; on
# failure it raises with the same table. A 5x5 input checks the dropped border too.

# %%
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 5, 5))
print(assert_layer_gradients(AvgPool2D(2), x))

# %% [markdown]
# ## A wrong backward, on purpose
#
# The classic slip: spread dy over the window but forget to divide by p^2. Every entry of dx is then 4
# times too large, and the kit names the worst one, both values and their ratio.


# %%
class ForgetsTheMean(AvgPool2D):
    def _spread(self, dy, input_shape):
        return super()._spread(dy, input_shape) * self.pool_size**2


try:
    assert_layer_gradients(ForgetsTheMean(2), x)
except GradientMismatch as error:
    print(error)
    worst = error.report.failures[0]

assert worst.array == "x" and round(worst.analytic / worst.numeric) == 4

# %% [markdown]
# The jvp row passes (the forward and its tangent are right) while the backward rows fail: the mistake
# is in the backward alone. A subtler slip: floor mode forgotten in backward, so the dropped last row
# receives gradient. Only the border entries are wrong; the kit still points at one of them.


# %%
class GradientOnTheBorder(AvgPool2D):
    def _spread(self, dy, input_shape):
        dx = super()._spread(dy, input_shape)
        dx[..., -1, :] = dx[..., -2, :]  # the dropped row gets its neighbour's gradient
        return dx


try:
    assert_layer_gradients(GradientOnTheBorder(2), x)
except GradientMismatch as error:
    worst = error.report.failures[0]
    print(str(error).splitlines()[-1])
assert worst.index[2] == 4 and worst.numeric == 0.0  # row 4 of a 5-row input: outside every window

# %% [markdown]
# ## Its backward is its adjoint
#
# Average pooling is linear, so its backward must be its transpose: <A x, y> = <x, A^T y>.
# `assert_adjoint` tries random pairs (x, y) and returns the largest mismatch
# |<A x, y> - <x, A^T y>| / (||A x|| ||y|| + ||x|| ||A^T y||), and raises above 1e-10. A correct
# backward leaves only the rounding of the two inner products (here none at all: 0); a wrong one
# misses by the size of the products.

# %%
pool = AvgPool2D(2)
mismatch = assert_adjoint(pool.forward, pool.backward, x.shape, (2, 3, 2, 2))  # forward caches for backward
print(f"largest relative mismatch of <A x, y> and <x, A^T y> over 3 random pairs: {mismatch:.1e} (bound 1e-10)")

# %% [markdown]
# ## Kinks
#
# Average pooling is smooth. Max pooling is not: it bends where two entries of a window tie, and a
# central difference across a tie measures a mix of the two one-sided slopes. When a check fails near a
# kink the kit says how far the worst entry was from it. A layer of your own reports its kinks through a
# `kink_distance(x)` method; the built-in ReLU and MaxPool2D are known.

# %%
from minidl.layers import MaxPool2D  # noqa: E402

near_tie = np.array([[[[1.0, 1.0 + 3e-7], [0.0, -1.0]]]])
try:
    assert_layer_gradients(MaxPool2D(2), near_tie)
except GradientMismatch as error:
    print(error)

# %% [markdown]
# ## The test that guards the layer
#
# Three lines: a hypothesis strategy draws inputs (here of any small batch and size, 5x5 included), the
# kit checks them. In a test file the function is collected by pytest; here it is called directly.

# %%
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from minidl.testing import away_from_zero  # noqa: E402


@settings(max_examples=10, deadline=None)
@given(away_from_zero(st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(2, 5), st.integers(2, 5))))
def test_avg_pool(x):
    assert_layer_gradients(AvgPool2D(2), x)


test_avg_pool()
print("AvgPool2D passes on 10 drawn inputs")
