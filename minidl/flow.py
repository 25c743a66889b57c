"""Gradient flow: what each layer passes forward and backward, cheap enough to record at every step.

Backpropagation fails quietly. A sigmoid whose output sits at 0 or 1 has slope y (1 - y) = 0 and passes no
gradient to anything below it; a ReLU unit that is negative for every input passes none either; a weight
whose updates are a tiny (or a huge) fraction of its size learns slowly (or erratically). None of this shows
in the loss until it is too late to see why. This module measures it, layer by layer, from arrays a training
step already holds:

* for every parameter, the norm of its gradient ``||dL/dW||`` and the update-to-weight ratio
  ``||delta W|| / ||W||`` of the optimizer's step (:class:`FlowRecorder`, used by the Trainer at every step);
* for every activation layer, from the cache of its last training forward pass
  (:func:`activation_statistics`): the fraction of *dead* ReLU units (zero for every sample of the batch),
  of zero ReLU outputs, and of *saturated* sigmoid or tanh outputs (within :data:`SATURATION` of a bound);
* for any :class:`~minidl.layers.Sequential` on one batch, a picture of the network (:func:`trace`,
  :func:`table`, :func:`draw`): each layer with its input and output shapes, the mean and spread of what it
  outputs, and the norms of the gradients that flow back through it -- what micrograd's ``draw_dot`` shows
  for scalars, for whole layers.

Examples
--------
>>> import numpy as np
>>> from minidl.flow import table, trace
>>> from minidl.layers import Dense, ReLU, Sequential, Sigmoid
>>> rng = np.random.default_rng(0)
>>> network = Sequential(Dense(4, 3, rng=rng), ReLU(), Dense(3, 2, rng=rng), Sigmoid())
>>> flows = trace(network, rng.standard_normal((5, 4)).astype(np.float32), rng=rng)
>>> [(flow.name, flow.input_shape, flow.output_shape) for flow in flows[:2]]
[('dense_1', (5, 4), (5, 3)), ('re_lu_1', (5, 3), (5, 3))]
>>> print(table(flows).splitlines()[0])  # doctest: +NORMALIZE_WHITESPACE
layer  input  output  mean  std  forward  ||dx||  ||dL/dparam||
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from minidl.backend import kernels
from minidl.layers import Layer, ReLU, Sequential, Sigmoid, Tanh
from minidl.layers.memory import flat, memory_axes

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

SATURATION = 1e-3
"""An output is saturated within this distance of its bound: sigmoid y < 1e-3 or y > 1 - 1e-3 (its slope
y (1 - y) is then below 1e-3), tanh |y| > 1 - 1e-3 (slope 1 - y^2 below 2e-3)."""

TRACE_POINTS = 10
"""The first epoch's record also keeps the means over this many consecutive parts of its steps."""


# -- statistics of one step --------------------------------------------------------------------------------


def norm(array: np.ndarray) -> float:
    """The Euclidean (Frobenius) norm ``sqrt(sum(array ** 2))`` of any array, as a Python float."""
    values = np.ravel(array)
    return math.sqrt(float(np.dot(values, values)))


