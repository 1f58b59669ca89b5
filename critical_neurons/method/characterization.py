"""Why these neurons? Characterise a critical set: activation and weight profiles, masking effects, controls.

The paper finds a handful of channels whose masking collapses a model; this module says what they are.
For each channel: where its output peaks (a *massive activation* is hundreds to thousands of times
the module's median, at a fixed dimension, on the first or a delimiter token) and whether the same
hidden dimension stays massive down the residual stream; which inputs of its projection produce the
peak (large w_jk * x_k products: super-weight candidates); what masking it does to the next-token
distributions (KL, top-1 agreement, perplexity) and to the attention sink (attention mass on the first
token); and controls (each channel alone, the set without each channel, same-size random sets from
the same module type and layers). Every forward pass runs one row at a time in eager attention, so a
mask that changes nothing gives a KL of exactly 0.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.pytorch_utils import Conv1D

from critical_neurons.errors import UsageError
from critical_neurons.method.baselines import Population
from critical_neurons.model.masking import NeuronMasker, validate_channels
from critical_neurons.model.perplexity import LN10, exp_or_inf
from critical_neurons.model.residual import WriterOutputs, residual_dimensions, writers_if_known
from critical_neurons.outputs.records import Channel
from critical_neurons.reporting.results import channel_label, layer_and_type, spread_statistics

logger = logging.getLogger(__name__)

MAX_RANDOM_SETS = 1000  # one forward pass and one drawn set each: beyond this a typo (1e9) would run for days
MASSIVE_RATIO = 100.0  # peak / median |output| from which a peak is called massive here (Sun et al., 2024, report 1e3-1e4x)
HIDDEN_STATES_NOTE = "hidden_states[i] is the residual stream entering layer i (0: the embeddings); the last entry is the final norm's output"


def lower_median(values: torch.Tensor) -> float:
    """torch's median (the lower one for an even count) of all elements, in float32."""
    return float(values.float().median())


@contextmanager
def eager_attention(model: PreTrainedModel) -> Iterator[bool]:
    """Switch the model to eager attention (the only kind that returns attention weights), then back.

    Yields whether eager attention is active; models that cannot switch keep theirs and the attention
    masses are then left out.
    """
    previous = model.config._attn_implementation
    if previous != "eager":
        model.set_attn_implementation("eager")
    try:
        yield model.config._attn_implementation == "eager"
    finally:
        if model.config._attn_implementation != previous:
            model.set_attn_implementation(previous)


@dataclass
class PassSummary:
    """What one forward pass leaves for the comparisons: float32 log-probabilities, perplexity, attention sink, residual dims."""

    log_probs: torch.Tensor  # (seq, vocab) float32
    log10_perplexity: float
    first_token_attention: torch.Tensor | None  # (layers,) mean over heads and query positions > 0
    residual: torch.Tensor  # (hidden states, seq, len(dims)) float32: the tracked residual dimensions
    residual_medians: torch.Tensor  # (hidden states,) median |hidden state| per entry


@torch.no_grad()
def run_pass(model: PreTrainedModel, input_ids: torch.Tensor, dims: Sequence[int], attention: bool) -> PassSummary:
    """One forward pass of one row, reduced at once (no per-layer attention maps are kept)."""
    device = model.get_input_embeddings().weight.device
    ids = input_ids.to(device)
    out = model(input_ids=ids, output_hidden_states=True, output_attentions=attention, use_cache=False)
    log_probs = out.logits[0].float().log_softmax(dim=-1)
    targets = ids[0, 1:].to(log_probs.device)
    nll = -log_probs[:-1].gather(1, targets[:, None]).squeeze(1)
    attentions = getattr(out, "attentions", None) if attention else None
    first_token = torch.stack([layer[0, :, 1:, 0].float().mean().cpu() for layer in attentions]) if attentions else None
    dims_index = torch.tensor(list(dims), dtype=torch.long)
    residual = torch.stack([state[0][:, dims_index.to(state.device)].float().cpu() for state in out.hidden_states])
    medians = torch.tensor([lower_median(state[0].abs()) for state in out.hidden_states])
    return PassSummary(log_probs, float(nll.double().mean()) / LN10, first_token, residual, medians)


