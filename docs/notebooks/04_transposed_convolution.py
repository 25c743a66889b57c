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
# A strided convolution is a linear map $A$ from big images to small ones, so it is a matrix. We build
# that matrix column by column, show that `Conv2DTranspose` with the same weight computes $A^\top x$, check
# when the adjoint identity holds (and when it does not), and gradient-check the layer
# (see `docs/transposed-convolution.md`).

# %%
import matplotlib.pyplot as plt
import numpy as np

from minidl.gradcheck import check_layer
from minidl.layers import Conv2D, Conv2DTranspose

rng = np.random.default_rng(0)

# %% [markdown]
# ## By hand: the matrix of a convolution
# The study's geometry on one channel: a 3x3 kernel, stride 2, padding 1, mapping 6x6 to 3x3. Column i of
# $A$ is the convolution of the i-th unit image.

# %%
conv = Conv2D(1, 1, kernel_size=3, stride=2, padding=1, rng=rng, dtype=np.float64)
conv.params["W"][...] = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
basis = np.eye(36).reshape(36, 1, 6, 6)
A = conv.forward(basis).reshape(36, 9).T               # (9, 36): small = A @ big
print("A has shape", A.shape, "and", int((A != 0).sum()), "non-zero entries")

# %% [markdown]
# ## With minidl: the transposed layer is $A^\top$
# `Conv2DTranspose` stores its weight as (C_in, C_out, k, k), which for one channel each is the same array.
# Its `"same"` padding crops (k - 1) // 2 = 1 row in front and outputs 3 x 2 = 6 rows.

# %%
transpose = Conv2DTranspose(1, 1, kernel_size=3, stride=2, padding="same", dtype=np.float64)
transpose.params["W"][...] = conv.params["W"]
small = rng.standard_normal((1, 1, 3, 3))
np.testing.assert_allclose(transpose.forward(small).reshape(36), A.T @ small.reshape(9))
print("Conv2DTranspose(x) == A^T x")
fig, axes = plt.subplots(1, 2, figsize=(8, 3), gridspec_kw={"width_ratios": [4, 1.3]})
axes[0].imshow(A, cmap="viridis")
axes[0].set_title("A: 6x6 -> 3x3 (9 x 36)")
axes[1].imshow(transpose.forward(np.eye(9).reshape(9, 1, 3, 3)[4:5])[0, 0], cmap="viridis")
axes[1].set_title("A^T e_5: one stamp")
for ax in axes:
    ax.set_xticks([]), ax.set_yticks([])
fig.tight_layout()

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
