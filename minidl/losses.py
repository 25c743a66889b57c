"""Losses and penalties. Each returns its value and the analytic gradient(s) of that value.

Conventions: a loss is averaged over the batch (axis 0); where a per-sample sum over pixels is meant,
``reduction="sum"`` says so. Inputs keep their dtype (float32 in training, float64 in gradient checks).

Every function here refuses an empty batch (no samples, or no values per sample) with a ValueError, and
the cross-entropies (:func:`bce`, :func:`bce_with_logits`, :func:`elbo`) refuse targets outside [0, 1]
(NaN and infinite targets included): there the cross-entropy is no longer bounded below (a target of
255 gives -558 nats at p = 0.9), and training would minimise it silently. Predictions are not checked:
a non-finite prediction gives a non-finite value, the signal a trainer stops on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from minidl.backend import kernels
from minidl.layers.activations import exp_negative_abs, sigmoid

REDUCTIONS = ("mean", "sum")


def _check_same_shape(name: str, a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: prediction and target shapes differ: {a.shape} and {b.shape}.")


def _check_batch(name: str, array: np.ndarray, layout: str = "(N, ...)") -> None:
    """Raise ValueError for an empty batch: no samples, or no values per sample."""
    if array.ndim == 0 or array.size == 0:
        raise ValueError(
            f"{name}: expected a non-empty batch {layout} (at least one sample, and at least one "
            f"value per sample), received shape {array.shape}."
        )


def _check_targets(name: str, target: np.ndarray, what: str = "targets") -> None:
    """Raise ValueError unless every target lies in [0, 1]; one pass for the minimum, one for the maximum."""
    low, high = float(np.min(target)), float(np.max(target))
    if 0.0 <= low and high <= 1.0:
        return
    found = "NaN" if np.isnan(low) or np.isnan(high) else f"values from {low:g} to {high:g}"
    raise ValueError(
        f"{name}: expected {what} in [0, 1], received {found}. Images must be scaled to [0, 1] "
        "(divide uint8 pixels by 255)."
    )


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"Unknown reduction {reduction!r}; expected one of {REDUCTIONS}.")


def _per_sample_scale(shape: tuple[int, ...], reduction: str) -> float:
    """1 / (N * D) for "mean" over D pixels per sample, 1 / N for "sum"."""
    n = shape[0]
    pixels = int(np.prod(shape[1:]))
    return 1.0 / (n * pixels) if reduction == "mean" else 1.0 / n


def mse(y: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error over all elements, as Keras reports it.

    Shapes
    ------
    y, target : (N, ...) -> value : float, dy : same as y

    Notes
    -----
    L = (1 / M) sum_i (y_i - t_i)^2 over all M elements, so dL/dy = 2 (y - t) / M.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.losses import mse
    >>> loss, dy = mse(np.array([[1.0, 2.0]]), np.zeros((1, 2)))   # summed per sample, mean over the batch
    >>> loss, dy
    (2.5, array([[1., 2.]]))
    """
    _check_same_shape("mse", y, target)
    _check_batch("mse", y)
    difference = y - target
    value = float(np.mean(difference.astype(np.float64) ** 2))
    return value, (2.0 / difference.size) * difference


def bce(p: np.ndarray, target: np.ndarray, reduction: str = "mean", eps: float = 1e-7) -> tuple[float, np.ndarray]:
    """Binary cross-entropy of probabilities ``p`` against targets in [0, 1].

    The value is the batch mean of the per-sample loss, which is the mean (``reduction="mean"``) or the
    sum (``"sum"``) of -[t log p + (1 - t) log(1 - p)] over that sample's pixels.

    Shapes
    ------
    p, target : (N, ...) -> value : float, dp : same as p

    Notes
    -----
    p is clipped to [eps, 1 - eps] so that p = 0 or 1 gives a finite value; where the clip is active the
    gradient is 0 (the clipped value does not move with p). Elsewhere
    dL/dp = s (p - t) / (p (1 - p)) with s = 1 / (N D) or 1 / N. Prefer :func:`bce_with_logits`.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.losses import bce
    >>> loss, dp = bce(np.array([[0.5, 0.9]]), np.array([[1.0, 1.0]]))
    >>> round(loss, 6), dp
    (0.399254, array([[-1.        , -0.55555556]]))
    """
    _check_same_shape("bce", p, target)
    _check_reduction(reduction)
    _check_batch("bce", p)
    _check_targets("bce", target)
    clipped = np.clip(p, eps, 1 - eps)
    losses = -(target * np.log(clipped) + (1 - target) * np.log1p(-clipped))
    scale = _per_sample_scale(p.shape, reduction)
    value = float(np.sum(losses.astype(np.float64)) * scale)
    inside = (p > eps) & (p < 1 - eps)
    dp = np.where(inside, scale * (clipped - target) / (clipped * (1 - clipped)), 0.0).astype(p.dtype, copy=False)
    return value, dp


