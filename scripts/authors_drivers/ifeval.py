"""IFEval: their ``IFEvalEvaluator`` against ``critical_neurons.evaluation.reference.ifeval``.

Their rows are our samples as they are (key, prompt, instruction ids, one kwargs dict per instruction).
The fuzzer draws up to three of the 25 official instructions with the kwargs the data uses, now and
then loosely read ones (aliases, numbers and relations as text, "more than", empty or non-text
values), and responses that are either random pieces or lines built to reach their line patterns
(titles, sections, quotes, end phrases), sometimes upper- or lower-cased as a whole.
"""

from __future__ import annotations

import random
from typing import Any

from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT

from authors_drivers.common import ALPHABET, Driver, random_text
from critical_neurons.evaluation.tasks import ifeval

INPUT_COPIES = ("instruction_id_list", "prompt", "response")
LANGUAGES = ("en", "fr", "es", "zh", "de", "ja", "ko", "ru", "it", "pt", "ar", "hi", "English", "Chinese", "zh-TW", "bn", "ne", "te", "sw", "fi")
KEYWORDS = ("bear", "Seal", "apple", "the", "", " ", "END", "中文", "a", "xyz", "hello world")
RELATIONS = ("less than", "at least", "exactly", "more than", "At Least", "less than or equal", None, 3)
NUMBERS = (0, 1, 2, 3, 5, 10, 50, "3", " 4 ", "-2", "x", "2.5", True, None, -1, "٣", "1_0")
END_PHRASES = ("the end.", "END", "Is there anything else I can help with?", "", " ")
# Kwargs their loose readers pick up: aliases, numbers and relations in any value, non-text values.
LOOSE_KWARGS = (
    {"keyword": "bear"}, {"keywords": "bear"}, {"forbidden": ["x"]}, {"ending": "END"}, {"char": "a"}, {"count": 2}, {"count": "7"}, {"note": "more than 2"},
    {"note": "exactly 1"}, {"comparison": "exactly"}, {"operator": "less than"}, {"letter": ["a"]}, {"keyword": []}, {"number": "9" * 4301},
    {"language": ["en"]}, {"end_phrase": 5}, {"keywords": ["a", 5]},
)
PIECES = (
    *"abcdefxyzABCDEFXYZ", " ", " ", "\n", "\n\n", "\u2028", "\r", "\t", "\xa0", "\u3000", "\x85", ",", ".", "!", "?", ":", ";", "*", "**", "_", "__", "___", "-",
    "#", "# ", "## ", "### ", "###", "Title:", "[", "]", "[name]", "{", "}", "{x}", "<", ">", "<b>", '"', "'", "\u201c", "\u201d", ") and stripped.endswith(",
    "P.S.", "PS:", "Note:", "Postscript:", "P.P.S.", "Response 1:", "response 2:", "Answer 1:", "first:", "Second:", "1.", "2.", "option 1:",
    "中文", "汉字", "こんにちは", "한국어", "ß", "ǅ", "Ω", "ω", "É", "é", "ª", "Ⅷ", "ı", "İ", "١٢",
    " le ", " la ", " les ", " de ", " et ", " à ", " il ", " être ", " el ", " y ", " que ", " por ", " a ",
    "HELLO", "WORLD", "OK", "hello", "Bear", "bears", "seal", "the", "apple", "END", "the end.", '{"a": 1}', "[1, 2]", "true", '{"k": [', "]}",
    "Section 1", "SECTION", "*italic*", "**bold**", "_x_", "aaaaaa", "......", "      ",
)
LINE_STARTS = ("", "", "", "# ", "## ", "### ", "#### ", "###", "**", "*", "Title:", "1. ", "12.", "Section:", "SECTION 1:", "Aa:", "__", '"', "'", ") and stripped.endswith(", "- ", "  ", "Sure!", "P.S. ")
LINE_ENDS = ("", "", "", "###", " ###", "**", "*", "__", '"', "'", ") and stripped.endswith(", "END", "the end.", "Is there anything else I can help with?", ".", ":", "  ")


