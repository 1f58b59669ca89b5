"""MMLU-Pro: their ``MMLUProEvaluator`` against ``critical_neurons.evaluation.reference.mmlu_pro``."""

from __future__ import annotations

import random
from typing import Any

from authors_drivers.common import ALPHABET, Driver, random_text, scoring_fields
from critical_neurons.evaluation.tasks import mmlu_pro

CATEGORIES = ("math", "law", "chemistry")
PHRASES = ("the answer is ", "THE ANSWER IS", "The answer is (", "answer is ", "the  answer\nis ", "because", "always", "(J)", "I", "ß", "ǰ")


def their_row(sample: dict[str, Any]) -> dict[str, Any]:
    return {key: sample[key] for key in ("question_id", "question", "options", "answer", "category")}



def fuzz(rng: random.Random) -> tuple[dict[str, Any], str]:
    count = rng.choice((3, 4, 10))
    sample = {"question_id": count, "question": "Which?", "options": [f"option {n}" for n in range(count)], "answer": mmlu_pro.LETTERS[rng.randrange(count)], "category": rng.choice(CATEGORIES)}
    return sample, random_text(rng, (*ALPHABET, *PHRASES))


DRIVER = Driver(module="mmlu_pro_evaluator", evaluator_class="MMLUProEvaluator", method=mmlu_pro.DEFAULTS.name, their_row=their_row, their_verdict=scoring_fields("predicted_answer", "is_correct"), fuzz=fuzz)
