"""Every evaluator refuses bad data with one line naming the flag, exit status 2 and no output file (SPEC section 14)."""

from __future__ import annotations

import pytest
from conftest import ROOT, assert_usage_error, run_script

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
