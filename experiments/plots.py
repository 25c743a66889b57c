"""Figures of the report, drawn with matplotlib's Agg backend (no screen needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def mosaic(rows: list[np.ndarray], gap: int) -> np.ndarray:
    """The images of ``rows`` pasted into one array, ``gap`` white (1.0) pixels between cells; cells past
    the end of a short row stay white. Shapes: each row (M, 1, H, W) or (M, H, W) -> (R (H + gap) - gap,
    C (W + gap) - gap) for R rows and C images in the longest."""
    n_rows, n_columns = len(rows), max(len(row) for row in rows)
    height, width = np.asarray(rows[0]).shape[-2:]
    tiled = np.ones((n_rows * (height + gap) - gap, n_columns * (width + gap) - gap))
    for r, row in enumerate(rows):
        for c, image in enumerate(np.asarray(row).reshape(-1, height, width)):
            top, left = r * (height + gap), c * (width + gap)
            tiled[top : top + height, left : left + width] = image
    return tiled


def image_grid(
    rows: list[np.ndarray],
    path: Path,
    row_labels: list[str] | None = None,
    title: str | None = None,
    column_labels: list[str] | None = None,
) -> Path:
    """One row of grey images per array, on a white ground. Shapes: each row (M, 1, H, W) or (M, H, W).

    The cells are drawn as one :func:`mosaic` by a single ``imshow``: an axes per cell made each
    figure of a run take a second.
    """
    n_rows, n_columns = len(rows), max(len(row) for row in rows)
    height, width = np.asarray(rows[0]).shape[-2:]
    gap = max(1, max(height, width) // 7)
    scale = 1.1 * max(1.0, 28 / max(height, width))
    figure, axis = plt.subplots(figsize=(n_columns * scale * width / 28 + 0.8, n_rows * scale * height / 28 + 0.4))
    axis.imshow(mosaic(rows, gap), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axis.set_xticks(
        [c * (width + gap) + (width - 1) / 2 for c in range(n_columns)] if column_labels else [],
        column_labels or [],
        fontsize=8,
    )
    axis.set_yticks(
        [r * (height + gap) + (height - 1) / 2 for r in range(n_rows)] if row_labels else [],
        row_labels or [],
        fontsize=9,
    )
    axis.xaxis.tick_top()
    axis.tick_params(length=0)
    for spine in axis.spines.values():
        spine.set_visible(False)
    if title:
        figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def loss_curves(histories: dict[str, list[dict]], key: str, path: Path, ylabel: str, log_scale: bool = True) -> Path:
    """One line per model of ``record[key]`` against the epoch (a log axis unless ``log_scale`` is false, as
    for values that may be negative)."""
    figure, axis = plt.subplots(figsize=(5.5, 3.5))
    for name, history in histories.items():
        values = [record[key] for record in history if key in record]
        axis.plot(range(1, len(values) + 1), values, marker="o", label=name)
    axis.set_xlabel("epoch")
    axis.set_ylabel(ylabel)
    if log_scale:
        axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _save(figure, path)


def kl_bars(kl_by_model: dict[str, list[float]], path: Path, active: float) -> Path:
    """Grouped bars of each latent dimension's KL (nats), one colour per model, and the line above which a
    dimension counts as active."""
    figure, axis = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(kl_by_model)
    for i, (name, kl) in enumerate(kl_by_model.items()):
        axis.bar(np.arange(len(kl)) + (i - (len(kl_by_model) - 1) / 2) * width, kl, width, label=name)
    axis.axhline(active, color="black", linewidth=0.8, linestyle="--", label=f"active: KL > {active} nat")
    axis.set_xticks(range(max(len(kl) for kl in kl_by_model.values())))
    axis.set_xlabel("latent dimension")
    axis.set_ylabel("KL (nats per face)")
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over them
    return _save(figure, path)


def tsne_scatter(embedding: np.ndarray | None, labels: np.ndarray, path: Path, title: str) -> Path:
    """t-SNE points coloured by digit; a note instead when there is no embedding (constant codes).

    Shapes: embedding (N, 2), labels (N,).
    """
    figure, axis = plt.subplots(figsize=(5, 5))
    if embedding is None:
        axis.text(
            0.5,
            0.5,
            "all codes are (nearly) identical:\nno t-SNE embedding exists",
            ha="center",
            va="center",
            transform=axis.transAxes,
        )
    else:
        scatter = axis.scatter(embedding[:, 0], embedding[:, 1], c=labels, cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
        figure.colorbar(scatter, ax=axis, ticks=range(10), fraction=0.046)
    axis.set_title(title, fontsize=10)
    axis.set_xticks([])
    axis.set_yticks([])
    return _save(figure, path)


def sweep_panels(
    panels: dict[str, dict[str, tuple[list, list, list]]], xlabel: str, log_axis: bool, path: Path, title: str
) -> Path:
    """One small plot per panel, each line its means with error bars of one standard deviation.

    ``panels[title][line] = (x, mean, std)``; a log x axis when ``log_axis``.
    """
    columns = min(3, len(panels))
    rows = int(np.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    for axis, (name, lines) in zip(axes.ravel(), panels.items()):
        for label, (x, mean, std) in lines.items():
            axis.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=label or None)
        if log_axis:
            axis.set_xscale("log")
        axis.set_title(name, fontsize=9)
        axis.set_xlabel(xlabel, fontsize=8)
        axis.grid(alpha=0.3)
        if any(label for label in lines):
            axis.legend(fontsize=6)
    for axis in axes.ravel()[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def _flow_positions(history: list[dict]) -> list[float]:
    """Where each value of the records' gradient flow sits on an axis of epochs: a record's mean at the middle
    of its epoch, the points of a trace (the first epoch's) at the middle of their parts of the epoch."""
    positions = []
    for record in history:
        flow, start = record["gradient_flow"], record["epoch"] - 1
        if "trace_steps" in flow:
            ends = np.cumsum(flow["trace_steps"])
            positions += list(start + (ends - np.asarray(flow["trace_steps"]) / 2) / ends[-1])
        else:
            positions.append(start + 0.5)
    return positions


def _flow_series(history: list[dict], group: str, name: str, key: str) -> list[float]:
    """The values of one statistic, with each trace in place of its epoch's mean (NaN where undefined)."""
    values = []
    for record in history:
        statistics = record["gradient_flow"][group].get(name, {})
        if "trace_steps" in record["gradient_flow"]:
            values += statistics.get(f"{key}_trace", [None] * len(record["gradient_flow"]["trace_steps"]))
        else:
            values.append(statistics.get(key))
    return [np.nan if value is None else value for value in values]


def gradient_flow(histories: dict[str, list[dict]], path: Path, title: str) -> Path:
    """One column per model: above, the gradient norm of every weight (``W``) per epoch on a symmetric log axis
    (linear near 0, so a gradient that is exactly 0 shows as 0); below, the fraction of dead ReLU units (solid)
    and of saturated sigmoid or tanh outputs (dashed). The first epoch is drawn from its trace, the later ones
    from their means (see :class:`minidl.flow.FlowRecorder`)."""
    histories = {name: [r for r in history if "gradient_flow" in r] for name, history in histories.items()}
    histories = {name: history for name, history in histories.items() if history}
    columns = len(histories)
    figure, axes = plt.subplots(2, columns, figsize=(3.6 * columns + 1.2, 6.0), squeeze=False, sharex="col")
    norms = [
        value
        for history in histories.values()
        for record in history
        for statistics in record["gradient_flow"]["parameters"].values()
        for value in [statistics.get("grad_norm"), *statistics.get("grad_norm_trace", [])]
        if value
    ]
    floor = 10.0 ** np.floor(np.log10(min(norms))) if norms else 1e-8
    # one colour per layer name in every column, so that the legend holds for all of them
    weights = list(
        dict.fromkeys(
            name
            for history in histories.values()
            for name in history[-1]["gradient_flow"]["parameters"]
            if name.endswith(".W")
        )
    )
    activations = list(
        dict.fromkeys(name for history in histories.values() for name in history[-1]["gradient_flow"]["activations"])
    )
    colours = dict(zip(weights, plt.cm.viridis(np.linspace(0, 0.9, len(weights)))))
    colours.update(zip(activations, plt.cm.plasma(np.linspace(0, 0.85, len(activations)))))
    handles = {}
    for column, (model, history) in enumerate(histories.items()):
        x = _flow_positions(history)
        flow = history[-1]["gradient_flow"]
        top, bottom = axes[0, column], axes[1, column]
        for name in (name for name in weights if name in flow["parameters"]):
            (line,) = top.plot(
                x, _flow_series(history, "parameters", name, "grad_norm"), marker=".", color=colours[name]
            )
            handles.setdefault(name[:-2], line)
        for name in (name for name in activations if name in flow["activations"]):
            colour = colours[name]
            key = "dead_fraction" if "dead_fraction" in flow["activations"][name] else "saturated_fraction"
            style = "-" if key == "dead_fraction" else "--"
            (line,) = bottom.plot(x, _flow_series(history, "activations", name, key), style, marker=".", color=colour)
            handles.setdefault(f"{name} ({'dead' if key == 'dead_fraction' else 'saturated'})", line)
        top.set_yscale("symlog", linthresh=floor)
        top.set_ylim(bottom=0)
        top.set_title(model, fontsize=9)
        bottom.set_ylim(-0.03, 1.03)
        bottom.set_xlabel("epoch", fontsize=8)
        for axis in (top, bottom):
            axis.grid(alpha=0.3)
            axis.tick_params(labelsize=7)
            axis.set_xlim(0, max(1.0, len(history)))
    axes[0, 0].set_ylabel("‖∂L/∂W‖ per batch", fontsize=8)
    axes[1, 0].set_ylabel("fraction of units", fontsize=8)
    figure.legend(list(handles.values()), list(handles), fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, path)