def _official_kwargs(rng: random.Random) -> dict[str, dict[str, Any]]:
    """Each official instruction's kwargs as the data has them, drawn at random."""
    relation, number = rng.choice(RELATIONS), rng.choice(NUMBERS)
    return {
        "language:response_language": {"language": rng.choice(LANGUAGES)},
        "length_constraints:number_words": {"relation": relation, "num_words": number},
        "length_constraints:number_sentences": {"relation": relation, "num_sentences": number},
        "length_constraints:number_paragraphs": {"num_paragraphs": number},
        "length_constraints:nth_paragraph_first_word": {"num_paragraphs": number, "nth_paragraph": 1, "first_word": "bear"},
        "detectable_content:number_placeholders": {"num_placeholders": number},
        "detectable_content:postscript": {"postscript_marker": rng.choice(("P.S.", "P.P.S"))},
        "keywords:existence": {"keywords": rng.sample(KEYWORDS, rng.randint(0, 3))},
        "keywords:frequency": {"relation": relation, "keyword": rng.choice(KEYWORDS), "frequency": number},
        "keywords:forbidden_words": {"forbidden_words": rng.sample(KEYWORDS, rng.randint(0, 3))},
        "keywords:letter_frequency": {"letter": rng.choice(("a", "e", "z", "A", "", "ab", "ß")), "let_frequency": number, "let_relation": relation},
        "startend:end_checker": {"end_phrase": rng.choice(END_PHRASES)},
        "change_case:capital_word_frequency": {"capital_frequency": number, "capital_relation": relation},
        "detectable_format:multiple_sections": {"section_spliter": rng.choice(("Section", "SECTION", "Part")), "num_sections": number},
        "detectable_format:number_highlighted_sections": {"num_highlights": number},
        "detectable_format:number_bullet_lists": {"num_bullets": number},
        "combination:repeat_prompt": {"prompt_to_repeat": "Write 3 words"},
    }


def _kwargs(rng: random.Random, instruction_id: str) -> dict[str, Any]:
    """Kwargs as our loader passes them on (no None values), now and then with a loosely read extra."""
    kwargs = {key: value for key, value in _official_kwargs(rng).get(instruction_id, {}).items() if value is not None}
    if rng.random() < 0.15:
        kwargs.update(rng.choice(LOOSE_KWARGS))
    return kwargs


def _lines(rng: random.Random) -> str:
    """One to six lines with heading-, quote- and end-like starts and ends, sometimes quoted whole."""
    lines = [rng.choice(LINE_STARTS) + random_text(rng, PIECES, 6) + rng.choice(LINE_ENDS) for _ in range(rng.randint(1, 6))]
    text = rng.choice(("\n", "\n\n", " \n")).join(lines)
    if rng.random() < 0.2:
        quote = rng.choice(('"', "'", ") and stripped.endswith("))
        text = quote + text + quote
    return rng.choice(("", " ", "\n")) + text + rng.choice(("", " ", "\n", "\t"))


def their_row(sample: dict[str, Any]) -> dict[str, Any]:
    return dict(sample)


def their_verdict(result: dict[str, Any], sample: dict[str, Any]) -> dict[str, Any]:
    """Their result without its copies of the inputs (key, prompt, response, ids, kwargs; the same in each mode's dict)."""
    modes = {mode: {key: value for key, value in result[mode].items() if key not in INPUT_COPIES} for mode in ("strict_evaluation", "loose_evaluation")}
    return {"is_meaningful_response": result["is_meaningful_response"], **modes, "num_instructions": result["num_instructions"]}


def fuzz(rng: random.Random) -> tuple[dict[str, Any], str]:
    ids = rng.sample(sorted(INSTRUCTION_DICT), rng.randint(0, 3))
    sample = {"key": rng.randint(1, 10**6), "prompt": "Write about bears.", "instruction_id_list": ids, "kwargs": [_kwargs(rng, instruction_id) for instruction_id in ids]}
    response = _lines(rng) if rng.random() < 0.6 else random_text(rng, (*ALPHABET, *PIECES), 30)
    case = rng.random()
    response = response.upper() if case < 0.12 else response.lower() if case < 0.24 else response
    for instruction_id, kwargs in zip(ids, sample["kwargs"]):
        if instruction_id == "startend:end_checker" and isinstance(kwargs.get("end_phrase"), str) and rng.random() < 0.6:
            response += kwargs["end_phrase"] + rng.choice(("", " ", "\n"))
    return sample, response


DRIVER = Driver(module="ifeval_evaluator", evaluator_class="IFEvalEvaluator", method=ifeval.DEFAULTS.name, their_row=their_row, their_verdict=their_verdict, fuzz=fuzz)
