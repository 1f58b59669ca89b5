"""What every evaluator script shares: its flags, and the steps from flags to the evaluation core.

The order matters for bad input: the output is checked and locked, the neuron file read and the
levels parsed before any data or model loads; the neuron file is checked against the model and
every masked channel validated before the first level runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from critical_neurons.cli import add_model_arguments, add_neuron_file_arguments, integer
from critical_neurons.evaluation.generation import COMPILE_CHOICES, plan_generation
from critical_neurons.evaluation.runner import GenerationSettings, LevelRunner, evaluate_generative, level_channels, masked_evaluation, parse_masking_levels
from critical_neurons.evaluation.tasks.common import GenerativeTask, TaskDefaults
from critical_neurons.model.folding import MASK_MODES, resolve_mask_mode
from critical_neurons.model.loading import load_model, model_info
from critical_neurons.model.masking import validate_channels
from critical_neurons.outputs.files import OutputFile
from critical_neurons.outputs.formats import EVALUATION
from critical_neurons.outputs.formats.build import evaluation_header
from critical_neurons.outputs.formats.read import NeuronFile, previous_levels, read_neuron_file
from critical_neurons.outputs.run_identity import data_digest, model_identity, run_key


def add_evaluator_arguments(parser: argparse.ArgumentParser, defaults: TaskDefaults, *, dataset: bool = True) -> None:
    """The seed's evaluator flags plus the toolkit's, with the benchmark's own defaults.

    ``dataset=False`` leaves out ``--dataset_path`` and ``--max_samples`` (lm-eval tasks bring their own data).
    """
    add_model_arguments(parser)
    add_neuron_file_arguments(parser, required=False)
    parser.add_argument("--masking_levels", default=None, help='comma-separated record counts to mask, e.g. "0,4" (default "0")')
    parser.add_argument("--num_neurons_to_mask", type=integer(0), default=0, help="single level, used when --masking_levels is absent (reference flag)")
    parser.add_argument("--output_file", default=defaults.output_file)
    if defaults.generative:
        parser.add_argument("--batch_size", type=batch_size_value, default=None, help="sequences per generate call, or auto: the most that fit in GPU memory (default: auto on CUDA, 8 elsewhere)")
        parser.add_argument("--compile", choices=COMPILE_CHOICES, default="auto", help="static KV cache + torch.compile; auto: on when the model is on GPUs and no level masks by hooks")
    else:
        parser.add_argument("--batch_size", type=integer(1), default=8, help="sequences per forward pass")
    parser.add_argument("--max_length", type=integer(2), default=defaults.max_length, help=f"input tokens kept per sample (reference: {defaults.max_length})")
    if dataset:
        parser.add_argument("--max_samples", "--sample_size", dest="max_samples", type=integer(1), default=None, help="evaluate this many samples (seeded subset; default: all)")
        parser.add_argument("--dataset_path", default=None, help="hub id, local folder, or json/jsonl(.gz)/parquet/csv file")
    parser.add_argument("--mask_mode", choices=MASK_MODES, default="auto", help="hook: forward hooks; fold: zero the weights for a level, restored after; auto: fold when every channel folds")
    if defaults.generative:
        parser.add_argument("--max_new_tokens", type=integer(1), default=defaults.max_new_tokens, help=f"greedy tokens generated (reference: {defaults.max_new_tokens})")
        parser.add_argument("--chat_template", action="store_true", help="wrap prompts in the tokenizer's chat template (the reference uses raw text)")


def batch_size_value(text: str) -> int | str:
    """argparse type: ``auto`` or a positive integer."""
    return "auto" if text == "auto" else integer(1)(text)


class EvaluatorRun:
    """One evaluator invocation: checked output (locked while the run lasts), neuron file, levels, model."""

    def __init__(self, args: argparse.Namespace, defaults: TaskDefaults):
        self.args = args
        self.defaults = defaults
        inputs = {"--neuron_file": args.neuron_file, "--dataset_path": getattr(args, "dataset_path", None), "--model_path": args.model_path}
        self.output = OutputFile(args.output_file, inputs=inputs)
        self.previous = previous_levels(self.output, EVALUATION)
        self.neuron_file: NeuronFile | None = read_neuron_file(args.neuron_file) if args.neuron_file else None
        self.records = self.neuron_file.records if self.neuron_file else None
        self.levels = parse_masking_levels(args.masking_levels, args.num_neurons_to_mask, len(self.records) if self.records else None)
        self.model: PreTrainedModel | None = None
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.identity: dict[str, Any] = {}
        self.mask_mode = "hook"
        self.generation: GenerationSettings | None = None
        self.header: dict[str, Any] = {}

    def __enter__(self) -> EvaluatorRun:
        self.output.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.output.__exit__(*exc_info)

    def set_primary_metric(self, name: str) -> None:
        """Name the headline metric once it is known, unless the task or the user already did."""
        if not self.header.get("primary_metric"):
            self.header["primary_metric"] = name

    def load_model(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """Load the model, refuse a neuron file made for another one, validate every channel masked."""
        args = self.args
        self.model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
        self.identity = model_identity(self.model, args.model_path)
        channels = level_channels(self.records, max(self.levels))
        if self.neuron_file is not None:
            self.neuron_file.check_model(self.identity, args.allow_other_model)
            validate_channels(self.model, channels)
        self.mask_mode = resolve_mask_mode(self.model, channels, args.mask_mode)
        self.tokenizer = tokenizer
        return self.model, tokenizer

    def run(
        self,
        evaluate: Callable[[], dict[str, Any]],
        *,
        samples: Sequence[Any],
        dataset_info: dict[str, Any],
        selection: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        primary_metric: str | None = None,
    ) -> dict[str, Any]:
        """Evaluate every level (resuming the same run) and write the output after each.

        ``primary_metric`` overrides the task's; a task that learns it only from its first results
        (lm-eval) calls :meth:`set_primary_metric` from ``evaluate``.
        """
        if self.model is None:
            raise RuntimeError("load_model() must run before run()")
        info = model_info(self.model, self.args.model_path)
        info.update(
            neuron_file=self.args.neuron_file,
            neuron_method=self.neuron_file.payload.get("method") if self.neuron_file else None,
            neuron_list_length=len(self.records) if self.records else None,
        )
        settings = {"batch_size": self.args.batch_size, "max_length": self.args.max_length, **(settings or {})}
        if self.generation is not None:
            settings.update(self.generation.to_dict())
        selection = {"max_samples": getattr(self.args, "max_samples", None), **(selection or {})}
        self.header = header = evaluation_header(
            method=self.defaults.name,
            primary_metric=primary_metric or self.defaults.primary_metric,
            reference_metric=self.defaults.reference_metric,
            model=self.identity,
            model_info=info,
            dataset_info=dataset_info,
            settings=settings,
        )
        key = run_key(self.identity, dtype=info["dtype"], records=self.records, data=data_digest(samples), seed=self.args.seed, selection=selection, settings=settings)
        runner = LevelRunner(self.output, header=header, run_key=key, levels=self.levels, summary_columns=self.defaults.summary_columns, arguments=vars(self.args))
        return runner.run(masked_evaluation(self.model, self.records, evaluate, mask_mode=self.mask_mode, tokenizer=self.tokenizer))

    def _requested_batch_size(self) -> int | str | None:
        """``--batch_size``; with auto (or none given), a resumed run keeps the size its output records."""
        requested = self.args.batch_size
        if requested in (None, "auto") and self.previous is not None:
            settings = self.previous.get("settings")
            recorded = settings.get("batch_size") if isinstance(settings, dict) else None
            if isinstance(recorded, int) and recorded > 0:
                return recorded
        return requested

    def run_generative(self, task: GenerativeTask, *, samples: Sequence[dict[str, Any]], **run_options: Any) -> dict[str, Any]:
        """Fix this run's generation (batch size, compilation) once for the task's prompts, then :meth:`run`
        every level with it; ``run_options`` as :meth:`run`'s."""
        if self.model is None or self.tokenizer is None:
            raise RuntimeError("load_model() must run before run_generative()")
        model, tokenizer, args = self.model, self.tokenizer, self.args
        hooks = self.mask_mode == "hook" and bool(level_channels(self.records, max(self.levels)))
        self.generation = generation = plan_generation(
            model, tokenizer, [task.build_prompt(sample) for sample in samples], max_new_tokens=args.max_new_tokens, max_length=args.max_length,
            chat_template=args.chat_template, batch_size=self._requested_batch_size(), compile=args.compile, hooks=hooks,
        )
        return self.run(lambda: evaluate_generative(model, tokenizer, samples, task, generation), samples=samples, **run_options)
