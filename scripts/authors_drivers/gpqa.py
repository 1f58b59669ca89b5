"""GPQA: their ``GPQAEvaluator`` against ``critical_neurons.evaluation.reference.gpqa``, with 2, 3 and 4 options.

Their rows hold the answers unshuffled (correct first); their own md5-seeded shuffle of the Record ID
then gives our sample's order, which ``their_row`` inverts.
"""

from __future__ import annotations

import random
from typing import Any

from authors_drivers.common import ALPHABET, Driver, random_text, scoring_fields
from critical_neurons.evaluation.tasks import gpqa

FIELDS = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
PHRASES = ("ANSWER IS ", "the answer is (", "answer is", "answer  is ", "answer\nis (", "ANSWER IS\t", "A ", " a ", "B", "(C)", "D)", "10", "3", "4", "Ä", "_A", "I think")


def their_row(sample: dict[str, Any]) -> dict[str, Any]:
    """The row their loader would read: answers in the original order, correct first."""
    choices = sample["choices"]
    order = list(range(len(choices)))
    random.Random(gpqa.shuffle_seed(sample["question_id"], sample["question"])).shuffle(order)
    original = [""] * len(choices)
    for position, source in enumerate(order):
        original[source] = choices[position]
    if original[0] != choices[gpqa.LETTERS.index(sample["answer"])]:
        raise ValueError(f"question {sample['question_id']}: the answer is not where the shuffle puts the correct one")
    return {
        "Record ID": sample["question_id"],
        "Question": sample["question"],
        **dict(zip(FIELDS, original + [""] * (len(FIELDS) - len(original)))),
        "High-level domain": sample["subject"],
        "Subdomain": sample["subdomain"],
        "Writer's Difficulty Estimate": sample["difficulty"],
    }


def sample_with(options: int, record: int) -> dict[str, Any]:
    """A sample as our loader makes it from a row with ``options`` answers."""
    row = {"Record ID": f"rec{options}-{record}", "Question": f"Q{record}?", **{field: f"answer {n}" if n < options else "" for n, field in enumerate(FIELDS)}}
    choices, correct = gpqa.shuffled_choices(row)
    subject = ("Physics", "Chemistry")[record % 2]
    return {"question_id": row["Record ID"], "question": row["Question"], "choices": choices, "answer": gpqa.LETTERS[correct], "subject": subject, "subdomain": "x", "difficulty": "Hard"}


def fuzz(rng: random.Random) -> tuple[dict[str, Any], str]:
    return sample_with(rng.choice((2, 3, 4)), rng.randrange(4)), random_text(rng, (*ALPHABET, *PHRASES))


# Their dataset loader logs with an f-string that only Python 3.12 parses; the line is never run here.
PYTHON_312_FSTRING = (
    """{sample.get("Writer's Difficulty Estimate", 'N/A')}""",
    """{sample.get('Writer' + chr(39) + 's Difficulty Estimate', 'N/A')}""",
)
DRIVER = Driver(module="gpqa_evaluator", evaluator_class="GPQAEvaluator", method=gpqa.DEFAULTS.name, their_row=their_row, their_verdict=scoring_fields("predicted_answer", "predicted_choice", "is_correct"), fuzz=fuzz, source_fixes=(PYTHON_312_FSTRING,))
