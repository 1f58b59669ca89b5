"""Builders of every output kind: objects in, the JSON payload out (keys in the order files have always had).

Scripts gather the objects (the model identity, what a step found, the run's settings) and write what
these return; the evaluators' and random masking's headers are completed per level by
:class:`critical_neurons.evaluation.runner.LevelRunner` (``run_key``, ``results``, ``metadata``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from critical_neurons.model.perplexity import LN10, exp_or_inf
from critical_neurons.outputs.formats import ABLATION_SUMMARY, CHARACTERIZATION, CRITICAL_SET, EVALUATION, LESION, RANDOM_MASKING, RANKING
from critical_neurons.outputs.records import Channel, NeuronRecord

if TYPE_CHECKING:
    from critical_neurons.method.baselines import Population
    from critical_neurons.method.ranking import Ranking
    from critical_neurons.method.stage2 import CriticalSet
    from critical_neurons.model.folding import FoldEdit
    from critical_neurons.model.perplexity import PerplexityResult
    from critical_neurons.outputs.formats.read import NeuronFile


def _channel_list(channels: Sequence[Channel]) -> list[dict[str, Any]]:
    return [channel._asdict() for channel in channels]


def ranking_payload(
    ranking: Ranking,
    *,
    method: str,
    input_text: str,
    noise_scale: float | None,
    num_samples: int,
    num_tokens: int,
    model: dict[str, Any],
    model_info: dict[str, Any],
    metadata: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """A ranking file (Stage 1, AM, GM): the reference's keys, then how it was made.

    ``model`` is the identity block (:func:`critical_neurons.outputs.run_identity.model_identity`) every consumer checks.
    """
    return {
        "kind": RANKING,
        "method": method,
        "input_text": input_text,
        "noise_scale": noise_scale,
        "num_samples": num_samples,
        "total_neurons": ranking.total_candidates,
        "top_neurons": [record.to_dict() for record in ranking.records],
        **extra,
        "num_distinct_channels": ranking.num_distinct_channels,
        "num_tokens": num_tokens,
        "sites": ranking.sites,
        "skipped_sites": ranking.skipped_sites,
        "non_finite_scores": ranking.non_finite_scores,
        "model": model,
        "model_info": model_info,
        "metadata": metadata,
    }


def critical_set_search(found: CriticalSet) -> dict[str, Any]:
    """The search part of a critical set (steps, records, stopping reason): what the ablation summary reads."""
    return {
        "masking_steps": [step.to_dict(found.baseline_log10_perplexity) for step in found.steps],
        "final_masked_neurons": [record.to_dict() for record in found.records],
        "stopping_reason": found.stopping_reason,
    }


def critical_set_payload(
    found: CriticalSet,
    *,
    neuron_file: NeuronFile,
    test_text: str,
    num_tokens: int,
    step_size: int,
    max_magnitude: float,
    nan_policy: str,
    unit: str,
    prune: bool,
    model: dict[str, Any],
    model_info: dict[str, Any],
    dimension_view: dict[str, Any] | None,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """A Stage-2 result: the search, the critical set, its pruned form and (unit dimension) the dimension view."""
    baseline = found.baseline_log10_perplexity
    result = {
        "kind": CRITICAL_SET,
        "method": "prefix_search",
        "ranking_method": neuron_file.payload.get("method"),
        "baseline_perplexity": exp_or_inf(baseline * LN10),
        "baseline_log10_perplexity": baseline,
        "test_text": test_text,
        "step_size": step_size,
        "max_magnitude_increase": max_magnitude,
        "nan_policy": nan_policy,
        "unit": unit,
        "prune": prune,
        **critical_set_search(found),
        "num_critical_records": len(found.records),
        "critical_channels": _channel_list(found.channels),
        "num_critical_channels": len(found.channels),
        "forward_passes": found.forward_passes,
        "prefixes_evaluated": found.prefixes_evaluated,
        "neuron_file": neuron_file.path,
        "num_tokens": num_tokens,
        "model": model,
        "model_info": model_info,
    }
    if found.pruned_channels is not None:
        result["pruned_channels"] = _channel_list(found.pruned_channels)
        result["pruned_log10_perplexity"] = found.pruned_log10_perplexity
        result["pruned_magnitude_increase"] = found.pruned_log10_perplexity - baseline
    if dimension_view is not None:
        result["dimension_view"] = dimension_view
    result["metadata"] = metadata
    return result


def evaluation_header(
    *,
    method: str,
    primary_metric: str,
    reference_metric: str | None,
    model: dict[str, Any],
    model_info: dict[str, Any],
    dataset_info: dict[str, Any],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """An evaluator's output before its levels: what was evaluated, on which model and data, how."""
    return {
        "kind": EVALUATION,
        "method": method,
        "primary_metric": primary_metric,
        "reference_metric": reference_metric or None,
        "model": model,
        "model_info": model_info,
        "dataset_info": dataset_info,
        "settings": settings,
    }