def activation_statistics(layer: Layer) -> dict[str, float]:
    """What an activation layer did in its last training forward pass, read from its cache.

    Returns an empty dict for a layer that is not a ReLU, Sigmoid or Tanh, or that holds no cache.

    * ReLU: ``dead_fraction``, the fraction of units (the elements of one sample's output) that are zero
      for every sample of the batch -- no gradient reaches the weights that feed them from this batch;
      ``zero_fraction``, the fraction of all outputs that are zero (each blocks its own gradient).
    * Sigmoid: ``saturated_fraction``, the fraction of outputs y < SATURATION or y > 1 - SATURATION.
    * Tanh: ``saturated_fraction``, the fraction of outputs |y| > 1 - SATURATION.

    Shapes
    ------
    The cached output: (N, ...), N the batch size.
    """
    cache = getattr(layer, "_cache", None)
    if cache is None:
        return {}
    if isinstance(layer, ReLU):
        mask = cache["mask"]  # True where the input was positive
        return {
            "dead_fraction": 1.0 - alive_units(mask) / (mask.size // mask.shape[0]),
            "zero_fraction": 1.0 - int(np.count_nonzero(mask)) / mask.size,
        }
    if isinstance(layer, Sigmoid):
        y = cache["y"]
        saturated = int(np.count_nonzero((y < SATURATION) | (y > 1.0 - SATURATION)))
        return {"saturated_fraction": saturated / y.size}
    if isinstance(layer, Tanh):
        y = cache["y"]
        return {"saturated_fraction": int(np.count_nonzero(np.abs(y) > 1.0 - SATURATION)) / y.size}
    return {}


def alive_units(mask: np.ndarray) -> int:
    """How many units are active for at least one sample: ``np.count_nonzero(mask.any(axis=0))``.

    Shapes
    ------
    mask : (N, ...) bool, in any memory layout (see :mod:`minidl.layers.memory`)

    Notes
    -----
    After a convolution the batch axis is the fastest in memory (images-last), and NumPy's ``any`` over it
    reads every flag, a few milliseconds per training step. There the N flags of a unit are N contiguous
    bytes, read as 64-bit words when N is a multiple of 8, and the kernel ``any_per_row`` stops
    at each unit's first nonzero word. With the batch axis the slowest, NumPy's ``any`` is fast already.
    """
    n = mask.shape[0]
    axes = memory_axes(mask)
    if axes[-1] != 0 or mask.size == 0:
        return int(np.count_nonzero(mask.any(axis=0)))
    rows = flat(mask, axes).reshape(-1, n)  # one row per unit
    if n % 8 == 0:
        rows = rows.view(np.uint64)
    alive = np.empty(len(rows), dtype=np.bool_)
    kernels.any_per_row(rows, alive)
    return int(np.count_nonzero(alive))


def activation_layers(networks: Layer | dict[str, Layer]) -> list[tuple[str, Layer]]:
    """Every ReLU, Sigmoid and Tanh of a network, or of a dict of them, with its name.

    In a Sequential a layer is named as in ``Sequential.names`` (``"re_lu_1"``), nested Sequentials
    included (``"block_1.re_lu_1"``); in a dict ``{"encoder": Sequential, ...}`` each name is prefixed by the
    network's key, as a model names its parameters (``"encoder.re_lu_1"``). A lone activation layer in the
    dict is named by its key.
    """
    if isinstance(networks, Sequential):
        networks = dict(zip(networks.names, networks.layers))
    elif isinstance(networks, Layer):
        networks = {Sequential._unique_names([networks])[0]: networks}
    found = []
    for name, network in networks.items():
        if isinstance(network, Sequential):
            found += [(f"{name}.{inner}", layer) for inner, layer in activation_layers(network)]
        elif isinstance(network, (ReLU, Sigmoid, Tanh)):
            found.append((name, network))
    return found


# -- recording a run ---------------------------------------------------------------------------------------


class FlowRecorder:
    """Per-step gradient-flow statistics of a training run, summarised once per epoch.

    Around every optimizer step call :meth:`before_step` and :meth:`after_step`; at the end of an epoch
    :meth:`summary` returns the epoch's record and :meth:`reset` starts the next one.

    Parameters
    ----------
    parameters : list of (name, param, grad)
        What the optimizer updates (``optimizer.parameters``).
    networks : Sequential, or dict of name -> Sequential or Layer
        Searched for activation layers (:func:`activation_layers`), e.g. ``model.networks``, named as
        the parameters are.

    Notes
    -----
    The cost per step is a copy of every parameter (to measure the update), three dot products per
    parameter (the norms of W, of the update and of the gradient), and a pass over each activation's
    cached mask or output; the activation statistics come from the last training forward pass before the
    step. A statistic that is undefined at a step -- the update ratio of a parameter that is all zero, as a
    bias at its initial value -- does not count in that parameter's mean.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.flow import FlowRecorder
    >>> from minidl.layers import Dense, ReLU, Sequential
    >>> from minidl.optim import Adam
    >>> rng = np.random.default_rng(0)
    >>> network = Sequential(Dense(3, 4, rng=rng), ReLU())
    >>> optimizer = Adam(network.parameters())
    >>> recorder = FlowRecorder(optimizer.parameters, network)
    >>> network.zero_grad(); y = network.forward(rng.standard_normal((8, 3)).astype(np.float32))
    >>> _ = network.backward(np.ones_like(y))
    >>> recorder.before_step(); optimizer.step(); recorder.after_step()
    >>> record = recorder.summary()
    >>> sorted(record["parameters"]), sorted(record["activations"]["re_lu_1"])
    (['dense_1.W', 'dense_1.b'], ['dead_fraction', 'zero_fraction'])
    """

    def __init__(
        self, parameters: Iterable[tuple[str, np.ndarray, np.ndarray]], networks: Layer | dict[str, Layer] | None = None
    ) -> None:
        self.parameters = list(parameters)
        self.activations = activation_layers(networks or {})
        self._before = [np.empty_like(param) for _, param, _ in self.parameters]
        self._weight_norms = [0.0] * len(self.parameters)
        self._steps: list[dict[str, dict[str, float]]] = []

    def reset(self) -> None:
        """Forget the steps recorded so far (at the start of an epoch)."""
        self._steps = []

    def before_step(self) -> None:
        """Keep a copy of every parameter, just before the optimizer changes them."""
        for index, (_, param, _) in enumerate(self.parameters):
            np.copyto(self._before[index], param)
            self._weight_norms[index] = norm(param)

    def after_step(self) -> None:
        """Record this step: gradient norms, update ratios and activation statistics."""
        step: dict[str, dict[str, float]] = {}
        for index, (name, param, grad) in enumerate(self.parameters):
            update = np.subtract(param, self._before[index], out=self._before[index])
            weight = self._weight_norms[index]
            step[name] = {"grad_norm": norm(grad), "update_ratio": norm(update) / weight if weight > 0 else math.nan}
        for name, layer in self.activations:
            step[name] = activation_statistics(layer)
        self._steps.append(step)

    def summary(self, with_trace: bool = False) -> dict[str, Any]:
        """The record of the steps since the last :meth:`reset`.

        Returns
        -------
        dict
            ``{"steps": n, "parameters": {name: {statistic: mean}}, "activations": {name: {statistic: mean}}}``,
            each mean taken over the steps. With ``with_trace``, every statistic also has ``<statistic>_trace``,
            its means over up to :data:`TRACE_POINTS` consecutive parts of the steps, and ``"trace_steps"``
            lists how many steps each part holds. Every value is a finite float, or None where none of the
            steps defined it; the record is plain JSON.
        """
        names = [name for name, _, _ in self.parameters] + [name for name, _ in self.activations]
        parts = np.array_split(np.arange(len(self._steps)), max(1, min(TRACE_POINTS, len(self._steps))))
        record: dict[str, Any] = {"steps": len(self._steps), "parameters": {}, "activations": {}}
        if with_trace:
            record["trace_steps"] = [len(part) for part in parts]
        for position, name in enumerate(names):
            group = "parameters" if position < len(self.parameters) else "activations"
            statistics: dict[str, float | None | list[float | None]] = {}
            keys = dict.fromkeys(key for step in self._steps for key in step[name])  # in order, once each
            for key in keys:
                values = np.array([step[name].get(key, math.nan) for step in self._steps], dtype=np.float64)
                statistics[key] = _mean(values)
                if with_trace:
                    statistics[f"{key}_trace"] = [_mean(values[part]) for part in parts]
            record[group][name] = statistics
        return record


def _mean(values: np.ndarray) -> float | None:
    """Mean of the finite values, None when there are none (JSON has no NaN)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


# -- a picture of one batch --------------------------------------------------------------------------------


@dataclass
class LayerFlow:
    """One layer of a :func:`trace`: its shapes, what it output, and the gradients that passed through it.

    Attributes
    ----------
    name, kind : str
        The layer's name in its Sequential (``"conv2d_1"``) and its class (``"Conv2D"``).
    input_shape, output_shape : tuple of int
        With the batch axis.
    forward : dict of str -> float
        ``mean`` and ``std`` of the output, and for an activation its :func:`activation_statistics`.
    dx_norm : float or None
        ``||dL/dx||``, the gradient the layer passes down; None where the backward pass stopped (a first
        layer whose ``needs_input_grad`` is False, or the layers below it).
    dy_norm : float
        ``||dL/dy||``, the gradient that reached the layer's output.
    grad_norms : dict of str -> float
        ``||dL/dparam||`` of each parameter (``{"W": ..., "b": ...}``), empty for a layer without any.
    """

    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    forward: dict[str, float]
    dy_norm: float = math.nan
    dx_norm: float | None = None
    grad_norms: dict[str, float] = field(default_factory=dict)


def trace(
    network: Layer,
    x: np.ndarray,
    loss: Callable[[np.ndarray], tuple[float, np.ndarray]] | None = None,
    rng: np.random.Generator | int | None = None,
) -> list[LayerFlow]:
    """One training forward and backward pass of ``x`` through ``network``, layer by layer, measured.

    Parameters
    ----------
    network : Sequential or Layer
        A single layer is traced as a network of one.
    x : ndarray, (N, ...)
        One batch.
    loss : callable or None
        ``loss(y) -> (value, dy)``, e.g. ``lambda y: mse(y, x)`` for an autoencoder. Without one, the
        gradient sent back is a random direction dy ~ N(0, 1) / N drawn from ``rng``: it shows how the
        network passes gradients, whatever the loss.
    rng : np.random.Generator or int or None
        For the random direction.

    Returns
    -------
    list of LayerFlow, in forward order.

    The network's gradients are zeroed first and hold this batch's gradients afterwards (as after
    ``network.zero_grad(); network.backward(...)``); its parameters are not changed.

    Shapes
    ------
    x : (N, *input_shape) -> one LayerFlow per layer, shapes with the batch axis.
    """
    layers = (
        list(zip(network.names, network.layers))
        if isinstance(network, Sequential)
        else [(_layer_name(network), network)]
    )
    if not isinstance(x, np.ndarray):
        raise TypeError(f"Expected x to be a numpy array (N, ...). Received: {type(x).__name__}.")
    network.zero_grad()
    flows, y = [], x
    for name, layer in layers:
        output = layer.forward(y, training=True)
        forward = {"mean": float(np.mean(output)), "std": float(np.std(output)), **activation_statistics(layer)}
        flows.append(LayerFlow(name, type(layer).__name__, tuple(y.shape), tuple(output.shape), forward))
        y = output
    if loss is None:
        rng = np.random.default_rng(rng)
        dy = (rng.standard_normal(y.shape) / len(x)).astype(y.dtype)
    else:
        dy = loss(y)[1]
    for flow, (_, layer) in zip(reversed(flows), reversed(layers)):
        flow.dy_norm = norm(dy)
        dx = layer.backward(dy)
        flow.grad_norms = {key: norm(grad) for key, grad in layer.grads.items()}
        if dx is None:  # the first layer with parameters needs no input gradient: the pass ends here
            break
        flow.dx_norm = norm(dx)
        dy = dx
    return flows


def _layer_name(layer: Layer) -> str:
    return Sequential._unique_names([layer])[0]


def _describe(flow: LayerFlow) -> tuple[str, str]:
    """The activation's statistic (or "") and the parameters' gradient norms (or "") of one layer, as text."""
    labels = {"dead_fraction": "dead", "zero_fraction": "zero", "saturated_fraction": "saturated"}
    special = ", ".join(f"{labels[key]} {value:.0%}" for key, value in flow.forward.items() if key in labels)
    grads = ", ".join(f"{key} {value:.2e}" for key, value in flow.grad_norms.items())
    return special, grads


def table(flows: list[LayerFlow]) -> str:
    """The :func:`trace` of a network as a text table, one row per layer in forward order.

    Columns: layer (and class), input and output shape, mean and standard deviation of the output,
    the activation statistics, ``||dL/dx||`` (``-`` where the backward pass stopped) and ``||dL/dparam||``.
    """
    rows = [("layer", "input", "output", "mean", "std", "forward", "||dx||", "||dL/dparam||")]
    for flow in flows:
        special, grads = _describe(flow)
        rows.append(
            (
                f"{flow.name} ({flow.kind})",
                str(flow.input_shape),
                str(flow.output_shape),
                f"{flow.forward['mean']:.3g}",
                f"{flow.forward['std']:.3g}",
                special,
                "-" if flow.dx_norm is None else f"{flow.dx_norm:.2e}",
                grads,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def draw(
    network: Layer,
    x: np.ndarray,
    loss: Callable[[np.ndarray], tuple[float, np.ndarray]] | None = None,
    rng: np.random.Generator | int | None = None,
    title: str | None = None,
) -> Figure:
    """A picture of :func:`trace`: one box per layer, top (input) to bottom (output), arrows between.

    Each box names the layer and its class, its input and output shapes, the forward statistics (output
    mean and standard deviation, dead or saturated fraction) and the backward ones (``||dx||`` and each
    parameter's gradient norm). A box is shaded by ``log10 ||dy||``, the gradient reaching its output,
    so a layer where the gradient dies stands out; dead or saturated fractions above a half are printed
    in red. Arguments as :func:`trace`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    flows = trace(network, x, loss, rng)
    logs = [math.log10(flow.dy_norm) if flow.dy_norm > 0 else -math.inf for flow in flows]
    finite = [value for value in logs if math.isfinite(value)] or [0.0]
    shade = Normalize(vmin=min(finite) - 1.0, vmax=max(finite) + 0.5)
    colours = colormaps["Blues"]
    figure, axis = plt.subplots(figsize=(7.5, 0.95 * len(flows) + 0.6))
    axis.set_xlim(0, 1)
    axis.set_ylim(len(flows) - 0.4, -0.6)
    axis.axis("off")
    for row, (flow, value) in enumerate(zip(flows, logs)):
        special, _ = _describe(flow)
        face = "white" if not math.isfinite(value) else colours(0.05 + 0.5 * shade(value))
        axis.add_patch(plt.Rectangle((0.02, row - 0.4), 0.96, 0.8, facecolor=face, edgecolor="black", linewidth=0.8))
        axis.text(
            0.04,
            row - 0.22,
            f"{flow.name} ({flow.kind})   {flow.input_shape} → {flow.output_shape}",
            fontsize=8.5,
            weight="bold",
            va="center",
        )
        forward = f"forward: mean {flow.forward['mean']:.3g}, std {flow.forward['std']:.3g}"
        alarming = any(flow.forward.get(key, 0.0) > 0.5 for key in ("dead_fraction", "saturated_fraction"))
        axis.text(0.04, row + 0.02, forward, fontsize=8, va="center")
        if special:
            axis.text(0.48, row + 0.02, special, fontsize=8, va="center", color="red" if alarming else "black")
        dx = "stopped (no input gradient needed)" if flow.dx_norm is None else f"{flow.dx_norm:.2e}"
        grads = ", ".join(f"‖d{key}‖ {value:.2e}" for key, value in flow.grad_norms.items())
        backward = f"backward: ‖dy‖ {flow.dy_norm:.2e}, ‖dx‖ {dx}" + (f";  {grads}" if grads else "")
        axis.text(0.04, row + 0.24, backward, fontsize=8, va="center")
        if row + 1 < len(flows):
            axis.annotate(
                "", xy=(0.5, row + 0.6), xytext=(0.5, row + 0.4), arrowprops={"arrowstyle": "->", "linewidth": 0.8}
            )
    axis.set_title(
        title or f"{len(flows)} layers, batch of {len(x)}: forward top to bottom, gradients bottom to top", fontsize=9
    )
    figure.tight_layout()
    return figure
