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
# # 08 · The ELBO and the reparameterisation gradient
#
# A VAE minimises $-\mathrm{ELBO} = E_{q(z|x)}[-\log p(x|z)] + \mathrm{KL}(q \,\Vert\, N(0, I))$. minidl estimates
# the expectation with one sample $z = \mu + \epsilon e^{\mathrm{logvar}/2}$ per image and step, and
# differentiates through the sample. We do the docs page's example by hand, gradient-check the whole chain
# for a fixed $\epsilon$, and measure the gradient estimate's variance against the number of samples, beside
# the score-function estimator that does not use the reparameterisation (see `docs/vae.md`).

# %%
import matplotlib.pyplot as plt
import numpy as np

from minidl.gradcheck import check_function
from minidl.layers import Dense
from minidl.losses import elbo, reparameterize, reparameterize_backward

# %% [markdown]
# ## By hand
# Two images of two pixels, one latent unit. $R_n$ sums the pixels' cross-entropies, KL is
# $-\frac12(1 + \mathrm{logvar} - \mu^2 - e^{\mathrm{logvar}})$, and the loss is the batch mean, so every
# gradient carries $1/N = 1/2$.

# %%
x = np.array([[1.0, 0.0], [0.5, 0.5]])
logits = np.array([[0.0, 0.0], [0.0, np.log(3.0)]])
mu, logvar = np.array([[0.0], [1.0]]), np.zeros((2, 1))
p = 1 / (1 + np.exp(-logits))
reconstruction = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1)
kl = -0.5 * (1 + logvar - mu**2 - np.exp(logvar)).sum(axis=1)
terms = elbo(x, logits, mu, logvar)
print(
    "by hand: R =", reconstruction.round(6).tolist(), " KL =", (kl + 0.0).tolist(), " dL/da =", ((p - x) / 2).tolist()
)
print(
    "minidl:  R =",
    terms.reconstruction.round(6).tolist(),
    " KL =",
    (terms.kl + 0.0).tolist(),
    " dL/da =",
    terms.d_decoder.tolist(),
)
np.testing.assert_allclose(terms.d_decoder, (p - x) / 2)

# %% [markdown]
# ## The whole chain, checked by central differences
# Encoder outputs $\mu$, logvar -> sample z (fixed $\epsilon$) -> a dense decoder -> logits -> ELBO. The
# gradient reaches $\mu$ and logvar along two paths: through z (`reparameterize_backward`) and directly
# through the KL term.

# %%
rng = np.random.default_rng(0)
decoder = Dense(2, 5, rng=rng).astype(np.float64)
images = rng.random((3, 5))
mu, logvar, eps = rng.standard_normal((3, 2)), rng.normal(0, 0.5, (3, 2)), rng.standard_normal((3, 2))


def loss_and_gradients(mu, logvar, eps):
    terms = elbo(images, decoder.forward(reparameterize(mu, logvar, eps)), mu, logvar)
    dmu, dlogvar = reparameterize_backward(decoder.backward(terms.d_decoder), logvar, eps)
    return float(np.mean(terms.total)), dmu + terms.d_mu, dlogvar + terms.d_logvar


decoder.zero_grad()
_, dmu, dlogvar = loss_and_gradients(mu, logvar, eps)
errors = check_function(
    lambda: loss_and_gradients(mu, logvar, eps)[0], {"mu": dmu, "logvar": dlogvar}, {"mu": mu, "logvar": logvar}
)
print(errors)
assert max(errors.values()) < 1e-7

# %% [markdown]
# ## Variance against the number of samples
# For one image, average the gradient over S samples of $\epsilon$ (a batch of S copies of the image: the
# batch mean's $1/S$ does the averaging). Both estimators are unbiased; the reparameterised one's variance
# falls as $1/S$ from a much lower start than the score-function estimator
# $\frac1S \sum_s R(z_s) \, (z_s - \mu) / \sigma^2$, which uses only the values of the loss.

# %%
image = images[:1]
mu0, logvar0 = mu[:1], logvar[:1]


def reparameterised(samples):
    eps = rng.standard_normal((samples, 2))
    terms = elbo(
        np.repeat(image, samples, 0),
        decoder.forward(reparameterize(np.repeat(mu0, samples, 0), np.repeat(logvar0, samples, 0), eps)),
        np.repeat(mu0, samples, 0),
        np.repeat(logvar0, samples, 0),
    )
    dmu, _ = reparameterize_backward(decoder.backward(terms.d_decoder), np.repeat(logvar0, samples, 0), eps)
    return (dmu + terms.d_mu).sum(axis=0)[0]


def score_function(samples):
    sigma = np.exp(0.5 * logvar0)
    z = mu0 + rng.standard_normal((samples, 2)) * sigma
    terms = elbo(
        np.repeat(image, samples, 0),
        decoder.forward(z, training=False),
        np.repeat(mu0, samples, 0),
        np.repeat(logvar0, samples, 0),
    )
    return float(np.mean(terms.reconstruction * (z - mu0)[:, 0] / sigma[0, 0] ** 2)) + mu0[0, 0]


reference = reparameterised(200_000)
sample_counts = [1, 4, 16, 64]
variances = {"reparameterisation": [], "score function": []}
for samples in sample_counts:
    for name, estimator in (("reparameterisation", reparameterised), ("score function", score_function)):
        estimates = np.array([estimator(samples) for _ in range(300)])
        variances[name].append(estimates.var(ddof=1))
        assert abs(estimates.mean() - reference) < 5 * estimates.std(ddof=1) / np.sqrt(300) + 1e-3
    print(
        f"S = {samples:2d}: variance of dL/dmu_1, reparameterisation {variances['reparameterisation'][-1]:.2e}, "
        f"score function {variances['score function'][-1]:.2e}"
    )
fig, ax = plt.subplots(figsize=(4.5, 3.2))
for name, values in variances.items():
    ax.loglog(sample_counts, values, "o-", label=name)
ax.loglog(sample_counts, [variances["reparameterisation"][0] / s for s in sample_counts], ":k", label="1/S")
ax.set(xlabel="samples S", ylabel="variance of the gradient estimate", title="dL/dmu for one image")
ax.legend(fontsize=8)
fig.tight_layout()
