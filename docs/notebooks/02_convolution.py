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
# # 02 · Convolution as im2col + one matrix product, and its backward as col2im
#
# A convolution copies every receptive field into a column (im2col) and multiplies the whole batch's
# columns by the weight matrix at once. Its backward pass is three products and one fold (col2im), the
# adjoint of the copy. We write im2col and col2im as plain loops, hold minidl's kernels to them, test the
# adjoint identity, and check the layer by central differences (see `docs/convolution.md`).

# %%
import matplotlib.pyplot as plt
import numpy as np

from minidl.gradcheck import check_layer
from minidl.kernels import col2im, im2col
from minidl.layers import Conv2D
from minidl.layers.memory import as_images, images_last


def copies(shape, k, stride, pad, out_h, out_w):
    """Every (column entry, pixel) pair that im2col copies: cols[row, column] = x[n, c, iy, ix].

    Columns run over output positions, and within each over the images (column = p N + n): the order in
    which minidl's kernels store images, batch innermost ("images-last")."""
    n_images, channels, height, width = shape
    for n in range(n_images):
        for c in range(channels):
            for i in range(k):
                for j in range(k):
                    for oy in range(out_h):
                        for ox in range(out_w):
                            iy, ix = oy * stride + i - pad, ox * stride + j - pad
                            if 0 <= iy < height and 0 <= ix < width:  # outside the image: a zero
                                yield (c * k + i) * k + j, (oy * out_w + ox) * n_images + n, (n, c, iy, ix)


def im2col_loops(x, k, stride, pad, out_h, out_w):
    cols = np.zeros((x.shape[1] * k * k, x.shape[0] * out_h * out_w))
    for row, column, pixel in copies(x.shape, k, stride, pad, out_h, out_w):
        cols[row, column] = x[pixel]
    return cols


def col2im_loops(cols, shape, k, stride, pad, out_h, out_w):
    """The adjoint: the same pairs, each column entry added back onto the pixel it was copied from."""
    x = np.zeros(shape)
    for row, column, pixel in copies(shape, k, stride, pad, out_h, out_w):
        x[pixel] += cols[row, column]
    return x


# %% [markdown]
# ## By hand: the 4x4 image, 2x2 kernel, stride 2 of the docs page

# %%
x = np.arange(16.0).reshape(1, 1, 4, 4)
W = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
dy = np.array([[[[1.0, 2.0], [0.0, -1.0]]]])
cols = im2col_loops(x, 2, 2, 0, 2, 2)
W2 = W.reshape(1, -1)
Y = W2 @ cols  # (F, L N): one product for the whole batch
dY = dy.transpose(1, 2, 3, 0).reshape(1, -1)  # (F, OH, OW, N), as Y
dW = (dY @ cols.T).reshape(W.shape)  # as a dense layer whose input is cols
dx = col2im_loops(W2.T @ dY, x.shape, 2, 2, 0, 2, 2)
print("cols =\n", cols)
print("y =", Y.reshape(2, 2).tolist(), " dW =", dW[0, 0].tolist(), " db =", dY.sum())
print("dx =\n", dx[0, 0])

# %% [markdown]
# ## minidl's kernels and layer agree with the loops
# On random shapes with padding and stride, for the kernels; and the layer's forward and backward on the
# example above.

# %%
rng = np.random.default_rng(0)
for k, stride, pad, size in [(3, 1, 1, 5), (3, 2, 1, 6), (2, 2, 0, 4), (3, 3, 0, 7)]:
    images = rng.standard_normal((2, 3, size, size + 1))
    out_h, out_w = (size + 2 * pad - k) // stride + 1, (size + 1 + 2 * pad - k) // stride + 1
    fast = np.empty((3 * k * k, 2 * out_h * out_w))
    stored = images_last(images)  # the kernels take (C, H, W, N)
    im2col(stored, k, k, stride, pad, pad, out_h, out_w, fast)
    np.testing.assert_array_equal(fast, im2col_loops(images, k, stride, pad, out_h, out_w))
    c = rng.standard_normal(fast.shape)
    folded = np.empty_like(stored)
    col2im(c, k, k, stride, pad, pad, out_h, out_w, folded)
    np.testing.assert_allclose(as_images(folded), col2im_loops(c, images.shape, k, stride, pad, out_h, out_w))
    # the adjoint identity <im2col(x), c> = <x, col2im(c)>
    assert np.isclose(np.sum(fast * c), np.sum(stored * folded))
layer = Conv2D(1, 1, kernel_size=2, stride=2, padding="valid", dtype=np.float64)
layer.params["W"][...] = W
np.testing.assert_allclose(layer.forward(x), Y.reshape(1, 1, 2, 2))
np.testing.assert_allclose(layer.backward(dy), dx)
np.testing.assert_allclose(layer.grads["W"], dW)
print("kernels, adjoint identity and layer agree with the loops")

# %% [markdown]
# ## Checked by central differences

# %%
for stride, padding in [(1, "same"), (2, 1), (2, "valid")]:
    conv = Conv2D(2, 3, kernel_size=3, stride=stride, padding=padding, rng=rng).astype(np.float64)
    conv.params["b"][...] = rng.standard_normal(3)
    errors = check_layer(conv, rng.standard_normal((2, 2, 5, 6)), rng=1)
    print(f"stride {stride}, padding {padding!r}:", {name: f"{e:.1e}" for name, e in errors.items()})
    assert max(errors.values()) < 1e-7

# %% [markdown]
# ## Where a pixel's gradient comes from
# col2im of a matrix of ones counts, for every pixel, the receptive fields it sits in: the number of terms
# in its gradient's sum. A 3x3 kernel at stride 1 with "same" padding on a 6x6 image (left) gives 9 in the
# interior and fewer at the border; at stride 2 (right) the counts alternate.

# %%
fig, axes = plt.subplots(1, 2, figsize=(6.5, 3))
for ax, stride in zip(axes, (1, 2)):
    out = 6 // stride
    counts = col2im_loops(np.ones((9, out * out)), (1, 1, 6, 6), 3, stride, 1, out, out)[0, 0]
    ax.imshow(counts, cmap="viridis", vmin=0, vmax=9)
    for (r, c), value in np.ndenumerate(counts):
        ax.text(c, r, f"{value:.0f}", ha="center", va="center", color="w")
    ax.set_title(f"windows per pixel, stride {stride}")
    ax.set_xticks([]), ax.set_yticks([])
fig.tight_layout()
