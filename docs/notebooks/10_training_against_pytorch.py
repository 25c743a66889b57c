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
# # 10 · A whole training run against PyTorch
#
# Every layer of minidl is checked against PyTorch on its own (`tests/test_torch_parity.py`). Here the
# whole sparse autoencoder trains for 25 Adam steps in float64, and beside it a PyTorch model built from
# the same initial weights (`autoencoders/torch_twin.py`) trains on the same MNIST batches with the same
# loss (MSE + 1e-3 KL sparsity) and `torch.optim.Adam`. If every backward pass is right, the two runs are
# one run, to rounding. On the way we meet the one place where rounding alone could part them: the
# kink of ReLU at 0, which a freshly initialised network on MNIST hits exactly (`docs/winograd.md`,
# "The kink at zero"). PyTorch is optional: without it the notebook shows minidl's side only.

# %%
import matplotlib.pyplot as plt
import numpy as np

from autoencoders import SparseAutoencoder
from autoencoders.torch_twin import follow, torch_available
from experiments import datasets
from minidl.layers import Conv2D

try:
    images = datasets.load_mnist(fetch=False, log=lambda line: None)[0]
    source = "MNIST"
except Exception:  # no data on this machine: the offline stand-in, digits on a blank background too
    images = datasets.load_digits_28()[0]
    source = "the offline stand-in (scikit-learn's digits at 28x28)"
BATCH, STEPS = 32, 25
images = images[: BATCH * STEPS].astype(np.float64)
batches = [images[start : start + BATCH] for start in range(0, len(images), BATCH)]
print(f"{STEPS} batches of {BATCH} images from {source}; PyTorch available: {torch_available()}")


def sparse_model(algorithm: str = "auto") -> SparseAutoencoder:
    """The study's sparse autoencoder in float64, seed 0, with ``algorithm`` set on the convolutions that
    float32 runs on Winograd (the second and third; the first, with one input channel, is im2col's)."""
    model = SparseAutoencoder(rng=0).astype(np.float64)
    for layer in model.encoder.layers:
        if isinstance(layer, Conv2D) and layer._choose_path(np.float32) == "winograd":
            layer.algorithm = algorithm
    return model


# %% [markdown]
# ## The kink: pre-activations at exactly 0
# The biases start at 0 and MNIST's borders are blank, so wherever a convolution's 3x3 window sees only
# blank input its output is exactly 0, and so is its ReLU's input. ReLU's derivative there is 0 by
# convention (PyTorch's and minidl's). The plain im2col path computes those outputs as sums of
# products with 0: exactly 0. Winograd's path first mixes each 6x6 input tile by additions and
# subtractions, and a tile that straddles a stroke and the blank leaves residues of about 1e-17 of either
# sign in its blank outputs; the positive ones let the gradient through where PyTorch stops it.

# %%
x = batches[0]
for algorithm in ("im2col", "winograd"):
    encoder = sparse_model(algorithm).encoder
    h = x
    for layer in encoder.layers[:4]:  # conv 1, pool, ReLU, conv 2 (64 -> 128 channels)
        h = layer.forward(h, training=False)
    residues = h[(h != 0) & (np.abs(h) < 1e-12)]
    print(
        f"{algorithm:8s} second convolution: {np.mean(h == 0):6.1%} of its outputs exactly 0, "
        f"{residues.size / h.size:6.1%} within 1e-12 of 0 but not 0 "
        f"({np.count_nonzero(residues > 0):,} of these {residues.size:,} positive)"
    )
print("a float64 Conv2D computes on", sparse_model().encoder.layers[3]._choose_path(), "by default")

# %% [markdown]
# ## 25 steps side by side
# `follow` trains the model with minidl's Adam and its twin with `torch.optim.Adam` (learning rate 1e-3),
# batch by batch, and records each step's loss terms from both and how far each parameter is from
# PyTorch's after the step, as max |a - b| / max |b| over the array. We run it twice: with the default
# (float64 on im2col) and with the second and third convolutions on the Winograd path, as float32 runs them.

# %%
if torch_available():
    runs = {algorithm: follow(sparse_model(algorithm), batches, seed=0) for algorithm in ("auto", "winograd")}
    for algorithm, records in runs.items():
        worst = max(records[-1]["params"], key=records[-1]["params"].get)
        print(
            f"{algorithm:8s}: loss differs by at most {max(r['terms']['loss'] for r in records):.1e}; after step 1 "
            f"the worst parameter is off by {records[0]['worst_parameter']:.1e}, after step {STEPS} "
            f"{records[-1]['worst_parameter']:.1e} ({worst})"
        )
else:
    print("PyTorch is not installed: minidl's run alone (pip install torch to see both).")
    from minidl.optim import Adam

    model = sparse_model()
    optimizer, rng = Adam(model.parameters(), lr=1e-3), np.random.default_rng(0)
    runs = {"auto": []}
    for batch in batches:
        model.zero_grad()
        runs["auto"].append({"minidl": model.loss_and_grads(batch, rng)})
        optimizer.step()

# %% [markdown]
# ## The curves overlaid
# Left, the loss of each step: minidl's line and PyTorch's markers lie on each other. Right, how far
# apart the runs are (log scale): on the default path every loss and every parameter stays within a few
# units of float64's rounding (1e-16 to 1e-13); with Winograd in float64 a bias is off by twice its size
# after the first step (it moved the other way), and the runs stay apart.

# %%
steps = np.arange(1, STEPS + 1)
figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
default = runs["auto"]
left.plot(steps, [r["minidl"]["loss"] for r in default], label="minidl")
if "torch" in default[0]:
    left.plot(steps, [r["torch"]["loss"] for r in default], "o", mfc="none", label="PyTorch")
    for algorithm, style in (("auto", "-"), ("winograd", "--")):
        name = "default (im2col)" if algorithm == "auto" else "Winograd in float64"
        right.semilogy(
            steps, [max(r["worst_parameter"], 1e-17) for r in runs[algorithm]], style, label=f"{name}: worst parameter"
        )
        right.semilogy(
            steps, [max(r["terms"]["loss"], 1e-17) for r in runs[algorithm]], style, alpha=0.5, label=f"{name}: loss"
        )
    right.set_ylabel("relative difference from PyTorch")
    right.legend(fontsize=8)
else:
    right.text(0.5, 0.5, "PyTorch not installed", ha="center", transform=right.transAxes)
left.set_xlabel("Adam step")
left.set_ylabel("MSE + 1e-3 KL sparsity")
left.legend()
right.set_xlabel("Adam step")
figure.tight_layout()
plt.show()

# %% [markdown]
# ## The terms, step by step
# Each loss term of each step, minidl beside PyTorch, on the default path.

# %%
both = "torch" in default[0]
print(
    "step   mse (minidl)         "
    + ("mse (PyTorch)        " if both else "")
    + "KL (minidl)        "
    + ("KL (PyTorch)" if both else "")
)
for step, record in zip(steps, default):
    ours, theirs = record["minidl"], record.get("torch")
    row = (
        [ours["mse"], theirs["mse"], ours["kl_sparsity"], theirs["kl_sparsity"]]
        if both
        else [ours["mse"], ours["kl_sparsity"]]
    )
    print(f"{step:4d}  " + "  ".join(f"{value:.17g}".ljust(19) for value in row))
if both:
    assert max(r["worst_parameter"] for r in default) < 1e-9
    assert max(max(r["terms"].values()) for r in default) < 1e-9