def bce_with_logits(logits: np.ndarray, target: np.ndarray, reduction: str = "mean") -> tuple[float, np.ndarray]:
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], computed from the logits.

    Same value and reductions as :func:`bce` of ``sigmoid(logits)``, but stable for any logit.

    Shapes
    ------
    logits, target : (N, ...) -> value : float, dlogits : same as logits

    Notes
    -----
    -[t log s(x) + (1 - t) log(1 - s(x))] = max(x, 0) - x t + log(1 + exp(-|x|)), which never exponentiates
    a positive number. Its derivative is the famous s(x) - t, scaled by 1 / (N D) or 1 / N.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.losses import bce_with_logits
    >>> loss, dlogits = bce_with_logits(np.array([[0.0, 100.0]]), np.array([[1.0, 1.0]]))
    >>> round(loss, 6), dlogits   # sigmoid(x) - t, finite even for large logits
    (0.346574, array([[-0.25,  0.  ]]))
    """
    _check_same_shape("bce_with_logits", logits, target)
    _check_reduction(reduction)
    _check_batch("bce_with_logits", logits)
    _check_targets("bce_with_logits", target)
    scale = _per_sample_scale(logits.shape, reduction)
    losses, dlogits = _bce_from_logits(logits, target, scale)
    return float(np.sum(losses) * scale), dlogits


def bce_logits_terms(x: np.ndarray, t: np.ndarray, e: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per element, the binary cross-entropy of sigmoid(x) against t and its gradient, given e = exp(-|x|):

        terms = max(x, 0) - x t + log(1 + e)
        dx    = scale (sigmoid(x) - t),   sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) below

    The definition the kernel ``bce_logits_rows`` accelerates, and what its NumPy twin runs.

    Shapes
    ------
    x, t, e : (N, D) -> terms, dx : (N, D)

    Notes
    -----
    -[t log s(x) + (1 - t) log(1 - s(x))] = max(x, 0) - x t + log(1 + exp(-|x|)): for x >= 0,
    -log s(x) = log(1 + e) and -log(1 - s(x)) = x + log(1 + e); for x < 0 the same with x and -x swapped.
    Only exp(-|x|) <= 1 is ever taken. The sigmoid's two forms are equal; each divides by 1 + e >= 1.
    ``scale`` is rounded to x's dtype first, as the kernel does.
    """
    sigmoid_x = np.where(x >= 0, 1, e) / (1 + e)
    terms = np.maximum(x, 0) - x * t + np.log1p(e)
    dx = x.dtype.type(scale) * (sigmoid_x - t)
    return terms, dx


