"""Every example in the docstrings of the public API runs and prints what it says."""

import doctest
import importlib
import inspect

import pytest

import autoencoders
import minidl.testing

MODULES = [
    "autoencoders.models",
    "autoencoders.trainer",
    "autoencoders.architectures",
    "minidl.testing.gradients",
    "minidl.testing.adjoint",
    "minidl.testing.kinks",
    "minidl.gradcheck",
    "minidl.process",
    "minidl.backend",
    "minidl.layers.dense",
    "minidl.layers.conv",
    "minidl.layers.pool",
    "minidl.layers.shape",
    "minidl.layers.activations",
    "minidl.layers.sequential",
    "minidl.losses",
    "minidl.contractive",
    "minidl.optim",
    "minidl.serialization",
    "minidl.flow",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"


@pytest.mark.parametrize(
    "name",
    [
        name
        for name in autoencoders.__all__
        if inspect.isclass(getattr(autoencoders, name)) and not issubclass(getattr(autoencoders, name), Exception)
    ],
)
def test_every_public_class_has_an_example(name):
    assert ">>>" in (getattr(autoencoders, name).__doc__ or ""), f"autoencoders.{name} has no docstring example"


def test_the_kit_entry_points_have_examples():
    for function in (minidl.testing.assert_layer_gradients, minidl.testing.assert_adjoint):
        assert ">>>" in function.__doc__


PUBLIC_MATH = {
    "minidl.layers": [
        "Dense",
        "Conv2D",
        "Conv2DTranspose",
        "MaxPool2D",
        "ZeroPad2D",
        "Flatten",
        "Reshape",
        "ReLU",
        "Sigmoid",
        "Tanh",
        "Identity",
        "Sequential",
        "sigmoid",
    ],
    "minidl.losses": [
        "mse",
        "bce",
        "bce_with_logits",
        "kl_sparsity",
        "reparameterize",
        "reparameterize_backward",
        "gaussian_kl",
        "gaussian_nll",
        "elbo",
    ],
    "minidl.contractive": ["contractive_penalty"],
    "minidl.optim": ["SGD", "Adam"],
}


@pytest.mark.parametrize("module, name", [(m, n) for m, names in PUBLIC_MATH.items() for n in names])
def test_every_public_layer_loss_penalty_and_optimizer_has_an_example(module, name):
    assert ">>>" in (getattr(importlib.import_module(module), name).__doc__ or ""), f"{module}.{name} has no example"
