"""A PyTorch twin of each autoencoder, to train both side by side and compare their trajectories.

The twin is built from a model's own weights (copied, in float64) and computes the same loss with
PyTorch's layers, losses and autograd; :func:`follow` trains the model with minidl's :class:`~minidl.optim.Adam`
and the twin with ``torch.optim.Adam`` on the same batches, step by step, and records both.

Randomness is shared by drawing it in NumPy: the model and the twin each get a generator of the same
seed and draw the same arrays in the same order (the VAE's eps, ``rng.standard_normal(mu.shape)``;
Hutchinson's probes, ``rng.standard_normal((n_probes,) + x.shape)``), so both see identical noise.

PyTorch is not a requirement of the project: it is imported inside the functions that use it, and
:func:`torch_available` says whether it is there.
"""

from __future__ import annotations

import numpy as np

from autoencoders.models import ContractiveAutoencoder, SparseAutoencoder, VariationalAutoencoder
from minidl.layers import (
    Conv2D,
    Conv2DTranspose,
    Dense,
    Flatten,
    Identity,
    MaxPool2D,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Tanh,
    ZeroPad2D,
)
from minidl.losses import LOGVAR_BOUND
from minidl.optim import Adam


def torch_available() -> bool:
    """Whether PyTorch can be imported (it is, when it can)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _torch():
    import torch

    return torch


def _layer_function(layer, weights: dict):
    """The PyTorch function of one minidl layer, its parameters taken from ``weights`` (key -> tensor)."""
    torch = _torch()
    F = torch.nn.functional
    if isinstance(layer, Dense):
        return lambda x: x @ weights["W"] + weights["b"]
    if isinstance(layer, Conv2D):
        if layer.padding == "same":
            if layer.stride != 1 or layer.kernel_size % 2 == 0:
                raise ValueError(f"{layer!r}: the twin supports padding='same' only for odd kernels at stride 1.")
            padding = layer.kernel_size // 2
        else:
            padding = 0 if layer.padding == "valid" else layer.padding
        return lambda x: F.conv2d(x, weights["W"], weights["b"], stride=layer.stride, padding=padding)
    if isinstance(layer, Conv2DTranspose):
        if layer.padding == "same":
            padding, output_padding = (layer.kernel_size - 1) // 2, layer.stride - 1
        else:
            padding, output_padding = (0 if layer.padding == "valid" else layer.padding), 0
        return lambda x: F.conv_transpose2d(
            x, weights["W"], weights["b"], stride=layer.stride, padding=padding, output_padding=output_padding
        )
    if isinstance(layer, MaxPool2D):
        return lambda x: F.max_pool2d(x, layer.pool_size)
    if isinstance(layer, ZeroPad2D):
        return lambda x: F.pad(x, (layer.left, layer.right, layer.top, layer.bottom))
    if isinstance(layer, Flatten):
        return lambda x: x.reshape(x.shape[0], -1)
    if isinstance(layer, Reshape):
        return lambda x: x.reshape((x.shape[0],) + layer.shape)
    simple = {ReLU: torch.relu, Sigmoid: torch.sigmoid, Tanh: torch.tanh, Identity: lambda x: x}
    if type(layer) in simple:
        return simple[type(layer)]
    raise TypeError(f"The PyTorch twin has no counterpart for {type(layer).__name__}.")


class TorchTwin:
    """The PyTorch float64 counterpart of a model, from the model's current weights.

    Attributes
    ----------
    params : dict of name -> torch.Tensor
        Leaf tensors named as ``model.parameters()`` names them, same shapes and layouts
        (Dense ``W`` is (in, out), Conv2D ``W`` (F, C, kH, kW), Conv2DTranspose ``W`` (C_in, C_out, kH, kW)).
    """

    def __init__(self, model) -> None:
        torch = _torch()
        self.model = model
        names = {id(param): name for name, param, _ in model.parameters()}
        self.params = {
            name: torch.tensor(np.array(param, dtype=np.float64), requires_grad=True)
            for name, param, _ in model.parameters()
        }
        self.networks, self._weights = {}, {}
        for network_name, network in model.networks.items():
            layers = network.layers if isinstance(network, Sequential) else [network]
            for layer in layers:
                self._weights[id(layer)] = {key: self.params[names[id(value)]] for key, value in layer.params.items()}
            self.networks[network_name] = [_layer_function(layer, self._weights[id(layer)]) for layer in layers]

    def run(self, network: str, x):
        """x through the named network's layers."""
        for function in self.networks[network]:
            x = function(x)
        return x

    def loss_terms(self, x: np.ndarray, rng: np.random.Generator) -> dict:
        """The model's loss terms as PyTorch scalars (``"loss"`` ready for ``backward()``), drawing any
        noise from ``rng`` as the model does."""
        torch = _torch()
        x_np = np.asarray(x, dtype=np.float64)
        x = torch.tensor(x_np)
        if isinstance(self.model, VariationalAutoencoder):
            return self._vae_terms(x, rng)
        z = self.run("encoder", x)
        y = self.run("decoder", z)
        mse = torch.mean((y - x) ** 2)
        terms = {"mse": mse}
        loss = mse
        if isinstance(self.model, SparseAutoencoder):
            terms["kl_sparsity"] = _kl_sparsity(z, self.model.rho)
            loss = loss + self.model.sparsity_weight * terms["kl_sparsity"]
        elif isinstance(self.model, ContractiveAutoencoder):
            terms["contractive"] = self._contractive(x, x_np, z, rng)
            loss = loss + self.model.contractive_weight * terms["contractive"]
        return {"loss": loss, **terms}

    def _contractive(self, x, x_np: np.ndarray, z, rng: np.random.Generator):
        """The penalty of :func:`minidl.contractive.contractive_penalty` in the model's mode."""
        torch = _torch()
        model, n = self.model, len(x_np)
        if model.mode == "closed_form":
            W = self._weights[id(model.encoder[-2])]["W"]  # the Dense before the sigmoid
            slope = z * (1 - z)
            return torch.sum(slope**2 * torch.sum(W * W, dim=0)) / n
        if model.mode == "hutchinson":
            directions = rng.standard_normal((model.n_probes,) + x_np.shape).astype(x_np.dtype, copy=False)
            scale = 1.0 / (n * model.n_probes)
        else:  # "exact": one unit direction per input value, the same for every sample
            directions = (_unit_direction(x_np.shape, i) for i in range(int(np.prod(x_np.shape[1:]))))
            scale = 1.0 / n
        forward_ad = torch.autograd.forward_ad
        total = 0.0
        for direction in directions:
            # forward mode gives J v; reverse mode then differentiates ||J v||^2 with respect to the weights
            with forward_ad.dual_level():
                output = self.run("encoder", forward_ad.make_dual(x, torch.tensor(direction)))
                tangent = forward_ad.unpack_dual(output).tangent
            total = total + torch.sum(tangent**2)
        return scale * total

    def _vae_terms(self, x, rng: np.random.Generator) -> dict:
        torch = _torch()
        n = x.shape[0]
        flat = x.reshape(n, -1)
        h = self.run("encoder", x)
        mu, logvar = self.run("mu", h), self.run("logvar", h)
        eps = torch.tensor(rng.standard_normal(tuple(mu.shape)))
        variance = torch.exp(torch.clamp(logvar, -LOGVAR_BOUND, LOGVAR_BOUND))
        z = mu + eps * torch.sqrt(variance)
        output = self.run("decoder", z)
        kl = -0.5 * torch.sum(1 + logvar - mu * mu - variance) / n
        d = flat.shape[1]
        if self.model.likelihood == "bernoulli":
            reconstruction = torch.nn.functional.binary_cross_entropy_with_logits(output, flat, reduction="sum") / n
        else:
            mean, pixel_logvar = torch.sigmoid(output[:, :d]), output[:, d:]
            precision = torch.exp(torch.clamp(-pixel_logvar, -LOGVAR_BOUND, LOGVAR_BOUND))
            reconstruction = 0.5 * torch.sum(np.log(2 * np.pi) + pixel_logvar + (flat - mean) ** 2 * precision) / n
        return {"loss": reconstruction + kl, "reconstruction": reconstruction, "kl": kl}


