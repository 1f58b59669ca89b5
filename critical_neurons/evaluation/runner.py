"""The evaluators' core: masking levels, the per-level loop (identity, resume, lock) and generative scoring.

Everything here takes objects (a model, records, levels, data, settings); the scripts' flag handling
lives in :mod:`critical_neurons.evaluation.evaluator_cli`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from critical_neurons.errors import UsageError
from critical_neurons.evaluation.generation import GenerationSettings, generate
from critical_neurons.evaluation.tasks.common import GenerativeTask
from critical_neurons.model.folding import check_fold, masking
from critical_neurons.outputs.files import OutputFile, run_metadata
from critical_neurons.outputs.formats.build import levels_payload
from critical_neurons.outputs.formats.read import kind_of, previous_levels
from critical_neurons.outputs.records import Channel, NeuronRecord, distinct_channels

logger = logging.getLogger(__name__)


def parse_levels(text: str, flag: str = "--masking_levels") -> list[int]:
    """Distinct non-negative integer levels from a comma-separated list, in the given order."""
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(flag, f"{text!r} is not a comma-separated list of integers", 'use e.g. "0,4"') from None
    if not levels or any(level < 0 for level in levels):
        raise UsageError(flag, f"{text!r} must list non-negative integers", 'use e.g. "0,4"')
    return list(dict.fromkeys(levels))


def parse_masking_levels(text: str | None, fallback: int, num_records: int | None) -> list[int]:
    """Masking levels for a neuron list; levels beyond the list are clamped with a warning."""
    levels = parse_levels(text if text is not None else str(fallback))
    if any(levels) and num_records is None:
        raise UsageError("--neuron_file", "is required for masking levels above 0", "pass a ranking file or a stage-2 result")
    if num_records is not None and max(levels) > num_records:
        logger.warning("Masking levels above %d are clamped: the neuron file lists only %d records", num_records, num_records)
    return levels


def level_channels(records: Sequence[NeuronRecord] | None, level: int) -> list[Channel]:
    """The distinct channels of the first ``level`` records (none at level 0 or without a list)."""
    return distinct_channels(records[:level]) if level and records else []


def masked_evaluation(
    model: PreTrainedModel,
    records: Sequence[NeuronRecord] | None,
    evaluate: Callable[[], dict[str, Any]],
    *,
    mask_mode: str = "hook",
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> Callable[[int], dict[str, Any]]:
    """``evaluate`` run with the first ``level`` records' channels masked, plus how much was masked.

    In fold mode each level's fold is first checked against the hooked model on a probe text
    (``tokenizer`` needed) and the check is recorded in the level entry.
    """

    def at_level(level: int) -> dict[str, Any]:
        channels = level_channels(records, level)
        entry: dict[str, Any] = {"neurons_masked": min(level, len(records)) if records else 0, "distinct_channels_masked": len(channels)}
        if channels:
            entry["mask_mode"] = mask_mode
            if mask_mode == "fold":
                entry["fold_check"] = check_fold(model, tokenizer, channels)
        with masking(model, channels, mask_mode):
            entry.update(evaluate())
        return entry

    return at_level


def _differing_keys(first: dict[str, Any], second: Any) -> list[str]:
    if not isinstance(second, dict):
        return ["run_key"]
    return sorted(key for key in first.keys() | second.keys() if json.dumps(first.get(key), sort_keys=True, default=str) != json.dumps(second.get(key), sort_keys=True, default=str))


class LevelRunner:
    """Evaluates a metric function at each masking level, writing the output after every level.

    The output carries ``header`` (kind, method, model, data and settings) and ``run_key``. A rerun
    with the same run key continues: levels already in the file are skipped. Any other run is
    refused before anything is computed, so one file never mixes two runs.
    """

    def __init__(
        self,
        output: OutputFile,
        *,
        header: dict[str, Any],
        run_key: dict[str, Any],
        levels: Sequence[int],
        summary_columns: Sequence[str] = (),
        arguments: dict[str, Any] | None = None,
    ):
        self.started = time.time()
        self.output = output
        self.header = header
        self.run_key = json.loads(json.dumps(run_key, default=str))
        self.levels = list(levels)
        self.summary_columns = list(summary_columns)
        self.arguments = arguments or {}
        self.results = self._previous_results()

    def _previous_results(self) -> list[dict[str, Any]]:
        previous = previous_levels(self.output, kind_of(self.header))
        if previous is None:
            return []
        differing = _differing_keys(self.run_key, previous.get("run_key"))
        if differing:
            raise UsageError(
                self.output.flag,
                f"{self.output.given} holds another run ({', '.join(differing)} differ), so its levels cannot be continued",
                "choose another output file or move the old one away",
            )
        return list(previous.get("results", []))

    def run(self, evaluate: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
        """``evaluate(level)`` for every level not yet in the output; the file is rewritten after each."""
        done = {entry.get("masking_level") for entry in self.results}
        for level in self.levels:
            if level in done:
                logger.info("Level %d is already in %s; skipping", level, self.output.given)
                continue
            logger.info("=== Masking level %d ===", level)
            self.results.append({"masking_level": level, **evaluate(level)})
            self.output.write_json(self.payload())
        self.print_summary()
        return self.payload()

    def payload(self) -> dict[str, Any]:
        order = {level: index for index, level in enumerate(self.levels)}
        results = sorted(self.results, key=lambda entry: order.get(entry["masking_level"], len(order)))
        return levels_payload(self.header, run_key=self.run_key, results=results, metadata=run_metadata(self.arguments, self.started))

    def print_summary(self) -> None:
        columns = ["masking_level", "distinct_channels_masked", *(self.summary_columns or [self.header.get("primary_metric", "")])]
        rows = [[_format(entry.get(column)) for column in columns] for entry in self.payload()["results"]]
        widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]
        lines = ["Results summary", "  ".join(column.ljust(width) for column, width in zip(columns, widths))]
        lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
        print("\n".join(lines), flush=True)


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def evaluate_generative(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    samples: Sequence[dict[str, Any]],
    task: GenerativeTask,
    settings: GenerationSettings,
) -> dict[str, Any]:
    """Generate for every sample under the current masks, then score (see :func:`score_responses`)."""
    prompts = [task.build_prompt(sample) for sample in samples]
    responses = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
        max_input_length=settings.max_length,
        chat_template=settings.chat_template,
        compile=settings.compile,
    )
    return score_responses(task, samples, prompts, responses)


def score_responses(task: GenerativeTask, samples: Sequence[dict[str, Any]], prompts: Sequence[str], responses: Sequence[str]) -> dict[str, Any]:
    """One level's metrics from its responses: the corrected scorer's and, in ``reference``, the authors'.

    Each per-sample detail holds the prompt, the response, the corrected verdict and a ``reference``
    block with the authors' verdict; the level entry holds both aggregates. Rescoring a stored
    result calls this again on its responses, without the model.
    """
    details = [
        {"prompt": prompt, "response": response, **task.score(sample, response), "reference": task.reference_score(sample, response)}
        for sample, prompt, response in zip(samples, prompts, responses)
    ]
    return {**task.aggregate(details), "total_samples": len(details), "reference": task.reference_aggregate(details), "detailed_results": details}
