"""What every evaluator shares: flags, masking levels, the per-level loop with resume, and the summary table."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from critical_neurons.cli import add_model_arguments
from critical_neurons.errors import UsageError
from critical_neurons.generation import generate
from critical_neurons.io import load_neuron_records, read_json, run_metadata, write_json
from critical_neurons.masking import NeuronMasker, validate_channels
from critical_neurons.models import model_info
from critical_neurons.records import NeuronRecord, distinct_channels

logger = logging.getLogger(__name__)


def add_evaluator_arguments(
    parser: argparse.ArgumentParser,
    *,
    default_output: str,
    max_length: int,
    max_new_tokens: int | None = None,
    max_samples: int | None = None,
) -> None:
    """The seed's evaluator flags plus the toolkit's; ``max_new_tokens`` None means a perplexity task."""
    add_model_arguments(parser)
    parser.add_argument("--neuron_file", default=None, help="ranking file (stage 1, AM, GM) or stage-2 result")
    parser.add_argument("--masking_levels", default=None, help='comma-separated record counts to mask, e.g. "0,4" (default "0")')
    parser.add_argument("--num_neurons_to_mask", type=int, default=0, help="single level, used when --masking_levels is absent (reference flag)")
    parser.add_argument("--output_file", default=default_output)
    parser.add_argument("--max_samples", "--sample_size", dest="max_samples", type=int, default=max_samples, help="evaluate this many samples (seeded subset; default: all)")
    parser.add_argument("--batch_size", type=int, default=8, help="sequences per forward pass / generate call")
    parser.add_argument("--max_length", type=int, default=max_length, help=f"input tokens kept per sample (reference: {max_length})")
    parser.add_argument("--dataset_path", default=None, help="hub id, local folder, or json/jsonl(.gz)/parquet/csv file")
    if max_new_tokens is not None:
        parser.add_argument("--max_new_tokens", type=int, default=max_new_tokens, help=f"greedy tokens generated (reference: {max_new_tokens})")
        parser.add_argument("--chat_template", action="store_true", help="wrap prompts in the tokenizer's chat template (the reference uses raw text)")


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


def _channels_digest(records: Sequence[NeuronRecord]) -> str:
    text = json.dumps([[record.layer_name, record.hidden_idx] for record in records])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class LevelRunner:
    """Evaluates one metric function at each masking level, writing the output after every level.

    A rerun with the same model, dtype, neuron list, data and settings skips levels already in
    the output file; a file from a different run is never overwritten.
    """

    model: PreTrainedModel
    args: argparse.Namespace
    dataset_info: dict[str, Any]
    settings: dict[str, Any]
    summary_columns: Sequence[str]

    def __post_init__(self) -> None:
        self.started = time.time()
        self.records = load_neuron_records(self.args.neuron_file) if self.args.neuron_file else None
        num_records = len(self.records) if self.records is not None else None
        self.levels = parse_masking_levels(self.args.masking_levels, self.args.num_neurons_to_mask, num_records)
        if self.records is not None:
            validate_channels(self.model, distinct_channels(self.records[: max(self.levels)]))
        self.output = Path(self.args.output_file)
        info = model_info(self.model, self.args.model_path)
        info.update(neuron_file=self.args.neuron_file, total_neurons=num_records)
        self.header = {"model_info": info, "dataset_info": self.dataset_info, "settings": self.settings}
        self.run_key = {
            "model_path": self.args.model_path,
            "dtype": info["dtype"],
            "neurons": _channels_digest(self.records) if self.records else None,
            "dataset_info": self.dataset_info,
            "settings": self.settings,
        }
        self.results = self._previous_results()

    def _previous_results(self) -> list[dict[str, Any]]:
        if not self.output.exists():
            return []
        previous = read_json(str(self.output), "--output_file")
        if not isinstance(previous, dict) or json.loads(json.dumps(previous.get("run_key"))) != json.loads(json.dumps(self.run_key, default=str)):
            raise UsageError("--output_file", f"{self.output} holds results of a different run (model, neurons, data or settings differ)", "choose another --output_file or move the old one away")
        return list(previous.get("results", []))

    def channels_at(self, level: int):
        return distinct_channels(self.records[:level]) if level and self.records else []

    def run(self, evaluate: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        done = {entry["masking_level"] for entry in self.results}
        for level in self.levels:
            if level in done:
                logger.info("Level %d is already in %s; skipping", level, self.output)
                continue
            channels = self.channels_at(level)
            logger.info("=== Testing with %d neurons masked (%d distinct channels) ===", level, len(channels))
            with NeuronMasker(self.model, channels, validate=False) if channels else nullcontext():
                metrics = evaluate()
            entry = {
                "masking_level": level,
                "neurons_masked": min(level, len(self.records)) if self.records else 0,
                "distinct_channels_masked": len(channels),
                **metrics,
            }
            self.results.append(entry)
            self._write()
        self.print_summary()
        return self._payload()

    def _payload(self) -> dict[str, Any]:
        order = {level: index for index, level in enumerate(self.levels)}
        results = sorted(self.results, key=lambda entry: order.get(entry["masking_level"], len(order)))
        return {**self.header, "run_key": self.run_key, "results": results, "metadata": run_metadata(vars(self.args), self.started)}

    def _write(self) -> None:
        write_json(self.output, self._payload())

    def print_summary(self) -> None:
        columns = ["masking_level", "distinct_channels_masked", *self.summary_columns]
        rows = [[_format(entry.get(column)) for column in columns] for entry in self._payload()["results"]]
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


@dataclass
class GenerativeTask:
    """An evaluator's four parts: prompt, (extraction inside) score, aggregate; data is loaded by the script."""

    build_prompt: Callable[[dict[str, Any]], str]
    score: Callable[[dict[str, Any], str], dict[str, Any]]
    aggregate: Callable[[list[dict[str, Any]]], dict[str, Any]]


def evaluate_generative(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    samples: Sequence[dict[str, Any]],
    task: GenerativeTask,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Generate for every sample under the current masks, score each, aggregate; keep per-sample details."""
    prompts = [task.build_prompt(sample) for sample in samples]
    responses = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        max_input_length=args.max_length,
        chat_template=args.chat_template,
    )
    details = [{"prompt": prompt, "response": response, **task.score(sample, response)} for sample, prompt, response in zip(samples, prompts, responses)]
    return {**task.aggregate(details), "total_samples": len(details), "detailed_results": details}
