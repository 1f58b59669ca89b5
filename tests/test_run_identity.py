"""Output identity, resume of the same run only, the output lock, file safety and wrong-model refusal (SPEC 16)."""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest
from conftest import ROOT, SHORT_BOOKENDS_TEXT, assert_usage_error, neuron_file, run_script

from critical_neurons.errors import UsageError
from critical_neurons.outputs.files import OutputFile, write_json
from critical_neurons.outputs.formats.read import read_neuron_file

WIKITEXT = ROOT / "tests" / "fixtures" / "wikitext_test.jsonl"
EVALUATOR = "evaluation/wikitext_evaluator.py"


def evaluate(model, output, *extra):
    return run_script(EVALUATOR, "--model_path", model, "--dataset_path", WIKITEXT, "--max_samples", 3, "--batch_size", 2, "--output_file", output, *extra)


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    return tiny_model_path("llama")


def test_every_output_names_its_kind_method_and_model(tiny, tmp_path):
    ranking, critical, evaluation = tmp_path / "ranking.json", tmp_path / "critical.json", tmp_path / "eval.json"
    run_script("method/1_importance_evaluation.py", "--model_path", tiny, "--input_text", SHORT_BOOKENDS_TEXT, "--num_samples", 2, "--top_n", 20, "--output_file", ranking, check=True)
    run_script("method/2_neuron_identification.py", "--model_path", tiny, "--neuron_file", ranking, "--test_text", SHORT_BOOKENDS_TEXT, "--max_steps", 2, "--output_file", critical, check=True)
    assert evaluate(tiny, evaluation, "--neuron_file", ranking, "--masking_levels", "0,1").returncode == 0
    payloads = [json.loads(path.read_text()) for path in (ranking, critical, evaluation)]
    assert [payload["kind"] for payload in payloads] == ["ranking", "critical_set", "evaluation"]
    assert payloads[0]["method"] == "multi_gpu_activation_difference_analysis" and payloads[1]["method"] == "prefix_search"
    assert payloads[2]["method"] == "wikitext" and payloads[2]["primary_metric"] == "perplexity" and "perplexity" in payloads[2]["results"][1]
    assert payloads[2]["reference_metric"] == "reference_perplexity" and "reference_perplexity" in payloads[2]["results"][1]
    assert payloads[2]["model_info"]["neuron_method"] == "multi_gpu_activation_difference_analysis"
    models = [payload["model"] for payload in payloads]
    assert all(model == models[0] for model in models) and models[0]["path"] == str(tiny.resolve()) and models[0]["model_type"] == "llama"


def test_resume_continues_the_same_run_under_another_spelling_of_the_path(tiny, tmp_path):
    output = tmp_path / "eval.json"
    ranking = neuron_file(tmp_path)
    relative = os.path.relpath(tiny, ROOT)  # run_script runs from the repository root
    assert evaluate(relative, output, "--neuron_file", ranking, "--masking_levels", "0").returncode == 0
    first = json.loads(output.read_text())["results"]
    result = evaluate(f"./{relative}/", output, "--neuron_file", ranking, "--masking_levels", "0,1")
    assert result.returncode == 0, result.stderr
    resumed = json.loads(output.read_text())["results"]
    assert resumed[0] == first[0] and [entry["masking_level"] for entry in resumed] == [0, 1]


@pytest.mark.parametrize(
    ("change", "differing"),
    [(["--seed", "7"], "seed"), (["--max_samples", "2"], "data"), (["--max_length", "16"], "settings"), (["--dtype", "bfloat16"], "dtype")],
)
def test_another_run_into_the_same_file_is_refused_and_the_file_kept(tiny, tmp_path, change, differing):
    output = tmp_path / "eval.json"
    assert evaluate(tiny, output).returncode == 0
    before = output.read_bytes()
    extra = dict(zip(change[::2], change[1::2]))
    args = {"--model_path": tiny, "--dataset_path": WIKITEXT, "--max_samples": 3, "--batch_size": 2, "--output_file": output, **extra}
    result = run_script(EVALUATOR, *[item for pair in args.items() for item in pair])
    assert_usage_error(result, "--output_file")
    assert differing in result.stderr and output.read_bytes() == before


def test_changed_data_file_is_another_run(tiny, tmp_path):
    data, output = tmp_path / "data.jsonl", tmp_path / "eval.json"
    data.write_text(WIKITEXT.read_text())
    run = lambda: run_script(EVALUATOR, "--model_path", tiny, "--dataset_path", data, "--output_file", output)  # noqa: E731
    assert run().returncode == 0
    before = output.read_bytes()
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[-1]["text"] = rows[-1]["text"] + " An edited sentence changes the data, so the file holds another run."
    data.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    result = run()
    assert_usage_error(result, "--output_file")
    assert "data" in result.stderr and output.read_bytes() == before


@pytest.mark.parametrize("broken", ["results not a list", "a level without masking_level"])
def test_a_broken_results_list_is_refused_before_the_model_loads(tiny, tmp_path, broken):
    """A file of this run whose levels were edited cannot be resumed: one line, before the model loads, file kept."""
    output = tmp_path / "eval.json"
    assert evaluate(tiny, output).returncode == 0
    payload = json.loads(output.read_text())
    payload["results"] = {"0": payload["results"][0]} if broken == "results not a list" else [{key: value for key, value in payload["results"][0].items() if key != "masking_level"}]
    output.write_text(json.dumps(payload))
    before = output.read_bytes()
    result = evaluate(tiny, output, "--masking_levels", "0,1", "--neuron_file", neuron_file(tmp_path))
    assert_usage_error(result, "--output_file")
    assert "masking_level" in result.stderr and "Loading weights" not in result.stderr and output.read_bytes() == before


