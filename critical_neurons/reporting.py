"""Turning ranking files and result JSON into the paper's tables: ablation summaries, comparisons, before/after.

Everything here reads plain JSON written by the scripts; nothing loads a model. A file says what it
is (``kind``), what made it (``method``, ``primary_metric``) and for which model (``model``): the
report reads those and never guesses from keys or file names, and it never merges or compares two
models' files. Tables are lists of dicts (one per row) rendered as Markdown or CSV by
:func:`markdown_table` and :func:`csv_text`.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from critical_neurons.formats import CRITICAL_SET
from critical_neurons.formats.read import critical_channels, is_number, kind_of, load_output, ranking_channels, valid_model
from critical_neurons.identity import same_model
from critical_neurons.io import write_text
from critical_neurons.records import Channel

logger = logging.getLogger(__name__)

LAYER_INDEX = re.compile(r"\.(\d+)\.")
COMPARISON_LEVELS = tuple(range(100, 1001, 100))
ModelKey = tuple[str, str]  # (model_type, fingerprint): what makes two files one model's


# ---- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultFile:
    """One output JSON, read and checked: its kind, method and model come from the file itself."""

    path: Path
    payload: dict[str, Any]

    @property
    def kind(self) -> str | None:
        return kind_of(self.payload)

    @property
    def method(self) -> str:
        return str(self.payload.get("method"))

    @property
    def model(self) -> dict[str, Any] | None:
        """The ``model`` block, or None where the file records none (the authors' files, older outputs)."""
        model = self.payload.get("model")
        return model if valid_model(model) else None


def json_files(folder: str | Path) -> list[Path]:
    """The JSON files directly in ``folder`` (none when it does not exist), sorted by name."""
    folder = Path(folder)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def _skip(path: Path, reason: str) -> None:
    logger.warning("Skipping %s: %s", path, reason)


def read_result(path: str | Path) -> ResultFile | None:
    """A toolkit output whose shape fits its ``kind``; None, after one warning naming the file, for anything else.

    Unreadable files, invalid or absurdly nested JSON, files without ``kind`` (older outputs, the
    authors' own files) and files of a known kind with a broken shape are all skipped: a report
    over a folder of mixed files must never stop on one of them.
    """
    path = Path(path)
    try:
        payload = load_output(path)
    except ValueError as error:
        return _skip(path, str(error))
    return ResultFile(path, payload)


def read_results(paths: Iterable[str | Path]) -> list[ResultFile]:
    """The readable, well-formed outputs among ``paths`` (see :func:`read_result`)."""
    return [result for result in map(read_result, paths) if result is not None]


def of_kind(results: Iterable[ResultFile], kind: str) -> list[ResultFile]:
    return [result for result in results if result.kind == kind]


# ---- models ----------------------------------------------------------------------------------


def model_key(model: dict[str, Any]) -> ModelKey:
    return model["model_type"], model["fingerprint"]


def model_labels(results: Iterable[ResultFile]) -> dict[ModelKey, str]:
    """A row label per model: its folder name, plus the first 8 characters of the fingerprint where two models share a name."""
    names: dict[ModelKey, str] = {}
    for result in sorted(results, key=lambda result: str(result.path)):
        if result.model is not None:
            names.setdefault(model_key(result.model), Path(result.model["path"]).name)
    shared = Counter(names.values())
    return {key: name if shared[name] == 1 else f"{name}@{key[1][:8]}" for key, name in names.items()}


def paired_critical_set(ranking: ResultFile, stage2_results: Iterable[ResultFile]) -> ResultFile | None:
    """The stage-2 result shown with a ranking: one of the same model, preferably the one made from this ranking."""
    same = [result for result in stage2_results if ranking.model is not None and result.model is not None and same_model(ranking.model, result.model)]
    made_from = [result for result in same if Path(str(result.payload.get("neuron_file"))).resolve() == ranking.path.resolve()]
    return (made_from or same or [None])[0]


def comparable(reference: ResultFile, other: ResultFile) -> bool:
    """Whether ``other`` may be compared with ``reference``: the same model, or (with a warning) a file that records none."""
    if other.path.resolve() == reference.path.resolve():
        return True
    if reference.model is None or other.model is None:
        missing = reference.path if reference.model is None else other.path
        logger.warning("%s records no model, so %s and %s are compared without a model check", missing, other.path, reference.path)
        return True
    if same_model(reference.model, other.model):
        return True
    logger.warning(
        "Skipping %s: made for the model %s (fingerprint %s), not for %s (fingerprint %s) like %s; models are never compared",
        other.path, other.model["path"], other.model["fingerprint"], reference.model["path"], reference.model["fingerprint"], reference.path,
    )
    return False


def log10_of(entry: dict[str, Any], key: str) -> float | None:
    """log10 of a perplexity, from the ``log10_<key>`` field written beside it (it survives overflow) or the value."""
    if entry.get(f"log10_{key}") is not None:
        return float(entry[f"log10_{key}"])
    value = entry.get(key)
    return math.log10(value) if is_number(value) and value > 0 else None


def spread_statistics(values: Sequence[float]) -> dict[str, float]:
    """Mean, min, max and sample std of a few values (random controls, repeated runs)."""
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "min": float(array.min()), "max": float(array.max()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0}


def channel_label(channel: Channel) -> str:
    """``module[index]``, how tables and logs name a channel."""
    return f"{channel.layer_name}[{channel.hidden_idx}]"


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
        _skip(path, f"a {result.kind} file, not a stage-2 result")
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
            _skip(result.path, f"a second {method} perplexity sweep of {panel[0]} on {task} ({sources[panel, method].name} is used)")
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


# ---- characterisation tables ------------------------------------------------------------------------------------

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
