"""The study's autoencoders: plain, sparse, contractive and variational.

All share one small interface, which the :class:`~autoencoders.trainer.Trainer` relies on:

* ``encode(x)``, ``decode(z)``, ``reconstruct(x)`` -- inference, no caches kept;
* ``loss_and_grads(x, rng)`` -- one training forward and backward; returns the named loss terms
  (floats, ``"loss"`` is the total that is minimised) and leaves the gradients in the parameters;
* ``evaluate(x, rng)`` -- the same terms without gradients;
* ``evaluate_and_encode(x, rng)`` -- those terms and the codes ``encode(x)`` gives, from one forward pass;
* ``parameters()``, ``zero_grad()``, ``save(path)``, ``load(path)``;
* ``kind()`` and ``settings()`` -- what a checkpoint or model file records of the model, so that it is
  never resumed or loaded by a model of another kind (or, for a checkpoint, other settings).
"""

from __future__ import annotations

import numpy as np

from autoencoders.architectures import conv_decoder, conv_encoder, vae_decoder, vae_encoder
from minidl.contractive import MODES, contractive_penalty
from minidl.layers import Sequential, sigmoid
from minidl.losses import elbo, kl_sparsity, mse, reparameterize, reparameterize_backward
from minidl.serialization import load_params, save_params