def test_a_second_run_on_a_locked_output_stops(tiny, tmp_path):
    output = tmp_path / "eval.json"
    with OutputFile(str(output)):
        result = evaluate(tiny, output)
    assert_usage_error(result, "--output_file", output)
    assert "another run is writing" in result.stderr
    assert evaluate(tiny, output).returncode == 0  # released


def test_symlinked_output_is_written_through(tiny, tmp_path):
    target, link = tmp_path / "real" / "eval.json", tmp_path / "link.json"
    target.parent.mkdir()
    target.write_text("{}")
    link.symlink_to(target)
    with pytest.raises(UsageError, match="another run"), OutputFile(str(link)), OutputFile(str(target)):  # one lock, whatever name reaches it
        pass
    target.unlink()
    assert evaluate(tiny, link).returncode == 0
    assert link.is_symlink() and json.loads(target.read_text())["kind"] == "evaluation"


def test_outputs_follow_the_umask(tiny, tmp_path):
    output = tmp_path / "eval.json"
    previous = os.umask(0o027)
    try:
        assert evaluate(tiny, output).returncode == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(output.stat().st_mode) == 0o640


@pytest.mark.parametrize("name", ["device", "folder", "long"])
def test_impossible_outputs_are_refused_before_the_model_loads(tiny, tmp_path, name):
    output = {"device": "/dev/null", "folder": str(tmp_path), "long": str(tmp_path / ("x" * 300 + ".json"))}[name]
    result = evaluate(tiny, output)
    assert_usage_error(result, "--output_file")
    assert "Loading weights" not in result.stderr  # the check comes before the model loads


def test_output_equal_to_an_input_is_refused(tiny, tmp_path):
    ranking = neuron_file(tmp_path)
    before = ranking.read_bytes()
    result = run_script("method/2_neuron_identification.py", "--model_path", tiny, "--neuron_file", ranking, "--test_text", SHORT_BOOKENDS_TEXT, "--output_file", ranking)
    assert_usage_error(result, "--output_file")
    assert ranking.read_bytes() == before


def test_a_full_disk_keeps_the_previous_file(tmp_path, monkeypatch):
    output = tmp_path / "out.json"
    write_json(output, {"kept": True})

    def no_space(_descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("critical_neurons.outputs.files.os.fsync", no_space)
    with pytest.raises(UsageError, match=r"--output_file.*No space left"):
        write_json(output, {"kept": False})
    assert json.loads(output.read_text()) == {"kept": True}
    assert [path.name for path in tmp_path.iterdir()] == ["out.json"]  # no temp file left


def test_a_ranking_of_another_model_is_refused_unless_allowed(tiny, tiny_model_path, tmp_path):
    gemma_ranking, output = tmp_path / "gemma.json", tmp_path / "eval.json"
    run_script("method/1_importance_evaluation.py", "--model_path", tiny_model_path("gemma"), "--input_text", SHORT_BOOKENDS_TEXT, "--num_samples", 2, "--top_n", 20, "--modules", "down_proj", "--output_file", gemma_ranking, check=True)
    # Same module names and widths: only the recorded model tells the files apart.
    result = evaluate(tiny, output, "--neuron_file", gemma_ranking, "--masking_levels", "0,1")
    assert_usage_error(result, "--neuron_file", output)
    assert "gemma" in result.stderr and "--allow_other_model" in result.stderr
    stage2 = run_script("method/2_neuron_identification.py", "--model_path", tiny, "--neuron_file", gemma_ranking, "--test_text", SHORT_BOOKENDS_TEXT, "--output_file", tmp_path / "s2.json")
    assert_usage_error(stage2, "--neuron_file", tmp_path / "s2.json")
    allowed = evaluate(tiny, output, "--neuron_file", gemma_ranking, "--masking_levels", "0,1", "--allow_other_model")
    assert allowed.returncode == 0 and "used anyway" in allowed.stderr


def test_a_file_that_records_no_model_is_accepted_with_a_warning(tiny, tmp_path):
    result = evaluate(tiny, tmp_path / "eval.json", "--neuron_file", neuron_file(tmp_path), "--masking_levels", "0,1")
    assert result.returncode == 0 and "records no model" in result.stderr


@pytest.mark.parametrize(
    ("hidden_idx", "problem"),
    [('"3"', "hidden_idx"), ("true", "hidden_idx"), ("3.0", "hidden_idx"), ("1e999", "hidden_idx"), ("-1", "hidden_idx"), ("null", "hidden_idx")],
)
def test_malformed_channel_indices_are_refused(tmp_path, hidden_idx, problem):
    path = tmp_path / "neurons.json"
    record = f'{{"layer_name": "model.layers.0.mlp.down_proj", "seq_idx": 0, "hidden_idx": {hidden_idx}, "activation_diff": 1.0}}'
    path.write_text(f'{{"top_neurons": [{record}]}}')
    with pytest.raises(UsageError, match=f"--neuron_file.*record 0.*{problem}"):
        read_neuron_file(str(path))


def test_non_finite_scores_are_kept_with_a_warning(tmp_path, caplog):
    path = tmp_path / "neurons.json"
    path.write_text('{"top_neurons": [{"layer_name": "a", "hidden_idx": 1, "activation_diff": null}, {"layer_name": "a", "hidden_idx": 2, "activation_diff": NaN}]}')
    assert [record.hidden_idx for record in read_neuron_file(str(path)).records] == [1, 2]
    assert "2 records have a non-finite score" in caplog.text


def test_absurdly_nested_neuron_file_is_one_line(tiny, tmp_path):
    path, output = tmp_path / "deep.json", tmp_path / "eval.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert_usage_error(evaluate(tiny, output, "--neuron_file", path, "--masking_levels", "0,1"), "--neuron_file", output)
