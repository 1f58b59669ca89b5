"""The Stage 1/2 and perplexity CLIs: end to end on a tiny model, and bad input per SPEC section 14."""

from __future__ import annotations

import json

import pytest
from conftest import SHORT_BOOKENDS_TEXT, assert_usage_error, run_script

STAGE1 = "method/1_importance_evaluation.py"
STAGE2 = "method/2_neuron_identification.py"
WIKITEXT = "evaluation/wikitext_evaluator.py"


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    return str(tiny_model_path("llama"))


@pytest.fixture(scope="module")
def ranking_file(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("stage1") / "ranking.json"
    run_script(STAGE1, "--model_path", tiny, "--input_text", SHORT_BOOKENDS_TEXT, "--num_samples", "3", "--top_n", "50", "--output_file", path, check=True)
    return path


def test_stage1_and_stage2_end_to_end(tiny, ranking_file, tmp_path):
    ranking = json.loads(ranking_file.read_text())
    assert ranking["num_samples"] == 3 and ranking["noise_scale"] == 5.0
    assert len(ranking["top_neurons"]) == 50 and ranking["total_neurons"] >= 50
    assert set(ranking["top_neurons"][0]) == {"layer_name", "batch_idx", "seq_idx", "hidden_idx", "activation_diff"}
    assert ranking["metadata"]["arguments"]["seed"] == 42 and ranking["model_info"]["model_path"] == tiny
    result_path = tmp_path / "stage2.json"
    run_script(STAGE2, "--model_path", tiny, "--neuron_file", ranking_file, "--test_text", SHORT_BOOKENDS_TEXT, "--max_magnitude", "0.3", "--output_file", result_path, check=True)
    result = json.loads(result_path.read_text())
    assert result["stopping_reason"] in {"magnitude_increase_exceeded", "all_neurons_masked"}
    assert result["num_critical_records"] == len(result["final_masked_neurons"]) == result["masking_steps"][-1]["neurons_masked"]
    assert result["num_critical_channels"] == len(result["critical_channels"]) <= result["num_critical_records"]
    # A stage-2 result is itself a neuron file.
    again = tmp_path / "again.json"
    run_script(STAGE2, "--model_path", tiny, "--neuron_file", result_path, "--test_text", SHORT_BOOKENDS_TEXT, "--max_magnitude", "0.3", "--output_file", again, check=True)


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--model_path", "./models/no-such-model"], "--model_path"),
        (["--input_text", "Hi."], "--input_text"),
        (["--num_samples", "0"], "--num_samples"),
        (["--noise_scale", "-1"], "--noise_scale"),
        (["--top_n", "0"], "--top_n"),
        (["--modules", "no_such_module"], "--modules"),
        (["--modules", "rotary_emb"], "--modules"),  # a module that runs but gives no (batch, seq, channels) output
    ],
)
def test_stage1_bad_input(tiny, tmp_path, args, flag):
    output = tmp_path / "out.json"
    base = {"--model_path": tiny, "--input_text": SHORT_BOOKENDS_TEXT, "--num_samples": "2", "--output_file": str(output)}
    base.update(dict(zip(args[::2], args[1::2])))
    assert_usage_error(run_script(STAGE1, *[item for pair in base.items() for item in pair]), flag, output)


def test_non_model_folder_is_refused(tmp_path):
    output = tmp_path / "out.json"
    result = run_script(STAGE1, "--model_path", tmp_path, "--input_text", SHORT_BOOKENDS_TEXT, "--output_file", output, in_process=False)
    assert_usage_error(result, "--model_path", output)