def _bce_from_logits(logits: np.ndarray, target: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, the sum over its values of :func:`bce_logits_terms`'s terms (float64), and the
    gradient ``scale * (sigmoid(x) - t)`` in the logits' dtype.

    |x| is capped inside the exponential where exp would underflow (43 in float32, 354 in float64,
    :func:`exp_negative_abs`); the log term is then below 1e-18 and the result unchanged.
    ``kernels.bce_logits_rows`` computes the same as :func:`bce_logits_terms`, and the sums, in one pass
    per sample, given NumPy's exp and log1p.
    """
    # float16 is worked on in float32: the kernels take float32 and float64
    x = logits.reshape(len(logits), -1)
    x, t = (a.astype(np.result_type(a, np.float32), copy=False) for a in (x, target.reshape(x.shape)))
    e = exp_negative_abs(x)
    losses, dx, terms = np.empty(len(x)), np.empty(x.shape, dtype=x.dtype), np.empty(x.shape, dtype=x.dtype)
    kernels.bce_logits_rows(x, t, e, np.log1p(e), scale, losses, dx, terms)
    return losses, dx.reshape(logits.shape).astype(logits.dtype, copy=False)


def kl_sparsity(h: np.ndarray, rho: float = 0.05, eps: float = 1e-6) -> tuple[float, np.ndarray]:
    """KL sparsity penalty on latent activations in (0, 1).

    rho_hat_k = mean_n h[n, k], clipped to [eps, 1 - eps];
    penalty = sum_k rho log(rho / rho_hat_k) + (1 - rho) log((1 - rho) / (1 - rho_hat_k)).

    Shapes
    ------
    h : (N, K) -> value : float, dh : (N, K)

    Notes
    -----
    dP/drho_hat_k = -rho / rho_hat_k + (1 - rho) / (1 - rho_hat_k) = (rho_hat_k - rho) / (rho_hat_k (1 - rho_hat_k)),
    and drho_hat_k / dh[n, k] = 1 / N, so every sample of unit k gets the same gradient. For a sigmoid code
    h = sigmoid(u) the slope h (1 - h) multiplies it on the way to u:
    dP/du[n, k] = (rho_hat_k - rho) h[n, k] (1 - h[n, k]) / (N rho_hat_k (1 - rho_hat_k)), which is about
    (rho_hat_k - rho) / N for a unit about equally active on every sample, not fading as the unit saturates;
    summed over the batch it is at most |rho_hat_k - rho| for any unit. Where the clip is active (a batch mean
    at or below eps or at or above 1 - eps) the clipped value no longer depends on h, so that unit's gradient
    is exactly 0: only there does the penalty stop pulling a dead or saturated unit back (docs/kl-sparsity.md).

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.losses import kl_sparsity
    >>> penalty, dh = kl_sparsity(np.full((4, 2), 0.05), rho=0.05)   # mean activity equal to rho
    >>> penalty, dh.shape
    (0.0, (4, 2))
    """
    if h.ndim != 2:
        raise ValueError(f"kl_sparsity: expected activations of shape (N, K), received {h.shape}.")
    _check_batch("kl_sparsity", h, "(N, K)")
    if not 0 < rho < 1:
        raise ValueError(f"Expected rho in (0, 1). Received: rho={rho!r}")
    n = h.shape[0]
    mean = np.mean(h, axis=0, dtype=np.float64)
    rho_hat = np.clip(mean, eps, 1 - eps)
    value = float(np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))))
    slope = np.where((mean > eps) & (mean < 1 - eps), -rho / rho_hat + (1 - rho) / (1 - rho_hat), 0.0)
    dh = np.broadcast_to((slope / n).astype(h.dtype), h.shape).copy()
    return value, dh


# -- variational autoencoder --------------------------------------------------------------------

# exp(+-80) = 5.5e34 and 1.8e-35 are finite, normal float32 numbers (float32's normal range is 1.2e-38 to
# 3.4e38), so a variance, its square root (a standard deviation) and a precision exp(-logvar) computed from a
# clipped logvar are all finite and normal in float32; a square of them would not be (exp(160) is inf and
# exp(-160) is 0 in float32), and nothing here squares them. In float64 the bound is far inside the range
# (exp(+-709)). Past the bound the gradients still use exp(+-80): they are not the derivative of the
# clipped value there, a regime a VAE's log-variances do not reach.
LOGVAR_BOUND = 80.0


def _exp_logvar(logvar: np.ndarray) -> np.ndarray:
    """exp(logvar) with logvar clipped to [-80, 80]: finite and normal in float32 and float64."""
    return np.exp(np.clip(logvar, -LOGVAR_BOUND, LOGVAR_BOUND))


def reparameterize(mu: np.ndarray, logvar: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """z = mu + eps * exp(logvar / 2): a sample of N(mu, sigma^2) that is differentiable in mu and logvar.

    Shapes
    ------
    mu, logvar, eps : (N, latent_dim) -> z : (N, latent_dim)

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.losses import reparameterize
    >>> mu, logvar, eps = np.array([[1.0]]), np.array([[np.log(4.0)]]), np.array([[0.5]])
    >>> reparameterize(mu, logvar, eps)   # mu + exp(logvar / 2) eps
    array([[2.]])
    """
    _check_same_shape("reparameterize", mu, logvar)
    _check_same_shape("reparameterize", mu, eps)
    return mu + eps * np.sqrt(_exp_logvar(logvar))


def reparameterize_backward(dz: np.ndarray, logvar: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of z = mu + eps exp(logvar / 2): dmu = dz, dlogvar = dz * eps * exp(logvar / 2) / 2.

    Shapes
    ------
    dz, logvar, eps : (N, latent_dim) -> dmu, dlogvar : (N, latent_dim)

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.losses import reparameterize_backward
    >>> dz, logvar, eps = np.array([[1.0]]), np.array([[np.log(4.0)]]), np.array([[0.5]])
    >>> dmu, dlogvar = reparameterize_backward(dz, logvar, eps)
    >>> dmu, dlogvar   # dz, dz * eps * exp(logvar / 2) / 2
    (array([[1.]]), array([[0.5]]))
    """
    return dz, 0.5 * dz * eps * np.sqrt(_exp_logvar(logvar))


def gaussian_kl(mu: np.ndarray, logvar: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """KL(N(mu, sigma^2) || N(0, I)) per sample, with the gradients of its batch mean.

    Shapes
    ------
    mu, logvar : (N, latent_dim) -> kl : (N,), dmu, dlogvar : (N, latent_dim)

    Notes
    -----
    KL = -1/2 sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j)); for the batch mean
    d/dmu = mu / N and d/dlogvar = (exp(logvar) - 1) / (2 N).

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.losses import gaussian_kl
    >>> kl, dmu, dlogvar = gaussian_kl(np.array([[0.0, 1.0]]), np.array([[0.0, 0.0]]))
    >>> kl, dmu, dlogvar   # per sample: mu^2 / 2 summed, 0 for the standard normal
    (array([0.5]), array([[0., 1.]]), array([[0., 0.]]))
    """
    _check_same_shape("gaussian_kl", mu, logvar)
    _check_batch("gaussian_kl", mu, "(N, latent_dim)")
    n = mu.shape[0]
    variance = _exp_logvar(logvar)
    kl = -0.5 * (1 + logvar - mu * mu - variance).sum(axis=1, dtype=np.float64)
    return kl, mu / n, (variance - 1) / (2 * n)


def _flush_to(array: np.ndarray, dtype: DTypeLike) -> np.ndarray:
    """Cast to ``dtype``, setting values below its smallest normal number to 0 first (they would
    underflow in the cast, and they are 0 for every purpose of a gradient)."""
    tiny = np.finfo(dtype).tiny
    return np.where(np.abs(array) < tiny, 0.0, array).astype(dtype, copy=False)


def gaussian_nll(x: np.ndarray, mean: np.ndarray, logvar: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-log N(x; mean, exp(logvar)) summed over each sample's pixels, with gradients of its batch mean.

    Shapes
    ------
    x, mean, logvar : (N, D) -> nll : (N,), dmean, dlogvar : (N, D)

    Notes
    -----
    Per pixel 1/2 (log 2 pi + logvar + (x - mean)^2 exp(-logvar)); for the batch mean
    d/dmean = (mean - x) exp(-logvar) / N and d/dlogvar = (1 - (x - mean)^2 exp(-logvar)) / (2 N).
    Computed in float64: a tiny squared error times a tiny precision underflows float32.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.losses import gaussian_nll
    >>> nll, dmean, dlogvar = gaussian_nll(np.array([[1.0]]), np.array([[0.0]]), np.array([[0.0]]))
    >>> nll.round(6), dmean, dlogvar
    (array([1.418939]), array([[-1.]]), array([[0.]]))
    """
    _check_same_shape("gaussian_nll", x, mean)
    _check_same_shape("gaussian_nll", x, logvar)
    _check_batch("gaussian_nll", x, "(N, D)")
    dtype = np.result_type(x, mean, logvar)
    n = x.shape[0]
    logvar64 = logvar.astype(np.float64)
    precision = _exp_logvar(-logvar64)
    difference = x.astype(np.float64) - mean
    scaled = difference * difference * precision
    nll = 0.5 * np.sum(np.log(2 * np.pi) + logvar64 + scaled, axis=1)
    return nll, _flush_to(-difference * precision / n, dtype), _flush_to((1 - scaled) / (2 * n), dtype)


@dataclass(frozen=True)
class ELBO:
    """The terms of a VAE's negative ELBO, in nats.

    ``reconstruction``, ``kl`` and ``total`` are per sample (N,); the gradients are those of the batch
    mean of ``total`` with respect to the decoder output(s), mu and logvar.
    """

    reconstruction: np.ndarray
    kl: np.ndarray
    total: np.ndarray
    d_decoder: np.ndarray
    d_mu: np.ndarray
    d_logvar: np.ndarray


def elbo(
    x: np.ndarray, decoder_output: np.ndarray, mu: np.ndarray, logvar: np.ndarray, likelihood: str = "bernoulli"
) -> ELBO:
    """Negative evidence lower bound per sample: reconstruction term + KL(q(z|x) || p(z)).

    Parameters
    ----------
    x : (N, D) targets in [0, 1], for either likelihood (the Gaussian's mean is a sigmoid)
    decoder_output : (N, D) logits for ``"bernoulli"``; (N, 2 D) for ``"gaussian"``: the first D columns
        are mean logits (mean = sigmoid), the last D the per-pixel log-variance.
    mu, logvar : (N, latent_dim)
    likelihood : "bernoulli" (BCE summed over pixels, as the study) or "gaussian" (Kingma and Welling's
        Frey Face decoder).

    Notes
    -----
    For the Gaussian decoder with mean m = sigmoid(a), dL/da = dL/dm * m (1 - m).

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.losses import elbo
    >>> x = np.array([[1.0, 0.0]])
    >>> out = elbo(x, np.array([[3.0, -3.0]]), np.array([[1.0, 0.0]]), np.zeros((1, 2)))
    >>> out.reconstruction.round(6), out.kl   # per sample, in nats
    (array([0.097175]), array([0.5]))
    """
    if likelihood not in ("bernoulli", "gaussian"):
        raise ValueError(f"Unknown likelihood {likelihood!r}; expected 'bernoulli' or 'gaussian'.")
    if x.ndim != 2:
        raise ValueError(f"elbo: expected x of shape (N, D), received {x.shape}.")
    _check_batch("elbo", x, "(N, D)")
    _check_targets("elbo", x, "x")
    n, d = x.shape
    kl, d_mu, d_logvar = gaussian_kl(mu, logvar)
    if likelihood == "bernoulli":
        _check_same_shape("elbo", decoder_output, x)
        reconstruction, d_decoder = _bce_from_logits(decoder_output, x, 1.0 / n)
        d_decoder = d_decoder.astype(x.dtype, copy=False)
    else:
        if decoder_output.shape != (n, 2 * d):
            raise ValueError(
                f"elbo: a Gaussian decoder must output (N, 2 D) = {(n, 2 * d)}, received {decoder_output.shape}."
            )
        mean = sigmoid(decoder_output[:, :d])
        reconstruction, d_mean, d_pixel_logvar = gaussian_nll(x, mean, decoder_output[:, d:])
        d_decoder = np.concatenate([d_mean * mean * (1 - mean), d_pixel_logvar], axis=1).astype(x.dtype, copy=False)
    return ELBO(
        reconstruction=reconstruction,
        kl=kl,
        total=reconstruction + kl,
        d_decoder=d_decoder,
        d_mu=d_mu.astype(mu.dtype, copy=False),
        d_logvar=d_logvar.astype(logvar.dtype, copy=False),
    )
