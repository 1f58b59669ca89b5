"""Bad values by class, in every script that takes them: one line naming the flag, exit 2, nothing written (SPEC 14)."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, SHORT_BOOKENDS_TEXT, assert_usage_error, neuron_file, run_script

FIXTURES = ROOT / "tests" / "fixtures"
STAGE1 = "method/1_importance_evaluation.py"
STAGE2 = "method/2_neuron_identification.py"
CHARACTERIZE = "method/3_characterize_critical_neurons.py"

# script -> the flags a valid run needs besides --model_path and --output_file
BASE = {
    STAGE1: ["--input_text", SHORT_BOOKENDS_TEXT, "--num_samples", "2"],
    STAGE2: ["--neuron_file", "{neurons}", "--test_text", SHORT_BOOKENDS_TEXT],
    "comparison/activation_masking.py": ["--input_text", SHORT_BOOKENDS_TEXT],
    "comparison/gradient_masking.py": ["--input_text", SHORT_BOOKENDS_TEXT],
    "comparison/random_masking.py": ["--dataset_path", str(FIXTURES / "wikitext_test.jsonl"), "--masking_levels", "0,1", "--num_runs", "1"],
    "evaluation/wikitext_evaluator.py": ["--dataset_path", str(FIXTURES / "wikitext_test.jsonl")],
    "evaluation/simpleqa_evaluator.py": ["--dataset_path", str(FIXTURES / "simpleqa_test.jsonl")],
    "evaluation/humaneval_evaluator.py": ["--dataset_path", str(FIXTURES / "humaneval_subset.jsonl")],
    CHARACTERIZE: ["--neuron_file", "{neurons}", "--text", SHORT_BOOKENDS_TEXT],
}
NON_FINITE = ["nan", "inf", "-inf"]
CASES = [
    *[(STAGE1, "--noise_scale", value) for value in [*NON_FINITE, "-1", "x"]],
    *[(STAGE1, flag, "0") for flag in ("--num_samples", "--batch_size", "--top_n")],
    *[(STAGE2, "--max_magnitude", value) for value in [*NON_FINITE, "0", "-2"]],
    *[(STAGE2, flag, "0") for flag in ("--batch_size", "--step_size", "--max_steps")],
    (STAGE2, "--max_length", "1"),
    *[(script, "--seed", value) for script in (STAGE1, "evaluation/wikitext_evaluator.py") for value in ("-1", str(2**32), "1.5")],
    *[(script, "--batch_size", "0") for script in BASE if script not in (STAGE1, STAGE2, CHARACTERIZE, "comparison/activation_masking.py", "comparison/gradient_masking.py")],
    *[(script, "--top_n", "0") for script in ("comparison/activation_masking.py", "comparison/gradient_masking.py")],
    *[(script, "--max_samples", "0") for script in ("comparison/random_masking.py", "evaluation/wikitext_evaluator.py", "evaluation/simpleqa_evaluator.py")],
    *[(script, "--max_length", "1") for script in ("comparison/random_masking.py", "evaluation/wikitext_evaluator.py", "evaluation/simpleqa_evaluator.py")],
    ("comparison/random_masking.py", "--num_runs", "0"),
    ("comparison/random_masking.py", "--num_runs", "1001"),
    (CHARACTERIZE, "--num_random_sets", "1000000000"),
    ("evaluation/simpleqa_evaluator.py", "--max_new_tokens", "0"),
    ("evaluation/wikitext_evaluator.py", "--num_neurons_to_mask", "-1"),
    *[("evaluation/humaneval_evaluator.py", "--timeout", value) for value in [*NON_FINITE, "0", "-1"]],
    *[("evaluation/humaneval_evaluator.py", "--memory_limit_mb", value) for value in ("0", "-5", "nan")],
    *[(script, "--device_map", value) for script in (STAGE1, "evaluation/wikitext_evaluator.py") for value in ("cuda:3", "nowhere")],
    (STAGE1, "--log_file", "/proc/no/such/dir/run.log"),
    (STAGE1, "--dtype", "float64"),
]


@pytest.mark.parametrize(("script", "flag", "value"), CASES, ids=[f"{s.split('/')[-1][:-3]}{f}={v}" for s, f, v in CASES])
def test_bad_value_is_one_line(script, flag, value, tiny_model_path, tmp_path):
    output = tmp_path / "out.json"
    base = [item.format(neurons=neuron_file(tmp_path)) for item in BASE[script]]
    args = dict(zip(base[::2], base[1::2]))
    args.update({"--model_path": str(tiny_model_path("llama")), "--output_file": str(output), flag: value})
    result = run_script(script, *[item for pair in args.items() for item in pair])
    assert_usage_error(result, flag, output)


@pytest.mark.parametrize(("script", "named"), [(STAGE2, "--neuron_file"), ("evaluation/wikitext_evaluator.py", "--dataset_path"), (STAGE1, "--output_file")])
def test_log_file_that_is_another_file_of_the_run_is_refused(script, named, tiny_model_path, tmp_path):
    """The log appends: pointed at an input or the output it would corrupt that file."""
    base = [item.format(neurons=neuron_file(tmp_path)) for item in BASE[script]]
    dataset = tmp_path / "texts.jsonl"
    dataset.write_text((FIXTURES / "wikitext_test.jsonl").read_text())
    args = dict(zip(base[::2], base[1::2]))
    args.update({"--model_path": str(tiny_model_path("llama")), "--output_file": str(tmp_path / "out.json")})
    if named == "--dataset_path":
        args[named] = str(dataset)
    args["--log_file"] = args[named]
    before = {path: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    result = run_script(script, *[item for pair in args.items() for item in pair])
    assert_usage_error(result, "--log_file", tmp_path / "out.json")
    assert named in result.stderr and {path: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == before


def test_zero_noise_scale_is_warned(tiny_model_path, tmp_path):
    output = tmp_path / "out.json"
    result = run_script(STAGE1, "--model_path", tiny_model_path("llama"), "--input_text", SHORT_BOOKENDS_TEXT, "--num_samples", "2", "--noise_scale", "0", "--output_file", output)
    assert "noise scale 0" in result.stderr.lower()


def test_truncated_gguf_is_one_line(tmp_path):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 13)  # a header cut after a few bytes
    output = tmp_path / "out.json"
    assert_usage_error(run_script(STAGE1, "--model_path", model, "--input_text", SHORT_BOOKENDS_TEXT, "--output_file", output), "--model_path", output)


@pytest.mark.parametrize(
    ("data", "flag", "named"),
    [
        ({"question": "Q?", "options": ["a", "b", "c", "d"], "answer": "J", "category": "math"}, "--dataset_path", "answer 'J'"),
        ({"question": "Q?", "options": "abcd", "answer": "A", "category": "math"}, "--dataset_path", "options"),
        ({"question": ["Q?"], "options": ["a", "b"], "answer": "A", "category": "math"}, "--dataset_path", "question"),
        ({"options": ["a", "b"], "answer": "A", "category": "math"}, "--dataset_path", "question"),
    ],
    ids=["gold-outside-options", "options-not-a-list", "question-a-list", "field-missing"],
)
def test_a_bad_row_deep_in_the_file_is_found_before_the_model_loads(data, flag, named, tiny_model_path, tmp_path):
    rows = [json.loads(line) for line in (FIXTURES / "mmlu_pro_test.jsonl").read_text().splitlines()]
    path, output = tmp_path / "mmlu.jsonl", tmp_path / "out.json"
    path.write_text("\n".join(json.dumps(row) for row in [*rows, data]) + "\n")
    result = run_script("evaluation/mmlu_pro_evaluator.py", "--model_path", tiny_model_path("llama"), "--dataset_path", path, "--output_file", output)
    assert_usage_error(result, flag, output)
    assert f"row {len(rows)}" in result.stderr and named in result.stderr and "Loading weights" not in result.stderr


def test_unknown_ifeval_instruction_is_refused(tiny_model_path, tmp_path):
    rows = (FIXTURES / "ifeval_train.jsonl").read_text().splitlines()
    path, output = tmp_path / "ifeval.jsonl", tmp_path / "out.json"
    path.write_text("\n".join([*rows, json.dumps({"key": 9, "prompt": "Write.", "instruction_id_list": ["no:such_check"], "kwargs": [{}]})]) + "\n")
    result = run_script("evaluation/ifeval_evaluator.py", "--model_path", tiny_model_path("llama"), "--dataset_path", path, "--output_file", output)
    assert_usage_error(result, "--dataset_path", output)
    assert "no:such_check" in result.stderr
