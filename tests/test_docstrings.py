"""Every example in the docstrings of the public API runs and prints what it says."""

import doctest
import importlib
import inspect

import pytest

import autoencoders
import minidl.testing

MODULES = ["autoencoders.models", "autoencoders.trainer", "autoencoders.architectures", "minidl.testing.gradients",
           "minidl.testing.adjoint", "minidl.testing.kinks", "minidl.gradcheck", "minidl.serialization"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"


@pytest.mark.parametrize("name", [name for name in autoencoders.__all__ if inspect.isclass(getattr(autoencoders, name))
                                  and not issubclass(getattr(autoencoders, name), Exception)])
def test_every_public_class_has_an_example(name):
    assert ">>>" in (getattr(autoencoders, name).__doc__ or ""), f"autoencoders.{name} has no docstring example"


def test_the_kit_entry_points_have_examples():
    for function in (minidl.testing.assert_layer_gradients, minidl.testing.assert_adjoint):
        assert ">>>" in function.__doc__
