# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Transposed convolution
#
# A strided convolution is a linear map $A$ from big images to small ones, so it is a matrix. We write
# that matrix down by hand, show that `Conv2DTranspose` with the same weight computes $A^\top x$, see why
# it is a transpose and not an inverse, check when the adjoint identity holds (and when it does not), and
# gradient-check the layer (see `docs/transposed-convolution.md`).

# %%
import matplotlib.pyplot as plt
import numpy as np

from minidl.gradcheck import check_layer
from minidl.layers import Conv2D, Conv2DTranspose

rng = np.random.default_rng(0)

# %% [markdown]
# ## By hand: the matrix of a convolution
# One row per output pixel, one column per input pixel: row $(o_y, o_x)$ holds the weight at the input
# pixels its window covers, and a tap that falls in the padding is dropped. Plain loops, nothing from
# minidl. First the page's example: the 2x2 weight $W = \begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}$ at
# stride 2 without padding maps 4x4 to 2x2, and its windows do not overlap.


# %%
def convolution_matrix(weight, size, stride, pad_front, out):
    """(out * out, size * size): the one-channel convolution of a size x size image, row-major pixels."""
    k = len(weight)
    A = np.zeros((out * out, size * size))
    for oy in range(out):
        for ox in range(out):
            for i in range(k):
                for j in range(k):
                    row, column = oy * stride - pad_front + i, ox * stride - pad_front + j
                    if 0 <= row < size and 0 <= column < size:
                        A[oy * out + ox, row * size + column] = weight[i][j]
    return A


A = convolution_matrix([[1, 2], [3, 4]], size=4, stride=2, pad_front=0, out=2)  # (4, 16)
x = np.array([[1.0, 2.0], [0.0, -1.0]])
print("A =\n", A.astype(int))
print("A^T x, each input pixel stamping a scaled copy of W onto its own block:\n", (A.T @ x.ravel()).reshape(4, 4))
print("A (0, 1, ..., 15) =", A @ np.arange(16.0))

# %% [markdown]
# ## With minidl: the transposed layer is $A^\top$
# `Conv2DTranspose` stores its weight as (C_in, C_out, k, k), which for one channel each is the 2x2 array
# itself. Its forward pass is $A^\top x$ and its input gradient, for $\bar y = (0, 1, \dots, 15)$, is
# $A \bar y$: the numbers of the page.

# %%
transpose = Conv2DTranspose(1, 1, kernel_size=2, stride=2, padding="valid", dtype=np.float64)
transpose.params["W"][...] = [[[[1, 2], [3, 4]]]]
y = transpose.forward(x[None, None])
np.testing.assert_array_equal(y.reshape(16), A.T @ x.ravel())
dx = transpose.backward(np.arange(16.0).reshape(1, 1, 4, 4))
np.testing.assert_array_equal(dx.reshape(4), A @ np.arange(16.0))
print("Conv2DTranspose(x) == A^T x:", y[0, 0].tolist(), "\nits backward == A ybar:", dx[0, 0].tolist())

# %% [markdown]
# The study's geometry: a 3x3 kernel at stride 2, 3x3 -> 6x6. The transposed layer's `"same"` crops
# (k - 1) // 2 = 1 row and column in front, so it is the transpose of the convolution of a 6x6 image with
# one row and column of padding in front (the last window reaches one pixel past the image, also dropped).

# %%
weight = np.arange(1.0, 10.0).reshape(3, 3)
A = convolution_matrix(weight, size=6, stride=2, pad_front=1, out=3)  # (9, 36): small = A @ big
transpose = Conv2DTranspose(1, 1, kernel_size=3, stride=2, padding="same", dtype=np.float64)
transpose.params["W"][...] = weight
small = rng.standard_normal((1, 1, 3, 3))
np.testing.assert_allclose(transpose.forward(small).reshape(36), A.T @ small.reshape(9))
print("A has shape", A.shape, "and", int((A != 0).sum()), "non-zero entries; Conv2DTranspose(x) == A^T x")
fig, axes = plt.subplots(1, 2, figsize=(8, 3), gridspec_kw={"width_ratios": [4, 1.3]})
axes[0].imshow(A, cmap="viridis")
axes[0].set_title("A: 6x6 -> 3x3 (9 x 36)")
axes[1].imshow(transpose.forward(np.eye(9).reshape(9, 1, 3, 3)[4:5])[0, 0], cmap="viridis")
axes[1].set_title("A^T e_5: one stamp")
for ax in axes:
    ax.set_xticks([]), ax.set_yticks([])
