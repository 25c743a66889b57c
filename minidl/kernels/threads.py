"""When an element-wise kernel runs on one thread, and the decorator that compiles it both ways.

A sleeping thread takes tens of microseconds to wake: below the sizes here waking the others costs more
than they save (docs/kernels.md, "Threads on a small machine", gives the measurements).
:func:`one_thread_below` compiles a kernel twice from its one source, with ``parallel=True`` and
``parallel=False`` (where ``prange`` is a plain ``range``), and calls one build or the other by the size
of the kernel's first argument. The choice is made in Python, so such a kernel is called from Python
only, never from other compiled code (none of them is).
"""

import functools
import inspect
import types
from collections.abc import Callable
from typing import Any, ParamSpec

from numba import njit

SERIAL_BELOW = 131_072
"""ReLU, the sigmoid's select, the capped absolute value and the BCE rows."""

ADAM_SERIAL_BELOW = 262_144
"""Adam's update, which runs right after OpenBLAS's products: a VAE step's update of its largest
weight (143,360 numbers) took longer on two threads than on one."""

P = ParamSpec("P")


def _renamed(function: types.FunctionType, suffix: str) -> types.FunctionType:
    """A copy of ``function`` whose name ends in ``suffix``.

    Numba names a kernel's on-disk cache after the function and keys it by signature and bytecode, not by
    ``parallel``: the two builds of one source need two names, or each would load the other's code.
    """
    copy = types.FunctionType(
        function.__code__, function.__globals__, function.__name__ + suffix, function.__defaults__, function.__closure__
    )
    copy.__qualname__ = function.__qualname__ + suffix
    copy.__module__ = function.__module__
    copy.__doc__ = function.__doc__
    return copy


def one_thread_below(elements: int, **options: Any) -> Callable[[Callable[P, None]], Callable[P, None]]:
    """Compile a kernel with and without threads; run it on one thread when its first array has fewer
    than ``elements`` elements.

    ``options`` go to both ``njit`` calls (``cache=True`` is always on). The result has the kernel's
    name, signature and docstring; it is a Python function that calls one of the two builds.
    """

    def compile_twice(kernel: Callable[P, None]) -> Callable[P, None]:
        if not isinstance(kernel, types.FunctionType):
            raise TypeError(f"one_thread_below: expected a Python function. Received: {kernel!r}")
        threaded = njit(cache=True, parallel=True, **options)(kernel)
        one_thread = njit(cache=True, parallel=False, **options)(_renamed(kernel, "_one_thread"))
        first = next(iter(inspect.signature(kernel).parameters))

        @functools.wraps(kernel)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            size = (args[0] if args else kwargs[first]).size  # type: ignore[attr-defined]
            if size < elements:
                one_thread(*args, **kwargs)
            else:
                threaded(*args, **kwargs)

        return run

    return compile_twice
