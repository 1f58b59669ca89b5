"""The paper's tables from result files: ablation summaries, critical sets, before/after and method comparisons.

Tables are lists of dicts (one per row) rendered as Markdown or CSV by :func:`markdown_table` and
:func:`csv_text`, and written by :func:`write_table`.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from critical_neurons.outputs.files import write_text
from critical_neurons.outputs.formats import CRITICAL_SET
from critical_neurons.outputs.formats.read import critical_channels, is_number, ranking_channels
from critical_neurons.reporting.rank_statistics import compare_rankings
from critical_neurons.reporting.results import ModelKey, ResultFile, comparable, log10_of, model_key, read_result, skip_file

logger = logging.getLogger(__name__)

COMPARISON_LEVELS = tuple(range(100, 1001, 100))


# ---- ablation summary ------------------------------------------------------------------------


def critical_path(ranking_path: str | Path) -> Path:
    """Where the ablation loops write a ranking's stage-2 result: ``X_neurons.json`` -> ``X_critical.json``."""
    path = Path(ranking_path)
    return path.with_name(path.name.removesuffix("_neurons.json").removesuffix(".json") + "_critical.json")


def setting_name(ranking_path: str | Path) -> str:
    return Path(ranking_path).name.removesuffix(".json").removesuffix("_neurons")


def model_name(result: ResultFile) -> str:
    """The folder name of a file's model, or '?' where it records none."""
    return Path(result.model["path"]).name if result.model is not None else "?"


def _stored_critical_set(ranking: ResultFile) -> dict[str, Any] | None:
    """The ``X_critical.json`` beside a ranking, if it is a well-formed stage-2 result of the same model."""
    path = critical_path(ranking.path)
    if not path.is_file():
        return None
    result = read_result(path)
    if result is None:
        return None
    if result.kind != CRITICAL_SET:
        skip_file(path, f"a {result.kind} file, not a stage-2 result")
        return None
    return result.payload if comparable(ranking, result) else None


def ablation_rows(
    rankings: Sequence[ResultFile],
    default: ResultFile,
    *,
    top_k: int = 100,
    stage2: Callable[[ResultFile], dict[str, Any] | None] | None = None,
) -> list[dict[str, Any]]:
    """One row per setting: critical-set size, overlap and rank correlation with the default setting.

    Rankings of a model other than the default's are skipped with a warning (models are never
    compared). ``stage2(ranking)`` supplies a stage-2 result when no usable ``X_critical.json``
    exists (the summariser runs stage 2 through the core there); without it, the size is left empty.
    """
    cache: dict[Path, dict[str, Any] | None] = {}

    def result_for(ranking: ResultFile) -> dict[str, Any] | None:
        key = ranking.path.resolve()
        if key not in cache:
            cache[key] = _stored_critical_set(ranking)
            if cache[key] is None and stage2 is not None:
                cache[key] = stage2(ranking)
        return cache[key]

    default_channels = ranking_channels(default.payload)
    default_result = result_for(default)
    default_critical = set(critical_channels(default_result)) if default_result is not None else None
    rows = []
    for ranking in rankings:
        if not comparable(default, ranking):
            continue
        payload = ranking.payload
        result = result_for(ranking)
        row: dict[str, Any] = {
            "model": model_name(default),
            "setting": setting_name(ranking.path),
            "noise_scale": payload.get("noise_scale"),
            "num_samples": payload.get("num_samples"),
            "num_tokens": payload.get("num_tokens"),
            "critical_records": None,
            "critical_channels": None,
            "magnitude_increase": None,
            "stopping_reason": None,
            "shared_critical_channels": None,
        }
        if result is not None:
            channels = critical_channels(result)
            steps = result["masking_steps"]
            row.update(
                critical_records=len(result["final_masked_neurons"]),
                critical_channels=len(channels),
                magnitude_increase=steps[-1].get("magnitude_increase") if steps else None,
                stopping_reason=result.get("stopping_reason"),
                shared_critical_channels=len(set(channels) & default_critical) if default_critical is not None else None,
            )
        row.update(compare_rankings(default_channels, ranking_channels(payload), top_k))
        row["is_default"] = ranking.path.resolve() == default.path.resolve()
        rows.append(row)
    rows.sort(key=lambda row: (_sortable(row["noise_scale"]), _sortable(row["num_samples"]), row["setting"]))
    return rows


def _sortable(value: Any) -> float:
    return float(value) if is_number(value) else math.inf


