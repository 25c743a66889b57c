"""A stack of layers that is itself a layer."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from numpy.typing import DTypeLike

from minidl.layers.base import Layer
from minidl.serialization import load_params, save_arrays


class Sequential(Layer):
    """Layers applied one after another; backward runs them in reverse.

    Each layer gets a unique name (``conv2d_1``, ``dense_1``, ...) used to key parameters in
    :meth:`parameters`, in saved files and in optimizer state. ``params`` and ``grads`` of the stack
    are flat dicts ``"<layer name>.<param>"`` that share the layers' arrays.

    Shapes
    ------
    x : whatever the first layer takes -> y : whatever the last layer returns.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import Dense, ReLU, Sequential
    >>> model = Sequential(Dense(4, 8, rng=0), ReLU(), Dense(8, 2, rng=1))
    >>> y = model.forward(np.ones((3, 4), np.float32))
    >>> y.shape
    (3, 2)
    >>> model.backward(np.ones_like(y)).shape
    (3, 4)
    >>> sorted(model.grads)
    ['dense_1.W', 'dense_1.b', 'dense_2.W', 'dense_2.b']
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential takes Layer instances, received {type(layer).__name__}.")
        self.layers = list(layers)
        self.names = self._unique_names(self.layers)
        self._link_params()

    @staticmethod
    def _unique_names(layers: Sequence[Layer]) -> list[str]:
        counts: dict[str, int] = {}
        names = []
        for layer in layers:
            base = _snake_case(type(layer).__name__)
            counts[base] = counts.get(base, 0) + 1
            names.append(f"{base}_{counts[base]}")
        return names

    def _link_params(self) -> None:
        self.params, self.grads = {}, {}
        for name, layer in zip(self.names, self.layers):
            for key in layer.params:
                self.params[f"{name}.{key}"] = layer.params[key]
                self.grads[f"{name}.{key}"] = layer.grads[key]

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        y = x
        for layer in self.layers:
            y = layer.forward(y, training)
        self._store(training, x, y)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        self._cached(dy)
        for layer in reversed(self.layers):
            dx = layer.backward(dy)
            if dx is None:  # a layer that needs no input gradient: the layers below have no parameters
                return None
            dy = dx  # the input gradient of one layer is the output gradient of the layer below
        return dy

    @property
    def needs_input_grad(self) -> bool:
        """Whether ``backward`` returns dL/dx; setting it sets the flag of the first layer with parameters,
        where the backward pass then stops."""
        first = self._first_with_params()
        return True if first is None else first.needs_input_grad

    @needs_input_grad.setter
    def needs_input_grad(self, value: bool) -> None:
        first = self._first_with_params()
        if first is not None:
            first.needs_input_grad = bool(value)

    def _first_with_params(self) -> Layer | None:
        return next((layer for layer in self.layers if layer.params), None)

    def zero_grad(self) -> None:
        for layer in self.layers:
            layer.zero_grad()

    def astype(self, dtype: DTypeLike) -> Sequential:
        for layer in self.layers:
            layer.astype(dtype)
        self._link_params()
        self._cache = self._tangent_cache = None
        return self

    def parameters(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """Yield ``(name, param, grad)`` for every parameter, in layer order."""
        for key, param in self.params.items():
            yield key, param, self.grads[key]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def summary(self, input_shape: tuple[int, ...], print_fn: Callable[[str], object] | None = print) -> str:
        """A Keras-like table of layers, output shapes and parameter counts.

        ``input_shape`` is one sample's shape, without the batch axis, e.g. ``(1, 28, 28)``.
        """
        rows = [("Layer (type)", "Output Shape", "Param #")]
        shape = tuple(input_shape)
        for name, layer in zip(self.names, self.layers):
            shape = layer.output_shape(shape)
            rows.append((f"{name} ({type(layer).__name__})", str((None,) + shape), f"{layer.n_params:,}"))
        widths = [max(len(row[i]) for row in rows) + 2 for i in range(3)]
        rule = "=" * sum(widths)
        lines = [rule, "".join(cell.ljust(w) for cell, w in zip(rows[0], widths)), rule]
        lines += ["".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows[1:]]
        lines += [rule, f"Total params: {self.n_params:,}", rule]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write every parameter to ``path`` (``.npz``, atomically), keyed as in :attr:`params`."""
        save_arrays(path, self.params)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Read parameters saved by :meth:`save`, without pickle.

        A file that cannot be read raises :class:`~minidl.serialization.FileFormatError` (a ValueError);
        one whose names, shapes or dtypes differ from this model, or that holds the parameters of another
        kind of model (see :func:`~minidl.serialization.load_params`), raises ValueError. Either way the
        model is left as it was.
        """
        load_params(path, self.params, kind=type(self).__name__)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]

    def __repr__(self) -> str:
        inner = ",\n".join(f"  ({name}): {layer!r}" for name, layer in zip(self.names, self.layers))
        return f"Sequential(\n{inner}\n)"


def _snake_case(name: str) -> str:
    """``Conv2DTranspose`` -> ``conv2d_transpose``, as Keras names its layers."""
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()