class AutoencoderBase:
    """Shared plumbing: a dict of named sub-networks, their parameters and their persistence.

    Subclasses set ``self.networks`` (name -> Sequential or Layer) and implement ``encode``,
    ``decode`` and ``_terms(x, rng, backward)``, which returns the terms and the codes of ``x``.
    """

    networks: dict
    input_range = (0.0, 1.0)  # images as the decoders' sigmoid outputs them; the Trainer checks its data against it

    def parameters(self):
        """Yield ``(name, param, grad)`` for every parameter, names prefixed by the sub-network."""
        for prefix, network in self.networks.items():
            for key, param in network.params.items():
                yield f"{prefix}.{key}", param, network.grads[key]

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {name: param for name, param, _ in self.parameters()}

    @property
    def n_params(self) -> int:
        return sum(param.size for _, param, _ in self.parameters())

    def zero_grad(self) -> None:
        for network in self.networks.values():
            network.zero_grad()

    def astype(self, dtype):
        """Convert every parameter (for float64 gradient checks); returns the model."""
        for network in self.networks.values():
            network.astype(dtype)
        return self

    def kind(self) -> str:
        """The name files record for this model (its class): a file of one kind never loads into another."""
        return type(self).__name__

    def settings(self) -> dict:
        """The settings of the objective beyond the parameters (weights of penalties, modes), as JSON-able
        values; a checkpoint records them and is not resumed under others."""
        return {}

    def save(self, path) -> None:
        """Write the parameters and the :meth:`kind` to an ``.npz`` (atomically)."""
        save_params(path, self.params, kind=self.kind())

    def load(self, path) -> None:
        """Read parameters written by :meth:`save`, without pickle; a file of another :meth:`kind`, or whose
        parameters do not match, raises ValueError and changes nothing."""
        load_params(path, self.params, kind=self.kind())

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """Decode the code of ``x``. Shapes: (N, C, H, W) -> (N, C, H, W)."""
        return self.decode(self.encode(x))

    def loss_and_grads(self, x: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
        """Forward and backward on one batch; gradients are *added* into the parameters' grads."""
        return self._terms(x, rng, backward=True)[0]

    def evaluate(self, x: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
        """The loss terms of ``x`` without gradients."""
        return self.evaluate_and_encode(x, rng)[0]

    def evaluate_and_encode(self, x: np.ndarray, rng: np.random.Generator) -> tuple[dict[str, float], np.ndarray]:
        """:meth:`evaluate` and :meth:`encode` of ``x`` from one forward pass (the codes equal ``encode(x)``).

        Shapes: x (N, ...) -> codes (N, latent_dim).
        """
        return self._terms(x, rng, backward=False)


class Autoencoder(AutoencoderBase):
    """Conv encoder and decoder trained on the mean squared error alone.

    Parameters
    ----------
    encoder, decoder : Sequential, optional
        Default: the study's networks with a linear latent (the baseline). The model sets the encoder's
        ``needs_input_grad`` to False: training never asks for the gradient of the images.
    rng : np.random.Generator or int, for the default networks.

    Shapes
    ------
    x : (N, 1, 28, 28) -> z : (N, 128) -> reconstruction (N, 1, 28, 28)

    Examples
    --------
    >>> import numpy as np
    >>> from autoencoders import Autoencoder
    >>> rng = np.random.default_rng(0)
    >>> model = Autoencoder(rng=rng)
    >>> x = rng.random((2, 1, 28, 28), dtype=np.float32)
    >>> model.encode(x).shape, model.reconstruct(x).shape
    ((2, 128), (2, 1, 28, 28))
    >>> terms = model.loss_and_grads(x, rng)  # gradients are now in the parameters' grads
    >>> sorted(terms), terms["loss"] == terms["mse"]
    (['loss', 'mse'], True)
    """

    def __init__(
        self, encoder: Sequential | None = None, decoder: Sequential | None = None, rng=None, latent: str = "linear"
    ) -> None:
        rng = np.random.default_rng(rng)
        self.encoder = encoder if encoder is not None else conv_encoder(latent=latent, rng=rng)
        self.decoder = decoder if decoder is not None else conv_decoder(rng=rng)
        self.encoder.needs_input_grad = False  # nothing uses the gradient of the images
        self.networks = {"encoder": self.encoder, "decoder": self.decoder}

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self.encoder.forward(x, training=False)

    def decode(self, z: np.ndarray) -> np.ndarray:
        return self.decoder.forward(z, training=False)

    def _penalty(self, x, z, dz, rng, backward):
        """The regulariser's terms and weighted value; when ``backward``, also the encoder's backward
        pass of ``dz`` (the reconstruction's gradient) together with the regulariser's own gradient."""
        if backward:
            self.encoder.backward(dz)
        return {}, 0.0

    def _terms(self, x, rng, backward):
        z = self.encoder.forward(x, training=True)
        y = self.decoder.forward(z, training=backward)
        reconstruction, dy = mse(y, x)
        dz = self.decoder.backward(dy) if backward else None
        terms, penalty = self._penalty(x, z, dz, rng, backward)
        return {"loss": reconstruction + penalty, "mse": reconstruction, **terms}, z


class SparseAutoencoder(Autoencoder):
    """MSE + lambda * KL sparsity of the (sigmoid) latent activations.

    Parameters
    ----------
    rho : float, default 0.05
        Target mean activation of every latent unit.
    sparsity_weight : float, default 1e-3
        lambda.

    Examples
    --------
    >>> import numpy as np
    >>> from autoencoders import SparseAutoencoder
    >>> rng = np.random.default_rng(0)
    >>> model = SparseAutoencoder(rng=rng, rho=0.05, sparsity_weight=1e-3)
    >>> x = rng.random((2, 1, 28, 28), dtype=np.float32)
    >>> codes = model.encode(x)  # sigmoid units in (0, 1)
    >>> codes.shape, bool(np.all((codes > 0) & (codes < 1)))
    ((2, 128), True)
    >>> terms = model.evaluate(x, rng)
    >>> sorted(terms), bool(np.isclose(terms["loss"], terms["mse"] + 1e-3 * terms["kl_sparsity"]))
    (['kl_sparsity', 'loss', 'mse'], True)
    """

    def __init__(
        self,
        encoder=None,
        decoder=None,
        rng=None,
        rho: float = 0.05,
        sparsity_weight: float = 1e-3,
        latent: str = "sigmoid",
    ) -> None:
        super().__init__(encoder, decoder, rng, latent=latent)
        self.rho, self.sparsity_weight = float(rho), float(sparsity_weight)

    def settings(self) -> dict:
        return {"rho": self.rho, "sparsity_weight": self.sparsity_weight}

    def _penalty(self, x, z, dz, rng, backward):
        value, dh = kl_sparsity(z, rho=self.rho)
        if backward:
            self.encoder.backward(dz + self.sparsity_weight * dh)
        return {"kl_sparsity": value}, self.sparsity_weight * value


class ContractiveAutoencoder(Autoencoder):
    """MSE + lambda * ||dz/dx||_F^2, in one of the modes of :func:`minidl.contractive.contractive_penalty`.

    Parameters
    ----------
    contractive_weight : float, default 1e-4
        lambda.
    mode : "closed_form" (the study's; needs a sigmoid latent), "exact" or "hutchinson"
    n_probes : int, default 1
        Probes per sample of the Hutchinson estimate.

    Examples
    --------
    >>> import numpy as np
    >>> from autoencoders import ContractiveAutoencoder
    >>> rng = np.random.default_rng(0)
    >>> model = ContractiveAutoencoder(rng=rng, contractive_weight=1e-4)  # Rifai's closed form
    >>> x = rng.random((2, 1, 28, 28), dtype=np.float32)
    >>> terms = model.loss_and_grads(x, rng)
    >>> sorted(terms), terms["contractive"] > 0
    (['contractive', 'loss', 'mse'], True)
    >>> remedy = ContractiveAutoencoder(rng=0, latent="linear", mode="hutchinson", n_probes=1)
    >>> "contractive" in remedy.evaluate(x, rng)
    True
    """

    def __init__(
        self,
        encoder=None,
        decoder=None,
        rng=None,
        contractive_weight: float = 1e-4,
        mode: str = "closed_form",
        n_probes: int = 1,
        latent: str = "sigmoid",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"Unknown contractive mode {mode!r}; expected one of {MODES}.")
        super().__init__(encoder, decoder, rng, latent=latent)
        self.contractive_weight, self.mode, self.n_probes = float(contractive_weight), mode, int(n_probes)

    def settings(self) -> dict:
        return {"contractive_weight": self.contractive_weight, "mode": self.mode, "n_probes": self.n_probes}

    def _penalty(self, x, z, dz, rng, backward):
        # one encoder sweep carries both the reconstruction's dz and the penalty's gradient
        value, _ = contractive_penalty(
            self.encoder,
            x,
            self.mode,
            dz=dz,
            weight=self.contractive_weight,
            n_probes=self.n_probes,
            rng=rng,
            backward=backward,
        )
        return {"contractive": value}, self.contractive_weight * value


class VariationalAutoencoder(AutoencoderBase):
    """The Frey Face VAE: 560 -> 256 ReLU -> (mu, log sigma^2) of 20; 20 -> 256 ReLU -> 560.

    Parameters
    ----------
    image_shape : tuple, default (1, 28, 20)
    hidden, latent_dim : int, default 256 and 20
    likelihood : "bernoulli" (BCE summed over pixels + KL, as the study) or "gaussian" (a second decoder
        head gives each pixel's log-variance, as Kingma and Welling used on Frey Face).
    rng : np.random.Generator or int

    Shapes
    ------
    x : (N, *image_shape) -> mu, logvar, z : (N, latent_dim) -> decoded mean (N, *image_shape)

    Examples
    --------
    >>> import numpy as np
    >>> from autoencoders import VariationalAutoencoder
    >>> rng = np.random.default_rng(0)
    >>> vae = VariationalAutoencoder(rng=rng)  # Frey Face: 28x20 images, 20-d latent
    >>> x = rng.random((3, 1, 28, 20), dtype=np.float32)
    >>> mu, logvar = vae.encode_distribution(x)
    >>> mu.shape, vae.sample(4, rng).shape
    ((3, 20), (4, 1, 28, 20))
    >>> terms = vae.loss_and_grads(x, rng)  # the negative ELBO in nats per image
    >>> sorted(terms), bool(np.isclose(terms["loss"], terms["reconstruction"] + terms["kl"]))
    (['kl', 'loss', 'reconstruction'], True)

    Notes
    -----
    Training minimises the batch mean of the negative ELBO, BCE(x, decoder(z)) + KL(q(z|x) || N(0, I)),
    with z = mu + eps exp(logvar / 2) and eps ~ N(0, I) drawn from the trainer's generator.
    """

    def __init__(
        self, image_shape=(1, 28, 20), hidden: int = 256, latent_dim: int = 20, likelihood: str = "bernoulli", rng=None
    ) -> None:
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"Unknown likelihood {likelihood!r}; expected 'bernoulli' or 'gaussian'.")
        rng = np.random.default_rng(rng)
        self.image_shape, self.latent_dim, self.likelihood = tuple(image_shape), int(latent_dim), likelihood
        self.trunk, self.mu_head, self.logvar_head = vae_encoder(image_shape, hidden, latent_dim, rng=rng)
        self.decoder = vae_decoder(
            image_shape, hidden, latent_dim, n_outputs=2 if likelihood == "gaussian" else 1, rng=rng
        )
        self.trunk.needs_input_grad = False  # nothing uses the gradient of the images
        self.networks = {"encoder": self.trunk, "mu": self.mu_head, "logvar": self.logvar_head, "decoder": self.decoder}

    def settings(self) -> dict:
        return {"likelihood": self.likelihood}

    def encode_distribution(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """mu and logvar of q(z | x). Shapes: (N, *image_shape) -> two (N, latent_dim)."""
        h = self.trunk.forward(x, training=False)
        return self.mu_head.forward(h, training=False), self.logvar_head.forward(h, training=False)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """The posterior mean, used as the code of x."""
        return self.encode_distribution(x)[0]

    def decode(self, z: np.ndarray) -> np.ndarray:
        """The decoder's mean image. Shapes: (N, latent_dim) -> (N, *image_shape)."""
        size = int(np.prod(self.image_shape))
        logits = self.decoder.forward(z, training=False)[:, :size]
        return sigmoid(logits).reshape((len(z),) + self.image_shape)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Decode ``n`` codes drawn from the prior N(0, I)."""
        return self.decode(rng.standard_normal((n, self.latent_dim)).astype(self._dtype()))

    def traverse(self, z: np.ndarray, dim: int, values) -> np.ndarray:
        """Decode ``z`` with latent ``dim`` set to each of ``values``.

        Shapes
        ------
        z : (latent_dim,) -> images : (len(values), *image_shape)
        """
        if not 0 <= dim < self.latent_dim:
            raise ValueError(f"Expected 0 <= dim < {self.latent_dim}. Received: dim={dim!r}")
        codes = np.repeat(np.asarray(z, dtype=self._dtype())[None, :], len(values), axis=0)
        codes[:, dim] = values
        return self.decode(codes)

    def _dtype(self):
        return self.mu_head.params["W"].dtype

    def _terms(self, x, rng, backward):
        n = len(x)
        h = self.trunk.forward(x, training=backward)
        mu = self.mu_head.forward(h, training=backward)
        logvar = self.logvar_head.forward(h, training=backward)
        eps = rng.standard_normal(mu.shape).astype(mu.dtype, copy=False)
        z = reparameterize(mu, logvar, eps)
        output = self.decoder.forward(z, training=backward)
        terms = elbo(x.reshape(n, -1), output, mu, logvar, self.likelihood)
        if backward:
            dz = self.decoder.backward(terms.d_decoder)
            dmu, dlogvar = reparameterize_backward(dz, logvar, eps)
            dh = self.mu_head.backward(dmu + terms.d_mu) + self.logvar_head.backward(dlogvar + terms.d_logvar)
            self.trunk.backward(dh)
        reconstruction, kl = float(np.mean(terms.reconstruction)), float(np.mean(terms.kl))
        return {"loss": reconstruction + kl, "reconstruction": reconstruction, "kl": kl}, mu
