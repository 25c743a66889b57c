"""The one switch between the compiled kernels and their readable NumPy twins.

Every layer, loss and optimizer calls its hot loops as ``kernels.<name>(...)``, and ``kernels`` looks
the name up in the chosen backend:

* ``"numba"`` (the default): :mod:`minidl.kernels`, compiled by Numba, parallel where it pays;
* ``"numpy"``: :mod:`minidl.reference`, the same functions written in plain NumPy, with the same
  signatures and the same results (the tests hold each pair equal) -- the ones to read, and to step
  through in a debugger.

The choice is made by :func:`set_backend`, for a block by :func:`use_backend`, or before start-up by the
environment variable ``MINIDL_KERNELS`` (``numba`` or ``numpy``), which is read when a kernel is first
called. It holds for the whole process: like NumPy's print options, it is a setting of the session,
not of a model.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

BACKENDS = {"numba": "minidl.kernels", "numpy": "minidl.reference"}
ENVIRONMENT_VARIABLE = "MINIDL_KERNELS"


class _Choice:
    """The chosen backend's name; None until it is set or first needed (then read from the environment)."""

    name: str | None = None


def _checked(name: str, where: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"Expected {where} to be one of {', '.join(map(repr, BACKENDS))}. Received: {name!r}")
    return name


def get_backend() -> str:
    """The name of the backend the kernels run on: ``"numba"`` or ``"numpy"``."""
    if _Choice.name is None:
        _Choice.name = _checked(os.environ.get(ENVIRONMENT_VARIABLE, "numba"), f"${ENVIRONMENT_VARIABLE}")
    return _Choice.name


def set_backend(name: str) -> None:
    """Run every kernel of this process on ``name``: ``"numba"`` (compiled) or ``"numpy"`` (the twins).

    Examples:
        >>> import numpy as np
        >>> from minidl import backend
        >>> from minidl.layers import ReLU
        >>> backend.set_backend("numpy")
        >>> ReLU().forward(np.array([[-1.0, 2.0]]))
        array([[-0., 2.]])
        >>> backend.set_backend("numba")
    """
    _Choice.name = _checked(name, "the backend")


@contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the kernels of a ``with`` block on ``name``, then return to the backend before it.

    Examples:
        >>> import numpy as np
        >>> from minidl.backend import use_backend
        >>> from minidl.layers import Sigmoid
        >>> with use_backend("numpy"):   # the NumPy twins, readable in a debugger
        ...     y = Sigmoid().forward(np.zeros((1, 2)))
        >>> y
        array([[0.5, 0.5]])
    """
    before = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        _Choice.name = before


def backend_module() -> ModuleType:
    """The module of the chosen backend's kernels."""
    return importlib.import_module(BACKENDS[get_backend()])


class _Kernels:
    """``kernels.im2col`` is the chosen backend's ``im2col``, looked up at each call."""

    def __getattr__(self, name: str) -> Any:  # a kernel: any of the backend's functions
        return getattr(backend_module(), name)

    def __dir__(self) -> list[str]:
        return list(backend_module().__all__)


kernels = _Kernels()
