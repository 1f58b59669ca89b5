"""Every evaluator refuses bad data with one line naming the flag, exit status 2 and no output file (SPEC section 14)."""

from __future__ import annotations

import pytest
from conftest import ROOT, assert_usage_error, neuron_file, run_script

FIXTURES = ROOT / "tests" / "fixtures"


@pytest.mark.parametrize(
    ("script", "data", "extra", "flag", "named"),
    [
        ("wikitext", "missing.jsonl", [], "--dataset_path", "does not exist"),
        ("wikitext", "mgsm_en.jsonl", [], "--dataset_path", "text"),
        ("c4", "missing.json.gz", [], "--dataset_path", "does not exist"),
        ("c4", "simpleqa_test.jsonl", [], "--dataset_path", "text"),
        ("mmlu_pro", "missing.jsonl", [], "--dataset_path", "does not exist"),
        ("mmlu_pro", "simpleqa_test.jsonl", [], "--dataset_path", "options"),
        ("mmlu_pro", "mmlu_pro_test.jsonl", ["--categories", "astrology"], "--categories", "astrology"),
        ("gpqa", "missing.csv", [], "--dataset_path", "does not exist"),
        ("gpqa", "mmlu_pro_test.jsonl", [], "--dataset_path", "Correct Answer"),
        ("mgsm", "missing_{lang}.jsonl", [], "--dataset_path", "missing_en"),
        ("mgsm", "simpleqa_test.jsonl", [], "--dataset_path", "answer_number"),
        ("mgsm", "mgsm_en.jsonl", ["--languages", "en,es"], "--dataset_path", "{lang}"),
        ("mgsm", "mgsm_en.jsonl", ["--languages", ","], "--languages", "--languages"),
        ("simpleqa", "missing.jsonl", [], "--dataset_path", "does not exist"),
        ("simpleqa", "gpqa_diamond.csv", [], "--dataset_path", "problem"),
        ("ifeval", "missing.jsonl", [], "--dataset_path", "does not exist"),
        ("ifeval", "math500_test.jsonl", [], "--dataset_path", "instruction_id_list"),
        ("humaneval", "missing.jsonl", [], "--dataset_path", "does not exist"),
        ("humaneval", "math500_test.jsonl", [], "--dataset_path", "entry_point"),
        ("math", "missing.jsonl", [], "--dataset_path", "does not exist"),
        ("math", "ifeval_train.jsonl", [], "--dataset_path", "problem"),
    ],
)
def test_bad_dataset_input(script, data, extra, flag, named, tiny_model_path, tmp_path):
    output = tmp_path / "out.json"
    result = run_script(
        f"evaluation/{script}_evaluator.py", "--model_path", tiny_model_path("llama"), "--dataset_path", FIXTURES / data, "--output_file", output, *extra
    )
    assert_usage_error(result, flag, output)
    assert named in result.stderr


@pytest.mark.parametrize("script", ["wikitext", "simpleqa"])
def test_neuron_file_for_another_model(script, tiny_model_path, tmp_path):
    output = tmp_path / "out.json"
    data = FIXTURES / ("wikitext_test.jsonl" if script == "wikitext" else "simpleqa_test.jsonl")
    result = run_script(
        f"evaluation/{script}_evaluator.py", "--model_path", tiny_model_path("llama"), "--dataset_path", data,
        "--neuron_file", neuron_file(tmp_path, "transformer.h.0.mlp.c_proj", 3), "--masking_levels", "0,1", "--output_file", output,
    )
    assert_usage_error(result, "--neuron_file", output)
    assert "transformer.h.0.mlp.c_proj" in result.stderr


@pytest.mark.parametrize("script", ["evaluation/wikitext_evaluator.py", "evaluation/c4_evaluator.py", "comparison/random_masking.py"])
def test_a_dataset_of_only_short_texts_is_refused_before_the_model_loads(script, tiny_model_path, tmp_path):
    data, output = tmp_path / "short.jsonl", tmp_path / "out.json"
    data.write_text('{"text": "A short line."}\n{"text": ""}\n')
    result = run_script(script, "--model_path", tiny_model_path("llama"), "--dataset_path", data, "--output_file", output)
    assert_usage_error(result, "--dataset_path", output)
    assert "no text of" in result.stderr and "Loading weights" not in result.stderr
