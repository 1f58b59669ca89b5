"""MGSM as the authors scored it: a regex cascade on the lower-cased response, accuracy over "meaningful" responses only.

Their quirks kept: the number pattern splits thousands separators ("1,000." reads as 0); the cues have
no word boundary ("also 5" matches "so"); the fallback is the last integer, read after every fraction
in the response is divided out, so "5/0" there fails the whole sample, which they then count as
meaningless; an empty or all-meaningless level scores 0.0.
"""

from __future__ import annotations

import re
from typing import Any

from critical_neurons.evaluation.reference.common import is_meaningful, share

TOLERANCE = 1e-6
NUMBER = r"[+-]?\d*\.?\d+"
# Tried in order on the lower-cased response; the last match of the first that matches is the answer.
CASCADE = (
    re.compile(rf"(?:the answer is|answer:|final answer:|therefore,?|so,?|thus,?)\s*({NUMBER})", re.IGNORECASE),
    re.compile(rf"(?:=|equals?)\s*({NUMBER})\s*(?:\.|$)", re.IGNORECASE),
    re.compile(rf"({NUMBER})\s*(?:\.|$)", re.IGNORECASE),
)
# The fallback's numbers: every decimal, then every fraction, then every integer, in that order.
FALLBACK_NUMBERS = (re.compile(r"-?\d+\.\d+"), re.compile(r"-?\d+/\d+"), re.compile(r"-?\d+"))
# Their "reasoning" cues, searched in the lower-cased response: operators, step words, calculation words, connectives.
REASONING_CUES = (
    re.compile(r"\+|\-|\*|/|×|÷"),
    re.compile(r"step \d+|first|second|third|then|next|finally"),
    re.compile(r"calculate|compute|solve|total|sum|difference|product|quotient"),
    re.compile(r"because|since|therefore|so|thus|hence"),
)
REASONING_THRESHOLD = 0.2
CALCULATION = re.compile(r"\d+\s*[+\-*/×÷]\s*\d+")  # on the response as it is
STEP = re.compile(r"(step|first|then|next|finally)")  # on the lower-cased response


def fallback_numbers(text: str) -> list[float]:
    """Every number in the text, decimals first, then fractions (divided out; a zero denominator raises), then integers."""
    numbers = []
    for pattern in FALLBACK_NUMBERS:
        for match in pattern.findall(text):
            numerator, _, denominator = match.partition("/")
            numbers.append(float(numerator) / float(denominator) if denominator else float(match))
    return numbers


def extract(response: str) -> float | None:
    """Their number: the cascade on the lower-cased text, else the last of ``fallback_numbers``; None without a digit."""
    lowered = response.lower().strip()
    for pattern in CASCADE:
        found = pattern.findall(lowered)
        if found:
            return float(found[-1])
    numbers = fallback_numbers(response)
    return numbers[-1] if numbers else None


def reasoning(response: str) -> dict[str, Any]:
    """Their reasoning analysis: the share of their four cues found in the lower-cased response, and its parts."""
    lowered = response.lower()
    found = [cue.pattern for cue in REASONING_CUES if cue.search(lowered)]
    share_found = len(found) / len(REASONING_CUES)
    return {
        "has_reasoning": share_found > REASONING_THRESHOLD,
        "reasoning_score": share_found,
        "has_calculations": bool(CALCULATION.search(response)),
        "has_steps": bool(STEP.search(lowered)),
        "found_indicators": found,
    }


def _unscored(error: str | None = None) -> dict[str, Any]:
    """Their record of an unscored sample (meaningless, or ``error`` raised while reading the answer)."""
    evaluation = {"exact_match": False, "numerical_match": False, "has_prediction": False, "has_reasoning": False, "reasoning_score": 0.0}
    if error is None:
        return {"is_meaningful": False, "predicted_answer": None, "evaluation": evaluation}
    return {"is_meaningful": False, "predicted_answer": None, "evaluation": {**evaluation, "error": error}, "error": error}


def score(sample: dict[str, Any], response: str) -> dict[str, Any]:
    """Their verdict on the stripped response, in their names and nesting; a meaningless response, or one
    whose fallback divides by zero (their error record), is unscored."""
    text = response.strip()
    if not is_meaningful(text):
        return _unscored()
    try:
        predicted = extract(text)
    except ZeroDivisionError as error:
        return _unscored(str(error))
    gold = float(sample["answer"])
    matched = {
        "exact_match": predicted is not None and predicted == gold,
        "numerical_match": predicted is not None and abs(predicted - gold) <= TOLERANCE,
        "has_prediction": predicted is not None,
    }
    return {"is_meaningful": True, "predicted_answer": predicted, "evaluation": {**matched, **reasoning(text)}}


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Their level metrics and names: rates over the meaningful responses only."""
    scored = [detail["reference"]["evaluation"] for detail in details if detail["reference"]["is_meaningful"]]
    counts = {
        "exact_match_count": sum(evaluation["exact_match"] for evaluation in scored),
        "numerical_match_count": sum(evaluation["numerical_match"] for evaluation in scored),
        "has_prediction_count": sum(evaluation["has_prediction"] for evaluation in scored),
        "has_reasoning_count": sum(evaluation["has_reasoning"] for evaluation in scored),
    }
    return {
        "exact_match_accuracy": share(counts["exact_match_count"], len(scored)),
        "numerical_match_accuracy": share(counts["numerical_match_count"], len(scored)),
        "prediction_rate": share(counts["has_prediction_count"], len(scored)),
        "reasoning_rate": share(counts["has_reasoning_count"], len(scored)),
        "meaningful_response_rate": share(len(scored), len(details)),
        "avg_reasoning_score": share(sum(evaluation["reasoning_score"] for evaluation in scored), len(scored)),
        **counts,
        "meaningful_samples": len(scored),
        "total_samples": len(details),
    }
