"""Stage 2: the shortest prefix of a ranking whose masking raises perplexity by a chosen factor."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from critical_neurons.errors import UsageError
from critical_neurons.model.masking import NeuronMasker, validate_channels
from critical_neurons.model.perplexity import LN10, exp_or_inf, sequence_nll
from critical_neurons.outputs.records import Channel, NeuronRecord, distinct_channels

logger = logging.getLogger(__name__)

MAGNITUDE_EXCEEDED = "magnitude_increase_exceeded"
ALL_MASKED = "all_neurons_masked"
MAX_STEPS = "max_steps_reached"
NON_FINITE = "non_finite_perplexity"
NAN_POLICIES = ("stop", "continue")
TEST_TEXT_TOKENS = 512  # perplexity on the first 512 tokens of the test text, as the reference


@dataclass
class MaskingStep:
    step: int
    neurons_masked: int
    distinct_channels: int
    log10_perplexity: float  # +inf when the loss overflowed, nan when it was NaN

    def magnitude(self, baseline_log10: float) -> float:
        return self.log10_perplexity - baseline_log10

    def to_dict(self, baseline_log10: float) -> dict:
        magnitude = self.magnitude(baseline_log10)
        return {
            "step": self.step,
            "neurons_masked": self.neurons_masked,
            "distinct_channels": self.distinct_channels,
            "masked_perplexity": exp_or_inf(self.log10_perplexity * LN10),
            "log10_perplexity": self.log10_perplexity,
            "magnitude_increase": magnitude,
            "perplexity_ratio": exp_or_inf(magnitude * LN10),
        }


@dataclass
class CriticalSet:
    """What stage 2 found: the step records, the stopping reason and the critical prefix."""

    baseline_log10_perplexity: float
    steps: list[MaskingStep]
    stopping_reason: str
    records: list[NeuronRecord]
    forward_passes: int
    pruned_channels: list[Channel] | None = None
    pruned_log10_perplexity: float | None = None

    @property
    def prefixes_evaluated(self) -> int:
        return len(self.steps)

    @property
    def channels(self) -> list[Channel]:
        return distinct_channels(self.records)


class PrefixScorer:
    """log10 perplexity of one text under several channel sets, one batch row per set."""

    def __init__(self, model: PreTrainedModel, input_ids: torch.Tensor):
        self.model = model
        self.input_ids = input_ids.reshape(1, -1)
        if self.input_ids.shape[1] < 2:
            raise UsageError("--test_text", "needs at least 2 tokens to have a perplexity", "pass a longer text")
        self.forward_passes = 0

    def log10_perplexities(self, channel_sets: Sequence[Sequence[Channel]]) -> list[float]:
        rows = self.input_ids.expand(len(channel_sets), -1)
        with NeuronMasker.per_row(self.model, channel_sets, validate=False):
            nll, counts = sequence_nll(self.model, rows)
        self.forward_passes += 1
        mean_loss = nll / counts.double()
        return [value / LN10 for value in mean_loss.tolist()]  # +inf stays +inf, NaN stays NaN


def unit_lengths(unit_ends: Sequence[int], step_size: int) -> list[int]:
    """Record counts to evaluate when a unit ends at each of ``unit_ends``: every ``step_size`` units, and the last one."""
    lengths = list(unit_ends[step_size - 1 :: step_size])
    if unit_ends and (not lengths or lengths[-1] != unit_ends[-1]):
        lengths.append(unit_ends[-1])
    return lengths


def prefix_lengths(records: Sequence[NeuronRecord], step_size: int, by_channel: bool) -> list[int]:
    """Record counts to evaluate: every ``step_size`` records, or (channel scan) every ``step_size`` new channels.

    The channel scan skips prefixes that only add a position of an already-masked channel: masking
    ignores positions, so those prefixes give the same perplexity as the shorter one.
    """
    if not by_channel:
        return unit_lengths(range(1, len(records) + 1), step_size)
    seen: set[Channel] = set()
    introduces = []
    for index, record in enumerate(records):
        if record.channel not in seen:
            seen.add(record.channel)
            introduces.append(index + 1)
    return unit_lengths(introduces, step_size)


def critical_prefix(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    records: Sequence[NeuronRecord],
    *,
    step_size: int = 1,
    max_magnitude: float = 1.0,
    max_steps: int = 1000,
    batch_size: int = 8,
    by_channel: bool = False,
    unit_ends: Sequence[int] | None = None,
    prune: bool = False,
    nan_policy: str = "stop",
    progress: bool = True,
) -> CriticalSet:
    """Grow the masked prefix until log10(ppl / baseline) >= ``max_magnitude``.

    A step adds ``step_size`` records, new channels (``by_channel``) or units: with ``unit_ends``
    (the record count at which each unit of the list ends, e.g. a residual dimension's writers),
    steps end only there.

    The step records equal the reference's sequential search: prefixes run in batches (one row per
    prefix, each with its own mask) whose size grows 1, 2, 4, ... up to ``batch_size``, so a search
    that stops at step 1 costs one masked pass, and a long one costs ~steps / batch_size passes.
    ``nan_policy="stop"``: a non-finite masked loss counts as collapse, with its own stopping reason.
    ``"continue"`` is the authors' loop: a NaN step is recorded and the search goes on (NaN never
    passes the threshold test), and +inf counts as exceeding the threshold.
    """
    if step_size < 1:
        raise UsageError("--step_size", f"must be at least 1, got {step_size}", "use e.g. 1")
    if max_steps < 1:
        raise UsageError("--max_steps", f"must be at least 1, got {max_steps}", "use e.g. 1000")
    if batch_size < 1:
        raise UsageError("--batch_size", f"must be at least 1, got {batch_size}", "use e.g. 8")
    if nan_policy not in NAN_POLICIES:
        raise UsageError("--nan_policy", f"must be one of {', '.join(NAN_POLICIES)}, got {nan_policy!r}", "use stop or continue")
    validate_channels(model, set(distinct_channels(records)))
    scorer = PrefixScorer(model, input_ids)
    (baseline,) = scorer.log10_perplexities([[]])
    if not math.isfinite(baseline):
        raise UsageError("--test_text", "the unmasked model gives a non-finite perplexity on this text", "check --dtype (try float32 or bfloat16)")
    every_length = unit_lengths(unit_ends, step_size) if unit_ends is not None else prefix_lengths(records, step_size, by_channel)  # the last prefix masks the whole list
    lengths = every_length[:max_steps]
    steps: list[MaskingStep] = []
    reason = None
    chunk = 1
    bar = tqdm(total=len(lengths), desc="Masking steps", disable=not progress)
    while reason is None:
        todo = lengths[len(steps) : len(steps) + chunk]
        channel_sets = [distinct_channels(records[:length]) for length in todo]
        for length, channels, value in zip(todo, channel_sets, scorer.log10_perplexities(channel_sets)):
            steps.append(MaskingStep(len(steps) + 1, length, len(channels), value))
            bar.update(1)
            logger.debug("Step %d: %d records (%d channels) -> log10 ppl %.3f", len(steps), length, len(channels), value)
            if nan_policy == "stop" and not math.isfinite(value):
                reason = NON_FINITE
            elif value - baseline >= max_magnitude:  # False for NaN, True for +inf
                reason = MAGNITUDE_EXCEEDED
            elif len(steps) == len(every_length):
                reason = ALL_MASKED
            elif len(steps) == len(lengths):
                reason = MAX_STEPS
            if reason:
                break
        chunk = min(chunk * 2, batch_size)
    bar.close()
    result = CriticalSet(baseline, steps, reason, list(records[: steps[-1].neurons_masked]), scorer.forward_passes)
    if prune and reason in (MAGNITUDE_EXCEEDED, NON_FINITE):
        result.pruned_channels, result.pruned_log10_perplexity = prune_channels(scorer, result.channels, baseline, max_magnitude, batch_size)
    return result


def prune_channels(
    scorer: PrefixScorer, channels: list[Channel], baseline: float, max_magnitude: float, batch_size: int = 1
) -> tuple[list[Channel], float]:
    """Drop channels, last-ranked first, while masking the rest still reaches the threshold.

    Batched by speculation: row j of a pass drops the next j + 1 candidates together, so every row
    before the first that no longer collapses is the one-at-a-time decision, and the candidate of
    that row is kept. The result equals trying one channel at a time; a set where most channels
    can go (a dimension's writers) costs about len / batch_size passes instead of len.
    """

    def collapses(value: float) -> bool:
        return not math.isfinite(value) or value - baseline >= max_magnitude

    kept = list(channels)
    (current,) = scorer.log10_perplexities([kept])
    candidates = channels[::-1]
    position = 0
    while position < len(candidates) and len(kept) > 1:
        batch = candidates[position : position + min(batch_size, len(kept) - 1)]
        trials = [[channel for channel in kept if channel not in batch[: row + 1]] for row in range(len(batch))]
        values = scorer.log10_perplexities(trials)
        dropped = next((row for row, value in enumerate(values) if not collapses(value)), len(batch))
        if dropped:
            kept, current = trials[dropped - 1], values[dropped - 1]
        position += min(dropped + 1, len(batch))
    return kept, current
