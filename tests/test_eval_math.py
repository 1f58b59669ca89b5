"""MATH-500: boxed extraction on literal outputs, math-verify equivalence with a hard time bound, the CLI, bad input."""

from __future__ import annotations

import json
import multiprocessing
import signal
import time

import pytest
from conftest import ROOT, neuron_file, run_script

from critical_neurons.evaluation.tasks import math500

SCRIPT = "evaluation/math_evaluator.py"
FIXTURE = ROOT / "tests" / "fixtures" / "math500_test.jsonl"


@pytest.fixture(scope="module")
def verifier():
    with math500.BoundedVerifier(timeout=2) as bounded:
        yield bounded


@pytest.mark.parametrize(
    "output, answer, source",
    [
        ("So $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}", "boxed"),
        ("First \\boxed{3}, but correcting: \\boxed{\\sqrt{2}}", "\\sqrt{2}", "boxed"),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)", "boxed"),
        ("The set is \\boxed{\\{1, 2\\}}.", "\\{1, 2\\}", "boxed"),
        ("\\fbox{7} is final", "7", "boxed"),
        ("so $x = \\boxed 5$", "5", "boxed"),
        ("\\boxed{4} ... then \\boxed{\\frac{1}{", "4", "boxed"),
        ("The answer is $\\frac{3}{4}$. Next problem: 7", "\\frac{3}{4}", "answer_is"),
        ("Thus the final answer is: 3.5.", "3.5", "answer_is"),
        ("We get 12 apples and 1,000 pears", "1000", "last_number"),
        ("x = -2.5 is the root", "-2.5", "last_number"),
        ("\\boxed{} no idea", None, None),
        ("I do not know.", None, None),
    ],
)
def test_extract_answer(output, answer, source):
    assert math500.extract_answer(output) == (answer, source)


@pytest.mark.parametrize(
    "gold, answer",
    [("1/2", "0.5"), ("\\frac{1}{2}", "0.5"), ("2\\sqrt{2}", "\\sqrt{8}"), ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)"), ("26000", "26,000")],
)
def test_equivalent_answers(verifier, gold, answer):
    assert verifier(gold, answer) == "equivalent"


@pytest.mark.parametrize("gold, answer", [("\\frac{14}{3}", "4"), ("2\\sqrt{2}", "\\sqrt{2}"), ("x^2", "y^2")])
def test_wrong_answers(verifier, gold, answer):
    assert verifier(gold, answer) == "different"


def _uninterruptible(*args, **kwargs):
    """Stands in for sympy stuck in C code: SIGALRM (math-verify's timeout) is blocked, so only a kill ends it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(60)


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="the patched function reaches the worker only by fork")
def test_a_hanging_comparison_is_killed_and_the_verifier_recovers(monkeypatch):
    with math500.BoundedVerifier(timeout=1, hard_timeout=1.0) as bounded:
        monkeypatch.setattr(math500, "verify", _uninterruptible)
        start = time.monotonic()
        assert bounded("1", "1") == "timeout"
        assert time.monotonic() - start < 10
        monkeypatch.undo()
        assert bounded("1", "1.0") == "equivalent"


def test_score_fixture_solutions_are_correct_and_fallbacks_are_labelled(verifier):
    task = math500.task(verifier)
    samples = math500.load_samples(str(FIXTURE))
    solutions = [json.loads(line)["solution"] for line in FIXTURE.read_text().splitlines()]
    details = [task.score(sample, solution) for sample, solution in zip(samples, solutions)]
    assert all(detail["is_correct"] and detail["answer_source"] == "boxed" for detail in details), details
    fallback = task.score(samples[1], "513^2 - 487^2 = 1000 * 26 = 26000")
    assert fallback["answer_source"] == "last_number" and fallback["is_correct"]
    nothing = task.score(samples[1], "I cannot solve this.")
    assert nothing["verdict"] == "no answer" and not nothing["is_correct"]
    metrics = task.aggregate([*details, nothing])
    assert metrics["accuracy"] == 0.8 and metrics["correct_count"] == 4 and metrics["boxed_rate"] == 0.8
    assert metrics["answer_sources"] == {"boxed": 4, "answer_is": 0, "last_number": 0, "none": 1}
    assert metrics["subject_accuracies"]["Algebra"] == {"accuracy": 2 / 3, "correct": 2, "total": 3}
    assert metrics["level_accuracies"]["4"] == {"accuracy": 1.0, "correct": 1, "total": 1}


def test_cli_end_to_end(tiny_model_path, tmp_path):
    output = tmp_path / "math.json"
    args = ["--model_path", tiny_model_path("llama"), "--neuron_file", neuron_file(tmp_path), "--masking_levels", "0,1", "--dataset_path", FIXTURE]
    run_script(SCRIPT, *args, "--max_new_tokens", "8", "--max_samples", "2", "--output_file", output, check=True)
    result = json.loads(output.read_text())
    assert [entry["masking_level"] for entry in result["results"]] == [0, 1]
    assert result["dataset_info"]["num_samples"] == 2
    for entry in result["results"]:
        assert entry["total_samples"] == 2 and 0.0 <= entry["accuracy"] <= 1.0
        detail = entry["detailed_results"][0]
        assert {"prompt", "response", "extracted_answer", "answer_source", "gold", "is_correct"} <= set(detail)
        assert detail["prompt"].startswith("Solve this math problem step by step:\n\n") and detail["prompt"].endswith("\n\nSolution:")
        assert 0.0 <= entry["reference"]["accuracy"] <= 1.0 and {"predicted_answer", "is_meaningful_response", "is_correct", "debug_info"} <= set(detail["reference"])
    rescored = tmp_path / "rescored.json"
    run_script("evaluation/rescore.py", output, "--output_file", rescored, check=True)
    assert json.loads(rescored.read_text())["results"] == result["results"]  # the stored details are enough to rescore
