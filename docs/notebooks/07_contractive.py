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
# # 07 · The contractive penalty: closed form, exact, Hutchinson
#
# $P = \frac1N \sum_n \lVert J_n \rVert_F^2$ with $J_n$ the encoder's Jacobian at sample n. minidl computes it
# three ways: Rifai's closed form (the Jacobian with respect to the last dense layer's input only), exactly
# by one tangent pass per input dimension, and by Hutchinson's unbiased estimate $E\lVert J v\rVert^2$ with
# Gaussian probes. We check the small example by hand, compare the three on a two-layer encoder, measure
# Hutchinson's bias and variance against the number of probes, and gradient-check the penalty
# (see `docs/contractive.md`).

# %%
import matplotlib.pyplot as plt
import numpy as np

from minidl.contractive import contractive_penalty
from minidl.gradcheck import check_function
from minidl.layers import Dense, Sequential, Sigmoid

# %% [markdown]
# ## By hand
# $x = (0, 0)$, $W = (3, 4)^\top$, $b = \ln 3$: $h = 3/4$, $s = h(1 - h) = 3/16$, $c = \lVert W \rVert^2 = 25$,
# $P = s^2 c = 225/256$. Directly, $\partial P/\partial W = 2 s^2 W$. Through the code,
# $\partial P/\partial h = 2 s (1 - 2h) c$ (the slope s itself depends on h), times the slope s gives
# $\partial P/\partial b$, which also reaches W through $x$ (nothing here, since $x = 0$) and the input as
# $\partial P/\partial x = \partial P/\partial b \; W^\top$.

# %%
W, b = np.array([3.0, 4.0]), np.log(3.0)
h = 1 / (1 + np.exp(-b))  # x = 0, so u = b
s, c = h * (1 - h), np.sum(W**2)
dh = 2 * s * (1 - 2 * h) * c
by_hand = {"P": s**2 * c, "dW": 2 * s**2 * W, "db": dh * s, "dx": dh * s * W}
print("by hand:", {name: np.round(value, 8).tolist() for name, value in by_hand.items()}, "| dP/dh =", dh)

encoder = Sequential(Dense(2, 1), Sigmoid()).astype(np.float64)
encoder[0].params["W"][...] = W[:, None]
encoder[0].params["b"][...] = b
x = np.zeros((1, 2))
for mode in ("closed_form", "exact"):
    encoder.zero_grad()
    encoder.forward(x)
    value, dx = contractive_penalty(encoder, x, mode)
    minidl = {"P": value, "dW": encoder[0].grads["W"].ravel(), "db": encoder[0].grads["b"][0], "dx": dx[0]}
    print(f"{mode:11}:", {name: np.round(value, 8).tolist() for name, value in minidl.items()})
    for name, expected in by_hand.items():
        np.testing.assert_allclose(minidl[name], expected, rtol=1e-12)

# %% [markdown]
# ## Three modes on a two-layer encoder
# With two sigmoid layers the closed form measures the Jacobian with respect to the hidden layer, not the
# input, so it differs from the exact value; the exact mode agrees with a Jacobian assembled column by column
# from central differences.

# %%
rng = np.random.default_rng(0)
encoder = Sequential(Dense(6, 5, rng=rng), Sigmoid(), Dense(5, 3, rng=rng), Sigmoid()).astype(np.float64)
x = rng.standard_normal((4, 6))
encoder.forward(x)
closed = contractive_penalty(encoder, x, "closed_form", backward=False)[0]
encoder.forward(x)
exact = contractive_penalty(encoder, x, "exact", backward=False)[0]
h = 1e-6
jacobians = np.stack(
    [
        (encoder.forward(x + h * e, training=False) - encoder.forward(x - h * e, training=False)) / (2 * h)
        for e in np.eye(6)
    ],
    axis=-1,
)  # (N, K, D)
finite_difference = float(np.mean(np.sum(jacobians**2, axis=(1, 2))))
print(f"closed form {closed:.6f} | exact {exact:.6f} | central differences {finite_difference:.6f}")
assert abs(exact - finite_difference) < 1e-8

# %% [markdown]
# ## Hutchinson: bias and variance against the number of probes
# For Gaussian probes the estimate of one sample's $\lVert J_n \rVert_F^2$ has variance
# $2 \lVert J_n^\top J_n \rVert_F^2 / n_{\text{probes}}$, and the batch mean divides by $N^2$ and sums over n.
# We draw 400 estimates for each number of probes: the mean stays on the exact value (no bias) and the
# variance follows the formula.

# %%
theory_per_probe = float(np.sum([2 * np.sum((J.T @ J) ** 2) for J in jacobians])) / len(x) ** 2
probes = [1, 2, 4, 8, 16, 32]
means, variances = [], []
for n_probes in probes:
    estimates = []
    for _ in range(400):
        encoder.forward(x)
        estimates.append(contractive_penalty(encoder, x, "hutchinson", n_probes=n_probes, rng=rng, backward=False)[0])
    means.append(np.mean(estimates))
    variances.append(np.var(estimates, ddof=1))
    print(
        f"{n_probes:2d} probes: mean - exact = {means[-1] - exact:+.2e} (standard error "
        f"{np.sqrt(variances[-1] / 400):.2e}), variance {variances[-1]:.2e} "
        f"vs formula {theory_per_probe / n_probes:.2e}"
    )
    assert abs(means[-1] - exact) < 5 * np.sqrt(variances[-1] / 400)
fig, ax = plt.subplots(figsize=(4.5, 3.2))
ax.loglog(probes, variances, "o", label="measured (400 estimates)")
ax.loglog(probes, [theory_per_probe / p for p in probes], "-", label="2 ||J^T J||_F^2 / (N^2 n_probes)")
ax.set(xlabel="probes per sample", ylabel="variance of the estimate", title="Hutchinson's estimator")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## The penalty's parameter gradient, checked by central differences
# The exact mode's gradient has two paths: through the linear maps the tangents cross, and through the
# sigmoids' slopes, whose second derivative sends a gradient into the primal pass.

# %%
encoder.zero_grad()
encoder.forward(x)
contractive_penalty(encoder, x, "exact")
analytic = {name: encoder.grads[name].copy() for name in encoder.params}


def penalty():
    encoder.forward(x)
    return contractive_penalty(encoder, x, "exact", backward=False)[0]


errors = check_function(penalty, analytic, encoder.params)
print({name: f"{error:.1e}" for name, error in errors.items()})
assert max(errors.values()) < 1e-6
