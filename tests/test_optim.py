"""Optimizers against hand-computed updates, their defaults (PyTorch's) and their checkpointable state, and
Adam's epsilon and its refusal of non-contiguous arrays."""

import re

import numpy as np
import pytest

from minidl.init import glorot_uniform, he_normal, zeros
from minidl.layers import Dense, Sequential
from minidl.optim import SGD, Adam

# every test here runs on both backends: the compiled kernels and their NumPy twins
pytestmark = pytest.mark.usefixtures("backend")


def one_param(value=1.0, grad=0.5):
    param = np.array([value], dtype=np.float64)
    gradient = np.array([grad], dtype=np.float64)
    return param, gradient, [("p", param, gradient)]


def test_sgd_with_momentum_matches_the_recurrence():
    param, grad, parameters = one_param()
    optimizer = SGD(parameters, lr=0.1, momentum=0.9)
    optimizer.step()  # v = 0.5, p = 1 - 0.05
    optimizer.step()  # v = 0.9 * 0.5 + 0.5 = 0.95, p = 0.95 - 0.095
    assert param[0] == pytest.approx(1.0 - 0.05 - 0.095)


def test_adam_first_steps_match_the_bias_corrected_formula():
    param, grad, parameters = one_param(grad=0.5)
    optimizer = Adam(parameters, lr=0.01)
    optimizer.step()
    # After bias correction the first step is lr * g / (|g| + eps): a step of almost exactly lr.
    assert param[0] == pytest.approx(1.0 - 0.01 * 0.5 / (0.5 + 1e-8))
    grad[0] = -1.0
    optimizer.step()
    m = (0.9 * 0.05 + 0.1 * -1.0) / (1 - 0.9**2)
    v = (0.999 * 0.001 * 0.25 + 0.001 * 1.0) / (1 - 0.999**2)
    assert param[0] == pytest.approx(1.0 - 0.01 * 0.5 / (0.5 + 1e-8) - 0.01 * m / (np.sqrt(v) + 1e-8))


def test_adam_keeps_float32_parameters_float32():
    model = Sequential(Dense(3, 2, rng=0))
    optimizer = Adam(model.parameters())
    for _, _, grad in model.parameters():
        grad[...] = 1.0
    optimizer.step()
    assert all(param.dtype == np.float32 for _, param, _ in model.parameters())


def test_adam_state_round_trip_resumes_identically():
    rng = np.random.default_rng(0)
    gradients = rng.standard_normal((6, 4))

    def run(steps, state=None, start=None):
        param = np.zeros(4) if start is None else start.copy()
        grad = np.zeros(4)
        optimizer = Adam([("p", param, grad)], lr=0.1)
        if state is not None:
            optimizer.load_state_dict(state)
        for g in steps:
            grad[...] = g
            optimizer.step()
        return param, optimizer.state_dict()

    straight, _ = run(gradients)
    half, state = run(gradients[:3])
    resumed, _ = run(gradients[3:], state=state, start=half)
    np.testing.assert_array_equal(straight, resumed)


def test_optimizer_state_mismatch_is_rejected():
    _, _, parameters = one_param()
    optimizer = Adam(parameters)
    with pytest.raises(ValueError, match="state keys do not match"):
        optimizer.load_state_dict({"step": np.zeros((), np.int64)})
    state = optimizer.state_dict()
    state["m/p"] = np.zeros(3)
    with pytest.raises(ValueError, match="expected shape"):
        optimizer.load_state_dict(state)
    # the kind of each array is checked too, and nothing is assigned before every entry has passed
    for key, wrong in (("m/p", np.zeros(1, np.int64)), ("step", np.zeros((), np.float64)), ("v/p", [0.0])):
        state = optimizer.state_dict()
        before = {name: value.copy() for name, value in optimizer.state.items()}
        state[key] = wrong
        with pytest.raises(ValueError, match=rf"state '{key}': expected an array of"):
            optimizer.load_state_dict(state)
        assert all(np.array_equal(optimizer.state[name], value) for name, value in before.items())
    single = Adam([("p", np.zeros(3, np.float32), np.zeros(3, np.float32))])
    single.load_state_dict(single.state_dict())  # float32 state is floating state too


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda p: SGD(p, lr=0.0), "lr=0.0"),
        (lambda p: SGD(p, momentum=1.0), "momentum=1.0"),
        (lambda p: Adam(p, beta1=1.0), "beta1=1.0"),
        (lambda p: Adam([], lr=1e-3), "no parameters"),
    ],
)
def test_optimizer_arguments_are_validated(build, message):
    with pytest.raises(ValueError, match=message):
        build(one_param()[2])


def test_initializers_have_the_keras_scales():
    rng = np.random.default_rng(0)
    w = glorot_uniform((400, 600), 400, 600, rng)
    limit = np.sqrt(6 / 1000)
    assert w.dtype == np.float32 and np.abs(w).max() <= limit
    assert w.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    w = he_normal((500, 500), 500, 500, rng)
    assert np.abs(w).max() <= 2 * np.sqrt(2 / 500) / 0.8796256610342398 + 1e-6
    assert w.std() == pytest.approx(np.sqrt(2 / 500), rel=0.02)
    assert not zeros((3,)).any()


@pytest.mark.parametrize(
    "lr, error",
    [
        ("0.1", TypeError),
        (True, TypeError),
        (None, TypeError),
        (float("inf"), ValueError),
        (float("nan"), ValueError),
        (0.0, ValueError),
        (-1e-3, ValueError),
    ],
)
def test_a_learning_rate_that_is_not_a_finite_positive_number_is_refused_in_one_line(lr, error):
    _, _, parameters = one_param()
    for optimizer in (SGD, Adam):
        expected = rf"^Expected lr to be a finite positive number\. Received: lr={re.escape(repr(lr))}$"
        with pytest.raises(error, match=expected):
            optimizer(parameters, lr=lr)


def test_optimizer_defaults_are_pytorchs():
    sgd = SGD(one_param()[2])
    assert (sgd.lr, sgd.momentum) == (0.01, 0.0)
    adam = Adam(one_param()[2])
    assert (adam.lr, adam.beta1, adam.beta2, adam.eps) == (1e-3, 0.9, 0.999, 1e-8)


def test_state_dict_is_a_copy_and_the_step_an_integer():
    _, _, parameters = one_param()
    adam = Adam(parameters)
    adam.step()
    saved = adam.state_dict()
    adam.step()
    assert int(saved["step"]) == 1 and saved["step"].dtype == np.int64
    assert not np.array_equal(saved["m/p"], adam.state["m/p"])


@pytest.mark.parametrize("which", ["param", "grad"])
def test_adam_rejects_a_non_contiguous_array_of_the_right_shape(which):
    base = np.ones((3, 4))
    strided = np.ones((4, 3)).T  # (3, 4), not C-contiguous
    param, grad = (strided, base) if which == "param" else (base, strided)
    with pytest.raises(ValueError, match="C-contiguous"):
        Adam([("p", param, grad)])


def test_adam_epsilon_is_added_to_the_root():
    # first step with g = 1e-8: m_hat = g, sqrt(v_hat) = |g|, so the step is lr * g / (|g| + eps) = lr / 2
    param, grad = np.zeros(1), np.full(1, 1e-8)
    Adam([("p", param, grad)], lr=0.1).step()
    assert param[0] == pytest.approx(-0.05, rel=1e-12)
