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
# # 11 · Gradient flow you can see
#
# The loss says *that* a network stopped learning, not *where*. Here we watch backpropagation layer by layer
# (see `docs/gradient-flow.md`): for each layer the shapes, what it outputs, and how large the gradients are
# that pass back through it. Two autoencoders train for a few steps on 512 small digits (scikit-learn's 8x8
# digits resized to 28x28, so nothing is downloaded): a sparse one, which learns, and the study's contractive
# one, whose sigmoid code saturates -- and then no gradient reaches the encoder again.

# %%
import matplotlib.pyplot as plt
import numpy as np

from autoencoders import ContractiveAutoencoder, SparseAutoencoder, Trainer, TrainingConfig
from autoencoders.architectures import conv_decoder, conv_encoder
from experiments.datasets import load_digits_28
from minidl.flow import SATURATION, draw, table, trace
from minidl.layers import Sequential
from minidl.losses import mse

images, _ = load_digits_28()
x = images[:512]
batch = x[:64]


def build(kind):
    """The study's architecture, with fewer filters (16, 32, 64) and a 32-d code so that it trains in seconds."""
    rng = np.random.default_rng(0)
    encoder = conv_encoder(32, filters=(16, 32, 64), rng=rng)
    decoder = conv_decoder(32, filters=(64, 32, 16), rng=rng)
    return SparseAutoencoder(encoder, decoder) if kind == "sparse" else ContractiveAutoencoder(encoder, decoder)


def whole(model):
    """Encoder and decoder as one Sequential sharing their layers, to trace the reconstruction loss through both."""
    return Sequential(*model.encoder.layers, *model.decoder.layers)


# %% [markdown]
# ## One batch, layer by layer
# `trace` runs a training forward and backward pass of one batch and measures every layer: its input and
# output shapes, the mean and spread of its output, the fraction of *dead* ReLU units (zero for every image
# of the batch) or *saturated* sigmoid outputs (within 10⁻³ of 0 or 1), the norm of the gradient it
# passes down, ‖dL/dx‖, and of its parameters' gradients. Here the loss is the reconstruction error, traced
# through encoder and decoder. At initialisation every layer passes a gradient down (the first passes
# none: nothing needs the gradient of the images). Half of the decoder's ReLU units are already dead for the
# whole batch: the untrained encoder gives every image nearly the same code (the sigmoid's std is 0.03), so a
# decoder unit is on for all images or off for all; they come alive as the codes start to differ.

# %%
contractive = build("contractive")
print(table(trace(whole(contractive), batch, loss=lambda y: mse(y, batch))))

# %% [markdown]
# `draw` shows the same as a picture, as micrograd's `draw_dot` does for scalars: one box per layer, the
# input on top; the shade is the size of the gradient reaching the box's output (white: none).

# %%
figure = draw(whole(contractive), batch, loss=lambda y: mse(y, batch), title="contractive AE at initialisation")

# %% [markdown]
# ## Watching a run
# The Trainer records the same statistics at every step, cheaply, and keeps per epoch their means in
# `history[epoch]["gradient_flow"]`; the first epoch also keeps its *trace*, the means over ten consecutive
# parts of its steps. Three epochs of 16 steps for each model:

# %%
histories, models = {}, {}
for kind in ("sparse", "contractive"):
    models[kind] = build(kind)
    trainer = Trainer(models[kind], TrainingConfig(epochs=3, batch_size=32), progress=False)
    histories[kind] = trainer.fit(x)

first = histories["contractive"][0]["gradient_flow"]
print("steps per part of epoch 1:", first["trace_steps"])
print(
    "the code's parameters and activation in one record:",
    {
        name: sorted(first["parameters" if name.endswith("W") else "activations"][name])
        for name in ("encoder.dense_1.W", "encoder.sigmoid_1")
    },
)

for kind, history in histories.items():
    print(f"\n{kind}: epoch, saturated fraction of the code, ||dL/dW|| of the encoder's dense layer and first conv")
    for record in history:
        flow = record["gradient_flow"]
        print(
            f"  {record['epoch']}  {flow['activations']['encoder.sigmoid_1']['saturated_fraction']:6.1%}  "
            f"{flow['parameters']['encoder.dense_1.W']['grad_norm']:.2e}  "
            f"{flow['parameters']['encoder.conv2d_1.W']['grad_norm']:.2e}"
        )


# %% [markdown]
# Plotted per layer: the first epoch from its trace, then one point per epoch. The symmetric log axis is linear
# near 0, so a gradient that is exactly 0 is drawn at 0.


# %%
def positions_and_values(history, group, name, key):
    xs, ys = [], []
    for record in history:
        flow, start = record["gradient_flow"], record["epoch"] - 1
        if "trace_steps" in flow:
            ends = np.cumsum(flow["trace_steps"])
            xs += list(start + (ends - np.asarray(flow["trace_steps"]) / 2) / ends[-1])
            ys += flow[group][name][f"{key}_trace"]
        else:
            xs.append(start + 0.5)
            ys.append(flow[group][name][key])
    return xs, [np.nan if y is None else y for y in ys]


fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True)
for column, (kind, history) in enumerate(histories.items()):
    weights = [name for name in history[0]["gradient_flow"]["parameters"] if name.endswith(".W")]
    for colour, name in zip(plt.cm.viridis(np.linspace(0, 0.9, len(weights))), weights):
        axes[0, column].plot(
            *positions_and_values(history, "parameters", name, "grad_norm"), ".-", color=colour, label=name[:-2]
        )
    axes[0, column].set_yscale("symlog", linthresh=1e-7)
    axes[0, column].set_title(kind)
    for name, statistics in history[0]["gradient_flow"]["activations"].items():
        key = "dead_fraction" if "dead_fraction" in statistics else "saturated_fraction"
        axes[1, column].plot(
            *positions_and_values(history, "activations", name, key),
            ".-" if key == "dead_fraction" else ".--",
            label=f"{name} ({key.split('_')[0]})",
        )
    axes[1, column].set_xlabel("epoch")
axes[0, 0].set_ylabel("||dL/dW|| per batch")
axes[1, 0].set_ylabel("fraction of units")
axes[0, 1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
axes[1, 1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
fig.tight_layout()

# %% [markdown]
# ## After the collapse
# The same batch through the trained contractive model: the code's sigmoid is saturated, its slope y (1 - y)
# is about 0, and below it ‖dL/dx‖ and every encoder gradient are some ten orders of magnitude below the
# sparse model's -- the encoder no longer learns, and the decoder can only learn one image for all codes
# (docs/contractive.md tells why nothing pulls the units back).

# %%
for kind in ("contractive", "sparse"):
    flows = trace(whole(models[kind]), batch, loss=lambda y: mse(y, batch))
    code = next(flow for flow in flows if flow.kind == "Sigmoid")
    below = [flow for flow in flows[: flows.index(code)] if flow.grad_norms]
    print(
        f"{kind}: saturated fraction of the code {code.forward['saturated_fraction']:.1%} "
        f"(threshold {SATURATION}); ||dL/dx|| below it {code.dx_norm:.2e}; "
        f"largest encoder weight gradient {max(flow.grad_norms['W'] for flow in below):.2e}"
    )
figure = draw(whole(models["contractive"]), batch, loss=lambda y: mse(y, batch), title="contractive AE after 48 steps")
