"""The characterisation tables of a critical set: each channel's profile, the residual dimensions it touches, and its effect."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from critical_neurons.outputs.records import Channel
from critical_neurons.reporting.results import channel_label, layer_and_type, spread_statistics
from critical_neurons.reporting.tables import markdown_table

PROFILE_COLUMNS = [
    ("channel", "channel"), ("peak", "peak value"), ("position", "position"), ("token", "token"), ("ratio", "peak / module median |output|"),
    ("residual", "massive in hidden states (ratio to layer median)"), ("inputs", "top inputs: share of the output (w, x)"), ("row", "row max / median |w|"),
]
DIMENSION_COLUMNS = [
    ("dimension", "residual dimension"), ("critical", "critical writers"),
    ("massive", "massive at position 'token': hidden states (max ratio to layer median)"), ("writers", "written massively by: layers (peak over the module's median magnitude)"),
]
EFFECT_COLUMNS = [
    ("masked", "masked"), ("channels", "channels"), ("change", "log10 perplexity change"), ("kl", "mean KL (nats)"), ("top1", "top-1 agreement"),
    ("attention", "first-token attention, mean over the layers after the set's first (unmasked -> masked)"),
]


def _number(value: float | None, signed: bool = False) -> str:
    """Three significant digits; '-' for a missing or non-finite value (null in the JSON)."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:+.3g}" if signed else f"{value:.3g}"


def _residual_cell(residual: dict[str, Any] | None) -> str:
    if residual is None:
        return "not a residual-stream module"
    start, until = residual["written_into_hidden_state"], residual["persists_until_hidden_state"]
    if until is None:
        return f"not massive after the write (hidden state {start})"
    ratios = residual["ratio_to_layer_median"][start : until + 1]
    if start == until:
        return f"{start} ({_number(ratios[0])}x)"
    return f"{start}-{until} ({_number(min(ratios))}-{_number(max(ratios))}x)"


def _inputs_cell(weights: dict[str, Any] | None, shown: int = 3) -> str:
    if weights is None:
        return "no weight matrix"
    return "; ".join(f"{entry['input']}: {entry['share']:.1%} ({_number(entry['weight'])}, {_number(entry['input_activation'])})" for entry in weights["top_inputs"][:shown])


def profile_table(result: dict[str, Any]) -> str:
    """One row per critical channel: its peak, ratio to the median, persistence in the residual stream and the inputs that make it."""
    rows = []
    for block in result["channels"]:
        activation, weights = block["activation"], block["weights"]
        rows.append({
            "channel": channel_label(Channel(block["layer_name"], block["hidden_idx"])),
            "peak": _number(activation["peak_value"]),
            "position": activation["peak_position"],
            "token": repr(activation["peak_token"]),
            "ratio": _number(activation["ratio_to_median"]),
            "residual": _residual_cell(block["residual_stream"]),
            "inputs": _inputs_cell(weights),
            "row": "-" if weights is None else f"{_number(weights['row_max_to_median'])} (input {weights['row_max_input']})",
        })
    return markdown_table(rows, PROFILE_COLUMNS)


def _index_ranges(indices: Sequence[int]) -> str:
    """[2, 3, 4, 9] -> '2-4, 9'."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ", ".join(str(start) if start == end else f"{start}-{end}" for start, end in runs)


def dimension_table(result: dict[str, Any], shown: int = 8) -> str:
    """One row per residual dimension the set touches: its critical writers, where it is massive, and which layers write it massively."""
    rows = []
    for block in result["residual_dimensions"]:
        massive = [f"{entry['position']} {entry['token']!r}: {_index_ranges(entry['hidden_states'])} ({_number(entry['max_ratio_to_layer_median'])}x)" for entry in block["massive_positions"]]
        by_type: dict[str, list[str]] = {}
        for entry in block["writers"]:
            if entry["massive"]:
                by_type.setdefault(layer_and_type(entry["layer_name"])[1], []).append(f"{entry['layer']} ({_number(entry['ratio_to_module_median'])}x)")
        writers = [f"{kind}: {', '.join(layers)}" for kind, layers in by_type.items()]
        rows.append({
            "dimension": block["dimension"],
            "critical": ", ".join(block["critical_writers"][:shown]) + (f" and {len(block['critical_writers']) - shown} more" if len(block["critical_writers"]) > shown else ""),
            "massive": "; ".join(massive[:shown]) + (f"; {len(massive) - shown} more positions" if len(massive) > shown else "") or "nowhere",
            "writers": "; ".join(writers) or "none",
        })
    return markdown_table(rows, DIMENSION_COLUMNS)


def _effect_row(label: str, effect: dict[str, Any]) -> dict[str, Any]:
    downstream = effect.get("first_token_attention_downstream")
    return {
        "masked": label,
        "channels": effect["num_channels"],
        "change": _number(effect["log10_perplexity_change"], signed=True),
        "kl": _number(effect["kl_mean"]),
        "top1": _number(effect["top1_agreement"]),
        "attention": "-" if downstream is None else f"layers {downstream['from_layer']}+: {downstream['unmasked_mean']:.3f} -> {downstream['masked_mean']:.3f}",
    }


def _spread(statistics: dict[str, float | None], signed: bool = False) -> str:
    return f"{_number(statistics['mean'], signed)} [{_number(statistics['min'], signed)}, {_number(statistics['max'], signed)}]"


def effect_table(result: dict[str, Any]) -> str:
    """What masking does: each channel alone, the whole set, the set without each channel, and the random sets (mean [min, max])."""
    controls = result["controls"]
    rows = [_effect_row(f"{channel_label(Channel(block['layer_name'], block['hidden_idx']))} alone", block["effect"]) for block in result["channels"]]
    if len(result["channels"]) > 1:
        rows.append(_effect_row("the critical set", result["set_effect"]))
        rows += [_effect_row(f"set without {channel_label(Channel(**effect['without']))}", effect) for effect in controls["leave_one_out"]]
    random = controls["random_sets"]
    if random["num_sets"]:
        attention = [effect["first_token_attention_downstream"] for effect in random["sets"] if "first_token_attention_downstream" in effect]
        rows.append({
            "masked": f"{random['num_sets']} random sets, mean [min, max]",
            "channels": random["set_size"],
            "change": _spread(random["log10_perplexity_change"], signed=True),
            "kl": _spread(random["kl_mean"]),
            "top1": _spread(random["top1_agreement"]),
            "attention": "-" if not attention else f"layers {attention[0]['from_layer']}+: {attention[0]['unmasked_mean']:.3f} -> {_spread(spread_statistics([entry['masked_mean'] for entry in attention]))}",
        })
    return markdown_table(rows, EFFECT_COLUMNS)


def markdown_tables(result: dict[str, Any]) -> str:
    """The profile, residual-dimension (when the set touches one) and effect tables, for the console and the report."""
    dimensions = [dimension_table(result)] if result.get("residual_dimensions") else []
    return "\n\n".join([profile_table(result), *dimensions, effect_table(result)])
