"""IFEval: their ``IFEvalEvaluator`` against ``critical_neurons.reference.ifeval``.

Their rows are our samples as they are (key, prompt, instruction ids, one kwargs dict per instruction).
"""

from __future__ import annotations

import random
from typing import Any

from authors_drivers.common import ALPHABET, Driver, random_text
from critical_neurons.tasks import ifeval

# One sample per instruction family their code handles, with the kwargs our loader passes on.
INSTRUCTIONS = (
    ("punctuation:no_comma", {}),
    ("detectable_format:title", {}),
    ("change_case:english_lowercase", {}),
    ("change_case:english_capital", {}),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"}),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2}),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}),
    ("detectable_format:json_format", {}),
    ("detectable_content:number_placeholders", {"num_placeholders": 1}),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}),
    ("length_constraints:number_words", {"relation": "at least", "num_words": 5}),
    ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3}),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}),
    ("startend:quotation", {}),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}),
    ("keywords:existence", {"keywords": ["bear", "ice"]}),
    ("keywords:forbidden_words", {"forbidden_words": ["seal"]}),
    ("keywords:frequency", {"keyword": "bear", "frequency": 2, "relation": "at least"}),
    ("keywords:letter_frequency", {"letter": "a", "let_frequency": 3, "let_relation": "at least"}),
    ("language:response_language", {"language": "en"}),
    ("language:response_language", {"language": "zh"}),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write about bears."}),
    ("combination:two_responses", {}),
)
PIECES = (
    "bear", "Bear", "BEAR", "ice", "seal", "polar", "*", "**", "<<", ">>", "[", "]", "Section 1", "SECTION", "\n\n", "***", '"', ",", "- ", "* ", "Any other questions?",
    "P.S.", "{", "}", "北极熊", "é", " the ", " a ", ".", "!", "?", "Write about bears.", "******",
)


def their_row(sample: dict[str, Any]) -> dict[str, Any]:
    return dict(sample)


def their_verdict(result: dict[str, Any], sample: dict[str, Any]) -> dict[str, Any]:
    strict, loose = result["strict_evaluation"], result["loose_evaluation"]
    return {
        "strict_follow_instruction_list": strict["follow_instruction_list"],
        "loose_follow_instruction_list": loose["follow_instruction_list"],
        "follow_all_instructions_strict": strict["follow_all_instructions"],
        "follow_all_instructions_loose": loose["follow_all_instructions"],
        "is_meaningful": result["is_meaningful_response"],
    }


def fuzz(rng: random.Random) -> tuple[dict[str, Any], str]:
    chosen = rng.sample(range(len(INSTRUCTIONS)), rng.randint(1, 2))
    sample = {"key": min(chosen) * 100 + max(chosen), "prompt": "Write about bears.", "instruction_id_list": [INSTRUCTIONS[i][0] for i in chosen], "kwargs": [dict(INSTRUCTIONS[i][1]) for i in chosen]}
    return sample, random_text(rng, (*ALPHABET, *PIECES, *PIECES), 24)


DRIVER = Driver(module="ifeval_evaluator", evaluator_class="IFEvalEvaluator", method=ifeval.DEFAULTS.name, their_row=their_row, their_verdict=their_verdict, fuzz=fuzz)