def _unit_direction(shape: tuple[int, ...], index: int) -> np.ndarray:
    """e_index for every sample of a batch of ``shape``."""
    direction = np.zeros(shape)
    direction.reshape(shape[0], -1)[:, index] = 1.0
    return direction


def _kl_sparsity(h, rho: float, eps: float = 1e-6):
    """:func:`minidl.losses.kl_sparsity` in PyTorch: the batch mean of each unit, clipped, against rho."""
    torch = _torch()
    rho_hat = torch.clamp(h.mean(dim=0), eps, 1 - eps)
    return torch.sum(rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat)))


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|: the difference in units of the array's scale (0 when both are 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b))
    difference = np.max(np.abs(a - b))
    return float(difference / scale) if scale > 0 else float(difference)


def follow(model, batches, seed: int = 0, lr: float = 1e-3) -> list[dict]:
    """Train ``model`` (minidl's Adam) and its twin (``torch.optim.Adam``) on the same batches, step by step.

    The twin is built from the model's weights before the first step. Both use Adam with PyTorch's
    defaults (betas 0.9 and 0.999, eps 1e-8) and learning rate ``lr``; the model draws its noise from
    ``np.random.default_rng(seed)``, the twin from another generator of the same seed.

    Returns
    -------
    One record per step: ``"minidl"`` and ``"torch"`` (the loss terms of that step, floats),
    ``"terms"`` (the relative difference of each term), ``"params"`` (the relative difference of each
    parameter after the step, :func:`relative_difference`) and ``"worst_parameter"`` (its largest).
    """
    torch = _torch()
    twin = TorchTwin(model)
    optimizer = Adam(model.parameters(), lr=lr)
    twin_optimizer = torch.optim.Adam(list(twin.params.values()), lr=lr)
    rng, twin_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    records = []
    for x in batches:
        model.zero_grad()
        terms = model.loss_and_grads(x, rng)
        optimizer.step()
        twin_optimizer.zero_grad()
        twin_terms = twin.loss_terms(x, twin_rng)
        twin_terms["loss"].backward()
        twin_optimizer.step()
        twin_terms = {key: float(value.detach()) for key, value in twin_terms.items()}
        params = {
            name: relative_difference(param, twin.params[name].detach().numpy())
            for name, param, _ in model.parameters()
        }
        records.append(
            {
                "minidl": terms,
                "torch": twin_terms,
                "terms": {key: relative_difference(terms[key], twin_terms[key]) for key in terms},
                "params": params,
                "worst_parameter": max(params.values()),
            }
        )
    return records
