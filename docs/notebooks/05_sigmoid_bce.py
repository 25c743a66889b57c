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
# # 05 · Sigmoid and binary cross-entropy, float32 against float64
#
# The loss of a pixel with logit $x$ and target $t$ is $\ell = -[t \log p + (1 - t) \log(1 - p)]$ with
# $p = \sigma(x)$, and $\partial \ell / \partial x = p - t$. Computed from the logits it is exact at any $x$;
# computed from $p$ it breaks where $p$ rounds to 1. We do the small example by hand, then measure both
# paths in float32 against a float64 reference across the whole range (see `docs/sigmoid-and-bce.md`).

# %%
import matplotlib.pyplot as plt
import numpy as np

from minidl.gradcheck import check_function
from minidl.layers import sigmoid
from minidl.losses import bce, bce_with_logits

# %% [markdown]
# ## By hand
# Logits $(0, \ln 3)$ give $p = (1/2, 3/4)$; against targets $(1, 0)$, $\ell = (\ln 2, 2 \ln 2)$. "mean"
# divides the sum by $N D = 2$, and so does its gradient.

# %%
x, t = np.array([[0.0, np.log(3.0)]]), np.array([[1.0, 0.0]])
p = 1 / (1 + np.exp(-x))
loss_hand = -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum() / x.size
grad_hand = (p - t) / x.size
value, grad = bce_with_logits(x, t, "mean")
print(f"by hand L = {loss_hand:.6f}, dL/dx = {grad_hand.tolist()}; minidl L = {value:.6f}, dL/dx = {grad.tolist()}")
np.testing.assert_allclose(grad, grad_hand)

# %% [markdown]
# ## Checked by central differences (float64)

# %%
rng = np.random.default_rng(0)
logits, target = rng.normal(0, 3, (3, 4)), rng.random((3, 4))
for reduction in ("mean", "sum"):
    _, d = bce_with_logits(logits, target, reduction)
    errors = check_function(lambda: bce_with_logits(logits, target, reduction)[0], {"x": d}, {"x": logits})
    probabilities = sigmoid(logits)
    _, dp = bce(probabilities, target, reduction)
    errors_p = check_function(lambda: bce(probabilities, target, reduction)[0], {"p": dp}, {"p": probabilities})
    print(reduction, {**errors, **errors_p})
    assert max(errors.values()) < 1e-8 and max(errors_p.values()) < 1e-6

# %% [markdown]
# ## float32 against float64, for a confidently wrong pixel ($t = 0$)
# The reference is the logits form in float64: $\ell = x + \log(1 + e^{-x})$ and $\partial\ell/\partial x = \sigma(x)$.
# float32's sigmoid is exactly 1 from $x = 24 \ln 2 \approx 16.64$; the probability path's gradient is 0
# from about 15.5 (its clip at $1 - 10^{-7}$, which float32 rounds to $1 - 2^{-23}$), its value stuck at
# $-\log 10^{-7} \approx 16.12$ in float64 and at $-\log 2^{-23} = 23 \ln 2 \approx 15.94$ in float32.

# %%
xs = np.linspace(0.5, 30, 600)
reference_value = xs + np.log1p(np.exp(-xs))
reference_grad = 1 / (1 + np.exp(-xs))
paths = {}
for dtype in (np.float32, np.float64):
    for path in ("probabilities", "logits"):
        values, grads = [], []
        for value in xs:
            logit, zero = np.full((1, 1), value, dtype), np.zeros((1, 1), dtype)
            if path == "logits":
                loss, g = bce_with_logits(logit, zero, "sum")
            else:
                prob = sigmoid(logit)
                loss, dp = bce(prob, zero, "sum")
                g = dp * prob * (1 - prob)
            values.append(loss)
            grads.append(float(g[0, 0]))
        paths[f"{path}, {dtype.__name__}"] = (np.array(values), np.array(grads))
for name, (values, grads) in paths.items():
    dead = xs[grads == 0]
    print(
        f"{name:24}: gradient 0 from x = {dead[0]:.2f}" if dead.size else f"{name:24}: gradient never 0",
        f"| worst value error {np.max(np.abs(values - reference_value) / reference_value):.1e}",
    )
print(
    f"probability path's value at x = 30: float64 {paths['probabilities, float64'][0][-1]:.4f} "
    f"(-log 1e-7 = {-np.log(1e-7):.4f}), float32 {paths['probabilities, float32'][0][-1]:.4f} "
    f"(23 ln 2 = {23 * np.log(2):.4f})"
)
sigmoid_one = np.arange(16, 17, 1e-4, dtype=np.float32)
print(
    "float32 sigmoid is 1.0 from x =", sigmoid_one[np.argmax(sigmoid(sigmoid_one) == 1)], "; 24 ln 2 =", 24 * np.log(2)
)

fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for name, (values, grads) in paths.items():
    style = "--" if "float64" in name else "-"
    axes[0].plot(xs, values, style, label=name)
    axes[1].plot(xs, grads, style, label=name)
axes[0].plot(xs, reference_value, ":k", label="exact")
axes[0].set(title="loss of a pixel with target 0", xlabel="logit x")
axes[1].set(title="dL/dx", xlabel="logit x", ylim=(-0.05, 1.1))
axes[1].axvline(24 * np.log(2), color="gray", lw=0.8)
axes[1].legend(fontsize=7)
fig.tight_layout()
