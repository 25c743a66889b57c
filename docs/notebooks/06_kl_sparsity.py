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
# # 06 · KL sparsity through the sigmoid
#
# The penalty $P = \sum_k \mathrm{KL}(\rho \,\Vert\, \hat\rho_k)$ on the mean activity $\hat\rho_k$ of each
# sigmoid unit has $\partial P/\partial h_{nk} = \frac1N (\hat\rho_k - \rho) / (\hat\rho_k (1 - \hat\rho_k))$,
# unbounded as a unit saturates. What moves the weights is the gradient on the pre-activation $u$, after the
# sigmoid's slope $h(1 - h)$: for a unit equally active on every sample, about $(\hat\rho_k - \rho)/N$, not
# fading, and exactly 0 only past the clip of $\hat\rho$ at $1 - 10^{-6}$. Summed over the batch it is at most
# $|\hat\rho_k - \rho|$ for any unit (see `docs/kl-sparsity.md`).

# %%
import matplotlib.pyplot as plt
import numpy as np

from minidl.gradcheck import check_function
from minidl.layers import Sigmoid, sigmoid
from minidl.losses import kl_sparsity

rho = 0.05

# %% [markdown]
# ## By hand
# Two samples, two units: $h = ((0.1, 0.5), (0.3, 0.5))$, so $\hat\rho = (0.2, 0.5)$.

# %%
h = np.array([[0.1, 0.5], [0.3, 0.5]])
rho_hat = h.mean(axis=0)
penalty_hand = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
dh_hand = np.broadcast_to((rho_hat - rho) / (rho_hat * (1 - rho_hat)) / len(h), h.shape)
du_hand = dh_hand * h * (1 - h)
value, dh = kl_sparsity(h, rho)
print(f"P = {penalty_hand:.6f} (minidl {value:.6f})\ndP/dh =\n{dh}\ndP/du =\n{du_hand}")
np.testing.assert_allclose(dh, dh_hand)

# %% [markdown]
# ## Checked by central differences, through the sigmoid
# The gradient with respect to the pre-activations u of the composed function $P(\sigma(u))$.

# %%
rng = np.random.default_rng(0)
u = rng.normal(0, 2, (5, 3))
layer = Sigmoid()
du = layer.backward(kl_sparsity(layer.forward(u), rho)[1])
errors = check_function(lambda: kl_sparsity(sigmoid(u), rho)[0], {"u": du}, {"u": u})
print(errors)
assert errors["u"] < 1e-7

# %% [markdown]
# ## The push against saturation
# Units equally active on all N = 4 samples, with pre-activation u from -16 to 16: $\partial P/\partial h$
# blows up at both ends, $\partial P/\partial u$ follows $(\hat\rho - \rho)/N$ and drops to exactly 0 where
# $|u| > \ln(10^6 - 1) \approx 13.8$.

# %%
n = 4
grid = np.linspace(-16, 16, 641)
for dtype in (np.float64, np.float32):
    h = layer.forward(np.tile(grid.astype(dtype), (n, 1)))
    dh = kl_sparsity(h, rho)[1]
    du = layer.backward(dh)[0].astype(float)
    inside = np.abs(grid) < np.log(1e6 - 1)
    expected = (h[0].astype(float) - rho) / n
    print(
        f"{dtype.__name__}: largest |dP/du| = {np.abs(du).max():.4f} (limit (1 - rho)/N = {(1 - rho) / n}), "
        f"worst relative gap to (rho_hat - rho)/N inside the clip = "
        f"{np.max(np.abs(du[inside] - expected[inside]) / np.abs(expected[inside])):.1e}, "
        f"outside: all zero = {bool(np.all(du[~inside] == 0))}"
    )
    if dtype is np.float64:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        axes[0].semilogy(grid, np.abs(dh[0]) + 1e-12)
        axes[0].set(title="|dP/dh| (per sample)", xlabel="pre-activation u")
        axes[1].plot(grid, du, label="dP/du")
        axes[1].plot(grid, expected, ":", label="(rho_hat - rho) / N")
        axes[1].set(title="dP/du (per sample)", xlabel="pre-activation u")
        axes[1].legend()
        fig.tight_layout()

# %% [markdown]
# ## A unit saturated on some samples only
# The exact form carries $h_{nk}(1 - h_{nk}) / (\hat\rho_k (1 - \hat\rho_k))$: the samples where the unit is
# saturated get almost nothing, the others carry the push, and one sample can then get far more than
# $(\hat\rho_k - \rho)/N$. Here N = 100, one sample at h = 0.5 and 99 at $1 - 10^{-4}$. What stays bounded
# is the sum over the batch: $\sum_n h_{nk}(1 - h_{nk}) \le N \hat\rho_k (1 - \hat\rho_k)$ (the mean of
# $h^2$ is at least the square of the mean), so the summed push is at most $|\hat\rho_k - \rho|$.

# %%
n = 100
h_uneven = np.array([0.5] + [1 - 1e-4] * (n - 1))[:, None]
h = layer.forward(np.log(h_uneven / (1 - h_uneven)))
du = layer.backward(kl_sparsity(h, rho)[1])
rho_hat = h.mean()
print(f"rho_hat = {rho_hat:.6f}, (rho_hat - rho)/N = {(rho_hat - rho) / n:.6f}")
print(f"dP/du on the sample at 0.5: {du[0, 0]:.6f}; on each saturated sample: {du[1, 0]:.2e}")
print(f"summed over the batch: {du.sum():.6f} <= rho_hat - rho = {rho_hat - rho:.6f}")
assert du[0, 0] > 40 * (rho_hat - rho) / n and abs(du.sum()) <= rho_hat - rho
