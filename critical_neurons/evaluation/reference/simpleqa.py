"""SimpleQA as the authors scored it: word overlap of the answer's first line with the gold, over "meaningful" answers only.

Their quirks kept: the first line is cut at ``\\n`` only (``\\r``, ``\\u2028`` and form feeds stay in
it); any shared word, "the" included, "contains" the gold; a gold without words is contained in
every answer (overlap 1.0); the confidence penalty counts the answer's raw whitespace tokens; an
all-meaningless level scores 0.0.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from critical_neurons.evaluation.reference.common import share

HIGH_CONFIDENCE = 0.8
_DELETED = re.compile(r"[.!?;,\"']")
_NON_WORD = re.compile(r"[^\w\s]")
_LONG_RUN = re.compile(r"(.)\1{10,}", re.DOTALL)


def first_line(response: str) -> str:
    """Their answer: the stripped response's text before the first ``\\n``, stripped (the whole response if that is empty)."""
    text = response.strip()
    return text.split("\n")[0].strip() or text


def is_meaningful(answer: str) -> bool:
    """Their looser SimpleQA gate: an alphanumeric character, 2 distinct ones past 3 characters, no run of 11 identical ones."""
    text = answer.strip()
    if not any(char.isalnum() for char in text):
        return False
    if len(text) > 3 and len(set(text.lower())) < 2:
        return False
    return not _LONG_RUN.search(text)


def normalize(text: str) -> str:
    """Lower case, whitespace collapsed, then ``. ! ? ; , " '`` deleted (articles kept)."""
    return _DELETED.sub("", " ".join(text.lower().split()))


def words(text: str) -> set[str]:
    """The normalised text's tokens without non-word characters, empty ones dropped."""
    return {cleaned for token in normalize(text).split() if (cleaned := _NON_WORD.sub("", token))}


def match(answer: str, gold: str) -> dict[str, Any]:
    """Their verdicts on one answer: exact match, contains (any shared word), overlap (shared / gold words), confidence."""
    if not answer or not gold:
        return {"exact_match": False, "contains_answer": False, "word_overlap_ratio": 0.0, "confidence": 0.0}
    exact = normalize(answer) == normalize(gold)
    expected = words(gold)
    if not expected:
        return {"exact_match": exact, "contains_answer": True, "word_overlap_ratio": 1.0, "confidence": 1.0}
    overlap = len(words(answer) & expected) / len(expected)
    return {"exact_match": exact, "contains_answer": overlap > 0, "word_overlap_ratio": overlap, "confidence": overlap * min(1.0, 20.0 / len(answer.split()))}


def score(sample: dict[str, Any], response: str) -> dict[str, Any]:
    """Their verdict on the first line, in their names (``response`` is the first line they keep);
    a meaningless answer gets no credit and leaves their denominators."""
    answer = first_line(response)
    meaningful = is_meaningful(answer)
    evaluation = match(answer, sample["answer"]) if meaningful else match("", "")
    return {"response": answer, "is_meaningful": meaningful, "evaluation": evaluation}


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Their level metrics and names: rates and averages over the meaningful answers only."""
    scored = [detail["reference"] for detail in details if detail["reference"]["is_meaningful"]]
    evaluations = [verdict["evaluation"] for verdict in scored]
    contains = sum(evaluation["contains_answer"] for evaluation in evaluations)
    exact = sum(evaluation["exact_match"] for evaluation in evaluations)
    confident = sum(evaluation["confidence"] > HIGH_CONFIDENCE for evaluation in evaluations)

    def average(values: list[float]) -> float:
        return float(np.mean(values)) if values else 0.0

    return {
        "meaningful_response_rate": share(len(scored), len(details)),
        "contains_answer_rate": share(contains, len(scored)),
        "exact_match_rate": share(exact, len(scored)),
        "high_confidence_rate": share(confident, len(scored)),
        "avg_word_overlap_ratio": average([evaluation["word_overlap_ratio"] for evaluation in evaluations]),
        "avg_confidence": average([evaluation["confidence"] for evaluation in evaluations]),
        "avg_response_length_words": average([len(verdict["response"].split()) for verdict in scored]),
        "contains_answer_count": contains,
        "exact_match_count": exact,
        "high_confidence_count": confident,
        "meaningful_samples": len(scored),
        "total_samples": len(details),
    }
