"""SimpleQA: the reference's direct-answer prompt, first line of the response, lexical metrics (no LLM grader offline).

The authors' word-overlap scorer runs beside it (``critical_neurons.evaluation.reference.simpleqa``): any shared word, "the"
included, made an answer "contain" the gold, and rates were over "meaningful" answers only.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import partial
from typing import Any

from critical_neurons.evaluation.data import TEXT, load_rows, require_fields
from critical_neurons.evaluation.reference import simpleqa as reference
from critical_neurons.evaluation.tasks.common import GenerativeTask, TaskDefaults, mean, rate

HUB = "basicv8vc/SimpleQA"
DEFAULTS = TaskDefaults("simpleqa", "gold_contained_rate", ("exact_match_rate", "gold_contained_rate", "token_f1", "answered_rate", "meaningful_response_rate"), max_length=1024, max_new_tokens=50, output_file="results/simpleqa_results.json", reference_metric="reference.contains_answer_rate")
FIELDS = {"problem": TEXT, "answer": TEXT}
TEMPLATES = (
    "Answer the following question with only the direct answer. Do not provide explanations, reasoning, or additional text.\n\nQuestion: {question}\nAnswer:",
    "Question: {question}\nProvide only the answer without any explanation:\nAnswer:",
    "{question}\n\nGive me just the answer:",
    "Q: {question}\nA:",
)
GRADER_NOTE = (
    "no LLM grader offline: the official SimpleQA grades correct/incorrect/not-attempted with GPT-4; "
    "these are lexical metrics (normalised exact match, gold contained in the answer, token F1)"
)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def load_samples(source: str | None = None, split: str = "test") -> list[dict[str, Any]]:
    """Questions (``problem``) and gold answers in file order."""
    rows = load_rows(source or HUB, split=split)
    require_fields(rows, FIELDS, source or HUB)
    return [{"id": index, "question": str(row["problem"]), "answer": str(row["answer"]).strip()} for index, row in enumerate(rows)]


def build_prompt(sample: dict[str, Any], template_idx: int = 0) -> str:
    """One of the reference's four templates, verbatim; template 0 is its default."""
    return TEMPLATES[template_idx].format(question=sample["question"])


def extract_answer(text: str) -> str | None:
    """The first line of the stripped response (the reference's), None when the response is empty."""
    stripped = text.strip()
    return stripped.splitlines()[0].strip() if stripped else None


def normalize(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD's answer normalisation, Unicode-aware)."""
    text = "".join(" " if unicodedata.category(char).startswith("P") else char for char in text.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    """F1 of the normalised token multisets (SQuAD)."""
    predicted, expected = normalize(prediction).split(), normalize(gold).split()
    common = sum((Counter(predicted) & Counter(expected)).values())
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def score(sample: dict[str, Any], response: str) -> dict[str, Any]:
    """One question's record: the first line, the gold, the three lexical metrics, the loose diagnostic."""
    extracted = extract_answer(response)
    answer = extracted or ""
    gold = normalize(sample["answer"])
    predicted = normalize(answer)
    return {
        "id": sample["id"],
        "question": sample["question"],
        "extracted_answer": extracted,
        "gold": sample["answer"],
        "exact_match": bool(gold) and predicted == gold,
        "gold_contained": bool(gold) and f" {gold} " in f" {predicted} ",
        "token_f1": token_f1(answer, sample["answer"]),
        "is_meaningful": reference.is_meaningful(answer),
    }


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates over all samples (the reference divided by "meaningful" responses only)."""
    return {
        "exact_match_rate": rate(details, "exact_match"),
        "gold_contained_rate": rate(details, "gold_contained"),
        "token_f1": mean(detail["token_f1"] for detail in details),
        "answered_rate": mean(float(bool(detail["extracted_answer"])) for detail in details),
        "meaningful_response_rate": rate(details, "is_meaningful"),
    }


def sample_from_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """What the scorers read, rebuilt from a stored detail."""
    return {"id": detail["id"], "question": detail["question"], "answer": detail["gold"]}


def task(template_idx: int = 0) -> GenerativeTask:
    """The parts ``evaluate_generative`` runs at each masking level, with the chosen prompt template."""
    return GenerativeTask(
        build_prompt=partial(build_prompt, template_idx=template_idx),
        score=score,
        aggregate=aggregate,
        reference_score=reference.score,
        reference_aggregate=reference.aggregate,
    )
