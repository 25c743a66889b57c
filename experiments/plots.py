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
            tiled[top:top + height, left:left + width] = image
    return tiled


def image_grid(rows: list[np.ndarray], path: Path, row_labels: list[str] | None = None,
               title: str | None = None, column_labels: list[str] | None = None) -> Path:
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
    axis.set_xticks([c * (width + gap) + (width - 1) / 2 for c in range(n_columns)] if column_labels else [],
                    column_labels or [], fontsize=8)
    axis.set_yticks([r * (height + gap) + (height - 1) / 2 for r in range(n_rows)] if row_labels else [],
                    row_labels or [], fontsize=9)
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
        axis.text(0.5, 0.5, "all codes are (nearly) identical:\nno t-SNE embedding exists",
                  ha="center", va="center", transform=axis.transAxes)
    else:
        scatter = axis.scatter(embedding[:, 0], embedding[:, 1], c=labels, cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
        figure.colorbar(scatter, ax=axis, ticks=range(10), fraction=0.046)
    axis.set_title(title, fontsize=10)
    axis.set_xticks([])
    axis.set_yticks([])
    return _save(figure, path)


def sweep_panels(panels: dict[str, dict[str, tuple[list, list, list]]], xlabel: str, log_axis: bool, path: Path,
                 title: str) -> Path:
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
    for axis in axes.ravel()[len(panels):]:
        axis.set_visible(False)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, path)
