"""Helpers several benchmarks share."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

_LONG_RUN = re.compile(r"(.)\1{5,}")


def is_meaningful(response: str) -> bool:
    """The reference's "meaningful response" rule, reported as a diagnostic rate, never used as a gate.

    As a gate it rejected correct answers (8-space code indentation, ``******`` separators, ellipses).
    """
    text = response.strip()
    if len(text) < 3 or sum(char.isalnum() for char in text) < 2:
        return False
    if len(text) > 10 and len(set(text.lower())) < 3:
        return False
    if _LONG_RUN.search(text):
        return False
    return any(any(char.isalpha() for char in word) for word in text.split())


def mean(values: Iterable[float]) -> float | None:
    """Mean, or None for an empty collection (no ZeroDivisionError on an empty set)."""
    values = list(values)
    return sum(values) / len(values) if values else None


def rate(details: Sequence[dict[str, Any]], key: str) -> float | None:
    """Fraction of samples whose ``key`` is truthy."""
    return mean(float(bool(detail.get(key))) for detail in details)


def answer_letters(text: str, letters: str, lead: str = r"the\s+answer\s+is") -> list[str]:
    """Option letters stated right after ``lead`` (e.g. "The answer is (X)"), upper-cased, in order of appearance.

    The phrase matches in any case and "(c)" in any case, but a bare letter only in upper case and
    as a whole word: the reference upper-cased the text first, so "the answer is always" read as A
    and "is because" as B. A bare "I" followed by a lower-case word is the pronoun ("is I think").
    ``letters`` is a regex class body such as ``A-J``.
    """
    pattern = rf"(?i:{lead})\s*:?\s*\**\s*(?:\(((?i:[{letters}]))\)|([{letters}])(?![\w'])(?!(?<=I)\s+[a-z]))"
    return [(enclosed or bare).upper() for enclosed, bare in re.findall(pattern, text)]


def group_accuracy(details: Sequence[dict[str, Any]], key: str, correct_key: str = "is_correct") -> dict[str, dict[str, Any]]:
    """``{group: {accuracy, correct, total}}`` per value of ``key`` (category, subject, language), sorted by name."""
    groups: dict[str, list[bool]] = {}
    for detail in details:
        groups.setdefault(str(detail.get(key)), []).append(bool(detail.get(correct_key)))
    return {name: {"accuracy": mean(map(float, flags)), "correct": sum(flags), "total": len(flags)} for name, flags in sorted(groups.items())}