def masking_effect(clean: PassSummary, masked: PassSummary, channels: Sequence[Channel], attention_from: int = 0) -> dict[str, Any]:
    """KL(unmasked || masked) of the next-token distributions per position, top-1 agreement, perplexity and attention-sink change.

    The attention mass is also averaged over layers ``attention_from`` onwards (the characterisation
    passes the critical set's first downstream layer, so every mask is compared on the same layers).
    """
    kl = F.kl_div(masked.log_probs.to(clean.log_probs.device), clean.log_probs, reduction="none", log_target=True).sum(dim=-1).cpu()
    agree = (clean.log_probs.argmax(dim=-1) == masked.log_probs.argmax(dim=-1).to(clean.log_probs.device)).float().mean()
    non_finite = int((~torch.isfinite(kl)).sum())
    change = masked.log10_perplexity - clean.log10_perplexity
    labels = ", ".join(map(channel_label, channels)) or "nothing"
    if non_finite or not math.isfinite(masked.log10_perplexity):
        logger.warning("Masking %s gives non-finite values: %d positions with a non-finite KL, log10 perplexity %s", labels, non_finite, masked.log10_perplexity)
    effect: dict[str, Any] = {
        "channels": [channel._asdict() for channel in channels],
        "num_channels": len(channels),
        "log10_perplexity": masked.log10_perplexity,
        "perplexity": exp_or_inf(masked.log10_perplexity * LN10),
        "log10_perplexity_change": change,
        "kl_mean": float(kl.mean()),
        "kl_max": float(kl.max()),
        "kl_argmax_position": int(kl.argmax()),
        "kl_per_position": kl.tolist(),
        "top1_agreement": float(agree),
        "non_finite_kl_positions": non_finite,
    }
    if masked.first_token_attention is not None and clean.first_token_attention is not None:
        effect["first_token_attention"] = masked.first_token_attention.tolist()
        effect["first_token_attention_mean"] = float(masked.first_token_attention.mean())
        if attention_from < len(masked.first_token_attention):
            effect["first_token_attention_downstream"] = {
                "from_layer": attention_from,
                "unmasked_mean": float(clean.first_token_attention[attention_from:].mean()),
                "masked_mean": float(masked.first_token_attention[attention_from:].mean()),
            }
    return effect


def downstream_layer(channels: Sequence[Channel]) -> int:
    """The first layer whose attention a mask can change: the one after the earliest masked layer (0 when a module has no layer index)."""
    layers = [layer_and_type(channel.layer_name)[0] for channel in channels]
    return 0 if not layers or None in layers else min(layers) + 1


def activation_profile(output: torch.Tensor, hidden_idx: int, tokens: Sequence[str], massive_ratio: float) -> dict[str, Any]:
    """The channel's value at every position, its peak, the peak's ratio to the module's median |output| and its rank there.

    ``output`` is the module's (seq, channels) output on the unmasked text.
    """
    magnitude = output.float().abs()
    values = output[:, hidden_idx].float()
    position = int(values.abs().argmax())
    peak = float(values[position])
    median = lower_median(magnitude)
    others = values.abs().clone()
    others[position] = -1.0
    runner_up = float(others.max()) if len(values) > 1 else math.nan
    ratio = abs(peak) / median if median > 0 else math.inf
    return {
        "values": values.tolist(),
        "peak_value": peak,
        "peak_abs": abs(peak),
        "peak_position": position,
        "peak_token": tokens[position],
        "module_median_abs": median,
        "ratio_to_median": ratio,
        "log10_ratio_to_median": math.log10(ratio) if ratio > 0 else -math.inf,
        "massive": ratio >= massive_ratio,
        "peak_to_next_position_ratio": abs(peak) / runner_up if runner_up > 0 else math.inf,
        "rank_in_module_at_peak": int((magnitude[position] > abs(peak)).sum()) + 1,
    }