fig.tight_layout()

# %% [markdown]
# ## A transpose, not an inverse, and not of `Conv2D("same")`
# $A$ has 9 rows for 36 unknowns: a stride-2 convolution keeps a quarter as many numbers as it reads, so
# no layer can invert it, and the transposed layer does not try: $A^\top A$ is far from the identity. It
# only sends each small pixel back as a weighted stamp, which is what the backward pass of the
# convolution needs.
#
# Nor is it the transpose of `Conv2D(padding="same")` at this stride. "same" pads $k - s = 1$ row in all,
# and puts it *behind* the image (0 in front, 1 behind), as TensorFlow does; the transposed layer crops its
# row in front. The two windows sit one pixel apart, so the matrices differ. `Conv2D(padding=1)` has the
# transposed layer's geometry.

# %%
A_same = convolution_matrix(weight, size=6, stride=2, pad_front=0, out=3)
print("rank of A:", np.linalg.matrix_rank(A), "of 36 | largest |A^T A - I|:", np.abs(A.T @ A - np.eye(36)).max())
print("A_same == A:", np.array_equal(A_same, A))
basis = np.eye(36).reshape(36, 1, 6, 6)
for padding, expected in ((1, A), ("same", A_same)):
    conv = Conv2D(1, 1, kernel_size=3, stride=2, padding=padding, dtype=np.float64)
    conv.params["W"][...] = weight
    np.testing.assert_array_equal(conv.forward(basis).reshape(36, 9).T, expected)
    print(f"Conv2D(padding={padding!r}) has the matrix {'A' if expected is A else 'A_same'}")
conv = Conv2D(1, 1, kernel_size=3, stride=2, padding=1, dtype=np.float64)
conv.params["W"][...] = weight

# %% [markdown]
# ## Backward of one is forward of the other
# The transposed layer's input gradient is the convolution of $\bar y$.

# %%
transpose.forward(small)
dy = rng.standard_normal((1, 1, 6, 6))
np.testing.assert_allclose(transpose.backward(dy), conv.forward(dy) - conv.params["b"][0])
print("Conv2DTranspose.backward(dy) == conv(dy)")

# %% [markdown]
# ## When is it an adjoint?
# $\langle \mathrm{conv}(x), y \rangle = \langle x, \mathrm{conv\_transpose}(y) \rangle$ holds for
# `Conv2D(padding=(k - 1) // 2)` when k is odd or the stride is at least 2, and for `Conv2D("same")` only at
# stride 1, for k <= 2, or for even k at stride 2. The table tries every kernel up to 5 and stride up to 3.


# %%
def adjoint(k, s, padding, size=3):
    t = Conv2DTranspose(2, 3, k, s, "same", rng=rng, dtype=np.float64)
    big = t.output_shape((2, size, size))
    c = Conv2D(3, 2, k, s, padding, dtype=np.float64)
    if c.output_shape(big) != (2, size, size):
        return "shape"
    c.params["W"][...] = t.params["W"]
    xb, ys = rng.standard_normal((1,) + big), rng.standard_normal((1, 2, size, size))
    return "yes" if np.isclose(np.sum(c.forward(xb) * ys), np.sum(xb * t.forward(ys))) else "no"


print("k s | padding=(k-1)//2 | 'same'")
for k in range(1, 6):
    for s in range(1, 4):
        print(f"{k} {s} | {adjoint(k, s, (k - 1) // 2):>16} | {adjoint(k, s, 'same')}")

# %% [markdown]
# ## Checked by central differences

# %%
for kernel, stride, padding in [(3, 2, "same"), (2, 2, "valid"), (3, 1, 1)]:
    layer = Conv2DTranspose(2, 3, kernel, stride, padding, rng=rng).astype(np.float64)
    layer.params["b"][...] = rng.standard_normal(3)
    errors = check_layer(layer, rng.standard_normal((2, 2, 3, 4)), rng=1)
    print(f"k={kernel} s={stride} padding={padding!r}:", {n: f"{e:.1e}" for n, e in errors.items()})
    assert max(errors.values()) < 1e-7
