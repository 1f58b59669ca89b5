"""lm-evaluation-harness tasks under masking, offline from a local task YAML and a fixture file (SPEC 18)."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, assert_usage_error, neuron_file, run_script

SCRIPT = "evaluation/lm_eval_evaluator.py"
WIKITEXT = ROOT / "tests" / "fixtures" / "wikitext_test.jsonl"
TASK_YAML = """task: local_wikitext
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
"""


@pytest.fixture
def tasks(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    rows = [json.loads(line) for line in WIKITEXT.read_text().splitlines()]
    data = folder / "texts.jsonl"
    data.write_text("\n".join(json.dumps({"text": row["text"]}) for row in rows if len(row["text"].strip()) > 50) + "\n")
    (folder / "local_wikitext.yaml").write_text(TASK_YAML.format(data=data))
    return folder


def run_levels(model, neurons, tasks, output, *extra):
    return run_script(
        SCRIPT, "--model_path", model, "--neuron_file", neurons, "--masking_levels", "0,1", "--tasks", "local_wikitext",
        "--include_path", tasks, "--limit", 3, "--batch_size", 2, "--output_file", output, *extra,
    )


def test_local_task_per_level_with_identity_and_resume(tiny_model_path, tmp_path, tasks):
    output = tmp_path / "lm_eval.json"
    neurons = neuron_file(tmp_path, "model.layers.0.mlp.down_proj", 3)
    result = run_levels(tiny_model_path("llama"), neurons, tasks, output)
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(output.read_text())
    assert payload["kind"] == "evaluation" and payload["method"] == "lm_eval"
    assert payload["primary_metric"] == "local_wikitext/word_perplexity"
    levels = payload["results"]
    assert [entry["masking_level"] for entry in levels] == [0, 1] and levels[1]["mask_mode"] == "fold"
    assert levels[0]["lm_eval"]["results"]["local_wikitext"]["word_perplexity,none"] == levels[0]["local_wikitext/word_perplexity"]
    assert levels[0]["local_wikitext/word_perplexity"] != levels[1]["local_wikitext/word_perplexity"]
    before = output.read_bytes()
    assert run_levels(tiny_model_path("llama"), neurons, tasks, output).returncode == 0  # same run: nothing to do
    assert json.loads(output.read_bytes())["results"] == json.loads(before)["results"]
    (tasks / "texts.jsonl").write_text((tasks / "texts.jsonl").read_text() + json.dumps({"text": "An added line makes the task data another."}) + "\n")
    assert_usage_error(run_levels(tiny_model_path("llama"), neurons, tasks, output), "--output_file")


def test_unknown_task_is_refused_before_the_model_loads(tiny_model_path, tmp_path, tasks):
    output = tmp_path / "out.json"
    result = run_script(SCRIPT, "--model_path", tiny_model_path("llama"), "--tasks", "no_such_task", "--include_path", tasks, "--output_file", output)
    assert_usage_error(result, "--tasks", output)
    assert "Loading weights" not in result.stderr


def test_a_data_file_outside_the_include_path_is_in_the_run_key(tiny_model_path, tmp_path, tasks):
    """The task YAML names a data file elsewhere: editing it makes another run, refused on resume."""
    data = tmp_path / "elsewhere" / "texts.jsonl"
    data.parent.mkdir()
    (tasks / "texts.jsonl").rename(data)
    (tasks / "local_wikitext.yaml").write_text(TASK_YAML.format(data=data))
    output = tmp_path / "lm_eval.json"
    model, neurons = tiny_model_path("llama"), neuron_file(tmp_path, "model.layers.0.mlp.down_proj", 3)
    assert run_levels(model, neurons, tasks, output).returncode == 0
    data.write_text(json.dumps({"text": "Another text entirely, long enough to count as a document here."}) + "\n" + data.read_text())
    before = output.read_bytes()
    assert_usage_error(run_levels(model, neurons, tasks, output), "--output_file")
    assert output.read_bytes() == before


def test_missing_task_data_is_refused_before_the_model_loads(tiny_model_path, tmp_path, tasks):
    (tasks / "texts.jsonl").unlink()
    output = tmp_path / "out.json"
    result = run_levels(tiny_model_path("llama"), neuron_file(tmp_path), tasks, output)
    assert_usage_error(result, "--tasks", output)
    assert "Loading weights" not in result.stderr


@pytest.mark.parametrize("metric", ["local_wikitext/no_such_metric", "other_task/word_perplexity"])
def test_unknown_primary_metric_is_refused_before_the_model_loads(tiny_model_path, tmp_path, tasks, metric):
    output = tmp_path / "out.json"
    result = run_levels(tiny_model_path("llama"), neuron_file(tmp_path), tasks, output, "--primary_metric", metric)
    assert_usage_error(result, "--primary_metric", output)
    assert "Loading weights" not in result.stderr


@pytest.mark.real_model
def test_lm_eval_shows_the_collapse_on_the_default_model(default_model_path, tmp_path, tasks):
    stage2 = tmp_path / "critical.json"
    record = {"layer_name": "model.layers.11.mlp.down_proj", "batch_idx": 0, "seq_idx": 0, "hidden_idx": 507, "activation_diff": 1.0}
    stage2.write_text(json.dumps({"final_masked_neurons": [record], "masking_steps": [], "test_text": "x"}))
    output = tmp_path / "lm_eval.json"
    result = run_levels(default_model_path, stage2, tasks, output)
    assert result.returncode == 0, result.stderr[-3000:]
    levels = json.loads(output.read_text())["results"]
    before, after = (entry["local_wikitext/word_perplexity"] for entry in levels)
    assert after > 100 * before  # word perplexity up by orders of magnitude