def residual_profile(
    clean: PassSummary, masked: tuple[torch.Tensor, torch.Tensor], column: int, hidden_idx: int, position: int, layer: int | None, massive_ratio: float
) -> dict[str, Any]:
    """The hidden dimension at the peak position through every hidden state, unmasked and with the channel masked.

    ``masked`` is the (residual, residual_medians) pair of the pass with the channel masked.
    """
    values = clean.residual[:, position, column]
    ratios = values.abs() / clean.residual_medians
    is_massive = ratios >= massive_ratio
    written_at = None if layer is None else layer + 1
    persists_until = None
    if written_at is not None and written_at < len(values) and bool(is_massive[written_at]):
        ends = (~is_massive[written_at:]).nonzero().flatten()
        persists_until = written_at - 1 + (int(ends[0]) if len(ends) else len(values) - written_at)
    masked_residual, masked_medians = masked
    masked_values = masked_residual[:, position, column]
    return {
        "dimension": hidden_idx,
        "position": position,
        "note": HIDDEN_STATES_NOTE,
        "written_into_hidden_state": written_at,
        "values": values.tolist(),
        "layer_median_abs": clean.residual_medians.tolist(),
        "ratio_to_layer_median": ratios.tolist(),
        "massive_hidden_states": is_massive.nonzero().flatten().tolist(),
        "persists_until_hidden_state": persists_until,
        "masked_values": masked_values.tolist(),
        "masked_ratio_to_layer_median": (masked_values.abs() / masked_medians).tolist(),
    }


def weight_row(module: nn.Module, hidden_idx: int) -> tuple[torch.Tensor, float] | None:
    """The weights producing one output channel and its bias: a Linear's row, a GPT-2 Conv1D's column; None otherwise."""
    if isinstance(module, nn.Linear) and module.weight.shape == (module.out_features, module.in_features):
        row = module.weight.detach()[hidden_idx]
    elif isinstance(module, Conv1D):
        row = module.weight.detach()[:, hidden_idx]
    else:
        return None
    bias = 0.0 if module.bias is None else float(module.bias.detach()[hidden_idx])
    return row, bias


def weight_profile(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor, hidden_idx: int, position: int, top_inputs: int) -> dict[str, Any] | None:
    """Which inputs make the channel's output at ``position``: w_jk * x_k ranked by magnitude, with each product's share.

    A share is the product over the output without bias. ``inputs`` and ``output`` are the module's
    (seq, in) input and (seq, out) output on the unmasked text. None for modules without a weight matrix.
    """
    found = weight_row(module, hidden_idx)
    if found is None:
        return None
    row, bias = found
    weights = row.float().cpu()
    activations = inputs[position].float().cpu()
    products = weights * activations
    without_bias = float(output[position, hidden_idx]) - bias
    order = products.abs().topk(min(top_inputs, len(products))).indices
    input_median = lower_median(inputs.abs())
    shares = products[order] / without_bias
    row_median = lower_median(weights.abs())
    largest = int(weights.abs().argmax())
    return {
        "position": position,
        "output_without_bias": without_bias,
        "bias": bias,
        "sum_of_products": float(products.double().sum()),
        "top_inputs": [
            {"input": int(k), "product": float(products[k]), "share": float(share), "weight": float(weights[k]), "input_activation": float(activations[k]),
             "input_ratio_to_median": abs(float(activations[k])) / input_median if input_median > 0 else math.inf}
            for k, share in zip(order.tolist(), shares.tolist())
        ],
        "top_inputs_share": float(shares.sum()),
        "input_median_abs": input_median,
        "row_max_abs_weight": float(weights[largest].abs()),
        "row_max_input": largest,
        "row_median_abs_weight": row_median,
        "row_max_to_median": float(weights[largest].abs()) / row_median if row_median > 0 else math.inf,
    }


def control_population(model: PreTrainedModel, channels: Sequence[Channel]) -> list[str]:
    """Modules of the critical channels' types (name after the layer index, e.g. ``mlp.down_proj``) in the critical channels' layers."""
    located = [layer_and_type(channel.layer_name) for channel in channels]
    wanted = {(layer, kind) for layer, _ in located for _, kind in located}
    return [name for name, _ in model.named_modules() if name and layer_and_type(name) in wanted]


