"""Figures of a characterisation result: the critical dimension through the residual stream, and the per-position profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from critical_neurons.reporting.figures import _save, plt


def _label(block: dict[str, Any]) -> str:
    return f"{block['layer_name']}[{block['hidden_idx']}]"


def _magnitudes(values: list[float | None]) -> np.ndarray:
    """|values| with zeros and missing values as NaN, so a log axis leaves gaps instead of failing."""
    array = np.abs(np.array([np.nan if value is None else value for value in values], dtype=float))
    return np.where(array > 0, array, np.nan)


def plot_residual_stream(result: dict[str, Any], path: str | Path) -> Path | None:
    """|hidden state| of each critical dimension at its peak position, per layer, unmasked and masked, against the layer median.

    None when no critical channel writes to the residual stream.
    """
    blocks = [block for block in result["channels"] if block["residual_stream"]]
    if not blocks:
        return None
    figure, axis = plt.subplots(figsize=(8, 4.5))
    colors = plt.get_cmap("tab10")
    for index, block in enumerate(blocks):
        residual = block["residual_stream"]
        layers = np.arange(len(residual["values"]))
        color = colors(index % 10)
        name = f"dim {residual['dimension']} at position {residual['position']} ({_label(block)})"
        axis.plot(layers, _magnitudes(residual["values"]), color=color, marker="o", markersize=3, label=f"{name}, unmasked")
        axis.plot(layers, _magnitudes(residual["masked_values"]), color=color, linestyle="--", marker="x", markersize=3, label=f"{name}, channel masked")
        if residual["written_into_hidden_state"] is not None:
            axis.axvline(residual["written_into_hidden_state"], color=color, linestyle=":", linewidth=1)
    medians = blocks[0]["residual_stream"]["layer_median_abs"]
    axis.plot(np.arange(len(medians)), _magnitudes(medians), color="black", linewidth=1, label="median |hidden state| of the layer (unmasked)")
    axis.set_yscale("log")
    axis.set_xlabel("hidden state (0: embeddings; i: output of layer i-1; last: after the final norm)")
    axis.set_ylabel("|value| (log scale)")
    axis.set_title("Critical dimension through the residual stream (dotted: hidden state it is written into)", fontsize=10)
    axis.grid(True, which="major", alpha=0.3)
    axis.legend(fontsize=7, loc="best")
    return _save(figure, path)


def plot_activation_profiles(result: dict[str, Any], path: str | Path) -> Path:
    """|output| of each critical channel at every position of the text, with its module's median |output| dashed and the peak token named."""
    figure, axis = plt.subplots(figsize=(9, 4.5))
    colors = plt.get_cmap("tab10")
    for index, block in enumerate(result["channels"]):
        activation = block["activation"]
        color = colors(index % 10)
        positions = np.arange(len(activation["values"]))
        axis.plot(positions, _magnitudes(activation["values"]), color=color, linewidth=1, marker=".", markersize=3, label=_label(block))
        axis.axhline(activation["module_median_abs"], color=color, linestyle="--", linewidth=0.8, label=f"median |output| of {block['layer_name']}")
        axis.annotate(
            f"{activation['peak_token']!r} ({activation['ratio_to_median']:.3g}x median)",
            (activation["peak_position"], activation["peak_abs"]),
            textcoords="offset points", xytext=(8, -4), fontsize=8, color=color,
        )
    axis.set_yscale("log")
    axis.set_xlabel("token position")
    axis.set_ylabel("|output| (log scale)")
    axis.set_title("Critical channels' outputs along the text", fontsize=10)
    axis.grid(True, which="major", alpha=0.3)
    axis.legend(fontsize=7, loc="best")
    return _save(figure, path)


def plot_characterization(result: dict[str, Any], folder: str | Path, prefix: str = "characterization") -> list[Path]:
    """Both figures into ``folder``: ``<prefix>_residual_stream.png`` (when a channel writes the residual stream) and ``<prefix>_activation_profile.png``."""
    folder = Path(folder)
    written = [plot_residual_stream(result, folder / f"{prefix}_residual_stream.png"), plot_activation_profiles(result, folder / f"{prefix}_activation_profile.png")]
    return [path for path in written if path is not None]

