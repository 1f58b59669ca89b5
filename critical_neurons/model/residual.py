"""Residual-stream dimensions: which modules write them, and Stage 2's dimension unit.

Hidden index d of the residual stream is written by every module whose output is added to the
stream: the attention and MLP output projections of every layer, and for families with a norm
between a block and the add (Gemma-2/3), that norm and the projection feeding it (the norm only
rescales channel d). A massive activation lives in one such dimension, and several layers may write
it, so a search that masks one record at a time reaches it slowly; masking the dimension in every
writer at once reaches it in one step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate, combinations
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from critical_neurons.errors import UsageError
from critical_neurons.method.stage2 import CriticalSet
from critical_neurons.model.loading import input_device
from critical_neurons.outputs.records import Channel, NeuronRecord

logger = logging.getLogger(__name__)

PROBE_TOKENS = 16  # tokens of the text on which the writers are identified
MAX_WRITERS_PER_LAYER = 4  # attention and MLP, each possibly behind a post-norm (the norm is the writer then)
# Rounding slack of ``out - in == sum of writers``: a few units in the last place of the values added.
ROUNDING_SLACK = 4.0
FIX = "use --unit channel"


def _hidden_output(output: Any, hidden_size: int) -> torch.Tensor | None:
    """A module's (batch, seq, hidden) output tensor, or None for any other output."""
    return output if isinstance(output, torch.Tensor) and output.dim() == 3 and output.shape[-1] == hidden_size else None


def _decoder_layers(model: PreTrainedModel) -> list[tuple[str, nn.ModuleList]]:
    """Every ModuleList with one entry per hidden layer (the decoder's layers are among them)."""
    count = model.config.get_text_config().num_hidden_layers
    return [(name, module) for name, module in model.named_modules() if isinstance(module, nn.ModuleList) and len(module) == count]


@dataclass
class _LayerCapture:
    """A decoder layer's input and output and the outputs (with first inputs) of its hidden-width leaf modules, in firing order."""

    inputs: torch.Tensor | None = None
    output: torch.Tensor | None = None
    leaves: dict[str, tuple[torch.Tensor | None, torch.Tensor]] = field(default_factory=dict)


