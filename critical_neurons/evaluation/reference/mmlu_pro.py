"""MMLU-Pro as the authors scored it: the first "THE ANSWER IS (X)" of the upper-cased response, accuracy over all questions.

Their quirks kept: no word boundary after the letter ("the answer is because" reads as B); only the
first match counts, even when it names no option and a later one does.
"""

from __future__ import annotations

import re
from typing import Any

from critical_neurons.evaluation.reference.common import share
from critical_neurons.evaluation.tasks.common import group_accuracy, reference_view

LETTERS = "ABCDEFGHIJ"
ANSWER = re.compile(r"THE\s+ANSWER\s+IS\s+\(?([ABCDEFGHIJ])\)?")


def extract(response: str, num_options: int) -> str | None:
    """Their letter: the first match in the upper-cased response, kept only when it names one of the options."""
    match = ANSWER.search(response.strip().upper())
    return match.group(1) if match and LETTERS.index(match.group(1)) < num_options else None


def score(sample: dict[str, Any], response: str) -> dict[str, Any]:
    """Their verdict in their names: the option index read (-1 for none) and whether it is the gold one."""
    predicted = extract(response, len(sample["options"]))
    return {"predicted_answer": LETTERS.index(predicted) if predicted else -1, "is_correct": predicted is not None and predicted == sample["answer"]}


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Their level metrics and names: accuracy over all questions (0.0 for none), per category."""
    correct = sum(detail["reference"]["is_correct"] for detail in details)
    return {
        "overall_accuracy": share(correct, len(details)),
        "total_correct": correct,
        "total_questions": len(details),
        "category_accuracies": group_accuracy(reference_view(details), "category"),
    }