def draw_control_sets(population: Population, exclude: Sequence[Channel], size: int, num_sets: int, seed: int) -> list[list[Channel]]:
    """``num_sets`` sets of ``size`` distinct channels of the population, none of them in ``exclude``; set r from a generator seeded by (seed, r)."""
    ends = np.cumsum(population.widths)
    offsets = dict(zip(population.sites, (ends - np.asarray(population.widths)).tolist()))
    excluded = np.asarray([offsets[name] + index for name, index in exclude if name in offsets], dtype=np.int64)
    allowed = np.setdiff1d(np.arange(population.size), excluded)
    if num_sets and len(allowed) < size:
        raise UsageError("--num_random_sets", f"the control population has {len(allowed)} channels besides the critical ones, fewer than the set's {size}", "use --num_random_sets 0")
    return [population.channels(np.random.default_rng([seed, run]).choice(allowed, size=size, replace=False)) for run in range(num_sets)]


def random_controls(population: Population, sets: list[list[Channel]], effects: list[dict[str, Any]], set_change: float, seed: int) -> dict[str, Any]:
    """The random sets' effects with the mean, min and max of each measure, and how many harm perplexity as much as the critical set."""
    size = len(sets[0]) if sets else 0
    block: dict[str, Any] = {
        "population": {"rule": "every channel of the modules of the critical channels' types (name after the layer index) in the critical channels' layers, the critical channels excluded", "modules": list(population.sites)},
        "num_sets": len(sets),
        "set_size": size,
        "seed": seed,
        "sets": effects,
    }
    if effects:
        changes = [effect["log10_perplexity_change"] for effect in effects]
        block["log10_perplexity_change"] = spread_statistics(changes)
        block["kl_mean"] = spread_statistics([effect["kl_mean"] for effect in effects])
        block["top1_agreement"] = spread_statistics([effect["top1_agreement"] for effect in effects])
        block["sets_at_least_as_harmful"] = sum(change >= set_change for change in changes)
    return block


@dataclass
class _Captured:
    """The unmasked module outputs and inputs of the critical modules, and the output width of every population module."""

    names: list[str]
    outputs: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor | None]
    widths: dict[str, int]

    def hook(self, name: str):
        def record(module: nn.Module, inputs: tuple, output: Any) -> None:
            if not isinstance(output, torch.Tensor) or output.dim() != 3:
                return
            self.widths[name] = output.shape[-1]
            if name in self.names:
                first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
                self.outputs[name] = output[0].detach()
                self.inputs[name] = None if first is None else first[0].detach()

        return record


