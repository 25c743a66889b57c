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
# # 03 · Max pooling and ties
#
# Each output of a 2x2 max-pool is the largest of four inputs, so its gradient goes to that one input.
# When several inputs tie, the maximum has no derivative and a rule must choose: minidl (like PyTorch)
# sends it to the first maximum in row-major order. We route by hand, compare the rules "first", "split"
# and "copy", look at what central differences measure at a tie, and count ties on digit images
# (see `docs/max-pooling.md`).

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from minidl.gradcheck import check_layer, numerical_gradient
from minidl.layers import Conv2D, MaxPool2D, ReLU

x = np.array([[[[1, 3, 2, 2], [4, 0, 2, 1], [0, 5, 7, 7], [6, 1, 7, 0]]]], dtype=np.float64)
dy = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])

# %% [markdown]
# ## By hand: find each window's first maximum, send the gradient there

# %%
dx_hand = np.zeros_like(x)
for oy in range(2):
    for ox in range(2):
        window = x[0, 0, 2 * oy : 2 * oy + 2, 2 * ox : 2 * ox + 2]
        i, j = divmod(int(np.argmax(window)), 2)  # np.argmax: the first maximum, row-major
        dx_hand[0, 0, 2 * oy + i, 2 * ox + j] += dy[0, 0, oy, ox]
print(dx_hand[0, 0])

# %% [markdown]
# ## With minidl, and the other two rules

# %%
layer = MaxPool2D(2)
print("y =", layer.forward(x)[0, 0].tolist())
first = layer.backward(dy)
np.testing.assert_array_equal(first, dx_hand)
windows = x[0, 0].reshape(2, 2, 2, 2).transpose(0, 2, 1, 3)
tied = windows == windows.max(axis=(2, 3), keepdims=True)
shares = tied / tied.sum(axis=(2, 3), keepdims=True)  # 1 / (number of tied maxima) at each of them
rules = {
    "first": first[0, 0],
    "split": (shares * dy[0, 0][:, :, None, None]).transpose(0, 2, 1, 3).reshape(4, 4),
    "copy": (tied * dy[0, 0][:, :, None, None]).transpose(0, 2, 1, 3).reshape(4, 4),
}

# %% [markdown]
# ## What a tie's derivatives are
# Raise one tied input by $\delta$ and the maximum rises by $\delta$; lower it and the maximum stays; raise
# all tied inputs together and it rises by $\delta$. A rule is right along that last direction when its
# weights sum to one: "first" and "split" are, "copy" predicts three times the change here.

# %%
delta = 1e-3
top_right = [(0, 2), (0, 3), (1, 2)]  # the three 2s of the top-right window


def output_change(moved):
    shifted = x.copy()
    for r, c in moved:
        shifted[0, 0, r, c] += delta
    return float((layer.forward(shifted, training=False) - layer.forward(x, training=False))[0, 0, 0, 1]) / delta


print(f"raise one tied input: {output_change(top_right[:1]):.3f}, raise all three: {output_change(top_right):.3f}")
for name, routed in rules.items():
    predicted = sum(routed[r, c] for r, c in top_right) / dy[0, 0, 0, 1]
    print(f"{name:5}: predicted change when all three rise = {predicted:.1f}")

# %% [markdown]
# A central difference at a tie measures neither rule: $+h$ raises the maximum, $-h$ does not, so it sees
# half the gradient whatever the number of tied inputs. Gradient checks therefore use distinct values.

# %%
probe = x.copy()  # perturbed in place by numerical_gradient
numerical = numerical_gradient(lambda: float(np.sum(layer.forward(probe, training=False) * dy)), probe)
print("central difference:\n", numerical[0, 0].round(6))
distinct = np.random.default_rng(0).permutation(36).reshape(1, 1, 6, 6).astype(np.float64)
errors = check_layer(MaxPool2D(2), distinct, rng=1)
print("check_layer on distinct values:", errors)
assert errors["x"] < 1e-8

# %% [markdown]
# ## Ties on images
# On scikit-learn's 8x8 digits, blank background ties every window it fills. After a convolution with a zero
# bias and a ReLU the blank regions are exactly 0, so they tie too (the picture marks tied windows).

# %%
digits = load_digits().images[:64, None].astype(np.float64) / 16
conv = Conv2D(1, 4, kernel_size=3, padding="same", rng=np.random.default_rng(0)).astype(np.float64)
features = ReLU().forward(conv.forward(digits))


def tied_windows(a):
    w = a.reshape(a.shape[0], a.shape[1], a.shape[2] // 2, 2, a.shape[3] // 2, 2)
    return (w == w.max(axis=(3, 5), keepdims=True)).sum(axis=(3, 5)) > 1


print(f"tied windows: digits {tied_windows(digits).mean():.0%}, after conv + ReLU {tied_windows(features).mean():.0%}")
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
axes[0].imshow(digits[0, 0], cmap="gray_r")
axes[0].set_title("a digit")
axes[1].imshow(tied_windows(digits)[0, 0], cmap="Reds", vmin=0, vmax=1)
axes[1].set_title("its tied 2x2 windows")
for ax in axes:
    ax.set_xticks([]), ax.set_yticks([])
fig.tight_layout()
