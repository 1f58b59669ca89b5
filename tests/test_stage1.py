"""Stage 1: the fast engine equals a slow, obviously-correct per-sample computation, up to float rounding."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import SHORT_BOOKENDS_TEXT

from critical_neurons import UsageError
from critical_neurons.cli import encode_text
from critical_neurons.method import ranking, stage1
from critical_neurons.method.ranking import rank_site_scores
from critical_neurons.method.stage1 import SCORE_THRESHOLD, perturbation_importance
from critical_neurons.model.loading import load_model, max_positions
from critical_neurons.model.sites import candidate_sites

# Batch shapes take different float kernels, so the same scores come out rounded differently: 1e-4
# is ~1000 float32 roundings, far below the 10-50% a change of noise moves a score when K <= 8.
RTOL, ATOL = 1e-4, 1e-6

Entry = tuple[str, int, int, float]  # (site, position, channel, score)


def as_tuples(records) -> list[Entry]:
    return [(r.layer_name, r.seq_idx, r.hidden_idx, r.score) for r in records]


def assert_same_ranking(actual: list[Entry], expected: list[Entry], *, rtol: float = RTOL, atol: float = ATOL) -> None:
    """``actual`` ranks the same scores as ``expected`` up to float rounding, both cut at the same length.

    Guaranteed: scores agree rank by rank; every record's score agrees with the one ``expected`` gives
    that (site, position, channel) (one missing from ``expected`` must be a near-tie with its cut-off);
    and a record further from both neighbours than rounding can move two scores sits at the same rank.
    """
    assert len(actual) == len(expected)
    scores = torch.tensor([entry[3] for entry in expected], dtype=torch.float64)
    torch.testing.assert_close(torch.tensor([entry[3] for entry in actual], dtype=torch.float64), scores, rtol=rtol, atol=atol)
    tolerance = atol + rtol * scores.abs()
    lookup = {entry[:3]: entry[3] for entry in expected}
    for *key, score in actual:
        reference = lookup.get(tuple(key))
        if reference is None:
            assert score <= scores[-1] + tolerance[-1], f"{key} ({score}) is not in the expected ranking"
        else:
            assert abs(score - reference) <= atol + rtol * abs(reference), f"{key}: {score} vs {reference}"
    apart = (scores[:-1] - scores[1:]) > tolerance[:-1] + tolerance[1:]  # ranks i and i+1 cannot swap
    # The last rank may swap with a record beyond the cut, so it is never fixed.
    fixed = torch.cat([torch.ones(1, dtype=torch.bool), apart]) & torch.cat([apart, torch.zeros(1, dtype=torch.bool)])
    moved = [(rank, actual[rank][:3], expected[rank][:3]) for rank in fixed.nonzero().squeeze(1).tolist() if actual[rank][:3] != expected[rank][:3]]
    assert not moved, f"records at well-separated ranks differ: {moved[:5]}"


def slow_reference(model, input_ids, noise_scale, num_samples, seed):
    """One noisy pass at a time through the full model, every element visited in Python.

    Returns every record above the threshold, best first, and how many scores lie within rounding of
    the threshold (those may fall either side of it in another computation).
    """
    names = candidate_sites(model)
    modules = dict(model.named_modules())
    outputs: dict[str, torch.Tensor] = {}
    order: list[str] = []

    def hook(name):
        def record(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.dim() == 3:
                outputs[name] = output[0].detach().float().clone()
                if name not in order:
                    order.append(name)

        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in names]
    try:
        with torch.no_grad():
            model(input_ids=input_ids)
            clean = dict(outputs)
            sums = {name: torch.zeros_like(value) for name, value in clean.items()}
            embeddings = model.get_input_embeddings()(input_ids)
            generator = torch.Generator().manual_seed(seed)
            for _ in range(num_samples):
                noise = torch.randn(tuple(embeddings.shape[1:]), generator=generator)
                model(inputs_embeds=embeddings + noise_scale * noise)
                for name in order:
                    sums[name] = sums[name] + (outputs[name] - clean[name]).abs()
    finally:
        for handle in handles:
            handle.remove()
    records, near_threshold = [], 0
    for name in order:
        score = sums[name] / num_samples
        for seq in range(score.shape[0]):
            for channel in range(score.shape[1]):
                value = score[seq, channel].item()
                near_threshold += abs(value - SCORE_THRESHOLD) <= ATOL + RTOL * SCORE_THRESHOLD
                if value > SCORE_THRESHOLD:
                    records.append((name, seq, channel, value))
    records.sort(key=lambda record: -record[3])  # stable: ties keep site, position, channel order
    return records, near_threshold


@pytest.mark.parametrize("family", ["llama", "gemma3", "gpt2", "qwen2", "mistral", "phi3", "gemma", "gemma2"])
def test_fast_engine_matches_slow_reference(tiny_model_path, family):
    """The reference's clean pass runs from token ids; the engine feeds their embeddings as row 0 of
    its first batch. Every family must give the same clean outputs both ways."""
    model, tokenizer = load_model(str(tiny_model_path(family)))
    input_ids = tokenizer(SHORT_BOOKENDS_TEXT, return_tensors="pt").input_ids
    expected, near_threshold = slow_reference(model, input_ids, noise_scale=5.0, num_samples=6, seed=42)
    ranking = perturbation_importance(model, input_ids, noise_scale=5.0, num_samples=6, batch_size=4, top_n=300, seed=42, progress=False)
    assert_same_ranking(as_tuples(ranking.records), expected[:300])
    assert abs(ranking.total_candidates - len(expected)) <= near_threshold


def test_gemma3_four_dimensional_norms_are_skipped_not_fatal(tiny_model_path):
    model, tokenizer = load_model(str(tiny_model_path("gemma3")))
    ranking = perturbation_importance(model, tokenizer(SHORT_BOOKENDS_TEXT, return_tensors="pt").input_ids, num_samples=2, progress=False)
    assert "model.layers.0.self_attn.q_norm" in ranking.skipped_sites
    assert not any("q_norm" in site or "k_norm" in site for site in ranking.sites)
    assert ranking.records


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_ranking_does_not_depend_on_batch_size(tiny_model_path, family):
    model, tokenizer = load_model(str(tiny_model_path(family)))
    input_ids = tokenizer(SHORT_BOOKENDS_TEXT, return_tensors="pt").input_ids
    one, three, eight = (
        perturbation_importance(model, input_ids, num_samples=8, batch_size=size, top_n=100_000, progress=False) for size in (1, 3, 8)
    )
    assert len(one.records) == one.total_candidates  # every (site, position, channel) is compared
    assert min(r.score for r in one.records) > 1e3 * SCORE_THRESHOLD  # too far above the threshold to cross it
    for other in (three, eight):
        assert other.total_candidates == one.total_candidates
        assert_same_ranking(as_tuples(other.records), as_tuples(one.records))


def per_batch_noise(shape: tuple[int, int], sizes: list[int], seed: int):
    """A bug to catch: each batch draws from its own seed, so sample k's noise depends on the batch size."""
    for number, size in enumerate(sizes):
        generator = torch.Generator().manual_seed(seed + number)
        yield torch.randn((size, *shape), generator=generator)