ABLATION_COLUMNS = [
    ("model", "model"),
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


def critical_set_rows(stage2_results: Iterable[ResultFile], labels: dict[ModelKey, str]) -> list[dict[str, Any]]:
    """Table 1: per model, the critical set and the perplexity on the test text before and after masking it."""
    rows = []
    for result in stage2_results:
        payload = result.payload
        last = payload["masking_steps"][-1] if payload["masking_steps"] else {}
        channels = critical_channels(payload)
        pruned = payload.get("pruned_channels")
        view = payload.get("dimension_view") if isinstance(payload.get("dimension_view"), dict) else {}
        rows.append(
            {
                "model": labels[model_key(result.model)],
                "result_file": result.path.name,
                "unit": payload.get("unit", "channel"),
                "steps": len(payload["masking_steps"]),
                "dimensions": ", ".join(str(entry.get("dimension")) for entry in view.get("masked_dimensions", [])[:5]) or None,
                "critical_records": len(payload["final_masked_neurons"]),
                "critical_channels": len(channels),
                "pruned_channels": len(pruned) if isinstance(pruned, list) else None,
                "pruned_magnitude_increase": payload.get("pruned_magnitude_increase"),
                "channels": "; ".join(f"{name}:{index}" for name, index in channels[:5]) + (" ..." if len(channels) > 5 else ""),
                "baseline_perplexity": payload.get("baseline_perplexity"),
                "masked_log10_perplexity": last.get("log10_perplexity"),
                "magnitude_increase": last.get("magnitude_increase"),
                "stopping_reason": payload.get("stopping_reason"),
            }
        )
    return sorted(rows, key=lambda row: (row["model"], row["result_file"]))


CRITICAL_COLUMNS = [
    ("model", "model"),
    ("unit", "unit"),
    ("steps", "steps"),
    ("dimensions", "dimensions"),
    ("critical_records", "critical records"),
    ("critical_channels", "distinct channels"),
    ("pruned_channels", "channels after pruning"),
    ("pruned_magnitude_increase", "orders after pruning"),
    ("channels", "channels (module:index)"),
    ("baseline_perplexity", "ppl before"),
    ("masked_log10_perplexity", "log10 ppl after"),
    ("magnitude_increase", "orders of magnitude"),
    ("stopping_reason", "stopping reason"),
    ("result_file", "file"),
]


def _metric_text(entry: dict[str, Any], metric: str) -> Any:
    """A metric for a table cell (``a.b`` reads key ``b`` of block ``a``): a perplexity with a log10
    beside it (``log10_perplexity``, ``reference_log10_perplexity``) stays readable past 1e308."""
    *blocks, name = metric.split(".")
    for block in blocks:
        entry = entry.get(block) if isinstance(entry, dict) else None
    if not isinstance(entry, dict):
        return None
    for log10_name in {f"log10_{name}", name.replace("perplexity", "log10_perplexity")} - {name}:
        if is_number(entry.get(log10_name)):
            return _perplexity_text(float(entry[log10_name]))
    value = entry.get(name)
    return value if is_number(value) else None


def before_after_rows(evaluations: Iterable[ResultFile], labels: dict[ModelKey, str]) -> list[dict[str, Any]]:
    """Table 2: per model and task, the file's primary metric unmasked (level 0) and at the largest level evaluated."""
    rows = []
    for result in evaluations:
        levels = {entry["masking_level"]: entry for entry in result.payload["results"]}
        masked_level = max(levels)
        if masked_level == 0:
            logger.info("%s has no masked level; left out of the before/after table", result.path)
            continue
        metric, reference = result.payload["primary_metric"], result.payload.get("reference_metric")
        masked, before = levels[masked_level], levels.get(0)
        rows.append(
            {
                "task": result.method,
                "model": labels[model_key(result.model)],
                "metric": metric,
                "before": _metric_text(before, metric) if before else None,
                "masked_level": masked_level,
                "distinct_channels_masked": masked.get("distinct_channels_masked"),
                "after": _metric_text(masked, metric),
                "reference_metric": reference,
                "reference_before": _metric_text(before, reference) if before and reference else None,
                "reference_after": _metric_text(masked, reference) if reference else None,
                "result_file": result.path.name,
            }
        )
    return sorted(rows, key=lambda row: (row["model"], row["task"], row["result_file"]))


BEFORE_AFTER_COLUMNS = [
    ("task", "task"),
    ("model", "model"),
    ("metric", "metric"),
    ("before", "unmasked"),
    ("masked_level", "records masked"),
    ("distinct_channels_masked", "distinct channels"),
    ("after", "masked"),
    ("reference_metric", "authors' metric"),
    ("reference_before", "authors' unmasked"),
    ("reference_after", "authors' masked"),
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


NEURON_METHODS = {  # the method tag of the ranking an evaluation masked -> its column in the comparison
    "multi_gpu_activation_difference_analysis": "ours",
    "multi_gpu_activation_value_analysis": "AM",
    "multi_gpu_gradient_based_analysis": "GM",
}
COMPARISON_METHODS = ("ours", "random", "AM", "GM")
RANDOM_TASK = "wikitext"  # comparison/random_masking.py measures WikiText perplexity
Curve = dict[int, dict[str, float | None]]
Panel = tuple[str, str]  # (model label, task): one comparison per model and data set


def sweep_method(result: ResultFile) -> str | None:
    """ours, AM or GM for a perplexity sweep over that ranking (at least three of the levels 100..1000), else None."""
    if result.payload["primary_metric"] != "perplexity":
        return None
    method = NEURON_METHODS.get(result.payload.get("model_info", {}).get("neuron_method"))
    levels = {entry["masking_level"] for entry in result.payload["results"]}
    return method if method is not None and len(levels & set(COMPARISON_LEVELS)) >= 3 else None


def sweep_curves(
    sweeps: Iterable[tuple[ResultFile, str]], random_results: Iterable[ResultFile], labels: dict[ModelKey, str]
) -> dict[Panel, dict[str, Curve]]:
    """(model, task) -> method -> level -> {log10, log10_min, log10_max[, mean, std]}: ours, AM, GM and random.

    One curve per method and panel: a second file for the same slot is skipped with a warning, so
    two runs (or two models) are never blended into one line.
    """
    curves: dict[Panel, dict[str, Curve]] = {}
    sources: dict[tuple[Panel, str], Path] = {}

    def add(result: ResultFile, task: str, method: str, curve: Curve) -> None:
        panel = (labels[model_key(result.model)], task)
        if (panel, method) in sources:
            skip_file(result.path, f"a second {method} perplexity sweep of {panel[0]} on {task} ({sources[panel, method].name} is used)")
            return
        sources[panel, method] = result.path
        curves.setdefault(panel, {})[method] = curve

    for result, method in sweeps:
        metric = result.payload["primary_metric"]
        points = {}
        for entry in result.payload["results"]:
            value = log10_of(entry, metric)
            points[entry["masking_level"]] = {"log10": value, "log10_min": value, "log10_max": value}
        add(result, result.method, method, points)
    for result in random_results:
        metric = result.payload["primary_metric"]
        add(result, RANDOM_TASK, "random", {
            entry["masking_level"]: {
                "log10": log10_of(entry, metric),
                "log10_min": entry.get("min_log10_perplexity"),
                "log10_max": entry.get("max_log10_perplexity"),
                "mean": entry.get(metric),
                "std": entry.get("std_perplexity"),
            }
            for entry in result.payload["results"]
        })
    return dict(sorted(curves.items()))


def comparison_rows(curves: dict[Panel, dict[str, Curve]], levels: Sequence[int] = COMPARISON_LEVELS) -> list[dict[str, Any]]:
    """Table 3: per model and task, perplexity per method at 0 and each comparison level (random: mean ± sample std over runs)."""
    rows = []
    for (model, task), methods in curves.items():
        measured = sorted({level for curve in methods.values() for level in curve})
        for level in (level for level in measured if level == 0 or level in levels):
            row: dict[str, Any] = {"model": model, "task": task, "level": level}
            for method in COMPARISON_METHODS:
                point = methods.get(method, {}).get(level)
                text = _perplexity_text(point["log10"]) if point else None
                if method == "random" and point and point["std"] is not None and point["mean"] is not None and point["log10"] is not None and point["log10"] < 4:
                    text = f"{point['mean']:.4g} ± {point['std']:.3g}"
                row[method] = text
            rows.append(row)
    return rows


COMPARISON_COLUMNS = [
    ("model", "model"),
    ("task", "data"),
    ("level", "neurons masked"),
    ("ours", "ours"),
    ("random", "random (mean ± std)"),
    ("AM", "AM"),
    ("GM", "GM"),
]


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


def write_table(path_stem: str | Path, title: str, rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], flag: str = "--output_dir") -> str:
    """Write ``<stem>.md`` and ``<stem>.csv`` atomically (a disk error names ``flag``); returns the Markdown section."""
    section = f"### {title}\n\n{markdown_table(rows, columns)}\n"
    write_text(Path(f"{path_stem}.md"), section, flag)
    write_text(Path(f"{path_stem}.csv"), csv_text(rows, columns), flag)
    return section
