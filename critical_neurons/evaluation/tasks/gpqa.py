"""GPQA-Diamond: per-question seeded option shuffle, the reference's prompt, unbiased letter extraction.

The authors' three-tier extraction runs beside it (``critical_neurons.evaluation.reference.gpqa``), biased toward A as it was.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from typing import Any

from critical_neurons.evaluation.data import TEXT, load_rows, require_fields
from critical_neurons.evaluation.reference import gpqa as reference
from critical_neurons.evaluation.tasks.common import GenerativeTask, TaskDefaults, answer_letters, extraction_rate, group_accuracy, is_meaningful, rate

logger = logging.getLogger(__name__)

HUB = "Idavidrein/gpqa"
CONFIG = "gpqa_diamond"
DEFAULTS = TaskDefaults("gpqa_diamond", "overall_accuracy", ("overall_accuracy", "strict_accuracy", "total_questions", "extraction_rate", "meaningful_response_rate"), max_length=2048, max_new_tokens=50, output_file="results/gpqa_results.json", reference_metric="reference.overall_accuracy")
ANSWER_FIELDS = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
FIELDS = {"Question": TEXT, **dict.fromkeys(ANSWER_FIELDS, (*TEXT, type(None)))}
LETTERS = "ABCD"
INSTRUCTION = 'Please provide your answer as "The answer is (X)" where X is the correct option letter.'
ANSWER_LEAD = r"answer\s+is|answer\s*:"


def _text(value: Any) -> str:
    """A CSV cell as stripped text; empty for missing cells (None or pandas' NaN)."""
    return "" if value is None or value != value else str(value).strip()


def shuffle_seed(record_id: str, question: str) -> int:
    """The reference's per-question seed, md5 of the Record ID; md5 of the question when the ID is missing.

    The reference fell back to Python's ``hash``, which is salted per process, so that order was not reproducible.
    """
    key = record_id or question
    return int(hashlib.md5(key.encode()).hexdigest()[:8], 16)


def shuffled_choices(row: dict[str, Any]) -> tuple[list[str], int]:
    """Non-empty choices [correct, incorrect 1-3] shuffled as the reference does, and the correct position.

    A local ``random.Random(seed)`` gives the same order as the reference's ``random.seed(seed)``
    followed by ``random.shuffle``, without reseeding the global RNG.
    """
    choices = [text for text in (_text(row[field]) for field in ANSWER_FIELDS) if text]
    correct = _text(row["Correct Answer"])
    random.Random(shuffle_seed(_text(row.get("Record ID")), str(row["Question"]))).shuffle(choices)
    return choices, choices.index(correct)


def load_samples(source: str | None = None, split: str = "train", config: str = CONFIG) -> list[dict[str, Any]]:
    """Questions with their shuffled options; rows with fewer than two options are skipped with a warning."""
    rows = load_rows(source or HUB, config=config, split=split)
    require_fields(rows, FIELDS, source or HUB)
    samples = []
    for index, row in enumerate(rows):
        if not _text(row["Correct Answer"]) or sum(bool(_text(row[field])) for field in ANSWER_FIELDS) < 2:
            logger.warning("Skipping row %d: it has no correct answer or fewer than two options", index)
            continue
        choices, gold = shuffled_choices(row)
        samples.append(
            {
                "question_id": _text(row.get("Record ID")) or str(index),
                "question": str(row["Question"]),
                "choices": choices,
                "answer": LETTERS[gold],
                "subject": _text(row.get("High-level domain")) or "unknown",
                "subdomain": _text(row.get("Subdomain")) or "unknown",
                "difficulty": _text(row.get("Writer's Difficulty Estimate")) or "unknown",
            }
        )
    return samples


def build_prompt(sample: dict[str, Any]) -> str:
    """The reference's prompt, verbatim: question, ``(A) option`` lines, answer-format sentence (no preamble)."""
    options = "".join(f"({letter}) {choice}\n" for letter, choice in zip(LETTERS, sample["choices"]))
    option_text = f"Options:\n{options}".strip()
    return f"Question: {sample['question']}\n\n{option_text}\n\n{INSTRUCTION}"


def extract_answer(text: str, num_options: int = len(LETTERS), *, strict: bool = False) -> str | None:
    """The option letter the response commits to, or None.

    1. the last "answer is (X)" / "answer: X" naming an option (the only tier when ``strict``);
    2. else a delimited letter, "(B)" or "B)", when every such letter in the text agrees;
    3. else a last line that is just a letter ("B", "B.", "**B**").
    The reference's fallbacks (any standalone letter, so the article "A" read as A; then any digit
    substring, so "10" read as A) are dropped: they biased predictions toward the first option.
    """
    letters = LETTERS[:num_options]
    stated = [letter for letter in answer_letters(text, f"A-{letters[-1]}", ANSWER_LEAD) if letter in letters]
    if stated or strict:
        return stated[-1] if stated else None
    delimited = {enclosed or closed for enclosed, closed in re.findall(rf"\(([{letters}])\)|(?<![\w(])([{letters}])\)", text)}
    if len(delimited) == 1:
        return delimited.pop()
    lines = [line for line in text.strip().splitlines() if line.strip()]
    final = re.fullmatch(rf"\W*([{letters}])\W*", lines[-1]) if lines else None
    return final.group(1) if final else None


def score(sample: dict[str, Any], response: str) -> dict[str, Any]:
    """One question's record: the letter read (all tiers and strict), the gold, the option texts, correctness."""
    num_options = len(sample["choices"])
    predicted = extract_answer(response, num_options)
    strict = extract_answer(response, num_options, strict=True)
    return {
        "question_id": sample["question_id"],
        "subject": sample["subject"],
        "subdomain": sample["subdomain"],
        "difficulty": sample["difficulty"],
        "all_choices": sample["choices"],
        "extracted_answer": predicted,
        "gold": sample["answer"],
        "predicted_choice": sample["choices"][LETTERS.index(predicted)] if predicted else None,
        "correct_choice": sample["choices"][LETTERS.index(sample["answer"])],
        "is_correct": predicted == sample["answer"],
        "is_strict_correct": strict == sample["answer"],
        "is_meaningful": is_meaningful(response),
    }


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy over every question (no answer is wrong), the strict "answer is" accuracy, per-group accuracies."""
    return {
        "overall_accuracy": rate(details, "is_correct"),
        "strict_accuracy": rate(details, "is_strict_correct"),
        "total_correct": sum(detail["is_correct"] for detail in details),
        "total_questions": len(details),
        "extraction_rate": extraction_rate(details),
        "meaningful_response_rate": rate(details, "is_meaningful"),
        "subject_accuracies": group_accuracy(details, "subject"),
        "difficulty_accuracies": group_accuracy(details, "difficulty"),
    }


def sample_from_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """What the scorers read, rebuilt from a stored detail."""
    fields = ("question_id", "subject", "subdomain", "difficulty")
    return {**{field: detail[field] for field in fields}, "choices": detail["all_choices"], "answer": detail["gold"]}


def task() -> GenerativeTask:
    """The parts ``evaluate_generative`` runs at each masking level."""
    return GenerativeTask(build_prompt=build_prompt, score=score, aggregate=aggregate, reference_score=reference.score, reference_aggregate=reference.aggregate)