@torch.no_grad()
def _capture(model: PreTrainedModel, input_ids: torch.Tensor, hidden_size: int) -> tuple[str, list[_LayerCapture]]:
    """One unmasked pass recording every decoder layer's residual update and its leaves' outputs."""
    candidates = _decoder_layers(model)
    if not candidates:
        raise UsageError("--unit", f"this {model.config.model_type} model has no list of {model.config.get_text_config().num_hidden_layers} decoder layers", FIX)
    captures = {name: [_LayerCapture() for _ in layers] for name, layers in candidates}
    handles = []

    def layer_hooks(capture: _LayerCapture):
        def before(module, args, kwargs):
            first = args[0] if args else kwargs.get("hidden_states")
            capture.inputs = _hidden_output(first, hidden_size)

        def after(module, args, kwargs, output):
            capture.output = _hidden_output(output[0] if isinstance(output, tuple) else output, hidden_size)

        return before, after

    def leaf_hook(capture: _LayerCapture, name: str):
        def record(module, args, output):
            hidden = _hidden_output(output, hidden_size)
            if hidden is not None:
                first = args[0] if args and isinstance(args[0], torch.Tensor) else None
                capture.leaves[name] = (first, hidden)

        return record

    try:
        for list_name, layers in candidates:
            for capture, layer in zip(captures[list_name], layers):
                before, after = layer_hooks(capture)
                handles.append(layer.register_forward_pre_hook(before, with_kwargs=True))
                handles.append(layer.register_forward_hook(after, with_kwargs=True))
                for leaf_name, leaf in layer.named_modules():
                    if leaf_name and next(leaf.children(), None) is None and not isinstance(leaf, (nn.Dropout, nn.Identity)):
                        handles.append(leaf.register_forward_hook(leaf_hook(capture, leaf_name)))
        model(input_ids=input_ids[:, :PROBE_TOKENS].to(input_device(model)), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    for list_name, layer_captures in captures.items():
        if all(capture.inputs is not None and capture.output is not None for capture in layer_captures):
            return list_name, layer_captures
    raise UsageError("--unit", f"no list of decoder layers of this {model.config.model_type} model maps (batch, seq, {hidden_size}) hidden states to hidden states", FIX)


def _writers_of_layer(capture: _LayerCapture, eps: float) -> list[str] | None:
    """The fewest leaves whose outputs add up to the layer's output minus its input, or None (no such set, or two).

    A set qualifies when it matches the update within rounding at every element and its squared
    error is within twice the best set's: in bfloat16 the rounding bound alone can hide a small
    block's output next to a large residual, the fit over all elements does not.
    """
    update = capture.output.float() - capture.inputs.float()
    scale = capture.output.float().abs() + capture.inputs.float().abs()
    names = list(capture.leaves)
    outputs = [capture.leaves[name][1].float() for name in names]
    fits: list[tuple[float, tuple[int, ...]]] = []
    for size in range(1, MAX_WRITERS_PER_LAYER + 1):
        for subset in combinations(range(len(names)), size):
            error = update - sum(outputs[index] for index in subset)
            if bool((error.abs() <= ROUNDING_SLACK * eps * (scale + sum(outputs[index].abs() for index in subset))).all()):
                fits.append((float(error.double().square().sum()), subset))
    if not fits:
        return None
    best = min(error for error, _ in fits)
    close = [subset for error, subset in fits if error <= 2 * best]
    fewest = [subset for subset in close if len(subset) == min(map(len, close))]
    return [names[index] for index in fewest[0]] if len(fewest) == 1 else None


@torch.no_grad()
def _feeder(module: nn.Module, capture: _LayerCapture, writer: str) -> str | None:
    """For a norm writer: the leaf whose output it normalises, when a zero in channel d stays zero (so masking the feeder masks d too)."""
    weight = getattr(module, "weight", None)
    if isinstance(module, (nn.Linear, Conv1D)) or not isinstance(weight, torch.Tensor) or weight.dim() != 1:
        return None
    norm_input = capture.leaves[writer][0]
    if norm_input is None:
        return None
    feeder = next((name for name, (_, output) in capture.leaves.items() if name != writer and output.shape == norm_input.shape and torch.equal(output, norm_input)), None)
    if feeder is None:
        return None
    probe = norm_input.clone()
    probe[..., 0] = 0
    return feeder if not bool(module(probe)[..., 0].any()) else None


def residual_writers(model: PreTrainedModel, input_ids: torch.Tensor) -> dict[str, int]:
    """Module name -> layer index of every module that writes the residual stream, layer by layer in firing order.

    Found from what the model computes on the first tokens of ``input_ids``, not from module names:
    in each decoder layer, the fewest leaf modules whose outputs add up to the layer's output minus
    its input (within the dtype's rounding), plus, for each such writer that is a norm, the leaf whose
    output it normalises. A layer without exactly one such set (a scaled residual, a norm after the
    add) makes the dimension unit impossible: refused naming ``--unit``.
    """
    hidden_size = model.config.get_text_config().hidden_size
    list_name, captures = _capture(model, input_ids, hidden_size)
    modules = dict(model.named_modules())
    eps = torch.finfo(model.dtype).eps if model.dtype.is_floating_point else torch.finfo(torch.float32).eps
    writers: dict[str, int] = {}
    for layer, capture in enumerate(captures):
        found = _writers_of_layer(capture, eps)
        if found is None:
            raise UsageError(
                "--unit", f"layer {layer} of this {model.config.model_type} model does not add its blocks' outputs to the residual stream unchanged (no single set of its modules sums to its update)", FIX
            )
        members = set(found) | {_feeder(modules[f"{list_name}.{layer}.{writer}"], capture, writer) for writer in found}
        writers.update({f"{list_name}.{layer}.{leaf}": layer for leaf in capture.leaves if leaf in members})  # firing order
    logger.info("Residual-stream writers: %d modules in %d layers (layer 0: %s)", len(writers), len(captures), ", ".join(name for name, layer in writers.items() if layer == 0))
    return writers


@dataclass
class Dimension:
    """A residual-stream dimension as a Stage-2 candidate.

    ``ranked`` holds the ranking's records of its writers (ranking order); ``members`` one record per
    writer, the writers the ranking lists first (at their best record), then the others in layer
    order with a score of 0 (below the ranking's cut-off), so masking the members masks the whole
    dimension.
    """

    index: int
    score: float
    ranked: list[NeuronRecord]
    members: list[NeuronRecord]


def dimension_score(ranked: Sequence[NeuronRecord]) -> float:
    """Sum over writers of each writer's best score: how much the whole dimension moves under noise.

    Every layer writing a massive dimension adds to it, so the sum favours a dimension several layers
    write over a single loud but harmless channel (the measurement against the max rule is in the README).
    """
    best: dict[str, float] = {}
    for record in ranked:
        if math.isfinite(record.score):
            best[record.layer_name] = max(best.get(record.layer_name, 0.0), record.score)
    return sum(best.values())


def rank_dimensions(records: Sequence[NeuronRecord], writers: dict[str, int]) -> list[Dimension]:
    """The dimensions whose writers the ranking lists, best first by :func:`dimension_score` (ties: first listed first)."""
    ranked: dict[int, list[NeuronRecord]] = {}
    for record in records:
        if record.layer_name in writers:
            ranked.setdefault(record.hidden_idx, []).append(record)
    dimensions = []
    for index, listed in ranked.items():
        best = {record.layer_name: record for record in reversed(listed)}  # each writer's first (best) record
        unlisted = [NeuronRecord(name, listed[0].seq_idx, index, 0.0) for name in writers if name not in best]
        members = sorted(best.values(), key=listed.index) + unlisted
        dimensions.append(Dimension(index, dimension_score(listed), listed, members))
    return sorted(dimensions, key=lambda dimension: -dimension.score)  # stable: ties keep the ranking's order


def dimension_records(dimensions: Sequence[Dimension]) -> tuple[list[NeuronRecord], list[int]]:
    """The members of every dimension in order, and the record count at which each dimension ends."""
    records = [member for dimension in dimensions for member in dimension.members]
    ends = list(accumulate(len(dimension.members) for dimension in dimensions))
    return records, ends


@dataclass
class DimensionPlan:
    """Stage 2's dimension unit: the writers, the ranked dimensions, and their members as one list with the end of each dimension."""

    writers: dict[str, int]
    dimensions: list[Dimension]
    records: list[NeuronRecord]
    unit_ends: list[int]


def plan_dimensions(model: PreTrainedModel, input_ids: torch.Tensor, records: Sequence[NeuronRecord]) -> DimensionPlan:
    """The candidates of a dimension search: pass ``plan.records`` and ``unit_ends=plan.unit_ends`` to :func:`critical_prefix`.

    Each step then masks ``step_size`` more whole dimensions under the same threshold, NaN policy and
    batching, and ``prune`` drops single members while the threshold holds.
    """
    writers = residual_writers(model, input_ids)
    dimensions = rank_dimensions(records, writers)
    if not dimensions:
        raise UsageError("--neuron_file", "lists no output channel of a module that writes the residual stream", "use a ranking over the default sites, or --unit channel")
    members, ends = dimension_records(dimensions)
    logger.info("%d candidate dimensions; first: %s", len(dimensions), ", ".join(f"{d.index} ({d.score:.4g})" for d in dimensions[:5]))
    return DimensionPlan(writers, dimensions, members, ends)


def _writer_entries(dimension: Dimension, writers: dict[str, int]) -> list[dict[str, Any]]:
    listed = set(dimension.ranked)
    return [{"layer_name": member.layer_name, "layer": writers[member.layer_name], "score": member.score, "in_ranking": member in listed} for member in dimension.members]


def dimension_view(found: CriticalSet, plan: DimensionPlan, step_size: int) -> dict[str, Any]:
    """The dimension unit's part of a Stage-2 result: writers, the masked dimensions with their writers, the step of each, pruning."""
    writers = plan.writers
    masked = plan.dimensions[: len(found.steps) * step_size]
    view: dict[str, Any] = {
        "rule": "dimensions ordered by the sum over their writers of each writer's best Stage-1 score",
        "writers_per_layer": [name.split(f".{layer}.", 1)[-1] for name, layer in writers.items() if layer == 0],
        "num_writers": len(writers),
        "candidate_dimensions": len(plan.dimensions),
        "masked_dimensions": [
            {"dimension": dimension.index, "score": dimension.score, "step": position // step_size + 1, "writers": _writer_entries(dimension, writers)}
            for position, dimension in enumerate(masked)
        ],
    }
    if found.pruned_channels is not None:
        kept: dict[int, list[str]] = {}
        for channel in found.pruned_channels:
            kept.setdefault(channel.hidden_idx, []).append(channel.layer_name)
        view["pruned_dimensions"] = [{"dimension": index, "writers": names, "layers": [writers[name] for name in names]} for index, names in kept.items()]
    return view


def writers_if_known(model: PreTrainedModel, input_ids: torch.Tensor) -> dict[str, int]:
    """:func:`residual_writers`, or none (with a warning) for a model whose residual stream is not a plain sum of its blocks."""
    try:
        return residual_writers(model, input_ids)
    except UsageError as error:
        logger.warning("Residual-stream writers not found, so no dimension view: %s", error)
        return {}


class WriterOutputs:
    """Forward hooks that keep every residual writer's output in the followed dimensions and its median |output| (first batch row)."""

    def __init__(self, writers: dict[str, int], dims: Sequence[int]):
        self.writers = writers
        self.dims = list(dims)
        self.values: dict[str, torch.Tensor] = {}  # name -> (seq, len(dims)) float32
        self.medians: dict[str, float] = {}

    def register(self, modules: dict[str, nn.Module]) -> list[torch.utils.hooks.RemovableHandle]:
        if not self.dims:
            return []
        index = torch.tensor(self.dims)

        def hook(name: str):
            def keep(module, args, output):
                self.values[name] = output[0][:, index.to(output.device)].float().cpu()
                self.medians[name] = float(output[0].abs().float().median())

            return keep

        return [modules[name].register_forward_hook(hook(name)) for name in self.writers]


def _massive_positions(ratios: torch.Tensor, tokens: Sequence[str], massive_ratio: float) -> list[dict[str, Any]]:
    """Positions where the dimension is massive in some hidden state: which hidden states, and the largest ratio there."""
    massive = ratios >= massive_ratio  # (hidden states, seq)
    return [
        {"position": position, "token": tokens[position], "hidden_states": massive[:, position].nonzero().flatten().tolist(), "max_ratio_to_layer_median": float(ratios[:, position].max())}
        for position in massive.any(dim=0).nonzero().flatten().tolist()
    ]


def residual_dimensions(
    residual: torch.Tensor, medians: torch.Tensor, followed: Sequence[int], outputs: WriterOutputs, critical: Sequence[Channel], tokens: Sequence[str], massive_ratio: float
) -> list[dict[str, Any]]:
    """Per residual dimension the critical set touches: its critical channels, where it is massive, and how much each writer writes.

    ``residual`` is (hidden states, seq, len(followed)) of the unmasked pass and ``medians`` the
    median |hidden state| of each; a writer's ratio is its peak |output| in the dimension over its
    module's median |output|.
    """
    blocks = []
    for column, dimension in enumerate(outputs.dims):
        ratios = residual[:, :, list(followed).index(dimension)].abs() / medians[:, None]
        writers = []
        for name, layer in outputs.writers.items():
            values = outputs.values[name][:, column]
            position = int(values.abs().argmax())
            ratio = abs(float(values[position])) / outputs.medians[name] if outputs.medians[name] > 0 else math.inf
            writers.append({"layer_name": name, "layer": layer, "peak_value": float(values[position]), "peak_position": position, "ratio_to_module_median": ratio, "massive": ratio >= massive_ratio})
        blocks.append({
            "dimension": dimension,
            "critical_writers": [name for name, index in critical if index == dimension and name in outputs.writers],
            "massive_positions": _massive_positions(ratios, tokens, massive_ratio),
            "massive_writers": [writer["layer_name"] for writer in writers if writer["massive"]],
            "writers": writers,
        })
    return blocks