def levels_payload(header: dict[str, Any], *, run_key: dict[str, Any], results: list[dict[str, Any]], metadata: dict[str, Any]) -> dict[str, Any]:
    """An evaluation or random-masking output: its header, the run key that resuming compares, one entry per level."""
    return {**header, "run_key": run_key, "results": results, "metadata": metadata}


def rescored_evaluation(evaluation: dict[str, Any], results: list[dict[str, Any]], *, source: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """An evaluation whose levels were rescored from their stored responses: its identity blocks kept, the source recorded."""
    return {**evaluation, "results": results, "rescored_from": source, "rescore_metadata": metadata}


def random_masking_header(
    population: Population,
    *,
    model: dict[str, Any],
    model_info: dict[str, Any],
    dataset_info: dict[str, Any],
    settings: dict[str, Any],
    levels: Sequence[int],
    num_runs: int,
    seed: int,
) -> dict[str, Any]:
    """Random masking's output before its levels: the population drawn from and how draws are seeded."""
    return {
        "kind": RANDOM_MASKING,
        "method": f"random_{population.kind}",
        "primary_metric": "mean_perplexity",
        "model": model,
        "model_info": model_info,
        "dataset_info": dataset_info,
        "settings": settings,
        "experiment_info": {"masking_levels": list(levels), "num_runs": num_runs, "base_seed": seed, "population": population.kind, "seeding": "numpy default_rng([seed, level, run])"},
    }


def characterization_payload(
    found: dict[str, Any],
    *,
    model: dict[str, Any],
    settings: dict[str, Any],
    test_text: str,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """A characterisation: ``found`` as :func:`critical_neurons.method.characterization.characterize` returns it,
    ``settings`` what it was computed with (neuron file, channels, text source, seeds)."""
    return {"kind": CHARACTERIZATION, "method": "critical_neuron_characterization", "model": model, "settings": settings, "test_text": test_text, **found, "metadata": metadata}


def lesion_payload(
    *,
    model: dict[str, Any],
    neuron_file: NeuronFile,
    records: Sequence[NeuronRecord],
    channels: Sequence[Channel],
    edits: Sequence[FoldEdit],
    fold_check: dict[str, Any],
    test_text: str,
    max_length: int,
    before: PerplexityResult,
    after: PerplexityResult,
) -> dict[str, Any]:
    """``lesion.json`` of an exported model, before its files and metadata are added: what was removed and what it did."""
    return {
        "kind": LESION,
        "method": "zero_ablation_folded",
        "model": model,
        "neuron_file": neuron_file.path,
        "neuron_file_kind": neuron_file.kind,
        "num_records": len(records),
        "num_channels": len(channels),
        "channels": _channel_list(channels),
        "edits": [edit.to_dict() for edit in edits],
        "fold_check": fold_check,
        "perplexity": {
            "test_text": test_text,
            "max_length": max_length,
            "before": before.to_dict(),
            "after": after.to_dict(),
            "log10_increase": after.log10_perplexity - before.log10_perplexity,
        },
    }


def ablation_summary_payload(
    *,
    name: str,
    title: str,
    default_ranking: str,
    top_k: int,
    model: dict[str, Any] | None,
    rows: list[dict[str, Any]],
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """An ablation summary: one row per setting, compared with the default ranking."""
    return {"kind": ABLATION_SUMMARY, "method": name, "title": title, "default_ranking": default_ranking, "top_k": top_k, "model": model, "rows": rows, "metadata": metadata}
