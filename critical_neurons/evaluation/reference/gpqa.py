"""GPQA as the authors scored it: three tiers on the upper-cased response, biased toward the first option.

1. the first "ANSWER IS (X)", X any of A-D even on a question with fewer options (then wrong);
2. else the first standalone letter among the question's options (the article "A" is option A);
3. else the first of the digits 1..n found anywhere as a substring, in that order ("10" is A).
"""

from __future__ import annotations

import re
from typing import Any

from critical_neurons.evaluation.reference.common import share
from critical_neurons.evaluation.tasks.common import group_accuracy, reference_view

LETTERS = "ABCD"
ANSWER = re.compile(r"ANSWER IS \(?([ABCD])\)?")


def extract(response: str, num_options: int) -> str | None:
    """Their letter for a question with ``num_options`` options, or None."""
    upper = response.strip().upper()
    letters = LETTERS[: min(num_options, len(LETTERS))]
    match = ANSWER.search(upper) or re.search(rf"\b([{letters}])\b", upper)
    if match:
        return match.group(1)
    return next((letter for position, letter in enumerate(letters, 1) if str(position) in upper), None)


def score(sample: dict[str, Any], response: str) -> dict[str, Any]:
    """Their verdict in their names: the option index read (-1 for none), its text, and whether it is the gold one.

    The text is theirs too: ``EXTRACTION_FAILED`` for none, ``INVALID_INDEX`` for a letter past the options (then wrong).
    """
    predicted = extract(response, len(sample["choices"]))
    if predicted is None:
        return {"predicted_answer": -1, "predicted_choice": "EXTRACTION_FAILED", "is_correct": False}
    index = LETTERS.index(predicted)
    choice = sample["choices"][index] if index < len(sample["choices"]) else "INVALID_INDEX"
    return {"predicted_answer": index, "predicted_choice": choice, "is_correct": predicted == sample["answer"]}


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Their level metrics and names: accuracy over all questions (0.0 for none), per subject and difficulty."""
    view = reference_view(details)
    correct = sum(detail["is_correct"] for detail in view)
    return {
        "overall_accuracy": share(correct, len(view)),
        "total_correct": correct,
        "total_questions": len(view),
        "subject_accuracies": group_accuracy(view, "subject"),
        "difficulty_accuracies": group_accuracy(view, "difficulty"),
    }