def characterize(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    input_ids: torch.Tensor,
    channels: Sequence[Channel],
    *,
    num_random_sets: int = 10,
    seed: int = 42,
    top_inputs: int = 5,
    massive_ratio: float = MASSIVE_RATIO,
    progress: bool = True,
) -> dict[str, Any]:
    """Characterise the critical ``channels`` on one text (``input_ids`` of shape (1, seq)): profiles, effects and controls.

    Passes: one unmasked (capturing the critical modules' inputs and outputs), one per channel alone,
    one for the set and one per leave-one-out set (for sets of two or more), one per random set.
    """
    channels = list(dict.fromkeys(Channel(*channel) for channel in channels))
    if not channels:
        raise UsageError("--neuron_file", "no channel to characterise", "pass a neuron file with records")
    if not 0 <= num_random_sets <= MAX_RANDOM_SETS:
        raise UsageError("--num_random_sets", f"must be between 0 and {MAX_RANDOM_SETS}, got {num_random_sets}", "use e.g. 10")
    validate_channels(model, channels)
    writers = writers_if_known(model, input_ids)
    writer_outputs = WriterOutputs(writers, sorted({channel.hidden_idx for channel in channels if channel.layer_name in writers}))
    modules = dict(model.named_modules())
    hidden_size = model.config.get_text_config().hidden_size
    tokens = tokenizer.convert_ids_to_tokens(input_ids[0].tolist())
    population_names = control_population(model, channels)
    captured = _Captured(list(dict.fromkeys(channel.layer_name for channel in channels)), {}, {}, {})
    dims = sorted({channel.hidden_idx for channel in channels if channel.hidden_idx < hidden_size})  # residual dimensions followed
    count = len(channels)

    with eager_attention(model) as attention:
        if not attention:
            logger.warning("This model cannot switch to eager attention: first-token attention mass is left out")
        handles = [modules[name].register_forward_hook(captured.hook(name)) for name in dict.fromkeys([*captured.names, *population_names])]
        handles += writer_outputs.register(modules)
        try:
            clean = run_pass(model, input_ids, dims, attention)
        finally:
            for handle in handles:
                handle.remove()
        missing = [name for name in captured.names if name not in captured.outputs]
        if missing:
            raise UsageError("--neuron_file", f"module {missing[0]} gives no (batch, seq, channels) output, so it cannot be characterised", "use a neuron file of site modules")
        fired = [name for name in population_names if name in captured.widths]
        population = Population("same_type_and_layers", tuple(fired), tuple(captured.widths[name] for name in fired))
        random_sets = draw_control_sets(population, channels, count, num_random_sets, seed)
        leave_one_out = [[other for other in channels if other != channel] for channel in channels] if count > 1 else []
        mask_sets = [[channel] for channel in channels] + ([channels] if count > 1 else []) + leave_one_out + random_sets
        effects, alone = [], []
        for index, mask_set in enumerate(tqdm(mask_sets, desc="Masked passes", disable=not progress)):
            with NeuronMasker(model, mask_set, validate=False):
                masked = run_pass(model, input_ids, dims, attention)
            effects.append(masking_effect(clean, masked, mask_set, downstream_layer(channels)))
            if index < count:
                alone.append((masked.residual, masked.residual_medians))

    blocks = []
    for channel, effect, masked in zip(channels, effects, alone):
        output, inputs = captured.outputs[channel.layer_name], captured.inputs[channel.layer_name]
        activation = activation_profile(output, channel.hidden_idx, tokens, massive_ratio)
        position = activation["peak_position"]
        layer, kind = layer_and_type(channel.layer_name)
        residual = None
        if channel.layer_name in writers:
            residual = residual_profile(clean, masked, dims.index(channel.hidden_idx), channel.hidden_idx, position, layer, massive_ratio)
        weights = None if inputs is None else weight_profile(modules[channel.layer_name], inputs, output, channel.hidden_idx, position, top_inputs)
        if weights is not None and weights["output_without_bias"] == 0:
            logger.warning("%s is 0 (bias aside) at its peak position %d: the input shares are undefined (null)", channel_label(channel), position)
        blocks.append({
            "layer_name": channel.layer_name,
            "hidden_idx": channel.hidden_idx,
            "layer": layer,
            "module_type": kind,
            "activation": activation,
            "residual_stream": residual,
            "weights": weights,
            "effect": effect,
        })
    set_effect = effects[count] if count > 1 else effects[0]
    first_random = count + (1 if count > 1 else 0) + len(leave_one_out)
    baseline: dict[str, Any] = {"log10_perplexity": clean.log10_perplexity, "perplexity": exp_or_inf(clean.log10_perplexity * LN10)}
    if clean.first_token_attention is not None:
        baseline["first_token_attention"] = clean.first_token_attention.tolist()
        baseline["first_token_attention_mean"] = float(clean.first_token_attention.mean())
    return {
        "num_tokens": len(tokens),
        "tokens": tokens,
        "attention_implementation": "eager" if attention else model.config._attn_implementation,
        "baseline": baseline,
        "channels": blocks,
        "residual_dimensions": residual_dimensions(clean.residual, clean.residual_medians, dims, writer_outputs, channels, tokens, massive_ratio),
        "set_effect": set_effect,
        "controls": {
            "alone": [
                {"channel": channel._asdict(), **{key: effect[key] for key in ("log10_perplexity_change", "kl_mean", "top1_agreement")}}
                for channel, effect in zip(channels, effects)
            ],
            "leave_one_out": [{"without": channel._asdict(), **effect} for channel, effect in zip(channels, effects[count + 1 : first_random])],
            "random_sets": random_controls(population, random_sets, effects[first_random:], set_effect["log10_perplexity_change"], seed),
        },
    }