def test_batch_size_check_catches_noise_that_depends_on_the_batch_size(tiny_model_path, monkeypatch):
    model, tokenizer = load_model(str(tiny_model_path("llama")))
    input_ids = tokenizer(SHORT_BOOKENDS_TEXT, return_tensors="pt").input_ids
    monkeypatch.setattr(stage1, "noise_batches", per_batch_noise)
    one, three = (perturbation_importance(model, input_ids, num_samples=8, batch_size=size, top_n=100_000, progress=False) for size in (1, 3))
    with pytest.raises(AssertionError):
        assert_same_ranking(as_tuples(three.records), as_tuples(one.records))


def test_seed_changes_the_noise(tiny_model_path):
    model, tokenizer = load_model(str(tiny_model_path("llama")))
    input_ids = tokenizer(SHORT_BOOKENDS_TEXT, return_tensors="pt").input_ids
    first = perturbation_importance(model, input_ids, num_samples=3, seed=1, top_n=50, progress=False)
    second = perturbation_importance(model, input_ids, num_samples=3, seed=2, top_n=50, progress=False)
    assert [r.score for r in first.records] != [r.score for r in second.records]


def test_modules_regex_narrows_and_extends(tiny_model_path):
    model, _ = load_model(str(tiny_model_path("gemma3")))
    assert candidate_sites(model, "down_proj") == ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"]
    default = candidate_sites(model)
    extended = candidate_sites(model, "+post_feedforward_layernorm")
    assert set(extended) - set(default) == {"model.layers.0.post_feedforward_layernorm", "model.layers.1.post_feedforward_layernorm"}


