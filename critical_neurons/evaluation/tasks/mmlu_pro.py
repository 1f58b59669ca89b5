"""MMLU-Pro: the reference's zero-shot prompt, "The answer is (X)" extraction, accuracy over all questions.

The authors' scorer runs beside it (``critical_neurons.evaluation.reference.mmlu_pro``): the first "THE ANSWER IS (X)" of the
upper-cased response, so "the answer is because" reads as B and a corrected answer keeps the first letter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from critical_neurons.errors import UsageError
from critical_neurons.evaluation.data import TEXT, load_rows, require_fields
from critical_neurons.evaluation.reference import mmlu_pro as reference
from critical_neurons.evaluation.tasks.common import GenerativeTask, TaskDefaults, answer_letters, extraction_rate, group_accuracy, is_meaningful, rate

HUB = "TIGER-Lab/MMLU-Pro"
DEFAULTS = TaskDefaults("mmlu_pro", "overall_accuracy", ("overall_accuracy", "total_correct", "total_questions", "extraction_rate", "meaningful_response_rate"), max_length=2048, max_new_tokens=50, output_file="results/mmlu_pro_results.json", reference_metric="reference.overall_accuracy")
FIELDS = {"question": TEXT, "options": list, "answer": str, "category": TEXT}
LETTERS = "ABCDEFGHIJ"
PREAMBLE = (
    'You are a knowledge expert. You are supposed to answer the multi-choice question to derive your final answer as '
    '"The answer is (X)" where X is the correct option letter.'
)
INSTRUCTION = 'Please provide your answer as "The answer is (X)" where X is the correct option letter.'


def load_samples(source: str | None = None, split: str = "test", categories: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Questions in file order, optionally only some categories (case-insensitive, as the reference)."""
    rows = load_rows(source or HUB, split=split)
    require_fields(rows, FIELDS, source or HUB)
    for index, row in enumerate(rows):
        letter = row["answer"].strip().upper()
        if len(letter) != 1 or letter not in LETTERS[: min(len(row["options"]), len(LETTERS))]:
            raise UsageError("--dataset_path", f"{source or HUB} row {index}: answer {row['answer']!r} is not one of its {len(row['options'])} options", "fix that row")
    if categories:
        wanted = {category.strip().lower() for category in categories}
        available = sorted({str(row["category"]) for row in rows})
        rows = [row for row in rows if str(row["category"]).lower() in wanted]
        if not rows:
            raise UsageError("--categories", f"{', '.join(sorted(wanted))} matches no category", f"choose from {', '.join(available)}")
    return [
        {
            "question_id": row.get("question_id", index),
            "question": str(row["question"]),
            "options": [str(option) for option in row["options"]][: len(LETTERS)],
            "answer": str(row["answer"]).strip().upper(),
            "category": str(row["category"]),
        }
        for index, row in enumerate(rows)
    ]


def build_prompt(sample: dict[str, Any]) -> str:
    """The reference's prompt, verbatim: preamble, question, ``(A): option`` lines, answer-format sentence."""
    options = "".join(f"({letter}): {option}\n" for letter, option in zip(LETTERS, sample["options"]))
    option_text = f"Options are:\n{options}".strip()
    return f"{PREAMBLE}\n\nQ: {sample['question']}\n{option_text}\n\n{INSTRUCTION}"


def extract_answer(text: str, num_options: int = len(LETTERS)) -> str | None:
    """The last "the answer is (X)" whose letter names an option; None when there is none.

    The reference took only the first match and read "always"/"because" as A/B (see ``answer_letters``).
    """
    valid = [letter for letter in answer_letters(text, "A-J") if letter in LETTERS[:num_options]]
    return valid[-1] if valid else None


def score(sample: dict[str, Any], response: str) -> dict[str, Any]:
    """One question's record: the letter read, the gold letter, correctness, the meaningful diagnostic."""
    predicted = extract_answer(response, len(sample["options"]))
    return {
        "question_id": sample["question_id"],
        "category": sample["category"],
        "extracted_answer": predicted,
        "gold": sample["answer"],
        "num_options": len(sample["options"]),
        "is_correct": predicted is not None and predicted == sample["answer"],
        "is_meaningful": is_meaningful(response),
    }


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy over every question (an unparsable answer is wrong), per category, and diagnostics."""
    return {
        "overall_accuracy": rate(details, "is_correct"),
        "total_correct": sum(detail["is_correct"] for detail in details),
        "total_questions": len(details),
        "extraction_rate": extraction_rate(details),
        "meaningful_response_rate": rate(details, "is_meaningful"),
        "category_accuracies": group_accuracy(details, "category"),
    }


def sample_from_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """What the scorers read, rebuilt from a stored detail (option texts are in the prompt; only their number is scored)."""
    return {"question_id": detail["question_id"], "category": detail["category"], "options": [None] * detail["num_options"], "answer": detail["gold"]}


def task() -> GenerativeTask:
    """The parts ``evaluate_generative`` runs at each masking level."""
    return GenerativeTask(build_prompt=build_prompt, score=score, aggregate=aggregate, reference_score=reference.score, reference_aggregate=reference.aggregate)