def test_unwritable_output_is_refused_before_work(tiny, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_usage_error(run_script(STAGE1, "--model_path", tiny, "--input_text", SHORT_BOOKENDS_TEXT, "--output_file", blocker / "out.json"), "--output_file")


def test_existing_output_survives_bad_input(tiny, tmp_path):
    output = tmp_path / "out.json"
    output.write_text('{"kept": true}')
    assert_usage_error(run_script(STAGE1, "--model_path", tiny, "--input_text", "Hi.", "--output_file", output), "--input_text")
    assert json.loads(output.read_text()) == {"kept": True}


def write_neuron_payload(tmp_path, payload):
    path = tmp_path / "neurons.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return path


@pytest.mark.parametrize(
    "payload, message",
    [
        ("{not json", "not valid JSON"),
        ({"top_neurons": []}, "empty"),
        ({"something": 1}, "none of the keys"),
        ({"top_neurons": [{"layer": "x"}]}, "malformed"),
        ({"top_neurons": [{"layer_name": "model.layers.7.mlp.down_proj", "hidden_idx": 1}]}, "not in this model"),
        ({"top_neurons": [{"layer_name": "model.layers.0.mlp.down_proj", "hidden_idx": 9999}]}, "out of range"),
    ],
)
def test_stage2_bad_neuron_file(tiny, tmp_path, payload, message):
    output = tmp_path / "out.json"
    result = run_script(STAGE2, "--model_path", tiny, "--neuron_file", write_neuron_payload(tmp_path, payload), "--test_text", SHORT_BOOKENDS_TEXT, "--output_file", output)
    assert_usage_error(result, "--neuron_file", output)
    assert message in result.stderr


def test_stage2_missing_neuron_file(tiny, tmp_path):
    output = tmp_path / "out.json"
    result = run_script(STAGE2, "--model_path", tiny, "--neuron_file", tmp_path / "absent.json", "--test_text", SHORT_BOOKENDS_TEXT, "--output_file", output)
    assert_usage_error(result, "--neuron_file", output)


@pytest.mark.parametrize("levels", ["a,b", "-1", "1.5", ""])
def test_evaluator_bad_levels(tiny, ranking_file, tmp_path, levels):
    output = tmp_path / "out.json"
    result = run_script(WIKITEXT, "--model_path", tiny, "--neuron_file", ranking_file, "--masking_levels", levels, "--dataset_path", "tests/fixtures/wikitext_test.jsonl", "--output_file", output)
    assert_usage_error(result, "--masking_levels", output)


def test_evaluator_levels_beyond_the_list_are_clamped_with_a_warning(tiny, ranking_file, tmp_path):
    output = tmp_path / "out.json"
    result = run_script(WIKITEXT, "--model_path", tiny, "--neuron_file", ranking_file, "--masking_levels", "0,80", "--dataset_path", "tests/fixtures/wikitext_test.jsonl", "--output_file", output)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "clamped" in result.stderr
    levels = json.loads(output.read_text())["results"]
    assert [entry["masking_level"] for entry in levels] == [0, 80] and levels[1]["neurons_masked"] == 50


def test_evaluator_bad_dataset(tiny, ranking_file, tmp_path):
    output = tmp_path / "out.json"
    missing = run_script(WIKITEXT, "--model_path", tiny, "--neuron_file", ranking_file, "--dataset_path", tmp_path / "absent.jsonl", "--output_file", output)
    assert_usage_error(missing, "--dataset_path", output)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"question": "q"}\n')
    schema = run_script(WIKITEXT, "--model_path", tiny, "--neuron_file", ranking_file, "--dataset_path", wrong, "--output_file", output)
    assert_usage_error(schema, "--dataset_path", output)
    assert "text" in schema.stderr


def test_evaluator_resumes_and_refuses_another_runs_file(tiny, ranking_file, tmp_path):
    output = tmp_path / "out.json"
    common = ["--model_path", tiny, "--neuron_file", ranking_file, "--dataset_path", "tests/fixtures/wikitext_test.jsonl", "--output_file", output]
    run_script(WIKITEXT, *common, "--masking_levels", "0,2", check=True)
    first = json.loads(output.read_text())["results"]
    rerun = run_script(WIKITEXT, *common, "--masking_levels", "0,2,4", check=True)
    assert rerun.stderr.count("already in") == 2
    results = json.loads(output.read_text())["results"]
    assert results[:2] == first and [entry["masking_level"] for entry in results] == [0, 2, 4]
    other = run_script(WIKITEXT, *common, "--masking_levels", "0", "--max_length", "16")
    assert_usage_error(other, "--output_file")
    assert json.loads(output.read_text())["results"] == results
