"""SimpleQA: their ``SimpleQAEvaluator`` (template 0) against ``critical_neurons.evaluation.reference.simpleqa``.

Their level's ``template_used`` is a setting, which our result keeps in ``settings``; it is not compared.
"""

from __future__ import annotations

import random
from typing import Any

from authors_drivers.common import ALPHABET, Driver, default_level, random_text, scoring_fields
from critical_neurons.evaluation.tasks import simpleqa

GOLDS = ("Paris", "the Thames", "1988", "Leonardo da Vinci", "!?", "", "U.S.A.", "New York City")
PHRASES = ("Paris", "the", "Thames", "1988", "da Vinci", "Leonardo", "U.S.A", "New", "York", "city", "The", "'", "\"", "!", "?", ";", "é", "_", "—", "\u00a0", "\u2028", "\x1c")

PUNCTUATION = (".", "!", "?", ";", ",", "\"", "'", " ", "\n", "\r", "\u2028", "-", "(", ")")


def their_row(sample: dict[str, Any]) -> dict[str, Any]:
    return {"problem": sample["question"], "answer": sample["answer"]}


def their_level(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in default_level(result).items() if key != "template_used"}


def fuzz(rng: random.Random) -> tuple[dict[str, Any], str]:
    index = rng.randrange(len(GOLDS))
    pieces = (*ALPHABET, *PHRASES, *PHRASES)
    if rng.random() < 0.4:  # the gold itself, wrapped: exact matches and their normalisation
        return {"id": index, "question": "Who?", "answer": GOLDS[index]}, random_text(rng, PUNCTUATION, 3) + GOLDS[index] + random_text(rng, PUNCTUATION, 3)
    return {"id": index, "question": "Who?", "answer": GOLDS[index]}, random_text(rng, pieces)


DRIVER = Driver(module="simpleqa_evaluator", evaluator_class="SimpleQAEvaluator", method=simpleqa.DEFAULTS.name, their_row=their_row, their_verdict=scoring_fields("response", "is_meaningful", "evaluation"), their_level=their_level, fuzz=fuzz)
