"""The backend switch (minidl.backend): every kernel the library calls goes through it, to the backend chosen."""

import importlib
import os
import pkgutil
import subprocess
import sys

import numpy as np
import pytest

import minidl
import minidl.kernels
from minidl import backend, reference
from minidl.backend import get_backend, set_backend, use_backend
from minidl.flow import activation_statistics
from minidl.layers import Conv2D, Conv2DTranspose, MaxPool2D, ReLU, Sequential, Sigmoid
from minidl.losses import bce_with_logits
from minidl.optim import Adam

KERNELS = sorted(
    name for name in dir(minidl.kernels) if not name.startswith("_") and callable(getattr(minidl.kernels, name))
)


def test_every_kernel_has_a_twin_of_the_same_name():
    assert sorted(reference.__all__) == KERNELS == sorted(minidl.kernels.__all__)


def test_no_module_binds_a_kernel_of_its_own_past_the_switch():
    for info in pkgutil.walk_packages(minidl.__path__, "minidl."):
        module = importlib.import_module(info.name)
        if info.name.startswith(("minidl.kernels", "minidl.reference")):
            continue
        bound = [
            name
            for name in KERNELS
            for implementation in (minidl.kernels, reference)
            if getattr(module, name, None) is getattr(implementation, name)
        ]
        assert not bound, f"{info.name} calls {bound} directly, not through minidl.backend.kernels"


def _touch_every_kernel(rng):
    """Forward and backward passes, a tangent pass, a loss and an Adam step that, together, call each kernel
    once at least."""
    model = Sequential(
        Conv2D(1, 2, rng=rng, algorithm="im2col"),
        ReLU(),
        Conv2D(2, 2, rng=rng, algorithm="winograd"),
        MaxPool2D(),
        Conv2DTranspose(2, 1, stride=2, padding="same", rng=rng),
        Sigmoid(),
    )
    x = rng.random((2, 1, 8, 8), dtype=np.float32)
    y = model.forward(x)
    model.backward(np.ones_like(y))
    activation_statistics(model[1])  # the dead units of a ReLU stored images-last (any_per_row)
    pool = MaxPool2D()
    pool.forward(x)
    pool.jvp(np.ones((1,) + x.shape, np.float32))
    bce_with_logits(rng.standard_normal((2, 5)).astype(np.float32), np.full((2, 5), 0.5, np.float32))
    Adam(model.parameters(), lr=1e-3).step()


@pytest.mark.parametrize("chosen", ["numba", "numpy"])
def test_each_kernel_runs_on_the_chosen_backend_only(chosen, monkeypatch):
    calls = {"numba": set(), "numpy": set()}
    for name, implementation in (("numba", minidl.kernels), ("numpy", reference)):
        for kernel in KERNELS:
            spy = _recording(getattr(implementation, kernel), calls[name], kernel)
            monkeypatch.setattr(implementation, kernel, spy)
    with use_backend(chosen):
        _touch_every_kernel(np.random.default_rng(0))
    other = "numpy" if chosen == "numba" else "numba"
    assert sorted(calls[chosen]) == KERNELS and not calls[other]


def _recording(function, record: set, name: str):
    """``function``, adding ``name`` to ``record`` at every call."""

    def spy(*args):
        record.add(name)
        return function(*args)

    return spy


def test_use_backend_restores_the_previous_choice_after_an_error():
    before = get_backend()
    with pytest.raises(RuntimeError), use_backend("numpy"):
        assert get_backend() == "numpy"
        raise RuntimeError
    assert get_backend() == before


def test_an_unknown_backend_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"^Expected the backend to be one of 'numba', 'numpy'\. Received: 'torch'$"):
        set_backend("torch")


@pytest.mark.parametrize(
    "value, expected", [("numpy", "numpy"), ("numba", "numba"), ("reference", "Expected $MINIDL_KERNELS to be one of")]
)
def test_the_environment_variable_chooses_the_backend_of_a_process(value, expected):
    code = "from minidl import backend\ntry:\n    print(backend.get_backend())\nexcept ValueError as e:\n    print(e)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, MINIDL_KERNELS=value),
    )
    assert result.stdout.startswith(expected)


def test_kernels_lists_the_chosen_backends_functions():
    with use_backend("numpy"):
        assert sorted(name for name in dir(backend.kernels)) == KERNELS
        assert backend.kernels.im2col is reference.im2col
