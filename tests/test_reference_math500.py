"""The authors' MATH-500 scorer, quirk by quirk: every expected value was produced by their own evaluator
class on the same input (extraction, normalisation, grading, the per-sample record and the level block)."""

from __future__ import annotations

import time

import pytest

from critical_neurons.evaluation.reference import math500 as reference
from critical_neurons.evaluation.runner import score_responses
from critical_neurons.evaluation.tasks import math500


def sample(gold: str, subject: str = "Algebra") -> dict[str, str]:
    return {"unique_id": "u", "problem": "p", "answer": gold, "subject": subject, "level": "1"}


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        pytest.param("So $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1", id="the boxed pattern stops at the first brace"),
        pytest.param("The answer: \\BOXED{4}", "4", id="patterns ignore case"),
        pytest.param("\\boxed{} no idea, the answer is 7", "7", id="an empty box moves on to the next pattern"),
        pytest.param("The answer to this is 5", "to this is 5", id="the keyword pattern captures prose"),
        pytest.param("So 5 apples. The answer is \n", "is", id="the response is stripped first"),
        pytest.param("It equals 5.", "5.", id="a trailing '5.' has its own line-end pattern"),
        pytest.param("Speed is 1e5.", "5.", id="'1e5.' reads as '5.'"),
        pytest.param("result: 1e5", "1e5", id="keyword then exponent"),
        pytest.param("so we get \\frac{3}{4} of it, yes", "\\frac{3}{4}", id="the fraction pattern rebuilds a fraction"),
        pytest.param("Maybe 12 + 3 apples, then we stop here", "12 + 3", id="the last arithmetic expression"),
        pytest.param("Hence 7\u2028more", "7\u2028more", id="a unicode line separator is no line end"),
        pytest.param("I do not know how to do it.", "", id="nothing found is the empty string"),
    ],
)
def test_extraction(response, answer):
    assert reference.score(sample("5"), response)["predicted_answer"] == answer


@pytest.mark.parametrize(
    ("response", "meaningful"),
    [("The answer is 4\n\n\n\n\n\nok", False), ("The answer is 4\n\n\n\n\nok", True), ("x = 12\n------\nSo \\boxed{12}", False), ("      \n \\boxed{7}\n\n      ", True), ("12", False)],
)
def test_meaningful_gate_counts_runs_of_any_character(response, meaningful):
    assert reference.score(sample("7"), response)["is_meaningful_response"] is meaningful


@pytest.mark.parametrize(
    ("answer", "basic", "advanced"),
    [
        pytest.param("3 \\text{ ft} 4 \\text{ in}", "3 \\text{ ft} 4 \\text{ in}", "3ft4in", id="two unit texts: the basic form gives up"),
        pytest.param("2\\sqrt", "2\\sqrt", "2\\sqrt", id="a trailing sqrt: the basic form gives up"),
        pytest.param("\\frac3", "\\frac3", "%s/%s3", id="a one-character frac part is left alone"),
        pytest.param("1 \\dfrac", "1 \\dfrac", "1%s/%s", id="an empty frac part: the basic form gives up"),
        pytest.param("\\\\%%5", "%5", "", id="the percent sign is removed twice"),
        pytest.param("3\\dfrac{1}{4}", "3\\frac{1}{4}", "3+1/4", id="a dfrac mixed number is a sum"),
        pytest.param("7 3/4", "\\frac{73}{4}", "7+3/4", id="a spaced mixed number"),
        pytest.param("-1e400", "-1e400", "-1e400", id="an infinity is no integer and no crash"),
        pytest.param("NaN", "NaN", "nan", id="NaN is no integer and no crash"),
        pytest.param("\\,2999999995e-9", "\\,2999999995e-9", "2", id="integers are truncated, not rounded, after LaTeX"),
        pytest.param("50 million", "50million", "50*10^6", id="million as a power of ten"),
        pytest.param("1,\\!000", "1,000", "1000", id="LaTeX thousands separator"),
    ],
)
def test_normalisation(answer, basic, advanced):
    assert (reference.basic_normalize(answer), reference.advanced_normalize(answer)) == (basic, advanced)


@pytest.mark.parametrize(
    ("answer", "gold", "correct"),
    [
        ("13/4", "3\\dfrac{1}{4}", True),
        ("7 3/4", "\\frac{31}{4}", True),
        ("2/4", "\\frac{1}{2}", False),  # fractions compare as strings
        ("\\frac{6x}{8}", "\\frac{3x}{4}", True),  # "6x/8" is no fraction to them, so sympy decides
        ("0.5", "\\frac{1}{2}", True),
        ("C", "\\text{(C)}", True),  # "(c)" is a one-element tuple
        ("1024", "2^{10}", False),  # integer against a non-integer form
        ("cba", "abc", False),  # three letters never reach sympy
        ("(x+2)(x+5)", "x^2+7x+10", True),
        ("(-2,7)", "[-2,7]", False),
        ("inf", "\\infty", True),
        ("NaN", "5", False),
        ("x = 4", "4", True),
        ("\\,2999999995e-9", "2", True),
    ],
)
def test_grading(answer, gold, correct):
    assert reference.grade_answer(answer, gold) is correct