def test_llama_sites_are_the_references_nine_per_layer(tiny_model_path):
    model, _ = load_model(str(tiny_model_path("llama")))
    layer0 = [name.removeprefix("model.layers.0.") for name in candidate_sites(model) if name.startswith("model.layers.0.")]
    assert sorted(layer0) == sorted(
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "post_attention_layernorm",
         "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "mlp.act_fn"]
    )


def test_gpt2_attention_is_covered_and_dropout_is_not(tiny_model_path):
    model, _ = load_model(str(tiny_model_path("gpt2")))
    sites = candidate_sites(model)
    assert "transformer.h.0.attn.c_attn" in sites and "transformer.h.0.attn.c_proj" in sites
    assert not any("dropout" in site for site in sites)


@pytest.mark.parametrize("family", ["qwen2", "mistral", "phi3", "gemma", "gemma2"])
def test_other_families_run(tiny_model_path, family):
    model, tokenizer = load_model(str(tiny_model_path(family)))
    ranking = perturbation_importance(model, tokenizer(SHORT_BOOKENDS_TEXT, return_tensors="pt").input_ids, num_samples=2, top_n=20, progress=False)
    assert len(ranking.records) == 20 and ranking.sites


def test_ties_at_the_cutoff_follow_site_then_position_then_channel():
    scores = {
        "a": torch.tensor([[1.0, 2.0], [2.0, 0.0]]),
        "b": torch.tensor([[2.0, 2.0], [1e-7, 3.0]]),
        "c": torch.tensor([[float("nan"), 2.0]]),
    }
    records, total, non_finite = rank_site_scores(scores, top_n=4, threshold=SCORE_THRESHOLD)
    assert [(r.layer_name, r.seq_idx, r.hidden_idx) for r in records] == [("b", 1, 1), ("a", 0, 1), ("a", 1, 0), ("b", 0, 0)]
    assert total == 7 and non_finite == 1


def test_text_longer_than_the_model_is_refused(tiny_model_path):
    model, tokenizer = load_model(str(tiny_model_path("gpt2")))
    with pytest.raises(UsageError, match="positions"):
        encode_text(tokenizer, SHORT_BOOKENDS_TEXT * 40, "--input_text", max_positions=max_positions(model))


def slow_ranking(scores: dict[str, torch.Tensor], top_n: int, threshold: float) -> tuple[list[tuple[str, int, int, float]], int, int]:
    """Every score visited in Python, in site, position, channel order, then one stable sort."""
    entries, non_finite = [], 0
    for name, score in scores.items():
        for position, row in enumerate(score.tolist()):
            for channel, value in enumerate(row):
                if not math.isfinite(value):
                    non_finite += 1
                elif abs(value) > threshold:
                    entries.append((name, position, channel, value))
    return sorted(entries, key=lambda entry: -entry[3])[:top_n], len(entries), non_finite


@pytest.mark.parametrize("top_n", [1, 7, 40, 1000])
@pytest.mark.parametrize("tied", [True, False])
def test_ranking_matches_a_python_sort_across_chunks_and_groups(monkeypatch, top_n, tied):
    """Small chunks and groups make the group-maximum bound and the chunk seams matter; tied scores
    (a few values) make ties at the cut-off common; signed, NaN and inf scores included."""
    monkeypatch.setattr(ranking, "CHUNK", 50)
    monkeypatch.setattr(ranking, "GROUP", 8)
    generator = torch.Generator().manual_seed(3)
    scores = {}
    for site, (positions, channels) in enumerate([(3, 7), (5, 13), (1, 1), (4, 30), (2, 9)]):
        values = torch.randn((positions, channels), generator=generator)
        if tied:
            values = values.mul(2).round() / 2
        values[torch.rand(values.shape, generator=generator) < 0.05] = float("nan")
        values[torch.rand(values.shape, generator=generator) < 0.03] = float("inf")
        scores[f"site{site}"] = values
    records, total, non_finite = rank_site_scores(scores, top_n=top_n, threshold=SCORE_THRESHOLD)
    expected, expected_total, expected_non_finite = slow_ranking(scores, top_n, SCORE_THRESHOLD)
    assert as_tuples(records) == expected
    assert (total, non_finite) == (expected_total, expected_non_finite)
