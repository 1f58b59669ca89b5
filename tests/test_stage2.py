"""Stage 2: batched search equals the sequential one; log space; non-finite collapse; pruning."""

from __future__ import annotations

import json
import math

import pytest

from critical_neurons.method.stage1 import perturbation_importance
from critical_neurons.method.stage2 import (
    ALL_MASKED,
    MAGNITUDE_EXCEEDED,
    MAX_STEPS,
    NON_FINITE,
    MaskingStep,
    PrefixScorer,
    critical_prefix,
    prefix_lengths,
    prune_channels,
)
from critical_neurons.model.loading import load_model
from critical_neurons.model.masking import NeuronMasker
from critical_neurons.model.perplexity import LN10, sequence_nll
from critical_neurons.outputs.files import write_json
from critical_neurons.outputs.records import NeuronRecord, distinct_channels

TEXT = "The polar bear is a large carnivorous mammal native to the Arctic. It hunts seals on the sea ice."


@pytest.fixture(scope="module")
def setup(tiny_model_path):
    model, tokenizer = load_model(str(tiny_model_path("llama")))
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    ranking = perturbation_importance(model, ids, num_samples=4, top_n=200, progress=False)
    return model, ids, ranking.records


def sequential_log10(model, ids, records, count):
    with NeuronMasker(model, distinct_channels(records[:count])):
        nll, tokens = sequence_nll(model, ids)
    return float(nll[0] / tokens[0]) / LN10


def test_batched_steps_equal_one_prefix_at_a_time(setup):
    model, ids, records = setup
    batched = critical_prefix(model, ids, records, max_magnitude=50.0, max_steps=20, batch_size=8, progress=False)
    single = critical_prefix(model, ids, records, max_magnitude=50.0, max_steps=20, batch_size=1, progress=False)
    assert batched.stopping_reason == single.stopping_reason == MAX_STEPS
    assert [s.neurons_masked for s in batched.steps] == list(range(1, 21))
    assert [s.log10_perplexity for s in batched.steps] == pytest.approx([s.log10_perplexity for s in single.steps], abs=1e-5)
    assert [s.log10_perplexity for s in batched.steps] == pytest.approx([sequential_log10(model, ids, records, n) for n in range(1, 21)], abs=1e-5)
    assert batched.forward_passes < single.forward_passes


