"""SimpleQA: the reference's direct-answer prompt, first line of the response, lexical metrics (no LLM grader offline).

The authors' word-overlap scorer runs beside it (``reference_score``): any shared word, "the"
included, made an answer "contain" the gold, and rates were over "meaningful" answers only.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import partial
from typing import Any

from critical_neurons.data import TEXT, load_rows, require_fields
from critical_neurons.tasks.common import GenerativeTask, TaskDefaults, mean, rate, ratio, reference_view

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
_LONG_RUN = re.compile(r"(.)\1{10,}")
_REFERENCE_DELETED = re.compile(r"[.!?;,\"']")
HIGH_CONFIDENCE = 0.8


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


def is_meaningful_loose(response: str) -> bool:
    """The reference's looser SimpleQA filter (short answers such as "1988" pass), reported as a diagnostic."""
    text = response.strip()
    if not any(char.isalnum() for char in text):
        return False
    if len(text) > 3 and len(set(text.lower())) < 2:
        return False
    return not _LONG_RUN.search(text)


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
        "is_meaningful": is_meaningful_loose(answer),
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


def reference_normalize(text: str) -> str:
    """The authors' normalisation: lower case, whitespace collapsed, then ``. ! ? ; , " '`` deleted (articles kept)."""
    return _REFERENCE_DELETED.sub("", " ".join(text.lower().split()))


def reference_words(text: str) -> list[str]:
    """The authors' word list: tokens of the normalised text with non-word characters removed."""
    return [word for word in (re.sub(r"\W", "", token) for token in reference_normalize(text).split()) if word]


def reference_score(sample: dict[str, Any], response: str) -> dict[str, Any]:
    """The authors' verdicts on the first line: exact match, ``contains_answer`` (any shared word),
    word overlap (shared words / gold words) and their confidence; none for a "meaningless" answer."""
    extracted = extract_answer(response)
    answer = extracted or ""
    meaningful = is_meaningful_loose(answer)
    predicted, gold = set(reference_words(answer)), set(reference_words(sample["answer"]))
    overlap = len(predicted & gold) / len(gold) if meaningful and gold else 0.0
    num_words = len(reference_words(answer))
    return {
        "extracted_answer": extracted,
        "exact_match": meaningful and reference_normalize(answer) == reference_normalize(sample["answer"]),
        "contains_answer": overlap > 0,
        "word_overlap_ratio": overlap,
        "confidence": overlap * min(1.0, 20 / num_words) if num_words else 0.0,
        "is_meaningful": meaningful,
    }


def reference_aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """The authors' metrics and names: rates and averages over the meaningful answers only."""
    meaningful = [detail for detail in reference_view(details) if detail["is_meaningful"]]
    contains = sum(detail["contains_answer"] for detail in meaningful)
    exact = sum(detail["exact_match"] for detail in meaningful)
    confident = sum(detail["confidence"] > HIGH_CONFIDENCE for detail in meaningful)
    return {
        "meaningful_response_rate": ratio(len(meaningful), len(details)),
        "contains_answer_rate": ratio(contains, len(meaningful)),
        "exact_match_rate": ratio(exact, len(meaningful)),
        "high_confidence_rate": ratio(confident, len(meaningful)),
        "avg_word_overlap_ratio": mean(detail["word_overlap_ratio"] for detail in meaningful),
        "avg_confidence": mean(detail["confidence"] for detail in meaningful),
        "avg_response_length_words": mean(len(detail["extracted_answer"].split()) for detail in meaningful),
        "contains_answer_count": contains,
        "exact_match_count": exact,
        "high_confidence_count": confident,
        "meaningful_samples": len(meaningful),
        "total_samples": len(details),
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
        reference_score=reference_score,
        reference_aggregate=reference_aggregate,
    )
