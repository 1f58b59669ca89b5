"""Evaluators in fold mode: the same numbers as hooks, weights restored exactly, unfoldable sites refused (SPEC 18)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ROOT, assert_usage_error, run_script

from critical_neurons.evaluation.runner import masked_evaluation
from critical_neurons.model.folding import resolve_mask_mode
from critical_neurons.model.loading import load_model
from critical_neurons.model.perplexity import perplexity
from critical_neurons.outputs.records import Channel, NeuronRecord

WIKITEXT = ROOT / "tests" / "fixtures" / "wikitext_test.jsonl"
TEXTS = ["The polar bear is a large carnivorous mammal native to the Arctic. It hunts seals on the sea ice."]


def ranking(folder, channels):
    path = folder / "neurons.json"
    records = [{"layer_name": name, "seq_idx": 0, "hidden_idx": index, "activation_diff": 1.0} for name, index in channels]
    path.write_text(json.dumps({"top_neurons": records}))
    return path


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_fold_and_hook_evaluations_agree(family, tiny_model_path, tmp_path):
    sites = {
        "llama": [("model.layers.0.mlp.down_proj", 3), ("model.layers.1.mlp.act_fn", 5), ("model.layers.0.post_attention_layernorm", 7), ("model.layers.1.self_attn.q_proj", 2)],
        "gpt2": [("transformer.h.0.mlp.c_proj", 3), ("transformer.h.1.mlp.act", 5), ("transformer.h.0.attn.c_attn", 7)],
    }[family]
    neurons = ranking(tmp_path, sites)
    results = {}
    for mode in ("hook", "fold"):
        output = tmp_path / f"{mode}.json"
        run_script(
            "evaluation/wikitext_evaluator.py", "--model_path", tiny_model_path(family), "--dataset_path", WIKITEXT, "--max_samples", 3,
            "--neuron_file", neurons, "--masking_levels", f"0,{len(sites)}", "--mask_mode", mode, "--output_file", output, check=True,
        )
        results[mode] = json.loads(output.read_text())["results"]
    assert results["fold"][1]["mask_mode"] == "fold" and results["fold"][1]["fold_check"]["passed"]
    assert results["hook"][1]["mask_mode"] == "hook"
    for hooked, folded_entry in zip(results["hook"], results["fold"]):
        assert folded_entry["log10_perplexity"] == pytest.approx(hooked["log10_perplexity"], abs=1e-4)
    assert results["hook"][1]["log10_perplexity"] != pytest.approx(results["hook"][0]["log10_perplexity"], abs=1e-3)  # the mask did something


def test_fold_level_restores_weights_bit_exactly_also_after_an_error(tiny_model_path):
    model, tokenizer = load_model(str(tiny_model_path("llama")), "float32")
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    records = [NeuronRecord("model.layers.0.mlp.down_proj", 0, 3, 1.0), NeuronRecord("model.layers.1.mlp.act_fn", 0, 5, 1.0)]
    hooked = masked_evaluation(model, records, lambda: perplexity(model, tokenizer, TEXTS, progress=False).to_dict())(2)
    at_level = masked_evaluation(model, records, lambda: perplexity(model, tokenizer, TEXTS, progress=False).to_dict(), mask_mode="fold", tokenizer=tokenizer)
    folded_entry = at_level(2)
    assert folded_entry["log10_perplexity"] == pytest.approx(hooked["log10_perplexity"], abs=1e-5)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())

    def fails():
        raise RuntimeError("evaluation failed mid-level")

    with pytest.raises(RuntimeError):
        masked_evaluation(model, records, fails, mask_mode="fold", tokenizer=tokenizer)(2)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())


def test_unfoldable_site_is_refused_in_fold_mode_and_hooked_in_auto(tiny_model_path, tmp_path):
    path = tiny_model_path("gemma")  # ties lm_head to the embeddings: folding a logit row would change the embeddings too
    model, _ = load_model(str(path), "float32")
    assert resolve_mask_mode(model, [Channel("lm_head", 3)], "auto") == "hook"
    assert resolve_mask_mode(model, [Channel("model.layers.0.mlp.down_proj", 3)], "auto") == "fold"
    neurons = ranking(tmp_path, [("lm_head", 3)])
    output = tmp_path / "out.json"
    args = ["evaluation/wikitext_evaluator.py", "--model_path", path, "--dataset_path", WIKITEXT, "--max_samples", 2, "--neuron_file", neurons, "--masking_levels", "0,1"]
    assert_usage_error(run_script(*args, "--mask_mode", "fold", "--output_file", output), "--mask_mode", output)
    run_script(*args, "--output_file", output, check=True)
    assert json.loads(output.read_text())["results"][1]["mask_mode"] == "hook"


def test_random_masking_fold_equals_hook_and_refuses_unfoldable_draws_upfront(tiny_model_path, tmp_path):
    results = {}
    for mode in ("hook", "fold"):
        output = tmp_path / f"random_{mode}.json"
        run_script(
            "comparison/random_masking.py", "--model_path", tiny_model_path("llama"), "--dataset_path", WIKITEXT, "--max_samples", 3,
            "--masking_levels", "0,20", "--num_runs", 2, "--mask_mode", mode, "--output_file", output, check=True,
        )
        results[mode] = json.loads(output.read_text())["results"][1]
    assert results["fold"]["mask_modes"] == ["fold", "fold"] and all(check["passed"] for check in results["fold"]["fold_checks"])
    assert results["fold"]["log10_perplexities"] == pytest.approx(results["hook"]["log10_perplexities"], abs=1e-4)
    # The reference population includes lm_head, tied to the embeddings in the tiny Gemma: a draw holding it cannot fold.
    output = tmp_path / "refused.json"
    args = ["comparison/random_masking.py", "--model_path", tiny_model_path("gemma"), "--dataset_path", WIKITEXT, "--max_samples", 2,
            "--masking_levels", "0,400", "--num_runs", 2, "--population", "reference"]
    assert_usage_error(run_script(*args, "--mask_mode", "fold", "--output_file", output), "--mask_mode", output)
    run_script(*args, "--output_file", output, check=True)
    assert "hook" in json.loads(output.read_text())["results"][1]["mask_modes"]
