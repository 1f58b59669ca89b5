"""The paper's figures as PNG files (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, MaxNLocator

from critical_neurons.outputs.records import Channel
from critical_neurons.reporting.results import layer_and_type, location_counts
from critical_neurons.reporting.tables import COMPARISON_METHODS

STYLES = {"ours": ("tab:red", "o"), "random": ("tab:gray", "s"), "AM": ("tab:blue", "^"), "GM": ("tab:green", "D")}
LABELS = {"ours": "ours (perturbation)", "random": "random (mean, min-max band)", "AM": "activation magnitude (AM)", "GM": "gradient magnitude (GM)"}


def _log10(values: Sequence[float | None]) -> np.ndarray:
    return np.array([value if value is not None and math.isfinite(value) else np.nan for value in values], dtype=float)


def _power_of_ten_axis(axis: plt.Axes) -> None:
    """Plot log10 values on a linear axis labelled 10^k: a log scale that also holds perplexities past 1e308."""
    axis.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"$10^{{{value:g}}}$"))


def _save(figure: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)
    return path


def plot_perplexity_curves(panels: dict[str, dict[str, dict[int, dict[str, Any]]]], path: str | Path) -> Path:
    """Perplexity (log scale) against the number of neurons masked: one panel per model and data set, one line per method.

    Panels rather than one crowded plot: each model keeps its own perplexity range, and no line of
    one model sits on another model's axis.
    """
    columns = min(len(panels), 3)
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(7 * columns, 4.5 * rows), squeeze=False)
    for axis, (title, curves) in zip(axes.flat, panels.items()):
        for method in COMPARISON_METHODS:
            curve = curves.get(method)
            if not curve:
                continue
            levels = sorted(curve)
            color, marker = STYLES[method]
            axis.plot(levels, _log10([curve[level]["log10"] for level in levels]), color=color, marker=marker, markersize=4, label=LABELS[method])
            if method == "random":
                low = _log10([curve[level].get("log10_min") for level in levels])
                high = _log10([curve[level].get("log10_max") for level in levels])
                axis.fill_between(levels, low, high, color=color, alpha=0.2, linewidth=0)
        _power_of_ten_axis(axis)
        axis.set_xscale("symlog", linthresh=1)  # shows the first few neurons and the 100..1000 sweep in one plot
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_xlabel("neurons masked (symlog scale; ranked records, random: distinct channels)")
        axis.set_ylabel("perplexity (log scale)")
        axis.set_title(title)
        axis.grid(True, which="major", alpha=0.3)
        axis.legend(loc="best", fontsize=8)
    for axis in axes.flat[len(panels) :]:
        axis.set_visible(False)
    return _save(figure, path)


def plot_locations(channels: Sequence[Channel], critical: Sequence[Channel], path: str | Path, title: str) -> Path:
    """Where ranked channels sit: a bar per layer, stacked by module type; critical channels starred."""
    layers, kinds, counts = location_counts(channels)
    figure, axis = plt.subplots(figsize=(max(9, 0.3 * len(layers) + 4), 4.5))
    bottom = np.zeros(len(layers))
    colors = plt.get_cmap("tab10")
    for index, kind in enumerate(kinds):
        axis.bar(layers, counts[index], bottom=bottom, color=colors(index % 10), label=kind, width=0.8)
        bottom += counts[index]
    critical_layers = sorted({layer for layer, _ in map(layer_and_type, (channel.layer_name for channel in critical)) if layer is not None})
    if critical_layers:
        heights = [bottom[layers.index(layer)] if layer in layers else 0 for layer in critical_layers]
        axis.scatter(critical_layers, np.asarray(heights) + max(0.5, 0.03 * bottom.max(initial=1)), marker="*", s=140, color="black", zorder=3, label="layer holding a critical channel (stage 2)")
    axis.set_ylim(0, 1.1 * bottom.max(initial=1) + 1)
    axis.set_xlabel("layer index")
    axis.set_ylabel("distinct channels (count)")
    axis.set_title(title, fontsize=10)
    if layers:
        axis.set_xticks(layers)
        axis.tick_params(axis="x", labelsize=7)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="module type", title_fontsize=7)
    return _save(figure, path)


def plot_ablation(groups: dict[str, tuple[str, list[dict[str, Any]]]], path: str | Path) -> Path:
    """One panel per ablated parameter: top-k overlap and Spearman rho with the default, critical-set size on a second axis.

    Each panel's rows are one model's (see :func:`critical_neurons.reporting.tables.ablation_rows`); its title names it.
    """
    figure, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for axis, (name, (key, rows)) in zip(axes[0], groups.items()):
        rows = [row for row in rows if isinstance(row.get(key), (int, float))]
        x = [row[key] for row in rows]
        axis.plot(x, [row["overlap"] for row in rows], marker="o", color="tab:red", label="top-k channel overlap")
        axis.plot(x, [row["spearman"] for row in rows], marker="s", color="tab:blue", label="Spearman rho")
        lowest = min([0.0, *(row[name] for row in rows for name in ("overlap", "spearman") if isinstance(row[name], float) and math.isfinite(row[name]))])
        axis.set_ylim(lowest - 0.05, 1.05)
        axis.set_xlabel(name)
        axis.set_ylabel("agreement with the default setting")
        axis.set_title(f"model: {rows[0]['model']}" if rows else "", fontsize=10)
        sizes = [row.get("critical_channels") for row in rows]
        if any(size is not None for size in sizes):
            twin = axis.twinx()
            twin.bar(x, [size or 0 for size in sizes], width=0.3 * (max(x) - min(x) or 1) / max(len(x), 1), color="tab:gray", alpha=0.35, label="critical channels")
            twin.set_ylabel("critical-set size (distinct channels)")
            twin.yaxis.set_major_locator(MaxNLocator(integer=True))
            twin.legend(loc="lower right", fontsize=8)
        axis.set_zorder(2)
        axis.patch.set_visible(False)
        axis.legend(loc="lower left", fontsize=8)
        axis.grid(True, alpha=0.3)
    return _save(figure, path)