def test_stops_at_first_step_over_threshold(setup):
    model, ids, records = setup
    base = sequential_log10(model, ids, records, 0)
    values = [sequential_log10(model, ids, records, n) - base for n in range(1, 31)]
    threshold = sorted(values)[len(values) // 2]
    expected_step = next(i for i, v in enumerate(values, start=1) if v >= threshold)
    found = critical_prefix(model, ids, records, max_magnitude=threshold, max_steps=30, progress=False)
    assert found.stopping_reason == MAGNITUDE_EXCEEDED
    assert len(found.steps) == expected_step and len(found.records) == expected_step


def test_all_neurons_masked_when_list_runs_out(setup):
    model, ids, records = setup
    found = critical_prefix(model, ids, records[:5], max_magnitude=100.0, step_size=2, progress=False)
    assert found.stopping_reason == ALL_MASKED
    assert [s.neurons_masked for s in found.steps] == [2, 4, 5]


def test_channel_scan_skips_repeated_channels(setup):
    model, ids, records = setup
    lengths = prefix_lengths(records, 1, by_channel=True)
    channels = distinct_channels(records)
    assert len(lengths) == len(channels)
    assert [len(distinct_channels(records[:n])) for n in lengths] == list(range(1, len(channels) + 1))
    found = critical_prefix(model, ids, records, max_magnitude=50.0, max_steps=5, by_channel=True, progress=False)
    assert [s.distinct_channels for s in found.steps] == [1, 2, 3, 4, 5]


def test_non_finite_loss_is_collapse_with_its_own_reason(setup, monkeypatch):
    model, ids, records = setup
    original = PrefixScorer.log10_perplexities
    monkeypatch.setattr(PrefixScorer, "log10_perplexities", lambda self, sets: [math.nan if s else v for s, v in zip(sets, original(self, sets))])
    found = critical_prefix(model, ids, records, progress=False)
    assert found.stopping_reason == NON_FINITE and len(found.steps) == 1


def test_huge_perplexity_is_reported_not_overflowed(tmp_path):
    step = MaskingStep(step=1, neurons_masked=1, distinct_channels=1, log10_perplexity=20.5).to_dict(baseline_log10=1.9)
    assert step["masked_perplexity"] == pytest.approx(10**20.5, rel=1e-9)
    assert step["magnitude_increase"] == pytest.approx(18.6)
    beyond = MaskingStep(step=1, neurons_masked=1, distinct_channels=1, log10_perplexity=400.0).to_dict(baseline_log10=1.9)
    write_json(tmp_path / "out.json", beyond)
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["masked_perplexity"] is None and saved["log10_perplexity"] == 400.0


def test_prune_keeps_the_threshold(setup):
    model, ids, records = setup
    base = sequential_log10(model, ids, records, 0)
    threshold = (sequential_log10(model, ids, records, 40) - base) * 0.8
    found = critical_prefix(model, ids, records, max_magnitude=threshold, max_steps=40, prune=True, progress=False)
    assert found.stopping_reason == MAGNITUDE_EXCEEDED
    assert set(found.pruned_channels) <= set(found.channels)
    with NeuronMasker(model, found.pruned_channels):
        nll, tokens = sequence_nll(model, ids)
    assert float(nll[0] / tokens[0]) / LN10 - base >= threshold - 1e-6
    assert found.pruned_log10_perplexity - base >= threshold - 1e-6


def test_records_roundtrip():
    record = NeuronRecord("model.layers.0.mlp.down_proj", seq_idx=3, hidden_idx=7, score=1.5)
    assert NeuronRecord.from_dict(record.to_dict()) == record


def test_nan_policy_continue_records_nan_steps_and_stops_at_inf(setup, monkeypatch):
    """The authors' loop: NaN never passes the threshold test, so the search goes on; +inf exceeds it."""
    model, ids, records = setup
    original = PrefixScorer.log10_perplexities
    poisoned = {2: math.nan, 3: math.nan, 5: math.inf}  # distinct channels masked -> value

    def scored(self, sets):
        return [poisoned.get(len(s), value) for s, value in zip(sets, original(self, sets))]

    monkeypatch.setattr(PrefixScorer, "log10_perplexities", scored)
    channels = distinct_channels(records)
    by_channel = [next(record for record in records if record.channel == channel) for channel in channels[:8]]
    found = critical_prefix(model, ids, by_channel, max_magnitude=1e6, nan_policy="continue", progress=False)
    values = [step.log10_perplexity for step in found.steps]
    assert len(values) == 5 and math.isnan(values[1]) and math.isnan(values[2]) and values[4] == math.inf
    assert found.stopping_reason == MAGNITUDE_EXCEEDED and len(found.records) == 5
    stopped = critical_prefix(model, ids, by_channel, max_magnitude=1e6, nan_policy="stop", progress=False)
    assert stopped.stopping_reason == NON_FINITE and len(stopped.steps) == 2


def test_channel_scan_with_a_step_larger_than_the_channels_and_trailing_repeats(setup):
    model, ids, records = setup
    first = records[0]
    repeats = [first, records[1], first, first]  # two channels, then only repeats of a masked one
    assert prefix_lengths(repeats, 5, by_channel=True) == [2]
    found = critical_prefix(model, ids, repeats, max_magnitude=1e6, step_size=5, by_channel=True, progress=False)
    assert found.stopping_reason == ALL_MASKED and [step.neurons_masked for step in found.steps] == [2]
    capped = critical_prefix(model, ids, records, max_magnitude=1e6, max_steps=2, progress=False)
    assert capped.stopping_reason == MAX_STEPS


def test_batched_prune_equals_one_channel_at_a_time(setup):
    model, ids, records = setup
    channels = distinct_channels(records)[:30]
    scorer = PrefixScorer(model, ids)
    (base,) = scorer.log10_perplexities([[]])
    (full,) = scorer.log10_perplexities([channels])
    threshold = (full - base) * 0.7
    one = prune_channels(scorer, channels, base, threshold, batch_size=1)
    passes = scorer.forward_passes
    batched = prune_channels(scorer, channels, base, threshold, batch_size=8)
    assert batched[0] == one[0] and 1 < len(one[0]) < len(channels)  # some channels kept, some dropped
    assert batched[1] == pytest.approx(one[1], abs=1e-5)
    assert scorer.forward_passes - passes < passes - 2
