"""How much max-pooling's tie rule changes the weight gradients of the study's MNIST encoder.

At a tie the maximum has no derivative and a rule must pick one. minidl (like PyTorch and TensorFlow)
sends each window's gradient to its *first* maximum. Two other rules are common in hand-written code:
*split* it equally among the tied positions, or *copy* it whole to each of them. This script counts the
tied windows of every pooling layer on real MNIST batches and measures, for each convolution below a
pooling layer, ``||g_rule - g_first|| / ||g_first||`` for its weight and bias gradients, on the study's
plain autoencoder at initialisation and after some Adam steps.

    .venv/bin/python benchmarks/maxpool_ties.py [--steps 60] [--batch-size 128] [--seed 0]

It needs the MNIST files (``MINIDL_DATA`` or the user cache); it is a measurement, not a test.
"""

from __future__ import annotations

import argparse

import numpy as np

from autoencoders.models import Autoencoder
from experiments.datasets import load_mnist
from minidl.layers import Conv2D, MaxPool2D
from minidl.optim import Adam

RULES = ("first", "split", "copy")


class TieRoutingMaxPool2D(MaxPool2D):
    """MaxPool2D whose backward routes ties by ``rule``: "first" (minidl's), "split" or "copy"."""

    rule = "first"

    def forward(self, x, training=True):
        y = super().forward(x, training)
        if training:
            self._cache["x"] = x
        return y

    def backward(self, dy):
        if self.rule == "first":
            return super().backward(dy)
        x = self._cached()["x"]
        n, c, height, width = x.shape
        p = self.pool_size
        oh, ow = height // p, width // p
        windows = x[:, :, :oh * p, :ow * p].reshape(n, c, oh, p, ow, p)
        tied = windows == windows.max(axis=(3, 5), keepdims=True)
        share = 1.0 / tied.sum(axis=(3, 5), keepdims=True) if self.rule == "split" else 1.0
        dx = np.zeros_like(x, dtype=dy.dtype)
        dx[:, :, :oh * p, :ow * p] = (tied * share * dy[:, :, :, None, :, None]).reshape(n, c, oh * p, ow * p)
        return dx


def tie_statistics(pools: list[TieRoutingMaxPool2D]) -> list[tuple[float, float]]:
    """Per pooling layer: the fraction of windows with a tie, and of those whose maximum is positive
    (after a ReLU only those pass a gradient)."""
    result = []
    for pool in pools:
        x = pool._cached()["x"]
        n, c, height, width = x.shape
        p = pool.pool_size
        windows = x[:, :, :height // p * p, :width // p * p].reshape(n, c, height // p, p, width // p, p)
        maximum = windows.max(axis=(3, 5), keepdims=True)
        tied = (windows == maximum).sum(axis=(3, 5)) > 1
        result.append((float(tied.mean()), float((tied & (maximum[:, :, :, 0, :, 0] > 0)).mean())))
    return result


def gradients_by_rule(model: Autoencoder, pools, x: np.ndarray, rng) -> dict[str, dict[str, np.ndarray]]:
    convs = [layer for layer in model.encoder.layers if isinstance(layer, Conv2D)]
    result = {}
    for rule in RULES:
        for pool in pools:
            pool.rule = rule
        model.zero_grad()
        model.loss_and_grads(x, rng)
        result[rule] = {f"conv{i + 1}.{name}": conv.grads[name].copy()
                        for i, conv in enumerate(convs) for name in ("W", "b")}
    for pool in pools:
        pool.rule = "first"
    return result


def report(model, pools, batches, rng, label: str) -> None:
    changes = {rule: {} for rule in RULES[1:]}
    ties = []
    for x in batches:
        grads = gradients_by_rule(model, pools, x, rng)
        ties.append(tie_statistics(pools))
        for rule in RULES[1:]:
            for name, first in grads["first"].items():
                change = np.linalg.norm(grads[rule][name] - first) / np.linalg.norm(first)
                changes[rule].setdefault(name, []).append(change)
    print(f"\n### {label}\n")
    print("| pooling layer | windows with a tie | tied windows with a positive maximum |")
    print("|---|---|---|")
    for i, (tied, positive) in enumerate(np.mean(ties, axis=0)):
        print(f"| pool{i + 1} | {tied:.1%} | {positive:.1%} |")
    print("\n| gradient | split: relative change | copy: relative change |")
    print("|---|---|---|")
    for name in changes["split"]:
        split, copy = np.median(changes["split"][name]), np.median(changes["copy"][name])
        print(f"| {name} | {100 * split:.2g}% | {100 * copy:.3g}% |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="Adam steps between the two measurements")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=4, help="batches measured (the median is shown)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    images = load_mnist(fetch=False)[0]
    model = Autoencoder(rng=rng)
    layers = model.encoder.layers
    for i, layer in enumerate(layers):
        if isinstance(layer, MaxPool2D):
            layers[i] = TieRoutingMaxPool2D(layer.pool_size)
    pools = [layer for layer in layers if isinstance(layer, TieRoutingMaxPool2D)]
    measured = [images[rng.choice(len(images), args.batch_size, replace=False)] for _ in range(args.batches)]
    print(f"Study's plain autoencoder (linear latent), seed {args.seed}, batches of {args.batch_size} MNIST "
          "training images; median over batches.")
    report(model, pools, measured, rng, "At initialisation (every bias 0)")
    optimizer = Adam(list(model.parameters()), lr=1e-3)
    for _ in range(args.steps):
        model.zero_grad()
        model.loss_and_grads(images[rng.choice(len(images), args.batch_size, replace=False)], rng)
        optimizer.step()
    report(model, pools, measured, rng, f"After {args.steps} Adam steps (lr 1e-3)")


if __name__ == "__main__":
    main()
