"""The study's models: parameter counts, gradient checks of every loss in float64, inference API."""

import numpy as np
import pytest

from autoencoders.architectures import conv_decoder, conv_encoder
from autoencoders.models import Autoencoder, ContractiveAutoencoder, SparseAutoencoder, VariationalAutoencoder
from minidl.gradcheck import numerical_gradient, relative_error

IMAGE = (1, 12, 12)


def small(cls, seed, latent, **kwargs):
    rng = np.random.default_rng(seed)
    encoder = conv_encoder(latent_dim=4, image_shape=IMAGE, filters=(2, 3), latent=latent, rng=rng)
    decoder = conv_decoder(latent_dim=4, image_shape=IMAGE, filters=(3, 2), rng=rng)
    model = cls(encoder, decoder, **kwargs).astype(np.float64)
    # Zero biases put ReLU inputs exactly on the kink wherever all of a unit's inputs are zero (a ReLU
    # upstream was off): the function is not differentiable there. Random biases move them off it.
    for name, param, _ in model.parameters():
        if name.endswith(".b"):
            param[...] = 0.1 * rng.standard_normal(param.shape)
    return model


def model_gradient_errors(model, x, seed):
    """Analytic gradients of loss_and_grads against central differences of its "loss" (same noise)."""

    def loss():
        return model.evaluate(x, np.random.default_rng(seed))["loss"]

    model.zero_grad()
    model.loss_and_grads(x, np.random.default_rng(seed))
    analytic = {name: grad.copy() for name, _, grad in model.parameters()}
    return {
        name: relative_error(analytic[name], numerical_gradient(loss, param)) for name, param, _ in model.parameters()
    }


CASES = {
    "plain": lambda seed: small(Autoencoder, seed, "linear"),
    "sparse": lambda seed: small(SparseAutoencoder, seed, "sigmoid", sparsity_weight=0.5),
    "contractive_closed_form": lambda seed: small(ContractiveAutoencoder, seed, "sigmoid", contractive_weight=0.3),
    "contractive_hutchinson": lambda seed: small(
        ContractiveAutoencoder, seed, "linear", contractive_weight=0.3, mode="hutchinson", n_probes=2
    ),
    "contractive_exact": lambda seed: small(
        ContractiveAutoencoder, seed, "sigmoid", contractive_weight=0.3, mode="exact"
    ),
    "vae_bernoulli": lambda seed: VariationalAutoencoder((1, 4, 3), hidden=5, latent_dim=2, rng=seed).astype(
        np.float64
    ),
    "vae_gaussian": lambda seed: VariationalAutoencoder(
        (1, 4, 3), hidden=5, latent_dim=2, likelihood="gaussian", rng=seed
    ).astype(np.float64),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_loss_and_grads_pass_the_gradient_check(case, seed):
    model = CASES[case](seed)
    shape = model.image_shape if isinstance(model, VariationalAutoencoder) else IMAGE
    x = np.random.default_rng(seed + 10).random((3,) + shape)
    errors = model_gradient_errors(model, x, seed)
    assert max(errors.values()) < 1e-6, errors


def test_study_models_have_the_published_parameter_counts():
    model = SparseAutoencoder(rng=0)
    assert model.encoder.n_params == 664_704
    assert model.decoder.n_params == 666_625
    assert model.n_params == 664_704 + 666_625
    vae = VariationalAutoencoder(rng=0)
    assert vae.n_params == (560 * 256 + 256) + 2 * (256 * 20 + 20) + (20 * 256 + 256) + (256 * 560 + 560)


def test_inference_api_shapes_and_ranges():
    model = SparseAutoencoder(rng=0)
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    z = model.encode(x)
    assert z.shape == (5, 128) and z.dtype == np.float32 and np.all((z > 0) & (z < 1))
    y = model.reconstruct(x)
    assert y.shape == x.shape and np.all((y >= 0) & (y <= 1))
    assert np.all(y[:, :, :2] == 0)  # the zero-padded border
    vae = VariationalAutoencoder(rng=0)
    faces = vae.sample(15, np.random.default_rng(0))
    assert faces.shape == (15, 1, 28, 20) and np.all((faces > 0) & (faces < 1))
    traversal = vae.traverse(np.zeros(20), 4, np.linspace(-2, 2, 7))
    assert traversal.shape == (7, 1, 28, 20)
    assert not np.allclose(traversal[0], traversal[-1])


def test_save_and_load_round_trip(tmp_path):
    source, target = SparseAutoencoder(rng=0), SparseAutoencoder(rng=1)
    source.save(tmp_path / "model.npz")
    target.load(tmp_path / "model.npz")
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(source.reconstruct(x), target.reconstruct(x))
    with pytest.raises(ValueError, match="of kind SparseAutoencoder, not VariationalAutoencoder"):
        VariationalAutoencoder(rng=0).load(tmp_path / "model.npz")


def test_constructor_arguments_are_validated():
    with pytest.raises(ValueError, match="Unknown contractive mode"):
        ContractiveAutoencoder(mode="full")
    with pytest.raises(ValueError, match="Unknown likelihood"):
        VariationalAutoencoder(likelihood="poisson")
    with pytest.raises(ValueError, match="Unknown latent activation"):
        conv_encoder(latent="softmax")


STUDY_SIZED = {  # float32, 28x28: the Winograd path and the layers' reused work buffers
    "plain": lambda: Autoencoder(rng=0),
    "contractive_hutchinson": lambda: ContractiveAutoencoder(rng=0, latent="linear", mode="hutchinson"),
}


@pytest.mark.parametrize("case", list(CASES) + [f"study_{name}" for name in STUDY_SIZED])
def test_evaluate_and_encode_gives_the_terms_of_evaluate_and_the_codes_of_encode(case):
    if case.startswith("study_"):
        model, shape = STUDY_SIZED[case.removeprefix("study_")](), (1, 28, 28)
    else:
        model = CASES[case](0)
        shape = model.image_shape if isinstance(model, VariationalAutoencoder) else IMAGE
    data = np.random.default_rng(5).random((2, 3) + shape).astype(next(iter(model.params.values())).dtype)
    terms, codes = model.evaluate_and_encode(data[0], np.random.default_rng(3))
    model.evaluate_and_encode(data[1], np.random.default_rng(4))  # must not overwrite the codes returned before
    assert terms == model.evaluate(data[0], np.random.default_rng(3))
    np.testing.assert_array_equal(codes, model.encode(data[0]))
