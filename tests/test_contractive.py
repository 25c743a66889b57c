"""The contractive penalty: values against finite-difference Jacobians, Hutchinson's mean, and the
parameter gradients of all three modes against central differences in float64. Each encoder layer's
tangent pass (jvp, and jvp_backward with its dx_extra) is checked by minidl.testing, here at the
activations the penalty sees and in tests/test_layers.py on drawn geometries. The driver: its defaults,
chunking, a one-layer encoder, float32 and the validation of its probes."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minidl.contractive import contractive_penalty
from minidl.gradcheck import numerical_gradient, relative_error
from minidl.layers import Conv2D, Dense, Flatten, Identity, MaxPool2D, ReLU, Sequential, Sigmoid, Tanh
from minidl.testing import assert_layer_gradients, smallest_kink_distance

seeds = st.integers(0, 2**32 - 1)


def dense_encoder(rng, latent=Sigmoid):
    return Sequential(Dense(5, 6, rng=rng), Tanh(), Dense(6, 3, rng=rng), latent()).astype(np.float64)


def conv_encoder(rng, latent=Sigmoid):
    return Sequential(Conv2D(1, 2, rng=rng), ReLU(), MaxPool2D(), Flatten(), Dense(18, 4, rng=rng), latent()).astype(
        np.float64
    )


def randomise_biases(model, rng):
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"][...] = 0.3 * rng.standard_normal(layer.params["b"].shape)


def has_margin(model, x, margin=1e-3):
    """True when no ReLU input is near 0 and no pooling window near a tie: the function is smooth there."""
    nearest = smallest_kink_distance(model, x)
    return nearest is None or nearest.distance > margin


def finite_difference_jacobian(model, x, h=1e-6):
    """J[n] = dz[n]/dx[n], assembled column by column."""
    flat = x.reshape(x.shape[0], -1)
    columns = []
    for i in range(flat.shape[1]):
        step = np.zeros_like(flat)
        step[:, i] = h
        plus = model.forward((flat + step).reshape(x.shape), training=False)
        minus = model.forward((flat - step).reshape(x.shape), training=False)
        columns.append((plus - minus).reshape(x.shape[0], -1) / (2 * h))
    return np.stack(columns, axis=-1)


@pytest.mark.parametrize("build, shape", [(dense_encoder, (4, 5)), (conv_encoder, (3, 1, 6, 6))])
def test_exact_mode_equals_the_finite_difference_jacobian(build, shape):
    rng = np.random.default_rng(1)
    model = build(rng)
    randomise_biases(model, rng)
    x = rng.standard_normal(shape)
    if build is conv_encoder:
        assert has_margin(model, x)
    jacobian = finite_difference_jacobian(model, x)
    model.forward(x)
    value, _ = contractive_penalty(model, x, "exact", chunk_size=7)  # chunks that do not divide evenly
    assert value == pytest.approx(np.sum(jacobian**2) / x.shape[0], rel=1e-8)


def test_closed_form_equals_exact_for_a_single_sigmoid_layer():
    rng = np.random.default_rng(2)
    model = Sequential(Dense(7, 4, rng=rng), Sigmoid()).astype(np.float64)
    x = rng.standard_normal((5, 7))
    model.forward(x)
    closed, dx_closed = contractive_penalty(model, x, "closed_form")
    grads_closed = {k: g.copy() for k, g in model.grads.items()}
    model.zero_grad()
    model.forward(x)
    exact, dx_exact = contractive_penalty(model, x, "exact")
    assert closed == pytest.approx(exact, rel=1e-12)
    np.testing.assert_allclose(dx_closed, dx_exact, rtol=1e-10, atol=1e-14)
    for key, grad in grads_closed.items():
        np.testing.assert_allclose(grad, model.grads[key], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("build, shape", [(dense_encoder, (3, 5)), (conv_encoder, (2, 1, 6, 6))])
@settings(max_examples=5, deadline=None)
@given(seed=seeds)
def test_every_encoder_layer_tangent_pass_at_its_own_input(build, shape, seed):
    """Each layer of the encoders the penalty drives, at the activation it receives there. A pool after a
    ReLU sees windows of tied zeros, where it alone is not differentiable (the network is: no gradient
    reaches those zeros); it is checked wherever its input has no ties."""
    rng = np.random.default_rng(seed)
    model = build(rng)
    randomise_biases(model, rng)
    x = rng.standard_normal(shape)
    assume(has_margin(model, x))
    for layer in model.layers:
        if has_margin(layer, x):
            assert_layer_gradients(layer, x, rng=seed)
        x = layer.forward(x, training=False)


def test_hutchinson_mean_converges_to_exact():
    rng = np.random.default_rng(3)
    model = conv_encoder(rng)
    x = rng.standard_normal((2, 1, 6, 6))
    model.forward(x)
    exact, _ = contractive_penalty(model, x, "exact")
    estimates = []
    for seed in range(400):
        model.forward(x)
        estimates.append(contractive_penalty(model, x, "hutchinson", n_probes=4, rng=np.random.default_rng(seed))[0])
    mean, standard_error = np.mean(estimates), np.std(estimates) / np.sqrt(len(estimates))
    # the estimator is unbiased: its mean lies within 4 standard errors (and 3% here) of the truth
    assert abs(mean - exact) < 4 * standard_error
    assert abs(mean - exact) < 0.03 * exact


def penalty_gradient_errors(model, x, mode, weight, seed):
    """Relative errors of the analytic gradient of weight * P + <dz, z> against central differences."""
    dz = np.random.default_rng(seed).standard_normal((x.shape[0],) + model.output_shape(x.shape[1:]))

    def run():
        z = model.forward(x)
        value, dx = contractive_penalty(
            model, x, mode, dz=dz, weight=weight, n_probes=2, rng=np.random.default_rng(seed)
        )
        return weight * value + float(np.sum(dz * z)), dx

    model.zero_grad()
    _, dx = run()
    analytic = {key: grad.copy() for key, grad in model.grads.items()}
    errors = {"x": relative_error(dx, numerical_gradient(lambda: run()[0], x))}
    for key, param in model.params.items():
        errors[key] = relative_error(analytic[key], numerical_gradient(lambda: run()[0], param))
    return errors


@pytest.mark.parametrize("mode", ["closed_form", "exact", "hutchinson"])
@settings(max_examples=8, deadline=None)
@given(seed=seeds)
def test_penalty_gradients_dense_encoder(mode, seed):
    rng = np.random.default_rng(seed)
    model = dense_encoder(rng)
    randomise_biases(model, rng)
    x = rng.standard_normal((3, 5))
    errors = penalty_gradient_errors(model, x, mode, weight=0.7, seed=seed)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("mode", ["closed_form", "exact", "hutchinson"])
@settings(max_examples=6, deadline=None)
@given(seed=seeds)
def test_penalty_gradients_conv_encoder(mode, seed):
    rng = np.random.default_rng(seed)
    model = conv_encoder(rng)
    randomise_biases(model, rng)
    x = rng.standard_normal((2, 1, 6, 6))
    assume(has_margin(model, x))
    errors = penalty_gradient_errors(model, x, mode, weight=1.3, seed=seed)
    assert max(errors.values()) < 1e-6, errors


def test_linear_latent_works_with_tangent_modes_but_not_closed_form():
    rng = np.random.default_rng(4)
    model = conv_encoder(rng, latent=Identity)
    x = rng.standard_normal((2, 1, 6, 6))
    model.forward(x)
    value, _ = contractive_penalty(model, x, "hutchinson", rng=rng)
    assert value > 0
    model.forward(x)
    with pytest.raises(ValueError, match="Dense then Sigmoid"):
        contractive_penalty(model, x, "closed_form")


def test_arguments_are_validated():
    rng = np.random.default_rng(5)
    model = dense_encoder(rng)
    x = rng.standard_normal((2, 5))
    model.forward(x)
    with pytest.raises(ValueError, match="Unknown contractive mode 'full'"):
        contractive_penalty(model, x, "full")
    with pytest.raises(ValueError, match="np.random.Generator"):
        contractive_penalty(model, x, "hutchinson")
    with pytest.raises(ValueError, match=r"dz: expected shape \(2, 3\)"):
        contractive_penalty(model, x, "exact", dz=np.zeros((2, 4)))
    fresh = dense_encoder(rng)
    with pytest.raises(RuntimeError, match="without a cached forward"):
        contractive_penalty(fresh, x, "exact")


# -- the driver: defaults, chunking, dtypes ---------------------------------------------------------


def tanh_encoder(rng):
    return Sequential(Dense(5, 4, rng=rng, dtype=np.float64), Tanh(), Dense(4, 3, rng=rng, dtype=np.float64), Sigmoid())


def test_contractive_defaults_and_chunking():
    rng = np.random.default_rng(0)
    model = tanh_encoder(rng)
    x = rng.standard_normal((3, 5))
    model.forward(x)
    assert contractive_penalty(model, x)[0] == contractive_penalty(model, x, "closed_form")[0]
    one_probe = contractive_penalty(model, x, "hutchinson", rng=np.random.default_rng(1), n_probes=1)[0]
    assert contractive_penalty(model, x, "hutchinson", rng=np.random.default_rng(1))[0] == one_probe
    # one chunk or five: the same value and the same gradients, with and without the backward sweep
    results = []
    for chunk_size in (64, 2, 1):
        model.zero_grad()
        model.forward(x)
        value, dx = contractive_penalty(model, x, "exact", chunk_size=chunk_size)
        results.append((value, dx, {k: g.copy() for k, g in model.grads.items()}))
        value_only = contractive_penalty(model, x, "exact", chunk_size=chunk_size, backward=False)[0]
        assert value_only == pytest.approx(value, rel=1e-13)
    for value, dx, grads in results[1:]:
        assert value == pytest.approx(results[0][0], rel=1e-13)
        np.testing.assert_allclose(dx, results[0][1], rtol=1e-12, atol=1e-15)
        for key, grad in grads.items():
            np.testing.assert_allclose(grad, results[0][2][key], rtol=1e-12, atol=1e-15)


def test_contractive_penalty_of_a_one_layer_encoder():
    # tanh alone: J = diag(1 - tanh(x)^2), ||J||^2 = sum (1 - y^2)^2
    model = Sequential(Tanh())
    x = np.array([[0.0, np.log(2.0)]])
    model.forward(x)
    assert contractive_penalty(model, x, "exact")[0] == pytest.approx(1 + 0.64**2, rel=1e-14)


def test_contractive_penalty_keeps_float32_and_validates_probes():
    rng = np.random.default_rng(2)
    model = Sequential(Dense(5, 3, rng=rng), Sigmoid())
    x = rng.standard_normal((2, 5)).astype(np.float32)
    for mode in ("closed_form", "exact"):
        model.forward(x)
        assert contractive_penalty(model, x, mode)[1].dtype == np.float32
    model.forward(x)
    for n_probes in (0, 1.5):
        with pytest.raises(ValueError, match=f"n_probes={n_probes}"):
            contractive_penalty(model, x, "hutchinson", rng=rng, n_probes=n_probes)
