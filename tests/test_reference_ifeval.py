"""The authors' IFEval scorer keeps their quirks: each case is a verdict their code gives (checked by driving it)."""

from __future__ import annotations

import pytest

from critical_neurons.evaluation.reference import ifeval as reference
from critical_neurons.evaluation.runner import score_responses
from critical_neurons.evaluation.tasks import ifeval


def strict(instruction_id: str, kwargs: dict, response: str) -> bool:
    sample = {"key": 1, "prompt": "p", "instruction_id_list": [instruction_id], "kwargs": [kwargs]}
    return reference.score(sample, response)["strict_evaluation"]["follow_instruction_list"][0]


@pytest.mark.parametrize(
    ("instruction_id", "kwargs", "response", "verdict"),
    [
        pytest.param("detectable_format:number_highlighted_sections", {"num_highlights": 3}, "Bears are **big** animals.", True, id="**a** counts once as **..** and twice as *..*"),
        pytest.param("detectable_format:number_highlighted_sections", {"num_highlights": 4}, "Bears are **big** animals.", False, id="but not four times"),
        pytest.param("detectable_format:number_highlighted_sections", {"num_highlights": 1}, "*Bears hunt\nseals* on ice.", False, id="a highlight never spans lines"),
        pytest.param("detectable_content:number_placeholders", {"num_placeholders": 1}, "Dear [name\nof person], hello.", False, id="a placeholder never spans lines"),
        pytest.param("detectable_content:number_placeholders", {"num_placeholders": 2}, "Fill ____ in, then ___ too.", True, id="an underscore run is one placeholder"),
        pytest.param("detectable_format:title", {}, "**Polar Bears** of the north\nThey hunt.", False, id="a bold title must end the line"),
        pytest.param("detectable_format:title", {}, "### Polar Bears ###\nThey hunt.", True, id="a ###-framed title"),
        pytest.param("detectable_format:title", {}, "#### Polar Bears\nThey hunt.", False, id="four hashes are no title"),
        pytest.param("detectable_format:multiple_sections", {"num_sections": 1}, "**Intro\nBears hunt seals.", False, id="an unclosed ** starts no section"),
        pytest.param("detectable_format:multiple_sections", {"num_sections": 2}, "**Intro** now\nHunting: seals", True, id="a closed ** or Word: starts a section"),
        pytest.param("language:response_language", {"language": "fr"}, "le le le ours polaire", False, id="French counts distinct list words, not tokens"),
        pytest.param("language:response_language", {"language": "es"}, "a veces y de noche", True, id="Spanish 'a', 'y', 'de' are list words"),
        pytest.param("change_case:english_capital", {}, "POLAR BEARS 北极熊", True, id="uncased letters pass beside upper-case ones"),
        pytest.param("change_case:english_lowercase", {}, "北极熊在冰上", False, id="only uncased letters are not lower case"),
        pytest.param("startend:quotation", {}, ") and stripped.endswith( bears hunt", True, id="their quoting typo is a prefix test"),
        pytest.param("startend:quotation", {}, "\u201cBears hunt.\u201d", False, id="curly quotes fail"),
        pytest.param("length_constraints:number_words", {"num_words": 2, "note": "more than"}, "Bears hunt.", True, id="'more than' in a value reads as at least"),
        pytest.param("length_constraints:number_words", {"num_words": 2, "relation": "more than"}, "Bears hunt seals.", False, id="a 'more than' relation fails"),
        pytest.param("keywords:existence", {"keywords": []}, "Bears hunt.", False, id="no keywords is not followed"),
        pytest.param("keywords:forbidden_words", {}, "Bears hunt.", False, id="missing forbidden words are not followed"),
        pytest.param("startend:end_checker", {}, "Bears hunt.", False, id="a missing end phrase is not followed"),
        pytest.param("keywords:letter_frequency", {"char": "z", "let_frequency": 2, "let_relation": "at least"}, "Zebras graze.", True, id="the letter may come as 'char'"),
        pytest.param("keywords:existence", {"keywords": ["bears", 5]}, "Bears hunt.", False, id="a checker that raises is not followed"),
        pytest.param("punctuation:no_comma", {"response": "x"}, "Bears hunt.", False, id="a kwarg named like their parameter raised"),
    ],
)
def test_their_checkers(instruction_id, kwargs, response, verdict):
    assert strict(instruction_id, kwargs, response) is verdict


def test_loose_variants_and_missing_kwargs():
    sample = {"key": 1, "prompt": "p", "instruction_id_list": ["change_case:english_lowercase", "punctuation:no_comma"], "kwargs": [{}]}
    verdict = reference.score(sample, "Sure, here:\nall lower case here")
    assert verdict["strict_evaluation"]["follow_instruction_list"] == [False, False] and verdict["strict_evaluation"]["num_followed"] == 0
    assert verdict["loose_evaluation"]["follow_instruction_list"] == [True, True] and verdict["loose_evaluation"]["follow_all_instructions"]
    assert verdict["num_instructions"] == verdict["loose_evaluation"]["num_instructions"] == 2


@pytest.mark.parametrize(("response", "follows_all"), [("A fine answer.", True), ("!!", False)])
def test_a_prompt_without_instructions_follows_all_unless_meaningless(response, follows_all):
    verdict = reference.score({"key": 1, "prompt": "p", "instruction_id_list": [], "kwargs": []}, response)
    assert verdict["strict_evaluation"]["follow_all_instructions"] is follows_all and verdict["loose_evaluation"]["follow_all_instructions"] is follows_all
    assert verdict["is_meaningful_response"] is follows_all and verdict["strict_evaluation"]["meaningless_response"] is not follows_all


def test_level_block_order_and_empty_level():
    samples = [{"key": key, "prompt": "p", "instruction_id_list": ids, "kwargs": [{}] * len(ids)} for key, ids in enumerate([["startend:quotation", "punctuation:no_comma"], ["punctuation:no_comma"]])]
    level = score_responses(ifeval.task(), samples, ["p", "p"], ['"Bears hunt."', "Bears, seals."])["reference"]
    assert list(level["instruction_accuracies"]) == ["startend:quotation", "punctuation:no_comma"]  # first appearance, as theirs
    assert level["instruction_accuracies"]["punctuation:no_comma"] == {"strict_accuracy": 0.5, "loose_accuracy": 0.5, "strict_correct": 1, "loose_correct": 1, "total": 2}
    assert level["strict_prompt_accuracy"] == 0.5 and level["strict_instruction_accuracy"] == pytest.approx(2 / 3)
    empty = score_responses(ifeval.task(), [], [], [])["reference"]
    assert empty["strict_prompt_accuracy"] == 0.0 and empty["loose_instruction_accuracy"] == 0.0 and empty["meaningless_response_rate"] == 0.0
    assert empty["total_prompts"] == 0 and empty["instruction_accuracies"] == {}
