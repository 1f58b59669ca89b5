"""Turning ranking files and result JSON into the paper's tables: ablation summaries, comparisons, before/after.

Everything here reads plain JSON written by the scripts; nothing loads a model. Tables are lists of
dicts (one per row) rendered as Markdown or CSV by :func:`markdown_table` and :func:`csv_text`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from critical_neurons.io import write_text
from critical_neurons.records import Channel, NeuronRecord, distinct_channels

LAYER_INDEX = re.compile(r"\.(\d+)\.")
COMPARISON_LEVELS = tuple(range(100, 1001, 100))


# ---- reading ---------------------------------------------------------------------------------


def load_json(path: str | Path) -> Any:
    with open(path) as handle:
        return json.load(handle)


def json_files(folder: str | Path) -> list[Path]:
    """The JSON files directly in ``folder`` (none when it does not exist), sorted by name."""
    folder = Path(folder)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def is_ranking(payload: Any) -> bool:
    return isinstance(payload, dict) and isinstance(payload.get("top_neurons"), list) and "method" in payload


def is_stage2(payload: Any) -> bool:
    return isinstance(payload, dict) and "masking_steps" in payload and "final_masked_neurons" in payload


def is_random_masking(payload: Any) -> bool:
    return isinstance(payload, dict) and "experiment_info" in payload and isinstance(payload.get("results"), list)


def is_evaluator(payload: Any) -> bool:
    results = payload.get("results") if isinstance(payload, dict) else None
    return isinstance(results, list) and bool(results) and "masking_level" in results[0] and not is_random_masking(payload)


def ranking_channels(payload: dict[str, Any]) -> list[Channel]:
    """Distinct channels of a ranking file, best first (first appearance of each channel)."""
    return distinct_channels(NeuronRecord.from_dict(entry) for entry in payload["top_neurons"])


def critical_channels(payload: dict[str, Any]) -> list[Channel]:
    """The critical channels of a stage-2 result."""
    return distinct_channels(NeuronRecord.from_dict(entry) for entry in payload["final_masked_neurons"])


def log10_of(entry: dict[str, Any], key: str = "perplexity") -> float | None:
    """log10 of a perplexity, from the log10 field written beside it (it survives overflow) or the value."""
    for name in (f"log10_{key}", f"log10_mean_{key}"):
        if entry.get(name) is not None:
            return float(entry[name])
    value = entry.get(key)
    return math.log10(value) if isinstance(value, (int, float)) and value > 0 else None


def layer_and_type(layer_name: str) -> tuple[int | None, str]:
    """``model.layers.11.mlp.down_proj`` -> (11, ``mlp.down_proj``); names without a layer index -> (None, name)."""
    match = LAYER_INDEX.search(layer_name)
    if match is None:
        return None, layer_name
    return int(match.group(1)), layer_name[match.end() :]


def location_counts(channels: Iterable[Channel]) -> tuple[list[int], list[str], np.ndarray]:
    """Distinct channels per (layer, module type): layers 0..last, module types by total count, (types, layers) counts."""
    pairs = [layer_and_type(channel.layer_name) for channel in channels]
    pairs = [(layer, kind) for layer, kind in pairs if layer is not None]
    layers = list(range(max((layer for layer, _ in pairs), default=-1) + 1))  # every layer, empty ones too
    kinds = sorted({kind for _, kind in pairs}, key=lambda kind: -sum(k == kind for _, k in pairs))
    counts = np.zeros((len(kinds), len(layers)), dtype=int)
    for layer, kind in pairs:
        counts[kinds.index(kind), layers.index(layer)] += 1
    return layers, kinds, counts


# ---- rank statistics -------------------------------------------------------------------------


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their mean rank (what Spearman's rho needs)."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (ties averaged); nan when either side is constant."""
    rx, ry = average_ranks(np.asarray(x, float)), average_ranks(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b over all pairs (vectorised; fine for the few hundred channels compared here)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    upper = np.triu_indices(len(x), k=1)
    dx, dy = dx[upper], dy[upper]
    denominator = math.sqrt(float(np.count_nonzero(dx)) * float(np.count_nonzero(dy)))
    return float((dx * dy).sum() / denominator) if denominator else math.nan


def compare_rankings(reference: Sequence[Channel], other: Sequence[Channel], top_k: int) -> dict[str, Any]:
    """Overlap of the top-k channels and rank correlation over their union.

    A channel's rank is its position in the full distinct-channel list; a channel missing from one
    list ties at that list's end. ``overlap`` = shared channels / k.
    """
    k = min(top_k, len(reference), len(other))
    rank_a = {channel: index for index, channel in enumerate(reference)}
    rank_b = {channel: index for index, channel in enumerate(other)}
    union = list(dict.fromkeys([*reference[:k], *other[:k]]))
    a = [rank_a.get(channel, len(reference)) for channel in union]
    b = [rank_b.get(channel, len(other)) for channel in union]
    shared = len(set(reference[:k]) & set(other[:k]))
    return {
        "top_k": k,
        "overlap": shared / k if k else math.nan,
        "spearman": spearman(a, b) if len(union) > 1 else math.nan,
        "kendall": kendall_tau_b(a, b) if len(union) > 1 else math.nan,
    }


# ---- ablation summary ------------------------------------------------------------------------


def critical_path(ranking_path: str | Path) -> Path:
    """Where the ablation loops write a ranking's stage-2 result: ``X_neurons.json`` -> ``X_critical.json``."""
    path = Path(ranking_path)
    return path.with_name(path.name.removesuffix("_neurons.json").removesuffix(".json") + "_critical.json")


def setting_name(ranking_path: str | Path) -> str:
    return Path(ranking_path).name.removesuffix(".json").removesuffix("_neurons")


def ablation_rows(
    ranking_paths: Sequence[str | Path],
    default_path: str | Path,
    *,
    top_k: int = 100,
    stage2: Callable[[Path, dict[str, Any]], dict[str, Any] | None] | None = None,
) -> list[dict[str, Any]]:
    """One row per setting: critical-set size, overlap and rank correlation with the default setting.

    ``stage2(ranking_path, ranking)`` supplies a stage-2 result when no ``X_critical.json`` exists
    (the summariser runs stage 2 through the core there); without it, the size is left empty.
    """
    cache: dict[Path, dict[str, Any] | None] = {}

    def result_for(path: Path, ranking: dict[str, Any]) -> dict[str, Any] | None:
        key = path.resolve()
        if key not in cache:
            result_file = critical_path(path)
            cache[key] = load_json(result_file) if result_file.is_file() else stage2(path, ranking) if stage2 else None
        return cache[key]

    default_path = Path(default_path)
    default = load_json(default_path)
    default_channels = ranking_channels(default)
    default_result = result_for(default_path, default)
    default_critical = set(critical_channels(default_result)) if default_result is not None else None
    rows = []
    for path in map(Path, ranking_paths):
        ranking = load_json(path)
        result = result_for(path, ranking)
        row: dict[str, Any] = {
            "setting": setting_name(path),
            "noise_scale": ranking.get("noise_scale"),
            "num_samples": ranking.get("num_samples"),
            "num_tokens": ranking.get("num_tokens"),
            "critical_records": None,
            "critical_channels": None,
            "magnitude_increase": None,
            "stopping_reason": None,
            "shared_critical_channels": None,
        }
        if result is not None:
            channels = critical_channels(result)
            row.update(
                critical_records=len(result["final_masked_neurons"]),
                critical_channels=len(channels),
                magnitude_increase=result["masking_steps"][-1].get("magnitude_increase") if result["masking_steps"] else None,
                stopping_reason=result.get("stopping_reason"),
                shared_critical_channels=len(set(channels) & default_critical) if default_critical is not None else None,
            )
        row.update(compare_rankings(default_channels, ranking_channels(ranking), top_k))
        row["is_default"] = path.resolve() == default_path.resolve()
        rows.append(row)
    rows.sort(key=lambda row: (_sortable(row["noise_scale"]), _sortable(row["num_samples"]), row["setting"]))
    return rows


def _sortable(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.inf


ABLATION_COLUMNS = [
    ("setting", "setting"),
    ("noise_scale", "alpha"),
    ("num_samples", "K"),
    ("num_tokens", "tokens"),
    ("critical_records", "critical records"),
    ("critical_channels", "critical channels"),
    ("magnitude_increase", "log10 ppl increase"),
    ("stopping_reason", "stop"),
    ("shared_critical_channels", "critical channels shared with default"),
    ("top_k", "k"),
    ("overlap", "top-k channel overlap with default"),
    ("spearman", "Spearman"),
    ("kendall", "Kendall tau-b"),
]


# ---- paper tables ----------------------------------------------------------------------------


def critical_set_rows(stage2_results: Iterable[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Table 1: per model, the critical set and the perplexity on the test text before and after masking it."""
    rows = []
    for path, result in stage2_results:
        info = result.get("model_info", {})
        last = result["masking_steps"][-1] if result["masking_steps"] else {}
        channels = critical_channels(result)
        rows.append(
            {
                "model": Path(str(info.get("model_path", "?"))).name,
                "result_file": path.name,
                "critical_records": len(result["final_masked_neurons"]),
                "critical_channels": len(channels),
                "channels": "; ".join(f"{name}:{index}" for name, index in channels[:5]) + (" ..." if len(channels) > 5 else ""),
                "baseline_perplexity": result.get("baseline_perplexity"),
                "masked_log10_perplexity": last.get("log10_perplexity"),
                "magnitude_increase": last.get("magnitude_increase"),
                "stopping_reason": result.get("stopping_reason"),
            }
        )
    return rows


CRITICAL_COLUMNS = [
    ("model", "model"),
    ("critical_records", "critical records"),
    ("critical_channels", "distinct channels"),
    ("channels", "channels (module:index)"),
    ("baseline_perplexity", "ppl before"),
    ("masked_log10_perplexity", "log10 ppl after"),
    ("magnitude_increase", "orders of magnitude"),
    ("stopping_reason", "stopping reason"),
    ("result_file", "file"),
]

METRIC_PRIORITY = (  # the headline metric of each evaluator's per-level entry
    "perplexity",  # WikiText, C4
    "overall_accuracy",  # MMLU-Pro, GPQA
    "accuracy",  # MATH, MGSM
    "pass_at_1",  # HumanEval
    "strict_prompt_accuracy",  # IFEval
    "exact_match_rate",  # SimpleQA
)
BOOKKEEPING = {"masking_level", "neurons_masked", "distinct_channels_masked", "total_samples", "total_tokens", "valid_samples"}


def primary_metric(entry: dict[str, Any]) -> str | None:
    """The headline metric of an evaluator level entry: a known name first, else its first numeric field."""
    for name in METRIC_PRIORITY:
        if name in entry:
            return name
    numeric = [key for key, value in entry.items() if key not in BOOKKEEPING and isinstance(value, (int, float)) and not isinstance(value, bool)]
    return numeric[0] if numeric else None


def task_name(path: Path, payload: dict[str, Any]) -> str:
    info = payload.get("dataset_info", {})
    return str(info.get("dataset_type") or info.get("task") or path.stem.removesuffix("_results"))


def before_after_rows(evaluator_results: Iterable[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Table 2: per task, the headline metric unmasked (level 0) and at the largest level evaluated."""
    rows = []
    for path, payload in evaluator_results:
        levels = {entry["masking_level"]: entry for entry in payload["results"]}
        masked_level = max(levels)
        if masked_level == 0:
            continue
        masked = levels[masked_level]
        metric = primary_metric(masked)
        if metric is None:
            continue
        before = levels.get(0, {})
        row = {
            "task": task_name(path, payload),
            "model": Path(str(payload.get("model_info", {}).get("model_path", "?"))).name,
            "metric": metric,
            "before": before.get(metric),
            "masked_level": masked_level,
            "distinct_channels_masked": masked.get("distinct_channels_masked"),
            "after": masked.get(metric),
            "result_file": path.name,
        }
        if metric == "perplexity":
            row["before"] = _perplexity_text(log10_of(before)) if before else None
            row["after"] = _perplexity_text(log10_of(masked))
        rows.append(row)
    return rows


BEFORE_AFTER_COLUMNS = [
    ("task", "task"),
    ("model", "model"),
    ("metric", "metric"),
    ("before", "unmasked"),
    ("masked_level", "records masked"),
    ("distinct_channels_masked", "distinct channels"),
    ("after", "masked"),
    ("result_file", "file"),
]


def _perplexity_text(log10_value: float | None) -> str | None:
    """A perplexity that stays readable past 1e308: plain below 1e4, else mantissa and power of ten (7.94e401)."""
    if log10_value is None or not math.isfinite(log10_value):
        return None
    if log10_value < 4:
        return f"{10 ** log10_value:.4g}"
    exponent = math.floor(log10_value)
    return f"{10 ** (log10_value - exponent):.2f}e{exponent}"


def method_of(path: Path, payload: dict[str, Any]) -> str | None:
    """Which ranking an evaluator sweep masked: ours, AM or GM (from the neuron file's method tag, else the file name)."""
    neuron_file = payload.get("model_info", {}).get("neuron_file")
    tag = ""
    if neuron_file and Path(neuron_file).is_file():
        try:
            tag = str(load_json(neuron_file).get("method", ""))
        except (OSError, ValueError, AttributeError):
            tag = ""
    if "activation_value" in tag:
        return "AM"
    if "gradient" in tag:
        return "GM"
    if "activation_difference" in tag:
        return "ours"
    name = path.name.lower()
    for prefix, method in (("am_", "AM"), ("gm_", "GM"), ("ours_", "ours"), ("random_", "random")):
        if name.startswith(prefix):
            return method
    return None


def sweep_curves(
    evaluator_results: Iterable[tuple[Path, dict[str, Any]]], random_results: Iterable[tuple[Path, dict[str, Any]]]
) -> dict[str, dict[int, dict[str, float | None]]]:
    """Method -> level -> {log10, log10_min, log10_max}: perplexity sweeps of ours, AM, GM and random."""
    curves: dict[str, dict[int, dict[str, float | None]]] = {}
    for path, payload in evaluator_results:
        method = method_of(path, payload)
        if method is None or "perplexity" not in payload["results"][0]:
            continue
        for entry in payload["results"]:
            value = log10_of(entry)
            curves.setdefault(method, {})[entry["masking_level"]] = {"log10": value, "log10_min": value, "log10_max": value}
    for _, payload in random_results:
        for entry in payload["results"]:
            curves.setdefault("random", {})[entry["masking_level"]] = {
                "log10": log10_of(entry),
                "log10_min": entry.get("min_log10_perplexity"),
                "log10_max": entry.get("max_log10_perplexity"),
                "mean": entry.get("mean_perplexity"),
                "std": entry.get("std_perplexity"),
            }
    return curves


COMPARISON_METHODS = ("ours", "random", "AM", "GM")


def comparison_rows(curves: dict[str, dict[int, dict[str, Any]]], levels: Sequence[int] = COMPARISON_LEVELS) -> list[dict[str, Any]]:
    """Table 3: perplexity per method at each masking level (random: mean ± sample std over runs)."""
    present = sorted({level for curve in curves.values() for level in curve} | set(levels))
    rows = []
    for level in present:
        if level not in levels and level != 0:
            continue
        row: dict[str, Any] = {"level": level}
        for method in COMPARISON_METHODS:
            point = curves.get(method, {}).get(level)
            text = _perplexity_text(point["log10"]) if point else None
            if method == "random" and point and point.get("std") is not None and point["log10"] is not None and point["log10"] < 4:
                text = f"{point['mean']:.4g} ± {point['std']:.3g}"
            row[method] = text
        rows.append(row)
    return rows


COMPARISON_COLUMNS = [("level", "neurons masked"), ("ours", "ours"), ("random", "random (mean ± std)"), ("AM", "AM"), ("GM", "GM")]


# ---- rendering -------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A GitHub Markdown table; ``columns`` pairs a row key with its header."""
    lines = ["| " + " | ".join(header for _, header in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(row.get(key)) for key, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([key for key, _ in columns])
    for row in rows:
        writer.writerow(["" if row.get(key) is None else row.get(key) for key, _ in columns])
    return buffer.getvalue()


def write_table(path_stem: str | Path, title: str, rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """Write ``<stem>.md`` and ``<stem>.csv`` atomically; returns the Markdown section."""
    section = f"### {title}\n\n{markdown_table(rows, columns)}\n"
    write_text(Path(f"{path_stem}.md"), section)
    write_text(Path(f"{path_stem}.csv"), csv_text(rows, columns))
    return section
