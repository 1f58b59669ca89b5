"""AM, GM and random-masking baselines: slow obvious references on tiny models, and CLI smoke tests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ROOT, SHORT_BOOKENDS_TEXT, run_script

from critical_neurons.method.baselines import (
    activation_ranking,
    draw_channels,
    gradient_ranking,
    gradient_scores,
    level_statistics,
    random_masking_level,
    reference_population,
    site_population,
)
from critical_neurons.model.loading import load_model
from critical_neurons.model.masking import site_width
from critical_neurons.model.perplexity import perplexity
from critical_neurons.model.sites import candidate_sites

EVAL_TEXTS = [
    "The polar bear is a large carnivorous mammal native to the Arctic. It hunts seals on the sea ice.",
    "Question: What is the capital of France?\nAnswer: Paris. Les ours polaires chassent les phoques.",
]
WIKITEXT = ROOT / "tests" / "fixtures" / "wikitext_test.jsonl"


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    path = tiny_model_path("llama")
    model, tokenizer = load_model(str(path), "float32")
    input_ids = tokenizer(SHORT_BOOKENDS_TEXT, return_tensors="pt").input_ids
    return model, tokenizer, input_ids


def recorded_outputs(model, names):
    """Plain forward hooks, firing order kept by dict insertion: site -> real (graph-attached) output."""
    outputs, handles = {}, []
    modules = dict(model.named_modules())
    for name in names:
        def hook(module, inputs, output, name=name):
            if isinstance(output, torch.Tensor) and output.dim() == 3:
                outputs[name] = output
        handles.append(modules[name].register_forward_hook(hook))
    return outputs, handles


def slow_ranking(maps, threshold, top_n):
    """Every element as a Python tuple, stable sort descending: the obvious (slow) ranking."""
    records = []
    for name, values in maps.items():
        for seq in range(values.shape[0]):
            for hidden in range(values.shape[1]):
                value = float(values[seq, hidden])
                if abs(value) > threshold:
                    records.append((name, seq, hidden, value))
    records.sort(key=lambda record: -record[3])
    return records[:top_n], len(records)


def as_tuples(records):
    return [(r.layer_name, r.seq_idx, r.hidden_idx) for r in records]


@pytest.mark.parametrize("signed", [False, True])
def test_activation_ranking_matches_slow_reference(tiny, signed):
    model, _, input_ids = tiny
    outputs, handles = recorded_outputs(model, candidate_sites(model))
    with torch.no_grad():
        model(input_ids=input_ids)
    for handle in handles:
        handle.remove()
    maps = {name: output[0] if signed else output[0].abs() for name, output in outputs.items()}
    expected, total = slow_ranking(maps, 1e-6, 400)

    ranking = activation_ranking(model, input_ids, top_n=400, signed=signed)
    assert ranking.total_candidates == total
    assert as_tuples(ranking.records) == [record[:3] for record in expected]
    assert [r.score for r in ranking.records] == pytest.approx([record[3] for record in expected], rel=1e-6)


@pytest.mark.parametrize("signed", [False, True])
def test_gradient_ranking_matches_autograd_reference(tiny, signed):
    model, _, input_ids = tiny
    outputs, handles = recorded_outputs(model, candidate_sites(model))
    loss = model(input_ids=input_ids, labels=input_ids).loss  # HF's own loss: an independent check of ours
    for handle in handles:
        handle.remove()
    maps = {}
    for name, output in outputs.items():
        (grad,) = torch.autograd.grad(loss, output, retain_graph=True)
        maps[name] = grad[0] if signed else grad[0].abs()
    expected, total = slow_ranking(maps, 1e-8, 400)

    ranking, our_loss = gradient_ranking(model, input_ids, top_n=400, signed=signed)
    assert our_loss == pytest.approx(float(loss.detach()), rel=1e-5)
    assert ranking.total_candidates == total
    assert as_tuples(ranking.records) == [record[:3] for record in expected]
    assert [r.score for r in ranking.records] == pytest.approx([record[3] for record in expected], rel=1e-4)


def test_gradient_maps_differ_across_layers_unlike_the_reference(tiny):
    model, _, input_ids = tiny
    scores, _, _ = gradient_scores(model, input_ids)
    down = [scores[f"model.layers.{layer}.mlp.down_proj"] for layer in range(2)]
    assert not torch.allclose(down[0], down[1])
    assert all(scores[name].abs().sum() > 0 for name in scores if "q_proj" in name or "gate_proj" in name)

    # The reference's hook replaced outputs by detached clones: one map repeated in every layer.
    grads, handles = {}, []
    modules = dict(model.named_modules())
    for name in candidate_sites(model):
        def hook(module, inputs, output, name=name):
            clone = output.detach().clone().requires_grad_(True)
            clone.register_hook(lambda grad: grads.__setitem__(name, grad[0]))
            return clone
        handles.append(modules[name].register_forward_hook(hook))
    model(input_ids=input_ids, labels=input_ids).loss.backward()
    for handle in handles:
        handle.remove()
    model.zero_grad(set_to_none=True)
    assert torch.equal(grads["model.layers.0.mlp.down_proj"], grads["model.layers.1.mlp.down_proj"])
    assert "model.layers.0.self_attn.q_proj" not in grads


def test_gradient_scores_on_gpt2_conv1d(tiny_model_path):
    path = tiny_model_path("gpt2")
    model, tokenizer = load_model(str(path), "float32")
    input_ids = tokenizer("The polar bear hunts seals on the ice.", return_tensors="pt").input_ids
    ranking, loss = gradient_ranking(model, input_ids, top_n=50)
    assert len(ranking.records) == 50 and np.isfinite(loss)
    assert any("attn.c_attn" in name for name in ranking.sites)


def test_population_widths_and_flat_mapping(tiny):
    model, _, input_ids = tiny
    sites = site_population(model, input_ids[:, :4])
    assert sorted(sites.sites) == sorted(candidate_sites(model))  # llama: every candidate has a 3-D output
    channels = sites.channels(np.arange(sites.size))
    assert len(set(channels)) == sites.size
    assert all(0 <= c.hidden_idx < width for c, width in zip(channels, np.repeat(sites.widths, sites.widths)))
    modules = dict(model.named_modules())
    assert all(site_width(modules[name]) in (None, width) for name, width in zip(sites.sites, sites.widths))

    reference = reference_population(model)
    assert "lm_head" in reference.sites and "model.layers.0.mlp.act_fn" not in reference.sites
    assert reference.size == sum(m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))


def test_random_draws_distinct_reproducible_and_seeded(tiny):
    model, _, input_ids = tiny
    population = site_population(model, input_ids[:, :4])
    draw = draw_channels(population, population.size // 2, seed=42, level=7, run=0)
    assert len(draw) == len(set(draw)) == population.size // 2
    assert draw_channels(population, 100, 42, 100, 0) == draw_channels(population, 100, 42, 100, 0)
    assert draw_channels(population, 100, 42, 100, 0) != draw_channels(population, 100, 43, 100, 0)
    assert draw_channels(population, 100, 42, 100, 0) != draw_channels(population, 100, 42, 100, 1)
    assert len(draw_channels(population, population.size, 0, 0, 0)) == population.size


def test_random_masking_levels_and_statistics(tiny):
    model, tokenizer, input_ids = tiny
    population = site_population(model, input_ids[:, :4])
    results = [random_masking_level(model, tokenizer, EVAL_TEXTS, population, level, num_runs=3, seed=1, batch_size=2) for level in (0, 20)]
    assert results[0]["num_runs"] == 1  # level 0 masks nothing: evaluated once
    assert results[0]["perplexities"][0] == pytest.approx(perplexity(model, tokenizer, EVAL_TEXTS, progress=False).perplexity)
    level = results[1]
    assert level["num_runs"] == 3 and level["unique_neuron_sets"]
    values = np.array(level["perplexities"])
    assert level["std_perplexity"] == pytest.approx(values.std(ddof=1))
    assert level["mean_perplexity"] == pytest.approx(values.mean())
    assert level["log10_mean_perplexity"] == pytest.approx(np.log10(values.mean()))


def test_level_statistics_survive_overflow():
    entry = level_statistics(5, [400.0, 2.0], ["a", "b"])
    assert entry["perplexities"][0] == float("inf") and entry["log10_mean_perplexity"] == pytest.approx(400 - np.log10(2))
    assert entry["max_log10_perplexity"] == 400.0


def test_activation_and_gradient_clis_feed_stage2(tiny_model_path, tmp_path):
    path = tiny_model_path("llama")
    am, gm, stage2 = tmp_path / "am.json", tmp_path / "gm.json", tmp_path / "stage2.json"
    run_script("comparison/activation_masking.py", "--model_path", path, "--input_text", SHORT_BOOKENDS_TEXT, "--top_n", 200, "--output_file", am, check=True)
    run_script("comparison/gradient_masking.py", "--model_path", path, "--input_text", SHORT_BOOKENDS_TEXT, "--top_n", 200, "--signed", "--graph", "cut", "--output_file", gm, check=True)
    for file, method in ((am, "multi_gpu_activation_value_analysis"), (gm, "multi_gpu_gradient_based_analysis")):
        payload = json.loads(file.read_text())
        assert payload["method"] == method and payload["noise_scale"] is None and payload["num_samples"] == 1
        assert len(payload["top_neurons"]) == 200 and payload["total_neurons"] >= 200
        assert set(payload["top_neurons"][0]) == {"layer_name", "batch_idx", "seq_idx", "hidden_idx", "activation_diff"}
        assert payload["metadata"]["arguments"]["model_path"] == str(path)
    gm_payload = json.loads(gm.read_text())
    assert gm_payload["score"] == "signed_gradient" and gm_payload["graph"] == "cut" and gm_payload["perplexity"] == pytest.approx(np.exp(gm_payload["loss"]))
    run_script("method/2_neuron_identification.py", "--model_path", path, "--neuron_file", gm, "--test_text", SHORT_BOOKENDS_TEXT, "--max_steps", 3, "--output_file", stage2, check=True)
    assert json.loads(stage2.read_text())["masking_steps"]


def test_random_masking_cli(tiny_model_path, tmp_path):
    output = tmp_path / "random.json"
    run_script(
        "comparison/random_masking.py", "--model_path", tiny_model_path("llama"), "--dataset_path", WIKITEXT, "--max_samples", 3,
        "--masking_levels", "0,10", "--num_runs", 2, "--population", "reference", "--output_file", output, check=True,
    )
    payload = json.loads(output.read_text())
    assert payload["dataset_info"]["num_texts"] == 3 and payload["model_info"]["population"] == "reference"
    assert [entry["num_runs"] for entry in payload["results"]] == [1, 2]
    bad = run_script("comparison/random_masking.py", "--model_path", tiny_model_path("llama"), "--masking_levels", "0,x", "--output_file", tmp_path / "bad.json")
    assert bad.returncode == 2 and "--masking_levels" in bad.stderr and not (tmp_path / "bad.json").exists()


def test_cut_graph_reproduces_the_reference_gradient_map(tiny):
    """--graph cut: every o_proj/down_proj gets dL/d(final residual stream), the other sites nothing."""
    model, _, input_ids = tiny
    scores, _, loss = gradient_scores(model, input_ids, signed=True, graph="cut")
    # Hand computation: the gradient of the loss with respect to the input of the final norm.
    captured = {}
    handle = model.model.norm.register_forward_pre_hook(lambda module, args: captured.setdefault("h", args[0]))
    with torch.enable_grad():
        embeddings = model.get_input_embeddings()(input_ids).detach().requires_grad_(True)
        hf_loss = model(inputs_embeds=embeddings, labels=input_ids).loss
        (residual_grad,) = torch.autograd.grad(hf_loss, captured["h"])
    handle.remove()
    assert loss == pytest.approx(float(hf_loss.detach()), rel=1e-5)
    carried = [name for name in scores if name.endswith(("o_proj", "down_proj"))]
    assert len(carried) == 4
    for name in carried:
        assert torch.equal(scores[name], scores[carried[0]])
        torch.testing.assert_close(scores[name], residual_grad[0].float(), rtol=1e-4, atol=1e-7)
    assert all(not scores[name].any() for name in scores if name not in carried)
    # Ties break in backward order, as the reference's tensor hooks fired: last layer's down_proj first.
    ranking, _ = gradient_ranking(model, input_ids, top_n=4, signed=True, graph="cut")
    assert [record.layer_name for record in ranking.records] == [
        "model.layers.1.mlp.down_proj", "model.layers.1.self_attn.o_proj", "model.layers.0.mlp.down_proj", "model.layers.0.self_attn.o_proj",
    ]
    assert len({(record.seq_idx, record.hidden_idx) for record in ranking.records}) == 1
