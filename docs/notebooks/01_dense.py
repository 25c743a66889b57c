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
# # 01 · The dense layer
#
# $y = x W + b$ for a batch $x$ of shape (N, D), $W$ (D, M), $b$ (M,). We compute its backward pass by
# hand with loops, then with minidl, then check it by central differences, and finally look at its
# Jacobian in this site's convention: $J = \partial y / \partial x = W^\top$ acts on column vectors, so a
# tangent row $t$ maps to $t W$ and a cotangent $\bar y$ to $\bar y W^\top$ (see `docs/dense.md`).

# %%
import matplotlib.pyplot as plt
import numpy as np

from minidl.gradcheck import check_layer
from minidl.layers import Dense

x = np.array([[1.0, 2.0], [0.0, 1.0]])  # N = 2 samples, D = 2 features
W = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]])  # D = 2 -> M = 3
b = np.array([0.0, 1.0, 2.0])
dy = np.array([[1.0, -1.0, 2.0], [0.0, 1.0, 0.0]])  # dL/dy, as a loss upstream would send it

# %% [markdown]
# ## By hand: one loop per index of the chain rule
# $y_{nj} = \sum_i x_{ni} W_{ij} + b_j$, so $\bar W_{ij} = \sum_n \bar y_{nj} x_{ni}$,
# $\bar b_j = \sum_n \bar y_{nj}$ and $\bar x_{ni} = \sum_j \bar y_{nj} W_{ij}$.

# %%
N, D = x.shape
M = W.shape[1]
y_hand = np.zeros((N, M))
dW_hand, db_hand, dx_hand = np.zeros((D, M)), np.zeros(M), np.zeros((N, D))
for n in range(N):
    for j in range(M):
        y_hand[n, j] = b[j] + sum(x[n, i] * W[i, j] for i in range(D))
        db_hand[j] += dy[n, j]
        for i in range(D):
            dW_hand[i, j] += dy[n, j] * x[n, i]
            dx_hand[n, i] += dy[n, j] * W[i, j]
print("y  =", y_hand.tolist())
print("dx =", dx_hand.tolist())
print("dW =", dW_hand.tolist())
print("db =", db_hand.tolist())

# %% [markdown]
# ## With minidl
# `Dense.backward` returns $\bar x = \bar y W^\top$ and *adds* $\bar W = x^\top \bar y$ and $\bar b$ into `grads`.

# %%
layer = Dense(2, 3, dtype=np.float64)
layer.params["W"][...] = W
layer.params["b"][...] = b
np.testing.assert_allclose(layer.forward(x), y_hand)
np.testing.assert_allclose(layer.backward(dy), dx_hand)
np.testing.assert_allclose(layer.grads["W"], dW_hand)
np.testing.assert_allclose(layer.grads["b"], db_hand)
print("minidl agrees with the loops")

# %% [markdown]
# ## Checked by central differences
# `check_layer` uses the scalar $L = \sum y \odot r$ for a random $r$, whose $\bar y$ is $r$, and compares
# every gradient with central differences in float64.

# %%
rng = np.random.default_rng(0)
big = Dense(5, 4, rng=rng).astype(np.float64)
errors = check_layer(big, rng.standard_normal((3, 5)), rng=1)
print({name: f"{error:.1e}" for name, error in errors.items()})
assert max(errors.values()) < 1e-8

# %% [markdown]
# ## The Jacobian, column by column
# Pushing the unit tangents $e_1, \dots, e_D$ through `jvp` gives $e_i W$, the rows of $W$, which are the
# columns of $J = W^\top$. The picture shows $W$ and the $J$ assembled from tangents side by side.

# %%
layer.forward(x)
tangents = np.eye(D)[:, None, :].repeat(N, axis=1)  # (K = D, N, D): e_i for every sample
columns = layer.jvp(tangents)[:, 0, :]  # (D, M): row i is J e_i
J = columns.T
np.testing.assert_allclose(J, W.T)
fig, axes = plt.subplots(1, 2, figsize=(6, 2.6))
for ax, matrix, title in zip(axes, (W, J), ("W  (D x M)", "J = dy/dx = W^T  (M x D)")):
    ax.imshow(matrix, cmap="coolwarm", vmin=-2, vmax=2)
    for (r, c), value in np.ndenumerate(matrix):
        ax.text(c, r, f"{value:g}", ha="center", va="center")
    ax.set_title(title)
    ax.set_xticks([]), ax.set_yticks([])
fig.tight_layout()