def test_only_a_meaningful_response_with_an_answer_and_a_non_empty_gold_is_graded():
    graded = []

    def grade(answer, gold):
        graded.append((answer, gold))
        return True

    assert not reference.score(sample(""), "The answer is 3", grade)["is_correct"]
    assert reference.score(sample(" "), "The answer is 3", grade)["is_correct"]  # a blank gold is graded
    assert not reference.score(sample("3"), "x = 3\n------", grade)["is_correct"]
    assert not reference.score(sample("3"), "I do not know.", grade)["is_correct"]
    assert graded == [("3", " ")]
    timed_out = reference.score(sample("3"), "The answer is 3", lambda answer, gold: None)
    assert not timed_out["is_correct"] and timed_out["grading_timed_out"]


def test_per_sample_record():
    record = reference.score(sample("\\frac{1}{2}"), "  So $x = \\boxed{\\frac{1}{2}}$.  ")
    assert record == {
        "predicted_answer": "\\frac{1",
        "is_meaningful_response": True,
        "is_correct": False,
        "grading_timed_out": False,
        "debug_info": {
            "predicted_answer_raw": "\\frac{1",
            "ground_truth_raw": "\\frac{1}{2}",
            "predicted_normalized_basic": "\\frac{1",
            "ground_truth_normalized_basic": "\\frac{1}{2}",
            "predicted_normalized_advanced": "%s/%s1",
            "ground_truth_normalized_advanced": "1/2",
        },
    }
    nothing = reference.score(sample(""), "I do not know.")["debug_info"]
    assert nothing["predicted_normalized_basic"] is None and nothing["ground_truth_normalized_advanced"] is None


def details(golds, responses, subjects=None):
    subjects = subjects or ["Algebra"] * len(golds)
    return [{"response": response, "gold": gold, "subject": subject, "reference": reference.score(sample(gold, subject), response)} for gold, response, subject in zip(golds, responses, subjects)]


def test_level_block():
    long_prose = "  " + "word " * 60
    level = reference.aggregate(details(["5", "5", "5", "5"], ["So \\boxed{5}", "So \\boxed{6}", long_prose, "5 ------"], ["Geometry", "Algebra", "Geometry", "Algebra"]))
    assert {key: level[key] for key in ("accuracy", "correct_count", "total_samples", "meaningless_responses", "meaningless_response_rate", "answer_extracted_count", "answer_extraction_rate")} == {
        "accuracy": 0.25, "correct_count": 1, "total_samples": 4, "meaningless_responses": 1, "meaningless_response_rate": 0.25, "answer_extracted_count": 3, "answer_extraction_rate": 0.75,
    }
    assert list(level["subject_accuracies"].items()) == [("Geometry", {"accuracy": 0.5, "correct": 1, "total": 2}), ("Algebra", {"accuracy": 0.0, "correct": 0, "total": 2})]
    assert level["extraction_failures"] == [{"problem_id": "", "response": long_prose.strip()[:200] + "..."}]
    assert [failure["predicted"] for failure in level["grading_failures"]] == ["6"] and level["grading_failures"][0]["debug_info"]["ground_truth_raw"] == "5"
    assert level["grading_timeouts"] == 0


def test_level_block_empty_and_all_meaningless_and_failures_kept():
    empty = {"accuracy": 0.0, "correct_count": 0, "total_samples": 0, "meaningless_responses": 0, "meaningless_response_rate": 0.0, "answer_extracted_count": 0, "answer_extraction_rate": 0.0}
    assert reference.aggregate([]) == {**empty, "subject_accuracies": {}, "extraction_failures": [], "grading_failures": [], "grading_timeouts": 0}
    meaningless = reference.aggregate(details(["5"] * 3, ["5"] * 3))
    assert meaningless["accuracy"] == 0.0 and meaningless["meaningless_response_rate"] == 1.0 and meaningless["grading_failures"] == []
    wrong = reference.aggregate(details(["99"] * 12, [f"So \\boxed{{{index}}}" for index in range(12)]))
    assert [failure["predicted"] for failure in wrong["grading_failures"]] == [str(index) for index in range(10)]


def test_the_task_grades_in_the_bounded_worker():
    """Their sympy call had no time limit: on an exponent of 400 million it does not return; ours is wrong after the bound."""
    with math500.BoundedVerifier(timeout=1, hard_timeout=2.0) as verifier:
        task = math500.task(verifier)
        level = score_responses(task, [sample("\\frac{1}{2}")], ["p"], ["So \\boxed{0.5}"])
        assert level["detailed_results"][0]["reference"] == reference.score(sample("\\frac{1}{2}"), "So \\boxed{0.5}")
        assert level["reference"]["accuracy"] == 1.0
        start = time.monotonic()
        level = score_responses(task, [sample("-1e400")], ["p"], ["So \\boxed{-1e400320003.14-3}"])
        assert time.monotonic() - start < 20
        assert level["detailed_results"][0]["reference"]["grading_timed_out"] and level["reference"]["grading_timeouts"] == 1
        assert level["reference"]["accuracy"] == 0.0
